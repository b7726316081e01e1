use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use tower::ServiceExt;
use videoamt_adapters::keys::Kek;
use videoamt_adapters::store::sqlite::SqliteStore;
use videoamt_api::app::System;
use videoamt_api::http::{AppState, app};
use videoamt_core::tenant::example_tenants;

async fn state() -> (tempfile::TempDir, AppState) {
    state_with(example_tenants().expect("examples are valid")).await
}

/// The router's state over a fresh embedded store, for `tenants`.
async fn state_with(tenants: Vec<videoamt_core::tenant::Tenant>) -> (tempfile::TempDir, AppState) {
    state_with_kek(tenants, Kek::ephemeral().expect("randomness")).await
}

async fn state_with_kek(
    tenants: Vec<videoamt_core::tenant::Tenant>,
    kek: Kek,
) -> (tempfile::TempDir, AppState) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteStore::open(dir.path().join("events.db"))
        .await
        .expect("open");
    let state = AppState::new(System::new(
        Arc::new(store),
        kek,
        // The data folder inside the temporary one, so that what lives beside it (the case
        // export) stays inside too.
        &dir.path().join("data"),
        tenants,
    ));
    (dir, state)
}

async fn get(state: AppState, path: &str) -> (StatusCode, String) {
    get_from(app(state), path).await
}

