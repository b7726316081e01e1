//! An in-memory log for driving commands in tests: it loads streams in rounds like the
//! command bus and appends accepted decisions.

use time::OffsetDateTime;
use videoamt_core::domain::command::Command;
use videoamt_core::domain::{Context, Decision, DomainError, DomainEvent};
use videoamt_core::event::StreamId;
use videoamt_core::tenant::Tenant;

#[derive(Debug, Default, Clone)]
pub(crate) struct MemoryLog {
    pub(crate) events: Vec<(StreamId, DomainEvent)>,
}

impl MemoryLog {
    pub(crate) fn stream(&self, stream: &StreamId) -> Vec<DomainEvent> {
        self.events
            .iter()
            .filter(|(s, _)| s == stream)
            .map(|(_, e)| e.clone())
            .collect()
    }

    pub(crate) fn execute(
        &mut self,
        tenant: &Tenant,
        now: OffsetDateTime,
        command: &Command,
    ) -> Result<Decision, DomainError> {
        let ctx = Context { tenant, now };
        let histories = command.load_with(&ctx, |stream| self.stream(stream));
        let decision = command.decide(&histories, &ctx)?;
        self.events.extend(decision.iter().cloned());
        Ok(decision)
    }
}
