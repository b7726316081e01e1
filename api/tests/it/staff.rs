//! Staff accounts, sessions and what each role may do: the login with its throttle, the
//! authorization matrix over every API endpoint, and the staff endpoints' answers.

use std::sync::atomic::Ordering;

use axum::http::{StatusCode, header};
use serde_json::{Value, json};
use videoamt_api::http::middleware::RateLimits;
use videoamt_api::http::staff::create_account;
use videoamt_core::domain::account::StaffRole;

use crate::router::{Api, NOW, assert_refused};

pub(crate) const PASSWORD: &str = "ein-gutes-passwort";

fn tenant(api: &Api, id: &str) -> videoamt_core::tenant::Tenant {
    api.state
        .tenants
        .iter()
        .find(|t| t.id.as_str() == id)
        .expect("an example tenant")
        .clone()
}

async fn account(api: &Api, tenant: &str, login: &str, role: StaffRole, departments: &[String]) {
    let now = time::OffsetDateTime::from_unix_timestamp(NOW).expect("valid");
    create_account(
        &api.state.system,
        &self::tenant(api, tenant),
        login,
        role,
        departments,
        PASSWORD,
        now,
    )
    .await
    .expect("account created");
}

/// Stuttgart: clerk A works for the trade office (online booking and invitations), clerk B for
/// the insurance office; one auditor, DPO and admin.
pub(crate) async fn staffed() -> Api {
    staffed_with(videoamt_core::tenant::example_tenants().expect("examples")).await
}

/// The examples, Stuttgart signing staff in through `issuer` too: the group `va-gewerbe`
/// makes a clerk of the trade office.
fn stuttgart_with_directory(issuer: &str) -> Vec<videoamt_core::tenant::Tenant> {
    let [(ettlingen_file, ettlingen), (stuttgart_file, stuttgart)] =
        videoamt_core::tenant::EXAMPLE_TENANTS;
    let stuttgart = format!(
        "{stuttgart}\n[oidc]\nissuer = \"{issuer}\"\nclient_id = \"videoamt-stuttgart\"\n\
         client_secret = \"{}\"\n\
         grants = [{{ group = \"va-gewerbe\", role = \"clerk\", departments = [\"ordnung-gewerbe\"] }}]\n",
        crate::signon::CLIENT_SECRET
    );
    vec![
        videoamt_core::tenant::Tenant::from_toml(ettlingen_file, ettlingen).expect("valid"),
        videoamt_core::tenant::Tenant::from_toml(stuttgart_file, &stuttgart).expect("valid"),
    ]
}

/// [`staffed`] with `tenants` (Stuttgart among them).
async fn staffed_with(tenants: Vec<videoamt_core::tenant::Tenant>) -> Api {
    let api = Api::with_tenants_and_limits(
        tenants,
        RateLimits::new(
            100_000,
            100_000,
            100_000,
            std::time::Duration::from_secs(60),
        ),
    )
    .await;
    for (login, role, department) in [
        ("clerk.a", StaffRole::Clerk, Some("ordnung-gewerbe")),
        ("clerk.b", StaffRole::Clerk, Some("versicherungsamt")),
        ("pruefer", StaffRole::Auditor, None),
        ("dsb", StaffRole::Dpo, None),
        ("admin", StaffRole::Admin, None),
    ] {
        let departments: Vec<String> = department.into_iter().map(str::to_owned).collect();
        account(&api, "stuttgart", login, role, &departments).await;
    }
    api
}

pub(crate) async fn login(
    api: &Api,
    tenant: &str,
    login: &str,
    password: &str,
) -> (StatusCode, Value, Option<String>) {
    let (status, headers, body) = api
        .post(
            "/api/v1/login",
            &json!({"tenant": tenant, "login": login, "password": password}),
        )
        .await;
    let cookie = headers
        .get(header::SET_COOKIE)
        .map(|v| v.to_str().expect("ascii").to_owned());
    (status, body, cookie)
}

/// [`login`] over a connection from `peer`.
async fn login_from(
    api: &Api,
    peer: std::net::SocketAddr,
    tenant: &str,
    login: &str,
    password: &str,
) -> (StatusCode, Value, Option<String>) {
    let body = json!({"tenant": tenant, "login": login, "password": password});
    let (status, headers, body) = api
        .call_from(
            Some(peer),
            "POST",
            "/api/v1/login",
            Some(body.to_string().into_bytes()),
            &[],
        )
        .await;
    let cookie = headers
        .get(header::SET_COOKIE)
        .map(|v| v.to_str().expect("ascii").to_owned());
    (status, body, cookie)
}

/// The `name=value` part of a `Set-Cookie` header, to send back.
pub(crate) fn cookie_pair(set_cookie: &str) -> String {
    set_cookie.split(';').next().expect("a pair").to_owned()
}

pub(crate) async fn session(api: &Api, name: &str) -> String {
    let (status, body, cookie) = login(api, "stuttgart", name, PASSWORD).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    cookie_pair(&cookie.expect("a session cookie"))
}

/// A local admin of Musterstadt, `notfall` (the break-glass account beside the directory),
/// logged in: the session cookie.
pub(crate) async fn musterstadt_admin(api: &Api) -> String {
    account(api, "musterstadt", "notfall", StaffRole::Admin, &[]).await;
    let (status, body, cookie) = login(api, "musterstadt", "notfall", PASSWORD).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    cookie_pair(&cookie.expect("a session cookie"))
}

fn stuttgart_booking(start: &str) -> Value {
    json!({
        "tenant": "stuttgart",
        "services": ["gewerbeanmeldung"],
        "start": start,
        "contact": {"name": "Kanari Vogelsang", "email": "kanari@example.org"},
        "privacy_accepted": true
    })
}

/// The n-th start of the trade office from Monday 23 November 2026 on: 20-minute slots from
/// 08:00 to 12:00 on weekdays.
fn start(n: usize) -> String {
    let (week, rest) = (n / 60, n % 60);
    let (day, slot) = (rest / 12, rest % 12);
    let date = time::macros::date!(2026 - 11 - 23) + time::Duration::days((week * 7 + day) as i64);
    let minutes = 8 * 60 + 20 * slot;
    format!("{date}T{:02}:{:02}:00+01:00", minutes / 60, minutes % 60)
}

pub(crate) struct Booked {
    pub(crate) token: String,
    pub(crate) appointment: String,
    pub(crate) subject: String,
}

pub(crate) async fn book(api: &Api, n: usize) -> Booked {
    let (status, _, body) = api
        .post("/api/v1/appointments", &stuttgart_booking(&start(n)))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let appointment = body["appointment"]["id"].as_str().expect("id").to_owned();
    let (found, _) = api
        .state
        .system
        .appointment(videoamt_core::domain::AppointmentId(
            appointment.parse().expect("uuid"),
        ))
        .await
        .expect("readable")
        .expect("booked");
    Booked {
        token: api.token_of(&body),
        subject: found.booking.expect("booking").subject.to_string(),
        appointment,
    }
}

#[tokio::test]
async fn five_wrong_passwords_throttle_that_address_and_never_lock_the_account() {
    let api = staffed().await;
    let before = api.last_position().await;
    // An unknown login and a wrong tenant are refused alike and write nothing.
    for (tenant, name) in [
        ("stuttgart", "niemand"),
        ("atlantis", "clerk.a"),
        ("stuttgart", "Ungültig!"),
    ] {
        let response = api
            .post(
                "/api/v1/login",
                &json!({"tenant": tenant, "login": name, "password": PASSWORD}),
            )
            .await;
        let body = assert_refused(&api, response, StatusCode::UNAUTHORIZED, before).await;
        assert_eq!(body["title"], "Anmeldung fehlgeschlagen");
    }
    let response = api
        .call("POST", "/api/v1/login", Some(b"{\"tenant\":".to_vec()), &[])
        .await;
    assert_refused(&api, response, StatusCode::BAD_REQUEST, before).await;

    // Somebody at address A guesses clerk A's password five times: each is recorded.
    let a: std::net::SocketAddr = "198.51.100.7:40000".parse().expect("an address");
    for attempt in 1..=5u64 {
        let (status, body, cookie) =
            login_from(&api, a, "stuttgart", "clerk.a", "falsches-passwort").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        assert!(cookie.is_none());
        assert_eq!(
            api.last_position().await,
            before + attempt,
            "LoginFailed recorded"
        );
    }
    let throttled_at = api.last_position().await;
    let types: Vec<String> = api
        .state
        .store
        .read_all(before, 10)
        .await
        .expect("read")
        .iter()
        .map(|e| e.event_type.as_str().to_owned())
        .collect();
    assert_eq!(types, ["LoginFailed"; 5], "no lock");

    // From A even the right password is refused now, exactly like a wrong password and like a
    // login that does not exist, and nothing is written.
    let throttled = login_from(&api, a, "stuttgart", "clerk.a", PASSWORD).await;
    assert_eq!(api.last_position().await, throttled_at);
    let c: std::net::SocketAddr = "203.0.113.9:40000".parse().expect("an address");
    let wrong = login_from(&api, c, "stuttgart", "clerk.b", "falsches-passwort").await;
    let unknown = login_from(&api, c, "stuttgart", "niemand", PASSWORD).await;
    assert_eq!(throttled.0, StatusCode::UNAUTHORIZED, "{}", throttled.1);
    assert_eq!((&throttled.0, &throttled.1), (&wrong.0, &wrong.1));
    assert_eq!((&throttled.0, &throttled.1), (&unknown.0, &unknown.1));
    assert!(throttled.2.is_none());

    // Clerk A at their own desk, another address (an IPv6 one), logs in as usual.
    let b: std::net::SocketAddr = "[2001:db8:7:1::15]:40000".parse().expect("an address");
    let (status, body, cookie) = login_from(&api, b, "stuttgart", "clerk.a", PASSWORD).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(cookie.is_some());
    // A stays throttled.
    let again = login_from(&api, a, "stuttgart", "clerk.a", PASSWORD).await;
    assert_eq!((&again.0, &again.1), (&unknown.0, &unknown.1));

    // An unknown login is throttled the same way: its answer is that of a throttled account.
    for _ in 0..5 {
        login_from(&api, a, "stuttgart", "niemand", "falsches-passwort").await;
    }
    let unknown_throttled = login_from(&api, a, "stuttgart", "niemand", PASSWORD).await;
    assert_eq!(
        (&unknown_throttled.0, &unknown_throttled.1),
        (&throttled.0, &throttled.1)
    );

    // Fifteen minutes later A may try again, and the right password opens a session.
    api.now.fetch_add(15 * 60, Ordering::SeqCst);
    let (status, body, cookie) = login_from(&api, a, "stuttgart", "clerk.a", PASSWORD).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["role"], "clerk");
    assert_eq!(body["departments"], json!(["ordnung-gewerbe"]));
    let cookie = cookie.expect("a session cookie");
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=28800"] {
        assert!(cookie.contains(flag), "{flag} missing in {cookie}");
    }
    assert!(
        !cookie.contains("Secure"),
        "no Secure without TLS: {cookie}"
    );
    let value = cookie_pair(&cookie);
    assert!(
        value.len() > "videoamt_sitzung=".len() + 40,
        "a long random value: {value}"
    );
    let (status, _, me) = api
        .call("GET", "/api/v1/me", None, &[("cookie", &value)])
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["login"], "clerk.a");

    // Logging out ends the session at once.
    let (status, headers, _) = api
        .call("POST", "/api/v1/logout", None, &[("cookie", &value)])
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(
        headers[header::SET_COOKIE]
            .to_str()
            .expect("ascii")
            .contains("Max-Age=0")
    );
    let (status, _, body) = api
        .call("GET", "/api/v1/me", None, &[("cookie", &value)])
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["title"], "Anmeldung erforderlich");

    // Sessions end after eight hours.
    let value = session(&api, "clerk.a").await;
    api.now.fetch_add(8 * 3600, Ordering::SeqCst);
    let (status, _, _) = api
        .call("GET", "/api/v1/me", None, &[("cookie", &value)])
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

