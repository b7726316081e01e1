//! Documents in the session room: either side uploads a PDF, JPEG or PNG, both see it in the
//! room and may download it.
//!
//! - **What is accepted** is decided by the bytes, never by the name or the browser's word:
//!   [`sniff`] reads the file's signature; executables and unknown types are refused (415), and
//!   a file whose name or declared type says something else than its bytes (an executable
//!   renamed `.pdf`, a PNG sent as a PDF) too (422). The cap is `VIDEOAMT_UPLOAD_MAX_BYTES`
//!   (413); the body is cut off there, so a larger one is never read to its end.
//! - **Nothing half-written.** The bytes are sealed under the subject's key in the blob store
//!   (the document id is the blob's name, so the purge deletes them with the subject), then
//!   `UploadDocument` is recorded; if it is refused, the blob is deleted again. A refusal found
//!   before (not admitted, too large, wrong type) writes nothing at all.
//! - **Shared at once.** The room is for both sides, so every upload is followed by
//!   `ShareDocument`. A party sees its own uploads and the other side's shared ones; should the
//!   share be refused (the citizen was sent back meanwhile), the upload stays the uploader's
//!   until a later step shares it.
//! - **Downloads** go through the room's authorization only ([`access`]): a stale link, another
//!   department's clerk and a guessed id are the same 404. `DownloadDocument` is recorded
//!   before a byte is sent, and the bytes are checked against the recorded SHA-256 first.
//! - **No file name is logged**: it is personal data, sealed in the event; errors carry ids.
//!
//! These are room routes (like `/termin/{token}/warteraum`), not part of the documented JSON
//! API: they are kept out of the OpenAPI document, so the schemathesis run does not fuzz
//! uploads into rooms it cannot enter.

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, FromRequest, Multipart, Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use maud::{Markup, html};
use serde::{Deserialize, Serialize};
use sha2::Digest as _;
use uuid::Uuid;
use videoamt_adapters::inspect::{PdfRefusal, inspect_pdf};
use videoamt_core::blobs::{BlobContent, BlobName, BlobStore as _};
use videoamt_core::domain::document::{MediaType, Sha256};
use videoamt_core::domain::events::Party;
use videoamt_core::domain::session::SessionCommand;
use videoamt_core::domain::{DocumentId, DomainError, DomainEvent, Personal};
use videoamt_core::keys::reveal;

use super::access::{self, Room};
use crate::http::AppState;
use crate::http::error::{Error, FieldError};
use crate::http::extract::PageQuery as Query;
use crate::http::html::{format, page, problem_alert};

/// The form field the file comes in.
const FIELD: &str = "datei";

/// What a multipart body may carry besides the file: boundaries, part headers, the name.
const ENVELOPE_BYTES: u64 = 16 * 1024;

/// The longest file name kept, in characters.
const MAX_NAME_CHARS: usize = 200;

const CITIZEN: &str = "/termin/{token}/raum/dokumente";
const CLERK: &str = "/sachbearbeitung/termin/{id}/raum/dokumente";

/// The room's document routes, for both parties.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route(CITIZEN, get(citizen_list).post(citizen_upload))
        .route(&format!("{CITIZEN}/{{document}}"), get(citizen_download))
        .route(CLERK, get(clerk_list).post(clerk_upload))
        .route(&format!("{CLERK}/{{document}}"), get(clerk_download))
        // The global 64 KiB limit would refuse every file; the cap is a setting and applied
        // per request in `read_upload`, cutting the body off there.
        .layer(DefaultBodyLimit::disable())
}

// --- the handlers: one per party and action, the work shared below ---

/// The citizen's room and where its document routes are: under the link.
async fn as_citizen(state: &AppState, token: &str) -> Result<(Room, String), Error> {
    Ok((access::citizen(state, token).await?, citizen_base(token)))
}

/// The clerk's room and where its document routes are: under the appointment.
async fn as_clerk(
    state: &AppState,
    headers: &HeaderMap,
    id: &str,
) -> Result<(Room, String), Error> {
    let room = access::clerk(state, headers, id).await?;
    let base = clerk_base(&room);
    Ok((room, base))
}

async fn citizen_list(State(state): State<AppState>, Path(token): Path<String>) -> Response {
    match as_citizen(&state, &token).await {
        Ok((room, base)) => json_list(&state, &room, &base).await,
        Err(e) => e.into_response(),
    }
}

