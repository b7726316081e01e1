//! The embedded event store: one SQLite file in WAL mode with `synchronous=FULL`.
//!
//! One OS thread owns the write connection and commits groups of appends under
//! `BEGIN IMMEDIATE`, SQLite's database-wide write lock; positions are assigned inside it as
//! `MAX(global_position) + 1`, so they are gap-free and commit in order even when several
//! processes share the file. Reads use a small pool of connections on blocking threads.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::sync::watch;
use uuid::Uuid;
use videoamt_core::domain::SubjectId;
use videoamt_core::event::{GlobalPosition, Payload, RecordedEvent, StreamId, StreamVersion};
use videoamt_core::lease::Leases;
use videoamt_core::readmodel::{
    Change, DocKey, ProjectionCheckpoint, ReadModelError, ReadModelStore,
};
use videoamt_core::staff_session::{SessionKey, SessionRecord, SessionStore};
use videoamt_core::store::{
    AppendBatch, AppendError, Appended, EventStore, EventStream, GroupSnapshot, PlannedOutcome,
    StoreError, StoredIdentity, group_keys, plan_group,
};

use super::{
    AdminStore, RawEvent, StoreStats, VerifyReport, WriteQueue, WriteRequest, to_i64, to_u64,
};
use crate::keys::WrappedKey;

/// How long a writer waits for another process holding the write lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);
/// How often an idle subscription looks for writes by other processes.
const POLL_INTERVAL: Duration = Duration::from_millis(200);
/// Read connections kept open. Opening one costs a file open, the WAL pragma and a fresh page
/// cache, so a server with many concurrent readers (the API under load) keeps enough of them.
const READ_POOL_SIZE: usize = 16;
/// Writes (read models, keys) waiting on blocking threads for the write lock at once.
const WRITE_SLOTS: usize = 4;

/// Versioned schema. Each entry runs once, in order, in its own transaction; the applied
/// versions are kept in `schema_migrations`. Never edit an entry that has shipped: add one.
const MIGRATIONS: &[(u32, &str, &str)] = &[
    (
        1,
        "events table with append-only triggers",
        r#"
    CREATE TABLE events (
        global_position INTEGER PRIMARY KEY,
        stream_id       TEXT    NOT NULL,
        stream_version  INTEGER NOT NULL,
        event_id        BLOB    NOT NULL UNIQUE,
        event_type      TEXT    NOT NULL,
        schema_version  INTEGER NOT NULL,
        tenant          TEXT    NOT NULL,
        correlation_id  BLOB    NOT NULL,
        causation_id    BLOB    NOT NULL,
        actor_role      TEXT    NOT NULL,
        actor_id        TEXT    NOT NULL,
        recorded_at     INTEGER NOT NULL, -- microseconds since the Unix epoch, UTC
        payload         TEXT    NOT NULL,
        UNIQUE (stream_id, stream_version)
    ) STRICT;
    CREATE TRIGGER events_append_only_update BEFORE UPDATE ON events
    BEGIN SELECT RAISE(ABORT, 'videoamt: events are append-only'); END;
    CREATE TRIGGER events_append_only_delete BEFORE DELETE ON events
    BEGIN SELECT RAISE(ABORT, 'videoamt: events are append-only'); END;
    "#,
    ),
    (
        2,
        "read models and projection checkpoints",
        r#"
    CREATE TABLE read_models (
        projection TEXT NOT NULL,
        kind       TEXT NOT NULL,
        key        TEXT NOT NULL,
        value      TEXT NOT NULL,
        PRIMARY KEY (projection, kind, key)
    ) STRICT, WITHOUT ROWID;
    CREATE TABLE projection_checkpoints (
        projection        TEXT PRIMARY KEY,
        position          INTEGER NOT NULL,
        event_recorded_at INTEGER, -- microseconds since the Unix epoch, UTC
        updated_at        TEXT NOT NULL
    ) STRICT;
    "#,
    ),
    (
        3,
        "wrapped data keys of data subjects",
        r#"
    CREATE TABLE subject_keys (
        subject   BLOB NOT NULL PRIMARY KEY,
        wrapped   BLOB NOT NULL,
        issued_at TEXT NOT NULL
    ) STRICT;
    "#,
    ),
    (
        4,
        "staff sessions, sign-ons under way and the duties' leases",
        r#"
    CREATE TABLE staff_sessions (
        key        BLOB    NOT NULL PRIMARY KEY, -- SHA-256 of the cookie value
        tenant     TEXT    NOT NULL,
        login      TEXT    NOT NULL,
        epoch      INTEGER NOT NULL,
        directory  INTEGER NOT NULL,
        expires_at INTEGER NOT NULL, -- microseconds since the Unix epoch, UTC
        seen_at    INTEGER NOT NULL
    ) STRICT;
    CREATE TABLE sign_ons (
        key        BLOB    NOT NULL PRIMARY KEY, -- SHA-256 of the OpenID state
        state      TEXT    NOT NULL,
        expires_at INTEGER NOT NULL
    ) STRICT;
    CREATE TABLE leases (
        duty       TEXT    NOT NULL PRIMARY KEY,
        holder     TEXT    NOT NULL,
        expires_at INTEGER NOT NULL -- milliseconds since the Unix epoch, the store's clock
    ) STRICT;
    "#,
    ),
    (
        5,
        "the deletion verifier's manifests (ADR 0024)",
        r#"
    CREATE TABLE deletion_manifests (
        subject     BLOB NOT NULL,
        fingerprint TEXT NOT NULL, -- the verifier's, under the KEK's key
        PRIMARY KEY (subject, fingerprint)
    ) STRICT, WITHOUT ROWID;
    "#,
    ),
    (
        6,
        "drop the projections' own indexes of stream owners (ADR 0032)",
        // The runner finds an event's appointment itself now; nothing reads these any more.
        "DELETE FROM read_models WHERE kind = 'owner';",
    ),
];

/// The triggers `verify` insists on.
const APPEND_ONLY_TRIGGERS: [&str; 2] = ["events_append_only_update", "events_append_only_delete"];

