//! `videoamt bench media`: the str0m relay (ADR 0015) under two-party calls of Rust peers.
//!
//! The peers run in this process on the tokio runtime; the relay runs on its own thread
//! (`videoamt-media`), whose CPU time is read from `/proc/self/task/<tid>/stat`, so "per
//! server core" counts the relay's time only. Memory is the whole process's: per call it
//! includes the two peers' str0m instances, so it is an upper bound of the relay's share.
//!
//! Phases:
//! 1. **Ramp:** add calls in steps, each sending video-like RTP at the given rate plus
//!    Opus-like audio both ways; per step, loss, one-way latency through the relay (the send
//!    time is in the payload), forwarded packets per relay CPU-second. The largest step under
//!    1 % loss is the capacity found.
//! 2. **Churn:** many call set-ups and tear-downs; RSS before, during and after.
//! 3. **Overload:** a relay configured for `capacity` calls is offered 1.5 × that; the extra
//!    joins must be refused `Full` while the running calls keep their loss under 1 %.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde::Serialize;
use uuid::Uuid;
use videoamt_adapters::media::peer::{self, Latency, Peer, PeerOptions, Traffic};
use videoamt_adapters::media::{MediaConfig, Str0mRelay, THREAD_NAME};
use videoamt_core::domain::SessionId;
use videoamt_core::domain::events::Party;
use videoamt_core::media::{MediaError, MediaRelay};

use crate::bench::{round, rss_mb, write_json};

#[derive(Debug)]
pub(crate) struct MediaBenchOptions {
    /// The ramp stops here (or at the first step with 1 % loss or more).
    pub max_calls: usize,
    pub step: usize,
    /// Measured seconds per ramp step and for the overload phase.
    pub seconds: u64,
    /// Call set-ups and tear-downs in the churn phase.
    pub churn: usize,
    /// Configured capacity for the overload phase; the ramp's finding when unset.
    pub capacity: Option<usize>,
    pub video_bps: u64,
    pub out: std::path::PathBuf,
}

#[derive(Debug, Serialize)]
struct Step {
    calls: usize,
    loss_percent: f64,
    loss_to_relay_percent: f64,
    loss_from_relay_percent: f64,
    p50_ms: Option<f64>,
    p99_ms: Option<f64>,
    forwarded_per_s: f64,
    relay_cpu_percent: f64,
    forwarded_per_relay_cpu_s: f64,
    rss_mb: f64,
}

#[derive(Debug, Serialize)]
struct Churn {
    calls: usize,
    seconds: f64,
    rss_before_mb: f64,
    rss_max_during_mb: f64,
    rss_after_mb: f64,
    leaked_bytes_per_call: f64,
    relay_counts_after: String,
}

#[derive(Debug, Serialize)]
struct Overload {
    capacity: usize,
    offered: usize,
    refused_full: usize,
    other_errors: usize,
    running_loss_percent: f64,
}

#[derive(Debug, Serialize)]
struct Report {
    video_bps: u64,
    video_packet_bytes: usize,
    audio_packets_per_s: u32,
    peers: &'static str,
    cpu: &'static str,
    ramp: Vec<Step>,
    largest_calls_under_1_percent_loss: usize,
    /// Process RSS growth per running call at that size (relay plus both peers).
    process_rss_per_call_mb: Option<f64>,
    churn: Churn,
    overload: Overload,
}

struct Call {
    id: SessionId,
    citizen: Peer,
    clerk: Peer,
}

fn start_relay(max_calls: usize) -> anyhow::Result<Str0mRelay> {
    let bind: SocketAddr = "127.0.0.1:0".parse()?;
    Ok(Str0mRelay::start(MediaConfig::new(bind, max_calls))?)
}

