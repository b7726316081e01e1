//! The media relay on `webrtc` 0.21 behind the same [`MediaRelay`] port as `Str0mRelay`, for
//! `videoamt bench media --relay-program` only (ADR 0015). Not part of the product: a
//! workspace of its own, so that webrtc's dependency tree stays out of the main Cargo.lock.
//!
//! `videoamt-webrtc-relay-bench --bind ADDR --max-calls N` prints `{"ready":"<ip>:0"}` and
//! answers the control protocol of `videoamt_core::media::control` on stdin/stdout until
//! stdin closes. Port 0 in the ready line: there is no shared socket (see below).
//!
//! As close to `adapters/src/media/driver.rs` as webrtc allows:
//! - **One `RTCPeerConnection` per leg, one UDP socket per leg.** webrtc 0.21 has no UDP mux
//!   (`SettingEngineBuilder::with_udp_network` is commented out as a TODO in `rtc` 0.21.1), so
//!   each connection binds its own socket on `--bind`'s IP, port 0.
//! - **ICE-lite, mDNS disabled, no trickle:** the answer is returned once ICE gathering is
//!   complete, with its host candidate in it.
//! - VP8, H.264 and Opus are registered, with NACK/PLI feedback and webrtc's NACK responder
//!   and generator and RTCP report interceptors (per-hop NACK, like str0m's send buffer).
//! - **Forwarding:** the str0m peers offer audio and video sendrecv, so one
//!   `TrackLocalStaticRTP` per offered m-line is added before the offer is applied (webrtc
//!   pairs it with that m-line's transceiver). Each incoming track's RTP is written onto the
//!   other leg's local track of the same kind, with that track's SSRC and the receiver's
//!   negotiated payload type for the codec (header extensions dropped). Sequence numbers and
//!   timestamps are passed through, not rebased (the bench does not reconnect legs).
//! - Forwarding only while the call is admitted; otherwise the packet counts as dropped.
//! - **PLI** to each sender on admission and when a leg connects (and when a video track
//!   opens after that), and a receiver's PLI/FIR is relayed to the other sender (at most one
//!   per 500 ms then).
//! - There is no loop thread: webrtc runs a driver task per connection and this relay a task
//!   per track, on a tokio runtime with one worker per core.

use std::collections::HashMap;
use std::error::Error;
use std::hash::{BuildHasher, RandomState};
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use rtc::ice::mdns::MulticastDnsMode;
use rtc::peer_connection::configuration::interceptor_registry::{
    configure_nack, configure_rtcp_reports,
};
use rtc::peer_connection::configuration::media_engine::{
    MIME_TYPE_H264, MIME_TYPE_OPUS, MIME_TYPE_RTX, MIME_TYPE_VP8, MediaEngine,
};
use rtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtp_transceiver::rtp_sender::{
    RTCPFeedback, RTCRtpCodec, RTCRtpCodecParameters, RTCRtpCodingParameters,
    RTCRtpEncodingParameters, RtpCodecKind,
};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::watch;
use videoamt_core::domain::SessionId;
use videoamt_core::domain::events::Party;
use videoamt_core::media::control::{handle_line, ready_line};
use videoamt_core::media::{
    CallStats, LegStats, MediaError, MediaEvent, MediaEvents, MediaRelay, RelayCounts,
};
use webrtc::media_stream::MediaStreamTrack;
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_local::{TrackLocal, TrackLocalEvent};
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::peer_connection::{
    PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler, RTCConfigurationBuilder,
    RTCIceGatheringState, RTCPeerConnectionState, RTCSessionDescription, SettingEngineBuilder,
};
use webrtc::rtp_transceiver::RtpSender;

/// Largest offer accepted, as in the str0m relay.
const MAX_OFFER_BYTES: usize = 64 * 1024;
/// At most one relayed keyframe request per sender and this interval.
const KEYFRAME_INTERVAL: Duration = Duration::from_millis(500);
/// An answer without complete gathering after this is an internal error.
const GATHER_TIMEOUT: Duration = Duration::from_secs(10);

