//! Signing a form in the room: the clerk asks for a signature by one of the allowed methods,
//! the citizen signs, and the server renders the filled form to PDF, seals it with the
//! municipality's seal (ADR 0018), stores it sealed under the subject's key and records
//! `FormSigned` + `FormLocked` with the PDF's SHA-256.
//!
//! - **Hidden-TAN:** the code is made on the citizen's request and returned only in the answer
//!   to that request, as an image (no text), which the citizen's page shows. It is never sent
//!   to a socket, written to a log or stored; the log keeps a keyed digest ([`TanCodes`]).
//! - **Handy-TAN:** the code goes by SMS ([`SmsGateway`]) to the phone number of the booking;
//!   the page shows the number masked.
//! - **TAN rules** are core's: used once, valid 5 minutes, locked after 5 wrong codes.
//! - **Touchpad:** the strokes with their times are drawn into the PDF and kept sealed in the
//!   blob store as the evidence; their SHA-256 is the evidence hash.
//! - **Nothing half-written:** the PDF (and strokes) are stored first and `SignForm` last; if
//!   it is refused the blobs are deleted again.
//!
//! [`TanCodes`]: videoamt_adapters::tan::TanCodes

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::json;
use sha2::Digest as _;
use uuid::Uuid;
use videoamt_core::blobs::{BlobContent, BlobName, BlobStore as _};
use videoamt_core::domain::document::Sha256;
use videoamt_core::domain::events::Party;
use videoamt_core::domain::form::FormCommand;
use videoamt_core::domain::{DomainError, FormId};
use videoamt_core::keys::reveal;
use videoamt_core::seal::{FormDocument, FormSealer as _, SignatureEvidence, StrokePoint};
use videoamt_core::sms::{OutgoingSms, masked};
use videoamt_core::tenant::SignatureMethod;

use super::access::{self, Room};
use super::forms::{self, FormView};
use super::hub::Nudge;
use crate::http::AppState;
use crate::http::error::Error;
use crate::http::extract::PageForm as Form;
use crate::http::html::{page, problem_page};

const CITIZEN: &str = "/termin/{token}/raum/formular/{form}";
const CLERK: &str = "/sachbearbeitung/termin/{id}/raum/formular/{form}";

/// The most strokes and points a touchpad signature may have: a signature is a few strokes
/// of a few hundred points; more is not a signature.
const MAX_STROKES: usize = 64;
const MAX_POINTS: usize = 8_000;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route(&format!("{CLERK}/unterschrift"), post(request))
        .route(&format!("{CITIZEN}/tan"), post(issue_tan))
        .route(&format!("{CITIZEN}/unterschreiben"), post(sign))
        .route(&format!("{CITIZEN}/pdf"), get(citizen_pdf))
        .route(&format!("{CLERK}/pdf"), get(clerk_pdf))
}

/// German words for a method, as the page and the PDF say them.
pub(crate) fn method_words(method: SignatureMethod) -> &'static str {
    match method {
        SignatureMethod::Touchpad => "Unterschrift auf dem Touchpad",
        SignatureMethod::HiddenTan => "Hidden-TAN",
        SignatureMethod::HandyTan => "Handy-TAN (SMS)",
    }
}

