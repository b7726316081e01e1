//! Read models for clerks, auditors, DPOs, admins and the pilot statistics.
//!
//! A [`Projection`] is a pure fold: it names the documents an event touches and changes them.
//! The [`runner::Runner`] feeds it from the log in batches and commits each batch's changes
//! with the new checkpoint in one transaction of the read-model store.

use videoamt_core::domain::DomainEvent;
use videoamt_core::event::RecordedEvent;
use videoamt_core::readmodel::{DocKey, Docs};

pub mod accounts;
pub mod audit;
pub mod detail;
pub mod memory;
mod owner;
pub mod retention;
pub mod runner;
pub mod schedule;
pub mod slots;
pub mod statistics;
pub mod timers;
pub mod waiting_room;

use std::sync::Arc;

use videoamt_core::event::TenantId;
use videoamt_core::tenant::Tenant;

/// An event as projections see it: the envelope, the decoded domain event, and the
/// appointment it belongs to, which the runner works out from the stream (see `owner`).
#[derive(Debug, Clone, Copy)]
pub struct Recorded<'a> {
    pub envelope: &'a RecordedEvent,
    pub event: &'a DomainEvent,
    pub appointment: Option<videoamt_core::domain::AppointmentId>,
}

pub trait Projection: Send + Sync {
    fn name(&self) -> &'static str;

    /// The documents `event` reads or writes, given what is loaded so far. Asked again after
    /// each load until it names nothing new, so an index document can lead to the next one.
    fn keys(&self, event: Recorded<'_>, docs: &Docs) -> Vec<DocKey>;

    /// Folds the event into the documents.
    fn apply(&self, event: Recorded<'_>, docs: &mut Docs);
}

/// Every projection of the product. Some need the tenants' time zones and clerks.
pub fn all(tenants: Arc<Vec<Tenant>>) -> Vec<Arc<dyn Projection>> {
    vec![
        Arc::new(accounts::Accounts),
        Arc::new(audit::AuditTimeline),
        Arc::new(waiting_room::WaitingRoom),
        Arc::new(slots::FreeSlots),
        Arc::new(schedule::ClerkSchedule::new(tenants.clone())),
        Arc::new(detail::Detail),
        Arc::new(retention::RetentionReport),
        Arc::new(statistics::PilotStatistics::new(tenants)),
        Arc::new(timers::DueTimers),
    ]
}

/// The projection called `name`.
pub fn named(tenants: Arc<Vec<Tenant>>, name: &str) -> Option<Arc<dyn Projection>> {
    all(tenants).into_iter().find(|p| p.name() == name)
}

pub(crate) fn tenant_of<'t>(tenants: &'t [Tenant], id: &TenantId) -> Option<&'t Tenant> {
    tenants.iter().find(|t| &t.id == id)
}
