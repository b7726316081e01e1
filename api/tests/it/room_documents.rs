//! Documents in the session room over HTTP, against the real SQLite store and blob folder: a
//! citizen's PDF reaches the clerk byte for byte and sealed; uploads before admission, over the
//! cap, of programs and of unknown types are refused with German messages and write nothing;
//! only the room's two parties reach a document, everyone else gets the same 404.

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode, header};
use serde_json::Value;
use tower::ServiceExt as _;
use uuid::Uuid;
use videoamt_adapters::bus::Issued;
use videoamt_api::http::app;
use videoamt_api::http::staff::create_account;
use videoamt_core::domain::account::StaffRole;
use videoamt_core::domain::command::Command;
use videoamt_core::domain::session::SessionCommand;
use videoamt_core::domain::{AppointmentId, SessionId, SubjectId};
use videoamt_core::event::{Actor, ActorRole, TenantId};

use crate::router::{Api, NOW, TUE_9, assert_refused, booking};

const PASSWORD: &str = "ein-gutes-passwort";
const BOUNDARY: &str = "videoamt-test-grenze";
/// A small, real PDF with a marker that must never appear in the stored ciphertext.
const PDF: &[u8] = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\n% MARKER-Meldebescheinigung-im-Klartext\ntrailer << /Root 1 0 R >>\n%%EOF\n";
const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0";

/// One booked appointment with an open session the citizen waits in, and the clerks. The
/// payment tests start from it too.
pub(crate) struct Room {
    pub(crate) api: Api,
    pub(crate) token: String,
    pub(crate) appointment: AppointmentId,
    pub(crate) session: SessionId,
    pub(crate) subject: SubjectId,
    /// Cookie of a clerk of the appointment's department (Bürgerbüro, Ettlingen).
    pub(crate) clerk: String,
}

impl Room {
    /// The citizen has accepted the privacy notice and waits; nobody is admitted yet.
    pub(crate) async fn waiting() -> Self {
        Self::waiting_with(&["personalausweis", "meldebescheinigung"], "a.becker").await
    }

    /// The same with these services of Ettlingen, and `clerk` (of their department) logged in.
    pub(crate) async fn waiting_with(services: &[&str], clerk: &str) -> Self {
        let mut booked = booking(TUE_9);
        booked["services"] = serde_json::json!(services);
        let clerks = [
            ("ettlingen", "a.becker", "buergerbuero"),
            ("ettlingen", "g.kraus", "gewerbebehoerde"),
            ("ettlingen", "w.schmid", "waffenbehoerde"),
            ("stuttgart", "s.wolf", "ordnung-gewerbe"),
        ];
        Self::waiting_in(Api::new().await, &booked, &clerks, ("ettlingen", clerk)).await
    }

    /// `booked` (a booking request) on `api`, the citizen waiting; `clerks` (tenant, login,
    /// department) get accounts, and `clerk` (tenant, login) is logged in.
    pub(crate) async fn waiting_in(
        api: Api,
        booked: &Value,
        clerks: &[(&str, &str, &str)],
        (tenant_of_clerk, clerk): (&str, &str),
    ) -> Self {
        let (status, _, body) = api.post("/api/v1/appointments", booked).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let token = api.token_of(&body);
        let appointment = AppointmentId(
            body["appointment"]["id"]
                .as_str()
                .expect("id")
                .parse()
                .expect("uuid"),
        );
        let (status, headers, _) = api
            .call(
                "POST",
                &format!("/termin/{token}/warteraum"),
                Some(b"privacy_accepted=on".to_vec()),
                &[("content-type", "application/x-www-form-urlencoded")],
            )
            .await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{headers:?}");
        let (found, _) = api
            .state
            .system
            .appointment(appointment)
            .await
            .expect("readable")
            .expect("booked");
        let session = found.session.expect("the session is open");
        let subject = found.booking.expect("booked").subject;
        for &(tenant, login, department) in clerks {
            let tenant = api
                .state
                .tenants
                .iter()
                .find(|t| t.id.as_str() == tenant)
                .expect("an example tenant")
                .clone();
            create_account(
                &api.state.system,
                &tenant,
                login,
                StaffRole::Clerk,
                &[department.to_owned()],
                PASSWORD,
                time::OffsetDateTime::from_unix_timestamp(NOW).expect("valid"),
            )
            .await
            .expect("account created");
        }
        let clerk = login(&api, tenant_of_clerk, clerk).await;
        Self {
            api,
            token,
            appointment,
            session,
            subject,
            clerk,
        }
    }

