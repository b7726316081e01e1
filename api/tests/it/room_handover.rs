//! The handover to the case system at the end of a weapons-card visit: the signed form goes to
//! the export folder (outside the data folder, where the purge does not reach) with a JSON
//! record, `HandedOverToCaseSystem` is recorded once, and before anything is signed the
//! handover is refused. A case system that fails is named in German and nothing is recorded;
//! a visit not handed over keeps its data past its retention until it is, and the export
//! outlives the purge.

use std::sync::{Arc, Mutex};

use axum::http::StatusCode;
use serde_json::Value;
use videoamt_api::app::{Settings, retention};
use videoamt_api::workers::outbox::{self, Outbox};
use videoamt_api::workers::retention::purge::{PurgeJob, Summary};
use videoamt_projections::retention::{self as report, RetentionState};

use crate::room_documents::Room;
use crate::staff::browse;

/// An Ettlingen weapons-card visit with the citizen admitted and `w.schmid` (Waffenbehörde)
/// logged in.
pub(crate) async fn weapons_card_room() -> Room {
    Room::admit(Room::waiting_with(&["waffenbesitzkarte"], "w.schmid").await).await
}

pub(crate) fn clerk_room(room: &Room) -> String {
    format!("/sachbearbeitung/termin/{}/raum", room.appointment.0)
}

/// The clerk posts `form` to the room's `action` (`/uebergabe`, `/beenden`, …).
pub(crate) async fn clerk_posts(room: &Room, action: &str, form: &str) -> (StatusCode, String) {
    let path = format!("{}{action}", clerk_room(room));
    let (status, _, page) = browse(&room.api, "POST", &path, Some(&room.clerk), Some(form)).await;
    (status, page)
}

/// The clerk starts the weapons-card form, fills every required field (text fields with
/// `text`) and asks for a touchpad signature; the citizen signs. Returns the form's id.
pub(crate) async fn sign_the_weapons_card_form(room: &Room, text: &str) -> String {
    sign_form(room, "ettlingen", "antrag-waffenbesitzkarte", text).await
}

