//! PostgreSQL failover under booking load: a primary and a synchronous standby on loopback,
//! `videoamt serve` given both hosts with `target_session_attrs=read-write`, the primary killed
//! with SIGKILL and the standby promoted while clients book. Every booking acknowledged with
//! 201 must be in the promoted standby's log, `store verify` must pass and the read models catch
//! up, and the same `serve` process books again without a restart. The setup is the one
//! `docs/operations/postgres-ha.md` describes, made with the server's own `initdb`,
//! `pg_basebackup` and `pg_ctl` in a temporary folder, so that nothing of the machine's own
//! clusters is touched.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::http;
use crate::mail::{free_port, listening};

/// The newest PostgreSQL server programs of the machine (Debian's layout).
fn pg_bin(program: &str) -> Option<PathBuf> {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("bin").join(program).exists())
        .collect();
    versions.sort_by_key(|p| {
        p.file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.parse::<u32>().ok())
    });
    versions.pop().map(|p| p.join("bin").join(program))
}

/// `program args…` as the `postgres` user (the server refuses to run as root).
fn as_postgres(program: &Path) -> Command {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    if root {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(program);
        command
    } else {
        Command::new(program)
    }
}

fn run(mut command: Command, what: &str) {
    let out = command
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what}: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// One server of the pair: its data folder and port.
struct Server {
    data: PathBuf,
    port: u16,
}

impl Server {
    fn ctl(&self, args: &[&str]) -> Command {
        let mut command = as_postgres(&pg_bin("pg_ctl").expect("pg_ctl"));
        command.arg("-D").arg(&self.data).args(args);
        command
    }

    fn start(&self, what: &str) {
        let log = self.data.with_extension("log");
        let mut command = self.ctl(&["-w", "-t", "60", "start", "-l"]);
        command.arg(&log);
        run(command, what);
    }

    /// The postmaster's process id, from its pid file.
    fn postmaster(&self) -> i32 {
        let pid = std::fs::read_to_string(self.data.join("postmaster.pid")).expect("pid file");
        pid.lines()
            .next()
            .and_then(|l| l.trim().parse().ok())
            .expect("a pid")
    }

    fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }
}

/// A primary with a synchronous standby in a temporary folder; both stopped when dropped.
struct Pair {
    _dir: tempfile::TempDir,
    primary: Server,
    standby: Server,
}

