use std::sync::Arc;

use time::macros::datetime;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;
use videoamt_adapters::bus::{CommandBus, Issued};
use videoamt_adapters::keys::Keyring;
use videoamt_adapters::store::AdminStore;
use videoamt_adapters::store::postgres::{PostgresStore, ScratchDatabase, test_server_url};
use videoamt_adapters::store::sqlite::SqliteStore;
use videoamt_core::domain::account::{AccountCommand, FirstPassword, StaffRole};
use videoamt_core::domain::appointment::AppointmentCommand;
use videoamt_core::domain::appointment::BookAppointment;
use videoamt_core::domain::events::{Contact, Party, PasswordLinkIssued, SessionOutcome};
use videoamt_core::domain::form::FormCommand;
use videoamt_core::domain::session::SessionCommand;
use videoamt_core::domain::subject::SubjectCommand;
use videoamt_core::domain::{AppointmentId, FormId, Personal, SessionId, SubjectId};
use videoamt_core::event::{Actor, ActorRole, TenantId};
use videoamt_core::tenant::{BookingChannel, example_tenants};
use videoamt_projections::all;
use videoamt_projections::audit::{self, Timeline};
use videoamt_projections::runner::{RebuildSizes, Runner};
use videoamt_projections::waiting_room::{self, Waiting};

pub(crate) fn issued(now: OffsetDateTime, role: ActorRole) -> Issued {
    Issued {
        tenant: TenantId::parse("ettlingen").expect("valid"),
        actor: Actor::new(role, "tester").expect("valid"),
        correlation_id: Uuid::now_v7(),
        command_id: Uuid::now_v7(),
        now,
    }
}

/// Twelve appointments in various states, with the projections catching up after every
/// command (the incremental run).
/// An online booking at the Bürgerbüro, for a registration certificate.
pub(crate) fn booking(
    appointment: AppointmentId,
    start: OffsetDateTime,
    name: &str,
    email: &str,
) -> AppointmentCommand {
    AppointmentCommand::BookAppointment(BookAppointment {
        appointment,
        subject: SubjectId(Uuid::now_v7()),
        department: "buergerbuero".into(),
        services: vec!["meldebescheinigung".into()],
        start,
        channel: BookingChannel::Online,
        invited_by: None,
        contact: Contact {
            name: Personal::plain(name.to_owned()),
            email: Personal::plain(email.to_owned()),
            phone: None,
        },
        access: None,
    })
}

