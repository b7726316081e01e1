//! Event-store backends: SQLite (embedded default) and PostgreSQL (production).
//!
//! Both implement [`EventStore`] from core with the same write path: appends queue up for one
//! writer, which takes every waiting batch, plans them together with
//! [`videoamt_core::store::plan_group`] and commits them in one transaction (group commit).
//! Positions are assigned under the database's write lock, so they are gap-free and commit in
//! order, and a reader's `position > checkpoint` never skips an event.

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;
use tokio::sync::mpsc;

use time::OffsetDateTime;
use tokio::sync::{oneshot, watch};
use uuid::Uuid;
use videoamt_core::event::GlobalPosition;
use videoamt_core::event::{
    Actor, ActorRole, EventMetadata, EventType, Payload, RecordedEvent, StreamId, TenantId,
};
use videoamt_core::readmodel::ReadModelStore;
use videoamt_core::store::{
    AppendBatch, AppendError, Appended, EventStore, PlannedOutcome, StoreError,
};

pub mod backup;
pub mod baseline;
#[cfg(feature = "kurrentdb")]
pub mod kurrentdb;
#[cfg(feature = "postgres")]
pub mod postgres;
pub mod sqlite;
mod subscription;

/// Most requests one group commit takes. Bounds the transaction and the latency of the first
/// writer in a burst.
const MAX_GROUP_REQUESTS: usize = 256;
/// Most events one group commit takes (a single batch may exceed it on its own).
const MAX_GROUP_EVENTS: usize = 10_000;
/// Page size of subscriptions; bounds their memory whatever the log's length.
pub const SUBSCRIPTION_PAGE: usize = 1_000;

/// Counts an operator wants to see at a glance.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct StoreStats {
    pub backend: &'static str,
    pub events: u64,
    pub streams: u64,
    pub last_position: u64,
    pub size_bytes: u64,
    pub schema_version: u32,
}

/// The result of `store verify`: empty `problems` means the log is sound.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifyReport {
    pub events_checked: u64,
    pub problems: Vec<String>,
}

impl VerifyReport {
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }

    /// Gap-free means exactly the positions `1..=count`.
    fn check_positions(&mut self, count: i64, min: i64, max: i64) {
        if count > 0 && (min != 1 || max != count) {
            self.problems.push(format!(
                "global positions are not gap-free: {count} events span positions {min}..={max}"
            ));
        }
    }

    fn stream_not_contiguous(&mut self, stream: &str, count: i64, min: i64, max: i64) {
        self.problems.push(format!(
            "stream {stream} is not contiguous from 0: {count} events with versions {min}..={max}"
        ));
    }

    fn check_disorder(&mut self, disordered: i64) {
        if disordered > 0 {
            self.problems.push(format!(
                "{disordered} events come before their stream predecessor in the global order"
            ));
        }
    }

    fn check_present(&mut self, what: &str, wanted: &[&str], present: &[&str]) {
        for name in wanted.iter().filter(|n| !present.contains(n)) {
            self.problems.push(format!("{what} {name} is missing"));
        }
    }
}

/// A store plus its read models and the operations the `videoamt store` commands need.
#[async_trait::async_trait]
pub trait AdminStore:
    EventStore
    + ReadModelStore
    + crate::keys::WrappedKeys
    + videoamt_core::staff_session::SessionStore
    + videoamt_core::lease::Leases
{
    async fn stats(&self) -> Result<StoreStats, StoreError>;
    async fn verify(&self) -> Result<VerifyReport, StoreError>;

    /// Makes deleted rows (destroyed keys above all) unrecoverable from the database files:
    /// a WAL checkpoint that truncates the log on SQLite (deleted content is already
    /// overwritten, `secure_delete`), `VACUUM` of the key table on PostgreSQL.
    async fn forget_deleted(&self) -> Result<(), StoreError>;

    /// Every row of every table of the database, as text, for a scan that must not trust any
    /// particular table to be the only place data went: `(table, row)` pairs, sent as they are
    /// read, so memory stays flat however large the store is. Returns the number of rows.
    async fn scan_rows(&self, out: mpsc::Sender<(String, String)>) -> Result<u64, StoreError>;
}

