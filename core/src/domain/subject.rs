//! `subject-{id}`: the data subject of an appointment and the life cycle of its erasure.
//!
//! Invariants: the purge is scheduled exactly once, `retention_months` calendar months after
//! the appointment's final state in the tenant's time zone; it runs only when due, exactly
//! once; verification follows the purge.

use time::OffsetDateTime;

use super::events::{FinalState, PurgeScheduled, SubjectKeyIssued};
use super::{DomainError, DomainEvent};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SubjectState {
    pub key: Option<SubjectKeyIssued>,
    pub scheduled: Option<PurgeScheduled>,
    pub purged: bool,
    pub verified: bool,
}

impl SubjectState {
    pub fn evolve(mut self, event: &DomainEvent) -> Self {
        match event {
            DomainEvent::SubjectKeyIssued(e) => self.key = Some(e.clone()),
            DomainEvent::PurgeScheduled(e) => self.scheduled = Some(e.clone()),
            DomainEvent::PurgeExecuted(_) => self.purged = true,
            DomainEvent::DeletionVerified(_) => self.verified = true,
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
