//! `videoamt bench …`: measurements against a baseline taken in the same run, on the same
//! database, with the same driver. Results are printed as a table and written as JSON.
//!
//! Benchmarks never touch a real log: the SQLite case works in a temporary folder, the
//! PostgreSQL case in a scratch database created on the given server and dropped afterwards.

pub(crate) mod all;
pub(crate) mod api;
pub(crate) mod api_baseline;
pub(crate) mod media;
pub(crate) mod media_relay;
pub(crate) mod projections;
pub(crate) mod retention;
pub(crate) mod udp_relay;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::StreamExt;
use serde::Serialize;
use time::OffsetDateTime;
use uuid::Uuid;
use videoamt_adapters::bus::{BusError, CommandBus, Issued};
use videoamt_adapters::store::baseline::{Baseline, Samples};
use videoamt_adapters::store::postgres::{PostgresStore, ScratchDatabase};
use videoamt_adapters::store::sqlite::SqliteStore;
use videoamt_adapters::store::{AdminStore, StoreLocation};
use videoamt_core::domain::appointment::AppointmentCommand;
use videoamt_core::domain::appointment::BookAppointment;
use videoamt_core::domain::calendar::CalendarState;
use videoamt_core::domain::events::Contact;
use videoamt_core::domain::{AppointmentId, DomainError, Personal, SubjectId};
use videoamt_core::event::{
    Actor, EventMetadata, EventType, NewEvent, Payload, StreamId, TenantId,
};
use videoamt_core::store::{AppendBatch, ExpectedVersion};
use videoamt_core::tenant::{BookingChannel, DepartmentId, ServiceId, Tenant};

/// The store a benchmark runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Debug)]
pub(crate) struct StoreBenchOptions {
    pub backend: Backend,
    /// For PostgreSQL: the server to create the scratch database on.
    pub server: StoreLocation,
    /// Size of the log for the read cases.
    pub events: u64,
    pub seconds: u64,
    pub out: PathBuf,
}

#[derive(Debug, Serialize)]
struct Case {
    name: &'static str,
    events_per_s: f64,
    baseline_per_s: f64,
    ratio: f64,
    p50_ms: f64,
    p99_ms: f64,
}

#[derive(Debug, Serialize)]
struct StoreReport {
    backend: &'static str,
    cases: Vec<Case>,
    max_rss_mb: f64,
    /// Resident memory right before and right after reading the whole log: flat means the
    /// reads did not grow with the log.
    rss_before_reads_mb: f64,
    rss_after_reads_mb: f64,
    log_events: u64,
}

const PAGE: usize = 1_000;

/// A realistic payload, about the size of a booking.
fn bench_event(n: u64) -> NewEvent {
    let meta = EventMetadata::new(
        TenantId::parse("bench").expect("literal tenant is valid"),
        Uuid::now_v7(),
        Uuid::now_v7(),
        Actor::system("bench"),
        OffsetDateTime::now_utc(),
    );
    let payload = Payload::from_value(&serde_json::json!({
        "n": n,
        "department": "buergerbuero",
        "services": ["personalausweis", "meldebescheinigung"],
        "slot": "2026-11-21T09:00:00+01:00",
        "channel": "online",
    }))
    .expect("an object payload");
    NewEvent::new(
        Uuid::now_v7(),
        EventType::parse("BenchAppended").expect("valid"),
        1,
        meta,
        payload,
    )
    .expect("schema version 1")
}

/// A throw-away store of the chosen backend.
pub(crate) struct Scratch {
    pub(crate) store: Arc<dyn AdminStore>,
    baseline: Baseline,
    pub(crate) cleanup: Cleanup,
    pub(crate) name: &'static str,
}

pub(crate) async fn scratch(
    backend: Backend,
    server: &StoreLocation,
    purpose: &str,
) -> anyhow::Result<Scratch> {
    Ok(match backend {
        Backend::Sqlite => {
            let dir = tempfile::tempdir()?;
            let path = dir.path().join("events.db");
            let store = SqliteStore::open(&path).await?;
            Scratch {
                store: Arc::new(store),
                baseline: Baseline::Sqlite(path),
                cleanup: Cleanup::Dir(dir),
                name: "sqlite",
            }
        }
        Backend::Postgres => {
            let StoreLocation::Postgres(server) = server else {
                anyhow::bail!(
                    "the PostgreSQL benchmark needs a server: --store postgres://… or VIDEOAMT_STORE"
                );
            };
            let db = ScratchDatabase::create(server, purpose)
                .await
                .context("cannot create the scratch database")?;
            let store = PostgresStore::connect(&db.url()).await?;
            Scratch {
                store: Arc::new(store),
                baseline: Baseline::Postgres(db.url()),
                cleanup: Cleanup::Database(db),
                name: "postgres",
            }
        }
    })
}

