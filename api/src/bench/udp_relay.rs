//! The baseline of `videoamt bench media`: a plain UDP relay of the same packets.
//!
//! [`serve`] is the hidden `videoamt bench udp-relay`: one blocking UDP socket on one thread,
//! which pairs the two addresses that announce the same call (a datagram `PAIR` + the call's
//! number) and from then on sends every datagram of one to the other, unchanged: no ICE, DTLS,
//! SRTP, RTP parsing, rewriting or feedback. It prints `{"ready":"<udp address>"}` and runs
//! until stdin closes. [`baseline`] starts it as a child process and sends it the traffic of
//! `calls` two-party calls (the media bench's packet sizes and rates, plus the bytes RTP
//! headers and the SRTP tag add on the wire); its forwarded packets per server CPU-second are
//! what the str0m relay's figure is set against.

use std::collections::HashMap;
use std::io::BufRead;
use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context;
use serde::Serialize;
use tokio::io::AsyncBufReadExt;
use videoamt_adapters::media::peer::Traffic;

/// What announces a call: these bytes, then its number (8 bytes, big-endian).
const PAIR: &[u8; 4] = b"PAIR";
/// RTP header with the usual extensions, and the SRTP authentication tag.
const WIRE_OVERHEAD_BYTES: usize = 40;

