//! The booking pages, server-rendered and without JavaScript: municipality and department,
//! one or more concerns, a free slot, contact details, then the citizen's appointment page.
//! Each step is a GET form carrying the choices so far; only the last one posts.

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use videoamt_core::tenant::{Cents, Tenant};

use super::pages::slot_choices;
use super::service::{self as citizen, BookingRequest, ContactInput, SlotQuery};
use crate::http::AppState;
use crate::http::error::{Error, FieldError};
use crate::http::html::{alert, format, page, problem_page};
use crate::http::middleware::guard::Client;

/// The query or form fields in order, repeated keys kept (`anliegen=a&anliegen=b`).
pub(crate) fn pairs(raw: Option<&str>) -> Vec<(String, String)> {
    form_urlencoded::parse(raw.unwrap_or("").as_bytes())
        .into_owned()
        .collect()
}

pub(crate) fn all(pairs: &[(String, String)], key: &str) -> Vec<String> {
    pairs
        .iter()
        .filter(|(k, _)| k == key)
        .map(|(_, v)| v.clone())
        .collect()
}

fn one(pairs: &[(String, String)], key: &str) -> Option<String> {
    pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone())
}

/// The start page: the municipalities.
pub(crate) async fn start(State(state): State<AppState>) -> Response {
    let body = html! {
        p {
            "Erledigen Sie Ihr Anliegen per Video, ohne ins Amt zu kommen. Wählen Sie Ihre Kommune."
        }
        ul {
            @for t in state.tenants.iter() {
                li { a href={ "/buchen/" (t.id.as_str()) } { (t.name) } }
            }
        }
    };
    page(StatusCode::OK, "Videotermin buchen", body)
}

/// "keine Unterlagen" or the documents, comma-separated.
fn documents(docs: &[String]) -> String {
    if docs.is_empty() {
        "keine Unterlagen".to_owned()
    } else {
        docs.join(", ")
    }
}

/// Step 1: the concerns of one department, with duration, fee and documents each.
pub(crate) async fn concerns(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
) -> Response {
    let Some(t) = citizen::tenant(&state, &tenant) else {
        return problem_page(&Error::not_found("Diese Kommune gibt es hier nicht."));
    };
    let view = citizen::tenant_view(t);
    let body = html! {
        p {
            "Wählen Sie ein oder mehrere Anliegen eines Bereichs. Anliegen verschiedener Bereiche \
             buchen Sie bitte getrennt."
        }
        form method="get" action={ "/buchen/" (view.id) "/zeit" } {
            @for d in view.departments.iter().filter(|d| d.online_booking && !d.services.is_empty()) {
                fieldset {
                    legend { (d.name) }
                    @for s in &d.services {
                        @let id = format!("a-{}", s.id);
                        p {
                            input type="checkbox" id=(id) name="anliegen" value=(s.id);
                            " "
                            label for=(id) { (s.name) }
                            " " (s.duration_minutes) " Minuten, " (Cents(s.fee_cents))
                            ". Bereithalten: " (documents(&s.documents))
                        }
                    }
                }
            }
            p { button type="submit" { "Weiter zur Terminwahl" } }
        }
    };
    page(
        StatusCode::OK,
        &format!("Videotermin in {}: Anliegen wählen", view.name),
        body,
    )
}

/// The chosen concerns summed up: total duration, fees and the documents to have ready.
fn summary(tenant: &Tenant, services: &[String], duration: u32) -> Markup {
    let chosen: Vec<_> = services
        .iter()
        .filter_map(|s| tenant.service(&s.as_str().into()))
        .collect();
    let ids: Vec<videoamt_core::tenant::ServiceId> = chosen.iter().map(|s| s.id.clone()).collect();
    let names: Vec<&str> = chosen.iter().map(|s| s.name.as_str()).collect();
    html! {
        dl {
            dt { "Anliegen" } dd { (names.join("; ")) }
            dt { "Dauer" } dd { (duration) " Minuten" }
            dt { "Gebühren" } dd { (Cents(chosen.iter().map(|s| s.fee.0).sum())) }
            dt { "Bereithalten" } dd { (documents(&tenant.documents_to_bring(&ids))) }
        }
    }
}

/// The chosen concerns, carried to the next step.
fn hidden(name: &str, services: &[String]) -> Markup {
    html! {
        @for s in services { input type="hidden" name=(name) value=(s); }
    }
}