pub(crate) fn write_json(
    out: &std::path::Path,
    file: String,
    value: &impl Serialize,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(out)?;
    let path = out.join(file);
    std::fs::write(&path, serde_json::to_vec_pretty(value)?)?;
    println!("written: {}", path.display());
    Ok(())
}

pub(crate) async fn store(options: StoreBenchOptions) -> anyhow::Result<()> {
    let Scratch {
        store,
        baseline,
        cleanup,
        name,
    } = scratch(options.backend, &options.server, "bench").await?;
    let duration = Duration::from_secs(options.seconds);
    let mut cases = Vec::new();

    for (case, writers, per_batch) in [
        ("append_1x1", 1, 1),
        ("append_1x4", 4, 1),
        ("append_1x16", 16, 1),
        ("append_10x16", 16, 10),
    ] {
        eprintln!("bench store {name}: {case} ({writers} writers, {per_batch} events per batch)");
        let ours = appends(&store, case, writers, per_batch, duration).await?;
        let raw = baseline.insert_loop(case, writers, duration).await?;
        cases.push(compare(case, &ours, &raw));
    }

    eprintln!(
        "bench store {name}: filling the log to {} events",
        options.events
    );
    fill(&store, options.events).await?;
    let log_events = store.last_position().await?;

    let rss_before_reads_mb = rss_mb("VmRSS");
    eprintln!("bench store {name}: read_all over {log_events} events");
    let ours = read_all(&store).await?;
    let raw = baseline.select_pages(PAGE).await?;
    cases.push(compare("read_all", &ours, &raw));

    eprintln!("bench store {name}: catch_up over {log_events} events");
    let ours = catch_up(&store, log_events).await?;
    let raw = baseline.select_pages(PAGE).await?;
    cases.push(compare("catch_up", &ours, &raw));
    let rss_after_reads_mb = rss_mb("VmRSS");

    let report = StoreReport {
        backend: name,
        cases,
        max_rss_mb: rss_mb("VmHWM"),
        rss_before_reads_mb,
        rss_after_reads_mb,
        log_events,
    };
    print_table(&report);
    write_json(&options.out, format!("store-{name}.json"), &report)?;
    drop(store);
    cleanup.run().await
}

pub(crate) enum Cleanup {
    Dir(tempfile::TempDir),
    Database(ScratchDatabase),
}

impl Cleanup {
    pub(crate) async fn run(self) -> anyhow::Result<()> {
        match self {
            Cleanup::Dir(dir) => Ok(dir.close()?),
            Cleanup::Database(db) => Ok(db.drop_now().await?),
        }
    }
}

async fn appends(
    store: &Arc<dyn AdminStore>,
    case: &str,
    writers: usize,
    per_batch: u64,
    duration: Duration,
) -> anyhow::Result<Samples> {
    let started = Instant::now();
    let deadline = started + duration;
    let tasks: Vec<_> = (0..writers)
        .map(|w| {
            let store = store.clone();
            let stream = StreamId::of("bench", format!("{case}-{w}"));
            tokio::spawn(async move {
                let stream = stream?;
                let mut samples = Samples::default();
                while Instant::now() < deadline {
                    let events = (0..per_batch)
                        .map(|i| bench_event(samples.events + i))
                        .collect();
                    let batch = AppendBatch::single(stream.clone(), ExpectedVersion::Any, events)?;
                    let t = Instant::now();
                    store.append(batch).await?;
                    samples.latencies.push(t.elapsed());
                    samples.events += per_batch;
                }
                anyhow::Ok(samples)
            })
        })
        .collect();
    let mut parts = Vec::new();
    for t in tasks {
        parts.push(t.await??);
    }
    Ok(Samples::merge(parts, started.elapsed()))
}

/// Grows the log to `target` events with large batches (bulk load, not measured).
async fn fill(store: &Arc<dyn AdminStore>, target: u64) -> anyhow::Result<()> {
    let mut have = store.last_position().await?;
    let mut chunk = 0;
    while have < target {
        let n = (target - have).min(1_000);
        let stream = StreamId::of("bulk", chunk / 100)?;
        let events = (0..n).map(|i| bench_event(have + i)).collect();
        store
            .append(AppendBatch::single(stream, ExpectedVersion::Any, events)?)
            .await?;
        have += n;
        chunk += 1;
    }
    Ok(())
}