async fn generate(store: Arc<dyn AdminStore>) -> (Vec<AppointmentId>, Vec<SessionId>) {
    let bus = CommandBus::new(
        store.clone(),
        Keyring::ephemeral(store.clone()),
        example_tenants().expect("valid"),
    );
    let projections = all(tenants());
    let now = datetime!(2026-11-23 07:00 UTC);
    let (mut appointments, mut sessions) = (Vec::new(), Vec::new());
    for i in 0..12i64 {
        let appointment = AppointmentId(Uuid::now_v7());
        let session = SessionId(Uuid::now_v7());
        let start = datetime!(2026-11-24 07:00 UTC) + Duration::minutes(15 * i);
        let mut commands = vec![(
            ActorRole::Citizen,
            booking(
                appointment,
                start,
                &format!("B{i}"),
                &format!("b{i}@example.org"),
            )
            .into(),
        )];
        if i % 6 == 0 {
            // A staff account of the municipality, given another role later.
            let login = videoamt_core::domain::account::Login::parse(&format!("konto.{i}"))
                .expect("a login");
            commands.push((
                ActorRole::Admin,
                AccountCommand::CreateAccount {
                    login: login.clone(),
                    role: StaffRole::Clerk,
                    departments: vec!["buergerbuero".into()],
                    password: FirstPassword::Link(PasswordLinkIssued {
                        digest: format!("{i:064x}"),
                        expires: now + Duration::hours(72),
                    }),
                }
                .into(),
            ));
            commands.push((
                ActorRole::Admin,
                AccountCommand::ChangeRole {
                    account: login,
                    role: StaffRole::Auditor,
                    departments: vec![],
                    admins: vec![],
                }
                .into(),
            ));
        }
        if i % 4 == 3 {
            commands.push((
                ActorRole::Citizen,
                AppointmentCommand::CancelAppointment {
                    appointment,
                    by: videoamt_core::domain::events::CancelledBy::CitizenByLink,
                    reason: Some(Personal::plain("Umzug")),
                }
                .into(),
            ));
            // The process manager's reaction: the purge timer starts.
            commands.push((
                ActorRole::System,
                SubjectCommand::SchedulePurge {
                    appointment,
                    final_state: videoamt_core::domain::events::FinalState::Cancelled,
                    final_at: now,
                }
                .into(),
            ));
        } else {
            commands.push((
                ActorRole::Clerk,
                SessionCommand::OpenSession {
                    appointment,
                    session,
                }
                .into(),
            ));
            commands.push((
                ActorRole::Citizen,
                SessionCommand::Join {
                    session,
                    party: Party::Citizen,
                }
                .into(),
            ));
            if i % 4 != 0 {
                commands.push((
                    ActorRole::Citizen,
                    SessionCommand::AcceptPrivacyNotice { session }.into(),
                ));
            }
            if i % 4 == 2 {
                commands.push((
                    ActorRole::Clerk,
                    SessionCommand::Admit {
                        session,
                        clerk: "a.becker".into(),
                    }
                    .into(),
                ));
                // A form names only its session; its later events find the appointment
                // through both.
                let form = FormId(Uuid::now_v7());
                commands.push((
                    ActorRole::Clerk,
                    FormCommand::StartForm {
                        session,
                        form,
                        template: "antrag-meldebescheinigung".into(),
                    }
                    .into(),
                ));
                commands.push((
                    ActorRole::Citizen,
                    FormCommand::ChangeField {
                        form,
                        field: "familienname".into(),
                        value: Personal::plain("Mustermann"),
                        by: Party::Citizen,
                        based_on: None,
                    }
                    .into(),
                ));
                commands.push((
                    ActorRole::Clerk,
                    SessionCommand::EndSession {
                        session,
                        outcome: SessionOutcome::Aborted,
                    }
                    .into(),
                ));
            }
        }
        for (role, command) in commands {
            bus.execute(&command, &issued(now, role))
                .await
                .expect("accepted");
            // A new runner each time, as after a restart: it knows no stream's owner and must
            // find it in the log, where a rebuild sees every stream start.
            Runner::new(store.clone(), store.clone())
                .catch_up(&projections)
                .await
                .expect("incremental");
        }
        appointments.push(appointment);
        sessions.push(session);
    }
    (appointments, sessions)
}

