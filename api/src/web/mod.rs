//! The HTTP surface for people: the JSON API under `/api/v1/` (described by the OpenAPI
//! document generated from these handlers) and, later, the server-rendered pages.

pub mod booking;
pub mod charts;
pub mod citizen;
pub mod desk;
pub mod desk_pages;
pub mod dev;
pub mod extract;
pub mod guard;
pub mod observe;
pub mod pages;
pub mod staff;

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
use self::desk::{
    AuditQuery, ClerkCancelRequest, DetailView, EntryView, InvitationRequest, MeView, ReportQuery,
    ReportView, ScheduleQuery, ScheduleView, StatisticsQuery, StatisticsRow, TimelineView,
    WaitingView,
};
use self::extract::{ApiJson, ApiQuery};
use self::staff::Staff;
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
        (name = "Bürger", description = "Katalog, freie Termine, Buchung und der Zugangslink aus der Terminbestätigung"),
        (name = "Anmeldung", description = "Konten der Mitarbeitenden: Sitzung per Cookie (HttpOnly, SameSite=Strict)"),
        (name = "Sachbearbeitung", description = "Terminplan, Warteraum, Termindetails, Einladung und Absage; nur eigene Bereiche"),
        (name = "Prüfung", description = "Suche und Prüfakte mit Zeitreise; jeder Lesezugriff wird protokolliert"),
        (name = "Datenschutz", description = "Löschbericht und Löschnachweise, ohne personenbezogene Daten"),
        (name = "Statistik", description = "Pilotstatistik je Bereich und Kalenderwoche")
    ),
    components(schemas(Problem, crate::problem::FieldError)),
    modifiers(&SessionCookie)
)]
struct ApiDoc;

/// Staff endpoints need the session cookie set by `POST /api/v1/login`.
struct SessionCookie;

impl utoipa::Modify for SessionCookie {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityScheme};
        openapi
            .components
            .get_or_insert_with(Default::default)
            .add_security_scheme(
                "sitzung",
                SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                    staff::COOKIE,
                    "Sitzung der Mitarbeitenden nach der Anmeldung (HttpOnly, SameSite=Strict)",
                ))),
            );
    }
}

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
        .routes(routes!(login))
        .routes(routes!(logout))
        .routes(routes!(whoami))
        .routes(routes!(clerk_schedule))
        .routes(routes!(clerk_waiting_room))
        .routes(routes!(appointment_detail))
        .routes(routes!(clerk_cancel))
        .routes(routes!(invitation))
        .routes(routes!(audit_search))
        .routes(routes!(audit_timeline))
        .routes(routes!(retention_report))
        .routes(routes!(retention_subject))
        .routes(routes!(statistics))
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
        .route(
            "/termin/{token}/warteraum",
            get(pages::waiting).post(pages::enter_waiting_room),
        )
        .route("/static/{script}", get(desk_pages::script))
        .route(
            "/anmelden",
            get(desk_pages::login_page).post(desk_pages::login),
        )
        .route("/abmelden", axum::routing::post(desk_pages::logout))
        .route("/sachbearbeitung", get(desk_pages::clerk_day))
        .route("/sachbearbeitung/live", get(desk_pages::clerk_live))
        .route(
            "/sachbearbeitung/termin/{id}",
            get(desk_pages::clerk_detail),
        )
        .route(
            "/sachbearbeitung/termin/{id}/absagen",
            axum::routing::post(desk_pages::clerk_cancel),
        )
        .route(
            "/sachbearbeitung/einladen",
            get(desk_pages::invitation_page).post(desk_pages::invite),
        )
        .route("/pruefung", get(desk_pages::audit_search))
        .route("/pruefung/termin/{id}", get(desk_pages::audit_timeline))
        .route("/datenschutz", get(desk_pages::dpo_report))
        .route("/datenschutz/bericht.csv", get(desk_pages::dpo_csv))
        .route("/datenschutz/subjekt/{id}", get(desk_pages::dpo_subject))
        .route("/statistik", get(desk_pages::statistics))
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

// --- staff ---

const PROBLEM: &str = "application/problem+json";

#[derive(Debug, Clone, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// The municipality (`ettlingen`, `stuttgart`).
    pub tenant: String,
    pub login: String,
    pub password: String,
}