async fn clerk_list(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    match as_clerk(&state, &headers, &id).await {
        Ok((room, base)) => json_list(&state, &room, &base).await,
        Err(e) => e.into_response(),
    }
}

async fn citizen_upload(
    State(state): State<AppState>,
    Path(token): Path<String>,
    headers: HeaderMap,
    request: Request,
) -> Response {
    let back = format!("/termin/{token}/warteraum");
    let uploaded = match as_citizen(&state, &token).await {
        Ok((room, base)) => upload(&state, &room, &base, &headers, request).await,
        Err(e) => Err(e),
    };
    answer_upload(&headers, &back, uploaded)
}

async fn clerk_upload(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    request: Request,
) -> Response {
    let back = format!("/sachbearbeitung/termin/{id}/raum");
    let uploaded = match as_clerk(&state, &headers, &id).await {
        Ok((room, base)) => upload(&state, &room, &base, &headers, request).await,
        Err(e) => Err(e),
    };
    answer_upload(&headers, &back, uploaded)
}

/// `?herunterladen` asks for an attachment; without it the document opens in the browser.
#[derive(Debug, Deserialize)]
struct DownloadQuery {
    herunterladen: Option<String>,
}

async fn citizen_download(
    State(state): State<AppState>,
    Path((token, document)): Path<(String, String)>,
    Query(q): Query<DownloadQuery>,
    headers: HeaderMap,
) -> Response {
    let back = format!("/termin/{token}/warteraum");
    let sent = match as_citizen(&state, &token).await {
        Ok((room, base)) => {
            download(&state, &room, &base, &document, q.herunterladen.is_some()).await
        }
        Err(e) => Err(e),
    };
    sent.unwrap_or_else(|e| refused(&headers, &back, &e))
}

async fn clerk_download(
    State(state): State<AppState>,
    Path((id, document)): Path<(String, String)>,
    Query(q): Query<DownloadQuery>,
    headers: HeaderMap,
) -> Response {
    let back = format!("/sachbearbeitung/termin/{id}/raum");
    let sent = match as_clerk(&state, &headers, &id).await {
        Ok((room, base)) => {
            download(&state, &room, &base, &document, q.herunterladen.is_some()).await
        }
        Err(e) => Err(e),
    };
    sent.unwrap_or_else(|e| refused(&headers, &back, &e))
}

/// A browser's form post gets a page (or the redirect back to the room); a script gets JSON.
fn wants_page(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("text/html"))
}

fn answer_upload(headers: &HeaderMap, back: &str, uploaded: Result<Document, Error>) -> Response {
    match uploaded {
        Ok(_) if wants_page(headers) => Redirect::to(back).into_response(),
        Ok(document) => {
            let location = HeaderValue::from_str(&document.href).ok();
            let mut response = (StatusCode::CREATED, axum::Json(document)).into_response();
            if let Some(location) = location {
                response.headers_mut().insert(header::LOCATION, location);
            }
            response
        }
        Err(e) => refused(headers, back, &e),
    }
}

/// A refusal: the problem document, or for a browser the same German text as a page with the
/// way back into the room (and to the login, for a clerk without a session).
fn refused(headers: &HeaderMap, back: &str, error: &Error) -> Response {
    if !wants_page(headers) {
        return error.clone().into_response();
    }
    if *error == Error::LoginRequired {
        return Redirect::to("/anmelden").into_response();
    }
    let problem = error.problem();
    let body = html! {
        (problem_alert(&problem))
        p { a href=(back) { "Zurück zur Videositzung" } }
    };
    error.mark(page(error.status(), problem.title, body))
}

// --- what the session holds ---

/// One document of the room as a party sees it.
#[derive(Clone, Serialize)]
pub(crate) struct Document {
    pub id: DocumentId,
    /// The opened file name; "[gelöscht]" once the subject's key is destroyed.
    pub file_name: String,
    pub media_type: MediaType,
    pub size_bytes: u64,
    pub sha256: Sha256,
    /// Who uploaded it.
    pub by: Party,
    /// When, RFC 3339.
    pub uploaded_at: String,
    /// Whether the other side may see it (see the module's "Shared at once").
    pub shared: bool,
    /// Where this party downloads it.
    pub href: String,
}

