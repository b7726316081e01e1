//! Server-rendered German pages for staff: the login, the clerk's day (schedule and waiting
//! room kept current over Server-Sent Events by `/static/live.js`), appointment details with
//! cancellation, invitations; the auditor's search, timeline and time-travel slider; the DPO's
//! report, evidence and CSV export; the statistics with server-side SVG charts. Every page
//! works without JavaScript except the live updates, which a reload replaces.

// A refusal is the page to answer with (`Page`), built once per refused request; boxing it
// buys nothing.
#![allow(clippy::result_large_err)]

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;
use videoamt_core::domain::account::StaffRole;
use videoamt_core::tenant::{BookingChannel, Cents, Tenant};

use super::desk::{self, AuditQuery, ReportQuery, ScheduleQuery, StatisticsQuery};
use super::session::{self as staff, Staff};
use crate::http::AppState;
use crate::http::citizen::booking::{all, pairs, urlencode};
use crate::http::citizen::pages::slot_choices;
use crate::http::citizen::service::{self as citizen, ContactInput};
use crate::http::error::Error;
use crate::http::extract::{PageForm as Form, PageQuery as Query};
use crate::http::html::{alert, charts, format, moving_on, problem_alert, problem_page, shell};
use crate::http::middleware::guard::Client;

/// A staff page, or the page that answers instead (the login, a refusal): both are pages.
pub(crate) type Page = Result<Response, Response>;

pub(crate) const LIVE_JS: &str = include_str!("../../../assets/live.js");
pub(crate) const TIME_TRAVEL_JS: &str = include_str!("../../../assets/zeitreise.js");

pub(crate) async fn script(Path(name): Path<String>) -> Response {
    let body = match name.as_str() {
        "live.js" => LIVE_JS,
        "zeitreise.js" => TIME_TRAVEL_JS,
        "raum.js" => include_str!("../../../assets/raum.js"),
        "formular.js" => include_str!("../../../assets/formular.js"),
        "zahlung.js" => include_str!("../../../assets/zahlung.js"),
        "technik.js" => include_str!("../../../assets/technik.js"),
        _ => return problem_page(&Error::not_found("Diese Datei gibt es nicht.")),
    };
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        body,
    )
        .into_response()
}

/// Where each role starts.
pub(crate) fn home(role: StaffRole) -> &'static str {
    match role {
        StaffRole::Clerk => "/sachbearbeitung",
        StaffRole::Auditor => "/pruefung",
        StaffRole::Dpo => "/datenschutz",
        StaffRole::Admin => "/verwaltung/konten",
    }
}

pub(crate) fn nav(staff: &Staff) -> Markup {
    let mut links: Vec<(&str, &str)> = match staff.role {
        StaffRole::Clerk => vec![
            ("/sachbearbeitung", "Heute"),
            ("/sachbearbeitung?woche=1", "Woche"),
            ("/sachbearbeitung/einladen", "Einladen"),
        ],
        StaffRole::Auditor => vec![("/pruefung", "Suche"), ("/pruefung/konten", "Konten")],
        StaffRole::Dpo => vec![("/datenschutz", "Löschbericht")],
        StaffRole::Admin => vec![("/verwaltung/konten", "Konten")],
    };
    links.push(("/statistik", "Statistik"));
    // A directory account's password is the directory's.
    if !staff.directory {
        links.push(("/konto/passwort", "Passwort ändern"));
    }
    html! {
        nav aria-label="Hauptnavigation" {
            ul { @for (href, label) in &links { li { a href=(href) { (label) } } } }
            form method="post" action="/abmelden" {
                span { (staff.login.as_str()) " (" (staff.role.label()) ")" }
                " "
                button type="submit" class="secondary" { "Abmelden" }
            }
        }
    }
}

pub(crate) fn staff_page(staff: &Staff, title: &str, scripts: &[&str], body: Markup) -> Response {
    shell(StatusCode::OK, title, Some(nav(staff)), scripts, body)
}

/// The staff member of this request with one of `roles`: otherwise the login page (no
/// session) or a refusal page (wrong role).
pub(crate) async fn require(
    headers: &HeaderMap,
    state: &AppState,
    roles: &[StaffRole],
) -> Result<Staff, Response> {
    let staff = staff::staff_of(headers, state)
        .await
        .map_err(|e| problem_page(&e))?
        .ok_or_else(|| Redirect::to("/anmelden").into_response())?;
    staff.require_any(roles).map_err(|p| refusal(&staff, &p))?;
    Ok(staff)
}

/// The staff member (with one of `roles`) and the id in the path, or the page to answer with.
async fn require_with_id(
    headers: &HeaderMap,
    state: &AppState,
    roles: &[StaffRole],
    raw: &str,
    unknown: &str,
) -> Result<(Staff, uuid::Uuid), Response> {
    let staff = require(headers, state, roles).await?;
    match uuid::Uuid::parse_str(raw) {
        Ok(id) => Ok((staff, id)),
        Err(_) => Err(refusal(&staff, &Error::not_found(unknown.to_owned()))),
    }
}

/// `<option>`s for (value, label) pairs, the one equal to `chosen` selected.
pub(crate) fn options(choices: impl IntoIterator<Item = (String, String)>, chosen: &str) -> Markup {
    html! {
        @for (value, label) in choices {
            option value=(value) selected[value == chosen] { (label) }
        }
    }
}

