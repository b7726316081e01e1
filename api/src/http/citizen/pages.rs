//! Server-rendered German pages for citizens. They work without JavaScript: every action is a
//! form that posts and is answered with a redirect (post/redirect/get).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;
use videoamt_core::tenant::{Cents, Tenant};

use super::service::{
    self as citizen, AppointmentStatus, AppointmentView, CancelRequest, RescheduleRequest,
};
use crate::http::AppState;
use crate::http::error::Error;
use crate::http::extract::{PageForm as Form, PageQuery as Query};
use crate::http::html::{format, page, problem_page};

/// The free starts as radio buttons (`start`), a fieldset per day, and the day after the last
/// one shown (for "later slots").
pub(crate) fn slot_choices(tenant: &Tenant, slots: &citizen::SlotsView) -> (Markup, String) {
    let days: Vec<_> = slots.days.iter().filter(|d| !d.starts.is_empty()).collect();
    let choices = html! {
        @for day in &days {
            fieldset class="slots" {
                legend { (format::day(&day.date)) }
                @for (i, start) in day.starts.iter().enumerate() {
                    @let id = format!("s-{}-{i}", day.date);
                    label for=(id) {
                        input type="radio" id=(id) name="start" value=(start) required;
                        " " (format::clock(tenant, start)) " Uhr"
                    }
                }
            }
        }
        @if days.is_empty() {
            p class="notice" { "In diesen sieben Tagen ist kein Termin frei." }
        }
    };
    let next = slots
        .days
        .last()
        .and_then(|d| citizen::parse_date(&d.date))
        .map(|d| (d + time::Duration::days(1)).to_string())
        .unwrap_or_default();
    (choices, next)
}

pub(crate) fn overview(tenant: &Tenant, v: &AppointmentView) -> Markup {
    let services: Vec<&str> = v.services.iter().map(|s| s.name.as_str()).collect();
    let status = match v.status {
        AppointmentStatus::Booked if v.confirmed => "gebucht und bestätigt",
        AppointmentStatus::Booked => "gebucht, noch nicht bestätigt",
        AppointmentStatus::Cancelled => "abgesagt",
        AppointmentStatus::NoShow => "nicht wahrgenommen",
        AppointmentStatus::Completed => "abgeschlossen",
    };
    html! {
        dl {
            dt { "Status" } dd { (status) }
            dt { "Beginn" } dd { (format::moment(tenant, &v.start)) }
            dt { "Ende" } dd { (format::moment(tenant, &v.end)) }
            dt { "Kommune" } dd { (v.tenant_name) }
            dt { "Bereich" } dd { (v.department_name) }
            dt { "Anliegen" } dd { (services.join("; ")) }
            dt { "Gebühren" } dd { (Cents(v.fee_total_cents)) }
            dt { "Name" } dd { (v.contact_name) }
        }
        h2 { "Bitte halten Sie bereit" }
        ul { @for d in &v.documents_to_bring { li { (d) } } }
    }
}

pub(crate) fn requirements(v: &AppointmentView) -> Markup {
    html! {
        h2 { "Technische Voraussetzungen" }
        ul {
            li { "Computer, Tablet oder Smartphone mit Kamera und Mikrofon" }
            li { "aktueller Browser (Chrome, Edge, Firefox oder Safari); nichts zu installieren" }
            li { "Internetverbindung mit mindestens " (v.min_upload_mbit) " Mbit/s im Upload" }
            li { "Ihr Ausweisdokument für die Identitätsprüfung vor der Kamera" }
        }
        h2 { "Hilfe" }
        p {
            "Hotline: "
            a href={ "tel:" (v.support.phone.replace(' ', "")) } { (v.support.phone) }
            ", " (v.support.hours)
        }
    }
}

/// The appointment behind `token` and its municipality, or the refusal page.
pub(crate) async fn found_view<'a>(
    state: &'a AppState,
    token: &str,
) -> Result<(AppointmentView, &'a Tenant), Response> {
    let found = citizen::by_token(state, token)
        .await
        .map_err(|p| problem_page(&p))?;
    let view = citizen::view(state, &found)
        .await
        .map_err(|p| problem_page(&p))?;
    let tenant =
        citizen::tenant(state, &view.tenant).ok_or_else(|| problem_page(&Error::InvalidLink))?;
    Ok((view, tenant))
}

/// The citizen's page behind the mail link: the appointment, how to join and what is needed.
pub(crate) async fn appointment(
    State(state): State<AppState>,
    Path(token): Path<String>,
) -> Response {
    let (v, tenant) = match found_view(&state, &token).await {
        Ok(found) => found,
        Err(r) => return r,
    };
    let base = format!("/termin/{token}");
    let body = html! {
        (overview(tenant, &v))
        @if v.status == AppointmentStatus::Booked {
            @if !v.confirmed {
                form method="post" action={ (base) "/bestaetigen" } {
                    p class="notice" { "Bitte bestätigen Sie Ihren Termin." }
                    button type="submit" { "Termin bestätigen" }
                }
            }
            h2 { "Zum Termin beitreten" }
            p class="notice" {
                "Die Videoberatung öffnet auf dieser Seite. Sie warten zunächst im virtuellen \
                 Warteraum, bis die Sachbearbeitung Sie hereinholt."
            }
            p {
                a href={ (base) "/technik" } { "Technik vor dem Termin prüfen" }
                " (Browser, Kamera, Mikrofon und Internetverbindung)"
            }
            (privacy_form(&base, false))
            (requirements(&v))
            h2 { "Termin ändern" }
            p { a href={ (base) "/verlegen" } { "Termin verlegen" } }
            p { a href={ (base) "/absagen" } { "Termin absagen" } }
        } @else {
            (requirements(&v))
        }
    };
    page(StatusCode::OK, "Ihr Videotermin", body)
}