// The file name is personal data: never printed.
impl std::fmt::Debug for Document {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Document")
            .field("id", &self.id)
            .field("media_type", &self.media_type)
            .field("size_bytes", &self.size_bytes)
            .field("by", &self.by)
            .field("shared", &self.shared)
            .finish_non_exhaustive()
    }
}

/// The room's documents for the party, in upload order, and the upload cap the form names
/// (the room's script gets both as JSON, so that it can refuse a large file before sending).
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Shelf {
    pub documents: Vec<Document>,
    pub max_bytes: u64,
    /// Where the party's document routes are; the form posts there.
    #[serde(skip)]
    pub base: String,
}

/// The citizen's document routes, under the appointment's link.
pub(crate) fn citizen_base(token: &str) -> String {
    format!("/termin/{token}/raum/dokumente")
}

/// The clerk's document routes, under the appointment.
pub(crate) fn clerk_base(room: &Room) -> String {
    format!(
        "/sachbearbeitung/termin/{}/raum/dokumente",
        room.appointment.0
    )
}

/// The documents `room`'s party may see: its own uploads and the other side's shared ones,
/// folded from the session's stream (the state holds only the ids; the events hold the rest).
/// `base` is where the party's document routes are ([`citizen_base`], [`clerk_base`]).
pub(crate) async fn shelf(state: &AppState, room: &Room, base: &str) -> Result<Shelf, Error> {
    let history = state.system.history(&room.session.stream()).await?;
    let mut uploads: Vec<(Document, Personal)> = Vec::new();
    for (e, event) in history {
        match event {
            DomainEvent::DocumentUploaded(u) => {
                let uploaded_at = e
                    .meta
                    .recorded_at
                    .format(&time::format_description::well_known::Rfc3339)
                    .map_err(Error::internal)?;
                let document = Document {
                    id: u.document,
                    file_name: String::new(),
                    media_type: u.media_type,
                    size_bytes: u.size_bytes,
                    sha256: u.sha256,
                    by: u.by,
                    uploaded_at,
                    shared: false,
                    href: format!("{base}/{}", u.document.0),
                };
                uploads.push((document, u.file_name));
            }
            DomainEvent::DocumentShared(s) => {
                if let Some((d, _)) = uploads.iter_mut().find(|(d, _)| d.id == s.document) {
                    d.shared = true;
                }
            }
            _ => {}
        }
    }
    let mut documents = Vec::new();
    for (mut document, name) in uploads {
        if document.by != room.party && !document.shared {
            continue;
        }
        document.file_name = reveal(state.system.keys.as_ref(), &name)
            .await
            .map_err(|e| Error::internal(format!("document {}: {e}", document.id)))?
            .shown()
            .to_owned();
        documents.push(document);
    }
    Ok(Shelf {
        documents,
        max_bytes: state.system.settings.upload_max_bytes,
        base: base.to_owned(),
    })
}

async fn json_list(state: &AppState, room: &Room, base: &str) -> Response {
    // No room data before admission, as for the call itself.
    if let Err(e) = room.state.in_room() {
        return Error::from(e).into_response();
    }
    match shelf(state, room, base).await {
        Ok(shelf) => axum::Json(shelf).into_response(),
        Err(e) => e.into_response(),
    }
}

// --- upload ---

/// A file as it arrived, before anything is decided about it.
struct Upload {
    file_name: Option<String>,
    declared: Option<String>,
    bytes: Vec<u8>,
}