/// Logs a staff member in; the session is the `videoamt_sitzung` cookie.
#[utoipa::path(post, path = "/api/v1/login", tag = "Anmeldung", request_body = LoginRequest,
    responses(
        (status = 200, description = "Angemeldet; Sitzungs-Cookie gesetzt", body = MeView),
        (status = 401, description = "Anmeldename oder Passwort falsch", body = Problem, content_type = PROBLEM),
        (status = 423, description = "Konto nach fünf Fehlversuchen für 15 Minuten gesperrt", body = Problem, content_type = PROBLEM),
        (status = 429, description = "Zu viele Anfragen", body = Problem, content_type = PROBLEM),
    ))]
async fn login(
    State(state): State<AppState>,
    ApiJson(request): ApiJson<LoginRequest>,
) -> Result<impl IntoResponse, Problem> {
    let (cookie, staff) =
        staff::log_in(&state, &request.tenant, &request.login, &request.password).await?;
    let me = desk::me(&state, &staff)?;
    Ok((
        [(header::SET_COOKIE, staff::session_cookie(&state, &cookie))],
        Json(me),
    ))
}

/// Ends the session.
#[utoipa::path(post, path = "/api/v1/logout", tag = "Anmeldung",
    responses((status = 204, description = "Abgemeldet")))]
async fn logout(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
) -> impl IntoResponse {
    staff::log_out(&headers, &state);
    (
        StatusCode::NO_CONTENT,
        [(header::SET_COOKIE, staff::cleared_cookie())],
    )
}

/// The logged-in account.
#[utoipa::path(get, path = "/api/v1/me", security(("sitzung" = [])), tag = "Anmeldung",
    responses(
        (status = 200, description = "Das Konto der Sitzung", body = MeView),
        (status = 401, description = "Nicht angemeldet", body = Problem, content_type = PROBLEM),
    ))]
async fn whoami(State(state): State<AppState>, staff: Staff) -> Result<Json<MeView>, Problem> {
    desk::me(&state, &staff).map(Json)
}

/// The clerk's schedule: their departments' appointments, day by day.
#[utoipa::path(get, path = "/api/v1/clerk/schedule", security(("sitzung" = [])), tag = "Sachbearbeitung", params(ScheduleQuery),
    responses(
        (status = 200, description = "Terminplan", body = ScheduleView),
        (status = 401, description = "Nicht angemeldet", body = Problem, content_type = PROBLEM),
        (status = 403, description = "Keine Sachbearbeitung oder fremder Bereich", body = Problem, content_type = PROBLEM),
        (status = 422, description = "Ungültige Parameter", body = Problem, content_type = PROBLEM),
    ))]
async fn clerk_schedule(
    State(state): State<AppState>,
    staff: Staff,
    ApiQuery(query): ApiQuery<ScheduleQuery>,
) -> Result<Json<ScheduleView>, Problem> {
    desk::schedule(&state, &staff, &query).await.map(Json)
}

/// Citizens waiting in the clerk's departments, longest waiting first.
#[utoipa::path(get, path = "/api/v1/clerk/waiting-room", security(("sitzung" = [])), tag = "Sachbearbeitung",
    responses(
        (status = 200, description = "Warteraum", body = Vec<WaitingView>),
        (status = 401, description = "Nicht angemeldet", body = Problem, content_type = PROBLEM),
        (status = 403, description = "Keine Sachbearbeitung", body = Problem, content_type = PROBLEM),
    ))]
async fn clerk_waiting_room(
    State(state): State<AppState>,
    staff: Staff,
) -> Result<Json<Vec<WaitingView>>, Problem> {
    desk::waiting_room(&state, &staff).await.map(Json)
}

/// One appointment of the clerk's departments, with the citizen's name.
#[utoipa::path(get, path = "/api/v1/appointments/{id}", security(("sitzung" = [])), tag = "Sachbearbeitung",
    params(("id" = Uuid, Path, description = "Die Termin-ID")),
    responses(
        (status = 200, description = "Der Termin", body = DetailView),
        (status = 401, description = "Nicht angemeldet", body = Problem, content_type = PROBLEM),
        (status = 403, description = "Fremder Bereich oder keine Sachbearbeitung", body = Problem, content_type = PROBLEM),
        (status = 404, description = "Unbekannter Termin", body = Problem, content_type = PROBLEM),
    ))]