const EVENT_COLUMNS: &str = "global_position, stream_id, stream_version, event_id, event_type, \
     schema_version, tenant, correlation_id, causation_id, actor_role, actor_id, recorded_at, \
     payload";

/// The SQLite event store. Cheap to clone; clones share the writer and the readers.
#[derive(Clone, Debug)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    path: PathBuf,
    writer: mpsc::Sender<WriteRequest>,
    readers: Mutex<Vec<Connection>>,
    /// At most [`READ_POOL_SIZE`] reads run at once: more would only queue on two cores,
    /// each on a blocking thread with a connection and page cache of its own (the API under
    /// full load grew the server to almost 1 GB that way).
    read_slots: Arc<tokio::sync::Semaphore>,
    /// The same for writes waiting for [`Inner::writes`].
    write_slots: Arc<tokio::sync::Semaphore>,
    /// Every write of this process (the appender thread's group commits, read-model commits,
    /// key inserts and deletes) queues here rather than in SQLite's busy handler, which sleeps
    /// in growing steps (up to 100 ms) while another writer holds the database's write lock.
    writes: Arc<Mutex<()>>,
    head: watch::Sender<GlobalPosition>,
}

fn store_err(e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> StoreError {
    StoreError::new(e)
}

impl SqliteStore {
    /// Opens (creating if needed) the log at `path` and runs pending migrations.
    pub async fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref().to_owned();
        let opened = path.clone();
        let (writer_conn, last) = tokio::task::spawn_blocking(move || {
            if let Some(dir) = opened.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(store_err)?;
            }
            let mut conn = connect(&opened)?;
            migrate(&mut conn)?;
            let last = last_position(&conn)?;
            Ok::<_, StoreError>((conn, last))
        })
        .await
        .map_err(store_err)??;

        let (head, _) = watch::channel(last);
        let (tx, rx) = mpsc::channel();
        let head_for_writer = head.clone();
        let writes = Arc::new(Mutex::new(()));
        let writes_for_writer = writes.clone();
        std::thread::Builder::new()
            .name("videoamt-sqlite-writer".into())
            .spawn(move || writer_loop(writer_conn, rx, head_for_writer, &writes_for_writer))
            .map_err(store_err)?;
        Ok(Self {
            inner: Arc::new(Inner {
                path,
                writer: tx,
                readers: Mutex::new(Vec::new()),
                read_slots: Arc::new(tokio::sync::Semaphore::new(READ_POOL_SIZE)),
                write_slots: Arc::new(tokio::sync::Semaphore::new(WRITE_SLOTS)),
                writes,
                head,
            }),
        })
    }

    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Runs the write `f` on a pooled connection, holding the process's write lock. Writers
    /// wait for slots of their own: one waiting for the lock must never keep a reader from
    /// finishing, and only a few wait on threads (the rest queue here, cheaply).
    async fn with_writer<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let slot = self
            .inner
            .write_slots
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| store_err("writer slots closed"))?;
        let writes = self.inner.writes.clone();
        self.on_connection(Some(slot), move |conn| {
            let _queued = writes
                .lock()
                .map_err(|_| store_err("write lock poisoned"))?;
            f(conn)
        })
        .await
    }

    /// Runs `f` on a pooled read connection on a blocking thread, at most
    /// [`READ_POOL_SIZE`] at once.
    async fn with_reader<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let slot = self
            .inner
            .read_slots
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| store_err("reader slots closed"))?;
        self.on_connection(Some(slot), f).await
    }

    /// Runs `f` on a pooled connection on a blocking thread, holding `slot` until it is done
    /// (even if the caller stopped waiting).
    async fn on_connection<T, F>(
        &self,
        slot: Option<tokio::sync::OwnedSemaphorePermit>,
        f: F,
    ) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let _slot = slot;
            let pooled = inner
                .readers
                .lock()
                .map_err(|_| store_err("reader pool poisoned"))?
                .pop();
            let conn = match pooled {
                Some(c) => c,
                None => connect(&inner.path)?,
            };
            let result = f(&conn);
            let mut pool = inner
                .readers
                .lock()
                .map_err(|_| store_err("reader pool poisoned"))?;
            if pool.len() < READ_POOL_SIZE {
                pool.push(conn);
            }
            result
        })
        .await
        .map_err(store_err)?
    }
}

fn connect(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open(path).map_err(store_err)?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(store_err)?;
    // WAL lets readers run beside the writer; FULL syncs the WAL on every commit, so an
    // acknowledged append survives a crash or power loss.
    // Switching a new file to WAL needs an exclusive lock, and SQLite answers a clash with
    // another process doing the same with SQLITE_BUSY at once, without the busy handler: so
    // wait here, within the same bound.
    let deadline = std::time::Instant::now() + BUSY_TIMEOUT;
    loop {
        match conn.pragma_update(None, "journal_mode", "WAL") {
            Ok(()) => break,
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::DatabaseBusy
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            Err(e) => return Err(store_err(e)),
        }
    }
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(store_err)?;
    // Deleted content is overwritten, not left in free pages: a destroyed data key or a
    // scrubbed read-model row must not survive in the file.
    conn.pragma_update(None, "secure_delete", "ON")
        .map_err(store_err)?;
    conn.set_prepared_statement_cache_capacity(32);
    Ok(conn)
}

fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(store_err)?;
    tx.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)",
    )
    .map_err(store_err)?;
    let current: u32 = tx
        .query_row(
            "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
            [],
            |r| r.get(0),
        )
        .map_err(store_err)?;
    for (version, name, sql) in MIGRATIONS.iter().filter(|(v, _, _)| *v > current) {
        tx.execute_batch(sql).map_err(store_err)?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name, applied_at) \
             VALUES (?1, ?2, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))",
            params![version, name],
        )
        .map_err(store_err)?;
    }
    tx.commit().map_err(store_err)
}