/// `videoamt bench udp-relay`.
pub(crate) fn serve(bind: SocketAddr) -> anyhow::Result<()> {
    // With the str0m relay's socket options (buffer sizes), so that both lose alike.
    let socket =
        videoamt_adapters::media::bind_socket(&videoamt_adapters::media::MediaConfig::new(bind, 1))
            .map_err(|e| anyhow::anyhow!("cannot bind the UDP relay: {e}"))?;
    socket.set_nonblocking(false)?;
    socket.set_read_timeout(Some(Duration::from_millis(200)))?;
    println!(
        "{}",
        serde_json::json!({ "ready": socket.local_addr()?.to_string() })
    );
    let closed = Arc::new(AtomicBool::new(false));
    let forwarded = Arc::new(AtomicU64::new(0));
    std::thread::spawn({
        let (closed, forwarded) = (closed.clone(), forwarded.clone());
        move || {
            // Each line asks for the datagrams sent on so far; stdin closing is the signal to
            // stop.
            for line in std::io::stdin().lock().lines() {
                if line.is_err() {
                    break;
                }
                println!(
                    "{}",
                    serde_json::json!({ "forwarded": forwarded.load(Ordering::Relaxed) })
                );
            }
            closed.store(true, Ordering::Release);
        }
    });
    let mut announced: HashMap<u64, SocketAddr> = HashMap::new();
    let mut partner: HashMap<SocketAddr, SocketAddr> = HashMap::new();
    let mut buffer = [0u8; 2048];
    while !closed.load(Ordering::Acquire) {
        let (n, from) = match socket.recv_from(&mut buffer) {
            Ok(got) => got,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        if let Some(to) = partner.get(&from) {
            // A full socket buffer on the other side is the relay's loss, as for str0m.
            if socket.send_to(&buffer[..n], to).is_ok() {
                forwarded.fetch_add(1, Ordering::Relaxed);
            }
            continue;
        }
        if n == PAIR.len() + 8 && buffer.starts_with(PAIR) {
            let mut number = [0u8; 8];
            number.copy_from_slice(&buffer[PAIR.len()..n]);
            let call = u64::from_be_bytes(number);
            match announced.remove(&call) {
                Some(other) if other != from => {
                    partner.insert(from, other);
                    partner.insert(other, from);
                }
                _ => {
                    announced.insert(call, from);
                }
            }
        }
    }
    Ok(())
}

#[derive(Debug, Serialize)]
pub(crate) struct PlainUdp {
    pub relay: &'static str,
    pub calls: usize,
    pub seconds: f64,
    pub packet_bytes: (usize, usize),
    pub sent: u64,
    /// Datagrams the relay sent on, by its own count.
    pub forwarded: u64,
    /// Datagrams the peers received; fewer than forwarded when the load generator, on the same
    /// cores, fell behind reading them.
    pub received: u64,
    pub loss_percent: f64,
    pub forwarded_per_s: f64,
    /// The relay process, in percent of one core.
    pub server_cpu_percent: f64,
    pub forwarded_per_server_cpu_s: f64,
}

/// One side of a call: its socket and what it sent and received.
struct Side {
    socket: Arc<tokio::net::UdpSocket>,
    sent: Arc<AtomicU64>,
    received: Arc<AtomicU64>,
}

/// The relay's count of datagrams sent on, asked for over its stdin.
async fn relayed(
    stdin: &mut tokio::process::ChildStdin,
    lines: &mut tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
) -> anyhow::Result<u64> {
    use tokio::io::AsyncWriteExt;
    stdin.write_all(b"count\n").await?;
    stdin.flush().await?;
    let line = lines.next_line().await?.context("the UDP relay ended")?;
    serde_json::from_str::<serde_json::Value>(&line)?["forwarded"]
        .as_u64()
        .context("no count in the UDP relay's answer")
}

/// Runs `calls` calls of `traffic` through a plain UDP relay child for `seconds`.
pub(crate) async fn baseline(
    calls: usize,
    traffic: Traffic,
    seconds: u64,
) -> anyhow::Result<PlainUdp> {
    let exe = std::env::current_exe()?;
    let mut child = tokio::process::Command::new(exe)
        .args(["bench", "udp-relay", "--bind", "127.0.0.1:0"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .context("cannot start the UDP relay")?;
    let pid = child.id().context("the UDP relay has no pid")?;
    let stdout = child.stdout.take().context("no stdout")?;
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let ready = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
        .await
        .context("the UDP relay did not get ready")??
        .context("the UDP relay ended before it was ready")?;
    let relay: SocketAddr = serde_json::from_str::<serde_json::Value>(&ready)?["ready"]
        .as_str()
        .context("no address in the ready line")?
        .parse()?;

    let mut sides = Vec::with_capacity(2 * calls);
    for call in 0..calls as u64 {
        for _ in 0..2 {
            let socket = Arc::new(tokio::net::UdpSocket::bind("127.0.0.1:0").await?);
            let mut hello = PAIR.to_vec();
            hello.extend_from_slice(&call.to_be_bytes());
            socket.send_to(&hello, relay).await?;
            sides.push(Side {
                socket,
                sent: Arc::default(),
                received: Arc::default(),
            });
        }
    }
    tokio::time::sleep(Duration::from_millis(300)).await;

    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    let video = traffic.video_payload_bytes + WIRE_OVERHEAD_BYTES;
    let audio = traffic.audio_payload_bytes + WIRE_OVERHEAD_BYTES;
    for side in &sides {
        for (per_s, bytes) in [
            (traffic.video_packets_per_s, video),
            (traffic.audio_packets_per_s, audio),
        ] {
            if per_s == 0 {
                continue;
            }
            let (socket, sent, stop) = (side.socket.clone(), side.sent.clone(), stop.clone());
            tasks.push(tokio::spawn(async move {
                let mut every =
                    tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(per_s)));
                every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
                let packet = vec![0x80u8; bytes];
                while !stop.load(Ordering::Relaxed) {
                    every.tick().await;
                    if socket.send_to(&packet, relay).await.is_ok() {
                        sent.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }));
        }
        let (socket, received) = (side.socket.clone(), side.received.clone());
        tasks.push(tokio::spawn(async move {
            let mut buffer = [0u8; 2048];
            // Aborted at the end.
            while socket.recv(&mut buffer).await.is_ok() {
                received.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    // Settle, then measure a window.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let count = |sides: &[Side]| {
        sides.iter().fold((0, 0), |(s, r), side| {
            (
                s + side.sent.load(Ordering::Relaxed),
                r + side.received.load(Ordering::Relaxed),
            )
        })
    };
    let mut stdin = child.stdin.take().context("no stdin")?;
    let stat = format!("/proc/{pid}/stat");
    let (sent0, received0) = count(&sides);
    let forwarded0 = relayed(&mut stdin, &mut lines).await?;
    let cpu0 = super::media::cpu_time(&stat);
    let started = std::time::Instant::now();
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    let (sent1, received1) = count(&sides);
    let forwarded1 = relayed(&mut stdin, &mut lines).await?;
    let cpu = super::media::cpu_time(&stat).saturating_sub(cpu0);
    let wall = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.abort();
    }
    drop(stdin);
    let _ = tokio::time::timeout(Duration::from_secs(5), child.wait()).await;

    let (sent, received) = (sent1 - sent0, received1 - received0);
    let forwarded = forwarded1.saturating_sub(forwarded0);
    let round = super::round;
    Ok(PlainUdp {
        relay: "plain UDP forwarder (videoamt bench udp-relay): one socket, one thread",
        calls,
        seconds: round(wall),
        packet_bytes: (video, audio),
        sent,
        forwarded,
        received,
        loss_percent: round(sent.saturating_sub(received) as f64 * 100.0 / sent.max(1) as f64),
        forwarded_per_s: round(forwarded as f64 / wall),
        server_cpu_percent: round(cpu.as_secs_f64() / wall * 100.0),
        forwarded_per_server_cpu_s: round(forwarded as f64 / cpu.as_secs_f64().max(0.01)),
    })
}