/// Step 2: free slots for the chosen concerns, seven days at a time.
pub(crate) async fn slots(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    let q = pairs(raw.as_deref());
    let services = all(&q, "anliegen");
    let from = one(&q, "von")
        .filter(|d| citizen::parse_date(d).is_some())
        .unwrap_or_else(|| (state.now().date() + time::Duration::days(1)).to_string());
    let query = SlotQuery {
        tenant: tenant.clone(),
        services: services.join(","),
        from,
        days: Some(7),
    };
    let slots = match citizen::free_slots(&state, &query).await {
        Ok(s) => s,
        Err(p) => return problem_page(&p),
    };
    let Some(t) = citizen::tenant(&state, &tenant) else {
        return problem_page(&Error::not_found("Diese Kommune gibt es hier nicht."));
    };
    let (choices, next) = slot_choices(t, &slots);
    let later: String = services
        .iter()
        .map(|s| format!("anliegen={}&", urlencode(s)))
        .collect();
    let body = html! {
        (summary(t, &services, slots.duration_minutes))
        form method="get" action={ "/buchen/" (tenant) "/kontakt" } {
            (hidden("anliegen", &services))
            (choices)
            p { button type="submit" { "Weiter zu Ihren Angaben" } }
        }
        p {
            a href={ "/buchen/" (tenant) "/zeit?" (later) "von=" (next) } {
                "Spätere Termine anzeigen"
            }
        }
    };
    page(StatusCode::OK, "Termin wählen", body)
}

pub(crate) fn urlencode(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// The message of `field`, if it has one.
fn field_error<'a>(errors: &'a [FieldError], field: &str) -> Option<&'a str> {
    errors
        .iter()
        .find(|e| e.field == field)
        .map(|e| e.message.as_str())
}

/// A labelled input with its message above it and tied to it (`aria-describedby`), the
/// input kept.
fn contact_field(
    field: &str,
    label: &str,
    kind: &str,
    (id, autocomplete, required): (&str, &str, bool),
    value: &str,
    errors: &[FieldError],
) -> Markup {
    let error = field_error(errors, field);
    let described = format!("e-{field}");
    html! {
        label for=(id) { (label) }
        @if let Some(message) = error { p class="error" id=(described) { (message) } }
        input type=(kind) id=(id) name=(id) autocomplete=(autocomplete) required[required]
            maxlength=[(id == "name").then_some("200")] value=(value)
            aria-invalid=[error.map(|_| "true")] aria-describedby=[error.map(|_| &described)];
    }
}

/// Name, mail and phone inputs with their messages beside them, the input kept; shared by the
/// citizen's booking and the clerk's invitation.
pub(crate) fn contact_fields(values: &ContactInput, errors: &[FieldError]) -> Markup {
    html! {
        (contact_field("contact.name", "Vor- und Nachname", "text", ("name", "name", true),
            &values.name, errors))
        (contact_field("contact.email", "E-Mail-Adresse (für Bestätigung und Zugangslink)",
            "email", ("email", "email", true), &values.email, errors))
        (contact_field("contact.phone", "Telefon (freiwillig, für Rückfragen)", "tel",
            ("phone", "tel", false), values.phone.as_deref().unwrap_or(""), errors))
    }
}

fn contact_form(
    tenant: &Tenant,
    services: &[String],
    start: &str,
    values: &ContactInput,
    errors: &[FieldError],
) -> Markup {
    let general: Vec<&str> = errors
        .iter()
        .filter(|e| !e.field.starts_with("contact.") && e.field != "privacy_accepted")
        .map(|e| e.message.as_str())
        .collect();
    let privacy = field_error(errors, "privacy_accepted");
    html! {
        @if !general.is_empty() { (alert(general)) }
        p { "Gewählter Termin: " (format::moment(tenant, start)) }
        form method="post" action="/buchen" {
            input type="hidden" name="tenant" value=(tenant.id.as_str());
            (hidden("anliegen", services))
            input type="hidden" name="start" value=(start);
            (contact_fields(values, errors))
            @if let Some(message) = privacy {
                p class="error" id="e-privacy_accepted" { (message) }
            }
            p {
                input type="checkbox" id="privacy" name="privacy_accepted" value="true"
                    aria-invalid=[privacy.map(|_| "true")]
                    aria-describedby=[privacy.map(|_| "e-privacy_accepted")];
                " "
                label for="privacy" {
                    "Ich habe den Datenschutzhinweis gelesen: Meine Angaben werden nur für diesen \
                     Termin verwendet und nach Ablauf der Aufbewahrungsfrist gelöscht."
                }
            }
            p { button type="submit" { "Verbindlich buchen" } }
        }
    }
}