/// The same with the form `template` of `tenant`.
pub(crate) async fn sign_form(room: &Room, tenant: &str, template: &str, text: &str) -> String {
    let clerk_room = clerk_room(room);
    let (status, body) = clerk_posts(room, "/formular", &format!("vorlage={template}")).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
    let (_, _, page) = browse(&room.api, "GET", &clerk_room, Some(&room.clerk), None).await;
    let at = page.find("data-form=\"").expect("the form") + 11;
    let form = page[at..at + 36].to_owned();
    let template = room
        .api
        .state
        .tenants
        .iter()
        .find(|t| t.id.as_str() == tenant)
        .and_then(|t| t.forms.get(&template.into()))
        .expect("the template")
        .clone();
    // A valid value for every required field, by its kind.
    let mut values = Vec::new();
    for field in template.fields.iter().filter(|f| f.required) {
        let value = match &field.kind {
            videoamt_core::tenant::FieldKind::Date => "1970-01-01".to_owned(),
            videoamt_core::tenant::FieldKind::Number { min, .. } => min.to_string(),
            videoamt_core::tenant::FieldKind::Choice { options } => options[0].clone(),
            videoamt_core::tenant::FieldKind::Checkbox => "ja".to_owned(),
            videoamt_core::tenant::FieldKind::Email => "w@example.org".to_owned(),
            videoamt_core::tenant::FieldKind::Text { .. } => text.to_owned(),
        };
        values.push(format!(
            "{}={}",
            field.id,
            form_urlencoded::byte_serialize(value.as_bytes()).collect::<String>()
        ));
    }
    let (status, body) = clerk_posts(room, &format!("/formular/{form}"), &values.join("&")).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
    let (status, body) = clerk_posts(
        room,
        &format!("/formular/{form}/unterschrift"),
        "methode=touchpad",
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
    let strokes = r#"{"width":480,"height":160,"strokes":[[{"x":20,"y":120,"t_ms":0},{"x":60,"y":40,"t_ms":40},{"x":100,"y":110,"t_ms":80}]]}"#;
    let (status, _, signed) = room
        .api
        .call(
            "POST",
            &format!("/termin/{}/raum/formular/{form}/unterschreiben", room.token),
            Some(
                format!(
                    "striche={}",
                    form_urlencoded::byte_serialize(strokes.as_bytes()).collect::<String>()
                )
                .into_bytes(),
            ),
            &[
                ("content-type", "application/x-www-form-urlencoded"),
                ("accept", "application/json"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{signed}");
    form
}

/// The payloads of the events of `event_type` after `position`.
async fn payloads(room: &Room, position: u64, event_type: &str) -> Vec<Value> {
    let log = room
        .api
        .state
        .store
        .read_all(position, 1000)
        .await
        .expect("read");
    log.iter()
        .filter(|e| e.event_type.as_str() == event_type)
        .map(|e| e.payload.parse().expect("json"))
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test]
async fn the_signed_weapons_card_form_is_handed_over_once_to_the_export_folder() {
    let room = weapons_card_room().await;
    let clerk_room = clerk_room(&room);
    let (_, _, page) = browse(&room.api, "GET", &clerk_room, Some(&room.clerk), None).await;
    assert!(page.contains("An Fachverfahren übergeben"), "{page}");

    // Nothing signed yet: refused in German, nothing recorded.
    let before = room.api.last_position().await;
    let (status, page) = clerk_posts(&room, "/uebergabe", "").await;
    assert!(status.is_client_error(), "{status}: {page}");
    assert_eq!(room.api.last_position().await, before);

    sign_the_weapons_card_form(&room, "Mustermann").await;

    // The handover: files in the export folder, one event; a second press records nothing.
    let before = room.api.last_position().await;
    for _ in 0..2 {
        let (status, body) = clerk_posts(&room, "/uebergabe", "").await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
    }
    let handed = payloads(&room, before, "HandedOverToCaseSystem").await;
    assert_eq!(handed.len(), 1, "once: {handed:?}");
    assert_eq!(handed[0]["target"], "Nationales Waffenregister");
    let export = room.api.state.system.case_export_dir();
    assert!(
        !export.starts_with(&room.api.state.system.data_dir),
        "the export lives outside the data folder the purge scrubs"
    );
    let folder = export.join(handed[0]["reference"].as_str().expect("a reference"));
    let record: Value =
        serde_json::from_slice(&std::fs::read(folder.join("akte.json")).expect("the case record"))
            .expect("JSON");
    assert!(record.to_string().contains("Mustermann"), "{record}");
    let pdfs: Vec<std::path::PathBuf> = std::fs::read_dir(&folder)
        .expect("the folder")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "pdf"))
        .collect();
    assert_eq!(pdfs.len(), 1, "{pdfs:?}");
    let (status, _, page) = browse(&room.api, "GET", &clerk_room, Some(&room.clerk), None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        page.contains("Übergeben an Nationales Waffenregister"),
        "{page}"
    );
}

/// What the mock case system received: each request's bearer header and JSON body.
type Received = Arc<Mutex<Vec<(Option<String>, Value)>>>;

/// A case system's HTTP import on 127.0.0.1: the first request is answered with 500, every
/// later one with 200 and a reference. Serves until the test's runtime ends.
async fn flaky_case_system() -> (String, Received) {
    use axum::extract::State;
    use axum::http::HeaderMap;
    use axum::response::IntoResponse;
    let received: Received = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/akten", listener.local_addr().expect("address"));
    let app = axum::Router::new()
        .route(
            "/akten",
            axum::routing::post(
                |State(received): State<Received>, headers: HeaderMap, body: String| async move {
                    let bearer = (headers.get("authorization"))
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned);
                    let json = serde_json::from_str(&body).unwrap_or(Value::Null);
                    let mut received = received.lock().expect("not poisoned");
                    received.push((bearer, json));
                    if received.len() == 1 {
                        (StatusCode::INTERNAL_SERVER_ERROR, "kaputt").into_response()
                    } else {
                        axum::Json(serde_json::json!({ "reference": "NWR-2026-4711" }))
                            .into_response()
                    }
                },
            ),
        )
        .with_state(received.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, received)
}

#[tokio::test]
async fn a_failing_case_system_is_named_in_german_and_nothing_is_recorded_until_it_answers() {
    let (url, received) = flaky_case_system().await;
    let mut room = weapons_card_room().await;
    room.api.state.system = room.api.state.system.clone().with_settings(Settings {
        case_system_url: Some(url),
        case_system_token: Some("nwr-token".into()),
        ..Settings::default()
    });
    let form = sign_the_weapons_card_form(&room, "Mustermann").await;
    let signed = payloads(&room, 0, "FormSigned").await;
    assert_eq!(signed.len(), 1, "{signed:?}");

    // The case system answers 500: a German page that names it; nothing recorded.
    let before = room.api.last_position().await;
    let (status, page) = clerk_posts(&room, "/uebergabe", "").await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{page}");
    assert!(
        page.contains("Übergabe an das Fachverfahren fehlgeschlagen"),
        "{page}"
    );
    assert!(
        page.contains("Die Übergabe an „Nationales Waffenregister“ ist fehlgeschlagen"),
        "{page}"
    );
    assert!(page.contains("nichts als übergeben vermerkt"), "{page}");
    assert!(page.contains("noch einmal"), "{page}");
    assert!(!page.contains("kaputt") && !page.contains("500"), "{page}");
    assert_eq!(room.api.last_position().await, before, "nothing recorded");
    assert_eq!(received.lock().expect("not poisoned").len(), 1);

    // Pressed again, it answers: recorded once with its reference; a third press sends
    // nothing more.
    for _ in 0..2 {
        let (status, page) = clerk_posts(&room, "/uebergabe", "").await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{page}");
    }
    let handed = payloads(&room, before, "HandedOverToCaseSystem").await;
    assert_eq!(handed.len(), 1, "once: {handed:?}");
    assert_eq!(handed[0]["target"], "Nationales Waffenregister");
    assert_eq!(handed[0]["reference"], "NWR-2026-4711");
    let received = received.lock().expect("not poisoned").clone();
    assert_eq!(received.len(), 2, "no third request");

    // What the case system got: the bearer token and the record with the signed PDF itself.
    let (bearer, record) = &received[1];
    assert_eq!(bearer.as_deref(), Some("Bearer nwr-token"));
    assert_eq!(record["case_system"], "Nationales Waffenregister");
    assert_eq!(record["tenant"], "ettlingen");
    assert_eq!(record["appointment"], room.appointment.0.to_string());
    assert_eq!(record["service"]["id"], "waffenbesitzkarte");
    assert!(
        record["forms"].to_string().contains("Mustermann"),
        "{record}"
    );
    let pdf = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD
            .decode(
                record["pdfs"][0]["content_base64"]
                    .as_str()
                    .expect("the PDF inline"),
            )
            .expect("base64")
    };
    assert!(pdf.starts_with(b"%PDF-"));
    let sha256 = hex(&<sha2::Sha256 as sha2::Digest>::digest(&pdf));
    assert_eq!(record["pdfs"][0]["sha256"], sha256.as_str());
    assert_eq!(
        signed[0]["document_sha256"],
        sha256.as_str(),
        "the PDF signed in the room ({form})"
    );
    let (_, _, page) = browse(
        &room.api,
        "GET",
        &clerk_room(&room),
        Some(&room.clerk),
        None,
    )
    .await;
    assert!(
        page.contains("Übergeben an Nationales Waffenregister (NWR-2026-4711)"),
        "{page}"
    );
}

