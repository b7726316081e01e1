//! The room's pages: the citizen's waiting room that becomes the call, the clerk's room with
//! the waiting-room actions and the identity check, and the pre-call check.
//!
//! The call needs JavaScript (WebRTC); everything else on these pages is a plain form that
//! works without it.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;
use videoamt_core::domain::events::SessionOutcome;
use videoamt_core::domain::identity::{DocumentType, SecurityFeature};
use videoamt_core::domain::session::SessionCommand;
use videoamt_core::domain::{DomainError, Personal};
use videoamt_core::german;

use super::access::{self, Room};
use super::{documents, feedback, forms, handover, payment};
use crate::http::AppState;
use crate::http::citizen::pages::{found_view, overview, requirements};
use crate::http::error::Error;
use crate::http::extract::PageForm as Form;
use crate::http::html::{problem_page, shell};

/// What both parties are told on every room page (the FAQs' wording).
fn no_recording() -> Markup {
    html! {
        aside class="notice" aria-labelledby="aufzeichnung" {
            h2 id="aufzeichnung" { "Es wird nichts aufgezeichnet" }
            p {
                "Bild und Ton gehen nur zwischen Ihnen und der Sachbearbeitung über diesen \
                 Server und werden weder aufgezeichnet noch gespeichert, auch kein Bild Ihres \
                 Ausweises."
            }
            p {
                "Hinweis: Wer von einer anderen Person ohne deren Einwilligung Ton- oder \
                 Bildaufnahmen macht, erfüllt den Straftatbestand des § 201 bzw. § 201a StGB. \
                 Strafbar ist es auch, solche Aufnahmen zu verwenden oder Dritten zugänglich \
                 zu machen."
            }
        }
    }
}

/// The call's part of a room page: both pictures, the controls and the state line.
fn call(socket: &str, role: &str, support: &str) -> Markup {
    html! {
        div id="raum" data-role=(role) data-socket=(socket) {
            div id="status" class="notice" role="status" aria-live="polite" {
                p id="status-text" {
                    @if role == "citizen" {
                        strong { "Sie sind im Warteraum." }
                        " Sie werden gleich verbunden: Die Sachbearbeitung sieht, dass Sie \
                         warten, und holt Sie herein. Bitte halten Sie Ihr Ausweisdokument \
                         bereit."
                    } @else {
                        "Verbindung zum Raum wird aufgebaut …"
                    }
                }
            }
            noscript {
                p class="field-error" {
                    "Für die Videoberatung braucht Ihr Browser JavaScript. Bitte schalten Sie \
                     es ein oder rufen Sie uns an: " (support)
                }
            }
            section id="anruf" hidden aria-label="Videoverbindung" {
                div class="videos" {
                    video id="fremd" autoplay playsinline aria-label="Bild der Gegenseite" {}
                    video id="selbst" autoplay playsinline muted aria-label="Ihr eigenes Bild" {}
                }
                p {
                    button type="button" id="kamera" aria-pressed="false" { "Kamera aus" }
                    " "
                    button type="button" id="mikrofon" aria-pressed="false" { "Mikrofon aus" }
                }
                p id="qualitaet" aria-live="polite" { "Verbindungsqualität: wird gemessen …" }
                p id="gegenseite" class="notice" role="alert" hidden {}
            }
        }
    }
}

