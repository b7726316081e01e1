//! Due timers of the retention: when each subject's purge, and after it its verification, is to
//! run. The timers are the subject's own events (`PurgeScheduled.due`, `PurgeBlocked.retry_at`,
//! `PurgeExecuted`, `DeletionVerificationFailed`); this fold indexes them by due time so that a
//! scheduler can page through what is due without holding all of it.
//!
//! The appointments' timers are here too: the reminder a day before and the no-show check 15
//! minutes after the start, as the process manager (`core::domain::process::react`) sets them
//! on booking and rescheduling. An appointment holds at most one timer of each kind, so moving
//! it replaces them; a timer is removed by the fact that makes it moot (`ReminderSent`,
//! `SessionLinked`, the final states). The slot-hold timer is not kept: see ADR 0011.
//!
//! Timer keys are `{due:012}{id}`: the due time in Unix seconds (rounded up, so a timer is
//! never listed before its time) and the subject's or appointment's UUID in simple form, fixed
//! width, so key order is due order in every collation.

use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};
use videoamt_core::domain::appointment::AppointmentCommand;
use videoamt_core::domain::command::Command;
use videoamt_core::domain::process::{Reaction, react};
use videoamt_core::domain::{AppointmentId, DomainEvent, SubjectId};
use videoamt_core::readmodel::{DocKey, Docs, ReadModelStore};
use videoamt_core::store::StoreError;

use crate::{Projection, Recorded};

pub const NAME: &str = "due-timers";

/// How long a failed verification waits before the next try.
pub const VERIFY_RETRY: Duration = Duration::hours(1);

/// What a timer fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimerKind {
    Purge,
    Verify,
    /// `SendReminder`, a day before the start.
    Reminder,
    /// `CheckNoShow`, 15 minutes after the start.
    NoShow,
}

impl TimerKind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Purge => "purge",
            Self::Verify => "verify",
            Self::Reminder => "reminder",
            Self::NoShow => "no-show",
        }
    }
}

/// A timer of an appointment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppointmentTimer {
    pub appointment: AppointmentId,
    pub tenant: String,
    #[serde(with = "time::serde::rfc3339")]
    pub due: OffsetDateTime,
}

impl AppointmentTimer {
    /// The command the timer fires.
    pub fn command(&self, kind: TimerKind) -> Option<Command> {
        let appointment = self.appointment;
        match kind {
            TimerKind::Reminder => Some(AppointmentCommand::SendReminder { appointment }.into()),
            TimerKind::NoShow => Some(AppointmentCommand::CheckNoShow { appointment }.into()),
            TimerKind::Purge | TimerKind::Verify => None,
        }
    }
}

/// Where an appointment's timers are.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct AppointmentIndex {
    reminder: Option<String>,
    no_show: Option<String>,
}

fn appointment_index_key(stream: &str) -> Option<DocKey> {
    let id = stream.strip_prefix("appointment-")?;
    Some(DocKey::new("appointment", id))
}

fn set_appointment_timer(
    docs: &mut Docs,
    index: &mut AppointmentIndex,
    kind: TimerKind,
    timer: Option<AppointmentTimer>,
) {
    let slot = match kind {
        TimerKind::Reminder => &mut index.reminder,
        TimerKind::NoShow => &mut index.no_show,
        TimerKind::Purge | TimerKind::Verify => return,
    };
    let keyed = timer.map(|t| (timer_key(t.due, t.appointment.0), t));
    replace(docs, slot, kind, keyed);
}

/// Moves the timer `slot` names: the old document is deleted, the new one (if any) stored
/// under its key, and the slot remembers that key.
fn replace<T: videoamt_core::readmodel::Document>(
    docs: &mut Docs,
    slot: &mut Option<String>,
    kind: TimerKind,
    timer: Option<(String, T)>,
) {
    if let Some(old) = slot.take() {
        docs.delete(DocKey::new(kind.as_str(), old));
    }
    if let Some((key, timer)) = timer {
        docs.put(DocKey::new(kind.as_str(), key.clone()), timer);
        *slot = Some(key);
    }
}

