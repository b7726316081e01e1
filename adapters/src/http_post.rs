//! The gateway adapters' JSON POST (feature `sms-http`): plain HTTP to a gateway or a relay on
//! the internal network, JSON with a bearer token, on [`crate::http`]'s exchange, which the
//! payment provider uses too. A TLS endpoint sits behind such a relay.

use std::time::Duration;

use hyper::Method;
use hyper::body::Bytes;

use crate::http::{ExchangeError, Target, exchange};

/// The largest answer read from a gateway.
const MAX_ANSWER: usize = 1024 * 1024;

/// Parses an `http://host:port/path` URL; `what` names it in the error.
pub(crate) fn http_url(url: &str, what: &str) -> Result<hyper::Uri, String> {
    let parsed: hyper::Uri = url.parse().map_err(|e| format!("{what} URL: {e}"))?;
    if parsed.scheme_str() != Some("http") || parsed.host().is_none() {
        return Err(format!("{what} URL: http://host:port/path"));
    }
    if parsed.host().is_some_and(crate::http::forbidden_host) {
        return Err(format!("{what} URL: {}", crate::http::NOT_ALLOWED));
    }
    Ok(parsed)
}

/// Posts `body` (JSON) to `url` with `Authorization: Bearer {token}` and returns the status
/// and the response's body (through [`crate::http::exchange`]). The error is a short German
/// word of what failed (for the adapters' own errors), never the body.
pub(crate) async fn post_json(
    url: &hyper::Uri,
    token: &str,
    body: String,
    timeout: Duration,
) -> Result<(u16, Bytes), String> {
    let target = Target::parse(&url.to_string()).ok_or_else(|| "Anfrage".to_owned())?;
    let bearer = format!("Bearer {token}");
    exchange(
        &target,
        Method::POST,
        "",
        &[("authorization", bearer.as_str())],
        Some(body.into_bytes()),
        timeout,
        MAX_ANSWER,
    )
    .await
    .map(|(status, body)| (status.as_u16(), body))
    .map_err(|e| match e {
        ExchangeError::Connect(kind) => format!("Verbindung: {kind}"),
        ExchangeError::Request(_) => "Anfrage".to_owned(),
        ExchangeError::Answer(_) => "Antwort".to_owned(),
        ExchangeError::Timeout => "Zeitüberschreitung".to_owned(),
    })
}
