//! `subject-{id}`: the data subject of an appointment and the life cycle of its erasure.
//!
//! Invariants: the purge is scheduled exactly once, `retention_months` calendar months after
//! the appointment's final state in the tenant's time zone; it runs only when due, exactly
//! once; verification follows the purge.

use time::OffsetDateTime;

use super::appointment::{AppointmentState, Status};
use super::events::{
    DeletionVerificationFailed, DeletionVerified, FinalState, PurgeBlocked, PurgeExecuted,
    PurgeScheduled, SubjectKeyIssued,
};
use super::session::SessionState;
use super::{
    AppointmentId, Context, Decision, DomainError, DomainEvent, Histories, SubjectId, one,
};
use crate::event::StreamId;
use crate::tenant::Tenant;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SubjectState {
    pub key: Option<SubjectKeyIssued>,
    pub scheduled: Option<PurgeScheduled>,
    /// The last time the due purge was held back.
    pub blocked: Option<PurgeBlocked>,
    pub purged: bool,
    pub verified: bool,
    /// Failed verifications since the purge (a verification may pass later, once fixed).
    pub verification_failures: u32,
}

impl SubjectState {
    /// The subject's state as its loaded stream folds.
    pub fn of(h: &Histories, subject: SubjectId) -> Self {
        h.fold(&subject.stream(), Self::evolve)
    }

    pub fn evolve(mut self, event: &DomainEvent) -> Self {
        match event {
            DomainEvent::SubjectKeyIssued(e) => self.key = Some(e.clone()),
            DomainEvent::PurgeScheduled(e) => self.scheduled = Some(e.clone()),
            DomainEvent::PurgeBlocked(e) => self.blocked = Some(e.clone()),
            DomainEvent::PurgeExecuted(_) => self.purged = true,
            DomainEvent::DeletionVerified(_) => self.verified = true,
            DomainEvent::DeletionVerificationFailed(_) => self.verification_failures += 1,
            _ => {}
        }
        self
    }

    /// `None` if already scheduled: scheduling is idempotent, so a process manager that runs
    /// twice schedules once.
    pub fn schedule(
        &self,
        final_state: FinalState,
        final_at: OffsetDateTime,
        tenant: &crate::tenant::Tenant,
    ) -> Result<Option<PurgeScheduled>, DomainError> {
        if self.key.is_none() {
            return Err(DomainError::UnknownSubject);
        }
        if self.scheduled.is_some() {
            return Ok(None);
        }
        let due = tenant.add_months(final_at, tenant.retention_months);
        Ok(Some(PurgeScheduled {
            final_state,
            final_at,
            due,
        }))
    }

    /// Whether the due purge may run now: `Some(reason)` while data that must be kept has not
    /// been handed over to its case system. Only a completed session holds such data.
    pub fn missing_handover(
        appointment: &AppointmentState,
        session: &SessionState,
        tenant: &Tenant,
    ) -> Option<String> {
        if appointment.status != Status::Completed {
            return None;
        }
        let booking = appointment.booking.as_ref()?;
        let target = booking
            .services
            .iter()
            .filter_map(|s| tenant.service(s))
            .find_map(|s| s.case_system.clone())?;
        if session.handed_over_to.contains(&target) {
            return None;
        }
        Some(format!("Übergabe an „{target}“ fehlt"))
    }

    pub fn purge(&self, now: OffsetDateTime) -> Result<(), DomainError> {
        let scheduled = self
            .scheduled
            .as_ref()
            .ok_or(DomainError::PurgeNotScheduled)?;
        if self.purged {
            return Err(DomainError::AlreadyPurged);
        }
        if now < scheduled.due {
            return Err(DomainError::PurgeNotDue(scheduled.due.date().to_string()));
        }
        Ok(())
    }
}

