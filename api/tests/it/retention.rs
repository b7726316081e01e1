//! Retention and provable erasure against real stores: canaries gone after the purge,
//! retention periods to the second, a blocked handover, a planted leak, tampering.

use std::path::PathBuf;
use std::sync::Arc;

use time::{Duration, OffsetDateTime};
use uuid::Uuid;
use videoamt_adapters::keys::Kek;
use videoamt_adapters::store::AdminStore;
use videoamt_adapters::store::sqlite::SqliteStore;
use videoamt_api::app::System;
use videoamt_api::workers::retention::purge::PurgeJob;
use videoamt_api::workers::retention::verify::Verifier;
use videoamt_core::blobs::{BlobContent, BlobError, BlobName, BlobStore as _};
use videoamt_core::domain::appointment::AppointmentCommand;
use videoamt_core::domain::appointment::BookAppointment;
use videoamt_core::domain::events::{AppointmentBooked, CancelledBy, Contact};
use videoamt_core::domain::session::SessionCommand;
use videoamt_core::domain::{AppointmentId, DomainEvent, Personal, SubjectId};
use videoamt_core::event::{Actor, ActorRole, StreamId, TenantId};
use videoamt_core::keys::{KeyError, Revealed, reveal};
use videoamt_core::readmodel::{Change, DocKey};
use videoamt_core::seal::{FormDocument, FormSealer as _, SignatureEvidence};
use videoamt_core::sms::OutgoingSms;
use videoamt_core::tenant::{BookingChannel, example_tenants};
use videoamt_projections::retention::{self as report, RetentionState};
use videoamt_projections::runner::Runner;
use videoamt_projections::{all, audit, statistics};
use videoamt_scenarios::generate::{Handover, PersonalValues, complete_visit, visit_times};
use videoamt_scenarios::{Visit, VisitIds};

/// A fresh store and data folder.
struct Env {
    dir: tempfile::TempDir,
    system: System,
    /// How to dump the whole database as text.
    dump: Dump,
    scratch: Option<videoamt_adapters::store::postgres::ScratchDatabase>,
}

enum Dump {
    Sqlite(PathBuf),
    Postgres(String),
}

impl Env {
    async fn sqlite() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = dir.path().join("events.db");
        let store: Arc<dyn AdminStore> = Arc::new(SqliteStore::open(&db).await.expect("open"));
        let system = System::new(store, kek(), dir.path(), tenants());
        Self {
            dir,
            system,
            dump: Dump::Sqlite(db),
            scratch: None,
        }
    }

    async fn postgres() -> Option<Self> {
        use videoamt_adapters::store::postgres::{PostgresStore, ScratchDatabase, test_server_url};
        let server = test_server_url().await?;
        let scratch = ScratchDatabase::create(&server, "retention")
            .await
            .expect("scratch database");
        let store: Arc<dyn AdminStore> = Arc::new(
            PostgresStore::connect(&scratch.url())
                .await
                .expect("connect"),
        );
        let dir = tempfile::tempdir().expect("temp dir");
        let system = System::new(store, kek(), dir.path(), tenants());
        Some(Self {
            dir,
            system,
            dump: Dump::Postgres(scratch.url()),
            scratch: Some(scratch),
        })
    }

    async fn done(self) {
        if let Some(db) = self.scratch {
            db.drop_now().await.expect("drop scratch database");
        }
    }

    /// The database as `sqlite3 .dump` / `pg_dump` print it, plus every file of the data
    /// folder (blobs, outbox, logs and, for SQLite, the database files themselves).
    fn everything(&self) -> String {
        let output = match &self.dump {
            Dump::Sqlite(db) => std::process::Command::new("sqlite3")
                .arg("-readonly")
                .arg(db)
                .arg(".dump")
                .output(),
            Dump::Postgres(url) => std::process::Command::new("pg_dump")
                .arg("--no-owner")
                .arg(url)
                .output(),
        }
        .expect("the dump tool runs (sqlite3 / pg_dump)");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let mut all = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(all.contains("events"), "the dump holds the log");
        for file in crate::mail::files_under(self.dir.path()) {
            all.push_str(&String::from_utf8_lossy(
                &std::fs::read(&file).expect("read"),
            ));
        }
        all
    }

    async fn catch_up(&self) {
        Runner::new(self.system.store.clone(), self.system.store.clone())
            .catch_up(&all(self.system.tenants.clone()))
            .await
            .expect("projections caught up");
    }
}

