//! A municipality of one's own: a third tenant file (`fixtures/musterstadt.toml`) in a folder
//! beside the two examples, checked with `videoamt tenants check` and loaded by a real
//! `videoamt serve --tenants` (ADR 0020). Its configuration changes at restart and never
//! rewrites the past: a fee raised between two bookings leaves the first one's fee, in the
//! citizen's view and in the audit replay; a change that would strand outstanding appointments
//! (a service removed, the slot length changed, the municipality gone) stops the start with the
//! appointments named.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use videoamt_core::tenant::EXAMPLE_TENANTS;

use crate::http::{get, post};
use crate::mail::server;
use crate::videoamt;

const MUSTERSTADT: &str = include_str!("fixtures/musterstadt.toml");

/// A tenants folder with the two examples and `musterstadt` as given.
pub(crate) fn folder(root: &Path, musterstadt: Option<&str>) -> PathBuf {
    let dir = root.join("kommunen");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("the folder");
    for (file, text) in EXAMPLE_TENANTS {
        let name = Path::new(file).file_name().expect("a file name");
        std::fs::write(dir.join(name), text).expect("written");
    }
    if let Some(text) = musterstadt {
        std::fs::write(dir.join("musterstadt.toml"), text).expect("written");
    }
    dir
}

/// `videoamt` with `args` on the store and data folder in `root`: (success, stdout, stderr).
pub(crate) fn run(root: &Path, tenants: &Path, args: &[&str]) -> (bool, String, String) {
    let out = videoamt()
        .arg("--store")
        .arg(format!("sqlite:{}", root.join("events.db").display()))
        .arg("--data-dir")
        .arg(root.join("data"))
        .arg("--tenants")
        .arg(tenants)
        .args(args)
        .env("VIDEOAMT_LOG", "error")
        .output()
        .expect("videoamt runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Books `services` of Musterstadt at its first free start at least an hour from now, `days`
/// days on (so that two bookings never meet, whatever the free-slot read model knows yet); the
/// appointment's token and id.
/// Books on `addr`, whose mails go to the outbox folder under `root`: (token, appointment id).
async fn book(root: &Path, addr: &str, services: &[&str], days: i64) -> (String, String) {
    let today = (time::OffsetDateTime::now_utc() + time::Duration::days(days)).date();
    let slots = get(
        addr,
        &format!(
            "/api/v1/slots?tenant=musterstadt&services={}&from={today}&days=3",
            services.join(",")
        ),
    )
    .await;
    assert_eq!(slots.status, 200, "{}", slots.body);
    let slots: Value = serde_json::from_str(&slots.body).expect("JSON");
    let soon = time::OffsetDateTime::now_utc() + time::Duration::hours(1);
    let start = slots["days"]
        .as_array()
        .expect("days")
        .iter()
        .flat_map(|d| d["starts"].as_array().cloned().unwrap_or_default())
        .filter_map(|s| s.as_str().map(str::to_owned))
        .find(|s| {
            time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
                .is_ok_and(|t| t > soon)
        })
        .unwrap_or_else(|| panic!("a free start: {slots}"));
    let booking = json!({
        "tenant": "musterstadt",
        "services": services,
        "start": start,
        "contact": {"name": "Max Muster", "email": "max@example.org", "phone": null},
        "privacy_accepted": true
    });
    let booked = post(
        addr,
        "/api/v1/appointments",
        "application/json",
        &booking.to_string(),
    )
    .await;
    assert_eq!(booked.status, 201, "{}", booked.body);
    let booked: Value = serde_json::from_str(&booked.body).expect("JSON");
    let id = booked["appointment"]["id"]
        .as_str()
        .expect("an id")
        .to_owned();
    (
        crate::mail::token_by_mail(&root.join("data/outbox"), &id),
        id,
    )
}

/// The citizen's view of the appointment behind `token`.
async fn appointment(addr: &str, token: &str) -> Value {
    let found = get(addr, &format!("/api/v1/appointments/by-token/{token}")).await;
    assert_eq!(found.status, 200, "{}", found.body);
    serde_json::from_str(&found.body).expect("JSON")
}

#[test]
fn tenants_check_names_each_municipality_or_every_broken_line() {
    let root = tempfile::tempdir().expect("temp dir");
    let good = folder(root.path(), Some(MUSTERSTADT));
    let (ok, out, err) = run(
        root.path(),
        &good,
        &["tenants", "check", &good.to_string_lossy()],
    );
    assert!(ok, "{err}");
    assert!(
        out.contains("musterstadt.toml: musterstadt (Gemeinde Musterstadt), 1 departments")
            && out.contains("retention 1 months")
            && out.contains("3 municipalities, all valid"),
        "{out}"
    );

    let broken = MUSTERSTADT.replace("capacity = 1", "capacity = 0");
    let line = broken
        .lines()
        .position(|l| l.starts_with("capacity"))
        .expect("the line")
        + 1;
    let bad = folder(root.path(), Some(&broken));
    let (ok, out, err) = run(
        root.path(),
        &bad,
        &["tenants", "check", &bad.to_string_lossy()],
    );
    assert!(!ok, "refused: {out}");
    assert!(
        err.contains(&format!(
            "musterstadt.toml:{line}: capacity must be at least 1"
        )),
        "{err}"
    );
    assert!(err.contains("1 problems; nothing would be loaded"), "{err}");
    // `serve` refuses the same folder before it listens, with the same line.
    let (ok, _, err) = run(root.path(), &bad, &["serve", "--listen", "127.0.0.1:0"]);
    assert!(!ok);
    assert!(
        err.contains("cannot load the municipalities")
            && err.contains(&format!("musterstadt.toml:{line}:")),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_third_municipality_books_online_and_a_fee_change_keeps_what_was_booked() {
    let root = tempfile::tempdir().expect("temp dir");
    let tenants = folder(root.path(), Some(MUSTERSTADT));
    let env = [("VIDEOAMT_TENANTS", tenants.to_str().expect("a UTF-8 path"))];

    // --- loaded and booked online, beside the examples ---
    let (first, first_id) = {
        let (_server, addr) = server(root.path(), "", true, &env);
        let catalogue = get(&addr, "/api/v1/catalogue").await;
        assert!(
            catalogue.body.contains("Gemeinde Musterstadt")
                && catalogue.body.contains("Stadt Ettlingen"),
            "{}",
            catalogue.body
        );
        let page = get(&addr, "/buchen/musterstadt").await;
        assert_eq!(page.status, 200);
        assert!(page.body.contains("Bürgeramt im Rathaus"), "{}", page.body);
        let booked = book(root.path(), &addr, &["meldebescheinigung"], 0).await;
        let seen = appointment(&addr, &booked.0).await;
        assert_eq!(seen["tenant_name"], "Gemeinde Musterstadt");
        assert_eq!(seen["fee_total_cents"], 800);
        booked
    };

    // --- the fee is raised; the next start applies it to new bookings only ---
    let dearer = MUSTERSTADT.replace("fee_cents = 800", "fee_cents = 1200");
    folder(root.path(), Some(&dearer));
    let (_, second_id) = {
        let (_server, addr) = server(root.path(), "", true, &env);
        let seen = appointment(&addr, &first).await;
        assert_eq!(
            seen["fee_total_cents"], 800,
            "the first keeps its fee: {seen}"
        );
        assert_eq!(seen["services"][0]["fee_cents"], 800, "{seen}");
        let booked = book(
            root.path(),
            &addr,
            &["meldebescheinigung", "beglaubigung"],
            2,
        )
        .await;
        let seen = appointment(&addr, &booked.0).await;
        assert_eq!(seen["fee_total_cents"], 1700, "the new fee: {seen}");
        booked
    };
    // The audit replay shows each booking as it was made.
    for (id, fees) in [(&first_id, "8,00 €"), (&second_id, "17,00 €")] {
        let (ok, out, err) = run(
            root.path(),
            &tenants,
            &["audit", "replay", id, "--auditor", "pruefung"],
        );
        assert!(ok, "{err}");
        assert!(
            out.contains(&format!("), Gebühren {fees}")),
            "{id}: {fees} in\n{out}"
        );
    }

    // --- what would strand the two outstanding appointments stops the start ---
    let without_beglaubigung = {
        let at = dearer
            .find("[[services]]\nid = \"beglaubigung\"")
            .expect("the service");
        let end = dearer[at..].find("[[clerks]]").expect("the clerks") + at;
        format!("{}{}", &dearer[..at], &dearer[end..])
            .replace("combinable_with = [\"beglaubigung\"]\n", "")
    };
    for (change, needles) in [
        (
            dearer.replace("slot_minutes = 20", "slot_minutes = 30"),
            vec![
                "2 appointment(s) still to be held".to_owned(),
                format!("musterstadt: appointment {first_id} on "),
                "booked in slots of 20 minutes, the department now has 30".to_owned(),
            ],
        ),
        (
            without_beglaubigung,
            vec![
                "1 appointment(s) still to be held".to_owned(),
                format!("musterstadt: appointment {second_id} on "),
                "(rathaus): the service \"beglaubigung\" is no longer configured".to_owned(),
            ],
        ),
    ] {
        folder(root.path(), Some(&change));
        let (ok, _, err) = run(root.path(), &tenants, &["serve", "--listen", "127.0.0.1:0"]);
        assert!(!ok, "refused");
        for needle in needles.iter().chain([&"ADR 0020".to_owned()]) {
            assert!(err.contains(needle.as_str()), "{needle:?} in:\n{err}");
        }
    }
    folder(root.path(), None);
    let (ok, _, err) = run(root.path(), &tenants, &["serve", "--listen", "127.0.0.1:0"]);
    assert!(!ok, "refused");
    assert!(
        err.contains("2 appointment(s) still to be held")
            && err.contains("the municipality is no longer configured"),
        "{err}"
    );

    // Put back, it starts again: the refusal changed nothing.
    folder(root.path(), Some(&dearer));
    let (_server, addr) = server(root.path(), "", true, &env);
    assert_eq!(appointment(&addr, &first).await["fee_total_cents"], 800);
}

/// The third municipality's visit in the room, as far as it goes today, and its purge after
/// its own retention of one month (Ettlingen keeps three, Stuttgart six).
#[tokio::test]
async fn a_visit_in_the_third_municipality_is_held_and_purged_after_its_own_month() {
    use axum::http::StatusCode;

    use crate::room_documents::Room;
    use crate::room_handover::{clerk_posts, everything_in, purge_at, sign_form, subject_row_of};

    let root = tempfile::tempdir().expect("temp dir");
    let tenants = videoamt_api::app::tenants::load(Some(&folder(root.path(), Some(MUSTERSTADT))))
        .expect("the folder loads");
    let api = crate::router::Api::with_tenants(tenants).await;
    let booking = json!({
        "tenant": "musterstadt",
        "services": ["meldebescheinigung"],
        "start": "2026-11-24T09:00:00+01:00",
        "contact": {"name": "Max Muster", "email": "max@example.org", "phone": null},
        "privacy_accepted": true
    });
    let room = Room::waiting_in(
        api,
        &booking,
        &[("musterstadt", "m.muster", "rathaus")],
        ("musterstadt", "m.muster"),
    )
    .await;
    let (status, page) = clerk_posts(&room, "/einlassen", "").await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{page}");
    let (status, page) = clerk_posts(
        &room,
        "/identitaet",
        "document_type=Personalausweis&feature=Hologramm&feature=Lichtbild\
         &feature=Polycarbonat&result=verified",
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{page}");
    let canary = format!("Musterkanarie{}", uuid::Uuid::now_v7().simple());
    sign_form(&room, "musterstadt", "antrag-meldebescheinigung", &canary).await;
    let (status, page) = clerk_posts(&room, "/beenden", "outcome=completed").await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{page}");
    let (_, _, seen) = room
        .api
        .get(&format!("/api/v1/appointments/by-token/{}", room.token))
        .await;
    assert_eq!(seen["status"], "completed", "{seen}");
    assert_eq!(seen["tenant_name"], "Gemeinde Musterstadt");

    // The process manager schedules the purge (and files the mails).
    let system = room.api.state.system.clone();
    let worker = videoamt_api::workers::outbox::Outbox::new(
        system.clone(),
        videoamt_api::workers::outbox::mailer(&system).expect("the folder mailer"),
        "http://amt.test",
    );
    while worker.step().await.expect("a step") > 0 {}

    // Due one calendar month after the end, in Musterstadt's time zone.
    let row = subject_row_of(&room, "musterstadt").await;
    let due = row.due.expect("the purge is scheduled");
    let ended = time::OffsetDateTime::from_unix_timestamp(crate::router::NOW).expect("now");
    let musterstadt = room
        .api
        .state
        .tenants
        .iter()
        .find(|t| t.id.as_str() == "musterstadt")
        .expect("loaded");
    assert_eq!(
        due,
        musterstadt.add_months(ended, 1),
        "one month, not three"
    );

    let early = purge_at(&room, due - time::Duration::days(1)).await;
    assert_eq!(early.purged, 0, "not before its month: {early:?}");
    assert!(system.keys.holds(room.subject).await.expect("lookup"));
    let done = purge_at(&room, due + time::Duration::minutes(1)).await;
    assert_eq!(done.purged, 1, "{done:?}");
    assert!(!system.keys.holds(room.subject).await.expect("lookup"));
    let data = everything_in(&system.data_dir);
    for gone in ["max@example.org", "Max Muster", canary.as_str()] {
        assert!(!data.contains(gone), "{gone} left in the data folder");
    }
}
