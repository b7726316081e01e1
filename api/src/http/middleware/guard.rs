//! What every response and every state-changing request goes through: security headers, the
//! origin check and rate limits.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::app::settings::IpRange;
use crate::http::AppState;
use crate::http::error::Error;

/// No inline script or style anywhere, nothing from elsewhere, never framed. `connect-src`
/// is completed by [`content_security_policy`] with the room's WebSocket.
const CSP_BEFORE_CONNECT: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
    connect-src 'self'";
const CSP_AFTER_CONNECT: &str = "; media-src 'self' blob:; object-src 'none'; base-uri 'none'; \
    form-action 'self'; frame-ancestors 'none'";

/// The features a page may use, each to the server's own origin: camera, microphone and the
/// autoplay of the video on the room's pages (the call and the pre-call check), nothing on
/// the others. Every other feature a browser knows is denied everywhere (ADR 0025).
const PERMISSIONS_ROOM: &str = "camera=(self), microphone=(self), autoplay=(self), \
    display-capture=(), fullscreen=(), geolocation=(), payment=(), usb=(), serial=(), hid=(), \
    midi=(), accelerometer=(), gyroscope=(), magnetometer=(), picture-in-picture=(), \
    publickey-credentials-get=(), screen-wake-lock=(), xr-spatial-tracking=(), \
    encrypted-media=(), idle-detection=()";
const PERMISSIONS_PAGE: &str = "camera=(), microphone=(), autoplay=(), \
    display-capture=(), fullscreen=(), geolocation=(), payment=(), usb=(), serial=(), hid=(), \
    midi=(), accelerometer=(), gyroscope=(), magnetometer=(), picture-in-picture=(), \
    publickey-credentials-get=(), screen-wake-lock=(), xr-spatial-tracking=(), \
    encrypted-media=(), idle-detection=()";

/// The Content-Security-Policy for a server whose pages are at `public_url`: `connect-src`
/// names, beside `'self'`, the WebSocket of the own origin (`ws://` for an http, `wss://` for
/// an https URL), which browsers before CSP Level 3 do not count as `'self'`.
pub(crate) fn content_security_policy(public_url: &str) -> HeaderValue {
    let socket = public_url
        .strip_prefix("https://")
        .map(|rest| ("wss://", rest))
        .or_else(|| {
            public_url
                .strip_prefix("http://")
                .map(|rest| ("ws://", rest))
        })
        .map(|(scheme, rest)| (scheme, rest.split('/').next().unwrap_or("")))
        .filter(|(_, authority)| {
            !authority.is_empty()
                && authority
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
        });
    let connect = match socket {
        Some((scheme, authority)) => format!(" {scheme}{authority}"),
        None => String::new(),
    };
    HeaderValue::from_str(&format!("{CSP_BEFORE_CONNECT}{connect}{CSP_AFTER_CONNECT}"))
        .unwrap_or_else(|_| {
            HeaderValue::from_str(&format!("{CSP_BEFORE_CONNECT}{CSP_AFTER_CONNECT}"))
                .expect("the fixed policy is a valid header")
        })
}

/// The room's pages: the pre-call check, the citizen's waiting room and call, the clerk's
/// room. They may use camera and microphone.
fn is_room_page(path: &str) -> bool {
    let segments: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    matches!(
        segments.as_slice(),
        ["", "termin", _, "warteraum" | "technik"] | ["", "sachbearbeitung", "termin", _, "raum"]
    )
}

/// Which budget a request draws on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Budget {
    Booking,
    Token,
    Login,
}

/// Who a request is from, as far as limits are concerned: the client's IP address, an IPv6
/// one cut to its /64. One host or household gets a /64 and picks addresses in it at will
/// (privacy extensions), so counting whole addresses would give it 2^64 budgets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Client(IpAddr);

impl Client {
    pub fn of(ip: IpAddr) -> Self {
        match ip.to_canonical() {
            IpAddr::V6(v6) => Self(IpAddr::V6(Ipv6Addr::from(
                u128::from(v6) & (u128::MAX << 64),
            ))),
            v4 => Self(v4),
        }
    }

    /// The bytes that name the client, for a keyed hash.
    pub(crate) fn octets(&self) -> Vec<u8> {
        match self.0 {
            IpAddr::V4(a) => a.octets().to_vec(),
            IpAddr::V6(a) => a.octets().to_vec(),
        }
    }