fn last_position(conn: &Connection) -> Result<GlobalPosition, StoreError> {
    conn.query_row(
        "SELECT COALESCE(MAX(global_position), 0) FROM events",
        [],
        |r| r.get::<_, i64>(0),
    )
    .map(to_u64)
    .map_err(store_err)
}

/// Takes every waiting request (up to the group limits), commits them in one transaction and
/// answers each. Ends when every store handle is dropped.
fn writer_loop(
    mut conn: Connection,
    rx: mpsc::Receiver<WriteRequest>,
    head: watch::Sender<GlobalPosition>,
    writes: &Mutex<()>,
) {
    let mut queue = WriteQueue::default();
    loop {
        if queue.pending.is_empty() {
            match rx.recv() {
                Ok(request) => queue.pending.push_back(request),
                Err(_) => return,
            }
        }
        while !queue.is_full() {
            match rx.try_recv() {
                Ok(request) => queue.pending.push_back(request),
                Err(_) => break,
            }
        }
        let group = queue.next_group();
        let batches: Vec<&AppendBatch> = group.iter().map(|r| &r.batch).collect();
        let committed = {
            let _queued = writes
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            commit_group(&mut conn, &batches)
        };
        queue.answer(group, committed, &head);
    }
}

fn commit_group(
    conn: &mut Connection,
    group: &[&AppendBatch],
) -> Result<(Vec<PlannedOutcome>, GlobalPosition), StoreError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(store_err)?;
    let (streams, ids) = group_keys(group);
    let mut snapshot = GroupSnapshot {
        last_position: last_position(&tx)?,
        ..Default::default()
    };
    {
        let mut head_stmt = tx
            .prepare_cached("SELECT MAX(stream_version) FROM events WHERE stream_id = ?1")
            .map_err(store_err)?;
        for stream in streams {
            let head: Option<i64> = head_stmt
                .query_row([stream.as_str()], |r| r.get(0))
                .map_err(store_err)?;
            if let Some(v) = head {
                snapshot.heads.insert(stream, to_u64(v));
            }
        }
        let mut id_stmt = tx
            .prepare_cached(
                "SELECT global_position, stream_id, stream_version, event_type, schema_version, \
                 payload FROM events WHERE event_id = ?1",
            )
            .map_err(store_err)?;
        for id in ids {
            let found = id_stmt
                .query_row([id.as_bytes().as_slice()], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, i64>(2)?,
                        r.get::<_, String>(3)?,
                        r.get::<_, i64>(4)?,
                        r.get::<_, String>(5)?,
                    ))
                })
                .optional()
                .map_err(store_err)?;
            if let Some((position, stream, version, event_type, schema, payload)) = found {
                let corrupt = || store_err(format!("corrupt event at position {position}"));
                snapshot.existing.insert(
                    id,
                    StoredIdentity {
                        global_position: to_u64(position),
                        stream_id: StreamId::parse(&stream).map_err(|_| corrupt())?,
                        stream_version: to_u64(version),
                        event_type: videoamt_core::event::EventType::parse(&event_type)
                            .map_err(|_| corrupt())?,
                        schema_version: u16::try_from(schema).map_err(|_| corrupt())?,
                        payload: Payload::from_stored(payload),
                    },
                );
            }
        }
    }

    let plan = plan_group(group, &snapshot);
    {
        let mut insert = tx
            .prepare_cached(&format!(
                "INSERT INTO events ({EVENT_COLUMNS}) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)"
            ))
            .map_err(store_err)?;
        for row in &plan.rows {
            let s = &group[row.request].streams()[row.stream];
            let e = &s.events[row.event];
            insert
                .execute(params![
                    to_i64(row.global_position),
                    s.stream.as_str(),
                    to_i64(row.stream_version),
                    e.event_id.as_bytes().as_slice(),
                    e.event_type.as_str(),
                    i64::from(e.schema_version),
                    e.meta.tenant.as_str(),
                    e.meta.correlation_id.as_bytes().as_slice(),
                    e.meta.causation_id.as_bytes().as_slice(),
                    e.meta.actor.role.as_str(),
                    &*e.meta.actor.id,
                    unix_micros(e.meta.recorded_at),
                    e.payload.as_str(),
                ])
                .map_err(store_err)?;
        }
    }
    tx.commit().map_err(store_err)?;
    Ok((plan.outcomes, plan.last_position))
}

fn unix_micros(t: OffsetDateTime) -> i64 {
    // Representable for every date before the year 294,000.
    i64::try_from(t.unix_timestamp_nanos() / 1_000).unwrap_or(i64::MAX)
}

fn from_unix_micros(micros: i64) -> rusqlite::Result<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1_000).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(11, rusqlite::types::Type::Integer, Box::new(e))
    })
}

fn uuid_at(row: &rusqlite::Row<'_>, index: usize) -> rusqlite::Result<Uuid> {
    let bytes: [u8; 16] = row.get(index)?;
    Ok(Uuid::from_bytes(bytes))
}

fn raw_event(row: &rusqlite::Row<'_>) -> rusqlite::Result<RawEvent> {
    Ok(RawEvent {
        global_position: row.get(0)?,
        stream_id: row.get(1)?,
        stream_version: row.get(2)?,
        event_id: uuid_at(row, 3)?,
        event_type: row.get(4)?,
        schema_version: row.get(5)?,
        tenant: row.get(6)?,
        correlation_id: uuid_at(row, 7)?,
        causation_id: uuid_at(row, 8)?,
        actor_role: row.get(9)?,
        actor_id: row.get(10)?,
        recorded_at: from_unix_micros(row.get(11)?)?,
        payload: row.get(12)?,
    })
}

fn query_events(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
) -> Result<Vec<RecordedEvent>, StoreError> {
    let mut stmt = conn.prepare_cached(sql).map_err(store_err)?;
    let rows = stmt.query_map(params, raw_event).map_err(store_err)?;
    rows.map(|row| row.map_err(store_err).and_then(RawEvent::into_event))
        .collect()
}

#[async_trait::async_trait]
impl EventStore for SqliteStore {
    async fn append(&self, batch: AppendBatch) -> Result<Appended, AppendError> {
        WriteRequest::submit(batch, "SQLite", |r| self.inner.writer.send(r).is_ok()).await
    }