fn kek() -> Kek {
    Kek::ephemeral().expect("randomness")
}

fn tenants() -> Vec<videoamt_core::tenant::Tenant> {
    example_tenants().expect("examples are valid")
}

fn visit(system: &System, tenant: &str, now: OffsetDateTime) -> Visit {
    Visit::new(system.bus(), TenantId::parse(tenant).expect("valid"), now)
}

/// The subject's events in the log.
async fn subject_events(system: &System, subject: SubjectId) -> Vec<DomainEvent> {
    stream_events(system, &subject.stream()).await
}

/// The booking of an appointment, as stored (its personal values sealed).
async fn booking(system: &System, appointment: AppointmentId) -> AppointmentBooked {
    match stream_events(system, &appointment.stream()).await.first() {
        Some(DomainEvent::AppointmentBooked(b)) => b.clone(),
        other => panic!("the booking comes first, not {other:?}"),
    }
}

async fn stream_events(system: &System, stream: &StreamId) -> Vec<DomainEvent> {
    system
        .store
        .read_stream(stream, 0)
        .await
        .expect("read")
        .iter()
        .map(|e| {
            DomainEvent::from_payload(e.event_type.as_str(), e.schema_version, &e.payload)
                .expect("decode")
        })
        .collect()
}

/// The tenant's example visit with its example values, recorded completely.
async fn example_visit(system: &System, tenant: &str, handover: Handover) -> (VisitIds, Visit) {
    let ids = VisitIds::fresh();
    let mut v = visit(system, tenant, visit_times(tenant).0);
    complete_visit(
        &mut v,
        tenant,
        &PersonalValues::example(tenant),
        ids,
        handover,
    )
    .await
    .expect("visit");
    (ids, v)
}

/// Runs the purge as if the clock showed `now`, after the timers are caught up.
async fn purge_at(
    env: &Env,
    now: OffsetDateTime,
) -> videoamt_api::workers::retention::purge::Summary {
    env.catch_up().await;
    PurgeJob::new(&env.system)
        .run_due(now, |_| {})
        .await
        .expect("purge runs")
}

/// The due time of every subject in the retention report.
async fn dues(env: &Env) -> Vec<(SubjectId, OffsetDateTime)> {
    env.catch_up().await;
    report::subjects(env.system.store.as_ref(), None)
        .await
        .expect("report")
        .into_iter()
        .filter_map(|r| Some((r.subject?, r.due?)))
        .collect()
}

