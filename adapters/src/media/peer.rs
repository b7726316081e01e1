//! A Rust stand-in for a browser: one str0m peer connection with its own UDP socket, which
//! offers sendrecv audio and video like Chromium does, sends RTP at a chosen rate and counts
//! what comes back. The loopback tests and `videoamt bench media` use it; the room never
//! does.
//!
//! Each payload starts with the send time (nanoseconds since [`epoch`]) and a sequence
//! number, so a receiver in the same process measures one-way latency through the relay.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use str0m::change::{SdpAnswer, SdpPendingOffer};
use str0m::format::{Codec, FormatParams};
use str0m::media::{Direction, Frequency, MediaKind, Mid, Pt};
use str0m::net::{Protocol, Receive};
use str0m::rtp::{RtpWrite, Ssrc};
use str0m::{Candidate, Event, Input, Output, Rtc};
use tokio::net::UdpSocket;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The instant all payload timestamps count from (one per process).
pub fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// What a peer sends each second.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Traffic {
    pub video_packets_per_s: u32,
    pub video_payload_bytes: usize,
    pub audio_packets_per_s: u32,
    pub audio_payload_bytes: usize,
}

impl Traffic {
    /// Sends no packet at all.
    pub fn is_silent(&self) -> bool {
        self.video_packets_per_s == 0 && self.audio_packets_per_s == 0
    }

    pub const SILENT: Traffic = Traffic {
        video_packets_per_s: 0,
        video_payload_bytes: 0,
        audio_packets_per_s: 0,
        audio_payload_bytes: 0,
    };

    /// A light stream for tests: 30 video and 50 audio packets a second.
    pub const LIGHT: Traffic = Traffic {
        video_packets_per_s: 30,
        video_payload_bytes: 600,
        audio_packets_per_s: 50,
        audio_payload_bytes: 80,
    };

    /// Video at `video_bps` in packets of 1,100 bytes plus Opus-like audio (50 × 120 bytes
    /// a second, about 48 kbit/s).
    pub fn call(video_bps: u64) -> Traffic {
        let payload = 1_100;
        Traffic {
            video_packets_per_s: u32::try_from(video_bps / (8 * payload as u64)).unwrap_or(0),
            video_payload_bytes: payload,
            audio_packets_per_s: 50,
            audio_payload_bytes: 120,
        }
    }
}

/// How the peer numbers its codecs, so that tests can give two peers different payload types.
#[derive(Debug, Clone, Copy)]
pub struct PeerOptions {
    pub bind_ip: IpAddr,
    /// The VP8 payload type this peer offers (RTX is the next number).
    pub vp8_pt: u8,
    pub opus_pt: u8,
    /// Written into every payload after the timestamp and sequence number, so a test can
    /// search files for its media.
    pub marker: [u8; 8],
}

impl Default for PeerOptions {
    fn default() -> Self {
        Self {
            bind_ip: IpAddr::from([127, 0, 0, 1]),
            vp8_pt: 96,
            opus_pt: 111,
            marker: *b"videoamt",
        }
    }
}