    async fn read_stream(
        &self,
        stream: &StreamId,
        from: StreamVersion,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let stream = stream.clone();
        self.with_reader(move |conn| {
            query_events(
                conn,
                &format!(
                    "SELECT {EVENT_COLUMNS} FROM events \
                     WHERE stream_id = ?1 AND stream_version >= ?2 ORDER BY stream_version"
                ),
                params![stream.as_str(), to_i64(from)],
            )
        })
        .await
    }

    async fn read_streams(
        &self,
        streams: &[StreamId],
    ) -> Result<Vec<Vec<RecordedEvent>>, StoreError> {
        let streams = streams.to_vec();
        self.with_reader(move |conn| {
            let sql = format!(
                "SELECT {EVENT_COLUMNS} FROM events WHERE stream_id = ?1 ORDER BY stream_version"
            );
            streams
                .iter()
                .map(|s| query_events(conn, &sql, params![s.as_str()]))
                .collect()
        })
        .await
    }

    async fn read_all(
        &self,
        after: GlobalPosition,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.with_reader(move |conn| {
            query_events(
                conn,
                &format!(
                    "SELECT {EVENT_COLUMNS} FROM events \
                     WHERE global_position > ?1 ORDER BY global_position LIMIT ?2"
                ),
                params![to_i64(after), limit],
            )
        })
        .await
    }

    async fn read_positions(
        &self,
        positions: &[GlobalPosition],
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        // A JSON array of integers bound as one parameter: no statement per length.
        let wanted = serde_json::to_string(positions).map_err(store_err)?;
        self.with_reader(move |conn| {
            query_events(
                conn,
                &format!(
                    "SELECT {EVENT_COLUMNS} FROM events \
                     WHERE global_position IN (SELECT value FROM json_each(?1)) \
                     ORDER BY global_position"
                ),
                params![wanted],
            )
        })
        .await
    }

    async fn last_position(&self) -> Result<GlobalPosition, StoreError> {
        self.with_reader(last_position).await
    }

    fn subscribe(&self, after: GlobalPosition) -> EventStream {
        super::subscription::catch_up_then_live(
            Arc::new(self.clone()),
            after,
            self.inner.head.subscribe(),
            POLL_INTERVAL,
        )
    }
}

#[async_trait::async_trait]
impl AdminStore for SqliteStore {
    async fn forget_deleted(&self) -> Result<(), StoreError> {
        // Not under the write lock: the checkpoint waits (in SQLite's busy handler) for every
        // reader to finish, and no append of this process may wait behind that.
        self.with_reader(|conn| {
            conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
                .map_err(store_err)
        })
        .await
    }

    async fn scan_rows(
        &self,
        out: tokio::sync::mpsc::Sender<(String, String)>,
    ) -> Result<u64, StoreError> {
        self.with_reader(move |conn| {
            let tables: Vec<String> = conn
                .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
                .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
                .map_err(store_err)?;
            let mut rows = 0;
            for table in tables {
                let mut stmt = conn
                    .prepare(&format!("SELECT * FROM \"{}\"", table.replace('"', "\"\"")))
                    .map_err(store_err)?;
                let columns = stmt.column_count();
                let mut cursor = stmt.query([]).map_err(store_err)?;
                while let Some(row) = cursor.next().map_err(store_err)? {
                    let mut text = String::new();
                    for i in 0..columns {
                        use rusqlite::types::ValueRef;
                        match row.get_ref(i).map_err(store_err)? {
                            ValueRef::Null => {}
                            ValueRef::Integer(n) => text.push_str(&n.to_string()),
                            ValueRef::Real(x) => text.push_str(&x.to_string()),
                            ValueRef::Text(t) | ValueRef::Blob(t) => {
                                text.push_str(&String::from_utf8_lossy(t));
                            }
                        }
                        text.push('\u{1f}');
                    }
                    rows += 1;
                    if out.blocking_send((table.clone(), text)).is_err() {
                        return Ok(rows);
                    }
                }
            }
            Ok(rows)
        })
        .await
    }

    async fn stats(&self) -> Result<StoreStats, StoreError> {
        let path = self.inner.path.clone();
        self.with_reader(move |conn| {
            let (events, streams, last): (i64, i64, i64) = conn
                .query_row(
                    "SELECT COUNT(*), COUNT(DISTINCT stream_id), COALESCE(MAX(global_position), 0) \
                     FROM events",
                    [],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )
                .map_err(store_err)?;
            let schema_version: u32 = conn
                .query_row(
                    "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
                    [],
                    |r| r.get(0),
                )
                .map_err(store_err)?;
            let size_bytes = ["", "-wal", "-shm"]
                .iter()
                .filter_map(|suffix| {
                    let mut p = path.clone().into_os_string();
                    p.push(suffix);
                    std::fs::metadata(p).ok().map(|m| m.len())
                })
                .sum();
            Ok(StoreStats {
                backend: "sqlite",
                events: to_u64(events),
                streams: to_u64(streams),
                last_position: to_u64(last),
                size_bytes,
                schema_version,
            })
        })
        .await
    }