fn main() -> Result<(), Box<dyn Error>> {
    let (bind, max_calls) = args()?;
    // One worker per core, as the str0m relay's process has one loop thread plus the
    // control pipe: webrtc spreads its drivers over all workers.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(serve(bind, max_calls))
}

fn args() -> Result<(SocketAddr, usize), Box<dyn Error>> {
    let mut bind: SocketAddr = "127.0.0.1:0".parse()?;
    let mut max_calls = 150;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let value = args.next().ok_or_else(|| format!("{arg} needs a value"))?;
        match arg.as_str() {
            "--bind" => bind = value.parse()?,
            "--max-calls" => max_calls = value.parse()?,
            _ => return Err(format!("unknown argument {arg}").into()),
        }
    }
    Ok((bind, max_calls))
}

async fn serve(bind: SocketAddr, max_calls: usize) -> Result<(), Box<dyn Error>> {
    let relay = WebrtcRelay::new(bind.ip(), max_calls);
    let mut out = tokio::io::stdout();
    let mut ready = ready_line(SocketAddr::new(bind.ip(), 0));
    ready.push('\n');
    out.write_all(ready.as_bytes()).await?;
    out.flush().await?;
    // In order, one at a time, as `videoamt bench media-relay` answers.
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    while let Some(line) = lines.next_line().await? {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let mut reply = serde_json::to_vec(&handle_line(&relay, line).await)?;
        reply.push(b'\n');
        out.write_all(&reply).await?;
        out.flush().await?;
    }
    relay.close_all().await;
    Ok(())
}

#[derive(Debug, Default)]
struct Counters {
    packets_received: AtomicU64,
    bytes_received: AtomicU64,
    packets_forwarded: AtomicU64,
    bytes_forwarded: AtomicU64,
    packets_dropped: AtomicU64,
}

impl Counters {
    fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

/// A local track the relay writes the other leg's media onto.
struct Outgoing {
    kind: RtpCodecKind,
    track: Arc<TrackLocalStaticRTP>,
    ssrc: u32,
    /// Negotiated codecs of this m-line: payload type and MIME type (lower case), read after
    /// the answer was applied.
    codecs: Vec<(u8, String)>,
}

/// A local track added before the offer is applied, with its sender.
type PendingSender = (
    RtpCodecKind,
    Arc<TrackLocalStaticRTP>,
    u32,
    Arc<dyn RtpSender>,
);

/// What a leg's tasks share; the peer connection itself is in [`Leg`].
struct LegState {
    id: u64,
    party: Party,
    call: Weak<Call>,
    connected: AtomicBool,
    counters: Counters,
    outgoing: RwLock<Vec<Outgoing>>,
    /// Incoming video tracks, for keyframe requests: media SSRC and track.
    incoming_video: Mutex<Vec<(u32, Arc<dyn TrackRemote>)>>,
    last_keyframe_request: Mutex<Option<Instant>>,
}

struct Leg {
    state: Arc<LegState>,
    pc: Arc<dyn PeerConnection>,
}

#[derive(Default)]
struct Call {
    admitted: AtomicBool,
    citizen: RwLock<Option<Arc<Leg>>>,
    clerk: RwLock<Option<Arc<Leg>>>,
}

impl Call {
    fn slot(&self, party: Party) -> &RwLock<Option<Arc<Leg>>> {
        match party {
            Party::Citizen => &self.citizen,
            Party::Clerk => &self.clerk,
        }
    }

    fn leg(&self, party: Party) -> Option<Arc<Leg>> {
        self.slot(party).read().ok()?.clone()
    }