/// Errors of the stand-in; these are test failures, not product errors.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    #[error("peer socket: {0}")]
    Io(#[from] std::io::Error),
    #[error("peer WebRTC: {0}")]
    Rtc(#[from] str0m::RtcError),
    #[error("peer SDP: {0}")]
    Sdp(String),
}

/// An offer made, waiting for the relay's answer.
#[derive(Debug)]
pub struct PeerOffer {
    rtc: Rtc,
    pending: SdpPendingOffer,
    socket: std::net::UdpSocket,
    local: SocketAddr,
    options: PeerOptions,
    mids: Vec<(Mid, MediaKind)>,
}

/// Makes a peer and its offer (audio and video, sendrecv, candidates included).
pub fn offer(options: PeerOptions) -> Result<(PeerOffer, String), PeerError> {
    let socket = {
        use socket2::{Domain, Socket, Type};
        let addr = SocketAddr::new(options.bind_ip, 0);
        let s = Socket::new(Domain::for_address(addr), Type::DGRAM, None)?;
        // A browser's socket is not starved by 300 others on two cores; give the stand-in
        // room for a scheduling delay, so that the benchmark's loss is the relay's.
        s.set_recv_buffer_size(1 << 20)?;
        s.bind(&addr.into())?;
        s.set_nonblocking(true)?;
        std::net::UdpSocket::from(s)
    };
    let local = socket.local_addr()?;
    let mut config = Rtc::builder()
        .set_rtp_mode(true)
        .clear_codecs()
        .set_stats_interval(Some(Duration::from_secs(1)));
    config.codec_config().add_config(
        options.opus_pt.into(),
        None,
        Codec::Opus,
        Frequency::FORTY_EIGHT_KHZ,
        Some(2),
        FormatParams {
            min_p_time: Some(10),
            use_inband_fec: Some(true),
            ..Default::default()
        },
    );
    config.codec_config().add_config(
        options.vp8_pt.into(),
        Some(options.vp8_pt.wrapping_add(1).into()),
        Codec::Vp8,
        Frequency::NINETY_KHZ,
        None,
        FormatParams::default(),
    );
    let mut rtc = config.build(Instant::now());
    rtc.add_local_candidate(
        Candidate::host(local, "udp").map_err(|e| PeerError::Sdp(e.to_string()))?,
    );
    let mut api = rtc.sdp_api();
    // The offerer gets no MediaAdded for its own m-lines: keep the mids it was given.
    let audio = api.add_media(MediaKind::Audio, Direction::SendRecv, None, None, None);
    let video = api.add_media(MediaKind::Video, Direction::SendRecv, None, None, None);
    let mids = vec![(audio, MediaKind::Audio), (video, MediaKind::Video)];
    let (offer, pending) = api
        .apply()
        .ok_or_else(|| PeerError::Sdp("nothing to offer".into()))?;
    let sdp = offer.to_sdp_string();
    Ok((
        PeerOffer {
            rtc,
            pending,
            socket,
            local,
            options,
            mids,
        },
        sdp,
    ))
}

/// What a peer counted so far.
#[derive(Debug, Default)]
pub struct PeerCounters {
    pub connected: AtomicBool,
    pub sent_packets: AtomicU64,
    pub sent_bytes: AtomicU64,
    pub received_packets: AtomicU64,
    pub received_bytes: AtomicU64,
    /// Received packets whose payload type is not one this peer negotiated.
    pub foreign_pt: AtomicU64,
    /// PLI/FIR received for this peer's video.
    pub keyframe_requests: AtomicU64,
    /// An RTCP BYE or DTLS close from the relay ended a stream.
    pub closed_by_remote: AtomicBool,
    /// The runner has taken up a traffic setting that sends nothing: from here on the sent
    /// counters stay put (`set_traffic` only asks; the runner takes it up between packets).
    pub quiet: AtomicBool,
}

/// A running peer. Dropping it stops its task.
#[derive(Debug)]
pub struct Peer {
    pub counters: Arc<PeerCounters>,
    latency: Arc<Mutex<Latency>>,
    ssrcs: Arc<Mutex<Ssrcs>>,
    control: watch::Sender<Control>,
    task: Option<JoinHandle<()>>,
    pub local_addr: SocketAddr,
}

#[derive(Debug, Default, Clone)]
pub struct Ssrcs {
    pub sent: Vec<Ssrc>,
    pub received: Vec<Ssrc>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Control {
    Run(Traffic),
    Close,
}

/// One-way latencies in microseconds, bucketed by 10 µs up to 100 ms.
#[derive(Debug, Clone)]
pub struct Latency {
    buckets: Vec<u64>,
    over: u64,
    count: u64,
}

const BUCKET_US: u64 = 10;
const BUCKETS: usize = 10_000;

impl Default for Latency {
    fn default() -> Self {
        Self {
            buckets: vec![0; BUCKETS],
            over: 0,
            count: 0,
        }
    }
}

impl Latency {
    fn record(&mut self, us: u64) {
        self.count += 1;
        match self.buckets.get_mut((us / BUCKET_US) as usize) {
            Some(b) => *b += 1,
            None => self.over += 1,
        }
    }

    pub fn merge(&mut self, other: &Latency) {
        for (a, b) in self.buckets.iter_mut().zip(&other.buckets) {
            *a += b;
        }
        self.over += other.over;
        self.count += other.count;
    }

    /// What was recorded after `earlier` (a snapshot of the same histogram).
    pub fn minus(&self, earlier: &Latency) -> Latency {
        Latency {
            buckets: self
                .buckets
                .iter()
                .zip(&earlier.buckets)
                .map(|(a, b)| a.saturating_sub(*b))
                .collect(),
            over: self.over.saturating_sub(earlier.over),
            count: self.count.saturating_sub(earlier.count),
        }
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    /// The nearest-rank percentile in milliseconds (`None` without samples; 100 ms or more
    /// reads as 100).
    pub fn percentile_ms(&self, p: f64) -> Option<f64> {
        if self.count == 0 {
            return None;
        }
        let rank = ((p / 100.0) * self.count as f64).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, b) in self.buckets.iter().enumerate() {
            seen += b;
            if seen >= rank {
                return Some(((i as u64 + 1) * BUCKET_US) as f64 / 1_000.0);
            }
        }
        Some(100.0)
    }
}

impl PeerOffer {
    /// Takes the relay's answer and starts the peer's task on the current runtime.
    pub fn start(self, answer_sdp: &str, traffic: Traffic) -> Result<Peer, PeerError> {
        let PeerOffer {
            mut rtc,
            pending,
            socket,
            local,
            options,
            mids,
        } = self;
        let answer =
            SdpAnswer::from_sdp_string(answer_sdp).map_err(|e| PeerError::Sdp(e.to_string()))?;
        rtc.sdp_api().accept_answer(pending, answer)?;
        let socket = UdpSocket::from_std(socket)?;
        let counters = Arc::new(PeerCounters::default());
        let latency = Arc::new(Mutex::new(Latency::default()));
        let ssrcs = Arc::new(Mutex::new(Ssrcs::default()));
        let (control, rx) = watch::channel(Control::Run(traffic));
        let run = Runner {
            rtc,
            socket,
            local,
            options,
            counters: counters.clone(),
            latency: latency.clone(),
            ssrcs: ssrcs.clone(),
            mids,
            audio_seq: 0,
            video_seq: 0,
        };
        let task = tokio::spawn(run.run(rx));
        Ok(Peer {
            counters,
            latency,
            ssrcs,
            control,
            task: Some(task),
            local_addr: local,
        })
    }
}

impl Peer {
    pub fn set_traffic(&self, traffic: Traffic) {
        let _ = self.control.send(Control::Run(traffic));
    }

    /// True once the runner has stopped sending after `set_traffic(Traffic::SILENT)`.
    pub fn quiet(&self) -> bool {
        self.counters.quiet.load(Ordering::Relaxed)
    }

    pub fn connected(&self) -> bool {
        self.counters.connected.load(Ordering::Relaxed)
    }

    pub fn sent(&self) -> u64 {
        self.counters.sent_packets.load(Ordering::Relaxed)
    }

    pub fn received(&self) -> u64 {
        self.counters.received_packets.load(Ordering::Relaxed)
    }

    pub fn latency(&self) -> Latency {
        self.latency.lock().map(|l| l.clone()).unwrap_or_default()
    }

    pub fn ssrcs(&self) -> Ssrcs {
        self.ssrcs.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Closes the peer connection (RTCP BYE, DTLS close) and waits for its task to end.
    pub async fn close(mut self) {
        let _ = self.control.send(Control::Close);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// How long a closing peer sends its RTCP BYE and DTLS close before it stops.
const CLOSE_DRAIN: Duration = Duration::from_millis(100);

struct Runner {
    rtc: Rtc,
    socket: UdpSocket,
    local: SocketAddr,
    options: PeerOptions,
    counters: Arc<PeerCounters>,
    latency: Arc<Mutex<Latency>>,
    ssrcs: Arc<Mutex<Ssrcs>>,
    mids: Vec<(Mid, MediaKind)>,
    audio_seq: u64,
    video_seq: u64,
}

impl Runner {
    async fn run(mut self, mut control: watch::Receiver<Control>) {
        let mut buf = vec![0u8; 2_000];
        let mut traffic = match *control.borrow() {
            Control::Run(t) => t,
            Control::Close => return,
        };
        self.counters
            .quiet
            .store(traffic.is_silent(), Ordering::Relaxed);
        let mut next_video = Instant::now();
        let mut next_audio = Instant::now();
        // When a close began: it drains for at most CLOSE_DRAIN. str0m stays `Closing` until
        // its DTLS close completes, which never happens when the relay closed its side first
        // (the webrtc relay does), and `Peer::close` would wait for ever.
        let mut closing: Option<Instant> = None;
        loop {
            let Some(deadline) = self.drain() else {
                return; // closed
            };
            let now = Instant::now();
            if closing.is_some_and(|t| now.duration_since(t) >= CLOSE_DRAIN) {
                self.rtc.disconnect();
                return;
            }
            let sending = self.counters.connected.load(Ordering::Relaxed) && closing.is_none();
            let mut wake = closing.map_or(deadline, |t| deadline.min(t + CLOSE_DRAIN));
            if sending && traffic.video_packets_per_s > 0 {
                if next_video <= now {
                    self.send(MediaKind::Video, traffic.video_payload_bytes);
                    next_video += Duration::from_secs(1) / traffic.video_packets_per_s;
                    // After a stall, do not burst to catch up.
                    next_video = next_video.max(now - Duration::from_millis(20));
                    continue;
                }
                wake = wake.min(next_video);
            }
            if sending && traffic.audio_packets_per_s > 0 {
                if next_audio <= now {
                    self.send(MediaKind::Audio, traffic.audio_payload_bytes);
                    next_audio += Duration::from_secs(1) / traffic.audio_packets_per_s;
                    next_audio = next_audio.max(now - Duration::from_millis(20));
                    continue;
                }
                wake = wake.min(next_audio);
            }
            tokio::select! {
                received = self.socket.recv_from(&mut buf) => {
                    if let Ok((n, from)) = received {
                        self.input(&buf[..n], from);
                    }
                }
                _ = tokio::time::sleep_until(wake.into()) => {
                    let _ = self.rtc.handle_input(Input::Timeout(Instant::now()));
                }
                changed = control.changed(), if closing.is_none() => {
                    let next = if changed.is_ok() { *control.borrow() } else { Control::Close };
                    match next {
                        Control::Run(t) => {
                            traffic = t;
                            self.counters.quiet.store(t.is_silent(), Ordering::Relaxed);
                            next_video = Instant::now();
                            next_audio = Instant::now();
                        }
                        Control::Close => {
                            closing = Some(Instant::now());
                            let _ = self.rtc.close();
                        }
                    }
                }
            }
        }
    }

    fn input(&mut self, data: &[u8], from: SocketAddr) {
        let Ok(contents) = data.try_into() else {
            return;
        };
        let _ = self.rtc.handle_input(Input::Receive(
            Instant::now(),
            Receive {
                proto: Protocol::Udp,
                source: from,
                destination: self.local,
                contents,
            },
        ));
    }

    /// Polls until str0m wants time; `None` once the peer connection is gone.
    fn drain(&mut self) -> Option<Instant> {
        loop {
            if !self.rtc.is_alive() {
                return None;
            }
            match self.rtc.poll_output() {
                Ok(Output::Timeout(t)) => return Some(t),
                Ok(Output::Transmit(t)) => {
                    let _ = self.socket.try_send_to(&t.contents, t.destination);
                }
                Ok(Output::Event(e)) => self.event(e),
                Err(_) => return None,
            }
        }
    }

    fn event(&mut self, event: Event) {
        match event {
            Event::Connected => self.counters.connected.store(true, Ordering::Relaxed),
            Event::KeyframeRequest(_) => {
                self.counters
                    .keyframe_requests
                    .fetch_add(1, Ordering::Relaxed);
            }
            Event::Closed => self
                .counters
                .closed_by_remote
                .store(true, Ordering::Relaxed),
            Event::RtpPacket(p) => {
                self.counters
                    .received_packets
                    .fetch_add(1, Ordering::Relaxed);
                self.counters
                    .received_bytes
                    .fetch_add(p.payload.len() as u64, Ordering::Relaxed);
                let pt = *p.header.payload_type;
                let ours = [
                    self.options.vp8_pt,
                    self.options.vp8_pt.wrapping_add(1),
                    self.options.opus_pt,
                ];
                if !ours.contains(&pt) {
                    self.counters.foreign_pt.fetch_add(1, Ordering::Relaxed);
                }
                if let Ok(mut s) = self.ssrcs.lock()
                    && !s.received.contains(&p.header.ssrc)
                {
                    s.received.push(p.header.ssrc);
                }
                if let Some(sent) = p.payload.get(..8) {
                    let mut ns = [0u8; 8];
                    ns.copy_from_slice(sent);
                    let sent = Duration::from_nanos(u64::from_be_bytes(ns));
                    let now = epoch().elapsed();
                    if let (Some(d), Ok(mut l)) = (now.checked_sub(sent), self.latency.lock()) {
                        l.record(d.as_micros() as u64);
                    }
                }
            }
            _ => {}
        }
    }

    fn send(&mut self, kind: MediaKind, bytes: usize) {
        let Some(mid) = self.mids.iter().find(|(_, k)| *k == kind).map(|(m, _)| *m) else {
            return;
        };
        let (pt, seq, clock): (Pt, &mut u64, u64) = match kind {
            MediaKind::Video => (self.options.vp8_pt.into(), &mut self.video_seq, 90_000),
            MediaKind::Audio => (self.options.opus_pt.into(), &mut self.audio_seq, 48_000),
        };
        *seq += 1;
        let seq_no = *seq;
        let now = Instant::now();
        let since = epoch().elapsed();
        let len = bytes.max(24);
        let mut payload = vec![0u8; len];
        payload[..8].copy_from_slice(&(since.as_nanos() as u64).to_be_bytes());
        payload[8..16].copy_from_slice(&seq_no.to_be_bytes());
        payload[16..24].copy_from_slice(&self.options.marker);
        let time = (since.as_micros() as u64 * clock / 1_000_000) as u32;
        let mut api = self.rtc.direct_api();
        let Some(tx) = api.stream_tx_by_mid(mid, None) else {
            return;
        };
        if kind == MediaKind::Video && seq_no == 1 {
            // The relay's NACK buffer size, so that the peers do not dominate the memory figure.
            tx.set_rtx_cache(400, Duration::from_secs(1), Some(0.15));
        }
        let ssrc = tx.ssrc();
        tx.write_rtp(
            RtpWrite::new(pt, seq_no.into(), time, now, payload)
                .marker(kind == MediaKind::Audio || seq_no % 4 == 0)
                .nackable(kind == MediaKind::Video),
        );
        self.counters.sent_packets.fetch_add(1, Ordering::Relaxed);
        self.counters
            .sent_bytes
            .fetch_add(len as u64, Ordering::Relaxed);
        if let Ok(mut s) = self.ssrcs.lock()
            && !s.sent.contains(&ssrc)
        {
            s.sent.push(ssrc);
        }
    }
}
