//! Crash durability: a child appends and prints each acknowledged position; it is killed with
//! SIGKILL mid-run. After a restart every acknowledged event is there and `store verify`
//! passes. Run for both backends, several kill cycles each.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::Stdio;

use videoamt_adapters::store::StoreLocation;
use videoamt_core::event::StreamId;

use crate::videoamt;

/// Starts a probe run, lets it acknowledge `kill_after` appends, kills it with SIGKILL and
/// returns every acknowledged (position, n).
fn append_then_kill(store: &str, kill_after: usize) -> Vec<(u64, u64)> {
    let mut child = videoamt()
        .args([
            "--store", store, "store", "probe", "--run", "crash", "--count", "1000000",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn probe");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut acknowledged = Vec::new();
    while acknowledged.len() < kill_after {
        let line = lines
            .next()
            .expect("the probe keeps appending")
            .expect("read");
        acknowledged.push(parse(&line));
    }
    child.kill().expect("SIGKILL");
    // Lines written before the kill are acknowledged too.
    for line in lines {
        acknowledged.push(parse(&line.expect("read")));
    }
    child.wait().expect("reap");
    acknowledged
}

fn parse(line: &str) -> (u64, u64) {
    let (position, n) = line.split_once(' ').expect("`position n`");
    (position.parse().expect("position"), n.parse().expect("n"))
}

async fn crash_cycles(store: &str) {
    let mut acknowledged = BTreeMap::new();
    for (cycle, kill_after) in [(0, 150), (1, 400), (2, 50)] {
        let acked = append_then_kill(store, kill_after);
        assert!(acked.len() >= kill_after, "cycle {cycle}");
        acknowledged.extend(acked);

        let verify = videoamt()
            .args(["--store", store, "store", "verify"])
            .output()
            .expect("verify");
        assert!(
            verify.status.success(),
            "cycle {cycle}: {}",
            String::from_utf8_lossy(&verify.stderr)
        );
    }

    let opened = StoreLocation::parse(store)
        .expect("location")
        .open()
        .await
        .expect("reopen");
    let stream = StreamId::parse("probe-crash").expect("valid");
    let stored: BTreeMap<u64, u64> = opened
        .read_stream(&stream, 0)
        .await
        .expect("read")
        .iter()
        .map(|e| {
            let n = e.payload.parse::<serde_json::Value>().expect("json")["n"]
                .as_u64()
                .expect("n");
            (e.global_position, n)
        })
        .collect();
    for (position, n) in &acknowledged {
        assert_eq!(
            stored.get(position),
            Some(n),
            "acknowledged event at {position} is lost"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_keeps_every_acknowledged_append_across_sigkill() {
    let dir = tempfile::tempdir().expect("temp dir");
    crash_cycles(&format!(
        "sqlite:{}",
        dir.path().join("events.db").display()
    ))
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_keeps_every_acknowledged_append_across_sigkill() {
    use videoamt_adapters::store::postgres::{ScratchDatabase, test_server_url};
    let Some(server) = test_server_url().await else {
        return;
    };
    let db = ScratchDatabase::create(&server, "crash")
        .await
        .expect("scratch database");
    crash_cycles(&db.url()).await;
    db.drop_now().await.expect("drop scratch database");
}