    /// The clerk has admitted the citizen (on the bus: the admit route is another step's).
    pub(crate) async fn admitted() -> Self {
        Self::admit(Self::waiting().await).await
    }

    pub(crate) async fn admit(room: Self) -> Self {
        let issued = Issued {
            tenant: TenantId::parse("ettlingen").expect("tenant id"),
            actor: Actor::new(ActorRole::Clerk, "a.becker").expect("actor"),
            correlation_id: room.appointment.0,
            command_id: Uuid::now_v7(),
            now: room.api.state.now(),
        };
        let admit: Command = SessionCommand::Admit {
            session: room.session,
            clerk: "a.becker".into(),
        }
        .into();
        room.api
            .state
            .system
            .bus()
            .execute(&admit, &issued)
            .await
            .expect("admitted");
        room
    }

    pub(crate) fn subject_id(&self) -> String {
        self.subject.to_string()
    }

    fn citizen_path(&self) -> String {
        format!("/termin/{}/raum/dokumente", self.token)
    }

    fn clerk_path(&self) -> String {
        format!(
            "/sachbearbeitung/termin/{}/raum/dokumente",
            self.appointment.0
        )
    }

    /// The subject's blob folder: what is stored of its documents.
    fn blobs(&self) -> Vec<std::path::PathBuf> {
        let folder = self
            .api
            .state
            .system
            .blobs
            .root()
            .join(self.subject.to_string());
        match std::fs::read_dir(&folder) {
            Ok(entries) => entries.map(|e| e.expect("entry").path()).collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => vec![],
            Err(e) => panic!("{}: {e}", folder.display()),
        }
    }

    /// The citizen uploads a file as a script would (JSON answer).
    async fn citizen_uploads(
        &self,
        name: &str,
        declared: Option<&str>,
        bytes: &[u8],
    ) -> (StatusCode, HeaderMap, Value) {
        let (content_type, body) = multipart(name, declared, bytes);
        self.api
            .call(
                "POST",
                &self.citizen_path(),
                Some(body),
                &[("content-type", &content_type)],
            )
            .await
    }

    /// Types of the events after `position`.
    async fn events_since(&self, position: u64) -> Vec<String> {
        self.api
            .state
            .store
            .read_all(position, 100)
            .await
            .expect("read")
            .iter()
            .map(|e| e.event_type.as_str().to_owned())
            .collect()
    }
}

pub(crate) async fn login(api: &Api, tenant: &str, login: &str) -> String {
    let (status, headers, body) = api
        .post(
            "/api/v1/login",
            &serde_json::json!({"tenant": tenant, "login": login, "password": PASSWORD}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let set_cookie = headers[header::SET_COOKIE].to_str().expect("ascii");
    set_cookie.split(';').next().expect("a pair").to_owned()
}

/// A `multipart/form-data` body with one file in the field `datei`, as a browser sends it.
fn multipart(name: &str, declared: Option<&str>, bytes: &[u8]) -> (String, Vec<u8>) {
    let mut body = format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"datei\"; filename=\"{name}\"\r\n"
    )
    .into_bytes();
    if let Some(declared) = declared {
        body.extend_from_slice(format!("Content-Type: {declared}\r\n").as_bytes());
    }
    body.extend_from_slice(b"\r\n");
    body.extend_from_slice(bytes);
    body.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={BOUNDARY}"), body)
}

/// A GET whose body is kept as bytes (a download).
async fn fetch(
    api: &Api,
    path: &str,
    headers: &[(&str, &str)],
) -> (StatusCode, HeaderMap, Vec<u8>) {
    let mut request = Request::get(path);
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    let response = app(api.state.clone())
        .oneshot(request.body(Body::empty()).expect("request"))
        .await
        .expect("infallible");
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 24)
        .await
        .expect("body");
    (status, headers, bytes.to_vec())
}