/// Decides an account command on the bus as the Stuttgart admin would.
async fn as_admin(api: &Api, command: videoamt_core::domain::account::AccountCommand) {
    let issued = videoamt_adapters::bus::Issued {
        tenant: tenant(api, "stuttgart").id,
        actor: videoamt_core::event::Actor::new(videoamt_core::event::ActorRole::Admin, "admin")
            .expect("actor"),
        correlation_id: uuid::Uuid::now_v7(),
        command_id: uuid::Uuid::now_v7(),
        now: time::OffsetDateTime::from_unix_timestamp(NOW).expect("valid"),
    };
    api.state
        .system
        .bus()
        .execute(&command.into(), &issued)
        .await
        .expect("decided");
}

/// What `/api/v1/me` answers the session `cookie` with.
async fn me(api: &Api, cookie: &str) -> StatusCode {
    api.call("GET", "/api/v1/me", None, &[("cookie", cookie)])
        .await
        .0
}

fn login_of(name: &str) -> videoamt_core::domain::account::Login {
    videoamt_core::domain::account::Login::parse(name).expect("a login")
}

#[tokio::test]
async fn a_deactivated_account_loses_its_open_session_at_once_and_cannot_log_in() {
    use videoamt_core::domain::account::AccountCommand;
    let api = staffed().await;
    let clerk = session(&api, "clerk.a").await;
    let me = |cookie: String| {
        let api = &api;
        async move {
            api.call("GET", "/api/v1/me", None, &[("cookie", &cookie)])
                .await
        }
    };
    assert_eq!(me(clerk.clone()).await.0, StatusCode::OK);
    as_admin(
        &api,
        AccountCommand::Deactivate {
            account: login_of("clerk.a"),
            admins: vec![],
        },
    )
    .await;
    // The session opened before is refused on its very next request, page or API.
    let (status, _, body) = me(clerk.clone()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let (status, headers, _) = browse(&api, "GET", "/sachbearbeitung", Some(&clerk), None).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(headers[header::LOCATION], "/anmelden");
    // The right password learns why; a wrong one learns nothing, and neither writes.
    let before = api.last_position().await;
    let response = api
        .post(
            "/api/v1/login",
            &json!({"tenant": "stuttgart", "login": "clerk.a", "password": PASSWORD}),
        )
        .await;
    let body = assert_refused(&api, response, StatusCode::FORBIDDEN, before).await;
    assert_eq!(body["title"], "Konto deaktiviert");
    let response = api
        .post(
            "/api/v1/login",
            &json!({"tenant": "stuttgart", "login": "clerk.a", "password": "falsch-falsch-falsch"}),
        )
        .await;
    assert_refused(&api, response, StatusCode::UNAUTHORIZED, before).await;

    // Reactivated, it logs in again; the session of before stays ended.
    as_admin(
        &api,
        AccountCommand::Reactivate {
            account: login_of("clerk.a"),
        },
    )
    .await;
    let again = session(&api, "clerk.a").await;
    assert_eq!(me(again).await.0, StatusCode::OK);
    assert_eq!(me(clerk).await.0, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_role_change_applies_to_open_sessions_from_their_next_request() {
    use videoamt_core::domain::account::{AccountCommand, StaffRole};
    let api = staffed().await;
    let clerk = session(&api, "clerk.a").await;
    let schedule = "/api/v1/clerk/schedule?from=2026-11-23&days=1&department=versicherungsamt";
    let (status, _, _) = api.call("GET", schedule, None, &[("cookie", &clerk)]).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "not yet their department");
    as_admin(
        &api,
        AccountCommand::ChangeRole {
            account: login_of("clerk.a"),
            role: StaffRole::Clerk,
            departments: vec!["ordnung-gewerbe".into(), "versicherungsamt".into()],
            admins: vec![],
        },
    )
    .await;
    let (status, _, body) = api.call("GET", schedule, None, &[("cookie", &clerk)]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, _, me) = api
        .call("GET", "/api/v1/me", None, &[("cookie", &clerk)])
        .await;
    assert_eq!(
        me["departments"],
        json!(["ordnung-gewerbe", "versicherungsamt"])
    );
    as_admin(
        &api,
        AccountCommand::ChangeRole {
            account: login_of("clerk.a"),
            role: StaffRole::Auditor,
            departments: vec![],
            admins: vec![],
        },
    )
    .await;
    let (status, _, _) = api.call("GET", schedule, None, &[("cookie", &clerk)]).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "an auditor now");
    let (_, _, me) = api
        .call("GET", "/api/v1/me", None, &[("cookie", &clerk)])
        .await;
    assert_eq!(me["role"], "auditor");
}

#[tokio::test]
async fn staff_change_their_own_password_with_the_old_one_and_end_their_other_sessions() {
    let api = staffed().await;
    let (status, headers, _) = browse(&api, "GET", "/konto/passwort", None, None).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(headers[header::LOCATION], "/anmelden");
    let clerk = session(&api, "clerk.a").await;
    let elsewhere = session(&api, "clerk.a").await;
    // The rules are shown beside the new password.
    let (status, _, html) = browse(&api, "GET", "/konto/passwort", Some(&clerk), None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        html.contains("Mindestens 12 und höchstens 256 Zeichen"),
        "{html}"
    );
    assert!(
        html.contains("aria-describedby=\"r-new_password\""),
        "{html}"
    );
    assert!(
        html.contains("Passwort ändern</a>"),
        "in the navigation: {html}"
    );

    // A wrong old password, a short new one, two different ones: refused in German beside
    // the field, and nothing written.
    let before = api.last_position().await;
    let new = "ein-neues-gutes-passwort";
    for (form, said) in [
        (
            format!("old_password=falsch-falsch&new_password={new}&new_password_repeat={new}"),
            "Das bisherige Passwort ist nicht richtig.",
        ),
        (
            format!("old_password={PASSWORD}&new_password=kurz&new_password_repeat=kurz"),
            "Das Passwort muss mindestens 12 Zeichen lang sein.",
        ),
        (
            format!("old_password={PASSWORD}&new_password={new}&new_password_repeat={new}x"),
            "Die beiden neuen Passwörter stimmen nicht überein.",
        ),
    ] {
        let (status, _, html) =
            browse(&api, "POST", "/konto/passwort", Some(&clerk), Some(&form)).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{form}");
        assert!(html.contains(said), "{said}: {html}");
        assert!(html.contains("aria-invalid=\"true\""), "{html}");
    }
    let response = api
        .call(
            "POST",
            "/api/v1/me/password",
            Some(
                json!({"old_password": "falsch-falsch", "new_password": new})
                    .to_string()
                    .into_bytes(),
            ),
            &[("cookie", &clerk)],
        )
        .await;
    let body = assert_refused(&api, response, StatusCode::UNPROCESSABLE_ENTITY, before).await;
    assert_eq!(body["errors"][0]["field"], "old_password");
    assert_eq!(api.last_position().await, before);

    // The right old password changes it: one event, holding no password.
    let form = format!("old_password={PASSWORD}&new_password={new}&new_password_repeat={new}");
    let (status, _, html) =
        browse(&api, "POST", "/konto/passwort", Some(&clerk), Some(&form)).await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert!(html.contains("Ihr Passwort ist geändert."), "{html}");
    let written = api.state.store.read_all(before, 10).await.expect("read");
    assert_eq!(written.len(), 1);
    assert_eq!(written[0].event_type.as_str(), "PasswordChanged");
    assert_eq!(written[0].meta.actor.id.as_ref(), "clerk.a");
    let payload = written[0].payload.as_str();
    assert!(
        payload.contains("$argon2id$") && !payload.contains(new),
        "{payload}"
    );

    // This session goes on, the other one ends; the old password is refused, the new works.
    assert_eq!(me(&api, &clerk).await, StatusCode::OK);
    assert_eq!(me(&api, &elsewhere).await, StatusCode::UNAUTHORIZED);
    let (status, _, _) = login(&api, "stuttgart", "clerk.a", PASSWORD).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _, _) = login(&api, "stuttgart", "clerk.a", new).await;
    assert_eq!(status, StatusCode::OK);
}

/// The one-time link on a page that shows one, as a path.
fn link_in(html: &str) -> String {
    let at = html.find("/konto/passwort/").expect("a link on the page");
    html[at..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || "/-_".contains(*c))
        .collect()
}

/// Sets the password through the link at `path`: (status, HTML).
async fn set_through(api: &Api, path: &str, password: &str) -> (StatusCode, String) {
    let form = format!("new_password={password}&new_password_repeat={password}");
    let (status, _, html) = browse(api, "POST", path, None, Some(&form)).await;
    (status, html)
}

