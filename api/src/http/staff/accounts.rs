//! German pages of staff accounts: everybody's own password change (`/konto/passwort`), the
//! page a one-time link opens to set a password (`/konto/passwort/{token}`), and the admin's
//! accounts of the municipality (`/verwaltung/konten`). Who may do what is decided in `desk`.

// A refusal is the page to answer with, as in `pages`.
#![allow(clippy::result_large_err)]

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;
use videoamt_core::domain::account::StaffRole;
use videoamt_core::tenant::Tenant;

use super::desk::{
    self, AccountChange, AccountView, NewAccountRequest, PasswordChangeRequest, PasswordLinkView,
    RoleRequest,
};
use super::pages::{Page, options, refusal, require, staff_page};
use super::session::{self as staff, Staff};
use crate::http::AppState;
use crate::http::citizen::booking::{all, pairs};
use crate::http::error::{Error, FieldError};
use crate::http::extract::PageQuery as Query;
use crate::http::html::{alert, format, page, problem_alert, problem_page};

/// The first non-empty value of `key` in a form.
fn value(form: &[(String, String)], key: &str) -> String {
    all(form, key)
        .into_iter()
        .find(|v| !v.is_empty())
        .unwrap_or_default()
}

const EVERYBODY: [StaffRole; 4] = [
    StaffRole::Clerk,
    StaffRole::Auditor,
    StaffRole::Dpo,
    StaffRole::Admin,
];

/// The message for `field`, if it has one.
fn message<'a>(errors: &'a [FieldError], field: &str) -> Option<&'a str> {
    errors
        .iter()
        .find(|e| e.field == field)
        .map(|e| e.message.as_str())
}

/// A password input with its label, its message tied to it and, for a new password, the
/// rules.
fn password_input(
    id: &str,
    label: &str,
    autocomplete: &str,
    rules: bool,
    errors: &[FieldError],
) -> Markup {
    let error = message(errors, id);
    let described: Vec<String> = [
        error.map(|_| format!("e-{id}")),
        rules.then(|| format!("r-{id}")),
    ]
    .into_iter()
    .flatten()
    .collect();
    let described = (!described.is_empty()).then(|| described.join(" "));
    html! {
        label for=(id) { (label) }
        @if rules { p id={ "r-" (id) } { (desk::password_rules()) } }
        @if let Some(m) = error { p class="error" id={ "e-" (id) } { (m) } }
        input type="password" id=(id) name=(id) autocomplete=(autocomplete) required
            minlength=[rules.then_some(videoamt_adapters::passwords::MIN_LENGTH)]
            maxlength=(if rules { 256 } else { 1024 })
            aria-invalid=[error.map(|_| "true")] aria-describedby=[described];
    }
}

/// The new password twice, with the rules.
pub(crate) fn new_password_inputs(errors: &[FieldError]) -> Markup {
    html! {
        (password_input("new_password", "Neues Passwort", "new-password", true, errors))
        (password_input("new_password_repeat", "Neues Passwort wiederholen", "new-password",
            false, errors))
    }
}

/// The two new passwords must be the same; the first error if not.
pub(crate) fn repeated(form: &[(String, String)]) -> Result<String, Error> {
    let new = value(form, "new_password");
    if new != value(form, "new_password_repeat") {
        return Err(Error::invalid_fields(vec![FieldError {
            field: "new_password_repeat".to_owned(),
            message: "Die beiden neuen Passwörter stimmen nicht überein.".to_owned(),
        }]));
    }
    Ok(new)
}

/// Field messages of `error`, or the error itself when it is no field's.
fn field_errors(error: Error) -> Result<Vec<FieldError>, Error> {
    match error {
        Error::InvalidFields(errors) => Ok(errors),
        other => Err(other),
    }
}

// --- one's own password ---

