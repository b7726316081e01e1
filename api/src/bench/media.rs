//! `videoamt bench media`: the str0m relay (ADR 0015) under two-party calls of Rust peers.
//!
//! The relay is the server: a child process (`videoamt bench media-relay`, driven over its
//! stdin/stdout by [`RemoteRelay`], which implements the same `MediaRelay` port), or with
//! `--relay-program` another program speaking that protocol (the webrtc 0.21 relay of
//! `adapters/webrtc-relay-bench`), measured the same way; the report's `relay` names it. The peers
//! run in this process on the tokio runtime's worker threads. Server CPU is the child's
//! utime + stime from `/proc/<pid>/stat` (all its threads), server memory its `VmRSS` from
//! `/proc/<pid>/status`; memory per call is (RSS with N calls − RSS idle) / N.
//!
//! Phases:
//! 1. **Ramp:** add calls in steps, each sending video-like RTP at the given rate plus
//!    Opus-like audio both ways; per step, loss, one-way latency through the relay (the send
//!    time is in the payload), forwarded packets per server CPU-second, the datagrams the
//!    kernel dropped at the relay's socket and the peers', and how long the relay's loop
//!    thread waited for a core. The largest step under 1 % loss is the capacity found.
//! 2. **Churn:** many call set-ups and tear-downs; server RSS before, during, half-way and
//!    after.
//! 3. **Overload:** a relay configured for `capacity` calls is offered 1.5 × that; the extra
//!    joins must be refused `Full` while the running calls keep their loss under 1 %.
//!
//! Between 1 and 2, the baseline: the same packets of as many calls as the ramp found through a
//! plain UDP forwarder (`bench/udp_relay.rs`), and the relay's ratio to it.

use std::time::{Duration, Instant};

use serde::Serialize;
use uuid::Uuid;
use videoamt_adapters::media::THREAD_NAME;
use videoamt_adapters::media::peer::{self, Latency, Peer, PeerOptions, Traffic};
use videoamt_core::domain::SessionId;
use videoamt_core::domain::events::Party;
use videoamt_core::media::{MediaError, MediaRelay};

use crate::bench::media_relay::RemoteRelay;
use crate::bench::{proc_status_mb, round, write_json};

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
    /// Another relay program instead of `videoamt bench media-relay`.
    pub relay_program: Option<std::path::PathBuf>,
    pub out: std::path::PathBuf,
}

#[derive(Debug, Serialize)]
struct Step {
    calls: usize,
    loss_percent: f64,
    loss_to_relay_percent: f64,
    loss_from_relay_percent: f64,
    /// Datagrams the kernel dropped because a socket buffer of the relay process was full
    /// (the server fell behind), and those dropped at the other sockets (the peers').
    relay_socket_drops: u64,
    peer_socket_drops: u64,
    p50_ms: Option<f64>,
    p99_ms: Option<f64>,
    forwarded_per_s: f64,
    /// The relay process, all threads, in percent of one core.
    server_cpu_percent: f64,
    forwarded_per_server_cpu_s: f64,
    /// Of that, the relay's loop thread (`videoamt-media`); absent for a relay without such a
    /// thread (the webrtc relay runs tasks on a runtime's workers).
    relay_thread_cpu_percent: Option<f64>,
    /// Time the relay's loop thread was runnable but waited for a core (`schedstat`), in
    /// percent of the window: the machine, not the relay, was short of CPU. Absent likewise.
    relay_thread_runqueue_wait_percent: Option<f64>,
    /// This process: the peers, in percent of one core (200 = both cores).
    peers_cpu_percent: f64,
    server_rss_mb: f64,
    /// (server RSS now − server RSS idle) / calls.
    server_rss_per_call_mb: f64,
}

