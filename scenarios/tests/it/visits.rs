use time::macros::datetime;
use time::{Duration, OffsetDateTime};
use videoamt_adapters::bus::CommandBus;
use videoamt_adapters::keys::Keyring;
use videoamt_adapters::store::AdminStore;
use videoamt_adapters::store::sqlite::SqliteStore;
use videoamt_core::domain::appointment::AppointmentCommand;
use videoamt_core::domain::appointment::BookAppointment;
use videoamt_core::domain::document::MediaType;
use videoamt_core::domain::events::{Contact, FinalState, Party, SessionOutcome};
use videoamt_core::domain::form::FormCommand;
use videoamt_core::domain::identity::{DocumentType, SecurityFeature};
use videoamt_core::domain::payment::PaymentCommand;
use videoamt_core::domain::process::WorkItem;
use videoamt_core::domain::session::SessionCommand;
use videoamt_core::domain::{DomainEvent, Personal, SubjectId};
use videoamt_core::event::{Actor, ActorRole, TenantId};
use videoamt_core::tenant::{BookingChannel, Cents, SignatureMethod, example_tenants};
use videoamt_scenarios::{Visit, VisitIds};

fn actor(role: ActorRole, id: &str) -> Actor {
    Actor::new(role, id).expect("valid actor")
}

async fn visit(dir: &tempfile::TempDir, tenant: &str, now: OffsetDateTime) -> Visit {
    let store = SqliteStore::open(dir.path().join("events.db"))
        .await
        .expect("open store");
    let store = std::sync::Arc::new(store);
    let bus = CommandBus::new(
        store.clone(),
        Keyring::ephemeral(store),
        example_tenants().expect("valid"),
    );
    Visit::new(bus, TenantId::parse(tenant).expect("valid"), now)
}

/// The room part both stories share: join, privacy notice, admission, identity, a document,
/// the form filled by both and signed, payment, the download, the end and feedback.
#[allow(clippy::too_many_arguments)]
async fn in_the_room(
    v: &mut Visit,
    ids: &VisitIds,
    clerk: &Actor,
    citizen: &Actor,
    template: &str,
    fields: &[(&str, &str)],
    method: SignatureMethod,
    payment_method: &str,
) {
    let session = ids.session;
    v.run(
        clerk,
        SessionCommand::OpenSession {
            appointment: ids.appointment,
            session,
        }
        .into(),
    )
    .await
    .expect("open");
    v.run(
        citizen,
        SessionCommand::Join {
            session,
            party: Party::Citizen,
        }
        .into(),
    )
    .await
    .expect("join");
    // Admission before the privacy notice is refused.
    let early = v
        .run(
            clerk,
            SessionCommand::Admit {
                session,
                clerk: clerk.id.as_ref().into(),
            }
            .into(),
        )
        .await;
    assert!(early.is_err(), "admitted before the privacy notice");
    v.run(
        citizen,
        SessionCommand::AcceptPrivacyNotice { session }.into(),
    )
    .await
    .expect("privacy");
    v.run(
        clerk,
        SessionCommand::Join {
            session,
            party: Party::Clerk,
        }
        .into(),
    )
    .await
    .expect("clerk joins");
    v.run(
        clerk,
        SessionCommand::Admit {
            session,
            clerk: clerk.id.as_ref().into(),
        }
        .into(),
    )
    .await
    .expect("admit");
    v.run(
        clerk,
        SessionCommand::VerifyIdentity {
            session,
            document_type: DocumentType::Personalausweis,
            questions_asked: true,
            features_checked: vec![
                SecurityFeature::Lichtbild,
                SecurityFeature::Hologramm,
                SecurityFeature::Guillochen,
            ],
            clerk: clerk.id.as_ref().into(),
        }
        .into(),
    )
    .await
    .expect("identity");
    v.run(
        citizen,
        SessionCommand::UploadDocument {
            session,
            document: ids.document,
            by: Party::Citizen,
            file_name: Personal::plain("nachweis.pdf"),
            media_type: MediaType::PDF,
            size_bytes: 48_213,
            sha256: "5e".repeat(32).parse().expect("64 hex digits"),
        }
        .into(),
    )
    .await
    .expect("upload");
    v.run(
        clerk,
        SessionCommand::ShareDocument {
            session,
            document: ids.document,
        }
        .into(),
    )
    .await
    .expect("share");
    v.run(
        clerk,
        FormCommand::StartForm {
            session,
            form: ids.form,
            template: template.into(),
        }
        .into(),
    )
    .await
    .expect("form");
    for (i, (field, value)) in fields.iter().enumerate() {
        let by = if i % 2 == 0 {
            Party::Clerk
        } else {
            Party::Citizen
        };
        let who = if by == Party::Clerk { clerk } else { citizen };
        v.run(
            who,
            FormCommand::ChangeField {
                form: ids.form,
                field: (*field).into(),
                value: Personal::plain(*value),
                by,
                based_on: None,
            }
            .into(),
        )
        .await
        .expect("field");
    }
    v.run(
        clerk,
        FormCommand::RequestSignature {
            form: ids.form,
            method,
        }
        .into(),
    )
    .await
    .expect("request signature");
    if method != SignatureMethod::Touchpad {
        // The citizen asks for a TAN and types it back; the digest stands in for the room's
        // keyed hash.
        let digest: videoamt_core::domain::document::Sha256 =
            "7a".repeat(32).parse().expect("64 hex digits");
        for step in [
            FormCommand::IssueTan {
                form: ids.form,
                method,
                tan: uuid::Uuid::now_v7(),
                digest,
            },
            FormCommand::EnterTan {
                form: ids.form,
                digest,
            },
        ] {
            v.run(citizen, step.into()).await.expect("the TAN");
        }
    }
    v.run(
        citizen,
        FormCommand::SignForm {
            form: ids.form,
            method,
            evidence_sha256: "ab".repeat(32).parse().expect("64 hex digits"),
            document_sha256: "cd".repeat(32).parse().expect("64 hex digits"),
            edits_seen: None,
        }
        .into(),
    )
    .await
    .expect("sign");
    let late_edit = v
        .run(
            clerk,
            FormCommand::ChangeField {
                form: ids.form,
                field: fields[0].0.into(),
                value: Personal::plain("X"),
                by: Party::Clerk,
                based_on: None,
            }
            .into(),
        )
        .await;
    assert!(late_edit.is_err(), "the signed form changed");
    v.run(
        clerk,
        PaymentCommand::RequestPayment {
            payment: ids.payment,
            appointment: ids.appointment,
            session: Some(session),
        }
        .into(),
    )
    .await
    .expect("payment");
    v.run(
        citizen,
        PaymentCommand::ChoosePaymentMethod {
            payment: ids.payment,
            method: payment_method.into(),
        }
        .into(),
    )
    .await
    .expect("method");
    v.run(
        &Actor::system("payment-sandbox"),
        PaymentCommand::AuthorizePayment {
            payment: ids.payment,
            provider_reference: "sandbox-42".into(),
            method: None,
        }
        .into(),
    )
    .await
    .expect("authorize");
    v.run(
        &Actor::system("payment-sandbox"),
        PaymentCommand::CapturePayment {
            payment: ids.payment,
        }
        .into(),
    )
    .await
    .expect("capture");
    v.run(
        citizen,
        SessionCommand::DownloadDocument {
            session,
            document: ids.document,
            by: Party::Citizen,
        }
        .into(),
    )
    .await
    .expect("download");
    v.now += Duration::minutes(25);
    v.run(
        clerk,
        SessionCommand::EndSession {
            session,
            outcome: SessionOutcome::Completed,
        }
        .into(),
    )
    .await
    .expect("end");
    assert!(v.work.contains(&WorkItem::FeedbackInvitation { session }));
    v.run(
        citizen,
        SessionCommand::SubmitFeedback {
            session,
            score: 5,
            aspects: None,
            comment: Some(Personal::plain("Sehr gut")),
        }
        .into(),
    )
    .await
    .expect("feedback");
}

