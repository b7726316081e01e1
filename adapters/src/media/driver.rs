//! The relay's loop: one task owns the socket and every `Rtc`.
//!
//! str0m is sans-IO: the loop feeds each `Rtc` its datagrams and the time, and polls it for
//! datagrams to send, events and its next deadline. Only the legs that had input, were
//! written to, or reached their deadline are polled, so a packet costs the same with one call
//! or a hundred.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use str0m::change::SdpOffer;
use str0m::crypto::CryptoProvider;
use str0m::media::{KeyframeRequestKind, MediaKind, Mid, Pt};
use str0m::net::{Protocol, Receive};
use str0m::rtp::{ExtensionValues, RtpPacket, RtpWrite};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc};
use tokio::net::UdpSocket;
use tokio::sync::{broadcast, mpsc};
use videoamt_core::domain::SessionId;
use videoamt_core::domain::events::Party;
use videoamt_core::media::{
    CallStats, LegStats, MediaError, MediaEvent, MediaEventKind, Quality, RelayCounts,
};

use super::rewrite::Rebase;
use super::{Command, MediaConfig};

/// Largest offer accepted; a browser's is 5–10 KB.
const MAX_OFFER_BYTES: usize = 64 * 1024;
/// A sequence gap this large on video is a loss burst: ask the sender for a keyframe.
const LOSS_BURST: u64 = 10;
/// At most one keyframe request per sender and this interval, whatever asks.
const KEYFRAME_INTERVAL: Duration = Duration::from_millis(500);
/// The NACK buffer per outgoing video stream. str0m keeps 3 s by default, about 0.6 MB per
/// stream at 1.5 Mbit/s. A retransmission must arrive before the receiver plays the frame out
/// (its jitter buffer holds a few hundred milliseconds), so half a second is enough on any
/// line a call works on, and it is most of a call's server memory (ADR 0015).
const RTX_PACKETS: usize = 200;
const RTX_AGE: Duration = Duration::from_millis(500);
/// Datagrams read per wake-up before the loop polls the legs they touched.
const RECV_BATCH: usize = 64;

type LegId = u64;

struct Leg {
    id: LegId,
    call: SessionId,
    party: Party,
    rtc: Rtc,
    /// The negotiated m-lines in offer order; the n-th video of one leg feeds the n-th
    /// video of the other.
    mids: Vec<(Mid, MediaKind)>,
    connected: bool,
    /// `Disconnected` was reported and not yet undone by `Connected`.
    reported_down: bool,
    deadline: Instant,
    last_input: Instant,
    stats: LegStats,
    /// Per outgoing mid: the rebasing of whatever source feeds it.
    rebase: HashMap<Mid, Rebase>,
    /// Incoming PT of the other leg → this leg's PT, per source leg.
    pt_map: Vec<(LegId, Pt, Option<Pt>)>,
    /// Per incoming mid: highest sequence number seen, for loss bursts and the loss count.
    rx_seq: HashMap<Mid, (u64, u64)>,
    /// Unrepaired sequence gaps seen on this leg's incoming streams.
    lost: u64,
    last_keyframe_request: Option<Instant>,
    routes: Vec<SocketAddr>,
    /// Incoming mids str0m reports paused, and whether that was reported as all stopped.
    paused: HashSet<Mid>,
    stopped: bool,
}

#[derive(Default)]
struct Call {
    admitted: bool,
    citizen: Option<LegId>,
    clerk: Option<LegId>,
}

impl Call {
    fn slot(&mut self, party: Party) -> &mut Option<LegId> {
        match party {
            Party::Citizen => &mut self.citizen,
            Party::Clerk => &mut self.clerk,
        }
    }

    fn leg(&self, party: Party) -> Option<LegId> {
        match party {
            Party::Citizen => self.citizen,
            Party::Clerk => self.clerk,
        }
    }

    fn has_legs(&self) -> bool {
        self.citizen.is_some() || self.clerk.is_some()
    }
}

fn other(party: Party) -> Party {
    match party {
        Party::Citizen => Party::Clerk,
        Party::Clerk => Party::Citizen,
    }
}

/// One forwarded packet, held between polling its source and writing its target.
struct Forward {
    to: LegId,
    from: LegId,
    kind: MediaKind,
    index: usize,
    pt: Pt,
    packet: RtpPacket,
}

