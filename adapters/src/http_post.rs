//! The one small HTTP/1 client the gateway adapters share (feature `sms-http`): plain HTTP to
//! a gateway or a relay on the internal network, JSON with a bearer token, one request per
//! connection. A TLS endpoint sits behind such a relay.

use std::time::Duration;

use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;

/// Parses an `http://host:port/path` URL; `what` names it in the error.
pub(crate) fn http_url(url: &str, what: &str) -> Result<hyper::Uri, String> {
    let parsed: hyper::Uri = url.parse().map_err(|e| format!("{what} URL: {e}"))?;
    if parsed.scheme_str() != Some("http") || parsed.host().is_none() {
        return Err(format!("{what} URL: http://host:port/path"));
    }
    Ok(parsed)
}

/// Posts `body` (JSON) to `url` with `Authorization: Bearer {token}` and returns the status
/// and the response's body. The error is a short German word of what failed (for the
/// adapters' own errors), never the body.
pub(crate) async fn post_json(
    url: &hyper::Uri,
    token: &str,
    body: String,
    timeout: Duration,
) -> Result<(u16, Bytes), String> {
    let host = url.host().unwrap_or("localhost").to_owned();
    let port = url.port_u16().unwrap_or(80);
    let stream = tokio::net::TcpStream::connect((host.as_str(), port))
        .await
        .map_err(|e| format!("Verbindung: {}", e.kind()))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|_| "Verbindung".to_owned())?;
    tokio::spawn(connection);
    let path = url.path_and_query().map_or("/", |p| p.as_str()).to_owned();
    let request = hyper::Request::post(path)
        .header(hyper::header::HOST, format!("{host}:{port}"))
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .header(hyper::header::AUTHORIZATION, format!("Bearer {token}"))
        .body(Full::new(Bytes::from(body)))
        .map_err(|_| "Anfrage".to_owned())?;
    let response = tokio::time::timeout(timeout, sender.send_request(request))
        .await
        .map_err(|_| "Zeitüberschreitung".to_owned())?
        .map_err(|_| "Antwort".to_owned())?;
    let status = response.status().as_u16();
    // Read the body so the connection ends cleanly.
    let body = tokio::time::timeout(timeout, response.into_body().collect())
        .await
        .map_err(|_| "Zeitüberschreitung".to_owned())?
        .map_err(|_| "Antwort".to_owned())?
        .to_bytes();
    Ok((status, body))
}
