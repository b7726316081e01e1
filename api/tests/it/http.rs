//! HTTP/1.1 requests to a spawned `videoamt serve`, with hyper's client (the one `bench api`
//! uses): one connection per request, the body read whole.

use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;
use hyper::{Method, Request, StatusCode, header};
use hyper_util::rt::TokioIo;

/// An answer of the server.
#[derive(Debug)]
pub(crate) struct Response {
    pub(crate) status: StatusCode,
    pub(crate) headers: hyper::HeaderMap,
    pub(crate) body: String,
}

pub(crate) async fn get(addr: &str, path: &str) -> Response {
    send_with(addr, Method::GET, path, None, "", &[]).await
}

/// A POST of `body` as `content_type`, from a page of the server itself (its `Origin`).
pub(crate) async fn post(addr: &str, path: &str, content_type: &str, body: &str) -> Response {
    send_with(addr, Method::POST, path, Some(content_type), body, &[]).await
}

/// A request with `headers` beside the usual ones (a session cookie, say).
pub(crate) async fn send_with(
    addr: &str,
    method: Method,
    path: &str,
    content_type: Option<&str>,
    body: &str,
    headers: &[(&str, &str)],
) -> Response {
    try_send_with(addr, method.clone(), path, content_type, body, headers)
        .await
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
}

/// [`send_with`] for a server that may be gone: a connection refused or cut, or a body cut
/// short, is an `Err` with what happened.
pub(crate) async fn try_send_with(
    addr: &str,
    method: Method,
    path: &str,
    content_type: Option<&str>,
    body: &str,
    headers: &[(&str, &str)],
) -> Result<Response, String> {
    let (parts, body) = try_open(addr, method, path, content_type, body, headers)
        .await?
        .into_parts();
    let body = body
        .collect()
        .await
        .map_err(|e| format!("reading the body: {e}"))?
        .to_bytes();
    Ok(Response {
        status: parts.status,
        headers: parts.headers,
        body: String::from_utf8(body.to_vec()).map_err(|_| "a body not in UTF-8".to_owned())?,
    })
}

/// A request whose answer's body is left to the caller, to read as it streams in.
pub(crate) async fn open(
    addr: &str,
    method: Method,
    path: &str,
    content_type: Option<&str>,
    body: &str,
    headers: &[(&str, &str)],
) -> hyper::Response<hyper::body::Incoming> {
    try_open(addr, method.clone(), path, content_type, body, headers)
        .await
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
}

async fn try_open(
    addr: &str,
    method: Method,
    path: &str,
    content_type: Option<&str>,
    body: &str,
    headers: &[(&str, &str)],
) -> Result<hyper::Response<hyper::body::Incoming>, String> {
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connecting to {addr}: {e}"))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("HTTP handshake: {e}"))?;
    tokio::spawn(connection);
    let mut request = Request::builder()
        .method(&method)
        .uri(path)
        .header(header::HOST, addr)
        .header(header::ORIGIN, format!("http://{addr}"));
    if let Some(kind) = content_type {
        request = request.header(header::CONTENT_TYPE, kind);
    }
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request
        .body(Full::new(Bytes::from(body.to_owned())))
        .expect("a valid request");
    sender
        .send_request(request)
        .await
        .map_err(|e| e.to_string())
}
