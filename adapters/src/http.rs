//! One HTTP/1.1 exchange on a fresh connection, for the adapters that call a service over
//! plain HTTP (the gateways' JSON POST in `http_post.rs`, the payment provider): hyper's client
//! connection over a tokio socket, which axum builds for the server anyway, within one timeout
//! for the whole.

use std::time::Duration;

use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::Bytes;
use hyper::{Method, Request, StatusCode, Uri, header};
use hyper_util::rt::TokioIo;

/// Where a service is: `http://host[:port][/path]`, parsed once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Target {
    /// `host:port` as the `Host` header names it.
    pub authority: String,
    pub host: String,
    pub port: u16,
    /// The path the service's routes start with, without a trailing `/` (may be empty).
    pub path: String,
    /// A query the service wants on every request (some SMS gateways take their key so).
    pub query: Option<String>,
}

impl Target {
    /// `None` unless `url` is plain `http://` with a host.
    pub(crate) fn parse(url: &str) -> Option<Self> {
        let uri: Uri = url.parse().ok()?;
        if uri.scheme_str() != Some("http") {
            return None;
        }
        let host = uri.host().filter(|h| !h.is_empty())?;
        let authority = uri.authority()?.as_str();
        // Only a host, or a host and a port number (hyper takes `host:anything`).
        let port = match uri.port_u16() {
            Some(port) if authority == format!("{host}:{port}") => port,
            None if authority == host => 80,
            _ => return None,
        };
        Some(Self {
            authority: authority.to_owned(),
            host: host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned(),
            port,
            path: uri.path().trim_end_matches('/').to_owned(),
            query: uri.query().map(str::to_owned),
        })
    }
}

/// Why an exchange did not come back with an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ExchangeError {
    /// No connection (refused, unreachable, the handshake failed).
    Connect(String),
    /// The request could not be built from what was given.
    Request(String),
    /// The connection broke before or while the answer came, or it was too large.
    Answer(String),
    /// No answer within the timeout.
    Timeout,
}

impl std::fmt::Display for ExchangeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Connect(e) => write!(f, "connection: {e}"),
            Self::Request(e) => write!(f, "request: {e}"),
            Self::Answer(e) => write!(f, "answer: {e}"),
            Self::Timeout => f.write_str("no answer in time"),
        }
    }
}

/// `method` on `target`'s path followed by `path` (and its query), with `headers` and a JSON
/// `body`: the answer's status and body (at most `max_answer` bytes), all within `timeout`.
pub(crate) async fn exchange(
    target: &Target,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<Vec<u8>>,
    timeout: Duration,
    max_answer: usize,
) -> Result<(StatusCode, Bytes), ExchangeError> {
    let mut full = format!("{}{path}", target.path);
    if full.is_empty() {
        full.push('/');
    }
    if let Some(query) = &target.query {
        full = format!("{full}?{query}");
    }
    let mut request = Request::builder()
        .method(method)
        .uri(full)
        .header(header::HOST, &target.authority)
        .header(header::ACCEPT, "application/json");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    if body.is_some() {
        request = request.header(header::CONTENT_TYPE, "application/json");
    }
    let request = request
        .body(Full::new(Bytes::from(body.unwrap_or_default())))
        .map_err(|e| ExchangeError::Request(e.to_string()))?;
    let response = send(&target.host, target.port, request, timeout, max_answer).await?;
    Ok((response.status(), response.into_body()))
}

/// Sends `request` (its URI the path and query, its `Host` header set) to `host:port` on a
/// fresh connection and reads the answer, at most `max_answer` bytes, all within `timeout`.
pub(crate) async fn send(
    host: &str,
    port: u16,
    request: Request<Full<Bytes>>,
    timeout: Duration,
    max_answer: usize,
) -> Result<hyper::Response<Bytes>, ExchangeError> {
    let exchange = async {
        let stream = tokio::net::TcpStream::connect((host, port))
            .await
            .map_err(|e| ExchangeError::Connect(e.kind().to_string()))?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| ExchangeError::Connect(e.to_string()))?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| ExchangeError::Answer(e.to_string()))?;
        let (parts, body) = response.into_parts();
        let bytes = Limited::new(body, max_answer)
            .collect()
            .await
            .map_err(|e| ExchangeError::Answer(e.to_string()))?
            .to_bytes();
        Ok(hyper::Response::from_parts(parts, bytes))
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| ExchangeError::Timeout)?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_target_is_plain_http_with_a_path() {
        assert_eq!(
            Target::parse("http://127.0.0.1:8080/sandbox/zahlung/"),
            Some(Target {
                authority: "127.0.0.1:8080".into(),
                host: "127.0.0.1".into(),
                port: 8080,
                path: "/sandbox/zahlung".into(),
                query: None,
            })
        );
        let keyed = Target::parse("http://sms.example/send?key=k1").expect("valid");
        assert_eq!(
            (keyed.path.as_str(), keyed.query.as_deref()),
            ("/send", Some("key=k1"))
        );
        let bare = Target::parse("http://sms.example").expect("valid");
        assert_eq!((bare.port, bare.path.as_str()), (80, ""));
        let v6 = Target::parse("http://[::1]:9000/x").expect("valid");
        assert_eq!(
            (v6.host.as_str(), v6.port, v6.authority.as_str()),
            ("::1", 9000, "[::1]:9000")
        );
        for bad in [
            "https://epaybl.example/pay",
            "sms.example",
            "http://",
            "http://host:port",
        ] {
            assert_eq!(Target::parse(bad), None, "{bad}");
        }
    }

    #[tokio::test]
    async fn nobody_listening_is_a_connection_error_and_silence_a_timeout() {
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a port");
        let target = Target::parse(&format!("http://{closed}")).expect("valid");
        let answer = exchange(
            &target,
            Method::GET,
            "/",
            &[],
            None,
            Duration::from_secs(5),
            1024,
        );
        assert!(matches!(answer.await, Err(ExchangeError::Connect(_))));
        // A listener that never answers.
        let silent = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a port");
        let target = Target::parse(&format!("http://{}", silent.local_addr().expect("bound")))
            .expect("valid");
        let answer = exchange(
            &target,
            Method::GET,
            "/",
            &[],
            None,
            Duration::from_millis(200),
            1024,
        );
        assert_eq!(answer.await, Err(ExchangeError::Timeout));
    }
}