fn password_page(staff: &Staff, errors: &[FieldError], done: bool) -> Response {
    let body = html! {
        @if done {
            div class="notice" role="status" {
                p { "Ihr Passwort ist geändert. Ihre anderen Sitzungen sind beendet." }
            }
        }
        @if !errors.is_empty() {
            (alert(["Bitte prüfen Sie die markierten Angaben."]))
        }
        form method="post" action="/konto/passwort" {
            (password_input("old_password", "Bisheriges Passwort", "current-password", false,
                errors))
            (new_password_inputs(errors))
            p { button type="submit" { "Passwort ändern" } }
        }
    };
    let mut response = staff_page(staff, "Passwort ändern", &[], body);
    if !errors.is_empty() {
        *response.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
    }
    response
}

pub(crate) async fn password_form(State(state): State<AppState>, headers: HeaderMap) -> Page {
    let staff = require(&headers, &state, &EVERYBODY).await?;
    if staff.directory {
        // Its password is the directory's: the page says where it is changed.
        return Err(refusal(
            &staff,
            &Error::Refused(videoamt_core::domain::DomainError::DirectoryAccount),
        ));
    }
    Ok(password_page(&staff, &[], false))
}

pub(crate) async fn change_password(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: String,
) -> Page {
    let staff = require(&headers, &state, &EVERYBODY).await?;
    let form = pairs(Some(&body));
    let changed = match repeated(&form) {
        Ok(new_password) => {
            let request = PasswordChangeRequest {
                old_password: value(&form, "old_password"),
                new_password,
            };
            let cookie = staff::cookie_of(&state, &headers).unwrap_or_default();
            desk::change_password(&state, &staff, cookie, &request).await
        }
        Err(e) => Err(e),
    };
    match changed {
        Ok(()) => Ok(password_page(&staff, &[], true)),
        Err(e) => match field_errors(e) {
            Ok(errors) => Ok(password_page(&staff, &errors, false)),
            Err(e) => Err(refusal(&staff, &e)),
        },
    }
}

// --- the one-time link ---

fn link_page(token: &str, errors: &[FieldError]) -> Response {
    let body = html! {
        @if !errors.is_empty() {
            (alert(["Bitte prüfen Sie die markierten Angaben."]))
        }
        p {
            "Legen Sie hier das Passwort Ihres Kontos fest. Der Link gilt nur einmal; danach \
             melden Sie sich mit dem neuen Passwort an."
        }
        form method="post" action={ "/konto/passwort/" (token) } {
            (new_password_inputs(errors))
            p { button type="submit" { "Passwort festlegen" } }
        }
    };
    let status = if errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    page(status, "Passwort festlegen", body)
}

pub(crate) async fn link_form(
    State(state): State<AppState>,
    Path(token): Path<String>,
) -> Response {
    match desk::password_link(&state, &token).await {
        Ok(_) => link_page(&token, &[]),
        Err(e) => problem_page(&e),
    }
}

pub(crate) async fn set_password(
    State(state): State<AppState>,
    Path(token): Path<String>,
    body: String,
) -> Response {
    let form = pairs(Some(&body));
    let set = match repeated(&form) {
        Ok(password) => desk::set_password(&state, &token, &password).await,
        Err(e) => Err(e),
    };
    match set {
        Ok(()) => page(
            StatusCode::OK,
            "Passwort festgelegt",
            html! {
                div class="notice" role="status" {
                    p { "Ihr Passwort ist festgelegt. Sie können sich jetzt anmelden." }
                }
                p { a href="/anmelden" { "Zur Anmeldung" } }
            },
        ),
        Err(e) => match field_errors(e) {
            Ok(errors) => link_page(&token, &errors),
            Err(e) => problem_page(&e),
        },
    }
}

// --- the admin's accounts ---

fn role_options(chosen: StaffRole) -> Markup {
    options(
        StaffRole::ALL
            .iter()
            .map(|r| (r.as_str().to_owned(), r.label().to_owned())),
        chosen.as_str(),
    )
}

/// Checkboxes of the municipality's departments, those in `chosen` checked.
fn department_boxes(tenant: &Tenant, chosen: &[String]) -> Markup {
    html! {
        fieldset {
            legend { "Bereiche (nur für die Sachbearbeitung, mindestens einer)" }
            @for (i, d) in tenant.departments.values().enumerate() {
                @let id = format!("b{i}");
                label for=(id) {
                    input type="checkbox" id=(id) name="departments" value=(d.id.as_str())
                        checked[chosen.iter().any(|c| c == d.id.as_str())];
                    " " (d.name)
                }
            }
        }
    }
}

