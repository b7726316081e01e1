//! Server-rendered German pages for citizens. They work without JavaScript: every action is a
//! form that posts and is answered with a redirect (post/redirect/get).

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::service::{
    self as citizen, AppointmentStatus, AppointmentView, CancelRequest, RescheduleRequest,
};
use crate::http::AppState;

use crate::http::html::{esc, euro, local, page, problem_page};

/// The free starts as radio buttons (`start`), a fieldset per day, and the day after the last
/// one shown (for "later slots").
pub(crate) fn slot_choices(slots: &citizen::SlotsView) -> (String, String) {
    let mut choices = String::new();
    for day in slots.days.iter().filter(|d| !d.starts.is_empty()) {
        let date = citizen::parse_date(&day.date).map_or_else(String::new, |d| {
            format!("{:02}.{:02}.{}", d.day(), u8::from(d.month()), d.year())
        });
        choices.push_str(&format!(
            "<fieldset class=\"slots\"><legend>{date}</legend>"
        ));
        for (i, start) in day.starts.iter().enumerate() {
            let id = format!("s-{}-{i}", day.date);
            choices.push_str(&format!(
                "<label for=\"{id}\"><input type=\"radio\" id=\"{id}\" name=\"start\" \
                 value=\"{v}\" required> {t} Uhr</label>",
                v = esc(start),
                t = esc(start.get(11..16).unwrap_or(""))
            ));
        }
        choices.push_str("</fieldset>");
    }
    if choices.is_empty() {
        choices = "<p class=\"notice\">In diesen sieben Tagen ist kein Termin frei.</p>".into();
    }
    let next = slots
        .days
        .last()
        .and_then(|d| citizen::parse_date(&d.date))
        .map(|d| (d + time::Duration::days(1)).to_string())
        .unwrap_or_default();
    (choices, next)
}

fn overview(v: &AppointmentView) -> String {
    let services: Vec<String> = v.services.iter().map(|s| esc(&s.name)).collect();
    let docs: String = v
        .documents_to_bring
        .iter()
        .map(|d| format!("<li>{}</li>", esc(d)))
        .collect();
    let status = match v.status {
        AppointmentStatus::Booked if v.confirmed => "gebucht und bestätigt",
        AppointmentStatus::Booked => "gebucht, noch nicht bestätigt",
        AppointmentStatus::Cancelled => "abgesagt",
        AppointmentStatus::NoShow => "nicht wahrgenommen",
        AppointmentStatus::Completed => "abgeschlossen",
    };
    format!(
        "<dl><dt>Status</dt><dd>{status}</dd><dt>Beginn</dt><dd>{start}</dd>\
         <dt>Ende</dt><dd>{end}</dd><dt>Kommune</dt><dd>{tenant}</dd>\
         <dt>Bereich</dt><dd>{dept}</dd><dt>Anliegen</dt><dd>{services}</dd>\
         <dt>Gebühren</dt><dd>{fees}</dd><dt>Name</dt><dd>{name}</dd></dl>\
         <h2>Bitte halten Sie bereit</h2><ul>{docs}</ul>",
        start = esc(&local(&v.start)),
        end = esc(&local(&v.end)),
        tenant = esc(&v.tenant_name),
        dept = esc(&v.department_name),
        services = services.join("; "),
        fees = euro(v.fee_total_cents),
        name = esc(&v.contact_name),
    )
}

fn requirements(v: &AppointmentView) -> String {
    format!(
        "<h2>Technische Voraussetzungen</h2><ul>\
         <li>Computer, Tablet oder Smartphone mit Kamera und Mikrofon</li>\
         <li>aktueller Browser (Chrome, Edge, Firefox oder Safari); nichts zu installieren</li>\
         <li>Internetverbindung mit mindestens {} Mbit/s im Upload</li>\
         <li>Ihr Ausweisdokument für die Identitätsprüfung vor der Kamera</li></ul>\
         <h2>Hilfe</h2><p>Hotline: <a href=\"tel:{tel}\">{phone}</a>, {hours}</p>",
        v.min_upload_mbit,
        tel = esc(&v.support.phone.replace(' ', "")),
        phone = esc(&v.support.phone),
        hours = esc(&v.support.hours),
    )
}

async fn found_view(state: &AppState, token: &str) -> Result<AppointmentView, Response> {
    let found = citizen::by_token(state, token)
        .await
        .map_err(|p| problem_page(&p))?;
    citizen::view(state, &found)
        .await
        .map_err(|p| problem_page(&p))
}

