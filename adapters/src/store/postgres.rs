//! The production event store on PostgreSQL (`tokio-postgres` with a `deadpool` pool).
//!
//! Global order: a sequence would hand out positions that commit out of order, and a reader
//! trusting `position > checkpoint` would skip the late committer (the failure of Marten's async
//! daemon, Marten issue 3321). Instead every append transaction first locks the one row of
//! `event_position`; positions are assigned from it and it is written back before commit. So a
//! transaction holding higher positions cannot commit before one holding lower positions, and
//! a rolled-back transaction leaves no gap. The lock serialises appends across the cluster; a
//! per-process group commit (one writer connection taking every waiting batch into one
//! transaction) pays for it. See `docs/adr/0002-postgres-global-order.md`.
//!
//! Live subscriptions: the append transaction sends `NOTIFY videoamt_events` with the new last
//! position; a listener connection feeds the subscriptions' wake-up signal.

use std::sync::{Arc, Weak};
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use futures::StreamExt;
use time::OffsetDateTime;
use tokio::sync::{mpsc, watch};
use tokio_postgres::types::ToSql;
use tokio_postgres::{AsyncMessage, Client, Config, NoTls, Row, Statement};
use uuid::Uuid;
use videoamt_core::domain::SubjectId;
use videoamt_core::event::{
    EventType, GlobalPosition, Payload, RecordedEvent, StreamId, StreamVersion,
};
use videoamt_core::lease::Leases;
use videoamt_core::readmodel::{
    Change, Commit, DocKey, ProjectionCheckpoint, ReadModelError, ReadModelStore,
};
use videoamt_core::staff_session::{SessionKey, SessionRecord, SessionStore};
use videoamt_core::store::{
    AppendBatch, AppendError, Appended, EventStore, EventStream, GroupSnapshot, PlannedOutcome,
    StoreError, StoredIdentity, group_keys, plan_group,
};

use super::{
    AdminStore, RawEvent, StoreStats, VerifyReport, WriteQueue, WriteRequest, advance, to_i64,
    to_u64,
};
use crate::keys::WrappedKey;

/// The channel the append transaction notifies on commit.
const CHANNEL: &str = "videoamt_events";
/// Fallback poll of idle subscriptions, for when the listener connection is down.
const POLL_INTERVAL: Duration = Duration::from_millis(500);
const POOL_SIZE: usize = 4;
/// Positions one query of `read_positions` looks up before the list is split.
const POSITIONS_PER_QUERY: usize = 100;
/// How often the writer yields to other tasks before taking a group.
const LINGER_YIELDS: usize = 2;
/// The role the application is meant to run as (through a login role that is a member).
pub const APP_ROLE: &str = "videoamt_app";

/// Versioned schema. Each entry runs once, in order, in one transaction serialised by an
/// advisory lock, so that several processes starting together migrate once.
const MIGRATIONS: &[(i32, &str, &str)] = &[
    (
        1,
        "events table, position counter, append-only triggers, application role",
        r#"
    CREATE TABLE events (
        global_position bigint      PRIMARY KEY,
        stream_id       text        NOT NULL,
        stream_version  bigint      NOT NULL,
        event_id        uuid        NOT NULL UNIQUE,
        event_type      text        NOT NULL,
        schema_version  integer     NOT NULL,
        tenant          text        NOT NULL,
        correlation_id  uuid        NOT NULL,
        causation_id    uuid        NOT NULL,
        actor_role      text        NOT NULL,
        actor_id        text        NOT NULL,
        recorded_at     timestamptz NOT NULL,
        payload         json        NOT NULL,
        UNIQUE (stream_id, stream_version)
    );
    CREATE TABLE event_position (
        singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
        last      bigint  NOT NULL
    );
    INSERT INTO event_position (singleton, last) VALUES (true, 0);

    CREATE FUNCTION videoamt_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION 'videoamt: events are append-only (% refused)', TG_OP
            USING ERRCODE = 'restrict_violation';
    END $$;
    CREATE TRIGGER events_append_only BEFORE UPDATE OR DELETE ON events
        FOR EACH ROW EXECUTE FUNCTION videoamt_refuse_change();
    CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON events
        FOR EACH STATEMENT EXECUTE FUNCTION videoamt_refuse_change();

    REVOKE ALL ON events FROM PUBLIC;
    DO $$
    BEGIN
        BEGIN
            CREATE ROLE videoamt_app NOLOGIN;
        EXCEPTION
            WHEN duplicate_object OR unique_violation THEN NULL;
            WHEN insufficient_privilege THEN
                RAISE NOTICE 'cannot create role videoamt_app; grant it by hand';
        END;
        IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'videoamt_app') THEN
            GRANT SELECT, INSERT ON events TO videoamt_app;
            GRANT SELECT, UPDATE ON event_position TO videoamt_app;
            GRANT SELECT ON schema_migrations TO videoamt_app;
        END IF;
    END $$;
    "#,
    ),
    (
        2,
        "read models and projection checkpoints",
        r#"
    CREATE TABLE read_models (
        projection text  NOT NULL,
        kind       text  NOT NULL,
        key        text  NOT NULL,
        value      jsonb NOT NULL,
        PRIMARY KEY (projection, kind, key)
    );
    CREATE TABLE projection_checkpoints (
        projection        text        PRIMARY KEY,
        position          bigint      NOT NULL,
        event_recorded_at timestamptz,
        updated_at        timestamptz NOT NULL DEFAULT now()
    );
    DO $$
    BEGIN
        IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'videoamt_app') THEN
            GRANT SELECT, INSERT, UPDATE, DELETE ON read_models, projection_checkpoints
                TO videoamt_app;
        END IF;
    END $$;
    "#,
    ),
    (
        3,
        "wrapped data keys of data subjects",
        r#"
    CREATE TABLE subject_keys (
        subject   uuid        PRIMARY KEY,
        wrapped   bytea       NOT NULL,
        issued_at timestamptz NOT NULL DEFAULT now()
    );
    DO $$
    BEGIN
        IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'videoamt_app') THEN
            GRANT SELECT, INSERT, DELETE ON subject_keys TO videoamt_app;
        END IF;
    END $$;
    "#,
    ),
    (
        4,
        "staff sessions, sign-ons under way and the duties' leases",
        r#"
    CREATE TABLE staff_sessions (
        key        bytea       PRIMARY KEY, -- SHA-256 of the cookie value
        tenant     text        NOT NULL,
        login      text        NOT NULL,
        epoch      bigint      NOT NULL,
        directory  boolean     NOT NULL,
        expires_at timestamptz NOT NULL,
        seen_at    timestamptz NOT NULL
    );
    CREATE TABLE sign_ons (
        key        bytea       PRIMARY KEY, -- SHA-256 of the OpenID state
        state      text        NOT NULL,
        expires_at timestamptz NOT NULL
    );
    CREATE TABLE leases (
        duty       text        PRIMARY KEY,
        holder     text        NOT NULL,
        expires_at timestamptz NOT NULL -- the database server's clock
    );
    DO $$
    BEGIN
        IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'videoamt_app') THEN
            GRANT SELECT, INSERT, UPDATE, DELETE ON staff_sessions, sign_ons, leases
                TO videoamt_app;
        END IF;
    END $$;
    "#,
    ),
    (
        5,
        "the deletion verifier's manifests (ADR 0024)",
        r#"
    CREATE TABLE deletion_manifests (
        subject     uuid NOT NULL,
        fingerprint text NOT NULL, -- the verifier's, under the KEK's key
        PRIMARY KEY (subject, fingerprint)
    );
    DO $$
    BEGIN
        IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'videoamt_app') THEN
            GRANT SELECT, INSERT, DELETE ON deletion_manifests TO videoamt_app;
        END IF;
    END $$;
    "#,
    ),
    (
        6,
        "read model keys compare bytewise",
        // Keys are ASCII identifiers, dates and UUIDs, which every collation orders alike; the
        // byte order spares each index comparison a strcoll call. A rebuild spent about a tenth
        // of the server's time there (perf, `bench projections`).
        r#"
    ALTER TABLE read_models
        ALTER COLUMN projection TYPE text COLLATE "C",
        ALTER COLUMN kind TYPE text COLLATE "C",
        ALTER COLUMN key TYPE text COLLATE "C";
    "#,
    ),
    (
        7,
        "drop the projections' own indexes of stream owners (ADR 0032)",
        // The runner finds an event's appointment itself now; nothing reads these any more.
        "DELETE FROM read_models WHERE kind = 'owner';",
    ),
];

const EVENT_COLUMNS: &str = "global_position, stream_id, stream_version, event_id, event_type, \
     schema_version, tenant, correlation_id, causation_id, actor_role, actor_id, recorded_at, \
     payload::text";