/// The commands of a subject's stream: the erasure's life cycle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubjectCommand {
    /// From the process manager when an appointment reaches its final state.
    SchedulePurge {
        appointment: AppointmentId,
        final_state: FinalState,
        final_at: OffsetDateTime,
    },
    /// Before a due purge touches anything: appends `PurgeBlocked` (to be tried again at
    /// `retry_at`) while a required case-system handover is missing; decides nothing when the
    /// purge may go ahead.
    CheckPurge {
        subject: SubjectId,
        retry_at: OffsetDateTime,
    },
    ExecutePurge {
        subject: SubjectId,
        result: PurgeExecuted,
    },
    VerifyDeletion {
        subject: SubjectId,
        checks: Vec<String>,
    },
    /// The verifier found traces of a purged subject in `places`.
    FailDeletionVerification {
        subject: SubjectId,
        places: Vec<String>,
    },
}

impl SubjectCommand {
    pub fn streams(&self, loaded: &Histories, _ctx: &Context<'_>) -> Vec<StreamId> {
        let appointment_of =
            |id: AppointmentId| loaded.fold(&id.stream(), AppointmentState::evolve);
        match self {
            Self::SchedulePurge { appointment, .. } => {
                let mut streams = vec![appointment.stream()];
                if let Some(b) = appointment_of(*appointment).booking {
                    streams.push(b.subject.stream());
                }
                streams
            }
            Self::CheckPurge { subject, .. } => {
                let mut streams = vec![subject.stream()];
                if let Some(key) = SubjectState::of(loaded, *subject).key {
                    streams.push(key.appointment.stream());
                    streams.extend(appointment_of(key.appointment).session.map(|s| s.stream()));
                }
                streams
            }
            Self::ExecutePurge { subject, .. }
            | Self::VerifyDeletion { subject, .. }
            | Self::FailDeletionVerification { subject, .. } => vec![subject.stream()],
        }
    }