/// The citizen's page behind the mail link: the appointment, how to join and what is needed.
pub(crate) async fn appointment(
    State(state): State<AppState>,
    Path(token): Path<String>,
    Query(q): Query<AppointmentQuery>,
) -> Response {
    let v = match found_view(&state, &token).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let base = format!("/termin/{}", esc(&token));
    let mut body = String::new();
    if q.gebucht.is_some() {
        body.push_str(
            "<div class=\"notice\" role=\"status\"><p><strong>Ihr Termin ist gebucht.</strong> \
             Wir haben Ihnen eine Bestätigung mit dem Link zu dieser Seite geschickt. Bitte \
             bewahren Sie die E-Mail auf; der Link ist Ihr Zugang.</p></div>",
        );
    }
    body.push_str(&overview(&v));
    if v.status == AppointmentStatus::Booked {
        if !v.confirmed {
            body.push_str(&format!(
                "<form method=\"post\" action=\"{base}/bestaetigen\">\
                 <p class=\"notice\">Bitte bestätigen Sie Ihren Termin.</p>\
                 <button type=\"submit\">Termin bestätigen</button></form>"
            ));
        }
        body.push_str(&format!(
            "<h2>Zum Termin beitreten</h2><p class=\"notice\">Die Videoberatung öffnet \
             auf dieser Seite. Sie warten zunächst im virtuellen Warteraum, bis die \
             Sachbearbeitung Sie hereinholt.</p>{privacy}{req}\
             <h2>Termin ändern</h2><p><a href=\"{base}/verlegen\">Termin verlegen</a></p>\
             <p><a href=\"{base}/absagen\">Termin absagen</a></p>",
            req = requirements(&v),
            privacy = privacy_form(&base, false),
        ));
    } else {
        body.push_str(&requirements(&v));
    }
    page(StatusCode::OK, "Ihr Videotermin", &body)
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
    let v = match found_view(&state, &token).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let body = format!(
        "{}<form method=\"post\" action=\"/termin/{}/absagen\">\
         <label for=\"grund\">Grund (freiwillig)</label>\
         <textarea id=\"grund\" name=\"reason\" rows=\"3\" maxlength=\"500\"></textarea>\
         <p><button type=\"submit\">Termin verbindlich absagen</button></p></form>",
        overview(&v),
        esc(&token)
    );
    page(StatusCode::OK, "Termin absagen", &body)
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
pub(crate) struct AppointmentQuery {
    /// Set after the booking redirected here.
    gebucht: Option<String>,
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
    let v = match found_view(&state, &token).await {
        Ok(v) => v,
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
    let (choices, next) = slot_choices(&slots);
    let body = format!(
        "{}<h2>Neuen Zeitpunkt wählen</h2><form method=\"post\" action=\"/termin/{t}/verlegen\">\
         {choices}<p><button type=\"submit\">Termin verlegen</button></p></form>\
         <p><a href=\"/termin/{t}/verlegen?von={next}\">Spätere Termine anzeigen</a></p>",
        overview(&v),
        t = esc(&token),
    );
    page(StatusCode::OK, "Termin verlegen", &body)
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

/// The privacy notice and the button into the waiting room.
fn privacy_form(base: &str, missing: bool) -> String {
    let error = if missing {
        "<p class=\"field-error\" id=\"datenschutz-fehler\">Bitte bestätigen Sie den Datenschutzhinweis.</p>"
    } else {
        ""
    };
    let invalid = if missing {
        " aria-invalid=\"true\" aria-describedby=\"datenschutz-fehler\""
    } else {
        ""
    };
    format!(
        "<form method=\"post\" action=\"{base}/warteraum\"><h3>Datenschutzhinweis</h3>\
         <p>Für die Videoberatung werden Bild und Ton nur zwischen Ihnen und der Sachbearbeitung \
         übertragen und nicht aufgezeichnet. Was Sie im Termin angeben, hochladen und \
         unterschreiben, wird gespeichert und nach Ablauf der Aufbewahrungsfrist gelöscht.</p>\
         {error}<label for=\"datenschutz\"><input type=\"checkbox\" id=\"datenschutz\" \
         name=\"privacy_accepted\" value=\"1\" required{invalid}> Ich habe den \
         Datenschutzhinweis gelesen und bin einverstanden.</label>\
         <p><button type=\"submit\">Warteraum betreten</button></p></form>"
    )
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
        let v = match found_view(&state, &token).await {
            Ok(v) => v,
            Err(r) => return r,
        };
        let body = format!(
            "{}{}",
            overview(&v),
            privacy_form(&format!("/termin/{}", esc(&token)), true)
        );
        return page(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Datenschutzhinweis",
            &body,
        );
    }
    match citizen::enter_waiting_room(&state, &token).await {
        Ok(_) => Redirect::to(&format!("/termin/{token}/warteraum")).into_response(),
        Err(p) => problem_page(&p),
    }
}

/// The citizen's waiting room: the video call itself opens here in a later step.
pub(crate) async fn waiting(State(state): State<AppState>, Path(token): Path<String>) -> Response {
    let v = match found_view(&state, &token).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let body = format!(
        "<div class=\"notice\" role=\"status\"><p><strong>Sie sind im Warteraum.</strong> Die \
         Sachbearbeitung sieht, dass Sie warten, und holt Sie zum Termin herein. Bitte halten \
         Sie Ihr Ausweisdokument bereit.</p></div>{}{}",
        overview(&v),
        requirements(&v)
    );
    page(StatusCode::OK, "Warteraum", &body)
}