async fn appointment_detail(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<String>,
) -> Result<Json<DetailView>, Problem> {
    desk::detail(&state, &staff, path_id(&id)?).await.map(Json)
}

fn path_id(raw: &str) -> Result<uuid::Uuid, Problem> {
    uuid::Uuid::parse_str(raw).map_err(|_| Problem::not_found("Diese Adresse gibt es nicht."))
}

/// The clerk calls the appointment off with a reason; the citizen is told by mail.
#[utoipa::path(post, path = "/api/v1/appointments/{id}/cancel", security(("sitzung" = [])), tag = "Sachbearbeitung",
    params(("id" = Uuid, Path, description = "Die Termin-ID")), request_body = ClerkCancelRequest,
    responses(
        (status = 200, description = "Abgesagt", body = DetailView),
        (status = 401, description = "Nicht angemeldet", body = Problem, content_type = PROBLEM),
        (status = 403, description = "Fremder Bereich oder keine Sachbearbeitung", body = Problem, content_type = PROBLEM),
        (status = 404, description = "Unbekannter Termin", body = Problem, content_type = PROBLEM),
        (status = 409, description = "Bereits abgesagt oder vorbei", body = Problem, content_type = PROBLEM),
        (status = 422, description = "Grund fehlt oder zu lang", body = Problem, content_type = PROBLEM),
    ))]
async fn clerk_cancel(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<String>,
    ApiJson(request): ApiJson<ClerkCancelRequest>,
) -> Result<Json<DetailView>, Problem> {
    desk::cancel(&state, &staff, path_id(&id)?, &request)
        .await
        .map(Json)
}

/// The clerk books for a citizen (invitation); the citizen gets the confirmation mail.
#[utoipa::path(post, path = "/api/v1/invitations", security(("sitzung" = [])), tag = "Sachbearbeitung", request_body = InvitationRequest,
    responses(
        (status = 201, description = "Eingeladen", body = Booked),
        (status = 401, description = "Nicht angemeldet", body = Problem, content_type = PROBLEM),
        (status = 403, description = "Fremder Bereich oder keine Sachbearbeitung", body = Problem, content_type = PROBLEM),
        (status = 409, description = "Der Termin wurde gerade vergeben", body = Problem, content_type = PROBLEM),
        (status = 422, description = "Ungültige Angaben", body = Problem, content_type = PROBLEM),
    ))]
async fn invitation(
    State(state): State<AppState>,
    staff: Staff,
    ApiJson(request): ApiJson<InvitationRequest>,
) -> Result<impl IntoResponse, Problem> {
    let booked = desk::invite(&state, &staff, request).await?;
    Ok((StatusCode::CREATED, Json(booked)))
}

/// Appointments by id, or by date and department; no personal data.
#[utoipa::path(get, path = "/api/v1/audit/appointments", security(("sitzung" = [])), tag = "Prüfung", params(AuditQuery),
    responses(
        (status = 200, description = "Treffer", body = Vec<EntryView>),
        (status = 401, description = "Nicht angemeldet", body = Problem, content_type = PROBLEM),
        (status = 403, description = "Nur für die Prüfung", body = Problem, content_type = PROBLEM),
        (status = 422, description = "Ungültige Parameter", body = Problem, content_type = PROBLEM),
    ))]
async fn audit_search(
    State(state): State<AppState>,
    staff: Staff,
    ApiQuery(query): ApiQuery<AuditQuery>,
) -> Result<Json<Vec<EntryView>>, Problem> {
    desk::audit_search(&state, &staff, &query).await.map(Json)
}

#[derive(Debug, Clone, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TimelineQuery {
    /// Show the state as of this global position (time travel); the log's end when missing.
    pub at: Option<u64>,
}