/// The PostgreSQL event store. Cheap to clone; clones share the pool and the writer.
#[derive(Clone, Debug)]
pub struct PostgresStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    pool: Pool,
    writer: mpsc::UnboundedSender<WriteRequest>,
    head: Arc<watch::Sender<GlobalPosition>>,
}

fn store_err(e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> StoreError {
    StoreError::new(e)
}

/// Opens one connection outside the pool and drives it on its own task.
pub(super) async fn dedicated(config: &Config) -> Result<Client, StoreError> {
    let (client, connection) = config.connect(NoTls).await.map_err(store_err)?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::warn!(error = %e, "PostgreSQL connection closed");
        }
    });
    Ok(client)
}

/// Lets the server plan every execution of a prepared statement for its own parameters
/// (`plan_cache_mode`), keeping the options the URL names. By default a connection fixes a
/// generic plan after a statement's fifth run; on a young log that plan is a sequential scan
/// of a few pages, and it stays one while the table grows, so each booking's load came to scan
/// the whole log: 1,050 bookings/s against 2,100–2,300 with plans made per execution
/// (`bench booking`, ADR 0012). A plan costs tens of microseconds; a wrong one grows with the
/// log.
fn plan_every_execution(config: &mut Config) {
    const CUSTOM_PLANS: &str = "-c plan_cache_mode=force_custom_plan";
    let options = match config.get_options() {
        Some(given) if !given.trim().is_empty() => format!("{given} {CUSTOM_PLANS}"),
        _ => CUSTOM_PLANS.to_owned(),
    };
    config.options(options);
}

impl PostgresStore {
    /// Connects, runs pending migrations and starts the writer and the NOTIFY listener.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let mut config: Config = url.parse().map_err(store_err)?;
        plan_every_execution(&mut config);
        let manager = Manager::from_config(
            config.clone(),
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .build()
            .map_err(store_err)?;

        let mut client = dedicated(&config).await?;
        migrate(&mut client).await?;
        let last = last_position(&client).await?;
        let writer = Writer::connect(&config).await?;

        let head = Arc::new(watch::channel(last).0);
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(writer_loop(config.clone(), writer, rx, head.clone()));
        tokio::spawn(listen(config, Arc::downgrade(&head)));
        Ok(Self {
            inner: Arc::new(Inner {
                pool,
                writer: tx,
                head,
            }),
        })
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.inner.pool.get().await.map_err(store_err)
    }
}

async fn migrate(client: &mut Client) -> Result<(), StoreError> {
    let tx = client.transaction().await.map_err(store_err)?;
    tx.batch_execute(
        "SELECT pg_advisory_xact_lock(hashtext('videoamt-migrations'));
         CREATE TABLE IF NOT EXISTS schema_migrations (
             version integer PRIMARY KEY, name text NOT NULL,
             applied_at timestamptz NOT NULL DEFAULT now())",
    )
    .await
    .map_err(store_err)?;
    let current: i32 = tx
        .query_one(
            "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
            &[],
        )
        .await
        .map_err(store_err)?
        .get(0);
    for (version, name, sql) in MIGRATIONS.iter().filter(|(v, _, _)| *v > current) {
        tx.batch_execute(sql).await.map_err(store_err)?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
            &[version, name],
        )
        .await
        .map_err(store_err)?;
    }
    tx.commit().await.map_err(store_err)
}

async fn last_position(client: &Client) -> Result<GlobalPosition, StoreError> {
    let row = client
        .query_one("SELECT last FROM event_position", &[])
        .await
        .map_err(store_err)?;
    Ok(to_u64(row.try_get(0).map_err(store_err)?))
}