/// Visits of both towns with a unique canary in every personal field, a canceled booking with
/// a canary reason, blobs and outbox mail; then the purge after the retention and the
/// verification. Not one canary is left anywhere, while the facts without persons remain.
async fn canaries_are_gone_after_the_purge(env: Env) {
    let system = env.system.clone();
    let tag = Uuid::now_v7().simple().to_string();
    let mut canaries: Vec<String> = Vec::new();
    let mut canary = |what: &str| {
        let c = format!("kanarie{}{what}", &tag[20..]);
        canaries.push(c.clone());
        c
    };
    let mut subjects = Vec::new();
    let mut appointments = Vec::new();
    // What somebody holding the KEK might guess about a subject.
    let mut guesses: Vec<String> = Vec::new();
    for tenant in ["ettlingen", "stuttgart"] {
        let personal = PersonalValues {
            name: format!("{} {}", canary("vorname"), canary("nachname")),
            email: format!("{}@example.org", canary("mail")),
            phone: Some(canary("telefon")),
            fields: PersonalValues::text_fields(tenant)
                .into_iter()
                .map(|f| (f.to_owned(), canary(f)))
                .collect(),
            file_name: format!("{}.pdf", canary("datei")),
            feedback: canary("feedback"),
            identity_failure: Some(canary("ausweisgrund")),
        };
        guesses.extend([personal.name.clone(), personal.email.clone()]);
        guesses.extend(personal.phone.clone());
        let ids = VisitIds::fresh();
        let mut v = visit(&system, tenant, visit_times(tenant).0);
        complete_visit(&mut v, tenant, &personal, ids, Handover::Done)
            .await
            .expect("visit");
        let blob = BlobName::parse("nachweis.pdf").expect("name");
        system
            .blobs
            .put(
                ids.subject,
                &blob,
                format!("%PDF {}", canary("blob")).as_bytes(),
            )
            .await
            .expect("blob stored");
        // What the room keeps of a signature: the sealed PDF with the form's values, the
        // touchpad's strokes as evidence, and the Handy-TAN's SMS in the sandbox outbox.
        let document = FormDocument {
            tenant: TenantId::parse(tenant).expect("tenant"),
            municipality: tenant.to_owned(),
            service: "Anliegen".to_owned(),
            title: "Antrag".to_owned(),
            fields: vec![("Vorname".to_owned(), canary("pdffeld"))],
            signed_at: visit_times(tenant).1,
            signature_method: "Unterschrift auf dem Touchpad".to_owned(),
            evidence: SignatureEvidence::Tan {
                line: "Unterschrieben".to_owned(),
            },
        };
        let sealed = system
            .sealer
            .render_and_seal(&document)
            .expect("the form is sealed");
        for (name, bytes) in [
            (format!("{}-signed", ids.form.0), sealed.pdf),
            (
                format!("{}-evidence", ids.form.0),
                format!(r#"{{"strokes":[],"marke":"{}"}}"#, canary("striche")).into_bytes(),
            ),
        ] {
            let name = BlobName::parse(&name).expect("name");
            system
                .blobs
                .put(ids.subject, &name, &bytes)
                .await
                .expect("stored");
        }
        system
            .sms()
            .expect("the sandbox")
            .send(&OutgoingSms {
                to: personal.phone.clone().unwrap_or_default(),
                text: format!("Ihre TAN: 123456 {}", canary("sms")),
                owner: ids.subject,
                key: uuid::Uuid::now_v7(),
            })
            .await
            .expect("filed");
        // The confirmation mail as the outbox keeps it until it is sent.
        let outbox = system.outbox_dir().join(ids.subject.to_string());
        std::fs::create_dir_all(&outbox).expect("outbox");
        std::fs::write(
            outbox.join("bestaetigung.eml"),
            format!(
                "To: {}\r\n\r\nGuten Tag {},\r\n",
                personal.email, personal.name
            ),
        )
        .expect("mail");
        subjects.push(ids.subject);
        appointments.push(ids.appointment);
    }
    // A booking called off by the citizen, with a reason.
    let cancelled = VisitIds::fresh();
    let (booked_at, start) = visit_times("ettlingen");
    let mut v = visit(&system, "ettlingen", booked_at);
    let citizen = Actor::new(ActorRole::Citizen, "token-9").expect("actor");
    v.run(
        &citizen,
        AppointmentCommand::BookAppointment(BookAppointment {
            appointment: cancelled.appointment,
            subject: cancelled.subject,
            department: "buergerbuero".into(),
            services: vec!["meldebescheinigung".into()],
            start: start + Duration::hours(1),
            channel: BookingChannel::Online,
            invited_by: None,
            contact: Contact {
                name: Personal::plain(canary("absagename")),
                email: Personal::plain(format!("{}@example.org", canary("absagemail"))),
                phone: None,
            },
            access: None,
        })
        .into(),
    )
    .await
    .expect("booked");
    v.run(
        &citizen,
        AppointmentCommand::CancelAppointment {
            appointment: cancelled.appointment,
            by: CancelledBy::CitizenByLink,
            reason: Some(Personal::plain(canary("absagegrund"))),
        }
        .into(),
    )
    .await
    .expect("cancelled");
    subjects.push(cancelled.subject);

    // Before: the log holds only ciphertext, but the outbox mail is plain (the grep works).
    env.catch_up().await;
    let before = env.everything();
    assert!(
        before.contains(&canaries[0]),
        "the outbox mail names the person"
    );
    assert!(
        before.contains(&canaries[3])
            && canaries
                .iter()
                .any(|c| c.ends_with("sms") && before.contains(c.as_str())),
        "the Handy-TAN's SMS names the number in the sandbox outbox, in plain"
    );
    let stats_before = statistics::rows(system.store.as_ref(), None)
        .await
        .expect("statistics");
    assert!(!stats_before.is_empty());

    // The clock runs past every retention; one second before, nothing happens.
    let dues = dues(&env).await;
    assert_eq!(dues.len(), 3, "every subject has its purge scheduled");
    let last = dues.iter().map(|(_, d)| *d).max().expect("dues");
    let first = dues.iter().map(|(_, d)| *d).min().expect("dues");
    let early = purge_at(&env, first - Duration::seconds(1)).await;
    assert_eq!(early.purged, 0, "nothing is purged a second early");
    let summary = purge_at(&env, last).await;
    assert_eq!(
        (
            summary.purged,
            summary.keys_destroyed,
            summary.blobs_deleted,
            summary.outbox_items_scrubbed
        ),
        // Per visit: the document, the signed PDF and the strokes; the mail and the SMS.
        (3, 3, 6, 4),
        "{summary:?}"
    );
    env.catch_up().await;
    // Purged, not yet verified: the verifier's manifest holds its fingerprints of the values
    // (under the KEK's key), and only it; the log's are the subjects' own.
    let confirmed = |all: &str| -> Vec<String> {
        guesses
            .iter()
            .filter(|g| all.contains(&system.keys.fingerprint(g.as_bytes())))
            .cloned()
            .collect()
    };
    assert_eq!(
        confirmed(&env.everything()).len(),
        guesses.len(),
        "the manifest holds every value's fingerprint before the verification"
    );
    let verdicts = Verifier::new(&system)
        .verify(&subjects, last)
        .await
        .expect("verifier runs");
    for v in &verdicts {
        assert!(v.passed() && v.recorded, "{v:?}");
    }
    // Verified: nothing left lets the KEK confirm a guess (ADR 0024).
    let left = confirmed(&env.everything());
    assert!(left.is_empty(), "the KEK still confirms {left:?}");

    // After: not one canary anywhere.
    env.catch_up().await;
    let after = env.everything();
    let found: Vec<&String> = canaries
        .iter()
        .filter(|c| after.contains(c.as_str()))
        .collect();
    assert!(found.is_empty(), "canaries left after the purge: {found:?}");

    // The facts without persons stay: statistics unchanged, the audit timeline readable, the
    // personal values erased.
    let stats_after = statistics::rows(system.store.as_ref(), None)
        .await
        .expect("statistics");
    assert_eq!(stats_before, stats_after);
    let replay = audit::replay(
        system.store.as_ref(),
        system.store.as_ref(),
        appointments[1],
        None,
        None,
    )
    .await
    .expect("replay");
    let summaries: Vec<&str> = replay.timeline.iter().map(|e| e.summary.as_str()).collect();
    for fact in [
        "Identität geprüft (Personalausweis, mit Kontrollfragen)",
        "Formular unterschrieben",
        "Personenbezogene Daten gelöscht",
        "Löschung geprüft",
    ] {
        assert!(summaries.contains(&fact), "{fact} in {summaries:?}");
    }
    let b = booking(&system, appointments[0]).await;
    let shown = reveal(system.keys.as_ref(), &b.contact.name)
        .await
        .expect("no error");
    assert_eq!(
        (shown.clone(), shown.shown()),
        (Revealed::Erased, "[gelöscht]")
    );
    for subject in &subjects {
        let events = subject_events(&system, *subject).await;
        let count = |f: fn(&DomainEvent) -> bool| events.iter().filter(|e| f(e)).count();
        assert_eq!(count(|e| matches!(e, DomainEvent::PurgeExecuted(_))), 1);
        assert_eq!(count(|e| matches!(e, DomainEvent::DeletionVerified(_))), 1);
        assert!(!system.keys.holds(*subject).await.expect("lookup"));
    }
    env.done().await;
}

/// Month ends: 31 August plus three months is 30 November (Ettlingen), plus six is
/// 28 February (Stuttgart); the purge runs at the due second, not one before.
async fn retention_periods_end_to_the_second(env: Env) {
    let system = env.system.clone();
    let final_at = time::macros::datetime!(2026-08-31 12:30 UTC);
    let cases = [
        (
            "ettlingen",
            "buergerbuero",
            "meldebescheinigung",
            time::macros::datetime!(2026-11-24 08:00 UTC),
            time::macros::datetime!(2026-11-30 13:30 UTC),
        ),
        (
            "stuttgart",
            "ordnung-waffen",
            "waffenbesitzkarte",
            time::macros::datetime!(2026-09-01 08:00 UTC),
            time::macros::datetime!(2027-02-28 13:30 UTC),
        ),
    ];
    for (tenant, department, service, start, due) in cases {
        let ids = VisitIds::fresh();
        let mut v = visit(&system, tenant, final_at - Duration::days(3));
        let clerk = Actor::new(ActorRole::Clerk, "j.keller").expect("actor");
        let invited = tenant == "stuttgart";
        v.run(
            &clerk,
            AppointmentCommand::BookAppointment(BookAppointment {
                appointment: ids.appointment,
                subject: ids.subject,
                department: department.into(),
                services: vec![service.into()],
                start,
                channel: if invited {
                    BookingChannel::ClerkInvitation
                } else {
                    BookingChannel::Online
                },
                invited_by: invited.then(|| "j.keller".into()),
                contact: Contact {
                    name: Personal::plain("Frist Test"),
                    email: Personal::plain("frist@example.org"),
                    phone: None,
                },
                access: None,
            })
            .into(),
        )
        .await
        .expect("booked");
        v.now = final_at;
        v.run(
            &clerk,
            AppointmentCommand::CancelAppointment {
                appointment: ids.appointment,
                by: CancelledBy::Clerk,
                reason: None,
            }
            .into(),
        )
        .await
        .expect("cancelled");
        let due_of = dues(&env).await;
        let (_, scheduled) = due_of
            .iter()
            .find(|(s, _)| *s == ids.subject)
            .expect("scheduled");
        assert_eq!(*scheduled, due, "{tenant}");
        assert_eq!(
            purge_at(&env, due - Duration::seconds(1)).await.purged,
            0,
            "{tenant}"
        );
        assert!(system.keys.holds(ids.subject).await.expect("lookup"));
        assert_eq!(purge_at(&env, due).await.purged, 1, "{tenant}");
        assert!(!system.keys.holds(ids.subject).await.expect("lookup"));
    }
    env.done().await;
}

/// A Stuttgart weapons-card visit whose case was not handed over to the national register:
/// the purge is held back (`PurgeBlocked`, "zurückgestellt" in the report) until it is.
async fn a_missing_handover_blocks_the_purge(env: Env) {
    let system = env.system.clone();
    let (ids, mut v) = example_visit(&system, "stuttgart", Handover::Missing).await;
    let (_, due) = dues(&env)
        .await
        .into_iter()
        .find(|(s, _)| *s == ids.subject)
        .expect("due");
    let blocked = purge_at(&env, due).await;
    assert_eq!((blocked.purged, blocked.blocked), (0, 1), "{blocked:?}");
    assert!(
        system.keys.holds(ids.subject).await.expect("lookup"),
        "nothing destroyed"
    );
    let events = subject_events(&system, ids.subject).await;
    let Some(DomainEvent::PurgeBlocked(b)) = events.last() else {
        panic!("PurgeBlocked appended: {events:?}")
    };
    assert!(
        b.reason.contains("Nationales Waffenregister"),
        "{}",
        b.reason
    );
    env.catch_up().await;
    let row = report::subjects(system.store.as_ref(), Some("stuttgart"))
        .await
        .expect("report")
        .into_iter()
        .find(|r| r.subject == Some(ids.subject))
        .expect("row");
    assert_eq!(row.state(due), RetentionState::Blocked);
    assert_eq!(row.state(due).german(), "zurückgestellt");
    // Not retried before its time, then purged once the case is handed over.
    assert_eq!(purge_at(&env, due + Duration::hours(1)).await.blocked, 0);
    v.run(
        &Actor::new(ActorRole::Clerk, "j.keller").expect("actor"),
        SessionCommand::HandOverToCaseSystem {
            session: ids.session,
            target: "Nationales Waffenregister".into(),
            reference: "NWR-2026-0815".into(),
        }
        .into(),
    )
    .await
    .expect("handed over");
    let done = purge_at(&env, b.retry_at).await;
    assert_eq!(done.purged, 1, "{done:?}");
    env.done().await;
}

/// Changes a projection's documents by hand, at its checkpoint.
async fn by_hand(system: &System, projection: &str, change: Change) {
    let at = system
        .store
        .checkpoint(projection)
        .await
        .expect("checkpoint");
    system
        .store
        .commit(projection, at.position, at.clone(), vec![change])
        .await
        .expect("changed by hand");
}

/// A canary copied into a projection table by hand, and a log line naming the address: the
/// verifier fails and names the table and projection, then the file. The manifest it needs
/// for that stays until a verification passes; then it goes, and with it every way to find
/// the values by their fingerprints (ADR 0024).
async fn the_verifier_finds_a_planted_leak(env: Env) {
    let system = env.system.clone();
    let ids = VisitIds::fresh();
    let mut personal = PersonalValues::example("ettlingen");
    personal.name = format!("Leck {}", Uuid::now_v7().simple());
    let mut v = visit(&system, "ettlingen", visit_times("ettlingen").0);
    complete_visit(&mut v, "ettlingen", &personal, ids, Handover::Done)
        .await
        .expect("visit");
    let (_, due) = dues(&env)
        .await
        .into_iter()
        .find(|(s, _)| *s == ids.subject)
        .expect("due");
    assert_eq!(purge_at(&env, due).await.purged, 1);
    env.catch_up().await;
    let verifier = Verifier::new(&system);

    let detail = "appointment-detail";
    by_hand(
        &system,
        detail,
        Change::Put(
            DocKey::new("notiz", "leck"),
            serde_json::json!({ "bemerkung": personal.name }).to_string(),
        ),
    )
    .await;
    let leaked = verifier.verify(&[ids.subject], due).await.expect("verify");
    assert!(!leaked[0].passed());
    assert!(
        leaked[0]
            .places
            .iter()
            .any(|p| p.contains("read_models") && p.contains(detail)),
        "{:?}",
        leaked[0].places
    );
    let events = subject_events(&system, ids.subject).await;
    assert!(
        matches!(events.last(), Some(DomainEvent::DeletionVerificationFailed(f)) if f.places == leaked[0].places)
    );
    // The DPO sees where.
    env.catch_up().await;
    let row = report::subjects(system.store.as_ref(), None)
        .await
        .expect("report")
        .into_iter()
        .find(|r| r.subject == Some(ids.subject))
        .expect("row");
    assert_eq!(row.failed_places, leaked[0].places);

    // A log line that printed the e-mail address is found in the log folder too.
    let logs = system.log_dir();
    std::fs::create_dir_all(&logs).expect("log folder");
    std::fs::write(
        logs.join("videoamt.log"),
        format!(
            "{{\"message\":\"mail sent\",\"to\":\"{}\"}}\n",
            personal.email
        ),
    )
    .expect("log line");
    let logged = verifier.verify(&[ids.subject], due).await.expect("verify");
    assert!(
        logged[0]
            .places
            .iter()
            .any(|p| p == "Protokolldateien: Datei videoamt.log"),
        "{:?}",
        logged[0].places
    );

    // Both removed, the verification passes; the manifest is gone with it, and a later
    // verification (the DPO's `retention verify --all`) still passes on what it can check.
    std::fs::remove_file(logs.join("videoamt.log")).expect("removed");
    by_hand(
        &system,
        detail,
        Change::Delete(DocKey::new("notiz", "leck")),
    )
    .await;
    let clean = verifier.verify(&[ids.subject], due).await.expect("verify");
    assert!(clean[0].passed(), "{:?}", clean[0]);
    assert!(
        system
            .store
            .manifest_of(&[ids.subject])
            .await
            .expect("manifest")
            .is_empty()
    );
    let again = verifier.verify(&[ids.subject], due).await.expect("verify");
    assert!(again[0].passed(), "{:?}", again[0]);
    assert!(
        again[0].checks.iter().any(|c| c.contains("Manifest")),
        "{:?}",
        again[0].checks
    );
    env.done().await;
}

/// The retention commands on a store with three due subjects: dry run, run, verify, status,
/// the DPO's export, and a clear refusal of a bad subject id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_retention_commands_purge_verify_and_report() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("events.db");
    let subjects = crate::due_subjects(&db, dir.path(), 3).await;
    let run = |args: &[&str]| {
        let out = crate::videoamt()
            .args(["--store", &format!("sqlite:{}", db.display())])
            .arg("--data-dir")
            .arg(dir.path())
            .arg("retention")
            .args(args)
            .output()
            .expect("runs");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, out, err) = run(&["run", "--dry-run"]);
    assert!(ok, "{err}");
    assert!(out.contains("3 Löschungen fällig"), "{out}");
    for s in &subjects {
        assert!(out.contains(&s.to_string()), "{out}");
    }
    assert!(
        dir.path()
            .join("blobs")
            .join(subjects[0].to_string())
            .exists(),
        "dry run purges nothing"
    );

    let (ok, out, err) = run(&["run"]);
    assert!(ok, "{err}");
    assert!(out.contains("gelöscht: 3"), "{out}");
    assert!(
        out.contains("Schlüssel vernichtet: 3, Blobs gelöscht: 3"),
        "{out}"
    );

    let (ok, out, err) = run(&["verify", "--all"]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("3 geprüft, 0 fehlgeschlagen"), "{out}");

    let (ok, out, err) = run(&["status", "--tenant", "ettlingen"]);
    assert!(ok, "{err}");
    let line = out
        .lines()
        .find(|l| l.starts_with("ettlingen"))
        .expect("tenant row");
    let cells: Vec<&str> = line.split_whitespace().collect();
    // tenant, aktiv, geplant, fällig, überfällig, zurückgestellt, gelöscht, geprüft
    assert_eq!(
        cells,
        ["ettlingen", "0", "0", "0", "0", "0", "0", "3"],
        "{out}"
    );

    let (ok, out, err) = run(&["report", "--format", "csv"]);
    assert!(ok, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].starts_with("\"subject\",\"tenant\",\"state\""),
        "{out}"
    );
    assert_eq!(lines.len(), 4, "{out}");
    for s in &subjects {
        let row = lines
            .iter()
            .find(|l| l.contains(&s.to_string()))
            .expect("row");
        assert!(
            row.contains("\"geprüft\"") && row.contains("\"1\""),
            "{row}"
        );
        assert!(!row.contains("Person "), "no personal data: {row}");
    }
    let (ok, out, err) = run(&["report", "--format", "json"]);
    assert!(ok, "{err}");
    let rows: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(rows.as_array().map(Vec::len), Some(3));

    let (ok, _, err) = run(&["verify", "not-a-subject"]);
    assert!(!ok);
    assert!(err.contains("keine Personen-ID"), "{err}");
    let (ok, _, err) = run(&["status", "--tenant", "atlantis"]);
    assert!(!ok);
    assert!(err.contains("unbekannter Mandant"), "{err}");
}