/// A stored session's columns, checked again on the way out.
pub(crate) fn session_record(
    tenant: &str,
    login: &str,
    epoch: u32,
    directory: bool,
    expires: OffsetDateTime,
    seen: OffsetDateTime,
) -> Result<videoamt_core::staff_session::SessionRecord, StoreError> {
    let corrupt = |what: &str| StoreError::new(format!("stored session has an invalid {what}"));
    Ok(videoamt_core::staff_session::SessionRecord {
        tenant: TenantId::parse(tenant).map_err(|_| corrupt("tenant"))?,
        login: videoamt_core::domain::account::Login::parse(login)
            .ok_or_else(|| corrupt("login"))?,
        epoch,
        directory,
        expires,
        seen,
    })
}

/// Where the log lives, as given by `--store` or `VIDEOAMT_STORE`.
#[derive(Clone, PartialEq, Eq)]
pub enum StoreLocation {
    Sqlite(std::path::PathBuf),
    Postgres(String),
}

/// The embedded default: `./videoamt-data/events.db`.
pub const DEFAULT_STORE: &str = "sqlite:videoamt-data/events.db";

#[derive(Debug, thiserror::Error)]
#[error("unknown store {0:?}: expected `sqlite:PATH` or `postgres://…`")]
pub struct UnknownStore(String);

impl StoreLocation {
    pub fn parse(raw: &str) -> Result<Self, UnknownStore> {
        if let Some(path) = raw.strip_prefix("sqlite:")
            && !path.is_empty()
        {
            return Ok(Self::Sqlite(path.into()));
        }
        if raw.starts_with("postgres://") || raw.starts_with("postgresql://") {
            return Ok(Self::Postgres(raw.to_owned()));
        }
        Err(UnknownStore(raw.to_owned()))
    }

    /// Opens the store, running pending migrations.
    pub async fn open(&self) -> Result<Arc<dyn AdminStore>, StoreError> {
        match self {
            Self::Sqlite(path) => Ok(Arc::new(sqlite::SqliteStore::open(path).await?)),
            #[cfg(feature = "postgres")]
            Self::Postgres(url) => Ok(Arc::new(postgres::PostgresStore::connect(url).await?)),
            #[cfg(not(feature = "postgres"))]
            Self::Postgres(_) => Err(StoreError::new(
                "this build has no PostgreSQL support (feature `postgres`)",
            )),
        }
    }
}

impl fmt::Debug for StoreLocation {
    // A PostgreSQL URL may carry a password; show only the backend.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Sqlite(path) => write!(f, "sqlite:{}", path.display()),
            Self::Postgres(_) => f.write_str("postgres://…"),
        }
    }
}

/// One row of the events table as the drivers hand it over, before it is checked.
struct RawEvent {
    global_position: i64,
    stream_id: String,
    stream_version: i64,
    event_id: Uuid,
    event_type: String,
    schema_version: i64,
    tenant: String,
    correlation_id: Uuid,
    causation_id: Uuid,
    actor_role: String,
    actor_id: String,
    recorded_at: OffsetDateTime,
    payload: String,
}

impl RawEvent {
    /// Re-checks what the store wrote: a row that no longer parses is corruption, reported as
    /// a store failure rather than passed on.
    fn into_event(self) -> Result<RecordedEvent, StoreError> {
        let corrupt = |what: &str| {
            StoreError::new(format!(
                "corrupt event at position {}: {what}",
                self.global_position
            ))
        };
        let role = ActorRole::parse(&self.actor_role).ok_or_else(|| corrupt("actor role"))?;
        let meta = EventMetadata {
            tenant: TenantId::parse(&self.tenant).map_err(|_| corrupt("tenant"))?,
            correlation_id: self.correlation_id,
            causation_id: self.causation_id,
            actor: Actor::new(role, &self.actor_id).map_err(|_| corrupt("actor id"))?,
            recorded_at: self.recorded_at,
        };
        Ok(RecordedEvent {
            global_position: u64::try_from(self.global_position)
                .map_err(|_| corrupt("position"))?,
            stream_id: StreamId::parse(&self.stream_id).map_err(|_| corrupt("stream id"))?,
            stream_version: u64::try_from(self.stream_version).map_err(|_| corrupt("version"))?,
            event_id: self.event_id,
            event_type: EventType::parse(&self.event_type).map_err(|_| corrupt("event type"))?,
            schema_version: u16::try_from(self.schema_version)
                .map_err(|_| corrupt("schema version"))?,
            meta,
            payload: Payload::from_stored(self.payload),
        })
    }
}

