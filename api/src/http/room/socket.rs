//! The room's WebSocket: one per party and session, carrying the signaling of the call and
//! the room's events as JSON text messages.
//!
//! - **Admission on the server.** Before the clerk admits, a citizen's socket hears only its
//!   own state (waiting, its place). An offer or any room message it sends then is refused
//!   and the socket closed (4403).
//! - **Rate limit.** A token bucket per socket (10 messages/s, bursts of 30, as OpenTalk);
//!   past it, or after repeated malformed messages, the socket is closed (1008). Messages
//!   above 64 KiB close it too (1009, by the WebSocket layer).
//! - **Lost connections.** A socket that closes without its party leaving records
//!   `ConnectionLost`. Coming back within the grace period records `ConnectionRestored`;
//!   after it, a citizen is back in the waiting room (`ReconnectGraceExpired`), or leaves it
//!   when they had not been admitted yet.

use std::time::{Duration, Instant};

use axum::Extension;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Uri, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt as _;
use serde::Deserialize;
use serde_json::json;
use videoamt_core::domain::events::{Party, SessionOutcome};
use videoamt_core::domain::session::SessionCommand;
use videoamt_core::media::{MediaEvent, MediaEventKind};

use super::access::{self, Room};
use super::hub::Nudge;
use super::steer;
use crate::http::AppState;
use crate::http::error::Error;
use crate::http::server::ConnectionSlot;

/// The largest message a browser may send (an SDP offer is a few KiB).
const MAX_MESSAGE: usize = 64 * 1024;
/// Token bucket: refill per second and burst.
const RATE: f64 = 10.0;
const BURST: f64 = 30.0;
/// Malformed messages tolerated before the socket is closed.
const MAX_BAD: u32 = 3;
/// How often the server pings, and how long it waits for any sign of life.
const PING_EVERY: Duration = Duration::from_secs(10);
const DEAD_AFTER: Duration = Duration::from_secs(30);

/// Close codes: the application's own range (4000–4999).
const REFUSED: u16 = 4403;
const REPLACED: u16 = 4409;
const ENDED: u16 = 4410;
/// The clerk's staff session ended (deactivated, reset, logged out, another department).
const SIGNED_OUT: u16 = 4401;
const POLICY: u16 = 1008;

/// `GET /termin/{token}/raum/ws`: the citizen's socket.
pub(crate) async fn citizen(
    State(state): State<AppState>,
    Path(token): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    slot: Option<Extension<ConnectionSlot>>,
    ws: WebSocketUpgrade,
) -> Response {
    if !same_origin(&headers) {
        return Error::ForeignOrigin.into_response();
    }
    match access::citizen(&state, &token).await {
        Ok(room) => upgrade(state, room, ws, Caller::new(&uri, &headers, None), slot).await,
        Err(e) => e.into_response(),
    }
}

/// `GET /sachbearbeitung/termin/{id}/raum/ws`: the clerk's socket.
pub(crate) async fn clerk(
    State(state): State<AppState>,
    Path(id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    slot: Option<Extension<ConnectionSlot>>,
    ws: WebSocketUpgrade,
) -> Response {
    if !same_origin(&headers) {
        return Error::ForeignOrigin.into_response();
    }
    let cookie = crate::http::staff::session::cookie_of(&state, &headers).map(str::to_owned);
    match access::clerk(&state, &headers, &id).await {
        Ok(room) => upgrade(state, room, ws, Caller::new(&uri, &headers, cookie), slot).await,
        Err(e) => e.into_response(),
    }
}

/// Who opened a socket, as far as carrying it to another server needs.
struct Caller {
    /// The socket's path, the same on every server.
    path: String,
    /// The request's `Cookie` header, for the clerk's sign-in there.
    cookie_header: Option<String>,
    /// The clerk's session cookie, checked again as the socket goes on.
    staff_cookie: Option<String>,
    /// Another server carried this socket here (ADR 0028).
    steered: bool,
}

impl Caller {
    fn new(uri: &Uri, headers: &HeaderMap, staff_cookie: Option<String>) -> Self {
        Self {
            path: uri
                .path_and_query()
                .map_or_else(|| uri.path().to_owned(), |p| p.as_str().to_owned()),
            cookie_header: headers
                .get(header::COOKIE)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
            staff_cookie,
            steered: headers.contains_key(steer::HEADER),
        }
    }
}

/// A browser's WebSocket handshake always carries `Origin`; it must name this host, so that
/// no other site can open a socket with the clerk's cookie.
fn same_origin(headers: &HeaderMap) -> bool {
    let (Some(origin), Some(host)) = (
        headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()),
        headers.get(header::HOST).and_then(|v| v.to_str().ok()),
    ) else {
        // Not a browser (no Origin): nothing to protect against; the link or cookie decides.
        return headers.get(header::ORIGIN).is_none();
    };
    origin
        .split_once("://")
        .is_some_and(|(_, rest)| rest.eq_ignore_ascii_case(host))
}

