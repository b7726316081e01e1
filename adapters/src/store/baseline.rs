//! Raw-driver baselines for `videoamt bench store`: what the same database and the same driver
//! do without the store's code. Appends are compared with a plain single-row `INSERT` per
//! transaction into a table shaped like `events`; reads with plain paged `SELECT`s of the real
//! events table.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use uuid::Uuid;
use videoamt_core::store::StoreError;

/// What one baseline run did: events handled, wall time and one latency per operation.
#[derive(Debug, Clone, Default)]
pub struct Samples {
    pub events: u64,
    pub elapsed: Duration,
    pub latencies: Vec<Duration>,
}

impl Samples {
    pub fn merge(parts: impl IntoIterator<Item = Samples>, elapsed: Duration) -> Self {
        let mut all = Samples {
            elapsed,
            ..Default::default()
        };
        for p in parts {
            all.events += p.events;
            all.latencies.extend(p.latencies);
        }
        all
    }
}

/// The database a baseline runs against.
#[derive(Debug, Clone)]
pub enum Baseline {
    Sqlite(PathBuf),
    #[cfg(feature = "postgres")]
    Postgres(String),
}

fn store_err(e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> StoreError {
    StoreError::new(e)
}

const PAYLOAD: &str = r#"{"department":"buergerbuero","services":["personalausweis"],"slot":"2026-11-21T09:00:00+01:00","channel":"online"}"#;

const SQLITE_TABLE: &str = "CREATE TABLE IF NOT EXISTS baseline_events (
    global_position INTEGER PRIMARY KEY AUTOINCREMENT, stream_id TEXT NOT NULL,
    stream_version INTEGER NOT NULL, event_id BLOB NOT NULL UNIQUE, event_type TEXT NOT NULL,
    schema_version INTEGER NOT NULL, tenant TEXT NOT NULL, correlation_id BLOB NOT NULL,
    causation_id BLOB NOT NULL, actor_role TEXT NOT NULL, actor_id TEXT NOT NULL,
    recorded_at INTEGER NOT NULL, payload TEXT NOT NULL, UNIQUE (stream_id, stream_version))";

#[cfg(feature = "postgres")]
const POSTGRES_TABLE: &str = "CREATE TABLE IF NOT EXISTS baseline_events (
    global_position bigserial PRIMARY KEY, stream_id text NOT NULL,
    stream_version bigint NOT NULL, event_id uuid NOT NULL UNIQUE, event_type text NOT NULL,
    schema_version integer NOT NULL, tenant text NOT NULL, correlation_id uuid NOT NULL,
    causation_id uuid NOT NULL, actor_role text NOT NULL, actor_id text NOT NULL,
    recorded_at timestamptz NOT NULL, payload json NOT NULL, UNIQUE (stream_id, stream_version))";

impl Baseline {
    /// `writers` concurrent connections, each inserting one row per transaction until
    /// `duration` has passed.
    pub async fn insert_loop(
        &self,
        case: &str,
        writers: usize,
        duration: Duration,
    ) -> Result<Samples, StoreError> {
        let started = Instant::now();
        let deadline = started + duration;
        let mut tasks = Vec::new();
        for w in 0..writers {
            let stream = format!("baseline-{case}-{w}");
            let task = match self {
                Baseline::Sqlite(path) => {
                    let path = path.clone();
                    tokio::task::spawn_blocking(move || sqlite_inserts(&path, &stream, deadline))
                }
                #[cfg(feature = "postgres")]
                Baseline::Postgres(url) => {
                    let url = url.clone();
                    tokio::spawn(async move { postgres_inserts(&url, &stream, deadline).await })
                }
            };
            tasks.push(task);
        }
        let mut parts = Vec::new();
        for t in tasks {
            parts.push(t.await.map_err(store_err)??);
        }
        Ok(Samples::merge(parts, started.elapsed()))
    }

    /// Reads the whole `events` table in pages of `page` rows by position, fetching every
    /// column, one latency per page.
    pub async fn select_pages(&self, page: usize) -> Result<Samples, StoreError> {
        match self {
            Baseline::Sqlite(path) => {
                let path = path.clone();
                tokio::task::spawn_blocking(move || sqlite_pages(&path, page))
                    .await
                    .map_err(store_err)?
            }
            #[cfg(feature = "postgres")]
            Baseline::Postgres(url) => postgres_pages(url, page).await,
        }
    }
}

fn sqlite_inserts(
    path: &std::path::Path,
    stream: &str,
    deadline: Instant,
) -> Result<Samples, StoreError> {
    let conn = super::sqlite::raw_connection(path)?;
    conn.execute_batch(SQLITE_TABLE).map_err(store_err)?;
    let mut stmt = conn
        .prepare(
            "INSERT INTO baseline_events (stream_id, stream_version, event_id, event_type, \
             schema_version, tenant, correlation_id, causation_id, actor_role, actor_id, \
             recorded_at, payload) VALUES (?1, ?2, ?3, 'BaselineAppended', 1, 'bench', ?4, ?4, \
             'system', 'bench', ?5, ?6)",
        )
        .map_err(store_err)?;
    let started = Instant::now();
    let mut samples = Samples::default();
    while Instant::now() < deadline {
        let t = Instant::now();
        let id = Uuid::now_v7();
        // Autocommit: one row, one transaction, one WAL sync.
        stmt.execute(rusqlite::params![
            stream,
            i64::try_from(samples.events).unwrap_or(i64::MAX),
            id.as_bytes().as_slice(),
            id.as_bytes().as_slice(),
            0_i64,
            PAYLOAD
        ])
        .map_err(store_err)?;
        samples.latencies.push(t.elapsed());
        samples.events += 1;
    }
    samples.elapsed = started.elapsed();
    Ok(samples)
}

