//! SMS gateways for Handy-TANs.
//!
//! - [`OutboxSms`], the **sandbox**: no SMS gateway is reachable from the development machines,
//!   so by default each SMS is filed as `{dir}/{subject}/{id}.sms.txt` in the data folder's
//!   outbox, beside the mails, listed at `/dev/outbox`, and scrubbed by the purge with the
//!   subject's folder. Each copy is a file of its own with its idempotency key in the
//!   `Schlüssel:` line, so a message sent twice shows as two files with one key.
//! - [`HttpSms`] (feature `sms-http`), a generic HTTP gateway: `POST {url}` with
//!   `{"to": …, "text": …, "reference": key}` and `Authorization: Bearer {token}`, the
//!   reference being the idempotency key that gateways which deduplicate take; 2xx is sent, 4xx refused,
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
        let body = format!("An: {}\nSchlüssel: {}\n\n{}\n", sms.to, sms.key, sms.text);
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
    use videoamt_core::sms::{OutgoingSms, SmsError, SmsGateway};

    use crate::http_post::{http_url, post_json};

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
            Ok(Self {
                url: http_url(url, "SMS gateway")?,
                token: token.into(),
            })
        }
    }

    #[async_trait::async_trait]
    impl SmsGateway for HttpSms {
        async fn send(&self, sms: &OutgoingSms) -> Result<(), SmsError> {
            let body = serde_json::json!({ "to": sms.to, "text": sms.text, "reference": sms.key })
                .to_string();
            let (status, _) = post_json(
                &self.url,
                &self.token,
                body,
                std::time::Duration::from_secs(10),
            )
            .await
            .map_err(SmsError::Unavailable)?;
            match status {
                200..=299 => Ok(()),
                400..=499 => Err(SmsError::Refused(format!("Status {status}"))),
                _ => Err(SmsError::Unavailable(format!("Status {status}"))),
            }
        }
    }
}