/// A GET of `path` on `router`: its status and body.
async fn get_from(router: axum::Router, path: &str) -> (StatusCode, String) {
    let response = router
        .oneshot(Request::get(path).body(Body::empty()).expect("request"))
        .await
        .expect("infallible");
    let status = response.status();
    let body = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .expect("body");
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn health_and_readiness_answer() {
    let (_dir, state) = state().await;
    assert_eq!(
        get(state.clone(), "/healthz").await,
        (StatusCode::OK, "ok".to_owned())
    );
    assert_eq!(
        get(state, "/readyz").await,
        (StatusCode::OK, "ready".to_owned())
    );
}

#[tokio::test]
async fn unknown_paths_are_not_found() {
    let (_dir, state) = state().await;
    assert_eq!(get(state, "/nirgendwo").await.0, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn metrics_export_each_projections_lag() {
    let (_dir, state) = state().await;
    let (status, body) = scrape(state.clone()).await;
    assert_eq!(status, StatusCode::OK);
    for p in &state.projections {
        let line = format!(
            "videoamt_projection_lag_events{{projection=\"{}\"}} 0",
            p.name()
        );
        assert!(body.contains(&line), "{line} missing in:\n{body}");
    }
    assert!(body.contains("# TYPE videoamt_projection_lag_seconds gauge"));
}

/// Each hot read model's memory copy tells how far it has applied the log, and after a
/// catch-up that is where its database copy's checkpoint is.
#[tokio::test]
async fn metrics_tell_how_far_the_memory_copies_are() {
    let api = Api::new().await;
    let state = &api.state;
    api.book(TUE_9).await;
    api.fold().await;
    // The memory copies as `serve` keeps them: seeded, then fed by their own runner.
    state.reads.seed().await.expect("seeded");
    videoamt_projections::runner::Runner::new(state.store.clone(), state.reads.clone())
        .catch_up(&state.reads.projections())
        .await
        .expect("memory caught up");
    let (status, body) = scrape(state.clone()).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        body.contains("# TYPE videoamt_memory_position gauge"),
        "{body}"
    );
    let holding = state.reads.holding();
    assert!(!holding.is_empty(), "hot read models are held");
    for held in holding {
        let checkpoint = state
            .store
            .checkpoint(held.projection)
            .await
            .expect("checkpoint")
            .position;
        assert!(checkpoint > 0, "{} folded the booking", held.projection);
        let line = format!(
            "videoamt_memory_position{{projection=\"{}\"}} {checkpoint}\n",
            held.projection
        );
        assert!(body.contains(&line), "{line} missing in:\n{body}");
    }
}

/// `/metrics` of the internal listener's router.
async fn scrape(state: AppState) -> (StatusCode, String) {
    get_from(videoamt_api::http::metrics_app(state), "/metrics").await
}

/// The metrics are served on the internal listener only: the public router has no
/// `/metrics`, and the internal one nothing else.
#[tokio::test]
async fn metrics_are_not_public() {
    let (_dir, state) = state().await;
    let (status, body) = get(state.clone(), "/metrics").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert!(!body.contains("videoamt_projection_lag_events"), "{body}");
    let (status, _) = get_from(videoamt_api::http::metrics_app(state), "/healthz").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

// --- the citizen API ---

use std::sync::atomic::{AtomicI64, Ordering};

use axum::http::HeaderMap;
use serde_json::{Value, json};
use videoamt_api::http::Clock;
use videoamt_api::http::middleware::RateLimits;

/// Friday 20 November 2026, 11:00 in Germany: the server's "now" unless a test moves it.
pub(crate) const NOW: i64 = 1_795_168_800;

pub(crate) struct Api {
    _dir: tempfile::TempDir,
    pub(crate) state: AppState,
    pub(crate) now: Arc<AtomicI64>,
    /// The store's key-encryption key, for [`Api::restart_with`].
    kek: Kek,
}

impl Api {
    pub(crate) async fn new() -> Self {
        Self::with_limits(RateLimits::default()).await
    }

    /// Folds what the log holds into every projection's database copy.
    pub(crate) async fn fold(&self) {
        self.state
            .runner()
            .catch_up(&self.state.projections)
            .await
            .expect("caught up");
    }

    /// The server of `tenants` instead of the examples.
    pub(crate) async fn with_tenants(tenants: Vec<videoamt_core::tenant::Tenant>) -> Self {
        let kek = Kek::ephemeral().expect("randomness");
        let (dir, state) = state_with_kek(tenants, kek.clone()).await;
        Self::of(dir, state, RateLimits::default(), kek)
    }

    pub(crate) async fn with_limits(limits: RateLimits) -> Self {
        Self::with_tenants_and_limits(example_tenants().expect("examples are valid"), limits).await
    }

    pub(crate) async fn with_tenants_and_limits(
        tenants: Vec<videoamt_core::tenant::Tenant>,
        limits: RateLimits,
    ) -> Self {
        let kek = Kek::ephemeral().expect("randomness");
        let (dir, state) = state_with_kek(tenants, kek.clone()).await;
        Self::of(dir, state, limits, kek)
    }

    fn of(dir: tempfile::TempDir, state: AppState, limits: RateLimits, kek: Kek) -> Self {
        let now = Arc::new(AtomicI64::new(NOW));
        let state = Self::dressed(state, &now, limits);
        Self {
            _dir: dir,
            state,
            now,
            kek,
        }
    }

    /// `state` with the test's clock, rate limits and public URL.
    fn dressed(state: AppState, now: &Arc<AtomicI64>, limits: RateLimits) -> AppState {
        let clock_now = now.clone();
        let clock: Clock = Arc::new(move || {
            time::OffsetDateTime::from_unix_timestamp(clock_now.load(Ordering::SeqCst))
                .expect("valid")
        });
        // The tests book many appointments from one address and mailbox; `abuse::` shows the
        // daily caps themselves.
        state
            .with_clock(clock)
            .with_limits(limits)
            .with_booking_caps(videoamt_api::app::settings::BookingCapSetting {
                mailbox: 100_000,
                address: 100_000,
            })
            .with_public_url("http://amt.test")
    }

    /// The server started again on the same store, key and data folder with `tenants`, as
    /// after a change of the tenant files. Staff sessions are in the store and outlive it.
    pub(crate) fn restart_with(&mut self, tenants: Vec<videoamt_core::tenant::Tenant>) {
        let system = System::new(
            self.state.store.clone(),
            self.kek.clone(),
            &self.state.system.data_dir.clone(),
            tenants,
        );
        let old = &self.state.limits;
        let limits = RateLimits::new(old.booking, old.token, old.login, old.window);
        self.state = Self::dressed(AppState::new(system), &self.now, limits);
    }

    pub(crate) async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<Vec<u8>>,
        headers: &[(&str, &str)],
    ) -> (StatusCode, HeaderMap, Value) {
        self.call_from(None, method, path, body, headers).await
    }

    /// [`Api::call`] over a connection from `peer`, as the server tells its handlers.
    pub(crate) async fn call_from(
        &self,
        peer: Option<std::net::SocketAddr>,
        method: &str,
        path: &str,
        body: Option<Vec<u8>>,
        headers: &[(&str, &str)],
    ) -> (StatusCode, HeaderMap, Value) {
        let mut request = Request::builder().method(method).uri(path);
        if let Some(peer) = peer {
            request = request.extension(axum::extract::ConnectInfo(peer));
        }
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        let has_body = body.is_some();
        if has_body
            && !headers
                .iter()
                .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
        {
            request = request.header("content-type", "application/json");
        }
        let request = request
            .body(body.map_or_else(Body::empty, Body::from))
            .expect("request");
        let response = app(self.state.clone())
            .oneshot(request)
            .await
            .expect("infallible");
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 24)
            .await
            .expect("body");
        let value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        (status, headers, value)
    }

    pub(crate) async fn get(&self, path: &str) -> (StatusCode, HeaderMap, Value) {
        self.call("GET", path, None, &[]).await
    }

    pub(crate) async fn post(&self, path: &str, body: &Value) -> (StatusCode, HeaderMap, Value) {
        self.call("POST", path, Some(body.to_string().into_bytes()), &[])
            .await
    }

    pub(crate) async fn last_position(&self) -> u64 {
        self.state.store.last_position().await.expect("position")
    }

    /// Books `start` and returns the token.
    pub(crate) async fn book(&self, start: &str) -> String {
        let (status, _, body) = self.post("/api/v1/appointments", &booking(start)).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        self.token_of(&body)
    }

    /// The token of the link in the mail about the appointment a booking answered with
    /// (`booked`), made as the mail worker makes it: the answer itself carries none.
    pub(crate) fn token_of(&self, booked: &Value) -> String {
        assert!(booked.get("token").is_none(), "the link goes by mail only");
        let id = booked["appointment"]["id"]
            .as_str()
            .and_then(|id| id.parse().ok())
            .expect("an appointment id");
        self.state
            .system
            .access
            .token(videoamt_core::domain::AppointmentId(id))
    }
}

/// Tuesday 24 November 2026, 09:00 in Ettlingen.
pub(crate) const TUE_9: &str = "2026-11-24T09:00:00+01:00";

pub(crate) fn booking(start: &str) -> Value {
    json!({
        "tenant": "ettlingen",
        "services": ["personalausweis", "meldebescheinigung"],
        "start": start,
        "contact": {"name": "Erika Mustermann", "email": "erika@example.org", "phone": "+49 721 1234567"},
        "privacy_accepted": true
    })
}

/// A problem document with a German title and the given status, and nothing written.
pub(crate) async fn assert_refused(
    api: &Api,
    response: (StatusCode, HeaderMap, Value),
    status: StatusCode,
    before: u64,
) -> Value {
    let (got, headers, body) = response;
    assert_eq!(got, status, "{body}");
    assert_eq!(
        headers[axum::http::header::CONTENT_TYPE],
        "application/problem+json",
        "{body}"
    );
    assert_eq!(body["status"], status.as_u16(), "{body}");
    let title = body["title"].as_str().expect("title");
    assert!(
        !title.is_empty() && title.chars().any(|c| c.is_alphabetic()),
        "{body}"
    );
    assert!(
        body["type"]
            .as_str()
            .expect("type")
            .starts_with("/problems/")
    );
    assert_eq!(
        api.last_position().await,
        before,
        "nothing may be written: {body}"
    );
    body
}

#[tokio::test]
async fn the_openapi_document_describes_every_api_route() {
    let api = Api::new().await;
    let (status, _, doc) = api.get("/api/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        doc["openapi"].as_str().expect("version").starts_with("3.1"),
        "{doc}"
    );
    let paths: Vec<&str> = doc["paths"]
        .as_object()
        .expect("paths")
        .keys()
        .map(String::as_str)
        .collect();
    for path in [
        "/api/v1/login",
        "/api/v1/me",
        "/api/v1/clerk/schedule",
        "/api/v1/clerk/waiting-room",
        "/api/v1/appointments/{id}",
        "/api/v1/appointments/{id}/cancel",
        "/api/v1/invitations",
        "/api/v1/audit/appointments",
        "/api/v1/audit/appointments/{id}",
        "/api/v1/retention/report",
        "/api/v1/retention/subjects/{id}",
        "/api/v1/statistics",
        "/api/v1/catalogue",
        "/api/v1/slots",
        "/api/v1/appointments",
        "/api/v1/appointments/by-token/{token}",
        "/api/v1/appointments/by-token/{token}/confirm",
        "/api/v1/appointments/by-token/{token}/cancel",
        "/api/v1/appointments/by-token/{token}/reschedule",
    ] {
        assert!(paths.contains(&path), "{path} missing in {paths:?}");
    }
    // Every documented path answers something other than the router's fallback.
    for path in paths {
        let concrete = path
            .replace("{token}", "x")
            .replace("{id}", "0190d0d0-0000-7000-8000-000000000000");
        let (status, _, body) = api.get(&concrete).await;
        assert_ne!(
            body["type"], "/problems/not-found",
            "{path} is documented but not routed"
        );
        assert_ne!(status, StatusCode::INTERNAL_SERVER_ERROR, "{path}");
    }
    assert!(doc["components"]["schemas"]["Problem"].is_object());
    // Staff endpoints name the session cookie; the citizen's do not need it.
    let scheme = &doc["components"]["securitySchemes"]["sitzung"];
    assert_eq!(
        (
            scheme["type"].as_str(),
            scheme["in"].as_str(),
            scheme["name"].as_str()
        ),
        (Some("apiKey"), Some("cookie"), Some("videoamt_sitzung"))
    );
    assert_eq!(
        doc["paths"]["/api/v1/clerk/schedule"]["get"]["security"][0]["sitzung"],
        serde_json::json!([])
    );
    assert!(doc["paths"]["/api/v1/catalogue"]["get"]["security"].is_null());
}

/// Every operation that takes a JSON body documents 400, 413, 415 and 422, and answers a
/// malformed body with 400 and a body of another type with 415, writing nothing, before any
/// rule is asked. (Staff operations ask for the session first: without one they answer 401.)
#[tokio::test]
async fn json_operations_document_and_answer_400_and_415() {
    let api = Api::new().await;
    let (_, _, doc) = api.get("/api/openapi.json").await;
    let before = api.last_position().await;
    let mut checked = 0;
    for (path, item) in doc["paths"].as_object().expect("paths") {
        let Some(operation) = item.get("post") else {
            continue;
        };
        if operation["requestBody"].is_null() {
            continue;
        }
        for status in ["400", "413", "415", "422", "403", "503"] {
            assert!(
                operation["responses"][status].is_object(),
                "POST {path} does not document {status}"
            );
        }
        if !operation["security"].is_null() {
            continue;
        }
        let concrete = path.replace("{token}", "x");
        let (status, headers, body) = api.call("POST", &concrete, Some(b"{".to_vec()), &[]).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "POST {path}: {body}");
        assert_eq!(headers["content-type"], "application/problem+json");
        assert_eq!(body["title"], "Ungültige Anfrage", "POST {path}");
        let (status, _, body) = api
            .call(
                "POST",
                &concrete,
                Some(b"tenant=ettlingen".to_vec()),
                &[("content-type", "application/x-www-form-urlencoded")],
            )
            .await;
        assert_eq!(
            status,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "POST {path}: {body}"
        );
        assert_eq!(body["title"], "Falsches Datenformat", "POST {path}");
        checked += 1;
    }
    assert!(checked >= 4, "only {checked} JSON operations");
    assert_eq!(
        api.last_position().await,
        before,
        "a refusal wrote something"
    );
    // Query operations document 400; the rate-limited ones 429.
    assert!(doc["paths"]["/api/v1/slots"]["get"]["responses"]["400"].is_object());
    assert!(doc["paths"]["/api/v1/appointments"]["post"]["responses"]["429"].is_object());
    assert!(doc["paths"]["/api/v1/catalogue"]["get"]["responses"]["429"].is_null());
}