impl Drop for Pair {
    fn drop(&mut self) {
        for server in [&self.primary, &self.standby] {
            let _ = server
                .ctl(&["-m", "immediate", "stop"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

impl Pair {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        // The server runs as `postgres` and must own its folders.
        run(
            {
                let mut c = Command::new("chown");
                c.arg("postgres:postgres").arg(dir.path());
                c
            },
            "chown",
        );
        let primary = Server {
            data: dir.path().join("primary"),
            port: free_port(),
        };
        let standby = Server {
            data: dir.path().join("standby"),
            port: free_port(),
        };
        let mut initdb = as_postgres(&pg_bin("initdb").expect("initdb"));
        initdb
            .arg("-D")
            .arg(&primary.data)
            .args(["-U", "postgres", "--auth=trust", "--no-sync"]);
        run(initdb, "initdb");
        let socket = dir.path().display().to_string();
        append(
            &primary.data.join("postgresql.conf"),
            &format!(
                "port = {}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{socket}'\n\
                 wal_level = replica\nmax_wal_senders = 4\nsynchronous_commit = on\n\
                 synchronous_standby_names = 'standby'\nshared_buffers = 32MB\n\
                 max_connections = 60\n",
                primary.port
            ),
        );
        primary.start("the primary starts");
        let mut base = as_postgres(&pg_bin("pg_basebackup").expect("pg_basebackup"));
        base.arg("-D")
            .arg(&standby.data)
            .args(["-h", "127.0.0.1", "-p", &primary.port.to_string()])
            .args(["-U", "postgres", "-X", "stream", "-R", "--no-sync"]);
        run(base, "pg_basebackup");
        // The standby names itself as the one the primary waits for; `-R` wrote its
        // connection into postgresql.auto.conf, which wins over postgresql.conf, so the name
        // goes there too.
        append(
            &standby.data.join("postgresql.conf"),
            &format!("port = {}\n", standby.port),
        );
        append(
            &standby.data.join("postgresql.auto.conf"),
            &format!(
                "primary_conninfo = 'host=127.0.0.1 port={} user=postgres \
                 application_name=standby'\n",
                primary.port
            ),
        );
        standby.start("the standby starts");
        Self {
            _dir: dir,
            primary,
            standby,
        }
    }
}

fn append(file: &Path, text: &str) {
    use std::io::Write as _;
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(file)
        .expect("config file");
    f.write_all(text.as_bytes()).expect("written");
}

async fn query_i64(url: &str, sql: &str) -> Option<i64> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .ok()?;
    tokio::spawn(connection);
    client.query_one(sql, &[]).await.ok()?.try_get(0).ok()
}

async fn query_text(url: &str, sql: &str) -> Option<String> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .ok()?;
    tokio::spawn(connection);
    client.query_opt(sql, &[]).await.ok()??.try_get(0).ok()
}

/// What the booking clients saw.
#[derive(Default)]
struct Seen {
    /// Appointment ids answered with 201, and when.
    acknowledged: Vec<(String, Instant)>,
    refused: usize,
    /// The last refusal, for the failure message.
    last_refusal: String,
}

/// Books the starts `starts` one after the other on `addr` until `until`, as a client that
/// tries a booking again while it gets no answer or a 5xx, and goes on to the next slot once it
/// was acknowledged or refused for good (a slot taken, say, by its own unacknowledged try).
async fn client(
    addr: String,
    starts: Vec<String>,
    seen: Arc<Mutex<Seen>>,
    n: usize,
    until: Instant,
) {
    for (i, start) in starts.into_iter().enumerate() {
        let booking = serde_json::json!({
            "tenant": "ettlingen",
            "services": ["personalausweis"],
            "start": start,
            "contact": {"name": format!("Erika Mustermann {n}-{i}"),
                        "email": format!("erika.{n}.{i}@example.org")},
            "privacy_accepted": true
        });
        loop {
            if Instant::now() > until {
                return;
            }
            let answer = tokio::time::timeout(
                Duration::from_secs(10),
                http::post(
                    &addr,
                    "/api/v1/appointments",
                    "application/json",
                    &booking.to_string(),
                ),
            )
            .await;
            let done = {
                let mut seen = seen.lock().expect("lock");
                match answer {
                    Ok(answer) if answer.status == 201 => {
                        let body: serde_json::Value =
                            serde_json::from_str(&answer.body).expect("json");
                        let id = body["appointment"]["id"]
                            .as_str()
                            .expect("an id")
                            .to_owned();
                        seen.acknowledged.push((id, Instant::now()));
                        true
                    }
                    // Not acknowledged, so nothing is promised: 503 while no primary answers.
                    Ok(answer) => {
                        seen.refused += 1;
                        seen.last_refusal = format!("{} {}", answer.status, answer.body);
                        !answer.status.is_server_error()
                    }
                    Err(_) => {
                        seen.refused += 1;
                        seen.last_refusal = "no answer within 10 s".to_owned();
                        false
                    }
                }
            };
            tokio::time::sleep(Duration::from_millis(60)).await;
            if done {
                break;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bookings_acknowledged_before_a_failover_survive_it_and_serve_reconnects() {
    // A test of PostgreSQL itself beside ours: it needs the server programs, which
    // `scripts/test` installs.
    if pg_bin("initdb").is_none() {
        assert!(
            std::env::var("CI").map_or(true, |v| v != "true"),
            "the failover drill needs PostgreSQL's server programs in CI"
        );
        eprintln!("skipped: no PostgreSQL server programs under /usr/lib/postgresql");
        return;
    }
    let pair = Pair::new();
    let admin = pair.primary.url("postgres");
    let mut in_sync = false;
    for _ in 0..600 {
        let state = query_text(
            &admin,
            "SELECT sync_state FROM pg_stat_replication WHERE application_name = 'standby'",
        )
        .await;
        if state.as_deref() == Some("sync") {
            in_sync = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(in_sync, "the standby never came in sync");
    let (client_, connection) = tokio_postgres::connect(&admin, tokio_postgres::NoTls)
        .await
        .expect("the primary");
    tokio::spawn(connection);
    client_
        .batch_execute("CREATE DATABASE videoamt")
        .await
        .expect("database");
    drop(client_);

    let both = format!(
        "postgres://postgres@127.0.0.1:{},127.0.0.1:{}/videoamt?target_session_attrs=read-write",
        pair.primary.port, pair.standby.port
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let log = dir.path().join("serve.log");
    let mut command = crate::videoamt();
    command
        .args(["--store", &both])
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("VIDEOAMT_LOG", "warn")
        .env("VIDEOAMT_LEASE_SECONDS", "3")
        // The clients book far more than a citizen would, all from loopback.
        .env("VIDEOAMT_RATE_LIMITS", "100000,100000,1000")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).expect("log file"));
    let (serve, addr) = listening(command, Some(&log));
    let serve_pid = serve.0.id();

    // Two clients book free slots of the coming weeks, one after the other.
    let mut starts: Vec<String> = Vec::new();
    for weeks in [1, 3] {
        let from = (time::OffsetDateTime::now_utc() + time::Duration::weeks(weeks)).date();
        let slots = http::get(
            &addr,
            &format!("/api/v1/slots?tenant=ettlingen&services=personalausweis&from={from}&days=14"),
        )
        .await;
        assert_eq!(slots.status, 200, "{}", slots.body);
        let slots: serde_json::Value = serde_json::from_str(&slots.body).expect("json");
        starts.extend(
            slots["days"]
                .as_array()
                .expect("days")
                .iter()
                .flat_map(|d| d["starts"].as_array().expect("starts").clone())
                .filter_map(|s| s.as_str().map(str::to_owned)),
        );
    }
    assert!(starts.len() >= 120, "free starts: {}", starts.len());
    let seen = Arc::new(Mutex::new(Seen::default()));
    let halves: Vec<Vec<String>> = vec![
        starts.iter().step_by(2).take(60).cloned().collect(),
        starts.iter().skip(1).step_by(2).take(60).cloned().collect(),
    ];
    let clients: Vec<_> = halves
        .into_iter()
        .enumerate()
        .map(|(n, starts)| {
            let until = Instant::now() + Duration::from_secs(40);
            tokio::spawn(client(addr.clone(), starts, seen.clone(), n, until))
        })
        .collect();

    // Under load: the primary is killed, the standby promoted.
    crate::mail::wait_until(
        "bookings before the failover",
        Duration::from_secs(60),
        || (seen.lock().expect("lock").acknowledged.len() >= 20).then_some(()),
    );
    let killed_at = Instant::now();
    let before = seen.lock().expect("lock").acknowledged.len();
    run(
        {
            let mut c = Command::new("kill");
            c.args(["-KILL", &pair.primary.postmaster().to_string()]);
            c
        },
        "SIGKILL to the primary",
    );
    run(pair.standby.ctl(&["-w", "-t", "60", "promote"]), "promote");
    // The promoted server inherited `synchronous_standby_names` and would wait for a standby
    // that is gone; until one is rebuilt it runs alone, as the operator's procedure (and
    // Patroni) does it.
    let (alone, connection) =
        tokio_postgres::connect(&pair.standby.url("postgres"), tokio_postgres::NoTls)
            .await
            .expect("the promoted server");
    tokio::spawn(connection);
    for sql in [
        "ALTER SYSTEM SET synchronous_standby_names = ''",
        "SELECT pg_reload_conf()",
    ] {
        alone
            .batch_execute(sql)
            .await
            .expect("no synchronous standby for now");
    }
    drop(alone);
    let promoted = killed_at.elapsed();
    for client in clients {
        client.await.expect("a client");
    }
    let seen = Arc::try_unwrap(seen)
        .ok()
        .expect("the clients are done")
        .into_inner()
        .expect("lock");
    let after: Vec<Duration> = seen
        .acknowledged
        .iter()
        .filter(|(_, at)| *at > killed_at)
        .map(|(_, at)| at.duration_since(killed_at))
        .collect();
    let first_after = after.iter().min().copied();
    eprintln!(
        "failover: {} bookings acknowledged ({before} before the kill, {} after), {} refused \
         during it; standby promoted {} ms after the SIGKILL, first booking acknowledged again \
         after {} ms",
        seen.acknowledged.len(),
        after.len(),
        seen.refused,
        promoted.as_millis(),
        first_after.map_or(-1, |d| d.as_millis() as i64),
    );
    assert!(
        !after.is_empty(),
        "serve did not book again after the failover; the last refusal: {}\nprocesses:\n{}\nserve's log:\n{}",
        seen.last_refusal,
        String::from_utf8_lossy(
            &Command::new("sh")
                .args(["-c", "ps -eo pid,stat,wchan:20,args | grep -E 'postgres|videoamt' | grep -v grep; ss -tnp | grep -E 'videoamt|postgres'"])
                .output()
                .map(|o| o.stdout)
                .unwrap_or_default()
        ),
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    assert_eq!(serve.0.id(), serve_pid);

    // Every acknowledged booking is in the promoted standby's log.
    let new_primary = pair.standby.url("videoamt");
    let ids: Vec<String> = seen
        .acknowledged
        .iter()
        .map(|(id, _)| format!("'appointment-{id}'"))
        .collect();
    let present = query_i64(
        &new_primary,
        &format!(
            "SELECT count(DISTINCT stream_id) FROM events WHERE stream_id IN ({})",
            ids.join(",")
        ),
    )
    .await
    .expect("the new primary answers");
    assert_eq!(
        present,
        seen.acknowledged.len() as i64,
        "acknowledged bookings lost in the failover"
    );
    eprintln!(
        "failover: {present} of {} acknowledged bookings present, 0 lost",
        seen.acknowledged.len()
    );

    // The read models catch up on the new primary: every one of them at the log's head.
    let models = query_i64(&new_primary, "SELECT count(*) FROM projection_checkpoints")
        .await
        .expect("checkpoints");
    assert!(models >= 3, "read models with a checkpoint: {models}");
    let behind = "SELECT count(*) FROM projection_checkpoints \
                  WHERE position < (SELECT last FROM event_position)";
    let mut caught_up = false;
    for _ in 0..300 {
        if query_i64(&new_primary, behind).await == Some(0) {
            caught_up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(caught_up, "the read models did not catch up");
    eprintln!("failover: {models} read models at the log's head on the new primary");
    drop(serve);

    // And the log verifies.
    let verify = crate::videoamt()
        .args(["--store", &new_primary])
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .args(["store", "verify"])
        .env("VIDEOAMT_LOG", "warn")
        .output()
        .expect("store verify runs");
    assert!(
        verify.status.success(),
        "store verify: {}\n{}",
        String::from_utf8_lossy(&verify.stdout),
        String::from_utf8_lossy(&verify.stderr)
    );
    drop(pair);
}
