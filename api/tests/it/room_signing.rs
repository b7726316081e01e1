//! Signing a form in the room, against the real store, blob folder and the seal: the clerk
//! asks for a Hidden-TAN, the citizen gets it as an image only (never on the clerk's socket),
//! wrong TANs count up to the lock, an expired and a used TAN are refused, the signed PDF is
//! sealed (pdfsig says valid), stored sealed and the same for both; Handy-TAN goes through the
//! SMS sandbox and the touchpad's strokes become the evidence.

use std::sync::atomic::Ordering;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use base64::Engine as _;
use futures::StreamExt as _;
use serde_json::Value;
use sha2::Digest as _;
use tokio_tungstenite::tungstenite::Message;
use tower::ServiceExt as _;
use videoamt_api::http::app;
use videoamt_core::domain::FormId;

use crate::room::{open, serve};
use crate::room_documents::Room;
use crate::staff::browse;

impl Room {
    fn citizen_form(&self, form: FormId) -> String {
        format!("/termin/{}/raum/formular/{}", self.token, form.0)
    }

    /// The identity card form, attached and filled in, and a signature asked for by `method`.
    async fn ready_to_sign(&self, method: &str) -> FormId {
        let clerk_room = format!("/sachbearbeitung/termin/{}/raum", self.appointment.0);
        let (status, _, body) = browse(
            &self.api,
            "POST",
            &format!("{clerk_room}/formular"),
            Some(&self.clerk),
            Some("vorlage=antrag-personalausweis"),
        )
        .await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
        let (_, _, page) = browse(
            &self.api,
            "GET",
            &format!("/termin/{}/warteraum", self.token),
            None,
            None,
        )
        .await;
        let at = page.find("data-form=\"").expect("the form") + 11;
        let form = FormId(uuid::Uuid::parse_str(&page[at..at + 36]).expect("id"));
        let (status, _, body) = browse(
            &self.api,
            "POST",
            &self.citizen_form(form),
            None,
            Some("familienname=M%C3%BCller-L%C3%BCdenscheidt&vorname=J%C3%BCrgen&geburtsdatum=1964-08-12"),
        )
        .await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
        let (status, _, body) = browse(
            &self.api,
            "POST",
            &format!("{clerk_room}/formular/{}/unterschrift", form.0),
            Some(&self.clerk),
            Some(&format!("methode={method}")),
        )
        .await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
        form
    }

    /// A POST as the citizen's script sends it: form-encoded, answered in JSON.
    async fn script_posts(&self, path: &str, body: &str) -> (StatusCode, Value) {
        let (status, _, value) = self
            .api
            .call(
                "POST",
                path,
                Some(body.as_bytes().to_vec()),
                &[
                    ("content-type", "application/x-www-form-urlencoded"),
                    ("accept", "application/json"),
                ],
            )
            .await;
        (status, value)
    }

    async fn bytes(&self, path: &str, cookie: Option<&str>) -> (StatusCode, Vec<u8>) {
        let mut request = Request::builder().method("GET").uri(path);
        if let Some(c) = cookie {
            request = request.header("cookie", c);
        }
        let response = app(self.api.state.clone())
            .oneshot(request.body(Body::empty()).expect("request"))
            .await
            .expect("infallible");
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 24)
            .await
            .expect("body");
        (status, bytes.to_vec())
    }

    async fn event_types(&self, after: u64) -> Vec<String> {
        self.api
            .state
            .store
            .read_all(after, 1_000)
            .await
            .expect("read")
            .iter()
            .map(|e| e.event_type.as_str().to_owned())
            .collect()
    }
}

/// The TAN in the text of a Handy-TAN's SMS, as the sandbox filed it.
pub(crate) fn tan_in_sms(text: &str) -> String {
    text.split("TAN für die Unterschrift")
        .nth(1)
        .expect("the TAN sentence")
        .chars()
        .filter(char::is_ascii_digit)
        .take(6)
        .collect()
}