#[derive(Debug, Serialize)]
struct Churn {
    calls: usize,
    seconds: f64,
    /// Server RSS, after a warm-up of 50 calls.
    rss_before_mb: f64,
    rss_max_during_mb: f64,
    /// After half of the set-ups and tear-downs, and after all (each after 1 s without
    /// calls): a leak grows from one to the other.
    rss_half_mb: f64,
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
    /// Which relay was measured.
    relay: String,
    video_bps: u64,
    video_packet_bytes: usize,
    audio_packets_per_s: u32,
    peers: &'static str,
    server: &'static str,
    /// Server RSS after start, before the first call.
    server_rss_idle_mb: f64,
    ramp: Vec<Step>,
    largest_calls_under_1_percent_loss: usize,
    /// Server RSS growth per running call at that size (MiB).
    server_rss_per_call_mb: Option<f64>,
    /// The server's peak RSS over the ramp.
    server_hwm_mb: f64,
    churn: Churn,
    overload: Overload,
    /// The same packets through a plain UDP forwarder (no ICE, DTLS, SRTP or RTP handling),
    /// measured in the same run with as many calls as `largest_calls_under_1_percent_loss`.
    plain_udp_baseline: crate::bench::udp_relay::PlainUdp,
    /// The relay's forwarded packets per server CPU-second at that size over the baseline's.
    ratio_to_plain_udp: Option<f64>,
}

struct Call {
    id: SessionId,
    citizen: Peer,
    clerk: Peer,
}

async fn start_relay(
    max_calls: usize,
    program: Option<&std::path::Path>,
) -> anyhow::Result<RemoteRelay> {
    RemoteRelay::start(max_calls, program).await
}

async fn open_call(relay: &dyn MediaRelay, traffic: Traffic) -> Result<Call, MediaError> {
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

async fn wait_connected(relay: &dyn MediaRelay, calls: &[Call]) -> anyhow::Result<()> {
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
async fn relayed(relay: &dyn MediaRelay, calls: &[Call]) -> anyhow::Result<(u64, u64)> {
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
    drops: (u64, u64),
    latency: Latency,
    forwarded: u64,
    cpu: Cpu,
    wall: Duration,
}

/// CPU time (user + system) of the server process, its relay thread (if it has one), and
/// this process.
#[derive(Debug, Clone, Copy, Default)]
struct Cpu {
    server: Duration,
    relay_thread: Option<Duration>,
    relay_thread_wait: Option<Duration>,
    peers: Duration,
}

impl Cpu {
    fn now(server: u32) -> Cpu {
        Cpu {
            server: cpu_time(&format!("/proc/{server}/stat")),
            relay_thread: thread_cpu(server, THREAD_NAME),
            relay_thread_wait: thread_wait(server, THREAD_NAME),
            peers: cpu_time("/proc/self/stat"),
        }
    }

    fn since(self, earlier: Cpu) -> Cpu {
        Cpu {
            server: self.server.saturating_sub(earlier.server),
            relay_thread: since(self.relay_thread, earlier.relay_thread),
            relay_thread_wait: since(self.relay_thread_wait, earlier.relay_thread_wait),
            peers: self.peers.saturating_sub(earlier.peers),
        }
    }
}

fn since(now: Option<Duration>, earlier: Option<Duration>) -> Option<Duration> {
    Some(now?.saturating_sub(earlier?))
}

/// utime + stime of a `/proc/…/stat` file: a process's counts all its threads.
pub(super) fn cpu_time(stat: &str) -> Duration {
    let stat = std::fs::read_to_string(stat).unwrap_or_default();
    // Fields after the parenthesised name: state is the 3rd field, utime the 14th.
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return Duration::ZERO;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i)?.parse::<u64>().ok())
        .sum();
    // USER_HZ is 100 on every Linux this runs on.
    Duration::from_millis(ticks * 10)
}

/// The task directories of `pid`'s threads named `name`; empty when it has none.
fn threads_named(pid: u32, name: &str) -> Vec<std::path::PathBuf> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    tasks
        .flatten()
        .map(|t| t.path())
        .filter(|t| std::fs::read_to_string(t.join("comm")).is_ok_and(|c| c.trim() == name))
        .collect()
}

/// The CPU time of `pid`'s threads named `name`; `None` if it has no such thread.
fn thread_cpu(pid: u32, name: &str) -> Option<Duration> {
    let threads = threads_named(pid, name);
    (!threads.is_empty()).then(|| {
        threads
            .iter()
            .map(|t| cpu_time(&t.join("stat").to_string_lossy()))
            .sum()
    })
}

