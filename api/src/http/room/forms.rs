//! Forms in the session room, filled in together: the clerk attaches a form of one of the
//! session's services (the tenant's templates), and both parties edit it at once.
//!
//! - **The server is the authority.** Every value goes through `ChangeField`, which checks it
//!   against the template (per field, German reasons) and seals it; the page's own checks
//!   (`required`, `maxlength`, input types) only spare a round trip.
//! - **Live.** With JavaScript a field is sent over the room's socket when it is left or after
//!   a pause in typing; both sockets then get the field's new value and version at once. The
//!   party whose unseen value a stale write replaced is told so. Which field the other side is
//!   in goes over the socket only, never into the log. Without JavaScript the whole form is a
//!   plain POST that saves each changed field.
//! - **Concurrent edits resolve per field, last writer wins in log order** (core): each write
//!   carries the version of the field its writer saw.
//! - **Locked means locked.** After `FormSigned` the fields are shown read-only and every
//!   change is refused by core, from either side and any route, with a German message.
//! - Values are personal data: never logged; errors name the field's label, not its value.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::post;
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;
use videoamt_core::domain::events::Party;
use videoamt_core::domain::form::{FormCommand, FormState};
use videoamt_core::domain::{DomainError, FormId, Personal};
use videoamt_core::keys::reveal;
use videoamt_core::tenant::{FieldKind, FormTemplate, FormTemplateId};

use super::access::{self, Room};
use super::hub::Nudge;
use crate::http::AppState;
use crate::http::error::Error;
use crate::http::extract::PageForm as Form;
use crate::http::html::problem_page;

const CITIZEN: &str = "/termin/{token}/raum/formular";
const CLERK: &str = "/sachbearbeitung/termin/{id}/raum/formular";

/// The room's form routes: the clerk attaches, either side saves without JavaScript.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route(CLERK, post(attach))
        .route(&format!("{CLERK}/{{form}}"), post(clerk_save))
        .route(&format!("{CITIZEN}/{{form}}"), post(citizen_save))
}

pub(crate) fn citizen_base(token: &str) -> String {
    format!("/termin/{token}/raum/formular")
}

pub(crate) fn clerk_base(room: &Room) -> String {
    format!(
        "/sachbearbeitung/termin/{}/raum/formular",
        room.appointment.0
    )
}

/// One field as the page shows it.
#[derive(Debug, Clone)]
pub(crate) struct FieldView {
    pub id: String,
    pub label: String,
    pub kind: FieldKind,
    pub required: bool,
    pub value: String,
    pub version: u64,
}

/// One attached form as the page shows it.
#[derive(Debug, Clone)]
pub(crate) struct FormView {
    pub id: FormId,
    pub title: String,
    pub fields: Vec<FieldView>,
    pub locked: bool,
    /// The signature the clerk asked for, while the form is not signed.
    pub requested: Option<videoamt_core::tenant::SignatureMethod>,
    /// The signature methods the template allows.
    pub methods: Vec<videoamt_core::tenant::SignatureMethod>,
    /// How many changes the values shown are based on (`FormState::edits`).
    pub edits: u64,
    /// The service the form belongs to.
    pub service: videoamt_core::tenant::ServiceId,
}

/// The session's forms with their values opened, in the order they were attached.
pub(crate) async fn forms(state: &AppState, room: &Room) -> Result<Vec<FormView>, Error> {
    let mut views = Vec::new();
    for (form, template) in &room.state.forms {
        let Some(template) = room.tenant.forms.get(template) else {
            continue;
        };
        let folded = form_state(state, *form).await?;
        views.push(view(state, *form, template, &folded).await?);
    }
    Ok(views)
}

pub(crate) async fn form_state(state: &AppState, form: FormId) -> Result<FormState, Error> {
    let history = state.system.history(&form.stream()).await?;
    Ok(history
        .iter()
        .fold(FormState::default(), |s, (_, e)| s.evolve(e)))
}