    /// The client of a request whose TCP peer is `peer`: the peer itself, unless it is one of
    /// the `trusted` proxies. Then the proxies' `X-Forwarded-For` is read from the right, each
    /// entry added by the hop after it, and the first entry that is no trusted proxy is the
    /// client; whatever stands left of it was said by that client and proves nothing. An entry
    /// that is no address cannot come from a trusted proxy, so the last trusted hop counts.
    pub fn from_request(peer: IpAddr, headers: &HeaderMap, trusted: &[IpRange]) -> Self {
        let is_trusted = |ip: IpAddr| trusted.iter().any(|range| range.contains(ip));
        if !is_trusted(peer) {
            return Self::of(peer);
        }
        let entries: Vec<&str> = (headers.get_all("x-forwarded-for").iter())
            .flat_map(|value| value.to_str().unwrap_or("").split(','))
            .map(str::trim)
            .collect();
        let mut client = peer;
        for entry in entries.into_iter().rev() {
            let Some(ip) = forwarded_address(entry) else {
                break;
            };
            client = ip;
            if !is_trusted(ip) {
                break;
            }
        }
        Self::of(client)
    }
}

/// The client the guard found for this request (the unspecified address outside the guard).
impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Client {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(parts
            .extensions
            .get::<Client>()
            .copied()
            .unwrap_or(Self(IpAddr::V4(Ipv4Addr::UNSPECIFIED))))
    }
}

/// An `X-Forwarded-For` entry's address; some proxies add the port (`192.0.2.7:4711`,
/// `[2001:db8::1]:4711`).
fn forwarded_address(entry: &str) -> Option<IpAddr> {
    if let Ok(ip) = entry.parse::<IpAddr>() {
        return Some(ip);
    }
    entry.parse::<SocketAddr>().ok().map(|s| s.ip())
}

/// Counters per key in fixed windows, with bounded memory. Times are durations since an
/// origin the caller keeps (the rate limits: when they were made; the login throttle: the
/// server's clock).
///
/// Expired windows are swept once per window, not on every request, so the cost of sweeping
/// is spread over the requests of a whole window. Between sweeps at most `cap` keys are held:
/// a new key that finds the map full evicts an arbitrary held one (the map's iteration order,
/// seeded per process, so nobody can aim it). Evicting only ever forgets a count, which makes
/// a limit more lenient for that one key and never refuses anybody, so a flood of fresh keys
/// cannot lock anyone out. Nor does it buy much: to have a given key forgotten, a flood needs
/// on the order of `cap` requests from fresh sources, far more than any one budget it could
/// win back; a full map, not a refusal, is what a flood achieves.
#[derive(Debug)]
pub(crate) struct Windows<K> {
    window: Duration,
    cap: usize,
    counts: HashMap<K, (Duration, u32)>,
    next_sweep: Option<Duration>,
}

impl<K: Eq + std::hash::Hash + Clone> Windows<K> {
    pub(crate) fn new(window: Duration, cap: usize) -> Self {
        Self {
            window,
            cap: cap.max(1),
            counts: HashMap::new(),
            next_sweep: None,
        }
    }

    /// `Some(seconds until the window ends)` when `key` has used `limit` in its window.
    pub(crate) fn spent(&mut self, key: &K, limit: u32, now: Duration) -> Option<u64> {
        self.sweep(now);
        let (start, used) = *self.counts.get(key)?;
        let age = now.saturating_sub(start);
        (age < self.window && used >= limit)
            .then(|| self.window.saturating_sub(age).as_secs().max(1))
    }

    /// Counts one use of `key`.
    pub(crate) fn add(&mut self, key: &K, now: Duration) {
        self.sweep(now);
        if !self.counts.contains_key(key)
            && self.counts.len() >= self.cap
            && let Some(evicted) = self.counts.keys().next().cloned()
        {
            self.counts.remove(&evicted);
        }
        let window = self.window;
        let entry = self.counts.entry(key.clone()).or_insert((now, 0));
        if now.saturating_sub(entry.0) >= window {
            *entry = (now, 0);
        }
        entry.1 = entry.1.saturating_add(1);
    }