/// The appointment-timer events: what they set (from the process manager) or clear.
fn appointment_timers(event: Recorded<'_>, docs: &mut Docs, key: DocKey) {
    let Ok(appointment) = uuid::Uuid::parse_str(&key.key).map(AppointmentId) else {
        return;
    };
    let envelope = event.envelope;
    let mut index = docs.get::<AppointmentIndex>(&key).unwrap_or_default();
    match event.event {
        DomainEvent::AppointmentBooked(_) | DomainEvent::AppointmentRescheduled(_) => {
            // A move sets both anew; a reminder too close to the new start is dropped.
            let mut reminder = None;
            let mut no_show = None;
            for reaction in react(&envelope.stream_id, event.event, envelope.meta.recorded_at) {
                let Reaction::Timer { due, command } = reaction else {
                    continue;
                };
                let timer = AppointmentTimer {
                    appointment,
                    tenant: envelope.meta.tenant.as_str().to_owned(),
                    due,
                };
                match command {
                    Command::Appointment(AppointmentCommand::SendReminder { .. }) => {
                        reminder = Some(timer)
                    }
                    Command::Appointment(AppointmentCommand::CheckNoShow { .. }) => {
                        no_show = Some(timer)
                    }
                    _ => {}
                }
            }
            set_appointment_timer(docs, &mut index, TimerKind::Reminder, reminder);
            set_appointment_timer(docs, &mut index, TimerKind::NoShow, no_show);
        }
        DomainEvent::ReminderSent(_) => {
            set_appointment_timer(docs, &mut index, TimerKind::Reminder, None);
        }
        DomainEvent::SessionLinked(_) => {
            set_appointment_timer(docs, &mut index, TimerKind::NoShow, None);
        }
        DomainEvent::AppointmentCancelled(_)
        | DomainEvent::AppointmentCompleted(_)
        | DomainEvent::NoShowRecorded(_) => {
            set_appointment_timer(docs, &mut index, TimerKind::Reminder, None);
            set_appointment_timer(docs, &mut index, TimerKind::NoShow, None);
        }
        _ => return,
    }
    if index.reminder.is_none() && index.no_show.is_none() {
        docs.delete(key);
    } else {
        docs.put(key, index);
    }
}

fn moves_appointment_timers(event: &DomainEvent) -> bool {
    matches!(
        event,
        DomainEvent::AppointmentBooked(_)
            | DomainEvent::AppointmentRescheduled(_)
            | DomainEvent::ReminderSent(_)
            | DomainEvent::SessionLinked(_)
            | DomainEvent::AppointmentCancelled(_)
            | DomainEvent::AppointmentCompleted(_)
            | DomainEvent::NoShowRecorded(_)
    )
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timer {
    pub subject: SubjectId,
    pub tenant: String,
    #[serde(with = "time::serde::rfc3339")]
    pub due: OffsetDateTime,
}

/// Where a subject's timers are, to move or remove them.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Index {
    purge: Option<String>,
    verify: Option<String>,
}

#[derive(Debug, Clone, Copy, Default)]
pub struct DueTimers;

fn seconds_ceil(at: OffsetDateTime) -> i64 {
    let seconds = at.unix_timestamp();
    if at.nanosecond() > 0 {
        seconds + 1
    } else {
        seconds
    }
}

fn timer_key(due: OffsetDateTime, id: uuid::Uuid) -> String {
    format!("{:012}{}", seconds_ceil(due).max(0), id.simple())
}

fn index_key(stream: &str) -> Option<DocKey> {
    let subject = stream.strip_prefix("subject-")?;
    Some(DocKey::new("subject", subject))
}

fn set(docs: &mut Docs, index: &mut Index, kind: TimerKind, timer: Option<Timer>) {
    let slot = match kind {
        TimerKind::Purge => &mut index.purge,
        TimerKind::Verify => &mut index.verify,
        TimerKind::Reminder | TimerKind::NoShow => return,
    };
    let keyed = timer.map(|t| (timer_key(t.due, t.subject.0), t));
    replace(docs, slot, kind, keyed);
}

