//! Backup and restore drills through the `videoamt` binary, on both backends (ADR 0027): the
//! log and the keys are backed up apart, and restored into an empty store they verify, rebuild
//! alike and pass the deletion verification; a log backup from before a purge, restored with
//! the key backup taken after it, brings nothing purged back.

use std::path::Path;
use std::sync::Arc;

use videoamt_adapters::keys::Kek;
use videoamt_adapters::store::postgres::{ScratchDatabase, test_server_url};
use videoamt_adapters::store::{AdminStore, StoreLocation};
use videoamt_api::app::System;
use videoamt_core::domain::{DomainEvent, SubjectId};
use videoamt_core::keys::{Revealed, reveal};
use videoamt_core::tenant::example_tenants;
use videoamt_projections::runner::Runner;

/// Where the drill's stores live.
enum Backend {
    Sqlite(tempfile::TempDir),
    Postgres(String),
}

/// One store with its data folder (where its KEK lies).
struct Site {
    store: String,
    data: tempfile::TempDir,
    scratch: Option<ScratchDatabase>,
}

/// What a run of the binary gave.
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    #[track_caller]
    fn ok(self) -> String {
        assert_eq!(self.code, Some(0), "{}{}", self.stdout, self.stderr);
        self.stdout
    }
}

impl Backend {
    async fn sqlite() -> Self {
        Self::Sqlite(tempfile::tempdir().expect("temp dir"))
    }

    async fn postgres() -> Option<Self> {
        Some(Self::Postgres(test_server_url().await?))
    }

    /// A store that does not exist yet: a file name, or an empty scratch database.
    async fn site(&self, name: &str) -> Site {
        let data = tempfile::tempdir().expect("temp dir");
        match self {
            Self::Sqlite(dir) => Site {
                store: format!(
                    "sqlite:{}",
                    dir.path().join(name).join("events.db").display()
                ),
                data,
                scratch: None,
            },
            Self::Postgres(server) => {
                let scratch = ScratchDatabase::create(server, "backup")
                    .await
                    .expect("scratch database");
                Site {
                    store: scratch.url(),
                    data,
                    scratch: Some(scratch),
                }
            }
        }
    }

    /// A site for a restore: an empty store whose data folder has `from`'s KEK, as the
    /// operator brings it from where it is kept apart from every backup.
    async fn restore_site(&self, name: &str, from: &Site) -> Site {
        let site = self.site(name).await;
        std::fs::copy(from.data.path().join("kek"), site.data.path().join("kek")).expect("kek");
        site
    }
}