/// Keeps `head` at the last position any process committed, as announced by NOTIFY.
/// Reconnects after a failure; ends when the store is dropped.
async fn listen(config: Config, head: Weak<watch::Sender<GlobalPosition>>) {
    while head.strong_count() > 0 {
        if let Err(e) = listen_once(&config, &head).await {
            tracing::warn!(error = %e, "NOTIFY listener lost its connection; reconnecting");
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

async fn listen_once(
    config: &Config,
    head: &Weak<watch::Sender<GlobalPosition>>,
) -> Result<(), StoreError> {
    let (client, mut connection) = config.connect(NoTls).await.map_err(store_err)?;
    let (tx, mut rx) = mpsc::unbounded_channel();
    // The connection yields notifications only while polled; forward them to this task.
    let driver = tokio::spawn(async move {
        let mut messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(Ok(message)) = messages.next().await {
            if let AsyncMessage::Notification(n) = message
                && tx.send(n.payload().parse::<u64>().ok()).is_err()
            {
                break;
            }
        }
    });
    client
        .batch_execute(&format!("LISTEN {CHANNEL}"))
        .await
        .map_err(store_err)?;
    let outcome = loop {
        match tokio::time::timeout(POLL_INTERVAL, rx.recv()).await {
            Err(_) if head.strong_count() == 0 => break Ok(()),
            Err(_) => {}
            Ok(None) => break Err(store_err("listener connection closed")),
            Ok(Some(position)) => {
                let (Some(sender), Some(position)) = (head.upgrade(), position) else {
                    continue;
                };
                advance(&sender, position);
            }
        }
    };
    driver.abort();
    outcome
}

/// Takes every waiting request (up to the group limits), commits them in one transaction and
/// answers each. Ends when every store handle is dropped.
async fn writer_loop(
    config: Config,
    mut writer: Writer,
    mut rx: mpsc::UnboundedReceiver<WriteRequest>,
    head: Arc<watch::Sender<GlobalPosition>>,
) {
    let mut queue = WriteQueue::default();
    loop {
        if queue.pending.is_empty() {
            match rx.recv().await {
                Some(request) => queue.pending.push_back(request),
                None => return,
            }
            // Writers answered by the last group are about to send their next append; let
            // them run before draining, or groups alternate between one request and the rest.
            for _ in 0..LINGER_YIELDS {
                tokio::task::yield_now().await;
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
        let started = std::time::Instant::now();
        let committed = writer.commit_group(&batches).await;
        tracing::debug!(
            requests = batches.len(),
            micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
            "group committed"
        );
        if writer.client.is_closed() {
            // The writer connection died (server restart): open a new one for the next group.
            match Writer::reconnect(&config).await {
                Some(fresh) => writer = fresh,
                None => tracing::error!("event store writer cannot reconnect"),
            }
        }
        queue.answer(group, committed, &head);
    }
}

/// The writer's own connection with its statements prepared once.
struct Writer {
    client: Client,
    lock: Statement,
    heads: Statement,
    existing: Statement,
    insert: Statement,
    advance: Statement,
}

impl Writer {
    async fn connect(config: &Config) -> Result<Self, StoreError> {
        let client = dedicated(config).await?;
        let (lock, heads, existing, insert, advance) = futures::try_join!(
            // The row lock that orders all appends of the cluster; held until commit.
            client.prepare("SELECT last FROM event_position FOR UPDATE"),
            // One index probe per stream (newest version first), whatever the stream's length.
            client.prepare(
                "SELECT s.id, h.v FROM unnest($1::text[]) AS s(id) CROSS JOIN LATERAL \
                 (SELECT stream_version AS v FROM events WHERE stream_id = s.id \
                  ORDER BY stream_version DESC LIMIT 1) AS h",
            ),
            // One index probe per id. Neither `event_id = ANY($1)` nor a plain join: their cached
            // generic plans may scan the table; `LIMIT 1` keeps the lateral probe from being
            // flattened into such a join.
            client.prepare(
                "SELECT e.event_id, e.global_position, e.stream_id, e.stream_version, \
                 e.event_type, e.schema_version, e.payload FROM unnest($1::uuid[]) AS i(id) \
                 CROSS JOIN LATERAL (SELECT event_id, global_position, stream_id, \
                 stream_version, event_type, schema_version, payload::text AS payload \
                 FROM events WHERE event_id = i.id LIMIT 1) AS e",
            ),
            client.prepare(
                "INSERT INTO events (global_position, stream_id, stream_version, event_id, \
                 event_type, schema_version, tenant, correlation_id, causation_id, actor_role, \
                 actor_id, recorded_at, payload) \
                 SELECT p, s, v, id, t, sv, tn, c, ca, ar, ai, ra, pl::json FROM UNNEST(\
                 $1::bigint[], $2::text[], $3::bigint[], $4::uuid[], $5::text[], $6::integer[], \
                 $7::text[], $8::uuid[], $9::uuid[], $10::text[], $11::text[], \
                 $12::timestamptz[], $13::text[]) AS u(p, s, v, id, t, sv, tn, c, ca, ar, ai, ra, pl)",
            ),
            // NOTIFY is delivered at commit, so a woken subscriber finds the rows.
            client.prepare(
                "WITH moved AS (UPDATE event_position SET last = $1) SELECT pg_notify($2, $3)",
            ),
        )
        .map_err(store_err)?;
        Ok(Self {
            client,
            lock,
            heads,
            existing,
            insert,
            advance,
        })
    }

    async fn reconnect(config: &Config) -> Option<Self> {
        for _ in 0..10 {
            match Self::connect(config).await {
                Ok(writer) => return Some(writer),
                Err(e) => tracing::warn!(error = %e, "event store writer reconnecting"),
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
        None
    }

    async fn commit_group(
        &self,
        group: &[&AppendBatch],
    ) -> Result<(Vec<PlannedOutcome>, GlobalPosition), StoreError> {
        let outcome = self.try_commit_group(group).await;
        if outcome.is_err() && !self.client.is_closed() {
            // Leave the connection clean for the next group; the failure itself is reported.
            let _ = self.client.batch_execute("ROLLBACK").await;
        }
        outcome
    }

    /// Two round trips: begin + lock + lookups, then insert + advance + commit. The statements
    /// of one round trip are pipelined; the server still runs them in order.
    async fn try_commit_group(
        &self,
        group: &[&AppendBatch],
    ) -> Result<(Vec<PlannedOutcome>, GlobalPosition), StoreError> {
        let c = &self.client;
        let (streams, ids) = group_keys(group);
        let stream_names: Vec<&str> = streams.iter().map(StreamId::as_str).collect();
        let (stream_param, id_param) = ([&stream_names as _], [&ids as _]);
        let ((), locked, heads, existing) = futures::try_join!(
            c.batch_execute("BEGIN"),
            c.query_one(&self.lock, &[]),
            c.query(&self.heads, &stream_param),
            c.query(&self.existing, &id_param),
        )
        .map_err(store_err)?;

        let mut snapshot = GroupSnapshot {
            last_position: to_u64(locked.try_get(0).map_err(store_err)?),
            ..Default::default()
        };
        for row in heads {
            let stream: String = row.try_get(0).map_err(store_err)?;
            let version: i64 = row.try_get(1).map_err(store_err)?;
            snapshot.heads.insert(
                StreamId::parse(&stream).map_err(store_err)?,
                to_u64(version),
            );
        }
        for row in existing {
            let (id, stored) = stored_identity(&row)?;
            snapshot.existing.insert(id, stored);
        }

        let plan = plan_group(group, &snapshot);
        if !plan.rows.is_empty() {
            let mut columns = InsertColumns::with_capacity(plan.rows.len());
            for row in &plan.rows {
                let s = &group[row.request].streams()[row.stream];
                columns.push(
                    row.global_position,
                    row.stream_version,
                    &s.stream,
                    &s.events[row.event],
                );
            }
            let last = to_i64(plan.last_position);
            let notify = plan.last_position.to_string();
            let (insert_params, advance_params) =
                (columns.params(), [&last as _, &CHANNEL as _, &notify as _]);
            // If the insert fails, the pipelined COMMIT finds an aborted transaction and rolls
            // it back, so nothing of the group is written; the insert's error is reported.
            futures::try_join!(
                c.execute(&self.insert, &insert_params),
                c.execute(&self.advance, &advance_params),
                c.batch_execute("COMMIT"),
            )
            .map_err(store_err)?;
        } else {
            c.batch_execute("COMMIT").await.map_err(store_err)?;
        }
        Ok((plan.outcomes, plan.last_position))
    }
}

fn stored_identity(row: &Row) -> Result<(Uuid, StoredIdentity), StoreError> {
    let id: Uuid = row.try_get(0).map_err(store_err)?;
    let schema: i32 = row.try_get(5).map_err(store_err)?;
    let stream: String = row.try_get(2).map_err(store_err)?;
    let event_type: String = row.try_get(4).map_err(store_err)?;
    Ok((
        id,
        StoredIdentity {
            global_position: to_u64(row.try_get(1).map_err(store_err)?),
            stream_id: StreamId::parse(&stream).map_err(store_err)?,
            stream_version: to_u64(row.try_get(3).map_err(store_err)?),
            event_type: EventType::parse(&event_type).map_err(store_err)?,
            schema_version: u16::try_from(schema).map_err(store_err)?,
            payload: Payload::from_stored(row.try_get(6).map_err(store_err)?),
        },
    ))
}

/// The rows of one INSERT as column arrays, for `UNNEST`: one statement, one round trip.
struct InsertColumns<'a> {
    position: Vec<i64>,
    stream: Vec<&'a str>,
    version: Vec<i64>,
    event_id: Vec<Uuid>,
    event_type: Vec<&'a str>,
    schema_version: Vec<i32>,
    tenant: Vec<&'a str>,
    correlation_id: Vec<Uuid>,
    causation_id: Vec<Uuid>,
    actor_role: Vec<&'static str>,
    actor_id: Vec<&'a str>,
    recorded_at: Vec<OffsetDateTime>,
    payload: Vec<&'a str>,
}

impl<'a> InsertColumns<'a> {
    fn params(&self) -> [&(dyn ToSql + Sync); 13] {
        [
            &self.position,
            &self.stream,
            &self.version,
            &self.event_id,
            &self.event_type,
            &self.schema_version,
            &self.tenant,
            &self.correlation_id,
            &self.causation_id,
            &self.actor_role,
            &self.actor_id,
            &self.recorded_at,
            &self.payload,
        ]
    }

    fn with_capacity(n: usize) -> Self {
        Self {
            position: Vec::with_capacity(n),
            stream: Vec::with_capacity(n),
            version: Vec::with_capacity(n),
            event_id: Vec::with_capacity(n),
            event_type: Vec::with_capacity(n),
            schema_version: Vec::with_capacity(n),
            tenant: Vec::with_capacity(n),
            correlation_id: Vec::with_capacity(n),
            causation_id: Vec::with_capacity(n),
            actor_role: Vec::with_capacity(n),
            actor_id: Vec::with_capacity(n),
            recorded_at: Vec::with_capacity(n),
            payload: Vec::with_capacity(n),
        }
    }

    fn push(
        &mut self,
        position: GlobalPosition,
        version: StreamVersion,
        stream: &'a StreamId,
        e: &'a videoamt_core::event::NewEvent,
    ) {
        self.position.push(to_i64(position));
        self.stream.push(stream.as_str());
        self.version.push(to_i64(version));
        self.event_id.push(e.event_id);
        self.event_type.push(e.event_type.as_str());
        self.schema_version.push(i32::from(e.schema_version));
        self.tenant.push(e.meta.tenant.as_str());
        self.correlation_id.push(e.meta.correlation_id);
        self.causation_id.push(e.meta.causation_id);
        self.actor_role.push(e.meta.actor.role.as_str());
        self.actor_id.push(&e.meta.actor.id);
        self.recorded_at.push(e.meta.recorded_at);
        self.payload.push(e.payload.as_str());
    }
}

fn raw_event(row: &Row) -> Result<RawEvent, tokio_postgres::Error> {
    Ok(RawEvent {
        global_position: row.try_get(0)?,
        stream_id: row.try_get(1)?,
        stream_version: row.try_get(2)?,
        event_id: row.try_get(3)?,
        event_type: row.try_get(4)?,
        schema_version: i64::from(row.try_get::<_, i32>(5)?),
        tenant: row.try_get(6)?,
        correlation_id: row.try_get(7)?,
        causation_id: row.try_get(8)?,
        actor_role: row.try_get(9)?,
        actor_id: row.try_get(10)?,
        recorded_at: row.try_get(11)?,
        payload: row.try_get(12)?,
    })
}

/// The events of one query over several streams, split by stream in the order of `streams`
/// (a stream named twice gets its events twice).
fn by_stream(streams: &[StreamId], events: Vec<RecordedEvent>) -> Vec<Vec<RecordedEvent>> {
    let mut grouped: std::collections::HashMap<StreamId, Vec<RecordedEvent>> =
        std::collections::HashMap::new();
    for event in events {
        grouped
            .entry(event.stream_id.clone())
            .or_default()
            .push(event);
    }
    streams
        .iter()
        .map(|s| grouped.get(s).cloned().unwrap_or_default())
        .collect()
}

fn decode(rows: Vec<Row>) -> Result<Vec<RecordedEvent>, StoreError> {
    rows.iter()
        .map(|row| {
            raw_event(row)
                .map_err(store_err)
                .and_then(RawEvent::into_event)
        })
        .collect()
}

#[async_trait::async_trait]
impl EventStore for PostgresStore {
    async fn append(&self, batch: AppendBatch) -> Result<Appended, AppendError> {
        WriteRequest::submit(batch, "PostgreSQL", |r| self.inner.writer.send(r).is_ok()).await
    }

    async fn read_stream(
        &self,
        stream: &StreamId,
        from: StreamVersion,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(&format!(
                "SELECT {EVENT_COLUMNS} FROM events \
                 WHERE stream_id = $1 AND stream_version >= $2 ORDER BY stream_version"
            ))
            .await
            .map_err(store_err)?;
        let rows = client
            .query(&stmt, &[&stream.as_str(), &to_i64(from)])
            .await
            .map_err(store_err)?;
        decode(rows)
    }

    async fn read_streams(
        &self,
        streams: &[StreamId],
    ) -> Result<Vec<Vec<RecordedEvent>>, StoreError> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(&format!(
                "SELECT {EVENT_COLUMNS} FROM events \
                 WHERE stream_id = ANY($1) ORDER BY stream_id, stream_version"
            ))
            .await
            .map_err(store_err)?;
        let ids: Vec<&str> = streams.iter().map(StreamId::as_str).collect();
        let rows = client.query(&stmt, &[&ids]).await.map_err(store_err)?;
        Ok(by_stream(streams, decode(rows)?))
    }

    async fn read_all(
        &self,
        after: GlobalPosition,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(&format!(
                "SELECT {EVENT_COLUMNS} FROM events \
                 WHERE global_position > $1 ORDER BY global_position LIMIT $2"
            ))
            .await
            .map_err(store_err)?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = client
            .query(&stmt, &[&to_i64(after), &limit])
            .await
            .map_err(store_err)?;
        decode(rows)
    }

    async fn read_positions(
        &self,
        positions: &[GlobalPosition],
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let mut wanted: Vec<i64> = positions.iter().map(|p| to_i64(*p)).collect();
        wanted.sort_unstable();
        wanted.dedup();
        // A record's events lie scattered over the log, one index probe and heap page each.
        // Longer lists are split into ordered parts read on separate connections at once, so
        // the server probes them in parallel; the parts' results follow one another in order.
        let parts = wanted
            .len()
            .div_ceil(POSITIONS_PER_QUERY)
            .clamp(1, POOL_SIZE);
        let per_part = wanted.len().div_ceil(parts).max(1);
        let reads = wanted.chunks(per_part).map(|part| async move {
            let client = self.client().await?;
            let stmt = client
                .prepare_cached(&format!(
                    "SELECT {EVENT_COLUMNS} FROM events \
                     WHERE global_position = ANY($1) ORDER BY global_position"
                ))
                .await
                .map_err(store_err)?;
            let rows = client.query(&stmt, &[&part]).await.map_err(store_err)?;
            decode(rows)
        });
        let parts = futures::future::try_join_all(reads).await?;
        Ok(parts.into_iter().flatten().collect())
    }

    async fn last_position(&self) -> Result<GlobalPosition, StoreError> {
        let client = self.client().await?;
        // Prepared once per connection: a plain query costs a second round trip.
        let stmt = client
            .prepare_cached("SELECT last FROM event_position")
            .await
            .map_err(store_err)?;
        let row = client.query_one(&stmt, &[]).await.map_err(store_err)?;
        Ok(to_u64(row.try_get(0).map_err(store_err)?))
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
impl AdminStore for PostgresStore {
    async fn forget_deleted(&self) -> Result<(), StoreError> {
        let client = self.client().await?;
        client
            .batch_execute("VACUUM subject_keys, deletion_manifests")
            .await
            .map_err(store_err)
    }

    async fn scan_rows(&self, out: mpsc::Sender<(String, String)>) -> Result<u64, StoreError> {
        let client = self.client().await?;
        let tables: Vec<(String, String)> = client
            .query(
                "SELECT schemaname::text, tablename::text FROM pg_tables \
                 WHERE schemaname = current_schema() ORDER BY tablename",
                &[],
            )
            .await
            .map_err(store_err)?
            .iter()
            .map(|r| {
                Ok((
                    r.try_get(0).map_err(store_err)?,
                    r.try_get(1).map_err(store_err)?,
                ))
            })
            .collect::<Result<_, StoreError>>()?;
        let mut rows = 0;
        for (schema, table) in tables {
            let quote = |name: &str| format!("\"{}\"", name.replace('"', "\"\""));
            let sql = format!("SELECT t::text FROM {}.{} t", quote(&schema), quote(&table));
            // Streamed row by row: the result of a large table is never held at once.
            let stream = client
                .query_raw(sql.as_str(), std::iter::empty::<&(dyn ToSql + Sync)>())
                .await
                .map_err(store_err)?;
            futures::pin_mut!(stream);
            while let Some(row) = stream.next().await {
                let text: String = row.map_err(store_err)?.try_get(0).map_err(store_err)?;
                rows += 1;
                if out.send((table.clone(), text)).await.is_err() {
                    return Ok(rows);
                }
            }
        }
        Ok(rows)
    }

    async fn stats(&self) -> Result<StoreStats, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_one(
                "SELECT COUNT(*), COUNT(DISTINCT stream_id), COALESCE(MAX(global_position), 0), \
                 pg_total_relation_size('events'), \
                 (SELECT COALESCE(MAX(version), 0) FROM schema_migrations) FROM events",
                &[],
            )
            .await
            .map_err(store_err)?;
        let get = |i: usize| row.try_get::<_, i64>(i).map(to_u64).map_err(store_err);
        Ok(StoreStats {
            backend: "postgres",
            events: get(0)?,
            streams: get(1)?,
            last_position: get(2)?,
            size_bytes: get(3)?,
            schema_version: u32::try_from(row.try_get::<_, i32>(4).map_err(store_err)?)
                .unwrap_or(0),
        })
    }

    async fn verify(&self) -> Result<VerifyReport, StoreError> {
        let client = self.client().await?;
        let one = |sql: &'static str| {
            let client = &client;
            async move {
                client
                    .query_one(sql, &[])
                    .await
                    .and_then(|r| r.try_get::<_, i64>(0))
                    .map_err(store_err)
            }
        };
        let mut report = VerifyReport::default();
        let row = client
            .query_one(
                "SELECT COUNT(*), COALESCE(MIN(global_position), 0), \
                 COALESCE(MAX(global_position), 0), (SELECT last FROM event_position) FROM events",
                &[],
            )
            .await
            .map_err(store_err)?;
        let get = |i: usize| row.try_get::<_, i64>(i).map_err(store_err);
        let (count, min, max, counter) = (get(0)?, get(1)?, get(2)?, get(3)?);
        report.events_checked = to_u64(count);
        report.check_positions(count, min, max);
        if counter != max {
            report.problems.push(format!(
                "the position counter stands at {counter} but the last event is at {max}"
            ));
        }
        for row in client
            .query(
                "SELECT stream_id, COUNT(*), MIN(stream_version), MAX(stream_version) \
                 FROM events GROUP BY stream_id \
                 HAVING MIN(stream_version) <> 0 OR MAX(stream_version) <> COUNT(*) - 1 LIMIT 10",
                &[],
            )
            .await
            .map_err(store_err)?
        {
            let stream: String = row.try_get(0).map_err(store_err)?;
            let n: i64 = row.try_get(1).map_err(store_err)?;
            let lo: i64 = row.try_get(2).map_err(store_err)?;
            let hi: i64 = row.try_get(3).map_err(store_err)?;
            report.stream_not_contiguous(&stream, n, lo, hi);
        }
        report.check_disorder(
            one("SELECT COUNT(*) FROM events a JOIN events b \
                 ON a.stream_id = b.stream_id AND b.stream_version = a.stream_version + 1 \
                 WHERE b.global_position < a.global_position")
            .await?,
        );
        let triggers: Vec<String> = client
            .query(
                "SELECT tgname::text FROM pg_trigger \
                 WHERE tgrelid = 'events'::regclass AND tgenabled <> 'D' AND NOT tgisinternal",
                &[],
            )
            .await
            .map_err(store_err)?
            .iter()
            .map(|r| r.try_get(0))
            .collect::<Result<_, _>>()
            .map_err(store_err)?;
        let present: Vec<&str> = triggers.iter().map(String::as_str).collect();
        report.check_present(
            "append-only trigger",
            &["events_append_only", "events_no_truncate"],
            &present,
        );
        let role_can_change = one(
            "SELECT COUNT(*) FROM pg_roles WHERE rolname = 'videoamt_app' AND \
             (has_table_privilege(rolname, 'events', 'UPDATE') \
              OR has_table_privilege(rolname, 'events', 'DELETE') \
              OR has_table_privilege(rolname, 'events', 'TRUNCATE'))",
        )
        .await?;
        if role_can_change > 0 {
            report.problems.push(format!(
                "role {APP_ROLE} may UPDATE, DELETE or TRUNCATE events; it must have INSERT and \
                 SELECT only"
            ));
        }
        Ok(report)
    }
}

/// A database of its own on a PostgreSQL server, for tests and benchmarks that must not touch
/// a real log. Created empty; [`ScratchDatabase::drop_now`] removes it.
#[derive(Debug)]
pub struct ScratchDatabase {
    server_url: String,
    name: String,
}

impl ScratchDatabase {
    /// Creates `videoamt_{purpose}_{uuid}` on the server `server_url` points at.
    pub async fn create(server_url: &str, purpose: &str) -> Result<Self, StoreError> {
        let name = format!("videoamt_{purpose}_{}", Uuid::now_v7().simple());
        let admin = dedicated(&server_url.parse().map_err(store_err)?).await?;
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .map_err(store_err)?;
        Ok(Self {
            server_url: server_url.to_owned(),
            name,
        })
    }

    /// The URL of the scratch database: the server's URL with the database name replaced.
    pub fn url(&self) -> String {
        let url = self.server_url.as_str();
        let (base, query) = url
            .split_once('?')
            .map_or((url, None), |(b, q)| (b, Some(q)));
        let scheme_end = base.find("://").map_or(0, |i| i + 3);
        let server = match base[scheme_end..].find('/') {
            Some(i) => &base[..scheme_end + i],
            None => base,
        };
        match query {
            Some(q) => format!("{server}/{}?{q}", self.name),
            None => format!("{server}/{}", self.name),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub async fn drop_now(self) -> Result<(), StoreError> {
        let admin = dedicated(&self.server_url.parse().map_err(store_err)?).await?;
        admin
            .batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .await
            .map_err(store_err)
    }
}

/// The server for PostgreSQL tests, from `VIDEOAMT_TEST_POSTGRES_URL`.
///
/// Outside CI a missing or unreachable server gives `None` and a plain "skipped" message on
/// stderr. In CI (`CI=true`) it panics instead: there a skipped PostgreSQL test would hide a
/// broken setup.
pub async fn test_server_url() -> Option<String> {
    let in_ci = std::env::var("CI").is_ok_and(|v| v == "true");
    let Ok(url) = std::env::var("VIDEOAMT_TEST_POSTGRES_URL") else {
        assert!(!in_ci, "VIDEOAMT_TEST_POSTGRES_URL must be set in CI");
        eprintln!("skipped: VIDEOAMT_TEST_POSTGRES_URL is not set");
        return None;
    };
    let reachable = match url.parse::<Config>() {
        Ok(config) => config
            .connect(NoTls)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    match reachable {
        Ok(()) => Some(url),
        Err(e) => {
            assert!(
                !in_ci,
                "PostgreSQL at VIDEOAMT_TEST_POSTGRES_URL is unreachable: {e}"
            );
            eprintln!("skipped: PostgreSQL at VIDEOAMT_TEST_POSTGRES_URL is unreachable: {e}");
            None
        }
    }
}

fn checkpoint_of(projection: &str, row: Option<&Row>) -> Result<ProjectionCheckpoint, StoreError> {
    Ok(ProjectionCheckpoint {
        projection: projection.to_owned(),
        position: match row {
            Some(r) => to_u64(r.try_get(0).map_err(store_err)?),
            None => 0,
        },
        event_recorded_at: match row {
            Some(r) => r.try_get(1).map_err(store_err)?,
            None => None,
        },
    })
}

/// Rows of `kind, key, value` as documents.
fn doc_rows(rows: &[Row]) -> Result<Vec<(DocKey, serde_json::Value)>, StoreError> {
    rows.iter()
        .map(|r| {
            let kind = r.try_get(0).map_err(store_err)?;
            let key = r.try_get(1).map_err(store_err)?;
            Ok((DocKey { kind, key }, r.try_get(2).map_err(store_err)?))
        })
        .collect()
}

/// `(key, value)` rows of a read-model query.
fn documents(rows: &[Row]) -> Result<Vec<(String, serde_json::Value)>, StoreError> {
    rows.iter()
        .map(|r| {
            Ok((
                r.try_get(0).map_err(store_err)?,
                r.try_get(1).map_err(store_err)?,
            ))
        })
        .collect()
}

/// Opens a read model commit: a transaction that holds the projection's checkpoint row,
/// refused unless the checkpoint is still at `from`.
async fn claim_checkpoint<'c>(
    client: &'c mut deadpool_postgres::Object,
    projection: &str,
    from: GlobalPosition,
) -> Result<deadpool_postgres::Transaction<'c>, ReadModelError> {
    let tx = client.transaction().await.map_err(store_err)?;
    // A read model is derived from the log, and its changes and checkpoint commit together:
    // a commit lost in a crash is lost whole and folded again from the older checkpoint.
    // So the commit need not wait for its WAL flush.
    tx.batch_execute("SET LOCAL synchronous_commit = off")
        .await
        .map_err(store_err)?;
    // Lock the checkpoint row (or the projection's slot when there is none yet) so that two
    // runners cannot both commit from the same position.
    // Prepared once per connection: each statement is then one round trip, not two.
    let claim = tx
        .prepare_cached(
            "INSERT INTO projection_checkpoints (projection, position) VALUES ($1, 0) \
             ON CONFLICT (projection) DO NOTHING",
        )
        .await
        .map_err(store_err)?;
    tx.execute(&claim, &[&projection])
        .await
        .map_err(store_err)?;
    let row = tx
        .query_one(
            &tx.prepare_cached(
                "SELECT position FROM projection_checkpoints WHERE projection = $1 FOR UPDATE",
            )
            .await
            .map_err(store_err)?,
            &[&projection],
        )
        .await
        .map_err(store_err)?;
    let actual = to_u64(row.try_get(0).map_err(store_err)?);
    if actual != from {
        return Err(ReadModelError::CheckpointMoved {
            projection: projection.to_owned(),
            expected: from,
            actual,
        });
    }
    Ok(tx)
}

/// New documents from which a commit writes them with `COPY` rather than the upsert: below, the
/// extra statement costs more than it saves.
const COPY_FROM: usize = 1_000;

/// Writes a commit's [`Change::Insert`]s with a binary `COPY`: no conflict probe, no array to
/// decode; about twice the rows a second of the `unnest` upsert (`bench projections`).
async fn copy_new_documents(
    tx: &deadpool_postgres::Transaction<'_>,
    projection: &str,
    changes: &[Change],
) -> Result<(), ReadModelError> {
    use tokio_postgres::binary_copy::BinaryCopyInWriter;
    use tokio_postgres::types::Type;
    let sink = tx
        .copy_in("COPY read_models (projection, kind, key, value) FROM STDIN BINARY")
        .await
        .map_err(store_err)?;
    let writer = BinaryCopyInWriter::new(sink, &[Type::TEXT, Type::TEXT, Type::TEXT, Type::JSONB]);
    futures::pin_mut!(writer);
    for change in changes {
        if let Change::Insert(k, v) = change {
            writer
                .as_mut()
                .write(&[&projection, &k.kind.as_str(), &k.key.as_str(), &JsonText(v)])
                .await
                .map_err(store_err)?;
        }
    }
    writer.finish().await.map_err(store_err)?;
    Ok(())
}

/// [`ReadModelStore::commit_all`] in two round trips on one connection, each of pipelined
/// statements: begin, claim and lock every checkpoint (in the projections' name order, the
/// same on every node, so two runners cannot deadlock); then the documents of all projections,
/// the checkpoints and the commit. A moved checkpoint refuses the whole commit.
async fn try_commit_all(
    client: &deadpool_postgres::Object,
    commits: &[Commit],
) -> Result<(), ReadModelError> {
    let names: Vec<&str> = commits.iter().map(|c| c.to.projection.as_str()).collect();
    let claim = client
        .prepare_cached(
            "INSERT INTO projection_checkpoints (projection, position) \
             SELECT p, 0 FROM unnest($1::text[]) AS u(p) ORDER BY p COLLATE \"C\" \
             ON CONFLICT (projection) DO NOTHING",
        )
        .await
        .map_err(store_err)?;
    let lock = client
        .prepare_cached(
            "SELECT projection, position FROM projection_checkpoints \
             WHERE projection = ANY($1::text[]) ORDER BY projection COLLATE \"C\" FOR UPDATE",
        )
        .await
        .map_err(store_err)?;
    let names_param: [&(dyn ToSql + Sync); 1] = [&names];
    let ((), _, locked) = futures::try_join!(
        // A read model is derived from the log: see `claim_checkpoint` for why the commit
        // need not wait for its WAL flush.
        client.batch_execute("BEGIN; SET LOCAL synchronous_commit = off"),
        client.execute(&claim, &names_param),
        client.query(&lock, &names_param),
    )
    .map_err(store_err)?;
    let mut at = std::collections::HashMap::with_capacity(locked.len());
    for row in &locked {
        let name: String = row.try_get(0).map_err(store_err)?;
        at.insert(name, to_u64(row.try_get(1).map_err(store_err)?));
    }
    for c in commits {
        let actual = at.get(&c.to.projection).copied().unwrap_or(0);
        if actual != c.from {
            return Err(ReadModelError::CheckpointMoved {
                projection: c.to.projection.clone(),
                expected: c.from,
                actual,
            });
        }
    }
    let (mut put_projections, mut put_kinds, mut put_keys, mut put_values) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut del_projections, mut del_kinds, mut del_keys) = (Vec::new(), Vec::new(), Vec::new());
    for c in commits {
        for change in &c.changes {
            match change {
                Change::Put(k, v) | Change::Insert(k, v) => {
                    put_projections.push(c.to.projection.as_str());
                    put_kinds.push(k.kind.as_str());
                    put_keys.push(k.key.as_str());
                    put_values.push(v.as_str());
                }
                Change::Delete(k) => {
                    del_projections.push(c.to.projection.as_str());
                    del_kinds.push(k.kind.as_str());
                    del_keys.push(k.key.as_str());
                }
            }
        }
    }
    let positions: Vec<i64> = commits.iter().map(|c| to_i64(c.to.position)).collect();
    let recorded: Vec<Option<OffsetDateTime>> =
        commits.iter().map(|c| c.to.event_recorded_at).collect();
    let upsert = client
        .prepare_cached(
            "INSERT INTO read_models (projection, kind, key, value) \
             SELECT p, k, n, v::jsonb FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) \
             AS u(p, k, n, v) \
             ON CONFLICT (projection, kind, key) DO UPDATE SET value = excluded.value",
        )
        .await
        .map_err(store_err)?;
    let delete = client
        .prepare_cached(
            "DELETE FROM read_models r USING unnest($1::text[], $2::text[], $3::text[]) AS u(p, k, n) \
             WHERE r.projection = u.p AND r.kind = u.k AND r.key = u.n",
        )
        .await
        .map_err(store_err)?;
    let moved = client
        .prepare_cached(
            "UPDATE projection_checkpoints c SET position = u.pos, event_recorded_at = u.at, \
             updated_at = now() \
             FROM unnest($1::text[], $2::bigint[], $3::timestamptz[]) AS u(p, pos, at) \
             WHERE c.projection = u.p",
        )
        .await
        .map_err(store_err)?;
    let put_params: [&(dyn ToSql + Sync); 4] =
        [&put_projections, &put_kinds, &put_keys, &put_values];
    let del_params: [&(dyn ToSql + Sync); 3] = [&del_projections, &del_kinds, &del_keys];
    let move_params: [&(dyn ToSql + Sync); 3] = [&names, &positions, &recorded];
    // If a statement fails, the pipelined COMMIT finds an aborted transaction and rolls it
    // back: nothing of any projection is written, and the statement's error is reported.
    futures::try_join!(
        async {
            if put_keys.is_empty() {
                Ok(0)
            } else {
                client.execute(&upsert, &put_params).await
            }
        },
        async {
            if del_keys.is_empty() {
                Ok(0)
            } else {
                client.execute(&delete, &del_params).await
            }
        },
        client.execute(&moved, &move_params),
        client.batch_execute("COMMIT"),
    )
    .map_err(store_err)?;
    Ok(())
}

/// Ends a read model commit: the checkpoint moves to `to`.
async fn move_checkpoint(
    tx: &deadpool_postgres::Transaction<'_>,
    projection: &str,
    to: &ProjectionCheckpoint,
) -> Result<(), ReadModelError> {
    let moved = tx
        .prepare_cached(
            "UPDATE projection_checkpoints SET position = $2, event_recorded_at = $3, \
             updated_at = now() WHERE projection = $1",
        )
        .await
        .map_err(store_err)?;
    tx.execute(
        &moved,
        &[&projection, &to_i64(to.position), &to.event_recorded_at],
    )
    .await
    .map_err(store_err)?;
    Ok(())
}

/// A document's JSON text as a `jsonb` (or `json`) value in binary form: the text after a
/// version byte for `jsonb`, so that it is not parsed on this side first.
#[derive(Debug)]
struct JsonText<'a>(&'a str);

impl tokio_postgres::types::ToSql for JsonText<'_> {
    fn to_sql(
        &self,
        ty: &tokio_postgres::types::Type,
        out: &mut bytes::BytesMut,
    ) -> Result<tokio_postgres::types::IsNull, Box<dyn std::error::Error + Sync + Send>> {
        if *ty == tokio_postgres::types::Type::JSONB {
            // jsonb's binary format, version 1.
            out.extend_from_slice(&[1]);
        }
        out.extend_from_slice(self.0.as_bytes());
        Ok(tokio_postgres::types::IsNull::No)
    }

    fn accepts(ty: &tokio_postgres::types::Type) -> bool {
        matches!(
            *ty,
            tokio_postgres::types::Type::JSON | tokio_postgres::types::Type::JSONB
        )
    }

    tokio_postgres::types::to_sql_checked!();
}

#[async_trait::async_trait]
impl ReadModelStore for PostgresStore {
    async fn checkpoint(&self, projection: &str) -> Result<ProjectionCheckpoint, StoreError> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(
                "SELECT position, event_recorded_at FROM projection_checkpoints WHERE projection = $1",
            )
            .await
            .map_err(store_err)?;
        let row = client
            .query_opt(&stmt, &[&projection])
            .await
            .map_err(store_err)?;
        checkpoint_of(projection, row.as_ref())
    }

    async fn checkpoints(&self) -> Result<Vec<ProjectionCheckpoint>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT position, event_recorded_at, projection FROM projection_checkpoints \
                 ORDER BY projection",
                &[],
            )
            .await
            .map_err(store_err)?;
        rows.iter()
            .map(|r| {
                let name: String = r.try_get(2).map_err(store_err)?;
                checkpoint_of(&name, Some(r))
            })
            .collect()
    }

    async fn get(
        &self,
        projection: &str,
        keys: &[DocKey],
    ) -> Result<Vec<(DocKey, serde_json::Value)>, StoreError> {
        if keys.is_empty() {
            return Ok(vec![]);
        }
        let client = self.client().await?;
        let kinds: Vec<&str> = keys.iter().map(|k| k.kind.as_str()).collect();
        let names: Vec<&str> = keys.iter().map(|k| k.key.as_str()).collect();
        let stmt = client
            .prepare_cached(
                "SELECT r.kind, r.key, r.value FROM unnest($2::text[], $3::text[]) AS k(kind, key) \
                 CROSS JOIN LATERAL (SELECT kind, key, value FROM read_models \
                 WHERE projection = $1 AND kind = k.kind AND key = k.key LIMIT 1) AS r",
            )
            .await
            .map_err(store_err)?;
        let rows = client
            .query(&stmt, &[&projection, &kinds, &names])
            .await
            .map_err(store_err)?;
        doc_rows(&rows)
    }

    async fn list(
        &self,
        projection: &str,
        kind: &str,
        prefix: &str,
    ) -> Result<Vec<(String, serde_json::Value)>, StoreError> {
        let client = self.client().await?;
        let high = format!("{prefix}\u{10FFFF}");
        let stmt = client
            .prepare_cached(
                "SELECT key, value FROM read_models WHERE projection = $1 AND kind = $2 \
                 AND key >= $3 AND key < $4 ORDER BY key COLLATE \"C\"",
            )
            .await
            .map_err(store_err)?;
        let rows = client
            .query(&stmt, &[&projection, &kind, &prefix, &high])
            .await
            .map_err(store_err)?;
        documents(&rows)
    }

    async fn list_range(
        &self,
        projection: &str,
        kind: &str,
        after: &str,
        before: &str,
        limit: u32,
    ) -> Result<Vec<(String, serde_json::Value)>, StoreError> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(
                // The key index's collation, so that the index serves the range: range keys are
                // fixed-width lowercase letters and digits, which every collation orders alike.
                "SELECT key, value FROM read_models WHERE projection = $1 AND kind = $2 \
                 AND key > $3 AND key < $4 ORDER BY key LIMIT $5",
            )
            .await
            .map_err(store_err)?;
        let rows = client
            .query(
                &stmt,
                &[&projection, &kind, &after, &before, &i64::from(limit)],
            )
            .await
            .map_err(store_err)?;
        documents(&rows)
    }

    async fn commit(
        &self,
        projection: &str,
        from: GlobalPosition,
        to: ProjectionCheckpoint,
        changes: Vec<Change>,
    ) -> Result<(), ReadModelError> {
        let mut client = self.client().await?;
        let tx = claim_checkpoint(&mut client, projection, from).await?;
        let inserts = changes
            .iter()
            .filter(|c| matches!(c, Change::Insert(..)))
            .count();
        let copy = inserts >= COPY_FROM;
        if copy {
            copy_new_documents(&tx, projection, &changes).await?;
        }
        let (mut put_kinds, mut put_keys, mut put_values) = (Vec::new(), Vec::new(), Vec::new());
        let (mut del_kinds, mut del_keys) = (Vec::new(), Vec::new());
        for change in &changes {
            match change {
                Change::Insert(..) if copy => {}
                Change::Put(k, v) | Change::Insert(k, v) => {
                    put_kinds.push(k.kind.as_str());
                    put_keys.push(k.key.as_str());
                    put_values.push(v.as_str());
                }
                Change::Delete(k) => {
                    del_kinds.push(k.kind.as_str());
                    del_keys.push(k.key.as_str());
                }
            }
        }
        if !put_keys.is_empty() {
            let upsert = tx
                .prepare_cached(
                    "INSERT INTO read_models (projection, kind, key, value) \
                     SELECT $1, k, n, v::jsonb FROM unnest($2::text[], $3::text[], $4::text[]) AS u(k, n, v) \
                     ON CONFLICT (projection, kind, key) DO UPDATE SET value = excluded.value",
                )
                .await
                .map_err(store_err)?;
            tx.execute(&upsert, &[&projection, &put_kinds, &put_keys, &put_values])
                .await
                .map_err(store_err)?;
        }
        if !del_keys.is_empty() {
            let delete = tx
                .prepare_cached(
                    "DELETE FROM read_models r USING unnest($2::text[], $3::text[]) AS u(k, n) \
                     WHERE r.projection = $1 AND r.kind = u.k AND r.key = u.n",
                )
                .await
                .map_err(store_err)?;
            tx.execute(&delete, &[&projection, &del_kinds, &del_keys])
                .await
                .map_err(store_err)?;
        }
        move_checkpoint(&tx, projection, &to).await?;
        tx.commit().await.map_err(store_err)?;
        Ok(())
    }

    async fn commit_all(&self, mut commits: Vec<Commit>) -> Result<(), ReadModelError> {
        let bulk = commits.iter().any(|c| {
            c.changes
                .iter()
                .filter(|ch| matches!(ch, Change::Insert(..)))
                .count()
                >= COPY_FROM
        });
        if commits.len() <= 1 || bulk {
            // One projection, or a catch-up with documents enough for `COPY`: one by one.
            return videoamt_core::readmodel::commit_in_turn(self, commits).await;
        }
        commits.sort_by(|a, b| a.to.projection.cmp(&b.to.projection));
        let client = self.client().await?;
        let outcome = try_commit_all(&client, &commits).await;
        if outcome.is_err() && !client.is_closed() {
            // Leave the connection clean for its next user; the failure itself is reported.
            let _ = client.batch_execute("ROLLBACK").await;
        }
        outcome
    }

    async fn reset(&self, projection: &str) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(store_err)?;
        tx.execute(
            "DELETE FROM read_models WHERE projection = $1",
            &[&projection],
        )
        .await
        .map_err(store_err)?;
        tx.execute(
            "DELETE FROM projection_checkpoints WHERE projection = $1",
            &[&projection],
        )
        .await
        .map_err(store_err)?;
        tx.commit().await.map_err(store_err)
    }

    async fn dump(&self, projection: &str) -> Result<Vec<(DocKey, serde_json::Value)>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT kind, key, value FROM read_models WHERE projection = $1 \
                 ORDER BY kind COLLATE \"C\", key COLLATE \"C\"",
                &[&projection],
            )
            .await
            .map_err(store_err)?;
        doc_rows(&rows)
    }
}