/// Converts a count or position the database returned as `i64`.
fn to_u64(v: i64) -> u64 {
    // Counts and positions are never negative; a negative one would be corruption, which
    // `verify` reports. Clamp instead of panicking on it.
    u64::try_from(v).unwrap_or(0)
}

/// Converts a position or version for the database. Positions stay far below `i64::MAX`.
fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// An append waiting for the backend's writer.
#[derive(Debug)]
struct WriteRequest {
    batch: AppendBatch,
    reply: oneshot::Sender<Result<Appended, AppendError>>,
}

impl WriteRequest {
    /// Hands `batch` to a backend's writer through `send` (false: the writer is gone) and
    /// waits for the writer's answer.
    async fn submit(
        batch: AppendBatch,
        backend: &str,
        send: impl FnOnce(WriteRequest) -> bool,
    ) -> Result<Appended, AppendError> {
        let (reply, answer) = oneshot::channel();
        let stopped = || StoreError::new(format!("the {backend} writer has stopped"));
        if !send(Self { batch, reply }) {
            return Err(stopped().into());
        }
        answer.await.map_err(|_| stopped())?
    }
}

/// What a writer has received but not yet committed.
#[derive(Debug, Default)]
struct WriteQueue {
    pending: VecDeque<WriteRequest>,
}

impl WriteQueue {
    fn is_full(&self) -> bool {
        self.pending.len() >= MAX_GROUP_REQUESTS
    }

    /// The next group: waiting requests in arrival order, up to the group limits.
    fn next_group(&mut self) -> Vec<WriteRequest> {
        let mut group = Vec::new();
        let mut events = 0;
        while let Some(request) = self.pending.pop_front() {
            events += request.batch.event_count();
            group.push(request);
            if group.len() >= MAX_GROUP_REQUESTS || events >= MAX_GROUP_EVENTS {
                break;
            }
        }
        group
    }

    /// Answers every request of a committed (or failed) group, puts deferred ones back at the
    /// front and moves `head` to the last committed position.
    fn answer(
        &mut self,
        group: Vec<WriteRequest>,
        committed: Result<(Vec<PlannedOutcome>, GlobalPosition), StoreError>,
        head: &watch::Sender<GlobalPosition>,
    ) {
        let (outcomes, last) = match committed {
            Ok(done) => done,
            Err(e) => {
                tracing::error!(error = %e, "event store group commit failed");
                let message = e.to_string();
                for request in group {
                    let failure = AppendError::Store(StoreError::new(message.clone()));
                    // The caller may have given up waiting.
                    let _ = request.reply.send(Err(failure));
                }
                return;
            }
        };
        let mut deferred = Vec::new();
        for (request, outcome) in group.into_iter().zip(outcomes) {
            let answer = match outcome {
                PlannedOutcome::Write(done) | PlannedOutcome::Duplicate(done) => Ok(done),
                PlannedOutcome::Rejected(e) => Err(e),
                PlannedOutcome::Deferred => {
                    deferred.push(request);
                    continue;
                }
            };
            // The caller may have given up waiting; its append still stands.
            let _ = request.reply.send(answer);
        }
        for request in deferred.into_iter().rev() {
            self.pending.push_front(request);
        }
        advance(head, last);
    }
}

/// Moves a head signal forward, never back, waking subscriptions only when it moves.
fn advance(head: &watch::Sender<GlobalPosition>, position: GlobalPosition) {
    head.send_if_modified(|h| {
        let moved = position > *h;
        *h = (*h).max(position);
        moved
    });
}
