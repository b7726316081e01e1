//! The booking pages, server-rendered and without JavaScript: municipality and department,
//! one or more concerns, a free slot, contact details, then the citizen's appointment page.
//! Each step is a GET form carrying the choices so far; only the last one posts.

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};

use super::pages::slot_choices;
use super::service::{self as citizen, BookingRequest, ContactInput, SlotQuery};
use crate::http::AppState;
use crate::http::error::{Error, FieldError};
use crate::http::html::{esc, euro, page, problem_page};

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
    let mut body = String::from(
        "<p>Erledigen Sie Ihr Anliegen per Video, ohne ins Amt zu kommen. Wählen Sie Ihre \
         Kommune.</p><ul>",
    );
    for t in state.tenants.iter() {
        body.push_str(&format!(
            "<li><a href=\"/buchen/{}\">{}</a></li>",
            esc(t.id.as_str()),
            esc(&t.name)
        ));
    }
    body.push_str("</ul>");
    page(StatusCode::OK, "Videotermin buchen", &body)
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
    let mut body = format!(
        "<p>Wählen Sie ein oder mehrere Anliegen eines Bereichs. Anliegen verschiedener \
         Bereiche buchen Sie bitte getrennt.</p><form method=\"get\" action=\"/buchen/{}/zeit\">",
        esc(&view.id)
    );
    for d in view
        .departments
        .iter()
        .filter(|d| d.online_booking && !d.services.is_empty())
    {
        body.push_str(&format!("<fieldset><legend>{}</legend>", esc(&d.name)));
        for s in &d.services {
            let id = format!("a-{}", s.id);
            let docs = if s.documents.is_empty() {
                "keine Unterlagen".to_owned()
            } else {
                s.documents
                    .iter()
                    .map(|x| esc(x))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            body.push_str(&format!(
                "<p><input type=\"checkbox\" id=\"{id}\" name=\"anliegen\" value=\"{v}\"> \
                 <label for=\"{id}\">{name}</label> \
                 {min} Minuten, {fee}. Bereithalten: {docs}</p>",
                id = esc(&id),
                v = esc(&s.id),
                name = esc(&s.name),
                min = s.duration_minutes,
                fee = euro(s.fee_cents),
            ));
        }
        body.push_str("</fieldset>");
    }
    body.push_str("<p><button type=\"submit\">Weiter zur Terminwahl</button></p></form>");
    page(
        StatusCode::OK,
        &format!("Videotermin in {}: Anliegen wählen", view.name),
        &body,
    )
}

/// The chosen concerns summed up: total duration, fees and the documents to have ready.
fn summary(state: &AppState, tenant: &str, services: &[String], duration: u32) -> String {
    let Some(t) = citizen::tenant(state, tenant) else {
        return String::new();
    };
    let chosen: Vec<_> = services
        .iter()
        .filter_map(|s| t.service(&s.as_str().into()))
        .collect();
    let ids: Vec<videoamt_core::tenant::ServiceId> = chosen.iter().map(|s| s.id.clone()).collect();
    let docs = t.documents_to_bring(&ids);
    format!(
        "<dl><dt>Anliegen</dt><dd>{}</dd><dt>Dauer</dt><dd>{duration} Minuten</dd>\
         <dt>Gebühren</dt><dd>{}</dd><dt>Bereithalten</dt><dd>{}</dd></dl>",
        chosen
            .iter()
            .map(|s| esc(&s.name))
            .collect::<Vec<_>>()
            .join("; "),
        euro(chosen.iter().map(|s| s.fee.0).sum()),
        if docs.is_empty() {
            "keine Unterlagen".to_owned()
        } else {
            docs.iter().map(|d| esc(d)).collect::<Vec<_>>().join(", ")
        }
    )
}

fn hidden(services: &[String]) -> String {
    services
        .iter()
        .map(|s| {
            format!(
                "<input type=\"hidden\" name=\"anliegen\" value=\"{}\">",
                esc(s)
            )
        })
        .collect()
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
    let (choices, next) = slot_choices(&slots);
    let later: String = services
        .iter()
        .map(|s| format!("anliegen={}&", esc(&urlencode(s))))
        .collect();
    let body = format!(
        "{summary}<form method=\"get\" action=\"/buchen/{t}/kontakt\">{hidden}{choices}\
         <p><button type=\"submit\">Weiter zu Ihren Angaben</button></p></form>\
         <p><a href=\"/buchen/{t}/zeit?{later}von={next}\">Spätere Termine anzeigen</a></p>",
        summary = summary(&state, &tenant, &services, slots.duration_minutes),
        t = esc(&tenant),
        hidden = hidden(&services),
    );
    page(StatusCode::OK, "Termin wählen", &body)
}