#[async_trait::async_trait]
impl crate::keys::WrappedKeys for PostgresStore {
    async fn insert_wrapped_key(
        &self,
        subject: SubjectId,
        wrapped: Vec<u8>,
    ) -> Result<(), StoreError> {
        let client = self.client().await?;
        // The key is used only by an append that follows it and waits for its own commit to
        // be flushed; the log's WAL is flushed in order, so that flush makes this insert
        // durable too, and a crash before it loses a key nothing refers to. So this one
        // statement turns off its own wait for a flush (set_config local to its implicit
        // transaction, read at its commit) instead of costing every booking a second,
        // ungrouped WAL flush, in one round trip.
        let statement = client
            .prepare_cached(
                "WITH relaxed AS (SELECT set_config('synchronous_commit', 'off', true)) \
                 INSERT INTO subject_keys (subject, wrapped) \
                 SELECT $1, $2 FROM relaxed \
                 ON CONFLICT (subject) DO NOTHING",
            )
            .await
            .map_err(store_err)?;
        client
            .execute(&statement, &[&subject.0, &wrapped])
            .await
            .map(|_| ())
            .map_err(store_err)
    }

    async fn wrapped_key(&self, subject: SubjectId) -> Result<Option<Vec<u8>>, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "SELECT wrapped FROM subject_keys WHERE subject = $1",
                &[&subject.0],
            )
            .await
            .map_err(store_err)?;
        row.map(|r| r.try_get(0).map_err(store_err)).transpose()
    }

    async fn wrapped_keys_of(
        &self,
        subjects: &[SubjectId],
    ) -> Result<Vec<(SubjectId, Vec<u8>)>, StoreError> {
        let client = self.client().await?;
        let ids: Vec<Uuid> = subjects.iter().map(|s| s.0).collect();
        let rows = client
            .query(
                "SELECT subject, wrapped FROM subject_keys WHERE subject = ANY($1)",
                &[&ids],
            )
            .await
            .map_err(store_err)?;
        rows.iter()
            .map(|r| {
                Ok((
                    SubjectId(r.try_get(0).map_err(store_err)?),
                    r.try_get(1).map_err(store_err)?,
                ))
            })
            .collect()
    }

    async fn delete_wrapped_keys(
        &self,
        subjects: &[SubjectId],
    ) -> Result<Vec<SubjectId>, StoreError> {
        let client = self.client().await?;
        let ids: Vec<Uuid> = subjects.iter().map(|s| s.0).collect();
        let rows = client
            .query(
                "DELETE FROM subject_keys WHERE subject = ANY($1) RETURNING subject",
                &[&ids],
            )
            .await
            .map_err(store_err)?;
        rows.iter()
            .map(|r| r.try_get(0).map(SubjectId).map_err(store_err))
            .collect()
    }

    async fn wrapped_keys_after(
        &self,
        after: Option<SubjectId>,
        limit: u32,
    ) -> Result<Vec<WrappedKey>, StoreError> {
        let client = self.client().await?;
        let after: Option<Uuid> = after.map(|s| s.0);
        let rows = client
            .query(
                "SELECT subject, wrapped, issued_at FROM subject_keys \
                 WHERE $1::uuid IS NULL OR subject > $1 ORDER BY subject LIMIT $2",
                &[&after, &i64::from(limit)],
            )
            .await
            .map_err(store_err)?;
        rows.iter()
            .map(|r| {
                Ok(WrappedKey {
                    subject: SubjectId(r.try_get(0).map_err(store_err)?),
                    wrapped: r.try_get(1).map_err(store_err)?,
                    issued_at: r.try_get(2).map_err(store_err)?,
                })
            })
            .collect()
    }

    async fn restore_wrapped_keys(&self, keys: Vec<WrappedKey>) -> Result<u64, StoreError> {
        let client = self.client().await?;
        let subjects: Vec<Uuid> = keys.iter().map(|k| k.subject.0).collect();
        let issued: Vec<OffsetDateTime> = keys.iter().map(|k| k.issued_at).collect();
        let wrapped: Vec<Vec<u8>> = keys.into_iter().map(|k| k.wrapped).collect();
        client
            .execute(
                "INSERT INTO subject_keys (subject, wrapped, issued_at) \
                 SELECT * FROM UNNEST($1::uuid[], $2::bytea[], $3::timestamptz[]) \
                 ON CONFLICT (subject) DO NOTHING",
                &[&subjects, &wrapped, &issued],
            )
            .await
            .map_err(store_err)
    }

    async fn add_to_manifest(&self, rows: Vec<(SubjectId, String)>) -> Result<(), StoreError> {
        if rows.is_empty() {
            return Ok(());
        }
        let client = self.client().await?;
        let (subjects, fingerprints): (Vec<Uuid>, Vec<String>) =
            rows.into_iter().map(|(s, f)| (s.0, f)).unzip();
        client
            .execute(
                "INSERT INTO deletion_manifests (subject, fingerprint) \
                 SELECT * FROM UNNEST($1::uuid[], $2::text[]) ON CONFLICT DO NOTHING",
                &[&subjects, &fingerprints],
            )
            .await
            .map(|_| ())
            .map_err(store_err)
    }

    async fn manifest_of(
        &self,
        subjects: &[SubjectId],
    ) -> Result<Vec<(SubjectId, String)>, StoreError> {
        let client = self.client().await?;
        let ids: Vec<Uuid> = subjects.iter().map(|s| s.0).collect();
        let rows = client
            .query(
                "SELECT subject, fingerprint FROM deletion_manifests WHERE subject = ANY($1)",
                &[&ids],
            )
            .await
            .map_err(store_err)?;
        rows.iter()
            .map(|r| {
                Ok((
                    SubjectId(r.try_get(0).map_err(store_err)?),
                    r.try_get(1).map_err(store_err)?,
                ))
            })
            .collect()
    }

    async fn drop_manifests(&self, subjects: &[SubjectId]) -> Result<(), StoreError> {
        let client = self.client().await?;
        let ids: Vec<Uuid> = subjects.iter().map(|s| s.0).collect();
        client
            .execute(
                "DELETE FROM deletion_manifests WHERE subject = ANY($1)",
                &[&ids],
            )
            .await
            .map(|_| ())
            .map_err(store_err)
    }

    async fn manifest_subjects(&self, limit: u32) -> Result<Vec<SubjectId>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT DISTINCT subject FROM deletion_manifests ORDER BY subject LIMIT $1",
                &[&i64::from(limit)],
            )
            .await
            .map_err(store_err)?;
        rows.iter()
            .map(|r| Ok(SubjectId(r.try_get(0).map_err(store_err)?)))
            .collect()
    }
}