    async fn verify(&self) -> Result<VerifyReport, StoreError> {
        self.with_reader(|conn| {
            let one = |sql: &str| -> Result<i64, StoreError> {
                conn.query_row(sql, [], |r| r.get(0)).map_err(store_err)
            };
            let mut report = VerifyReport::default();
            let (count, min, max) = conn
                .query_row(
                    "SELECT COUNT(*), COALESCE(MIN(global_position), 0), \
                     COALESCE(MAX(global_position), 0) FROM events",
                    [],
                    |r| {
                        Ok((
                            r.get::<_, i64>(0)?,
                            r.get::<_, i64>(1)?,
                            r.get::<_, i64>(2)?,
                        ))
                    },
                )
                .map_err(store_err)?;
            report.events_checked = to_u64(count);
            report.check_positions(count, min, max);
            let mut stmt = conn
                .prepare(
                    "SELECT stream_id, COUNT(*), MIN(stream_version), MAX(stream_version) \
                     FROM events GROUP BY stream_id \
                     HAVING MIN(stream_version) <> 0 OR MAX(stream_version) <> COUNT(*) - 1 \
                     LIMIT 10",
                )
                .map_err(store_err)?;
            let broken = stmt
                .query_map([], |r| {
                    Ok((
                        r.get(0)?,
                        r.get::<_, i64>(1)?,
                        r.get::<_, i64>(2)?,
                        r.get(3)?,
                    ))
                })
                .map_err(store_err)?;
            for row in broken {
                let (stream, n, lo, hi): (String, i64, i64, i64) = row.map_err(store_err)?;
                report.stream_not_contiguous(&stream, n, lo, hi);
            }
            let disordered = one("SELECT COUNT(*) FROM events a JOIN events b \
                 ON a.stream_id = b.stream_id AND b.stream_version = a.stream_version + 1 \
                 WHERE b.global_position < a.global_position")?;
            report.check_disorder(disordered);
            let mut present = Vec::new();
            for name in APPEND_ONLY_TRIGGERS {
                let found = one(&format!(
                    "SELECT COUNT(*) FROM sqlite_master WHERE type = 'trigger' AND name = '{name}'"
                ))?;
                if found == 1 {
                    present.push(name);
                }
            }
            report.check_present("append-only trigger", &APPEND_ONLY_TRIGGERS, &present);
            Ok(report)
        })
        .await
    }
}

/// Opens a plain connection for tests and benchmarks that must bypass the store, e.g. to show
/// that the database itself refuses an UPDATE.
pub fn raw_connection(path: &Path) -> Result<Connection, StoreError> {
    connect(path)
}

fn checkpoint_row(conn: &Connection, projection: &str) -> Result<ProjectionCheckpoint, StoreError> {
    let row: Option<(i64, Option<i64>)> = conn
        .query_row(
            "SELECT position, event_recorded_at FROM projection_checkpoints WHERE projection = ?1",
            [projection],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()
        .map_err(store_err)?;
    Ok(ProjectionCheckpoint {
        projection: projection.to_owned(),
        position: row.map_or(0, |r| to_u64(r.0)),
        event_recorded_at: row.and_then(|r| r.1).and_then(|m| from_unix_micros(m).ok()),
    })
}

fn json_of(text: &str) -> Result<serde_json::Value, StoreError> {
    serde_json::from_str(text).map_err(store_err)
}

/// `(key, value)` rows of a read-model query, the values parsed as JSON.
fn documents(
    stmt: &mut rusqlite::CachedStatement<'_>,
    params: impl rusqlite::Params,
) -> Result<Vec<(String, serde_json::Value)>, StoreError> {
    let rows = stmt
        .query_map(params, |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
        })
        .map_err(store_err)?;
    rows.map(|row| {
        let (key, value) = row.map_err(store_err)?;
        Ok((key, json_of(&value)?))
    })
    .collect()
}

#[async_trait::async_trait]
impl ReadModelStore for SqliteStore {
    async fn checkpoint(&self, projection: &str) -> Result<ProjectionCheckpoint, StoreError> {
        let projection = projection.to_owned();
        self.with_reader(move |conn| checkpoint_row(conn, &projection))
            .await
    }

    async fn checkpoints(&self) -> Result<Vec<ProjectionCheckpoint>, StoreError> {
        self.with_reader(|conn| {
            let mut stmt = conn
                .prepare("SELECT projection FROM projection_checkpoints ORDER BY projection")
                .map_err(store_err)?;
            let names: Vec<String> = stmt
                .query_map([], |r| r.get(0))
                .map_err(store_err)?
                .collect::<Result<_, _>>()
                .map_err(store_err)?;
            names.iter().map(|n| checkpoint_row(conn, n)).collect()
        })
        .await
    }

