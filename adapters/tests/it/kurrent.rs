//! The `EventStore` contract on KurrentDB, run only when `VIDEOAMT_KURRENTDB_URL` names a
//! server (e.g. `kurrentdb://localhost:2113?tls=false`); otherwise every test says
//! "skipped" and passes without having checked anything.
//!
//! These are the contract suite's `EventStore` scenarios (`contract.rs`), not its functions:
//! those open an `AdminStore` on a fresh, empty database and expect the gap-free positions
//! `1..=n`. A KurrentDB server cannot be emptied per test and its commit positions have gaps
//! (ADR 0004), so each test here writes under a namespace of its own (an empty log as far as
//! the store can see) and checks positions by order, not by value. Scenarios that need
//! several streams in one append check the refusal instead.

use std::collections::HashSet;
use std::sync::Arc;

use futures::StreamExt as _;
use uuid::Uuid;
use videoamt_adapters::store::kurrentdb::KurrentStore;
use videoamt_core::event::{GlobalPosition, Payload, RecordedEvent};
use videoamt_core::store::{AppendError, EventStore, ExpectedVersion};

use crate::support::{event, event_with, multi, single, stream};

/// A store under a namespace no other test or run uses, or `None` (skipped) without a server.
fn fresh() -> Option<(String, String)> {
    let Ok(url) = std::env::var("VIDEOAMT_KURRENTDB_URL") else {
        eprintln!("skipped: VIDEOAMT_KURRENTDB_URL is not set");
        return None;
    };
    Some((url, format!("videoamt-test-{}", Uuid::now_v7().simple())))
}

fn open(url: &str, namespace: &str) -> Arc<dyn EventStore> {
    Arc::new(KurrentStore::connect(url, namespace).expect("connect to KurrentDB"))
}

