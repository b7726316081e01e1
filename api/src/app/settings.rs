//! Every setting of the product in one place: each is a command-line flag and a `VIDEOAMT_…`
//! environment variable, with a default that works on one machine. The store (`--store`,
//! `VIDEOAMT_STORE`), the data folder (`--data-dir`, `VIDEOAMT_DATA_DIR`), the listen address
//! (`serve --listen`, `VIDEOAMT_LISTEN`) and the log filter (`VIDEOAMT_LOG`, read before
//! anything else runs) are parsed beside these by the CLI.

use std::net::IpAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use videoamt_adapters::turn::{Turn, TurnConfigError};

const MAIL_FROM: &str = "videoberatung@localhost";
const MAIL_ATTEMPTS: u32 = 5;
const MAIL_RETRY_MS: u64 = 2_000;
const SCHEDULER_INTERVAL_MS: u64 = 60_000;
const PURGE_PAGE: u32 = 500;
/// Two minutes, as OpenTalk keeps a participant's resumption.
const RECONNECT_GRACE_SECONDS: u64 = 120;
const SESSION_IDLE_MINUTES: u32 = 30;
const LEASE_SECONDS: u64 = 15;
const MEDIA_BIND: &str = "127.0.0.1:0";
/// The largest number of calls `bench media` held under 1 % loss on the 2-core machine.
const MEDIA_MAX_CALLS: usize = 40;
const UPLOAD_MAX_BYTES: u64 = 10 * 1024 * 1024;
/// Longer than any appointment: a browser's TURN allocation ends with its credentials.
const TURN_LIFETIME_SECONDS: u64 = 6 * 3600;
/// A browser sends a request's head at once; ten seconds is generous even on a bad line.
const HEADER_READ_TIMEOUT_SECONDS: u64 = 10;
const REQUEST_TIMEOUT_SECONDS: u64 = 30;
/// Far above what one town hall's citizens and clerks open at once, far below the 1024 open
/// files of a default `ulimit -n` less the store's, the relay's and the log's.
const MAX_CONNECTIONS: usize = 768;