    fn has_legs(&self) -> bool {
        self.leg(Party::Citizen).is_some() || self.leg(Party::Clerk).is_some()
    }
}

fn other(party: Party) -> Party {
    match party {
        Party::Citizen => Party::Clerk,
        Party::Clerk => Party::Citizen,
    }
}

struct WebrtcRelay {
    ip: IpAddr,
    max_calls: usize,
    calls: Mutex<HashMap<SessionId, Arc<Call>>>,
    next_leg: AtomicU64,
    random: RandomState,
}

fn internal(e: impl std::fmt::Display) -> MediaError {
    MediaError::Internal(e.to_string())
}

impl WebrtcRelay {
    fn new(ip: IpAddr, max_calls: usize) -> Self {
        Self {
            ip,
            max_calls,
            calls: Mutex::new(HashMap::new()),
            next_leg: AtomicU64::new(1),
            random: RandomState::new(),
        }
    }

    fn calls(&self) -> std::sync::MutexGuard<'_, HashMap<SessionId, Arc<Call>>> {
        self.calls.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn ssrc(&self, leg: u64, index: usize) -> u32 {
        self.random.hash_one((leg, index)) as u32
    }

    async fn close_all(&self) {
        let calls: Vec<SessionId> = self.calls().keys().copied().collect();
        for call in calls {
            let _ = self.close(call).await;
        }
    }

    /// The m-lines of an offer, in order: audio or video.
    fn offered_kinds(offer: &str) -> Vec<RtpCodecKind> {
        offer
            .lines()
            .filter_map(|l| {
                if l.starts_with("m=audio") {
                    Some(RtpCodecKind::Audio)
                } else if l.starts_with("m=video") {
                    Some(RtpCodecKind::Video)
                } else {
                    None
                }
            })
            .collect()
    }

    async fn open_leg(
        &self,
        call: &Arc<Call>,
        party: Party,
        offer: String,
    ) -> Result<(Arc<Leg>, String), MediaError> {
        let kinds = Self::offered_kinds(&offer);
        if kinds.is_empty() {
            return Err(MediaError::BadOffer("no audio or video m-line".into()));
        }
        let offer = RTCSessionDescription::offer(offer)
            .map_err(|_| MediaError::BadOffer("not parseable as SDP".into()))?;
        let id = self.next_leg.fetch_add(1, Ordering::Relaxed);
        let state = Arc::new(LegState {
            id,
            party,
            call: Arc::downgrade(call),
            connected: AtomicBool::new(false),
            counters: Counters::default(),
            outgoing: RwLock::new(Vec::new()),
            incoming_video: Mutex::new(Vec::new()),
            last_keyframe_request: Mutex::new(None),
        });
        let (gathered_tx, mut gathered) = watch::channel(false);
        let handler = Arc::new(Handler {
            leg: state.clone(),
            gathered: gathered_tx,
        });

        let mut media_engine = MediaEngine::default();
        register_codecs(&mut media_engine).map_err(internal)?;
        let registry = configure_rtcp_reports(configure_nack(
            rtc::interceptor::Registry::new(),
            &mut media_engine,
        ));
        let settings = SettingEngineBuilder::new()
            .with_lite(true)
            .with_multicast_dns_mode(MulticastDnsMode::Disabled)
            .build();
        let pc = PeerConnectionBuilder::new()
            .with_configuration(RTCConfigurationBuilder::new().build())
            .with_media_engine(media_engine)
            .with_interceptor_registry(registry)
            .with_setting_engine(settings)
            .with_handler(handler)
            .with_udp_addrs(vec![SocketAddr::new(self.ip, 0)])
            .build()
            .await
            .map_err(internal)?;
        let pc: Arc<dyn PeerConnection> = Arc::new(pc);
        let leg = Arc::new(Leg {
            state: state.clone(),
            pc: pc.clone(),
        });
        match self.negotiate(&leg, &kinds, offer, &mut gathered).await {
            Ok(answer) => Ok((leg, answer)),
            Err(e) => {
                let _ = pc.close().await;
                Err(e)
            }
        }
    }