async fn upload(
    state: &AppState,
    room: &Room,
    base: &str,
    headers: &HeaderMap,
    request: Request,
) -> Result<Document, Error> {
    // Before the body is read: a room not yet entered takes nothing.
    room.state.in_room()?;
    let max = state.system.settings.upload_max_bytes;
    let upload = read_upload(state, headers, request, max).await?;
    let file_name = file_name(upload.file_name.as_deref())?;
    if upload.bytes.is_empty() {
        return Err(Error::invalid_fields(vec![field_error(
            "Die Datei ist leer.",
        )]));
    }
    let media_type = accept(&upload.bytes, &file_name, upload.declared.as_deref())?;
    let bytes = if media_type == MediaType::PDF {
        // Inflating may take a while: off the request threads.
        let (bytes, verdict) = tokio::task::spawn_blocking(move || {
            let verdict = inspect_pdf(&upload.bytes, MAX_INFLATED);
            (upload.bytes, verdict)
        })
        .await
        .map_err(Error::internal)?;
        match verdict {
            Ok(()) => bytes,
            Err(PdfRefusal::ActiveContent(_)) => {
                return Err(Error::FileContentRefused(ACTIVE_CONTENT));
            }
            Err(PdfRefusal::Bomb) => return Err(Error::FileContentRefused(BOMB)),
        }
    } else {
        upload.bytes
    };
    let document = DocumentId(Uuid::now_v7());
    let blob = BlobName::parse(&document.0.to_string()).map_err(Error::internal)?;
    let sha256 = Sha256::from_bytes(sha2::Sha256::digest(&bytes).into());
    let size_bytes = bytes.len() as u64;
    state
        .system
        .blobs
        .put(room.subject, &blob, &bytes)
        .await
        .map_err(|e| Error::unavailable(format!("document {document} not stored: {e}")))?;
    let recorded = room
        .act(
            state,
            SessionCommand::UploadDocument {
                session: room.session,
                document,
                by: room.party,
                file_name: Personal::plain(file_name.clone()),
                media_type,
                size_bytes,
                sha256,
            },
        )
        .await;
    if let Err(refusal) = recorded {
        // The command decides, not the check above: the citizen may have been sent back
        // meanwhile. Take the bytes back so that no file outlives its refusal.
        if let Err(e) = state.system.blobs.delete(room.subject, &blob).await {
            tracing::error!(%document, error = %e, "refused upload's blob not deleted");
        }
        return Err(refusal);
    }
    let shared = room
        .act(
            state,
            SessionCommand::ShareDocument {
                session: room.session,
                document,
            },
        )
        .await;
    if let Err(e) = &shared {
        tracing::warn!(%document, status = %e.status(), "uploaded document not shared");
    }
    // Both sockets read the session again, so the other side's list shows it at once.
    state.hub.refresh(room.session);
    let uploaded_at = state
        .now()
        .format(&time::format_description::well_known::Rfc3339)
        .map_err(Error::internal)?;
    Ok(Document {
        id: document,
        file_name,
        media_type,
        size_bytes,
        sha256,
        by: room.party,
        uploaded_at,
        shared: shared.is_ok(),
        href: format!("{base}/{}", document.0),
    })
}

fn field_error(message: &str) -> FieldError {
    FieldError {
        field: FIELD.to_owned(),
        message: message.to_owned(),
    }
}

/// The first file of the multipart body, read up to `max` bytes.
async fn read_upload(
    state: &AppState,
    headers: &HeaderMap,
    request: Request,
    max: u64,
) -> Result<Upload, Error> {
    let limit = max.saturating_add(ENVELOPE_BYTES);
    let declared_length = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared_length.is_some_and(|n| n > limit) {
        return Err(Error::FileTooLarge(max));
    }
    // Also for a body without a length: it is cut off after `limit` bytes.
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let request = request.map(|body| Body::new(http_body_util::Limited::new(body, limit)));
    let mut multipart = Multipart::from_request(request, state).await.map_err(|_| {
        Error::bad_request("Bitte senden Sie die Datei als Formular (multipart/form-data).")
    })?;
    let unreadable = |e: axum::extract::multipart::MultipartError| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            Error::FileTooLarge(max)
        } else {
            Error::bad_request(
                "Die Datei konnte nicht gelesen werden. Bitte versuchen Sie es erneut.",
            )
        }
    };
    while let Some(mut field) = multipart.next_field().await.map_err(unreadable)? {
        if field.name() != Some(FIELD) {
            continue;
        }
        let file_name = field.file_name().map(str::to_owned);
        let declared = field.content_type().map(str::to_owned);
        let mut bytes = Vec::new();
        while let Some(chunk) = field.chunk().await.map_err(unreadable)? {
            if (bytes.len() + chunk.len()) as u64 > max {
                return Err(Error::FileTooLarge(max));
            }
            bytes.extend_from_slice(&chunk);
        }
        return Ok(Upload {
            file_name,
            declared,
            bytes,
        });
    }
    Err(Error::invalid_fields(vec![field_error(
        "Bitte wählen Sie eine Datei aus.",
    )]))
}

