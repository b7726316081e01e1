//! A generated week of Bürgerbüro visits: the pilot statistics against hand-computed values,
//! the other read models spot-checked, and a rebuild that reproduces every table exactly.

use std::sync::Arc;
use videoamt_adapters::keys::Keyring;

use time::macros::{date, datetime};
use time::{Duration, OffsetDateTime};
use videoamt_adapters::bus::CommandBus;
use videoamt_adapters::store::AdminStore;
use videoamt_adapters::store::postgres::{PostgresStore, ScratchDatabase, test_server_url};
use videoamt_adapters::store::sqlite::SqliteStore;
use videoamt_core::domain::appointment::AppointmentCommand;
use videoamt_core::domain::appointment::BookAppointment;
use videoamt_core::domain::command::Command;
use videoamt_core::domain::events::{CancelledBy, Contact, Party, SessionOutcome};
use videoamt_core::domain::form::FormCommand;
use videoamt_core::domain::identity::{DocumentType, SecurityFeature};
use videoamt_core::domain::payment::PaymentCommand;
use videoamt_core::domain::session::SessionCommand;
use videoamt_core::domain::{AppointmentId, FormId, Personal};
use videoamt_core::event::{Actor, ActorRole, TenantId};
use videoamt_core::tenant::{BookingChannel, SignatureMethod};
use videoamt_projections::detail::{self, FormProgress, PaymentProgress};
use videoamt_projections::retention::{self, RetentionState};
use videoamt_projections::runner::Runner;
use videoamt_projections::schedule::{self, VisitStatus};
use videoamt_projections::statistics::{self, WeekRow};
use videoamt_projections::{Projection, all, slots};
use videoamt_scenarios::{Visit, VisitIds};

use crate::rebuild::tenants;

enum Outcome {
    Held {
        minutes: i64,
        identity: bool,
        signed: bool,
        paid: bool,
        feedback: Option<u8>,
    },
    NoShow,
    Cancelled,
}

fn held(minutes: i64, identity: bool, signed: bool, paid: bool, feedback: Option<u8>) -> Outcome {
    Outcome::Held {
        minutes,
        identity,
        signed,
        paid,
        feedback,
    }
}

/// Booked on Monday 23 November 2026, 08:00 in Ettlingen.
const BOOKED: OffsetDateTime = datetime!(2026-11-23 07:00 UTC);
/// Monday 30 November 2026, 08:00 in Ettlingen: ISO week 2026-W49.
const MONDAY: OffsetDateTime = datetime!(2026-11-30 07:00 UTC);

/// (day after Monday, minutes after 08:00, outcome).
fn week() -> Vec<(i64, i64, Outcome)> {
    vec![
        (0, 0, held(10, true, true, true, Some(5))),
        (0, 15, held(12, true, false, false, Some(4))),
        (1, 0, held(15, true, true, true, Some(5))),
        (1, 30, held(20, false, false, false, None)),
        (2, 0, held(25, true, true, false, Some(3))),
        (2, 15, Outcome::NoShow),
        (3, 0, held(30, true, true, true, Some(5))),
        (3, 15, held(8, false, false, false, Some(1))),
        (3, 30, held(40, true, true, true, Some(5))),
        (4, 0, held(18, true, true, true, Some(4))),
        (4, 15, Outcome::NoShow),
        (4, 30, held(22, true, false, true, Some(2))),
        (4, 45, Outcome::Cancelled),
    ]
}

struct Driver {
    /// Runs commands and the process managers' reactions (e.g. scheduling the purge).
    visit: Visit,
    runner: Runner,
    projections: Vec<Arc<dyn Projection>>,
}

impl Driver {
    /// Runs a command at `now`, then lets every projection catch up (the incremental run).
    async fn run(&mut self, now: OffsetDateTime, role: ActorRole, command: Command) {
        self.visit.now = now;
        let actor = Actor::new(role, "a.becker").expect("valid");
        self.visit
            .run(&actor, command.clone())
            .await
            .unwrap_or_else(|e| panic!("{command:?} refused: {e}"));
        self.runner
            .catch_up(&self.projections)
            .await
            .expect("incremental");
    }
}

