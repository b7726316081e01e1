//! The daily caps on online bookings (issue 19's review). A booking makes the municipality
//! hold slots and send a mail with a text of its own to the address given, so whoever books in
//! bulk fills calendars and mails strangers. The capability link goes out only by mail, and
//! each e-mail address books at most [`BookingCapSetting::mailbox`] appointments a day at one
//! municipality, each client address (an IPv6 /64) at most [`BookingCapSetting::address`] in
//! all. The per-minute rate limit still applies before either.
//!
//! Like the login throttle, the caps live in this process's memory and hold no address: their
//! keys are a keyed hash (HMAC-SHA256 under a random key made at start and never stored). A
//! restart forgets them; each server of several counts its own.

use std::sync::Mutex;
use std::time::Duration;

use hmac::{KeyInit as _, Mac as _};

use crate::app::settings::BookingCapSetting;
use crate::http::error::Error;
use crate::http::middleware::guard::{Client, Windows};

const DAY: Duration = Duration::from_secs(24 * 60 * 60);
/// Keys held at most, each map: a few megabytes.
const MAX_KEYS: usize = 100_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Key([u8; 32]);

/// What one booking counts against, once it went through.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Counted {
    mailbox: Key,
    address: Key,
}

pub(crate) struct BookingCaps {
    setting: BookingCapSetting,
    key: [u8; 32],
    mailboxes: Mutex<Windows<Key>>,
    addresses: Mutex<Windows<Key>>,
}

impl std::fmt::Debug for BookingCaps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BookingCaps")
            .field("setting", &self.setting)
            .finish_non_exhaustive()
    }
}

impl BookingCaps {
    pub(crate) fn new(setting: BookingCapSetting) -> Result<Self, Error> {
        let mut key = [0u8; 32];
        getrandom::fill(&mut key)
            .map_err(|e| Error::internal(format!("no randomness for the booking caps: {e}")))?;
        Ok(Self {
            setting,
            key,
            mailboxes: Mutex::new(Windows::new(DAY, MAX_KEYS)),
            addresses: Mutex::new(Windows::new(DAY, MAX_KEYS)),
        })
    }

    fn hash(&self, parts: &[&[u8]]) -> Key {
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&self.key)
            .expect("HMAC takes a key of any length");
        // Each part with its length, so that no two different keys read alike.
        for part in parts {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part);
        }
        Key(mac.finalize().into_bytes().into())
    }

    /// Whether a booking of `email` at `tenant` from `client` is within the caps at `now` (the
    /// server's clock, as a duration since the Unix epoch); `Err` with the seconds until the
    /// earlier window ends when not. Counts nothing: [`BookingCaps::count`] does, once booked,
    /// so that a slot taken meanwhile or a typo costs the citizen none of the day's bookings.
    pub(crate) fn check(
        &self,
        tenant: &str,
        email: &str,
        client: Client,
        now: Duration,
    ) -> Result<Counted, Error> {
        // Mail systems treat the local part's case as the same mailbox nearly everywhere.
        let mailbox = email.trim().to_lowercase();
        let counted = Counted {
            mailbox: self.hash(&[b"mailbox", tenant.as_bytes(), mailbox.as_bytes()]),
            address: self.hash(&[b"address", &client.octets()]),
        };
        let by_mailbox = lock(&self.mailboxes).spent(&counted.mailbox, self.setting.mailbox, now);
        let by_address = lock(&self.addresses).spent(&counted.address, self.setting.address, now);
        match (by_mailbox, by_address) {
            (None, None) => Ok(counted),
            (a, b) => Err(Error::BookingCap(a.max(b).unwrap_or(1))),
        }
    }

    /// Counts a booking that went through.
    pub(crate) fn count(&self, counted: Counted, now: Duration) {
        lock(&self.mailboxes).add(&counted.mailbox, now);
        lock(&self.addresses).add(&counted.address, now);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use super::*;

    fn caps(mailbox: u32, address: u32) -> BookingCaps {
        BookingCaps::new(BookingCapSetting { mailbox, address }).expect("randomness")
    }

    fn client(ip: &str) -> Client {
        Client::of(ip.parse::<IpAddr>().expect("an address"))
    }

    fn book(caps: &BookingCaps, tenant: &str, email: &str, from: &str, now: u64) -> bool {
        let now = Duration::from_secs(now);
        match caps.check(tenant, email, client(from), now) {
            Ok(counted) => {
                caps.count(counted, now);
                true
            }
            Err(Error::BookingCap(wait)) => {
                assert!(wait >= 1 && wait <= DAY.as_secs(), "{wait}");
                false
            }
            Err(e) => panic!("{e:?}"),
        }
    }

    #[test]
    fn a_mailbox_books_its_cap_a_day_at_each_municipality_in_any_case() {
        let caps = caps(3, 100);
        let erika = |tenant, email, now| book(&caps, tenant, email, "192.0.2.1", now);
        for n in 0..3 {
            assert!(erika("ettlingen", "erika@example.org", n));
        }
        assert!(!book(
            &caps,
            "ettlingen",
            " Erika@Example.ORG",
            "198.51.100.7",
            10
        ));
        // Another municipality, another mailbox: each their own count.
        assert!(erika("stuttgart", "erika@example.org", 11));
        assert!(erika("ettlingen", "max@example.org", 12));
        // A day after the first booking the mailbox books again.
        assert!(erika("ettlingen", "erika@example.org", 86_400));
    }

    #[test]
    fn an_address_books_its_cap_a_day_in_all_and_a_64_is_one_address() {
        let caps = caps(100, 2);
        assert!(book(&caps, "ettlingen", "a@example.org", "2001:db8::1", 0));
        assert!(book(&caps, "stuttgart", "b@example.org", "2001:db8::2", 1));
        assert!(!book(
            &caps,
            "ettlingen",
            "c@example.org",
            "2001:db8::ffff",
            2
        ));
        assert!(book(
            &caps,
            "ettlingen",
            "c@example.org",
            "2001:db8:0:1::1",
            3
        ));
    }

    #[test]
    fn a_refused_booking_counts_nothing() {
        let caps = caps(1, 100);
        let erika = |now| book(&caps, "ettlingen", "erika@example.org", "192.0.2.1", now);
        // Checked, then not booked (the slot was gone): still one booking left.
        caps.check(
            "ettlingen",
            "erika@example.org",
            client("192.0.2.1"),
            Duration::ZERO,
        )
        .expect("within the caps");
        assert!(erika(1));
        assert!(!erika(2));
    }
}