/// The file name as it is kept: the last path segment (some browsers send the whole path),
/// without control characters, at most [`MAX_NAME_CHARS`] characters.
fn file_name(raw: Option<&str>) -> Result<String, Error> {
    let raw = raw.unwrap_or_default();
    let last = raw.rsplit(['/', '\\']).next().unwrap_or_default();
    let cleaned: String = last.chars().filter(|c| !c.is_control()).collect();
    let cleaned = cleaned.trim();
    if cleaned.is_empty() || cleaned.chars().all(|c| c == '.') {
        return Err(Error::invalid_fields(vec![field_error(
            "Bitte wählen Sie eine Datei mit Dateinamen aus.",
        )]));
    }
    Ok(cleaned.chars().take(MAX_NAME_CHARS).collect())
}

/// What a file is, by its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sniffed {
    Allowed(MediaType),
    Executable,
    Unknown,
}

/// Reads the file's signature. Only the three allowed types are recognised as such; the
/// executables are named so that the refusal can say what the file is.
fn sniff(bytes: &[u8]) -> Sniffed {
    const PNG: &[u8] = b"\x89PNG\r\n\x1a\n";
    const EXECUTABLES: [&[u8]; 9] = [
        b"MZ",               // Windows PE (.exe, .dll, .scr)
        b"\x7fELF",          // Linux and other Unix programs
        b"#!",               // scripts with an interpreter line
        b"\xfe\xed\xfa\xce", // Mach-O 32 bit
        b"\xfe\xed\xfa\xcf", // Mach-O 64 bit
        b"\xce\xfa\xed\xfe", // Mach-O 32 bit, little endian
        b"\xcf\xfa\xed\xfe", // Mach-O 64 bit, little endian
        b"\xca\xfe\xba\xbe", // Mach-O universal binaries and Java classes
        b"\0asm",            // WebAssembly
    ];
    if bytes.starts_with(b"%PDF-") {
        Sniffed::Allowed(MediaType::PDF)
    } else if bytes.starts_with(&[0xff, 0xd8, 0xff]) {
        Sniffed::Allowed(MediaType::JPEG)
    } else if bytes.starts_with(PNG) {
        Sniffed::Allowed(MediaType::PNG)
    } else if EXECUTABLES.iter().any(|magic| bytes.starts_with(magic)) {
        Sniffed::Executable
    } else {
        Sniffed::Unknown
    }
}

/// The type a browser or the file's extension names, as the allowed type it means, if any
/// (with the aliases browsers still send).
fn named_type(raw: &str) -> Option<MediaType> {
    match raw.trim().to_ascii_lowercase().as_str() {
        "application/pdf" | "application/x-pdf" | "pdf" => Some(MediaType::PDF),
        "image/jpeg" | "image/jpg" | "image/pjpeg" | "jpg" | "jpeg" | "jpe" => {
            Some(MediaType::JPEG)
        }
        "image/png" | "image/x-png" | "png" => Some(MediaType::PNG),
        _ => None,
    }
}

/// How the refusals name a type, and the endings a name of it has.
fn label(media_type: MediaType) -> (&'static str, &'static str) {
    match media_type {
        MediaType::PDF => ("ein PDF-Dokument", ".pdf"),
        MediaType::JPEG => ("ein JPEG-Bild", ".jpg oder .jpeg"),
        _ => ("ein PNG-Bild", ".png"),
    }
}

/// How far an uploaded PDF's streams may inflate in all (a decompression bomb beyond).
const MAX_INFLATED: usize = 64 * 1024 * 1024;
const ACTIVE_CONTENT: &str = "Das PDF enthält aktive Inhalte (ein Skript, eine eingebettete \
     Datei oder eine Aktion, die etwas startet) und wird nicht angenommen. Bitte speichern oder \
     drucken Sie es neu als PDF, oder laden Sie einen Scan hoch.";
const BOMB: &str = "Das PDF entpackt sich auf ein Vielfaches seiner Größe und wird nicht \
     angenommen. Bitte speichern oder drucken Sie es neu als PDF, oder laden Sie einen Scan hoch.";

const WHAT_IS_ACCEPTED: &str =
    "Hochladen können Sie PDF-Dokumente sowie Bilder im Format JPEG oder PNG.";