pub(crate) struct Driver {
    config: MediaConfig,
    socket: UdpSocket,
    local: SocketAddr,
    events: broadcast::Sender<MediaEvent>,
    crypto: Arc<CryptoProvider>,
    legs: HashMap<LegId, Leg>,
    calls: HashMap<SessionId, Call>,
    routes: HashMap<SocketAddr, LegId>,
    next_leg: LegId,
    dirty: HashSet<LegId>,
    /// No leg's deadline is earlier than this (it may be later: then the scan finds nothing).
    earliest: Instant,
}

impl Driver {
    pub(crate) fn new(
        config: MediaConfig,
        socket: UdpSocket,
        local: SocketAddr,
        events: broadcast::Sender<MediaEvent>,
    ) -> Self {
        Self {
            config,
            socket,
            local,
            events,
            crypto: Arc::new(str0m::crypto::from_feature_flags()),
            legs: HashMap::new(),
            calls: HashMap::new(),
            routes: HashMap::new(),
            next_leg: 1,
            dirty: HashSet::new(),
            earliest: Instant::now() + Duration::from_secs(1),
        }
    }

    pub(crate) async fn run(mut self, mut commands: mpsc::UnboundedReceiver<Command>) {
        let mut buf = vec![0u8; 2_000];
        loop {
            let sleep = tokio::time::sleep_until(self.earliest.into());
            tokio::select! {
                biased;
                command = commands.recv() => match command {
                    Some(command) => self.command(command),
                    None => break,
                },
                received = self.socket.recv_from(&mut buf) => match received {
                    Ok((n, from)) => {
                        self.input(&buf[..n], from);
                        // Drain what else is queued without going back to the reactor. Each
                        // datagram is polled out before the next goes in: in RTP mode str0m
                        // holds one received packet until the next poll_output.
                        for _ in 1..RECV_BATCH {
                            self.poll_dirty();
                            match self.socket.try_recv_from(&mut buf) {
                                Ok((n, from)) => self.input(&buf[..n], from),
                                Err(_) => break,
                            }
                        }
                    }
                    // ICMP port unreachable surfaces as an error on Linux; the leg times out.
                    Err(e) => tracing::debug!(error = %e, "media socket receive"),
                },
                _ = sleep => self.timeouts(),
            }
            self.poll_dirty();
        }
        let ids: Vec<LegId> = self.legs.keys().copied().collect();
        for id in ids {
            self.remove_leg(id, false);
        }
        tracing::info!("media relay stopped");
    }

    fn emit(&self, call: SessionId, party: Party, kind: MediaEventKind) {
        // No subscriber is fine: nobody is watching.
        let _ = self.events.send(MediaEvent { call, party, kind });
    }

    // ---- commands -------------------------------------------------------------------------

    fn command(&mut self, command: Command) {
        match command {
            Command::Join {
                call,
                party,
                offer,
                reply,
            } => {
                let _ = reply.send(self.join(call, party, &offer));
            }
            Command::SetAdmitted {
                call,
                admitted,
                reply,
            } => {
                let entry = self.calls.entry(call).or_default();
                let was = std::mem::replace(&mut entry.admitted, admitted);
                if admitted && !was {
                    // Forwarding starts now: without a keyframe the pictures stay black
                    // until the next periodic one.
                    let legs = [entry.citizen, entry.clerk];
                    for id in legs.into_iter().flatten() {
                        self.request_keyframe(id, true);
                    }
                }
                let _ = reply.send(Ok(()));
            }
            Command::Leave { call, party, reply } => {
                if let Some(id) = self.calls.get(&call).and_then(|c| c.leg(party)) {
                    self.remove_leg(id, false);
                }
                let _ = reply.send(Ok(()));
            }
            Command::Close { call, reply } => {
                if let Some(c) = self.calls.get(&call) {
                    let ids: Vec<LegId> = [c.citizen, c.clerk].into_iter().flatten().collect();
                    for id in ids {
                        self.remove_leg(id, false);
                    }
                }
                self.calls.remove(&call);
                let _ = reply.send(Ok(()));
            }
            Command::Stats { call, reply } => {
                let stats = self.calls.get(&call).map(|c| {
                    let leg = |id: Option<LegId>| {
                        id.and_then(|id| self.legs.get(&id)).map(|l| LegStats {
                            connected: l.connected,
                            ..l.stats
                        })
                    };
                    CallStats {
                        admitted: c.admitted,
                        citizen: leg(c.citizen),
                        clerk: leg(c.clerk),
                    }
                });
                let _ = reply.send(Ok(stats));
            }
            Command::Counts { reply } => {
                let _ = reply.send(Ok(RelayCounts {
                    calls: self.calls.len(),
                    legs: self.legs.len(),
                    routes: self.routes.len(),
                }));
            }
        }
    }

