//! Many data subjects whose retention has run out, for the purge crash test and the retention
//! benchmark: each one a cancelled online booking with sealed contact data, a purge timer that
//! is already due, and one encrypted blob. And bookings whose reminder or no-show timer is
//! due, for the test that two servers fire each timer once.
//!
//! Going through the command bus would need a free calendar place per subject; these are
//! written straight to the log instead (the same events the bus would write, sealed with a
//! real key per subject), in batches.

use std::sync::Arc;

use futures::StreamExt as _;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;
use videoamt_core::blobs::{BlobName, BlobStore};
use videoamt_core::domain::events::{
    AppointmentBooked, AppointmentCancelled, CancelledBy, Contact, FinalState, PurgeScheduled,
    SubjectKeyIssued,
};
use videoamt_core::domain::{AppointmentId, DomainEvent, Personal, SubjectId, encode};
use videoamt_core::event::{Actor, EventMetadata, NewEvent, StreamId, TenantId};
use videoamt_core::keys::KeyStore;
use videoamt_core::store::{AppendBatch, EventStore, ExpectedVersion, StreamAppend};
use videoamt_core::tenant::BookingChannel;

use crate::generate::GenerateError;

/// Subjects written per append.
const PER_BATCH: usize = 200;
/// Keys issued and values sealed at the same time.
const PARALLEL: usize = 16;

/// Writes `count` subjects of Ettlingen whose purge was due at `due`; returns their ids.
/// `progress` hears how many are written so far.
pub async fn due_subjects(
    store: &Arc<dyn EventStore>,
    keys: &Arc<dyn KeyStore>,
    blobs: &Arc<dyn BlobStore>,
    count: usize,
    due: OffsetDateTime,
    mut progress: impl FnMut(usize),
) -> Result<Vec<SubjectId>, GenerateError> {
    let tenant = TenantId::parse("ettlingen")?;
    let final_at = due - Duration::days(92);
    let start = final_at + Duration::days(7);
    let mut subjects = Vec::with_capacity(count);
    let mut written = 0;
    while written < count {
        let n = PER_BATCH.min(count - written);
        let made: Vec<Result<(SubjectId, Vec<StreamAppend>), GenerateError>> =
            futures::stream::iter(0..n)
                .map(|_| {
                    let (keys, blobs, tenant) = (keys.clone(), blobs.clone(), tenant.clone());
                    async move {
                        one(keys.as_ref(), blobs.as_ref(), &tenant, final_at, start, due).await
                    }
                })
                .buffer_unordered(PARALLEL)
                .collect()
                .await;
        let mut streams = Vec::new();
        for m in made {
            let (subject, s) = m?;
            subjects.push(subject);
            streams.extend(s);
        }
        store.append(AppendBatch::new(streams)?).await?;
        written += n;
        progress(written);
    }
    Ok(subjects)
}

fn new_event(
    event: &DomainEvent,
    tenant: &TenantId,
    correlation: Uuid,
    at: OffsetDateTime,
) -> Result<NewEvent, GenerateError> {
    let (event_type, version, payload) = encode(event)?;
    let meta = EventMetadata::new(
        tenant.clone(),
        correlation,
        correlation,
        Actor::system("due-subjects"),
        at,
    );
    Ok(NewEvent::new(
        Uuid::now_v7(),
        event_type,
        version,
        meta,
        payload,
    )?)
}

/// `subject`'s contact data, sealed under its key: a name, a mail address and a phone number,
/// each with the subject's id in it.
async fn sealed_contact(keys: &dyn KeyStore, subject: SubjectId) -> Result<Contact, GenerateError> {
    let failed = |e: &dyn std::fmt::Display| crate::generate::template_error(e.to_string());
    let tag = subject.0.simple();
    let plain = [
        format!("Person {tag}"),
        format!("p{tag}@example.org"),
        format!("0170 {tag}"),
    ];
    let texts: Vec<&[u8]> = plain.iter().map(|p| p.as_bytes()).collect();
    let mut sealed = keys
        .seal_all(subject, &texts)
        .await
        .map_err(|e| failed(&e))?
        .into_iter()
        .map(Personal::Sealed);
    let mut next = || {
        sealed
            .next()
            .ok_or_else(|| failed(&"sealing gave too few values"))
    };
    Ok(Contact {
        name: next()?,
        email: next()?,
        phone: Some(next()?),
    })
}