/// Catches the projections up and runs the due purges as if the clock showed `now`.
pub(crate) async fn purge_at(room: &Room, now: time::OffsetDateTime) -> Summary {
    let state = &room.api.state;
    state
        .runner()
        .catch_up(&state.projections)
        .await
        .expect("caught up");
    PurgeJob::new(&state.system)
        .run_due(now, |_| {})
        .await
        .expect("the purge runs")
}

/// The subject's row of the retention read model, caught up.
pub(crate) async fn subject_row(room: &Room) -> report::SubjectRetention {
    subject_row_of(room, "ettlingen").await
}

/// The same for a subject of `tenant`.
pub(crate) async fn subject_row_of(room: &Room, tenant: &str) -> report::SubjectRetention {
    let state = &room.api.state;
    state
        .runner()
        .catch_up(&state.projections)
        .await
        .expect("caught up");
    report::subjects(state.store.as_ref(), Some(tenant))
        .await
        .expect("report")
        .into_iter()
        .find(|r| r.subject == Some(room.subject))
        .expect("the subject's row")
}

/// The subject's row of the DPO's report as it reads at `now`.
async fn dpo_row(room: &Room, now: time::OffsetDateTime) -> retention::ReportRow {
    retention::report(&room.api.state.system, Some("ettlingen"), now)
        .await
        .expect("the report")
        .rows
        .into_iter()
        .find(|r| r.subject == room.subject.to_string())
        .expect("the subject's row")
}