    fn join(&mut self, call: SessionId, party: Party, offer: &str) -> Result<String, MediaError> {
        let existing = self.calls.get(&call);
        if !existing.is_some_and(Call::has_legs) {
            let busy = self.calls.values().filter(|c| c.has_legs()).count();
            if busy >= self.config.max_calls {
                return Err(MediaError::Full {
                    max: self.config.max_calls,
                });
            }
        }
        // The reasons name what is wrong, never the offer's content (it holds addresses).
        if offer.len() > MAX_OFFER_BYTES {
            return Err(MediaError::BadOffer("offer larger than 64 KiB".into()));
        }
        let has_media = offer
            .lines()
            .any(|l| l.starts_with("m=audio") || l.starts_with("m=video"));
        if !has_media {
            return Err(MediaError::BadOffer("no audio or video m-line".into()));
        }
        let offer = SdpOffer::from_sdp_string(offer)
            .map_err(|_| MediaError::BadOffer("not parseable as SDP".into()))?;

        let now = Instant::now();
        let mut rtc = Rtc::builder()
            .set_crypto_provider(self.crypto.clone())
            .set_rtp_mode(true)
            // A server on a known address only answers checks: no checks of its own, and
            // nothing is sent to an address the browser did not prove it owns.
            .set_ice_lite(true)
            .clear_codecs()
            .enable_opus(true, false)
            .enable_vp8(true)
            .enable_h264(true)
            .set_stats_interval(Some(Duration::from_secs(1)))
            .build(now);
        let host = Candidate::host(self.local, "udp")
            .map_err(|e| MediaError::Internal(format!("host candidate: {e}")))?;
        rtc.add_local_candidate(host);
        if let Some(ip) = self.config.announce_ip {
            let public = SocketAddr::new(ip, self.local.port());
            let srflx = Candidate::server_reflexive(public, self.local, "udp")
                .map_err(|e| MediaError::Internal(format!("announced candidate: {e}")))?;
            rtc.add_local_candidate(srflx);
        }
        let answer = rtc
            .sdp_api()
            .accept_offer(offer)
            .map_err(|e| MediaError::BadOffer(offer_refusal(&e)))?;

        // A new offer from the same party replaces its leg (reconnect, new peer connection).
        if let Some(old) = self.calls.get(&call).and_then(|c| c.leg(party)) {
            self.remove_leg(old, false);
        }
        let id = self.next_leg;
        self.next_leg += 1;
        self.legs.insert(
            id,
            Leg {
                id,
                call,
                party,
                rtc,
                mids: Vec::new(),
                connected: false,
                reported_down: false,
                deadline: now,
                last_input: now,
                stats: LegStats::default(),
                rebase: HashMap::new(),
                pt_map: Vec::new(),
                rx_seq: HashMap::new(),
                lost: 0,
                last_keyframe_request: None,
                routes: Vec::new(),
                paused: HashSet::new(),
                stopped: false,
            },
        );
        *self.calls.entry(call).or_default().slot(party) = Some(id);
        self.dirty.insert(id);
        Ok(answer.to_sdp_string())
    }

    /// Closes a leg: str0m queues RTCP BYE and DTLS close_notify, which are sent before the
    /// `Rtc` is dropped, so the other end learns at once rather than by timeout.
    fn remove_leg(&mut self, id: LegId, report: bool) {
        let Some(mut leg) = self.legs.remove(&id) else {
            return;
        };
        self.dirty.remove(&id);
        if leg.rtc.is_alive() && leg.rtc.close().is_ok() {
            let now = Instant::now();
            // Bounded: a closing Rtc only drains what it queued.
            for _ in 0..64 {
                match leg.rtc.poll_output() {
                    Ok(Output::Transmit(t)) => {
                        let _ = self.socket.try_send_to(&t.contents, t.destination);
                    }
                    Ok(Output::Event(_)) => {}
                    Ok(Output::Timeout(_)) | Err(_) => break,
                }
                if leg.rtc.handle_input(Input::Timeout(now)).is_err() {
                    break;
                }
            }
        }
        for addr in &leg.routes {
            if self.routes.get(addr) == Some(&id) {
                self.routes.remove(addr);
            }
        }
        if let Some(call) = self.calls.get_mut(&leg.call)
            && *call.slot(leg.party) == Some(id)
        {
            *call.slot(leg.party) = None;
        }
        if report && !leg.reported_down {
            self.emit(leg.call, leg.party, MediaEventKind::Disconnected);
        }
        tracing::debug!(leg = id, "media leg closed");
    }