    /// Counts one use of `key` unless `limit` is spent: `Err(seconds to wait)`.
    pub(crate) fn take(&mut self, key: &K, limit: u32, now: Duration) -> Result<(), u64> {
        match self.spent(key, limit, now) {
            Some(wait) => Err(wait),
            None => {
                self.add(key, now);
                Ok(())
            }
        }
    }

    pub(crate) fn forget(&mut self, key: &K) {
        self.counts.remove(key);
    }

    fn sweep(&mut self, now: Duration) {
        let due = self.next_sweep.get_or_insert(now + self.window);
        if now < *due {
            return;
        }
        *due = now + self.window;
        let window = self.window;
        self.counts
            .retain(|_, (start, _)| now.saturating_sub(*start) < window);
        // A flood's peak stays allocated otherwise.
        self.counts.shrink_to_fit();
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.counts.len()
    }
}

/// Keys held by the rate limits at most: a few megabytes.
const MAX_CLIENTS: usize = 100_000;

/// Requests per client and budget in each window. A fixed window is enough here: the limits
/// stop guessing and flooding, not fair sharing.
#[derive(Debug)]
pub struct RateLimits {
    pub booking: u32,
    pub token: u32,
    pub login: u32,
    pub window: Duration,
    origin: Instant,
    used: Mutex<Windows<(Budget, Client)>>,
}

impl Default for RateLimits {
    fn default() -> Self {
        Self::new(20, 120, 10, Duration::from_secs(60))
    }
}

impl RateLimits {
    pub fn new(booking: u32, token: u32, login: u32, window: Duration) -> Self {
        Self::with_capacity(booking, token, login, window, MAX_CLIENTS)
    }

    /// With room for `cap` clients' counts at most.
    pub fn with_capacity(
        booking: u32,
        token: u32,
        login: u32,
        window: Duration,
        cap: usize,
    ) -> Self {
        Self {
            booking,
            token,
            login,
            window,
            origin: Instant::now(),
            used: Mutex::new(Windows::new(window, cap)),
        }
    }

    /// Per minute, as the settings say.
    pub fn per_minute(setting: crate::app::settings::RateLimitSetting) -> Self {
        Self::new(
            setting.booking,
            setting.token,
            setting.login,
            Duration::from_secs(60),
        )
    }

    /// Counts one request; `Err(seconds to wait)` when the budget is spent.
    pub fn take(&self, budget: Budget, client: Client, now: Instant) -> Result<(), u64> {
        let limit = match budget {
            Budget::Booking => self.booking,
            Budget::Token => self.token,
            Budget::Login => self.login,
        };
        let mut used = self.used.lock().unwrap_or_else(|p| p.into_inner());
        used.take(
            &(budget, client),
            limit,
            now.saturating_duration_since(self.origin),
        )
    }