/// "All departments" and the departments of the municipality that `keep` lets through.
fn department_options(
    tenant: &Tenant,
    keep: impl Fn(&videoamt_core::tenant::DepartmentId) -> bool,
    chosen: &str,
) -> Markup {
    options(
        std::iter::once((String::new(), "alle Bereiche".to_owned())).chain(
            tenant
                .departments
                .values()
                .filter(|d| keep(&d.id))
                .map(|d| (d.id.to_string(), d.name.clone())),
        ),
        chosen,
    )
}

pub(crate) fn refusal(staff: &Staff, error: &Error) -> Response {
    let problem = error.problem();
    let mut response = staff_page(staff, problem.title, &[], problem_alert(&problem));
    *response.status_mut() = error.status();
    error.mark(response)
}

// --- login ---

#[derive(Debug, Deserialize)]
pub(crate) struct LoginForm {
    tenant: String,
    login: String,
    password: String,
}

fn login_form(
    state: &AppState,
    status: StatusCode,
    message: Option<&str>,
    tenant: &str,
    login: &str,
) -> Response {
    let options = options(
        state
            .tenants
            .iter()
            .map(|t| (t.id.to_string(), t.name.clone())),
        tenant,
    );
    let directories: Vec<&Tenant> = state
        .tenants
        .iter()
        .filter(|t| t.oidc.is_some() && state.sign_ons.offers(&t.id))
        .collect();
    let body = html! {
        @if let Some(m) = message { (alert([m])) }
        @if !directories.is_empty() {
            section aria-labelledby="verzeichnis" {
                h2 id="verzeichnis" { "Mit dem Verzeichnisdienst der Kommune" }
                ul class="plain" {
                    @for t in &directories {
                        @let label = t.oidc.as_ref().map_or("", |o| o.label.as_str());
                        li {
                            a class="button" href={ "/anmelden/verzeichnis/" (t.id.as_str()) } {
                                (label) " – " (t.name)
                            }
                        }
                    }
                }
            }
            h2 { "Mit Anmeldename und Passwort" }
        }
        form method="post" action="/anmelden" {
            label for="tenant" { "Kommune" }
            select id="tenant" name="tenant" { (options) }
            label for="login" { "Anmeldename" }
            input type="text" id="login" name="login" value=(login) autocomplete="username" required;
            label for="password" { "Passwort" }
            input type="password" id="password" name="password" autocomplete="current-password"
                required;
            p { button type="submit" { "Anmelden" } }
        }
        p {
            "Für Mitarbeitende der Kommune. Bürgerinnen und Bürger öffnen ihren Termin über den \
             Link in der Terminbestätigung."
        }
    };
    shell(status, "Anmeldung für Mitarbeitende", None, &[], body)
}

pub(crate) async fn login_page(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Ok(Some(staff)) = staff::staff_of(&headers, &state).await {
        return Redirect::to(home(staff.role)).into_response();
    }
    login_form(&state, StatusCode::OK, None, "", "")
}

pub(crate) async fn login(
    State(state): State<AppState>,
    client: Client,
    Form(form): Form<LoginForm>,
) -> Response {
    match staff::log_in(&state, client, &form.tenant, &form.login, &form.password).await {
        Ok((cookie, staff)) => (
            [(header::SET_COOKIE, staff::session_cookie(&state, &cookie))],
            Redirect::to(home(staff.role)),
        )
            .into_response(),
        Err(e) => {
            let p = e.problem();
            e.mark(login_form(
                &state,
                StatusCode::from_u16(p.status).unwrap_or(StatusCode::UNAUTHORIZED),
                p.detail.as_deref(),
                &form.tenant,
                &form.login,
            ))
        }
    }
}