/// The text of every file under `dir`.
pub(crate) fn everything_in(dir: &std::path::Path) -> String {
    let mut all = String::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                all.push_str(&String::from_utf8_lossy(
                    &std::fs::read(&path).expect("read"),
                ));
            }
        }
    }
    all
}

#[tokio::test]
async fn a_visit_not_handed_over_keeps_its_data_until_it_is_and_the_export_outlives_the_purge() {
    let room = weapons_card_room().await;
    let system = room.api.state.system.clone();
    let canary = format!("Kanarie{}", uuid::Uuid::now_v7().simple());
    sign_the_weapons_card_form(&room, &canary).await;
    let (status, page) = clerk_posts(
        &room,
        "/identitaet",
        "document_type=Personalausweis&feature=Hologramm&feature=Lichtbild\
         &feature=Polycarbonat&questions=1&result=verified",
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{page}");
    let (status, page) = clerk_posts(&room, "/beenden", "outcome=completed").await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{page}");
    // The process manager schedules the purge and files the mails in the data folder's outbox.
    let worker = Outbox::new(
        system.clone(),
        outbox::mailer(&system).expect("the folder mailer"),
        "http://amt.test",
    );
    while worker.step().await.expect("a step") > 0 {}
    let data = everything_in(&system.data_dir);
    assert!(
        data.contains("erika@example.org"),
        "the outbox mail names the citizen"
    );

    // Past the retention period, the purge is held back and the DPO's report says why.
    let due = subject_row(&room)
        .await
        .due
        .expect("the purge is scheduled");
    let later = due + time::Duration::days(1);
    let blocked = purge_at(&room, later).await;
    assert_eq!((blocked.purged, blocked.blocked), (0, 1), "{blocked:?}");
    assert!(system.keys.holds(room.subject).await.expect("lookup"));
    assert!(system.blobs.root().join(room.subject.to_string()).exists());
    let held = subject_row(&room).await;
    assert_eq!(held.state(later), RetentionState::Blocked);
    let shown = dpo_row(&room, later).await;
    assert_eq!(shown.state, "zurückgestellt");
    assert_eq!(
        shown.blocked,
        "Übergabe an „Nationales Waffenregister“ fehlt"
    );
    let retry_at = held.retry_at.expect("tried again later");

    // Handed over after the end, the next try purges: the data folder no longer holds the
    // citizen, while the exported record and PDF stay as they were.
    let (status, page) = clerk_posts(&room, "/uebergabe", "").await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{page}");
    let handed = payloads(&room, 0, "HandedOverToCaseSystem").await;
    let folder = (system.case_export_dir()).join(handed[0]["reference"].as_str().expect("ref"));
    let exported: Vec<(std::path::PathBuf, Vec<u8>)> = std::fs::read_dir(&folder)
        .expect("the export")
        .map(|e| {
            let path = e.expect("entry").path();
            let bytes = std::fs::read(&path).expect("read");
            (path, bytes)
        })
        .collect();
    assert_eq!(exported.len(), 2, "akte.json and the PDF: {exported:?}");
    let record = &exported
        .iter()
        .find(|(p, _)| p.ends_with("akte.json"))
        .expect("akte.json")
        .1;
    assert!(String::from_utf8_lossy(record).contains(&canary));
    let done = purge_at(&room, retry_at).await;
    assert_eq!(done.purged, 1, "{done:?}");
    assert!(!system.keys.holds(room.subject).await.expect("lookup"));
    assert!(!system.blobs.root().join(room.subject.to_string()).exists());
    let data = everything_in(&system.data_dir);
    for gone in ["erika@example.org", "Erika Mustermann", canary.as_str()] {
        assert!(!data.contains(gone), "{gone} left in the data folder");
    }
    assert_eq!(dpo_row(&room, retry_at).await.state, "gelöscht");
    for (path, bytes) in &exported {
        assert_eq!(
            &std::fs::read(path).expect("still there"),
            bytes,
            "{} unchanged",
            path.display()
        );
    }
}