/// `slot`: the connection's place under the server's cap, held as long as the socket is open.
/// A room that another server runs gets the socket carried there (ADR 0028).
async fn upgrade(
    state: AppState,
    room: Room,
    ws: WebSocketUpgrade,
    caller: Caller,
    slot: Option<Extension<ConnectionSlot>>,
) -> Response {
    if room.party == Party::Citizen && room.state.citizen_removed {
        return Error::Refused(videoamt_core::domain::DomainError::RemovedFromSession)
            .into_response();
    }
    if room.state.ended.is_some() {
        return Error::Refused(videoamt_core::domain::DomainError::SessionEnded).into_response();
    }
    let owner = steer::owner(&state, room.session, caller.steered).await;
    // A frame is read whole before its message is measured: bound both.
    let ws = ws.max_message_size(MAX_MESSAGE).max_frame_size(MAX_MESSAGE);
    match owner {
        steer::Owner::Here => ws.on_upgrade(move |socket| async move {
            let session = room.session;
            let party = room.party;
            if let Err(e) = run(&state, room, socket, caller.staff_cookie).await {
                tracing::warn!(%session, ?party, error = %e, "room socket ended with an error");
            }
            drop(slot);
        }),
        steer::Owner::There(node) => ws.on_upgrade(move |socket| async move {
            let cookie = caller.cookie_header.as_deref();
            steer::carry(
                room.session,
                socket,
                &node,
                &caller.path,
                cookie,
                MAX_MESSAGE,
            )
            .await;
            drop(slot);
        }),
    }
    .into_response()
}

/// What a browser may send.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case", deny_unknown_fields)]
enum Incoming {
    /// The browser's SDP offer, with its candidates (non-trickle).
    Offer {
        sdp: String,
    },
    /// What the browser receives, for the other side's quality display.
    Quality {
        packets: u64,
        lost: u64,
        rtt_ms: Option<f64>,
    },
    /// The party muted or unmuted camera or microphone.
    Media {
        camera: bool,
        microphone: bool,
    },
    /// A form field as typed, with the field's version the page showed.
    Field {
        form: uuid::Uuid,
        field: String,
        value: String,
        based_on: u64,
    },
    /// The party is in this field of a form now (`None`: in none).
    Focus {
        form: uuid::Uuid,
        field: Option<String>,
    },
    Ping,
}

/// Where a party stands, as far as the socket tells the browser.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Phase {
    Waiting,
    Admitted,
    Removed,
    Ended(SessionOutcome),
}

fn phase(room: &Room) -> Phase {
    if let Some(outcome) = room.state.ended {
        Phase::Ended(outcome)
    } else if room.party == Party::Citizen && room.state.citizen_removed {
        Phase::Removed
    } else if room.state.admitted {
        Phase::Admitted
    } else {
        Phase::Waiting
    }
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn new() -> Self {
        Self {
            tokens: BURST,
            at: Instant::now(),
        }
    }

    fn take(&mut self) -> bool {
        let now = Instant::now();
        self.tokens = (self.tokens + now.duration_since(self.at).as_secs_f64() * RATE).min(BURST);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

fn text(value: &serde_json::Value) -> Message {
    Message::Text(Utf8Bytes::from(value.to_string()))
}

/// Sends the close frame and waits (briefly) for the browser's, so that the connection ends
/// in order and the browser reads the code instead of a reset.
async fn close(socket: &mut WebSocket, code: u16, reason: &str) {
    let sent = socket
        .send(Message::Close(Some(CloseFrame {
            code,
            reason: Utf8Bytes::from(reason.to_owned()),
        })))
        .await;
    if sent.is_err() {
        return;
    }
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        while let Some(Ok(message)) = socket.recv().await {
            if matches!(message, Message::Close(_)) {
                break;
            }
        }
    })
    .await;
}

