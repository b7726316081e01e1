//! The sandbox's page for the citizen: what is to be paid, the tenant's methods, and
//! Genehmigen / Ablehnen / Abbrechen. A plain form, no script.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;
use videoamt_adapters::payment::wire;
use videoamt_core::tenant::Cents;

use super::{TITLE, Transaction, reference, sandbox};
use crate::http::AppState;
use crate::http::error::Error;
use crate::http::extract::PageForm as Form;
use crate::http::html::{alert, page, problem_alert};

/// What the sandbox says on every page, before anything else.
fn banner() -> Markup {
    html! {
        div class="notice" role="note" {
            p {
                strong { "Dies ist eine Sandbox. " }
                "Es wird nichts abgebucht, keine Karte und kein Konto belastet. Die Sandbox \
                 hält ihre Zahlungen nur im Arbeitsspeicher; nach einem Neustart des Servers \
                 sind sie vergessen."
            }
        }
    }
}

fn payee(state: &AppState, t: &Transaction) -> String {
    state
        .tenants
        .iter()
        .find(|tenant| tenant.id.as_str() == t.request.tenant)
        .map_or_else(|| t.request.tenant.clone(), |tenant| tenant.name.clone())
}

fn summary(state: &AppState, t: &Transaction) -> Markup {
    let r = &t.request;
    html! {
        dl {
            dt { "Empfänger" } dd { (payee(state, t)) }
            dt { "Betrag" } dd { strong { (Cents(r.gross_amount_cents)) } }
            dt { "Verwendungszweck" } dd { (r.purpose) }
            dt { "Beschreibung" } dd { (r.description) }
        }
        @if !r.items.is_empty() {
            table {
                caption { "Positionen" }
                thead { tr { th scope="col" { "Position" } th scope="col" { "Betrag" } } }
                tbody {
                    @for i in &r.items {
                        tr { td { (i.description) } td { (Cents(i.total_cents)) } }
                    }
                }
            }
        }
    }
}

fn form(t: &Transaction, error: Option<&str>) -> Markup {
    let action = format!("{}/bezahlen/{}", super::BASE, t.id);
    html! {
        @if let Some(error) = error { (alert([error])) }
        form method="post" action=(action) {
            fieldset {
                legend { "Zahlungsart" }
                @for (n, m) in t.request.payment_methods.iter().enumerate() {
                    label {
                        input type="radio" name="methode" value=(m.id) checked[n == 0];
                        " " (m.label)
                    }
                }
            }
            p {
                button type="submit" name="entscheidung" value="genehmigen" { "Genehmigen" }
                " "
                button type="submit" name="entscheidung" value="ablehnen" { "Ablehnen" }
                " "
                button type="submit" name="entscheidung" value="abbrechen" { "Abbrechen" }
            }
            p {
                "„Ablehnen“ spielt einen Zahlungsdienst, der die Zahlung verweigert (etwa eine \
                 abgelehnte Karte); „Abbrechen“ eine Bürgerin oder einen Bürger, die oder der \
                 die Zahlung hier abbricht."
            }
        }
    }
}

fn done(t: &Transaction) -> Markup {
    let outcome = match t.status {
        wire::Status::Authorized | wire::Status::Payed => "genehmigt",
        wire::Status::Failed => "abgelehnt",
        wire::Status::Canceled => "abgebrochen",
        wire::Status::Initial => "offen",
    };
    html! {
        p role="status" { "Diese Zahlung ist bereits entschieden: " (outcome) "." }
        p { a href=(t.request.redirect_url) { "Zurück zur Videoberatung" } }
    }
}

fn render(state: &AppState, t: &Transaction, status: StatusCode, error: Option<&str>) -> Response {
    page(
        status,
        TITLE,
        html! {
            (banner())
            (summary(state, t))
            @if t.status == wire::Status::Initial { (form(t, error)) } @else { (done(t)) }
        },
    )
}

fn find(state: &AppState, id: &str) -> Result<Transaction, Error> {
    let sandbox = sandbox(state)?;
    sandbox
        .get(&reference(id)?)
        .ok_or_else(|| Error::not_found("Diese Zahlung kennt die Sandbox nicht (mehr)."))
}

/// `GET /sandbox/zahlung/bezahlen/{id}`.
pub(super) async fn show(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    match find(&state, &id) {
        Ok(t) => render(&state, &t, StatusCode::OK, None),
        Err(e) => sandbox_problem(&e),
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct Decision {
    entscheidung: String,
    methode: Option<String>,
}

/// `POST /sandbox/zahlung/bezahlen/{id}`: the decision; then the signed callback, then back
/// to the return URL.
pub(super) async fn decide(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Form(form): Form<Decision>,
) -> Response {
    let t = match find(&state, &id) {
        Ok(t) => t,
        Err(e) => return sandbox_problem(&e),
    };
    if t.status != wire::Status::Initial {
        return render(&state, &t, StatusCode::CONFLICT, None);
    }
    let offered = |m: &str| t.request.payment_methods.iter().any(|o| o.id == m);
    let (status, method, detail) = match form.entscheidung.as_str() {
        "genehmigen" => match form.methode.filter(|m| offered(m)) {
            Some(m) => (wire::Status::Authorized, Some(m), None),
            None => {
                let error = "Bitte wählen Sie eine der angebotenen Zahlungsarten.";
                return render(&state, &t, StatusCode::UNPROCESSABLE_ENTITY, Some(error));
            }
        },
        "ablehnen" => (
            wire::Status::Failed,
            None,
            Some("Die Zahlung wurde von der Sandbox abgelehnt.".to_owned()),
        ),
        "abbrechen" => (wire::Status::Canceled, None, None),
        _ => {
            let error = "Bitte entscheiden Sie: Genehmigen, Ablehnen oder Abbrechen.";
            return render(&state, &t, StatusCode::UNPROCESSABLE_ENTITY, Some(error));
        }
    };
    let Ok(sandbox) = sandbox(&state) else {
        return sandbox_problem(&Error::not_found("Diese Adresse gibt es nicht."));
    };
    let Some(decided) = sandbox.decide(&t.id, status, method, detail) else {
        // Decided meanwhile, in another tab.
        return render(&state, &t, StatusCode::CONFLICT, None);
    };
    sandbox.notify(&decided).await;
    Redirect::to(&decided.request.redirect_url).into_response()
}

/// A refusal as a sandbox page, so that even an error page says what it is.
fn sandbox_problem(error: &Error) -> Response {
    let problem = error.problem();
    let body = html! { (banner()) (problem_alert(&problem)) };
    error.mark(page(error.status(), TITLE, body))
}