#[tokio::test]
async fn an_admin_creates_an_account_whose_holder_sets_the_password_once_through_a_link() {
    let api = staffed().await;
    api.fold().await;
    let admin = session(&api, "admin").await;
    // The admin's page lists the municipality's accounts; nobody else gets it.
    let (status, _, html) = browse(&api, "GET", "/verwaltung/konten", Some(&admin), None).await;
    assert_eq!(status, StatusCode::OK, "{html}");
    for login in ["clerk.a", "clerk.b", "pruefer", "dsb", "admin"] {
        assert!(
            html.contains(&format!("href=\"/verwaltung/konten/{login}\"")),
            "{login}: {html}"
        );
    }
    assert!(
        html.contains("Gewerbe- und Gaststättenbehörde"),
        "departments by name: {html}"
    );
    let clerk = session(&api, "clerk.a").await;
    let (status, _, html) = browse(&api, "GET", "/verwaltung/konten", Some(&clerk), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(html.contains("Keine Berechtigung"));
    let (status, headers, _) = browse(&api, "GET", "/verwaltung/konten", None, None).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(headers[header::LOCATION], "/anmelden");

    // Bad input is refused in German on the page, and nothing is written.
    let before = api.last_position().await;
    for (form, status, said) in [
        (
            "login=Neu+Kollege&role=clerk&departments=ordnung-gewerbe",
            StatusCode::UNPROCESSABLE_ENTITY,
            "Der Anmeldename braucht 2 bis 48 Zeichen",
        ),
        (
            "login=neu.kollege&role=clerk",
            StatusCode::UNPROCESSABLE_ENTITY,
            "mindestens einen Bereich",
        ),
        (
            "login=neu.kollege&role=chef",
            StatusCode::UNPROCESSABLE_ENTITY,
            "Diese Rolle gibt es nicht",
        ),
        (
            "login=clerk.b&role=dpo",
            StatusCode::CONFLICT,
            "Dieses Konto gibt es bereits.",
        ),
    ] {
        let (got, _, html) =
            browse(&api, "POST", "/verwaltung/konten", Some(&admin), Some(form)).await;
        assert_eq!(got, status, "{form}: {html}");
        assert!(html.contains(said), "{said}: {html}");
    }
    assert_eq!(api.last_position().await, before);

    // Created: the admin gets the link to pass on; the log has no password and no token.
    let form = "login=neu.kollege&role=clerk&departments=ordnung-gewerbe";
    let (status, _, html) =
        browse(&api, "POST", "/verwaltung/konten", Some(&admin), Some(form)).await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert!(
        html.contains("Das Konto neu.kollege ist angelegt."),
        "{html}"
    );
    assert!(html.contains("http://amt.test/konto/passwort/"), "{html}");
    let link = link_in(&html);
    let token = link.trim_start_matches("/konto/passwort/");
    let written = api.state.store.read_all(before, 10).await.expect("read");
    let types: Vec<&str> = written.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(types, ["AccountCreated", "PasswordLinkIssued"]);
    assert_eq!(written[0].meta.actor.id.as_ref(), "admin");
    for e in &written {
        assert!(!e.payload.as_str().contains(token), "no token in the log");
    }
    assert!(
        written[0]
            .payload
            .as_str()
            .contains("\"password_hash\":null")
    );
    // Nobody logs in to it before the password is set.
    let (status, _, _) = login(&api, "stuttgart", "neu.kollege", PASSWORD).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // The link's page shows the rules; a short or mismatched password is refused beside the
    // field; a good one is set, once.
    let (status, _, html) = browse(&api, "GET", &link, None, None).await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert!(
        html.contains("Mindestens 12 und höchstens 256 Zeichen"),
        "{html}"
    );
    let (status, html) = set_through(&api, &link, "kurz").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(html.contains("mindestens 12 Zeichen"), "{html}");
    let mismatch = "new_password=ein-eigenes-passwort&new_password_repeat=ein-anderes-passwort";
    let (status, _, html) = browse(&api, "POST", &link, None, Some(mismatch)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(html.contains("stimmen nicht überein"), "{html}");
    let (status, html) = set_through(&api, &link, "ein-eigenes-passwort").await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert!(html.contains("Ihr Passwort ist festgelegt."), "{html}");
    let (status, body, _) = login(&api, "stuttgart", "neu.kollege", "ein-eigenes-passwort").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["departments"], json!(["ordnung-gewerbe"]));
    // The second use is refused, and writes nothing.
    let used = api.last_position().await;
    let (status, html) = set_through(&api, &link, "noch-ein-passwort-hier").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(
        html.contains("ungültig oder wurde bereits verwendet"),
        "{html}"
    );
    let (status, _, _) = browse(&api, "GET", &link, None, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(api.last_position().await, used);
    // A forged token is the same "invalid".
    let (status, _, _) = browse(&api, "GET", "/konto/passwort/AAAA", None, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Through the API too; a link is good for 72 hours.
    let (status, _, created) = api
        .call(
            "POST",
            "/api/v1/accounts",
            Some(
                json!({"login": "spaet.dran", "role": "auditor"})
                    .to_string()
                    .into_bytes(),
            ),
            &[("cookie", &admin)],
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let link = created["link"]
        .as_str()
        .expect("link")
        .replace("http://amt.test", "");
    api.fold().await;
    let (_, _, listed) = api
        .call("GET", "/api/v1/accounts", None, &[("cookie", &admin)])
        .await;
    let late = listed
        .as_array()
        .expect("list")
        .iter()
        .find(|a| a["login"] == "spaet.dran")
        .expect("listed");
    assert_eq!(late["role"], "auditor");
    assert!(late["password_link_expires"].is_string(), "{late}");
    api.now.fetch_add(72 * 3600, Ordering::SeqCst);
    let (status, html) = set_through(&api, &link, "zu-spaet-gesetzt").await;
    assert_eq!(status, StatusCode::GONE, "{html}");
    assert!(html.contains("abgelaufen"), "{html}");
}

#[tokio::test]
async fn an_admin_deactivates_reactivates_and_changes_roles_on_the_pages() {
    let api = staffed().await;
    api.fold().await;
    let admin = session(&api, "admin").await;
    let clerk = session(&api, "clerk.a").await;
    let page = "/verwaltung/konten/clerk.a";
    let (status, _, html) = browse(&api, "GET", page, Some(&admin), None).await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert!(html.contains("Konto deaktivieren"), "{html}");

    // Deactivated: the clerk's open session is refused on its next request, and the login
    // says why.
    let (status, headers, _) = browse(
        &api,
        "POST",
        &format!("{page}/deaktivieren"),
        Some(&admin),
        Some(""),
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let back = headers[header::LOCATION]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert_eq!(back, format!("{page}?geaendert=deaktiviert"));
    let (_, _, html) = browse(&api, "GET", &back, Some(&admin), None).await;
    assert!(html.contains("Das Konto ist deaktiviert; seine Sitzungen sind beendet."));
    assert!(html.contains("deaktiviert"), "{html}");
    let (status, headers, _) = browse(&api, "GET", "/sachbearbeitung", Some(&clerk), None).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(headers[header::LOCATION], "/anmelden");
    let form = format!("tenant=stuttgart&login=clerk.a&password={PASSWORD}");
    let (status, _, html) = browse(&api, "POST", "/anmelden", None, Some(&form)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(html.contains("Dieses Konto ist deaktiviert."), "{html}");
    // Twice is refused on the page, in German, writing nothing.
    let before = api.last_position().await;
    let (status, _, html) = browse(
        &api,
        "POST",
        &format!("{page}/deaktivieren"),
        Some(&admin),
        Some(""),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(
        html.contains("Das Konto ist bereits deaktiviert."),
        "{html}"
    );
    assert_eq!(api.last_position().await, before);
    // Reactivated, it logs in again.
    let (status, _, _) = browse(
        &api,
        "POST",
        &format!("{page}/aktivieren"),
        Some(&admin),
        Some(""),
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let clerk = session(&api, "clerk.a").await;

    // A second department takes effect on the clerk's open session.
    let schedule = "/api/v1/clerk/schedule?from=2026-11-23&days=1&department=versicherungsamt";
    let (status, _, _) = api.call("GET", schedule, None, &[("cookie", &clerk)]).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _, _) = browse(
        &api,
        "POST",
        &format!("{page}/rolle"),
        Some(&admin),
        Some("role=clerk&departments=ordnung-gewerbe&departments=versicherungsamt"),
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (status, _, _) = api.call("GET", schedule, None, &[("cookie", &clerk)]).await;
    assert_eq!(status, StatusCode::OK);
    // A clerk without a department is refused, beside the form.
    let before = api.last_position().await;
    let (status, _, html) = browse(
        &api,
        "POST",
        &format!("{page}/rolle"),
        Some(&admin),
        Some("role=clerk"),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(html.contains("mindestens einen Bereich"), "{html}");
    assert_eq!(api.last_position().await, before);
    // An unknown account is not found.
    let (status, _, html) = browse(
        &api,
        "GET",
        "/verwaltung/konten/niemand",
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(html.contains("Dieses Konto gibt es nicht."));
}

#[tokio::test]
async fn a_reset_voids_the_password_and_ends_sessions_and_an_admin_lifts_a_lock() {
    let api = staffed().await;
    api.fold().await;
    let admin = session(&api, "admin").await;
    let clerk = session(&api, "clerk.a").await;
    let page = "/verwaltung/konten/clerk.a";
    let (status, _, html) = browse(
        &api,
        "POST",
        &format!("{page}/zuruecksetzen"),
        Some(&admin),
        Some(""),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert!(html.contains("gilt nicht mehr"), "{html}");
    let link = link_in(&html);
    assert_eq!(me(&api, &clerk).await, StatusCode::UNAUTHORIZED);
    let (status, _, _) = login(&api, "stuttgart", "clerk.a", PASSWORD).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "the old password stops working"
    );
    let (status, _) = set_through(&api, &link, "nach-dem-zuruecksetzen").await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, _) = login(&api, "stuttgart", "clerk.a", "nach-dem-zuruecksetzen").await;
    assert_eq!(status, StatusCode::OK);

    // Five wrong passwords throttle the auditor's address; the admin lifts the throttle.
    for _ in 0..5 {
        login(&api, "stuttgart", "pruefer", "falsches-passwort").await;
    }
    let (status, _, _) = login(&api, "stuttgart", "pruefer", PASSWORD).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (_, _, html) = browse(&api, "GET", "/verwaltung/konten", Some(&admin), None).await;
    assert!(
        html.contains("5 Fehlversuche seit der letzten Anmeldung"),
        "{html}"
    );
    let (status, headers, _) = browse(
        &api,
        "POST",
        "/verwaltung/konten/pruefer/entsperren",
        Some(&admin),
        Some(""),
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(
        headers[header::LOCATION],
        "/verwaltung/konten/pruefer?geaendert=entsperrt"
    );
    let (status, _, _) = login(&api, "stuttgart", "pruefer", PASSWORD).await;
    assert_eq!(status, StatusCode::OK);
    let before = api.last_position().await;
    let (status, _, html) = browse(
        &api,
        "POST",
        "/verwaltung/konten/pruefer/entsperren",
        Some(&admin),
        Some(""),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(html.contains("Das Konto ist nicht gesperrt."), "{html}");
    assert_eq!(api.last_position().await, before);
}

#[tokio::test]
async fn the_last_active_admin_cannot_be_deactivated_or_demoted() {
    let api = staffed().await;
    api.fold().await;
    let admin = session(&api, "admin").await;
    let before = api.last_position().await;
    let (status, _, html) = browse(
        &api,
        "POST",
        "/verwaltung/konten/admin/deaktivieren",
        Some(&admin),
        Some(""),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{html}");
    assert!(
        html.contains("das letzte aktive Konto der Verwaltung"),
        "{html}"
    );
    for (path, body) in [
        ("/api/v1/accounts/admin/deactivate", None),
        (
            "/api/v1/accounts/admin/role",
            Some(json!({"role": "auditor"}).to_string().into_bytes()),
        ),
    ] {
        let response = api.call("POST", path, body, &[("cookie", &admin)]).await;
        let problem = assert_refused(&api, response, StatusCode::CONFLICT, before).await;
        assert_eq!(problem["title"], "Letztes Verwaltungskonto");
    }
    assert_eq!(me(&api, &admin).await, StatusCode::OK);

    // With a second admin the first may go; the removal names who is left, and then the
    // second is the last.
    let (status, _, created) = api
        .call(
            "POST",
            "/api/v1/accounts",
            Some(
                json!({"login": "admin.zwei", "role": "admin"})
                    .to_string()
                    .into_bytes(),
            ),
            &[("cookie", &admin)],
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let link = created["link"]
        .as_str()
        .expect("link")
        .replace("http://amt.test", "");
    let (status, _) = set_through(&api, &link, "zweites-verwaltungskonto").await;
    assert_eq!(status, StatusCode::OK);
    api.fold().await;
    let second = {
        let (status, _, cookie) =
            login(&api, "stuttgart", "admin.zwei", "zweites-verwaltungskonto").await;
        assert_eq!(status, StatusCode::OK);
        cookie_pair(&cookie.expect("cookie"))
    };
    let before = api.last_position().await;
    let (status, _, view) = api
        .call(
            "POST",
            "/api/v1/accounts/admin/deactivate",
            None,
            &[("cookie", &second)],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{view}");
    assert_eq!(view["active"], false);
    let written = api.state.store.read_all(before, 10).await.expect("read");
    let types: Vec<&str> = written.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(types, ["AccountDeactivated", "AdminRemoved"]);
    assert_eq!(written[1].stream_id.as_str(), "accounts-stuttgart");
    assert!(
        written[1]
            .payload
            .as_str()
            .contains("\"remaining\":[\"admin.zwei\"]")
    );
    assert_eq!(me(&api, &admin).await, StatusCode::UNAUTHORIZED);
    let before = api.last_position().await;
    let response = api
        .call(
            "POST",
            "/api/v1/accounts/admin.zwei/deactivate",
            None,
            &[("cookie", &second)],
        )
        .await;
    assert_refused(&api, response, StatusCode::CONFLICT, before).await;
}

#[tokio::test]
async fn the_session_cookie_is_a_host_cookie_behind_https() {
    let mut api = staffed().await;
    api.state = api.state.clone().with_public_url("https://amt.example");
    let (status, _, cookie) = login(&api, "stuttgart", "dsb", PASSWORD).await;
    assert_eq!(status, StatusCode::OK);
    let cookie = cookie.expect("cookie");
    // `__Host-`: Secure, Path=/ and no Domain, so that no sibling host and no plain-HTTP
    // page can plant or overwrite it.
    assert!(cookie.starts_with("__Host-videoamt_sitzung="), "{cookie}");
    assert!(
        cookie.contains("; Secure") && cookie.contains("; Path=/;"),
        "{cookie}"
    );
    assert!(!cookie.to_ascii_lowercase().contains("domain="), "{cookie}");
    let pair = cookie_pair(&cookie);
    assert_eq!(me(&api, &pair).await, StatusCode::OK);
    // The same value under the unprefixed name, as a sibling host could set it, is no session.
    let planted = pair.replacen("__Host-", "", 1);
    assert_eq!(me(&api, &planted).await, StatusCode::UNAUTHORIZED);
    let (status, headers, _) = api
        .call("POST", "/api/v1/logout", None, &[("cookie", &pair)])
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let cleared = headers[header::SET_COOKIE].to_str().expect("ascii");
    assert!(cleared.starts_with("__Host-videoamt_sitzung=;") && cleared.contains("; Secure"));
    assert_eq!(me(&api, &pair).await, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_session_ends_after_thirty_idle_minutes_and_work_keeps_it_open() {
    let api = staffed().await;
    let busy = session(&api, "clerk.a").await;
    let idle = session(&api, "pruefer").await;
    // Five hours of work, a request every twenty minutes, keep a session open; a session
    // left alone for thirty minutes is over.
    for _ in 0..15 {
        api.now.fetch_add(20 * 60, Ordering::SeqCst);
        assert_eq!(me(&api, &busy).await, StatusCode::OK);
    }
    assert_eq!(me(&api, &idle).await, StatusCode::UNAUTHORIZED);
    api.now.fetch_add(30 * 60, Ordering::SeqCst);
    assert_eq!(me(&api, &busy).await, StatusCode::UNAUTHORIZED);
    assert_eq!(
        me(&api, &session(&api, "clerk.a").await).await,
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_lock_ends_the_accounts_open_sessions() {
    use videoamt_core::domain::DomainEvent;
    use videoamt_core::domain::events::AccountLocked;
    use videoamt_core::event::{Actor, EventMetadata, EventType, NewEvent, TenantId};
    use videoamt_core::store::{AppendBatch, ExpectedVersion};
    let api = staffed().await;
    let clerk = session(&api, "clerk.a").await;
    let other = session(&api, "clerk.b").await;
    // Logins no longer lock an account (they throttle the client); a lock of an older log
    // still holds until it runs out, and ends the account's sessions like a deactivation.
    let now = time::OffsetDateTime::from_unix_timestamp(NOW).expect("valid");
    let lock = DomainEvent::AccountLocked(AccountLocked {
        until: now + time::Duration::minutes(15),
    });
    let tenant = TenantId::parse("stuttgart").expect("tenant");
    let meta = EventMetadata::new(
        tenant.clone(),
        uuid::Uuid::now_v7(),
        uuid::Uuid::now_v7(),
        Actor::system("test"),
        now,
    );
    let event = NewEvent::new(
        uuid::Uuid::now_v7(),
        EventType::parse(lock.event_type()).expect("type"),
        lock.schema_version(),
        meta,
        lock.to_payload().expect("payload"),
    )
    .expect("event");
    let batch = AppendBatch::single(
        login_of("clerk.a").stream(&tenant),
        ExpectedVersion::Any,
        vec![event],
    )
    .expect("batch");
    api.state.store.append(batch).await.expect("appended");
    assert_eq!(me(&api, &clerk).await, StatusCode::UNAUTHORIZED);
    assert_eq!(
        me(&api, &other).await,
        StatusCode::OK,
        "only that account's"
    );
}

#[tokio::test]
async fn a_session_outlives_the_process_that_opened_it() {
    let mut api = staffed().await;
    let clerk = session(&api, "clerk.a").await;
    // Another process on the same store: a state of its own, nothing shared in memory.
    let first = api.state.clone();
    api.state = videoamt_api::http::AppState::new(first.system.clone())
        .with_clock(first.clock.clone())
        .with_public_url(&first.public_url);
    assert_eq!(me(&api, &clerk).await, StatusCode::OK);
    let (status, _, _) = api
        .call("POST", "/api/v1/logout", None, &[("cookie", &clerk)])
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    api.state = first;
    assert_eq!(
        me(&api, &clerk).await,
        StatusCode::UNAUTHORIZED,
        "logged out everywhere"
    );
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Role {
    Anonymous,
    Citizen,
    ClerkA,
    ClerkB,
    Auditor,
    Dpo,
    Admin,
}

const ROLES: [Role; 7] = [
    Role::Anonymous,
    Role::Citizen,
    Role::ClerkA,
    Role::ClerkB,
    Role::Auditor,
    Role::Dpo,
    Role::Admin,
];

/// A token no appointment has: what everybody but the citizen holds.
const FOREIGN_TOKEN: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";

/// What one cell of a matrix works on, so that a write in one cell cannot change the answer
/// of another: an appointment of its own (the `n`-th start), and with `with_account` an account
/// of its own, `konto.{n}`, a clerk of the trade office.
async fn cell(api: &Api, n: usize, with_account: bool) -> (Booked, String) {
    let booked = book(api, n).await;
    api.fold().await;
    let target = format!("konto.{n}");
    if with_account {
        let departments = ["ordnung-gewerbe".to_owned()];
        account(api, "stuttgart", &target, StaffRole::Clerk, &departments).await;
    }
    (booked, target)
}

#[tokio::test]
async fn every_role_gets_exactly_its_endpoints() {
    use Role::*;
    // Stuttgart also signs staff in through its directory: a clerk of the trade office from
    // there must get exactly what clerk A, who has a password, gets.
    let idp = crate::signon::Provider::start(
        "videoamt-stuttgart",
        "http://amt.test",
        vec![crate::signon::user("d.gewerbe", &["va-gewerbe"])],
        3600,
        "127.0.0.1",
        0,
    );
    let api = staffed_with(stuttgart_with_directory(&idp.issuer)).await;
    let directory_clerk = crate::signon::signed_on(&api, &idp, "stuttgart", "d.gewerbe").await;
    let mut cookies = std::collections::HashMap::new();
    for (role, name) in [
        (ClerkA, "clerk.a"),
        (ClerkB, "clerk.b"),
        (Auditor, "pruefer"),
        (Dpo, "dsb"),
        (Admin, "admin"),
    ] {
        cookies.insert(role, session(&api, name).await);
    }
    // Each endpoint: method, path with {token}/{id}/{subject}/{start} filled per call, body,
    // and the expected status per role in the order of `ROLES`.
    type Row = (&'static str, &'static str, Option<Value>, [u16; 7]);
    let rows: Vec<Row> = vec![
        (
            "GET",
            "/api/v1/catalogue",
            None,
            [200, 200, 200, 200, 200, 200, 200],
        ),
        (
            "GET",
            "/api/v1/slots?tenant=stuttgart&services=gewerbeanmeldung&from=2026-11-24",
            None,
            [200; 7],
        ),
        (
            "POST",
            "/api/v1/appointments",
            Some(stuttgart_booking("{start}")),
            [201; 7],
        ),
        (
            "GET",
            "/api/v1/appointments/by-token/{token}",
            None,
            [404, 200, 404, 404, 404, 404, 404],
        ),
        (
            "POST",
            "/api/v1/appointments/by-token/{token}/confirm",
            None,
            [404, 200, 404, 404, 404, 404, 404],
        ),
        (
            "POST",
            "/api/v1/appointments/by-token/{token}/cancel",
            Some(json!({})),
            [404, 200, 404, 404, 404, 404, 404],
        ),
        (
            "POST",
            "/api/v1/appointments/by-token/{token}/reschedule",
            Some(json!({"start": "{start}"})),
            [404, 200, 404, 404, 404, 404, 404],
        ),
        (
            "GET",
            "/api/v1/me",
            None,
            [401, 401, 200, 200, 200, 200, 200],
        ),
        (
            "POST",
            "/api/v1/me/password",
            Some(
                json!({"old_password": "nicht-das-passwort", "new_password": "ein-neues-gutes-passwort"}),
            ),
            [401, 401, 422, 422, 422, 422, 422],
        ),
        (
            "GET",
            "/api/v1/clerk/schedule?from=2026-11-23&days=7",
            None,
            [401, 401, 200, 200, 403, 403, 403],
        ),
        (
            "GET",
            "/api/v1/clerk/waiting-room",
            None,
            [401, 401, 200, 200, 403, 403, 403],
        ),
        (
            "GET",
            "/api/v1/appointments/{id}",
            None,
            [401, 401, 200, 403, 403, 403, 403],
        ),
        (
            "POST",
            "/api/v1/appointments/{id}/cancel",
            Some(json!({"reason": "Rückfrage ergab: nicht nötig"})),
            [401, 401, 200, 403, 403, 403, 403],
        ),
        (
            "POST",
            "/api/v1/invitations",
            Some(
                json!({"services": ["gewerbeanmeldung"], "start": "{start}", "contact": {"name": "Eingeladen", "email": "eingeladen@example.org"}}),
            ),
            [401, 401, 201, 403, 403, 403, 403],
        ),
        (
            "GET",
            "/api/v1/audit/appointments?date=2026-11-23",
            None,
            [401, 401, 403, 403, 200, 403, 403],
        ),
        (
            "GET",
            "/api/v1/audit/appointments/{id}",
            None,
            [401, 401, 403, 403, 200, 403, 403],
        ),
        (
            "GET",
            "/api/v1/retention/report",
            None,
            [401, 401, 403, 403, 403, 200, 403],
        ),
        (
            "GET",
            "/api/v1/retention/report?format=csv",
            None,
            [401, 401, 403, 403, 403, 200, 403],
        ),
        (
            "GET",
            "/api/v1/retention/subjects/{subject}",
            None,
            [401, 401, 403, 403, 403, 200, 403],
        ),
        (
            "GET",
            "/api/v1/statistics",
            None,
            [401, 401, 200, 200, 200, 200, 200],
        ),
        (
            "GET",
            "/api/v1/accounts",
            None,
            [401, 401, 403, 403, 403, 403, 200],
        ),
        (
            "POST",
            "/api/v1/accounts",
            Some(json!({"login": "neu.{n}", "role": "dpo"})),
            [401, 401, 403, 403, 403, 403, 201],
        ),
        (
            "GET",
            "/api/v1/accounts/{account}",
            None,
            [401, 401, 403, 403, 403, 403, 200],
        ),
        (
            "POST",
            "/api/v1/accounts/{account}/deactivate",
            None,
            [401, 401, 403, 403, 403, 403, 200],
        ),
        (
            "POST",
            "/api/v1/accounts/{account}/reactivate",
            None,
            [401, 401, 403, 403, 403, 403, 409],
        ),
        (
            "POST",
            "/api/v1/accounts/{account}/role",
            Some(json!({"role": "auditor"})),
            [401, 401, 403, 403, 403, 403, 200],
        ),
        (
            "POST",
            "/api/v1/accounts/{account}/password-link",
            None,
            [401, 401, 403, 403, 403, 403, 201],
        ),
        (
            "POST",
            "/api/v1/accounts/{account}/unlock",
            None,
            [401, 401, 403, 403, 403, 403, 409],
        ),
    ];
    let mut n = 0;
    let mut failures = vec![];
    let mut documented = std::collections::BTreeSet::new();
    for (method, template, body, expected) in &rows {
        documented.insert(template.split('?').next().expect("a path").to_owned());
        // Clerk A's column twice: with the password session and with the directory's.
        let columns = ROLES.iter().zip(expected).flat_map(|(role, want)| {
            let mut column = vec![(role, cookies.get(role).cloned(), want, "")];
            if *role == ClerkA {
                // But a password, which the directory keeps.
                let directory_want = if *template == "/api/v1/me/password" {
                    &409
                } else {
                    want
                };
                column.push((
                    role,
                    Some(directory_clerk.clone()),
                    directory_want,
                    " (Verzeichnis)",
                ));
            }
            column
        });
        for (role, cookie, want, via) in columns {
            // Every cell gets an appointment of its own, so that a write in one cell cannot
            // change the answer of another.
            let (booked, target) = cell(&api, n, template.contains("{account}")).await;
            let other_start = start(n + 1);
            let number = n.to_string();
            n += 2;
            let fill = |s: &str| {
                s.replace(
                    "{token}",
                    if *role == Citizen {
                        &booked.token
                    } else {
                        FOREIGN_TOKEN
                    },
                )
                .replace("{id}", &booked.appointment)
                .replace("{subject}", &booked.subject)
                .replace("{start}", &other_start)
                .replace("{account}", &target)
                .replace("{n}", &number)
            };
            let path = fill(template);
            let body = body.as_ref().map(|b| fill(&b.to_string()).into_bytes());
            let headers: Vec<(&str, &str)> =
                cookie.iter().map(|c| ("cookie", c.as_str())).collect();
            let before = api.last_position().await;
            let (status, response_headers, answer) = api.call(method, &path, body, &headers).await;
            if status.as_u16() != *want {
                failures.push(format!(
                    "{role:?}{via} {method} {path}: {status}, expected {want}: {answer}"
                ));
                continue;
            }
            if status.is_client_error() {
                // Refusals are problem documents with a German title, and write nothing.
                let kind = response_headers[header::CONTENT_TYPE]
                    .to_str()
                    .expect("ascii");
                if kind != "application/problem+json"
                    || answer["title"].as_str().is_none_or(str::is_empty)
                    || api.last_position().await != before
                {
                    failures.push(format!(
                        "{role:?}{via} {method} {path}: bad refusal {kind} {answer}"
                    ));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} cells wrong:\n{}",
        failures.len(),
        failures.join("\n")
    );
    // The matrix covers every documented API path.
    let (_, _, doc) = api.get("/api/openapi.json").await;
    for path in doc["paths"].as_object().expect("paths").keys() {
        let covered = documented.contains(path)
            || path == "/api/v1/login"
            || path == "/api/v1/logout"
            || documented.contains(&path.replace("{subject}", "{id}"))
            || documented.contains(&path.replace("{login}", "{account}"));
        let alias = path.replace("/subjects/{id}", "/subjects/{subject}");
        assert!(
            covered || documented.contains(&alias),
            "{path} is not in the matrix"
        );
    }
}

#[tokio::test]
async fn clerks_see_their_departments_auditors_are_recorded_and_dpos_see_no_names() {
    let api = staffed().await;
    let booked = book(&api, 3).await;
    api.fold().await;
    let a = session(&api, "clerk.a").await;
    let b = session(&api, "clerk.b").await;
    let get = |path: String, cookie: String| {
        let api = &api;
        async move { api.call("GET", &path, None, &[("cookie", &cookie)]).await }
    };

    // Clerk A's week holds the booking with its services; clerk B's does not.
    let (status, _, plan) = get(
        "/api/v1/clerk/schedule?from=2026-11-23&days=7".into(),
        a.clone(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{plan}");
    let ids: Vec<&str> = plan["days"]
        .as_array()
        .expect("days")
        .iter()
        .flat_map(|d| d["appointments"].as_array().expect("list"))
        .map(|e| e["appointment"].as_str().expect("id"))
        .collect();
    assert_eq!(ids, [booked.appointment.as_str()]);
    assert_eq!(
        plan["days"][0]["appointments"][0]["services"],
        json!(["Gewerbeanmeldung"])
    );
    let (_, _, plan_b) = get(
        "/api/v1/clerk/schedule?from=2026-11-23&days=7".into(),
        b.clone(),
    )
    .await;
    assert!(
        !plan_b.to_string().contains(&booked.appointment),
        "{plan_b}"
    );
    let before = api.last_position().await;
    let response = get(
        "/api/v1/clerk/schedule?department=ordnung-gewerbe".into(),
        b.clone(),
    )
    .await;
    assert_refused(&api, response, StatusCode::FORBIDDEN, before).await;
    let response = get("/api/v1/clerk/schedule?days=9".into(), a.clone()).await;
    assert_refused(&api, response, StatusCode::UNPROCESSABLE_ENTITY, before).await;

    // The clerk's detail names the citizen; nothing else of staff does.
    let (status, _, detail) = get(
        format!("/api/v1/appointments/{}", booked.appointment),
        a.clone(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{detail}");
    assert_eq!(detail["contact_name"], "Kanari Vogelsang");
    assert_eq!(
        detail["documents_to_bring"][0],
        "Personalausweis oder Reisepass"
    );
    let response = get("/api/v1/appointments/not-a-uuid".into(), a.clone()).await;
    assert_refused(&api, response, StatusCode::NOT_FOUND, before).await;
    let response = get(
        "/api/v1/appointments/0190d0d0-0000-7000-8000-000000000000".into(),
        a.clone(),
    )
    .await;
    assert_refused(&api, response, StatusCode::NOT_FOUND, before).await;

    // A clerk's cancellation needs a reason; with one it is recorded as the clerk's.
    let cancel = format!("/api/v1/appointments/{}/cancel", booked.appointment);
    for bad in [
        json!({"reason": "  "}),
        json!({"reason": "x".repeat(501)}),
        json!({}),
    ] {
        let response = api
            .call(
                "POST",
                &cancel,
                Some(bad.to_string().into_bytes()),
                &[("cookie", &a)],
            )
            .await;
        let status = response.0;
        assert!(status == StatusCode::UNPROCESSABLE_ENTITY || status == StatusCode::BAD_REQUEST);
        assert_refused(&api, response, status, before).await;
    }

    // The auditor's read is recorded before it is shown, and shows no name.
    let auditor = session(&api, "pruefer").await;
    let (status, _, hits) = get(
        format!(
            "/api/v1/audit/appointments?appointment={}",
            booked.appointment
        ),
        auditor.clone(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{hits}");
    assert_eq!(hits.as_array().expect("hits").len(), 1);
    let before_read = api.last_position().await;
    let (status, _, record) = get(
        format!("/api/v1/audit/appointments/{}", booked.appointment),
        auditor.clone(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{record}");
    assert_eq!(
        api.last_position().await,
        before_read + 1,
        "one AuditRecordViewed"
    );
    let entries = record["entries"].as_array().expect("entries");
    assert_eq!(
        entries.last().expect("entries")["event_type"],
        "AuditRecordViewed"
    );
    assert_eq!(entries.last().expect("entries")["actor"], "auditor:pruefer");
    assert!(!record.to_string().contains("Kanari"), "{record}");
    // The state is told in words and in the municipality's time: names, not slugs.
    let told = record["state"].to_string();
    for line in [
        "Beginn Montag, 23.11.2026, 09:00 Uhr",
        "Zeitfenster: 1 reserviert ab 09:00 Uhr",
    ] {
        assert!(told.contains(line), "{line} missing in {told}");
    }
    for slug in ["ordnung-gewerbe", "gewerbeanmeldung", "+01:00", "Minute"] {
        assert!(!told.contains(slug), "{slug} in {told}");
    }
    // Time travel: as of the booking's first position the record knows only the booking.
    let first = record["positions"][0].as_u64().expect("a position");
    let (status, _, past) = get(
        format!(
            "/api/v1/audit/appointments/{}?at={first}",
            booked.appointment
        ),
        auditor.clone(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{past}");
    assert_eq!(past["as_of"], first);
    assert!(
        past["entries"]
            .as_array()
            .expect("entries")
            .iter()
            .all(|e| e["position"].as_u64() <= Some(first))
    );
    let head = api.last_position().await;
    let response = get(
        format!(
            "/api/v1/audit/appointments/{}?at={}",
            booked.appointment,
            head + 100
        ),
        auditor.clone(),
    )
    .await;
    assert_refused(&api, response, StatusCode::UNPROCESSABLE_ENTITY, head).await;

    // The DPO's report counts the subject and shows no personal value.
    let dpo = session(&api, "dsb").await;
    let (status, _, report) = get("/api/v1/retention/report".into(), dpo.clone()).await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert!(
        report["rows"]
            .as_array()
            .expect("rows")
            .iter()
            .any(|r| r["subject"] == booked.subject.as_str())
    );
    assert!(
        report["counts"]
            .as_array()
            .expect("counts")
            .iter()
            .any(|c| c["state"] == "aktiv")
    );
    for secret in ["Kanari", "kanari@example.org"] {
        assert!(!report.to_string().contains(secret), "{secret} in {report}");
    }
    let (status, headers, _) = api
        .call(
            "GET",
            "/api/v1/retention/report?format=csv",
            None,
            &[("cookie", &dpo)],
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::CONTENT_TYPE], "text/csv; charset=utf-8");
    let (status, _, filtered) = get(
        "/api/v1/retention/report?state=gel%C3%B6scht".into(),
        dpo.clone(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(filtered["rows"], json!([]));
    let response = get(
        "/api/v1/retention/subjects/0190d0d0-0000-7000-8000-000000000000".into(),
        dpo,
    )
    .await;
    assert_refused(
        &api,
        response,
        StatusCode::NOT_FOUND,
        api.last_position().await,
    )
    .await;
}

#[tokio::test]
async fn a_clerk_invites_a_citizen_of_their_department_only() {
    let mut api = staffed().await;
    // Invitations are the clerk's act: the daily caps on online bookings, here one a day, do
    // not count them.
    api.state =
        api.state
            .clone()
            .with_booking_caps(videoamt_api::app::settings::BookingCapSetting {
                mailbox: 1,
                address: 1,
            });
    let a = session(&api, "clerk.a").await;
    let invite = |services: Value, start: String, cookie: String| {
        let api = &api;
        let body = json!({"services": services, "start": start, "contact": {"name": "Ina Eingeladen", "email": "ina@example.org"}});
        async move {
            api.call(
                "POST",
                "/api/v1/invitations",
                Some(body.to_string().into_bytes()),
                &[("cookie", &cookie)],
            )
            .await
        }
    };
    let (status, _, booked) = invite(json!(["gewerbeanmeldung"]), start(0), a.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{booked}");
    let id = booked["appointment"]["id"].as_str().expect("id");
    let recorded = api
        .state
        .store
        .read_stream(
            &videoamt_core::domain::AppointmentId(id.parse().expect("uuid")).stream(),
            0,
        )
        .await
        .expect("read");
    let actor = &recorded[0].meta.actor;
    assert_eq!((actor.role.as_str(), &*actor.id), ("clerk", "clerk.a"));
    let before = api.last_position().await;
    // Another department's service, an invalid address, a taken slot: refused, nothing written.
    let response = invite(json!(["versicherungsangelegenheiten"]), start(1), a.clone()).await;
    assert_refused(&api, response, StatusCode::FORBIDDEN, before).await;
    let body = json!({"services": ["gewerbeanmeldung"], "start": start(2), "contact": {"name": "Ina", "email": "kein-at"}});
    let response = api
        .call(
            "POST",
            "/api/v1/invitations",
            Some(body.to_string().into_bytes()),
            &[("cookie", &a)],
        )
        .await;
    let problem = assert_refused(&api, response, StatusCode::UNPROCESSABLE_ENTITY, before).await;
    assert_eq!(problem["errors"][0]["field"], "contact.email");
    // The office has two places per slot: the third invitation for it is refused.
    let (status, _, _) = invite(json!(["gewerbeanmeldung"]), start(0), a.clone()).await;
    assert_eq!(status, StatusCode::CREATED);
    let before = api.last_position().await;
    let response = invite(json!(["gewerbeanmeldung"]), start(0), a).await;
    assert_refused(&api, response, StatusCode::CONFLICT, before).await;
}

/// A browser-like request with an optional session cookie and form body:
/// (status, headers, HTML).
pub(crate) async fn browse(
    api: &Api,
    method: &str,
    path: &str,
    cookie: Option<&str>,
    form: Option<&str>,
) -> (StatusCode, axum::http::HeaderMap, String) {
    let response = page_response(api, method, path, cookie, form).await;
    let status = response.status();
    let headers = response.headers().clone();
    let body = axum::body::to_bytes(response.into_body(), 1 << 22)
        .await
        .expect("body");
    (status, headers, String::from_utf8_lossy(&body).into_owned())
}

/// A page request in-process, as a browser without JavaScript sends it: the response, its
/// body not read yet.
async fn page_response(
    api: &Api,
    method: &str,
    path: &str,
    cookie: Option<&str>,
    form: Option<&str>,
) -> axum::response::Response {
    use tower::ServiceExt as _;
    let mut request = axum::http::Request::builder().method(method).uri(path);
    if let Some(c) = cookie {
        request = request.header("cookie", c);
    }
    if form.is_some() {
        request = request.header("content-type", "application/x-www-form-urlencoded");
    }
    videoamt_api::http::app(api.state.clone())
        .oneshot(
            request
                .body(form.map_or_else(axum::body::Body::empty, |f| {
                    axum::body::Body::from(f.to_owned())
                }))
                .expect("request"),
        )
        .await
        .expect("infallible")
}

#[tokio::test]
async fn staff_pages_log_in_show_the_day_and_work_without_javascript() {
    let api = staffed().await;
    // Without a session the clerk's page sends to the login.
    let (status, headers, _) = browse(&api, "GET", "/sachbearbeitung", None, None).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(headers[header::LOCATION], "/anmelden");
    let (status, _, html) = browse(&api, "GET", "/anmelden", None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        html.contains("<label for=\"password\">Passwort</label>"),
        "{html}"
    );
    let (status, _, html) = browse(
        &api,
        "POST",
        "/anmelden",
        None,
        Some("tenant=stuttgart&login=clerk.a&password=falsch-falsch-falsch"),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        html.contains("Anmeldename oder Passwort sind falsch."),
        "{html}"
    );
    assert!(html.contains("value=\"clerk.a\""), "the login is kept");
    let form = format!("tenant=stuttgart&login=clerk.a&password={PASSWORD}");
    let (status, headers, _) = browse(&api, "POST", "/anmelden", None, Some(&form)).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(headers[header::LOCATION], "/sachbearbeitung");
    let clerk = cookie_pair(headers[header::SET_COOKIE].to_str().expect("ascii"));

    // A booking appears in the week's plan; after the citizen enters the waiting room, there.
    let booked = book(&api, 0).await;
    api.fold().await;
    let (status, _, html) =
        browse(&api, "GET", "/sachbearbeitung?woche=1", Some(&clerk), None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        html.contains(&format!("/sachbearbeitung/termin/{}", booked.appointment)),
        "{html}"
    );
    assert!(html.contains("Niemand wartet."));
    assert!(html.contains("<script type=\"module\" src=\"/static/live.js\"></script>"));
    let waiting = format!("/termin/{}/warteraum", booked.token);
    let (status, _, html) = browse(&api, "POST", &waiting, None, Some("")).await;
    assert_eq!(
        status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "the notice must be accepted"
    );
    assert!(html.contains("Bitte bestätigen Sie den Datenschutzhinweis."));
    let (status, headers, _) =
        browse(&api, "POST", &waiting, None, Some("privacy_accepted=1")).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(headers[header::LOCATION], waiting.as_str());
    let (status, _, html) = browse(&api, "GET", &waiting, None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("Sie sind im Warteraum."));
    api.fold().await;
    let (_, _, html) = browse(&api, "GET", "/sachbearbeitung?woche=1", Some(&clerk), None).await;
    assert!(html.contains("wartet seit"), "{html}");
    assert!(html.contains("Datenschutzhinweis bestätigt"));

    // The live stream starts with both sections.
    let response = {
        use tower::ServiceExt as _;
        videoamt_api::http::app(api.state.clone())
            .oneshot(
                axum::http::Request::get("/sachbearbeitung/live?woche=1")
                    .header("cookie", &clerk)
                    .body(axum::body::Body::empty())
                    .expect("request"),
            )
            .await
            .expect("infallible")
    };
    assert_eq!(
        response.headers()[header::CONTENT_TYPE],
        "text/event-stream"
    );
    let mut stream = response.into_body().into_data_stream();
    let mut received = String::new();
    while !(received.contains("event: plan") && received.contains("event: warteraum")) {
        use futures::StreamExt as _;
        let chunk = stream.next().await.expect("more events").expect("a chunk");
        received.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(received.contains(&booked.appointment), "{received}");

    // The detail names the citizen; a cancellation needs a reason.
    let detail = format!("/sachbearbeitung/termin/{}", booked.appointment);
    let (status, _, html) = browse(&api, "GET", &detail, Some(&clerk), None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("Kanari Vogelsang"));
    let before = api.last_position().await;
    let (status, _, html) = browse(
        &api,
        "POST",
        &format!("{detail}/absagen"),
        Some(&clerk),
        Some("reason="),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(html.contains("Bitte geben Sie einen Grund für die Absage an."));
    assert_eq!(api.last_position().await, before);
    let (status, headers, _) = browse(
        &api,
        "POST",
        &format!("{detail}/absagen"),
        Some(&clerk),
        Some("reason=B%C3%BCrger+hat+angerufen"),
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(
        headers[header::LOCATION],
        format!("{detail}?abgesagt=1").as_str()
    );

    // Other roles are refused on the clerk's pages, in German.
    let auditor = session(&api, "pruefer").await;
    let (status, _, html) = browse(&api, "GET", "/sachbearbeitung", Some(&auditor), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(html.contains("Keine Berechtigung"));

    // The auditor finds the appointment and opens its record with the time-travel slider.
    let (status, _, html) = browse(
        &api,
        "GET",
        &format!("/pruefung?termin={}", booked.appointment),
        Some(&auditor),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        html.contains(&format!("/pruefung/termin/{}", booked.appointment)),
        "{html}"
    );
    let before = api.last_position().await;
    let (status, _, html) = browse(
        &api,
        "GET",
        &format!("/pruefung/termin/{}", booked.appointment),
        Some(&auditor),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        api.last_position().await,
        before + 1,
        "the read is recorded"
    );
    assert!(html.contains("type=\"range\" id=\"stand\""));
    assert!(html.contains("<td>Termin abgesagt</td>"), "{html}");
    assert!(
        !html.contains("AppointmentCancelled") && !html.contains("AppointmentBooked"),
        "events are told in words, not by the log's type names: {html}"
    );
    assert!(!html.contains("Kanari"), "no names for auditors");

    // The DPO's report, a subject's evidence and the export.
    let dpo = session(&api, "dsb").await;
    let (status, _, html) = browse(&api, "GET", "/datenschutz", Some(&dpo), None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains(&format!("/datenschutz/subjekt/{}", booked.subject)));
    assert!(!html.contains("Kanari"));
    let (status, _, html) = browse(
        &api,
        "GET",
        &format!("/datenschutz/subjekt/{}", booked.subject),
        Some(&dpo),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert!(html.contains("Löschung fällig"));
    let (status, headers, csv) =
        browse(&api, "GET", "/datenschutz/bericht.csv", Some(&dpo), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::CONTENT_TYPE], "text/csv; charset=utf-8");
    assert!(csv.starts_with("\"subject\",\"tenant\",\"state\""), "{csv}");
    assert!(csv.contains(&booked.subject));
    let (status, _, html) = browse(&api, "GET", "/statistik", Some(&dpo), None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("Pilotstatistik"));

    // Logging out ends the session.
    let (status, headers, _) = browse(&api, "POST", "/abmelden", Some(&clerk), Some("")).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(headers[header::LOCATION], "/anmelden");
    let (status, _, _) = browse(&api, "GET", "/sachbearbeitung", Some(&clerk), None).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn logins_are_rate_limited_and_statistics_and_records_refuse_what_is_not_there() {
    let api = Api::with_limits(RateLimits::new(
        100,
        100,
        3,
        std::time::Duration::from_secs(60),
    ))
    .await;
    account(&api, "ettlingen", "pruefer", StaffRole::Auditor, &[]).await;
    let (status, _, cookie) = login(&api, "ettlingen", "pruefer", PASSWORD).await;
    assert_eq!(status, StatusCode::OK);
    let auditor = cookie_pair(&cookie.expect("cookie"));
    let before = api.last_position().await;

    // Unknown department: 422; the statistics of the municipality otherwise.
    let response = api
        .call(
            "GET",
            "/api/v1/statistics?department=mars",
            None,
            &[("cookie", &auditor)],
        )
        .await;
    assert_refused(&api, response, StatusCode::UNPROCESSABLE_ENTITY, before).await;
    let (status, _, rows) = api
        .call("GET", "/api/v1/statistics", None, &[("cookie", &auditor)])
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(rows.is_array());
    // An unknown appointment, and one of another municipality, are one "not found", and the
    // refused read records nothing.
    let token = api.book(crate::router::TUE_9).await;
    let (_, _, booked) = api
        .get(&format!("/api/v1/appointments/by-token/{token}"))
        .await;
    for id in [
        "0190d0d0-0000-7000-8000-000000000000",
        booked["id"].as_str().expect("id"),
    ] {
        let stuttgart_auditor = if id.starts_with("0190") {
            auditor.clone()
        } else {
            // The booking is Ettlingen's; a Stuttgart auditor must not find it.
            account(&api, "stuttgart", "pruefer", StaffRole::Auditor, &[]).await;
            let (status, _, cookie) = login(&api, "stuttgart", "pruefer", PASSWORD).await;
            assert_eq!(status, StatusCode::OK);
            cookie_pair(&cookie.expect("cookie"))
        };
        let before = api.last_position().await;
        let response = api
            .call(
                "GET",
                &format!("/api/v1/audit/appointments/{id}"),
                None,
                &[("cookie", &stuttgart_auditor)],
            )
            .await;
        assert_refused(&api, response, StatusCode::NOT_FOUND, before).await;
    }

    // Two logins so far; the third of this address within the minute is the last allowed.
    let (status, _, _) = login(&api, "ettlingen", "pruefer", PASSWORD).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body, _) = login(&api, "ettlingen", "pruefer", PASSWORD).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(body["type"], "/problems/rate-limited");
}

#[tokio::test]
async fn a_clerk_invites_through_the_page_with_messages_beside_the_fields() {
    let api = staffed().await;
    let clerk = session(&api, "clerk.a").await;
    let (status, _, html) = browse(
        &api,
        "GET",
        "/sachbearbeitung/einladen?services=gewerbeanmeldung&von=2026-11-23",
        Some(&clerk),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        html.contains("name=\"start\""),
        "free starts offered: {html}"
    );
    assert!(
        !html.contains("versicherungsangelegenheiten"),
        "only the clerk's services"
    );
    let start = start(4).replace('+', "%2B").replace(':', "%3A");
    let before = api.last_position().await;
    let bad = format!("services=gewerbeanmeldung&start={start}&name=Ina+Eingeladen&email=kein-at");
    let (status, _, html) = browse(
        &api,
        "POST",
        "/sachbearbeitung/einladen",
        Some(&clerk),
        Some(&bad),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        html.contains("Bitte geben Sie eine gültige E-Mail-Adresse an"),
        "{html}"
    );
    assert!(
        html.contains("value=\"Ina Eingeladen\""),
        "the input is kept"
    );
    assert!(html.contains("aria-invalid=\"true\" aria-describedby=\"e-contact.email\""));
    assert_eq!(api.last_position().await, before, "nothing written");
    let good = format!(
        "services=gewerbeanmeldung&start={start}&name=Ina+Eingeladen&email=ina%40example.org"
    );
    let (status, headers, _) = browse(
        &api,
        "POST",
        "/sachbearbeitung/einladen",
        Some(&clerk),
        Some(&good),
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let location = headers[header::LOCATION]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(location.ends_with("?eingeladen=1"), "{location}");
    let (status, _, html) = browse(&api, "GET", &location, Some(&clerk), None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("Ina Eingeladen") && html.contains("Die Einladung ist gebucht"));
}

/// HTML-escaped as the pages escape text and attribute values.
fn escaped(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn urlencoded(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

#[tokio::test]
async fn markup_in_what_a_citizen_enters_is_shown_as_text_on_every_page() {
    const SCRIPT: &str = "<script>alert(1)</script>";
    const ATTRIBUTE: &str = "\"'><img src=x onerror=alert(1)>";
    let name = format!("Eve {SCRIPT} {ATTRIBUTE}");
    let raw_markup = |html: &str, page: &str| {
        for raw in ["<script>alert(1)", "<img src=x"] {
            assert!(!html.contains(raw), "{raw} unescaped on {page}:\n{html}");
        }
    };
    let api = staffed().await;
    let start = urlencoded(&start(5));
    let form = |name: &str, email: &str, phone: &str| {
        format!(
            "tenant=stuttgart&anliegen=gewerbeanmeldung&start={start}&name={}&email={}&phone={}\
             &privacy_accepted=true",
            urlencoded(name),
            urlencoded(email),
            urlencoded(phone)
        )
    };

    // Refused input comes back in the form's values, escaped.
    let bad = form(&name, &format!("eve{SCRIPT}@x"), ATTRIBUTE);
    let (status, _, html) = browse(&api, "POST", "/buchen", None, Some(&bad)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{html}");
    raw_markup(&html, "the refused booking form");
    for value in [&name, &format!("eve{SCRIPT}@x"), ATTRIBUTE] {
        assert!(
            html.contains(&format!("value=\"{}\"", escaped(value))),
            "{value} not kept escaped: {html}"
        );
    }

    // Booked: the citizen's page shows the name as text.
    let good = form(&name, "eve@example.org", "");
    let (status, headers, _) = browse(&api, "POST", "/buchen", None, Some(&good)).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(headers[header::LOCATION], "/buchen/stuttgart/gebucht");
    // The link from the mail.
    let token = api
        .state
        .system
        .access
        .token(crate::router::last_booked(&api).await);
    let (status, _, html) = browse(&api, "GET", &format!("/termin/{token}"), None, None).await;
    assert_eq!(status, StatusCode::OK);
    raw_markup(&html, "the appointment page");
    assert!(html.contains(&escaped(&name)), "{html}");
    let (_, _, booked) = api
        .get(&format!("/api/v1/appointments/by-token/{token}"))
        .await;
    let appointment = booked["id"].as_str().expect("id").to_owned();
    let waiting = format!("/termin/{token}/warteraum");
    let (status, _, _) = browse(&api, "POST", &waiting, None, Some("privacy_accepted=1")).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (_, _, html) = browse(&api, "GET", &waiting, None, None).await;
    raw_markup(&html, "the citizen's waiting room");
    assert!(html.contains(&escaped(&name)), "{html}");
    api.fold().await;

    // The clerk's day with its waiting room, and the appointment's page.
    let clerk = session(&api, "clerk.a").await;
    let (status, _, html) =
        browse(&api, "GET", "/sachbearbeitung?woche=1", Some(&clerk), None).await;
    assert_eq!(status, StatusCode::OK);
    raw_markup(&html, "the clerk's day");
    assert!(html.contains("wartet seit"), "in the waiting room: {html}");
    let detail = format!("/sachbearbeitung/termin/{appointment}");
    let (status, _, html) = browse(&api, "GET", &detail, Some(&clerk), None).await;
    assert_eq!(status, StatusCode::OK);
    raw_markup(&html, "the clerk's appointment page");
    assert!(html.contains(&escaped(&name)), "{html}");

    // The auditor's search and record show no name at all.
    let auditor = session(&api, "pruefer").await;
    for path in [
        format!("/pruefung?termin={appointment}"),
        format!("/pruefung/termin/{appointment}"),
    ] {
        let (status, _, html) = browse(&api, "GET", &path, Some(&auditor), None).await;
        assert_eq!(status, StatusCode::OK, "{path}: {html}");
        raw_markup(&html, &path);
        assert!(!html.contains("Eve"), "no names for auditors: {html}");
    }
}

/// The status and `Location` of a page request, without reading the body (the live view
/// streams).
async fn page_status(
    api: &Api,
    method: &str,
    path: &str,
    cookie: Option<&str>,
    form: Option<&str>,
) -> (StatusCode, Option<String>) {
    let response = page_response(api, method, path, cookie, form).await;
    let location = response
        .headers()
        .get(header::LOCATION)
        .map(|l| l.to_str().expect("ascii").to_owned());
    (response.status(), location)
}

#[tokio::test]
async fn every_role_gets_exactly_its_pages() {
    // Columns: anonymous, clerk A, clerk B, auditor, DPO, admin; a clerk of the trade office
    // signed in through the directory gets clerk A's column.
    let idp = crate::signon::Provider::start(
        "videoamt-stuttgart",
        "http://amt.test",
        vec![crate::signon::user("d.gewerbe", &["va-gewerbe"])],
        3600,
        "127.0.0.1",
        0,
    );
    let api = staffed_with(stuttgart_with_directory(&idp.issuer)).await;
    let directory = crate::signon::signed_on(&api, &idp, "stuttgart", "d.gewerbe").await;
    let mut sessions = vec![None];
    for name in ["clerk.a", "clerk.b", "pruefer", "dsb", "admin"] {
        sessions.push(Some(session(&api, name).await));
    }
    type Row = (&'static str, &'static str, Option<&'static str>, [u16; 6]);
    const STAFF: [u16; 6] = [303, 200, 200, 200, 200, 200];
    let rows: Vec<Row> = vec![
        ("GET", "/anmelden", None, [200, 303, 303, 303, 303, 303]),
        ("GET", "/anmelden/verzeichnis/{tenant}", None, [303; 6]),
        ("GET", "/anmelden/verzeichnis/rueckkehr", None, [400; 6]),
        ("GET", "/konto/passwort", None, STAFF),
        ("GET", "/konto/passwort/{token}", None, [404; 6]),
        ("GET", "/statistik", None, STAFF),
        (
            "GET",
            "/sachbearbeitung",
            None,
            [303, 200, 200, 403, 403, 403],
        ),
        (
            "GET",
            "/sachbearbeitung/live",
            None,
            [401, 200, 200, 403, 403, 403],
        ),
        (
            "GET",
            "/sachbearbeitung/einladen",
            None,
            [303, 200, 200, 403, 403, 403],
        ),
        (
            "GET",
            "/sachbearbeitung/termin/{id}",
            None,
            [303, 200, 403, 403, 403, 403],
        ),
        (
            "POST",
            "/sachbearbeitung/termin/{id}/absagen",
            Some("reason=R%C3%BCckfrage+ergab%3A+nicht+n%C3%B6tig"),
            [303, 303, 403, 403, 403, 403],
        ),
        ("GET", "/pruefung", None, [303, 403, 403, 200, 403, 403]),
        (
            "GET",
            "/pruefung/termin/{id}",
            None,
            [303, 403, 403, 200, 403, 403],
        ),
        (
            "GET",
            "/pruefung/konten",
            None,
            [303, 403, 403, 200, 403, 403],
        ),
        (
            "GET",
            "/pruefung/konten/{login}",
            None,
            [303, 403, 403, 200, 403, 403],
        ),
        ("GET", "/datenschutz", None, [303, 403, 403, 403, 200, 403]),
        (
            "GET",
            "/datenschutz/bericht.csv",
            None,
            [303, 403, 403, 403, 200, 403],
        ),
        (
            "GET",
            "/datenschutz/subjekt/{id}",
            None,
            [303, 403, 403, 403, 200, 403],
        ),
        (
            "GET",
            "/verwaltung/konten",
            None,
            [303, 403, 403, 403, 403, 200],
        ),
        (
            "POST",
            "/verwaltung/konten",
            Some("login=neu.{n}&role=auditor"),
            [303, 403, 403, 403, 403, 200],
        ),
        (
            "GET",
            "/verwaltung/konten/{login}",
            None,
            [303, 403, 403, 403, 403, 200],
        ),
        (
            "POST",
            "/verwaltung/konten/{login}/rolle",
            Some("role=clerk&departments=versicherungsamt"),
            [303, 403, 403, 403, 403, 303],
        ),
        (
            "POST",
            "/verwaltung/konten/{login}/zuruecksetzen",
            Some(""),
            [303, 403, 403, 403, 403, 200],
        ),
        (
            "POST",
            "/verwaltung/konten/{login}/entsperren",
            Some(""),
            [303, 403, 403, 403, 403, 409],
        ),
        (
            "POST",
            "/verwaltung/konten/{login}/deaktivieren",
            Some(""),
            [303, 403, 403, 403, 403, 303],
        ),
        (
            "POST",
            "/verwaltung/konten/{login}/aktivieren",
            Some(""),
            [303, 403, 403, 403, 403, 409],
        ),
        // Last: it ends the sessions.
        ("POST", "/abmelden", None, [303; 6]),
    ];
    let mut failures = vec![];
    let mut n = 500;
    for (method, template, form, expected) in &rows {
        let mut columns: Vec<(usize, Option<String>, u16)> = sessions
            .iter()
            .cloned()
            .enumerate()
            .map(|(i, s)| (i, s, expected[i]))
            .collect();
        // The directory's clerk: clerk A's column, but no password to change here.
        let directory_want = match *template {
            "/konto/passwort" => 409,
            // Logging out moves on to the provider by a page of its own.
            "/abmelden" => 200,
            _ => expected[1],
        };
        columns.push((6, Some(directory.clone()), directory_want));
        for (column, cookie, want) in columns {
            let (booked, target) = cell(&api, n, template.contains("{login}")).await;
            let number = n.to_string();
            n += 1;
            let fill = |s: &str| {
                s.replace("/subjekt/{id}", &format!("/subjekt/{}", booked.subject))
                    .replace("{id}", &booked.appointment)
                    .replace("{login}", &target)
                    .replace("{tenant}", "stuttgart")
                    .replace("{token}", FOREIGN_TOKEN)
                    .replace("{n}", &number)
            };
            let path = fill(template);
            let form = form.map(fill);
            let (status, location) =
                page_status(&api, method, &path, cookie.as_deref(), form.as_deref()).await;
            if status.as_u16() != want {
                failures.push(format!(
                    "column {column} {method} {path}: {status} (to {location:?}), expected {want}"
                ));
            }
            // Nobody without a session gets further than the login page.
            if column == 0
                && status == StatusCode::SEE_OTHER
                && template.starts_with("/sach")
                && location.as_deref() != Some("/anmelden")
            {
                failures.push(format!("anonymous {method} {path}: to {location:?}"));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} cells wrong:\n{}",
        failures.len(),
        failures.join("\n")
    );
    // The matrix covers every staff page the router serves.
    let source = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/http/mod.rs"),
    )
    .expect("the router's source");
    let covered: std::collections::BTreeSet<&str> = rows.iter().map(|r| r.1).collect();
    let staff_prefixes = [
        "/anmelden",
        "/abmelden",
        "/konto",
        "/statistik",
        "/sachbearbeitung",
        "/pruefung",
        "/datenschutz",
        "/verwaltung",
    ];
    let mut routes: Vec<String> = source
        .split('"')
        .filter(|s| staff_prefixes.iter().any(|p| s.starts_with(p)))
        .map(str::to_owned)
        .collect();
    routes.push(videoamt_api::http::staff::signon::RETURN_PATH.to_owned());
    for route in routes {
        assert!(
            covered.contains(route.as_str()),
            "{route} is not in the page matrix"
        );
    }
}

#[tokio::test]
async fn an_auditor_sees_every_change_of_an_account_and_the_reading_is_recorded_first() {
    let api = staffed().await;
    let admin = session(&api, "admin").await;
    let auditor = session(&api, "pruefer").await;
    let clerk = session(&api, "clerk.a").await;
    // The admin makes an account, changes its role, resets it, deactivates and reactivates it.
    let (status, _, page) = browse(
        &api,
        "POST",
        "/verwaltung/konten",
        Some(&admin),
        Some("login=neu.konto&role=clerk&departments=ordnung-gewerbe"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    for (action, form) in [
        ("rolle", "role=clerk&departments=versicherungsamt"),
        ("zuruecksetzen", ""),
        ("deaktivieren", ""),
        ("aktivieren", ""),
    ] {
        let path = format!("/verwaltung/konten/neu.konto/{action}");
        let (status, _, page) = browse(&api, "POST", &path, Some(&admin), Some(form)).await;
        assert!(
            status.is_success() || status.is_redirection(),
            "{action}: {status} {page}"
        );
    }
    api.fold().await;
    let (status, _, list) = browse(&api, "GET", "/pruefung/konten", Some(&auditor), None).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert!(
        list.contains("href=\"/pruefung/konten/neu.konto\""),
        "{list}"
    );
    let before = api.last_position().await;
    let (status, _, page) = browse(
        &api,
        "GET",
        "/pruefung/konten/neu.konto",
        Some(&auditor),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    // One event more: the reading, which the page already shows as the last step.
    assert_eq!(api.last_position().await, before + 1);
    let order = [
        "Konto angelegt (Sachbearbeitung)",
        "Einmal-Link zum Setzen des Passworts ausgestellt",
        "Rolle geändert: Sachbearbeitung (Sozialamt: Versicherungsamt)",
        "Einmal-Link zum Setzen des Passworts ausgestellt",
        "Konto deaktiviert",
        "Konto wieder aktiviert",
        "Kontoverlauf von neu.konto eingesehen",
    ];
    let mut at = 0;
    for step in order {
        let found = page[at..]
            .find(step)
            .unwrap_or_else(|| panic!("{step:?} after position {at}: {page}"));
        at += found + step.len();
    }
    assert!(
        page.contains("Verwaltung (admin)") && page.contains("Prüfung (pruefer)"),
        "{page}"
    );
    // Only auditors read it, and a clerk's attempt writes nothing.
    let before = api.last_position().await;
    let (status, _, _) = browse(
        &api,
        "GET",
        "/pruefung/konten/neu.konto",
        Some(&clerk),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _, page) = browse(
        &api,
        "GET",
        "/pruefung/konten/niemand",
        Some(&auditor),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{page}");
    assert_eq!(api.last_position().await, before);
}

/// Reads the live stream `body` into `received` until `wanted` is in it.
async fn read_stream_until(
    body: &mut axum::body::BodyDataStream,
    received: &mut String,
    wanted: &str,
) {
    use futures::StreamExt as _;
    while !received.contains(wanted) {
        let chunk = body.next().await.expect("more events").expect("a chunk");
        received.push_str(&String::from_utf8_lossy(&chunk));
    }
}

/// A session holds four live streams at once; the fifth is refused with a German problem
/// document, and closing one frees its place. Another session has places of its own.
#[tokio::test]
async fn a_session_holds_four_live_streams_and_a_closed_one_frees_its_place() {
    let api = staffed().await;
    let clerk = session(&api, "clerk.a").await;
    let mut open = Vec::new();
    for _ in 0..4 {
        let response =
            page_response(&api, "GET", "/sachbearbeitung/live", Some(&clerk), None).await;
        assert_eq!(response.status(), StatusCode::OK);
        open.push(response);
    }
    let (status, headers, body) =
        browse(&api, "GET", "/sachbearbeitung/live", Some(&clerk), None).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(headers[header::CONTENT_TYPE], "application/problem+json");
    let problem: Value = serde_json::from_str(&body).expect("a problem document");
    assert_eq!(problem["title"], "Zu viele Live-Ansichten", "{problem}");
    assert_eq!(problem["status"], 429);
    // Another clerk's session is not counted against this one.
    let other = session(&api, "clerk.b").await;
    let response = page_response(&api, "GET", "/sachbearbeitung/live", Some(&other), None).await;
    assert_eq!(response.status(), StatusCode::OK);
    // The page closes one stream: its place is free.
    drop(open.pop());
    let response = page_response(&api, "GET", "/sachbearbeitung/live", Some(&clerk), None).await;
    assert_eq!(response.status(), StatusCode::OK);
    open.push(response);
    let (status, _, _) = browse(&api, "GET", "/sachbearbeitung/live", Some(&clerk), None).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
}

/// A citizen entering the waiting room reaches the clerk's open stream: the event appended
/// and folded is pushed by the live feed, and the stream sends the new waiting room.
#[tokio::test]
async fn a_change_in_the_log_is_pushed_to_an_open_live_stream() {
    let api = staffed().await;
    let clerk = session(&api, "clerk.a").await;
    let booked = book(&api, 0).await;
    api.fold().await;
    let response = page_response(&api, "GET", "/sachbearbeitung/live", Some(&clerk), None).await;
    assert_eq!(response.status(), StatusCode::OK);
    let mut body = response.into_body().into_data_stream();
    let mut received = String::new();
    read_stream_until(&mut body, &mut received, "event: warteraum").await;
    read_stream_until(&mut body, &mut received, "event: plan").await;
    assert!(received.contains("Niemand wartet."), "{received}");

    let waiting = format!("/termin/{}/warteraum", booked.token);
    let (status, _, _) = browse(&api, "POST", &waiting, None, Some("privacy_accepted=1")).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    api.fold().await;
    let mut pushed = String::new();
    read_stream_until(&mut body, &mut pushed, "wartet seit").await;
    assert!(pushed.contains("event: warteraum"), "{pushed}");
}

/// The DPO's report is long (every subject of a municipality): the API hands it out in pages
/// that together hold every row once, the page shows one page with the way on, and the CSV
/// export stays whole.
#[tokio::test]
async fn the_dpo_report_comes_in_pages_that_hold_every_subject_once() {
    let api = staffed().await;
    let mut booked = std::collections::BTreeSet::new();
    for n in 0..7 {
        booked.insert(book(&api, n).await.subject);
    }
    let dpo = session(&api, "dsb").await;
    let get = |path: String| {
        let api = &api;
        let dpo = dpo.clone();
        async move { api.call("GET", &path, None, &[("cookie", &dpo)]).await }
    };
    let (status, _, whole) = get("/api/v1/retention/report".into()).await;
    assert_eq!(status, StatusCode::OK, "{whole}");
    let total = whole["total"].as_u64().expect("total");
    assert!(total >= 7, "{whole}");
    assert_eq!(whole["next_offset"], Value::Null, "one page of at most 100");

    let mut seen = Vec::new();
    let mut offset = Some(0);
    let mut pages = 0;
    while let Some(at) = offset {
        let (status, _, page) = get(format!("/api/v1/retention/report?limit=3&offset={at}")).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        assert_eq!(page["total"].as_u64(), Some(total));
        assert_eq!(page["offset"].as_u64(), Some(at));
        let rows = page["rows"].as_array().expect("rows");
        assert!(rows.len() <= 3 && !rows.is_empty(), "{page}");
        seen.extend(
            rows.iter()
                .map(|r| r["subject"].as_str().expect("subject").to_owned()),
        );
        offset = page["next_offset"].as_u64();
        pages += 1;
    }
    assert_eq!(pages, total.div_ceil(3));
    let distinct: std::collections::BTreeSet<_> = seen.iter().cloned().collect();
    assert_eq!(seen.len() as u64, total, "every row once");
    assert!(booked.is_subset(&distinct));

    // Past the end: an empty last page.
    let (status, _, beyond) = get(format!("/api/v1/retention/report?offset={total}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(beyond["rows"], json!([]));
    assert_eq!(beyond["next_offset"], Value::Null);
    for bad in ["limit=0", "limit=501", "offset=1000001"] {
        let before = api.last_position().await;
        let response = get(format!("/api/v1/retention/report?{bad}")).await;
        assert_refused(&api, response, StatusCode::UNPROCESSABLE_ENTITY, before).await;
    }
    // The CSV export holds every row: a header line and one per subject.
    let (status, _, _) = get("/api/v1/retention/report?format=csv&limit=1".into()).await;
    assert_eq!(status, StatusCode::OK);
    let csv = browse(&api, "GET", "/datenschutz/bericht.csv", Some(&dpo), None)
        .await
        .2;
    assert_eq!(csv.lines().count() as u64, total + 1, "{csv}");

    // The page: the range shown, and the way back from the second page.
    let (status, _, html) = browse(&api, "GET", "/datenschutz?ab=2", Some(&dpo), None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        html.contains(&format!("Einträge 3 bis {total} von {total}")),
        "{html}"
    );
    assert!(html.contains("Vorherige Seite"), "{html}");
    assert!(!html.contains("Nächste Seite"), "{html}");
}

/// The schedule's appointment ids of clerk A's week, as the API answers with these headers.
async fn week_of(api: &Api, headers: &[(&str, &str)]) -> Vec<String> {
    let (status, _, plan) = api
        .call(
            "GET",
            "/api/v1/clerk/schedule?from=2026-11-23&days=7",
            None,
            headers,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{plan}");
    plan["days"]
        .as_array()
        .expect("days")
        .iter()
        .flat_map(|d| d["appointments"].as_array().expect("list"))
        .map(|e| e["appointment"].as_str().expect("id").to_owned())
        .collect()
}

#[tokio::test]
async fn the_schedule_is_read_from_memory_and_a_booking_names_the_position_to_wait_for() {
    // Given the server's read models in memory, kept by their own runner, and the database
    // copy caught up once and then left alone
    let api = staffed().await;
    let first = book(&api, 3).await;
    api.fold().await;
    api.state.reads.seed().await.expect("seeded");
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let runner =
        videoamt_projections::runner::Runner::new(api.state.store.clone(), api.state.reads.clone());
    let projections = api.state.reads.projections();
    let running = tokio::spawn(async move { runner.run(projections, stopped).await });
    let clerk = session(&api, "clerk.a").await;

    // When a citizen books
    let (status, headers, body) = api
        .post("/api/v1/appointments", &stuttgart_booking(&start(4)))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let second = body["appointment"]["id"].as_str().expect("id").to_owned();

    // Then the answer names the position the booking reached, in a cookie of no person
    let stand = headers
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("videoamt_stand="))
        .expect("the position of the write")
        .to_owned();
    assert!(
        stand.contains("HttpOnly") && stand.contains("Max-Age=30"),
        "{stand}"
    );
    let pair = cookie_pair(&stand);
    assert_eq!(
        pair,
        format!("videoamt_stand={}", api.last_position().await)
    );

    // And a read carrying it sees the booking, from memory: the database copy has not got it
    let cookies = format!("{clerk}; {pair}");
    let week = week_of(&api, &[("cookie", &cookies)]).await;
    assert_eq!(week, [first.appointment.clone(), second.clone()]);
    let tenant = tenant(&api, "stuttgart");
    let stored = videoamt_projections::schedule::for_departments(
        api.state.store.as_ref(),
        &tenant,
        [&"ordnung-gewerbe".into()],
        time::macros::date!(2026 - 11 - 23),
        7,
    )
    .await
    .expect("schedule");
    let stored: Vec<String> = stored
        .into_iter()
        .flat_map(|d| d.appointments)
        .map(|a| a.appointment.to_string())
        .collect();
    assert_eq!(stored, std::slice::from_ref(&first.appointment));

    // And a read, which writes nothing, sets no position
    let (_, headers, _) = api
        .call(
            "GET",
            "/api/v1/clerk/schedule?from=2026-11-23&days=7",
            None,
            &[("cookie", &cookies)],
        )
        .await;
    assert!(
        !headers
            .get_all(header::SET_COOKIE)
            .iter()
            .any(|v| v.to_str().is_ok_and(|v| v.starts_with("videoamt_stand="))),
        "{headers:?}"
    );
    stop.send(true).expect("runner listens");
    running.await.expect("joined").expect("ran");
}