    async fn get(
        &self,
        projection: &str,
        keys: &[DocKey],
    ) -> Result<Vec<(DocKey, serde_json::Value)>, StoreError> {
        let projection = projection.to_owned();
        let keys = keys.to_vec();
        self.with_reader(move |conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT value FROM read_models WHERE projection = ?1 AND kind = ?2 AND key = ?3",
                )
                .map_err(store_err)?;
            let mut found = Vec::new();
            for key in keys {
                let value: Option<String> = stmt
                    .query_row(params![projection, key.kind, key.key], |r| r.get(0))
                    .optional()
                    .map_err(store_err)?;
                if let Some(value) = value {
                    found.push((key, json_of(&value)?));
                }
            }
            Ok(found)
        })
        .await
    }

    async fn list(
        &self,
        projection: &str,
        kind: &str,
        prefix: &str,
    ) -> Result<Vec<(String, serde_json::Value)>, StoreError> {
        let (projection, kind) = (projection.to_owned(), kind.to_owned());
        // Keys are compared as byte ranges: every key starting with `prefix` sorts between it
        // and it followed by the highest code point.
        let (low, high) = (prefix.to_owned(), format!("{prefix}\u{10FFFF}"));
        self.with_reader(move |conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT key, value FROM read_models WHERE projection = ?1 AND kind = ?2 \
                     AND key >= ?3 AND key < ?4 ORDER BY key",
                )
                .map_err(store_err)?;
            documents(&mut stmt, params![projection, kind, low, high])
        })
        .await
    }

    async fn list_range(
        &self,
        projection: &str,
        kind: &str,
        after: &str,
        before: &str,
        limit: u32,
    ) -> Result<Vec<(String, serde_json::Value)>, StoreError> {
        let (projection, kind) = (projection.to_owned(), kind.to_owned());
        let (after, before) = (after.to_owned(), before.to_owned());
        self.with_reader(move |conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT key, value FROM read_models WHERE projection = ?1 AND kind = ?2 \
                     AND key > ?3 AND key < ?4 ORDER BY key LIMIT ?5",
                )
                .map_err(store_err)?;
            documents(&mut stmt, params![projection, kind, after, before, limit])
        })
        .await
    }

    async fn commit(
        &self,
        projection: &str,
        from: GlobalPosition,
        to: ProjectionCheckpoint,
        changes: Vec<Change>,
    ) -> Result<(), ReadModelError> {
        let projection = projection.to_owned();
        self.with_writer(move |conn| {
            conn.execute_batch("BEGIN IMMEDIATE").map_err(store_err)?;
            let result = apply_changes(conn, &projection, from, &to, &changes);
            let end = if matches!(result, Ok(Ok(()))) {
                "COMMIT"
            } else {
                "ROLLBACK"
            };
            conn.execute_batch(end).map_err(store_err)?;
            result
        })
        .await?
    }

    async fn reset(&self, projection: &str) -> Result<(), StoreError> {
        let projection = projection.to_owned();
        self.with_writer(move |conn| {
            conn.execute_batch("BEGIN IMMEDIATE").map_err(store_err)?;
            let result = conn
                .execute(
                    "DELETE FROM read_models WHERE projection = ?1",
                    [&projection],
                )
                .and_then(|_| {
                    conn.execute(
                        "DELETE FROM projection_checkpoints WHERE projection = ?1",
                        [&projection],
                    )
                });
            let end = if result.is_ok() { "COMMIT" } else { "ROLLBACK" };
            conn.execute_batch(end).map_err(store_err)?;
            result.map(|_| ()).map_err(store_err)
        })
        .await
    }

    async fn dump(&self, projection: &str) -> Result<Vec<(DocKey, serde_json::Value)>, StoreError> {
        let projection = projection.to_owned();
        self.with_reader(move |conn| {
            let mut stmt = conn
                .prepare("SELECT kind, key, value FROM read_models WHERE projection = ?1 ORDER BY kind, key")
                .map_err(store_err)?;
            let rows = stmt
                .query_map([&projection], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?))
                })
                .map_err(store_err)?;
            rows.map(|row| {
                let (kind, key, value) = row.map_err(store_err)?;
                Ok((DocKey { kind, key }, json_of(&value)?))
            })
            .collect()
        })
        .await
    }
}

/// The body of a read-model commit, inside `BEGIN IMMEDIATE`. The outer `Result` is a store
/// failure, the inner one a refusal; either rolls back.
fn apply_changes(
    conn: &Connection,
    projection: &str,
    from: GlobalPosition,
    to: &ProjectionCheckpoint,
    changes: &[Change],
) -> Result<Result<(), ReadModelError>, StoreError> {
    let actual = checkpoint_row(conn, projection)?.position;
    if actual != from {
        return Ok(Err(ReadModelError::CheckpointMoved {
            projection: projection.to_owned(),
            expected: from,
            actual,
        }));
    }
    let mut put = conn
        .prepare_cached(
            "INSERT INTO read_models (projection, kind, key, value) VALUES (?1, ?2, ?3, ?4) \
             ON CONFLICT (projection, kind, key) DO UPDATE SET value = excluded.value",
        )
        .map_err(store_err)?;
    let mut delete = conn
        .prepare_cached("DELETE FROM read_models WHERE projection = ?1 AND kind = ?2 AND key = ?3")
        .map_err(store_err)?;
    for change in changes {
        match change {
            // A new document costs the same unique check here either way.
            Change::Put(key, value) | Change::Insert(key, value) => {
                put.execute(params![projection, key.kind, key.key, value])
                    .map_err(store_err)?;
            }
            Change::Delete(key) => {
                delete
                    .execute(params![projection, key.kind, key.key])
                    .map_err(store_err)?;
            }
        }
    }
    conn.execute(
        "INSERT INTO projection_checkpoints (projection, position, event_recorded_at, updated_at) \
         VALUES (?1, ?2, ?3, strftime('%Y-%m-%dT%H:%M:%fZ', 'now')) \
         ON CONFLICT (projection) DO UPDATE SET position = excluded.position, \
         event_recorded_at = excluded.event_recorded_at, updated_at = excluded.updated_at",
        params![
            projection,
            to_i64(to.position),
            to.event_recorded_at.map(unix_micros)
        ],
    )
    .map_err(store_err)?;
    Ok(Ok(()))
}

#[async_trait::async_trait]
impl crate::keys::WrappedKeys for SqliteStore {
    async fn insert_wrapped_key(
        &self,
        subject: SubjectId,
        wrapped: Vec<u8>,
    ) -> Result<(), StoreError> {
        self.with_writer(move |conn| {
            conn.execute(
                "INSERT INTO subject_keys (subject, wrapped, issued_at) \
                 VALUES (?1, ?2, strftime('%Y-%m-%dT%H:%M:%fZ', 'now')) \
                 ON CONFLICT (subject) DO NOTHING",
                params![subject.0.as_bytes().as_slice(), wrapped],
            )
            .map(|_| ())
            .map_err(store_err)
        })
        .await
    }

    async fn wrapped_key(&self, subject: SubjectId) -> Result<Option<Vec<u8>>, StoreError> {
        self.with_reader(move |conn| {
            conn.query_row(
                "SELECT wrapped FROM subject_keys WHERE subject = ?1",
                [subject.0.as_bytes().as_slice()],
                |r| r.get(0),
            )
            .optional()
            .map_err(store_err)
        })
        .await
    }

    async fn wrapped_keys_of(
        &self,
        subjects: &[SubjectId],
    ) -> Result<Vec<(SubjectId, Vec<u8>)>, StoreError> {
        let subjects = subjects.to_vec();
        // One connection and one prepared statement for the whole set.
        self.with_reader(move |conn| {
            let mut stmt = conn
                .prepare_cached("SELECT wrapped FROM subject_keys WHERE subject = ?1")
                .map_err(store_err)?;
            let mut out = Vec::new();
            for subject in subjects {
                if let Some(wrapped) = stmt
                    .query_row([subject.0.as_bytes().as_slice()], |r| r.get(0))
                    .optional()
                    .map_err(store_err)?
                {
                    out.push((subject, wrapped));
                }
            }
            Ok(out)
        })
        .await
    }