fn sqlite_pages(path: &std::path::Path, page: usize) -> Result<Samples, StoreError> {
    let conn = super::sqlite::raw_connection(path)?;
    let mut stmt = conn
        .prepare(
            "SELECT global_position, stream_id, stream_version, event_id, event_type, \
             schema_version, tenant, correlation_id, causation_id, actor_role, actor_id, \
             recorded_at, payload FROM events WHERE global_position > ?1 \
             ORDER BY global_position LIMIT ?2",
        )
        .map_err(store_err)?;
    let started = Instant::now();
    let mut samples = Samples::default();
    let mut after = 0_i64;
    loop {
        let t = Instant::now();
        let mut rows = stmt
            .query(rusqlite::params![
                after,
                i64::try_from(page).unwrap_or(i64::MAX)
            ])
            .map_err(store_err)?;
        let mut n = 0;
        while let Some(row) = rows.next().map_err(store_err)? {
            after = row.get(0).map_err(store_err)?;
            let _: (String, i64, Vec<u8>, String, i64, String) = (
                row.get(1).map_err(store_err)?,
                row.get(2).map_err(store_err)?,
                row.get(3).map_err(store_err)?,
                row.get(4).map_err(store_err)?,
                row.get(5).map_err(store_err)?,
                row.get(6).map_err(store_err)?,
            );
            let _: (Vec<u8>, Vec<u8>, String, String, i64, String) = (
                row.get(7).map_err(store_err)?,
                row.get(8).map_err(store_err)?,
                row.get(9).map_err(store_err)?,
                row.get(10).map_err(store_err)?,
                row.get(11).map_err(store_err)?,
                row.get(12).map_err(store_err)?,
            );
            n += 1;
        }
        if n == 0 {
            break;
        }
        samples.events += n;
        samples.latencies.push(t.elapsed());
    }
    samples.elapsed = started.elapsed();
    Ok(samples)
}

#[cfg(feature = "postgres")]
async fn postgres_connect(url: &str) -> Result<tokio_postgres::Client, StoreError> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .map_err(store_err)?;
    tokio::spawn(connection);
    Ok(client)
}

#[cfg(feature = "postgres")]
async fn postgres_inserts(
    url: &str,
    stream: &str,
    deadline: Instant,
) -> Result<Samples, StoreError> {
    let client = postgres_connect(url).await?;
    client
        .batch_execute(POSTGRES_TABLE)
        .await
        .map_err(store_err)?;
    let stmt = client
        .prepare(
            "INSERT INTO baseline_events (stream_id, stream_version, event_id, event_type, \
             schema_version, tenant, correlation_id, causation_id, actor_role, actor_id, \
             recorded_at, payload) VALUES ($1, $2, $3, 'BaselineAppended', 1, 'bench', $3, $3, \
             'system', 'bench', now(), $4::text::json)",
        )
        .await
        .map_err(store_err)?;
    let started = Instant::now();
    let mut samples = Samples::default();
    while Instant::now() < deadline {
        let t = Instant::now();
        let version = i64::try_from(samples.events).unwrap_or(i64::MAX);
        // Autocommit: one row, one transaction, one WAL flush.
        client
            .execute(&stmt, &[&stream, &version, &Uuid::now_v7(), &PAYLOAD])
            .await
            .map_err(store_err)?;
        samples.latencies.push(t.elapsed());
        samples.events += 1;
    }
    samples.elapsed = started.elapsed();
    Ok(samples)
}

#[cfg(feature = "postgres")]
async fn postgres_pages(url: &str, page: usize) -> Result<Samples, StoreError> {
    let client = postgres_connect(url).await?;
    let stmt = client
        .prepare(
            "SELECT global_position, stream_id, stream_version, event_id, event_type, \
             schema_version, tenant, correlation_id, causation_id, actor_role, actor_id, \
             recorded_at, payload::text FROM events WHERE global_position > $1 \
             ORDER BY global_position LIMIT $2",
        )
        .await
        .map_err(store_err)?;
    let started = Instant::now();
    let mut samples = Samples::default();
    let mut after = 0_i64;
    let limit = i64::try_from(page).unwrap_or(i64::MAX);
    loop {
        let t = Instant::now();
        let rows = client
            .query(&stmt, &[&after, &limit])
            .await
            .map_err(store_err)?;
        if rows.is_empty() {
            break;
        }
        for row in &rows {
            after = row.try_get(0).map_err(store_err)?;
            let _: (String, i64, Uuid, String, i32, String) = (
                row.try_get(1).map_err(store_err)?,
                row.try_get(2).map_err(store_err)?,
                row.try_get(3).map_err(store_err)?,
                row.try_get(4).map_err(store_err)?,
                row.try_get(5).map_err(store_err)?,
                row.try_get(6).map_err(store_err)?,
            );
            let _: (Uuid, Uuid, String, String, time::OffsetDateTime, String) = (
                row.try_get(7).map_err(store_err)?,
                row.try_get(8).map_err(store_err)?,
                row.try_get(9).map_err(store_err)?,
                row.try_get(10).map_err(store_err)?,
                row.try_get(11).map_err(store_err)?,
                row.try_get(12).map_err(store_err)?,
            );
        }
        samples.events += rows.len() as u64;
        samples.latencies.push(t.elapsed());
    }
    samples.elapsed = started.elapsed();
    Ok(samples)
}
