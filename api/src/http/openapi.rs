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
        (name = "Statistik", description = "Pilotstatistik je Bereich und Kalenderwoche"),
        (name = "Verwaltung", description = "Konten der Kommune: anlegen (mit Einmal-Link), Rollen und Bereiche, deaktivieren, Passwort zurücksetzen, entsperren")
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
        .routes(routes!(change_password))
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
        .routes(routes!(accounts, create_account))
        .routes(routes!(account))
        .routes(routes!(deactivate_account))
        .routes(routes!(reactivate_account))
        .routes(routes!(change_account_role))
        .routes(routes!(reset_account_password))
        .routes(routes!(unlock_account))
        .split_for_parts()
}

/// The document as served: what the server answers every operation with beyond its own
/// responses, and the municipalities it knows as the only tenant values.
pub(crate) fn document(
    mut doc: utoipa::openapi::OpenApi,
    tenants: &[videoamt_core::tenant::Tenant],
) -> serde_json::Value {
    use utoipa::openapi::path::Operation;
    for (path, item) in &mut doc.paths.paths {
        let operations: [(&str, &mut Option<Operation>); 2] =
            [("GET", &mut item.get), ("POST", &mut item.post)];
        for (method, operation) in operations {
            if let Some(operation) = operation.as_mut() {
                common_responses(method, path, operation);
            }
        }
    }
    let mut value = serde_json::to_value(&doc).unwrap_or_default();
    let ids: Vec<serde_json::Value> = tenants.iter().map(|t| t.id.as_str().into()).collect();
    let services: std::collections::BTreeSet<&str> = tenants
        .iter()
        .flat_map(|t| t.services.keys().map(|s| s.as_str()))
        .collect();
    let services: Vec<serde_json::Value> = services.into_iter().map(Into::into).collect();
    restrict(&mut value, &ids, &services);
    value
}

/// The answers the edge gives before or beside a handler: malformed input (400, 413, 415,
/// 422), rate limits (429), foreign origins on changes (403) and an unavailable store (503).
fn common_responses(method: &str, path: &str, operation: &mut utoipa::openapi::path::Operation) {
    let mut add = |status: &str, description: &str| {
        operation
            .responses
            .responses
            .entry(status.to_owned())
            .or_insert_with(|| problem_response(description));
    };
    if operation.request_body.is_some() {
        add("400", "Kein gültiges JSON");
        add("413", "Anfrage zu groß");
        add("415", "Kein JSON (Content-Type: application/json)");
        add("422", "Ungültige Angaben");
    }
    if operation.parameters.as_ref().is_some_and(|p| !p.is_empty()) {
        add("400", "Ungültige Parameter");
    }
    if method == "POST" {
        add("403", "Anfrage von fremder Herkunft");
    }
    let budgeted = method
        .parse::<axum::http::Method>()
        .ok()
        .and_then(|m| super::middleware::guard::budget_of(&m, path));
    if budgeted.is_some() {
        add("429", "Zu viele Anfragen");
    }
    add("503", "Dienst vorübergehend nicht verfügbar");
}

fn problem_response(description: &str) -> utoipa::openapi::RefOr<utoipa::openapi::Response> {
    use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/problem+json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("Problem")))
                .build(),
        )
        .build()
        .into()
}

/// Makes the schema as strict as the server where the derive cannot: every string named
/// `tenant` is one of the configured municipalities, every service one of theirs, and the
/// privacy notice must be accepted.
fn restrict(
    value: &mut serde_json::Value,
    tenants: &[serde_json::Value],
    services: &[serde_json::Value],
) {
    match value {
        serde_json::Value::Object(map) => {
            if map.get("name").and_then(|n| n.as_str()) == Some("tenant")
                && let Some(schema) = map.get_mut("schema").and_then(|s| s.as_object_mut())
            {
                schema.insert("enum".into(), tenants.to_vec().into());
            }
            if let Some(properties) = map.get_mut("properties").and_then(|p| p.as_object_mut()) {
                if let Some(tenant) = properties.get_mut("tenant").and_then(|t| t.as_object_mut()) {
                    tenant.insert("enum".into(), tenants.to_vec().into());
                }
                if let Some(items) = properties
                    .get_mut("services")
                    .and_then(|s| s.get_mut("items"))
                    .and_then(|i| i.as_object_mut())
                    .filter(|i| i.get("type").and_then(|t| t.as_str()) == Some("string"))
                {
                    items.insert("enum".into(), services.to_vec().into());
                }
                if let Some(privacy) = properties
                    .get_mut("privacy_accepted")
                    .and_then(|t| t.as_object_mut())
                {
                    privacy.insert("enum".into(), vec![serde_json::Value::Bool(true)].into());
                }
            }
            for v in map.values_mut() {
                restrict(v, tenants, services);
            }
        }
        serde_json::Value::Array(items) => {
            for v in items {
                restrict(v, tenants, services);
            }
        }
        _ => {}
    }
}