async fn read_all(store: &Arc<dyn AdminStore>) -> anyhow::Result<Samples> {
    let started = Instant::now();
    let mut samples = Samples::default();
    let mut after = 0;
    loop {
        let t = Instant::now();
        let page = store.read_all(after, PAGE).await?;
        let Some(last) = page.last() else { break };
        after = last.global_position;
        samples.events += page.len() as u64;
        samples.latencies.push(t.elapsed());
    }
    samples.elapsed = started.elapsed();
    Ok(samples)
}

async fn catch_up(store: &Arc<dyn AdminStore>, until: u64) -> anyhow::Result<Samples> {
    let started = Instant::now();
    let mut samples = Samples::default();
    let mut subscription = store.subscribe(0);
    let mut t = Instant::now();
    while samples.events < until {
        let event = subscription.next().await.context("subscription ended")??;
        samples.events += 1;
        if event.global_position % PAGE as u64 == 0 {
            samples.latencies.push(t.elapsed());
            t = Instant::now();
        }
    }
    samples.elapsed = started.elapsed();
    Ok(samples)
}

fn per_second(s: &Samples) -> f64 {
    s.events as f64 / s.elapsed.as_secs_f64().max(f64::EPSILON)
}

/// The nearest-rank percentile `p` (0.5 for p50) in milliseconds; 0 when nothing was measured.
pub(crate) fn percentile_ms(latencies: &[Duration], p: f64) -> f64 {
    let percent = (p * 100.0).round().clamp(0.0, 100.0) as u32;
    videoamt_projections::statistics::nearest_rank(latencies, percent)
        .map_or(0.0, |d| d.as_secs_f64() * 1_000.0)
}

fn compare(name: &'static str, ours: &Samples, raw: &Samples) -> Case {
    let (events_per_s, baseline_per_s) = (per_second(ours), per_second(raw));
    Case {
        name,
        events_per_s: round(events_per_s),
        baseline_per_s: round(baseline_per_s),
        ratio: (events_per_s / baseline_per_s.max(f64::EPSILON) * 1_000.0).round() / 1_000.0,
        p50_ms: round(percentile_ms(&ours.latencies, 0.50)),
        p99_ms: round(percentile_ms(&ours.latencies, 0.99)),
    }
}

pub(crate) fn round(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

/// A line of `/proc/self/status` in MiB (Linux only; 0 elsewhere).
pub(crate) fn rss_mb(field: &str) -> f64 {
    proc_status_mb("self", field)
}

/// A line of `/proc/{process}/status` in MiB (Linux only; 0 elsewhere).
pub(crate) fn proc_status_mb(process: impl std::fmt::Display, field: &str) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{process}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| round(kb / 1024.0))
}

fn print_table(r: &StoreReport) {
    println!(
        "event store benchmark, backend {} ({} events in the log)",
        r.backend, r.log_events
    );
    println!(
        "{:<14} {:>12} {:>12} {:>7} {:>9} {:>9}",
        "case", "events/s", "baseline/s", "ratio", "p50 ms", "p99 ms"
    );
    for c in &r.cases {
        println!(
            "{:<14} {:>12.0} {:>12.0} {:>7.2} {:>9.2} {:>9.2}",
            c.name, c.events_per_s, c.baseline_per_s, c.ratio, c.p50_ms, c.p99_ms
        );
    }
    println!(
        "peak RSS {:.1} MiB; RSS before reads {:.1} MiB, after {:.1} MiB",
        r.max_rss_mb, r.rss_before_reads_mb, r.rss_after_reads_mb
    );
}

#[derive(Debug)]
pub(crate) struct BookingBenchOptions {
    pub backend: Backend,
    pub server: StoreLocation,
    pub bookers: u32,
    pub weeks: u32,
    pub out: PathBuf,
}

#[derive(Debug, Serialize)]
struct BookingReport {
    backend: &'static str,
    bookers: u32,
    /// Places on offer: every online-bookable department of both example tenants, for the
    /// chosen weeks.
    capacity: u64,
    bookings: u64,
    /// Refusals because a rival took the slot first.
    slot_taken: u64,
    /// Commands that gave up because the streams kept changing (`BusError::Contention`).
    contention_failures: u64,
    /// Commands the HTTP API would answer with 409 for another reason than "slot taken".
    conflicts_not_slot_taken: u64,
    bookings_per_s: f64,
    /// Extra decisions after version conflicts, per command.
    conflict_retry_rate: f64,
    p50_ms: f64,
    p99_ms: f64,
    max_rss_mb: f64,
}