const EXECUTABLE: &str = "Die Datei ist ein ausführbares Programm und wird nicht angenommen. \
     Hochladen können Sie PDF-Dokumente sowie Bilder im Format JPEG oder PNG.";
const UNKNOWN: &str = "Dieser Dateityp wird nicht angenommen. Hochladen können Sie \
     PDF-Dokumente sowie Bilder im Format JPEG oder PNG.";

/// The file's type if its bytes are an allowed type and its name and declared type say the
/// same; the refusal otherwise.
fn accept(bytes: &[u8], file_name: &str, declared: Option<&str>) -> Result<MediaType, Error> {
    let media_type = match sniff(bytes) {
        Sniffed::Allowed(t) => t,
        Sniffed::Executable => return Err(Error::FileTypeRefused(EXECUTABLE)),
        Sniffed::Unknown => return Err(Error::FileTypeRefused(UNKNOWN)),
    };
    let extension = file_name
        .rsplit_once('.')
        .map(|(_, ext)| ext)
        .and_then(named_type);
    let (what, endings) = label(media_type);
    if extension != Some(media_type) {
        return Err(Error::FileTypeMismatch(format!(
            "Die Datei ist {what}, ihr Name endet aber nicht auf {endings}. Bitte laden Sie \
             die Datei mit ihrer richtigen Endung hoch. {WHAT_IS_ACCEPTED}"
        )));
    }
    // A browser names the type from the extension, or sends `application/octet-stream` when it
    // has no idea: only a claim of another type is a mismatch.
    let claimed = declared
        .map(|d| d.split(';').next().unwrap_or_default().trim())
        .filter(|d| !d.is_empty() && !d.eq_ignore_ascii_case("application/octet-stream"));
    if claimed.is_some_and(|c| named_type(c) != Some(media_type)) {
        return Err(Error::FileTypeMismatch(format!(
            "Die Datei ist {what}, wurde aber als anderer Dateityp gesendet. {WHAT_IS_ACCEPTED}"
        )));
    }
    Ok(media_type)
}

// --- download ---

async fn download(
    state: &AppState,
    room: &Room,
    base: &str,
    raw: &str,
    attachment: bool,
) -> Result<Response, Error> {
    room.state.in_room()?;
    let unknown = || Error::Refused(DomainError::UnknownDocument);
    let id = Uuid::parse_str(raw)
        .map(DocumentId)
        .map_err(|_| unknown())?;
    let shelf = shelf(state, room, base).await?;
    let document = shelf
        .documents
        .into_iter()
        .find(|d| d.id == id)
        .ok_or_else(unknown)?;
    let blob = BlobName::parse(&id.0.to_string()).map_err(Error::internal)?;
    let bytes = match state.system.blobs.get(room.subject, &blob).await {
        Ok(BlobContent::Bytes(bytes)) => bytes,
        Ok(BlobContent::Erased) => {
            return Err(Error::not_found("Dieses Dokument ist bereits gelöscht."));
        }
        Err(e) => return Err(Error::internal(format!("document {id} unreadable: {e}"))),
    };
    let digest = Sha256::from_bytes(sha2::Sha256::digest(&bytes).into());
    if digest != document.sha256 {
        return Err(Error::internal(format!(
            "document {id} does not match its recorded SHA-256"
        )));
    }
    // Recorded before a byte is sent: a download that is not in the log never happened.
    room.act(
        state,
        SessionCommand::DownloadDocument {
            session: room.session,
            document: id,
            by: room.party,
        },
    )
    .await?;
    let disposition = content_disposition(
        if attachment { "attachment" } else { "inline" },
        &document.file_name,
    );
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static(document.media_type.as_str()),
            ),
            (header::CONTENT_DISPOSITION, disposition),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("private, no-store"),
            ),
        ],
        bytes,
    )
        .into_response())
}