/// Reads the seven-segment digits back from the TAN image, as a person reads them.
pub(crate) fn read_tan(image: &str) -> String {
    let svg = base64::engine::general_purpose::STANDARD
        .decode(
            image
                .strip_prefix("data:image/svg+xml;base64,")
                .expect("an SVG data URL"),
        )
        .expect("base64");
    let svg = String::from_utf8(svg).expect("utf-8");
    assert!(!svg.contains("<text"), "the code is drawn, not written");
    let d = &svg[svg.find(" d=\"").expect("a path") + 4..];
    let d = &d[..d.find('"').expect("end")];
    // Each segment is "Mx yLx y"; digit i's box starts at 8 + 32 i, the second group of three
    // 12 further right (the image's layout), its segments 2 and 18 into the box.
    let origin = |i: usize| 8.0 + 32.0 * i as f32 + if i >= 3 { 12.0 } else { 0.0 };
    let mut digits = [0u8; 6];
    for segment in d.split('M').filter(|s| !s.is_empty()) {
        let numbers: Vec<f32> = segment
            .split(['L', ' '])
            .map(|n| n.parse().expect("a number"))
            .collect();
        let (x1, y1, x2, y2) = (numbers[0], numbers[1], numbers[2], numbers[3]);
        let i = (0..6)
            .rev()
            .find(|&i| x1.min(x2) >= origin(i))
            .expect("inside the image");
        let (dx, top) = (x1.min(x2) - origin(i), y1.min(y2) - 6.0);
        let bit = match (x1 == x2, dx > 8.0, top) {
            (false, _, t) if t < 10.0 => 0,
            (true, true, t) if t < 10.0 => 1,
            (true, true, _) => 2,
            (false, _, t) if t > 30.0 => 3,
            (true, false, t) if t > 10.0 => 4,
            (true, false, _) => 5,
            _ => 6,
        };
        digits[i] |= 1 << bit;
    }
    const PATTERNS: [u8; 10] = [
        0b011_1111, 0b000_0110, 0b101_1011, 0b100_1111, 0b110_0110, 0b110_1101, 0b111_1101,
        0b000_0111, 0b111_1111, 0b110_1111,
    ];
    digits
        .iter()
        .map(|bits| {
            let d = PATTERNS.iter().position(|p| p == bits).expect("a digit");
            char::from(b'0' + u8::try_from(d).expect("a digit"))
        })
        .collect()
}

/// What `program` (from poppler-utils) prints for the PDF, with `args` after the file.
fn poppler(program: &str, pdf: &[u8], args: &[&str]) -> String {
    let dir = tempfile::tempdir().expect("temp");
    let path = dir.path().join("formular.pdf");
    std::fs::write(&path, pdf).expect("written");
    let out = std::process::Command::new(program)
        .arg(&path)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program} runs (scripts/test installs poppler-utils): {e}"));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn pdfsig(pdf: &[u8]) -> String {
    poppler("pdfsig", pdf, &[])
}

