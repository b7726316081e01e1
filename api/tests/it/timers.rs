//! What follows the events without anyone asking: the process manager's commands (a purge is
//! scheduled when an appointment reaches its final state) run by the outbox worker, and the
//! appointments' timers (reminder, no-show) fired by the scheduler from the due-timer
//! projection, with the reminder mail sent.

use std::sync::Arc;

use serde_json::json;
use time::OffsetDateTime;
use time::macros::datetime;
use videoamt_adapters::mail::FolderMailer;
use videoamt_api::workers::outbox::Outbox;
use videoamt_api::workers::timers::fire_due;
use videoamt_core::domain::AppointmentId;

use crate::router::{Api, TUE_9};

async fn types(api: &Api, appointment: AppointmentId) -> Vec<String> {
    api.state
        .store
        .read_stream(&appointment.stream(), 0)
        .await
        .expect("read")
        .iter()
        .map(|e| e.event_type.as_str().to_owned())
        .collect()
}

async fn id_of(api: &Api, token: &str) -> AppointmentId {
    let (_, _, body) = api
        .get(&format!("/api/v1/appointments/by-token/{token}"))
        .await;
    AppointmentId(body["id"].as_str().expect("id").parse().expect("uuid"))
}

/// Events of type `kind` on the appointment's subject stream.
async fn subject_events(api: &Api, appointment: AppointmentId, kind: &str) -> usize {
    let (state, _) = api
        .state
        .system
        .appointment(appointment)
        .await
        .expect("read")
        .expect("booked");
    let subject = state.booking.expect("booking").subject;
    api.state
        .store
        .read_stream(&subject.stream(), 0)
        .await
        .expect("read")
        .iter()
        .filter(|e| e.event_type.as_str() == kind)
        .count()
}

#[tokio::test]
async fn reminders_and_no_shows_fire_on_time_and_final_states_schedule_the_purge() {
    let api = Api::new().await;
    let first = api.book(TUE_9).await;
    let moved = api.book("2026-11-24T10:00:00+01:00").await;
    let cancelled = api.book("2026-11-24T11:00:00+01:00").await;
    let (first, moved, cancelled) = (
        id_of(&api, &first).await,
        {
            let (status, _, body) = api
                .post(
                    &format!("/api/v1/appointments/by-token/{moved}/reschedule"),
                    &json!({"start": "2026-11-25T10:00:00+01:00"}),
                )
                .await;
            assert_eq!(status, axum::http::StatusCode::OK, "{body}");
            id_of(&api, &moved).await
        },
        {
            let (status, _, _) = api
                .post(
                    &format!("/api/v1/appointments/by-token/{cancelled}/cancel"),
                    &json!({}),
                )
                .await;
            assert_eq!(status, axum::http::StatusCode::OK);
            id_of(&api, &cancelled).await
        },
    );
    api.fold().await;
    let system = &api.state.system;

    // The reminder is due a day before the start (Monday 09:00 in Ettlingen = 08:00 UTC).
    let monday_9: OffsetDateTime = datetime!(2026-11-23 08:00 UTC);
    assert_eq!(
        fire_due(system, monday_9 - time::Duration::SECOND)
            .await
            .expect("fires"),
        0
    );
    assert_eq!(fire_due(system, monday_9).await.expect("fires"), 1);
    assert!(
        types(&api, first)
            .await
            .contains(&"ReminderSent".to_owned())
    );
    api.fold().await;
    assert_eq!(
        fire_due(system, monday_9).await.expect("fires"),
        0,
        "fired once"
    );
    // Nobody came to the first appointment: 15 minutes after the start it is a no-show.
    assert_eq!(
        fire_due(system, datetime!(2026-11-24 08:14:59 UTC))
            .await
            .expect("fires"),
        0
    );
    assert_eq!(
        fire_due(system, datetime!(2026-11-24 08:15 UTC))
            .await
            .expect("fires"),
        1
    );
    assert!(
        types(&api, first)
            .await
            .contains(&"NoShowRecorded".to_owned())
    );
    api.fold().await;
    // The moved appointment is reminded a day before its new start, the cancelled one never.
    assert!(
        !types(&api, moved)
            .await
            .contains(&"ReminderSent".to_owned())
    );
    assert_eq!(
        fire_due(system, datetime!(2026-11-24 09:00 UTC))
            .await
            .expect("fires"),
        1
    );
    assert!(
        types(&api, moved)
            .await
            .contains(&"ReminderSent".to_owned())
    );
    assert!(
        !types(&api, cancelled)
            .await
            .contains(&"ReminderSent".to_owned())
    );
    api.fold().await;
    assert_eq!(
        fire_due(system, datetime!(2026-11-24 23:00 UTC))
            .await
            .expect("fires"),
        0
    );

    // The outbox worker sends the reminder mail and schedules the purge of the no-show and
    // the cancelled appointment; run again, it changes nothing.
    let outbox_dir = tempfile::tempdir().expect("dir");
    let outbox = Outbox::new(
        system.clone(),
        Arc::new(FolderMailer::new(outbox_dir.path())),
        "http://amt.test",
    );
    while outbox.step().await.expect("a step") > 0 {}
    for appointment in [first, cancelled] {
        assert_eq!(subject_events(&api, appointment, "PurgeScheduled").await, 1);
    }
    assert_eq!(
        subject_events(&api, moved, "PurgeScheduled").await,
        0,
        "still open"
    );
    let mut subjects = vec![];
    for entry in walk(outbox_dir.path()) {
        let text = std::fs::read_to_string(&entry).expect("a mail");
        if let Some(line) = text.lines().find(|l| l.starts_with("Subject:")) {
            subjects.push(line.to_owned());
        }
    }
    let reminders = subjects
        .iter()
        .filter(|s| s.contains("=?utf-8?") || s.contains("Erinnerung"))
        .count();
    assert!(reminders >= 2, "{subjects:?}");
    let head = api.last_position().await;
    while outbox.step().await.expect("a step") > 0 {}
    assert_eq!(api.last_position().await, head);
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = vec![];
    for entry in std::fs::read_dir(dir).expect("dir").flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}