async fn visit(d: &mut Driver, day: i64, minute: i64, outcome: &Outcome) -> AppointmentId {
    let VisitIds {
        appointment,
        subject,
        session,
        form,
        payment,
        ..
    } = VisitIds::fresh();
    let start = MONDAY + Duration::days(day) + Duration::minutes(minute);
    d.run(
        BOOKED,
        ActorRole::Citizen,
        AppointmentCommand::BookAppointment(BookAppointment {
            appointment,
            subject,
            department: "buergerbuero".into(),
            services: vec!["personalausweis".into()],
            start,
            channel: BookingChannel::Online,
            invited_by: None,
            contact: Contact {
                name: Personal::plain("Erika Mustermann"),
                email: Personal::plain("erika@example.org"),
                phone: None,
            },
            access: None,
        })
        .into(),
    )
    .await;
    d.run(
        BOOKED,
        ActorRole::System,
        AppointmentCommand::ConfirmAppointment { appointment }.into(),
    )
    .await;
    let (minutes, identity, signed, paid, feedback) = match outcome {
        Outcome::Cancelled => {
            let cancel = AppointmentCommand::CancelAppointment {
                appointment,
                by: CancelledBy::CitizenByLink,
                reason: None,
            }
            .into();
            d.run(BOOKED, ActorRole::Citizen, cancel).await;
            return appointment;
        }
        Outcome::NoShow => {
            let check = AppointmentCommand::CheckNoShow { appointment }.into();
            d.run(start + Duration::minutes(15), ActorRole::System, check)
                .await;
            return appointment;
        }
        Outcome::Held {
            minutes,
            identity,
            signed,
            paid,
            feedback,
        } => (*minutes, *identity, *signed, *paid, *feedback),
    };
    let before = start - Duration::minutes(2);
    let steps = [
        SessionCommand::OpenSession {
            appointment,
            session,
        }
        .into(),
        SessionCommand::Join {
            session,
            party: Party::Citizen,
        }
        .into(),
        SessionCommand::AcceptPrivacyNotice { session }.into(),
        SessionCommand::Join {
            session,
            party: Party::Clerk,
        }
        .into(),
    ];
    for step in steps {
        d.run(before, ActorRole::Clerk, step).await;
    }
    let admit = SessionCommand::Admit {
        session,
        clerk: "a.becker".into(),
    }
    .into();
    d.run(start, ActorRole::Clerk, admit).await;
    let mut during = Vec::new();
    if identity {
        during.push(
            SessionCommand::VerifyIdentity {
                session,
                document_type: DocumentType::Personalausweis,
                questions_asked: true,
                features_checked: vec![
                    SecurityFeature::Lichtbild,
                    SecurityFeature::Hologramm,
                    SecurityFeature::Guillochen,
                ],
                clerk: "a.becker".into(),
            }
            .into(),
        );
    }
    if signed {
        during.extend([
            FormCommand::StartForm {
                session,
                form,
                template: "antrag-personalausweis".into(),
            }
            .into(),
            field(form, "familienname", "Mustermann"),
            field(form, "vorname", "Erika"),
            field(form, "geburtsdatum", "1964-08-12"),
            FormCommand::RequestSignature {
                form,
                method: SignatureMethod::Touchpad,
            }
            .into(),
            FormCommand::SignForm {
                form,
                method: SignatureMethod::Touchpad,
                evidence_sha256: "ab".repeat(32).parse().expect("64 hex digits"),
                document_sha256: "cd".repeat(32).parse().expect("64 hex digits"),
                edits_seen: None,
            }
            .into(),
        ]);
    }
    if paid {
        during.extend([
            PaymentCommand::RequestPayment {
                payment,
                appointment,
                session: None,
            }
            .into(),
            PaymentCommand::ChoosePaymentMethod {
                payment,
                method: "kreditkarte".into(),
            }
            .into(),
            PaymentCommand::AuthorizePayment {
                payment,
                provider_reference: "sandbox-1".into(),
                method: None,
            }
            .into(),
            PaymentCommand::CapturePayment { payment }.into(),
        ]);
    }
    for step in during {
        d.run(start + Duration::minutes(1), ActorRole::Clerk, step)
            .await;
    }
    let outcome = if identity && signed {
        SessionOutcome::Completed
    } else {
        SessionOutcome::Aborted
    };
    let end = start + Duration::minutes(minutes);
    d.run(
        end,
        ActorRole::Clerk,
        SessionCommand::EndSession { session, outcome }.into(),
    )
    .await;
    if let Some(score) = feedback {
        // Feedback comes after the end; the visit already counts and is updated in place.
        let feedback = SessionCommand::SubmitFeedback {
            session,
            score,
            aspects: None,
            comment: None,
        }
        .into();
        d.run(end + Duration::minutes(1), ActorRole::Citizen, feedback)
            .await;
    }
    appointment
}