    /// Adds a local track per offered m-line, applies the offer and returns the answer once
    /// gathering is complete.
    async fn negotiate(
        &self,
        leg: &Leg,
        kinds: &[RtpCodecKind],
        offer: RTCSessionDescription,
        gathered: &mut watch::Receiver<bool>,
    ) -> Result<String, MediaError> {
        let mut senders: Vec<PendingSender> = Vec::new();
        for (index, &kind) in kinds.iter().enumerate() {
            let ssrc = self.ssrc(leg.state.id, index);
            let codec = if kind == RtpCodecKind::Audio {
                opus()
            } else {
                vp8()
            };
            let track = Arc::new(TrackLocalStaticRTP::new(MediaStreamTrack::new(
                format!("relay-{}", leg.state.id),
                format!("relay-{}-{index}", leg.state.id),
                format!("relay-{index}"),
                kind,
                vec![RTCRtpEncodingParameters {
                    rtp_coding_parameters: RTCRtpCodingParameters {
                        ssrc: Some(ssrc),
                        ..Default::default()
                    },
                    codec: codec.rtp_codec,
                    ..Default::default()
                }],
            )));
            let sender = leg
                .pc
                .add_track(track.clone() as Arc<dyn TrackLocal>)
                .await
                .map_err(internal)?;
            senders.push((kind, track, ssrc, sender));
        }
        leg.pc
            .set_remote_description(offer)
            .await
            .map_err(|_| MediaError::BadOffer("the offer's media sections do not fit".into()))?;
        let answer = leg.pc.create_answer(None).await.map_err(internal)?;
        leg.pc
            .set_local_description(answer)
            .await
            .map_err(internal)?;
        let mut outgoing = Vec::new();
        for (kind, track, ssrc, sender) in senders {
            let params = sender.get_parameters().await.map_err(internal)?;
            let codecs = params
                .rtp_parameters
                .codecs
                .iter()
                .map(|c| (c.payload_type, c.rtp_codec.mime_type.to_ascii_lowercase()))
                .collect();
            // The receiver's PLI/FIR about this track goes to the other leg's sender.
            let watcher = track.clone();
            let state = leg.state.clone();
            tokio::spawn(async move {
                while let Some(TrackLocalEvent::OnRtcpPacket(packets)) = watcher.poll().await {
                    let asks = packets.iter().any(|p| {
                        p.as_any().is::<PictureLossIndication>()
                            || p.as_any().is::<FullIntraRequest>()
                    });
                    if asks
                        && let Some(call) = state.call.upgrade()
                        && let Some(sender) = call.leg(other(state.party))
                    {
                        request_keyframe(&sender.state, false).await;
                    }
                }
            });
            outgoing.push(Outgoing {
                kind,
                track,
                ssrc,
                codecs,
            });
        }
        if let Ok(mut o) = leg.state.outgoing.write() {
            *o = outgoing;
        }
        // Non-trickle: the answer carries the host candidate.
        tokio::time::timeout(GATHER_TIMEOUT, gathered.wait_for(|done| *done))
            .await
            .map_err(|_| internal("ICE gathering did not complete"))?
            .map_err(internal)?;
        let local = leg
            .pc
            .local_description()
            .await
            .ok_or_else(|| internal("no local description"))?;
        Ok(local.sdp)
    }
}

fn video_feedback() -> Vec<RTCPFeedback> {
    [("nack", ""), ("nack", "pli"), ("ccm", "fir")]
        .into_iter()
        .map(|(typ, parameter)| RTCPFeedback {
            typ: typ.into(),
            parameter: parameter.into(),
        })
        .collect()
}

fn opus() -> RTCRtpCodecParameters {
    RTCRtpCodecParameters {
        rtp_codec: RTCRtpCodec {
            mime_type: MIME_TYPE_OPUS.into(),
            clock_rate: 48_000,
            channels: 2,
            sdp_fmtp_line: "minptime=10;useinbandfec=1".into(),
            rtcp_feedback: vec![],
        },
        payload_type: 111,
    }
}

fn vp8() -> RTCRtpCodecParameters {
    RTCRtpCodecParameters {
        rtp_codec: RTCRtpCodec {
            mime_type: MIME_TYPE_VP8.into(),
            clock_rate: 90_000,
            channels: 0,
            sdp_fmtp_line: String::new(),
            rtcp_feedback: video_feedback(),
        },
        payload_type: 96,
    }
}

/// Opus, VP8 and H.264 (constrained baseline, packetization mode 1), each video codec with
/// RTX, as the str0m relay offers.
fn register_codecs(engine: &mut MediaEngine) -> webrtc::error::Result<()> {
    engine.register_codec(opus(), RtpCodecKind::Audio)?;
    let rtx = |payload_type: u8, apt: u8| RTCRtpCodecParameters {
        rtp_codec: RTCRtpCodec {
            mime_type: MIME_TYPE_RTX.into(),
            clock_rate: 90_000,
            channels: 0,
            sdp_fmtp_line: format!("apt={apt}"),
            rtcp_feedback: vec![],
        },
        payload_type,
    };
    let h264 = RTCRtpCodecParameters {
        rtp_codec: RTCRtpCodec {
            mime_type: MIME_TYPE_H264.into(),
            clock_rate: 90_000,
            channels: 0,
            sdp_fmtp_line: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"
                .into(),
            rtcp_feedback: video_feedback(),
        },
        payload_type: 102,
    };
    for codec in [vp8(), rtx(97, 96), h264, rtx(103, 102)] {
        engine.register_codec(codec, RtpCodecKind::Video)?;
    }
    Ok(())
}

/// Asks the sender of `leg` for a keyframe on each of its video tracks.
async fn request_keyframe(leg: &LegState, force: bool) {
    {
        let Ok(mut last) = leg.last_keyframe_request.lock() else {
            return;
        };
        let now = Instant::now();
        if !force && last.is_some_and(|t| now.duration_since(t) < KEYFRAME_INTERVAL) {
            return;
        }
        *last = Some(now);
    }
    let tracks: Vec<(u32, Arc<dyn TrackRemote>)> = leg
        .incoming_video
        .lock()
        .map(|t| t.clone())
        .unwrap_or_default();
    for (media_ssrc, track) in tracks {
        let pli = PictureLossIndication {
            sender_ssrc: 0,
            media_ssrc,
        };
        let _ = track.write_rtcp(vec![Box::new(pli)]).await;
    }
}

/// Keyframes from both senders of a call, when forwarding starts or a leg connects.
async fn keyframes_from_both(call: &Call) {
    for party in [Party::Citizen, Party::Clerk] {
        if let Some(leg) = call.leg(party) {
            request_keyframe(&leg.state, true).await;
        }
    }
}

struct Handler {
    leg: Arc<LegState>,
    gathered: watch::Sender<bool>,
}

#[async_trait]
impl PeerConnectionEventHandler for Handler {
    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        if state == RTCIceGatheringState::Complete {
            let _ = self.gathered.send(true);
        }
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        match state {
            RTCPeerConnectionState::Connected => {
                self.leg.connected.store(true, Ordering::Relaxed);
                // The callbacks run on the connection's driver: the RTCP goes out from a task.
                if let Some(call) = self.leg.call.upgrade() {
                    tokio::spawn(async move { keyframes_from_both(&call).await });
                }
            }
            RTCPeerConnectionState::Disconnected
            | RTCPeerConnectionState::Failed
            | RTCPeerConnectionState::Closed => {
                self.leg.connected.store(false, Ordering::Relaxed);
            }
            _ => {}
        }
    }

    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        tokio::spawn(forward(self.leg.clone(), track));
    }
}