impl Site {
    fn run(&self, args: &[&str]) -> Run {
        let out = crate::videoamt()
            .args(["--store", &self.store])
            .arg("--data-dir")
            .arg(self.data.path())
            .args(args)
            .env("VIDEOAMT_LOG", "warn")
            .output()
            .expect("runs");
        Run {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    fn location(&self) -> StoreLocation {
        StoreLocation::parse(&self.store).expect("a store")
    }

    async fn open(&self) -> Arc<dyn AdminStore> {
        self.location().open().await.expect("open")
    }

    /// The store with the KEK of the data folder, as `videoamt` would open it.
    async fn system(&self) -> System {
        let kek = Kek::load(self.data.path()).expect("kek");
        let tenants = example_tenants().expect("valid");
        System::new(self.open().await, kek, self.data.path(), tenants)
    }

    async fn done(self) {
        if let Some(db) = self.scratch {
            db.drop_now().await.expect("drop scratch database");
        }
    }
}

fn backup_log(site: &Site, to: &Path) -> String {
    site.run(&["backup", "log", "--to", &to.display().to_string()])
        .ok()
}

fn backup_keys(site: &Site, to: &Path) -> String {
    site.run(&["backup", "keys", "--to", &to.display().to_string()])
        .ok()
}

fn restore(site: &Site, log: &Path, keys: &Path) -> Run {
    site.run(&[
        "restore",
        "--log",
        &log.display().to_string(),
        "--keys",
        &keys.display().to_string(),
    ])
}

/// The subjects a key backup holds keys of.
fn subjects_in(keys: &Path) -> Vec<SubjectId> {
    std::fs::read_to_string(keys)
        .expect("read")
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["subject"].as_str().map(str::to_owned))
        .map(|s| SubjectId(s.parse().expect("a UUID")))
        .collect()
}

/// The name on the subject's booking, opened with the site's keys.
async fn name_of(system: &System, subject: SubjectId) -> Revealed {
    let decoded = |events: Vec<videoamt_core::event::RecordedEvent>| -> Vec<DomainEvent> {
        events
            .iter()
            .map(|e| {
                DomainEvent::from_payload(e.event_type.as_str(), e.schema_version, &e.payload)
                    .expect("decode")
            })
            .collect()
    };
    let read = |stream| async move { system.store.read_stream(&stream, 0).await.expect("read") };
    let appointment = decoded(read(subject.stream()).await)
        .into_iter()
        .find_map(|e| match e {
            DomainEvent::SubjectKeyIssued(k) => Some(k.appointment),
            _ => None,
        })
        .expect("the subject's key event");
    let booking = decoded(read(appointment.stream()).await)
        .into_iter()
        .find_map(|e| match e {
            DomainEvent::AppointmentBooked(b) => Some(b),
            _ => None,
        })
        .expect("the booking");
    reveal(system.keys.as_ref(), &booking.contact.name)
        .await
        .expect("opens or reads as erased")
}

/// Every projection's documents of `store`, in name order.
async fn documents(
    store: &Arc<dyn AdminStore>,
) -> Vec<Vec<(videoamt_core::readmodel::DocKey, serde_json::Value)>> {
    let mut all = Vec::new();
    for p in videoamt_projections::all(Arc::new(example_tenants().expect("valid"))) {
        all.push(store.dump(p.name()).await.expect("dump"));
    }
    all
}

/// What the log backup file holds as bytes one can search: the SQLite file itself, or the
/// SQL script `pg_restore` makes of a dump (whose own bytes are compressed).
fn readable(log: &Path, backend: &Backend) -> Vec<u8> {
    match backend {
        Backend::Sqlite(_) => std::fs::read(log).expect("read"),
        Backend::Postgres(_) => {
            let out = std::process::Command::new("pg_restore")
                .arg("--file=-")
                .arg(log)
                .output()
                .expect("pg_restore runs");
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            out.stdout
        }
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// How a value of `bytes` reads in the backup: raw in the SQLite file, hex in the SQL script.
fn as_stored(bytes: &[u8], backend: &Backend) -> Vec<u8> {
    match backend {
        Backend::Sqlite(_) => bytes.to_vec(),
        Backend::Postgres(_) => bytes
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
            .into_bytes(),
    }
}

/// Purged and live subjects, a staff session, a sign-on and a lease; backed up apart and
/// restored into an empty store, the log verifies, the read models are the source's and equal
/// a rebuild, purged values read as erased, live ones open, and the deletion verification
/// passes. The log backup holds no key and no session, not even in a free page. A second
/// restore into the now filled store, a cut-off key backup and a key backup older than the
/// log backup are refused with exit code 2, writing nothing.
async fn a_restore_into_an_empty_store_verifies_and_rebuilds_alike(backend: Backend) {
    let backups = tempfile::tempdir().expect("temp dir");
    let source = backend.site("source").await;
    let store = source.open().await;
    let purged = crate::due_subjects_in(store.clone(), source.data.path(), 3).await;
    assert!(
        source
            .run(&["retention", "run"])
            .ok()
            .contains("gelöscht: 3")
    );
    source.run(&["retention", "verify", "--all"]).ok();
    let live = crate::due_subjects_in(store.clone(), source.data.path(), 2).await;
    // What lives only minutes, and must not travel with the log.
    let session_key = [0x5au8; 32];
    let now = time::OffsetDateTime::now_utc();
    store
        .open_session(
            session_key,
            videoamt_core::staff_session::SessionRecord {
                tenant: videoamt_core::event::TenantId::parse("ettlingen").expect("tenant"),
                login: videoamt_core::domain::account::Login::parse("a.becker").expect("login"),
                epoch: 0,
                directory: false,
                expires: now + time::Duration::hours(8),
                seen: now,
            },
        )
        .await
        .expect("session");
    store
        .put_sign_on(
            [0xa5; 32],
            "anmeldung-unterwegs".into(),
            now + time::Duration::minutes(10),
        )
        .await
        .expect("sign-on");
    assert!(
        store
            .acquire(
                "scheduler",
                "halter-im-test",
                std::time::Duration::from_secs(60)
            )
            .await
            .expect("lease")
    );
    let wrapped = store.wrapped_keys_after(None, 100).await.expect("keys");
    assert_eq!(wrapped.len(), 2, "the live subjects' keys");

    let log = backups.path().join("log.bak");
    let keys = backups.path().join("keys.jsonl");
    assert!(backup_log(&source, &log).contains("ohne Schlüssel"));
    assert!(backup_keys(&source, &keys).contains("2 Schlüssel"));
    let mut held = subjects_in(&keys);
    held.sort();
    let mut wanted = live.clone();
    wanted.sort();
    assert_eq!(held, wanted, "the key backup holds the live subjects' keys");

    #[cfg(unix)]
    for file in [&log, &keys] {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(file)
            .expect("backup")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{}", file.display());
    }
    let text = readable(&log, &backend);
    for key in &wrapped {
        assert!(
            !contains(&text, &as_stored(&key.wrapped, &backend)),
            "a wrapped key in the log backup"
        );
    }
    assert!(
        !contains(&text, &as_stored(&session_key, &backend)),
        "a session in the log backup"
    );
    for left_out in ["anmeldung-unterwegs", "halter-im-test"] {
        assert!(
            !contains(&text, left_out.as_bytes()),
            "{left_out} in the log backup"
        );
    }
    assert!(contains(&text, b"PurgeExecuted"), "the log is in it");
    if let (Backend::Sqlite(_), StoreLocation::Sqlite(db)) = (&backend, source.location()) {
        let mut wal = log.clone().into_os_string();
        wal.push("-wal");
        assert!(!Path::new(&wal).exists(), "one file");
        let onto_itself = source.run(&["backup", "log", "--to", &db.display().to_string()]);
        assert_eq!(onto_itself.code, Some(1), "{}", onto_itself.stderr);
        assert!(
            onto_itself.stderr.contains("des Speichers selbst"),
            "{}",
            onto_itself.stderr
        );
    }

    let target = backend.restore_site("target", &source).await;
    let restored = restore(&target, &log, &keys).ok();
    assert!(restored.contains("2 Schlüssel"), "{restored}");
    assert!(
        target
            .run(&["store", "verify"])
            .ok()
            .contains("store verify: OK")
    );

    let copy = target.open().await;
    assert!(
        documents(&copy).await == documents(&store).await,
        "the read models came along"
    );
    let projections = videoamt_projections::all(Arc::new(example_tenants().expect("valid")));
    let runner = Runner::new(copy.clone(), copy.clone());
    runner.catch_up(&projections).await.expect("caught up");
    let incremental = documents(&copy).await;
    runner.rebuild(&projections, |_| {}).await.expect("rebuild");
    assert!(
        documents(&copy).await == incremental,
        "the restored read models equal a rebuild"
    );

    let system = target.system().await;
    for &subject in &purged {
        assert_eq!(name_of(&system, subject).await, Revealed::Erased);
    }
    for &subject in &live {
        assert!(
            matches!(name_of(&system, subject).await, Revealed::Text(t) if t.starts_with("Person ")),
            "a live subject's name opens"
        );
    }
    let verified = target
        .run(&["retention", "verify", &purged[0].to_string()])
        .ok();
    assert!(verified.contains("Löschung bestätigt"), "{verified}");
    assert!(
        target
            .run(&["retention", "run"])
            .ok()
            .contains("gelöscht: 2")
    );
    let all = target.run(&["retention", "verify", "--all"]).ok();
    assert!(all.contains("2 geprüft, 0 fehlgeschlagen"), "{all}");

    // Refused: a store with events, a key backup cut off, a key backup older than the log's.
    let events = copy.last_position().await.expect("head");
    let again = restore(&target, &log, &keys);
    assert_eq!(again.code, Some(2), "{}", again.stderr);
    assert!(again.stderr.contains("nicht leer"), "{}", again.stderr);
    assert_eq!(
        copy.last_position().await.expect("head"),
        events,
        "nothing written"
    );

    let empty = backend.restore_site("empty", &source).await;
    let cut = backups.path().join("cut.jsonl");
    let whole = std::fs::read_to_string(&keys).expect("read");
    let lines: Vec<&str> = whole.lines().collect();
    std::fs::write(&cut, lines[..lines.len() - 1].join("\n")).expect("write");
    let refused = restore(&empty, &log, &cut);
    assert_eq!(refused.code, Some(2), "{}", refused.stderr);
    assert!(
        refused.stderr.contains("abgeschnitten"),
        "{}",
        refused.stderr
    );

    crate::due_subjects_in(store.clone(), source.data.path(), 1).await;
    let newer = backups.path().join("newer.bak");
    backup_log(&source, &newer);
    let refused = restore(&empty, &newer, &keys);
    assert_eq!(refused.code, Some(2), "{}", refused.stderr);
    assert!(
        refused.stderr.contains("älter als die Protokollsicherung"),
        "{}",
        refused.stderr
    );
    if let StoreLocation::Sqlite(db) = empty.location() {
        assert!(!db.exists(), "a refused restore creates nothing");
    }
    assert_eq!(empty.open().await.last_position().await.expect("head"), 0);

    for site in [source, target, empty] {
        site.done().await;
    }
}

/// A log backup taken before a purge, restored with the key backup taken after it: the purged
/// subjects read as erased, their purge timers run again, find no key and record the purge,
/// and the verification passes. Restored with the key backup from before the purge instead,
/// their names open again until the next purge round: why the procedure takes the newest key
/// backup, which the scheduler writes after every purge round.
async fn a_restore_from_before_a_purge_does_not_resurrect(backend: Backend) {
    let backups = tempfile::tempdir().expect("temp dir");
    let source = backend.site("source").await;
    let subjects = crate::due_subjects_in(source.open().await, source.data.path(), 2).await;
    let log = backups.path().join("log-before.bak");
    let keys_before = backups.path().join("keys-before.jsonl");
    let keys_after = backups.path().join("keys-after.jsonl");
    backup_log(&source, &log);
    backup_keys(&source, &keys_before);
    let purged = source.run(&["retention", "run"]).ok();
    assert!(purged.contains("Schlüssel vernichtet: 2"), "{purged}");
    backup_keys(&source, &keys_after);
    let (before, after) = (subjects_in(&keys_before), subjects_in(&keys_after));
    for subject in &subjects {
        assert!(before.contains(subject), "the old key backup holds the key");
        assert!(!after.contains(subject), "the new one does not");
    }

    let target = backend.restore_site("target", &source).await;
    assert!(
        restore(&target, &log, &keys_after)
            .ok()
            .contains("0 Schlüssel")
    );
    let system = target.system().await;
    for &subject in &subjects {
        assert_eq!(name_of(&system, subject).await, Revealed::Erased);
    }
    let again = target.run(&["retention", "run"]).ok();
    assert!(
        again.contains("gelöscht: 2") && again.contains("Schlüssel vernichtet: 0"),
        "the timers run again and find no key: {again}"
    );
    // The keys are gone, so are the verifier's manifests (never in a log backup, ADR 0024):
    // the plaintext search cannot run for these two, and the verification says so instead of
    // passing.
    let verified = target.run(&["retention", "verify", "--all"]);
    assert_eq!(verified.code, Some(1), "{}", verified.stderr);
    assert!(
        verified.stdout.contains("2 geprüft, 2 fehlgeschlagen")
            && verified.stdout.contains("Manifest der Löschprüfung fehlt"),
        "{}",
        verified.stdout
    );

    // The same log with the old key backup, into a store that was opened (migrated) empty.
    let stale = backend.restore_site("stale", &source).await;
    drop(stale.open().await);
    assert!(
        restore(&stale, &log, &keys_before)
            .ok()
            .contains("2 Schlüssel")
    );
    let system = stale.system().await;
    for &subject in &subjects {
        assert!(
            matches!(name_of(&system, subject).await, Revealed::Text(_)),
            "an old key backup brings the purged name back"
        );
    }
    let taken = stale.run(&["retention", "run"]).ok();
    assert!(taken.contains("Schlüssel vernichtet: 2"), "{taken}");

    for site in [source, target, stale] {
        site.done().await;
    }
}

/// Without `pg_dump` on the PATH the log backup of a PostgreSQL store says what is missing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_pg_dump_is_named() {
    let Some(backend) = Backend::postgres().await else {
        return;
    };
    let site = backend.site("source").await;
    drop(site.open().await);
    let backups = tempfile::tempdir().expect("temp dir");
    let to = backups.path().join("log.bak");
    let out = crate::videoamt()
        .args(["--store", &site.store, "backup", "log", "--to"])
        .arg(&to)
        .env("PATH", "")
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("pg_dump ist nicht installiert") && stderr.contains("postgresql-client"),
        "{stderr}"
    );
    assert!(!to.exists());
    site.done().await;
}

/// The scheduler keeps the key backup the settings name: after a round that purged, the file
/// there no longer holds the purged subjects' keys, and it was taken after their purge.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scheduler_rewrites_the_key_backup_after_a_purge_round() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("events.db");
    let subjects = crate::due_subjects(&db, dir.path(), 2).await;
    let keys = dir.path().join("backups").join("keys.jsonl");
    let store: Arc<dyn AdminStore> = Arc::new(
        videoamt_adapters::store::sqlite::SqliteStore::open(&db)
            .await
            .expect("open"),
    );
    videoamt_adapters::store::backup::backup_keys(store.as_ref(), &keys)
        .await
        .expect("first key backup");
    assert_eq!(subjects_in(&keys).len(), 2);

