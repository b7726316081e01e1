//! Audit reads through the desk and the operator commands over the read models.

use std::sync::Arc;
use videoamt_adapters::keys::Keyring;

use time::macros::datetime;
use uuid::Uuid;
use videoamt_adapters::bus::{CommandBus, Issued};
use videoamt_adapters::store::AdminStore;
use videoamt_adapters::store::sqlite::SqliteStore;
use videoamt_api::app::audit::{AuditDesk, AuditError};
use videoamt_core::domain::appointment::AppointmentCommand;
use videoamt_core::domain::appointment::BookAppointment;
use videoamt_core::domain::events::Contact;
use videoamt_core::domain::{AppointmentId, Personal, SubjectId};
use videoamt_core::event::{Actor, ActorRole, TenantId};
use videoamt_core::store::EventStore;
use videoamt_core::tenant::{BookingChannel, example_tenants};
use videoamt_projections::audit::ReplayError;

use crate::videoamt;

/// A store with one booked and confirmed Stuttgart appointment.
async fn booked(path: &std::path::Path) -> (Arc<dyn AdminStore>, CommandBus, AppointmentId) {
    let store: Arc<dyn AdminStore> = Arc::new(SqliteStore::open(path).await.expect("open"));
    let bus = CommandBus::new(
        store.clone(),
        Keyring::ephemeral(store.clone()),
        example_tenants().expect("valid"),
    );
    let appointment = AppointmentId(Uuid::now_v7());
    let issued = Issued {
        tenant: TenantId::parse("stuttgart").expect("valid"),
        actor: Actor::new(ActorRole::Clerk, "m.keller").expect("valid"),
        correlation_id: Uuid::now_v7(),
        command_id: Uuid::now_v7(),
        now: datetime!(2026-11-23 07:00 UTC),
    };
    bus.execute(
        &AppointmentCommand::BookAppointment(BookAppointment {
            appointment,
            subject: SubjectId(Uuid::now_v7()),
            department: "ordnung-waffen".into(),
            services: vec!["waffenbesitzkarte".into()],
            start: datetime!(2026-11-26 08:00 UTC),
            channel: BookingChannel::Online,
            invited_by: None,
            contact: Contact {
                name: Personal::plain("Max Muster"),
                email: Personal::plain("max@example.org"),
                phone: None,
            },
            access: None,
        })
        .into(),
        &issued,
    )
    .await
    .expect("booked");
    bus.execute(
        &AppointmentCommand::ConfirmAppointment { appointment }.into(),
        &issued,
    )
    .await
    .expect("confirmed");
    (store, bus, appointment)
}