/// The settings of a running product; `Settings::default()` is what an empty environment gives.
#[derive(Clone, PartialEq, Eq, clap::Args)]
pub struct Settings {
    /// Where links in mails and pages point to (scheme, host, port) behind a proxy; the bound
    /// listen address when unset.
    #[arg(long, global = true, env = "VIDEOAMT_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// The SMTP relay mail goes to (`smtp://host:port`, plain SMTP). Without it mails are
    /// written as `.eml` files under the data folder's `outbox/`, listed at `/dev/outbox`.
    #[arg(long, global = true, env = "VIDEOAMT_SMTP_URL")]
    pub smtp_url: Option<String>,
    /// The sender of the product's mails.
    #[arg(long, global = true, env = "VIDEOAMT_MAIL_FROM", default_value = MAIL_FROM)]
    pub mail_from: String,
    /// How often a mail is tried before `DeliveryFailed` is recorded (at least 1).
    #[arg(long, global = true, env = "VIDEOAMT_MAIL_ATTEMPTS", default_value_t = MAIL_ATTEMPTS,
        value_parser = clap::value_parser!(u32).range(1..))]
    pub mail_attempts: u32,
    /// The wait after the first failed try of a mail, in milliseconds; doubled after each
    /// further one.
    #[arg(long, global = true, env = "VIDEOAMT_MAIL_RETRY_MS", default_value_t = MAIL_RETRY_MS)]
    pub mail_retry_ms: u64,
    /// How often the scheduler fires due reminders, no-show checks, purges and verifications,
    /// in milliseconds.
    #[arg(long, global = true, env = "VIDEOAMT_RETENTION_INTERVAL_MS",
        default_value_t = SCHEDULER_INTERVAL_MS)]
    pub retention_interval_ms: u64,
    /// Data subjects purged together, one page of due timers at a time (at least 1). Bigger
    /// pages mean fewer commits; smaller ones mean finer progress.
    #[arg(long, global = true, env = "VIDEOAMT_PURGE_PAGE", default_value_t = PURGE_PAGE,
        value_parser = page)]
    pub purge_page: u32,
    /// The key backup file the scheduler keeps (`videoamt backup keys`): written when this
    /// process takes the scheduler's duty and after every purge round that destroyed keys,
    /// each time replacing the previous file in one rename, so a destroyed key leaves the
    /// backup with its round (ADR 0027). Unset: key backups are the operator's alone.
    #[arg(long, global = true, env = "VIDEOAMT_KEY_BACKUP")]
    pub key_backup: Option<PathBuf>,
    /// Requests per minute and client address: `booking,token,login`.
    #[arg(
        long,
        global = true,
        env = "VIDEOAMT_RATE_LIMITS",
        default_value = "20,120,10"
    )]
    pub rate_limits: RateLimitSetting,
    /// Online bookings a day: `mailbox,address`. One e-mail address books at most `mailbox`
    /// appointments a day at one municipality, one client address (an IPv6 /64) at most
    /// `address` in all; so nobody fills calendars, or has the municipality send its mails to
    /// strangers, in bulk. Invitations by the clerks do not count. Each server counts its own
    /// bookings, in memory: behind a load balancer with `n` servers a mailbox gets at most `n`
    /// times as many.
    #[arg(
        long,
        global = true,
        env = "VIDEOAMT_BOOKING_CAPS",
        default_value = "3,30"
    )]
    pub booking_caps: BookingCapSetting,
    /// The reverse proxies in front of the server, as IP addresses and CIDR ranges
    /// (comma-separated, e.g. `10.0.0.0/8,::1`). A request from one of them is counted, for the
    /// rate limits and login throttles, against the right-most `X-Forwarded-For` entry that is
    /// not one of them; from any other peer the header is ignored, so nobody can choose whose
    /// budget they spend. None by default: the TCP peer is the client. IPv6 clients are
    /// counted by their /64.
    #[arg(
        long = "trusted-proxies",
        global = true,
        env = "VIDEOAMT_TRUSTED_PROXIES",
        value_delimiter = ','
    )]
    pub trusted_proxies: Vec<IpRange>,
    /// Seconds a client has to send a request's head, and the longest a kept-alive connection
    /// waits for its next request; then the connection is closed (at least 1).
    #[arg(long, global = true, env = "VIDEOAMT_HEADER_READ_TIMEOUT_SECONDS",
        default_value_t = HEADER_READ_TIMEOUT_SECONDS, value_parser = clap::value_parser!(u64).range(1..))]
    pub header_read_timeout_seconds: u64,
    /// Seconds an ordinary request may take, its body included; past it the answer is 408 (at
    /// least 1). The room's WebSocket and the clerk's live stream are long-lived and exempt;
    /// so are document uploads, which may take longer but must keep sending: a body that stalls
    /// for the header read timeout ends its request anywhere.
    #[arg(long, global = true, env = "VIDEOAMT_REQUEST_TIMEOUT_SECONDS",
        default_value_t = REQUEST_TIMEOUT_SECONDS, value_parser = clap::value_parser!(u64).range(1..))]
    pub request_timeout_seconds: u64,
    /// Connections served at once (at least 1); further ones wait in the listen queue until
    /// one closes. Every open room socket and live stream holds one.
    #[arg(long, global = true, env = "VIDEOAMT_MAX_CONNECTIONS",
        default_value_t = MAX_CONNECTIONS, value_parser = connections)]
    pub max_connections: usize,
    /// The internal address Prometheus scrapes `/metrics` at (e.g. `127.0.0.1:9100`), a
    /// listener of its own that serves nothing else; the public listener answers 404 there.
    /// Unset: no metrics are served (ADR 0025).
    #[arg(long, global = true, env = "VIDEOAMT_METRICS_LISTEN")]
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// The largest document a citizen or clerk may upload in the session room, in bytes (at
    /// least 1); a larger one is refused with 413.
    #[arg(long, global = true, env = "VIDEOAMT_UPLOAD_MAX_BYTES",
        default_value_t = UPLOAD_MAX_BYTES, value_parser = clap::value_parser!(u64).range(1..))]
    pub upload_max_bytes: u64,
    /// A folder of tenant files, one `*.toml` per municipality (checked with
    /// `videoamt tenants check DIR`); without it the two shipped examples, Ettlingen and
    /// Stuttgart. Read at start: a change takes effect at the next start.
    #[arg(long, global = true, env = "VIDEOAMT_TENANTS")]
    pub tenants: Option<PathBuf>,
    /// The key-encryption key, 32 bytes in base64; wins over `--kek-file`.
    #[arg(long, global = true, env = "VIDEOAMT_KEK", hide_env_values = true)]
    pub kek: Option<String>,
    /// A file holding the key-encryption key; else `kek` in the data folder, generated there
    /// (mode 0600) on first start.
    #[arg(long, global = true, env = "VIDEOAMT_KEK_FILE")]
    pub kek_file: Option<PathBuf>,
    /// How long a party whose connection to the room was lost may come back with the same
    /// link or page before a citizen is back in the waiting room, in seconds.
    #[arg(long, global = true, env = "VIDEOAMT_RECONNECT_GRACE_SECONDS",
        default_value_t = RECONNECT_GRACE_SECONDS)]
    pub reconnect_grace_seconds: u64,
    /// A staff session unused for this many minutes is over (it lasts 8 hours at most).
    #[arg(long, global = true, env = "VIDEOAMT_SESSION_IDLE_MINUTES",
        default_value_t = SESSION_IDLE_MINUTES)]
    pub session_idle_minutes: u32,
    /// How long a process holds a duty (the outbox, the scheduler) without renewing it, in
    /// seconds. Another process serving the same log takes the duty over this long after the
    /// holder died; the holder renews every third of it (ADR 0023).
    #[arg(long, global = true, env = "VIDEOAMT_LEASE_SECONDS", default_value_t = LEASE_SECONDS,
        value_parser = clap::value_parser!(u64).range(3..))]
    pub lease_seconds: u64,
    /// The UDP address the media relay listens on, one socket for every call. A concrete
    /// address (browsers are told it as the candidate), port 0 picks one; the default serves
    /// browsers on this machine only.
    #[arg(long, global = true, env = "VIDEOAMT_MEDIA_BIND", default_value = MEDIA_BIND)]
    pub media_bind: std::net::SocketAddr,
    /// The public address announced to browsers besides the bound one, behind 1:1 NAT.
    #[arg(long, global = true, env = "VIDEOAMT_MEDIA_ANNOUNCE_IP")]
    pub media_announce_ip: Option<std::net::IpAddr>,
    /// Concurrent calls the relay takes on; one more is refused with a German message while
    /// the running calls go on. Measured with `videoamt bench media` (ADR 0015).
    #[arg(long, global = true, env = "VIDEOAMT_MEDIA_MAX_CALLS",
        default_value_t = MEDIA_MAX_CALLS)]
    pub media_max_calls: usize,
    /// TURN servers for browsers on networks without UDP (`turn:host:3478?transport=tcp`,
    /// `turns:host:443?transport=tcp`; comma-separated), a coturn with `use-auth-secret`
    /// (ADR 0017). None by default: browsers reach the relay directly.
    #[arg(
        long = "turn-url",
        global = true,
        env = "VIDEOAMT_TURN_URLS",
        value_delimiter = ','
    )]
    pub turn_urls: Vec<String>,
    /// The TURN server's `static-auth-secret`; needed with `--turn-url`.
    #[arg(
        long,
        global = true,
        env = "VIDEOAMT_TURN_SECRET",
        hide_env_values = true
    )]
    pub turn_secret: Option<String>,
    /// How long the TURN credentials handed to a browser stay valid, in seconds.
    #[arg(long, global = true, env = "VIDEOAMT_TURN_LIFETIME_SECONDS",
        default_value_t = TURN_LIFETIME_SECONDS)]
    pub turn_lifetime_seconds: u64,
    /// Browsers use only the TURN server, never a direct path to the relay: for a relay that
    /// browsers cannot reach themselves.
    #[arg(long, global = true, env = "VIDEOAMT_TURN_RELAY_ONLY")]
    pub turn_relay_only: bool,
    /// The HTTP SMS gateway Handy-TANs go to (`http://host:port/path`, JSON `to` and `text`).
    /// Without it every SMS is filed in the outbox of the data folder, listed at
    /// `/dev/outbox`: a sandbox, nothing is sent.
    #[arg(long, global = true, env = "VIDEOAMT_SMS_URL")]
    pub sms_url: Option<String>,
    /// The gateway's bearer token.
    #[arg(
        long,
        global = true,
        env = "VIDEOAMT_SMS_TOKEN",
        hide_env_values = true
    )]
    pub sms_token: Option<String>,
    /// The export folder signed forms are handed over to for the case system's import
    /// (`{folder}/{case system}/{appointment}/akte.json` and the PDFs). It must lie outside
    /// the data folder, which the purge scrubs; by default it is `fachverfahren-export` beside
    /// the data folder.
    #[arg(long, global = true, env = "VIDEOAMT_CASE_EXPORT_DIR")]
    pub case_export_dir: Option<PathBuf>,
    /// The folder of the municipalities' seals for signed forms (ADR 0018): per municipality
    /// `{tenant}.key.pem` (its PKCS#8 P-256 key, mode 0600) and `{tenant}.chain.pem` (its seal
    /// certificate first, then the issuers), e.g. `ettlingen.key.pem`. A municipality with
    /// neither file there seals with a self-signed demo certificate made in the data folder's
    /// `seal/`, which is not for production. `serve` loads every seal at start and refuses to
    /// start on a file it cannot use.
    #[arg(long, global = true, env = "VIDEOAMT_SEAL_DIR")]
    pub seal_dir: Option<PathBuf>,
    /// The case system's HTTP import (`http://host:port/path`, JSON with the PDFs in base64,
    /// answering with a `reference`); it replaces the export folder.
    #[arg(long, global = true, env = "VIDEOAMT_CASE_SYSTEM_URL")]
    pub case_system_url: Option<String>,
    /// The case system's bearer token.
    #[arg(
        long,
        global = true,
        env = "VIDEOAMT_CASE_SYSTEM_TOKEN",
        hide_env_values = true
    )]
    pub case_system_token: Option<String>,
    /// The payment provider's base URL (`http://host[:port]/path`, the protocol of ADR 0019).
    /// Unset: the built-in sandbox at `/sandbox/zahlung` (no real payment), reached at the
    /// server's own listen address and served only then.
    #[arg(long, global = true, env = "VIDEOAMT_PAYMENT_URL")]
    pub payment_url: Option<String>,
    /// The API token sent to the payment provider; needed with `--payment-url`. Unset for the
    /// sandbox: a random one each start.
    #[arg(
        long,
        global = true,
        env = "VIDEOAMT_PAYMENT_TOKEN",
        hide_env_values = true
    )]
    pub payment_token: Option<String>,
    /// The secret the payment provider signs its callbacks with (HMAC-SHA256); needed with
    /// `--payment-url`. Unset for the sandbox: a random one each start.
    #[arg(
        long,
        global = true,
        env = "VIDEOAMT_PAYMENT_SECRET",
        hide_env_values = true
    )]
    pub payment_secret: Option<String>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            public_url: None,
            smtp_url: None,
            mail_from: MAIL_FROM.to_owned(),
            mail_attempts: MAIL_ATTEMPTS,
            mail_retry_ms: MAIL_RETRY_MS,
            retention_interval_ms: SCHEDULER_INTERVAL_MS,
            purge_page: PURGE_PAGE,
            key_backup: None,
            rate_limits: RateLimitSetting::default(),
            booking_caps: BookingCapSetting::default(),
            trusted_proxies: Vec::new(),
            header_read_timeout_seconds: HEADER_READ_TIMEOUT_SECONDS,
            request_timeout_seconds: REQUEST_TIMEOUT_SECONDS,
            max_connections: MAX_CONNECTIONS,
            metrics_listen: None,
            upload_max_bytes: UPLOAD_MAX_BYTES,
            kek: None,
            kek_file: None,
            tenants: None,
            reconnect_grace_seconds: RECONNECT_GRACE_SECONDS,
            session_idle_minutes: SESSION_IDLE_MINUTES,
            lease_seconds: LEASE_SECONDS,
            media_bind: MEDIA_BIND.parse().expect("a valid default"),
            media_announce_ip: None,
            media_max_calls: MEDIA_MAX_CALLS,
            turn_urls: Vec::new(),
            turn_secret: None,
            turn_lifetime_seconds: TURN_LIFETIME_SECONDS,
            turn_relay_only: false,
            sms_url: None,
            sms_token: None,
            case_export_dir: None,
            seal_dir: None,
            case_system_url: None,
            case_system_token: None,
            payment_url: None,
            payment_token: None,
            payment_secret: None,
        }
    }
}

