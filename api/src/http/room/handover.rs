//! Handing the visit over to the case system (`Fachverfahren`, issue 17): for a service with a
//! case system (the weapons card), the clerk hands the signed forms over before ending the
//! session. The record holds each signed form's fields, opened as the room shows them, and
//! its sealed PDF; the port ([`CaseSystem`]) answers with a reference, which
//! `HandedOverToCaseSystem` records. Without that event the purge of a completed visit stays
//! blocked, so nothing that must be kept is scrubbed before the case system has it.
//!
//! A second handover records nothing: the room shows it done. A case system that fails or
//! refuses is answered with a German page that names it and says that nothing was recorded
//! ([`Error::CaseSystem`], 502); the clerk presses again.
//!
//! [`CaseSystem`]: videoamt_core::case_system::CaseSystem

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use videoamt_core::blobs::{BlobContent, BlobStore as _};
use videoamt_core::case_system::{CaseForm, CasePdf, CaseRecord};
use videoamt_core::domain::DomainError;
use videoamt_core::domain::DomainEvent;
use videoamt_core::domain::session::SessionCommand;
use videoamt_core::tenant::Service;

use super::access::{self, Room};
use super::{forms, signing};
use crate::http::AppState;
use crate::http::error::Error;
use crate::http::html::problem_page;

/// The session's service that has a case system, if any (the first, as the purge's rule).
pub(crate) fn service(room: &Room) -> Option<&Service> {
    let opened = room.state.opened.as_ref()?;
    opened
        .services
        .iter()
        .filter_map(|s| room.tenant.service(s))
        .find(|s| s.case_system.is_some())
}

/// The handover as the room shows it: the case system and, once handed over, the reference.
#[derive(Debug, Clone)]
pub(crate) struct Handover {
    pub target: String,
    pub reference: Option<String>,
}

/// The room's handover, if one of its services has a case system.
pub(crate) async fn handover(state: &AppState, room: &Room) -> Result<Option<Handover>, Error> {
    let Some(target) = service(room).and_then(|s| s.case_system.clone()) else {
        return Ok(None);
    };
    let mut reference = None;
    if room.state.handed_over_to.contains(&target) {
        let history = state.system.history(&room.session.stream()).await?;
        reference = history.iter().rev().find_map(|(_, e)| match e {
            DomainEvent::HandedOverToCaseSystem(h) if h.target == target => {
                Some(h.reference.clone())
            }
            _ => None,
        });
    }
    Ok(Some(Handover { target, reference }))
}

/// The clerk's panel: the button, or the done state.
pub(crate) fn panel(handover: &Handover, base: &str) -> Markup {
    html! {
        section aria-labelledby="uebergabe" {
            h2 id="uebergabe" { "Übergabe an das Fachverfahren" }
            @if let Some(reference) = &handover.reference {
                p class="notice" role="status" {
                    "Übergeben an " (handover.target) " (" (reference) ")"
                }
            } @else {
                p {
                    "Die unterschriebenen Formulare gehen an „" (handover.target) "“. Erst danach \
                     dürfen die Daten des Termins nach Ablauf der Frist gelöscht werden."
                }
                form method="post" action={ (base) "/uebergabe" } {
                    button type="submit" { "An Fachverfahren übergeben" }
                }
            }
        }
    }
}

/// `POST …/raum/uebergabe`: hands the signed forms over and records the reference.
pub(crate) async fn hand_over(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let room = match access::clerk(&state, &headers, &id).await {
        Ok(room) => room,
        Err(Error::LoginRequired) => return Redirect::to("/anmelden").into_response(),
        Err(e) => return problem_page(&e),
    };
    let result = run(&state, &room).await;
    state.hub.refresh(room.session);
    match result {
        Ok(()) => Redirect::to(&format!("/sachbearbeitung/termin/{id}/raum")).into_response(),
        Err(e) => problem_page(&e),
    }
}

async fn run(state: &AppState, room: &Room) -> Result<(), Error> {
    room.clerk_id()?;
    let Some(service) = service(room) else {
        return Err(Error::not_found(
            "Für die Anliegen dieses Termins gibt es kein Fachverfahren.",
        ));
    };
    let target = service.case_system.clone().unwrap_or_default();
    if room.state.handed_over_to.contains(&target) {
        // Done already: nothing new is recorded, the room shows the reference.
        return Ok(());
    }
    let record = record(state, room, service, &target).await?;
    let reference = state
        .system
        .case_system()
        .map_err(Error::internal)?
        .hand_over(&record)
        .await
        .map_err(|error| Error::CaseSystem {
            target: target.clone(),
            error,
        })?;
    room.act(
        state,
        SessionCommand::HandOverToCaseSystem {
            session: room.session,
            target,
            reference,
        },
    )
    .await
}

/// The record of the session's signed forms; refused while none is signed.
async fn record(
    state: &AppState,
    room: &Room,
    service: &Service,
    target: &str,
) -> Result<CaseRecord, Error> {
    let mut case_forms = Vec::new();
    let mut pdfs = Vec::new();
    for (form, template) in &room.state.forms {
        let Some(template) = room.tenant.forms.get(template) else {
            continue;
        };
        let folded = forms::form_state(state, *form).await?;
        if !folded.signed {
            continue;
        }
        let view = forms::view(state, *form, template, &folded).await?;
        let name = signing::pdf_blob(*form)?;
        let bytes = match state.system.blobs.get(room.subject, &name).await {
            Ok(BlobContent::Bytes(bytes)) => bytes,
            Ok(BlobContent::Erased) => {
                return Err(Error::not_found(
                    "Das Formular wurde nach Ablauf der Aufbewahrungsfrist gelöscht.",
                ));
            }
            Err(e) => return Err(Error::internal(e)),
        };
        pdfs.push(CasePdf {
            file_name: format!("{:02}-{}.pdf", pdfs.len() + 1, view.title),
            bytes,
        });
        case_forms.push(CaseForm {
            title: view.title,
            fields: (view.fields.into_iter())
                .map(|f| (f.label, f.value))
                .collect(),
        });
    }
    if pdfs.is_empty() {
        return Err(Error::Refused(DomainError::SignatureMissing));
    }
    Ok(CaseRecord {
        tenant: room.tenant.id.to_string(),
        appointment: room.appointment.0,
        service_id: service.id.to_string(),
        service_name: service.name.clone(),
        case_system: target.to_owned(),
        forms: case_forms,
        pdfs,
        handed_over_at: state.now(),
    })
}
