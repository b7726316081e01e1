//! Which appointment an event belongs to.
//!
//! Appointment and audit streams carry the appointment in their name or payload; sessions,
//! forms, payments and subjects name it only in their first event. Each projection that works
//! per appointment keeps its own index (`owner` documents, one per such stream), written once
//! when the stream starts.

use videoamt_core::domain::{AppointmentId, DomainEvent};
use videoamt_core::readmodel::{DocKey, Docs};

use crate::Recorded;

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Owner {
    appointment: AppointmentId,
}

fn owner_key(stream: &str) -> DocKey {
    DocKey::new("owner", stream)
}

/// The appointment named in the payload: calendar, first events of owned streams, audit reads.
fn named(event: &DomainEvent) -> Option<AppointmentId> {
    match event {
        DomainEvent::AppointmentBooked(e) => Some(e.appointment),
        DomainEvent::SlotsReserved(e) => Some(e.appointment),
        DomainEvent::SlotsReleased(e) => Some(e.appointment),
        DomainEvent::SubjectKeyIssued(e) => Some(e.appointment),
        DomainEvent::SessionOpened(e) => Some(e.appointment),
        DomainEvent::PaymentRequested(e) => Some(e.appointment),
        DomainEvent::AuditRecordViewed(e) => Some(e.appointment),
        _ => None,
    }
}

/// The index documents needed to find the event's appointment.
pub(crate) fn keys(event: Recorded<'_>) -> Vec<DocKey> {
    let stream = event.envelope.stream_id.as_str();
    if stream.starts_with("appointment-") || named(event.event).is_some() {
        return vec![];
    }
    match event.event {
        // A form belongs to its session's appointment.
        DomainEvent::FormStarted(e) => vec![owner_key(e.session.stream().as_str())],
        _ => vec![owner_key(stream)],
    }
}

/// The event's appointment, once [`keys`] are loaded; `None` for events of no appointment.
pub(crate) fn appointment(event: Recorded<'_>, docs: &Docs) -> Option<AppointmentId> {
    let stream = event.envelope.stream_id.as_str();
    if let Some(id) = stream.strip_prefix("appointment-") {
        return uuid::Uuid::parse_str(id).ok().map(AppointmentId);
    }
    if let Some(id) = named(event.event) {
        return Some(id);
    }
    let index = match event.event {
        DomainEvent::FormStarted(e) => owner_key(e.session.stream().as_str()),
        _ => owner_key(stream),
    };
    docs.get::<Owner>(&index).map(|o| o.appointment)
}

/// Records the owner of a stream at its first event, so later events can find it.
pub(crate) fn remember(event: Recorded<'_>, docs: &mut Docs, appointment: AppointmentId) {
    let starts_owned_stream = matches!(
        event.event,
        DomainEvent::SubjectKeyIssued(_)
            | DomainEvent::SessionOpened(_)
            | DomainEvent::PaymentRequested(_)
            | DomainEvent::FormStarted(_)
    );
    if starts_owned_stream {
        docs.put(
            owner_key(event.envelope.stream_id.as_str()),
            Owner { appointment },
        );
    }
}