    pub fn decide(&self, h: &Histories, ctx: &Context<'_>) -> Result<Decision, DomainError> {
        let tenant = ctx.tenant;
        match self {
            Self::SchedulePurge {
                appointment,
                final_state,
                final_at,
            } => {
                let state = h.fold(&appointment.stream(), AppointmentState::evolve);
                let booking = state
                    .booking
                    .as_ref()
                    .ok_or(DomainError::UnknownAppointment)?;
                let subject = booking.subject;
                match SubjectState::of(h, subject).schedule(*final_state, *final_at, tenant)? {
                    Some(scheduled) => Ok(one(subject.stream(), scheduled)),
                    None => Ok(vec![]),
                }
            }
            Self::CheckPurge { subject, retry_at } => {
                let state = SubjectState::of(h, *subject);
                state.purge(ctx.now)?;
                let key = state.key.as_ref().ok_or(DomainError::UnknownSubject)?;
                let appointment = h.fold(&key.appointment.stream(), AppointmentState::evolve);
                let session = appointment
                    .session
                    .map(|s| SessionState::of(h, s))
                    .unwrap_or_default();
                match SubjectState::missing_handover(&appointment, &session, tenant) {
                    None => Ok(vec![]),
                    Some(reason) => Ok(one(
                        subject.stream(),
                        PurgeBlocked {
                            reason,
                            retry_at: *retry_at,
                        },
                    )),
                }
            }
            Self::ExecutePurge { subject, result } => {
                SubjectState::of(h, *subject).purge(ctx.now)?;
                Ok(one(subject.stream(), result.clone()))
            }
            Self::VerifyDeletion { subject, checks } => {
                let state = SubjectState::of(h, *subject);
                if !state.purged {
                    return Err(DomainError::NotYetPurged);
                }
                if state.verified {
                    return Ok(vec![]);
                }
                Ok(one(
                    subject.stream(),
                    DeletionVerified {
                        checks: checks.clone(),
                    },
                ))
            }
            Self::FailDeletionVerification { subject, places } => {
                if !SubjectState::of(h, *subject).purged {
                    return Err(DomainError::NotYetPurged);
                }
                Ok(one(
                    subject.stream(),
                    DeletionVerificationFailed {
                        places: places.clone(),
                    },
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use time::Duration;
    use time::macros::datetime;

    use super::*;
    use crate::domain::appointment::tests::{TUE_9, appointment, booked, booking, subject};
    use crate::domain::gwt::{ettlingen, given, stuttgart};

    fn executed() -> PurgeExecuted {
        PurgeExecuted {
            keys_destroyed: 1,
            blobs_deleted: 2,
            outbox_items_scrubbed: 1,
        }
    }

    #[test]
    fn the_purge_is_due_retention_calendar_months_after_the_final_state() {
        let end = datetime!(2026-08-31 12:30 UTC); // 14:30 in Germany (summer time)
        let schedule = SubjectCommand::SchedulePurge {
            appointment: appointment(1),
            final_state: FinalState::Completed,
            final_at: end,
        };
        let history = booked(
            ettlingen(),
            vec![],
            booking(1, "buergerbuero", &["meldebescheinigung"], TUE_9),
        );
        given(ettlingen(), history)
            .when(schedule.clone())
            .then_expect(vec![(
                subject(1).stream(),
                PurgeScheduled {
                    final_state: FinalState::Completed,
                    final_at: end,
                    due: datetime!(2026-11-30 13:30 UTC),
                }
                .into(),
            )]);
        let history = booked(
            stuttgart(),
            vec![],
            booking(1, "ordnung-waffen", &["jagdschein"], TUE_9),
        );
        let decision = given(stuttgart(), history.clone())
            .when(schedule.clone())
            .decision();
        let mut after = history;
        after.extend(decision.clone());
        assert_eq!(
            decision,
            vec![(
                subject(1).stream(),
                PurgeScheduled {
                    final_state: FinalState::Completed,
                    final_at: end,
                    due: datetime!(2027-02-28 13:30 UTC)
                }
                .into(),
            )]
        );
        // A second final-state reaction schedules nothing more.
        given(stuttgart(), after).when(schedule).then_nothing();
    }

    #[test]
    fn the_purge_runs_only_when_due_and_once_then_is_verified() {
        let end = TUE_9 + Duration::minutes(30);
        let h = booked(
            ettlingen(),
            vec![],
            booking(1, "buergerbuero", &["meldebescheinigung"], TUE_9),
        );
        let h = booked(
            ettlingen(),
            h,
            SubjectCommand::SchedulePurge {
                appointment: appointment(1),
                final_state: FinalState::NoShow,
                final_at: end,
            },
        );
        let due = ettlingen().add_months(end, 3);
        let purge = SubjectCommand::ExecutePurge {
            subject: subject(1),
            result: executed(),
        };
        given(ettlingen(), h.clone())
            .at(due - Duration::seconds(1))
            .when(purge.clone())
            .then_error(DomainError::PurgeNotDue("2027-02-24".into()));
        given(ettlingen(), h.clone())
            .at(due)
            .when(SubjectCommand::VerifyDeletion {
                subject: subject(1),
                checks: vec![],
            })
            .then_error(DomainError::NotYetPurged);
        given(ettlingen(), h.clone())
            .at(due)
            .when(purge.clone())
            .then_expect(vec![(subject(1).stream(), executed().into())]);
        let mut purged = h;
        purged.push((subject(1).stream(), executed().into()));
        given(ettlingen(), purged.clone())
            .at(due)
            .when(purge)
            .then_error(DomainError::AlreadyPurged);
        let verify = SubjectCommand::VerifyDeletion {
            subject: subject(1),
            checks: vec!["key gone".into()],
        };
        given(ettlingen(), purged.clone())
            .at(due)
            .when(verify.clone())
            .then_expect(vec![(
                subject(1).stream(),
                DeletionVerified {
                    checks: vec!["key gone".into()],
                }
                .into(),
            )]);
        purged.push((
            subject(1).stream(),
            DeletionVerified { checks: vec![] }.into(),
        ));
        given(ettlingen(), purged)
            .at(due)
            .when(verify)
            .then_nothing();
        given(ettlingen(), vec![])
            .when(SubjectCommand::ExecutePurge {
                subject: subject(5),
                result: executed(),
            })
            .then_error(DomainError::PurgeNotScheduled);
    }
}