async fn opened(state: &AppState, form: FormId, value: Option<&Personal>) -> Result<String, Error> {
    match value {
        None => Ok(String::new()),
        Some(value) => Ok(reveal(state.system.keys.as_ref(), value)
            .await
            .map_err(|e| Error::internal(format!("form {form}: {e}")))?
            .shown()
            .to_owned()),
    }
}

pub(crate) async fn view(
    state: &AppState,
    form: FormId,
    template: &FormTemplate,
    folded: &FormState,
) -> Result<FormView, Error> {
    let mut fields = Vec::new();
    for def in &template.fields {
        fields.push(FieldView {
            id: def.id.clone(),
            label: def.label.clone(),
            kind: def.kind.clone(),
            required: def.required,
            value: opened(state, form, folded.values.get(&def.id)).await?,
            version: folded.version(&def.id),
        });
    }
    Ok(FormView {
        id: form,
        title: template.title.clone(),
        fields,
        locked: folded.locked || folded.signed,
        requested: folded.requested,
        methods: template.signature_methods.iter().copied().collect(),
        edits: folded.edits,
        service: template.service.clone(),
    })
}

/// The templates the clerk may still attach: those of the session's services not attached yet.
fn attachable(room: &Room) -> Vec<&FormTemplate> {
    let Some(opened) = room.state.opened.as_ref() else {
        return vec![];
    };
    room.tenant
        .forms
        .values()
        .filter(|t| opened.services.contains(&t.service))
        .filter(|t| !room.state.forms.values().any(|a| *a == t.id))
        .collect()
}

/// Sets one field as `room`'s party, then tells both sockets the field's new state. A refusal
/// (locked, invalid, not admitted) changes nothing and is returned for the caller to show.
pub(crate) async fn change(
    state: &AppState,
    room: &Room,
    form: FormId,
    field: &str,
    value: &str,
    based_on: Option<u64>,
) -> Result<(), Error> {
    room.state.in_room()?;
    if !room.state.forms.contains_key(&form) {
        return Err(DomainError::UnknownForm.into());
    }
    room.act(
        state,
        FormCommand::ChangeField {
            form,
            field: field.to_owned(),
            value: Personal::plain(value),
            by: room.party,
            based_on,
        },
    )
    .await?;
    let folded = form_state(state, form).await?;
    let Some(version) = folded.versions.get(field).copied() else {
        return Ok(());
    };
    let shown = opened(state, form, folded.values.get(field)).await?;
    // Whose value this write replaced unseen: the last event of the field says.
    let overwrote = state
        .system
        .history(&form.stream())
        .await?
        .iter()
        .rev()
        .find_map(|(_, e)| match e {
            videoamt_core::domain::DomainEvent::FieldChanged(c) if c.field == field => {
                Some(c.overwrote)
            }
            _ => None,
        })
        .flatten();
    for party in [Party::Citizen, Party::Clerk] {
        state.hub.tell(
            room.session,
            party,
            Nudge::Send(json!({
                "type": "field",
                "form": form.0,
                "field": field,
                "value": shown,
                "version": version.version,
                "by": version.by,
                "replaced_yours": overwrote == Some(party),
            })),
        );
    }
    Ok(())
}

/// The forms' part of a room page. `base` is the party's form route.
pub(crate) fn panel(room: &Room, forms: &[FormView], base: &str) -> Markup {
    let attachable = if room.party == Party::Clerk {
        attachable(room)
    } else {
        vec![]
    };
    html! {
        section id="formulare" aria-labelledby="formulare-titel" data-count=(forms.len()) {
            h2 id="formulare-titel" { "Formulare" }
            @if forms.is_empty() {
                p {
                    @if room.party == Party::Clerk {
                        "Noch kein Formular. Hängen Sie das Formular des Anliegens an; dann \
                         füllen Sie es gemeinsam aus."
                    } @else {
                        "Noch kein Formular. Die Sachbearbeitung öffnet es hier; dann füllen \
                         Sie es gemeinsam aus."
                    }
                }
            }
            @for form in forms {
                // A form and its signature together, named by its service for scripts and tests.
                div class="formular-eintrag" data-service=(form.service) {
                    (form_markup(form, base))
                    (super::signing::panel(room, form, base))
                }
            }
            @if !attachable.is_empty() {
                form method="post" action=(base) class="inline" {
                    label for="vorlage" { "Formular anhängen" }
                    " "
                    select id="vorlage" name="vorlage" {
                        @for t in &attachable {
                            option value=(t.id) { (t.title) }
                        }
                    }
                    " "
                    button type="submit" { "Anhängen" }
                }
            }
        }
    }
}