/// `inline; filename="ascii"; filename*=UTF-8''percent-encoded` (RFC 6266): the ASCII name for
/// old clients, the exact one for the rest.
fn content_disposition(kind: &str, file_name: &str) -> HeaderValue {
    let ascii: String = file_name
        .chars()
        .map(|c| {
            if (c.is_ascii_graphic() && c != '"' && c != '\\') || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut encoded = String::new();
    for byte in file_name.bytes() {
        // RFC 5987 attr-char: letters, digits and !#$&+-.^_`|~ stay as they are.
        if byte.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&byte) {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    HeaderValue::from_str(&format!(
        "{kind}; filename=\"{ascii}\"; filename*=UTF-8''{encoded}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("attachment"))
}

// --- the room pages' panel ---

/// The room's documents and the upload form, for the room pages of both parties. The form
/// posts without JavaScript and comes back to the room page. Images are previewed with
/// `<img>` inside a closed `<details>` (loaded lazily, so that a page view is no download); a
/// PDF opens in a new tab, as the CSP (`frame-ancestors 'none'`, `X-Frame-Options: DENY`)
/// keeps every page of ours out of frames.
pub(crate) fn panel(room: &Room, shelf: &Shelf) -> Markup {
    let base = &shelf.base;
    let by = |party: Party| {
        if party == room.party {
            "Ihnen"
        } else if party == Party::Clerk {
            "der Sachbearbeitung"
        } else {
            "der Bürgerin oder dem Bürger"
        }
    };
    let kind = |t: MediaType| match t {
        MediaType::PDF => "PDF",
        MediaType::JPEG => "JPEG-Bild",
        _ => "PNG-Bild",
    };
    html! {
        section class="documents" id="dokumente" data-list=(base)
            aria-labelledby="dokumente-titel" {
            h2 id="dokumente-titel" { "Dokumente" }
            @if shelf.documents.is_empty() {
                p { "Noch keine Dokumente. Hochgeladene Dokumente sehen beide Seiten." }
            } @else {
                ul {
                    @for d in &shelf.documents {
                        li {
                            a href=(d.href) target="_blank" rel="noopener" { (d.file_name) }
                            " (öffnet in neuem Tab) – " (kind(d.media_type)) ", "
                            (format::bytes(d.size_bytes)) ", von " (by(d.by)) " um "
                            (format::clock(&room.tenant, &d.uploaded_at)) " Uhr"
                            @if !d.shared { " (nur für Sie sichtbar)" }
                            " "
                            a href={ (d.href) "?herunterladen=1" } download
                                aria-label={ (d.file_name) " herunterladen" } { "Herunterladen" }
                            @if d.media_type != MediaType::PDF {
                                details {
                                    summary { "Vorschau" }
                                    img src=(d.href) alt={ "Vorschau von " (d.file_name) }
                                        loading="lazy";
                                }
                            }
                        }
                    }
                }
            }
            form method="post" action=(base) enctype="multipart/form-data" {
                label for="dokument-datei" {
                    "Dokument hochladen (PDF, JPEG oder PNG, höchstens "
                    (format::bytes(shelf.max_bytes)) ")"
                }
                input type="file" id="dokument-datei" name=(FIELD) required
                    accept=".pdf,.jpg,.jpeg,.png,application/pdf,image/jpeg,image/png";
                button type="submit" { "Hochladen" }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bytes_decide_the_type() {
        assert_eq!(sniff(b"%PDF-1.7\n"), Sniffed::Allowed(MediaType::PDF));
        assert_eq!(
            sniff(b"\xff\xd8\xff\xe0JFIF"),
            Sniffed::Allowed(MediaType::JPEG)
        );
        assert_eq!(
            sniff(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR"),
            Sniffed::Allowed(MediaType::PNG)
        );
        for program in [
            &b"MZ\x90\0"[..],
            b"\x7fELF\x02\x01",
            b"#!/bin/sh\n",
            b"\xcf\xfa\xed\xfe",
        ] {
            assert_eq!(sniff(program), Sniffed::Executable, "{program:?}");
        }
        for other in [
            &b"PK\x03\x04"[..],
            b"Hallo",
            b"<svg",
            b"GIF89a",
            b"",
            b"%PD",
        ] {
            assert_eq!(sniff(other), Sniffed::Unknown, "{other:?}");
        }
    }

    #[test]
    fn name_and_declared_type_must_say_what_the_bytes_are() {
        let pdf = b"%PDF-1.7";
        assert_eq!(accept(pdf, "Antrag.PDF", None), Ok(MediaType::PDF));
        assert_eq!(
            accept(pdf, "a.pdf", Some("application/octet-stream")),
            Ok(MediaType::PDF)
        );
        assert_eq!(
            accept(b"\xff\xd8\xff", "foto.jpeg", Some("image/jpg")),
            Ok(MediaType::JPEG)
        );
        let status = |r: Result<MediaType, Error>| r.map_err(|e| e.status());
        assert_eq!(
            status(accept(b"MZ\x90", "rechnung.pdf", Some("application/pdf"))),
            Err(StatusCode::UNSUPPORTED_MEDIA_TYPE)
        );
        assert_eq!(
            status(accept(b"PK\x03\x04", "a.pdf", None)),
            Err(StatusCode::UNSUPPORTED_MEDIA_TYPE)
        );
        for (name, declared) in [
            ("a.png", None),
            ("a", None),
            ("a.pdf.exe", None),
            ("a.pdf", Some("image/png")),
            ("a.pdf", Some("text/html")),
        ] {
            assert_eq!(
                status(accept(pdf, name, declared)),
                Err(StatusCode::UNPROCESSABLE_ENTITY),
                "{name} {declared:?}"
            );
        }
    }

    #[test]
    fn file_names_keep_only_their_last_segment() {
        assert_eq!(
            file_name(Some("C:\\Users\\erika\\Meldebescheinigung.pdf")),
            Ok("Meldebescheinigung.pdf".to_owned())
        );
        assert_eq!(
            file_name(Some("../../etc/Ausweis\n.png")),
            Ok("Ausweis.png".to_owned())
        );
        assert_eq!(
            file_name(Some(&"ä".repeat(300))).map(|n| n.chars().count()),
            Ok(MAX_NAME_CHARS)
        );
        for bad in [None, Some(""), Some("  "), Some("dir/"), Some("..")] {
            assert!(file_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_panel_escapes_names_and_posts_without_javascript() {
        use videoamt_core::domain::session::SessionState;
        use videoamt_core::domain::{AppointmentId, SessionId, SubjectId};
        use videoamt_core::event::{Actor, ActorRole};

        let tenant = videoamt_core::tenant::example_tenants()
            .expect("valid")
            .remove(0);
        let room = Room {
            session: SessionId(Uuid::from_u128(1)),
            appointment: AppointmentId(Uuid::from_u128(2)),
            subject: SubjectId(Uuid::from_u128(3)),
            tenant,
            party: Party::Clerk,
            actor: Actor::new(ActorRole::Clerk, "a.becker").expect("a valid actor"),
            clerk: Some("a.becker".into()),
            state: SessionState::default(),
            lost_since: None,
        };
        let base = "/sachbearbeitung/termin/00000000-0000-0000-0000-000000000002/raum/dokumente";
        let document = Document {
            id: DocumentId(Uuid::from_u128(4)),
            file_name: "<script>alert(1)</script>.png".to_owned(),
            media_type: MediaType::PNG,
            size_bytes: 2048,
            sha256: Sha256::from_bytes([0; 32]),
            by: Party::Citizen,
            uploaded_at: "2026-11-24T08:05:00Z".to_owned(),
            shared: true,
            href: format!("{base}/00000000-0000-0000-0000-000000000004"),
        };
        let shelf = Shelf {
            documents: vec![document],
            max_bytes: 10 * 1024 * 1024,
            base: clerk_base(&room),
        };
        let html = panel(&room, &shelf).into_string();
        assert!(!html.contains("<script>"), "{html}");
        assert!(html.contains("&lt;script&gt;"), "{html}");
        assert!(
            html.contains(&format!(
                r#"<form method="post" action="{base}" enctype="multipart/form-data">"#
            )),
            "{html}"
        );
        assert!(html.contains(r#"name="datei""#), "{html}");
        assert!(html.contains("höchstens 10 MB"), "{html}");
        assert!(
            html.contains("2 KB, von der Bürgerin oder dem Bürger um 09:05 Uhr"),
            "{html}"
        );
        assert!(
            html.contains(r#"<img src=""#),
            "an image is previewed: {html}"
        );
        assert!(!html.contains("<iframe"), "frames are blocked by the CSP");
    }

    #[test]
    fn the_download_names_the_file_for_old_and_new_clients() {
        assert_eq!(
            content_disposition("inline", "Übersicht \"2026\".pdf"),
            "inline; filename=\"_bersicht _2026_.pdf\"; \
             filename*=UTF-8''%C3%9Cbersicht%20%222026%22.pdf"
        );
    }
}