/// One bookable unit of capacity: a department's slot start on a day, with the shortest
/// service that fits one slot.
#[derive(Debug, Clone)]
struct Offer {
    tenant: TenantId,
    department: DepartmentId,
    service: ServiceId,
    start: OffsetDateTime,
    capacity: u16,
}

fn offers(tenants: &[Tenant], weeks: u32) -> Vec<Offer> {
    let monday = time::macros::date!(2026 - 11 - 30);
    let mut offers = Vec::new();
    for t in tenants {
        for dept in t.departments.values().filter(|d| d.online_booking) {
            let Some(service) = t
                .services
                .values()
                .filter(|s| {
                    s.department == dept.id && s.online && s.duration_minutes <= dept.slot_minutes
                })
                .min_by_key(|s| s.duration_minutes)
            else {
                continue;
            };
            for day in (0..weeks * 7).map(|d| monday + time::Duration::days(i64::from(d))) {
                for minute in CalendarState::default().free_starts(dept, day.weekday(), 1) {
                    let time = time::Time::from_hms(
                        u8::try_from(minute / 60).unwrap_or(0),
                        u8::try_from(minute % 60).unwrap_or(0),
                        0,
                    )
                    .unwrap_or(time::Time::MIDNIGHT);
                    offers.push(Offer {
                        tenant: t.id.clone(),
                        department: dept.id.clone(),
                        service: service.id.clone(),
                        start: t.instant(time::PrimitiveDateTime::new(day, time)),
                        capacity: dept.capacity,
                    });
                }
            }
        }
    }
    offers
}