fn other(party: Party) -> Party {
    match party {
        Party::Citizen => Party::Clerk,
        Party::Clerk => Party::Citizen,
    }
}

/// The citizen's place in the department's waiting room (1 is next), if listed.
async fn place(state: &AppState, room: &Room) -> Option<usize> {
    let opened = room.state.opened.as_ref()?;
    let waiting = videoamt_projections::waiting_room::waiting(
        state.reads.as_ref(),
        room.tenant.id.as_str(),
        opened.department.as_str(),
    )
    .await
    .ok()?;
    let session = room.session.to_string();
    waiting
        .iter()
        .position(|w| w.session == session)
        .map(|i| i + 1)
}

/// The state message for the browser. A waiting citizen hears only its own state.
async fn state_message(state: &AppState, room: &Room) -> serde_json::Value {
    match (phase(room), room.party) {
        (Phase::Waiting, Party::Citizen) => json!({
            "type": "waiting",
            "place": place(state, room).await,
        }),
        (Phase::Removed, _) => json!({
            "type": "removed",
            "title": "Aus der Sitzung entfernt",
            "detail": "Die Sachbearbeitung hat Sie aus dieser Videositzung entfernt. \
                       Bitte wenden Sie sich an das Amt.",
        }),
        (Phase::Ended(outcome), _) => json!({
            "type": "ended",
            "outcome": outcome,
        }),
        (phase, party) => json!({
            "type": "room",
            "admitted": phase == Phase::Admitted,
            // What the browser's next peer connection uses; given only to a party that may
            // open one now.
            "ice": (phase == Phase::Admitted || party == Party::Clerk).then(|| ice(state)),
            "citizen": {
                "present": room.state.citizen_present,
                "connection_lost": room.state.citizen_connection_lost,
            },
            "clerk_present": room.state.clerk_present,
            // The script fetches the list again when this changes.
            "documents": room.state.documents.len(),
            // And the forms' panel when this does.
            "forms": room.state.forms.len(),
            // And the payment panel when this changes.
            "payment": super::payment::summary(state, room).await,
        }),
    }
}

/// The browser's `RTCConfiguration` for the relay: no servers (the relay answers with its own
/// address), or the TURN servers with fresh credentials.
fn ice(state: &AppState) -> serde_json::Value {
    match &state.turn {
        None => json!({ "servers": [], "policy": "all" }),
        Some(turn) => json!({
            "servers": [turn.credentials(state.now())],
            "policy": if turn.relay_only() { "relay" } else { "all" },
        }),
    }
}

/// Records `command`, ignoring refusals that only say it is no longer needed.
async fn record(state: &AppState, room: &Room, command: SessionCommand) {
    if let Err(e) = room.act(state, command).await {
        match e {
            Error::Refused(_) => tracing::debug!(refusal = %e.problem().title, "room step refused"),
            e => tracing::warn!(session = %room.session, error = %e.problem().title,
                "room step not recorded"),
        }
    }
}

/// The party arrives: it joins, or comes back from a lost connection (in time, or too late).
async fn arrive(state: &AppState, room: &Room) {
    let session = room.session;
    let party = room.party;
    let lost = match party {
        Party::Citizen => room.state.citizen_connection_lost,
        Party::Clerk => room.lost_since.is_some(),
    };
    if lost {
        let grace = time::Duration::try_from(state.system.settings.reconnect_grace())
            .unwrap_or(time::Duration::MINUTE * 2);
        let too_late = room.lost_since.is_some_and(|at| state.now() - at > grace);
        if too_late {
            // The server was not running when the grace period ended (a timer is kept in
            // memory only); the log's time of the loss decides.
            record(
                state,
                room,
                SessionCommand::ExpireReconnectGrace { session, party },
            )
            .await;
        } else {
            record(
                state,
                room,
                SessionCommand::RestoreConnection { session, party },
            )
            .await;
        }
    }
    record(state, room, SessionCommand::Join { session, party }).await;
    state.hub.refresh(session);
}