/// `GET /termin/{token}/warteraum`: the citizen waits here, and the call opens here when the
/// clerk admits.
pub(crate) async fn citizen_room(
    State(state): State<AppState>,
    Path(token): Path<String>,
) -> Response {
    let room = match access::citizen(&state, &token).await {
        Ok(room) => room,
        // Not entered yet: the appointment page has the privacy notice and the button.
        Err(Error::NotFound(_)) => {
            return Redirect::to(&format!("/termin/{token}")).into_response();
        }
        Err(e) => return problem_page(&e),
    };
    let support = format!(
        "{} ({})",
        room.tenant.support.phone, room.tenant.support.hours
    );
    if room.state.citizen_removed {
        return problem_page(&Error::Refused(DomainError::RemovedFromSession));
    }
    let (view, tenant) = match found_view(&state, &token).await {
        Ok(found) => found,
        Err(r) => return r,
    };
    let shelf = match room_shelf(&state, &room, &documents::citizen_base(&token)).await {
        Ok(shelf) => shelf,
        Err(e) => return problem_page(&e),
    };
    let forms = match room_forms(&state, &room).await {
        Ok(forms) => forms,
        Err(e) => return problem_page(&e),
    };
    let fees = match payment::panel_of(&state, &room, payment::citizen_base(&token)).await {
        Ok(panel) => panel,
        Err(e) => return problem_page(&e),
    };
    let body = html! {
        @if let Some(outcome) = room.state.ended {
            (ended(&room, outcome))
            (forms::panel(&room, &forms, &forms::citizen_base(&token)))
            // The receipt stays in reach; nothing is paid any more after the end.
            @if fees.paid() { (payment::panel(&room, &fees)) }
            (feedback::panel(&room, &token))
        } @else {
            (call(&format!("/termin/{token}/raum/ws"), "citizen", &support))
            // The documents belong to the room: shown once admitted (the script reveals and
            // fills them when the clerk admits while the page is open).
            div id="dokumente-raum" hidden[!room.state.admitted] {
                (forms::panel(&room, &forms, &forms::citizen_base(&token)))
                (documents::panel(&room, &shelf))
            }
            div id="zahlung-raum" hidden[!room.state.admitted] {
                (payment::panel(&room, &fees))
            }
            p { a href={ "/termin/" (token) "/technik" } { "Technik prüfen" } }
        }
        (no_recording())
        (overview(tenant, &view))
        (requirements(&view))
        p { a href={ "/termin/" (token) } { "Zurück zum Termin" } }
    };
    shell(StatusCode::OK, "Videoberatung", None, &ROOM_SCRIPTS, body)
}

/// The room's scripts: the call and, beside it, the forms' and the payment panel's.
const ROOM_SCRIPTS: [&str; 3] = ["raum.js", "formular.js", "zahlung.js"];

fn ended(room: &Room, outcome: SessionOutcome) -> Markup {
    html! {
        div class="notice" role="status" {
            @match outcome {
                SessionOutcome::Completed => p { "Ihr Termin ist beendet. Vielen Dank." },
                SessionOutcome::Aborted => {
                    p {
                        "Der Termin wurde technisch abgebrochen. Bitte vereinbaren Sie einen \
                         neuen Termin."
                    }
                    p { a href={ "/buchen/" (room.tenant.id) } { "Neuen Termin buchen" } }
                }
            }
        }
    }
}

/// `GET /sachbearbeitung/termin/{id}/raum`: the clerk's room.
pub(crate) async fn clerk_room(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let room = match access::clerk(&state, &headers, &id).await {
        Ok(room) => room,
        Err(Error::LoginRequired) => return Redirect::to("/anmelden").into_response(),
        Err(e) => return problem_page(&e),
    };
    let base = format!("/sachbearbeitung/termin/{id}/raum");
    let shelf = match room_shelf(&state, &room, &documents::clerk_base(&room)).await {
        Ok(shelf) => shelf,
        Err(e) => return problem_page(&e),
    };
    let forms = match room_forms(&state, &room).await {
        Ok(forms) => forms,
        Err(e) => return problem_page(&e),
    };
    let handover = match handover::handover(&state, &room).await {
        Ok(handover) => handover,
        Err(e) => return problem_page(&e),
    };
    let fees = match payment::panel_of(&state, &room, payment::clerk_base(&room)).await {
        Ok(panel) => panel,
        Err(e) => return problem_page(&e),
    };
    let opened = room.state.opened.clone();
    let identity_needed = opened.as_ref().is_some_and(|o| o.identity_check_required);
    let body = html! {
        @if let Some(outcome) = room.state.ended {
            div class="notice" role="status" {
                p {
                    "Die Sitzung ist beendet: "
                    (match outcome {
                        SessionOutcome::Completed => "abgeschlossen",
                        SessionOutcome::Aborted => "technisch abgebrochen",
                    })
                    "."
                }
            }
            @if let Some(handover) = &handover {
                (handover::panel(handover, &base))
            }
        } @else {
            (call(&format!("{base}/ws"), "clerk", &room.tenant.support.phone))
            (citizen_line(&room))
            (forms::panel(&room, &forms, &forms::clerk_base(&room)))
            (documents::panel(&room, &shelf))
            (payment::panel(&room, &fees))
            h2 { "Warteraum" }
            @if room.state.admitted {
                form method="post" action={ (base) "/zurueckschicken" } class="inline" {
                    button type="submit" { "In den Warteraum zurückschicken" }
                }
            } @else if room.state.citizen_present {
                form method="post" action={ (base) "/einlassen" } class="inline" {
                    button type="submit" { "Einlassen" }
                }
            }
            @if !room.state.citizen_removed {
                form method="post" action={ (base) "/entfernen" } class="inline" {
                    button type="submit" { "Aus der Sitzung entfernen" }
                }
            }
            @if identity_needed || room.state.identity_verified {
                (identity_panel(&room, &base))
            }
            @if let Some(handover) = &handover {
                (handover::panel(handover, &base))
            }
            h2 { "Sitzung beenden" }
            form method="post" action={ (base) "/beenden" } {
                fieldset {
                    legend { "Ergebnis" }
                    label {
                        input type="radio" name="outcome" value="completed" checked;
                        " Anliegen erledigt"
                    }
                    label {
                        input type="radio" name="outcome" value="aborted";
                        " Technisch abgebrochen (die Bürgerin oder der Bürger bucht neu)"
                    }
                }
                p { button type="submit" { "Sitzung beenden" } }
            }
        }
        (no_recording())
        p { a href={ "/sachbearbeitung/termin/" (id) } { "Zum Termin" } }
    };
    shell(StatusCode::OK, "Videoberatung", None, &ROOM_SCRIPTS, body)
}