impl Projection for DueTimers {
    fn name(&self) -> &'static str {
        NAME
    }

    fn keys(&self, event: Recorded<'_>, _docs: &Docs) -> Vec<DocKey> {
        if moves_appointment_timers(event.event) {
            return appointment_index_key(event.envelope.stream_id.as_str())
                .into_iter()
                .collect();
        }
        let moves = matches!(
            event.event,
            DomainEvent::PurgeScheduled(_)
                | DomainEvent::PurgeBlocked(_)
                | DomainEvent::PurgeExecuted(_)
                | DomainEvent::DeletionVerified(_)
                | DomainEvent::DeletionVerificationFailed(_)
        );
        if !moves {
            return vec![];
        }
        index_key(event.envelope.stream_id.as_str())
            .into_iter()
            .collect()
    }

    fn apply(&self, event: Recorded<'_>, docs: &mut Docs) {
        let Some(key) = self.keys(event, docs).pop() else {
            return;
        };
        if key.kind == "appointment" {
            appointment_timers(event, docs, key);
            return;
        }
        let Ok(subject) = uuid::Uuid::parse_str(&key.key).map(SubjectId) else {
            return;
        };
        let meta = &event.envelope.meta;
        let timer = |due| Timer {
            subject,
            tenant: meta.tenant.as_str().to_owned(),
            due,
        };
        let mut index = docs.get::<Index>(&key).unwrap_or_default();
        match event.event {
            DomainEvent::PurgeScheduled(e) => {
                set(docs, &mut index, TimerKind::Purge, Some(timer(e.due)));
            }
            DomainEvent::PurgeBlocked(e) => {
                set(docs, &mut index, TimerKind::Purge, Some(timer(e.retry_at)));
            }
            DomainEvent::PurgeExecuted(_) => {
                set(docs, &mut index, TimerKind::Purge, None);
                set(
                    docs,
                    &mut index,
                    TimerKind::Verify,
                    Some(timer(meta.recorded_at)),
                );
            }
            DomainEvent::DeletionVerificationFailed(_) => {
                let retry = timer(meta.recorded_at + VERIFY_RETRY);
                set(docs, &mut index, TimerKind::Verify, Some(retry));
            }
            DomainEvent::DeletionVerified(_) => {
                set(docs, &mut index, TimerKind::Verify, None);
            }
            _ => return,
        }
        if index.purge.is_none() && index.verify.is_none() {
            docs.delete(key);
        } else {
            docs.put(key, index);
        }
    }
}

/// Up to `limit` timers of `kind` due at `now`, after the key `after` (empty for the first
/// page), in due order, with their keys for paging: [`Timer`]s of subjects (purge, verify),
/// [`AppointmentTimer`]s of appointments (reminder, no-show).
pub async fn due<T: serde::de::DeserializeOwned>(
    models: &dyn ReadModelStore,
    kind: TimerKind,
    now: OffsetDateTime,
    after: &str,
    limit: u32,
) -> Result<Vec<(String, T)>, StoreError> {
    // Every key due by `now` sorts before the next second's first key.
    let before = format!("{:012}", now.unix_timestamp().max(0) + 1);
    Ok(models
        .list_range(NAME, kind.as_str(), after, &before, limit)
        .await?
        .into_iter()
        .filter_map(|(key, value)| Some((key, serde_json::from_value(value).ok()?)))
        .collect())
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    #[test]
    fn timer_keys_sort_by_due_time_and_round_up() {
        let s = SubjectId(uuid::Uuid::nil());
        let a = timer_key(datetime!(2026-11-30 13:30 UTC), s.0);
        let b = timer_key(datetime!(2026-11-30 13:30:00.000001 UTC), s.0);
        let c = timer_key(datetime!(2027-02-28 13:30 UTC), s.0);
        assert!(a < b && b < c);
        assert_eq!(a.len(), 44);
        // Due 13:30:00.000001 is listed from 13:30:01 on, never at 13:30:00.
        assert!(
            b > format!(
                "{:012}",
                datetime!(2026-11-30 13:30 UTC).unix_timestamp() + 1
            )
        );
    }
}