fn assert_increasing(events: &[RecordedEvent]) {
    for pair in events.windows(2) {
        assert!(
            pair[0].global_position < pair[1].global_position,
            "positions must increase: {} then {}",
            pair[0].global_position,
            pair[1].global_position
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conflict_names_the_stream() {
    let Some((url, ns)) = fresh() else { return };
    let store = open(&url, &ns);
    assert_eq!(store.last_position().await.expect("head"), 0);
    let first = store
        .append(single(
            "appointment-1",
            ExpectedVersion::NoStream,
            vec![event(1), event(2)],
        ))
        .await
        .expect("first append");
    assert_eq!(first.stream_versions, [(stream("appointment-1"), 1)]);

    match store
        .append(single(
            "appointment-1",
            ExpectedVersion::Exact(0),
            vec![event(3)],
        ))
        .await
    {
        Err(AppendError::Conflict {
            stream: s,
            expected,
            actual,
        }) => {
            assert_eq!(s.as_str(), "appointment-1");
            assert_eq!(expected, ExpectedVersion::Exact(0));
            assert_eq!(actual, Some(1));
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    let again = store
        .append(single(
            "appointment-1",
            ExpectedVersion::NoStream,
            vec![event(4)],
        ))
        .await;
    assert!(
        matches!(
            again,
            Err(AppendError::Conflict {
                actual: Some(1),
                ..
            })
        ),
        "{again:?}"
    );
    let missing = store
        .append(single(
            "appointment-2",
            ExpectedVersion::Exact(0),
            vec![event(5)],
        ))
        .await;
    assert!(
        matches!(missing, Err(AppendError::Conflict { actual: None, .. })),
        "{missing:?}"
    );
    assert_eq!(
        store.last_position().await.expect("head"),
        first.last_position()
    );

    let fine = store
        .append(single(
            "appointment-1",
            ExpectedVersion::Exact(1),
            vec![event(6)],
        ))
        .await
        .expect("a current expectation is accepted");
    assert!(fine.positions[0] > first.last_position());
    assert_eq!(fine.stream_versions, [(stream("appointment-1"), 2)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_expectations_have_one_winner() {
    let Some((url, ns)) = fresh() else { return };
    let store = open(&url, &ns);
    let attempts = (0..20).map(|n| {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .append(single(
                    "slot-x-2026-11-21-0900",
                    ExpectedVersion::NoStream,
                    vec![event(n)],
                ))
                .await
        })
    });
    let results = futures::future::join_all(attempts).await;
    let won = results.iter().filter(|r| matches!(r, Ok(Ok(_)))).count();
    let lost = results
        .iter()
        .filter(|r| matches!(r, Ok(Err(AppendError::Conflict { .. }))))
        .count();
    assert_eq!((won, lost), (1, 19));
    assert_eq!(store.read_all(0, 100).await.expect("read").len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn multi_stream_batches_are_refused_and_nothing_is_written() {
    let Some((url, ns)) = fresh() else { return };
    let store = open(&url, &ns);
    let refused = store
        .append(multi(vec![
            ("slot-x-1", ExpectedVersion::NoStream, vec![event(1)]),
            ("appointment-1", ExpectedVersion::NoStream, vec![event(2)]),
        ]))
        .await;
    assert!(
        matches!(&refused, Err(AppendError::Store(e)) if e.to_string().contains("several streams")),
        "{refused:?}"
    );
    assert_eq!(store.last_position().await.expect("head"), 0);
    assert!(
        store
            .read_stream(&stream("slot-x-1"), 0)
            .await
            .expect("read")
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn retry_is_idempotent() {
    let Some((url, ns)) = fresh() else { return };
    let store = open(&url, &ns);
    for expected in [ExpectedVersion::NoStream, ExpectedVersion::Any] {
        let name = match expected {
            ExpectedVersion::NoStream => "appointment-1",
            _ => "appointment-2",
        };
        let batch = single(name, expected, vec![event(2), event(3)]);
        let first = store.append(batch.clone()).await.expect("first append");
        store
            .append(single(name, ExpectedVersion::Exact(1), vec![event(4)]))
            .await
            .expect("the stream moves on");
        let retry = store
            .append(batch.clone())
            .await
            .expect("a retry is not a conflict");
        assert_eq!(retry, first, "{expected:?}");
        assert_eq!(
            store
                .read_stream(&stream(name), 0)
                .await
                .expect("read")
                .len(),
            3,
            "{expected:?}: the retry wrote nothing"
        );

        let (_, original) = batch.events().next().expect("non-empty");
        let mut changed = original.clone();
        changed.payload = Payload::from_json(r#"{"n": 999}"#).expect("valid");
        let reused = store
            .append(single(name, ExpectedVersion::Any, vec![changed]))
            .await;
        assert!(
            matches!(reused, Err(AppendError::EventIdReused { event_id }) if event_id == original.event_id),
            "{reused:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reads_are_ordered_complete_and_paged() {
    let Some((url, ns)) = fresh() else { return };
    let store = open(&url, &ns);
    let mut appended = Vec::new();
    for round in 0..5u64 {
        for s in ["slot-a-1", "appointment-7"] {
            let e = event_with(
                "SlotsReserved",
                serde_json::json!({ "round": round, "ü": "ß€" }),
            );
            appended.push(e.event_id);
            store
                .append(single(s, ExpectedVersion::Any, vec![e]))
                .await
                .expect("append");
        }
    }
    let all = store.read_all(0, 1_000).await.expect("read all");
    assert_eq!(all.iter().map(|e| e.event_id).collect::<Vec<_>>(), appended);
    assert_increasing(&all);
    assert_eq!(
        store.last_position().await.expect("head"),
        all.last().expect("events").global_position
    );

    let mut paged = Vec::new();
    let mut after: GlobalPosition = 0;
    loop {
        let page = store.read_all(after, 3).await.expect("page");
        if page.is_empty() {
            break;
        }
        assert!(page.len() <= 3);
        after = page.last().expect("page").global_position;
        paged.extend(page);
    }
    assert_eq!(paged, all);

    let slot = store
        .read_stream(&stream("slot-a-1"), 2)
        .await
        .expect("read from version 2");
    assert_eq!(
        slot.iter().map(|e| e.stream_version).collect::<Vec<_>>(),
        [2, 3, 4]
    );
    for e in &slot {
        let same = all
            .iter()
            .find(|a| a.event_id == e.event_id)
            .expect("in $all");
        assert_eq!(same, e, "a stream read and $all agree, position included");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reads_by_positions_and_of_several_streams() {
    let Some((url, ns)) = fresh() else { return };
    let store = open(&url, &ns);
    for n in 0..4 {
        let s = if n % 2 == 0 { "slot-a-1" } else { "slot-b-1" };
        store
            .append(single(s, ExpectedVersion::Any, vec![event(n)]))
            .await
            .expect("append");
    }
    let all = store.read_all(0, 100).await.expect("read");
    let wanted = [
        all[3].global_position,
        all[1].global_position,
        all[3].global_position,
        all[3].global_position + 1_000_000,
    ];
    let found = store.read_positions(&wanted).await.expect("by position");
    assert_eq!(found, vec![all[1].clone(), all[3].clone()]);

    let several = store
        .read_streams(&[
            stream("slot-b-1"),
            stream("slot-none-1"),
            stream("slot-a-1"),
        ])
        .await
        .expect("several");
    assert_eq!(several[0], vec![all[1].clone(), all[3].clone()]);
    assert!(several[1].is_empty());
    assert_eq!(several[2], vec![all[0].clone(), all[2].clone()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn live_subscriber_misses_nothing() {
    const WRITERS: u64 = 8;
    const EVENTS_PER_WRITER: u64 = 200;
    let total = WRITERS * EVENTS_PER_WRITER;
    let Some((url, ns)) = fresh() else { return };
    let reader = open(&url, &ns);
    let mut subscription = reader.subscribe(0);
    let collector = tokio::spawn(async move {
        let mut seen = Vec::with_capacity(total as usize);
        while (seen.len() as u64) < total {
            let e = subscription
                .next()
                .await
                .expect("subscriptions do not end")
                .expect("read");
            seen.push((e.global_position, e.event_id));
        }
        seen
    });
    let writers = (0..WRITERS).map(|w| {
        // A client of its own per writer, as separate processes would have.
        let store = open(&url, &ns);
        tokio::spawn(async move {
            let s = format!("writer-{w}");
            let mut ids = Vec::new();
            let mut written = 0;
            while written < EVENTS_PER_WRITER {
                let n = (1 + (written % 4)).min(EVENTS_PER_WRITER - written);
                let events: Vec<_> = (0..n).map(|i| event(written + i)).collect();
                ids.extend(events.iter().map(|e| e.event_id));
                store
                    .append(single(&s, ExpectedVersion::Any, events))
                    .await
                    .expect("append under contention");
                written += n;
            }
            ids
        })
    });
    let mut written = HashSet::new();
    for ids in futures::future::join_all(writers).await {
        written.extend(ids.expect("writer"));
    }
    let seen = tokio::time::timeout(std::time::Duration::from_secs(60), collector)
        .await
        .expect("the subscriber sees every event")
        .expect("collector");
    assert!(
        seen.windows(2).all(|p| p[0].0 < p[1].0),
        "in order, once each"
    );
    assert_eq!(seen.iter().map(|s| s.1).collect::<HashSet<_>>(), written);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn subscription_resumes_from_checkpoint() {
    let Some((url, ns)) = fresh() else { return };
    let store = open(&url, &ns);
    for n in 0..6 {
        store
            .append(single("slot-a-1", ExpectedVersion::Any, vec![event(n)]))
            .await
            .expect("append");
    }
    let all = store.read_all(0, 100).await.expect("read");
    let checkpoint = all[2].global_position;
    let mut resumed = store.subscribe(checkpoint);
    let mut got = Vec::new();
    while got.len() < 3 {
        got.push(resumed.next().await.expect("open").expect("event"));
    }
    assert_eq!(got, all[3..].to_vec());
    let later = store
        .append(single(
            "slot-a-1",
            ExpectedVersion::Exact(5),
            vec![event(9)],
        ))
        .await
        .expect("append");
    let live = tokio::time::timeout(std::time::Duration::from_secs(10), resumed.next())
        .await
        .expect("a live event arrives")
        .expect("open")
        .expect("event");
    assert_eq!(live.global_position, later.positions[0]);
}