/// The party's documents; none before admission, when the room holds nothing for a citizen.
async fn room_shelf(state: &AppState, room: &Room, base: &str) -> Result<documents::Shelf, Error> {
    if room.state.admitted || room.party == videoamt_core::domain::events::Party::Clerk {
        documents::shelf(state, room, base).await
    } else {
        Ok(documents::Shelf {
            documents: vec![],
            max_bytes: state.system.settings.upload_max_bytes,
            base: base.to_owned(),
        })
    }
}

/// The session's forms; none before admission for a citizen, like the documents.
async fn room_forms(state: &AppState, room: &Room) -> Result<Vec<forms::FormView>, Error> {
    if room.state.admitted || room.party == videoamt_core::domain::events::Party::Clerk {
        forms::forms(state, room).await
    } else {
        Ok(vec![])
    }
}

/// What the clerk knows about the citizen's side: present, connection, pre-call check.
fn citizen_line(room: &Room) -> Markup {
    let s = &room.state;
    html! {
        ul id="buerger" {
            li {
                @if s.citizen_removed { "Aus der Sitzung entfernt." }
                @else if s.admitted { "Im Raum." }
                @else if s.citizen_present { "Wartet im Warteraum." }
                @else { "Noch nicht im Warteraum." }
            }
            @if s.citizen_connection_lost {
                li class="field-error" { "Verbindung unterbrochen." }
            }
            li {
                @match &s.pre_call_check {
                    None => "Technik-Check nicht gemacht",
                    Some(c) => (german::pre_call_check(c.passed, c.upload_kbit_s)),
                }
            }
        }
    }
}

fn identity_panel(room: &Room, base: &str) -> Markup {
    html! {
        section aria-labelledby="identitaet" {
            h2 id="identitaet" { "Identitätsprüfung" }
            @if room.state.identity_verified {
                p class="notice" role="status" { "Die Identität ist geprüft." }
            } @else {
                p {
                    "Eine Sichtprüfung des Ausweises vor der Kamera, wie am Schalter. Es wird \
                     kein Bild aufgenommen oder gespeichert; festgehalten werden nur die \
                     geprüften Merkmale und das Ergebnis. Sie ersetzt kein Video-Ident-Verfahren \
                     nach BaFin und keine Online-Ausweisfunktion (eID)."
                }
                form method="post" action={ (base) "/identitaet" } {
                    label for="ausweisart" { "Ausweisart" }
                    select id="ausweisart" name="document_type" {
                        @for t in DocumentType::ALL {
                            option value=(t.as_str()) { (t.as_str()) }
                        }
                    }
                    fieldset {
                        legend {
                            "Geprüfte Sicherheitsmerkmale (mindestens drei aus verschiedenen \
                             Kategorien)"
                        }
                        @for f in SecurityFeature::ALL {
                            label {
                                input type="checkbox" name="feature" value=(f.as_str());
                                " " (f.as_str())
                                @if let Some(c) = f.category() { " (" (c.label()) ")" }
                            }
                        }
                    }
                    label {
                        input type="checkbox" name="questions" value="1";
                        " Kontrollfragen gestellt (z. B. Geburtsdatum, Ausstellungsort); \
                         festgehalten wird nur, dass gefragt wurde"
                    }
                    fieldset {
                        legend { "Ergebnis" }
                        label {
                            input type="radio" name="result" value="verified" checked;
                            " Identität bestätigt"
                        }
                        label {
                            input type="radio" name="result" value="failed";
                            " Nicht bestätigt"
                        }
                    }
                    label for="grund" { "Grund, wenn nicht bestätigt" }
                    input type="text" id="grund" name="reason" maxlength="500";
                    p { button type="submit" { "Prüfung festhalten" } }
                }
            }
        }
    }
}

