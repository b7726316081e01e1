//! The session room over a real socket: the pre-call check, the waiting room enforced on the
//! server, admission and its reversal, removal, one tab per party, the rate limit, and lost
//! connections within and past the grace period.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use futures::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;

use crate::router::Api;
use crate::staff::{Booked, book, browse, session, staffed};

pub(crate) type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Serves the app on a loopback port, through the server's own accept loop; the projections
/// are caught up by the tests themselves.
pub(crate) async fn serve(api: &Api) -> SocketAddr {
    crate::edge::serve(api).await
}

pub(crate) async fn open(
    addr: SocketAddr,
    path: &str,
    cookie: Option<&str>,
) -> Result<Socket, StatusCode> {
    let mut request = format!("ws://{addr}{path}")
        .into_client_request()
        .expect("request");
    request
        .headers_mut()
        .insert("origin", format!("http://{addr}").parse().expect("header"));
    if let Some(c) = cookie {
        request
            .headers_mut()
            .insert("cookie", c.parse().expect("header"));
    }
    match tokio_tungstenite::connect_async(request).await {
        Ok((socket, _)) => Ok(socket),
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => Err(response.status()),
        Err(e) => panic!("socket failed: {e}"),
    }
}

/// The next JSON message, skipping pings; `None` when the socket closed (with its code).
pub(crate) async fn next(socket: &mut Socket) -> Result<Value, Option<u16>> {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(20), socket.next())
            .await
            .expect("a message in time");
        match message {
            Some(Ok(Message::Text(t))) => return Ok(serde_json::from_str(&t).expect("json")),
            Some(Ok(Message::Close(frame))) => return Err(frame.map(|f| u16::from(f.code))),
            Some(Ok(_)) => continue,
            Some(Err(_)) | None => return Err(None),
        }
    }
}

/// Waits for a message of `kind`, skipping others.
pub(crate) async fn until(socket: &mut Socket, kind: &str) -> Value {
    loop {
        let m = next(socket).await.expect("open");
        if m["type"] == kind {
            return m;
        }
    }
}

/// Waits for the socket to close; its close code.
async fn closed(socket: &mut Socket) -> Option<u16> {
    loop {
        if let Err(code) = next(socket).await {
            return code;
        }
    }
}

async fn events(api: &Api, after: u64) -> Vec<String> {
    api.state
        .store
        .read_all(after, 1_000)
        .await
        .expect("read")
        .iter()
        .map(|e| e.event_type.as_str().to_owned())
        .collect()
}

