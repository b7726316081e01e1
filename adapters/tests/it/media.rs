//! The media relay over real UDP on 127.0.0.1: str0m peers stand in for the two browsers
//! (real ICE, DTLS-SRTP), and every check reads both the peers' and the relay's counters.
//!
//! Run with `cargo test -p videoamt-adapters --features media --test it media::`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use futures::StreamExt;
use uuid::Uuid;
use videoamt_adapters::media::peer::{self, Peer, PeerOptions, Traffic};
use videoamt_adapters::media::{MediaConfig, Str0mRelay};
use videoamt_core::domain::SessionId;
use videoamt_core::domain::events::Party;
use videoamt_core::media::{
    LegStats, MediaError, MediaEvent, MediaEventKind, MediaRelay, RelayCounts,
};

/// Conditions are awaited, never timed: generous, so a loaded machine only makes it slower.
const PATIENCE: Duration = Duration::from_secs(30);

async fn wait_until(what: &str, mut done: impl AsyncFnMut() -> bool) {
    let start = Instant::now();
    while !done().await {
        assert!(start.elapsed() < PATIENCE, "gave up waiting until {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn relay(max_calls: usize) -> Str0mRelay {
    let bind: SocketAddr = "127.0.0.1:0".parse().expect("a literal address");
    Str0mRelay::start(MediaConfig::new(bind, max_calls)).expect("the relay starts on loopback")
}

fn call() -> SessionId {
    SessionId(Uuid::now_v7())
}

async fn join(
    relay: &Str0mRelay,
    call: SessionId,
    party: Party,
    options: PeerOptions,
    traffic: Traffic,
) -> Peer {
    let (offer, sdp) = peer::offer(options).expect("a peer offers");
    let answer = relay
        .join(call, party, sdp)
        .await
        .expect("the relay answers");
    offer
        .start(&answer, traffic)
        .expect("the peer takes the answer")
}

async fn leg(relay: &Str0mRelay, call: SessionId, party: Party) -> LegStats {
    let stats = relay
        .stats(call)
        .await
        .expect("relay runs")
        .expect("call exists");
    match party {
        Party::Citizen => stats.citizen,
        Party::Clerk => stats.clerk,
    }
    .expect("leg exists")
}

async fn both_connected(relay: &Str0mRelay, call: SessionId, a: &Peer, b: &Peer) {
    wait_until("both legs are connected", async || {
        a.connected()
            && b.connected()
            && leg(relay, call, Party::Citizen).await.connected
            && leg(relay, call, Party::Clerk).await.connected
    })
    .await;
}

fn clerk_options() -> PeerOptions {
    // Another numbering than the citizen's browser: the relay must rewrite payload types.
    PeerOptions {
        vp8_pt: 120,
        opus_pt: 109,
        ..PeerOptions::default()
    }
}

#[tokio::test]
async fn both_legs_connect_and_rtp_flows_both_ways_with_matching_counters() {
    let relay = relay(4);
    let mut events = relay.events();
    let call = call();
    relay.set_admitted(call, true).await.expect("admit");
    // Silent until both ends of both legs are up, so that every packet sent can be counted
    // on arrival (a browser's first packets may come before the relay finished DTLS).
    let citizen = join(
        &relay,
        call,
        Party::Citizen,
        PeerOptions::default(),
        Traffic::SILENT,
    )
    .await;
    let clerk = join(&relay, call, Party::Clerk, clerk_options(), Traffic::SILENT).await;
    both_connected(&relay, call, &citizen, &clerk).await;
    citizen.set_traffic(Traffic::LIGHT);
    clerk.set_traffic(Traffic::LIGHT);

    let mut connected = Vec::new();
    while connected.len() < 2 {
        let MediaEvent {
            call: c,
            party,
            kind,
        } = tokio::time::timeout(PATIENCE, events.next())
            .await
            .expect("events come")
            .expect("feed open");
        if c == call && kind == MediaEventKind::Connected {
            connected.push(party);
        }
    }
    assert!(connected.contains(&Party::Citizen) && connected.contains(&Party::Clerk));

    wait_until("media flows both ways", async || {
        citizen.received() > 50 && clerk.received() > 50
    })
    .await;
    // The second leg's arrival asked both senders for a keyframe.
    wait_until("both senders were asked for a keyframe", async || {
        citizen
            .counters
            .keyframe_requests
            .load(std::sync::atomic::Ordering::Relaxed)
            > 0
            && clerk
                .counters
                .keyframe_requests
                .load(std::sync::atomic::Ordering::Relaxed)
                > 0
    })
    .await;

    citizen.set_traffic(Traffic::SILENT);
    clerk.set_traffic(Traffic::SILENT);
    // `set_traffic` only asks: a peer may send one more packet before its runner takes it
    // up, so the counters are compared once both runners are quiet and nothing is in flight.
    wait_until("both peers are quiet", async || {
        citizen.quiet() && clerk.quiet()
    })
    .await;
    // Once quiet, every packet and byte a peer sent reached the relay, and every packet the
    // relay forwarded onto a leg reached that leg's peer.
    let sent_bytes = |p: &Peer| {
        p.counters
            .sent_bytes
            .load(std::sync::atomic::Ordering::Relaxed)
    };
    wait_until("the counters agree", async || {
        let c = leg(&relay, call, Party::Citizen).await;
        let k = leg(&relay, call, Party::Clerk).await;
        c.packets_received == citizen.sent()
            && k.packets_received == clerk.sent()
            && c.bytes_received == sent_bytes(&citizen)
            && k.bytes_received == sent_bytes(&clerk)
            && c.packets_forwarded == citizen.received()
            && k.packets_forwarded == clerk.received()
    })
    .await;
    let c = leg(&relay, call, Party::Citizen).await;
    let k = leg(&relay, call, Party::Clerk).await;
    // Admitted and connected before the first packet: everything was forwarded.
    assert_eq!((c.packets_dropped, k.packets_dropped), (0, 0));
    assert_eq!(c.packets_received, k.packets_forwarded);
    assert_eq!(k.packets_received, c.packets_forwarded);
    assert_eq!(
        c.bytes_received,
        citizen
            .counters
            .sent_bytes
            .load(std::sync::atomic::Ordering::Relaxed)
    );

    // Each peer received only its own payload types and never the other peer's SSRCs.
    for p in [&citizen, &clerk] {
        assert_eq!(
            p.counters
                .foreign_pt
                .load(std::sync::atomic::Ordering::Relaxed),
            0
        );
    }
    let (cs, ks) = (citizen.ssrcs(), clerk.ssrcs());
    assert!(!ks.received.is_empty() && !cs.received.is_empty());
    assert!(
        ks.received.iter().all(|s| !cs.sent.contains(s)),
        "SSRC is rewritten"
    );
    assert!(
        cs.received.iter().all(|s| !ks.sent.contains(s)),
        "SSRC is rewritten"
    );
}

#[tokio::test]
async fn nothing_is_forwarded_before_admission_nor_after_sending_back() {
    let relay = relay(4);
    let call = call();
    let citizen = join(
        &relay,
        call,
        Party::Citizen,
        PeerOptions::default(),
        Traffic::LIGHT,
    )
    .await;
    let clerk = join(&relay, call, Party::Clerk, clerk_options(), Traffic::LIGHT).await;
    both_connected(&relay, call, &citizen, &clerk).await;

    wait_until("the relay receives from both", async || {
        leg(&relay, call, Party::Citizen).await.packets_received >= 40
            && leg(&relay, call, Party::Clerk).await.packets_received >= 40
    })
    .await;
    for party in [Party::Citizen, Party::Clerk] {
        let l = leg(&relay, call, party).await;
        assert_eq!(l.packets_forwarded, 0, "nothing forwarded before admission");
        assert_eq!(l.packets_dropped, l.packets_received);
    }
    assert_eq!((citizen.received(), clerk.received()), (0, 0));

    relay.set_admitted(call, true).await.expect("admit");
    wait_until("media flows after admission", async || {
        citizen.received() > 0 && clerk.received() > 0
    })
    .await;

    // The clerk sends the citizen back to the waiting room.
    relay.set_admitted(call, false).await.expect("send back");
    let before = (
        leg(&relay, call, Party::Citizen).await,
        leg(&relay, call, Party::Clerk).await,
    );
    wait_until("more arrives at the relay", async || {
        leg(&relay, call, Party::Citizen).await.packets_received >= before.0.packets_received + 40
    })
    .await;
    let after = (
        leg(&relay, call, Party::Citizen).await,
        leg(&relay, call, Party::Clerk).await,
    );
    assert_eq!(after.0.packets_forwarded, before.0.packets_forwarded);
    assert_eq!(after.1.packets_forwarded, before.1.packets_forwarded);
    assert!(
        !relay
            .stats(call)
            .await
            .expect("runs")
            .expect("call")
            .admitted
    );
}

#[tokio::test]
async fn a_leg_that_leaves_stops_the_other_side_and_nothing_is_left_behind() {
    let tasks = tokio::runtime::Handle::current().metrics();
    let tasks_before = tasks.num_alive_tasks();
    let relay = relay(4);
    let port = relay.local_addr();
    let call = call();
    relay.set_admitted(call, true).await.expect("admit");
    let citizen = join(
        &relay,
        call,
        Party::Citizen,
        PeerOptions::default(),
        Traffic::LIGHT,
    )
    .await;
    let clerk = join(&relay, call, Party::Clerk, clerk_options(), Traffic::LIGHT).await;
    both_connected(&relay, call, &citizen, &clerk).await;
    wait_until("media flows", async || {
        citizen.received() > 20 && clerk.received() > 20
    })
    .await;

    relay.leave(call, Party::Clerk).await.expect("leave");
    // The leaving browser is told (DTLS close), and nothing more reaches the citizen.
    wait_until("the clerk's peer sees the close", async || {
        clerk
            .counters
            .closed_by_remote
            .load(std::sync::atomic::Ordering::Relaxed)
    })
    .await;
    let forwarded = leg(&relay, call, Party::Citizen).await.packets_forwarded;
    let received = leg(&relay, call, Party::Citizen).await.packets_received;
    wait_until("the citizen keeps sending into the relay", async || {
        leg(&relay, call, Party::Citizen).await.packets_received >= received + 40
    })
    .await;
    let citizen_leg = leg(&relay, call, Party::Citizen).await;
    assert_eq!(
        citizen_leg.packets_forwarded, forwarded,
        "nothing forwarded to the citizen"
    );
    assert_eq!(
        citizen.received(),
        forwarded,
        "the citizen's incoming stream ended"
    );
    let stats = relay.stats(call).await.expect("runs").expect("call");
    assert!(stats.clerk.is_none());
    assert_eq!(relay.counts().await.expect("runs").legs, 1);

    relay.close(call).await.expect("close");
    assert_eq!(relay.counts().await.expect("runs"), RelayCounts::default());
    citizen.close().await;
    clerk.close().await;
    assert_eq!(
        tasks.num_alive_tasks(),
        tasks_before,
        "no peer or relay task left"
    );

    // Dropping the relay joins its thread and closes its one socket: the port is free again.
    drop(relay);
    std::net::UdpSocket::bind(port).expect("the relay's socket is closed");
}

#[tokio::test]
async fn a_new_offer_replaces_the_leg_and_media_resumes() {
    let relay = relay(4);
    let call = call();
    relay.set_admitted(call, true).await.expect("admit");
    let citizen = join(
        &relay,
        call,
        Party::Citizen,
        PeerOptions::default(),
        Traffic::LIGHT,
    )
    .await;
    let clerk = join(&relay, call, Party::Clerk, clerk_options(), Traffic::LIGHT).await;
    both_connected(&relay, call, &citizen, &clerk).await;
    wait_until("media flows", async || clerk.received() > 20).await;

    // The citizen's tab is reloaded: a new peer connection without a goodbye.
    drop(citizen);
    let kf_before = clerk
        .counters
        .keyframe_requests
        .load(std::sync::atomic::Ordering::Relaxed);
    let before = clerk.received();
    let citizen = join(
        &relay,
        call,
        Party::Citizen,
        PeerOptions::default(),
        Traffic::LIGHT,
    )
    .await;
    both_connected(&relay, call, &citizen, &clerk).await;
    wait_until("media resumes both ways", async || {
        clerk.received() > before + 20 && citizen.received() > 20
    })
    .await;
    wait_until(
        "the clerk is asked for a keyframe for the new leg",
        async || {
            clerk
                .counters
                .keyframe_requests
                .load(std::sync::atomic::Ordering::Relaxed)
                > kf_before
        },
    )
    .await;
    assert_eq!(relay.counts().await.expect("runs").legs, 2);
    assert_eq!(
        clerk
            .counters
            .foreign_pt
            .load(std::sync::atomic::Ordering::Relaxed),
        0
    );
}

#[tokio::test]
async fn past_capacity_a_new_call_is_full_and_running_calls_go_on() {
    let relay = relay(1);
    let first = call();
    relay.set_admitted(first, true).await.expect("admit");
    let citizen = join(
        &relay,
        first,
        Party::Citizen,
        PeerOptions::default(),
        Traffic::LIGHT,
    )
    .await;
    let clerk = join(&relay, first, Party::Clerk, clerk_options(), Traffic::LIGHT).await;
    both_connected(&relay, first, &citizen, &clerk).await;

    let (_, sdp) = peer::offer(PeerOptions::default()).expect("offer");
    let second = call();
    let refused = relay.join(second, Party::Citizen, sdp).await;
    assert_eq!(refused, Err(MediaError::Full { max: 1 }));
    assert!(refused.unwrap_err().german().contains("ausgelastet"));

    let before = clerk.received();
    wait_until("the running call goes on", async || {
        clerk.received() > before + 20
    })
    .await;
    // A reconnect inside a running call is not a new call.
    let (_, sdp) = peer::offer(PeerOptions::default()).expect("offer");
    relay
        .join(first, Party::Citizen, sdp)
        .await
        .expect("a replacement leg fits");

    relay.close(first).await.expect("close");
    let (_, sdp) = peer::offer(PeerOptions::default()).expect("offer");
    relay
        .join(second, Party::Citizen, sdp)
        .await
        .expect("room again after the first call");
}

#[tokio::test]
async fn a_malformed_offer_is_a_bad_offer_and_changes_nothing() {
    let relay = relay(2);
    let call = call();
    let (_, good) = peer::offer(PeerOptions::default()).expect("offer");
    let truncated: String = good.lines().take(6).collect::<Vec<_>>().join("\r\n");
    let no_fingerprint: String = good
        .lines()
        .filter(|l| !l.starts_with("a=fingerprint"))
        .map(|l| format!("{l}\r\n"))
        .collect();
    for offer in [
        String::new(),
        "hello".into(),
        "m=video 9 UDP/TLS/RTP/SAVPF 96\r\n\u{0}\u{ff}".into(),
        truncated,
        no_fingerprint,
        "v=0\r\n".repeat(20_000),
    ] {
        match relay.join(call, Party::Citizen, offer).await {
            Err(MediaError::BadOffer(reason)) => assert!(!reason.is_empty()),
            other => panic!("expected BadOffer, got {other:?}"),
        }
    }
    assert_eq!(relay.counts().await.expect("runs"), RelayCounts::default());
}

/// Every file below `root` with its length and modification time.
fn listing(root: &Path) -> BTreeMap<PathBuf, (u64, std::time::SystemTime)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_dir() {
                // The build folder changes under cargo, and holds no test output.
                if path.file_name().is_some_and(|n| n == "target") {
                    continue;
                }
                stack.push(path);
            } else if let Ok(modified) = meta.modified() {
                out.insert(path, (meta.len(), modified));
            }
        }
    }
    out
}