/// Reads one incoming track and writes its RTP onto the other leg's track of the same kind.
async fn forward(leg: Arc<LegState>, track: Arc<dyn TrackRemote>) {
    let kind = track.kind().await;
    let media_ssrc = track.ssrcs().await.first().copied();
    if kind == RtpCodecKind::Video
        && let Some(ssrc) = media_ssrc
    {
        if let Ok(mut v) = leg.incoming_video.lock() {
            v.push((ssrc, track.clone()));
        }
        // A track opens with its first packet, after `Connected`: ask for its keyframe now.
        let call = leg.call.upgrade();
        if call.is_some_and(|c| c.admitted.load(Ordering::Relaxed)) {
            request_keyframe(&leg, true).await;
        }
    }
    // Incoming payload type → (target leg, outgoing payload type), per target leg.
    let mut pt_map: Vec<(u64, u8, Option<u8>)> = Vec::new();
    let c = &leg.counters;
    while let Some(event) = track.poll().await {
        let mut packet = match event {
            TrackRemoteEvent::OnRtpPacket(p) => p,
            TrackRemoteEvent::OnEnded => break,
            _ => continue,
        };
        let bytes = packet.payload.len() as u64;
        Counters::add(&c.packets_received, 1);
        Counters::add(&c.bytes_received, bytes);
        let Some(call) = leg.call.upgrade() else {
            break;
        };
        let target = call
            .leg(other(leg.party))
            .filter(|t| t.state.connected.load(Ordering::Relaxed));
        let Some(target) = target.filter(|_| call.admitted.load(Ordering::Relaxed)) else {
            Counters::add(&c.packets_dropped, 1);
            continue;
        };
        let in_pt = packet.header.payload_type;
        let mapped = pt_map
            .iter()
            .find(|(t, pt, _)| *t == target.state.id && *pt == in_pt)
            .map(|(_, _, out)| *out);
        let out_pt = match mapped {
            Some(out) => out,
            None => {
                let out = map_pt(&leg, &target.state, kind, in_pt);
                pt_map.push((target.state.id, in_pt, out));
                out
            }
        };
        let out = target.state.outgoing.read().ok().and_then(|o| {
            o.iter()
                .find(|o| o.kind == kind)
                .map(|o| (o.track.clone(), o.ssrc))
        });
        let (Some(pt), Some((out_track, ssrc))) = (out_pt, out) else {
            Counters::add(&c.packets_dropped, 1);
            continue;
        };
        packet.header.ssrc = ssrc;
        packet.header.payload_type = pt;
        packet.header.extension = false;
        packet.header.extensions.clear();
        packet.header.extensions_padding = 0;
        match out_track.write_rtp(packet).await {
            Ok(()) => {
                let t = &target.state.counters;
                Counters::add(&t.packets_forwarded, 1);
                Counters::add(&t.bytes_forwarded, bytes);
            }
            Err(_) => Counters::add(&c.packets_dropped, 1),
        }
    }
}