/// The run-queue wait of `pid`'s threads named `name`: the second field of
/// `/proc/<pid>/task/<tid>/schedstat`, nanoseconds; `None` if it has no such thread.
fn thread_wait(pid: u32, name: &str) -> Option<Duration> {
    let threads = threads_named(pid, name);
    (!threads.is_empty()).then(|| {
        threads
            .iter()
            .map(|t| {
                let stat = std::fs::read_to_string(t.join("schedstat")).unwrap_or_default();
                let wait = stat.split_whitespace().nth(1).and_then(|w| w.parse().ok());
                Duration::from_nanos(wait.unwrap_or(0))
            })
            .sum()
    })
}

/// The socket inodes `pid` holds open (`/proc/<pid>/fd/*` → `socket:[inode]`).
fn socket_inodes(pid: u32) -> std::collections::HashSet<u64> {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return Default::default();
    };
    fds.flatten()
        .filter_map(|fd| {
            let target = std::fs::read_link(fd.path()).ok()?;
            let target = target.to_str()?;
            target
                .strip_prefix("socket:[")?
                .strip_suffix(']')?
                .parse()
                .ok()
        })
        .collect()
}

/// Receive-buffer drops of UDP sockets (`/proc/net/udp`, last column): of the relay
/// process's sockets (one shared socket for str0m, one per leg for webrtc), and of all
/// others (the peers').
fn udp_drops(relay_pid: u32) -> (u64, u64) {
    let relay_sockets = socket_inodes(relay_pid);
    let table = std::fs::read_to_string("/proc/net/udp").unwrap_or_default();
    let (mut relay, mut others) = (0, 0);
    for line in table.lines().skip(1) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (Some(inode), Some(drops)) = (fields.get(9), fields.last()) else {
            continue;
        };
        let drops: u64 = drops.parse().unwrap_or(0);
        if inode.parse().is_ok_and(|i: u64| relay_sockets.contains(&i)) {
            relay += drops;
        } else {
            others += drops;
        }
    }
    (relay, others)
}

/// Loss and latency of the running calls over `seconds`.
async fn measure(relay: &RemoteRelay, calls: &[Call], seconds: u64) -> anyhow::Result<Window> {
    let (sent0, recv0, lat0) = totals(calls);
    let (in0, fwd0) = relayed(relay, calls).await?;
    let cpu0 = Cpu::now(relay.pid());
    let drops0 = udp_drops(relay.pid());
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    let (sent1, recv1, lat1) = totals(calls);
    let (in1, fwd1) = relayed(relay, calls).await?;
    let cpu = Cpu::now(relay.pid()).since(cpu0);
    let drops1 = udp_drops(relay.pid());
    let wall = t0.elapsed();
    Ok(Window {
        loss: percent_lost(sent1 - sent0, recv1 - recv0),
        loss_in: percent_lost(sent1 - sent0, in1 - in0),
        loss_out: percent_lost(fwd1 - fwd0, recv1 - recv0),
        drops: (
            drops1.0.saturating_sub(drops0.0),
            drops1.1.saturating_sub(drops0.1),
        ),
        latency: lat1.minus(&lat0),
        forwarded: fwd1 - fwd0,
        cpu,
        wall,
    })
}

async fn close_all(relay: &dyn MediaRelay, calls: Vec<Call>) -> anyhow::Result<()> {
    for c in calls {
        relay.close(c.id).await?;
        // Together: a peer that waits out its close drain (see `peer.rs`) waits once per call.
        tokio::join!(c.citizen.close(), c.clerk.close());
    }
    Ok(())
}