fn field(form: FormId, name: &str, value: &str) -> Command {
    FormCommand::ChangeField {
        form,
        field: name.into(),
        value: Personal::plain(value),
        by: Party::Citizen,
        based_on: None,
    }
    .into()
}

fn assert_close(actual: Option<f64>, expected: f64, what: &str) {
    let actual = actual.unwrap_or_else(|| panic!("{what} missing"));
    assert!(
        (actual - expected).abs() < 1e-9,
        "{what}: {actual} != {expected}"
    );
}

/// The figures below are worked out by hand from [`week`]:
/// - held: 10 sessions (6 completed, 4 technically aborted), durations 8 10 12 15 18 20 22 25 30 40 min → median (18+20)/2 = 19,
///   p90 = 9th of 10 (nearest rank ⌈0.9·10⌉) = 30;
/// - lead times (held and no-shows, 12), from Monday 23 Nov 08:00: 168, 168.25, 192, 192.5,
///   216, 216.25, 240, 240.25, 240.5, 264, 264.25, 264.5 h → median (216.25+240)/2 = 228.125,
///   p90 = 11th of 12 (⌈10.8⌉) = 264.25;
/// - identity 8/10, signature 6/10, payment 6/10; feedback 1×1, 1×2, 1×3, 2×4, 4×5.
fn check_statistics(rows: &[WeekRow]) {
    assert_eq!(rows.len(), 1, "{rows:?}");
    let row = &rows[0];
    assert_eq!(
        (
            row.tenant.as_str(),
            row.department.as_str(),
            row.week.as_str()
        ),
        ("ettlingen", "buergerbuero", "2026-W49")
    );
    // 6 completed and 4 technically aborted, as the day plan below shows them (Co, Ab).
    assert_eq!(
        (row.sessions, row.completed, row.aborted, row.no_shows),
        (10, 6, 4, 2)
    );
    assert_close(row.duration_median_minutes, 19.0, "median duration");
    assert_close(row.duration_p90_minutes, 30.0, "p90 duration");
    assert_close(row.lead_median_hours, 228.125, "median lead");
    assert_close(row.lead_p90_hours, 264.25, "p90 lead");
    assert_close(row.identity_check_share, 0.8, "identity share");
    assert_close(row.signature_share, 0.6, "signature share");
    assert_close(row.payment_share, 0.6, "payment share");
    assert_eq!(row.feedback, [1, 1, 1, 2, 4]);
}

