//! The citizen's JSON API under `/api/v1/`: catalogue, free slots, booking, and what the
//! capability link of the confirmation mail allows.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;

use super::service::{
    self as citizen, AppointmentView, Booked, BookingRequest, CancelRequest, RescheduleRequest,
    SlotQuery, SlotsView, TenantView,
};
use crate::http::AppState;
use crate::http::error::{Error, Problem};
use crate::http::extract::{ApiJson, ApiQuery};
use crate::http::middleware::guard::Client;

/// The catalogue: municipalities, their departments and the services offered by video.
#[utoipa::path(get, path = "/api/v1/catalogue", tag = "Bürger",
    responses((status = 200, description = "Alle Kommunen mit Bereichen und Anliegen", body = Vec<TenantView>)))]
pub(crate) async fn catalogue(State(state): State<AppState>) -> Json<Vec<TenantView>> {
    Json(state.tenants.iter().map(citizen::tenant_view).collect())
}

/// Free starts for a set of services, day by day.
#[utoipa::path(get, path = "/api/v1/slots", tag = "Bürger", params(SlotQuery),
    responses(
        (status = 200, description = "Freie Termine", body = SlotsView),
        (status = 400, description = "Ungültige Parameter", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Unbekanntes oder unvereinbares Anliegen", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn slots(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<SlotQuery>,
) -> Result<Json<SlotsView>, Error> {
    citizen::free_slots(&state, &query).await.map(Json)
}

/// Books an appointment online. The link to it, its capability, goes out by mail only: the
/// booking holds its slots for 30 minutes until it is confirmed through that link. A mailbox
/// books at most a few appointments a day at one municipality, a client address a few dozen.
#[utoipa::path(post, path = "/api/v1/appointments", tag = "Bürger", request_body = BookingRequest,
    responses(
        (status = 201, description = "Gebucht; der Link zum Termin kommt per E-Mail", body = Booked),
        (status = 400, description = "Kein gültiges JSON", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Der Termin wurde gerade vergeben", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Anfrage zu groß", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Ungültige Angaben", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Zu viele Anfragen oder Buchungen", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn book(
    State(state): State<AppState>,
    client: Client,
    ApiJson(request): ApiJson<BookingRequest>,
) -> Result<impl IntoResponse, Error> {
    let booked = citizen::book(&state, request, citizen::Booker::Online(client)).await?;
    Ok((StatusCode::CREATED, Json(booked)))
}

/// The appointment a capability link opens.
#[utoipa::path(get, path = "/api/v1/appointments/by-token/{token}", tag = "Bürger",
    params(("token" = String, Path, description = "Das Token aus dem Link der Terminbestätigung")),
    responses(
        (status = 200, description = "Der Termin", body = AppointmentView),
        (status = 404, description = "Link ungültig", body = Problem, content_type = "application/problem+json"),
        (status = 410, description = "Link abgelaufen", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn appointment_by_token(
    State(state): State<AppState>,
    Path(token): Path<String>,
) -> Result<Json<AppointmentView>, Error> {
    let found = citizen::by_token(&state, &token).await?;
    citizen::view(&state, &found).await.map(Json)
}

/// Confirms the booking (the citizen read the confirmation mail).
#[utoipa::path(post, path = "/api/v1/appointments/by-token/{token}/confirm", tag = "Bürger",
    params(("token" = String, Path, description = "Das Token aus dem Link der Terminbestätigung")),
    responses(
        (status = 200, description = "Bestätigt", body = AppointmentView),
        (status = 404, description = "Link ungültig", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Termin abgesagt oder vorbei", body = Problem, content_type = "application/problem+json"),
        (status = 410, description = "Link abgelaufen", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn confirm_by_token(
    State(state): State<AppState>,
    Path(token): Path<String>,
) -> Result<Json<AppointmentView>, Error> {
    let found = citizen::confirm(&state, &token).await?;
    citizen::view(&state, &found).await.map(Json)
}

/// Cancels the appointment; its slots become free again.
#[utoipa::path(post, path = "/api/v1/appointments/by-token/{token}/cancel", tag = "Bürger",
    params(("token" = String, Path, description = "Das Token aus dem Link der Terminbestätigung")),
    request_body = CancelRequest,
    responses(
        (status = 200, description = "Abgesagt", body = AppointmentView),
        (status = 404, description = "Link ungültig", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Bereits abgesagt oder vorbei", body = Problem, content_type = "application/problem+json"),
        (status = 410, description = "Link abgelaufen", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Ungültige Angaben", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn cancel_by_token(
    State(state): State<AppState>,
    Path(token): Path<String>,
    ApiJson(request): ApiJson<CancelRequest>,
) -> Result<Json<AppointmentView>, Error> {
    let found = citizen::cancel(&state, &token, request).await?;
    citizen::view(&state, &found).await.map(Json)
}

/// Moves the appointment to another free start for the same services.
#[utoipa::path(post, path = "/api/v1/appointments/by-token/{token}/reschedule", tag = "Bürger",
    params(("token" = String, Path, description = "Das Token aus dem Link der Terminbestätigung")),
    request_body = RescheduleRequest,
    responses(
        (status = 200, description = "Verlegt", body = AppointmentView),
        (status = 404, description = "Link ungültig", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Der Termin ist vergeben, abgesagt oder vorbei", body = Problem, content_type = "application/problem+json"),
        (status = 410, description = "Link abgelaufen", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Zeitpunkt nicht buchbar", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn reschedule_by_token(
    State(state): State<AppState>,
    Path(token): Path<String>,
    ApiJson(request): ApiJson<RescheduleRequest>,
) -> Result<Json<AppointmentView>, Error> {
    let found = citizen::reschedule(&state, &token, request).await?;
    citizen::view(&state, &found).await.map(Json)
}
