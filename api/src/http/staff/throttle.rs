//! The login throttle (ADR 0025): [`MAX_FAILURES`] wrong passwords for one login from one
//! client (its /64) within [`LOCKOUT`] refuse that client's further attempts at that login
//! until the window ends. Another client, the account holder at their own desk, logs in as
//! usual: failures lock nobody out. A throttled attempt is answered exactly like a wrong
//! password, and so is one for a login that does not exist, which is throttled the same way,
//! so the answer never tells which logins exist.
//!
//! The throttle lives in this process's memory and holds no IP address: its keys are a keyed
//! hash (HMAC-SHA256 under a random key made at start and never stored) of the municipality,
//! the login as typed, the client and the account's `login_epoch`, so an admin's unlock
//! (`AccountUnlocked`) or a new password, read from the account's stream by whichever
//! process, starts every client's count afresh. A restart forgets it, as it forgets sessions.

use std::sync::Mutex;
use std::time::Duration;

use hmac::{KeyInit as _, Mac as _};
use videoamt_core::domain::account::{LOCKOUT, MAX_FAILURES};

use crate::http::error::Error;
use crate::http::middleware::guard::{Client, Windows};

/// Attempts held at most: a few megabytes.
const MAX_ATTEMPTS: usize = 100_000;

/// Who tries which login from where, as a keyed hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Attempt([u8; 32]);

pub(crate) struct LoginThrottle {
    key: [u8; 32],
    failures: Mutex<Windows<Attempt>>,
}

impl std::fmt::Debug for LoginThrottle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginThrottle").finish_non_exhaustive()
    }
}

impl LoginThrottle {
    pub(crate) fn new() -> Result<Self, Error> {
        let mut key = [0u8; 32];
        getrandom::fill(&mut key)
            .map_err(|e| Error::internal(format!("no randomness for the login throttle: {e}")))?;
        let window = Duration::try_from(LOCKOUT).unwrap_or(Duration::from_secs(15 * 60));
        Ok(Self {
            key,
            failures: Mutex::new(Windows::new(window, MAX_ATTEMPTS)),
        })
    }

    /// The attempt at `login` of `tenant` (both as typed) from `client`, for an account at
    /// `epoch` (its `login_epoch`; 0 for one that does not exist).
    pub(crate) fn attempt(&self, tenant: &str, login: &str, client: Client, epoch: u32) -> Attempt {
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&self.key)
            .expect("HMAC takes a key of any length");
        // Each part with its length, so that no two different attempts read alike.
        for part in [tenant.as_bytes(), login.as_bytes(), &client.octets()] {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part);
        }
        mac.update(&epoch.to_be_bytes());
        Attempt(mac.finalize().into_bytes().into())
    }

    /// Whether `attempt`'s client is refused at this login now.
    pub(crate) fn throttled(&self, attempt: &Attempt, now: Duration) -> bool {
        self.lock().spent(attempt, MAX_FAILURES, now).is_some()
    }

    pub(crate) fn failed(&self, attempt: &Attempt, now: Duration) {
        self.lock().add(attempt, now);
    }

    /// The right password: the client's count starts again.
    pub(crate) fn succeeded(&self, attempt: &Attempt) {
        self.lock().forget(attempt);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Windows<Attempt>> {
        self.failures.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use super::*;

    fn client(ip: &str) -> Client {
        Client::of(ip.parse::<IpAddr>().expect("an address"))
    }

    #[test]
    fn the_fifth_failure_throttles_that_client_at_that_login_only() {
        let throttle = LoginThrottle::new().expect("randomness");
        let now = Duration::from_secs(1_000);
        let from_a = throttle.attempt("stuttgart", "clerk.a", client("192.0.2.1"), 0);
        for _ in 0..MAX_FAILURES {
            assert!(!throttle.throttled(&from_a, now));
            throttle.failed(&from_a, now);
        }
        assert!(throttle.throttled(&from_a, now));
        // Another client, another login, an unlocked account: not throttled.
        let others = [
            throttle.attempt("stuttgart", "clerk.a", client("192.0.2.2"), 0),
            throttle.attempt("stuttgart", "clerk.b", client("192.0.2.1"), 0),
            throttle.attempt("ettlingen", "clerk.a", client("192.0.2.1"), 0),
            throttle.attempt("stuttgart", "clerk.a", client("192.0.2.1"), 1),
        ];
        for other in others {
            assert_ne!(other, from_a);
            assert!(!throttle.throttled(&other, now));
        }
        // A /64 is one client.
        let v6 = throttle.attempt("stuttgart", "clerk.a", client("2001:db8::1"), 0);
        for _ in 0..MAX_FAILURES {
            throttle.failed(&v6, now);
        }
        let same_64 = throttle.attempt("stuttgart", "clerk.a", client("2001:db8::ffff"), 0);
        assert!(throttle.throttled(&same_64, now));
        // The window passes.
        let later = now + Duration::try_from(LOCKOUT).expect("positive");
        assert!(!throttle.throttled(&from_a, later));
    }
}
