//! Which appointment an event belongs to.
//!
//! Appointment and audit streams carry the appointment in their name or payload; sessions,
//! forms, payments and subjects name it only in their first event (a form names its session,
//! which names the appointment). The runner works it out once per event, before any projection
//! folds, and hands it on in [`crate::Recorded::appointment`]: projections keep no index of
//! their own (ADR 0032).
//!
//! [`Owners`] remembers the owner of each such stream it has seen start. A stream that
//! started before this memory did (after a restart, or once the memory was cleared at its
//! bound) is looked up in the log itself: its first event says whose it is. An owner never
//! changes, so the memory is never stale, only incomplete.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use videoamt_core::domain::{AppointmentId, DomainEvent};
use videoamt_core::event::{RecordedEvent, StreamId};
use videoamt_core::store::{EventStore, StoreError};

/// Streams whose owner is kept before the memory starts over: about 100 bytes each.
const LIMIT: usize = 250_000;

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

/// Whether the event starts a stream that belongs to the appointment it names.
fn starts_owned_stream(event: &DomainEvent) -> bool {
    matches!(
        event,
        DomainEvent::SubjectKeyIssued(_)
            | DomainEvent::SessionOpened(_)
            | DomainEvent::PaymentRequested(_)
    )
}

/// Whether streams of this category can belong to an appointment through their first event.
fn may_be_owned(stream: &StreamId) -> bool {
    matches!(
        stream.category(),
        "session" | "form" | "payment" | "subject"
    )
}

/// What an event alone says about its appointment.
enum Found {
    /// The appointment, or that there is none.
    Known(Option<AppointmentId>),
    /// The owner of this stream, once known.
    OwnerOf(StreamId),
}

fn found(envelope: &RecordedEvent, event: &DomainEvent) -> Found {
    let stream = &envelope.stream_id;
    if let Some(id) = stream.as_str().strip_prefix("appointment-") {
        return Found::Known(uuid::Uuid::parse_str(id).ok().map(AppointmentId));
    }
    if let Some(id) = named(event) {
        return Found::Known(Some(id));
    }
    match event {
        DomainEvent::FormStarted(e) => Found::OwnerOf(e.session.stream()),
        _ if may_be_owned(stream) => Found::OwnerOf(stream.clone()),
        _ => Found::Known(None),
    }
}

/// The owner a stream's first event gives it, or the stream whose owner it has (a form's
/// session).
fn first_event_owner(event: &DomainEvent) -> Found {
    match event {
        DomainEvent::FormStarted(e) => Found::OwnerOf(e.session.stream()),
        e if starts_owned_stream(e) => Found::Known(named(e)),
        _ => Found::Known(None),
    }
}

/// The owners of streams seen so far; shared by the clones of one runner.
#[derive(Debug, Default)]
pub(crate) struct Owners {
    known: Mutex<HashMap<StreamId, Option<AppointmentId>>>,
}

impl Owners {
    fn known(&self) -> std::sync::MutexGuard<'_, HashMap<StreamId, Option<AppointmentId>>> {
        // A panic while holding the lock leaves the map as it was: every entry is a fact.
        self.known.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The appointment of each event, in the order given; the log is asked for the first
    /// events of streams that started before this memory did.
    pub(crate) async fn resolve(
        &self,
        events: &dyn EventStore,
        page: &[(&RecordedEvent, &DomainEvent)],
    ) -> Result<Vec<Option<AppointmentId>>, StoreError> {
        // Twice at most: once to learn which streams are unknown, once after looking them up.
        for _ in 0..2 {
            let missing = match self.pass(page) {
                Ok(owners) => return Ok(owners),
                Err(missing) => missing,
            };
            self.look_up(events, missing).await?;
        }
        // Every stream was looked up; what is still unknown has no owner.
        Ok(self.pass(page).unwrap_or_else(|_| vec![None; page.len()]))
    }

    /// Resolves the page in log order, learning owners from the first events it holds; the
    /// streams it knows nothing of, if any.
    fn pass(
        &self,
        page: &[(&RecordedEvent, &DomainEvent)],
    ) -> Result<Vec<Option<AppointmentId>>, Vec<StreamId>> {
        let mut known = self.known();
        if known.len() > LIMIT {
            known.clear();
        }
        let mut owners = Vec::with_capacity(page.len());
        let mut missing = HashSet::new();
        for (envelope, event) in page {
            let stream = &envelope.stream_id;
            let owner = match found(envelope, event) {
                Found::Known(owner) => owner,
                Found::OwnerOf(of) => match known.get(&of) {
                    Some(owner) => *owner,
                    None => {
                        missing.insert(of);
                        None
                    }
                },
            };
            let starts = envelope.stream_version == 0 && may_be_owned(stream);
            if starts && !known.contains_key(stream) {
                // Only an owner found is a fact; an unknown session leaves the form unknown.
                let learnt = match first_event_owner(event) {
                    Found::Known(owner) => Some(owner),
                    Found::OwnerOf(of) => known.get(&of).copied(),
                };
                if let Some(owner) = learnt {
                    known.insert(stream.clone(), owner);
                }
            }
            owners.push(owner);
        }
        if missing.is_empty() {
            Ok(owners)
        } else {
            Err(missing.into_iter().collect())
        }
    }

    /// Reads the first events of `streams` and remembers their owners, following a form to its
    /// session.
    async fn look_up(
        &self,
        events: &dyn EventStore,
        mut streams: Vec<StreamId>,
    ) -> Result<(), StoreError> {
        let mut via: Vec<(StreamId, StreamId)> = Vec::new();
        for _ in 0..2 {
            if streams.is_empty() {
                break;
            }
            streams.sort_unstable();
            let read = events.read_streams(&streams).await?;
            let mut known = self.known();
            for (stream, history) in streams.iter().zip(read) {
                let first = history.first().and_then(|e| {
                    DomainEvent::from_payload(e.event_type.as_str(), e.schema_version, &e.payload)
                        .ok()
                });
                match first.as_ref().map(first_event_owner) {
                    Some(Found::Known(owner)) => {
                        known.insert(stream.clone(), owner);
                    }
                    Some(Found::OwnerOf(session)) => via.push((stream.clone(), session)),
                    None => {
                        known.insert(stream.clone(), None);
                    }
                }
            }
            streams = via
                .iter()
                .map(|(_, session)| session.clone())
                .filter(|s| !known.contains_key(s))
                .collect();
        }
        let mut known = self.known();
        for (form, session) in via {
            let owner = known.get(&session).copied().flatten();
            known.insert(form, owner);
        }
        Ok(())
    }
}
