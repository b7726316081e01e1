//! Time travel: for random histories, the record as of every position equals what was observed
//! live right after that position was written.

use std::sync::Arc;
use videoamt_adapters::keys::Keyring;

use proptest::prelude::*;
use time::Duration;
use time::macros::datetime;
use uuid::Uuid;
use videoamt_adapters::bus::{CommandBus, Issued};
use videoamt_adapters::store::AdminStore;
use videoamt_adapters::store::sqlite::SqliteStore;
use videoamt_core::domain::appointment::AppointmentCommand;
use videoamt_core::domain::appointment::BookAppointment;
use videoamt_core::domain::calendar;
use videoamt_core::domain::command::Command;
use videoamt_core::domain::events::{CancelledBy, Contact, Party, SessionOutcome};
use videoamt_core::domain::form::FormCommand;
use videoamt_core::domain::identity::{DocumentType, SecurityFeature};
use videoamt_core::domain::payment::PaymentCommand;
use videoamt_core::domain::record::AppointmentRecord;
use videoamt_core::domain::session::SessionCommand;
use videoamt_core::domain::{AppointmentId, DomainEvent, Personal};
use videoamt_core::event::{Actor, ActorRole, GlobalPosition, RecordedEvent, TenantId};
use videoamt_core::store::EventStore;
use videoamt_core::tenant::{BookingChannel, SignatureMethod};
use videoamt_projections::audit::{self, AuditTimeline};
use videoamt_projections::runner::Runner;

use videoamt_scenarios::VisitIds;

use crate::rebuild::tenants;

/// A visit's usual course, as ops of [`command`].
const SCRIPT: [u8; 19] = [
    0, 2, 3, 4, 5, 6, 7, 8, 9, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18,
];

const START: time::OffsetDateTime = datetime!(2026-11-24 07:00 UTC);

