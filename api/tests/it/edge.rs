//! The edge against abuse, through the real accept loop on a loopback port: rate limits per
//! client behind a trusted proxy, slow and stalled clients cut off, the connection cap, the
//! body limit, the internal metrics listener, the security headers, and problem documents that
//! never repeat the input.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use videoamt_api::app::Settings;
use videoamt_api::http::middleware::RateLimits;
use videoamt_api::http::server::{ConnectionLimits, serve_connections};

use crate::router::Api;

/// Far longer than any limit these tests set; only a server that never answers reaches it.
const GENEROUS: Duration = Duration::from_secs(30);

/// `api` with `change` made to its settings.
fn with_settings(api: &mut Api, change: impl FnOnce(&mut Settings)) {
    let mut settings = (*api.state.system.settings).clone();
    change(&mut settings);
    api.state.system.settings = Arc::new(settings);
}

/// Serves `api` through the server's own accept loop on a loopback port.
pub(crate) async fn serve(api: &Api) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a port");
    let addr = listener.local_addr().expect("bound");
    let limits = ConnectionLimits::of(&api.state.system.settings);
    let app = videoamt_api::http::app(api.state.clone());
    tokio::spawn(serve_connections(
        listener,
        app,
        limits,
        std::future::pending(),
    ));
    addr
}

/// Sends `head` (and `body`) on a fresh connection that the request closes, and reads the
/// answer to its end.
async fn exchange(addr: SocketAddr, head: &str, body: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).await.expect("connected");
    stream.write_all(head.as_bytes()).await.expect("head sent");
    stream.write_all(body).await.expect("body sent");
    let mut answer = Vec::new();
    tokio::time::timeout(GENEROUS, stream.read_to_end(&mut answer))
        .await
        .expect("an answer in time")
        .expect("read");
    String::from_utf8_lossy(&answer).into_owned()
}

fn status_of(answer: &str) -> u16 {
    answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {answer:?}"))
}

fn body_of(answer: &str) -> Value {
    let body = answer.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    serde_json::from_str(body).unwrap_or(Value::Null)
}

/// A login attempt that the login budget counts (its body is incomplete, so it does nothing
/// else), forwarded for `forwarded`.
async fn counted_login(addr: SocketAddr, forwarded: &str) -> u16 {
    let head = format!(
        "POST /api/v1/login HTTP/1.1\r\nHost: amt.test\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: 2\r\nX-Forwarded-For: {forwarded}\r\n\r\n"
    );
    status_of(&exchange(addr, &head, b"{}").await)
}

#[tokio::test]
async fn behind_a_trusted_proxy_each_client_has_its_budget_and_nobody_else_can_pick_one() {
    let limits = || RateLimits::new(100, 100, 2, Duration::from_secs(60));
    let mut proxied = Api::with_limits(limits()).await;
    with_settings(&mut proxied, |s| {
        s.trusted_proxies = vec!["127.0.0.0/8".parse().expect("a range")];
    });
    let behind = serve(&proxied).await;
    // Two citizens behind the town's proxy: each spends their own budget.
    for _ in 0..2 {
        assert_eq!(counted_login(behind, "198.51.100.1").await, 422);
    }
    assert_eq!(counted_login(behind, "198.51.100.1").await, 429);
    assert_eq!(counted_login(behind, "198.51.100.2").await, 422);
    // What the client itself wrote before the proxy's entry changes nothing.
    assert_eq!(
        counted_login(behind, "203.0.113.5, 198.51.100.1").await,
        429
    );

    // A peer that is no trusted proxy cannot choose a budget by the header: all is its own.
    let mut direct = Api::with_limits(limits()).await;
    with_settings(&mut direct, |s| {
        s.trusted_proxies = vec!["10.0.0.0/8".parse().expect("a range")];
    });
    let addr = serve(&direct).await;
    assert_eq!(counted_login(addr, "198.51.100.1").await, 422);
    assert_eq!(counted_login(addr, "198.51.100.2").await, 422);
    assert_eq!(counted_login(addr, "198.51.100.3").await, 429);
}

