//! The staff's JSON API under `/api/v1/`: login and one's own password, the clerk's desk,
//! audit, retention, statistics and the admin's accounts. Who may see what is decided in `desk`.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;

use super::desk::{
    self, AccountChange, AccountView, AuditQuery, ClerkCancelRequest, DetailView, EntryView,
    InvitationRequest, MeView, NewAccountRequest, PasswordChangeRequest, PasswordLinkView,
    ReportQuery, ReportView, RoleRequest, ScheduleQuery, ScheduleView, StatisticsQuery,
    StatisticsRow, TimelineView, WaitingView,
};
use super::session::{self as staff, Staff};
use crate::http::AppState;
use crate::http::citizen::service::Booked;
use crate::http::error::{Error, Problem};
use crate::http::extract::{ApiJson, ApiQuery};

const PROBLEM: &str = "application/problem+json";

#[derive(Debug, Clone, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct LoginRequest {
    /// The municipality (`ettlingen`, `stuttgart`).
    pub tenant: String,
    #[schema(min_length = 1, max_length = 64)]
    pub login: String,
    #[schema(min_length = 1, max_length = 1024)]
    pub password: String,
}

/// Logs a staff member in; the session is the `videoamt_sitzung` cookie.
#[utoipa::path(post, path = "/api/v1/login", tag = "Anmeldung", request_body = LoginRequest,
    responses(
        (status = 200, description = "Angemeldet; Sitzungs-Cookie gesetzt", body = MeView),
        (status = 401, description = "Anmeldung fehlgeschlagen: Kommune, Anmeldename oder Passwort falsch, oder nach fünf Fehlversuchen von dieser Adresse für 15 Minuten gedrosselt; eine Antwort für alles", body = Problem, content_type = PROBLEM),
        (status = 429, description = "Zu viele Anfragen", body = Problem, content_type = PROBLEM),
    ))]
pub(crate) async fn login(
    State(state): State<AppState>,
    client: crate::http::middleware::guard::Client,
    ApiJson(request): ApiJson<LoginRequest>,
) -> Result<impl IntoResponse, Error> {
    let (cookie, staff) = staff::log_in(
        &state,
        client,
        &request.tenant,
        &request.login,
        &request.password,
    )
    .await?;
    let me = desk::me(&state, &staff)?;
    Ok((
        [(header::SET_COOKIE, staff::session_cookie(&state, &cookie))],
        Json(me),
    ))
}

/// Ends the session.
#[utoipa::path(post, path = "/api/v1/logout", tag = "Anmeldung",
    responses((status = 204, description = "Abgemeldet")))]
pub(crate) async fn logout(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
) -> Result<impl IntoResponse, Error> {
    staff::log_out(&headers, &state).await?;
    Ok((
        StatusCode::NO_CONTENT,
        [(header::SET_COOKIE, staff::cleared_cookie(&state))],
    ))
}

/// The logged-in account.
#[utoipa::path(get, path = "/api/v1/me", security(("sitzung" = [])), tag = "Anmeldung",
    responses(
        (status = 200, description = "Das Konto der Sitzung", body = MeView),
        (status = 401, description = "Nicht angemeldet", body = Problem, content_type = PROBLEM),
    ))]
pub(crate) async fn whoami(
    State(state): State<AppState>,
    staff: Staff,
) -> Result<Json<MeView>, Error> {
    desk::me(&state, &staff).map(Json)
}

/// Changes the password of the logged-in account: the old one is needed, the new one has at
/// least 12 characters. The account's other sessions end; this one goes on.
#[utoipa::path(post, path = "/api/v1/me/password", security(("sitzung" = [])), tag = "Anmeldung", request_body = PasswordChangeRequest,
    responses(
        (status = 204, description = "Passwort geändert"),
        (status = 401, description = "Nicht angemeldet", body = Problem, content_type = PROBLEM),
        (status = 409, description = "Ein Konto des Verzeichnisdienstes: das Passwort wird dort geändert", body = Problem, content_type = PROBLEM),
        (status = 422, description = "Bisheriges Passwort falsch, oder das neue zu kurz oder zu lang", body = Problem, content_type = PROBLEM),
    ))]
pub(crate) async fn change_password(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
    staff: Staff,
    ApiJson(request): ApiJson<PasswordChangeRequest>,
) -> Result<StatusCode, Error> {
    let cookie = staff::cookie_of(&state, &headers).unwrap_or_default();
    desk::change_password(&state, &staff, cookie, &request).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The clerk's schedule: their departments' appointments, day by day.
#[utoipa::path(get, path = "/api/v1/clerk/schedule", security(("sitzung" = [])), tag = "Sachbearbeitung", params(ScheduleQuery),
    responses(
        (status = 200, description = "Terminplan", body = ScheduleView),
        (status = 401, description = "Nicht angemeldet", body = Problem, content_type = PROBLEM),
        (status = 403, description = "Keine Sachbearbeitung oder fremder Bereich", body = Problem, content_type = PROBLEM),
        (status = 422, description = "Ungültige Parameter", body = Problem, content_type = PROBLEM),
    ))]