/// An appointment's audit timeline and state, as of a position; recorded as
/// `AuditRecordViewed` before it is shown.
#[utoipa::path(get, path = "/api/v1/audit/appointments/{id}", security(("sitzung" = [])), tag = "Prüfung",
    params(("id" = Uuid, Path, description = "Die Termin-ID"), TimelineQuery),
    responses(
        (status = 200, description = "Prüfakte", body = TimelineView),
        (status = 401, description = "Nicht angemeldet", body = Problem, content_type = PROBLEM),
        (status = 403, description = "Nur für die Prüfung", body = Problem, content_type = PROBLEM),
        (status = 404, description = "Unbekannter Termin", body = Problem, content_type = PROBLEM),
        (status = 422, description = "Position hinter dem Ende des Protokolls", body = Problem, content_type = PROBLEM),
    ))]
async fn audit_timeline(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<String>,
    ApiQuery(query): ApiQuery<TimelineQuery>,
) -> Result<Json<TimelineView>, Problem> {
    desk::audit_view(&state, &staff, path_id(&id)?, query.at)
        .await
        .map(Json)
}

/// The retention report: counts per state and the subjects' rows; `format=csv` for the export.
#[utoipa::path(get, path = "/api/v1/retention/report", security(("sitzung" = [])), tag = "Datenschutz", params(ReportQuery),
    responses(
        (status = 200, description = "Löschbericht (JSON, oder CSV mit format=csv)", body = ReportView),
        (status = 401, description = "Nicht angemeldet", body = Problem, content_type = PROBLEM),
        (status = 403, description = "Nur für den Datenschutz", body = Problem, content_type = PROBLEM),
    ))]
async fn retention_report(
    State(state): State<AppState>,
    staff: Staff,
    ApiQuery(query): ApiQuery<ReportQuery>,
) -> Result<axum::response::Response, Problem> {
    let report = desk::retention_report(&state, &staff, &query).await?;
    if query.format.as_deref() == Some("csv") {
        let body = crate::retention::csv(&report.rows).map_err(|_| Problem::internal())?;
        return Ok(csv_response("loeschbericht.csv", body));
    }
    Ok(Json(report).into_response())
}

pub fn csv_response(file: &str, body: String) -> axum::response::Response {
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{file}\""),
            ),
        ],
        body,
    )
        .into_response()
}

/// One subject's deletion evidence.
#[utoipa::path(get, path = "/api/v1/retention/subjects/{id}", security(("sitzung" = [])), tag = "Datenschutz",
    params(("id" = Uuid, Path, description = "Die ID der betroffenen Person (Subjekt)")),
    responses(
        (status = 200, description = "Löschnachweis", body = crate::retention::ReportRow),
        (status = 401, description = "Nicht angemeldet", body = Problem, content_type = PROBLEM),
        (status = 403, description = "Nur für den Datenschutz", body = Problem, content_type = PROBLEM),
        (status = 404, description = "Unbekannt", body = Problem, content_type = PROBLEM),
    ))]
async fn retention_subject(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<String>,
) -> Result<Json<crate::retention::ReportRow>, Problem> {
    desk::subject_evidence(&state, &staff, path_id(&id)?)
        .await
        .map(Json)
}

/// Pilot statistics per department and ISO week; clerks see their departments only.
#[utoipa::path(get, path = "/api/v1/statistics", security(("sitzung" = [])), tag = "Statistik", params(StatisticsQuery),
    responses(
        (status = 200, description = "Statistik (JSON, oder CSV mit format=csv)", body = Vec<StatisticsRow>),
        (status = 401, description = "Nicht angemeldet", body = Problem, content_type = PROBLEM),
        (status = 403, description = "Fremder Bereich", body = Problem, content_type = PROBLEM),
        (status = 422, description = "Unbekannter Bereich", body = Problem, content_type = PROBLEM),
    ))]
async fn statistics(
    State(state): State<AppState>,
    staff: Staff,
    ApiQuery(query): ApiQuery<StatisticsQuery>,
) -> Result<axum::response::Response, Problem> {
    let rows = desk::statistics(&state, &staff, &query).await?;
    if query.format.as_deref() == Some("csv") {
        return Ok(csv_response("statistik.csv", crate::ops::csv(&rows)));
    }
    let tenant = staff.tenant(&state)?;
    let rows: Vec<StatisticsRow> = rows
        .iter()
        .map(|r| desk::statistics_row(tenant, r))
        .collect();
    Ok(Json(rows).into_response())
}