// The KEK must never reach a log line.
impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("public_url", &self.public_url)
            .field("smtp_url", &self.smtp_url)
            .field("mail_from", &self.mail_from)
            .field("mail_attempts", &self.mail_attempts)
            .field("mail_retry_ms", &self.mail_retry_ms)
            .field("retention_interval_ms", &self.retention_interval_ms)
            .field("purge_page", &self.purge_page)
            .field("rate_limits", &self.rate_limits)
            .field("booking_caps", &self.booking_caps)
            .field("trusted_proxies", &self.trusted_proxies)
            .field(
                "header_read_timeout_seconds",
                &self.header_read_timeout_seconds,
            )
            .field("request_timeout_seconds", &self.request_timeout_seconds)
            .field("max_connections", &self.max_connections)
            .field("metrics_listen", &self.metrics_listen)
            .field("upload_max_bytes", &self.upload_max_bytes)
            .field("kek", &self.kek.as_ref().map(|_| "…"))
            .field("kek_file", &self.kek_file)
            .field("reconnect_grace_seconds", &self.reconnect_grace_seconds)
            .field("session_idle_minutes", &self.session_idle_minutes)
            .field("lease_seconds", &self.lease_seconds)
            .field("media_bind", &self.media_bind)
            .field("media_announce_ip", &self.media_announce_ip)
            .field("media_max_calls", &self.media_max_calls)
            .field("turn_urls", &self.turn_urls)
            .field("turn_secret", &self.turn_secret.as_ref().map(|_| "…"))
            .field("turn_lifetime_seconds", &self.turn_lifetime_seconds)
            .field("turn_relay_only", &self.turn_relay_only)
            .field("sms_url", &self.sms_url)
            .field("sms_token", &self.sms_token.as_ref().map(|_| "…"))
            .field("case_export_dir", &self.case_export_dir)
            .field("seal_dir", &self.seal_dir)
            .field("case_system_url", &self.case_system_url)
            .field(
                "case_system_token",
                &self.case_system_token.as_ref().map(|_| "…"),
            )
            .field("payment_url", &self.payment_url)
            .field("payment_token", &self.payment_token.as_ref().map(|_| "…"))
            .field("payment_secret", &self.payment_secret.as_ref().map(|_| "…"))
            .finish()
    }
}

