//! Time-limited credentials for a TURN server (ADR 0017), for browsers on networks that block
//! UDP or every port but a few: they reach the media relay through the TURN server over TCP
//! or TLS, and the TURN server forwards to the relay over UDP.
//!
//! The TURN server is not ours: it is coturn (or any server speaking the same scheme) with
//! `use-auth-secret` and a `static-auth-secret` shared with videoamt. For each peer connection
//! the room hands the browser a username `"<expiry>:videoamt"` (Unix seconds) and the password
//! `base64(HMAC-SHA1(secret, username))`; the TURN server computes the same password and
//! refuses the username once the expiry has passed ("A REST API For Access To TURN
//! Services", draft-uberti-behave-turn-rest-00, as coturn implements it). The username carries
//! no session, token or person, so a TURN server's log cannot tell calls apart.
//!
//! HMAC-SHA1 is what the scheme prescribes; it comes from aws-lc-rs, which the media relay
//! already builds (str0m's backend), so no other SHA-1 or HMAC version enters the tree.

use std::fmt;
use std::time::Duration;

use aws_lc_rs::hmac;
use base64::Engine as _;
use serde::Serialize;
use time::OffsetDateTime;

/// One entry of the browser's `RTCConfiguration.iceServers`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IceServer {
    pub urls: Vec<String>,
    pub username: String,
    pub credential: String,
}

/// Why a TURN configuration cannot be used; the operator's to fix at start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TurnConfigError {
    #[error("TURN: `{0}` is not a turn: or turns: URL")]
    BadUrl(String),
    #[error("TURN: a shared secret is needed with the TURN URLs (VIDEOAMT_TURN_SECRET)")]
    NoSecret,
    #[error("TURN: the credentials' lifetime must be at least one minute")]
    ShortLifetime,
}

/// The TURN servers browsers may use and the secret shared with them.
#[derive(Clone)]
pub struct Turn {
    urls: Vec<String>,
    key: hmac::Key,
    lifetime: Duration,
    relay_only: bool,
}

impl Turn {
    /// `urls` as the browser takes them (`turn:host:3478?transport=tcp`,
    /// `turns:host:443?transport=tcp`); `lifetime` is how long one set of credentials lets a
    /// browser allocate and refresh (a call longer than that loses its TURN allocation);
    /// `relay_only` makes browsers use nothing but the TURN server.
    pub fn new(
        urls: Vec<String>,
        secret: &str,
        lifetime: Duration,
        relay_only: bool,
    ) -> Result<Self, TurnConfigError> {
        if let Some(bad) = urls.iter().find(|u| !is_turn_url(u)) {
            return Err(TurnConfigError::BadUrl(bad.clone()));
        }
        if secret.is_empty() {
            return Err(TurnConfigError::NoSecret);
        }
        if lifetime < Duration::from_secs(60) {
            return Err(TurnConfigError::ShortLifetime);
        }
        Ok(Self {
            urls,
            key: hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, secret.as_bytes()),
            lifetime,
            relay_only,
        })
    }

    /// Credentials valid from `now` for the configured lifetime.
    pub fn credentials(&self, now: OffsetDateTime) -> IceServer {
        let expiry = now.unix_timestamp() + self.lifetime.as_secs() as i64;
        let username = format!("{expiry}:videoamt");
        let tag = hmac::sign(&self.key, username.as_bytes());
        IceServer {
            urls: self.urls.clone(),
            credential: base64::engine::general_purpose::STANDARD.encode(tag.as_ref()),
            username,
        }
    }

    /// Whether browsers must not use any path but the TURN server (`iceTransportPolicy`
    /// `relay`).
    pub fn relay_only(&self) -> bool {
        self.relay_only
    }

    pub fn urls(&self) -> &[String] {
        &self.urls
    }
}

// The key must never reach a log line.
impl fmt::Debug for Turn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Turn")
            .field("urls", &self.urls)
            .field("key", &"…")
            .field("lifetime", &self.lifetime)
            .field("relay_only", &self.relay_only)
            .finish()
    }
}

fn is_turn_url(url: &str) -> bool {
    let Some(rest) = url
        .strip_prefix("turn:")
        .or_else(|| url.strip_prefix("turns:"))
    else {
        return false;
    };
    let host = rest.split(['?', ':']).next().unwrap_or("");
    !host.is_empty() && !rest.contains(char::is_whitespace)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn turn() -> Turn {
        Turn::new(
            vec!["turn:turn.example.org:3478?transport=tcp".into()],
            "geheim",
            Duration::from_secs(6 * 3600),
            false,
        )
        .expect("valid")
    }

    #[test]
    fn the_hmac_is_rfc_2202s_hmac_sha1() {
        // RFC 2202, test case 2: key "Jefe", data "what do ya want for nothing?".
        let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, b"Jefe");
        let tag = hmac::sign(&key, b"what do ya want for nothing?");
        let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79");
    }

    #[test]
    fn credentials_name_their_expiry_and_nothing_of_the_call() {
        let now = datetime!(2026-12-02 10:00 UTC);
        let c = turn().credentials(now);
        assert_eq!(c.urls, ["turn:turn.example.org:3478?transport=tcp"]);
        let expiry = now.unix_timestamp() + 6 * 3600;
        assert_eq!(c.username, format!("{expiry}:videoamt"));
        // What coturn computes from the same secret and username:
        // printf '%s' "$username" | openssl dgst -sha1 -hmac geheim -binary | base64
        let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, b"geheim");
        let expected = base64::engine::general_purpose::STANDARD
            .encode(hmac::sign(&key, c.username.as_bytes()).as_ref());
        assert_eq!(c.credential, expected);
        assert_eq!(c.credential.len(), 28, "20 bytes in base64");
        // A minute later the credentials differ, so they are not reused forever.
        let later = turn().credentials(now + time::Duration::minutes(1));
        assert_ne!(later.username, c.username);
        assert_ne!(later.credential, c.credential);
    }

    #[test]
    fn unusable_configurations_are_refused_at_start() {
        let ok = Duration::from_secs(3600);
        for bad in [
            "stun:turn.example.org",
            "https://turn.example.org",
            "turn:",
            "turn: x",
        ] {
            assert_eq!(
                Turn::new(vec![bad.into()], "s", ok, false).unwrap_err(),
                TurnConfigError::BadUrl(bad.into())
            );
        }
        let url = vec!["turns:turn.example.org:443?transport=tcp".to_owned()];
        assert_eq!(
            Turn::new(url.clone(), "", ok, false).unwrap_err(),
            TurnConfigError::NoSecret
        );
        assert_eq!(
            Turn::new(url.clone(), "s", Duration::from_secs(59), false).unwrap_err(),
            TurnConfigError::ShortLifetime
        );
        let debug = format!("{:?}", Turn::new(url, "sehr-geheim", ok, true).unwrap());
        assert!(!debug.contains("sehr-geheim"), "{debug}");
    }
}