    // ---- network and time -----------------------------------------------------------------

    fn input(&mut self, data: &[u8], from: SocketAddr) {
        let Ok(contents) = data.try_into() else {
            return; // not STUN, DTLS, RTP or RTCP
        };
        let now = Instant::now();
        let input = Input::Receive(
            now,
            Receive {
                proto: Protocol::Udp,
                source: from,
                destination: self.local,
                contents,
            },
        );
        let id = match self.routes.get(&from) {
            Some(&id) => Some(id),
            None => {
                // A new address: only the leg whose ICE credentials match takes it.
                let found = self
                    .legs
                    .values()
                    .find(|l| l.rtc.accepts(&input))
                    .map(|l| l.id);
                if let Some(id) = found {
                    self.routes.insert(from, id);
                    if let Some(leg) = self.legs.get_mut(&id) {
                        leg.routes.push(from);
                    }
                }
                found
            }
        };
        let Some(leg) = id.and_then(|id| self.legs.get_mut(&id)) else {
            return;
        };
        leg.last_input = now;
        if leg.rtc.handle_input(input).is_err() {
            // A datagram str0m refuses (bad SRTP, replay) is dropped; the leg stays.
            tracing::trace!(leg = leg.id, "media input refused");
        }
        self.dirty.insert(leg.id);
    }

    fn timeouts(&mut self) {
        let now = Instant::now();
        let mut earliest = now + Duration::from_secs(1);
        let mut dead = Vec::new();
        for leg in self.legs.values_mut() {
            if now.duration_since(leg.last_input) > self.config.leg_timeout {
                dead.push(leg.id);
                continue;
            }
            if leg.deadline <= now {
                if leg.rtc.handle_input(Input::Timeout(now)).is_err() {
                    dead.push(leg.id);
                    continue;
                }
                self.dirty.insert(leg.id);
            } else {
                earliest = earliest.min(leg.deadline);
            }
        }
        self.earliest = earliest;
        for id in dead {
            self.remove_leg(id, true);
        }
    }

    fn poll_dirty(&mut self) {
        // Forwarding writes into other legs, which makes them dirty in turn: loop until quiet.
        while !self.dirty.is_empty() {
            let batch: Vec<LegId> = self.dirty.drain().collect();
            let mut forwards = Vec::new();
            for id in batch {
                self.poll_leg(id, &mut forwards);
            }
            for f in forwards {
                let from = f.from;
                if !self.forward(f)
                    && let Some(source) = self.legs.get_mut(&from)
                {
                    source.stats.packets_dropped += 1;
                }
            }
        }
    }

    fn poll_leg(&mut self, id: LegId, forwards: &mut Vec<Forward>) {
        let mut gone = false;
        let mut keyframes = Vec::new();
        {
            let Some(leg) = self.legs.get_mut(&id) else {
                return;
            };
            let call = self.calls.get(&leg.call);
            let admitted = call.is_some_and(|c| c.admitted);
            let peer = call.and_then(|c| c.leg(other(leg.party)));
            loop {
                if !leg.rtc.is_alive() {
                    gone = true;
                    break;
                }
                match leg.rtc.poll_output() {
                    Ok(Output::Timeout(t)) => {
                        leg.deadline = t;
                        self.earliest = self.earliest.min(t);
                        break;
                    }
                    Ok(Output::Transmit(t)) => {
                        // A full send buffer drops the datagram like the network would.
                        let _ = self.socket.try_send_to(&t.contents, t.destination);
                    }
                    Ok(Output::Event(event)) => {
                        let e = LegEvent {
                            leg,
                            events: &self.events,
                            admitted,
                            peer,
                            forwards,
                            keyframes: &mut keyframes,
                        };
                        e.handle(event);
                    }
                    Err(e) => {
                        tracing::debug!(leg = id, error = %e, "media leg failed");
                        gone = true;
                        break;
                    }
                }
            }
        }
        for (target, force) in keyframes {
            self.request_keyframe(target, force);
        }
        if gone {
            self.remove_leg(id, true);
        }
    }