#[tokio::test]
async fn a_hidden_tan_is_shown_only_to_the_citizen_and_the_sealed_pdf_is_valid() {
    let room = Room::admitted().await;
    let form = room.ready_to_sign("hidden_tan").await;
    // The clerk's socket, listened to for the whole signing.
    let addr = serve(&room.api).await;
    let mut clerk = open(
        addr,
        &format!("/sachbearbeitung/termin/{}/raum/ws", room.appointment.0),
        Some(&room.clerk),
    )
    .await
    .expect("the clerk's socket");
    let heard = tokio::spawn(async move {
        let mut all = String::new();
        while let Ok(Some(Ok(m))) =
            tokio::time::timeout(std::time::Duration::from_secs(3), clerk.next()).await
        {
            if let Message::Text(t) = m {
                all.push_str(&t);
            }
        }
        all
    });
    let path = room.citizen_form(form);

    let (status, tan) = room.script_posts(&format!("{path}/tan"), "").await;
    assert_eq!(status, StatusCode::OK, "{tan}");
    let code = read_tan(tan["image"].as_str().expect("an image"));
    assert_eq!(code.len(), 6, "{code}");
    let mut codes = vec![code.clone()];

    // Five wrong codes: each refused with the attempts left, the fifth locks the TAN.
    let wrong = if code == "000000" { "111111" } else { "000000" };
    for left in (0..5).rev() {
        let (status, refused) = room
            .script_posts(&format!("{path}/unterschreiben"), &format!("tan={wrong}"))
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
        let detail = refused["detail"].as_str().expect("detail");
        if left == 0 {
            assert!(detail.contains("gesperrt"), "{detail}");
        } else {
            assert!(detail.contains(&format!("noch {left} Versuch")), "{detail}");
        }
    }
    let before = room.api.last_position().await;
    let (status, locked) = room
        .script_posts(&format!("{path}/unterschreiben"), &format!("tan={code}"))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{locked}");
    assert_eq!(locked["title"], "TAN gesperrt");
    assert_eq!(room.api.last_position().await, before, "nothing recorded");

    // A new TAN, left to expire: refused after five minutes.
    let (_, tan) = room.script_posts(&format!("{path}/tan"), "").await;
    let code = read_tan(tan["image"].as_str().expect("an image"));
    codes.push(code.clone());
    room.api.now.fetch_add(5 * 60 + 1, Ordering::SeqCst);
    let (status, expired) = room
        .script_posts(&format!("{path}/unterschreiben"), &format!("tan={code}"))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{expired}");
    assert_eq!(expired["title"], "TAN abgelaufen");

    // A fresh TAN, typed in right (with a space, as people do): signed and locked.
    let (_, tan) = room.script_posts(&format!("{path}/tan"), "").await;
    let code = read_tan(tan["image"].as_str().expect("an image"));
    codes.push(code.clone());
    let spaced = format!("{}+{}", &code[..3], &code[3..]);
    let (status, signed) = room
        .script_posts(&format!("{path}/unterschreiben"), &format!("tan={spaced}"))
        .await;
    assert_eq!(status, StatusCode::OK, "{signed}");
    // Used once: the same TAN again is refused, the form is locked.
    let (status, again) = room
        .script_posts(&format!("{path}/unterschreiben"), &format!("tan={code}"))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{again}");
    assert_eq!(again["title"], "Formular gesperrt");

    // Both download the same sealed PDF; its hash is the one recorded; pdfsig says valid.
    let (status, pdf) = room.bytes(&format!("{path}/pdf"), None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, clerks) = room
        .bytes(
            &format!(
                "/sachbearbeitung/termin/{}/raum/formular/{}/pdf",
                room.appointment.0, form.0
            ),
            Some(&room.clerk),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(pdf, clerks, "the same document for both");
    std::fs::create_dir_all("../target/artifacts").expect("artifacts folder");
    std::fs::write("../target/artifacts/hidden-tan-unterschrieben.pdf", &pdf).expect("kept");
    let report = pdfsig(&pdf);
    assert!(report.contains("Signature is Valid"), "{report}");
    assert!(report.contains("Total document signed"), "{report}");
    // The birth date was entered as 1964-08-12; the document prints it the German way.
    let text = poppler("pdftotext", &pdf, &["-"]);
    assert!(text.contains("Müller-Lüdenscheidt"), "{text}");
    assert!(
        text.contains("12.08.1964") && !text.contains("1964-08-12"),
        "{text}"
    );
    let log = room
        .api
        .state
        .store
        .read_all(0, 10_000)
        .await
        .expect("read");
    let signed = log
        .iter()
        .find(|e| e.event_type.as_str() == "FormSigned")
        .expect("FormSigned");
    let recorded: Value = signed.payload.parse().expect("json");
    let digest: String = sha2::Sha256::digest(&pdf)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(recorded["document_sha256"], digest);
    let types: Vec<&str> = log.iter().map(|e| e.event_type.as_str()).collect();
    let from = types
        .iter()
        .position(|t| *t == "TanIssued")
        .expect("issued");
    assert_eq!(
        types[from..]
            .iter()
            .filter(|t| t.starts_with("Tan") || t.starts_with("Form"))
            .copied()
            .collect::<Vec<_>>(),
        [
            "TanIssued",
            "TanRejected",
            "TanRejected",
            "TanRejected",
            "TanRejected",
            "TanRejected",
            "TanIssued",
            "TanIssued",
            "TanAccepted",
            "FormSigned",
            "FormLocked"
        ]
    );

    // Never a code in the log, on the clerk's socket or in the blob folder.
    let everything: String = log.iter().map(|e| e.payload.as_str()).collect();
    let clerk_heard = heard.await.expect("listened");
    assert!(
        clerk_heard.contains("\"forms\""),
        "the clerk heard the signature"
    );
    for code in &codes {
        assert!(!everything.contains(code.as_str()), "TAN {code} in the log");
        assert!(
            !clerk_heard.contains(code.as_str()),
            "TAN {code} on the clerk's socket"
        );
    }
}

#[tokio::test]
async fn a_handy_tan_goes_through_the_sms_sandbox_and_the_touchpad_signs_with_strokes() {
    let room = Room::admitted().await;
    let form = room.ready_to_sign("handy_tan").await;
    let path = room.citizen_form(form);
    let (status, sent) = room.script_posts(&format!("{path}/tan"), "").await;
    assert_eq!(status, StatusCode::OK, "{sent}");
    assert_eq!(sent["sent_to"], "+49 ••• 567", "the number masked");
    assert!(sent.get("image").is_none(), "no image of a Handy-TAN");
    // The sandbox filed the SMS under the data subject.
    let outbox = room.api.state.system.outbox_dir();
    let sms: Vec<std::path::PathBuf> = std::fs::read_dir(outbox.join(room.subject_id()))
        .expect("the subject's outbox")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.to_string_lossy().ends_with(".sms.txt"))
        .collect();
    assert_eq!(sms.len(), 1, "{sms:?}");
    let text = std::fs::read_to_string(&sms[0]).expect("readable");
    assert!(text.starts_with("An: +49 721 1234567"), "{text}");
    // Its idempotency key is the id of the TAN the log records, so a second copy would show.
    let key = text
        .lines()
        .nth(1)
        .and_then(|l| l.strip_prefix("Schlüssel: "))
        .expect("the key line");
    let recorded: Vec<String> = room
        .api
        .state
        .store
        .read_all(0, 10_000)
        .await
        .expect("read")
        .iter()
        .filter_map(|e| {
            match videoamt_core::domain::DomainEvent::from_payload(
                e.event_type.as_str(),
                e.schema_version,
                &e.payload,
            ) {
                Ok(videoamt_core::domain::DomainEvent::TanIssued(t)) => Some(t.tan.to_string()),
                _ => None,
            }
        })
        .collect();
    assert_eq!(recorded, [key], "the SMS's key is the recorded TAN's id");
    let code = tan_in_sms(&text);
    let (status, signed) = room
        .script_posts(&format!("{path}/unterschreiben"), &format!("tan={code}"))
        .await;
    assert_eq!(status, StatusCode::OK, "{signed}");

    // Another visit: the touchpad. Nonsense strokes are refused and write nothing.
    let room = Room::admitted().await;
    let form = room.ready_to_sign("touchpad").await;
    let path = room.citizen_form(form);
    let before = room.api.last_position().await;
    for bad in [
        "kaputt",
        r#"{"width":480,"height":160,"strokes":[[{"x":1,"y":1,"t_ms":0}]]}"#,
    ] {
        let body = format!("striche={}", urlencode(bad));
        let (status, refused) = room
            .script_posts(&format!("{path}/unterschreiben"), &body)
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
    }
    assert_eq!(room.api.last_position().await, before);
    let strokes = r#"{"width":480,"height":160,"strokes":[[{"x":20,"y":120,"t_ms":0},{"x":60,"y":40,"t_ms":40},{"x":100,"y":110,"t_ms":80}],[{"x":120,"y":90,"t_ms":400},{"x":200,"y":80,"t_ms":460}]]}"#;
    let (status, signed) = room
        .script_posts(
            &format!("{path}/unterschreiben"),
            &format!("striche={}", urlencode(strokes)),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{signed}");
    let (_, pdf) = room.bytes(&format!("{path}/pdf"), None).await;
    std::fs::create_dir_all("../target/artifacts").expect("artifacts folder");
    std::fs::write("../target/artifacts/touchpad-unterschrieben.pdf", &pdf).expect("kept");
    assert!(pdfsig(&pdf).contains("Signature is Valid"));
    let types = room.event_types(before).await;
    assert!(
        types.ends_with(&["FormSigned".to_owned(), "FormLocked".to_owned()]),
        "{types:?}"
    );
    // The strokes are kept sealed as the evidence: two blobs, neither holding them in clear.
    let folder = room.api.state.system.blobs.root().join(room.subject_id());
    let blobs: Vec<Vec<u8>> = std::fs::read_dir(folder)
        .expect("blobs")
        .map(|e| std::fs::read(e.expect("entry").path()).expect("readable"))
        .collect();
    assert_eq!(blobs.len(), 2, "the PDF and the strokes");
    for blob in &blobs {
        assert!(!String::from_utf8_lossy(blob).contains("t_ms"), "sealed");
    }
}

fn urlencode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Opens the citizen's room socket (as far as a router without a connection can): the status
/// and the body.
async fn socket(api: &crate::router::Api, token: &str) -> (StatusCode, String) {
    let request = Request::builder()
        .uri(format!("/termin/{token}/raum/ws"))
        .header("connection", "upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-version", "13")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
        .body(Body::empty())
        .expect("request");
    let response = app(api.state.clone())
        .oneshot(request)
        .await
        .expect("infallible");
    let status = response.status();
    let body = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .expect("body");
    (status, String::from_utf8_lossy(&body).into_owned())
}

fn location_of(headers: &axum::http::HeaderMap) -> String {
    headers
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// Whether an answer is the refusal of a link whose visit is over (page or problem document).
fn read_only(status: StatusCode, body: &str) -> bool {
    status == StatusCode::FORBIDDEN && body.contains("Der Termin ist vorbei")
}

#[tokio::test]
async fn the_link_writes_until_the_visit_is_over_and_reads_on() {
    let room = Room::admitted().await;
    let api = &room.api;
    let token = &room.token;
    let (_, _, shown) = api
        .get(&format!("/api/v1/appointments/by-token/{token}"))
        .await;
    let end = time::OffsetDateTime::parse(
        shown["end"].as_str().expect("an end"),
        &time::format_description::well_known::Rfc3339,
    )
    .expect("RFC 3339")
    .unix_timestamp();
    let feedback = format!("/termin/{token}/feedback");
    let answers = "bild_und_ton=5&bedienung=4&wartezeit=3&ergebnis=5";
    // Ten minutes past the appointment's end the call still runs: the room's writes go on. The
    // feedback route answers for itself (not before the end of the conversation).
    api.now.store(end + 600, Ordering::SeqCst);
    let (status, _, page) = browse(api, "POST", &feedback, None, Some(answers)).await;
    assert_eq!(status, StatusCode::CONFLICT, "{page}");
    let (status, body) = socket(api, token).await;
    assert!(!read_only(status, &body), "{status} {body}");
    // The clerk's sign-in of the morning is long idle: a fresh one ends the session.
    let (status, body, cookie) =
        crate::staff::login(api, "ettlingen", "a.becker", crate::staff::PASSWORD).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let clerk = crate::staff::cookie_pair(&cookie.expect("a session cookie"));
    let (status, ended, body) = browse(
        api,
        "POST",
        &format!(
            "/sachbearbeitung/termin/{}/raum/beenden",
            room.appointment.0
        ),
        Some(&clerk),
        Some("outcome=aborted"),
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
    assert!(
        location_of(&ended).ends_with("/raum"),
        "ended, back in the room: {ended:?}"
    );

    // A second after the session ended, the link changes nothing: neither the room, nor an
    // upload, nor the appointment itself; the JSON API answers with the problem document.
    api.now.store(end + 601, Ordering::SeqCst);
    let before = api.last_position().await;
    let (status, body) = socket(api, token).await;
    assert!(read_only(status, &body), "{status} {body}");
    let (status, _, page) = browse(
        api,
        "POST",
        &format!("/termin/{token}/absagen"),
        None,
        Some(""),
    )
    .await;
    assert!(read_only(status, &page), "{status} {page}");
    assert!(page.contains("nichts mehr ändern"), "{page}");
    let (status, headers, body) = api
        .post(
            &format!("/api/v1/appointments/by-token/{token}/cancel"),
            &serde_json::json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["type"], "/problems/link-read-only");
    assert_eq!(body["title"], "Der Termin ist vorbei");
    assert_eq!(headers["content-type"], "application/problem+json");
    assert_eq!(api.last_position().await, before, "nothing written");
    // Reading goes on: the appointment and the room's page with its documents.
    let (status, _, _) = api
        .get(&format!("/api/v1/appointments/by-token/{token}"))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, page) = browse(
        api,
        "GET",
        &format!("/termin/{token}/warteraum"),
        None,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{page}");

    // The feedback follows the visit: open for a day after its end, not longer.
    api.now.store(end + 600 + 86_399, Ordering::SeqCst);
    let (status, _, page) = browse(api, "POST", &feedback, None, Some(answers)).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{page}");
    api.now.store(end + 600 + 86_400, Ordering::SeqCst);
    let (status, _, page) = browse(api, "POST", &feedback, None, Some(answers)).await;
    assert!(read_only(status, &page), "{status} {page}");
    assert!(page.contains("bis einen Tag nach dem Termin"), "{page}");
}

#[tokio::test]
async fn feedback_comes_after_the_end_once_with_a_mark_for_each_aspect() {
    let room = Room::admitted().await;
    let answers = "bild_und_ton=5&bedienung=4&wartezeit=3&ergebnis=5&kommentar=Sehr+freundlich%2C+KANARIE-FEEDBACK";
    let feedback = format!("/termin/{}/feedback", room.token);
    // Not before the end.
    let (status, _, page) = browse(&room.api, "POST", &feedback, None, Some(answers)).await;
    assert_eq!(status, StatusCode::CONFLICT, "{page}");
    assert!(page.contains("erst nach dem Gespräch"), "{page}");
    let (status, _, body) = browse(
        &room.api,
        "POST",
        &format!(
            "/sachbearbeitung/termin/{}/raum/beenden",
            room.appointment.0
        ),
        Some(&room.clerk),
        Some("outcome=aborted"),
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
    let (_, _, page) = browse(
        &room.api,
        "GET",
        &format!("/termin/{}/warteraum", room.token),
        None,
        None,
    )
    .await;
    for question in ["Bild und Ton", "Bedienung", "Wartezeit", "Ergebnis"] {
        assert!(page.contains(question), "{question}: {page}");
    }
    // A missing mark: named, in German, nothing recorded.
    let before = room.api.last_position().await;
    let (status, _, page) = browse(
        &room.api,
        "POST",
        &feedback,
        None,
        Some("bild_und_ton=5&bedienung=4&ergebnis=5"),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{page}");
    assert!(page.contains("„Wartezeit“"), "{page}");
    assert_eq!(room.api.last_position().await, before);
    let (status, _, _) = browse(&room.api, "POST", &feedback, None, Some(answers)).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let log = room
        .api
        .state
        .store
        .read_all(before, 100)
        .await
        .expect("read");
    let given: Vec<Value> = log
        .iter()
        .filter(|e| e.event_type.as_str() == "FeedbackSubmitted")
        .map(|e| e.payload.parse().expect("json"))
        .collect();
    assert_eq!(given.len(), 1);
    assert_eq!(given[0]["score"], 4, "the rounded mean of 5, 4, 3, 5");
    assert_eq!(given[0]["aspects"]["waiting_time"], 3);
    assert!(
        given[0]["comment"]["sealed"].is_string(),
        "the text is sealed"
    );
    assert!(!log.iter().any(|e| e.payload.as_str().contains("KANARIE")));
    // Twice: refused, in German.
    let (status, _, page) = browse(&room.api, "POST", &feedback, None, Some(answers)).await;
    assert_eq!(status, StatusCode::CONFLICT, "{page}");
    assert!(page.contains("bereits abgegeben"), "{page}");
    let (_, _, page) = browse(
        &room.api,
        "GET",
        &format!("/termin/{}/warteraum", room.token),
        None,
        None,
    )
    .await;
    assert!(page.contains("Vielen Dank für Ihre Rückmeldung."), "{page}");
}

/// An SMS gateway that does not answer: the citizen is told in German that no SMS went out,
/// and no TAN is recorded, so nothing waits for a code that never arrived.
#[tokio::test]
async fn a_handy_tan_the_gateway_does_not_take_is_named_and_recorded_nowhere() {
    let mut room = Room::admitted().await;
    // A port nobody listens on: bound, then closed.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port");
    let settings = videoamt_api::app::Settings {
        sms_url: Some(format!("http://{dead}/sms")),
        sms_token: Some("sms-geheimnis".into()),
        ..videoamt_api::app::Settings::default()
    };
    room.api.state.system.settings = std::sync::Arc::new(settings);
    let form = room.ready_to_sign("handy_tan").await;
    let before = room.api.last_position().await;
    let (status, problem) = room
        .script_posts(&format!("{}/tan", room.citizen_form(form)), "")
        .await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{problem}");
    assert_eq!(problem["title"], "SMS nicht gesendet");
    assert!(
        problem["detail"]
            .as_str()
            .is_some_and(|d| d.contains("anderes Verfahren")),
        "{problem}"
    );
    assert!(
        !problem.to_string().contains(&dead.to_string()),
        "{problem}"
    );
    assert_eq!(
        room.api.last_position().await,
        before,
        "no TanIssued for an SMS that never went out"
    );
}