async fn views(store: &dyn EventStore) -> Vec<videoamt_core::event::RecordedEvent> {
    store
        .read_all(0, 10_000)
        .await
        .expect("read")
        .into_iter()
        .filter(|e| e.event_type.as_str() == "AuditRecordViewed")
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_audit_read_is_recorded_once_and_shows_in_the_timeline() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (store, bus, appointment) = booked(&dir.path().join("events.db")).await;
    let desk = AuditDesk::new(bus, store.clone());
    let auditor = Actor::new(ActorRole::Auditor, "p.pruefer").expect("valid");
    let head = store.last_position().await.expect("head");

    let replay = desk
        .view(appointment, Some(head), &auditor)
        .await
        .expect("view");
    assert_eq!(store.last_position().await.expect("head"), head + 1);
    let recorded = views(store.as_ref()).await;
    assert_eq!(recorded.len(), 1);
    assert_eq!(recorded[0].meta.actor, auditor);
    assert_eq!(
        recorded[0].stream_id.as_str(),
        format!("audit-{appointment}")
    );
    // The state is as of the position asked for; the view itself is in the timeline shown.
    assert_eq!(replay.as_of, head);
    assert_eq!(replay.record.audit_views, 0);
    let again = desk.view(appointment, None, &auditor).await.expect("view");
    let shown: Vec<_> = again
        .timeline
        .iter()
        .filter(|e| e.event_type == "AuditRecordViewed")
        .collect();
    assert_eq!(shown.len(), 2, "both reads are in the timeline");
    assert_eq!(shown[0].actor, "auditor:p.pruefer");
    assert_eq!(
        shown[0].summary,
        format!("Prüfakte eingesehen (Stand Position {head})")
    );
    assert_eq!(again.record.audit_views, 2);
    assert_eq!(views(store.as_ref()).await.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_audit_reads_write_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (store, bus, appointment) = booked(&dir.path().join("events.db")).await;
    let desk = AuditDesk::new(bus, store.clone());
    let auditor = Actor::new(ActorRole::Auditor, "p.pruefer").expect("valid");
    let head = store.last_position().await.expect("head");

    let unknown = desk
        .view(AppointmentId(Uuid::now_v7()), None, &auditor)
        .await;
    assert!(
        matches!(
            unknown,
            Err(AuditError::Replay(ReplayError::UnknownAppointment(_)))
        ),
        "{unknown:?}"
    );
    let beyond = desk.view(appointment, Some(head + 1), &auditor).await;
    assert!(
        matches!(
            beyond,
            Err(AuditError::Replay(ReplayError::BeyondEnd { .. }))
        ),
        "{beyond:?}"
    );
    assert_eq!(store.last_position().await.expect("head"), head);
}

fn run(store: &str, args: &[&str]) -> (bool, String, String) {
    let out = videoamt()
        .arg("--store")
        .arg(store)
        .args(args)
        .output()
        .expect("run videoamt");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_commands_answer_and_refuse_clearly() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("events.db");
    let appointment = {
        let (_, _, appointment) = booked(&path).await;
        appointment
    };
    let store = format!("sqlite:{}", path.display());

    let (ok, out, err) = run(&store, &["projections", "status", "--json"]);
    assert!(ok, "{err}");
    let status: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    let names: Vec<&str> = status
        .as_array()
        .expect("array")
        .iter()
        .map(|p| p["projection"].as_str().expect("name"))
        .collect();
    assert_eq!(names.len(), 9, "{names:?}");
    assert!(
        status
            .as_array()
            .expect("array")
            .iter()
            .all(|p| p["events_behind"] == 4)
    );

    let (ok, out, err) = run(&store, &["projections", "rebuild", "--all"]);
    assert!(ok, "{err}");
    assert!(
        out.contains("rebuilt 9 projection(s) over 4 events"),
        "{out}"
    );
    let (ok, _, err) = run(&store, &["projections", "rebuild", "nosuch"]);
    assert!(!ok);
    assert!(
        err.contains("unknown projection \"nosuch\"; known: accounts, audit-timeline"),
        "{err}"
    );

    let (ok, out, err) = run(
        &store,
        &["audit", "replay", &appointment.to_string(), "--at", "2"],
    );
    assert!(ok, "{err}");
    assert!(out.contains("Stand Position 2"), "{out}");
    assert!(
        out.contains("Termin gebucht: 1 Anliegen (Waffenbesitzkarte: Eintragung und Änderung)"),
        "{out}"
    );
    assert!(
        !out.contains("Terminbestätigung"),
        "position 4 is after 2:\n{out}"
    );
    assert!(out.contains("Termin: gebucht"), "{out}");
    assert!(
        !out.contains("Max Muster"),
        "no personal data in the replay"
    );

    let (ok, _, err) = run(&store, &["audit", "replay", "not-a-uuid"]);
    assert!(!ok);
    assert!(err.contains("is not an appointment id"), "{err}");
    let (ok, _, err) = run(&store, &["audit", "replay", &Uuid::now_v7().to_string()]);
    assert!(!ok);
    assert!(err.contains("ist nicht bekannt"), "{err}");
    let (ok, _, err) = run(
        &store,
        &["audit", "replay", &appointment.to_string(), "--at", "99"],
    );
    assert!(!ok);
    assert!(err.contains("hinter dem Ende des Protokolls"), "{err}");

    let (ok, _, err) = run(&store, &["stats", "--tenant", "atlantis"]);
    assert!(!ok);
    assert!(
        err.contains("unknown tenant \"atlantis\"; known: ettlingen, stuttgart"),
        "{err}"
    );
    let (ok, out, err) = run(&store, &["stats", "--format", "csv"]);
    assert!(ok, "{err}");
    assert!(
        out.starts_with("\"tenant\",\"department\",\"week\",\"sessions\",\"completed\",\"aborted\",\"no_shows\","),
        "{out}"
    );
    let (ok, out, err) = run(&store, &["stats", "--tenant", "stuttgart"]);
    assert!(ok, "{err}");
    assert!(out.contains("noch keine abgeschlossenen Termine"), "{out}");
}
