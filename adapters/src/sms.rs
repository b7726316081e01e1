//! SMS gateways for Handy-TANs.
//!
//! - [`OutboxSms`], the **sandbox**: no SMS gateway is reachable from the development machines,
//!   so by default each SMS is filed as `{dir}/{subject}/{id}.sms.txt` in the data folder's
//!   outbox, beside the mails, listed at `/dev/outbox`, and scrubbed by the purge with the
//!   subject's folder.
//! - [`HttpSms`] (feature `sms-http`), a generic HTTP gateway: `POST {url}` with
//!   `{"to": …, "text": …}` and `Authorization: Bearer {token}`; 2xx is sent, 4xx refused,
//!   anything else worth another try. Most SMS providers' REST APIs take this shape or sit
//!   behind a small relay that gives it.

use std::path::PathBuf;

use videoamt_core::sms::{OutgoingSms, SmsError, SmsGateway};

/// The sandbox: files every SMS under its data subject instead of sending it.
#[derive(Debug, Clone)]
pub struct OutboxSms {
    dir: PathBuf,
}

impl OutboxSms {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }
}

#[async_trait::async_trait]
impl SmsGateway for OutboxSms {
    async fn send(&self, sms: &OutgoingSms) -> Result<(), SmsError> {
        let folder = self.dir.join(sms.owner.to_string());
        let path = folder.join(format!("{}.sms.txt", uuid::Uuid::now_v7()));
        let body = format!("An: {}\n\n{}\n", sms.to, sms.text);
        tokio::task::spawn_blocking(move || {
            std::fs::create_dir_all(&folder)?;
            // Written beside and renamed, so a reader never sees half a message.
            let partial = path.with_extension("part");
            std::fs::write(&partial, body)?;
            std::fs::rename(&partial, &path)
        })
        .await
        .map_err(|_| SmsError::Unavailable("Ablage abgebrochen".into()))?
        .map_err(|e| SmsError::Unavailable(format!("Ablage: {}", e.kind())))
    }
}

#[cfg(feature = "sms-http")]
pub use http::HttpSms;

#[cfg(feature = "sms-http")]
mod http {
    use http_body_util::{BodyExt as _, Full};
    use hyper::body::Bytes;
    use hyper_util::rt::TokioIo;
    use videoamt_core::sms::{OutgoingSms, SmsError, SmsGateway};

    /// A generic HTTP SMS gateway (plain HTTP to a gateway or a relay on the internal network;
    /// a TLS gateway sits behind such a relay).
    #[derive(Clone)]
    pub struct HttpSms {
        url: hyper::Uri,
        token: String,
    }

    impl std::fmt::Debug for HttpSms {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("HttpSms")
                .field("url", &self.url)
                .field("token", &"…")
                .finish()
        }
    }

    impl HttpSms {
        /// `url` is `http://host:port/path`.
        pub fn new(url: &str, token: impl Into<String>) -> Result<Self, String> {
            let url: hyper::Uri = url.parse().map_err(|e| format!("SMS gateway URL: {e}"))?;
            if url.scheme_str() != Some("http") || url.host().is_none() {
                return Err("SMS gateway URL: http://host:port/path".into());
            }
            Ok(Self {
                url,
                token: token.into(),
            })
        }
    }

    #[async_trait::async_trait]
    impl SmsGateway for HttpSms {
        async fn send(&self, sms: &OutgoingSms) -> Result<(), SmsError> {
            let host = self.url.host().unwrap_or("localhost").to_owned();
            let port = self.url.port_u16().unwrap_or(80);
            let down = |what: &str| SmsError::Unavailable(what.to_owned());
            let stream = tokio::net::TcpStream::connect((host.as_str(), port))
                .await
                .map_err(|e| down(&format!("Verbindung: {}", e.kind())))?;
            let (mut sender, connection) =
                hyper::client::conn::http1::handshake(TokioIo::new(stream))
                    .await
                    .map_err(|_| down("Verbindung"))?;
            tokio::spawn(connection);
            let body = serde_json::json!({ "to": sms.to, "text": sms.text }).to_string();
            let path = self
                .url
                .path_and_query()
                .map_or("/", |p| p.as_str())
                .to_owned();
            let request = hyper::Request::post(path)
                .header(hyper::header::HOST, format!("{host}:{port}"))
                .header(hyper::header::CONTENT_TYPE, "application/json")
                .header(
                    hyper::header::AUTHORIZATION,
                    format!("Bearer {}", self.token),
                )
                .body(Full::new(Bytes::from(body)))
                .map_err(|_| down("Anfrage"))?;
            let response = tokio::time::timeout(
                std::time::Duration::from_secs(10),
                sender.send_request(request),
            )
            .await
            .map_err(|_| down("Zeitüberschreitung"))?
            .map_err(|_| down("Antwort"))?;
            let status = response.status();
            // Read the body so the connection ends cleanly; its content is not needed.
            let _ = response.into_body().collect().await;
            match status.as_u16() {
                200..=299 => Ok(()),
                400..=499 => Err(SmsError::Refused(format!("Status {status}"))),
                _ => Err(down(&format!("Status {status}"))),
            }
        }
    }
}