fn command(ids: VisitIds, op: u8, booked_first_minute: i64) -> Command {
    let session = ids.session;
    match op {
        0 => AppointmentCommand::ConfirmAppointment {
            appointment: ids.appointment,
        }
        .into(),
        1 => AppointmentCommand::RescheduleAppointment {
            appointment: ids.appointment,
            start: START + Duration::minutes(booked_first_minute + 15),
        }
        .into(),
        2 => SessionCommand::OpenSession {
            appointment: ids.appointment,
            session,
        }
        .into(),
        3 => SessionCommand::Join {
            session,
            party: Party::Citizen,
        }
        .into(),
        4 => SessionCommand::AcceptPrivacyNotice { session }.into(),
        5 => SessionCommand::Join {
            session,
            party: Party::Clerk,
        }
        .into(),
        6 => SessionCommand::Admit {
            session,
            clerk: "a.becker".into(),
        }
        .into(),
        7 => SessionCommand::VerifyIdentity {
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
        8 => FormCommand::StartForm {
            session,
            form: ids.form,
            template: "antrag-personalausweis".into(),
        }
        .into(),
        9 => FormCommand::ChangeField {
            form: ids.form,
            field: "familienname".into(),
            value: Personal::plain("Mustermann"),
            by: Party::Clerk,
            based_on: None,
        }
        .into(),
        10 => FormCommand::RequestSignature {
            form: ids.form,
            method: SignatureMethod::Touchpad,
        }
        .into(),
        11 => FormCommand::SignForm {
            form: ids.form,
            method: SignatureMethod::Touchpad,
            evidence_sha256: "ab".repeat(32).parse().expect("64 hex digits"),
            document_sha256: "cd".repeat(32).parse().expect("64 hex digits"),
            edits_seen: None,
        }
        .into(),
        12 => PaymentCommand::RequestPayment {
            payment: ids.payment,
            appointment: ids.appointment,
            session: None,
        }
        .into(),
        13 => PaymentCommand::ChoosePaymentMethod {
            payment: ids.payment,
            method: "kreditkarte".into(),
        }
        .into(),
        14 => PaymentCommand::AuthorizePayment {
            payment: ids.payment,
            provider_reference: "sandbox-1".into(),
            method: None,
        }
        .into(),
        15 => PaymentCommand::CapturePayment {
            payment: ids.payment,
        }
        .into(),
        16 => SessionCommand::SubmitFeedback {
            session,
            score: 4,
            aspects: None,
            comment: None,
        }
        .into(),
        17 => SessionCommand::EndSession {
            session,
            outcome: SessionOutcome::Completed,
        }
        .into(),
        18 => AppointmentCommand::CancelAppointment {
            appointment: ids.appointment,
            by: CancelledBy::Clerk,
            reason: None,
        }
        .into(),
        19 => SessionCommand::LoseConnection {
            session,
            party: Party::Citizen,
        }
        .into(),
        _ => SessionCommand::RestoreConnection {
            session,
            party: Party::Citizen,
        }
        .into(),
    }
}

/// Everything in the streams of `ids` (and the slots of the day it may hold) as it stands, in
/// global order.
async fn live_events(store: &dyn EventStore, ids: VisitIds) -> Vec<RecordedEvent> {
    let tenant = &tenants()[0];
    let department = "buergerbuero".into();
    let mut streams = vec![
        ids.appointment.stream(),
        ids.subject.stream(),
        ids.session.stream(),
        ids.form.stream(),
        ids.payment.stream(),
    ];
    // Bookings start at 08:00 or 08:15 local and move a quarter of an hour at most.
    streams.extend(
        [8 * 60, 8 * 60 + 15, 8 * 60 + 30]
            .map(|minute| calendar::slot_stream(tenant, &department, START.date(), minute)),
    );
    let mut all = Vec::new();
    for s in &streams {
        all.extend(store.read_stream(s, 0).await.expect("read"));
    }
    all.sort_by_key(|e| e.global_position);
    all
}

fn fold_until(events: &[RecordedEvent], id: AppointmentId, n: GlobalPosition) -> AppointmentRecord {
    events
        .iter()
        .filter(|e| e.global_position <= n)
        .fold(AppointmentRecord::default(), |r, e| {
            let event =
                DomainEvent::from_payload(e.event_type.as_str(), e.schema_version, &e.payload)
                    .expect("domain event");
            r.evolve(id, &e.stream_id, &event)
        })
}

async fn check(ops: Vec<(bool, u8)>) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().expect("temp dir");
    let store: Arc<dyn AdminStore> = Arc::new(
        SqliteStore::open(dir.path().join("events.db"))
            .await
            .expect("open"),
    );
    assert_eq!(tenants()[0].id.as_str(), "ettlingen");
    let bus = CommandBus::new(
        store.clone(),
        Keyring::ephemeral(store.clone()),
        tenants().iter().cloned(),
    );
    let issued = Issued {
        tenant: TenantId::parse("ettlingen").expect("valid"),
        actor: Actor::new(ActorRole::Clerk, "a.becker").expect("valid"),
        correlation_id: Uuid::now_v7(),
        command_id: Uuid::now_v7(),
        now: START - Duration::minutes(5),
    };
    let (a, b) = (VisitIds::fresh(), VisitIds::fresh());
    for (ids, minute) in [(a, 0), (b, 15)] {
        bus.execute(
            &AppointmentCommand::BookAppointment(BookAppointment {
                appointment: ids.appointment,
                subject: ids.subject,
                department: "buergerbuero".into(),
                services: vec!["personalausweis".into()],
                start: START + Duration::minutes(minute),
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
            &issued,
        )
        .await
        .expect("booked");
    }
    // What the record of `a` looked like right after each accepted command, read live.
    let mut observed = vec![(
        store.last_position().await.expect("head"),
        fold_until(
            &live_events(store.as_ref(), a).await,
            a.appointment,
            u64::MAX,
        ),
    )];
    let mut cursors = [0usize; 2];
    for (on_a, op) in ops {
        let (ids, minute) = if on_a { (a, 0) } else { (b, 15) };
        // Half the ops follow a visit's usual course, so histories get far; the rest are any
        // command at any time.
        let op = if op < 21 {
            op
        } else {
            let cursor = &mut cursors[usize::from(on_a)];
            *cursor += 1;
            SCRIPT[(*cursor - 1) % SCRIPT.len()]
        };
        // Refusals are part of random histories; they write nothing.
        if bus
            .execute(&command(ids, op, minute), &issued)
            .await
            .is_ok()
        {
            let live = fold_until(
                &live_events(store.as_ref(), a).await,
                a.appointment,
                u64::MAX,
            );
            observed.push((store.last_position().await.expect("head"), live));
        }
    }
    let runner = Runner::new(store.clone(), store.clone());
    runner
        .catch_up(&[Arc::new(AuditTimeline) as _])
        .await
        .expect("timeline");
    for (position, live) in &observed {
        let replay = audit::replay(
            store.as_ref(),
            store.as_ref(),
            a.appointment,
            Some(*position),
            None,
        )
        .await
        .expect("replay");
        prop_assert_eq!(&replay.record, live, "as of {}", position);
    }
    // Every position, also those inside one command's batch.
    let final_events = live_events(store.as_ref(), a).await;
    let head = store.last_position().await.expect("head");
    for n in 1..=head {
        let replay = audit::replay(store.as_ref(), store.as_ref(), a.appointment, Some(n), None)
            .await
            .expect("replay");
        prop_assert_eq!(
            replay.record,
            fold_until(&final_events, a.appointment, n),
            "as of {}",
            n
        );
        prop_assert!(replay.timeline.iter().all(|e| e.position <= n));
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn state_as_of_every_position_equals_the_live_state(
        ops in proptest::collection::vec((any::<bool>(), 0u8..42), 4..60)
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        runtime.block_on(check(ops))?;
    }
}