fn form_markup(form: &FormView, base: &str) -> Markup {
    let id = form.id.0;
    html! {
        form method="post" action={ (base) "/" (id) } class="formular" data-form=(id)
            aria-labelledby={ "titel-" (id) } novalidate {
            h3 id={ "titel-" (id) } { (form.title) }
            @if form.locked {
                p class="notice" role="status" {
                    strong { "Unterschrieben und gesperrt." }
                    " Das Formular kann von niemandem mehr geändert werden, auch nicht von der \
                     Sachbearbeitung."
                }
            }
            p class="formular-meldung" role="alert" aria-live="assertive" {}
            @for field in &form.fields {
                (field_markup(form, field))
            }
            @if !form.locked {
                p { button type="submit" { "Speichern" } }
            }
        }
    }
}

fn field_markup(form: &FormView, field: &FieldView) -> Markup {
    let input_id = format!("f-{}-{}", form.id.0, field.id);
    let error_id = format!("{input_id}-fehler");
    let peer_id = format!("{input_id}-gegenseite");
    let locked = form.locked;
    html! {
        div class="feld" data-field=(field.id) {
            @if let FieldKind::Checkbox = field.kind {
                input type="hidden" name=(field.id) value="nein" disabled[locked];
                input type="checkbox" id=(input_id) name=(field.id) value="ja"
                    checked[field.value == "ja"] disabled[locked]
                    data-version=(field.version) aria-describedby={ (error_id) " " (peer_id) };
                " "
                label for=(input_id) { (field.label) }
            } @else {
                label for=(input_id) {
                    (field.label)
                    @if field.required { " (Pflichtfeld)" }
                }
                @match &field.kind {
                    FieldKind::Choice { options } => {
                        select id=(input_id) name=(field.id) required[field.required]
                            disabled[locked] data-version=(field.version)
                            aria-describedby={ (error_id) " " (peer_id) } {
                            option value="" selected[field.value.is_empty()] { "Bitte wählen" }
                            @for o in options {
                                option value=(o) selected[*o == field.value] { (o) }
                            }
                        }
                    }
                    kind => {
                        input id=(input_id) name=(field.id) value=(field.value)
                            type=(input_type(kind)) required[field.required] disabled[locked]
                            maxlength=[max_length(kind)] min=[number_bound(kind, true)]
                            max=[number_bound(kind, false)] data-version=(field.version)
                            aria-describedby={ (error_id) " " (peer_id) };
                    }
                }
            }
            input type="hidden" name={ "version." (field.id) } value=(field.version);
            span class="field-error" id=(error_id) {}
            span class="gegenseite-feld" id=(peer_id) {}
        }
    }
}

fn input_type(kind: &FieldKind) -> &'static str {
    match kind {
        FieldKind::Date => "date",
        FieldKind::Email => "email",
        FieldKind::Number { .. } => "number",
        _ => "text",
    }
}

fn max_length(kind: &FieldKind) -> Option<usize> {
    match kind {
        FieldKind::Text { max_length } => Some(*max_length),
        _ => None,
    }
}

fn number_bound(kind: &FieldKind, lower: bool) -> Option<i64> {
    match kind {
        FieldKind::Number { min, max } => Some(if lower { *min } else { *max }),
        _ => None,
    }
}

