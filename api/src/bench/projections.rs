//! `videoamt bench projections`: the read models over a generated 1,000,000-event log.
//!
//! (a) the rate of rebuilding all projections from 0 (one read of the log for all);
//! (b) the lag while events are appended at a steady rate with the live runner following:
//!     for each appended batch, the time from its acknowledgement until every projection's
//!     checkpoint has passed it (checkpoints polled every 20 ms, so figures err on the high
//!     side by up to that);
//! (c) the latency of one appointment's audit replay (time travel to the end of a record of
//!     about 300 events, read from the log), and of the audited view that records
//!     `AuditRecordViewed` first;
//! and the peak RSS. The log is made of real visits, replicated (see
//! `videoamt_scenarios::generate`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use time::OffsetDateTime;
use videoamt_adapters::bus::CommandBus;
use videoamt_adapters::store::sqlite::SqliteStore;
use videoamt_adapters::store::{AdminStore, StoreLocation};
use videoamt_core::event::{Actor, ActorRole, EventMetadata, NewEvent, RecordedEvent};
use videoamt_core::store::{AppendBatch, EventStore, ExpectedVersion, StreamAppend};
use videoamt_core::tenant::example_tenants;
use videoamt_projections::runner::Runner;
use videoamt_projections::{all, audit};
use videoamt_scenarios::generate::{BulkSpec, bulk_log};

use crate::bench::Backend;
use crate::bench::{percentile_ms, round, rss_mb, scratch, write_json};

#[derive(Debug)]
pub(crate) struct ProjectionsBenchOptions {
    pub backend: Backend,
    pub server: StoreLocation,
    pub events: u64,
    pub rate: u64,
    pub seconds: u64,
    pub replays: u32,
    pub out: std::path::PathBuf,
}

#[derive(Debug, Serialize)]
struct Report {
    backend: &'static str,
    log_events: u64,
    /// Complete visits in the log (booking to feedback, recorded from the scenarios), and the
    /// events one takes on average: the load model of `docs/operations/scaling.md`.
    visits: usize,
    events_per_visit: f64,
    generate_seconds: f64,
    rebuild: Rebuild,
    live: Live,
    audit_replay: Replays,
    peak_rss_mb: f64,
    machine: String,
}

#[derive(Debug, Serialize)]
struct Rebuild {
    projections: Vec<&'static str>,
    events: u64,
    seconds: f64,
    events_per_s: f64,
    target_events_per_s: f64,
    /// The baseline, measured in the same run right before: the store's own `read_all` over
    /// the whole log, in the rebuild's page size, nothing decoded or folded; the faster of two
    /// passes.
    read_all_events_per_s: f64,
    ratio_to_read_all: f64,
    target_ratio_to_read_all: f64,
    /// Until the last page was read, decoded and queued for every projection.
    read_seconds: f64,
    /// Where each projection's time went: folding in memory, and committing (serialising and
    /// writing the changed documents of a window with the checkpoint).
    by_projection: Vec<videoamt_projections::runner::Spent>,
}

#[derive(Debug, Serialize)]
struct Live {
    rate_events_per_s: u64,
    seconds: u64,
    events_appended: u64,
    batches: usize,
    lag_p50_ms: f64,
    lag_p99_ms: f64,
    lag_max_ms: f64,
    target_p99_ms: f64,
}

#[derive(Debug, Serialize)]
struct Replays {
    record_events: usize,
    runs: u32,
    replay_p50_ms: f64,
    replay_p99_ms: f64,
    audited_view_p50_ms: f64,
    audited_view_p99_ms: f64,
    target_p99_ms: f64,
}