/// The receiver's payload type for the codec the sender's `pt` names on its own m-line.
fn map_pt(from: &LegState, to: &LegState, kind: RtpCodecKind, pt: u8) -> Option<u8> {
    let codec_of = |leg: &LegState| -> Vec<(u8, String)> {
        leg.outgoing
            .read()
            .ok()
            .and_then(|o| o.iter().find(|o| o.kind == kind).map(|o| o.codecs.clone()))
            .unwrap_or_default()
    };
    let mime = codec_of(from).into_iter().find(|(p, _)| *p == pt)?.1;
    codec_of(to)
        .into_iter()
        .find(|(_, m)| *m == mime)
        .map(|(p, _)| p)
}

struct NoEvents;

impl futures_core::Stream for NoEvents {
    type Item = MediaEvent;
    fn poll_next(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<MediaEvent>> {
        Poll::Ready(None)
    }
}

fn leg_stats(leg: &Leg) -> LegStats {
    let c = &leg.state.counters;
    let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
    LegStats {
        connected: leg.state.connected.load(Ordering::Relaxed),
        packets_received: get(&c.packets_received),
        bytes_received: get(&c.bytes_received),
        packets_forwarded: get(&c.packets_forwarded),
        bytes_forwarded: get(&c.bytes_forwarded),
        packets_dropped: get(&c.packets_dropped),
    }
}

#[async_trait]
impl MediaRelay for WebrtcRelay {
    async fn join(
        &self,
        call: SessionId,
        party: Party,
        offer_sdp: String,
    ) -> Result<String, MediaError> {
        let entry = {
            let mut calls = self.calls();
            let running = calls.get(&call).is_some_and(|c| c.has_legs());
            if !running {
                let busy = calls.values().filter(|c| c.has_legs()).count();
                if busy >= self.max_calls {
                    return Err(MediaError::Full {
                        max: self.max_calls,
                    });
                }
            }
            calls.entry(call).or_default().clone()
        };
        if offer_sdp.len() > MAX_OFFER_BYTES {
            return Err(MediaError::BadOffer("offer larger than 64 KiB".into()));
        }
        let (leg, answer) = self.open_leg(&entry, party, offer_sdp).await?;
        // A new offer from the same party replaces its leg.
        let old = entry
            .slot(party)
            .write()
            .map_err(internal)?
            .replace(leg.clone());
        if let Some(old) = old {
            let _ = old.pc.close().await;
        }
        if leg.state.connected.load(Ordering::Relaxed) {
            keyframes_from_both(&entry).await;
        }
        Ok(answer)
    }