pub(crate) async fn media(options: MediaBenchOptions) -> anyhow::Result<()> {
    let traffic = Traffic::call(options.video_bps);
    let program = options.relay_program.as_deref();
    let relay_name = match program {
        Some(p) => format!("{} (--relay-program)", p.display()),
        None => "str0m 0.25 (videoamt bench media-relay)".to_owned(),
    };
    println!("relay: {relay_name}");

    // 1. Ramp.
    let relay = start_relay(options.max_calls, program).await?;
    let server = relay.pid();
    let rss_idle = proc_status_mb(server, "VmRSS");
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
        let percent = |d: Duration| round(d.as_secs_f64() / wall.as_secs_f64() * 100.0);
        let server_rss_mb = proc_status_mb(server, "VmRSS");
        let step = Step {
            calls: calls.len(),
            loss_percent: round(loss),
            loss_to_relay_percent: round(w.loss_in),
            loss_from_relay_percent: round(w.loss_out),
            relay_socket_drops: w.drops.0,
            peer_socket_drops: w.drops.1,
            p50_ms: latency.percentile_ms(50.0).map(round),
            p99_ms: latency.percentile_ms(99.0).map(round),
            forwarded_per_s: round(fwd as f64 / wall.as_secs_f64()),
            server_cpu_percent: percent(cpu.server),
            forwarded_per_server_cpu_s: round(fwd as f64 / cpu.server.as_secs_f64().max(0.01)),
            relay_thread_cpu_percent: cpu.relay_thread.map(percent),
            relay_thread_runqueue_wait_percent: cpu.relay_thread_wait.map(percent),
            peers_cpu_percent: percent(cpu.peers),
            server_rss_mb,
            server_rss_per_call_mb: round3((server_rss_mb - rss_idle) / calls.len() as f64),
        };
        println!(
            "{:>4} calls  loss {:>6.2} % (in {} %, out {} %; socket drops relay {}, peers {})  p50 {:>6} ms  p99 {:>6} ms  {:>8} fwd/s  server CPU {:>5} % (loop {} %, waited {} %)  {:>8} fwd per server CPU-s  peers CPU {} %  server RSS {} MiB ({} per call)",
            step.calls,
            step.loss_percent,
            step.loss_to_relay_percent,
            step.loss_from_relay_percent,
            step.relay_socket_drops,
            step.peer_socket_drops,
            fmt_opt(step.p50_ms),
            fmt_opt(step.p99_ms),
            step.forwarded_per_s,
            step.server_cpu_percent,
            fmt_opt(step.relay_thread_cpu_percent),
            fmt_opt(step.relay_thread_runqueue_wait_percent),
            step.forwarded_per_server_cpu_s,
            step.peers_cpu_percent,
            step.server_rss_mb,
            step.server_rss_per_call_mb,
        );
        let ok = loss < 1.0;
        if ok {
            largest = step.calls;
            rss_per_call = Some(step.server_rss_per_call_mb);
        }
        ramp.push(step);
        if !ok {
            break;
        }
    }
    close_all(&relay, calls).await?;
    let server_hwm = proc_status_mb(server, "VmHWM");
    relay.stop().await?;

    // The baseline: the same packets through a plain UDP forwarder, at the largest size found.
    let baseline_calls = largest.max(options.step.min(options.max_calls)).max(1);
    let plain = crate::bench::udp_relay::baseline(baseline_calls, traffic, options.seconds).await?;
    let ratio_to_plain_udp = ramp
        .iter()
        .find(|s| s.calls == baseline_calls)
        .map(|s| round3(s.forwarded_per_server_cpu_s / plain.forwarded_per_server_cpu_s.max(1.0)));
    println!(
        "plain UDP relay, {} calls: {} fwd/s, loss {} %, server CPU {} %, {} fwd per server CPU-s; relay's figure at {} calls is {} of that",
        plain.calls,
        plain.forwarded_per_s,
        plain.loss_percent,
        plain.server_cpu_percent,
        plain.forwarded_per_server_cpu_s,
        baseline_calls,
        fmt_opt(ratio_to_plain_udp)
    );

    // 2. Churn: set-ups and tear-downs, ten at a time, without media.
    let relay = start_relay(64, program).await?;
    let server = relay.pid();
    let churn_batch = 10;
    for _ in 0..5 {
        // Warm-up, so allocator arenas and the runtime are at their working size.
        let batch = open_batch(&relay, churn_batch).await?;
        wait_connected(&relay, &batch).await?;
        close_all(&relay, batch).await?;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_before = proc_status_mb(server, "VmRSS");
    let mut rss_max = rss_before;
    let t0 = Instant::now();
    let mut done = 0;
    let mut rss_half = None;
    while done < options.churn {
        let n = churn_batch.min(options.churn - done);
        let batch = open_batch(&relay, n).await?;
        wait_connected(&relay, &batch).await?;
        rss_max = rss_max.max(proc_status_mb(server, "VmRSS"));
        close_all(&relay, batch).await?;
        done += n;
        if rss_half.is_none() && done * 2 >= options.churn {
            tokio::time::sleep(Duration::from_secs(1)).await;
            rss_half = Some(proc_status_mb(server, "VmRSS"));
        }
    }
    let churn_seconds = t0.elapsed().as_secs_f64();
    // The allocator returns freed pages after a short delay.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_after = proc_status_mb(server, "VmRSS");
    let counts = relay.counts().await?;
    relay.stop().await?;
    let churn = Churn {
        calls: options.churn,
        seconds: round(churn_seconds),
        rss_before_mb: rss_before,
        rss_max_during_mb: rss_max,
        rss_half_mb: rss_half.unwrap_or(rss_before),
        rss_after_mb: rss_after,
        leaked_bytes_per_call: round(
            ((rss_after - rss_before) * 1024.0 * 1024.0 / options.churn.max(1) as f64).max(0.0),
        ),
        relay_counts_after: counts.to_string(),
    };
    println!(
        "churn: {} calls in {} s, server RSS {} → max {} → half-way {} → {} MiB ({} bytes per call), relay holds {}",
        churn.calls,
        churn.seconds,
        churn.rss_before_mb,
        churn.rss_max_during_mb,
        churn.rss_half_mb,
        churn.rss_after_mb,
        churn.leaked_bytes_per_call,
        churn.relay_counts_after
    );

    // 3. Overload: 1.5 × the configured capacity is offered.
    let capacity = options.capacity.unwrap_or(largest.max(options.step));
    let relay = start_relay(capacity, program).await?;
    let mut calls: Vec<Call> = Vec::new();
    // In the ramp's steps: a whole capacity of handshakes at once is not what it measured.
    while calls.len() < capacity {
        let mut new = Vec::new();
        while calls.len() + new.len() < capacity && new.len() < options.step.max(1) {
            new.push(open_call(&relay, traffic).await?);
        }
        wait_connected(&relay, &new).await?;
        calls.extend(new);
    }
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
    relay.stop().await?;
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
        "largest N under 1 % loss: {largest}; server RSS {rss_idle} MiB idle, {} MiB per call, peak {server_hwm} MiB",
        fmt_opt(rss_per_call)
    );

    let report = Report {
        relay: relay_name,
        video_bps: options.video_bps,
        video_packet_bytes: traffic.video_payload_bytes,
        audio_packets_per_s: traffic.audio_packets_per_s,
        peers: "str0m peers in the bench process on the tokio runtime's worker threads",
        server: "the relay child process: CPU utime+stime of /proc/<pid>/stat (all threads), RSS VmRSS of /proc/<pid>/status, socket drops of its UDP sockets in /proc/net/udp",
        server_rss_idle_mb: rss_idle,
        ramp,
        largest_calls_under_1_percent_loss: largest,
        server_rss_per_call_mb: rss_per_call,
        server_hwm_mb: server_hwm,
        churn,
        overload,
        plain_udp_baseline: plain,
        ratio_to_plain_udp,
    };
    write_json(&options.out, "media.json".into(), &report)
}

async fn open_batch(relay: &dyn MediaRelay, n: usize) -> anyhow::Result<Vec<Call>> {
    let mut batch = Vec::with_capacity(n);
    for _ in 0..n {
        batch.push(open_call(relay, Traffic::SILENT).await?);
    }
    Ok(batch)
}

fn round3(v: f64) -> f64 {
    (v * 1_000.0).round() / 1_000.0
}

fn fmt_opt(v: Option<f64>) -> String {
    v.map_or_else(|| "-".into(), |v| v.to_string())
}