pub(crate) async fn confirm(State(state): State<AppState>, Path(token): Path<String>) -> Response {
    match citizen::confirm(&state, &token).await {
        Ok(_) => Redirect::to(&format!("/termin/{token}")).into_response(),
        Err(p) => problem_page(&p),
    }
}

pub(crate) async fn cancel_form(
    State(state): State<AppState>,
    Path(token): Path<String>,
) -> Response {
    let (v, tenant) = match found_view(&state, &token).await {
        Ok(found) => found,
        Err(r) => return r,
    };
    let body = html! {
        (overview(tenant, &v))
        form method="post" action={ "/termin/" (token) "/absagen" } {
            label for="grund" { "Grund (freiwillig)" }
            textarea id="grund" name="reason" rows="3" maxlength="500" {}
            p { button type="submit" { "Termin verbindlich absagen" } }
        }
    };
    page(StatusCode::OK, "Termin absagen", body)
}

pub(crate) async fn cancel(
    State(state): State<AppState>,
    Path(token): Path<String>,
    Form(form): Form<CancelRequest>,
) -> Response {
    match citizen::cancel(&state, &token, form).await {
        Ok(_) => Redirect::to(&format!("/termin/{token}")).into_response(),
        Err(p) => problem_page(&p),
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct RescheduleQuery {
    /// First day shown (`YYYY-MM-DD`); today when missing.
    von: Option<String>,
}

pub(crate) async fn reschedule_form(
    State(state): State<AppState>,
    Path(token): Path<String>,
    Query(q): Query<RescheduleQuery>,
) -> Response {
    let (v, tenant) = match found_view(&state, &token).await {
        Ok(found) => found,
        Err(r) => return r,
    };
    let today = state.now().date().to_string();
    let from = q
        .von
        .filter(|d| citizen::parse_date(d).is_some())
        .unwrap_or(today);
    let query = citizen::SlotQuery {
        tenant: v.tenant.clone(),
        services: v
            .services
            .iter()
            .map(|s| s.id.clone())
            .collect::<Vec<_>>()
            .join(","),
        from,
        days: Some(7),
    };
    let slots = match citizen::free_slots(&state, &query).await {
        Ok(s) => s,
        Err(p) => return problem_page(&p),
    };
    let (choices, next) = slot_choices(tenant, &slots);
    let body = html! {
        (overview(tenant, &v))
        h2 { "Neuen Zeitpunkt wählen" }
        form method="post" action={ "/termin/" (token) "/verlegen" } {
            (choices)
            p { button type="submit" { "Termin verlegen" } }
        }
        p { a href={ "/termin/" (token) "/verlegen?von=" (next) } { "Spätere Termine anzeigen" } }
    };
    page(StatusCode::OK, "Termin verlegen", body)
}

pub(crate) async fn reschedule(
    State(state): State<AppState>,
    Path(token): Path<String>,
    Form(form): Form<RescheduleRequest>,
) -> Response {
    match citizen::reschedule(&state, &token, form).await {
        Ok(_) => Redirect::to(&format!("/termin/{token}")).into_response(),
        Err(p) => problem_page(&p),
    }
}

/// The privacy notice and the button into the waiting room; `missing` when it was posted
/// without the consent.
fn privacy_form(base: &str, missing: bool) -> Markup {
    html! {
        form method="post" action={ (base) "/warteraum" } {
            h3 { "Datenschutzhinweis" }
            p {
                "Für die Videoberatung werden Bild und Ton nur zwischen Ihnen und der \
                 Sachbearbeitung übertragen und nicht aufgezeichnet. Was Sie im Termin angeben, \
                 hochladen und unterschreiben, wird gespeichert und nach Ablauf der \
                 Aufbewahrungsfrist gelöscht."
            }
            @if missing {
                p class="field-error" id="datenschutz-fehler" {
                    "Bitte bestätigen Sie den Datenschutzhinweis."
                }
            }
            label for="datenschutz" {
                input type="checkbox" id="datenschutz" name="privacy_accepted" value="1" required
                    aria-invalid=[missing.then_some("true")]
                    aria-describedby=[missing.then_some("datenschutz-fehler")];
                " Ich habe den Datenschutzhinweis gelesen und bin einverstanden."
            }
            p { button type="submit" { "Warteraum betreten" } }
        }
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct WaitingRoomForm {
    privacy_accepted: Option<String>,
}

pub(crate) async fn enter_waiting_room(
    State(state): State<AppState>,
    Path(token): Path<String>,
    Form(form): Form<WaitingRoomForm>,
) -> Response {
    if form.privacy_accepted.is_none() {
        let (v, tenant) = match found_view(&state, &token).await {
            Ok(found) => found,
            Err(r) => return r,
        };
        let body = html! {
            (overview(tenant, &v))
            (privacy_form(&format!("/termin/{token}"), true))
        };
        return page(StatusCode::UNPROCESSABLE_ENTITY, "Datenschutzhinweis", body);
    }
    match citizen::enter_waiting_room(&state, &token).await {
        Ok(_) => Redirect::to(&format!("/termin/{token}/warteraum")).into_response(),
        Err(p) => problem_page(&p),
    }
}