// --- the routes ---

#[derive(Debug, Deserialize)]
struct Attach {
    vorlage: String,
}

/// `POST …/raum/formular`: the clerk attaches a form of the session's services.
async fn attach(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Form(attach): Form<Attach>,
) -> Response {
    let room = match access::clerk(&state, &headers, &id).await {
        Ok(room) => room,
        Err(Error::LoginRequired) => return Redirect::to("/anmelden").into_response(),
        Err(e) => return problem_page(&e),
    };
    let command = FormCommand::StartForm {
        session: room.session,
        form: FormId(Uuid::now_v7()),
        template: FormTemplateId(attach.vorlage),
    };
    let result = room.act(&state, command).await;
    state.hub.refresh(room.session);
    match result {
        Ok(()) => Redirect::to(&format!("/sachbearbeitung/termin/{id}/raum")).into_response(),
        Err(e) => problem_page(&e),
    }
}

async fn citizen_save(
    State(state): State<AppState>,
    Path((token, form)): Path<(String, String)>,
    Form(values): Form<Vec<(String, String)>>,
) -> Response {
    let room = match access::citizen(&state, &token).await {
        Ok(room) => room,
        Err(e) => return problem_page(&e),
    };
    save(
        &state,
        &room,
        &form,
        &values,
        &format!("/termin/{token}/warteraum"),
    )
    .await
}

async fn clerk_save(
    State(state): State<AppState>,
    Path((id, form)): Path<(String, String)>,
    headers: HeaderMap,
    Form(values): Form<Vec<(String, String)>>,
) -> Response {
    let room = match access::clerk(&state, &headers, &id).await {
        Ok(room) => room,
        Err(Error::LoginRequired) => return Redirect::to("/anmelden").into_response(),
        Err(e) => return problem_page(&e),
    };
    save(
        &state,
        &room,
        &form,
        &values,
        &format!("/sachbearbeitung/termin/{id}/raum"),
    )
    .await
}

/// The form without JavaScript: each field whose value differs is written on its own, with the
/// version the page showed. Valid fields are kept even when another one is refused; the first
/// refusal is shown.
async fn save(
    state: &AppState,
    room: &Room,
    form: &str,
    values: &[(String, String)],
    back: &str,
) -> Response {
    let Some(form) = Uuid::parse_str(form).ok().map(FormId) else {
        return problem_page(&access::no_room());
    };
    let Some(template) = room.state.forms.get(&form).cloned() else {
        return problem_page(&access::no_room());
    };
    let Some(template) = room.tenant.forms.get(&template) else {
        return problem_page(&access::no_room());
    };
    let current = match form_state(state, form).await {
        Ok(s) => s,
        Err(e) => return problem_page(&e),
    };
    // A checkbox sends its hidden "nein" and, when ticked, "ja": the last one wins.
    let value_of = |field: &str| {
        values
            .iter()
            .rev()
            .find(|(k, _)| k == field)
            .map(|(_, v)| v)
    };
    let version_of = |field: &str| {
        let key = format!("version.{field}");
        values
            .iter()
            .find(|(k, _)| *k == key)
            .and_then(|(_, v)| v.parse::<u64>().ok())
    };
    let mut first_refusal = None;
    for def in &template.fields {
        let Some(value) = value_of(&def.id) else {
            continue;
        };
        let shown = match opened(state, form, current.values.get(&def.id)).await {
            Ok(v) => v,
            Err(e) => return problem_page(&e),
        };
        if *value == shown {
            continue;
        }
        let result = change(
            state,
            room,
            form,
            &def.id,
            value.trim(),
            version_of(&def.id),
        )
        .await;
        if let Err(e) = result
            && first_refusal.is_none()
        {
            first_refusal = Some(e);
        }
    }
    match first_refusal {
        None => Redirect::to(back).into_response(),
        Some(e) => problem_page(&e),
    }
}