/// Bookings of Ettlingen whose timers are due at `now`, written straight to the log as the bus
/// would have written them earlier: `count` booked three days before `now` for two hours after
/// it, whose reminder (a day before) is due, and `count` booked 90 minutes before `now` for an
/// hour before it, whose no-show check (a quarter of an hour after the start) is due and which
/// have no reminder. The ids of the first, then of the second.
pub async fn due_timers(
    store: &Arc<dyn EventStore>,
    keys: &Arc<dyn KeyStore>,
    count: usize,
    now: OffsetDateTime,
) -> Result<(Vec<AppointmentId>, Vec<AppointmentId>), GenerateError> {
    let tenant = TenantId::parse("ettlingen")?;
    let failed = |e: &dyn std::fmt::Display| crate::generate::template_error(e.to_string());
    let mut made = (Vec::new(), Vec::new());
    let mut streams = Vec::new();
    for (booked, start, ids) in [
        (
            now - Duration::days(3),
            now + Duration::hours(2),
            &mut made.0,
        ),
        (
            now - Duration::minutes(90),
            now - Duration::hours(1),
            &mut made.1,
        ),
    ] {
        for _ in 0..count {
            let subject = SubjectId(Uuid::now_v7());
            let appointment = AppointmentId(Uuid::now_v7());
            keys.issue(subject).await.map_err(|e| failed(&e))?;
            let contact = sealed_contact(keys.as_ref(), subject).await?;
            let ev = |e: DomainEvent| new_event(&e, &tenant, appointment.0, booked);
            let appointment_events = vec![ev(booking(appointment, subject, start, contact))?];
            let subject_events = vec![ev(SubjectKeyIssued {
                subject,
                appointment,
            }
            .into())?];
            streams.push(StreamAppend {
                stream: appointment.stream(),
                expected: ExpectedVersion::NoStream,
                events: appointment_events,
            });
            streams.push(StreamAppend {
                stream: subject.stream(),
                expected: ExpectedVersion::NoStream,
                events: subject_events,
            });
            ids.push(appointment);
        }
    }
    store.append(AppendBatch::new(streams)?).await?;
    Ok(made)
}

/// A Meldebescheinigung in the Bürgerbüro at `start`, booked online. Without terms (as in a
/// version 1 booking): nothing is decided under them here, so none are recorded.
fn booking(
    appointment: AppointmentId,
    subject: SubjectId,
    start: OffsetDateTime,
    contact: Contact,
) -> DomainEvent {
    AppointmentBooked {
        appointment,
        subject,
        department: "buergerbuero".into(),
        services: vec!["meldebescheinigung".into()],
        start,
        end: start + Duration::minutes(15),
        channel: BookingChannel::Online,
        invited_by: None,
        contact,
        terms: None,
    }
    .into()
}

async fn one(
    keys: &dyn KeyStore,
    blobs: &dyn BlobStore,
    tenant: &TenantId,
    final_at: OffsetDateTime,
    start: OffsetDateTime,
    due: OffsetDateTime,
) -> Result<(SubjectId, Vec<StreamAppend>), GenerateError> {
    let subject = SubjectId(Uuid::now_v7());
    let appointment = AppointmentId(Uuid::now_v7());
    let failed = |e: &dyn std::fmt::Display| crate::generate::template_error(e.to_string());
    keys.issue(subject).await.map_err(|e| failed(&e))?;
    let contact = sealed_contact(keys, subject).await?;
    let name = BlobName::parse("nachweis.pdf").map_err(|e| failed(&e))?;
    blobs
        .put(
            subject,
            &name,
            format!("%PDF-1.7 Nachweis {}", subject.0.simple()).as_bytes(),
        )
        .await
        .map_err(|e| failed(&e))?;
    let correlation = Uuid::now_v7();
    let booked = final_at - Duration::days(1);
    let ev = |e: DomainEvent, at| new_event(&e, tenant, correlation, at);
    let appointment_events = vec![
        ev(booking(appointment, subject, start, contact), booked)?,
        ev(
            AppointmentCancelled {
                by: CancelledBy::CitizenByLink,
                reason: None,
            }
            .into(),
            final_at,
        )?,
    ];
    let subject_events = vec![
        ev(
            SubjectKeyIssued {
                subject,
                appointment,
            }
            .into(),
            booked,
        )?,
        ev(
            PurgeScheduled {
                final_state: FinalState::Cancelled,
                final_at,
                due,
            }
            .into(),
            final_at,
        )?,
    ];
    let stream = |s: StreamId, events| StreamAppend {
        stream: s,
        expected: ExpectedVersion::NoStream,
        events,
    };
    Ok((
        subject,
        vec![
            stream(appointment.stream(), appointment_events),
            stream(subject.stream(), subject_events),
        ],
    ))
}