/// The schema is as strict as the server: tenants and services are the configured ones, the
/// booking takes at least one service, dates have their pattern, text its length.
#[tokio::test]
async fn the_schema_names_tenants_services_dates_and_lengths() {
    let api = Api::new().await;
    let (_, _, doc) = api.get("/api/openapi.json").await;
    let booking = &doc["components"]["schemas"]["BookingRequest"]["properties"];
    assert_eq!(booking["tenant"]["enum"], json!(["ettlingen", "stuttgart"]));
    assert_eq!(booking["services"]["minItems"], 1);
    let services = booking["services"]["items"]["enum"]
        .as_array()
        .expect("enum");
    assert!(services.contains(&json!("personalausweis")), "{services:?}");
    assert_eq!(booking["privacy_accepted"]["enum"], json!([true]));
    let contact = &doc["components"]["schemas"]["ContactInput"]["properties"];
    assert_eq!(contact["name"]["maxLength"], 200);
    assert_eq!(contact["name"]["minLength"], 1);
    let slots = doc["paths"]["/api/v1/slots"]["get"]["parameters"]
        .as_array()
        .expect("parameters");
    let param = |name: &str| {
        slots
            .iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("{name} missing"))
            .clone()
    };
    assert_eq!(
        param("tenant")["schema"]["enum"],
        json!(["ettlingen", "stuttgart"])
    );
    assert_eq!(
        param("from")["schema"]["pattern"],
        "^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
    );
    assert_eq!(param("days")["schema"]["maximum"], 14);
}