#[tokio::test]
async fn a_pdf_from_the_citizen_reaches_the_clerk_byte_for_byte() {
    let room = Room::admitted().await;
    let before = room.api.last_position().await;
    let (status, headers, uploaded) = room
        .citizen_uploads(
            "Meldebescheinigung Müller.pdf",
            Some("application/pdf"),
            PDF,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{uploaded}");
    assert_eq!(uploaded["file_name"], "Meldebescheinigung Müller.pdf");
    assert_eq!(uploaded["media_type"], "application/pdf");
    assert_eq!(uploaded["size_bytes"], PDF.len());
    assert_eq!(uploaded["by"], "citizen");
    assert_eq!(uploaded["shared"], true);
    let id = uploaded["id"].as_str().expect("id").to_owned();
    let href = format!("{}/{id}", room.citizen_path());
    assert_eq!(uploaded["href"], href.as_str());
    assert_eq!(headers[header::LOCATION], href.as_str());

    // The clerk's list shows it, with its href under the clerk's routes.
    let cookie = [("cookie", room.clerk.as_str())];
    let (status, _, list) = room
        .api
        .call("GET", &room.clerk_path(), None, &cookie)
        .await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(
        list["max_bytes"],
        10 * 1024 * 1024,
        "the form's cap, for the script"
    );
    let list = &list["documents"];
    assert_eq!(list.as_array().map(Vec::len), Some(1), "{list}");
    assert_eq!(list[0]["id"], id.as_str());
    assert_eq!(list[0]["file_name"], "Meldebescheinigung Müller.pdf");
    let clerk_href = format!("{}/{id}", room.clerk_path());
    assert_eq!(list[0]["href"], clerk_href.as_str());

    let (status, headers, bytes) =
        fetch(&room.api, &format!("{clerk_href}?herunterladen=1"), &cookie).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(bytes, PDF, "byte for byte");
    assert_eq!(headers[header::CONTENT_TYPE], "application/pdf");
    assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
    assert!(
        headers[header::CACHE_CONTROL]
            .to_str()
            .expect("ascii")
            .contains("no-store")
    );
    assert_eq!(
        headers[header::CONTENT_DISPOSITION],
        "attachment; filename=\"Meldebescheinigung M_ller.pdf\"; \
         filename*=UTF-8''Meldebescheinigung%20M%C3%BCller.pdf"
    );

    assert_eq!(
        room.events_since(before).await,
        ["DocumentUploaded", "DocumentShared", "DocumentDownloaded"]
    );

    // Stored once, under the document id, as ciphertext; the log holds the name sealed only.
    let blobs = room.blobs();
    assert_eq!(blobs.len(), 1, "{blobs:?}");
    assert_eq!(
        blobs[0].file_name().and_then(|n| n.to_str()),
        Some(id.as_str())
    );
    let stored = std::fs::read(&blobs[0]).expect("blob");
    let stored = String::from_utf8_lossy(&stored);
    assert!(!stored.contains("MARKER-Meldebescheinigung"), "ciphertext");
    assert!(!stored.contains("%PDF"), "ciphertext");
    for e in room
        .api
        .state
        .store
        .read_all(before, 10)
        .await
        .expect("read")
    {
        let payload = e.payload.as_str();
        assert!(!payload.contains("Meldebescheinigung"), "{payload}");
    }
}

#[tokio::test]
async fn a_browser_form_comes_back_to_the_room_and_the_citizen_sees_the_clerks_png() {
    let room = Room::admitted().await;
    let (content_type, body) = multipart("Foto.png", Some("image/png"), PNG);
    let (status, headers, _) = room
        .api
        .call(
            "POST",
            &room.clerk_path(),
            Some(body),
            &[
                ("content-type", &content_type),
                ("cookie", &room.clerk),
                ("accept", "text/html,application/xhtml+xml"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(
        headers[header::LOCATION],
        format!("/sachbearbeitung/termin/{}/raum", room.appointment.0).as_str()
    );
    let (status, _, list) = room.api.get(&room.citizen_path()).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    let list = &list["documents"];
    assert_eq!(list[0]["by"], "clerk");
    assert_eq!(list[0]["media_type"], "image/png");
    let href = list[0]["href"].as_str().expect("href").to_owned();
    let (status, headers, bytes) = fetch(&room.api, &href, &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(bytes, PNG);
    assert_eq!(headers[header::CONTENT_TYPE], "image/png");
    assert!(
        headers[header::CONTENT_DISPOSITION]
            .to_str()
            .expect("ascii")
            .starts_with("inline;")
    );
}

#[tokio::test]
async fn before_admission_an_upload_is_refused_and_nothing_is_stored() {
    let room = Room::waiting().await;
    let before = room.api.last_position().await;
    let response = room.citizen_uploads("Antrag.pdf", None, PDF).await;
    let problem = assert_refused(&room.api, response, StatusCode::CONFLICT, before).await;
    assert_eq!(problem["title"], "Noch nicht eingelassen");
    assert!(room.blobs().is_empty(), "nothing stored");
    // Nor is the list sent: no room data before admission.
    let response = room.api.get(&room.citizen_path()).await;
    assert_refused(&room.api, response, StatusCode::CONFLICT, before).await;
    // The clerk cannot put anything into the room before admitting either.
    let (content_type, body) = multipart("Bescheid.pdf", None, PDF);
    let response = room
        .api
        .call(
            "POST",
            &room.clerk_path(),
            Some(body),
            &[("content-type", &content_type), ("cookie", &room.clerk)],
        )
        .await;
    assert_refused(&room.api, response, StatusCode::CONFLICT, before).await;
    assert!(room.blobs().is_empty(), "nothing stored");
}

#[tokio::test]
async fn too_large_programs_unknown_and_mismatched_files_are_refused() {
    let room = Room::admitted().await;
    let before = room.api.last_position().await;
    let max = room.api.state.system.settings.upload_max_bytes;
    assert_eq!(max, 10 * 1024 * 1024, "the default cap");

    // One byte over the cap: cut off while reading, and refused before reading when the
    // length is declared.
    let mut big = PDF.to_vec();
    big.resize(usize::try_from(max).expect("fits") + 1, b' ');
    let response = room.citizen_uploads("gross.pdf", None, &big).await;
    let problem = assert_refused(&room.api, response, StatusCode::PAYLOAD_TOO_LARGE, before).await;
    assert_eq!(problem["title"], "Datei zu groß");
    assert_eq!(
        problem["detail"],
        "Eine Datei darf höchstens 10 MB groß sein."
    );
    let (content_type, body) = multipart("gross.pdf", None, &big);
    let length = body.len().to_string();
    let response = room
        .api
        .call(
            "POST",
            &room.citizen_path(),
            Some(body),
            &[("content-type", &content_type), ("content-length", &length)],
        )
        .await;
    assert_refused(&room.api, response, StatusCode::PAYLOAD_TOO_LARGE, before).await;
    // Exactly at the cap is taken (and then taken back out of this test's way).
    let mut at_cap = PDF.to_vec();
    at_cap.resize(usize::try_from(max).expect("fits"), b' ');
    let (status, _, body) = room.citizen_uploads("genau.pdf", None, &at_cap).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let before = room.api.last_position().await;
    let stored = room.blobs();

    let elf = b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0\x02\0\x3e\0";
    let exe = b"MZ\x90\0\x03\0\0\0\x04\0\0\0\xff\xff\0\0";
    let zip = b"PK\x03\x04\x14\0\0\0\x08\0";
    for (name, declared, bytes, status, title) in [
        (
            "rechnung.pdf",
            Some("application/pdf"),
            &elf[..],
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Dateityp nicht angenommen",
        ),
        (
            "rechnung.pdf",
            None,
            &exe[..],
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Dateityp nicht angenommen",
        ),
        (
            "unterlagen.zip",
            Some("application/zip"),
            &zip[..],
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Dateityp nicht angenommen",
        ),
        (
            "notiz.txt",
            Some("text/plain"),
            &b"Hallo, hier meine Unterlagen."[..],
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Dateityp nicht angenommen",
        ),
        (
            "foto.pdf",
            Some("application/pdf"),
            PNG,
            StatusCode::UNPROCESSABLE_ENTITY,
            "Dateiinhalt passt nicht zum Dateityp",
        ),
        (
            "antrag.pdf",
            Some("image/png"),
            PDF,
            StatusCode::UNPROCESSABLE_ENTITY,
            "Dateiinhalt passt nicht zum Dateityp",
        ),
        (
            "leer.pdf",
            None,
            &b""[..],
            StatusCode::UNPROCESSABLE_ENTITY,
            "Ungültige Eingaben",
        ),
    ] {
        let response = room.citizen_uploads(name, declared, bytes).await;
        let problem = assert_refused(&room.api, response, status, before).await;
        assert_eq!(problem["title"], title, "{name}: {problem}");
    }
    let programs = room.citizen_uploads("rechnung.pdf", None, exe).await.2;
    assert!(
        programs["detail"]
            .as_str()
            .expect("detail")
            .contains("ausführbares Programm"),
        "{programs}"
    );
    // A browser's form post gets the same refusal as a German page with the way back.
    let (content_type, body) = multipart("rechnung.pdf", None, exe);
    let (status, headers, _) = room
        .api
        .call(
            "POST",
            &room.citizen_path(),
            Some(body),
            &[("content-type", &content_type), ("accept", "text/html")],
        )
        .await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(
        headers[header::CONTENT_TYPE]
            .to_str()
            .expect("ascii")
            .starts_with("text/html")
    );
    assert_eq!(room.api.last_position().await, before, "nothing written");
    assert_eq!(room.blobs(), stored, "nothing stored");
}

/// A PDF that carries a script (plainly, or in a compressed object stream), an embedded
/// program, or streams that inflate a thousandfold is refused before anything is stored: the
/// clerk's reader would run, unpack or choke on what the room passed on.
#[tokio::test]
async fn pdfs_with_scripts_embedded_files_or_a_decompression_bomb_are_refused() {
    use std::io::Write as _;
    let room = Room::admitted().await;
    let before = room.api.last_position().await;
    let stored = room.blobs();
    let zlib = |data: &[u8]| {
        let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
        e.write_all(data).expect("in memory");
        e.finish().expect("in memory")
    };
    let object_stream = |data: &[u8]| {
        let mut pdf = b"%PDF-1.7\n1 0 obj << /Type /ObjStm /N 1 /First 4 /Filter /FlateDecode >>\n\
            stream\n"
            .to_vec();
        pdf.extend_from_slice(data);
        pdf.extend_from_slice(b"\nendstream\nendobj\ntrailer << /Root 2 0 R >>\n%%EOF\n");
        pdf
    };
    // A polyglot: a PDF whose catalogue runs JavaScript on opening.
    let polyglot = b"%PDF-1.4\n1 0 obj << /Type /Catalog /OpenAction << /S /JavaScript /JS \
        (app.launchURL('http://evil.example')) >> >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n\
        <html><script>alert(1)</script></html>\n";
    let hidden = object_stream(&zlib(
        b"3 0 << /S /Java#53cript /JS (this.exportDataObject()) >>",
    ));
    let attached = b"%PDF-1.4\n1 0 obj << /Type /Catalog /Names << /EmbeddedFiles 2 0 R >> >> \
        endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n";
    // 80 MiB of zeros (past the 64 MiB bound) in about 80 KiB.
    let bomb = object_stream(&zlib(&vec![0u8; 80 * 1024 * 1024]));
    assert!(bomb.len() < 1024 * 1024, "{}", bomb.len());
    for (name, bytes, says) in [
        ("antrag.pdf", &polyglot[..], "aktive Inhalte"),
        ("antrag.pdf", &hidden[..], "aktive Inhalte"),
        ("antrag.pdf", &attached[..], "aktive Inhalte"),
        ("antrag.pdf", &bomb[..], "Vielfaches seiner Größe"),
    ] {
        let response = room.citizen_uploads(name, None, bytes).await;
        let problem = assert_refused(
            &room.api,
            response,
            StatusCode::UNPROCESSABLE_ENTITY,
            before,
        )
        .await;
        assert_eq!(
            problem["title"], "Dateiinhalt nicht angenommen",
            "{problem}"
        );
        assert!(
            problem["detail"].as_str().expect("detail").contains(says),
            "{problem}"
        );
    }
    assert_eq!(room.blobs(), stored, "nothing stored");
    // A plain PDF still goes through.
    let (status, _, body) = room.citizen_uploads("Antrag.pdf", None, PDF).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

#[tokio::test]
async fn only_the_rooms_parties_reach_its_documents() {
    let room = Room::admitted().await;
    let (status, _, uploaded) = room.citizen_uploads("Antrag.pdf", None, PDF).await;
    assert_eq!(status, StatusCode::CREATED, "{uploaded}");
    let id = uploaded["id"].as_str().expect("id").to_owned();

    let stuttgart = login(&room.api, "stuttgart", "s.wolf").await;
    let trade_office = login(&room.api, "ettlingen", "g.kraus").await;
    let guessed = Uuid::now_v7().to_string();
    // The first character carries six whole bits of the token (the last may carry padding).
    let first = room.token.chars().next().expect("a token");
    let forged = format!(
        "{}{}",
        if first == 'A' { 'B' } else { 'A' },
        &room.token[first.len_utf8()..]
    );
    let forged_path = format!("/termin/{forged}/raum/dokumente");
    // A valid link of another appointment: its room does not hold this document.
    let other = room.api.book("2026-11-24T09:30:00+01:00").await;
    let others_path = format!("/termin/{other}/raum/dokumente");
    let before = room.api.last_position().await;

    let mut refusals: Vec<(String, Option<&str>)> = vec![];
    for cookie in [&stuttgart, &trade_office] {
        refusals.push((room.clerk_path(), Some(cookie)));
        refusals.push((format!("{}/{id}", room.clerk_path()), Some(cookie)));
    }
    refusals.extend([
        (
            format!("{}/{guessed}", room.clerk_path()),
            Some(room.clerk.as_str()),
        ),
        (
            format!("{}/kein-dokument", room.clerk_path()),
            Some(room.clerk.as_str()),
        ),
        (format!("{}/{guessed}", room.citizen_path()), None),
        (format!("{forged_path}/{id}"), None),
        (forged_path.clone(), None),
        (format!("{others_path}/{id}"), None),
        (
            format!(
                "/sachbearbeitung/termin/{}/raum/dokumente/{id}",
                Uuid::now_v7()
            ),
            Some(room.clerk.as_str()),
        ),
    ]);
    for (path, cookie) in refusals {
        let headers: Vec<(&str, &str)> = cookie.map(|c| ("cookie", c)).into_iter().collect();
        let response = room.api.call("GET", &path, None, &headers).await;
        let problem = assert_refused(&room.api, response, StatusCode::NOT_FOUND, before).await;
        assert!(
            problem["detail"]
                .as_str()
                .is_some_and(|d| !d.contains("Antrag")),
            "{path}: {problem}"
        );
    }
    // A clerk of another department cannot upload into the room either.
    let (content_type, body) = multipart("Fremd.pdf", None, PDF);
    let response = room
        .api
        .call(
            "POST",
            &room.clerk_path(),
            Some(body),
            &[("content-type", &content_type), ("cookie", &trade_office)],
        )
        .await;
    assert_refused(&room.api, response, StatusCode::NOT_FOUND, before).await;
    // Without a staff session: asked to log in.
    let response = room.api.get(&room.clerk_path()).await;
    assert_refused(&room.api, response, StatusCode::UNAUTHORIZED, before).await;
    assert_eq!(room.blobs().len(), 1, "only the citizen's document");
}