async fn rebuild_equals_incremental(store: Arc<dyn AdminStore>) {
    let (appointments, _) = generate(store.clone()).await;
    let runner = Runner::new(store.clone(), store.clone());
    let head = store.last_position().await.expect("head");

    // What the clerk sees: the waiting citizens of the Bürgerbüro, with privacy flags.
    let waiting = store
        .list(waiting_room::NAME, "waiting", "ettlingen/buergerbuero/")
        .await
        .expect("list");
    let waiting: Vec<Waiting> = waiting
        .into_iter()
        .map(|(_, v)| serde_json::from_value(v).expect("doc"))
        .collect();
    assert_eq!(
        waiting.len(),
        6,
        "i % 4 in {{0, 1}} wait; 2 was admitted, 3 cancelled"
    );
    assert_eq!(
        waiting.iter().filter(|w| w.privacy_notice_accepted).count(),
        3
    );

    // The auditor's timeline merges every stream of an appointment in global order.
    let timeline: Timeline = audit::timeline(store.as_ref(), store.as_ref(), appointments[2], None)
        .await
        .expect("read")
        .expect("timeline exists");
    let streams: std::collections::BTreeSet<&str> = timeline
        .entries
        .iter()
        .map(|e| e.stream.split('-').next().unwrap_or_default())
        .collect();
    assert_eq!(
        streams,
        ["appointment", "form", "session", "slot", "subject"]
            .into_iter()
            .collect()
    );
    assert!(
        timeline
            .entries
            .windows(2)
            .all(|w| w[0].position < w[1].position)
    );
    assert_eq!(
        timeline.entries.first().map(|e| e.summary.as_str()),
        Some("1 Zeitfenster reserviert")
    );

    // The clerk's view of an admitted visit: the form started in its session and the field
    // the citizen filled in, which neither names the appointment.
    let detail = videoamt_projections::detail::detail(store.as_ref(), appointments[2])
        .await
        .expect("read")
        .expect("detail exists");
    let forms: Vec<u32> = detail.forms.values().map(|f| f.fields_changed).collect();
    assert_eq!(forms, [1]);

    // The municipality's accounts, with the role they have now.
    let listed = videoamt_projections::accounts::listed(store.as_ref(), "ettlingen")
        .await
        .expect("list");
    let logins: Vec<(&str, StaffRole)> =
        listed.iter().map(|l| (l.login.as_str(), l.role)).collect();
    assert_eq!(
        logins,
        [
            ("konto.0", StaffRole::Auditor),
            ("konto.6", StaffRole::Auditor)
        ]
    );

    let projections = all(tenants());
    let mut incremental = Vec::new();
    for p in &projections {
        let dump = store.dump(p.name()).await.expect("dump");
        assert!(!dump.is_empty(), "{} has documents", p.name());
        assert!(
            dump.iter().all(|(key, _)| key.kind != "owner"),
            "{} keeps no index of owners",
            p.name()
        );
        incremental.push(dump);
    }
    let mut progress = Vec::new();
    let applied = runner
        .rebuild(&projections, |position| progress.push(position))
        .await
        .expect("rebuild");
    assert_eq!(applied, head);
    assert_eq!(progress.last(), Some(&head));
    let mut rebuilt = Vec::new();
    for (p, before) in projections.iter().zip(incremental) {
        let dump = store.dump(p.name()).await.expect("dump");
        assert_eq!(dump, before, "{} rebuild differs", p.name());
        rebuilt.push(dump);
    }
    let lag = runner.lag(&projections).await.expect("lag");
    assert!(lag.iter().all(|l| l.events_behind == 0), "{lag:?}");

    // Small pages and windows: many commits, documents new in one window changed or deleted
    // in a later one, and the same documents in the end.
    let small = Runner::new(store.clone(), store.clone()).with_rebuild_sizes(RebuildSizes {
        page: 3,
        window: 6,
        window_docs: 3,
    });
    let mut progress = Vec::new();
    small
        .rebuild(&projections, |position| progress.push(position))
        .await
        .expect("rebuild in small windows");
    progress.dedup();
    assert!(progress.len() > 10, "progress in windows: {progress:?}");
    assert_eq!(progress.last(), Some(&head));
    for (p, before) in projections.iter().zip(&rebuilt) {
        assert_eq!(
            &store.dump(p.name()).await.expect("dump"),
            before,
            "{} rebuild in small windows differs",
            p.name()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_rebuild_equals_incremental() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteStore::open(dir.path().join("events.db"))
        .await
        .expect("open");
    rebuild_equals_incremental(Arc::new(store)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_rebuild_equals_incremental() {
    let Some(server) = test_server_url().await else {
        return;
    };
    let db = ScratchDatabase::create(&server, "projections")
        .await
        .expect("scratch");
    let store = PostgresStore::connect(&db.url()).await.expect("open");
    rebuild_equals_incremental(Arc::new(store)).await;
    db.drop_now().await.expect("drop");
}

#[test]
fn every_projection_has_a_unique_name() {
    let names: std::collections::BTreeSet<&str> = all(tenants()).iter().map(|p| p.name()).collect();
    assert_eq!(names.len(), all(tenants()).len());
}

pub(crate) fn tenants() -> Arc<Vec<videoamt_core::tenant::Tenant>> {
    Arc::new(example_tenants().expect("examples are valid"))
}
