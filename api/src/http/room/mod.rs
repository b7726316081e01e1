//! The session room (issues 16 and 17): the pre-call check, the room's WebSocket (signaling
//! and room events), the clerk's admission, identity check, documents and payment. Live updates come
//! from `workers::live`, the feed the clerk's SSE stream uses, and from the room hub, which
//! tells a session's sockets at once what the other side did.

pub(crate) mod access;
pub(crate) mod documents;
pub(crate) mod feedback;
pub(crate) mod forms;
pub(crate) mod handover;
pub(crate) mod hub;
pub(crate) mod pages;
pub(crate) mod payment;
pub(crate) mod precheck;
pub(crate) mod signing;
pub(crate) mod socket;
pub(crate) mod steer;

use axum::Router;
use axum::routing::{get, post};

use crate::http::AppState;

/// The room's WebSockets: long-lived, so outside the request deadline. Like the room's other
/// routes, they are not part of the JSON API, so not in the OpenAPI document.
pub(crate) fn sockets() -> Router<AppState> {
    Router::new()
        .route("/termin/{token}/raum/ws", get(socket::citizen))
        .route("/sachbearbeitung/termin/{id}/raum/ws", get(socket::clerk))
}

/// The room's routes but its sockets. They are pages, not part of the JSON API, so they are not
/// in the OpenAPI document (like the other pages).
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/termin/{token}/technik", get(precheck::page))
        .route("/termin/{token}/technik/messung", post(precheck::measure))
        .route("/sachbearbeitung/termin/{id}/raum", get(pages::clerk_room))
        .route(
            "/sachbearbeitung/termin/{id}/raum/einlassen",
            post(pages::admit),
        )
        .route(
            "/sachbearbeitung/termin/{id}/raum/zurueckschicken",
            post(pages::send_back),
        )
        .route(
            "/sachbearbeitung/termin/{id}/raum/entfernen",
            post(pages::remove),
        )
        .route(
            "/sachbearbeitung/termin/{id}/raum/beenden",
            post(pages::end),
        )
        .route(
            "/sachbearbeitung/termin/{id}/raum/uebergabe",
            post(handover::hand_over),
        )
        .route(
            "/sachbearbeitung/termin/{id}/raum/identitaet",
            post(pages::identity),
        )
}