/// The method's name on the wire and in forms: its serde name (`hidden_tan`).
fn method_slug(method: SignatureMethod) -> String {
    serde_json::to_value(method)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

fn parse_method(slug: &str) -> Option<SignatureMethod> {
    serde_json::from_value(serde_json::Value::String(slug.to_owned())).ok()
}

/// The signing part of a form on a room page. `base` is the party's form route.
pub(crate) fn panel(room: &Room, form: &FormView, base: &str) -> Markup {
    let id = form.id.0;
    let action = format!("{base}/{id}");
    html! {
        @if form.locked {
            p {
                a href={ (action) "/pdf" } download { "Unterschriebenes Formular (PDF) herunterladen" }
            }
        } @else if let Some(method) = form.requested {
            @if room.party == Party::Citizen {
                section class="unterschrift" data-method=(method_slug(method)) aria-label="Unterschreiben" {
                    h4 { "Unterschreiben: " (method_words(method)) }
                    @match method {
                        SignatureMethod::Touchpad => {
                            p { "Bitte unterschreiben Sie im Feld mit Finger, Stift oder Maus." }
                            canvas class="unterschrift-feld" width="480" height="160"
                                aria-label="Unterschriftsfeld" {}
                            p {
                                button type="button" class="unterschrift-loeschen" { "Neu beginnen" }
                                " "
                                button type="button" class="unterschrift-senden"
                                    data-action={ (action) "/unterschreiben" } { "Unterschreiben" }
                            }
                            noscript { p class="field-error" { "Die Unterschrift auf dem Touchpad braucht JavaScript." } }
                            @if form.methods.len() > 1 {
                                p {
                                    "Klappt es so nicht? Sagen Sie es der Sachbearbeitung: Sie kann \
                                     stattdessen ein anderes Verfahren anfordern."
                                }
                            }
                        }
                        _ => {
                            form method="post" action={ (action) "/tan" } class="inline tan-anfordern" {
                                button type="submit" {
                                    @if method == SignatureMethod::HandyTan { "TAN per SMS senden" }
                                    @else { "TAN anzeigen" }
                                }
                            }
                            div class="tan-bild" aria-live="polite" {}
                            form method="post" action={ (action) "/unterschreiben" } class="tan-eingabe" {
                                label for={ "tan-" (id) } { "TAN (6 Ziffern)" }
                                " "
                                input id={ "tan-" (id) } name="tan" inputmode="numeric"
                                    autocomplete="one-time-code" pattern="[0-9 ]{6,7}" maxlength="7" required;
                                " "
                                button type="submit" { "Mit TAN unterschreiben" }
                            }
                        }
                    }
                    p class="unterschrift-meldung" role="alert" {}
                }
            } @else {
                p class="notice" role="status" {
                    "Unterschrift angefordert: " (method_words(method))
                    ". Die Bürgerin oder der Bürger unterschreibt jetzt."
                }
                // When the method does not work for the citizen (no pen, the phone not at
                // hand), the clerk asks for another one; the newest request is the one that
                // counts.
                @let others: Vec<SignatureMethod> =
                    form.methods.iter().copied().filter(|m| *m != method).collect();
                @if !others.is_empty() {
                    (method_choice(&action, id, &others, "Stattdessen anfordern"))
                }
            }
        } @else if room.party == Party::Clerk {
            (method_choice(&action, id, &form.methods, "Unterschrift anfordern"))
        }
    }
}

/// The clerk's request of a signature by one of `methods`.
fn method_choice(action: &str, id: Uuid, methods: &[SignatureMethod], label: &str) -> Markup {
    html! {
        form method="post" action={ (action) "/unterschrift" } class="inline" {
            label for={ "methode-" (id) } { (label) }
            " "
            select id={ "methode-" (id) } name="methode" {
                @for m in methods {
                    option value=(method_slug(*m)) { (method_words(*m)) }
                }
            }
            " "
            button type="submit" { "Anfordern" }
        }
    }
}

fn form_id(raw: &str) -> Result<FormId, Error> {
    Uuid::parse_str(raw)
        .map(FormId)
        .map_err(|_| access::no_room())
}

/// Both pages read the forms again (a signature was asked for, a form was locked).
fn forms_changed(state: &AppState, room: &Room) {
    for party in [Party::Citizen, Party::Clerk] {
        state
            .hub
            .tell(room.session, party, Nudge::Send(json!({"type": "forms"})));
    }
}

#[derive(Debug, Deserialize)]
struct Request {
    methode: String,
}

/// `POST …/formular/{form}/unterschrift`: the clerk asks for the citizen's signature.
async fn request(
    State(state): State<AppState>,
    Path((id, form)): Path<(String, String)>,
    headers: HeaderMap,
    Form(body): Form<Request>,
) -> Response {
    let room = match access::clerk(&state, &headers, &id).await {
        Ok(room) => room,
        Err(Error::LoginRequired) => return Redirect::to("/anmelden").into_response(),
        Err(e) => return problem_page(&e),
    };
    let result = async {
        let form = form_id(&form)?;
        let method = parse_method(&body.methode)
            .ok_or(Error::Refused(DomainError::SignatureNotRequested))?;
        room.state.in_room()?;
        room.act(&state, FormCommand::RequestSignature { form, method })
            .await
    }
    .await;
    forms_changed(&state, &room);
    match result {
        Ok(()) => Redirect::to(&format!("/sachbearbeitung/termin/{id}/raum")).into_response(),
        Err(e) => problem_page(&e),
    }
}

/// Whether the browser's script asked (JSON) or a plain form was sent (a page).
fn wants_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/json"))
}