/// 64 bookers (by default) book random open slots of a week through the real command bus
/// until every place is taken.
pub(crate) async fn booking(options: BookingBenchOptions) -> anyhow::Result<()> {
    let Scratch {
        store,
        cleanup,
        name,
        ..
    } = scratch(options.backend, &options.server, "booking").await?;
    let tenants = videoamt_core::tenant::example_tenants()?;
    let offers = Arc::new(offers(&tenants, options.weeks.max(1)));
    let capacity: u64 = offers.iter().map(|o| u64::from(o.capacity)).sum();
    let keys = Arc::new(videoamt_adapters::keys::Keyring::new(
        videoamt_adapters::keys::Kek::ephemeral()?,
        store.clone(),
    ));
    let bus = CommandBus::new(store.clone(), keys, tenants);
    // Booked on Friday before the week, so that the reminders of the whole week are due later.
    let now = time::macros::datetime!(2026-11-27 12:00 UTC);
    eprintln!(
        "bench booking {name}: {} bookers, {} slots with capacity {capacity}",
        options.bookers,
        offers.len()
    );
    // What a free-slot view would tell the booking page: places booked per slot. Races between
    // its reading and the booking are what the slot streams resolve.
    let booked = Arc::new(std::sync::Mutex::new(vec![0u16; offers.len()]));
    let started = Instant::now();
    let tasks: Vec<_> = (0..options.bookers)
        .map(|b| {
            let bus = bus.clone();
            let offers = offers.clone();
            let booked = booked.clone();
            tokio::spawn(async move {
                let mut rng = u64::from(b) * 0x9E37_79B9_7F4A_7C15 + 1;
                let mut stats = BookerStats::default();
                loop {
                    let open: Vec<usize> = {
                        let booked = booked.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
                        (0..offers.len())
                            .filter(|&i| booked[i] < offers[i].capacity)
                            .collect()
                    };
                    let Some(index) = pick(&open, &mut rng) else {
                        break;
                    };
                    let offer = &offers[index];
                    let command = AppointmentCommand::BookAppointment(BookAppointment {
                        appointment: AppointmentId(Uuid::now_v7()),
                        subject: SubjectId(Uuid::now_v7()),
                        department: offer.department.clone(),
                        services: vec![offer.service.clone()],
                        start: offer.start,
                        channel: BookingChannel::Online,
                        invited_by: None,
                        contact: Contact {
                            name: Personal::plain(format!("Bench {b}")),
                            email: Personal::plain(format!("bench{b}@example.org")),
                            phone: None,
                        },
                        access: None,
                    })
                    .into();
                    let issued = Issued {
                        tenant: offer.tenant.clone(),
                        actor: Actor::system("bench"),
                        correlation_id: Uuid::now_v7(),
                        command_id: Uuid::now_v7(),
                        now,
                    };
                    let t = Instant::now();
                    match bus.execute(&command, &issued).await {
                        Ok(done) => {
                            if let Ok(mut booked) = booked.lock() {
                                booked[index] += 1;
                            }
                            stats.bookings += 1;
                            stats.retries += u64::from(done.attempts - 1);
                            stats.latencies.push(t.elapsed());
                        }
                        Err(BusError::Refused(DomainError::SlotTaken)) => {
                            stats.slot_taken += 1;
                            if let Ok(mut booked) = booked.lock() {
                                booked[index] = offers[index].capacity;
                            }
                        }
                        Err(BusError::Contention(_)) => stats.contention_failures += 1,
                        Err(e) => {
                            let problem = crate::http::error::Error::from(e).problem();
                            if problem.status != 409 {
                                anyhow::bail!("booking failed: {problem:?}");
                            }
                            if problem.kind != "/problems/slot-taken" {
                                stats.conflicts_not_slot_taken += 1;
                            }
                        }
                    }
                }
                anyhow::Ok(stats)
            })
        })
        .collect();
    let mut total = BookerStats::default();
    for task in tasks {
        let s = task.await??;
        total.bookings += s.bookings;
        total.slot_taken += s.slot_taken;
        total.retries += s.retries;
        total.contention_failures += s.contention_failures;
        total.conflicts_not_slot_taken += s.conflicts_not_slot_taken;
        total.latencies.extend(s.latencies);
    }
    let elapsed = started.elapsed();
    let commands = (total.bookings
        + total.slot_taken
        + total.contention_failures
        + total.conflicts_not_slot_taken)
        .max(1);
    let report = BookingReport {
        backend: name,
        bookers: options.bookers,
        capacity,
        bookings: total.bookings,
        slot_taken: total.slot_taken,
        contention_failures: total.contention_failures,
        conflicts_not_slot_taken: total.conflicts_not_slot_taken,
        bookings_per_s: round(total.bookings as f64 / elapsed.as_secs_f64().max(f64::EPSILON)),
        conflict_retry_rate: (total.retries as f64 / commands as f64 * 1_000.0).round() / 1_000.0,
        p50_ms: round(percentile_ms(&total.latencies, 0.50)),
        p99_ms: round(percentile_ms(&total.latencies, 0.99)),
        max_rss_mb: rss_mb("VmHWM"),
    };
    println!(
        "booking benchmark, backend {}: {} bookers booked {} of {} places in {:.1} s: {:.0} bookings/s, \
         {} refused as taken, {} gave up for contention, {} other 409s, conflict-retry rate {:.3} \
         per command, p50 {:.1} ms, p99 {:.1} ms",
        report.backend,
        report.bookers,
        report.bookings,
        report.capacity,
        elapsed.as_secs_f64(),
        report.bookings_per_s,
        report.slot_taken,
        report.contention_failures,
        report.conflicts_not_slot_taken,
        report.conflict_retry_rate,
        report.p50_ms,
        report.p99_ms
    );
    write_json(&options.out, format!("booking-{name}.json"), &report)?;
    if let Ok(verify) = store.verify().await {
        anyhow::ensure!(
            verify.is_ok(),
            "store verify failed after the benchmark: {:?}",
            verify.problems
        );
    }
    drop(bus);
    drop(store);
    cleanup.run().await
}

#[derive(Debug, Default)]
struct BookerStats {
    bookings: u64,
    slot_taken: u64,
    contention_failures: u64,
    conflicts_not_slot_taken: u64,
    retries: u64,
    latencies: Vec<Duration>,
}

/// A random one of the open slots (xorshift; the bookers need spread, not quality).
fn pick(open: &[usize], rng: &mut u64) -> Option<usize> {
    if open.is_empty() {
        return None;
    }
    *rng ^= *rng << 13;
    *rng ^= *rng >> 7;
    *rng ^= *rng << 17;
    let index = usize::try_from(*rng % open.len() as u64).unwrap_or(0);
    Some(open[index])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_nearest_rank() {
        let l: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile_ms(&l, 0.50), 50.0);
        assert_eq!(percentile_ms(&l, 0.99), 99.0);
        assert_eq!(percentile_ms(&[], 0.99), 0.0);
    }
}
