//! The bulk generator: copies of real visits, consistent per copy, every event readable.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use videoamt_adapters::store::AdminStore;
use videoamt_adapters::store::sqlite::SqliteStore;
use videoamt_core::domain::DomainEvent;
use videoamt_core::store::EventStore;
use videoamt_scenarios::generate::{BulkSpec, bulk_log};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_log_writes_whole_readable_visits_and_one_big_record() {
    let dir = tempfile::tempdir().expect("temp dir");
    let sqlite = SqliteStore::open(dir.path().join("events.db"))
        .await
        .expect("open store");
    let store: Arc<dyn EventStore> = Arc::new(sqlite.clone());
    let spec = BulkSpec {
        target_events: 20_000,
        big_record_events: 300,
    };
    let mut reported = Vec::new();
    let log = bulk_log(store.clone(), &spec, |n| reported.push(n))
        .await
        .expect("generated");

    assert!(log.events >= spec.target_events);
    assert_eq!(log.events, store.last_position().await.expect("head"));
    assert_eq!(reported.last().copied(), Some(log.events));
    assert!(reported.windows(2).all(|w| w[0] < w[1]));

    // Every event decodes; collect the streams of each appointment's record on the way.
    let big = log.big_appointment;
    let mut appointment_streams = HashSet::new();
    let mut per_stream: HashMap<String, u64> = HashMap::new();
    let mut big_streams: HashSet<String> = HashSet::from([big.stream().to_string()]);
    let mut tenants = HashSet::new();
    let mut after = 0;
    let mut read = 0;
    loop {
        let page = store.read_all(after, 1_000).await.expect("read");
        let Some(last) = page.last() else { break };
        after = last.global_position;
        for recorded in page {
            read += 1;
            let event = DomainEvent::from_payload(
                recorded.event_type.as_str(),
                recorded.schema_version,
                &recorded.payload,
            )
            .unwrap_or_else(|e| panic!("event {} does not decode: {e}", recorded.global_position));
            let stream = recorded.stream_id.to_string();
            if recorded.stream_id.category() == "appointment" {
                appointment_streams.insert(stream.clone());
            }
            tenants.insert(recorded.meta.tenant.clone());
            *per_stream.entry(stream.clone()).or_default() += 1;
            // The big appointment's owned streams start with an event naming it or its session.
            let owned_by_big = match &event {
                DomainEvent::AppointmentBooked(e) if e.appointment == big => {
                    big_streams.insert(e.subject.stream().to_string());
                    false
                }
                DomainEvent::SessionOpened(e) => e.appointment == big,
                DomainEvent::PaymentRequested(e) => e.appointment == big,
                DomainEvent::SubjectKeyIssued(e) => e.appointment == big,
                DomainEvent::FormStarted(e) => {
                    big_streams.contains(&e.session.stream().to_string())
                }
                _ => false,
            };
            if owned_by_big {
                big_streams.insert(stream);
            }
        }
    }
    assert_eq!(read, log.events);
    assert_eq!(appointment_streams.len(), log.appointments.len());
    let distinct: HashSet<_> = log.appointments.iter().collect();
    assert_eq!(distinct.len(), log.appointments.len());
    assert!(
        appointment_streams.contains(&big.stream().to_string()),
        "the big appointment is in the log"
    );
    assert_eq!(tenants.len(), 2, "both tenants' visits are copied");

    assert_eq!(
        big_streams.len(),
        5,
        "appointment, subject, session, form and payment"
    );
    let big_record: u64 = big_streams.iter().map(|s| per_stream[s]).sum();
    assert!(big_record >= 250, "the big record has {big_record} events");
    // Positions, versions and hashes as the store's own check wants them.
    assert!(sqlite.verify().await.expect("verify").is_ok());
}