/// The municipality's accounts, each login linking to `href` and the login: the admin's
/// page of the account, or the auditor's history of it.
pub(crate) fn accounts_table(tenant: &Tenant, accounts: &[AccountView], href: &str) -> Markup {
    html! {
        table {
            thead {
                tr {
                    th scope="col" { "Anmeldename" }
                    th scope="col" { "Rolle" }
                    th scope="col" { "Bereiche" }
                    th scope="col" { "Zustand" }
                }
            }
            tbody {
                @for a in accounts {
                    tr {
                        td { a href={ (href) (a.login) } { (a.login) } }
                        td { (a.role_label) }
                        td { (departments_label(a)) }
                        td { (state_label(tenant, a)) }
                    }
                }
            }
        }
    }
}

fn failed_logins(n: u32) -> String {
    match n {
        1 => "1 Fehlversuch seit der letzten Anmeldung".to_owned(),
        n => format!("{n} Fehlversuche seit der letzten Anmeldung"),
    }
}

fn state_label(tenant: &Tenant, a: &AccountView) -> String {
    let mut parts = vec![if a.active { "aktiv" } else { "deaktiviert" }.to_owned()];
    if a.directory {
        parts.push("Anmeldung über den Verzeichnisdienst".to_owned());
    }
    if let Some(until) = &a.locked_until {
        parts.push(format!("gesperrt bis {}", format::moment(tenant, until)));
    }
    if a.failed_logins > 0 {
        parts.push(failed_logins(a.failed_logins));
    }
    if let Some(expires) = &a.password_link_expires {
        parts.push(format!(
            "Passwort noch nicht festgelegt (Link gilt bis {})",
            format::moment(tenant, expires)
        ));
    }
    parts.join(", ")
}

fn departments_label(a: &AccountView) -> String {
    if a.department_names.is_empty() {
        "–".to_owned()
    } else {
        a.department_names.join(", ")
    }
}

async fn accounts_page(
    state: &AppState,
    staff: &Staff,
    form: &[(String, String)],
    problem: Option<&Error>,
) -> Page {
    let tenant = staff.tenant(state).map_err(|e| refusal(staff, &e))?;
    let list = desk::accounts(state, staff)
        .await
        .map_err(|e| refusal(staff, &e))?;
    let login = value(form, "login");
    let role = StaffRole::parse(&value(form, "role")).unwrap_or(StaffRole::Clerk);
    let chosen = all(form, "departments");
    let body = html! {
        (accounts_table(tenant, &list, "/verwaltung/konten/"))
        h2 id="neu" { "Konto anlegen" }
        @if let Some(e) = problem { (problem_alert(&e.problem())) }
        p {
            "Das Passwort legt die Person selbst fest, über einen Einmal-Link, den Sie nach dem \
             Anlegen erhalten und weitergeben."
        }
        form method="post" action="/verwaltung/konten" {
            label for="login" { "Anmeldename (2 bis 48 Zeichen: a–z, 0–9, Punkt, Bindestrich, Unterstrich)" }
            input type="text" id="login" name="login" value=(login) required maxlength="48"
                autocomplete="off";
            label for="role" { "Rolle" }
            select id="role" name="role" { (role_options(role)) }
            (department_boxes(tenant, &chosen))
            p { button type="submit" { "Konto anlegen" } }
        }
    };
    let mut response = staff_page(staff, "Konten der Kommune", &[], body);
    if let Some(e) = problem {
        *response.status_mut() = e.status();
        response = e.mark(response);
    }
    Ok(response)
}

pub(crate) async fn accounts(State(state): State<AppState>, headers: HeaderMap) -> Page {
    let staff = require(&headers, &state, &[StaffRole::Admin]).await?;
    accounts_page(&state, &staff, &[], None).await
}