    async fn delete_wrapped_keys(
        &self,
        subjects: &[SubjectId],
    ) -> Result<Vec<SubjectId>, StoreError> {
        let subjects = subjects.to_vec();
        self.with_writer(move |conn| {
            // One transaction: one commit (and WAL sync) for the whole set.
            let tx = conn.unchecked_transaction().map_err(store_err)?;
            let mut deleted = Vec::new();
            {
                let mut delete = tx
                    .prepare_cached("DELETE FROM subject_keys WHERE subject = ?1")
                    .map_err(store_err)?;
                for subject in subjects {
                    if delete
                        .execute([subject.0.as_bytes().as_slice()])
                        .map_err(store_err)?
                        > 0
                    {
                        deleted.push(subject);
                    }
                }
            }
            tx.commit().map_err(store_err)?;
            Ok(deleted)
        })
        .await
    }

    async fn wrapped_keys_after(
        &self,
        after: Option<SubjectId>,
        limit: u32,
    ) -> Result<Vec<WrappedKey>, StoreError> {
        // Subjects are 16-byte blobs, compared byte by byte: the empty blob sorts first.
        let after = after.map_or_else(Vec::new, |s| s.0.as_bytes().to_vec());
        self.with_reader(move |conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT subject, wrapped, issued_at FROM subject_keys WHERE subject > ?1 \
                     ORDER BY subject LIMIT ?2",
                )
                .map_err(store_err)?;
            let rows = stmt
                .query_map(params![after, limit], |r| {
                    Ok((uuid_at(r, 0)?, r.get(1)?, r.get::<_, String>(2)?))
                })
                .map_err(store_err)?;
            rows.map(|row| {
                let (subject, wrapped, issued_at) = row.map_err(store_err)?;
                let issued_at = OffsetDateTime::parse(&issued_at, &Rfc3339)
                    .map_err(|_| store_err("a stored key has an invalid issued_at"))?;
                Ok(WrappedKey {
                    subject: SubjectId(subject),
                    wrapped,
                    issued_at,
                })
            })
            .collect()
        })
        .await
    }

    async fn restore_wrapped_keys(&self, keys: Vec<WrappedKey>) -> Result<u64, StoreError> {
        self.with_writer(move |conn| {
            let tx = conn.unchecked_transaction().map_err(store_err)?;
            let mut restored = 0;
            {
                let mut insert = tx
                    .prepare_cached(
                        "INSERT INTO subject_keys (subject, wrapped, issued_at) \
                         VALUES (?1, ?2, ?3) ON CONFLICT (subject) DO NOTHING",
                    )
                    .map_err(store_err)?;
                for key in keys {
                    let issued_at = key.issued_at.format(&Rfc3339).map_err(store_err)?;
                    restored += insert
                        .execute(params![
                            key.subject.0.as_bytes().as_slice(),
                            key.wrapped,
                            issued_at
                        ])
                        .map_err(store_err)? as u64;
                }
            }
            tx.commit().map_err(store_err)?;
            Ok(restored)
        })
        .await
    }

    async fn add_to_manifest(&self, rows: Vec<(SubjectId, String)>) -> Result<(), StoreError> {
        if rows.is_empty() {
            return Ok(());
        }
        self.with_writer(move |conn| {
            let tx = conn.unchecked_transaction().map_err(store_err)?;
            {
                let mut insert = tx
                    .prepare_cached(
                        "INSERT INTO deletion_manifests (subject, fingerprint) VALUES (?1, ?2) \
                         ON CONFLICT DO NOTHING",
                    )
                    .map_err(store_err)?;
                for (subject, fingerprint) in rows {
                    insert
                        .execute(params![subject.0.as_bytes().as_slice(), fingerprint])
                        .map_err(store_err)?;
                }
            }
            tx.commit().map_err(store_err)
        })
        .await
    }

    async fn manifest_of(
        &self,
        subjects: &[SubjectId],
    ) -> Result<Vec<(SubjectId, String)>, StoreError> {
        let subjects = subjects.to_vec();
        self.with_reader(move |conn| {
            let mut stmt = conn
                .prepare_cached("SELECT fingerprint FROM deletion_manifests WHERE subject = ?1")
                .map_err(store_err)?;
            let mut out = Vec::new();
            for subject in subjects {
                let rows = stmt
                    .query_map([subject.0.as_bytes().as_slice()], |r| r.get::<_, String>(0))
                    .map_err(store_err)?;
                for row in rows {
                    out.push((subject, row.map_err(store_err)?));
                }
            }
            Ok(out)
        })
        .await
    }

    async fn drop_manifests(&self, subjects: &[SubjectId]) -> Result<(), StoreError> {
        let subjects = subjects.to_vec();
        self.with_writer(move |conn| {
            let tx = conn.unchecked_transaction().map_err(store_err)?;
            {
                let mut delete = tx
                    .prepare_cached("DELETE FROM deletion_manifests WHERE subject = ?1")
                    .map_err(store_err)?;
                for subject in subjects {
                    delete
                        .execute([subject.0.as_bytes().as_slice()])
                        .map_err(store_err)?;
                }
            }
            tx.commit().map_err(store_err)
        })
        .await
    }

    async fn manifest_subjects(&self, limit: u32) -> Result<Vec<SubjectId>, StoreError> {
        self.with_reader(move |conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT DISTINCT subject FROM deletion_manifests ORDER BY subject LIMIT ?1",
                )
                .map_err(store_err)?;
            let rows = stmt
                .query_map([limit], |r| uuid_at(r, 0))
                .map_err(store_err)?;
            rows.map(|r| r.map(SubjectId).map_err(store_err)).collect()
        })
        .await
    }
}

