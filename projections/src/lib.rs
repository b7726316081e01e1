//! Read models for clerks, auditors, DPOs and the pilot statistics.
//!
//! A [`Projection`] is a pure fold: it names the documents an event touches and changes them.
//! The [`runner::Runner`] feeds it from the log in batches and commits each batch's changes
//! with the new checkpoint in one transaction of the read-model store.

use videoamt_core::domain::DomainEvent;
use videoamt_core::event::RecordedEvent;
use videoamt_core::readmodel::{DocKey, Docs};

pub mod audit;
pub mod runner;
pub mod waiting_room;

/// An event as projections see it: the envelope and the decoded domain event.
#[derive(Debug, Clone, Copy)]
pub struct Recorded<'a> {
    pub envelope: &'a RecordedEvent,
    pub event: &'a DomainEvent,
}

pub trait Projection: Send + Sync {
    fn name(&self) -> &'static str;

    /// The documents `event` reads or writes, given what is loaded so far. Asked again after
    /// each load until it names nothing new, so an index document can lead to the next one.
    fn keys(&self, event: Recorded<'_>, docs: &Docs) -> Vec<DocKey>;

    /// Folds the event into the documents.
    fn apply(&self, event: Recorded<'_>, docs: &mut Docs);
}

/// Every projection of the product.
pub fn all() -> Vec<std::sync::Arc<dyn Projection>> {
    vec![
        std::sync::Arc::new(audit::AuditTimeline),
        std::sync::Arc::new(waiting_room::WaitingRoom),
    ]
}