/// The link to pass on, shown once.
fn issued_page(staff: &Staff, tenant: &Tenant, title: &str, link: &PasswordLinkView) -> Response {
    let body = html! {
        div class="notice" role="status" {
            p {
                @if title == "Konto angelegt" {
                    "Das Konto " (link.login) " ist angelegt."
                } @else {
                    "Das bisherige Passwort von " (link.login) " gilt nicht mehr; seine \
                     Sitzungen sind beendet."
                }
            }
        }
        p {
            "Geben Sie diesen Link persönlich oder auf einem sicheren Weg weiter. Er gilt bis "
            (format::moment(tenant, &link.expires)) " und nur einmal; er wird hier nicht noch \
            einmal angezeigt."
        }
        p { code { (link.link) } }
        p { a href={ "/verwaltung/konten/" (link.login) } { "Zum Konto" } }
    };
    staff_page(staff, title, &[], body)
}

pub(crate) async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: String,
) -> Page {
    let staff = require(&headers, &state, &[StaffRole::Admin]).await?;
    let tenant = staff.tenant(&state).map_err(|e| refusal(&staff, &e))?;
    let form = pairs(Some(&body));
    let request = NewAccountRequest {
        login: value(&form, "login"),
        role: value(&form, "role"),
        departments: all(&form, "departments"),
    };
    match desk::create_account(&state, &staff, &request).await {
        Ok(link) => Ok(issued_page(&staff, tenant, "Konto angelegt", &link)),
        Err(e) if e.status() == StatusCode::FORBIDDEN => Err(refusal(&staff, &e)),
        Err(e) => accounts_page(&state, &staff, &form, Some(&e)).await,
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct DetailQuery {
    geaendert: Option<String>,
}

fn changed_notice(what: &str) -> Option<&'static str> {
    match what {
        "deaktiviert" => Some("Das Konto ist deaktiviert; seine Sitzungen sind beendet."),
        "aktiviert" => Some("Das Konto ist wieder aktiviert."),
        "entsperrt" => Some("Die Sperre ist aufgehoben."),
        "rolle" => Some("Rolle und Bereiche sind geändert."),
        _ => None,
    }
}

async fn detail_page(
    state: &AppState,
    staff: &Staff,
    login: &str,
    notice: Option<&str>,
    problem: Option<&Error>,
) -> Page {
    let tenant = staff.tenant(state).map_err(|e| refusal(staff, &e))?;
    let a = desk::account(state, staff, login)
        .await
        .map_err(|e| refusal(staff, &e))?;
    let base = format!("/verwaltung/konten/{}", a.login);
    let body = html! {
        @if let Some(n) = notice {
            div class="notice" role="status" { p { (n) } }
        }
        @if let Some(e) = problem { (problem_alert(&e.problem())) }
        dl {
            dt { "Anmeldename" } dd { (a.login) }
            dt { "Rolle" } dd { (a.role_label) }
            dt { "Bereiche" } dd { (departments_label(&a)) }
            dt { "Zustand" } dd { (state_label(tenant, &a)) }
        }
        @if a.directory {
            h2 { "Rolle, Bereiche und Passwort" }
            p {
                "Dieses Konto meldet sich über den Verzeichnisdienst der Kommune an. Rolle und \
                 Bereiche folgen bei jeder Anmeldung den Gruppen im Verzeichnis; das Passwort \
                 wird dort verwaltet. Deaktivieren sperrt das Konto hier, was immer das \
                 Verzeichnis sagt."
            }
        } @else {
            h2 { "Rolle und Bereiche" }
            form method="post" action={ (base) "/rolle" } {
                label for="role" { "Rolle" }
                select id="role" name="role" { (role_options(a.role)) }
                (department_boxes(tenant, &a.departments))
                p { button type="submit" { "Rolle und Bereiche speichern" } }
            }
            h2 { "Passwort" }
            p {
                "Zurücksetzen macht das bisherige Passwort sofort ungültig und beendet die Sitzungen \
                 des Kontos; Sie erhalten einen neuen Einmal-Link zum Weitergeben."
            }
            form method="post" action={ (base) "/zuruecksetzen" } {
                button type="submit" class="secondary" { "Passwort zurücksetzen" }
            }
            @if a.locked_until.is_some() || a.failed_logins > 0 {
                p {
                    (failed_logins(a.failed_logins)) ". Fünf Fehlversuche von einer Adresse \
                     sperren Anmeldungen von dort für 15 Minuten; andere Adressen bleiben frei."
                }
                form method="post" action={ (base) "/entsperren" } {
                    p { button type="submit" class="secondary" { "Sperre aufheben" } }
                }
            }
        }
        h2 { "Zugang" }
        @if a.active {
            p { "Ein deaktiviertes Konto kann sich nicht anmelden; offene Sitzungen enden sofort." }
            form method="post" action={ (base) "/deaktivieren" } {
                button type="submit" { "Konto deaktivieren" }
            }
        } @else {
            form method="post" action={ (base) "/aktivieren" } {
                button type="submit" { "Konto wieder aktivieren" }
            }
        }
        p { a href="/verwaltung/konten" { "Alle Konten" } }
    };
    let mut response = staff_page(staff, "Konto", &[], body);
    if let Some(e) = problem {
        *response.status_mut() = e.status();
        response = e.mark(response);
    }
    Ok(response)
}

pub(crate) async fn detail(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(login): Path<String>,
    Query(q): Query<DetailQuery>,
) -> Page {
    let staff = require(&headers, &state, &[StaffRole::Admin]).await?;
    let notice = q.geaendert.as_deref().and_then(changed_notice);
    detail_page(&state, &staff, &login, notice, None).await
}

/// An admin's change of one account from its page: back to the page with a notice, or the
/// page again with the refusal.
async fn change(
    state: &AppState,
    headers: &HeaderMap,
    login: &str,
    change: AccountChange,
    done: &str,
) -> Page {
    let staff = require(headers, state, &[StaffRole::Admin]).await?;
    match desk::change_account(state, &staff, login, &change).await {
        Ok(a) => Ok(
            Redirect::to(&format!("/verwaltung/konten/{}?geaendert={done}", a.login))
                .into_response(),
        ),
        Err(e) if matches!(e.status(), StatusCode::FORBIDDEN | StatusCode::NOT_FOUND) => {
            Err(refusal(&staff, &e))
        }
        Err(e) => detail_page(state, &staff, login, None, Some(&e)).await,
    }
}

pub(crate) async fn deactivate(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(login): Path<String>,
) -> Page {
    change(
        &state,
        &headers,
        &login,
        AccountChange::Deactivate,
        "deaktiviert",
    )
    .await
}

pub(crate) async fn reactivate(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(login): Path<String>,
) -> Page {
    change(
        &state,
        &headers,
        &login,
        AccountChange::Reactivate,
        "aktiviert",
    )
    .await
}

pub(crate) async fn unlock(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(login): Path<String>,
) -> Page {
    change(&state, &headers, &login, AccountChange::Unlock, "entsperrt").await
}

pub(crate) async fn change_role(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(login): Path<String>,
    body: String,
) -> Page {
    let form = pairs(Some(&body));
    let request = RoleRequest {
        role: value(&form, "role"),
        departments: all(&form, "departments"),
    };
    change(
        &state,
        &headers,
        &login,
        AccountChange::Role(request),
        "rolle",
    )
    .await
}

pub(crate) async fn reset(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(login): Path<String>,
) -> Page {
    let staff = require(&headers, &state, &[StaffRole::Admin]).await?;
    let tenant = staff.tenant(&state).map_err(|e| refusal(&staff, &e))?;
    match desk::reset_password(&state, &staff, &login).await {
        Ok(link) => Ok(issued_page(&staff, tenant, "Passwort zurückgesetzt", &link)),
        Err(e) if matches!(e.status(), StatusCode::FORBIDDEN | StatusCode::NOT_FOUND) => {
            Err(refusal(&staff, &e))
        }
        Err(e) => detail_page(&state, &staff, &login, None, Some(&e)).await,
    }
}