/// A flipped byte in a sealed value or an encrypted blob is reported as tampering, never
/// shown and never read as erased.
async fn tampering_is_detected(env: Env) {
    let system = env.system.clone();
    let (ids, _) = example_visit(&system, "ettlingen", Handover::Done).await;
    let b = booking(&system, ids.appointment).await;
    let mut sealed = b.contact.name.sealed().expect("sealed").clone();
    assert_eq!(
        reveal(system.keys.as_ref(), &Personal::Sealed(sealed.clone()))
            .await
            .expect("opens"),
        Revealed::Text("Erika Mustermann".into())
    );
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut bytes = b64.decode(&sealed.sealed).expect("base64");
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01;
    sealed.sealed = b64.encode(&bytes);
    let tampered = reveal(system.keys.as_ref(), &Personal::Sealed(sealed.clone())).await;
    assert!(matches!(tampered, Err(KeyError::Tampered { subject }) if subject == ids.subject));
    // A fingerprint changed to another value's is caught too: it is authenticated.
    let mut swapped = b.contact.email.sealed().expect("sealed").clone();
    swapped.fingerprint = b.contact.name.sealed().expect("sealed").fingerprint.clone();
    assert!(matches!(
        reveal(system.keys.as_ref(), &Personal::Sealed(swapped)).await,
        Err(KeyError::Tampered { .. })
    ));

    let name = BlobName::parse("nachweis.pdf").expect("name");
    system
        .blobs
        .put(ids.subject, &name, b"%PDF Nachweis")
        .await
        .expect("put");
    assert_eq!(
        system.blobs.get(ids.subject, &name).await.expect("get"),
        BlobContent::Bytes(b"%PDF Nachweis".to_vec())
    );
    let path = env
        .dir
        .path()
        .join("blobs")
        .join(ids.subject.to_string())
        .join("nachweis.pdf");
    let mut file: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).expect("read")).expect("json");
    let mut raw = b64
        .decode(file["sealed"].as_str().expect("sealed"))
        .expect("base64");
    raw[30] ^= 0x80;
    file["sealed"] = b64.encode(&raw).into();
    std::fs::write(&path, file.to_string()).expect("write");
    assert!(matches!(
        system.blobs.get(ids.subject, &name).await,
        Err(BlobError::Key(KeyError::Tampered { .. }))
    ));
    env.done().await;
}