async fn open_call(relay: &Str0mRelay, traffic: Traffic) -> Result<Call, MediaError> {
    let id = SessionId(Uuid::now_v7());
    relay.set_admitted(id, true).await?;
    let mut peers = Vec::new();
    for (party, vp8_pt) in [(Party::Citizen, 96), (Party::Clerk, 120)] {
        let options = PeerOptions {
            vp8_pt,
            ..PeerOptions::default()
        };
        let (offer, sdp) = peer::offer(options).map_err(|e| MediaError::Internal(e.to_string()))?;
        let answer = match relay.join(id, party, sdp).await {
            Ok(a) => a,
            Err(e) => {
                relay.close(id).await.ok();
                return Err(e);
            }
        };
        peers.push(
            offer
                .start(&answer, traffic)
                .map_err(|e| MediaError::Internal(e.to_string()))?,
        );
    }
    let clerk = peers.pop().expect("two peers were started");
    let citizen = peers.pop().expect("two peers were started");
    Ok(Call { id, citizen, clerk })
}

async fn wait_connected(relay: &Str0mRelay, calls: &[Call]) -> anyhow::Result<()> {
    let start = Instant::now();
    loop {
        let mut all = true;
        for c in calls {
            let relay_side = relay.stats(c.id).await?.is_some_and(|s| {
                s.citizen.is_some_and(|l| l.connected) && s.clerk.is_some_and(|l| l.connected)
            });
            all &= relay_side && c.citizen.connected() && c.clerk.connected();
        }
        if all {
            return Ok(());
        }
        anyhow::ensure!(
            start.elapsed() < Duration::from_secs(60),
            "calls did not connect"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Sent and received packets of all peers, and their merged latency histogram.
fn totals(calls: &[Call]) -> (u64, u64, Latency) {
    let mut latency = Latency::default();
    let (mut sent, mut received) = (0, 0);
    for c in calls {
        for p in [&c.citizen, &c.clerk] {
            sent += p.sent();
            received += p.received();
            latency.merge(&p.latency());
        }
    }
    (sent, received, latency)
}

/// Packets the relay received from all legs and forwarded onto them.
async fn relayed(relay: &Str0mRelay, calls: &[Call]) -> anyhow::Result<(u64, u64)> {
    let (mut received, mut forwarded) = (0, 0);
    for c in calls {
        if let Some(s) = relay.stats(c.id).await? {
            for l in [s.citizen, s.clerk].into_iter().flatten() {
                received += l.packets_received;
                forwarded += l.packets_forwarded;
            }
        }
    }
    Ok((received, forwarded))
}

fn percent_lost(sent: u64, arrived: u64) -> f64 {
    if sent == 0 {
        0.0
    } else {
        (1.0 - arrived as f64 / sent as f64).max(0.0) * 100.0
    }
}

/// One measured window.
struct Window {
    loss: f64,
    /// Lost between the senders and the relay, and between the relay and the receivers.
    loss_in: f64,
    loss_out: f64,
    latency: Latency,
    forwarded: u64,
    cpu: Duration,
    wall: Duration,
}

/// The relay thread's CPU time (user + system), from `/proc/self/task/*/stat`.
fn relay_cpu() -> Duration {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return Duration::ZERO;
    };
    let mut total = Duration::ZERO;
    for task in tasks.flatten() {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if comm.trim() != THREAD_NAME {
            continue;
        }
        let stat = std::fs::read_to_string(task.path().join("stat")).unwrap_or_default();
        // Fields after the parenthesised name: state is the 3rd field, utime the 14th.
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks: u64 = [11, 12]
            .iter()
            .filter_map(|&i| fields.get(i)?.parse::<u64>().ok())
            .sum();
        // USER_HZ is 100 on every Linux this runs on.
        total += Duration::from_millis(ticks * 10);
    }
    total
}

/// Loss and latency of the running calls over `seconds`.
async fn measure(relay: &Str0mRelay, calls: &[Call], seconds: u64) -> anyhow::Result<Window> {
    let (sent0, recv0, lat0) = totals(calls);
    let (in0, fwd0) = relayed(relay, calls).await?;
    let cpu0 = relay_cpu();
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    let (sent1, recv1, lat1) = totals(calls);
    let (in1, fwd1) = relayed(relay, calls).await?;
    let cpu = relay_cpu().saturating_sub(cpu0);
    let wall = t0.elapsed();
    Ok(Window {
        loss: percent_lost(sent1 - sent0, recv1 - recv0),
        loss_in: percent_lost(sent1 - sent0, in1 - in0),
        loss_out: percent_lost(fwd1 - fwd0, recv1 - recv0),
        latency: lat1.minus(&lat0),
        forwarded: fwd1 - fwd0,
        cpu,
        wall,
    })
}

async fn close_all(relay: &Str0mRelay, calls: Vec<Call>) -> anyhow::Result<()> {
    for c in calls {
        relay.close(c.id).await?;
        c.citizen.close().await;
        c.clerk.close().await;
    }
    Ok(())
}

pub(crate) async fn media(options: MediaBenchOptions) -> anyhow::Result<()> {
    let traffic = Traffic::call(options.video_bps);

    // 1. Ramp.
    let relay = start_relay(options.max_calls)?;
    let rss_empty = rss_mb("VmRSS");
    let mut calls: Vec<Call> = Vec::new();
    let mut ramp = Vec::new();
    let mut largest = 0;
    let mut rss_per_call = None;
    while calls.len() < options.max_calls {
        let target = (calls.len() + options.step).min(options.max_calls);
        let mut new = Vec::new();
        while calls.len() + new.len() < target {
            new.push(open_call(&relay, traffic).await?);
        }
        wait_connected(&relay, &new).await?;
        calls.extend(new);
        // Let the new streams settle (keyframe requests, first reports).
        tokio::time::sleep(Duration::from_secs(1)).await;
        let w = measure(&relay, &calls, options.seconds).await?;
        let (loss, latency, fwd, cpu, wall) = (w.loss, w.latency, w.forwarded, w.cpu, w.wall);
        let step = Step {
            calls: calls.len(),
            loss_percent: round(loss),
            loss_to_relay_percent: round(w.loss_in),
            loss_from_relay_percent: round(w.loss_out),
            p50_ms: latency.percentile_ms(50.0).map(round),
            p99_ms: latency.percentile_ms(99.0).map(round),
            forwarded_per_s: round(fwd as f64 / wall.as_secs_f64()),
            relay_cpu_percent: round(cpu.as_secs_f64() / wall.as_secs_f64() * 100.0),
            forwarded_per_relay_cpu_s: round(fwd as f64 / cpu.as_secs_f64().max(0.01)),
            rss_mb: rss_mb("VmRSS"),
        };
        println!(
            "{:>4} calls  loss {:>6.2} % (in {} %, out {} %)  p50 {:>6} ms  p99 {:>6} ms  {:>8} fwd/s  relay CPU {:>5} %  {:>8} fwd per relay CPU-s  RSS {} MiB",
            step.calls,
            step.loss_percent,
            step.loss_to_relay_percent,
            step.loss_from_relay_percent,
            fmt_opt(step.p50_ms),
            fmt_opt(step.p99_ms),
            step.forwarded_per_s,
            step.relay_cpu_percent,
            step.forwarded_per_relay_cpu_s,
            step.rss_mb
        );
        let ok = loss < 1.0;
        if ok {
            largest = step.calls;
            rss_per_call = Some(round((step.rss_mb - rss_empty) / step.calls as f64));
        }
        ramp.push(step);
        if !ok {
            break;
        }
    }
    close_all(&relay, calls).await?;
    drop(relay);

    // 2. Churn: set-ups and tear-downs, ten at a time, without media.
    let relay = start_relay(64)?;
    let churn_batch = 10;
    for _ in 0..5 {
        // Warm-up, so allocator arenas and the runtime are at their working size.
        let batch = open_batch(&relay, churn_batch).await?;
        wait_connected(&relay, &batch).await?;
        close_all(&relay, batch).await?;
    }
    let rss_before = rss_mb("VmRSS");
    let mut rss_max = rss_before;
    let t0 = Instant::now();
    let mut done = 0;
    while done < options.churn {
        let n = churn_batch.min(options.churn - done);
        let batch = open_batch(&relay, n).await?;
        wait_connected(&relay, &batch).await?;
        rss_max = rss_max.max(rss_mb("VmRSS"));
        close_all(&relay, batch).await?;
        done += n;
    }
    let churn_seconds = t0.elapsed().as_secs_f64();
    let rss_after = rss_mb("VmRSS");
    let counts = relay.counts().await?;
    drop(relay);
    let churn = Churn {
        calls: options.churn,
        seconds: round(churn_seconds),
        rss_before_mb: rss_before,
        rss_max_during_mb: rss_max,
        rss_after_mb: rss_after,
        leaked_bytes_per_call: round(
            ((rss_after - rss_before) * 1024.0 * 1024.0 / options.churn.max(1) as f64).max(0.0),
        ),
        relay_counts_after: counts.to_string(),
    };
    println!(
        "churn: {} calls in {} s, RSS {} → max {} → {} MiB ({} bytes per call), relay holds {}",
        churn.calls,
        churn.seconds,
        churn.rss_before_mb,
        churn.rss_max_during_mb,
        churn.rss_after_mb,
        churn.leaked_bytes_per_call,
        churn.relay_counts_after
    );

    // 3. Overload: 1.5 × the configured capacity is offered.
    let capacity = options.capacity.unwrap_or(largest.max(options.step));
    let relay = start_relay(capacity)?;
    let mut calls = Vec::new();
    for _ in 0..capacity {
        calls.push(open_call(&relay, traffic).await?);
    }
    wait_connected(&relay, &calls).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let extra = capacity.div_ceil(2);
    let (sent0, recv0, _) = totals(&calls);
    let (mut refused, mut other) = (0, 0);
    for _ in 0..extra {
        match open_call(&relay, traffic).await {
            Err(MediaError::Full { .. }) => refused += 1,
            Err(_) => other += 1,
            Ok(c) => {
                // Not expected: count it and keep it out of the measurement.
                other += 1;
                relay.close(c.id).await?;
            }
        }
    }
    tokio::time::sleep(Duration::from_secs(options.seconds)).await;
    let (sent1, recv1, _) = totals(&calls);
    let sent = sent1 - sent0;
    let running_loss = percent_lost(sent, recv1 - recv0);
    close_all(&relay, calls).await?;
    drop(relay);
    let overload = Overload {
        capacity,
        offered: capacity + extra,
        refused_full: refused,
        other_errors: other,
        running_loss_percent: round(running_loss),
    };
    println!(
        "overload: capacity {}, offered {}, refused Full {}, other errors {}, loss of running calls {} %",
        overload.capacity,
        overload.offered,
        overload.refused_full,
        overload.other_errors,
        overload.running_loss_percent
    );
    println!(
        "largest N under 1 % loss: {largest}; process RSS per call {} MiB",
        fmt_opt(rss_per_call)
    );

    let report = Report {
        video_bps: options.video_bps,
        video_packet_bytes: traffic.video_payload_bytes,
        audio_packets_per_s: traffic.audio_packets_per_s,
        peers: "str0m peers in this process on the tokio runtime, sharing the 2 cores",
        cpu: "relay thread only (videoamt-media), /proc/self/task/<tid>/stat",
        ramp,
        largest_calls_under_1_percent_loss: largest,
        process_rss_per_call_mb: rss_per_call,
        churn,
        overload,
    };
    write_json(&options.out, "media.json".into(), &report)
}

async fn open_batch(relay: &Str0mRelay, n: usize) -> anyhow::Result<Vec<Call>> {
    let mut batch = Vec::with_capacity(n);
    for _ in 0..n {
        batch.push(open_call(relay, Traffic::SILENT).await?);
    }
    Ok(batch)
}

fn fmt_opt(v: Option<f64>) -> String {
    v.map_or_else(|| "-".into(), |v| v.to_string())
}