pub(crate) async fn projections(options: ProjectionsBenchOptions) -> anyhow::Result<()> {
    let scratch = scratch(options.backend, &options.server, "bench_projections").await?;
    let store = scratch.store.clone();
    let tenants = Arc::new(example_tenants()?);
    let projections = all(tenants.clone());

    eprintln!("generating a log of {} events …", options.events);
    let started = Instant::now();
    let spec = BulkSpec {
        target_events: options.events,
        big_record_events: 300,
    };
    let log = bulk_log(store.clone(), &spec, |_| {}).await?;
    let generate_seconds = started.elapsed().as_secs_f64();

    eprintln!("(a) read_all over the log, the baseline …");
    // Twice, keeping the faster: the first pass over freshly written rows also sets their hint
    // bits (PostgreSQL) and warms the cache, which the rebuild's own read then profits from.
    let read_all_events_per_s = read_all_rate(store.as_ref())
        .await?
        .max(read_all_rate(store.as_ref()).await?);
    eprintln!("    {read_all_events_per_s:.0} events/s");
    eprintln!("(a) rebuilding {} projections …", projections.len());
    let runner = Runner::new(store.clone(), store.clone());
    let started = Instant::now();
    let rebuilt = runner.rebuild_measured(&projections, |_| {}).await?;
    let seconds = started.elapsed().as_secs_f64();
    let read = rebuilt.events;
    let rebuild = Rebuild {
        projections: projections.iter().map(|p| p.name()).collect(),
        events: read,
        seconds: round(seconds),
        events_per_s: round(read as f64 / seconds),
        target_events_per_s: 100_000.0,
        read_all_events_per_s: round(read_all_events_per_s),
        ratio_to_read_all: round(read as f64 / seconds / read_all_events_per_s.max(f64::EPSILON)),
        target_ratio_to_read_all: 0.5,
        read_seconds: round(rebuilt.read_seconds),
        by_projection: rebuilt
            .projections
            .iter()
            .map(|p| videoamt_projections::runner::Spent {
                fold_seconds: round(p.fold_seconds),
                commit_seconds: round(p.commit_seconds),
                ..p.clone()
            })
            .collect(),
    };
    eprintln!("    {:.0} events/s", rebuild.events_per_s);

    eprintln!(
        "(b) {} events/s for {} s with the live runner following …",
        options.rate, options.seconds
    );
    let live = live(&store, &runner, &projections, &options).await?;

    // After (b), not right after the rebuild: an auditor reads a log in service, not one whose
    // million rows the database is still vacuuming and checkpointing.
    eprintln!("(c) audit replays of the big record …");
    let audit_replay = replays(&store, log.big_appointment, options.replays).await?;

    let report = Report {
        backend: scratch.name,
        log_events: log.events,
        visits: log.appointments.len(),
        events_per_visit: round(log.events as f64 / log.appointments.len().max(1) as f64),
        generate_seconds: round(generate_seconds),
        rebuild,
        live,
        audit_replay,
        peak_rss_mb: rss_mb("VmHWM"),
        machine: format!(
            "{} cores, {}",
            std::thread::available_parallelism().map_or(0, |n| n.get()),
            std::env::consts::ARCH
        ),
    };
    println!("{}", serde_json::to_string_pretty(&report)?);
    write_json(
        &options.out,
        format!("projections-{}.json", scratch.name),
        &report,
    )?;
    drop((store, runner));
    scratch.cleanup.run().await
}

/// Events per second of reading the whole log page by page, as a rebuild reads it.
async fn read_all_rate(store: &dyn videoamt_core::store::EventStore) -> anyhow::Result<f64> {
    let started = Instant::now();
    let (mut after, mut read) = (0, 0u64);
    loop {
        let page = store
            .read_all(after, videoamt_projections::runner::REBUILD_BATCH)
            .await?;
        let Some(last) = page.last() else { break };
        after = last.global_position;
        read += page.len() as u64;
    }
    Ok(read as f64 / started.elapsed().as_secs_f64().max(f64::EPSILON))
}

async fn replays(
    store: &Arc<dyn AdminStore>,
    appointment: videoamt_core::domain::AppointmentId,
    runs: u32,
) -> anyhow::Result<Replays> {
    let mut read = Vec::new();
    let mut record_events = 0;
    for _ in 0..runs {
        let started = Instant::now();
        let replay = audit::replay(store.as_ref(), store.as_ref(), appointment, None, None).await?;
        read.push(started.elapsed());
        record_events = replay.timeline.len();
    }
    let keys = Arc::new(videoamt_adapters::keys::Keyring::new(
        videoamt_adapters::keys::Kek::ephemeral()?,
        store.clone(),
    ));
    let desk = crate::app::audit::AuditDesk::new(
        CommandBus::new(store.clone(), keys, example_tenants()?),
        store.clone(),
    );
    let auditor = Actor::new(ActorRole::Auditor, "bench")?;
    let mut viewed = Vec::new();
    for _ in 0..runs.min(200) {
        let started = Instant::now();
        desk.view(appointment, None, &auditor).await?;
        viewed.push(started.elapsed());
    }
    Ok(Replays {
        record_events,
        runs,
        replay_p50_ms: round(percentile_ms(&read, 0.50)),
        replay_p99_ms: round(percentile_ms(&read, 0.99)),
        audited_view_p50_ms: round(percentile_ms(&viewed, 0.50)),
        audited_view_p99_ms: round(percentile_ms(&viewed, 0.99)),
        target_p99_ms: 5.0,
    })
}