// --- the clerk's actions ---

async fn clerk_action(
    state: &AppState,
    headers: &HeaderMap,
    id: &str,
    command: impl FnOnce(&Room) -> Result<SessionCommand, Error>,
) -> Response {
    let room = match access::clerk(state, headers, id).await {
        Ok(room) => room,
        Err(Error::LoginRequired) => return Redirect::to("/anmelden").into_response(),
        Err(e) => return problem_page(&e),
    };
    let result = match command(&room) {
        Ok(command) => room.act(state, command).await,
        Err(e) => Err(e),
    };
    state.hub.refresh(room.session);
    match result {
        Ok(()) => Redirect::to(&format!("/sachbearbeitung/termin/{id}/raum")).into_response(),
        Err(e) => problem_page(&e),
    }
}

/// `POST …/raum/einlassen`: admits the waiting citizen.
pub(crate) async fn admit(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    clerk_action(&state, &headers, &id, |room| {
        Ok(SessionCommand::Admit {
            session: room.session,
            clerk: room.clerk_id()?,
        })
    })
    .await
}

/// `POST …/raum/zurueckschicken`: back to the waiting room.
pub(crate) async fn send_back(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    clerk_action(&state, &headers, &id, |room| {
        Ok(SessionCommand::SendBackToWaitingRoom {
            session: room.session,
            clerk: room.clerk_id()?,
        })
    })
    .await
}

/// `POST …/raum/entfernen`: removes the citizen from the session.
pub(crate) async fn remove(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    clerk_action(&state, &headers, &id, |room| {
        Ok(SessionCommand::RemoveFromSession {
            session: room.session,
            clerk: room.clerk_id()?,
        })
    })
    .await
}

#[derive(Debug, Deserialize)]
pub(crate) struct EndForm {
    outcome: String,
}

/// `POST …/raum/beenden`: ends the session, completed or technically aborted.
pub(crate) async fn end(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Form(form): Form<EndForm>,
) -> Response {
    clerk_action(&state, &headers, &id, |room| {
        let outcome = match form.outcome.as_str() {
            "completed" => SessionOutcome::Completed,
            "aborted" => SessionOutcome::Aborted,
            _ => {
                return Err(Error::invalid_fields(vec![
                    crate::http::error::FieldError {
                        field: "outcome".into(),
                        message: "Bitte wählen Sie ein Ergebnis.".into(),
                    },
                ]));
            }
        };
        Ok(SessionCommand::EndSession {
            session: room.session,
            outcome,
        })
    })
    .await
}

/// `POST …/raum/identitaet`: the identity check's checklist and result. Repeated fields
/// (`feature`) come as a list, which `Form` does not read: the body is parsed by hand.
pub(crate) async fn identity(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let mut document_type = None;
    let mut features = Vec::new();
    let mut result = String::new();
    let mut reason = String::new();
    let mut questions_asked = false;
    let mut unknown = false;
    for (key, value) in form_urlencoded::parse(body.as_bytes()) {
        match key.as_ref() {
            "document_type" => document_type = value.parse::<DocumentType>().ok(),
            "feature" => match value.parse::<SecurityFeature>() {
                Ok(f) => features.push(f),
                Err(_) => unknown = true,
            },
            "result" => result = value.into_owned(),
            "reason" => reason = value.trim().chars().take(500).collect(),
            // The questions are asked aloud; the log keeps only that there were some.
            "questions" => questions_asked = value == "1",
            _ => {}
        }
    }
    clerk_action(&state, &headers, &id, |room| {
        let Some(document_type) = document_type else {
            return Err(Error::Refused(DomainError::UnknownDocumentType));
        };
        if unknown {
            return Err(Error::Refused(DomainError::UnknownSecurityFeature));
        }
        let clerk = room.clerk_id()?;
        match result.as_str() {
            "failed" => Ok(SessionCommand::FailIdentityCheck {
                session: room.session,
                document_type,
                questions_asked,
                reason: Personal::plain(if reason.is_empty() {
                    "ohne Angabe".to_owned()
                } else {
                    reason
                }),
                clerk,
            }),
            _ => Ok(SessionCommand::VerifyIdentity {
                session: room.session,
                document_type,
                features_checked: features,
                questions_asked,
                clerk,
            }),
        }
    })
    .await
}