/// The form as the citizen's room shows it, and its state.
async fn citizen_form(
    state: &AppState,
    token: &str,
    form: &str,
) -> Result<(Room, FormView), Error> {
    let room = access::citizen(state, token).await?;
    room.state.in_room()?;
    let form = form_id(form)?;
    let view = forms::forms(state, &room)
        .await?
        .into_iter()
        .find(|f| f.id == form)
        .ok_or_else(access::no_room)?;
    Ok((room, view))
}

/// `POST …/formular/{form}/tan`: a new TAN for the citizen, shown (Hidden-TAN) or sent
/// (Handy-TAN). The code is in this answer only.
async fn issue_tan(
    State(state): State<AppState>,
    Path((token, form)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let json = wants_json(&headers);
    let answer = async {
        let (room, view) = citizen_form(&state, &token, &form).await?;
        let method = view
            .requested
            .ok_or(Error::Refused(DomainError::SignatureNotRequested))?;
        let tan = state.system.tans.issue(view.id).map_err(Error::internal)?;
        let issue = FormCommand::IssueTan {
            form: view.id,
            method,
            tan: tan.id,
            digest: tan.digest,
        };
        match method {
            SignatureMethod::HandyTan => {
                let phone = phone_of(&state, &room).await?;
                let sms = OutgoingSms {
                    to: phone.clone(),
                    text: format!(
                        "Ihre TAN für die Unterschrift bei der {}: {}. Sie gilt 5 Minuten. \
                         Geben Sie sie nur im Videotermin ein.",
                        room.tenant.name, tan.code
                    ),
                    owner: room.subject,
                    key: tan.id,
                };
                // Sent first, recorded after: a TAN that never arrived is not recorded, so a
                // failed send leaves nothing behind and the citizen simply asks again.
                let gateway = state.system.sms().map_err(Error::internal)?;
                gateway.send(&sms).await.map_err(Error::Sms)?;
                room.act(&state, issue).await?;
                Ok::<_, Error>(json!({ "method": "handy_tan", "sent_to": masked(&phone) }))
            }
            _ => {
                room.act(&state, issue).await?;
                Ok(json!({ "method": "hidden_tan", "image": tan_image(&tan.code) }))
            }
        }
    }
    .await;
    let back = format!("/termin/{token}/warteraum");
    match (answer, json) {
        (Ok(body), true) => {
            ([(header::CACHE_CONTROL, "no-store")], axum::Json(body)).into_response()
        }
        (Ok(body), false) => {
            let shown = html! {
                @if let Some(image) = body["image"].as_str() {
                    p { "Ihre TAN (nur auf Ihrem Bildschirm sichtbar):" }
                    p { img src=(image) alt="TAN als Bild; bitte abtippen" width="300" height="80"; }
                } @else {
                    p { "Die TAN ist per SMS an " (body["sent_to"].as_str().unwrap_or("")) " unterwegs." }
                }
                form method="post" action={ "/termin/" (token) "/raum/formular/" (form) "/unterschreiben" } {
                    label for="tan" { "TAN (6 Ziffern)" }
                    " "
                    input id="tan" name="tan" inputmode="numeric" autocomplete="one-time-code" required;
                    " "
                    button type="submit" { "Mit TAN unterschreiben" }
                }
                p { a href=(back) { "Zurück zum Termin" } }
            };
            let mut response = page(StatusCode::OK, "TAN", shown);
            response
                .headers_mut()
                .insert(header::CACHE_CONTROL, "no-store".parse().expect("header"));
            response
        }
        (Err(e), true) => e.into_response(),
        (Err(e), false) => problem_page(&e),
    }
}

/// The phone number of the booking, opened.
async fn phone_of(state: &AppState, room: &Room) -> Result<String, Error> {
    let (appointment, _) = state
        .system
        .appointment(room.appointment)
        .await?
        .ok_or_else(access::no_room)?;
    let contact = appointment.booking.ok_or_else(access::no_room)?.contact;
    let phone = contact.phone.ok_or(Error::InvalidData(
        "Für die Handy-TAN fehlt eine Telefonnummer. Bitte wählen Sie mit der Sachbearbeitung \
         ein anderes Verfahren."
            .to_owned(),
    ))?;
    Ok(reveal(state.system.keys.as_ref(), &phone)
        .await
        .map_err(Error::internal)?
        .shown()
        .to_owned())
}

#[derive(Debug, Deserialize)]
struct Signing {
    /// The TAN as typed (TAN methods).
    #[serde(default)]
    tan: Option<String>,
    /// The touchpad's strokes as JSON (touchpad).
    #[serde(default)]
    striche: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Strokes {
    width: u32,
    height: u32,
    strokes: Vec<Vec<StrokePoint>>,
}

/// `POST …/formular/{form}/unterschreiben`: the citizen signs with the TAN or the strokes.
async fn sign(
    State(state): State<AppState>,
    Path((token, form)): Path<(String, String)>,
    headers: HeaderMap,
    Form(body): Form<Signing>,
) -> Response {
    let json = wants_json(&headers);
    let result = async {
        let (room, view) = citizen_form(&state, &token, &form).await?;
        if view.locked {
            return Err(Error::Refused(DomainError::FormLocked));
        }
        let method = view
            .requested
            .ok_or(Error::Refused(DomainError::SignatureNotRequested))?;
        let (evidence, evidence_bytes) = match method {
            SignatureMethod::Touchpad => {
                let strokes = body.striche.as_deref().ok_or_else(|| {
                    Error::InvalidData(
                        "Bitte unterschreiben Sie zuerst im Unterschriftsfeld.".to_owned(),
                    )
                })?;
                touchpad(strokes)?
            }
            _ => {
                let typed = body.tan.as_deref().unwrap_or("").trim().to_owned();
                enter_tan(&state, &room, view.id, &typed).await?;
                let line = format!(
                    "Unterschrieben mit {} am {}",
                    method_words(method),
                    videoamt_core::german::moment(room.tenant.local(state.now()))
                );
                let record = json!({ "method": method_slug(method), "line": line });
                (
                    SignatureEvidence::Tan { line },
                    record.to_string().into_bytes(),
                )
            }
        };
        seal_and_sign(&state, &room, &view, method, evidence, evidence_bytes).await?;
        Ok(room)
    }
    .await;
    let back = format!("/termin/{token}/warteraum");
    match result {
        Ok(room) => {
            forms_changed(&state, &room);
            if json {
                axum::Json(json!({ "signed": true })).into_response()
            } else {
                Redirect::to(&back).into_response()
            }
        }
        Err(e) if json => e.into_response(),
        Err(e) => problem_page(&e),
    }
}

/// Checks the typed TAN against the newest one: a wrong one is recorded and refused with the
/// attempts left.
async fn enter_tan(state: &AppState, room: &Room, form: FormId, typed: &str) -> Result<(), Error> {
    let folded = forms::form_state(state, form).await?;
    let tan = folded
        .tan
        .as_ref()
        .ok_or(Error::Refused(DomainError::NoTan))?;
    let digest = state.system.tans.digest(form, tan.issued.tan, typed);
    room.act(state, FormCommand::EnterTan { form, digest })
        .await?;
    let after = forms::form_state(state, form).await?;
    match after.tan {
        Some(t) if t.accepted => Ok(()),
        Some(t) => {
            let left = videoamt_core::domain::form::TAN_ATTEMPTS.saturating_sub(t.attempts);
            Err(Error::InvalidData(if left == 0 {
                "Die TAN ist falsch. Sie wurde 5-mal falsch eingegeben und ist jetzt gesperrt; \
                 bitte fordern Sie eine neue TAN an."
                    .to_owned()
            } else {
                format!("Die TAN ist falsch. Sie haben noch {left} Versuch(e).")
            }))
        }
        None => Err(Error::Refused(DomainError::NoTan)),
    }
}

/// The strokes, checked: a few strokes of finite points inside a sane canvas.
fn touchpad(raw: &str) -> Result<(SignatureEvidence, Vec<u8>), Error> {
    let bad = || {
        Error::InvalidData(
            "Die Unterschrift ist nicht lesbar. Bitte unterschreiben Sie neu.".to_owned(),
        )
    };
    let strokes: Strokes = serde_json::from_str(raw).map_err(|_| bad())?;
    let points: usize = strokes.strokes.iter().map(Vec::len).sum();
    let sane = (1..=4_000).contains(&strokes.width)
        && (1..=4_000).contains(&strokes.height)
        && strokes.strokes.len() <= MAX_STROKES
        && points <= MAX_POINTS
        && strokes
            .strokes
            .iter()
            .flatten()
            .all(|p| p.x.is_finite() && p.y.is_finite());
    if !sane {
        return Err(bad());
    }
    if points < 2 {
        return Err(Error::InvalidData(
            "Bitte unterschreiben Sie zuerst im Unterschriftsfeld.".to_owned(),
        ));
    }
    Ok((
        SignatureEvidence::Touchpad {
            strokes: strokes.strokes,
            width: strokes.width,
            height: strokes.height,
        },
        raw.as_bytes().to_vec(),
    ))
}

/// Renders and seals the PDF, stores it and the evidence sealed, then records the signature.
async fn seal_and_sign(
    state: &AppState,
    room: &Room,
    view: &FormView,
    method: SignatureMethod,
    evidence: SignatureEvidence,
    evidence_bytes: Vec<u8>,
) -> Result<(), Error> {
    let service =
        (room.tenant.services.get(&view.service)).map_or_else(String::new, |s| s.name.clone());
    let document = FormDocument {
        tenant: room.tenant.id.clone(),
        municipality: room.tenant.name.clone(),
        service,
        title: view.title.clone(),
        fields: view
            .fields
            .iter()
            .map(|f| (f.label.clone(), f.kind.printed(&f.value)))
            .collect(),
        signed_at: room.tenant.zoned(state.now()),
        signature_method: method_words(method).to_owned(),
        evidence,
    };
    let sealer = state.system.sealer.clone();
    let sealed = tokio::task::spawn_blocking(move || sealer.render_and_seal(&document))
        .await
        .map_err(Error::internal)?
        .map_err(|e| {
            tracing::error!(session = %room.session, error = %e, "form not sealed");
            Error::Unavailable(format!("form not sealed: {e}"))
        })?;
    let pdf = pdf_blob(view.id)?;
    let evidence_blob =
        BlobName::parse(&format!("{}-evidence", view.id.0)).map_err(Error::internal)?;
    let blobs = &state.system.blobs;
    blobs
        .put(room.subject, &pdf, &sealed.pdf)
        .await
        .map_err(Error::internal)?;
    if let Err(e) = blobs
        .put(room.subject, &evidence_blob, &evidence_bytes)
        .await
    {
        let _ = blobs.delete(room.subject, &pdf).await;
        return Err(Error::internal(e));
    }
    let signed = room
        .act(
            state,
            FormCommand::SignForm {
                form: view.id,
                method,
                evidence_sha256: Sha256::from_bytes(sha2::Sha256::digest(&evidence_bytes).into()),
                document_sha256: Sha256::from_bytes(sealed.sha256),
                // The PDF shows the values of `view`: a change since is refused.
                edits_seen: Some(view.edits),
            },
        )
        .await;
    if signed.is_err() {
        // Nothing half-written: the refused signature leaves no PDF and no strokes behind.
        let _ = blobs.delete(room.subject, &pdf).await;
        let _ = blobs.delete(room.subject, &evidence_blob).await;
    }
    signed
}

pub(crate) fn pdf_blob(form: FormId) -> Result<BlobName, Error> {
    BlobName::parse(&format!("{}-signed", form.0)).map_err(Error::internal)
}

async fn citizen_pdf(
    State(state): State<AppState>,
    Path((token, form)): Path<(String, String)>,
) -> Response {
    match access::citizen(&state, &token).await {
        Ok(room) => signed_pdf(&state, &room, &form).await,
        Err(e) => problem_page(&e),
    }
}

async fn clerk_pdf(
    State(state): State<AppState>,
    Path((id, form)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    match access::clerk(&state, &headers, &id).await {
        Ok(room) => signed_pdf(&state, &room, &form).await,
        Err(Error::LoginRequired) => Redirect::to("/anmelden").into_response(),
        Err(e) => problem_page(&e),
    }
}

/// The sealed PDF of a signed form of this room, for either party.
async fn signed_pdf(state: &AppState, room: &Room, form: &str) -> Response {
    let answer = async {
        let form = form_id(form)?;
        if !room.state.forms.contains_key(&form) {
            return Err(access::no_room());
        }
        let name = pdf_blob(form)?;
        match state.system.blobs.get(room.subject, &name).await {
            Ok(BlobContent::Bytes(bytes)) => Ok(bytes),
            Ok(BlobContent::Erased) => Err(Error::not_found(
                "Das Formular wurde nach Ablauf der Aufbewahrungsfrist gelöscht.",
            )),
            Err(_) => Err(access::no_room()),
        }
    }
    .await;
    match answer {
        Ok(bytes) => (
            [
                (header::CONTENT_TYPE, "application/pdf".to_owned()),
                (
                    header::CONTENT_DISPOSITION,
                    "attachment; filename=\"formular-unterschrieben.pdf\"".to_owned(),
                ),
                (header::CACHE_CONTROL, "no-store".to_owned()),
            ],
            Body::from(bytes),
        )
            .into_response(),
        Err(e) => problem_page(&e),
    }
}

/// The code as an SVG image drawn from strokes (seven-segment digits), so the page holds no
/// text of it: a data URL the citizen's page shows.
fn tan_image(code: &str) -> String {
    // Segments a–g of a seven-segment digit, as lines in a 20 × 36 box.
    const SEGMENTS: [(f32, f32, f32, f32); 7] = [
        (2.0, 2.0, 18.0, 2.0),
        (18.0, 2.0, 18.0, 18.0),
        (18.0, 18.0, 18.0, 34.0),
        (2.0, 34.0, 18.0, 34.0),
        (2.0, 18.0, 2.0, 34.0),
        (2.0, 2.0, 2.0, 18.0),
        (2.0, 18.0, 18.0, 18.0),
    ];
    const DIGITS: [u8; 10] = [
        0b011_1111, 0b000_0110, 0b101_1011, 0b100_1111, 0b110_0110, 0b110_1101, 0b111_1101,
        0b000_0111, 0b111_1111, 0b110_1111,
    ];
    let mut path = String::new();
    for (i, c) in code.chars().enumerate() {
        let Some(d) = c.to_digit(10) else { continue };
        let x0 = 8.0 + 32.0 * i as f32 + if i >= 3 { 12.0 } else { 0.0 };
        for (s, (x1, y1, x2, y2)) in SEGMENTS.iter().enumerate() {
            if DIGITS[d as usize] & (1 << s) != 0 {
                path.push_str(&format!(
                    "M{:.1} {:.1}L{:.1} {:.1}",
                    x0 + x1,
                    6.0 + y1,
                    x0 + x2,
                    6.0 + y2
                ));
            }
        }
    }
    let svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"300\" height=\"80\" viewBox=\"0 0 216 48\">\
         <rect width=\"216\" height=\"48\" fill=\"#fff\"/>\
         <path d=\"{path}\" stroke=\"#111\" stroke-width=\"3.5\" stroke-linecap=\"round\" fill=\"none\"/></svg>"
    );
    format!(
        "data:image/svg+xml;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(svg)
    )
}