/// An appointment whose citizen accepted the privacy notice and waits, and a clerk of its
/// department logged in.
async fn waiting(api: &Api, n: usize) -> (Booked, String) {
    let booked = book(api, n).await;
    let (status, _, body) = browse(
        api,
        "POST",
        &format!("/termin/{}/warteraum", booked.token),
        None,
        Some("privacy_accepted=1"),
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
    let clerk = session(api, "clerk.a").await;
    (booked, clerk)
}

async fn clerk_posts(api: &Api, clerk: &str, booked: &Booked, action: &str) {
    let (status, _, body) = browse(
        api,
        "POST",
        &format!(
            "/sachbearbeitung/termin/{}/raum/{action}",
            booked.appointment
        ),
        Some(clerk),
        Some(""),
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{action}: {body}");
}

#[tokio::test]
async fn a_waiting_citizen_hears_only_its_place_and_is_refused_for_a_call_message() {
    let api = staffed().await;
    let (booked, _clerk) = waiting(&api, 0).await;
    api.fold().await;
    let addr = serve(&api).await;
    let mut citizen = open(addr, &format!("/termin/{}/raum/ws", booked.token), None)
        .await
        .expect("the citizen's socket opens");
    let first = next(&mut citizen).await.expect("a state");
    assert_eq!(first, json!({"type": "waiting", "place": 1}));
    let before = api.last_position().await;
    citizen
        .send(Message::Text(
            json!({"type": "offer", "sdp": "v=0"}).to_string().into(),
        ))
        .await
        .expect("sent");
    let refused = until(&mut citizen, "refused").await;
    assert_eq!(refused["title"], "Noch nicht eingelassen");
    assert_eq!(closed(&mut citizen).await, Some(4403));
    // The refused socket's end is a lost connection of a waiting citizen: nothing else.
    let after = events(&api, before).await;
    assert!(
        after.iter().all(|e| e == "ConnectionLost"),
        "no call, no room data: {after:?}"
    );

    // A forged link and a foreign origin get no socket at all.
    assert_eq!(
        open(addr, "/termin/gefaelscht/raum/ws", None).await.err(),
        Some(StatusCode::NOT_FOUND)
    );
    let mut request = format!("ws://{addr}/termin/{}/raum/ws", booked.token)
        .into_client_request()
        .expect("request");
    request.headers_mut().insert(
        "origin",
        "http://elsewhere.example".parse().expect("header"),
    );
    match tokio_tungstenite::connect_async(request).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => {
            assert_eq!(r.status(), StatusCode::FORBIDDEN);
        }
        other => panic!("a foreign origin must be refused: {:?}", other.map(|_| ())),
    }
}

#[tokio::test]
async fn the_clerk_admits_sends_back_and_removes_and_the_citizen_sees_each_at_once() {
    let api = staffed().await;
    let (booked, clerk) = waiting(&api, 1).await;
    let addr = serve(&api).await;
    let mut citizen = open(addr, &format!("/termin/{}/raum/ws", booked.token), None)
        .await
        .expect("opens");
    assert_eq!(until(&mut citizen, "waiting").await["type"], "waiting");
    let mut clerk_socket = open(
        addr,
        &format!("/sachbearbeitung/termin/{}/raum/ws", booked.appointment),
        Some(&clerk),
    )
    .await
    .expect("the clerk's socket opens");
    let seen = until(&mut clerk_socket, "room").await;
    assert_eq!(seen["admitted"], false);
    assert_eq!(seen["citizen"]["present"], true);

    clerk_posts(&api, &clerk, &booked, "einlassen").await;
    let admitted = until(&mut citizen, "room").await;
    assert_eq!(admitted["admitted"], true);

    // Room data flows between the two now: the clerk's quality reaches the citizen.
    clerk_socket
        .send(Message::Text(
            json!({"type": "quality", "packets": 10, "lost": 0, "rtt_ms": 1.5})
                .to_string()
                .into(),
        ))
        .await
        .expect("sent");
    let quality = until(&mut citizen, "peer-quality").await;
    assert_eq!(quality["packets"], 10);

    clerk_posts(&api, &clerk, &booked, "zurueckschicken").await;
    assert_eq!(until(&mut citizen, "waiting").await["type"], "waiting");

    clerk_posts(&api, &clerk, &booked, "entfernen").await;
    let removed = until(&mut citizen, "removed").await;
    assert_eq!(removed["title"], "Aus der Sitzung entfernt");
    assert_eq!(closed(&mut citizen).await, Some(4410));
    // The link no longer enters: the socket and the page refuse.
    assert_eq!(
        open(addr, &format!("/termin/{}/raum/ws", booked.token), None)
            .await
            .err(),
        Some(StatusCode::FORBIDDEN)
    );
    let (status, _, page) = browse(
        &api,
        "GET",
        &format!("/termin/{}/warteraum", booked.token),
        None,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(page.contains("Aus der Sitzung entfernt"), "{page}");

    let log = events(&api, 0).await;
    let room: Vec<&String> = log
        .iter()
        .filter(|e| {
            matches!(
                e.as_str(),
                "AdmittedFromWaitingRoom" | "SentBackToWaitingRoom" | "RemovedFromSession"
            )
        })
        .collect();
    assert_eq!(
        room,
        [
            "AdmittedFromWaitingRoom",
            "SentBackToWaitingRoom",
            "RemovedFromSession"
        ]
    );
}

#[tokio::test]
async fn a_second_tab_takes_over_and_the_first_closes_without_a_lost_connection() {
    let api = staffed().await;
    let (booked, _) = waiting(&api, 2).await;
    let addr = serve(&api).await;
    let path = format!("/termin/{}/raum/ws", booked.token);
    let mut first = open(addr, &path, None).await.expect("opens");
    until(&mut first, "waiting").await;
    let before = api.last_position().await;
    let mut second = open(addr, &path, None).await.expect("opens");
    let replaced = until(&mut first, "replaced").await;
    assert_eq!(replaced["title"], "In einem anderen Fenster geöffnet");
    assert_eq!(closed(&mut first).await, Some(4409));
    until(&mut second, "waiting").await;
    assert!(
        !events(&api, before)
            .await
            .contains(&"ConnectionLost".to_owned()),
        "the newest tab wins without a lost connection"
    );
}

#[tokio::test]
async fn a_socket_over_its_message_rate_or_sending_nonsense_is_closed() {
    let api = staffed().await;
    let (booked, _) = waiting(&api, 3).await;
    let addr = serve(&api).await;
    let path = format!("/termin/{}/raum/ws", booked.token);
    let mut socket = open(addr, &path, None).await.expect("opens");
    until(&mut socket, "waiting").await;
    for _ in 0..40 {
        if socket
            .send(Message::Text(json!({"type": "ping"}).to_string().into()))
            .await
            .is_err()
        {
            break;
        }
    }
    // The pongs, then the refusal and the close; the client may still be writing when the
    // server closes, so the close frame can be lost to a reset, but never the end.
    let mut titles = Vec::new();
    let code = loop {
        match next(&mut socket).await {
            Ok(m) if m["type"] == "error" => titles.push(m["title"].clone()),
            Ok(_) => {}
            Err(code) => break code,
        }
    };
    assert!(
        titles.contains(&json!("Zu viele Nachrichten")) || code == Some(1008),
        "{titles:?} {code:?}"
    );
    assert!(matches!(code, Some(1008) | None), "{code:?}");

    let mut socket = open(addr, &path, None).await.expect("opens again");
    until(&mut socket, "waiting").await;
    for _ in 0..3 {
        socket
            .send(Message::Text("{\"type\":\"hack\"}".into()))
            .await
            .expect("sent");
    }
    assert_eq!(closed(&mut socket).await, Some(1008));
}

#[tokio::test]
async fn a_message_over_64_kib_closes_the_socket_unread() {
    let api = staffed().await;
    let (booked, _) = waiting(&api, 4).await;
    let addr = serve(&api).await;
    let path = format!("/termin/{}/raum/ws", booked.token);
    let mut socket = open(addr, &path, None).await.expect("opens");
    until(&mut socket, "waiting").await;
    // Well-formed JSON the room would answer as malformed, were it read at all.
    let big = json!({"type": "ping", "pad": "x".repeat(100 * 1024)}).to_string();
    let _ = socket.send(Message::Text(big.into())).await;
    match next(&mut socket).await {
        Err(code) => assert!(matches!(code, Some(1009) | None), "{code:?}"),
        Ok(answer) => panic!("the message was read: {answer}"),
    }
}

#[tokio::test]
async fn a_lost_connection_comes_back_in_time_or_waits_again_after_the_grace() {
    let mut api = staffed().await;
    let (booked, clerk) = waiting(&api, 4).await;
    clerk_posts(&api, &clerk, &booked, "einlassen").await;
    let addr = serve(&api).await;
    let path = format!("/termin/{}/raum/ws", booked.token);

    // Within the grace period (the default two minutes): restored, still admitted.
    let mut socket = open(addr, &path, None).await.expect("opens");
    assert_eq!(until(&mut socket, "room").await["admitted"], true);
    let before = api.last_position().await;
    socket.close(None).await.expect("closed");
    drop(socket);
    wait_for(&api, before, "ConnectionLost").await;
    let mut socket = open(addr, &path, None).await.expect("opens again");
    assert_eq!(until(&mut socket, "room").await["admitted"], true);
    wait_for(&api, before, "ConnectionRestored").await;
    socket.close(None).await.expect("closed");
    drop(socket);

    // The server restarts with no grace while the citizen is away: coming back later puts
    // them in the waiting room (the log's time of the loss decides), to be admitted again.
    let away = api.last_position().await;
    wait_for(&api, away - 1, "ConnectionLost").await;
    let mut settings = (*api.state.system.settings).clone();
    settings.reconnect_grace_seconds = 0;
    api.state.system.settings = Arc::new(settings);
    api.now.fetch_add(5, std::sync::atomic::Ordering::SeqCst);
    let addr = serve(&api).await;
    let mut socket = open(addr, &path, None).await.expect("opens");
    assert_eq!(until(&mut socket, "waiting").await["type"], "waiting");
    wait_for(&api, away, "ReconnectGraceExpired").await;
    clerk_posts(&api, &clerk, &booked, "einlassen").await;
    assert_eq!(until(&mut socket, "room").await["admitted"], true);

    // Gone while the server runs: its timer puts them back when the grace is over.
    let again = api.last_position().await;
    socket.close(None).await.expect("closed");
    drop(socket);
    wait_for(&api, again, "ReconnectGraceExpired").await;
    let kinds = events(&api, again).await;
    let lost = kinds.iter().position(|e| e == "ConnectionLost");
    let expired = kinds.iter().position(|e| e == "ReconnectGraceExpired");
    assert!(lost < expired, "{kinds:?}");
}

/// Waits until the log after `after` holds an event of `kind`.
async fn wait_for(api: &Api, after: u64, kind: &str) {
    for _ in 0..200 {
        if events(api, after).await.iter().any(|e| e == kind) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no {kind} after {after}: {:?}", events(api, after).await);
}

#[tokio::test]
async fn the_pre_call_check_measures_the_upload_and_keeps_only_the_result() {
    let api = staffed().await;
    let booked = book(&api, 5).await;
    let (status, _, page) = browse(
        &api,
        "GET",
        &format!("/termin/{}/technik", booked.token),
        None,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("Technik-Check") && page.contains("technik.js"));
    assert!(
        page.contains("data-min-kbit=\"2000\""),
        "Stuttgart asks 2 Mbit/s"
    );

    let addr = serve(&api).await.to_string();
    let filler = "a".repeat(2 << 20);
    let path = |query: &str| format!("/termin/{}/technik/messung?{query}", booked.token);
    let response = crate::http::post(
        &addr,
        &path("browser=1&geraete=1"),
        "application/octet-stream",
        &filler,
    )
    .await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.body);
    let measured: Value = serde_json::from_str(&response.body).expect("json");
    assert_eq!(measured["passed"], true, "{measured}");
    assert!(measured["upload_kbit_s"].as_u64().expect("a figure") >= 2_000);
    let response = crate::http::post(
        &addr,
        &path("browser=1&geraete=0"),
        "application/octet-stream",
        &filler,
    )
    .await;
    let measured: Value = serde_json::from_str(&response.body).expect("json");
    assert_eq!(measured["passed"], false, "no camera, no pass: {measured}");

    let recorded = api
        .state
        .store
        .read_all(0, 1_000)
        .await
        .expect("read")
        .into_iter()
        .filter(|e| e.event_type.as_str() == "PreCallCheckRecorded")
        .map(|e| e.payload.parse::<Value>().expect("json"))
        .collect::<Vec<Value>>();
    assert_eq!(recorded.len(), 2);
    for r in &recorded {
        let mut keys: Vec<&String> = r.as_object().expect("object").keys().collect();
        keys.sort();
        assert_eq!(
            keys,
            ["passed", "upload_kbit_s"],
            "nothing else of the device"
        );
    }

    // The clerk sees the last result in the waiting room, once the citizen waits.
    let (status, _, _) = browse(
        &api,
        "POST",
        &format!("/termin/{}/warteraum", booked.token),
        None,
        Some("privacy_accepted=1"),
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    api.fold().await;
    let clerk = session(&api, "clerk.a").await;
    let (_, _, day) = browse(&api, "GET", "/sachbearbeitung", Some(&clerk), None).await;
    assert!(day.contains("Technik-Check nicht bestanden"), "{day}");
    assert!(day.contains("/raum/einlassen"), "{day}");
}

#[tokio::test]
async fn a_deactivated_clerks_room_socket_ends_with_its_next_message() {
    let api = staffed().await;
    let (booked, clerk) = waiting(&api, 0).await;
    api.fold().await;
    let addr = serve(&api).await;
    let mut socket = open(
        addr,
        &format!("/sachbearbeitung/termin/{}/raum/ws", booked.appointment),
        Some(&clerk),
    )
    .await
    .expect("the clerk's socket opens");
    until(&mut socket, "room").await;
    // Still signed in: a quality report is taken without an answer of its own.
    socket
        .send(Message::text(
            r#"{"type":"quality","packets":10,"lost":0,"rtt_ms":12.5}"#,
        ))
        .await
        .expect("sent");
    socket
        .send(Message::text(r#"{"type":"ping"}"#))
        .await
        .expect("sent");
    until(&mut socket, "pong").await;
    // The admin deactivates the clerk; the socket's next message is refused and it closes.
    let admin = session(&api, "admin").await;
    let (status, _, page) = browse(
        &api,
        "POST",
        "/verwaltung/konten/clerk.a/deaktivieren",
        Some(&admin),
        Some(""),
    )
    .await;
    assert!(status.is_redirection(), "{status} {page}");
    let before = api.last_position().await;
    socket
        .send(Message::text(
            r#"{"type":"media","camera":false,"microphone":true}"#,
        ))
        .await
        .expect("sent");
    let refused = until(&mut socket, "refused").await;
    assert_eq!(refused["title"], "Anmeldung beendet", "{refused}");
    assert_eq!(closed(&mut socket).await, Some(4401));
    // Nothing was done for the message; at most the clerk counts as gone, as after a lost
    // line.
    let after = events(&api, before).await;
    assert!(after.iter().all(|e| e == "ConnectionLost"), "{after:?}");
    // And the socket cannot be opened again.
    let again = open(
        addr,
        &format!("/sachbearbeitung/termin/{}/raum/ws", booked.appointment),
        Some(&clerk),
    )
    .await;
    assert_eq!(again.err(), Some(StatusCode::UNAUTHORIZED));
}