    /// Asks the sender of leg `id` for a keyframe on every video it sends.
    fn request_keyframe(&mut self, id: LegId, force: bool) {
        let Some(leg) = self.legs.get_mut(&id) else {
            return;
        };
        let now = Instant::now();
        if !force
            && leg
                .last_keyframe_request
                .is_some_and(|t| now.duration_since(t) < KEYFRAME_INTERVAL)
        {
            return;
        }
        leg.last_keyframe_request = Some(now);
        let videos: Vec<Mid> = leg
            .mids
            .iter()
            .filter(|(_, k)| *k == MediaKind::Video)
            .map(|(m, _)| *m)
            .collect();
        let mut api = leg.rtc.direct_api();
        for mid in videos {
            if let Some(rx) = api.stream_rx_by_mid(mid, None) {
                rx.request_keyframe(KeyframeRequestKind::Pli);
            }
        }
        self.dirty.insert(id);
    }

    /// Writes one packet onto the target leg; false if it could not be placed there.
    fn forward(&mut self, f: Forward) -> bool {
        // The source's PT means a codec in the source's numbering; find it there first.
        let params = self
            .legs
            .get(&f.from)
            .and_then(|src| src.rtc.codec_config().find(|p| p.pt() == f.pt).copied());
        let Some(target) = self.legs.get_mut(&f.to).filter(|t| t.connected) else {
            return false;
        };
        let Some(mid) = target
            .mids
            .iter()
            .filter(|(_, k)| *k == f.kind)
            .nth(f.index)
            .map(|(m, _)| *m)
        else {
            return false;
        };
        let pt = match target
            .pt_map
            .iter()
            .find(|(src, pt_in, _)| *src == f.from && *pt_in == f.pt)
        {
            Some((_, _, out)) => *out,
            None => {
                let out = params.and_then(|p| {
                    let out = target.rtc.codec_config().match_params(p)?.pt();
                    let media = target.rtc.media(mid)?;
                    media.remote_pts().contains(&out).then_some(out)
                });
                target.pt_map.push((f.from, f.pt, out));
                out
            }
        };
        let Some(pt) = pt else {
            return false; // the receiving browser did not negotiate this codec
        };
        let step = if f.kind == MediaKind::Video {
            3_000
        } else {
            960
        };
        let p = f.packet;
        let fresh = !target.rebase.contains_key(&mid);
        let rebase = target.rebase.entry(mid).or_default();
        let Some((seq, time)) = rebase.map(f.from, *p.seq_no, p.header.timestamp, step) else {
            return false;
        };
        let mut api = target.rtc.direct_api();
        let Some(tx) = api.stream_tx_by_mid(mid, None) else {
            return false;
        };
        if fresh && f.kind == MediaKind::Video {
            tx.set_rtx_cache(RTX_PACKETS, RTX_AGE, Some(0.15));
        }
        let ext = ExtensionValues {
            audio_level: p.header.ext_vals.audio_level,
            voice_activity: p.header.ext_vals.voice_activity,
            video_orientation: p.header.ext_vals.video_orientation,
            ..Default::default()
        };
        let bytes = p.payload.len() as u64;
        tx.write_rtp(
            RtpWrite::new(pt, seq.into(), time, p.timestamp, p.payload)
                .marker(p.header.marker)
                .ext_vals(ext)
                // Video goes into str0m's send buffer so this hop's NACKs are answered here.
                .nackable(f.kind == MediaKind::Video),
        );
        target.stats.packets_forwarded += 1;
        target.stats.bytes_forwarded += bytes;
        self.dirty.insert(f.to);
        true
    }
}

/// What an event of one leg may touch while that leg is borrowed.
struct LegEvent<'a> {
    leg: &'a mut Leg,
    events: &'a broadcast::Sender<MediaEvent>,
    admitted: bool,
    peer: Option<LegId>,
    forwards: &'a mut Vec<Forward>,
    /// Legs to ask for a keyframe (and whether to skip the throttle).
    keyframes: &'a mut Vec<(LegId, bool)>,
}