#[tokio::test]
async fn the_catalogue_lists_both_municipalities_with_fees_in_cents() {
    let api = Api::new().await;
    let (status, headers, body) = api.get("/api/v1/catalogue").await;
    assert_eq!(status, StatusCode::OK);
    let ids: Vec<&str> = body
        .as_array()
        .expect("list")
        .iter()
        .map(|t| t["id"].as_str().expect("id"))
        .collect();
    assert_eq!(ids, ["ettlingen", "stuttgart"]);
    let ettlingen = &body[0];
    assert_eq!(ettlingen["time_zone"], "Europe/Berlin");
    let service = ettlingen["departments"]
        .as_array()
        .expect("departments")
        .iter()
        .flat_map(|d| d["services"].as_array().expect("services"))
        .find(|s| s["id"] == "personalausweis")
        .expect("personalausweis offered");
    assert!(service["fee_cents"].as_u64().expect("cents") > 0);
    // The security headers are on every response.
    let csp = headers["content-security-policy"].to_str().expect("ascii");
    assert!(
        csp.contains("frame-ancestors 'none'") && csp.contains("script-src 'self'"),
        "{csp}"
    );
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert_eq!(headers["referrer-policy"], "no-referrer");
}

#[tokio::test]
async fn free_slots_are_offered_and_a_booked_one_disappears() {
    let api = Api::new().await;
    let query = "/api/v1/slots?tenant=ettlingen&services=personalausweis,meldebescheinigung&from=2026-11-24&days=2";
    let (status, _, body) = api.get(query).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["department"], "buergerbuero");
    assert_eq!(body["duration_minutes"], 30);
    let first_day = body["days"][0]["starts"].as_array().expect("starts");
    assert!(first_day.iter().any(|s| s == TUE_9), "{body}");
    assert_eq!(body["days"][1]["date"], "2026-11-25");
    let free_before = first_day.len();
    // Capacity is per department; book the 9:00 slot until it is gone.
    let capacity = api.state.tenants[0].departments[&"buergerbuero".into()].capacity;
    for _ in 0..capacity {
        api.book(TUE_9).await;
    }
    api.fold().await;
    let (_, _, body) = api.get(query).await;
    let starts = body["days"][0]["starts"].as_array().expect("starts");
    assert!(!starts.iter().any(|s| s == TUE_9), "{body}");
    assert!(starts.len() < free_before);
    // The next booking of the full slot is refused as taken, and writes nothing.
    let before = api.last_position().await;
    let response = api.post("/api/v1/appointments", &booking(TUE_9)).await;
    assert_refused(&api, response, StatusCode::CONFLICT, before).await;
}