impl Settings {
    /// The SMTP relay, if one is set (an empty value counts as none).
    pub fn smtp(&self) -> Option<&str> {
        self.smtp_url.as_deref().filter(|u| !u.is_empty())
    }

    /// The payment provider, if one is set (empty counts as none: the sandbox).
    pub fn payment_url(&self) -> Option<&str> {
        self.payment_url.as_deref().filter(|u| !u.is_empty())
    }

    pub fn payment_token(&self) -> Option<&str> {
        self.payment_token.as_deref().filter(|t| !t.is_empty())
    }

    pub fn payment_secret(&self) -> Option<&str> {
        self.payment_secret.as_deref().filter(|s| !s.is_empty())
    }

    pub fn mail_retry(&self) -> Duration {
        Duration::from_millis(self.mail_retry_ms)
    }

    pub fn scheduler_interval(&self) -> Duration {
        Duration::from_millis(self.retention_interval_ms)
    }

    pub fn session_idle(&self) -> time::Duration {
        time::Duration::minutes(i64::from(self.session_idle_minutes.max(1)))
    }

    pub fn lease(&self) -> Duration {
        Duration::from_secs(self.lease_seconds)
    }

    pub fn header_read_timeout(&self) -> Duration {
        Duration::from_secs(self.header_read_timeout_seconds)
    }

    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs(self.request_timeout_seconds)
    }

    pub fn reconnect_grace(&self) -> Duration {
        Duration::from_secs(self.reconnect_grace_seconds)
    }

    /// The TURN servers browsers are given, if any are set (empty URLs count as none).
    pub fn turn(&self) -> Result<Option<Turn>, TurnConfigError> {
        let urls: Vec<String> = (self.turn_urls.iter())
            .map(|u| u.trim().to_owned())
            .filter(|u| !u.is_empty())
            .collect();
        if urls.is_empty() {
            return Ok(None);
        }
        let secret = self.turn_secret.as_deref().unwrap_or("");
        let lifetime = Duration::from_secs(self.turn_lifetime_seconds);
        Turn::new(urls, secret, lifetime, self.turn_relay_only).map(Some)
    }
}

