//! Crash safety of the projection runner: `videoamt projections run` folds a generated log and
//! is killed with SIGKILL several times mid-run. After a final run, every projection is at the
//! log's end, the audit timeline holds exactly one entry per event (nothing applied twice or
//! skipped), and every table equals a rebuild from 0.

use std::sync::Arc;
use std::time::Duration;

use videoamt_adapters::store::AdminStore;
use videoamt_adapters::store::sqlite::SqliteStore;
use videoamt_core::tenant::example_tenants;
use videoamt_projections::runner::Runner;
use videoamt_projections::{all, audit};
use videoamt_scenarios::generate::{BulkSpec, bulk_log};

use crate::videoamt;

async fn open(path: &std::path::Path) -> Arc<dyn AdminStore> {
    Arc::new(SqliteStore::open(path).await.expect("open"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_runner_resumes_without_applying_twice_or_skipping() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("events.db");
    let head = {
        let store = open(&path).await;
        let spec = BulkSpec {
            target_events: 20_000,
            big_record_events: 300,
        };
        bulk_log(store.clone(), &spec, |_| {})
            .await
            .expect("generated");
        store.last_position().await.expect("head")
    };
    let location = format!("sqlite:{}", path.display());
    let tenants = Arc::new(example_tenants().expect("valid"));
    let projections = all(tenants);

    let mut killed_mid_run = 0;
    let mut checkpoints_seen = Vec::new();
    // Kill after progress, not after a pause: how fast the runner is must not decide whether
    // the kills land mid-run. Each round waits until some projection moved on by an eighth of
    // the log, then kills.
    let furthest = || -> u64 {
        let conn = rusqlite::Connection::open(&path).expect("open");
        conn.busy_timeout(Duration::from_secs(5)).expect("timeout");
        conn.query_row(
            "SELECT coalesce(max(position), 0) FROM projection_checkpoints",
            [],
            |r| r.get::<_, i64>(0),
        )
        .map(|p| u64::try_from(p).unwrap_or_default())
        .unwrap_or_default()
    };
    for _ in 0..4 {
        let target = furthest() + head / 8;
        let mut child = videoamt()
            .args(["--store", &location, "projections", "run"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn runner");
        let started = std::time::Instant::now();
        while child.try_wait().expect("poll").is_none()
            && furthest() < target
            && started.elapsed() < Duration::from_secs(60)
        {
            std::thread::sleep(Duration::from_millis(2));
        }
        if child.try_wait().expect("poll").is_none() {
            child.kill().expect("SIGKILL");
            killed_mid_run += 1;
        }
        child.wait().expect("reap");
        let store = open(&path).await;
        let mut at = Vec::new();
        for p in &projections {
            at.push(
                store
                    .checkpoint(p.name())
                    .await
                    .expect("checkpoint")
                    .position,
            );
        }
        checkpoints_seen.push(at);
    }
    eprintln!("checkpoints after each kill (head {head}): {checkpoints_seen:?}");
    assert!(
        killed_mid_run >= 2,
        "the runner finished before it could be killed"
    );
    assert!(
        checkpoints_seen
            .iter()
            .flatten()
            .any(|&position| 0 < position && position < head),
        "no kill landed between the start and the end: {checkpoints_seen:?}"
    );

    let finished = videoamt()
        .args(["--store", &location, "projections", "run"])
        .output()
        .expect("run to the end");
    assert!(
        finished.status.success(),
        "{}",
        String::from_utf8_lossy(&finished.stderr)
    );

    let store = open(&path).await;
    for p in &projections {
        assert_eq!(
            store
                .checkpoint(p.name())
                .await
                .expect("checkpoint")
                .position,
            head,
            "{} is not at the end",
            p.name()
        );
    }
    // Every event of the generated log belongs to an appointment: one timeline entry each,
    // none twice.
    let mut positions: Vec<u64> = store
        .dump(audit::NAME)
        .await
        .expect("dump")
        .into_iter()
        .filter(|(key, _)| key.kind == "entries")
        .flat_map(|(_, value)| serde_json::from_value::<Vec<u64>>(value).expect("timeline piece"))
        .collect();
    positions.sort_unstable();
    assert_eq!(
        positions,
        (1..=head).collect::<Vec<_>>(),
        "timeline entries against events in the log"
    );

    let mut after_crashes = Vec::new();
    for p in &projections {
        after_crashes.push(store.dump(p.name()).await.expect("dump"));
    }
    Runner::new(store.clone(), store.clone())
        .rebuild(&projections, |_| {})
        .await
        .expect("rebuild");
    for (p, crashed) in projections.iter().zip(after_crashes) {
        assert!(
            store.dump(p.name()).await.expect("dump") == crashed,
            "{} after crashes differs from a rebuild",
            p.name()
        );
    }
}
