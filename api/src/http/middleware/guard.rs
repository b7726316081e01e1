//! What every response and every state-changing request goes through: security headers, the
//! origin check and rate limits.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::http::AppState;
use crate::http::error::Error;

/// No inline script or style anywhere, nothing from elsewhere, never framed.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
    connect-src 'self'; media-src 'self' blob:; object-src 'none'; base-uri 'none'; \
    form-action 'self'; frame-ancestors 'none'";

/// Which budget a request draws on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Budget {
    Booking,
    Token,
    Login,
}

/// Requests per client address and budget in each window. A fixed window is enough here: the
/// limits stop guessing and flooding, not fair sharing.
#[derive(Debug)]
pub struct RateLimits {
    pub booking: u32,
    pub token: u32,
    pub login: u32,
    pub window: Duration,
    used: Mutex<HashMap<(Budget, IpAddr), (Instant, u32)>>,
}

impl Default for RateLimits {
    fn default() -> Self {
        Self::new(20, 120, 10, Duration::from_secs(60))
    }
}

impl RateLimits {
    pub fn new(booking: u32, token: u32, login: u32, window: Duration) -> Self {
        Self {
            booking,
            token,
            login,
            window,
            used: Mutex::new(HashMap::new()),
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
    pub fn take(&self, budget: Budget, client: IpAddr, now: Instant) -> Result<(), u64> {
        let limit = match budget {
            Budget::Booking => self.booking,
            Budget::Token => self.token,
            Budget::Login => self.login,
        };
        let mut used = self.used.lock().unwrap_or_else(|p| p.into_inner());
        if used.len() > 100_000 {
            let window = self.window;
            used.retain(|_, (start, _)| now.duration_since(*start) < window);
        }
        let entry = used.entry((budget, client)).or_insert((now, 0));
        if now.duration_since(entry.0) >= self.window {
            *entry = (now, 0);
        }
        if entry.1 >= limit {
            let left = self.window.saturating_sub(now.duration_since(entry.0));
            return Err(left.as_secs().max(1));
        }
        entry.1 += 1;
        Ok(())
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

pub async fn guard(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let changing = !matches!(method, Method::GET | Method::HEAD | Method::OPTIONS);
    let mut response = if changing && !same_origin(request.headers()) {
        Error::ForeignOrigin.into_response()
    } else if let Some(budget) = budget_of(&method, request.uri().path()) {
        let client = request
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip());
        match state.limits.take(budget, client, Instant::now()) {
            Ok(()) => next.run(request).await,
            Err(wait) => Error::TooManyRequests(wait).into_response(),
        }
    } else {
        next.run(request).await
    };
    let headers = response.headers_mut();
    let fixed = [
        (header::CONTENT_SECURITY_POLICY, CSP),
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
        let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let other = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
        let t0 = Instant::now();
        assert_eq!(limits.take(Budget::Booking, ip, t0), Ok(()));
        assert_eq!(limits.take(Budget::Booking, ip, t0), Ok(()));
        assert_eq!(limits.take(Budget::Booking, ip, t0), Err(60));
        assert_eq!(limits.take(Budget::Booking, other, t0), Ok(()));
        assert_eq!(limits.take(Budget::Token, ip, t0), Ok(()));
        let later = t0 + Duration::from_secs(61);
        assert_eq!(limits.take(Budget::Booking, ip, later), Ok(()));
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
