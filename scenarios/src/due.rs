//! Many data subjects whose retention has run out, for the purge crash test and the retention
//! benchmark: each one a cancelled online booking with sealed contact data, a purge timer that
//! is already due, and one encrypted blob.
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
    let contact = Contact {
        name: next()?,
        email: next()?,
        phone: Some(next()?),
    };
    let name = BlobName::parse("nachweis.pdf").map_err(|e| failed(&e))?;
    blobs
        .put(
            subject,
            &name,
            format!("%PDF-1.7 Nachweis {tag}").as_bytes(),
        )
        .await
        .map_err(|e| failed(&e))?;
    let correlation = Uuid::now_v7();
    let booked = final_at - Duration::days(1);
    let ev = |e: DomainEvent, at| new_event(&e, tenant, correlation, at);
    let appointment_events = vec![
        ev(
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
                // Cancelled right away: nothing is decided under these terms, so none are
                // recorded (as in a version 1 booking).
                terms: None,
            }
            .into(),
            booked,
        )?,
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
