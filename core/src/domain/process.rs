//! Process managers: pure functions from one recorded event to what must follow it. They never
//! act themselves; the runtime turns [`Reaction`]s into commands, timers and outbox items.

use time::{Duration, OffsetDateTime};

use super::appointment::AppointmentCommand;
use super::command::Command;
use super::events::FinalState;
use super::subject::SubjectCommand;
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

/// The no-show check after the start and, unless the start is less than a day away (the
/// confirmation is fresh then), the reminder a day before.
fn appointment_timers(
    appointment: AppointmentId,
    start: OffsetDateTime,
    recorded_at: OffsetDateTime,
) -> Vec<Reaction> {
    let mut timers = vec![Reaction::Timer {
        due: start + NO_SHOW_AFTER,
        command: AppointmentCommand::CheckNoShow { appointment }.into(),
    }];
    if start - REMINDER_BEFORE > recorded_at {
        timers.push(Reaction::Timer {
            due: start - REMINDER_BEFORE,
            command: AppointmentCommand::SendReminder { appointment }.into(),
        });
    }
    timers
}

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
                Reaction::Command(
                    SubjectCommand::SchedulePurge {
                        appointment,
                        final_state,
                        final_at: recorded_at,
                    }
                    .into(),
                )
            })
            .into_iter()
            .collect()
    };
    match event {
        DomainEvent::AppointmentBooked(e) => {
            let mut reactions = vec![
                Reaction::Work(WorkItem::ConfirmationMail {
                    appointment: e.appointment,
                }),
                Reaction::Timer {
                    due: recorded_at + SLOT_HOLD,
                    command: AppointmentCommand::ExpireSlotHold {
                        appointment: e.appointment,
                    }
                    .into(),
                },
            ];
            reactions.extend(appointment_timers(e.appointment, e.start, recorded_at));
            reactions
        }
        DomainEvent::AppointmentRescheduled(e) => appointment()
            .into_iter()
            .flat_map(|appointment| {
                let mut reactions =
                    vec![Reaction::Work(WorkItem::ConfirmationMail { appointment })];
                reactions.extend(appointment_timers(appointment, e.start, recorded_at));
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

#[cfg(test)]
mod tests {
    use time::macros::datetime;
    use uuid::Uuid;

    use super::*;
    use crate::domain::appointment::tests::{TUE_9, appointment, booked, booking};
    use crate::domain::events::{
        AppointmentCancelled, AppointmentCompleted, CancelledBy, NoShowRecorded, SessionEnded,
        SessionOutcome,
    };
    use crate::domain::gwt::ettlingen;

    fn booked_event() -> (StreamId, DomainEvent) {
        booked(
            ettlingen(),
            vec![],
            booking(1, "buergerbuero", &["meldebescheinigung"], TUE_9),
        )
        .into_iter()
        .find(|(_, e)| e.event_type() == "AppointmentBooked")
        .expect("booked")
    }

    #[test]
    fn a_booking_brings_the_confirmation_mail_and_its_timers() {
        let (stream, event) = booked_event();
        let a = appointment(1);
        let at = datetime!(2026-11-20 10:00 UTC);
        assert_eq!(
            react(&stream, &event, at),
            vec![
                Reaction::Work(WorkItem::ConfirmationMail { appointment: a }),
                Reaction::Timer {
                    due: at + SLOT_HOLD,
                    command: AppointmentCommand::ExpireSlotHold { appointment: a }.into()
                },
                Reaction::Timer {
                    due: TUE_9 + NO_SHOW_AFTER,
                    command: AppointmentCommand::CheckNoShow { appointment: a }.into()
                },
                Reaction::Timer {
                    due: TUE_9 - REMINDER_BEFORE,
                    command: AppointmentCommand::SendReminder { appointment: a }.into()
                },
            ]
        );
        // Booked less than a day ahead: no reminder.
        let late = react(&stream, &event, TUE_9 - time::Duration::hours(2));
        assert!(!late.iter().any(|r| matches!(
            r,
            Reaction::Timer {
                command: Command::Appointment(AppointmentCommand::SendReminder { .. }),
                ..
            }
        )));
    }

    #[test]
    fn every_final_state_schedules_the_purge() {
        let stream = appointment(1).stream();
        let at = datetime!(2026-11-24 09:00 UTC);
        for (event, final_state) in [
            (
                DomainEvent::from(AppointmentCancelled {
                    by: CancelledBy::Clerk,
                    reason: None,
                }),
                FinalState::Cancelled,
            ),
            (NoShowRecorded {}.into(), FinalState::NoShow),
            (
                AppointmentCompleted {
                    outcome: SessionOutcome::Completed,
                }
                .into(),
                FinalState::Completed,
            ),
        ] {
            let reactions = react(&stream, &event, at);
            assert!(
                reactions.contains(&Reaction::Command(
                    SubjectCommand::SchedulePurge {
                        appointment: appointment(1),
                        final_state,
                        final_at: at,
                    }
                    .into()
                ))
            );
        }
    }

    #[test]
    fn an_ended_session_invites_feedback() {
        let session = SessionId(Uuid::from_u128(77));
        assert_eq!(
            react(
                &session.stream(),
                &SessionEnded {
                    outcome: SessionOutcome::Completed
                }
                .into(),
                TUE_9
            ),
            vec![Reaction::Work(WorkItem::FeedbackInvitation { session })]
        );
    }
}