fn page(raw: &str) -> Result<u32, String> {
    match raw.parse::<u32>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err("a number of at least 1".to_owned()),
    }
}

fn connections(raw: &str) -> Result<usize, String> {
    match raw.parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err("a number of at least 1".to_owned()),
    }
}

/// An IP address or a CIDR range of them (`192.0.2.7`, `10.0.0.0/8`, `2001:db8::/32`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpRange {
    base: IpAddr,
    prefix: u8,
}

impl IpRange {
    /// Whether `ip` lies in the range; an IPv4 address written as IPv6 (`::ffff:10.0.0.1`) is
    /// the IPv4 address it names.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.base, ip.to_canonical()) {
            (IpAddr::V4(base), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(base) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(base), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(base) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl FromStr for IpRange {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        let expected = || format!("{raw:?} is no IP address or CIDR range (`10.0.0.0/8`, `::1`)");
        let (address, prefix) = match raw.trim().split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (raw.trim(), None),
        };
        let base = address
            .parse::<IpAddr>()
            .map_err(|_| expected())?
            .to_canonical();
        let bits = if base.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => bits,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= bits)
                .ok_or_else(expected)?,
        };
        Ok(Self { base, prefix })
    }
}

/// Requests per minute and client address for each rate-limited budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimitSetting {
    pub booking: u32,
    pub token: u32,
    pub login: u32,
}