fn contains(path: &Path, needle: &[u8]) -> bool {
    std::fs::read(path).is_ok_and(|bytes| bytes.windows(needle.len()).any(|w| w == needle))
}

#[tokio::test]
async fn no_media_is_on_disk_after_a_call() {
    let data = tempfile::tempdir().expect("a data folder");
    let cwd = std::env::current_dir().expect("a working directory");
    let tmp = std::env::temp_dir();
    let before = [listing(&cwd), listing(&tmp)];
    // A marker no other test writes, in every payload of this call.
    let mut marker = [0u8; 8];
    marker.copy_from_slice(&Uuid::now_v7().as_bytes()[8..]); // the random half
    let options = PeerOptions {
        marker,
        ..PeerOptions::default()
    };

    let relay = relay(2);
    let call = call();
    relay.set_admitted(call, true).await.expect("admit");
    let citizen = join(&relay, call, Party::Citizen, options, Traffic::LIGHT).await;
    let clerk = join(
        &relay,
        call,
        Party::Clerk,
        PeerOptions {
            marker,
            ..clerk_options()
        },
        Traffic::LIGHT,
    )
    .await;
    both_connected(&relay, call, &citizen, &clerk).await;
    wait_until("a few seconds of media", async || {
        citizen.received() > 100 && clerk.received() > 100
    })
    .await;
    relay.close(call).await.expect("close");
    citizen.close().await;
    clerk.close().await;
    drop(relay);

    assert_eq!(
        std::fs::read_dir(data.path()).expect("readable").count(),
        0,
        "data folder empty"
    );
    let after = [listing(&cwd), listing(&tmp)];
    for (dir, (was, is)) in [&cwd, &tmp].into_iter().zip(before.iter().zip(&after)) {
        // Other tests of this binary may write their own temporary files at the same time;
        // none of them holds this call's media.
        for (path, stamp) in is {
            if was.get(path) != Some(stamp) {
                assert!(
                    !contains(path, &marker),
                    "media written to {}",
                    path.display()
                );
            }
        }
        if dir == &cwd {
            let new: Vec<_> = is.keys().filter(|p| !was.contains_key(*p)).collect();
            assert!(
                new.is_empty(),
                "new files in the working directory: {new:?}"
            );
        }
    }
}