pub(crate) async fn clerk_schedule(
    State(state): State<AppState>,
    staff: Staff,
    ApiQuery(query): ApiQuery<ScheduleQuery>,
) -> Result<Json<ScheduleView>, Error> {
    desk::schedule(&state, &staff, &query).await.map(Json)
}

/// Citizens waiting in the clerk's departments, longest waiting first.
#[utoipa::path(get, path = "/api/v1/clerk/waiting-room", security(("sitzung" = [])), tag = "Sachbearbeitung",
    responses(
        (status = 200, description = "Warteraum", body = Vec<WaitingView>),
        (status = 401, description = "Nicht angemeldet", body = Problem, content_type = PROBLEM),
        (status = 403, description = "Keine Sachbearbeitung", body = Problem, content_type = PROBLEM),
    ))]
pub(crate) async fn clerk_waiting_room(
    State(state): State<AppState>,
    staff: Staff,
) -> Result<Json<Vec<WaitingView>>, Error> {
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
pub(crate) async fn appointment_detail(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<String>,
) -> Result<Json<DetailView>, Error> {
    desk::detail(&state, &staff, path_id(&id)?).await.map(Json)
}

fn path_id(raw: &str) -> Result<uuid::Uuid, Error> {
    uuid::Uuid::parse_str(raw).map_err(|_| Error::not_found("Diese Adresse gibt es nicht."))
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
pub(crate) async fn clerk_cancel(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<String>,
    ApiJson(request): ApiJson<ClerkCancelRequest>,
) -> Result<Json<DetailView>, Error> {
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
pub(crate) async fn invitation(
    State(state): State<AppState>,
    staff: Staff,
    ApiJson(request): ApiJson<InvitationRequest>,
) -> Result<impl IntoResponse, Error> {
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
pub(crate) async fn audit_search(
    State(state): State<AppState>,
    staff: Staff,
    ApiQuery(query): ApiQuery<AuditQuery>,
) -> Result<Json<Vec<EntryView>>, Error> {
    desk::audit_search(&state, &staff, &query).await.map(Json)
}

#[derive(Debug, Clone, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct TimelineQuery {
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
pub(crate) async fn audit_timeline(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<String>,
    ApiQuery(query): ApiQuery<TimelineQuery>,
) -> Result<Json<TimelineView>, Error> {
    desk::audit_view(&state, &staff, path_id(&id)?, query.at)
        .await
        .map(Json)
}

/// The retention report: counts per state and a page of the subjects' rows (`limit`, `offset`,
/// `next_offset`); `format=csv` exports every matching row.
#[utoipa::path(get, path = "/api/v1/retention/report", security(("sitzung" = [])), tag = "Datenschutz", params(ReportQuery),
    responses(
        (status = 200, description = "Löschbericht (JSON, oder CSV mit format=csv)", body = ReportView),
        (status = 401, description = "Nicht angemeldet", body = Problem, content_type = PROBLEM),
        (status = 403, description = "Nur für den Datenschutz", body = Problem, content_type = PROBLEM),
        (status = 422, description = "Ungültige Parameter", body = Problem, content_type = PROBLEM),
    ))]
pub(crate) async fn retention_report(
    State(state): State<AppState>,
    staff: Staff,
    ApiQuery(query): ApiQuery<ReportQuery>,
) -> Result<axum::response::Response, Error> {
    let report = desk::retention_report(&state, &staff, &query).await?;
    if query.format.as_deref() == Some("csv") {
        return Ok(csv_response(
            "loeschbericht.csv",
            crate::app::export::retention_csv(&report.rows),
        ));
    }
    Ok(Json(report.page(&query)?).into_response())
}

pub(crate) fn csv_response(file: &str, body: String) -> axum::response::Response {
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
        (status = 200, description = "Löschnachweis", body = crate::app::retention::ReportRow),
        (status = 401, description = "Nicht angemeldet", body = Problem, content_type = PROBLEM),
        (status = 403, description = "Nur für den Datenschutz", body = Problem, content_type = PROBLEM),
        (status = 404, description = "Unbekannt", body = Problem, content_type = PROBLEM),
    ))]