impl Default for RateLimitSetting {
    fn default() -> Self {
        Self {
            booking: 20,
            token: 120,
            login: 10,
        }
    }
}

impl FromStr for RateLimitSetting {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        let numbers: Result<Vec<u32>, _> = raw.split(',').map(|p| p.trim().parse()).collect();
        match numbers.as_deref() {
            Ok([booking, token, login]) => Ok(Self {
                booking: *booking,
                token: *token,
                login: *login,
            }),
            _ => Err("three numbers: booking,token,login (requests per minute)".to_owned()),
        }
    }
}

/// Online bookings a day per mailbox and municipality, and per client address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BookingCapSetting {
    pub mailbox: u32,
    pub address: u32,
}

impl Default for BookingCapSetting {
    fn default() -> Self {
        Self {
            mailbox: 3,
            address: 30,
        }
    }
}

impl FromStr for BookingCapSetting {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        let numbers: Result<Vec<u32>, _> = raw.split(',').map(|p| p.trim().parse()).collect();
        match numbers.as_deref() {
            Ok([mailbox, address]) if *mailbox > 0 && *address > 0 => Ok(Self {
                mailbox: *mailbox,
                address: *address,
            }),
            _ => {
                Err("two numbers of at least 1: mailbox,address (online bookings a day)".to_owned())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Only {
        #[command(flatten)]
        settings: Settings,
    }

    #[test]
    fn the_flags_defaults_are_the_default_settings() {
        let parsed = Only::try_parse_from(["videoamt"])
            .expect("defaults parse")
            .settings;
        let default = Settings::default();
        // A variable set in the test's own environment wins over the default, as it should.
        let unset = |var: &str| std::env::var_os(var).is_none();
        if unset("VIDEOAMT_MAIL_FROM") {
            assert_eq!(parsed.mail_from, default.mail_from);
        }
        if unset("VIDEOAMT_MAIL_ATTEMPTS") {
            assert_eq!(parsed.mail_attempts, default.mail_attempts);
        }
        if unset("VIDEOAMT_MAIL_RETRY_MS") {
            assert_eq!(parsed.mail_retry_ms, default.mail_retry_ms);
        }
        if unset("VIDEOAMT_RETENTION_INTERVAL_MS") {
            assert_eq!(parsed.retention_interval_ms, default.retention_interval_ms);
        }
        if unset("VIDEOAMT_PURGE_PAGE") {
            assert_eq!(parsed.purge_page, default.purge_page);
        }
        if unset("VIDEOAMT_RATE_LIMITS") {
            assert_eq!(parsed.rate_limits, default.rate_limits);
        }
        if unset("VIDEOAMT_BOOKING_CAPS") {
            assert_eq!(parsed.booking_caps, default.booking_caps);
        }
        if unset("VIDEOAMT_UPLOAD_MAX_BYTES") {
            assert_eq!(parsed.upload_max_bytes, default.upload_max_bytes);
        }
        if unset("VIDEOAMT_SEAL_DIR") {
            assert_eq!(parsed.seal_dir, None, "demo seals by default");
        }
        if unset("VIDEOAMT_PAYMENT_URL") {
            assert_eq!(parsed.payment_url, None, "the built-in sandbox by default");
        }
        if unset("VIDEOAMT_TURN_URLS") {
            assert_eq!(parsed.turn_urls, default.turn_urls);
            assert!(
                default.turn().expect("valid").is_none(),
                "no TURN by default"
            );
        }
    }

    #[test]
    fn turn_servers_need_their_secret_and_never_show_it() {
        let parsed = |args: &[&str]| {
            let mut all = vec!["videoamt"];
            all.extend(args);
            Only::try_parse_from(all).expect("parsed").settings
        };
        let two = parsed(&[
            "--turn-url",
            "turn:turn.example.org:3478?transport=tcp, turns:turn.example.org:443?transport=tcp",
            "--turn-secret",
            "sehr-geheim",
            "--turn-relay-only",
        ]);
        let turn = two.turn().expect("valid").expect("configured");
        assert_eq!(turn.urls().len(), 2);
        assert!(turn.relay_only());
        assert!(!format!("{two:?}").contains("sehr-geheim"));
        let without_secret = parsed(&["--turn-url", "turn:turn.example.org"]);
        assert_eq!(
            without_secret.turn().unwrap_err(),
            TurnConfigError::NoSecret
        );
        let not_turn = parsed(&["--turn-url", "stun:x", "--turn-secret", "s"]);
        assert!(matches!(not_turn.turn(), Err(TurnConfigError::BadUrl(_))));
    }

    #[test]
    fn the_payment_providers_credentials_never_show() {
        let parsed = Only::try_parse_from([
            "videoamt",
            "--payment-url",
            "http://zahlung.example:8090/api",
            "--payment-token",
            "sehr-geheimes-token",
            "--payment-secret",
            "sehr-geheimes-secret",
        ])
        .expect("parsed")
        .settings;
        assert_eq!(
            parsed.payment_url(),
            Some("http://zahlung.example:8090/api")
        );
        let shown = format!("{parsed:?}");
        assert!(!shown.contains("sehr-geheim"), "{shown}");
        assert!(shown.contains("zahlung.example"), "{shown}");
    }

    #[test]
    fn bad_values_are_refused_with_what_is_expected() {
        let err = Only::try_parse_from(["videoamt", "--rate-limits", "1,2"])
            .err()
            .expect("refused");
        assert!(err.to_string().contains("booking,token,login"), "{err}");
        assert!(Only::try_parse_from(["videoamt", "--purge-page", "0"]).is_err());
        assert!(Only::try_parse_from(["videoamt", "--mail-attempts", "0"]).is_err());
        assert!(Only::try_parse_from(["videoamt", "--upload-max-bytes", "0"]).is_err());
        let ok = Only::try_parse_from(["videoamt", "--rate-limits", "1, 2,3"]).expect("parsed");
        assert_eq!(
            ok.settings.rate_limits,
            RateLimitSetting {
                booking: 1,
                token: 2,
                login: 3
            }
        );
        for bad in ["3", "0,30", "3,0", "3,30,1", "drei,30"] {
            let err = Only::try_parse_from(["videoamt", "--booking-caps", bad])
                .err()
                .expect("refused");
            assert!(err.to_string().contains("mailbox,address"), "{bad}: {err}");
        }
        let ok = Only::try_parse_from(["videoamt", "--booking-caps", "5, 50"]).expect("parsed");
        assert_eq!(
            ok.settings.booking_caps,
            BookingCapSetting {
                mailbox: 5,
                address: 50
            }
        );
    }
}