/// Ends the session; one that came from the municipality's directory also goes on to the
/// provider's end-session page, which brings the browser back to the login page. That step is
/// a page moving on by itself (`Refresh`), not a redirect: the pages' `form-action 'self'`
/// forbids a form's redirect to another site.
pub(crate) async fn logout(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let staff = staff::staff_of(&headers, &state).await.ok().flatten();
    if let Err(e) = staff::log_out(&headers, &state).await {
        return e.into_response();
    }
    let cleared = [(header::SET_COOKIE, staff::cleared_cookie(&state))];
    let next = match staff.filter(|s| s.directory) {
        Some(s) => crate::http::staff::signon::end_session(&state, &s.tenant).await,
        None => None,
    };
    let Some(next) = next else {
        return (cleared, Redirect::to("/anmelden")).into_response();
    };
    let body = html! {
        p { "Sie sind hier abgemeldet. Weiter zur Abmeldung beim Verzeichnisdienst der Kommune …" }
        p { a href=(next) { "Beim Verzeichnisdienst abmelden" } }
    };
    let mut response = moving_on("Abgemeldet", body, &next);
    if let Ok(value) = cleared[0].1.parse() {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

// --- the clerk's day ---

#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct DayQuery {
    /// Set for the week view.
    woche: Option<String>,
}

fn schedule_query(q: &DayQuery) -> ScheduleQuery {
    ScheduleQuery {
        from: None,
        days: Some(if q.woche.is_some() { 7 } else { 1 }),
        department: None,
    }
}

fn or_dash(text: &str) -> &str {
    if text.is_empty() { "–" } else { text }
}

fn plan_html(tenant: &Tenant, view: &desk::ScheduleView) -> Markup {
    html! {
        @for day in &view.days {
            h3 { (format::day(&day.date)) }
            @if day.appointments.is_empty() {
                p { "Keine Termine." }
            } @else {
                table {
                    thead {
                        tr {
                            th scope="col" { "Zeit" }
                            th scope="col" { "Bereich" }
                            th scope="col" { "Anliegen" }
                            th scope="col" { "Weg" }
                            th scope="col" { "Status" }
                        }
                    }
                    tbody {
                        @for e in &day.appointments {
                            tr {
                                td {
                                    a href={ "/sachbearbeitung/termin/" (e.appointment) } {
                                        (format::clock(tenant, &e.start)) "–"
                                        (format::clock(tenant, &e.end))
                                    }
                                }
                                td { (e.department_name) }
                                td { (e.services.join("; ")) }
                                td {
                                    @match e.channel {
                                        BookingChannel::Online => "online gebucht",
                                        BookingChannel::ClerkInvitation => "Einladung",
                                    }
                                }
                                td { (e.status_label) }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn waiting_html(tenant: &Tenant, waiting: &[desk::WaitingView]) -> Markup {
    html! {
        @if waiting.is_empty() {
            p { "Niemand wartet." }
        } @else {
            ul {
                @for w in waiting {
                    li {
                        a href={ "/sachbearbeitung/termin/" (w.appointment) } {
                            "Termin im Bereich " (w.department_name)
                        }
                        ", wartet seit " (format::clock(tenant, &w.waiting_since)) " Uhr"
                        @if w.privacy_notice_accepted {
                            ", Datenschutzhinweis bestätigt"
                        } @else {
                            ", Datenschutzhinweis noch offen"
                        }
                        @if w.connection_lost { ", Verbindung unterbrochen" }
                        @if w.returned { ", zurück im Warteraum" }
                        @match (w.pre_call_check_passed, w.upload_kbit_s) {
                            (Some(passed), Some(kbit)) => {
                                ", " (videoamt_core::german::pre_call_check(passed, kbit))
                            }
                            _ => ", ohne Technik-Check",
                        }
                        " "
                        @let room = format!("/sachbearbeitung/termin/{}/raum", w.appointment);
                        @if w.privacy_notice_accepted {
                            form method="post" action={ (room) "/einlassen" } class="inline" {
                                button type="submit" { "Einlassen" }
                            }
                        }
                        form method="post" action={ (room) "/entfernen" } class="inline" {
                            button type="submit" { "Entfernen" }
                        }
                    }
                }
            }
        }
    }
}

/// The plan and the waiting room, as the page shows them and the live stream sends them.
async fn fragments(
    state: &AppState,
    staff: &Staff,
    q: &DayQuery,
) -> Result<(String, String), Error> {
    let tenant = staff.tenant(state)?;
    let plan = desk::schedule(state, staff, &schedule_query(q)).await?;
    let waiting = desk::waiting_room(state, staff).await?;
    Ok((
        plan_html(tenant, &plan).into_string(),
        waiting_html(tenant, &waiting).into_string(),
    ))
}

pub(crate) async fn clerk_day(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<DayQuery>,
) -> Page {
    let staff = require(&headers, &state, &[StaffRole::Clerk]).await?;
    let (plan, waiting) = fragments(&state, &staff, &q)
        .await
        .map_err(|p| refusal(&staff, &p))?;
    let (title, query) = if q.woche.is_some() {
        ("Terminplan der Woche", "?woche=1")
    } else {
        ("Terminplan heute", "")
    };
    // The fragments are the output of `plan_html` and `waiting_html` (maud, escaped), kept as
    // strings because the live stream compares and sends them.
    let body = html! {
        section aria-labelledby="wr" {
            h2 id="wr" { "Warteraum" }
            div id="warteraum" aria-live="polite" { (maud::PreEscaped(waiting)) }
        }
        section aria-labelledby="tp" data-live={ "/sachbearbeitung/live" (query) } {
            h2 id="tp" { (title) }
            div id="plan" aria-live="polite" { (maud::PreEscaped(plan)) }
        }
    };
    Ok(staff_page(&staff, "Sachbearbeitung", &["live.js"], body))
}

/// How often an open live stream checks its session when nothing changed: a logout, an
/// expiry or a deactivation ends it by then at the latest. A change in the log is pushed at
/// once, and the session is checked then too.
const SESSION_CHECK: Duration = Duration::from_secs(10);

/// Server-Sent Events for the clerk's page: the waiting room and the plan, each sent again
/// whenever it changed, until the session ends or the page closes. The shared live feed says
/// when the read models moved, and only then are they read again; without news the session
/// alone is checked every [`SESSION_CHECK`]. A session holds at most
/// [`super::streams::PER_SESSION`] streams at once (ADR 0025).
pub(crate) async fn clerk_live(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<DayQuery>,
) -> Response {
    let staff = match staff::staff_of(&headers, &state).await {
        Ok(Some(s)) if s.role == StaffRole::Clerk => s,
        Ok(Some(_)) => return Error::Forbidden.into_response(),
        Ok(None) => return Error::LoginRequired.into_response(),
        Err(e) => return e.into_response(),
    };
    let cookie = staff::cookie_of(&state, &headers)
        .unwrap_or_default()
        .to_owned();
    let Some(slot) = state.live_streams.take(staff::key(&cookie)) else {
        return Error::TooManyLiveStreams.into_response();
    };
    let moved = state.live.subscribe(&state.store, &state.reads);
    let stream = futures::stream::unfold(
        (
            state,
            staff,
            q,
            cookie,
            moved,
            None::<(String, String)>,
            slot,
        ),
        |(state, staff, q, cookie, mut moved, last, slot)| async move {
            let mut render = last.is_none();
            loop {
                if !render {
                    render = match tokio::time::timeout(SESSION_CHECK, moved.changed()).await {
                        Ok(Ok(())) => true,
                        // No news: only the session is checked.
                        Err(_) => false,
                        // The feed stopped (it cannot while a receiver is held, but a
                        // panicked task would): follow a new one, and render from it.
                        Ok(Err(_)) => {
                            moved = state.live.subscribe(&state.store, &state.reads);
                            true
                        }
                    };
                }
                // A session that ended (logout, expiry, deactivation) ends the stream; one
                // whose account cannot be read now is checked again next time.
                let staff = match staff::session(&state, &cookie).await {
                    Ok(Some(now)) if now.role == StaffRole::Clerk => now,
                    Ok(_) => return None,
                    Err(_) => staff.clone(),
                };
                if !render {
                    continue;
                }
                render = false;
                let Ok(now) = fragments(&state, &staff, &q).await else {
                    continue;
                };
                if last.as_ref() == Some(&now) {
                    continue;
                }
                let mut events = vec![];
                if last.as_ref().is_none_or(|l| l.0 != now.0) {
                    events.push(Event::default().event("plan").data(now.0.clone()));
                }
                if last.as_ref().is_none_or(|l| l.1 != now.1) {
                    events.push(Event::default().event("warteraum").data(now.1.clone()));
                }
                let batch = futures::stream::iter(events.into_iter().map(Ok::<_, Infallible>));
                return Some((batch, (state, staff, q, cookie, moved, Some(now), slot)));
            }
        },
    );
    use futures::StreamExt as _;
    Sse::new(stream.flatten())
        .keep_alive(KeepAlive::default())
        .into_response()
}

// --- one appointment ---

#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct DetailQuery {
    abgesagt: Option<String>,
    eingeladen: Option<String>,
}

pub(crate) async fn clerk_detail(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<DetailQuery>,
) -> Page {
    let (staff, id) = require_with_id(
        &headers,
        &state,
        &[StaffRole::Clerk],
        &id,
        "Diesen Termin gibt es nicht.",
    )
    .await?;
    let tenant = staff.tenant(&state).map_err(|p| refusal(&staff, &p))?;
    let d = desk::detail(&state, &staff, id)
        .await
        .map_err(|p| refusal(&staff, &p))?;
    let body = html! {
        @if q.abgesagt.is_some() {
            div class="notice" role="status" {
                p { "Der Termin ist abgesagt; die Bürgerin oder der Bürger erhält eine E-Mail." }
            }
        }
        @if q.eingeladen.is_some() {
            div class="notice" role="status" {
                p {
                    "Die Einladung ist gebucht; die Bürgerin oder der Bürger erhält die \
                     Terminbestätigung per E-Mail."
                }
            }
        }
        dl {
            dt { "Name" } dd { (d.contact_name) }
            dt { "Beginn" } dd { (format::moment(tenant, &d.start)) }
            dt { "Ende" } dd { (format::moment(tenant, &d.end)) }
            dt { "Bereich" } dd { (d.department_name) }
            dt { "Anliegen" } dd { (d.services.join("; ")) }
            dt { "Gebühren" } dd { (Cents(d.fee_total_cents)) }
            dt { "Status" } dd { (d.status_label) @if d.confirmed { ", bestätigt" } }
            dt { "Datenschutzhinweis" }
            dd { @if d.privacy_notice_accepted { "bestätigt" } @else { "offen" } }
            dt { "Identität" } dd { (d.identity.as_deref().unwrap_or("nicht geprüft")) }
        }
        h2 { "Mitzubringen" }
        ul { @for doc in &d.documents_to_bring { li { (doc) } } }
        @if d.status_label == "gebucht" {
            h2 { "Termin absagen" }
            form method="post" action={ "/sachbearbeitung/termin/" (id) "/absagen" } {
                label for="grund" {
                    "Grund der Absage (Pflichtfeld, wird der Bürgerin oder dem Bürger nicht \
                     angezeigt)"
                }
                textarea id="grund" name="reason" rows="3" maxlength="500" required {}
                p { button type="submit" { "Termin absagen" } }
            }
        }
    };
    Ok(staff_page(&staff, "Termin", &[], body))
}

pub(crate) async fn clerk_cancel(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<desk::ClerkCancelRequest>,
) -> Page {
    let (staff, uuid) = require_with_id(
        &headers,
        &state,
        &[StaffRole::Clerk],
        &id,
        "Diesen Termin gibt es nicht.",
    )
    .await?;
    desk::cancel(&state, &staff, uuid, &form)
        .await
        .map_err(|p| refusal(&staff, &p))?;
    Ok(Redirect::to(&format!("/sachbearbeitung/termin/{uuid}?abgesagt=1")).into_response())
}

// --- invitation ---

/// The first non-empty value of `key` in a form.
fn value(form: &[(String, String)], key: &str) -> String {
    all(form, key)
        .into_iter()
        .find(|v| !v.is_empty())
        .unwrap_or_default()
}

async fn invitation_form(
    state: &AppState,
    staff: &Staff,
    form: &[(String, String)],
    errors: &[crate::http::error::FieldError],
    message: Option<&str>,
) -> Response {
    let tenant = match staff.tenant(state) {
        Ok(t) => t,
        Err(p) => return refusal(staff, &p),
    };
    let chosen = all(form, "services");
    let services: Vec<_> = tenant
        .services
        .values()
        .filter(|s| staff.may_work_on(&s.department) && s.online)
        .collect();
    let from = value(form, "von");
    let from = if citizen::parse_date(&from).is_some() {
        from
    } else {
        desk::today(state, tenant).to_string()
    };
    let slots = if chosen.is_empty() {
        None
    } else {
        let query = citizen::SlotQuery {
            tenant: tenant.id.to_string(),
            services: chosen.join(","),
            from: from.clone(),
            days: Some(7),
        };
        Some(citizen::free_slots(state, &query).await)
    };
    let body = html! {
        @if let Some(m) = message { (alert([m])) }
        form method="get" action="/sachbearbeitung/einladen" {
            fieldset {
                legend { "Anliegen" }
                @for (i, s) in services.iter().enumerate() {
                    @let id = format!("a{i}");
                    label for=(id) {
                        input type="checkbox" id=(id) name="services" value=(s.id.as_str())
                            checked[chosen.iter().any(|c| c == s.id.as_str())];
                        " " (s.name) " (" (s.duration_minutes) " Min., " (s.fee) ")"
                    }
                }
            }
            label for="von" { "Ab Datum" }
            input type="date" id="von" name="von" value=(from);
            p { button type="submit" class="secondary" { "Freie Zeiten anzeigen" } }
        }
        @match &slots {
            Some(Ok(slots)) => {
                form method="post" action="/sachbearbeitung/einladen" {
                    @for s in &chosen { input type="hidden" name="services" value=(s); }
                    h2 { "Zeitpunkt" }
                    (slot_choices(tenant, slots).0)
                    h2 { "Kontakt der Bürgerin oder des Bürgers" }
                    (crate::http::citizen::booking::contact_fields(
                        &ContactInput {
                            name: value(form, "name"),
                            email: value(form, "email"),
                            phone: Some(value(form, "phone")),
                        },
                        errors
                    ))
                    p { button type="submit" { "Einladung buchen und E-Mail senden" } }
                }
            }
            Some(Err(e)) => {
                @let p = e.problem();
                (alert([p.detail.as_deref().unwrap_or(p.title)]))
            }
            None => {}
        }
    };
    let mut response = staff_page(staff, "Bürgerin oder Bürger einladen", &[], body);
    if !errors.is_empty() || message.is_some() {
        *response.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
    }
    response
}

pub(crate) async fn invitation_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    uri: axum::http::Uri,
) -> Page {
    let staff = require(&headers, &state, &[StaffRole::Clerk]).await?;
    Ok(invitation_form(&state, &staff, &pairs(uri.query()), &[], None).await)
}

pub(crate) async fn invite(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: String,
) -> Page {
    let staff = require(&headers, &state, &[StaffRole::Clerk]).await?;
    let form = pairs(Some(&body));
    let start = value(&form, "start");
    let Ok(start_at) =
        time::OffsetDateTime::parse(&start, &time::format_description::well_known::Rfc3339)
    else {
        return Ok(invitation_form(
            &state,
            &staff,
            &form,
            &[],
            Some("Bitte wählen Sie einen Zeitpunkt."),
        )
        .await);
    };
    let phone = value(&form, "phone");
    let request = desk::InvitationRequest {
        services: all(&form, "services"),
        start: start_at,
        contact: ContactInput {
            name: value(&form, "name"),
            email: value(&form, "email"),
            phone: (!phone.is_empty()).then_some(phone),
        },
    };
    match desk::invite(&state, &staff, request).await {
        Ok(booked) => Ok(Redirect::to(&format!(
            "/sachbearbeitung/termin/{}?eingeladen=1",
            booked.appointment.id
        ))
        .into_response()),
        Err(e) if e.status() == StatusCode::FORBIDDEN => Err(refusal(&staff, &e)),
        Err(e) => {
            let p = e.problem();
            let message = p
                .errors
                .is_empty()
                .then(|| p.detail.clone().unwrap_or_else(|| p.title.to_owned()));
            Ok(invitation_form(&state, &staff, &form, &p.errors, message.as_deref()).await)
        }
    }
}

// --- auditor ---

#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct SearchForm {
    termin: Option<String>,
    datum: Option<String>,
    bereich: Option<String>,
}

fn entries_table(tenant: &Tenant, hits: &[desk::EntryView], link: &str) -> Markup {
    html! {
        @if hits.is_empty() {
            p { "Keine Termine gefunden." }
        } @else {
            table {
                thead {
                    tr {
                        th scope="col" { "Beginn" }
                        th scope="col" { "Bereich" }
                        th scope="col" { "Anliegen" }
                        th scope="col" { "Status" }
                    }
                }
                tbody {
                    @for e in hits {
                        tr {
                            td {
                                a href={ (link) "/" (e.appointment) } {
                                    (format::moment(tenant, &e.start))
                                }
                            }
                            td { (e.department_name) }
                            td { (e.services.join("; ")) }
                            td { (e.status_label) }
                        }
                    }
                }
            }
        }
    }
}

pub(crate) async fn audit_search(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<SearchForm>,
) -> Page {
    let staff = require(&headers, &state, &[StaffRole::Auditor]).await?;
    let tenant = staff.tenant(&state).map_err(|p| refusal(&staff, &p))?;
    let query = AuditQuery {
        appointment: q.termin.clone(),
        date: q.datum.clone(),
        department: q.bereich.clone(),
    };
    let results = match desk::audit_search(&state, &staff, &query).await {
        Ok(hits) => entries_table(tenant, &hits, "/pruefung/termin"),
        Err(e) => {
            let p = e.problem();
            alert([p.errors.first().map_or(p.title, |e| e.message.as_str())])
        }
    };
    let options = department_options(tenant, |_| true, q.bereich.as_deref().unwrap_or(""));
    let date = q
        .datum
        .clone()
        .filter(|d| citizen::parse_date(d).is_some())
        .unwrap_or_else(|| desk::today(&state, tenant).to_string());
    let body = html! {
        form method="get" action="/pruefung" {
            label for="termin" { "Termin-ID" }
            input type="text" id="termin" name="termin" value=(q.termin.as_deref().unwrap_or(""));
            label for="datum" { "Datum" }
            input type="date" id="datum" name="datum" value=(date);
            label for="bereich" { "Bereich" }
            select id="bereich" name="bereich" { (options) }
            p { button type="submit" { "Suchen" } }
        }
        h2 { "Treffer" }
        (results)
        p class="notice" { "Jedes Öffnen einer Prüfakte wird selbst protokolliert." }
    };
    Ok(staff_page(&staff, "Prüfung", &[], body))
}

#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct TimelineForm {
    stand: Option<u64>,
}

pub(crate) async fn audit_timeline(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<TimelineForm>,
) -> Page {
    let (staff, uuid) = require_with_id(
        &headers,
        &state,
        &[StaffRole::Auditor],
        &id,
        "Diesen Termin gibt es nicht.",
    )
    .await?;
    let tenant = staff.tenant(&state).map_err(|p| refusal(&staff, &p))?;
    let view = desk::audit_view(&state, &staff, uuid, q.stand)
        .await
        .map_err(|p| refusal(&staff, &p))?;
    let first = view.positions.first().copied().unwrap_or(1);
    let last = view.positions.last().copied().unwrap_or(view.head);
    let shown = view.as_of.min(last);
    let body = html! {
        p {
            "Termin " (uuid) ": Stand bei Protokollposition " (view.as_of) " von " (view.head)
            @if let Some(e) = view.entries.iter().rev().find(|e| e.position <= view.as_of) {
                " (" (format::moment(tenant, &e.recorded_at)) ")"
            }
            "."
        }
        form method="get" action={ "/pruefung/termin/" (uuid) } class="timetravel" {
            label for="stand" { "Zeitreise: Stand bei Position" }
            input type="range" id="stand" name="stand" min=(first) max=(last) value=(shown)
                list="marken" aria-valuetext={ "Position " (shown) };
            datalist id="marken" { @for p in &view.positions { option value=(p) {} } }
            output for="stand" id="stand-wert" { (shown) }
            p {
                button type="submit" { "Stand anzeigen" }
                " "
                a href={ "/pruefung/termin/" (uuid) } { "Aktueller Stand" }
            }
        }
        h2 { "Zustand" }
        ul { @for line in &view.state { li { (line) } } }
        h2 { "Verlauf" }
        (history_table(tenant, &view.entries))
    };
    Ok(staff_page(&staff, "Prüfakte", &["zeitreise.js"], body))
}

/// A history for the auditor: position, time, who and what, one event a row.
fn history_table(tenant: &Tenant, entries: &[desk::TimelineEntry]) -> Markup {
    html! {
        table {
            thead {
                tr {
                    th scope="col" { "Position" }
                    th scope="col" { "Zeit" }
                    th scope="col" { "Wer" }
                    th scope="col" { "Ereignis" }
                }
            }
            tbody {
                @for e in entries {
                    tr {
                        td { (e.position) }
                        td { (format::moment(tenant, &e.recorded_at)) }
                        td { (actor(&e.actor)) }
                        // The log's type name (`AppointmentBooked`) stays in the JSON API;
                        // a person reads what happened.
                        td { (e.summary) }
                    }
                }
            }
        }
    }
}

/// The municipality's accounts, for the auditor to open one's history.
pub(crate) async fn audit_accounts(State(state): State<AppState>, headers: HeaderMap) -> Page {
    let staff = require(&headers, &state, &[StaffRole::Auditor]).await?;
    let tenant = staff.tenant(&state).map_err(|p| refusal(&staff, &p))?;
    let accounts = desk::audited_accounts(&state, &staff)
        .await
        .map_err(|p| refusal(&staff, &p))?;
    let body = html! {
        p { "Jede Änderung eines Kontos ist ein Ereignis; der Verlauf zeigt sie alle." }
        (crate::http::staff::accounts::accounts_table(tenant, &accounts, "/pruefung/konten/"))
        p class="notice" { "Jedes Öffnen eines Kontoverlaufs wird selbst protokolliert." }
    };
    Ok(staff_page(&staff, "Konten prüfen", &[], body))
}

/// One account's history for the auditor: every change, who made it and when.
pub(crate) async fn audit_account(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(login): Path<String>,
) -> Page {
    let staff = require(&headers, &state, &[StaffRole::Auditor]).await?;
    let tenant = staff.tenant(&state).map_err(|p| refusal(&staff, &p))?;
    let (account, entries) = desk::account_history(&state, &staff, &login)
        .await
        .map_err(|p| refusal(&staff, &p))?;
    let body = html! {
        p {
            "Konto " strong { (account.login) } ": " (account.role_label)
            @if !account.department_names.is_empty() {
                " (" (account.department_names.join(", ")) ")"
            }
            ", " (if account.active { "aktiv" } else { "deaktiviert" })
            @if account.directory { ", Anmeldung über den Verzeichnisdienst" }
            "."
        }
        h2 { "Verlauf" }
        (history_table(tenant, &entries))
        p { a href="/pruefung/konten" { "Alle Konten" } }
    };
    Ok(staff_page(&staff, "Kontoverlauf", &[], body))
}

/// Who caused an event (`role:id` in the log) in German: staff with their account name, which
/// the auditor can look up; citizens and the system without their internal ids.
fn actor(raw: &str) -> String {
    let (role, id) = raw.split_once(':').unwrap_or((raw, ""));
    match StaffRole::parse(role) {
        Some(staff) => format!("{} ({id})", staff.label()),
        None if role == "citizen" => "Bürgerin oder Bürger".to_owned(),
        // The directory signs its accounts in (ADR 0022).
        None if role == "system" && id == "verzeichnis" => "Verzeichnisdienst".to_owned(),
        None if role == "system" => "System".to_owned(),
        None => raw.to_owned(),
    }
}

// --- DPO ---

#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct ReportForm {
    zustand: Option<String>,
    /// The first row of the page shown (a page holds `desk::REPORT_PAGE` rows).
    ab: Option<u32>,
}

pub(crate) async fn dpo_report(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<ReportForm>,
) -> Page {
    let staff = require(&headers, &state, &[StaffRole::Dpo]).await?;
    let tenant = staff.tenant(&state).map_err(|p| refusal(&staff, &p))?;
    let query = ReportQuery {
        state: q.zustand.clone(),
        format: None,
        limit: None,
        offset: q.ab,
    };
    let report = desk::retention_report(&state, &staff, &query)
        .await
        .and_then(|r| r.page(&query))
        .map_err(|p| refusal(&staff, &p))?;
    let chosen = q.zustand.clone().unwrap_or_default();
    let options = options(
        std::iter::once((String::new(), "alle".to_owned())).chain(
            report
                .counts
                .iter()
                .map(|c| (c.state.clone(), c.state.clone())),
        ),
        &chosen,
    );
    let csv = format!("/datenschutz/bericht.csv?zustand={}", urlencode(&chosen));
    let body = html! {
        h2 { "Übersicht" }
        table {
            thead { tr { th scope="col" { "Zustand" } th scope="col" { "Betroffene" } } }
            tbody { @for c in &report.counts { tr { td { (c.state) } td { (c.subjects) } } } }
        }
        form method="get" action="/datenschutz" {
            label for="zustand" { "Zustand" }
            select id="zustand" name="zustand" { (options) }
            p { button type="submit" { "Filtern" } }
        }
        p { a href=(csv) download { "Bericht als CSV exportieren" } }
        h2 { "Betroffene" }
        table {
            thead {
                tr {
                    th scope="col" { "Subjekt" }
                    th scope="col" { "Zustand" }
                    th scope="col" { "Löschung fällig" }
                    th scope="col" { "Gelöscht" }
                    th scope="col" { "Geprüft" }
                }
            }
            tbody {
                @for r in &report.rows {
                    tr {
                        td { a href={ "/datenschutz/subjekt/" (r.subject) } { (r.subject) } }
                        td { (r.state) }
                        td { (format::moment(tenant, &r.due)) }
                        td { (format::moment(tenant, &r.executed_at)) }
                        td { (format::moment(tenant, &r.verified_at)) }
                    }
                }
            }
        }
        @if report.total > 0 {
            p {
                "Einträge " (report.offset + 1) " bis " (report.offset + report.rows.len() as u64)
                " von " (report.total) "; der CSV-Export enthält alle."
            }
        }
        nav aria-label="Seiten des Berichts" {
            @if report.offset > 0 {
                a href={ "/datenschutz?zustand=" (urlencode(&chosen)) "&ab="
                    (report.offset.saturating_sub(u64::from(desk::REPORT_PAGE))) } { "Vorherige Seite" }
                " "
            }
            @if let Some(next) = report.next_offset {
                a href={ "/datenschutz?zustand=" (urlencode(&chosen)) "&ab=" (next) } { "Nächste Seite" }
            }
        }
    };
    Ok(staff_page(&staff, "Löschbericht", &[], body))
}

pub(crate) async fn dpo_csv(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<ReportForm>,
) -> Page {
    let staff = require(&headers, &state, &[StaffRole::Dpo]).await?;
    let query = ReportQuery {
        state: q.zustand,
        format: Some("csv".into()),
        limit: None,
        offset: None,
    };
    let report = desk::retention_report(&state, &staff, &query)
        .await
        .map_err(|p| refusal(&staff, &p))?;
    Ok(super::api::csv_response(
        "loeschbericht.csv",
        crate::app::export::retention_csv(&report.rows),
    ))
}

pub(crate) async fn dpo_subject(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Page {
    let (staff, uuid) = require_with_id(
        &headers,
        &state,
        &[StaffRole::Dpo],
        &id,
        "Diese betroffene Person gibt es hier nicht.",
    )
    .await?;
    let tenant = staff.tenant(&state).map_err(|p| refusal(&staff, &p))?;
    let r = desk::subject_evidence(&state, &staff, uuid)
        .await
        .map_err(|p| refusal(&staff, &p))?;
    let list = |raw: &str| -> Markup {
        let items: Vec<&str> = raw.split("; ").filter(|s| !s.is_empty()).collect();
        html! {
            @if items.is_empty() {
                p { "keine" }
            } @else {
                ul { @for item in &items { li { (item) } } }
            }
        }
    };
    let closed = match r.final_state.as_str() {
        "" => "–".to_owned(),
        state => format!(
            "{}, {}",
            match state {
                "completed" => "abgeschlossen",
                "cancelled" => "abgesagt",
                "no_show" => "nicht erschienen",
                other => other,
            },
            format::moment(tenant, &r.final_at)
        ),
    };
    let body = html! {
        dl {
            dt { "Subjekt" } dd { (r.subject) }
            dt { "Zustand" } dd { (r.state) }
            dt { "Abschluss" } dd { (closed) }
            dt { "Löschung fällig" } dd { (format::moment(tenant, &r.due)) }
            dt { "Zurückgestellt" } dd { (if r.blocked.is_empty() { "nein" } else { &r.blocked }) }
            dt { "Gelöscht" } dd { (format::moment(tenant, &r.executed_at)) }
            dt { "Schlüssel vernichtet" } dd { (or_dash(&r.keys_destroyed)) }
            dt { "Dateien gelöscht" } dd { (or_dash(&r.blobs_deleted)) }
            dt { "Postausgang bereinigt" } dd { (or_dash(&r.outbox_items_scrubbed)) }
            dt { "Geprüft" } dd { (format::moment(tenant, &r.verified_at)) }
        }
        h2 { "Prüfungen" }
        (list(&r.checks))
        h2 { "Gefundene Spuren" }
        (list(&r.failed_places))
    };
    Ok(staff_page(&staff, "Löschnachweis", &[], body))
}

// --- statistics ---

#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct StatisticsForm {
    bereich: Option<String>,
}

pub(crate) async fn statistics(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<StatisticsForm>,
) -> Page {
    let staff = require(
        &headers,
        &state,
        &[
            StaffRole::Clerk,
            StaffRole::Auditor,
            StaffRole::Dpo,
            StaffRole::Admin,
        ],
    )
    .await?;
    let tenant = staff.tenant(&state).map_err(|p| refusal(&staff, &p))?;
    let query = StatisticsQuery {
        department: q.bereich.clone(),
        format: None,
    };
    let rows = desk::statistics(&state, &staff, &query)
        .await
        .map_err(|p| refusal(&staff, &p))?;
    let rows: Vec<desk::StatisticsRow> = rows
        .iter()
        .map(|r| desk::statistics_row(tenant, r))
        .collect();
    let options = department_options(
        tenant,
        |d| staff.role != StaffRole::Clerk || staff.may_work_on(d),
        q.bereich.as_deref().unwrap_or(""),
    );
    let mut departments: Vec<&str> = rows.iter().map(|r| r.department.as_str()).collect();
    departments.dedup();
    let body = html! {
        form method="get" action="/statistik" {
            label for="bereich" { "Bereich" }
            select id="bereich" name="bereich" { (options) }
            p { button type="submit" { "Anzeigen" } }
        }
        @if rows.is_empty() {
            p { "Noch keine abgeschlossenen Termine." }
        }
        @for d in departments {
            @let of: Vec<&desk::StatisticsRow> = rows.iter().filter(|r| r.department == d).collect();
            (department_statistics(&of))
        }
    };
    Ok(staff_page(&staff, "Pilotstatistik", &[], body))
}

/// "2026-W47" as "KW 47/2026".
fn week(iso: &str) -> String {
    match iso.split_once("-W") {
        Some((year, week)) => format!("KW {}/{year}", week.trim_start_matches('0')),
        None => iso.to_owned(),
    }
}

/// One department's charts and the table of their numbers; `of` holds its weeks, at least one.
fn department_statistics(of: &[&desk::StatisticsRow]) -> Markup {
    let name = of.first().map_or("", |r| r.department_name.as_str());
    let weeks: Vec<String> = of.iter().map(|r| week(&r.week)).collect();
    let mut feedback = [0u64; 5];
    for r in of {
        for (i, n) in r.feedback.iter().enumerate().take(5) {
            feedback[i] += n;
        }
    }
    html! {
        section {
            h2 { (name) }
            (charts::bars(
                &format!("Sitzungen und nicht erschienen je Woche, {name}"),
                &weeks,
                &[
                    ("Sitzungen", of.iter().map(|r| r.sessions as f64).collect()),
                    ("nicht erschienen", of.iter().map(|r| r.no_shows as f64).collect()),
                ],
            ))
            (charts::bars(
                &format!("Dauer im Median in Minuten je Woche, {name}"),
                &weeks,
                &[(
                    "Dauer (Median, Min.)",
                    of.iter().map(|r| r.duration_median_minutes.unwrap_or(0.0)).collect(),
                )],
            ))
            (charts::bars(
                &format!("Bewertungen (1 bis 5 Sterne), {name}"),
                &["1", "2", "3", "4", "5"].map(String::from),
                &[("Bewertungen", feedback.iter().map(|n| *n as f64).collect())],
            ))
            table {
                caption { "Zahlen zu den Diagrammen" }
                thead {
                    tr {
                        th scope="col" { "Woche" }
                        th scope="col" { "Sitzungen" }
                        th scope="col" { "davon erledigt" }
                        th scope="col" { "davon technisch abgebrochen" }
                        th scope="col" { "nicht erschienen" }
                        th scope="col" { "Dauer (Median, Min.)" }
                        th scope="col" { "Bewertungen 1/2/3/4/5" }
                    }
                }
                tbody {
                    @for (r, week) in of.iter().zip(&weeks) {
                        tr {
                            td { (week) }
                            td { (r.sessions) }
                            td { (r.completed) }
                            td { (r.aborted) }
                            td { (r.no_shows) }
                            td {
                                @if let Some(v) = r.duration_median_minutes {
                                    (format!("{v:.1}").replace('.', ","))
                                }
                            }
                            td {
                                (r.feedback.iter().map(u64::to_string).collect::<Vec<_>>().join(" / "))
                            }
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_timeline_names_roles_in_german_and_hides_internal_ids() {
        assert_eq!(actor("clerk:a.becker"), "Sachbearbeitung (a.becker)");
        assert_eq!(actor("auditor:pruefer"), "Prüfung (pruefer)");
        assert_eq!(actor("citizen:0190d0d0-0000-7000"), "Bürgerin oder Bürger");
        assert_eq!(actor("system:retention"), "System");
    }

    #[test]
    fn weeks_read_as_calendar_weeks() {
        assert_eq!(week("2026-W07"), "KW 7/2026");
        assert_eq!(week("2026-W47"), "KW 47/2026");
        assert_eq!(week("unbekannt"), "unbekannt");
    }
}