#[tokio::test]
async fn a_citizen_books_confirms_moves_and_cancels_with_the_link() {
    let api = Api::new().await;
    let (status, _, body) = api.post("/api/v1/appointments", &booking(TUE_9)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let token = api.token_of(&body);
    assert!(
        body["notice"]
            .as_str()
            .is_some_and(|n| n.contains("E-Mail") && n.contains("30 Minuten")),
        "{body}"
    );
    let view = &body["appointment"];
    assert_eq!(view["start"], TUE_9);
    assert_eq!(view["end"], "2026-11-24T09:30:00+01:00");
    assert_eq!(view["status"], "booked");
    assert_eq!(view["confirmed"], false);
    assert_eq!(view["contact_name"], "Erika Mustermann");
    assert!(
        !view["documents_to_bring"]
            .as_array()
            .expect("docs")
            .is_empty()
    );
    // The token is at least 128 bits and only its hash is in the log.
    assert!(token.len() >= 22);
    let events = api.state.store.read_all(0, 100).await.expect("log");
    let text: String = events.iter().map(|e| e.payload.as_str()).collect();
    assert!(
        !text.contains(&token),
        "the token itself must not be stored"
    );
    assert!(text.contains(&videoamt_adapters::access::token_hash(&token)));

    let path = format!("/api/v1/appointments/by-token/{token}");
    let (status, _, view) = api.get(&path).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(view["tenant_name"], body["appointment"]["tenant_name"]);

    let (status, _, view) = api
        .call("POST", &format!("{path}/confirm"), None, &[])
        .await;
    assert_eq!(status, StatusCode::OK, "{view}");
    assert_eq!(view["confirmed"], true);

    let later = "2026-11-25T10:00:00+01:00";
    let (status, _, view) = api
        .post(&format!("{path}/reschedule"), &json!({"start": later}))
        .await;
    assert_eq!(status, StatusCode::OK, "{view}");
    assert_eq!(view["start"], later);

    let (status, _, view) = api
        .post(&format!("{path}/cancel"), &json!({"reason": "Krank"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{view}");
    assert_eq!(view["status"], "cancelled");
    // A second cancellation is a conflict and writes nothing.
    let before = api.last_position().await;
    let response = api.post(&format!("{path}/cancel"), &json!({})).await;
    assert_refused(&api, response, StatusCode::CONFLICT, before).await;
}

#[tokio::test]
async fn bad_bookings_get_problem_documents_and_write_nothing() {
    let api = Api::new().await;
    api.book(TUE_9).await;
    let before = api.last_position().await;
    let bad = |edit: &dyn Fn(&mut Value)| {
        let mut b = booking("2026-11-24T10:00:00+01:00");
        edit(&mut b);
        b
    };

    let malformed = api
        .call(
            "POST",
            "/api/v1/appointments",
            Some(b"{\"tenant\": ".to_vec()),
            &[],
        )
        .await;
    assert_refused(&api, malformed, StatusCode::BAD_REQUEST, before).await;

    let unknown_service = api
        .post(
            "/api/v1/appointments",
            &bad(&|b| b["services"] = json!(["mondlandung"])),
        )
        .await;
    let body = assert_refused(
        &api,
        unknown_service,
        StatusCode::UNPROCESSABLE_ENTITY,
        before,
    )
    .await;
    assert!(
        body["detail"]
            .as_str()
            .expect("detail")
            .contains("mondlandung"),
        "{body}"
    );

    let past = api
        .post(
            "/api/v1/appointments",
            &bad(&|b| b["start"] = json!("2026-11-19T09:00:00+01:00")),
        )
        .await;
    let body = assert_refused(&api, past, StatusCode::UNPROCESSABLE_ENTITY, before).await;
    assert_eq!(
        body["detail"],
        "Der gewählte Zeitpunkt liegt in der Vergangenheit."
    );

    let mail = api
        .post(
            "/api/v1/appointments",
            &bad(&|b| b["contact"]["email"] = json!("erika(at)example")),
        )
        .await;
    let body = assert_refused(&api, mail, StatusCode::UNPROCESSABLE_ENTITY, before).await;
    assert_eq!(body["errors"][0]["field"], "contact.email", "{body}");

    let several = api
        .post(
            "/api/v1/appointments",
            &bad(&|b| {
                b["contact"]["name"] = json!("  ");
                b["contact"]["phone"] = json!("call me");
                b["privacy_accepted"] = json!(false);
            }),
        )
        .await;
    let body = assert_refused(&api, several, StatusCode::UNPROCESSABLE_ENTITY, before).await;
    let fields: Vec<&str> = body["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .map(|e| e["field"].as_str().expect("field"))
        .collect();
    assert_eq!(
        fields,
        ["contact.name", "contact.phone", "privacy_accepted"]
    );

    let unknown_field = api
        .post("/api/v1/appointments", &bad(&|b| b["admin"] = json!(true)))
        .await;
    assert_refused(
        &api,
        unknown_field,
        StatusCode::UNPROCESSABLE_ENTITY,
        before,
    )
    .await;

    let huge = vec![b' '; 10 * 1024 * 1024];
    let too_large = api
        .call("POST", "/api/v1/appointments", Some(huge), &[])
        .await;
    assert_refused(&api, too_large, StatusCode::PAYLOAD_TOO_LARGE, before).await;

    let not_json = api
        .call(
            "POST",
            "/api/v1/appointments",
            Some(booking(TUE_9).to_string().into_bytes()),
            &[("content-type", "text/plain")],
        )
        .await;
    assert_refused(&api, not_json, StatusCode::UNSUPPORTED_MEDIA_TYPE, before).await;

    let foreign = api
        .call(
            "POST",
            "/api/v1/appointments",
            Some(bad(&|_| {}).to_string().into_bytes()),
            &[("origin", "https://evil.example"), ("host", "amt.test")],
        )
        .await;
    assert_refused(&api, foreign, StatusCode::FORBIDDEN, before).await;

    let outside_hours = api
        .post(
            "/api/v1/appointments",
            &bad(&|b| b["start"] = json!("2026-11-24T03:00:00+01:00")),
        )
        .await;
    assert_refused(
        &api,
        outside_hours,
        StatusCode::UNPROCESSABLE_ENTITY,
        before,
    )
    .await;
}

#[tokio::test]
async fn wrong_foreign_and_expired_links_open_nothing() {
    let api = Api::new().await;
    let token = api.book(TUE_9).await;
    let before = api.last_position().await;

    let mut forged: Vec<char> = token.chars().collect();
    forged[30] = if forged[30] == 'A' { 'B' } else { 'A' };
    let forged: String = forged.into_iter().collect();
    for wrong in [forged.as_str(), "abc", &"x".repeat(300)] {
        let response = api
            .get(&format!("/api/v1/appointments/by-token/{wrong}"))
            .await;
        let body = assert_refused(&api, response, StatusCode::NOT_FOUND, before).await;
        assert_eq!(body["title"], "Der Link ist ungültig");
        let response = api
            .post(
                &format!("/api/v1/appointments/by-token/{wrong}/cancel"),
                &json!({}),
            )
            .await;
        assert_refused(&api, response, StatusCode::NOT_FOUND, before).await;
    }
    // A token made with another server's key names an appointment but is refused all the same.
    let other = videoamt_adapters::keys::Kek::ephemeral()
        .expect("kek")
        .access_tokens();
    let appointment = api
        .state
        .system
        .access
        .appointment_of(&token)
        .expect("valid");
    let foreign = other.token(appointment);
    let response = api
        .get(&format!("/api/v1/appointments/by-token/{foreign}"))
        .await;
    assert_refused(&api, response, StatusCode::NOT_FOUND, before).await;

    // Past the retention period the link is expired, for reading and for writing.
    let path = format!("/api/v1/appointments/by-token/{token}");
    let (status, _, _) = api.get(&path).await;
    assert_eq!(status, StatusCode::OK);
    api.now.store(NOW + 200 * 24 * 3600, Ordering::SeqCst);
    let response = api.get(&path).await;
    let body = assert_refused(&api, response, StatusCode::GONE, before).await;
    assert_eq!(body["title"], "Der Link ist abgelaufen");
    let response = api.post(&format!("{path}/cancel"), &json!({})).await;
    assert_refused(&api, response, StatusCode::GONE, before).await;
}

#[tokio::test]
async fn bad_slot_queries_get_problem_documents() {
    let api = Api::new().await;
    let before = api.last_position().await;
    for (query, status) in [
        (
            "tenant=ettlingen&services=personalausweis&from=24.11.2026",
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "tenant=ettlingen&services=personalausweis&from=2026-11-24&days=99",
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "tenant=atlantis&services=personalausweis&from=2026-11-24",
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "tenant=ettlingen&services=mondlandung&from=2026-11-24",
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "tenant=ettlingen&services=&from=2026-11-24",
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        ("tenant=ettlingen&from=2026-11-24", StatusCode::BAD_REQUEST),
        (
            "tenant=ettlingen&services=personalausweis&from=2026-11-24&days=-1",
            StatusCode::BAD_REQUEST,
        ),
    ] {
        let response = api.get(&format!("/api/v1/slots?{query}")).await;
        assert_refused(&api, response, status, before).await;
    }
}

#[tokio::test]
async fn booking_and_link_requests_are_rate_limited() {
    let api = Api::with_limits(RateLimits::new(2, 3, 1, std::time::Duration::from_secs(60))).await;
    api.book(TUE_9).await;
    api.book("2026-11-24T10:00:00+01:00").await;
    let before = api.last_position().await;
    let response = api
        .post(
            "/api/v1/appointments",
            &booking("2026-11-24T11:00:00+01:00"),
        )
        .await;
    let (_, headers, _) = &response;
    assert!(headers.contains_key("retry-after"));
    assert_refused(&api, response, StatusCode::TOO_MANY_REQUESTS, before).await;
    for _ in 0..3 {
        let (status, _, _) = api.get("/api/v1/appointments/by-token/guess").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }
    let response = api.get("/api/v1/appointments/by-token/guess").await;
    assert_refused(&api, response, StatusCode::TOO_MANY_REQUESTS, before).await;
    // Reading the catalogue draws on no budget.
    assert_eq!(api.get("/api/v1/catalogue").await.0, StatusCode::OK);
}

#[tokio::test]
async fn the_citizen_pages_show_the_appointment_and_refuse_bad_links_in_german() {
    let api = Api::new().await;
    let token = api.book(TUE_9).await;
    let (status, _, html) = page(&api.state, "GET", &format!("/termin/{token}"), None).await;
    assert_eq!(status, StatusCode::OK);
    for expected in [
        "<html lang=\"de\">",
        "Ihr Videotermin",
        "24.11.2026, 09:00 Uhr",
        "Erika Mustermann",
        "Termin bestätigen",
        "Technische Voraussetzungen",
        "Hotline",
    ] {
        assert!(html.contains(expected), "{expected:?} missing in {html}");
    }
    assert!(!html.contains("<script"), "no scripts needed here");
    let (status, _, html) = page(
        &api.state,
        "GET",
        &format!("/termin/{token}/verlegen?von=2026-11-24"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("type=\"radio\""), "{html}");
    let (status, _, html) = page(&api.state, "GET", "/termin/falsch", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(html.contains("Der Link ist ungültig"), "{html}");
    // A form posted from a foreign page is refused and changes nothing.
    let before = api.last_position().await;
    let response = api
        .call(
            "POST",
            &format!("/termin/{token}/absagen"),
            Some(b"reason=".to_vec()),
            &[
                ("content-type", "application/x-www-form-urlencoded"),
                ("origin", "https://evil.example"),
                ("host", "amt.test"),
            ],
        )
        .await;
    assert_refused(&api, response, StatusCode::FORBIDDEN, before).await;
}

#[tokio::test]
async fn the_dev_outbox_lists_written_mails_and_sms_only_in_the_embedded_default_mode() {
    use videoamt_core::mail::Mailer as _;
    let api = Api::new().await;
    let (status, _, body) = api.get("/dev/outbox").await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "absent unless enabled: {body}"
    );

    let state = api.state.clone().with_dev_outbox();
    let subject = videoamt_core::domain::SubjectId(uuid::Uuid::from_u128(42));
    videoamt_adapters::mail::FolderMailer::new(state.system.outbox_dir())
        .send(&videoamt_core::mail::OutgoingMail {
            message_id: "<1.2.confirmation@videoamt>".into(),
            from: "videoberatung@localhost".into(),
            from_name: "Stadt Ettlingen".into(),
            to: "erika@example.org".into(),
            to_name: "Erika Mustermann".into(),
            subject: "Ihr Videotermin".into(),
            text: "Guten Tag".into(),
            calendar: None,
            owner: subject,
        })
        .await
        .expect("written");
    let (status, _, html) = page(&state, "GET", "/dev/outbox", None).await;
    assert_eq!(status, StatusCode::OK);
    let file = "_1.2.confirmation_videoamt_.eml";
    assert!(html.contains(file), "{html}");
    let (status, _, mail) = page(
        &state,
        "GET",
        "/dev/outbox/00000000-0000-0000-0000-00000000002a/_1.2.confirmation_videoamt_.eml",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(mail.contains("Subject: Ihr Videotermin"), "{mail}");
    let (status, _, _) = page(&state, "GET", "/dev/outbox/..%2F..%2Fkek/x.eml", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // The SMS sandbox files the Handy-TAN beside the mails, and the list shows it as an SMS.
    use videoamt_core::sms::SmsGateway as _;
    videoamt_adapters::sms::OutboxSms::new(state.system.outbox_dir())
        .send(&videoamt_core::sms::OutgoingSms {
            to: "0171 2345678".into(),
            text: "Ihre TAN: 123456".into(),
            owner: subject,
            key: uuid::Uuid::now_v7(),
        })
        .await
        .expect("filed");
    let (status, _, html) = page(&state, "GET", "/dev/outbox", None).await;
    assert_eq!(status, StatusCode::OK);
    let sms = html
        .split('"')
        .find(|part| part.starts_with("/dev/outbox/") && part.ends_with(".sms.txt"))
        .unwrap_or_else(|| panic!("the SMS is listed: {html}"))
        .to_owned();
    assert!(
        html.contains("<td>SMS</td>") && html.contains("<td>Mail</td>"),
        "{html}"
    );
    let (status, _, text) = page(&state, "GET", &sms, None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        text.contains("An: 0171 2345678") && text.contains("Ihre TAN: 123456"),
        "{text}"
    );
    // Other files in a subject's folder are not served.
    let (status, _, _) = page(
        &state,
        "GET",
        "/dev/outbox/00000000-0000-0000-0000-00000000002a/notiz.txt",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// GET `path` as a browser would: (status, Location, HTML).
async fn page(
    state: &AppState,
    method: &str,
    path: &str,
    form: Option<&str>,
) -> (StatusCode, String, String) {
    let mut request = Request::builder().method(method).uri(path);
    if form.is_some() {
        request = request.header("content-type", "application/x-www-form-urlencoded");
    }
    let response = app(state.clone())
        .oneshot(
            request
                .body(form.map_or_else(Body::empty, |f| Body::from(f.to_owned())))
                .expect("request"),
        )
        .await
        .expect("infallible");
    let status = response.status();
    let location = response
        .headers()
        .get("location")
        .map(|l| l.to_str().expect("ascii").to_owned())
        .unwrap_or_default();
    let body = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .expect("body");
    (
        status,
        location,
        String::from_utf8_lossy(&body).into_owned(),
    )
}

/// The appointment booked last, from the log: a booking through the pages answers with no id.
pub(crate) async fn last_booked(api: &Api) -> videoamt_core::domain::AppointmentId {
    let events = api.state.store.read_all(0, 100_000).await.expect("log");
    events
        .iter()
        .rev()
        .find(|e| e.event_type.as_str() == "AppointmentBooked")
        .and_then(|e| {
            e.stream_id
                .as_str()
                .strip_prefix("appointment-")?
                .parse()
                .ok()
        })
        .map(videoamt_core::domain::AppointmentId)
        .expect("a booking in the log")
}

#[tokio::test]
async fn a_citizen_books_two_concerns_through_the_pages_without_javascript() {
    let api = Api::new().await;
    let s = &api.state;
    let (status, _, html) = page(s, "GET", "/", None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        html.contains("href=\"/buchen/ettlingen\"") && html.contains("href=\"/buchen/stuttgart\""),
        "{html}"
    );

    let (status, _, html) = page(s, "GET", "/buchen/ettlingen", None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        html.contains("name=\"anliegen\" value=\"personalausweis\""),
        "{html}"
    );
    assert!(html.contains("Minuten") && html.contains("€"), "{html}");

    let chosen = "anliegen=personalausweis&anliegen=meldebescheinigung";
    let (status, _, html) = page(
        s,
        "GET",
        &format!("/buchen/ettlingen/zeit?{chosen}&von=2026-11-24"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert!(
        html.contains("<dd>30 Minuten</dd>"),
        "total duration shown: {html}"
    );
    assert!(html.contains(&format!("value=\"{TUE_9}\"")), "{html}");

    let start = TUE_9.replace('+', "%2B").replace(':', "%3A");
    let (status, _, html) = page(
        s,
        "GET",
        &format!("/buchen/ettlingen/kontakt?{chosen}&start={start}"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        html.contains("Gewählter Termin: Dienstag, 24.11.2026, 09:00 Uhr"),
        "{html}"
    );

    // A bad address comes back beside its field, with the input kept and nothing written.
    let before = api.last_position().await;
    let form = |email: &str| {
        format!(
            "tenant=ettlingen&{chosen}&start={start}&name=Erika+Mustermann&email={email}&phone=&privacy_accepted=true"
        )
    };
    let (status, _, html) = page(s, "POST", "/buchen", Some(&form("erika%40example"))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        html.contains("Bitte geben Sie eine gültige E-Mail-Adresse an"),
        "{html}"
    );
    assert!(
        html.contains("value=\"Erika Mustermann\""),
        "input kept: {html}"
    );
    assert!(html.contains("aria-invalid=\"true\""), "{html}");
    assert_eq!(api.last_position().await, before);

    let (status, location, _) =
        page(s, "POST", "/buchen", Some(&form("erika%40example.org"))).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    // Not the appointment's page: its link is the capability, and it goes by mail only.
    assert_eq!(location, "/buchen/ettlingen/gebucht");
    let (status, _, html) = page(s, "GET", &location, None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        html.contains("Ihr Termin ist gebucht.") && html.contains("E-Mail mit dem Link"),
        "{html}"
    );
    assert!(!html.contains("/termin/"), "no link on the page: {html}");
    let booked = api.state.system.access.token(last_booked(&api).await);
    let (status, _, html) = page(s, "GET", &format!("/termin/{booked}"), None).await;
    assert_eq!(status, StatusCode::OK);
    let name = &s.tenants[0].services[&"personalausweis".into()].name;
    assert!(
        html.contains(&name.replace('&', "&amp;")),
        "{name} missing: {html}"
    );

    // The same slot again, now that capacity allows it once more or not: a taken slot is
    // explained on the form, not as an error page.
    let capacity = s.tenants[0].departments[&"buergerbuero".into()].capacity;
    for _ in 1..capacity {
        let (status, _, _) = page(s, "POST", "/buchen", Some(&form("erika%40example.org"))).await;
        assert_eq!(status, StatusCode::SEE_OTHER);
    }
    let before = api.last_position().await;
    let (status, _, html) = page(s, "POST", "/buchen", Some(&form("erika%40example.org"))).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(html.contains("gerade vergeben"), "{html}");
    assert_eq!(api.last_position().await, before);
}

#[tokio::test]
async fn metrics_count_requests_by_route_template_never_by_path() {
    let api = Api::new().await;
    let token = api.book(TUE_9).await;
    api.get(&format!("/api/v1/appointments/by-token/{token}"))
        .await;
    api.get("/api/v1/appointments/by-token/falsch").await;
    let (status, page) = scrape(api.state.clone()).await;
    assert_eq!(status, StatusCode::OK);
    for line in [
        "videoamt_http_requests_total{method=\"POST\",route=\"/api/v1/appointments\",status=\"201\"} 1",
        "videoamt_http_requests_total{method=\"GET\",route=\"/api/v1/appointments/by-token/{token}\",status=\"200\"} 1",
        "videoamt_http_requests_total{method=\"GET\",route=\"/api/v1/appointments/by-token/{token}\",status=\"404\"} 1",
    ] {
        assert!(page.contains(line), "{line} missing in:\n{page}");
    }
    assert!(
        !page.contains(&token) && !page.contains("falsch"),
        "paths leaked:\n{page}"
    );
}

#[tokio::test]
async fn framing_is_refused_and_hsts_is_sent_only_behind_https() {
    let api = Api::new().await;
    let (_, headers, _) = api.get("/api/v1/catalogue").await;
    assert_eq!(headers["x-frame-options"], "DENY");
    assert!(!headers.contains_key("strict-transport-security"));
    let secure = api.state.clone().with_public_url("https://amt.example");
    let response = app(secure)
        .oneshot(Request::get("/").body(Body::empty()).expect("request"))
        .await
        .expect("infallible");
    let hsts = response.headers()["strict-transport-security"]
        .to_str()
        .expect("ascii");
    assert!(hsts.starts_with("max-age="), "{hsts}");
}

/// The clerks' live views share one feed: it moves when the schedule or waiting room folded
/// something new, every subscriber sees it, and it stays put while nothing changes.
#[tokio::test]
async fn the_live_feed_moves_when_the_clerks_read_models_do() {
    let api = Api::new().await;
    let state = &api.state;
    let mut first = state.live.subscribe(&state.store, &state.reads);
    let mut second = state.live.subscribe(&state.store, &state.reads);
    let start = *first.borrow_and_update();
    second.borrow_and_update();

    api.book(TUE_9).await;
    api.fold().await;
    // The feed may pass through a position where one read model has folded the booking and
    // the other not yet; every subscriber ends on the sum of both checkpoints.
    let mut folded = 0;
    for name in [
        videoamt_projections::schedule::NAME,
        videoamt_projections::waiting_room::NAME,
    ] {
        folded += state
            .store
            .checkpoint(name)
            .await
            .expect("checkpoint")
            .position;
    }
    assert!(folded > start, "the booking was folded");
    for feed in [&mut first, &mut second] {
        tokio::time::timeout(
            std::time::Duration::from_secs(10),
            feed.wait_for(|at| *at >= folded),
        )
        .await
        .expect("the feed reached the folded position within ten seconds")
        .expect("the feed runs");
        feed.borrow_and_update();
    }
    // Nothing new folded: no news within a few of the feed's rounds.
    let quiet = tokio::time::timeout(std::time::Duration::from_secs(1), first.changed()).await;
    assert!(quiet.is_err(), "the feed moved without a change");
}

/// Every handler and worker takes `system.bus()`; if each got a bus of its own, commands on
/// the same slot would no longer queue behind each other but collide and decide again.
#[tokio::test]
async fn every_bus_of_the_system_queues_commands_on_the_same_slot() {
    use videoamt_adapters::bus::{BusError, Issued};
    use videoamt_core::domain::appointment::{AppointmentCommand, BookAppointment};
    use videoamt_core::domain::command::Command;
    use videoamt_core::domain::events::Contact;
    use videoamt_core::domain::{AppointmentId, DomainError, Personal, SubjectId};
    use videoamt_core::event::{Actor, TenantId};
    use videoamt_core::tenant::BookingChannel;

    let (_dir, state) = state().await;
    // A Tuesday 9:00 in Ettlingen's Bürgerbüro, whose slots hold 2 citizens each.
    let start = time::macros::datetime!(2026-12-15 08:00 UTC);
    let now = time::macros::datetime!(2026-12-01 12:00 UTC);
    let bookings = (0..8).map(|i| {
        let bus = state.system.bus();
        async move {
            let command: Command = AppointmentCommand::BookAppointment(BookAppointment {
                appointment: AppointmentId(uuid::Uuid::now_v7()),
                subject: SubjectId(uuid::Uuid::now_v7()),
                department: "buergerbuero".into(),
                services: vec!["meldebescheinigung".into()],
                start,
                channel: BookingChannel::Online,
                invited_by: None,
                contact: Contact {
                    name: Personal::plain(format!("Person {i}")),
                    email: Personal::plain(format!("p{i}@example.org")),
                    phone: None,
                },
                access: None,
            })
            .into();
            let issued = Issued {
                tenant: TenantId::parse("ettlingen").expect("valid"),
                actor: Actor::system("test"),
                correlation_id: uuid::Uuid::now_v7(),
                command_id: uuid::Uuid::now_v7(),
                now,
            };
            bus.execute(&command, &issued).await
        }
    });
    let results = futures::future::join_all(bookings).await;
    let mut booked = 0;
    for result in results {
        match result {
            Ok(done) => {
                booked += 1;
                assert_eq!(done.attempts, 1, "queued, so decided once");
            }
            Err(BusError::Refused(DomainError::SlotTaken)) => {}
            Err(e) => panic!("unexpected: {e}"),
        }
    }
    assert_eq!(booked, 2, "the slot holds two");
}