    async fn set_admitted(&self, call: SessionId, admitted: bool) -> Result<(), MediaError> {
        let call = self.calls().entry(call).or_default().clone();
        let was = call.admitted.swap(admitted, Ordering::Relaxed);
        if admitted && !was {
            keyframes_from_both(&call).await;
        }
        Ok(())
    }

    async fn leave(&self, call: SessionId, party: Party) -> Result<(), MediaError> {
        let call = self.calls().get(&call).cloned();
        let leg = call.and_then(|c| c.slot(party).write().ok()?.take());
        if let Some(leg) = leg {
            let _ = leg.pc.close().await;
        }
        Ok(())
    }

    async fn close(&self, call: SessionId) -> Result<(), MediaError> {
        let call = self.calls().remove(&call);
        if let Some(call) = call {
            for party in [Party::Citizen, Party::Clerk] {
                let leg = call.slot(party).write().ok().and_then(|mut s| s.take());
                if let Some(leg) = leg {
                    let _ = leg.pc.close().await;
                }
            }
        }
        Ok(())
    }

    fn events(&self) -> MediaEvents {
        Box::pin(NoEvents)
    }

    async fn stats(&self, call: SessionId) -> Result<Option<CallStats>, MediaError> {
        let call = self.calls().get(&call).cloned();
        Ok(call.map(|c| CallStats {
            admitted: c.admitted.load(Ordering::Relaxed),
            citizen: c.leg(Party::Citizen).map(|l| leg_stats(&l)),
            clerk: c.leg(Party::Clerk).map(|l| leg_stats(&l)),
        }))
    }

    /// Routes: webrtc demultiplexes inside each connection; this relay keeps no table, so
    /// the number of sockets (one per leg) is reported there.
    async fn counts(&self) -> Result<RelayCounts, MediaError> {
        let calls: Vec<Arc<Call>> = self.calls().values().cloned().collect();
        let legs = calls
            .iter()
            .map(|c| {
                usize::from(c.leg(Party::Citizen).is_some())
                    + usize::from(c.leg(Party::Clerk).is_some())
            })
            .sum();
        Ok(RelayCounts {
            calls: calls.len(),
            legs,
            routes: legs,
        })
    }
}
