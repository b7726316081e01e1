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

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use videoamt_core::domain::account::StaffRole;

use super::desk::{self, AuditQuery, ReportQuery, ScheduleQuery, StatisticsQuery};
use super::session::{self as staff, Staff};
use crate::http::AppState;
use crate::http::citizen::booking::{all, pairs};
use crate::http::citizen::pages::slot_choices;
use crate::http::citizen::service::{self as citizen, ContactInput};
use crate::http::error::Error;
use crate::http::html::{esc, euro, local, problem_page, shell};

/// A staff page, or the page that answers instead (the login, a refusal): both are pages.
type Page = Result<Response, Response>;

pub(crate) const LIVE_JS: &str = include_str!("../../../assets/live.js");
pub(crate) const TIME_TRAVEL_JS: &str = include_str!("../../../assets/zeitreise.js");

pub(crate) async fn script(Path(name): Path<String>) -> Response {
    let body = match name.as_str() {
        "live.js" => LIVE_JS,
        "zeitreise.js" => TIME_TRAVEL_JS,
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
fn home(role: StaffRole) -> &'static str {
    match role {
        StaffRole::Clerk => "/sachbearbeitung",
        StaffRole::Auditor => "/pruefung",
        StaffRole::Dpo => "/datenschutz",
        StaffRole::Admin => "/statistik",
    }
}

fn nav(staff: &Staff) -> String {
    let mut links: Vec<(&str, &str)> = match staff.role {
        StaffRole::Clerk => vec![
            ("/sachbearbeitung", "Heute"),
            ("/sachbearbeitung?woche=1", "Woche"),
            ("/sachbearbeitung/einladen", "Einladen"),
        ],
        StaffRole::Auditor => vec![("/pruefung", "Suche")],
        StaffRole::Dpo => vec![("/datenschutz", "Löschbericht")],
        StaffRole::Admin => vec![],
    };
    links.push(("/statistik", "Statistik"));
    let items: String = links
        .iter()
        .map(|(href, label)| format!("<li><a href=\"{href}\">{label}</a></li>"))
        .collect();
    format!(
        "<nav aria-label=\"Hauptnavigation\"><ul>{items}</ul>\
         <form method=\"post\" action=\"/abmelden\"><span>{login} ({role})</span> \
         <button type=\"submit\" class=\"secondary\">Abmelden</button></form></nav>",
        login = esc(staff.login.as_str()),
        role = staff.role.label(),
    )
}

fn staff_page(staff: &Staff, title: &str, scripts: &[&str], body: &str) -> Response {
    // Hand-built until the staff pages' port (next commit).
    shell(
        StatusCode::OK,
        title,
        Some(maud::PreEscaped(nav(staff))),
        scripts,
        maud::PreEscaped(body.to_owned()),
    )
}

/// The staff member of this request with one of `roles`: otherwise the login page (no
/// session) or a refusal page (wrong role).
fn require(headers: &HeaderMap, state: &AppState, roles: &[StaffRole]) -> Result<Staff, Response> {
    let staff =
        staff::staff_of(headers, state).ok_or_else(|| Redirect::to("/anmelden").into_response())?;
    staff.require_any(roles).map_err(|p| refusal(&staff, &p))?;
    Ok(staff)
}

/// The staff member (with one of `roles`) and the id in the path, or the page to answer with.
fn require_with_id(
    headers: &HeaderMap,
    state: &AppState,
    roles: &[StaffRole],
    raw: &str,
    unknown: &str,
) -> Result<(Staff, uuid::Uuid), Response> {
    let staff = require(headers, state, roles)?;
    match uuid::Uuid::parse_str(raw) {
        Ok(id) => Ok((staff, id)),
        Err(_) => Err(refusal(&staff, &Error::not_found(unknown.to_owned()))),
    }
}

/// A message in an alert box; `html` is already escaped.
fn alert(html: &str) -> String {
    format!("<div class=\"error\" role=\"alert\">{html}</div>")
}

/// `<option>`s for (value, label) pairs, the one equal to `chosen` selected.
fn options(choices: impl IntoIterator<Item = (String, String)>, chosen: &str) -> String {
    choices
        .into_iter()
        .map(|(value, label)| {
            let selected = if value == chosen { " selected" } else { "" };
            format!(
                "<option value=\"{}\"{selected}>{}</option>",
                esc(&value),
                esc(&label)
            )
        })
        .collect()
}

/// "All departments" and the departments of the municipality that `keep` lets through.
fn department_options(
    tenant: &videoamt_core::tenant::Tenant,
    keep: impl Fn(&videoamt_core::tenant::DepartmentId) -> bool,
    chosen: &str,
) -> String {
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

fn refusal(staff: &Staff, error: &Error) -> Response {
    let problem = error.problem();
    let mut response = staff_page(
        staff,
        problem.title,
        &[],
        &alert(&format!(
            "<p>{}</p>{}",
            esc(problem.detail.as_deref().unwrap_or(problem.title)),
            problem
                .errors
                .iter()
                .map(|e| format!("<p>{}</p>", esc(&e.message)))
                .collect::<String>()
        )),
    );
    *response.status_mut() =
        StatusCode::from_u16(problem.status).unwrap_or(StatusCode::BAD_REQUEST);
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
    let error = message.map_or_else(String::new, |m| alert(&format!("<p>{}</p>", esc(m))));
    let body = format!(
        "{error}<form method=\"post\" action=\"/anmelden\">\
         <label for=\"tenant\">Kommune</label><select id=\"tenant\" name=\"tenant\">{options}</select>\
         <label for=\"login\">Anmeldename</label>\
         <input type=\"text\" id=\"login\" name=\"login\" value=\"{login}\" autocomplete=\"username\" required>\
         <label for=\"password\">Passwort</label>\
         <input type=\"password\" id=\"password\" name=\"password\" autocomplete=\"current-password\" required>\
         <p><button type=\"submit\">Anmelden</button></p></form>\
         <p>Für Mitarbeitende der Kommune. Bürgerinnen und Bürger öffnen ihren Termin über den \
         Link in der Terminbestätigung.</p>",
        login = esc(login),
    );
    shell(
        status,
        "Anmeldung für Mitarbeitende",
        None,
        &[],
        maud::PreEscaped(body),
    )
}

pub(crate) async fn login_page(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(staff) = staff::staff_of(&headers, &state) {
        return Redirect::to(home(staff.role)).into_response();
    }
    login_form(&state, StatusCode::OK, None, "", "")
}

pub(crate) async fn login(State(state): State<AppState>, Form(form): Form<LoginForm>) -> Response {
    match staff::log_in(&state, &form.tenant, &form.login, &form.password).await {
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

pub(crate) async fn logout(State(state): State<AppState>, headers: HeaderMap) -> Response {
    staff::log_out(&headers, &state);
    (
        [(header::SET_COOKIE, staff::cleared_cookie())],
        Redirect::to("/anmelden"),
    )
        .into_response()
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

/// An RFC 3339 instant as the municipality's local date and time, "–" when there is none.
fn when(tenant: &videoamt_core::tenant::Tenant, rfc: &str) -> String {
    if rfc.is_empty() {
        return "–".to_owned();
    }
    local(&desk::local_time(tenant, rfc))
}

/// "2026-11-30" -> "Montag, 30.11.2026".
fn day_heading(date: &str) -> String {
    let Some(d) = citizen::parse_date(date) else {
        return date.to_owned();
    };
    let weekday = match d.weekday() {
        time::Weekday::Monday => "Montag",
        time::Weekday::Tuesday => "Dienstag",
        time::Weekday::Wednesday => "Mittwoch",
        time::Weekday::Thursday => "Donnerstag",
        time::Weekday::Friday => "Freitag",
        time::Weekday::Saturday => "Samstag",
        time::Weekday::Sunday => "Sonntag",
    };
    format!(
        "{weekday}, {:02}.{:02}.{}",
        d.day(),
        u8::from(d.month()),
        d.year()
    )
}

fn time_of(rfc: &str) -> &str {
    rfc.get(11..16).unwrap_or("")
}

fn plan_html(view: &desk::ScheduleView) -> String {
    let mut out = String::new();
    for day in &view.days {
        out.push_str(&format!("<h3>{}</h3>", esc(&day_heading(&day.date))));
        if day.appointments.is_empty() {
            out.push_str("<p>Keine Termine.</p>");
            continue;
        }
        out.push_str(
            "<table><thead><tr><th scope=\"col\">Zeit</th><th scope=\"col\">Bereich</th>\
             <th scope=\"col\">Anliegen</th><th scope=\"col\">Weg</th><th scope=\"col\">Status</th>\
             </tr></thead><tbody>",
        );
        for e in &day.appointments {
            out.push_str(&format!(
                "<tr><td><a href=\"/sachbearbeitung/termin/{id}\">{from}–{to}</a></td><td>{dept}</td>\
                 <td>{services}</td><td>{channel}</td><td>{status}</td></tr>",
                id = e.appointment,
                from = esc(time_of(&e.start)),
                to = esc(time_of(&e.end)),
                dept = esc(&e.department_name),
                services = esc(&e.services.join("; ")),
                channel = match e.channel {
                    videoamt_core::tenant::BookingChannel::Online => "online gebucht",
                    videoamt_core::tenant::BookingChannel::ClerkInvitation => "Einladung",
                },
                status = esc(&e.status_label),
            ));
        }
        out.push_str("</tbody></table>");
    }
    out
}

fn waiting_html(waiting: &[desk::WaitingView]) -> String {
    if waiting.is_empty() {
        return "<p>Niemand wartet.</p>".into();
    }
    let items: String = waiting
        .iter()
        .map(|w| {
            format!(
                "<li><a href=\"/sachbearbeitung/termin/{id}\">Termin im Bereich {dept}</a>, \
                 wartet seit {since} Uhr{privacy}{lost}</li>",
                id = esc(&w.appointment),
                dept = esc(&w.department_name),
                since = esc(time_of(&w.waiting_since)),
                privacy = if w.privacy_notice_accepted {
                    ", Datenschutzhinweis bestätigt"
                } else {
                    ", Datenschutzhinweis noch offen"
                },
                lost = if w.connection_lost {
                    ", Verbindung unterbrochen"
                } else {
                    ""
                },
            )
        })
        .collect();
    format!("<ul>{items}</ul>")
}

async fn fragments(
    state: &AppState,
    staff: &Staff,
    q: &DayQuery,
) -> Result<(String, String), Error> {
    let plan = desk::schedule(state, staff, &schedule_query(q)).await?;
    let waiting = desk::waiting_room(state, staff).await?;
    Ok((plan_html(&plan), waiting_html(&waiting)))
}

pub(crate) async fn clerk_day(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<DayQuery>,
) -> Page {
    let staff = require(&headers, &state, &[StaffRole::Clerk])?;
    let (plan, waiting) = fragments(&state, &staff, &q)
        .await
        .map_err(|p| refusal(&staff, &p))?;
    let (title, query) = if q.woche.is_some() {
        ("Terminplan der Woche", "?woche=1")
    } else {
        ("Terminplan heute", "")
    };
    let body = format!(
        "<section aria-labelledby=\"wr\"><h2 id=\"wr\">Warteraum</h2>\
         <div id=\"warteraum\" aria-live=\"polite\">{waiting}</div></section>\
         <section aria-labelledby=\"tp\" data-live=\"/sachbearbeitung/live{query}\">\
         <h2 id=\"tp\">{title}</h2><div id=\"plan\" aria-live=\"polite\">{plan}</div></section>"
    );
    Ok(staff_page(&staff, "Sachbearbeitung", &["live.js"], &body))
}

/// Server-Sent Events for the clerk's page: the waiting room and the plan, each sent again
/// whenever it changed, until the session ends or the page closes. The shared live feed says
/// when the read models moved; without news the session is still checked every few seconds.
pub(crate) async fn clerk_live(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<DayQuery>,
) -> Response {
    let staff = match staff::staff_of(&headers, &state) {
        Some(s) if s.role == StaffRole::Clerk => s,
        Some(_) => return Error::Forbidden.into_response(),
        None => return Error::LoginRequired.into_response(),
    };
    let cookie = staff::cookie_of(&headers).unwrap_or_default().to_owned();
    let moved = state.live.subscribe(&state.store);
    let stream = futures::stream::unfold(
        (state, staff, q, cookie, moved, None::<(String, String)>),
        |(state, staff, q, cookie, mut moved, last)| async move {
            let mut first = last.is_none();
            loop {
                if !first {
                    // A closed feed cannot happen while we hold a receiver; a timeout is the
                    // regular check of the session.
                    let _ = tokio::time::timeout(Duration::from_secs(5), moved.changed()).await;
                }
                first = false;
                // A session that ended (logout, expiry) ends the stream.
                staff::session(&state, &cookie)?;
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
                return Some((batch, (state, staff, q, cookie, moved, Some(now))));
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
    )?;
    let d = desk::detail(&state, &staff, id)
        .await
        .map_err(|p| refusal(&staff, &p))?;
    let mut body = String::new();
    if q.abgesagt.is_some() {
        body.push_str("<div class=\"notice\" role=\"status\"><p>Der Termin ist abgesagt; die Bürgerin oder der Bürger erhält eine E-Mail.</p></div>");
    }
    if q.eingeladen.is_some() {
        body.push_str("<div class=\"notice\" role=\"status\"><p>Die Einladung ist gebucht; die Bürgerin oder der Bürger erhält die Terminbestätigung per E-Mail.</p></div>");
    }
    let docs: String = d
        .documents_to_bring
        .iter()
        .map(|doc| format!("<li>{}</li>", esc(doc)))
        .collect();
    body.push_str(&format!(
        "<dl><dt>Name</dt><dd>{name}</dd><dt>Beginn</dt><dd>{start}</dd><dt>Ende</dt><dd>{end}</dd>\
         <dt>Bereich</dt><dd>{dept}</dd><dt>Anliegen</dt><dd>{services}</dd>\
         <dt>Gebühren</dt><dd>{fees}</dd><dt>Status</dt><dd>{status}{confirmed}</dd>\
         <dt>Datenschutzhinweis</dt><dd>{privacy}</dd><dt>Identität</dt><dd>{identity}</dd></dl>\
         <h2>Mitzubringen</h2><ul>{docs}</ul>",
        name = esc(&d.contact_name),
        start = esc(&local(&d.start)),
        end = esc(&local(&d.end)),
        dept = esc(&d.department_name),
        services = esc(&d.services.join("; ")),
        fees = euro(d.fee_total_cents),
        status = esc(&d.status_label),
        confirmed = if d.confirmed { ", bestätigt" } else { "" },
        privacy = if d.privacy_notice_accepted {
            "bestätigt"
        } else {
            "offen"
        },
        identity = esc(d.identity.as_deref().unwrap_or("nicht geprüft")),
    ));
    if d.status_label == "gebucht" {
        body.push_str(&format!(
            "<h2>Termin absagen</h2><form method=\"post\" action=\"/sachbearbeitung/termin/{id}/absagen\">\
             <label for=\"grund\">Grund der Absage (Pflichtfeld, wird der Bürgerin oder dem Bürger nicht angezeigt)</label>\
             <textarea id=\"grund\" name=\"reason\" rows=\"3\" maxlength=\"500\" required></textarea>\
             <p><button type=\"submit\">Termin absagen</button></p></form>"
        ));
    }
    Ok(staff_page(&staff, "Termin", &[], &body))
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
    )?;
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
    let mut body = String::new();
    if let Some(m) = message {
        body.push_str(&alert(&format!("<p>{}</p>", esc(m))));
    }
    let mut boxes = String::new();
    for (i, s) in tenant
        .services
        .values()
        .filter(|s| staff.may_work_on(&s.department) && s.online)
        .enumerate()
    {
        let checked = if chosen.iter().any(|c| c == s.id.as_str()) {
            " checked"
        } else {
            ""
        };
        boxes.push_str(&format!(
            "<label for=\"a{i}\"><input type=\"checkbox\" id=\"a{i}\" name=\"services\" value=\"{id}\"{checked}> {name} ({dur} Min., {fee})</label>",
            id = esc(s.id.as_str()),
            name = esc(&s.name),
            dur = s.duration_minutes,
            fee = euro(s.fee.0),
        ));
    }
    let from = value(form, "von");
    let from = if citizen::parse_date(&from).is_some() {
        from
    } else {
        desk::today(state, tenant).to_string()
    };
    body.push_str(&format!(
        "<form method=\"get\" action=\"/sachbearbeitung/einladen\"><fieldset><legend>Anliegen</legend>{boxes}</fieldset>\
         <label for=\"von\">Ab Datum</label><input type=\"date\" id=\"von\" name=\"von\" value=\"{from}\">\
         <p><button type=\"submit\" class=\"secondary\">Freie Zeiten anzeigen</button></p></form>"
    ));
    if !chosen.is_empty() {
        let query = citizen::SlotQuery {
            tenant: tenant.id.to_string(),
            services: chosen.join(","),
            from: from.clone(),
            days: Some(7),
        };
        match citizen::free_slots(state, &query).await {
            Ok(slots) => {
                let choices = slot_choices(tenant, &slots).0.into_string();
                let hidden: String = chosen
                    .iter()
                    .map(|s| {
                        format!(
                            "<input type=\"hidden\" name=\"services\" value=\"{}\">",
                            esc(s)
                        )
                    })
                    .collect();
                body.push_str(&format!(
                    "<form method=\"post\" action=\"/sachbearbeitung/einladen\">{hidden}\
                     <h2>Zeitpunkt</h2>{choices}<h2>Kontakt der Bürgerin oder des Bürgers</h2>{fields}\
                     <p><button type=\"submit\">Einladung buchen und E-Mail senden</button></p></form>",
                    fields = crate::http::citizen::booking::contact_fields(
                        &ContactInput {
                            name: value(form, "name"),
                            email: value(form, "email"),
                            phone: Some(value(form, "phone")),
                        },
                        errors
                    )
                    .into_string(),
                ));
            }
            Err(e) => {
                let p = e.problem();
                body.push_str(&alert(&format!(
                    "<p>{}</p>",
                    esc(p.detail.as_deref().unwrap_or(p.title))
                )));
            }
        }
    }
    let mut response = staff_page(staff, "Bürgerin oder Bürger einladen", &[], &body);
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
    let staff = require(&headers, &state, &[StaffRole::Clerk])?;
    Ok(invitation_form(&state, &staff, &pairs(uri.query()), &[], None).await)
}

pub(crate) async fn invite(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: String,
) -> Page {
    let staff = require(&headers, &state, &[StaffRole::Clerk])?;
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

fn entries_table(hits: &[desk::EntryView], link: &str) -> String {
    if hits.is_empty() {
        return "<p>Keine Termine gefunden.</p>".into();
    }
    let rows: String = hits
        .iter()
        .map(|e| {
            format!(
                "<tr><td><a href=\"{link}/{id}\">{start}</a></td><td>{dept}</td><td>{services}</td><td>{status}</td></tr>",
                id = e.appointment,
                start = esc(&local(&e.start)),
                dept = esc(&e.department_name),
                services = esc(&e.services.join("; ")),
                status = esc(&e.status_label),
            )
        })
        .collect();
    format!(
        "<table><thead><tr><th scope=\"col\">Beginn</th><th scope=\"col\">Bereich</th>\
         <th scope=\"col\">Anliegen</th><th scope=\"col\">Status</th></tr></thead><tbody>{rows}</tbody></table>"
    )
}

pub(crate) async fn audit_search(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<SearchForm>,
) -> Page {
    let staff = require(&headers, &state, &[StaffRole::Auditor])?;
    let tenant = staff.tenant(&state).map_err(|p| refusal(&staff, &p))?;
    let query = AuditQuery {
        appointment: q.termin.clone(),
        date: q.datum.clone(),
        department: q.bereich.clone(),
    };
    let results = match desk::audit_search(&state, &staff, &query).await {
        Ok(hits) => entries_table(&hits, "/pruefung/termin"),
        Err(e) => {
            let p = e.problem();
            alert(&format!(
                "<p>{}</p>",
                esc(&p
                    .errors
                    .first()
                    .map_or_else(|| p.title.to_owned(), |e| e.message.clone()))
            ))
        }
    };
    let options = department_options(tenant, |_| true, q.bereich.as_deref().unwrap_or(""));
    let date = q
        .datum
        .clone()
        .filter(|d| citizen::parse_date(d).is_some())
        .unwrap_or_else(|| desk::today(&state, tenant).to_string());
    let body = format!(
        "<form method=\"get\" action=\"/pruefung\">\
         <label for=\"termin\">Termin-ID</label><input type=\"text\" id=\"termin\" name=\"termin\" value=\"{termin}\">\
         <label for=\"datum\">Datum</label><input type=\"date\" id=\"datum\" name=\"datum\" value=\"{date}\">\
         <label for=\"bereich\">Bereich</label><select id=\"bereich\" name=\"bereich\">{options}</select>\
         <p><button type=\"submit\">Suchen</button></p></form><h2>Treffer</h2>{results}\
         <p class=\"notice\">Jedes Öffnen einer Prüfakte wird selbst protokolliert.</p>",
        termin = esc(q.termin.as_deref().unwrap_or("")),
    );
    Ok(staff_page(&staff, "Prüfung", &[], &body))
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
    )?;
    let view = desk::audit_view(&state, &staff, uuid, q.stand)
        .await
        .map_err(|p| refusal(&staff, &p))?;
    let first = view.positions.first().copied().unwrap_or(1);
    let last = view.positions.last().copied().unwrap_or(view.head);
    let marks: String = view
        .positions
        .iter()
        .map(|p| format!("<option value=\"{p}\"></option>"))
        .collect();
    let rows: String = view
        .entries
        .iter()
        .map(|e| {
            format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                e.position,
                esc(&local(&e.recorded_at)),
                esc(&e.actor),
                esc(&e.event_type),
                esc(&e.summary)
            )
        })
        .collect();
    let state_lines: String = view
        .state
        .iter()
        .map(|l| format!("<li>{}</li>", esc(l)))
        .collect();
    let body = format!(
        "<p>Termin {id}: Stand Position {as_of} von {head}.</p>\
         <form method=\"get\" action=\"/pruefung/termin/{id}\" class=\"timetravel\">\
         <label for=\"stand\">Zeitreise: Stand bei Position</label>\
         <input type=\"range\" id=\"stand\" name=\"stand\" min=\"{first}\" max=\"{last}\" value=\"{shown}\" list=\"marken\" \
         aria-valuetext=\"Position {shown}\">\
         <datalist id=\"marken\">{marks}</datalist><output for=\"stand\" id=\"stand-wert\">{shown}</output>\
         <p><button type=\"submit\">Stand anzeigen</button> <a href=\"/pruefung/termin/{id}\">Aktueller Stand</a></p></form>\
         <h2>Zustand</h2><ul>{state_lines}</ul>\
         <h2>Verlauf</h2><table><thead><tr><th scope=\"col\">Position</th><th scope=\"col\">Zeit</th>\
         <th scope=\"col\">Wer</th><th scope=\"col\">Ereignis</th><th scope=\"col\">Beschreibung</th></tr></thead>\
         <tbody>{rows}</tbody></table>",
        id = uuid,
        as_of = view.as_of,
        head = view.head,
        shown = view.as_of.min(last),
    );
    Ok(staff_page(&staff, "Prüfakte", &["zeitreise.js"], &body))
}

// --- DPO ---

#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct ReportForm {
    zustand: Option<String>,
}

pub(crate) async fn dpo_report(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<ReportForm>,
) -> Page {
    let staff = require(&headers, &state, &[StaffRole::Dpo])?;
    let tenant = staff.tenant(&state).map_err(|p| refusal(&staff, &p))?;
    let query = ReportQuery {
        state: q.zustand.clone(),
        format: None,
    };
    let report = desk::retention_report(&state, &staff, &query)
        .await
        .map_err(|p| refusal(&staff, &p))?;
    let chosen = q.zustand.clone().unwrap_or_default();
    let counts: String = report
        .counts
        .iter()
        .map(|c| format!("<tr><td>{}</td><td>{}</td></tr>", esc(&c.state), c.subjects))
        .collect();
    let options = options(
        std::iter::once((String::new(), "alle".to_owned())).chain(
            report
                .counts
                .iter()
                .map(|c| (c.state.clone(), c.state.clone())),
        ),
        &chosen,
    );
    let rows: String = report
        .rows
        .iter()
        .take(500)
        .map(|r| {
            format!(
                "<tr><td><a href=\"/datenschutz/subjekt/{s}\">{short}</a></td><td>{state}</td><td>{due}</td><td>{executed}</td><td>{verified}</td></tr>",
                s = esc(&r.subject),
                short = esc(&r.subject),
                state = esc(r.state),
                due = esc(&when(tenant, &r.due)),
                executed = esc(&when(tenant, &r.executed_at)),
                verified = esc(&when(tenant, &r.verified_at)),
            )
        })
        .collect();
    let more = if report.rows.len() > 500 {
        format!(
            "<p>Die ersten 500 von {} Einträgen; der CSV-Export enthält alle.</p>",
            report.rows.len()
        )
    } else {
        String::new()
    };
    let csv = format!("/datenschutz/bericht.csv?zustand={}", esc(&chosen));
    let body = format!(
        "<h2>Übersicht</h2><table><thead><tr><th scope=\"col\">Zustand</th><th scope=\"col\">Betroffene</th></tr></thead><tbody>{counts}</tbody></table>\
         <form method=\"get\" action=\"/datenschutz\"><label for=\"zustand\">Zustand</label>\
         <select id=\"zustand\" name=\"zustand\">{options}</select><p><button type=\"submit\">Filtern</button></p></form>\
         <p><a href=\"{csv}\" download>Bericht als CSV exportieren</a></p>\
         <h2>Betroffene</h2><table><thead><tr><th scope=\"col\">Subjekt</th><th scope=\"col\">Zustand</th>\
         <th scope=\"col\">Löschung fällig</th><th scope=\"col\">Gelöscht</th><th scope=\"col\">Geprüft</th></tr></thead>\
         <tbody>{rows}</tbody></table>{more}"
    );
    Ok(staff_page(&staff, "Löschbericht", &[], &body))
}

pub(crate) async fn dpo_csv(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<ReportForm>,
) -> Page {
    let staff = require(&headers, &state, &[StaffRole::Dpo])?;
    let query = ReportQuery {
        state: q.zustand,
        format: Some("csv".into()),
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
    )?;
    let tenant = staff.tenant(&state).map_err(|p| refusal(&staff, &p))?;
    let r = desk::subject_evidence(&state, &staff, uuid)
        .await
        .map_err(|p| refusal(&staff, &p))?;
    let list = |raw: &str| -> String {
        let items: String = raw
            .split("; ")
            .filter(|s| !s.is_empty())
            .map(|s| format!("<li>{}</li>", esc(s)))
            .collect();
        if items.is_empty() {
            "<p>keine</p>".into()
        } else {
            format!("<ul>{items}</ul>")
        }
    };
    let body = format!(
        "<dl><dt>Subjekt</dt><dd>{subject}</dd><dt>Zustand</dt><dd>{state}</dd>\
         <dt>Abschluss</dt><dd>{closed}</dd><dt>Löschung fällig</dt><dd>{due}</dd>\
         <dt>Zurückgestellt</dt><dd>{blocked}</dd><dt>Gelöscht</dt><dd>{executed}</dd>\
         <dt>Schlüssel vernichtet</dt><dd>{keys}</dd><dt>Dateien gelöscht</dt><dd>{blobs}</dd>\
         <dt>Postausgang bereinigt</dt><dd>{outbox}</dd><dt>Geprüft</dt><dd>{verified}</dd></dl>\
         <h2>Prüfungen</h2>{checks}<h2>Gefundene Spuren</h2>{places}",
        subject = esc(&r.subject),
        state = esc(r.state),
        closed = match r.final_state.as_str() {
            "" => "–".to_owned(),
            state => format!(
                "{}, {}",
                match state {
                    "completed" => "abgeschlossen",
                    "cancelled" => "abgesagt",
                    "no_show" => "nicht erschienen",
                    other => other,
                },
                esc(&when(tenant, &r.final_at))
            ),
        },
        due = esc(&when(tenant, &r.due)),
        blocked = esc(if r.blocked.is_empty() {
            "nein"
        } else {
            &r.blocked
        }),
        executed = esc(&when(tenant, &r.executed_at)),
        keys = esc(or_dash(&r.keys_destroyed)),
        blobs = esc(or_dash(&r.blobs_deleted)),
        outbox = esc(or_dash(&r.outbox_items_scrubbed)),
        verified = esc(&when(tenant, &r.verified_at)),
        checks = list(&r.checks),
        places = list(&r.failed_places),
    );
    Ok(staff_page(&staff, "Löschnachweis", &[], &body))
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
    )?;
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
    let mut body = String::new();
    let options = department_options(
        tenant,
        |d| staff.role != StaffRole::Clerk || staff.may_work_on(d),
        q.bereich.as_deref().unwrap_or(""),
    );
    body.push_str(&format!(
        "<form method=\"get\" action=\"/statistik\"><label for=\"bereich\">Bereich</label>\
         <select id=\"bereich\" name=\"bereich\">{options}</select><p><button type=\"submit\">Anzeigen</button></p></form>"
    ));
    if rows.is_empty() {
        body.push_str("<p>Noch keine abgeschlossenen Termine.</p>");
    }
    let mut departments: Vec<&str> = rows.iter().map(|r| r.department.as_str()).collect();
    departments.dedup();
    for d in departments {
        let of: Vec<&desk::StatisticsRow> = rows.iter().filter(|r| r.department == d).collect();
        let name = &of[0].department_name;
        body.push_str(&format!("<section><h2>{}</h2>", esc(name)));
        body.push_str(
            &crate::http::html::charts::bars(
                &format!("Sitzungen und nicht erschienen je Woche, {name}"),
                &of.iter().map(|r| r.week.clone()).collect::<Vec<_>>(),
                &[
                    ("Sitzungen", of.iter().map(|r| r.sessions as f64).collect()),
                    (
                        "nicht erschienen",
                        of.iter().map(|r| r.no_shows as f64).collect(),
                    ),
                ],
            )
            .into_string(),
        );
        body.push_str(
            &crate::http::html::charts::bars(
                &format!("Dauer im Median in Minuten je Woche, {name}"),
                &of.iter().map(|r| r.week.clone()).collect::<Vec<_>>(),
                &[(
                    "Dauer (Median, Min.)",
                    of.iter()
                        .map(|r| r.duration_median_minutes.unwrap_or(0.0))
                        .collect(),
                )],
            )
            .into_string(),
        );
        let mut feedback = [0u64; 5];
        for r in &of {
            for (i, n) in r.feedback.iter().enumerate().take(5) {
                feedback[i] += n;
            }
        }
        body.push_str(
            &crate::http::html::charts::bars(
                &format!("Bewertungen (1 bis 5 Sterne), {name}"),
                &["1", "2", "3", "4", "5"].map(String::from),
                &[("Bewertungen", feedback.iter().map(|n| *n as f64).collect())],
            )
            .into_string(),
        );
        let table: String = of
            .iter()
            .map(|r| {
                format!(
                    "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    esc(&r.week),
                    r.sessions,
                    r.no_shows,
                    r.duration_median_minutes
                        .map_or_else(String::new, |v| format!("{v:.1}")),
                    r.feedback
                        .iter()
                        .map(u64::to_string)
                        .collect::<Vec<_>>()
                        .join(" / "),
                )
            })
            .collect();
        body.push_str(&format!(
            "<table><caption>Zahlen zu den Diagrammen</caption><thead><tr><th scope=\"col\">Woche</th>\
             <th scope=\"col\">Sitzungen</th><th scope=\"col\">nicht erschienen</th>\
             <th scope=\"col\">Dauer (Median, Min.)</th><th scope=\"col\">Bewertungen 1/2/3/4/5</th></tr></thead>\
             <tbody>{table}</tbody></table></section>"
        ));
    }
    Ok(staff_page(&staff, "Pilotstatistik", &[], &body))
}
