//! The media relay port: the server side of the session room's video call.
//!
//! Each browser opens one peer connection to the server (a *leg*); the relay forwards the RTP
//! of one leg to the other without decoding it and never stores it (ADR 0015). This module only
//! declares what the room may ask of a relay; `videoamt-adapters` implements it (feature
//! `media`).
//!
//! # Semantics
//!
//! - A *call* is one session ([`SessionId`]) with at most two legs, one per [`Party`]. It exists
//!   from its first [`MediaRelay::join`] or [`MediaRelay::set_admitted`] until
//!   [`MediaRelay::close`]; a call whose legs all left keeps its admission, so that a party
//!   who reconnects within the grace period gets media again without being admitted anew.
//! - **Nothing is forwarded before admission.** A new call is not admitted; packets that
//!   arrive before [`MediaRelay::set_admitted`]`(call, true)` are counted and dropped, and
//!   `set_admitted(call, false)` (the clerk sends the citizen back) stops forwarding again.
//! - Signaling is non-trickle: the offer carries the browser's candidates (it waited for ICE
//!   gathering), the answer carries the server's. A new offer from a party that has a leg
//!   replaces that leg (reconnect, ICE restart): the other party keeps its leg and receives
//!   the new leg's media on the same tracks, no renegotiation.
//! - Capacity is counted in calls that have at least one leg; past it `join` opening a new
//!   call's first leg fails with [`MediaError::Full`], and calls already running are not
//!   touched.
//!
//! [`control`] is the JSON-lines protocol over which `videoamt bench media` drives a relay in
//! another process through this same port.

pub mod control;

use std::fmt;
use std::pin::Pin;

use async_trait::async_trait;
use futures_core::Stream;
use serde::Serialize;

use crate::domain::SessionId;
use crate::domain::events::Party;

/// The room's view of a media relay. Cheap to share (`Arc<dyn MediaRelay>`).
#[async_trait]
pub trait MediaRelay: Send + Sync {
    /// Opens `party`'s leg of `call` from the browser's SDP offer, or replaces the leg that
    /// party already has, and returns the SDP answer. The leg is not connected yet: watch
    /// [`MediaEventKind::Connected`].
    async fn join(
        &self,
        call: SessionId,
        party: Party,
        offer_sdp: String,
    ) -> Result<String, MediaError>;

    /// Starts (`true`) or stops (`false`) forwarding in `call`. Admitting asks both senders
    /// for a keyframe, so that the pictures appear at once.
    async fn set_admitted(&self, call: SessionId, admitted: bool) -> Result<(), MediaError>;

    /// Closes `party`'s leg. The other party stops receiving its media at once (its
    /// incoming track goes silent and is reported as [`MediaEventKind::MediaStopped`]).
    /// Leaving a leg that does not exist is not an error.
    async fn leave(&self, call: SessionId, party: Party) -> Result<(), MediaError>;

    /// Closes both legs and forgets the call, admission included.
    async fn close(&self, call: SessionId) -> Result<(), MediaError>;

    /// Every event of every call, from now on. A slow subscriber misses events rather than
    /// slowing the relay down; `Quality` comes again every second.
    fn events(&self) -> MediaEvents;

    /// The counters of one call's legs, `None` for a call that does not exist.
    async fn stats(&self, call: SessionId) -> Result<Option<CallStats>, MediaError>;

    /// What the relay holds right now; all zero when no call exists.
    async fn counts(&self) -> Result<RelayCounts, MediaError>;
}

/// The event feed of [`MediaRelay::events`].
pub type MediaEvents = Pin<Box<dyn Stream<Item = MediaEvent> + Send>>;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MediaEvent {
    pub call: SessionId,
    pub party: Party,
    pub kind: MediaEventKind,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum MediaEventKind {
    /// ICE and DTLS are up: the leg can carry media.
    Connected,
    /// The leg is gone: it left, was replaced, timed out or failed. The room records
    /// `ConnectionLost` unless it closed the leg itself.
    Disconnected,
    /// No media arrived from this party for a while (its track is silent; default 1.5 s).
    MediaStopped,
    /// Media from this party arrives again.
    MediaResumed,
    /// Incoming media quality of this party's leg over the last second.
    Quality(Quality),
}

/// What the server saw of one party's incoming media (`party` of the event is the sender).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Quality {
    /// Packets received from this party since its leg opened.
    pub packets: u64,
    /// Packets the party's sender reports as lost toward the server, since the leg opened
    /// (sequence gaps that were not repaired).
    pub lost: u64,
    /// Interarrival jitter of the video stream, milliseconds.
    pub jitter_ms: Option<f64>,
    /// Round-trip time between the server and this party, milliseconds.
    pub rtt_ms: Option<f64>,
}

/// One call's counters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CallStats {
    pub admitted: bool,
    pub citizen: Option<LegStats>,
    pub clerk: Option<LegStats>,
}

/// One leg's counters since it opened. RTP only: packets the relay answers itself (RTCP,
/// retransmissions from its own buffer, STUN, DTLS) are not counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct LegStats {
    pub connected: bool,
    /// RTP packets received from this party.
    pub packets_received: u64,
    /// RTP payload bytes received from this party.
    pub bytes_received: u64,
    /// RTP packets of the other party written onto this leg.
    pub packets_forwarded: u64,
    pub bytes_forwarded: u64,
    /// Packets from this party dropped because the call was not admitted (or the other leg
    /// was missing).
    pub packets_dropped: u64,
}

/// What a relay holds; the leak checks compare it against zero.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct RelayCounts {
    pub calls: usize,
    pub legs: usize,
    /// Remote addresses in the demultiplexing table.
    pub routes: usize,
}

/// Why the relay refused. `Full` and `BadOffer` are the caller's to show; the others are
/// technical failures.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MediaError {
    /// The configured maximum number of concurrent calls is reached.
    #[error("the media relay is at its capacity of {max} calls")]
    Full { max: usize },
    /// The SDP offer cannot be used; the reason is technical, never personal data.
    #[error("unusable SDP offer: {0}")]
    BadOffer(String),
    /// The relay has stopped (shutdown or a failed socket).
    #[error("the media relay is not running")]
    Stopped,
    #[error("media relay: {0}")]
    Internal(String),
}

impl MediaError {
    /// The German sentence for the room, when there is one to show to people.
    pub fn german(&self) -> &'static str {
        match self {
            Self::Full { .. } => {
                "Der Videodienst ist gerade ausgelastet. Bitte versuchen Sie es in wenigen Minuten erneut."
            }
            Self::BadOffer(_) => {
                "Ihr Browser hat keine nutzbare Videoverbindung angeboten. Bitte prüfen Sie Kamera und Browser im Technik-Check."
            }
            Self::Stopped | Self::Internal(_) => {
                "Die Videoverbindung ist gestört. Bitte versuchen Sie es erneut."
            }
        }
    }
}

impl fmt::Display for RelayCounts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} calls, {} legs, {} routes",
            self.calls, self.legs, self.routes
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_read_in_german_without_technical_detail() {
        let full = MediaError::Full { max: 3 };
        assert!(full.german().contains("ausgelastet"));
        let bad = MediaError::BadOffer("no m-line".into());
        assert!(!bad.german().contains("m-line"));
    }

    #[test]
    fn events_serialize_with_a_kind_tag() {
        let e = MediaEventKind::Quality(Quality {
            packets: 10,
            lost: 1,
            jitter_ms: None,
            rtt_ms: Some(2.5),
        });
        let json = serde_json::to_value(&e).expect("plain data serializes");
        assert_eq!(json["kind"], "quality");
        assert_eq!(json["rtt_ms"], 2.5);
    }
}