#[tokio::test]
async fn a_client_that_stops_in_the_middle_of_its_request_head_is_cut_off() {
    let mut api = Api::new().await;
    with_settings(&mut api, |s| s.header_read_timeout_seconds = 1);
    let addr = serve(&api).await;
    let mut stream = TcpStream::connect(addr).await.expect("connected");
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: amt.test\r\nX-Langsam: ")
        .await
        .expect("part of a head");
    let mut answer = Vec::new();
    let read = tokio::time::timeout(GENEROUS, stream.read_to_end(&mut answer)).await;
    assert!(read.is_ok(), "the server kept the connection open");
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
        "{answer}"
    );
}

#[tokio::test]
async fn a_request_whose_body_stalls_ends_with_the_request_or_the_idle_timeout() {
    let head = "POST /api/v1/appointments HTTP/1.1\r\nHost: amt.test\r\nConnection: close\r\n\
                Content-Type: application/json\r\nContent-Length: 500\r\n\r\n";
    // The request timeout: 408 with a problem document.
    let mut api = Api::new().await;
    with_settings(&mut api, |s| s.request_timeout_seconds = 1);
    let answer = exchange(serve(&api).await, head, b"{\"tenant\":").await;
    assert_eq!(status_of(&answer), 408, "{answer}");
    assert!(answer.contains("application/problem+json"), "{answer}");
    assert_eq!(body_of(&answer)["title"], "Zeitüberschreitung");

    // No piece of the body for the idle timeout: the request ends there, long before its
    // deadline.
    let mut api = Api::new().await;
    with_settings(&mut api, |s| {
        s.header_read_timeout_seconds = 1;
        s.request_timeout_seconds = 600;
    });
    let answer = exchange(serve(&api).await, head, b"{\"tenant\":").await;
    assert_eq!(status_of(&answer), 400, "{answer}");
    assert_eq!(body_of(&answer)["title"], "Ungültige Anfrage");
}

#[tokio::test]
async fn past_the_connection_cap_a_connection_waits_until_one_closes() {
    let mut api = Api::new().await;
    with_settings(&mut api, |s| s.max_connections = 1);
    let addr = serve(&api).await;
    let request = b"GET /healthz HTTP/1.1\r\nHost: amt.test\r\n\r\n";
    let mut first = TcpStream::connect(addr).await.expect("connected");
    first.write_all(request).await.expect("sent");
    let mut buffer = [0u8; 512];
    let n = tokio::time::timeout(GENEROUS, first.read(&mut buffer))
        .await
        .expect("served in time")
        .expect("read");
    assert!(String::from_utf8_lossy(&buffer[..n]).starts_with("HTTP/1.1 200"));

    // The first stays open (keep-alive): the second is queued, not served.
    let mut second = TcpStream::connect(addr)
        .await
        .expect("queued by the kernel");
    second.write_all(request).await.expect("sent");
    let waiting = tokio::time::timeout(Duration::from_millis(500), second.read(&mut buffer)).await;
    assert!(waiting.is_err(), "served past the cap");

    drop(first);
    let n = tokio::time::timeout(GENEROUS, second.read(&mut buffer))
        .await
        .expect("served once the first closed")
        .expect("read");
    assert!(String::from_utf8_lossy(&buffer[..n]).starts_with("HTTP/1.1 200"));
}

