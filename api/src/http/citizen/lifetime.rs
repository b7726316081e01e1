//! How long a citizen's link may change things. It reads for as long as the municipality keeps
//! the appointment's data (`link_expiry`), but it writes only until the visit is over
//! (`core::domain::appointment::writes_end`): the appointment's end, or the end of a session
//! that ran over; the feedback and the payment a day longer. One layer over every route that
//! takes a link, so that no write route of today or tomorrow can forget it: a write is any
//! request but GET and HEAD, and the room's socket, which carries form entries.
//!
//! The layer answers only for links that open an appointment: a bad or expired link goes on to
//! the route, which answers it as it always did.

use axum::extract::{Request, State};
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use videoamt_core::domain::DomainEvent;
use videoamt_core::domain::appointment::{CitizenWrite, Visit, writes_end};

use crate::http::AppState;
use crate::http::error::Error;

/// The link and the kind of write a request is, if it is one.
fn write_of<'p>(method: &Method, path: &'p str, upgrade: bool) -> Option<(&'p str, CitizenWrite)> {
    let reads = matches!(*method, Method::GET | Method::HEAD);
    if let Some(rest) = path.strip_prefix("/api/v1/appointments/by-token/") {
        let (token, action) = rest.split_once('/')?;
        return (!reads && !action.is_empty()).then_some((token, CitizenWrite::Visit));
    }
    let rest = path.strip_prefix("/termin/")?;
    let (token, sub) = rest.split_once('/').unwrap_or((rest, ""));
    if reads {
        // The room's socket is a GET, and it writes (joins, form entries).
        return (upgrade && sub == "raum/ws").then_some((token, CitizenWrite::Visit));
    }
    let write = if sub == "feedback" || sub == "raum/zahlung" || sub.starts_with("raum/zahlung/") {
        CitizenWrite::Aftercare
    } else {
        CitizenWrite::Visit
    };
    Some((token, write))
}

/// The layer: refuses a write through a link whose visit is over.
pub(crate) async fn writes(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let upgrade = request.headers().contains_key(header::UPGRADE);
    let Some((token, write)) = write_of(request.method(), request.uri().path(), upgrade) else {
        return next.run(request).await;
    };
    match closed(&state, token, write).await {
        Some(error) if request.uri().path().starts_with("/api/") => error.into_response(),
        Some(error) => crate::http::html::problem_page(&error),
        None => next.run(request).await,
    }
}

/// The refusal for `write` through `token`, if its time is over.
async fn closed(state: &AppState, token: &str, write: CitizenWrite) -> Option<Error> {
    // Links that open nothing are the route's to answer, as always.
    let found = super::service::by_token(state, token).await.ok()?;
    let booking = found.state.booking.as_ref()?;
    let now = state.now();
    // Before the appointment's end nothing needs to be read: every write is still open.
    if now < booking.end {
        return None;
    }
    let visit = match found.state.session {
        None => Visit::NotHeld,
        Some(session) => {
            // A store that does not answer: the route will say so itself.
            let history = state.system.history(&session.stream()).await.ok()?;
            history
                .iter()
                .find_map(|(recorded, event)| {
                    matches!(event, DomainEvent::SessionEnded(_))
                        .then_some(Visit::Ended(recorded.meta.recorded_at))
                })
                .unwrap_or(Visit::Running)
        }
    };
    let until = writes_end(&found.tenant, booking.end, visit, write);
    (now >= until).then_some(Error::LinkReadOnly {
        aftercare: write == CitizenWrite::Aftercare,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_are_everything_but_reads_and_the_socket_is_one() {
        let post = Method::POST;
        assert_eq!(
            write_of(&post, "/termin/abc/absagen", false),
            Some(("abc", CitizenWrite::Visit))
        );
        assert_eq!(
            write_of(&post, "/termin/abc/raum/dokumente", false),
            Some(("abc", CitizenWrite::Visit))
        );
        assert_eq!(
            write_of(&post, "/termin/abc/feedback", false),
            Some(("abc", CitizenWrite::Aftercare))
        );
        assert_eq!(
            write_of(&post, "/termin/abc/raum/zahlung/start", false),
            Some(("abc", CitizenWrite::Aftercare))
        );
        assert_eq!(
            write_of(&post, "/api/v1/appointments/by-token/abc/cancel", false),
            Some(("abc", CitizenWrite::Visit))
        );
        assert_eq!(
            write_of(&Method::DELETE, "/termin/abc/raum/dokumente/1", false),
            Some(("abc", CitizenWrite::Visit))
        );
        assert_eq!(
            write_of(&Method::GET, "/termin/abc/raum/ws", true),
            Some(("abc", CitizenWrite::Visit))
        );
        for (method, path) in [
            (Method::GET, "/termin/abc"),
            (Method::GET, "/termin/abc/raum/dokumente/1"),
            (Method::HEAD, "/termin/abc/warteraum"),
            (Method::GET, "/api/v1/appointments/by-token/abc"),
            (Method::POST, "/api/v1/appointments"),
            (Method::POST, "/sachbearbeitung/termin/abc/raum/einlassen"),
        ] {
            assert_eq!(write_of(&method, path, false), None, "{method} {path}");
        }
    }
}