#[async_trait::async_trait]
impl SessionStore for SqliteStore {
    async fn open_session(&self, key: SessionKey, record: SessionRecord) -> Result<(), StoreError> {
        self.with_writer(move |conn| {
            conn.execute(
                "INSERT INTO staff_sessions (key, tenant, login, epoch, directory, expires_at, \
                 seen_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    key.as_slice(),
                    record.tenant.as_str(),
                    record.login.as_str(),
                    record.epoch,
                    record.directory,
                    unix_micros(record.expires),
                    unix_micros(record.seen),
                ],
            )
            .map(|_| ())
            .map_err(store_err)
        })
        .await
    }

    async fn session(&self, key: SessionKey) -> Result<Option<SessionRecord>, StoreError> {
        let row = self
            .with_reader(move |conn| {
                conn.query_row(
                    "SELECT tenant, login, epoch, directory, expires_at, seen_at \
                     FROM staff_sessions WHERE key = ?1",
                    [key.as_slice()],
                    |r| {
                        Ok((
                            r.get::<_, String>(0)?,
                            r.get::<_, String>(1)?,
                            r.get::<_, u32>(2)?,
                            r.get::<_, bool>(3)?,
                            from_unix_micros(r.get(4)?)?,
                            from_unix_micros(r.get(5)?)?,
                        ))
                    },
                )
                .optional()
                .map_err(store_err)
            })
            .await?;
        row.map(|(tenant, login, epoch, directory, expires, seen)| {
            super::session_record(&tenant, &login, epoch, directory, expires, seen)
        })
        .transpose()
    }

    async fn touch_session(&self, key: SessionKey, seen: OffsetDateTime) -> Result<(), StoreError> {
        self.with_writer(move |conn| {
            conn.execute(
                "UPDATE staff_sessions SET seen_at = max(seen_at, ?2) WHERE key = ?1",
                params![key.as_slice(), unix_micros(seen)],
            )
            .map(|_| ())
            .map_err(store_err)
        })
        .await
    }

    async fn carry_session_over(&self, key: SessionKey, epoch: u32) -> Result<(), StoreError> {
        self.with_writer(move |conn| {
            conn.execute(
                "UPDATE staff_sessions SET epoch = ?2 WHERE key = ?1",
                params![key.as_slice(), epoch],
            )
            .map(|_| ())
            .map_err(store_err)
        })
        .await
    }

    async fn close_session(&self, key: SessionKey) -> Result<(), StoreError> {
        self.with_writer(move |conn| {
            conn.execute(
                "DELETE FROM staff_sessions WHERE key = ?1",
                [key.as_slice()],
            )
            .map(|_| ())
            .map_err(store_err)
        })
        .await
    }

    async fn close_stale_sessions(
        &self,
        now: OffsetDateTime,
        idle: time::Duration,
    ) -> Result<u64, StoreError> {
        self.with_writer(move |conn| {
            let sessions = conn
                .execute(
                    "DELETE FROM staff_sessions WHERE expires_at <= ?1 OR seen_at <= ?2",
                    params![unix_micros(now), unix_micros(now - idle)],
                )
                .map_err(store_err)?;
            conn.execute(
                "DELETE FROM sign_ons WHERE expires_at <= ?1",
                [unix_micros(now)],
            )
            .map_err(store_err)?;
            Ok(sessions as u64)
        })
        .await
    }

    async fn put_sign_on(
        &self,
        key: SessionKey,
        state: String,
        expires: OffsetDateTime,
    ) -> Result<(), StoreError> {
        self.with_writer(move |conn| {
            conn.execute(
                "INSERT OR REPLACE INTO sign_ons (key, state, expires_at) VALUES (?1, ?2, ?3)",
                params![key.as_slice(), state, unix_micros(expires)],
            )
            .map(|_| ())
            .map_err(store_err)
        })
        .await
    }

    async fn take_sign_on(
        &self,
        key: SessionKey,
        now: OffsetDateTime,
    ) -> Result<Option<String>, StoreError> {
        self.with_writer(move |conn| {
            let taken: Option<(String, i64)> = conn
                .query_row(
                    "DELETE FROM sign_ons WHERE key = ?1 RETURNING state, expires_at",
                    [key.as_slice()],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()
                .map_err(store_err)?;
            Ok(taken.and_then(|(state, expires)| (expires > unix_micros(now)).then_some(state)))
        })
        .await
    }
}

#[async_trait::async_trait]
impl Leases for SqliteStore {
    async fn acquire(&self, duty: &str, holder: &str, ttl: Duration) -> Result<bool, StoreError> {
        let (duty, holder) = (duty.to_owned(), holder.to_owned());
        let ttl = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
        self.with_writer(move |conn| {
            // Taken when free, expired or already ours; the store's clock decides.
            let changed = conn
                .execute(
                    "INSERT INTO leases (duty, holder, expires_at) \
                     VALUES (?1, ?2, CAST(unixepoch('subsec') * 1000 AS INTEGER) + ?3) \
                     ON CONFLICT (duty) DO UPDATE SET holder = excluded.holder, \
                         expires_at = excluded.expires_at \
                     WHERE leases.holder = excluded.holder \
                        OR leases.expires_at <= CAST(unixepoch('subsec') * 1000 AS INTEGER)",
                    params![duty, holder, ttl],
                )
                .map_err(store_err)?;
            Ok(changed == 1)
        })
        .await
    }

    async fn release(&self, duty: &str, holder: &str) -> Result<(), StoreError> {
        let (duty, holder) = (duty.to_owned(), holder.to_owned());
        self.with_writer(move |conn| {
            conn.execute(
                "DELETE FROM leases WHERE duty = ?1 AND holder = ?2",
                params![duty, holder],
            )
            .map(|_| ())
            .map_err(store_err)
        })
        .await
    }

    async fn holder(&self, duty: &str) -> Result<Option<String>, StoreError> {
        let duty = duty.to_owned();
        self.with_writer(move |conn| {
            conn.query_row(
                "SELECT holder FROM leases WHERE duty = ?1 \
                 AND expires_at > CAST(unixepoch('subsec') * 1000 AS INTEGER)",
                params![duty],
                |r| r.get(0),
            )
            .optional()
            .map_err(store_err)
        })
        .await
    }
}