/// The party's socket is gone without a replacement: the connection is lost; after the grace
/// period a citizen who has not come back returns to the waiting room (or leaves it).
async fn depart(state: &AppState, room: &Room) {
    let session = room.session;
    let party = room.party;
    record(
        state,
        room,
        SessionCommand::LoseConnection { session, party },
    )
    .await;
    if let Some(media) = &state.media {
        let _ = media.leave(session, party).await;
    }
    state.hub.refresh(session);
    let state = state.clone();
    let room = room.clone();
    tokio::spawn(async move {
        tokio::time::sleep(state.system.settings.reconnect_grace()).await;
        if state.hub.seated(session, party) {
            return;
        }
        let Ok(room) = room.refreshed(&state).await else {
            return;
        };
        if room.lost_since.is_none() || room.state.ended.is_some() {
            return;
        }
        if party == Party::Citizen && !room.state.admitted {
            record(&state, &room, SessionCommand::Leave { session, party }).await;
        } else {
            record(
                &state,
                &room,
                SessionCommand::ExpireReconnectGrace { session, party },
            )
            .await;
        }
        if let (Some(media), Party::Citizen) = (&state.media, party) {
            let _ = media.set_admitted(session, false).await;
        }
        state.hub.refresh(session);
    });
}

/// Keeps the relay's admission in step with the log's.
async fn follow_admission(state: &AppState, room: &Room) {
    if let Some(media) = &state.media {
        if room.state.ended.is_some() {
            // The call is over: the relay forgets it, admission and legs.
            if let Err(e) = media.close(room.session).await {
                tracing::warn!(session = %room.session, error = %e, "call not closed");
            }
            return;
        }
        let admitted = room.state.admitted && room.state.ended.is_none();
        if let Err(e) = media.set_admitted(room.session, admitted).await {
            tracing::warn!(session = %room.session, error = %e, "media admission not changed");
        }
        if !admitted && room.party == Party::Citizen {
            let _ = media.leave(room.session, Party::Citizen).await;
        }
    }
}

/// Whether the clerk of `cookie` may still be in `room`: the staff session, read against the
/// account's stream as every request is (ADR 0021), is a clerk's; when `thorough`, also one of
/// the appointment's department. A store that does not answer is no reason to drop a call.
async fn clerk_still_in(state: &AppState, cookie: &str, room: &Room, thorough: bool) -> bool {
    match crate::http::staff::session::session(state, cookie).await {
        Ok(Some(staff)) if staff.role == videoamt_core::domain::account::StaffRole::Clerk => {
            !thorough
                || access::clerk_of(state, &staff, &room.appointment.to_string())
                    .await
                    .is_ok()
        }
        Ok(_) => false,
        Err(_) => true,
    }
}

/// Tells the clerk that their sign-in ended, and closes.
async fn signed_out(socket: &mut WebSocket, session: videoamt_core::domain::SessionId) {
    tracing::info!(%session, "the clerk's staff session ended; room socket closed");
    let _ = socket
        .send(text(&json!({
            "type": "refused",
            "title": "Anmeldung beendet",
            "detail": "Ihre Anmeldung ist nicht mehr gültig. Bitte melden Sie sich erneut an.",
        })))
        .await;
    close(socket, SIGNED_OUT, "Anmeldung beendet").await;
}