    #[cfg(test)]
    fn held(&self) -> usize {
        self.used.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

pub(crate) fn budget_of(method: &Method, path: &str) -> Option<Budget> {
    if path.starts_with("/api/v1/appointments/by-token/") || path.starts_with("/termin/") {
        Some(Budget::Token)
    } else if *method == Method::POST && (path == "/api/v1/appointments" || path == "/buchen") {
        Some(Budget::Booking)
    } else if *method == Method::POST
        && (path == "/anmelden"
            || path == "/api/v1/login"
            // Whoever knows a password, or holds a link to set one, tries it at the pace of
            // a login.
            || path == "/konto/passwort"
            || path == "/api/v1/me/password"
            || path.starts_with("/konto/passwort/"))
    {
        Some(Budget::Login)
    } else {
        None
    }
}

/// A state-changing request must come from this server's own pages (or from a client that
/// sends no browser headers at all, like `curl`), so a foreign page cannot submit in the
/// citizen's or clerk's name. Browsers send `Sec-Fetch-Site`, which settles it; older ones only
/// `Origin`. Because every page is sent with `Referrer-Policy: no-referrer` (links carry
/// tokens), a browser's own form posts carry `Origin: null`: so `Origin` alone, without
/// `Sec-Fetch-Site`, must name this host.
fn same_origin(headers: &HeaderMap) -> bool {
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        return site == "same-origin" || site == "none";
    }
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let Some(host) = headers.get(header::HOST).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let origin = origin.to_str().unwrap_or("");
    let authority = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"));
    authority == Some(host)
}

pub async fn guard(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let room = is_room_page(request.uri().path());
    let changing = !matches!(method, Method::GET | Method::HEAD | Method::OPTIONS);
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip());
    let client = Client::from_request(
        peer,
        request.headers(),
        &state.system.settings.trusted_proxies,
    );
    // The handlers that count per client (the login throttle) read it from here.
    request.extensions_mut().insert(client);
    let mut response = if changing && !same_origin(request.headers()) {
        Error::ForeignOrigin.into_response()
    } else if let Some(budget) = budget_of(&method, request.uri().path()) {
        match state.limits.take(budget, client, Instant::now()) {
            Ok(()) => next.run(request).await,
            Err(wait) => Error::TooManyRequests(wait).into_response(),
        }
    } else {
        next.run(request).await
    };
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_SECURITY_POLICY, state.csp.clone());
    let permissions = if room {
        PERMISSIONS_ROOM
    } else {
        PERMISSIONS_PAGE
    };
    let fixed = [
        (
            header::HeaderName::from_static("permissions-policy"),
            permissions,
        ),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        // Links carry capability tokens: never send them on as a referrer.
        (header::REFERRER_POLICY, "no-referrer"),
    ];
    for (name, value) in fixed {
        headers.insert(name, HeaderValue::from_static(value));
    }
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    if state.public_url.starts_with("https://") {
        headers.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000; includeSubDomains"),
        );
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_budget_refuses_after_its_limit_and_refills_after_the_window() {
        let limits = RateLimits::new(2, 1, 1, Duration::from_secs(60));
        let ip = Client::of(IpAddr::V4(Ipv4Addr::LOCALHOST));
        let other = Client::of(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)));
        let t0 = Instant::now();
        assert_eq!(limits.take(Budget::Booking, ip, t0), Ok(()));
        assert_eq!(limits.take(Budget::Booking, ip, t0), Ok(()));
        assert_eq!(limits.take(Budget::Booking, ip, t0), Err(60));
        assert_eq!(limits.take(Budget::Booking, other, t0), Ok(()));
        assert_eq!(limits.take(Budget::Token, ip, t0), Ok(()));
        let later = t0 + Duration::from_secs(61);
        assert_eq!(limits.take(Budget::Booking, ip, later), Ok(()));
    }

    fn ip(raw: &str) -> IpAddr {
        raw.parse().expect("an address")
    }

    fn ranges(raw: &[&str]) -> Vec<IpRange> {
        raw.iter().map(|r| r.parse().expect("a range")).collect()
    }

    fn forwarded(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append("x-forwarded-for", HeaderValue::from_str(v).expect("ascii"));
        }
        h
    }

    #[test]
    fn ipv6_clients_count_by_their_64_and_mapped_ipv4_as_ipv4() {
        assert_eq!(
            Client::of(ip("2001:db8:1:2:aaaa::1")),
            Client::of(ip("2001:db8:1:2:ffff:ffff:ffff:ffff"))
        );
        assert_ne!(
            Client::of(ip("2001:db8:1:2::1")),
            Client::of(ip("2001:db8:1:3::1"))
        );
        assert_eq!(
            Client::of(ip("::ffff:192.0.2.7")),
            Client::of(ip("192.0.2.7"))
        );
        assert_ne!(Client::of(ip("192.0.2.7")), Client::of(ip("192.0.2.8")));
    }

    #[test]
    fn forwarded_for_counts_only_behind_a_trusted_proxy_and_from_the_right() {
        let trusted = ranges(&["10.0.0.0/8", "::1"]);
        let proxy = ip("10.1.2.3");
        let client = |peer: IpAddr, h: &HeaderMap| Client::from_request(peer, h, &trusted);
        // An untrusted peer's header is ignored: it cannot choose whose budget it spends.
        let spoofed = forwarded(&["198.51.100.1"]);
        assert_eq!(
            client(ip("203.0.113.9"), &spoofed),
            Client::of(ip("203.0.113.9"))
        );
        assert_eq!(
            Client::from_request(proxy, &spoofed, &[]),
            Client::of(proxy),
            "no trusted proxies: the peer is the client"
        );
        // Behind the proxy: its entry. What the client wrote left of it proves nothing.
        assert_eq!(
            client(proxy, &forwarded(&["198.51.100.1"])),
            Client::of(ip("198.51.100.1"))
        );
        assert_eq!(
            client(proxy, &forwarded(&["1.2.3.4, 198.51.100.1"])),
            Client::of(ip("198.51.100.1"))
        );
        // A chain of trusted proxies, in one header or several, with a port on one entry.
        assert_eq!(
            client(
                proxy,
                &forwarded(&["1.2.3.4, 198.51.100.1:4711", "10.9.9.9"])
            ),
            Client::of(ip("198.51.100.1"))
        );
        assert_eq!(
            client(ip("::1"), &forwarded(&["[2001:db8::7]:443, 10.0.0.2"])),
            Client::of(ip("2001:db8::1"))
        );
        // Garbage cannot come from a trusted hop: the last trusted one counts.
        assert_eq!(
            client(proxy, &forwarded(&["198.51.100.1, nonsense, 10.0.0.2"])),
            Client::of(ip("10.0.0.2"))
        );
        // Nothing forwarded, or only proxies: the left-most proxy.
        assert_eq!(client(proxy, &HeaderMap::new()), Client::of(proxy));
        assert_eq!(
            client(proxy, &forwarded(&["10.0.0.5, 10.0.0.2"])),
            Client::of(ip("10.0.0.5"))
        );
    }

    #[test]
    fn ranges_parse_addresses_and_cidrs_and_refuse_nonsense() {
        let r = ranges(&["10.0.0.0/8", "192.0.2.7", "2001:db8::/32", "0.0.0.0/0"]);
        assert!(r[0].contains(ip("10.255.0.1")));
        assert!(!r[0].contains(ip("11.0.0.1")));
        assert!(r[0].contains(ip("::ffff:10.0.0.1")));
        assert!(r[1].contains(ip("192.0.2.7")));
        assert!(!r[1].contains(ip("192.0.2.8")));
        assert!(r[2].contains(ip("2001:db8:ffff::1")));
        assert!(!r[2].contains(ip("2001:db9::1")));
        assert!(!r[2].contains(ip("10.0.0.1")));
        assert!(r[3].contains(ip("203.0.113.1")));
        for bad in ["10.0.0.0/33", "proxy", "10.0.0/8", "::/129", ""] {
            assert!(bad.parse::<IpRange>().is_err(), "{bad}");
        }
    }

    #[test]
    fn the_limits_hold_a_bounded_number_of_clients_and_sweep_once_a_window() {
        let window = Duration::from_secs(60);
        let limits = RateLimits::with_capacity(1, 1, 1, window, 100);
        let t0 = Instant::now();
        let nth = |n: u32| Client::of(IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + n)));
        // A flood of fresh clients: the map stays at its cap and nobody new is refused.
        for n in 0..1_000 {
            assert_eq!(limits.take(Budget::Login, nth(n), t0), Ok(()), "{n}");
        }
        assert_eq!(limits.held(), 100);
        // A client that is held keeps its count.
        let held = nth(5_000);
        assert_eq!(limits.take(Budget::Token, held, t0), Ok(()));
        assert_eq!(limits.take(Budget::Token, held, t0), Err(60));
        // After the window the next request sweeps what expired.
        assert_eq!(limits.take(Budget::Booking, nth(1), t0 + window), Ok(()));
        assert_eq!(limits.held(), 1);
    }

    #[test]
    fn foreign_origins_are_refused_and_header_less_clients_are_not() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("amt.example:8080"));
        assert!(same_origin(&h));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://amt.example:8080"),
        );
        assert!(same_origin(&h));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://evil.example"),
        );
        assert!(!same_origin(&h));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://amt.example:8080"),
        );
        h.insert("sec-fetch-site", HeaderValue::from_static("cross-site"));
        assert!(!same_origin(&h));
        // A browser's own form post under `Referrer-Policy: no-referrer`.
        let mut own = HeaderMap::new();
        own.insert(header::HOST, HeaderValue::from_static("amt.example:8080"));
        own.insert(header::ORIGIN, HeaderValue::from_static("null"));
        assert!(!same_origin(&own), "Origin: null alone proves nothing");
        own.insert("sec-fetch-site", HeaderValue::from_static("same-origin"));
        assert!(same_origin(&own));
        own.insert("sec-fetch-site", HeaderValue::from_static("same-site"));
        assert!(!same_origin(&own), "a sibling subdomain is not this server");
    }
}