/// One blob taken back (a refused upload's) is gone; the subject's other blobs stay, and a
/// second delete finds nothing.
async fn one_blob_is_deleted_and_its_siblings_stay(env: Env) {
    let system = env.system.clone();
    let (ids, _) = example_visit(&system, "ettlingen", Handover::Done).await;
    let taken_back = BlobName::parse("abgelehnt.pdf").expect("name");
    let kept = BlobName::parse("nachweis.pdf").expect("name");
    for name in [&taken_back, &kept] {
        system
            .blobs
            .put(ids.subject, name, b"%PDF-1.7")
            .await
            .expect("put");
    }
    assert!(
        system
            .blobs
            .delete(ids.subject, &taken_back)
            .await
            .expect("delete")
    );
    assert!(
        !system
            .blobs
            .delete(ids.subject, &taken_back)
            .await
            .expect("delete")
    );
    assert!(matches!(
        system.blobs.get(ids.subject, &taken_back).await,
        Err(BlobError::NotFound { .. })
    ));
    assert_eq!(
        system.blobs.get(ids.subject, &kept).await.expect("get"),
        BlobContent::Bytes(b"%PDF-1.7".to_vec())
    );
    env.done().await;
}

on_both_backends!(
    Env:
    one_blob_is_deleted_and_its_siblings_stay,
    canaries_are_gone_after_the_purge,
    retention_periods_end_to_the_second,
    a_missing_handover_blocks_the_purge,
    the_verifier_finds_a_planted_leak,
    tampering_is_detected,
);