    let settings = videoamt_api::app::Settings {
        key_backup: Some(keys.clone()),
        ..Default::default()
    };
    let system = System::new(
        store.clone(),
        Kek::load(dir.path()).expect("kek"),
        dir.path(),
        example_tenants().expect("valid"),
    )
    .with_settings(settings);
    let projections = videoamt_projections::all(system.tenants.clone());
    Runner::new(store.clone(), store.clone())
        .catch_up(&projections)
        .await
        .expect("timers caught up");
    // Told to stop before it starts, the scheduler runs exactly one round.
    let (stop, stopped) = tokio::sync::watch::channel(false);
    stop.send(true).expect("receiver");
    videoamt_api::workers::retention::schedule(
        system,
        projections,
        std::time::Duration::from_secs(3600),
        stopped,
    )
    .await;

    assert!(
        subjects_in(&keys).is_empty(),
        "the purged keys left the backup"
    );
    let header: serde_json::Value = serde_json::from_str(
        std::fs::read_to_string(&keys)
            .expect("read")
            .lines()
            .next()
            .expect("header"),
    )
    .expect("JSON");
    let head = store.last_position().await.expect("head");
    let executed = store
        .read_all(0, 10_000)
        .await
        .expect("read")
        .into_iter()
        .filter(|e| e.event_type.as_str() == "PurgeExecuted")
        .map(|e| e.global_position)
        .collect::<Vec<_>>();
    assert_eq!(executed.len(), subjects.len());
    let position = header["position"].as_u64().expect("position");
    assert!(
        executed.iter().all(|&p| p <= position) && position <= head,
        "taken after the purge: {position}, purges at {executed:?}"
    );
}

on_both_backends!(
    Backend:
    a_restore_into_an_empty_store_verifies_and_rebuilds_alike,
    a_restore_from_before_a_purge_does_not_resurrect,
);