async fn generated_week(store: Arc<dyn AdminStore>) {
    let bus = CommandBus::new(
        store.clone(),
        Keyring::ephemeral(store.clone()),
        tenants().iter().cloned(),
    );
    let mut driver = Driver {
        visit: Visit::new(bus, TenantId::parse("ettlingen").expect("valid"), BOOKED),
        runner: Runner::new(store.clone(), store.clone()),
        projections: all(tenants()),
    };
    let mut appointments = Vec::new();
    for (day, minute, outcome) in &week() {
        appointments.push(visit(&mut driver, *day, *minute, outcome).await);
    }
    check_statistics(
        &statistics::rows(store.as_ref(), Some("ettlingen"))
            .await
            .expect("rows"),
    );
    assert!(
        statistics::rows(store.as_ref(), Some("stuttgart"))
            .await
            .expect("rows")
            .is_empty()
    );

    // The clerk's week: all 13 appointments, in order, with their final status.
    let ettlingen = &tenants()[0];
    let plan = schedule::for_clerk(
        store.as_ref(),
        ettlingen,
        &"a.becker".into(),
        date!(2026 - 11 - 30),
        7,
    )
    .await
    .expect("plan");
    let statuses: Vec<Vec<VisitStatus>> = plan
        .iter()
        .map(|d| d.appointments.iter().map(|a| a.status).collect())
        .collect();
    use VisitStatus::{Aborted as Ab, Cancelled as Ca, Completed as Co, NoShow as No};
    assert_eq!(
        statuses,
        vec![
            vec![Co, Ab],
            vec![Co, Ab],
            vec![Co, No],
            vec![Co, Ab, Co],
            vec![Co, No, Ab, Ca],
            vec![],
            vec![]
        ]
    );
    assert!(
        plan[0].appointments[0].clerk.as_ref().map(|c| c.as_str()) == Some("a.becker"),
        "the admitting clerk is shown"
    );

    // The detail of the first visit: form locked, payment captured, documents from the catalogue.
    let first = detail::detail(store.as_ref(), appointments[0])
        .await
        .expect("read")
        .expect("exists");
    assert_eq!(first.status, Some(Co));
    assert!(
        first
            .forms
            .values()
            .all(|f| f.progress == FormProgress::Locked)
    );
    assert_eq!(first.forms.len(), 1);
    assert_eq!(
        first.payment.as_ref().map(|p| (p.progress, p.amount.0)),
        Some((PaymentProgress::Captured, 3700))
    );
    assert_eq!(
        first.session.as_ref().and_then(|s| s.identity.as_deref()),
        Some("geprüft")
    );
    assert_eq!(first.documents_to_bring(ettlingen).len(), 2);

    // Friday: 08:45 is free again after the cancellation; the held slots are not.
    let friday = slots::free_slots(
        store.as_ref(),
        ettlingen,
        &["personalausweis".into()],
        date!(2026 - 12 - 04),
        BOOKED,
    )
    .await
    .expect("free slots");
    let at = |h: u8, m: u8| {
        ettlingen.instant(time::PrimitiveDateTime::new(
            date!(2026 - 12 - 04),
            time::Time::from_hms(h, m, 0).expect("time"),
        ))
    };
    assert!(friday.contains(&at(8, 45)));
    assert!(friday.contains(&at(8, 0)), "capacity 2: one of two taken");
    assert_eq!(
        friday.len(),
        16,
        "08:00–12:00 in 15-minute slots, none full"
    );

    // Retention: every final appointment scheduled for purge 3 months after its final state.
    let subjects = retention::subjects(store.as_ref(), Some("ettlingen"))
        .await
        .expect("subjects");
    assert_eq!(subjects.len(), 13);
    let counts = retention::counts(&subjects, MONDAY + Duration::days(7));
    assert_eq!(counts[0].counts.get(&RetentionState::Scheduled), Some(&13));
    let after = retention::counts(&subjects, datetime!(2027-03-10 00:00 UTC));
    assert_eq!(after[0].counts.get(&RetentionState::Overdue), Some(&13));

    // A rebuild from 0 produces exactly the same tables.
    let projections = all(tenants());
    let mut before = Vec::new();
    for p in &projections {
        before.push(store.dump(p.name()).await.expect("dump"));
    }
    driver
        .runner
        .rebuild(&projections, |_| {})
        .await
        .expect("rebuild");
    for (p, before) in projections.iter().zip(before) {
        assert_eq!(
            store.dump(p.name()).await.expect("dump"),
            before,
            "{} differs after rebuild",
            p.name()
        );
    }
    check_statistics(&statistics::rows(store.as_ref(), None).await.expect("rows"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_generated_week() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteStore::open(dir.path().join("events.db"))
        .await
        .expect("open");
    generated_week(Arc::new(store)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_generated_week() {
    let Some(server) = test_server_url().await else {
        return;
    };
    let db = ScratchDatabase::create(&server, "statistics")
        .await
        .expect("scratch");
    let store = PostgresStore::connect(&db.url()).await.expect("open");
    generated_week(Arc::new(store)).await;
    db.drop_now().await.expect("drop");
}