async fn purge_due(v: &Visit, subject: SubjectId) -> (FinalState, OffsetDateTime, OffsetDateTime) {
    let scheduled: Vec<_> = v
        .events()
        .await
        .expect("events")
        .into_iter()
        .filter(|(r, _)| r.stream_id == subject.stream())
        .filter_map(|(_, e)| match e {
            DomainEvent::PurgeScheduled(p) => Some((p.final_state, p.final_at, p.due)),
            _ => None,
        })
        .collect();
    assert_eq!(scheduled.len(), 1, "exactly one purge scheduled");
    scheduled[0]
}

fn captured(events: &[(videoamt_core::event::RecordedEvent, DomainEvent)]) -> Vec<Cents> {
    events
        .iter()
        .filter_map(|(_, e)| match e {
            DomainEvent::PaymentCaptured(c) => Some(c.amount),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ettlingen_online_visit_with_two_concerns_and_handy_tan() {
    let dir = tempfile::tempdir().expect("temp dir");
    // Monday 23 November 2026, 08:00; the appointment is Tuesday 09:00.
    let mut v = visit(&dir, "ettlingen", datetime!(2026-11-23 07:00 UTC)).await;
    let ids = VisitIds::fresh();
    let citizen = actor(ActorRole::Citizen, "token-1");
    let clerk = actor(ActorRole::Clerk, "a.becker");
    let start = datetime!(2026-11-24 08:00 UTC);

    let booked = v
        .run(
            &citizen,
            AppointmentCommand::BookAppointment(BookAppointment {
                appointment: ids.appointment,
                subject: ids.subject,
                department: "buergerbuero".into(),
                services: vec!["personalausweis".into(), "meldebescheinigung".into()],
                start,
                channel: BookingChannel::Online,
                invited_by: None,
                contact: Contact {
                    name: Personal::plain("Erika Mustermann"),
                    email: Personal::plain("erika@example.org"),
                    phone: Some(Personal::plain("0170 1234567")),
                },
                access: None,
            })
            .into(),
        )
        .await
        .expect("booked");
    assert_eq!(
        booked.positions.len(),
        4,
        "two slots, appointment and subject in one append"
    );
    assert_eq!(
        v.work,
        vec![WorkItem::ConfirmationMail {
            appointment: ids.appointment
        }]
    );
    assert!(v.timers.iter().any(|(due, c)| {
        *due == start - Duration::hours(24)
            && *c
                == AppointmentCommand::SendReminder {
                    appointment: ids.appointment,
                }
                .into()
    }));
    assert!(v.timers.iter().any(|(due, c)| {
        *due == start + Duration::minutes(15)
            && *c
                == AppointmentCommand::CheckNoShow {
                    appointment: ids.appointment,
                }
                .into()
    }));
    // The outbox sent the confirmation mail.
    v.run(
        &Actor::system("outbox"),
        AppointmentCommand::ConfirmAppointment {
            appointment: ids.appointment,
        }
        .into(),
    )
    .await
    .expect("confirmed");

    v.now = start - Duration::minutes(2);
    in_the_room(
        &mut v,
        &ids,
        &clerk,
        &citizen,
        "antrag-personalausweis",
        &[
            ("familienname", "Mustermann"),
            ("vorname", "Erika"),
            ("geburtsdatum", "1964-08-12"),
            ("eid", "ja"),
        ],
        SignatureMethod::HandyTan,
        "paypal",
    )
    .await;

    let events = v.events().await.expect("events");
    assert_eq!(captured(&events), vec![Cents(3_700 + 1_000)]);
    let (final_state, final_at, due) = purge_due(&v, ids.subject).await;
    assert_eq!(final_state, FinalState::Completed);
    assert_eq!(final_at, datetime!(2026-11-24 08:23 UTC));
    // 3 months later, same local time: 24 February 2027, 09:23 in Ettlingen.
    assert_eq!(due, datetime!(2027-02-24 08:23 UTC));
    let report = v.store().last_position().await.expect("head");
    assert!(report > 30);
    let sqlite = SqliteStore::open(dir.path().join("events.db"))
        .await
        .expect("reopen");
    assert!(sqlite.verify().await.expect("verify").is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stuttgart_clerk_invitation_visit_purged_after_six_months() {
    let dir = tempfile::tempdir().expect("temp dir");
    // Friday 28 August 2026, 10:00 in Stuttgart: the clerk invites after a phone call.
    let mut v = visit(&dir, "stuttgart", datetime!(2026-08-28 08:00 UTC)).await;
    let ids = VisitIds::fresh();
    let citizen = actor(ActorRole::Citizen, "token-2");
    let clerk = actor(ActorRole::Clerk, "j.keller");
    // Monday 31 August 2026, 10:00 local.
    let start = datetime!(2026-08-31 08:00 UTC);
    v.run(
        &clerk,
        AppointmentCommand::BookAppointment(BookAppointment {
            appointment: ids.appointment,
            subject: ids.subject,
            department: "ordnung-waffen".into(),
            services: vec!["waffenbesitzkarte".into()],
            start,
            channel: BookingChannel::ClerkInvitation,
            invited_by: Some("j.keller".into()),
            contact: Contact {
                name: Personal::plain("Max Schütz"),
                email: Personal::plain("max@example.org"),
                phone: None,
            },
            access: None,
        })
        .into(),
    )
    .await
    .expect("invited");
    assert_eq!(
        v.work,
        vec![WorkItem::ConfirmationMail {
            appointment: ids.appointment
        }]
    );

    v.now = start;
    in_the_room(
        &mut v,
        &ids,
        &clerk,
        &citizen,
        "antrag-waffenbesitzkarte",
        &[
            ("familienname", "Schütz"),
            ("vorname", "Max"),
            ("geburtsdatum", "1980-02-29"),
            ("wbk_nummer", "WBK-123/2019"),
            ("beduerfnis", "Sportschütze (§ 14 WaffG)"),
            ("waffenart", "Langwaffe"),
            ("hersteller", "Sauer & Sohn S 404"),
            ("kaliber", ".308 Win."),
            ("herstellungsnummer", "S404-12345"),
            ("erwerbsdatum", "2026-08-01"),
        ],
        SignatureMethod::Touchpad,
        "kreditkarte",
    )
    .await;

    let events = v.events().await.expect("events");
    assert_eq!(captured(&events), vec![Cents(5_500)]);
    let (final_state, final_at, due) = purge_due(&v, ids.subject).await;
    assert_eq!(
        (final_state, final_at),
        (FinalState::Completed, datetime!(2026-08-31 08:25 UTC))
    );
    // 31 August + 6 months is the last day of February, at the same local time (10:25; CET).
    assert_eq!(due, datetime!(2027-02-28 09:25 UTC));
}
