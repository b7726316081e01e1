//! German pages of staff accounts: everybody's own password change (`/konto/passwort`), the
//! page a one-time link opens to set a password (`/konto/passwort/{token}`), and the admin's
//! accounts of the municipality (`/verwaltung/konten`). Who may do what is decided in `desk`.

// A refusal is the page to answer with, as in `pages`.
#![allow(clippy::result_large_err)]

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use maud::{Markup, html};
use videoamt_core::domain::account::StaffRole;

use super::desk::{self, PasswordChangeRequest};
use super::pages::{Page, require, staff_page};
use super::session::{self as staff, Staff};
use crate::http::AppState;
use crate::http::citizen::booking::pairs;
use crate::http::error::{Error, FieldError};
use crate::http::html::alert;

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
    let value = |key: &str| {
        form.iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let new = value("new_password");
    if new != value("new_password_repeat") {
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
                old_password: form
                    .iter()
                    .find(|(k, _)| k == "old_password")
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default(),
                new_password,
            };
            let cookie = staff::cookie_of(&headers).unwrap_or_default();
            desk::change_password(&state, &staff, cookie, &request).await
        }
        Err(e) => Err(e),
    };
    match changed {
        Ok(()) => Ok(password_page(&staff, &[], true)),
        Err(e) => match field_errors(e) {
            Ok(errors) => Ok(password_page(&staff, &errors, false)),
            Err(e) => Err(super::pages::refusal(&staff, &e)),
        },
    }
}
