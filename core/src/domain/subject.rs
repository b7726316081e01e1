//! `subject-{id}`: the data subject of an appointment and the life cycle of its erasure.
//!
//! Invariants: the purge is scheduled exactly once, `retention_months` calendar months after
//! the appointment's final state in the tenant's time zone; it runs only when due, exactly
//! once; verification follows the purge.

use time::OffsetDateTime;

use super::appointment::{AppointmentState, Status};
use super::events::{FinalState, PurgeBlocked, PurgeScheduled, SubjectKeyIssued};
use super::session::SessionState;
use super::{DomainError, DomainEvent};
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

#[cfg(test)]
mod tests {
    use time::Duration;
    use time::macros::datetime;

    use super::*;
    use crate::domain::appointment::tests::{TUE_9, appointment, booked, booking, subject};
    use crate::domain::command::Command;
    use crate::domain::gwt::{ettlingen, given, stuttgart};

    fn executed() -> PurgeExecuted {
        PurgeExecuted {
            keys_destroyed: 1,
            blobs_deleted: 2,
            outbox_items_scrubbed: 1,
        }
    }

    use crate::domain::events::{DeletionVerified, PurgeExecuted};

    #[test]
    fn the_purge_is_due_retention_calendar_months_after_the_final_state() {
        let end = datetime!(2026-08-31 12:30 UTC); // 14:30 in Germany (summer time)
        let schedule = Command::SchedulePurge {
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
            Command::SchedulePurge {
                appointment: appointment(1),
                final_state: FinalState::NoShow,
                final_at: end,
            },
        );
        let due = ettlingen().add_months(end, 3);
        let purge = Command::ExecutePurge {
            subject: subject(1),
            result: executed(),
        };
        given(ettlingen(), h.clone())
            .at(due - Duration::seconds(1))
            .when(purge.clone())
            .then_error(DomainError::PurgeNotDue("2027-02-24".into()));
        given(ettlingen(), h.clone())
            .at(due)
            .when(Command::VerifyDeletion {
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
        let verify = Command::VerifyDeletion {
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
            .when(Command::ExecutePurge {
                subject: subject(5),
                result: executed(),
            })
            .then_error(DomainError::PurgeNotScheduled);
    }
}
