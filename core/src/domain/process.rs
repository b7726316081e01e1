//! Process managers: pure functions from one recorded event to what must follow it. They never
//! act themselves; the runtime turns [`Reaction`]s into commands, timers and outbox items.

use time::{Duration, OffsetDateTime};

use super::command::Command;
use super::events::FinalState;
use super::{AppointmentId, DomainEvent, SessionId};
use crate::event::StreamId;

/// Side-effect work for the outbox worker (mail, SMS). Performed at least once, outside any
/// command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WorkItem {
    ConfirmationMail { appointment: AppointmentId },
    ReminderMail { appointment: AppointmentId },
    CancellationMail { appointment: AppointmentId },
    FeedbackInvitation { session: SessionId },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reaction {
    /// Run now.
    Command(Command),
    /// Run at `due`.
    Timer {
        due: OffsetDateTime,
        command: Command,
    },
    Work(WorkItem),
}

/// How long an unconfirmed booking holds its slots.
pub const SLOT_HOLD: Duration = Duration::minutes(30);
pub const REMINDER_BEFORE: Duration = Duration::hours(24);
pub const NO_SHOW_AFTER: Duration = Duration::minutes(15);

/// What follows `event`, recorded at `recorded_at` on `stream`.
pub fn react(stream: &StreamId, event: &DomainEvent, recorded_at: OffsetDateTime) -> Vec<Reaction> {
    let appointment = || {
        stream
            .as_str()
            .strip_prefix("appointment-")
            .and_then(|id| uuid::Uuid::parse_str(id).ok())
            .map(AppointmentId)
    };
    let purge = |final_state| {
        appointment()
            .map(|appointment| {
                Reaction::Command(Command::SchedulePurge {
                    appointment,
                    final_state,
                    final_at: recorded_at,
                })
            })
            .into_iter()
            .collect()
    };
    match event {
        DomainEvent::AppointmentBooked(e) => {
            let appointment = e.appointment;
            let mut reactions = vec![
                Reaction::Work(WorkItem::ConfirmationMail { appointment }),
                Reaction::Timer {
                    due: e.start + NO_SHOW_AFTER,
                    command: Command::CheckNoShow { appointment },
                },
                Reaction::Timer {
                    due: recorded_at + SLOT_HOLD,
                    command: Command::ExpireSlotHold { appointment },
                },
            ];
            // A booking made less than a day ahead gets no reminder: the confirmation is fresh.
            if e.start - REMINDER_BEFORE > recorded_at {
                reactions.push(Reaction::Timer {
                    due: e.start - REMINDER_BEFORE,
                    command: Command::SendReminder { appointment },
                });
            }
            reactions
        }
        DomainEvent::AppointmentRescheduled(e) => appointment()
            .into_iter()
            .flat_map(|appointment| {
                let mut reactions = vec![
                    Reaction::Work(WorkItem::ConfirmationMail { appointment }),
                    Reaction::Timer {
                        due: e.start + NO_SHOW_AFTER,
                        command: Command::CheckNoShow { appointment },
                    },
                ];
                if e.start - REMINDER_BEFORE > recorded_at {
                    reactions.push(Reaction::Timer {
                        due: e.start - REMINDER_BEFORE,
                        command: Command::SendReminder { appointment },
                    });
                }
                reactions
            })
            .collect(),
        DomainEvent::ReminderSent(_) => appointment()
            .map(|appointment| Reaction::Work(WorkItem::ReminderMail { appointment }))
            .into_iter()
            .collect(),
        DomainEvent::AppointmentCancelled(_) => {
            let mut reactions: Vec<Reaction> = appointment()
                .map(|appointment| Reaction::Work(WorkItem::CancellationMail { appointment }))
                .into_iter()
                .collect();
            reactions.extend(purge(FinalState::Cancelled));
            reactions
        }
        DomainEvent::NoShowRecorded(_) => purge(FinalState::NoShow),
        DomainEvent::AppointmentCompleted(_) => purge(FinalState::Completed),
        DomainEvent::SessionEnded(_) => stream
            .as_str()
            .strip_prefix("session-")
            .and_then(|id| uuid::Uuid::parse_str(id).ok())
            .map(|id| {
                Reaction::Work(WorkItem::FeedbackInvitation {
                    session: SessionId(id),
                })
            })
            .into_iter()
            .collect(),
        _ => vec![],
    }
}