/// Step 3: contact details for the chosen slot.
pub(crate) async fn contact(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    let q = pairs(raw.as_deref());
    let services = all(&q, "anliegen");
    let Some(start) = one(&q, "start") else {
        return problem_page(&Error::invalid_fields(vec![FieldError {
            field: "start".into(),
            message: "Bitte wählen Sie einen Termin.".into(),
        }]));
    };
    let Some(t) = citizen::tenant(&state, &tenant) else {
        return problem_page(&Error::not_found("Diese Kommune gibt es hier nicht."));
    };
    let empty = ContactInput {
        name: String::new(),
        email: String::new(),
        phone: None,
    };
    let body = contact_form(t, &services, &start, &empty, &[]);
    page(StatusCode::OK, "Ihre Angaben", body)
}

/// Books, then says that the link comes by mail; invalid input comes back with its messages
/// beside the fields and nothing written. The appointment's page is not shown here: its link
/// is the capability, and only whoever reads the mailbox given may hold it.
pub(crate) async fn book(State(state): State<AppState>, client: Client, body: String) -> Response {
    let q = pairs(Some(&body));
    let tenant = one(&q, "tenant").unwrap_or_default();
    let services = all(&q, "anliegen");
    let start_raw = one(&q, "start").unwrap_or_default();
    let contact = ContactInput {
        name: one(&q, "name").unwrap_or_default(),
        email: one(&q, "email").unwrap_or_default(),
        phone: one(&q, "phone"),
    };
    let Ok(start) =
        time::OffsetDateTime::parse(&start_raw, &time::format_description::well_known::Rfc3339)
    else {
        return problem_page(&Error::invalid_fields(vec![FieldError {
            field: "start".into(),
            message: "Bitte wählen Sie einen Termin aus der Liste.".into(),
        }]));
    };
    let request = BookingRequest {
        tenant: tenant.clone(),
        services: services.clone(),
        start,
        contact: contact.clone(),
        privacy_accepted: one(&q, "privacy_accepted").as_deref() == Some("true"),
    };
    match citizen::book(&state, request, citizen::Booker::Online(client)).await {
        Ok(_) => Redirect::to(&format!("/buchen/{tenant}/gebucht")).into_response(),
        // Slot taken, a field wrong, or the day's bookings used up: the form again, filled in.
        Err(e) if matches!(e.status().as_u16(), 409 | 422 | 429) => {
            let problem = e.problem();
            let mut errors = problem.errors.clone();
            if errors.is_empty() {
                errors.push(FieldError {
                    field: "booking".into(),
                    message: problem
                        .detail
                        .clone()
                        .unwrap_or_else(|| problem.title.into()),
                });
            }
            let Some(t) = citizen::tenant(&state, &tenant) else {
                return problem_page(&e);
            };
            let body = contact_form(t, &services, &start_raw, &contact, &errors);
            e.mark(page(e.status(), "Ihre Angaben", body))
        }
        Err(e) => problem_page(&e),
    }
}

/// After a booking: the link to the appointment is in the mail.
pub(crate) async fn booked(State(state): State<AppState>, Path(tenant): Path<String>) -> Response {
    let Some(t) = citizen::tenant(&state, &tenant) else {
        return problem_page(&Error::not_found("Diese Kommune gibt es hier nicht."));
    };
    let minutes = videoamt_core::domain::process::SLOT_HOLD.whole_minutes();
    let body = html! {
        div class="notice" role="status" {
            p {
                strong { "Ihr Termin ist gebucht." }
                " Wir haben Ihnen eine E-Mail mit dem Link zu Ihrem Termin geschickt."
            }
        }
        p {
            "Bitte öffnen Sie den Link und bestätigen Sie den Termin innerhalb von "
            (minutes) " Minuten. Ohne Bestätigung geben wir die Zeit wieder frei."
        }
        p {
            "Bewahren Sie die E-Mail auf: Der Link ist Ihr Zugang zum Termin, zum Verlegen, "
            "zum Absagen und zur Videoberatung."
        }
        p {
            "Keine E-Mail angekommen? Bitte sehen Sie auch im Spam-Ordner nach. Sonst hilft "
            (t.name) " Ihnen unter "
            a href={ "tel:" (t.support.phone.replace(' ', "")) } { (t.support.phone) }
            ", " (t.support.hours) "."
        }
    };
    page(StatusCode::OK, "Termin gebucht", body)
}