#[tokio::test]
async fn an_oversized_body_is_refused_with_a_problem_document() {
    let api = Api::new().await;
    let addr = serve(&api).await;
    let body = vec![b' '; 100 * 1024];
    let head = format!(
        "POST /api/v1/appointments HTTP/1.1\r\nHost: amt.test\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let (mut reading, mut writing) = TcpStream::connect(addr)
        .await
        .expect("connected")
        .into_split();
    writing.write_all(head.as_bytes()).await.expect("head sent");
    // The server answers and closes before it read everything: the rest may meet a closed
    // socket, so it is sent while the answer is read.
    tokio::spawn(async move { writing.write_all(&body).await });
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(GENEROUS, reading.read_to_end(&mut answer))
        .await
        .expect("an answer in time");
    let answer = String::from_utf8_lossy(&answer);
    assert_eq!(status_of(&answer), 413, "{answer}");
    assert!(answer.contains("application/problem+json"), "{answer}");
    assert_eq!(body_of(&answer)["title"], "Anfrage zu groß");
}

/// The room's pages may use camera and microphone, on the server's own origin only, and every
/// page may open the room's WebSocket of the own origin; other features are denied.
#[tokio::test]
async fn room_pages_alone_may_use_camera_and_microphone_and_the_socket_is_allowed() {
    let api = Api::new().await;
    let token = api.book(crate::router::TUE_9).await;
    let policy = |headers: &axum::http::HeaderMap, name: &str| {
        headers[name].to_str().expect("ascii").to_owned()
    };
    let (status, room, html) =
        crate::staff::browse(&api, "GET", &format!("/termin/{token}/technik"), None, None).await;
    assert_eq!(status, 200, "{html}");
    let permissions = policy(&room, "permissions-policy");
    for allowed in ["camera=(self)", "microphone=(self)"] {
        assert!(permissions.contains(allowed), "{permissions}");
    }
    let (status, page, _) = crate::staff::browse(&api, "GET", "/", None, None).await;
    assert_eq!(status, 200);
    let ordinary = policy(&page, "permissions-policy");
    for denied in ["camera=()", "microphone=()"] {
        assert!(ordinary.contains(denied), "{ordinary}");
    }
    for permissions in [&permissions, &ordinary] {
        for denied in [
            "geolocation=()",
            "payment=()",
            "usb=()",
            "display-capture=()",
        ] {
            assert!(permissions.contains(denied), "{permissions}");
        }
    }
    // The test server's public URL is http://amt.test: its socket is ws://amt.test.
    for headers in [&room, &page] {
        let csp = policy(headers, "content-security-policy");
        let connect = csp
            .split(';')
            .map(str::trim)
            .find(|d| d.starts_with("connect-src"))
            .unwrap_or_else(|| panic!("no connect-src: {csp}"));
        assert_eq!(connect, "connect-src 'self' ws://amt.test", "{csp}");
        assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    }
}

/// A value of the wrong type is named by its field and the kind expected, never repeated:
/// serde's own text quotes it.
#[tokio::test]
async fn a_wrong_typed_value_is_named_by_its_field_and_never_repeated() {
    const SECRET: &str = "ZXQV-geheim-4711";
    let api = Api::new().await;
    let before = api.last_position().await;
    let mut booking = crate::router::booking(crate::router::TUE_9);
    booking["privacy_accepted"] = Value::from(SECRET);
    let response = api.post("/api/v1/appointments", &booking).await;
    let problem = crate::router::assert_refused(
        &api,
        response,
        axum::http::StatusCode::UNPROCESSABLE_ENTITY,
        before,
    )
    .await;
    let text = problem.to_string();
    assert!(!text.contains(SECRET), "{text}");
    let detail = problem["detail"].as_str().expect("detail");
    assert!(detail.contains("„privacy_accepted“"), "{detail}");
    assert!(detail.contains("true oder false"), "{detail}");

    let mut booking = crate::router::booking(crate::router::TUE_9);
    booking["services"] = Value::from(SECRET);
    let (_, _, problem) = api.post("/api/v1/appointments", &booking).await;
    let detail = problem["detail"].as_str().expect("detail");
    assert!(!detail.contains(SECRET), "{detail}");
    assert!(
        detail.contains("„services“") && detail.contains("eine Liste"),
        "{detail}"
    );
}

/// A citizen page's form with a wrong or missing value is answered with a German page that
/// names the field, not with axum's plain text, and does not repeat the value.
#[tokio::test]
async fn a_bad_form_on_a_citizen_page_gets_a_german_page_without_the_value() {
    const SECRET: &str = "ZXQV-geheim-4711";
    let api = Api::new().await;
    let token = api.book(crate::router::TUE_9).await;
    let path = format!("/termin/{token}/verlegen");
    let (status, headers, html) =
        crate::staff::browse(&api, "POST", &path, None, Some(&format!("start={SECRET}"))).await;
    assert_eq!(status, 422, "{html}");
    assert!(
        headers[axum::http::header::CONTENT_TYPE]
            .to_str()
            .expect("ascii")
            .starts_with("text/html"),
        "{headers:?}"
    );
    assert!(html.contains("Ungültige Eingaben"), "{html}");
    assert!(html.contains("„start“"), "{html}");
    assert!(!html.contains(SECRET), "{html}");
    let (status, _, html) = crate::staff::browse(&api, "POST", &path, None, Some("")).await;
    assert_eq!(status, 422, "{html}");
    assert!(html.contains("Die Angabe „start“ fehlt."), "{html}");
}
