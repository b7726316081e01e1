//! The OpenAPI 3.1 document, generated from the handlers that serve the routes, so the two
//! cannot drift. Served at `/api/openapi.json`.

use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::citizen::api::*;
use super::error::{FieldError, Problem};
use super::staff::api::*;
use super::staff::session as staff;

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
    components(schemas(Problem, FieldError)),
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
pub(crate) fn api() -> (axum::Router<AppState>, utoipa::openapi::OpenApi) {
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