pub(crate) async fn retention_subject(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<String>,
) -> Result<Json<crate::app::retention::ReportRow>, Error> {
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
pub(crate) async fn statistics(
    State(state): State<AppState>,
    staff: Staff,
    ApiQuery(query): ApiQuery<StatisticsQuery>,
) -> Result<axum::response::Response, Error> {
    let rows = desk::statistics(&state, &staff, &query).await?;
    if query.format.as_deref() == Some("csv") {
        return Ok(csv_response(
            "statistik.csv",
            crate::app::export::statistics_csv(&rows),
        ));
    }
    let tenant = staff.tenant(&state)?;
    let rows: Vec<StatisticsRow> = rows
        .iter()
        .map(|r| desk::statistics_row(tenant, r))
        .collect();
    Ok(Json(rows).into_response())
}

/// The municipality's staff accounts, by login; for its admins.
#[utoipa::path(get, path = "/api/v1/accounts", security(("sitzung" = [])), tag = "Verwaltung",
    responses(
        (status = 200, description = "Konten der Kommune", body = Vec<AccountView>),
        (status = 401, description = "Nicht angemeldet", body = Problem, content_type = PROBLEM),
        (status = 403, description = "Nur für die Verwaltung", body = Problem, content_type = PROBLEM),
    ))]
pub(crate) async fn accounts(
    State(state): State<AppState>,
    staff: Staff,
) -> Result<Json<Vec<AccountView>>, Error> {
    desk::accounts(&state, &staff).await.map(Json)
}

/// Creates an account; its holder sets the password through the one-time link returned (72
/// hours, used once). The admin never learns the password.
#[utoipa::path(post, path = "/api/v1/accounts", security(("sitzung" = [])), tag = "Verwaltung", request_body = NewAccountRequest,
    responses(
        (status = 201, description = "Angelegt; der Link ist weiterzugeben", body = PasswordLinkView),
        (status = 401, description = "Nicht angemeldet", body = Problem, content_type = PROBLEM),
        (status = 403, description = "Nur für die Verwaltung", body = Problem, content_type = PROBLEM),
        (status = 409, description = "Den Anmeldenamen gibt es schon", body = Problem, content_type = PROBLEM),
        (status = 422, description = "Ungültiger Anmeldename, Rolle oder Bereich", body = Problem, content_type = PROBLEM),
    ))]
pub(crate) async fn create_account(
    State(state): State<AppState>,
    staff: Staff,
    ApiJson(request): ApiJson<NewAccountRequest>,
) -> Result<impl IntoResponse, Error> {
    let link = desk::create_account(&state, &staff, &request).await?;
    Ok((StatusCode::CREATED, Json(link)))
}

/// One account of the municipality.
#[utoipa::path(get, path = "/api/v1/accounts/{login}", security(("sitzung" = [])), tag = "Verwaltung",
    params(("login" = String, Path, description = "Der Anmeldename")),
    responses(
        (status = 200, description = "Das Konto", body = AccountView),
        (status = 401, description = "Nicht angemeldet", body = Problem, content_type = PROBLEM),
        (status = 403, description = "Nur für die Verwaltung", body = Problem, content_type = PROBLEM),
        (status = 404, description = "Unbekanntes Konto", body = Problem, content_type = PROBLEM),
    ))]
pub(crate) async fn account(
    State(state): State<AppState>,
    staff: Staff,
    Path(login): Path<String>,
) -> Result<Json<AccountView>, Error> {
    desk::account(&state, &staff, &login).await.map(Json)
}

/// Deactivates an account: it cannot log in, its open sessions end at their next request.
/// Refused for the municipality's last active admin.
#[utoipa::path(post, path = "/api/v1/accounts/{login}/deactivate", security(("sitzung" = [])), tag = "Verwaltung",
    params(("login" = String, Path, description = "Der Anmeldename")),
    responses(
        (status = 200, description = "Deaktiviert", body = AccountView),
        (status = 401, description = "Nicht angemeldet", body = Problem, content_type = PROBLEM),
        (status = 403, description = "Nur für die Verwaltung", body = Problem, content_type = PROBLEM),
        (status = 404, description = "Unbekanntes Konto", body = Problem, content_type = PROBLEM),
        (status = 409, description = "Bereits deaktiviert, oder das letzte Verwaltungskonto", body = Problem, content_type = PROBLEM),
    ))]
pub(crate) async fn deactivate_account(
    State(state): State<AppState>,
    staff: Staff,
    Path(login): Path<String>,
) -> Result<Json<AccountView>, Error> {
    desk::change_account(&state, &staff, &login, &AccountChange::Deactivate)
        .await
        .map(Json)
}