/// Real visits for the live phase, generated into a side store and re-appended at the steady
/// rate with the current time as `recorded_at`.
async fn live_source(events: u64) -> anyhow::Result<Vec<RecordedEvent>> {
    let dir = tempfile::tempdir()?;
    let side: Arc<dyn EventStore> = Arc::new(SqliteStore::open(dir.path().join("live.db")).await?);
    let spec = BulkSpec {
        target_events: events,
        big_record_events: 0,
    };
    bulk_log(side.clone(), &spec, |_| {}).await?;
    let mut all = Vec::new();
    let mut after = 0;
    loop {
        let page = side.read_all(after, 10_000).await?;
        let Some(last) = page.last() else { break };
        after = last.global_position;
        all.extend(page);
    }
    Ok(all)
}

fn batch_of(events: &[RecordedEvent]) -> anyhow::Result<AppendBatch> {
    let now = OffsetDateTime::now_utc();
    let mut streams: Vec<StreamAppend> = Vec::new();
    for e in events {
        let meta = EventMetadata::new(
            e.meta.tenant.clone(),
            e.meta.correlation_id,
            e.meta.causation_id,
            e.meta.actor.clone(),
            now,
        );
        let event = NewEvent::new(
            e.event_id,
            e.event_type.clone(),
            e.schema_version,
            meta,
            e.payload.clone(),
        )?;
        // One entry per stream in a batch; each stream keeps its own order.
        match streams.iter_mut().find(|s| s.stream == e.stream_id) {
            Some(s) => s.events.push(event),
            None => streams.push(StreamAppend {
                stream: e.stream_id.clone(),
                expected: ExpectedVersion::Any,
                events: vec![event],
            }),
        }
    }
    Ok(AppendBatch::new(streams)?)
}

async fn live(
    store: &Arc<dyn AdminStore>,
    runner: &Runner,
    projections: &[Arc<dyn videoamt_projections::Projection>],
    options: &ProjectionsBenchOptions,
) -> anyhow::Result<Live> {
    const TICK: Duration = Duration::from_millis(10);
    let per_tick = (options.rate / 100).max(1) as usize;
    let source = live_source(options.rate * options.seconds).await?;

    let (stop, stopped) = tokio::sync::watch::channel(false);
    let follower = tokio::spawn({
        let runner = runner.clone();
        let projections = projections.to_vec();
        async move { runner.run(projections, stopped).await }
    });

    // Positions acknowledged and when; the poller records when all checkpoints passed them.
    let acknowledged: Arc<std::sync::Mutex<Vec<(u64, Instant)>>> = Arc::default();
    let applied: Arc<std::sync::Mutex<Vec<(u64, Instant)>>> = Arc::default();
    let poller = tokio::spawn({
        let store = store.clone();
        let applied = applied.clone();
        let mut stopped = stop.subscribe();
        async move {
            let mut every = tokio::time::interval(Duration::from_millis(20));
            while !*stopped.borrow_and_update() {
                every.tick().await;
                if let Ok(checkpoints) = store.checkpoints().await {
                    let min = checkpoints.iter().map(|c| c.position).min().unwrap_or(0);
                    applied
                        .lock()
                        .expect("not poisoned")
                        .push((min, Instant::now()));
                }
            }
        }
    });

    let started = Instant::now();
    let mut ticker = tokio::time::interval(TICK);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut appended = 0u64;
    for chunk in source.chunks(per_tick) {
        if started.elapsed() >= Duration::from_secs(options.seconds) {
            break;
        }
        ticker.tick().await;
        let done = store.append(batch_of(chunk)?).await?;
        acknowledged
            .lock()
            .expect("not poisoned")
            .push((done.last_position(), Instant::now()));
        appended += chunk.len() as u64;
    }
    // Let the follower finish what was appended, then stop everything.
    let head = store.last_position().await?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        let checkpoints = store.checkpoints().await?;
        if checkpoints.len() >= projections.len() && checkpoints.iter().all(|c| c.position >= head)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(40)).await;
    let _ = stop.send(true);
    follower.await??;
    poller.await?;

    let applied = applied.lock().expect("not poisoned").clone();
    let acknowledged = acknowledged.lock().expect("not poisoned").clone();
    let mut lags = Vec::with_capacity(acknowledged.len());
    for (position, at) in &acknowledged {
        // The first poll at or after the acknowledgement that saw every checkpoint past it.
        let seen = applied
            .iter()
            .find(|(min, when)| *min >= *position && *when >= *at)
            .map(|(_, when)| *when);
        lags.push(seen.map_or(Duration::from_secs(30), |when| when - *at));
    }
    let max = lags.iter().max().copied().unwrap_or_default();
    Ok(Live {
        rate_events_per_s: options.rate,
        seconds: options.seconds,
        events_appended: appended,
        batches: acknowledged.len(),
        lag_p50_ms: round(percentile_ms(&lags, 0.50)),
        lag_p99_ms: round(percentile_ms(&lags, 0.99)),
        lag_max_ms: round(max.as_secs_f64() * 1000.0),
        target_p99_ms: 1000.0,
    })
}
