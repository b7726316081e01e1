//! The event-store contract suite. Every backend runs exactly these tests, through the
//! `contract_suite!` macro at the bottom: only opening a fresh database and issuing raw SQL
//! differ per backend.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use videoamt_core::keys::Sealed;

use std::collections::HashSet;
use std::sync::Arc;

use futures::StreamExt;
use videoamt_adapters::store::AdminStore;
use videoamt_core::event::{InvalidInput, Payload, RecordedEvent, StreamId};
use videoamt_core::store::{AppendBatch, AppendError, ExpectedVersion};

use crate::support::{event, event_with, multi, single, stream};

/// A fresh, empty database of one backend.
#[async_trait::async_trait]
pub(crate) trait Backend: Send + Sync + Sized + 'static {
    /// The schema version a fresh database reaches: the backend's last migration.
    const SCHEMA_VERSION: u32;
    /// Creates a new empty database, or `None` where the backend is not reachable outside CI.
    async fn fresh() -> Option<Self>;
    /// Opens a new store handle on this database, as a separate process would.
    async fn open(&self) -> Arc<dyn AdminStore>;
    /// Runs SQL outside the Rust store code; `Err` carries the database's refusal.
    async fn raw_sql(&self, sql: &str) -> Result<u64, String>;
    /// Runs SQL as the application's database role, where the backend has one.
    async fn raw_sql_as_app_role(&self, sql: &str) -> Option<Result<u64, String>>;
    /// The backend's `TRUNCATE`, where it has one.
    fn truncate_sql(&self) -> Option<&'static str>;
    async fn drop_database(self);
}