/// Reactivates a deactivated account; it logs in with its password again.
#[utoipa::path(post, path = "/api/v1/accounts/{login}/reactivate", security(("sitzung" = [])), tag = "Verwaltung",
    params(("login" = String, Path, description = "Der Anmeldename")),
    responses(
        (status = 200, description = "Wieder aktiviert", body = AccountView),
        (status = 401, description = "Nicht angemeldet", body = Problem, content_type = PROBLEM),
        (status = 403, description = "Nur für die Verwaltung", body = Problem, content_type = PROBLEM),
        (status = 404, description = "Unbekanntes Konto", body = Problem, content_type = PROBLEM),
        (status = 409, description = "Nicht deaktiviert", body = Problem, content_type = PROBLEM),
    ))]
pub(crate) async fn reactivate_account(
    State(state): State<AppState>,
    staff: Staff,
    Path(login): Path<String>,
) -> Result<Json<AccountView>, Error> {
    desk::change_account(&state, &staff, &login, &AccountChange::Reactivate)
        .await
        .map(Json)
}

/// Gives an account another role or other departments: a clerk at least one department of
/// the municipality, every other role none. Refused when it would take the last active admin.
#[utoipa::path(post, path = "/api/v1/accounts/{login}/role", security(("sitzung" = [])), tag = "Verwaltung",
    params(("login" = String, Path, description = "Der Anmeldename")), request_body = RoleRequest,
    responses(
        (status = 200, description = "Geändert", body = AccountView),
        (status = 401, description = "Nicht angemeldet", body = Problem, content_type = PROBLEM),
        (status = 403, description = "Nur für die Verwaltung", body = Problem, content_type = PROBLEM),
        (status = 404, description = "Unbekanntes Konto", body = Problem, content_type = PROBLEM),
        (status = 409, description = "Das letzte Verwaltungskonto, oder ein Konto des Verzeichnisdienstes", body = Problem, content_type = PROBLEM),
        (status = 422, description = "Ungültige Rolle oder Bereiche", body = Problem, content_type = PROBLEM),
    ))]
pub(crate) async fn change_account_role(
    State(state): State<AppState>,
    staff: Staff,
    Path(login): Path<String>,
    ApiJson(request): ApiJson<RoleRequest>,
) -> Result<Json<AccountView>, Error> {
    desk::change_account(&state, &staff, &login, &AccountChange::Role(request))
        .await
        .map(Json)
}

/// Resets the password: the old one stops working at once, the account's sessions end, and
/// the one-time link returned sets a new one.
#[utoipa::path(post, path = "/api/v1/accounts/{login}/password-link", security(("sitzung" = [])), tag = "Verwaltung",
    params(("login" = String, Path, description = "Der Anmeldename")),
    responses(
        (status = 201, description = "Zurückgesetzt; der Link ist weiterzugeben", body = PasswordLinkView),
        (status = 401, description = "Nicht angemeldet", body = Problem, content_type = PROBLEM),
        (status = 403, description = "Nur für die Verwaltung, oder das Konto ist deaktiviert", body = Problem, content_type = PROBLEM),
        (status = 404, description = "Unbekanntes Konto", body = Problem, content_type = PROBLEM),
        (status = 409, description = "Ein Konto des Verzeichnisdienstes: das Passwort wird dort verwaltet", body = Problem, content_type = PROBLEM),
    ))]
pub(crate) async fn reset_account_password(
    State(state): State<AppState>,
    staff: Staff,
    Path(login): Path<String>,
) -> Result<impl IntoResponse, Error> {
    let link = desk::reset_password(&state, &staff, &login).await?;
    Ok((StatusCode::CREATED, Json(link)))
}

/// Lifts the lock after too many failed logins.
#[utoipa::path(post, path = "/api/v1/accounts/{login}/unlock", security(("sitzung" = [])), tag = "Verwaltung",
    params(("login" = String, Path, description = "Der Anmeldename")),
    responses(
        (status = 200, description = "Entsperrt", body = AccountView),
        (status = 401, description = "Nicht angemeldet", body = Problem, content_type = PROBLEM),
        (status = 403, description = "Nur für die Verwaltung", body = Problem, content_type = PROBLEM),
        (status = 404, description = "Unbekanntes Konto", body = Problem, content_type = PROBLEM),
        (status = 409, description = "Nicht gesperrt", body = Problem, content_type = PROBLEM),
    ))]
pub(crate) async fn unlock_account(
    State(state): State<AppState>,
    staff: Staff,
    Path(login): Path<String>,
) -> Result<Json<AccountView>, Error> {
    desk::change_account(&state, &staff, &login, &AccountChange::Unlock)
        .await
        .map(Json)
}
