//! The purge survives crashes: `videoamt serve` purges 1,000 due subjects and is killed with
//! SIGKILL five times, each time after a random amount of progress. After a final run every
//! subject has exactly one `PurgeExecuted` and one `DeletionVerified`, and no key survives.

use std::time::{Duration, Instant};

use videoamt_adapters::store::sqlite::SqliteStore;
use videoamt_core::store::EventStore;

use crate::videoamt;

const SUBJECTS: usize = 1_000;

fn count(db: &std::path::Path, sql: &str) -> i64 {
    let conn = rusqlite::Connection::open(db).expect("open");
    conn.busy_timeout(Duration::from_secs(5)).expect("timeout");
    conn.query_row(sql, [], |r| r.get(0)).expect("count")
}

fn executed(db: &std::path::Path) -> i64 {
    count(
        db,
        "SELECT count(*) FROM events WHERE event_type = 'PurgeExecuted'",
    )
}

fn serve(db: &std::path::Path, data: &std::path::Path) -> std::process::Child {
    videoamt()
        .args(["--store", &format!("sqlite:{}", db.display())])
        .arg("--data-dir")
        .arg(data)
        .args(["serve", "--listen", "127.0.0.1:0", "--no-demo"])
        .env("VIDEOAMT_RETENTION_INTERVAL_MS", "50")
        // Small pages, so that the kills land between and inside pages, not only after the
        // whole purge.
        .env("VIDEOAMT_PURGE_PAGE", "16")
        .env("VIDEOAMT_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn serve")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_purge_finishes_exactly_once() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("events.db");
    let subjects = crate::due_subjects(&db, dir.path(), SUBJECTS).await;
    assert_eq!(
        count(&db, "SELECT count(*) FROM subject_keys"),
        SUBJECTS as i64
    );

    let mut mid_purge = 0;
    for round in 0..5u64 {
        let before = executed(&db);
        // A random amount of progress before the kill, 20 to 140 subjects.
        let step = 20 + i64::from(uuid::Uuid::now_v7().as_bytes()[15] % 121);
        let mut child = serve(&db, dir.path());
        let started = Instant::now();
        while executed(&db) < before + step && started.elapsed() < Duration::from_secs(60) {
            std::thread::sleep(Duration::from_millis(2));
        }
        child.kill().expect("SIGKILL");
        child.wait().expect("reap");
        let after = executed(&db);
        if after > before && after < SUBJECTS as i64 {
            mid_purge += 1;
        }
        // Keys destroyed whose `PurgeExecuted` is not written yet: the kill hit inside a page.
        let unfinished = SUBJECTS as i64 - count(&db, "SELECT count(*) FROM subject_keys") - after;
        eprintln!("round {round}: PurgeExecuted {before} -> {after}, {unfinished} unfinished");
    }
    assert_eq!(mid_purge, 5, "every kill landed in the middle of the purge");

    let mut child = serve(&db, dir.path());
    let started = Instant::now();
    let verified = || {
        count(
            &db,
            "SELECT count(*) FROM events WHERE event_type = 'DeletionVerified'",
        )
    };
    while verified() < SUBJECTS as i64 && started.elapsed() < Duration::from_secs(240) {
        std::thread::sleep(Duration::from_millis(100));
    }
    child.kill().expect("stop");
    child.wait().expect("reap");

    for (event, sql) in [
        ("PurgeExecuted", "PurgeExecuted"),
        ("DeletionVerified", "DeletionVerified"),
    ] {
        let per_subject = count(
            &db,
            &format!(
                "SELECT count(*) FROM (SELECT stream_id FROM events WHERE event_type = '{sql}' \
                 GROUP BY stream_id HAVING count(*) = 1)"
            ),
        );
        let total = count(
            &db,
            &format!("SELECT count(*) FROM events WHERE event_type = '{sql}'"),
        );
        assert_eq!(
            (per_subject, total),
            (SUBJECTS as i64, SUBJECTS as i64),
            "{event}"
        );
    }
    assert_eq!(
        count(&db, "SELECT count(*) FROM subject_keys"),
        0,
        "no key survives"
    );
    let store = SqliteStore::open(&db).await.expect("open");
    for subject in &subjects {
        let events = store.read_stream(&subject.stream(), 0).await.expect("read");
        let types: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
        assert_eq!(
            types.iter().filter(|t| **t == "PurgeExecuted").count(),
            1,
            "{subject}: {types:?}"
        );
        assert!(!dir.path().join("blobs").join(subject.to_string()).exists());
    }
}
