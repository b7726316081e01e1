//! The HTTP surface for people: the JSON API under `/api/v1/` (described by the OpenAPI
//! document generated from these handlers) and, later, the server-rendered pages.

pub mod booking;
pub mod citizen;
pub mod dev;
pub mod extract;
pub mod guard;
pub mod observe;
pub mod pages;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use self::citizen::{
    AppointmentView, Booked, BookingRequest, CancelRequest, RescheduleRequest, SlotQuery,
    SlotsView, TenantView,
};
use self::extract::{ApiJson, ApiQuery};
use crate::problem::Problem;
use crate::server::AppState;

/// The largest request body accepted anywhere (uploads have their own route and cap).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "videoamt",
        description = "Videoberatung für Kommunen: Buchung, Termine, Sachbearbeitung, Prüfung und Löschung.",
        license(name = "EUPL-1.2")
    ),
    tags(
        (name = "Bürger", description = "Katalog, freie Termine, Buchung und der Zugangslink aus der Terminbestätigung")
    ),
    components(schemas(Problem, crate::problem::FieldError))
)]
struct ApiDoc;

/// The API routes and their OpenAPI document, built from the same handlers so the two cannot
/// drift.
pub fn api() -> (axum::Router<AppState>, utoipa::openapi::OpenApi) {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(catalogue))
        .routes(routes!(slots))
        .routes(routes!(book))
        .routes(routes!(appointment_by_token))
        .routes(routes!(confirm_by_token))
        .routes(routes!(cancel_by_token))
        .routes(routes!(reschedule_by_token))
        .split_for_parts()
}

/// The server-rendered pages.
pub fn pages() -> axum::Router<AppState> {
    use axum::routing::get;
    axum::Router::new()
        .route("/static/videoamt.css", get(pages::stylesheet))
        .route("/", get(booking::start))
        .route("/buchen", axum::routing::post(booking::book))
        .route("/buchen/{tenant}", get(booking::concerns))
        .route("/buchen/{tenant}/zeit", get(booking::slots))
        .route("/buchen/{tenant}/kontakt", get(booking::contact))
        .route("/termin/{token}", get(pages::appointment))
        .route(
            "/termin/{token}/bestaetigen",
            axum::routing::post(pages::confirm),
        )
        .route(
            "/termin/{token}/absagen",
            get(pages::cancel_form).post(pages::cancel),
        )
        .route(
            "/termin/{token}/verlegen",
            get(pages::reschedule_form).post(pages::reschedule),
        )
        .route("/dev/outbox", get(dev::index))
        .route("/dev/outbox/{subject}/{file}", get(dev::mail))
}

/// The catalogue: municipalities, their departments and the services offered by video.
#[utoipa::path(get, path = "/api/v1/catalogue", tag = "Bürger",
    responses((status = 200, description = "Alle Kommunen mit Bereichen und Anliegen", body = Vec<TenantView>)))]
async fn catalogue(State(state): State<AppState>) -> Json<Vec<TenantView>> {
    Json(state.tenants.iter().map(citizen::tenant_view).collect())
}

/// Free starts for a set of services, day by day.
#[utoipa::path(get, path = "/api/v1/slots", tag = "Bürger", params(SlotQuery),
    responses(
        (status = 200, description = "Freie Termine", body = SlotsView),
        (status = 400, description = "Ungültige Parameter", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Unbekanntes oder unvereinbares Anliegen", body = Problem, content_type = "application/problem+json"),
    ))]
async fn slots(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<SlotQuery>,
) -> Result<Json<SlotsView>, Problem> {
    citizen::free_slots(&state, &query).await.map(Json)
}

/// Books an appointment online. Answers with the capability token (also sent by mail).
#[utoipa::path(post, path = "/api/v1/appointments", tag = "Bürger", request_body = BookingRequest,
    responses(
        (status = 201, description = "Gebucht", body = Booked),
        (status = 400, description = "Kein gültiges JSON", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Der Termin wurde gerade vergeben", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Anfrage zu groß", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Ungültige Angaben", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Zu viele Anfragen", body = Problem, content_type = "application/problem+json"),
    ))]
async fn book(
    State(state): State<AppState>,
    ApiJson(request): ApiJson<BookingRequest>,
) -> Result<impl IntoResponse, Problem> {
    let booked = citizen::book(
        &state,
        request,
        videoamt_core::tenant::BookingChannel::Online,
        None,
    )
    .await?;
    let location = format!("/api/v1/appointments/by-token/{}", booked.token);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(booked),
    ))
}

/// The appointment a capability link opens.
#[utoipa::path(get, path = "/api/v1/appointments/by-token/{token}", tag = "Bürger",
    params(("token" = String, Path, description = "Das Token aus dem Link der Terminbestätigung")),
    responses(
        (status = 200, description = "Der Termin", body = AppointmentView),
        (status = 404, description = "Link ungültig", body = Problem, content_type = "application/problem+json"),
        (status = 410, description = "Link abgelaufen", body = Problem, content_type = "application/problem+json"),
    ))]
async fn appointment_by_token(
    State(state): State<AppState>,
    Path(token): Path<String>,
) -> Result<Json<AppointmentView>, Problem> {
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
async fn confirm_by_token(
    State(state): State<AppState>,
    Path(token): Path<String>,
) -> Result<Json<AppointmentView>, Problem> {
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
async fn cancel_by_token(
    State(state): State<AppState>,
    Path(token): Path<String>,
    ApiJson(request): ApiJson<CancelRequest>,
) -> Result<Json<AppointmentView>, Problem> {
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
async fn reschedule_by_token(
    State(state): State<AppState>,
    Path(token): Path<String>,
    ApiJson(request): ApiJson<RescheduleRequest>,
) -> Result<Json<AppointmentView>, Problem> {
    let found = citizen::reschedule(&state, &token, request).await?;
    citizen::view(&state, &found).await.map(Json)
}