#[async_trait::async_trait]
impl SessionStore for PostgresStore {
    async fn open_session(&self, key: SessionKey, record: SessionRecord) -> Result<(), StoreError> {
        let client = self.client().await?;
        client
            .execute(
                "INSERT INTO staff_sessions (key, tenant, login, epoch, directory, expires_at, \
                 seen_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                &[
                    &key.as_slice(),
                    &record.tenant.as_str(),
                    &record.login.as_str(),
                    &i64::from(record.epoch),
                    &record.directory,
                    &record.expires,
                    &record.seen,
                ],
            )
            .await
            .map(|_| ())
            .map_err(store_err)
    }

    async fn session(&self, key: SessionKey) -> Result<Option<SessionRecord>, StoreError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(
                "SELECT tenant, login, epoch, directory, expires_at, seen_at \
                 FROM staff_sessions WHERE key = $1",
            )
            .await
            .map_err(store_err)?;
        let Some(row) = client
            .query_opt(&statement, &[&key.as_slice()])
            .await
            .map_err(store_err)?
        else {
            return Ok(None);
        };
        let tenant: String = row.try_get(0).map_err(store_err)?;
        let login: String = row.try_get(1).map_err(store_err)?;
        let epoch: i64 = row.try_get(2).map_err(store_err)?;
        super::session_record(
            &tenant,
            &login,
            u32::try_from(epoch).map_err(store_err)?,
            row.try_get(3).map_err(store_err)?,
            row.try_get(4).map_err(store_err)?,
            row.try_get(5).map_err(store_err)?,
        )
        .map(Some)
    }

    async fn touch_session(&self, key: SessionKey, seen: OffsetDateTime) -> Result<(), StoreError> {
        let client = self.client().await?;
        client
            .execute(
                "UPDATE staff_sessions SET seen_at = greatest(seen_at, $2) WHERE key = $1",
                &[&key.as_slice(), &seen],
            )
            .await
            .map(|_| ())
            .map_err(store_err)
    }

    async fn carry_session_over(&self, key: SessionKey, epoch: u32) -> Result<(), StoreError> {
        let client = self.client().await?;
        client
            .execute(
                "UPDATE staff_sessions SET epoch = $2 WHERE key = $1",
                &[&key.as_slice(), &i64::from(epoch)],
            )
            .await
            .map(|_| ())
            .map_err(store_err)
    }

    async fn close_session(&self, key: SessionKey) -> Result<(), StoreError> {
        let client = self.client().await?;
        client
            .execute(
                "DELETE FROM staff_sessions WHERE key = $1",
                &[&key.as_slice()],
            )
            .await
            .map(|_| ())
            .map_err(store_err)
    }

    async fn close_stale_sessions(
        &self,
        now: OffsetDateTime,
        idle: time::Duration,
    ) -> Result<u64, StoreError> {
        let client = self.client().await?;
        let sessions = client
            .execute(
                "DELETE FROM staff_sessions WHERE expires_at <= $1 OR seen_at <= $2",
                &[&now, &(now - idle)],
            )
            .await
            .map_err(store_err)?;
        client
            .execute("DELETE FROM sign_ons WHERE expires_at <= $1", &[&now])
            .await
            .map_err(store_err)?;
        Ok(sessions)
    }

    async fn put_sign_on(
        &self,
        key: SessionKey,
        state: String,
        expires: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let client = self.client().await?;
        client
            .execute(
                "INSERT INTO sign_ons (key, state, expires_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (key) DO UPDATE SET state = excluded.state, \
                 expires_at = excluded.expires_at",
                &[&key.as_slice(), &state, &expires],
            )
            .await
            .map(|_| ())
            .map_err(store_err)
    }

    async fn take_sign_on(
        &self,
        key: SessionKey,
        now: OffsetDateTime,
    ) -> Result<Option<String>, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "DELETE FROM sign_ons WHERE key = $1 RETURNING state, expires_at",
                &[&key.as_slice()],
            )
            .await
            .map_err(store_err)?;
        let Some(row) = row else { return Ok(None) };
        let expires: OffsetDateTime = row.try_get(1).map_err(store_err)?;
        Ok((expires > now)
            .then(|| row.try_get(0))
            .transpose()
            .map_err(store_err)?)
    }
}