async fn run(
    state: &AppState,
    room: Room,
    mut socket: WebSocket,
    staff_cookie: Option<String>,
) -> Result<(), axum::Error> {
    let session = room.session;
    let party = room.party;
    let mut seat = state.hub.take(session, party);
    steer::renew(state, session).await;
    arrive(state, &room).await;
    let mut room = match room.clone().refreshed(state).await {
        Ok(fresh) => fresh,
        Err(_) => room,
    };
    let mut shown = state_message(state, &room).await;
    socket.send(text(&shown)).await?;
    let mut current = phase(&room);
    if matches!(current, Phase::Removed | Phase::Ended(_)) {
        close(&mut socket, ENDED, "Sitzung beendet").await;
        state.hub.leave(session, party, seat.generation);
        if !state.hub.occupied(session) {
            steer::release(state, session).await;
        }
        return Ok(());
    }
    follow_admission(state, &room).await;

    let mut live = state.live.subscribe(&state.store, &state.reads);
    let mut media = state.media.as_ref().map(|m| m.events());
    let mut bucket = Bucket::new();
    let mut bad = 0u32;
    let mut ping = tokio::time::interval(PING_EVERY);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut heard = Instant::now();
    // Whether the loss of this socket means a lost connection (not a replacement, a refusal
    // or the end).
    let mut lost = true;

    loop {
        let mut reread = false;
        tokio::select! {
            incoming = socket.recv() => {
                let Some(Ok(message)) = incoming else { break };
                heard = Instant::now();
                let body = match message {
                    Message::Text(body) => body,
                    Message::Close(_) => break,
                    Message::Ping(_) | Message::Pong(_) => continue,
                    Message::Binary(_) => {
                        close(&mut socket, 1003, "Nur Textnachrichten").await;
                        break;
                    }
                };
                if !bucket.take() {
                    tracing::warn!(%session, ?party, "room socket over its message rate; closed");
                    let _ = socket.send(text(&json!({
                        "type": "error",
                        "title": "Zu viele Nachrichten",
                        "detail": "Die Verbindung wurde getrennt. Bitte laden Sie die Seite neu.",
                    }))).await;
                    close(&mut socket, POLICY, "Zu viele Nachrichten").await;
                    break;
                }
                let parsed: Result<Incoming, _> = serde_json::from_str(body.as_str());
                let Ok(parsed) = parsed else {
                    bad += 1;
                    let _ = socket.send(text(&json!({
                        "type": "error",
                        "title": "Unbekannte Nachricht",
                    }))).await;
                    if bad >= MAX_BAD {
                        tracing::warn!(%session, ?party, "room socket sent malformed messages; closed");
                        close(&mut socket, POLICY, "Unbekannte Nachrichten").await;
                        break;
                    }
                    continue;
                };
                if matches!(parsed, Incoming::Ping) {
                    socket.send(text(&json!({"type": "pong"}))).await?;
                    continue;
                }
                // A clerk acts only while signed in: a deactivation ends the socket with its
                // next message, as it ends the session with its next request.
                if let Some(cookie) = &staff_cookie
                    && !clerk_still_in(state, cookie, &room, false).await
                {
                    // Lost, as far as the citizen can tell: the grace period runs.
                    signed_out(&mut socket, session).await;
                    break;
                }
                // Everything else is the call or the room: not before admission.
                if party == Party::Citizen && current != Phase::Admitted {
                    tracing::warn!(%session, "room message before admission refused; closed");
                    let _ = socket.send(text(&json!({
                        "type": "refused",
                        "title": "Noch nicht eingelassen",
                        "detail": "Die Sachbearbeitung holt Sie aus dem Warteraum herein. \
                                   Erst dann beginnt die Videoverbindung.",
                    }))).await;
                    close(&mut socket, REFUSED, "Noch nicht eingelassen").await;
                    break;
                }
                match parsed {
                    Incoming::Offer { sdp } => {
                        let answer = match &state.media {
                            None => json!({
                                "type": "error",
                                "title": "Videodienst nicht verfügbar",
                                "detail": "Der Videodienst läuft auf diesem Server nicht.",
                            }),
                            Some(relay) => match relay.join(session, party, sdp).await {
                                Ok(sdp) => json!({"type": "answer", "sdp": sdp}),
                                Err(e) => {
                                    tracing::warn!(%session, ?party, error = %e, "offer not taken");
                                    json!({"type": "error", "title": "Keine Videoverbindung",
                                        "detail": e.german()})
                                }
                            },
                        };
                        socket.send(text(&answer)).await?;
                        if current == Phase::Admitted {
                            follow_admission(state, &room).await;
                        }
                    }
                    Incoming::Quality { packets, lost: lost_packets, rtt_ms } => {
                        state.hub.tell(session, other(party), Nudge::Send(json!({
                            "type": "peer-quality",
                            "packets": packets,
                            "lost": lost_packets,
                            "rtt_ms": rtt_ms,
                        })));
                    }
                    Incoming::Media { camera, microphone } => {
                        state.hub.tell(session, other(party), Nudge::Send(json!({
                            "type": "peer-media",
                            "camera": camera,
                            "microphone": microphone,
                        })));
                    }
                    Incoming::Field { form, field, value, based_on } => {
                        let form = videoamt_core::domain::FormId(form);
                        let changed =
                            super::forms::change(state, &room, form, &field, &value, Some(based_on))
                                .await;
                        if let Err(e) = changed {
                            let problem = e.problem();
                            socket.send(text(&json!({
                                "type": "field-error",
                                "form": form.0,
                                "field": field,
                                "title": problem.title,
                                "detail": problem.detail,
                            }))).await?;
                        }
                    }
                    Incoming::Focus { form, field } => {
                        // Where the other side types: for the eye only, never recorded.
                        state.hub.tell(session, other(party), Nudge::Send(json!({
                            "type": "peer-focus",
                            "form": form,
                            "field": field,
                        })));
                    }
                    Incoming::Ping => {}
                }
            }
            nudge = seat.nudges.recv() => match nudge {
                Some(Nudge::Send(message)) => {
                    // The other side's data reaches a citizen only inside the room.
                    if party == Party::Clerk || current == Phase::Admitted {
                        socket.send(text(&message)).await?;
                    }
                }
                Some(Nudge::Refresh) => reread = true,
                Some(Nudge::Replaced) | None => {
                    lost = false;
                    let _ = socket.send(text(&json!({
                        "type": "replaced",
                        "title": "In einem anderen Fenster geöffnet",
                        "detail": "Die Videoberatung läuft jetzt in einem anderen Fenster oder \
                                   auf einem anderen Gerät weiter.",
                    }))).await;
                    close(&mut socket, REPLACED, "Anderswo geöffnet").await;
                    break;
                }
            },
            changed = live.changed() => {
                if changed.is_err() {
                    live = state.live.subscribe(&state.store, &state.reads);
                }
                reread = true;
            }
            event = next_media(&mut media) => {
                if let Some(MediaEvent { call, party: from, kind }) = event
                    && call == session && from != party && current == Phase::Admitted {
                        let kind = match kind {
                            MediaEventKind::Connected => Some("connected"),
                            MediaEventKind::Disconnected => Some("disconnected"),
                            MediaEventKind::MediaStopped => Some("stopped"),
                            MediaEventKind::MediaResumed => Some("resumed"),
                            MediaEventKind::Quality(_) => None,
                        };
                        if let Some(kind) = kind {
                            socket.send(text(&json!({"type": "peer-stream", "state": kind}))).await?;
                        }
                    }
            }
            _ = ping.tick() => {
                if heard.elapsed() > DEAD_AFTER {
                    break;
                }
                // A clerk who only listens is checked too, department included.
                if let Some(cookie) = &staff_cookie
                    && !clerk_still_in(state, cookie, &room, true).await
                {
                    // Lost, as far as the citizen can tell: the grace period runs.
                    signed_out(&mut socket, session).await;
                    break;
                }
                socket.send(Message::Ping(Default::default())).await?;
                steer::renew(state, session).await;
            }
        }
        if reread {
            // Nothing more of the room for a clerk whose sign-in ended.
            if let Some(cookie) = &staff_cookie
                && !clerk_still_in(state, cookie, &room, false).await
            {
                signed_out(&mut socket, session).await;
                break;
            }
            let Ok(fresh) = room.clone().refreshed(state).await else {
                continue;
            };
            room = fresh;
            let message = state_message(state, &room).await;
            let now = phase(&room);
            if message != shown {
                socket.send(text(&message)).await?;
                shown = message;
            }
            if now != current {
                current = now;
                follow_admission(state, &room).await;
            }
            if matches!(current, Phase::Removed | Phase::Ended(_)) {
                lost = false;
                close(&mut socket, ENDED, "Sitzung beendet").await;
                break;
            }
        }
    }

    let own = state.hub.leave(session, party, seat.generation);
    if own && lost {
        depart(state, &room).await;
    } else if let (Some(relay), true) = (&state.media, own) {
        let _ = relay.leave(session, party).await;
    }
    if !state.hub.occupied(session) {
        steer::release(state, session).await;
    }
    Ok(())
}

/// The next media event, or never when no relay runs.
async fn next_media(events: &mut Option<videoamt_core::media::MediaEvents>) -> Option<MediaEvent> {
    match events {
        Some(events) => events.next().await,
        None => std::future::pending().await,
    }
}
