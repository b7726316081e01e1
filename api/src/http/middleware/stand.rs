//! Read-your-writes across the in-memory read models (ADR 0029): an answer to a request that
//! wrote events carries the position it wrote up to in the `videoamt_stand` cookie, and a
//! request carrying it has its reads of the hot read models wait for that position, on
//! whichever server of the log it lands. Nothing else is waited for: without the cookie, or
//! once memory has folded that far, a read is a lookup in memory.
//!
//! The cookie holds a log position only, nothing about the person; it lives 30 seconds,
//! long enough for the page that follows a form.

use axum::extract::{Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;
use videoamt_adapters::bus::written;
use videoamt_core::event::GlobalPosition;

use crate::http::AppState;

pub(crate) const COOKIE: &str = "videoamt_stand";
const MAX_AGE_SECONDS: u32 = 30;

/// The position the request's cookie says its reads must see.
fn must_see(request: &Request) -> Option<GlobalPosition> {
    request
        .headers()
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().strip_prefix(COOKIE)?.strip_prefix('='))
        .filter_map(|n| n.parse::<GlobalPosition>().ok())
        .max()
}

pub async fn read_your_writes(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let before = must_see(&request);
    let work = next.run(request);
    let (mut response, wrote) = match before {
        Some(position) => {
            written::noting(videoamt_projections::memory::must_see(position, work)).await
        }
        None => written::noting(work).await,
    };
    // A refusal that still recorded something (a failed login) has no page to follow up.
    let answered = response.status().is_success() || response.status().is_redirection();
    if answered && wrote > before.unwrap_or(0) {
        let secure = if state.public_url.starts_with("https://") {
            "; Secure"
        } else {
            ""
        };
        let cookie = format!(
            "{COOKIE}={wrote}; Path=/; Max-Age={MAX_AGE_SECONDS}; HttpOnly; SameSite=Lax{secure}"
        );
        if let Ok(value) = HeaderValue::from_str(&cookie) {
            response.headers_mut().append(header::SET_COOKIE, value);
        }
    }
    response
}