#[async_trait::async_trait]
impl Leases for PostgresStore {
    async fn acquire(&self, duty: &str, holder: &str, ttl: Duration) -> Result<bool, StoreError> {
        let client = self.client().await?;
        let ttl = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
        // Taken when free, expired or already ours; the server's clock decides.
        let row = client
            .query_opt(
                "INSERT INTO leases (duty, holder, expires_at) \
                 VALUES ($1, $2, clock_timestamp() + $3::bigint * interval '1 millisecond') \
                 ON CONFLICT (duty) DO UPDATE SET holder = excluded.holder, \
                     expires_at = excluded.expires_at \
                 WHERE leases.holder = excluded.holder OR leases.expires_at <= clock_timestamp() \
                 RETURNING holder",
                &[&duty, &holder, &ttl],
            )
            .await
            .map_err(store_err)?;
        Ok(row.is_some())
    }

    async fn release(&self, duty: &str, holder: &str) -> Result<(), StoreError> {
        let client = self.client().await?;
        client
            .execute(
                "DELETE FROM leases WHERE duty = $1 AND holder = $2",
                &[&duty, &holder],
            )
            .await
            .map(|_| ())
            .map_err(store_err)
    }

    async fn holder(&self, duty: &str) -> Result<Option<String>, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "SELECT holder FROM leases WHERE duty = $1 AND expires_at > clock_timestamp()",
                &[&duty],
            )
            .await
            .map_err(store_err)?;
        Ok(row.map(|r| r.get(0)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn setting(store: &PostgresStore, name: &str) -> String {
        let client = store.client().await.expect("a pooled connection");
        let row = client
            .query_one(&format!("SHOW {name}"), &[])
            .await
            .expect("SHOW answers");
        row.get(0)
    }

    #[tokio::test]
    async fn every_execution_is_planned_for_its_parameters_and_the_urls_options_stay() {
        let Some(server) = test_server_url().await else {
            return;
        };
        let scratch = ScratchDatabase::create(&server, "plans")
            .await
            .expect("a scratch database");
        let url = scratch.url();
        let separator = if url.contains('?') { '&' } else { '?' };
        let store = PostgresStore::connect(&format!(
            "{url}{separator}options=-c%20statement_timeout%3D4321"
        ))
        .await
        .expect("the store connects");

        assert_eq!(
            setting(&store, "plan_cache_mode").await,
            "force_custom_plan"
        );
        assert_eq!(setting(&store, "statement_timeout").await, "4321ms");

        drop(store);
        scratch
            .drop_now()
            .await
            .expect("the scratch database is dropped");
    }
}