pub(crate) async fn conflict_names_the_stream<B: Backend>(b: &B) {
    let store = b.open().await;
    store
        .append(single(
            "appointment-1",
            ExpectedVersion::NoStream,
            vec![event(1), event(2)],
        ))
        .await
        .expect("first append");

    let stale = store
        .append(single(
            "appointment-1",
            ExpectedVersion::Exact(0),
            vec![event(3)],
        ))
        .await;
    match stale {
        Err(AppendError::Conflict {
            stream,
            expected,
            actual,
        }) => {
            assert_eq!(stream.as_str(), "appointment-1");
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
    assert_eq!(store.last_position().await.expect("head"), 2);

    let fine = store
        .append(single(
            "appointment-1",
            ExpectedVersion::Exact(1),
            vec![event(6)],
        ))
        .await
        .expect("a current expectation is accepted");
    assert_eq!(fine.positions, [3]);
    assert_eq!(fine.stream_versions, [(stream("appointment-1"), 2)]);
}

pub(crate) async fn racing_expectations_have_one_winner<B: Backend>(b: &B) {
    let store = b.open().await;
    let attempts = (0..20).map(|n| {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .append(single(
                    "calendar-x-2026-11-21",
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
    assert_eq!(store.last_position().await.expect("head"), 1);
}

pub(crate) async fn multi_stream_append_is_atomic<B: Backend>(b: &B) {
    let store = b.open().await;
    store
        .append(single(
            "appointment-1",
            ExpectedVersion::NoStream,
            vec![event(1)],
        ))
        .await
        .expect("setup");

    let refused = store
        .append(multi(vec![
            (
                "calendar-buergerbuero-2026-11-21",
                ExpectedVersion::NoStream,
                vec![event(2), event(3)],
            ),
            ("appointment-1", ExpectedVersion::NoStream, vec![event(4)]),
        ]))
        .await;
    assert!(
        matches!(&refused, Err(AppendError::Conflict { stream, .. }) if stream.as_str() == "appointment-1"),
        "{refused:?}"
    );
    assert!(
        store
            .read_stream(&stream("calendar-buergerbuero-2026-11-21"), 0)
            .await
            .expect("read")
            .is_empty()
    );
    assert_eq!(
        store
            .read_stream(&stream("appointment-1"), 0)
            .await
            .expect("read")
            .len(),
        1
    );
    assert_eq!(store.last_position().await.expect("head"), 1);

    let booked = store
        .append(multi(vec![
            (
                "calendar-buergerbuero-2026-11-21",
                ExpectedVersion::NoStream,
                vec![event(2)],
            ),
            (
                "appointment-2",
                ExpectedVersion::NoStream,
                vec![event(3), event(4)],
            ),
        ]))
        .await
        .expect("both expectations hold");
    assert_eq!(booked.positions, [2, 3, 4]);
    assert_eq!(
        booked.stream_versions,
        [
            (stream("calendar-buergerbuero-2026-11-21"), 0),
            (stream("appointment-2"), 1)
        ]
    );
}

pub(crate) async fn retry_is_idempotent<B: Backend>(b: &B) {
    let store = b.open().await;
    let batch = multi(vec![
        ("calendar-x-1", ExpectedVersion::NoStream, vec![event(1)]),
        (
            "appointment-1",
            ExpectedVersion::NoStream,
            vec![event(2), event(3)],
        ),
    ]);
    let first = store.append(batch.clone()).await.expect("first append");
    store
        .append(single(
            "appointment-1",
            ExpectedVersion::Exact(1),
            vec![event(4)],
        ))
        .await
        .expect("the stream moves on");

    let retry = store
        .append(batch.clone())
        .await
        .expect("a retry is not a conflict");
    assert_eq!(retry, first);
    assert_eq!(retry.positions, [1, 2, 3]);
    assert_eq!(store.last_position().await.expect("head"), 4);

    let (_, original) = batch.events().next().expect("non-empty");
    let mut changed = original.clone();
    changed.payload = Payload::from_json(r#"{"n": 999}"#).expect("valid");
    let reused = store
        .append(single("calendar-x-1", ExpectedVersion::Any, vec![changed]))
        .await;
    assert!(
        matches!(reused, Err(AppendError::EventIdReused { event_id }) if event_id == original.event_id),
        "{reused:?}"
    );
    let mut elsewhere = original.clone();
    elsewhere.meta = crate::support::meta();
    let other_stream = store
        .append(single(
            "calendar-y-1",
            ExpectedVersion::Any,
            vec![elsewhere],
        ))
        .await;
    assert!(
        matches!(other_stream, Err(AppendError::EventIdReused { .. })),
        "{other_stream:?}"
    );
    assert_eq!(store.last_position().await.expect("head"), 4);
}

pub(crate) async fn reads_are_ordered_and_complete<B: Backend>(b: &B) {
    let store = b.open().await;
    let mut appended = Vec::new();
    for round in 0..5u64 {
        let a = vec![event_with(
            "SlotsReserved",
            serde_json::json!({ "round": round, "ü": "ß€" }),
        )];
        let c = vec![event(round * 10), event(round * 10 + 1)];
        let expected = if round == 0 {
            ExpectedVersion::NoStream
        } else {
            ExpectedVersion::Any
        };
        let batch = multi(vec![
            ("calendar-a-1", expected, a),
            ("appointment-c", expected, c),
        ]);
        appended.extend(batch.events().map(|(s, e)| (s.clone(), e.clone())));
        store.append(batch).await.expect("append");
    }

    let mut all = Vec::new();
    let mut after = 0;
    loop {
        let page = store.read_all(after, 4).await.expect("read_all");
        if page.is_empty() {
            break;
        }
        assert!(page.len() <= 4);
        after = page.last().expect("non-empty").global_position;
        all.extend(page);
    }
    let positions: Vec<u64> = all.iter().map(|e| e.global_position).collect();
    assert_eq!(positions, (1..=15).collect::<Vec<_>>());
    for (read, (s, written)) in all.iter().zip(&appended) {
        assert_eq!(&read.stream_id, s);
        assert_eq!(read.event_id, written.event_id);
        assert_eq!(read.event_type, written.event_type);
        assert_eq!(read.schema_version, written.schema_version);
        assert_eq!(read.meta, written.meta);
        assert!(read.payload.same_json(&written.payload));
    }

    let c = store
        .read_stream(&stream("appointment-c"), 0)
        .await
        .expect("read_stream");
    assert_eq!(
        c.iter().map(|e| e.stream_version).collect::<Vec<_>>(),
        (0..10).collect::<Vec<_>>()
    );
    assert!(
        c.windows(2)
            .all(|w| w[0].global_position < w[1].global_position)
    );
    let tail = store
        .read_stream(&stream("appointment-c"), 7)
        .await
        .expect("read_stream");
    assert_eq!(
        tail.iter().map(|e| e.stream_version).collect::<Vec<_>>(),
        [7, 8, 9]
    );
    assert!(
        store
            .read_stream(&stream("appointment-none"), 0)
            .await
            .expect("read")
            .is_empty()
    );
    assert!(store.read_all(15, 10).await.expect("read").is_empty());
}

/// The audit replay reads a record by the positions its timeline names, in one query.
pub(crate) async fn reads_by_positions<B: Backend>(b: &B) {
    let store = b.open().await;
    for round in 0..3u64 {
        let expected = if round == 0 {
            ExpectedVersion::NoStream
        } else {
            ExpectedVersion::Any
        };
        store
            .append(multi(vec![
                ("calendar-a-1", expected, vec![event(round * 10)]),
                ("appointment-c", expected, vec![event(round * 10 + 1)]),
            ]))
            .await
            .expect("append");
    }
    let all = store.read_all(0, 100).await.expect("read_all");
    assert_eq!(all.len(), 6);
    // Out of order, twice, and beyond the end: ordered, once each, missing ones left out.
    let read = store
        .read_positions(&[5, 2, 5, 99, 3])
        .await
        .expect("read_positions");
    assert_eq!(
        read.iter().map(|e| e.global_position).collect::<Vec<_>>(),
        [2, 3, 5]
    );
    for e in &read {
        let original = &all[usize::try_from(e.global_position).expect("small") - 1];
        assert_eq!(e.event_id, original.event_id);
        assert_eq!(e.stream_id, original.stream_id);
        assert!(e.payload.same_json(&original.payload));
    }
    assert!(store.read_positions(&[]).await.expect("read").is_empty());
}

/// Several streams in one read: each whole and in version order, in the order asked, a stream
/// asked twice given twice, one without events empty.
pub(crate) async fn reads_of_several_streams<B: Backend>(b: &B) {
    let store = b.open().await;
    for round in 0..3u64 {
        let expected = if round == 0 {
            ExpectedVersion::NoStream
        } else {
            ExpectedVersion::Any
        };
        store
            .append(multi(vec![
                ("slot-a-1", expected, vec![event(round * 10)]),
                ("appointment-c", expected, vec![event(round * 10 + 1)]),
            ]))
            .await
            .expect("append");
    }
    let asked = [
        stream("appointment-c"),
        stream("slot-a-1"),
        stream("slot-a-2"),
        stream("appointment-c"),
    ];
    let read = store.read_streams(&asked).await.expect("read_streams");
    assert_eq!(read.len(), asked.len());
    for (stream, events) in asked.iter().zip(&read) {
        let one = store.read_stream(stream, 0).await.expect("read_stream");
        assert_eq!(
            events.iter().map(|e| e.event_id).collect::<Vec<_>>(),
            one.iter().map(|e| e.event_id).collect::<Vec<_>>(),
            "{stream}"
        );
    }
    assert_eq!(read.iter().map(Vec::len).collect::<Vec<_>>(), [3, 3, 0, 3]);
    assert!(store.read_streams(&[]).await.expect("read").is_empty());
}

/// Crypto-shredding on the store's key table: seal and open, tampering reported, destroying
/// the key is final and turns every sealed value into `Erased`.
pub(crate) async fn data_keys_seal_open_and_shred<B: Backend>(b: &B) {
    use videoamt_adapters::keys::{Kek, Keyring};
    use videoamt_core::domain::SubjectId;
    use videoamt_core::keys::{KeyError, KeyStore, Opened};

    let store = b.open().await;
    let keyring = Keyring::new(Kek::from_secret(&[7u8; 32]), store.clone());
    let (erika, max) = (
        SubjectId(uuid::Uuid::now_v7()),
        SubjectId(uuid::Uuid::now_v7()),
    );
    let canary = "Erika Mustermann canary-7f3a";
    assert!(matches!(
        keyring.seal(erika, canary.as_bytes()).await,
        Err(KeyError::NoKey(s)) if s == erika
    ));
    keyring.issue(erika).await.expect("issue");
    keyring.issue(max).await.expect("issue");
    let sealed = keyring.seal(erika, canary.as_bytes()).await.expect("seal");
    // Issuing again keeps the key: what was sealed still opens.
    keyring.issue(erika).await.expect("issue twice");
    assert_eq!(
        keyring.open(&sealed).await.expect("open"),
        Opened::Plain(canary.as_bytes().to_vec())
    );
    let json = serde_json::to_string(&sealed).expect("json");
    assert!(!json.contains("Erika") && !json.contains("canary"));
    // The log's fingerprint is the subject's own (ADR 0024): the same for the same value of
    // one subject, another for another subject's same value, and not the KEK's, which only
    // the verifier's manifest holds.
    assert!(
        sealed.fingerprint.starts_with("2."),
        "{}",
        sealed.fingerprint
    );
    let again = keyring.seal(erika, canary.as_bytes()).await.expect("seal");
    assert_eq!(again.fingerprint, sealed.fingerprint);
    let of_max = keyring.seal(max, canary.as_bytes()).await.expect("seal");
    assert_ne!(
        of_max.fingerprint, sealed.fingerprint,
        "subjects are not linked"
    );
    assert_ne!(sealed.fingerprint, keyring.fingerprint(canary.as_bytes()));
    assert!(
        !sealed
            .fingerprint
            .contains(&keyring.fingerprint(canary.as_bytes()))
    );
    assert_ne!(
        keyring
            .seal(erika, canary.as_bytes())
            .await
            .expect("seal")
            .sealed,
        sealed.sealed,
        "a fresh nonce each time"
    );

    // A flipped byte, a changed fingerprint or another subject: reported, not accepted.
    let mut bytes = B64.decode(&sealed.sealed).expect("base64");
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    let flipped = Sealed {
        sealed: B64.encode(&bytes),
        ..sealed.clone()
    };
    let refiled = Sealed {
        fingerprint: keyring.fingerprint(b"someone else"),
        ..sealed.clone()
    };
    let moved = Sealed {
        subject: max,
        ..sealed.clone()
    };
    for tampered in [flipped.clone(), refiled, moved] {
        assert!(matches!(
            keyring.open(&tampered).await,
            Err(KeyError::Tampered { .. })
        ));
    }

    // Opened together (the verifier's way), each value comes out as it does alone, in order;
    // a subject without a key is erased, and only the subjects with keys are held.
    let keyless = SubjectId(uuid::Uuid::now_v7());
    let orphan = Sealed {
        subject: keyless,
        ..of_max.clone()
    };
    let together = keyring
        .open_all(&[sealed.clone(), flipped, orphan, of_max.clone()])
        .await
        .expect("open all");
    assert_eq!(together.len(), 4);
    assert_eq!(
        together[0].as_ref().expect("opens"),
        &Opened::Plain(canary.as_bytes().to_vec())
    );
    assert!(matches!(together[1], Err(KeyError::Tampered { subject }) if subject == erika));
    assert_eq!(together[2].as_ref().expect("erased"), &Opened::Erased);
    assert_eq!(
        together[3].as_ref().expect("opens"),
        &Opened::Plain(canary.as_bytes().to_vec())
    );
    assert!(keyring.open_all(&[]).await.expect("none").is_empty());
    assert_eq!(
        keyring
            .held_among(&[keyless, erika, max])
            .await
            .expect("held"),
        [erika, max].into_iter().collect()
    );

    // Another KEK cannot open the wrapped key: an error, never a silent `Erased`.
    let stranger = Keyring::new(Kek::from_secret(&[8u8; 32]), store.clone());
    assert!(matches!(
        stranger.open(&sealed).await,
        Err(KeyError::Kek(_))
    ));
    assert!(matches!(
        stranger.open_all(std::slice::from_ref(&sealed)).await,
        Err(KeyError::Kek(_))
    ));

    assert!(keyring.destroy(erika).await.expect("destroy"));
    assert!(!keyring.holds(erika).await.expect("holds"));
    assert_eq!(keyring.open(&sealed).await.expect("open"), Opened::Erased);
    assert!(matches!(
        keyring
            .open_all(std::slice::from_ref(&sealed))
            .await
            .expect("open all")[..],
        [Ok(Opened::Erased)]
    ));
    assert_eq!(
        keyring.held_among(&[erika, max]).await.expect("held"),
        [max].into_iter().collect()
    );
    assert!(
        !keyring.destroy(erika).await.expect("destroy again"),
        "final"
    );
    keyring.issue(erika).await.expect("a new key");
    assert!(
        matches!(keyring.open(&sealed).await, Err(KeyError::Tampered { .. })),
        "a new key does not bring the old values back"
    );
    assert!(
        keyring.holds(max).await.expect("holds"),
        "others keep theirs"
    );

    // Destroying many at once names those whose key existed, and leaves the rest alone.
    let (anna, ben, nobody) = (
        SubjectId(uuid::Uuid::now_v7()),
        SubjectId(uuid::Uuid::now_v7()),
        SubjectId(uuid::Uuid::now_v7()),
    );
    keyring.issue(anna).await.expect("issue");
    keyring.issue(ben).await.expect("issue");
    let destroyed = keyring
        .destroy_all(&[anna, nobody, ben])
        .await
        .expect("destroy all");
    assert_eq!(destroyed, vec![anna, ben]);
    for gone in [anna, ben] {
        assert!(!keyring.holds(gone).await.expect("holds"));
    }
    assert!(keyring.holds(max).await.expect("holds"));
    assert!(
        keyring
            .destroy_all(&[anna, ben])
            .await
            .expect("again")
            .is_empty(),
        "final"
    );
}

/// The failure of Marten's async daemon (issue 3321): under concurrent writers a reader that
/// trusts `position > checkpoint` must still see every event exactly once, in order.
pub(crate) async fn live_subscriber_misses_nothing<B: Backend>(b: &B) {
    const WRITERS: u64 = 16;
    const EVENTS_PER_WRITER: u64 = 2_000;
    const HANDLES: usize = 4;
    let total = WRITERS * EVENTS_PER_WRITER;

    let reader = b.open().await;
    let mut subscription = reader.subscribe(0);
    let collector = tokio::spawn(async move {
        let mut seen = Vec::with_capacity(total as usize);
        while (seen.len() as u64) < total {
            let e = subscription
                .next()
                .await
                .expect("subscriptions do not end")
                .expect("read");
            seen.push((
                e.global_position,
                e.event_id,
                e.stream_id.clone(),
                e.stream_version,
            ));
        }
        seen
    });

    // Several handles, so that commits race between writers that do not share a group commit,
    // just as separate processes would.
    let mut handles = Vec::new();
    for _ in 0..HANDLES {
        handles.push(b.open().await);
    }
    let writers = (0..WRITERS).map(|w| {
        let store = handles[w as usize % HANDLES].clone();
        tokio::spawn(async move {
            let s = format!("writer-{w}");
            let mut written = 0;
            let mut ids = Vec::new();
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
    let written: Vec<_> = futures::future::join_all(writers)
        .await
        .into_iter()
        .flat_map(|r| r.expect("writer task"))
        .collect();

    let seen = collector.await.expect("collector task");
    let positions: Vec<u64> = seen.iter().map(|s| s.0).collect();
    assert_eq!(
        positions,
        (1..=total).collect::<Vec<_>>(),
        "every position once, in order"
    );
    let seen_ids: HashSet<_> = seen.iter().map(|s| s.1).collect();
    assert_eq!(seen_ids, written.into_iter().collect::<HashSet<_>>());
    for w in 0..WRITERS {
        let id = StreamId::parse(&format!("writer-{w}")).expect("valid");
        let versions: Vec<u64> = seen.iter().filter(|s| s.2 == id).map(|s| s.3).collect();
        assert_eq!(versions, (0..EVENTS_PER_WRITER).collect::<Vec<_>>());
    }
    let report = reader.verify().await.expect("verify");
    assert!(report.is_ok(), "{:?}", report.problems);
}

pub(crate) async fn subscription_resumes_from_checkpoint<B: Backend>(b: &B) {
    let store = b.open().await;
    for n in 0..100 {
        store
            .append(single(
                "appointment-r",
                ExpectedVersion::Any,
                vec![event(n)],
            ))
            .await
            .expect("append");
    }
    let checkpoint = {
        let mut sub = store.subscribe(0);
        let mut last = 0;
        for _ in 0..40 {
            last = sub
                .next()
                .await
                .expect("event")
                .expect("read")
                .global_position;
        }
        last
    };
    assert_eq!(checkpoint, 40);
    drop(store);

    // "Restart": a new handle, and the log grows while the reader is away.
    let store = b.open().await;
    for n in 100..150 {
        store
            .append(single(
                "appointment-r",
                ExpectedVersion::Any,
                vec![event(n)],
            ))
            .await
            .expect("append");
    }
    let mut sub = store.subscribe(checkpoint);
    let mut resumed: Vec<RecordedEvent> = Vec::new();
    while resumed.len() < 110 {
        resumed.push(sub.next().await.expect("event").expect("read"));
    }
    let positions: Vec<u64> = resumed.iter().map(|e| e.global_position).collect();
    assert_eq!(positions, (41..=150).collect::<Vec<_>>());

    // And it goes on live.
    store
        .append(single(
            "appointment-r",
            ExpectedVersion::Any,
            vec![event(150)],
        ))
        .await
        .expect("append");
    let live = sub.next().await.expect("event").expect("read");
    assert_eq!(live.global_position, 151);
}

pub(crate) async fn database_refuses_update_and_delete<B: Backend>(b: &B) {
    let store = b.open().await;
    store
        .append(single(
            "appointment-1",
            ExpectedVersion::NoStream,
            vec![event(1), event(2)],
        ))
        .await
        .expect("append");
    let before = store.read_all(0, 10).await.expect("read");

    let mut statements = vec![
        "UPDATE events SET payload = '{\"tampered\":true}' WHERE global_position = 1",
        "DELETE FROM events WHERE global_position = 2",
        "DELETE FROM events",
    ];
    statements.extend(b.truncate_sql());
    for sql in &statements {
        let refused = b.raw_sql(sql).await;
        let message = refused.expect_err(&format!("the database must refuse {sql}"));
        assert!(message.contains("append-only"), "{sql}: {message}");
        if let Some(as_app) = b.raw_sql_as_app_role(sql).await {
            let message = as_app.expect_err("the application role must be refused too");
            assert!(message.contains("permission denied"), "{sql}: {message}");
        }
    }
    assert_eq!(store.read_all(0, 10).await.expect("read"), before);
    assert!(store.verify().await.expect("verify").is_ok());
}

pub(crate) async fn bad_input_is_refused_and_nothing_written<B: Backend>(b: &B) {
    let store = b.open().await;
    store
        .append(single(
            "appointment-1",
            ExpectedVersion::NoStream,
            vec![event(1)],
        ))
        .await
        .expect("append");

    assert_eq!(AppendBatch::new(vec![]), Err(InvalidInput::EmptyBatch));
    let long = format!("appointment-{}", "x".repeat(200));
    assert!(matches!(
        StreamId::parse(&long),
        Err(InvalidInput::StreamIdTooLong { .. })
    ));
    for malformed in [
        "appointment",
        "Appointment-1",
        "appointment-1;DROP TABLE events",
        "termin-ä",
    ] {
        let err = StreamId::parse(malformed).expect_err("malformed");
        assert!(err.to_string().contains("malformed"), "{err}");
    }
    let not_json = Payload::from_json("{\"name\": ").expect_err("not JSON");
    assert!(
        not_json.to_string().starts_with("payload is not JSON"),
        "{not_json}"
    );
    assert_eq!(
        Payload::from_json("\"text\""),
        Err(InvalidInput::PayloadNotObject)
    );
    // Batches and payloads can only be built from checked parts, so the store never sees the
    // bad input; nothing reached the log.
    assert_eq!(store.last_position().await.expect("head"), 1);
    let stats = store.stats().await.expect("stats");
    assert_eq!((stats.events, stats.streams), (1, 1));
}

pub(crate) async fn migrations_run_once_even_when_processes_start_together<B: Backend>(b: &B) {
    let (first, second, third) = tokio::join!(b.open(), b.open(), b.open());
    for store in [&first, &second, &third] {
        let stats = store.stats().await.expect("stats");
        assert_eq!(stats.schema_version, B::SCHEMA_VERSION);
        assert_eq!((stats.events, stats.last_position), (0, 0));
    }
    first
        .append(single(
            "appointment-1",
            ExpectedVersion::NoStream,
            vec![event(1)],
        ))
        .await
        .expect("append");
    drop((first, second, third));
    // Reopening an existing log migrates nothing and keeps it.
    let again = b.open().await;
    assert_eq!(again.last_position().await.expect("head"), 1);
    // One row per migration: a no-op UPDATE reports the rows it matched.
    assert_eq!(
        b.raw_sql("UPDATE schema_migrations SET name = name").await,
        Ok(u64::from(B::SCHEMA_VERSION))
    );
}

/// The last migration drops the `owner` documents projections used to keep (ADR 0032) and
/// leaves every other document.
pub(crate) async fn the_owner_indexes_of_old_read_models_are_dropped<B: Backend>(b: &B) {
    use videoamt_core::readmodel::{Change, DocKey, ProjectionCheckpoint};
    let store = b.open().await;
    let kept = DocKey::new("detail", "a");
    let owner = DocKey::new("owner", "session-1");
    store
        .commit(
            "appointment-detail",
            0,
            ProjectionCheckpoint {
                projection: "appointment-detail".into(),
                position: 3,
                event_recorded_at: None,
            },
            vec![
                Change::Put(kept.clone(), "{}".into()),
                Change::Put(owner.clone(), r#"{"appointment":"x"}"#.into()),
            ],
        )
        .await
        .expect("commit");
    drop(store);
    // As a database left by the release before: the last migration not yet run.
    assert_eq!(
        b.raw_sql(&format!(
            "DELETE FROM schema_migrations WHERE version = {}",
            B::SCHEMA_VERSION
        ))
        .await,
        Ok(1)
    );
    let store = b.open().await;
    let found = store
        .get("appointment-detail", &[kept.clone(), owner])
        .await
        .expect("get");
    assert_eq!(
        found.into_iter().map(|(k, _)| k).collect::<Vec<_>>(),
        [kept]
    );
    assert_eq!(
        store
            .checkpoint("appointment-detail")
            .await
            .expect("checkpoint")
            .position,
        3
    );
}

pub(crate) async fn read_models_commit_with_their_checkpoint<B: Backend>(b: &B) {
    use videoamt_core::readmodel::{Change, DocKey, ProjectionCheckpoint, ReadModelError};
    let store = b.open().await;
    let at = |position| ProjectionCheckpoint {
        projection: "waiting".into(),
        position,
        event_recorded_at: Some(time::macros::datetime!(2026-11-24 08:00 UTC)),
    };
    let doc = |key: &str| DocKey::new("session", key);
    assert_eq!(
        store
            .checkpoint("waiting")
            .await
            .expect("checkpoint")
            .position,
        0
    );
    store
        .commit(
            "waiting",
            0,
            at(5),
            vec![
                Change::Put(
                    doc("ettlingen/a"),
                    serde_json::json!({ "since": 1 }).to_string(),
                ),
                Change::Put(
                    doc("ettlingen/b"),
                    serde_json::json!({ "since": 2 }).to_string(),
                ),
                Change::Put(
                    doc("stuttgart/c"),
                    serde_json::json!({ "since": 3 }).to_string(),
                ),
            ],
        )
        .await
        .expect("first commit");
    let stale = store
        .commit(
            "waiting",
            0,
            at(7),
            vec![Change::Put(
                doc("ettlingen/z"),
                serde_json::json!({}).to_string(),
            )],
        )
        .await;
    assert!(
        matches!(
            stale,
            Err(ReadModelError::CheckpointMoved { actual: 5, .. })
        ),
        "{stale:?}"
    );
    let listed = store
        .list("waiting", "session", "ettlingen/")
        .await
        .expect("list");
    assert_eq!(
        listed,
        vec![
            ("ettlingen/a".to_owned(), serde_json::json!({ "since": 1 })),
            ("ettlingen/b".to_owned(), serde_json::json!({ "since": 2 })),
        ]
    );
    store
        .commit(
            "waiting",
            5,
            at(9),
            vec![
                Change::Delete(doc("ettlingen/a")),
                Change::Put(
                    doc("ettlingen/b"),
                    serde_json::json!({ "since": 4 }).to_string(),
                ),
            ],
        )
        .await
        .expect("second commit");
    let got = store
        .get("waiting", &[doc("ettlingen/a"), doc("ettlingen/b")])
        .await
        .expect("get");
    assert_eq!(
        got,
        vec![(doc("ettlingen/b"), serde_json::json!({ "since": 4 }))]
    );
    let checkpoint = store.checkpoint("waiting").await.expect("checkpoint");
    assert_eq!(checkpoint, at(9));
    assert_eq!(store.dump("waiting").await.expect("dump").len(), 2);
    store.reset("waiting").await.expect("reset");
    assert!(store.dump("waiting").await.expect("dump").is_empty());
    assert_eq!(
        store
            .checkpoint("waiting")
            .await
            .expect("checkpoint")
            .position,
        0
    );
}

/// New documents in bulk (a rebuild's window: more than a store's bulk threshold) commit with
/// the puts and deletes beside them and the checkpoint, and read back as written.
pub(crate) async fn new_read_model_documents_commit_in_bulk<B: Backend>(b: &B) {
    use videoamt_core::readmodel::{Change, DocKey, ProjectionCheckpoint, ReadModelError};
    let store = b.open().await;
    let at = |position| ProjectionCheckpoint {
        projection: "detail".into(),
        position,
        event_recorded_at: None,
    };
    let doc = |i: usize| DocKey::new("appointment", format!("{i:05}"));
    // Quotes, a backslash and non-ASCII text travel in the JSON as written.
    let value = |i: usize| serde_json::json!({ "n": i, "name": "Zoë \"Müller\" \\ 東京" });
    let first: Vec<Change> = (0..2_500)
        .map(|i| Change::Insert(doc(i), value(i).to_string()))
        .collect();
    store
        .commit("detail", 0, at(10), first)
        .await
        .expect("first window");
    let mut second: Vec<Change> = (2_500..4_000)
        .map(|i| Change::Insert(doc(i), value(i).to_string()))
        .collect();
    second.push(Change::Put(
        doc(7),
        serde_json::json!({ "n": -7 }).to_string(),
    ));
    second.push(Change::Delete(doc(8)));
    store
        .commit("detail", 10, at(20), second)
        .await
        .expect("second window");
    let dumped = store.dump("detail").await.expect("dump");
    assert_eq!(dumped.len(), 3_999, "4,000 written, one deleted");
    let got = store
        .get("detail", &[doc(0), doc(7), doc(8), doc(3_999)])
        .await
        .expect("get");
    assert_eq!(
        got,
        vec![
            (doc(0), value(0)),
            (doc(7), serde_json::json!({ "n": -7 })),
            (doc(3_999), value(3_999)),
        ]
    );
    assert_eq!(
        store.checkpoint("detail").await.expect("checkpoint"),
        at(20)
    );
    // A stale window writes nothing, bulk or not.
    let stale = store
        .commit(
            "detail",
            10,
            at(30),
            (4_000..6_000)
                .map(|i| Change::Insert(doc(i), value(i).to_string()))
                .collect(),
        )
        .await;
    assert!(
        matches!(
            stale,
            Err(ReadModelError::CheckpointMoved { actual: 20, .. })
        ),
        "{stale:?}"
    );
    assert_eq!(store.dump("detail").await.expect("dump").len(), 3_999);
}

/// A commit of `projection` from checkpoint `from` to `to` that puts `value` under `key`.
pub(crate) fn put_commit(
    projection: &str,
    from: u64,
    to: u64,
    key: &videoamt_core::readmodel::DocKey,
    value: &str,
) -> videoamt_core::readmodel::Commit {
    videoamt_core::readmodel::Commit {
        from,
        to: videoamt_core::readmodel::ProjectionCheckpoint {
            projection: projection.into(),
            position: to,
            event_recorded_at: None,
        },
        changes: vec![videoamt_core::readmodel::Change::Put(
            key.clone(),
            value.into(),
        )],
    }
}

/// Several projections' commits go in together: each projection's documents and checkpoint as
/// its own commit would write them, the same key kept apart per projection; a moved checkpoint
/// refuses (here the first, so no backend writes anything of the call).
pub(crate) async fn read_models_of_several_projections_commit_together<B: Backend>(b: &B) {
    use videoamt_core::readmodel::{Change, Commit, DocKey, ProjectionCheckpoint, ReadModelError};
    let store = b.open().await;
    let at = |projection: &str, position| ProjectionCheckpoint {
        projection: projection.into(),
        position,
        event_recorded_at: None,
    };
    let key = DocKey::new("day", "ettlingen/buergerbuero/2026-12-07");
    let other = DocKey::new("day", "ettlingen/buergerbuero/2026-12-08");
    store
        .commit_all(vec![
            Commit {
                from: 0,
                to: at("schedule", 5),
                changes: vec![
                    Change::Insert(key.clone(), r#"{"of":"schedule"}"#.into()),
                    Change::Put(other.clone(), r#"{"gone":false}"#.into()),
                ],
            },
            Commit {
                from: 0,
                to: at("free-slots", 5),
                changes: vec![Change::Put(key.clone(), r#"{"of":"slots"}"#.into())],
            },
        ])
        .await
        .expect("both from 0");
    store
        .commit_all(vec![
            Commit {
                from: 5,
                to: at("schedule", 9),
                changes: vec![Change::Delete(other.clone())],
            },
            Commit {
                from: 5,
                to: at("free-slots", 9),
                changes: vec![],
            },
        ])
        .await
        .expect("both from 5");
    let read = |projection: &'static str| {
        let store = &store;
        let keys = [key.clone(), other.clone()];
        async move { store.get(projection, &keys).await.expect("get") }
    };
    // Both checkpoints stand at 9.
    let both_at_9 = || async {
        for name in ["schedule", "free-slots"] {
            assert_eq!(
                store.checkpoint(name).await.expect("checkpoint"),
                at(name, 9)
            );
        }
    };
    assert_eq!(
        read("schedule").await,
        vec![(key.clone(), serde_json::json!({"of": "schedule"}))]
    );
    assert_eq!(
        read("free-slots").await,
        vec![(key.clone(), serde_json::json!({"of": "slots"}))]
    );
    both_at_9().await;
    let refused = store
        .commit_all(vec![
            put_commit("free-slots", 7, 12, &key, r#"{"of":"stale"}"#),
            put_commit("schedule", 9, 12, &key, r#"{"of":"later"}"#),
        ])
        .await;
    assert!(
        matches!(
            &refused,
            Err(ReadModelError::CheckpointMoved { projection, expected: 7, actual: 9 })
                if projection == "free-slots"
        ),
        "{refused:?}"
    );
    assert_eq!(
        read("schedule").await,
        vec![(key.clone(), serde_json::json!({"of": "schedule"}))]
    );
    both_at_9().await;
}

/// Staff sessions are seen by every process on the store, keep their epoch and last-seen time,
/// and are gone after logout or once stale.
pub(crate) async fn staff_sessions_are_shared_and_swept<B: Backend>(b: &B) {
    use time::{Duration, OffsetDateTime};
    use videoamt_core::domain::account::Login;
    use videoamt_core::event::TenantId;
    use videoamt_core::staff_session::SessionRecord;
    let (one, other) = (b.open().await, b.open().await);
    let now = OffsetDateTime::from_unix_timestamp(1_800_000_000).expect("a time");
    let record = |login: &str, seen: OffsetDateTime| SessionRecord {
        tenant: TenantId::parse("ettlingen").expect("tenant"),
        login: Login::parse(login).expect("login"),
        epoch: 2,
        directory: false,
        expires: now + Duration::hours(8),
        seen,
    };
    let (a, b_key, c) = ([1u8; 32], [2u8; 32], [3u8; 32]);
    one.open_session(a, record("mueller", now))
        .await
        .expect("open");
    one.open_session(b_key, record("schmidt", now - Duration::minutes(40)))
        .await
        .expect("open");
    one.open_session(c, record("weber", now - Duration::hours(9)))
        .await
        .expect("open");
    assert_eq!(
        other.session(a).await.expect("read"),
        Some(record("mueller", now)),
        "another process sees the session as it was opened"
    );
    other
        .touch_session(a, now + Duration::minutes(5))
        .await
        .expect("touch");
    other.touch_session(a, now).await.expect("an older touch");
    other.carry_session_over(a, 3).await.expect("carry over");
    let seen = one.session(a).await.expect("read").expect("open");
    assert_eq!((seen.seen, seen.epoch), (now + Duration::minutes(5), 3));
    let mut expired = record("weber", now - Duration::hours(9));
    expired.expires = now - Duration::hours(1);
    one.close_session(c).await.expect("close");
    one.open_session(c, expired).await.expect("open again");
    let swept = other
        .close_stale_sessions(now + Duration::minutes(6), Duration::minutes(30))
        .await
        .expect("sweep");
    assert_eq!(swept, 2, "the idle one and the expired one");
    assert!(one.session(b_key).await.expect("read").is_none());
    assert!(one.session(c).await.expect("read").is_none());
    other.close_session(a).await.expect("log out");
    assert!(one.session(a).await.expect("read").is_none());
}

/// A sign-on under way is taken once, by any process, and not after it expired.
pub(crate) async fn sign_ons_are_taken_once<B: Backend>(b: &B) {
    use time::{Duration, OffsetDateTime};
    let (one, other) = (b.open().await, b.open().await);
    let now = OffsetDateTime::from_unix_timestamp(1_800_000_000).expect("a time");
    one.put_sign_on([7; 32], "{\"n\":1}".into(), now + Duration::minutes(10))
        .await
        .expect("keep");
    one.put_sign_on([8; 32], "{\"n\":2}".into(), now + Duration::minutes(10))
        .await
        .expect("keep");
    assert_eq!(
        other
            .take_sign_on([7; 32], now)
            .await
            .expect("take")
            .as_deref(),
        Some("{\"n\":1}")
    );
    assert_eq!(one.take_sign_on([7; 32], now).await.expect("take"), None);
    assert_eq!(
        other
            .take_sign_on([8; 32], now + Duration::minutes(11))
            .await
            .expect("take"),
        None,
        "expired"
    );
    assert_eq!(
        one.take_sign_on([8; 32], now).await.expect("take"),
        None,
        "and gone"
    );
}

/// Of many processes asking for a duty at once, exactly one gets it; it keeps it by renewing,
/// gives it up on release, and loses it to another once it stops renewing.
pub(crate) async fn a_duty_has_one_holder_at_a_time<B: Backend>(b: &B) {
    use std::time::Duration;
    let stores: Vec<_> = futures::future::join_all((0..6).map(|_| b.open())).await;
    let ttl = Duration::from_secs(60);
    let asks = stores
        .iter()
        .enumerate()
        .map(|(i, s)| async move { s.acquire("outbox", &format!("node-{i}"), ttl).await });
    let won: Vec<usize> = futures::future::join_all(asks)
        .await
        .into_iter()
        .enumerate()
        .filter_map(|(i, r)| r.expect("acquire").then_some(i))
        .collect();
    assert_eq!(won.len(), 1, "one holder: {won:?}");
    let holder = format!("node-{}", won[0]);
    let (winner, loser) = (&stores[won[0]], &stores[(won[0] + 1) % 6]);
    assert!(winner.acquire("outbox", &holder, ttl).await.expect("renew"));
    assert!(!loser.acquire("outbox", "late", ttl).await.expect("acquire"));
    assert!(
        loser
            .acquire("scheduler", "late", ttl)
            .await
            .expect("acquire"),
        "another duty is free"
    );
    loser
        .release("outbox", "late")
        .await
        .expect("not the holder: nothing happens");
    assert!(!loser.acquire("outbox", "late", ttl).await.expect("acquire"));
    winner.release("outbox", &holder).await.expect("release");
    assert!(
        loser
            .acquire("outbox", "late", Duration::from_millis(300))
            .await
            .expect("acquire")
    );
    // "late" stops renewing: once its lease ran out by the store's clock, the duty is free.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(
        winner
            .acquire("outbox", &holder, ttl)
            .await
            .expect("acquire after expiry")
    );
    assert!(!loser.acquire("outbox", "late", ttl).await.expect("acquire"));

    // A lease named at run time (a room's media node) answers with whoever holds it.
    let room = format!("room:{}", uuid::Uuid::now_v7());
    assert_eq!(loser.holder(&room).await.expect("holder"), None);
    assert_eq!(
        loser.claim(&room, "node-b", ttl).await.expect("claim"),
        "node-b",
        "a free lease goes to the first who claims it"
    );
    assert_eq!(
        winner.claim(&room, "node-a", ttl).await.expect("claim"),
        "node-b",
        "a running lease names its holder"
    );
    assert_eq!(
        winner.holder(&room).await.expect("holder").as_deref(),
        Some("node-b")
    );
    loser.release(&room, "node-b").await.expect("release");
    assert_eq!(
        winner.claim(&room, "node-a", ttl).await.expect("claim"),
        "node-a",
        "released, it goes to the next"
    );
}

/// Generates one `#[tokio::test]` per contract test for a backend type.
#[macro_export]
macro_rules! contract_suite {
    ($backend:ty) => {
        $crate::contract_suite!(@tests $backend;
            conflict_names_the_stream,
            racing_expectations_have_one_winner,
            multi_stream_append_is_atomic,
            retry_is_idempotent,
            reads_are_ordered_and_complete,
            reads_by_positions,
            reads_of_several_streams,
            data_keys_seal_open_and_shred,
            live_subscriber_misses_nothing,
            subscription_resumes_from_checkpoint,
            database_refuses_update_and_delete,
            bad_input_is_refused_and_nothing_written,
            migrations_run_once_even_when_processes_start_together,
            the_owner_indexes_of_old_read_models_are_dropped,
            read_models_commit_with_their_checkpoint,
            new_read_model_documents_commit_in_bulk,
            read_models_of_several_projections_commit_together,
            staff_sessions_are_shared_and_swept,
            sign_ons_are_taken_once,
            a_duty_has_one_holder_at_a_time,
        );
    };
    (@tests $backend:ty; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() {
                use $crate::contract::Backend as _;
                let Some(backend) = <$backend>::fresh().await else { return };
                $crate::contract::$name(&backend).await;
                backend.drop_database().await;
            }
        )*
    };
}

pub(crate) mod sqlite {
    use std::sync::Arc;

    use videoamt_adapters::store::AdminStore;
    use videoamt_adapters::store::sqlite::{SqliteStore, raw_connection};

    pub(crate) struct Sqlite {
        dir: tempfile::TempDir,
    }

    impl Sqlite {
        fn path(&self) -> std::path::PathBuf {
            self.dir.path().join("events.db")
        }
    }

    #[async_trait::async_trait]
    impl super::Backend for Sqlite {
        // 6: owner indexes dropped.
        const SCHEMA_VERSION: u32 = 6;

        async fn fresh() -> Option<Self> {
            Some(Self {
                dir: tempfile::tempdir().expect("temp dir"),
            })
        }

        async fn open(&self) -> Arc<dyn AdminStore> {
            Arc::new(
                SqliteStore::open(self.path())
                    .await
                    .expect("open SQLite store"),
            )
        }

        async fn raw_sql(&self, sql: &str) -> Result<u64, String> {
            let conn = raw_connection(&self.path()).map_err(|e| e.to_string())?;
            conn.execute(sql, [])
                .map(|n| n as u64)
                .map_err(|e| e.to_string())
        }

        async fn raw_sql_as_app_role(&self, _sql: &str) -> Option<Result<u64, String>> {
            None // SQLite has no roles; the triggers are the guard.
        }

        fn truncate_sql(&self) -> Option<&'static str> {
            None // SQLite has no TRUNCATE; `DELETE FROM events` is its equivalent.
        }

        async fn drop_database(self) {}
    }

    crate::contract_suite!(Sqlite);
}

pub(crate) mod postgres {
    use std::sync::Arc;

    use tokio_postgres::NoTls;
    use videoamt_adapters::store::AdminStore;
    use videoamt_adapters::store::postgres::{PostgresStore, ScratchDatabase, test_server_url};

    /// A database of its own for each test, dropped afterwards.
    pub(crate) struct Postgres(ScratchDatabase);

    impl Postgres {
        async fn session(&self) -> tokio_postgres::Client {
            let (client, connection) = tokio_postgres::connect(&self.0.url(), NoTls)
                .await
                .expect("connect");
            tokio::spawn(connection);
            client
        }
    }

    fn db_message(e: tokio_postgres::Error) -> String {
        match e.as_db_error() {
            Some(db) => db.message().to_owned(),
            None => e.to_string(),
        }
    }

    #[async_trait::async_trait]
    impl super::Backend for Postgres {
        // 6: read model keys in the "C" collation; 7: owner indexes dropped.
        const SCHEMA_VERSION: u32 = 7;

        async fn fresh() -> Option<Self> {
            let server = test_server_url().await?;
            Some(Self(
                ScratchDatabase::create(&server, "test")
                    .await
                    .expect("scratch database"),
            ))
        }

        async fn open(&self) -> Arc<dyn AdminStore> {
            Arc::new(
                PostgresStore::connect(&self.0.url())
                    .await
                    .expect("open PostgreSQL store"),
            )
        }

        async fn raw_sql(&self, sql: &str) -> Result<u64, String> {
            self.session()
                .await
                .execute(sql, &[])
                .await
                .map_err(db_message)
        }

        async fn raw_sql_as_app_role(&self, sql: &str) -> Option<Result<u64, String>> {
            let client = self.session().await;
            client
                .batch_execute("SET ROLE videoamt_app")
                .await
                .expect("role exists");
            Some(client.execute(sql, &[]).await.map_err(db_message))
        }

        fn truncate_sql(&self) -> Option<&'static str> {
            Some("TRUNCATE events")
        }

        async fn drop_database(self) {
            self.0.drop_now().await.expect("drop scratch database");
        }
    }

    crate::contract_suite!(Postgres);

    /// PostgreSQL's joint commit is all or none: when the second projection (in name order)
    /// is refused, the first one's documents and checkpoint are not written either, which a
    /// commit one after the other would have done.
    #[tokio::test]
    async fn a_joint_commit_refused_for_one_projection_writes_none() {
        use super::Backend;
        use videoamt_core::readmodel::{DocKey, ProjectionCheckpoint, ReadModelError};
        let Some(b) = Postgres::fresh().await else {
            return;
        };
        let store = b.open().await;
        let at = |projection: &str, position| ProjectionCheckpoint {
            projection: projection.into(),
            position,
            event_recorded_at: None,
        };
        let key = DocKey::new("day", "ettlingen/buergerbuero/2026-12-07");
        store
            .commit("schedule", 0, at("schedule", 5), vec![])
            .await
            .expect("schedule at 5");
        let refused = store
            .commit_all(vec![
                super::put_commit("free-slots", 0, 6, &key, r#"{"of":"slots"}"#),
                super::put_commit("schedule", 0, 6, &key, r#"{"of":"schedule"}"#),
            ])
            .await;
        assert!(
            matches!(
                &refused,
                Err(ReadModelError::CheckpointMoved { projection, expected: 0, actual: 5 })
                    if projection == "schedule"
            ),
            "{refused:?}"
        );
        assert_eq!(
            store
                .get("free-slots", std::slice::from_ref(&key))
                .await
                .expect("get"),
            vec![]
        );
        assert_eq!(
            store
                .checkpoint("free-slots")
                .await
                .expect("checkpoint")
                .position,
            0
        );
        assert_eq!(store.get("schedule", &[key]).await.expect("get"), vec![]);
        drop(store);
        b.drop_database().await;
    }
}