impl LegEvent<'_> {
    fn emit(&self, kind: MediaEventKind) {
        let _ = self.events.send(MediaEvent {
            call: self.leg.call,
            party: self.leg.party,
            kind,
        });
    }

    fn handle(self, event: Event) {
        let leg = &mut *self.leg;
        match event {
            Event::MediaAdded(added) => leg.mids.push((added.mid, added.kind)),
            Event::Connected => {
                leg.connected = true;
                leg.reported_down = false;
                self.emit(MediaEventKind::Connected);
                // The other side has been sending without this receiver: it needs a
                // keyframe now, and so does this sender for the other receiver.
                if let Some(peer) = self.peer {
                    self.keyframes.push((peer, true));
                    self.keyframes.push((self.leg.id, true));
                }
            }
            Event::IceConnectionStateChange(state) => match state {
                IceConnectionState::Disconnected if !leg.reported_down => {
                    leg.reported_down = true;
                    self.emit(MediaEventKind::Disconnected);
                }
                IceConnectionState::Connected | IceConnectionState::Completed
                    if leg.reported_down && leg.connected =>
                {
                    leg.reported_down = false;
                    self.emit(MediaEventKind::Connected);
                }
                _ => {}
            },
            Event::StreamPaused(p) => {
                // Stopped means every incoming stream is silent, not one muted microphone.
                if p.paused {
                    leg.paused.insert(p.mid);
                } else {
                    leg.paused.remove(&p.mid);
                }
                let stopped = !leg.mids.is_empty() && leg.paused.len() >= leg.mids.len();
                if stopped != leg.stopped {
                    leg.stopped = stopped;
                    self.emit(if stopped {
                        MediaEventKind::MediaStopped
                    } else {
                        MediaEventKind::MediaResumed
                    });
                }
            }
            Event::MediaIngressStats(s) => {
                let is_video = leg
                    .mids
                    .iter()
                    .any(|(m, k)| *m == s.mid && *k == MediaKind::Video);
                if is_video {
                    let quality = Quality {
                        packets: leg.stats.packets_received,
                        lost: leg.lost,
                        // Video RTP time runs at 90 kHz.
                        jitter_ms: Some(f64::from(s.jitter) / 90.0),
                        rtt_ms: s.rtt.map(|d| d.as_secs_f64() * 1_000.0),
                    };
                    self.emit(MediaEventKind::Quality(quality));
                }
            }
            Event::KeyframeRequest(_) => {
                // This leg's receiver lost a picture: the other leg's sender makes a new one.
                if let Some(peer) = self.peer {
                    self.keyframes.push((peer, false));
                }
            }
            Event::RtpPacket(packet) => {
                let bytes = packet.payload.len() as u64;
                leg.stats.packets_received += 1;
                leg.stats.bytes_received += bytes;
                // Browsers send the MID extension only at first; str0m keeps the mapping.
                let ssrc = packet.header.ssrc;
                let Some(mid) = leg.rtc.direct_api().stream_rx(&ssrc).map(|rx| rx.mid()) else {
                    leg.stats.packets_dropped += 1;
                    return;
                };
                let Some((kind, index)) = kind_index(&leg.mids, mid) else {
                    leg.stats.packets_dropped += 1;
                    return;
                };
                let seq = *packet.seq_no;
                let burst = track_loss(leg, mid, seq);
                if burst && kind == MediaKind::Video {
                    self.keyframes.push((leg.id, false));
                }
                match self.peer {
                    Some(to) if self.admitted => self.forwards.push(Forward {
                        to,
                        from: leg.id,
                        kind,
                        index,
                        pt: packet.header.payload_type,
                        packet,
                    }),
                    _ => leg.stats.packets_dropped += 1,
                }
            }
            _ => {}
        }
    }
}

/// The kind of `mid` and its position among the leg's m-lines of that kind.
fn kind_index(mids: &[(Mid, MediaKind)], mid: Mid) -> Option<(MediaKind, usize)> {
    let kind = mids.iter().find(|(m, _)| *m == mid)?.1;
    let index = mids
        .iter()
        .filter(|(_, k)| *k == kind)
        .position(|(m, _)| *m == mid)?;
    Some((kind, index))
}

/// Counts sequence gaps on an incoming stream; true on a loss burst.
fn track_loss(leg: &mut Leg, mid: Mid, seq: u64) -> bool {
    let entry = leg.rx_seq.entry(mid).or_insert((seq, 0));
    let (max, _) = *entry;
    if seq > max {
        let gap = seq - max - 1;
        leg.lost += gap;
        entry.0 = seq;
        gap >= LOSS_BURST
    } else {
        // A late or repaired packet fills a gap counted before.
        if seq < max && leg.lost > 0 {
            leg.lost -= 1;
        }
        false
    }
}

/// A short, fixed description of why str0m refused an offer (no SDP content).
fn offer_refusal(e: &str0m::RtcError) -> String {
    use str0m::RtcError as E;
    match e {
        E::RemoteSdp(_) => "the offer's media sections do not fit together".into(),
        E::Sdp(_) => "not parseable as SDP".into(),
        _ => "the WebRTC stack could not answer it".into(),
    }
}