fn urlencode(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// The error of `field` and the attributes tying its input to it, for the form fields.
fn field_error(errors: &[FieldError], field: &str) -> (String, String) {
    match errors.iter().find(|e| e.field == field) {
        Some(e) => (
            format!(
                "<p class=\"error\" id=\"e-{field}\">{}</p>",
                esc(&e.message)
            ),
            format!(" aria-invalid=\"true\" aria-describedby=\"e-{field}\""),
        ),
        None => (String::new(), String::new()),
    }
}

/// Name, mail and phone inputs with their messages beside them, the input kept; shared by the
/// citizen's booking and the clerk's invitation.
pub(crate) fn contact_fields(values: &ContactInput, errors: &[FieldError]) -> String {
    let (en, dn) = field_error(errors, "contact.name");
    let (ee, de) = field_error(errors, "contact.email");
    let (ep, dp) = field_error(errors, "contact.phone");
    format!(
        "<label for=\"name\">Vor- und Nachname</label>{en}\
         <input type=\"text\" id=\"name\" name=\"name\" autocomplete=\"name\" required maxlength=\"200\" value=\"{name}\"{dn}>\
         <label for=\"email\">E-Mail-Adresse (für Bestätigung und Zugangslink)</label>{ee}\
         <input type=\"email\" id=\"email\" name=\"email\" autocomplete=\"email\" required value=\"{email}\"{de}>\
         <label for=\"phone\">Telefon (freiwillig, für Rückfragen)</label>{ep}\
         <input type=\"tel\" id=\"phone\" name=\"phone\" autocomplete=\"tel\" value=\"{phone}\"{dp}>",
        name = esc(&values.name),
        email = esc(&values.email),
        phone = esc(values.phone.as_deref().unwrap_or("")),
    )
}

fn contact_form(
    state: &AppState,
    tenant: &str,
    services: &[String],
    start: &str,
    values: &ContactInput,
    errors: &[FieldError],
) -> String {
    let when = time::OffsetDateTime::parse(start, &time::format_description::well_known::Rfc3339)
        .ok()
        .and_then(|s| citizen::tenant(state, tenant).map(|t| crate::app::mails::when(t, s, s)))
        .map(|w| w.split(", ").take(2).collect::<Vec<_>>().join(", "))
        .unwrap_or_default();
    let general: String = errors
        .iter()
        .filter(|e| !e.field.starts_with("contact.") && e.field != "privacy_accepted")
        .map(|e| format!("<p>{}</p>", esc(&e.message)))
        .collect();
    let general = if general.is_empty() {
        general
    } else {
        format!("<div class=\"error\" role=\"alert\">{general}</div>")
    };
    let (epr, dpr) = field_error(errors, "privacy_accepted");
    format!(
        "{general}<p>Gewählter Termin: {when}, {time} Uhr</p>\
         <form method=\"post\" action=\"/buchen\">\
         <input type=\"hidden\" name=\"tenant\" value=\"{t}\">{hidden}\
         <input type=\"hidden\" name=\"start\" value=\"{start}\">{fields}\
         {epr}<p><input type=\"checkbox\" id=\"privacy\" name=\"privacy_accepted\" value=\"true\"{dpr}> \
         <label for=\"privacy\">Ich habe den Datenschutzhinweis gelesen: Meine Angaben werden nur für \
         diesen Termin verwendet und nach Ablauf der Aufbewahrungsfrist gelöscht.</label></p>\
         <p><button type=\"submit\">Verbindlich buchen</button></p></form>",
        t = esc(tenant),
        hidden = hidden(services),
        start = esc(start),
        time = esc(start.get(11..16).unwrap_or("")),
        fields = contact_fields(values, errors),
    )
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
    if citizen::tenant(&state, &tenant).is_none() {
        return problem_page(&Error::not_found("Diese Kommune gibt es hier nicht."));
    }
    let empty = ContactInput {
        name: String::new(),
        email: String::new(),
        phone: None,
    };
    let body = contact_form(&state, &tenant, &services, &start, &empty, &[]);
    page(StatusCode::OK, "Ihre Angaben", &body)
}

/// Books, then shows the citizen's appointment page; invalid input comes back with its
/// messages beside the fields and nothing written.
pub(crate) async fn book(State(state): State<AppState>, body: String) -> Response {
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
    match citizen::book(
        &state,
        request,
        videoamt_core::tenant::BookingChannel::Online,
        None,
    )
    .await
    {
        Ok(booked) => Redirect::to(&format!("/termin/{}?gebucht=1", booked.token)).into_response(),
        Err(e) if matches!(e.status().as_u16(), 409 | 422) => {
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
            let status = StatusCode::from_u16(problem.status).unwrap_or(StatusCode::BAD_REQUEST);
            let body = contact_form(&state, &tenant, &services, &start_raw, &contact, &errors);
            page(status, "Ihre Angaben", &body)
        }
        Err(problem) => problem_page(&problem),
    }
}
