//! Property tests of the workflow's invariants: capacity, the signature lock, payment, and
//! the one purge per subject.

use std::sync::OnceLock;

use proptest::prelude::*;
use time::macros::{date, datetime};
use time::{Duration, OffsetDateTime, PrimitiveDateTime, Time};
use uuid::Uuid;
use videoamt_core::domain::appointment::{AppointmentCommand, BookAppointment};
use videoamt_core::domain::calendar::{self, CalendarState, SlotState};
use videoamt_core::domain::events::{CancelledBy, Contact, FinalState, Party, PaymentFailure};
use videoamt_core::domain::form::FormCommand;
use videoamt_core::domain::form::FormState;
use videoamt_core::domain::payment::PaymentCommand;
use videoamt_core::domain::session::SessionCommand;
use videoamt_core::domain::subject::SubjectCommand;
use videoamt_core::domain::{
    AppointmentId, DomainError, DomainEvent, FormId, PaymentId, Personal, SessionId, SubjectId,
};
use videoamt_core::tenant::{
    BookingChannel, DepartmentId, ServiceId, SignatureMethod, Tenant, add_calendar_months,
    example_tenants,
};

use crate::log::MemoryLog;

fn tenants() -> &'static [Tenant] {
    static T: OnceLock<Vec<Tenant>> = OnceLock::new();
    T.get_or_init(|| example_tenants().expect("examples are valid"))
}

fn tenant(id: &str) -> &'static Tenant {
    tenants()
        .iter()
        .find(|t| t.id.as_str() == id)
        .expect("example tenant")
}

/// Monday 23 November 2026, 08:00 in Germany.
const NOW: OffsetDateTime = datetime!(2026-11-23 07:00 UTC);

fn contact() -> Contact {
    Contact {
        name: Personal::plain("P"),
        email: Personal::plain("p@example.org"),
        phone: None,
    }
}

fn at_local(t: &Tenant, day: time::Date, minute: u16) -> OffsetDateTime {
    let time = Time::from_hms(
        u8::try_from(minute / 60).unwrap_or(0),
        u8::try_from(minute % 60).unwrap_or(0),
        0,
    )
    .expect("valid time");
    t.instant(PrimitiveDateTime::new(day, time))
}

#[derive(Debug, Clone)]
enum CalendarOp {
    Book {
        appointment: u8,
        services: Vec<&'static str>,
        minute_index: usize,
        day: u8,
    },
    Cancel {
        appointment: u8,
    },
    Reschedule {
        appointment: u8,
        minute_index: usize,
        day: u8,
    },
}

fn calendar_op() -> impl Strategy<Value = CalendarOp> {
    // Bürgerbüro Ettlingen: capacity 2, 15-minute slots; combinations of 1 to 2 concerns.
    let services = prop_oneof![
        Just(vec!["meldebescheinigung"]),
        Just(vec!["personalausweis"]),
        Just(vec!["personalausweis", "reisepass"]),
        Just(vec!["personalausweis", "meldebescheinigung"]),
        Just(vec!["meldebescheinigung", "fuehrungszeugnis"]),
    ];
    prop_oneof![
        4 => (0u8..24, services, 0usize..20, 0u8..2).prop_map(|(appointment, services, minute_index, day)| {
            CalendarOp::Book { appointment, services, minute_index, day }
        }),
        1 => (0u8..24).prop_map(|appointment| CalendarOp::Cancel { appointment }),
        1 => (0u8..24, 0usize..20, 0u8..2).prop_map(|(appointment, minute_index, day)| {
            CalendarOp::Reschedule { appointment, minute_index, day }
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Random interleavings of bookings, cancellations and reschedulings never put more
    /// appointments into a slot than its capacity.
    #[test]
    fn no_slot_ever_exceeds_its_capacity(ops in prop::collection::vec(calendar_op(), 1..80)) {
        let t = tenant("ettlingen");
        let department = DepartmentId::from("buergerbuero");
        let dept = t.department(&department).expect("department");
        let days = [date!(2026 - 11 - 24), date!(2026 - 11 - 26)];
        // Every start on the grid of both days, including ones whose concerns run past closing.
        let minutes: Vec<u16> = (8 * 60..12 * 60).step_by(usize::from(dept.slot_minutes)).collect();
        let id = |n: u8| AppointmentId(Uuid::from_u128(u128::from(n) + 1));
        let mut log = MemoryLog::default();
        for op in ops {
            let command = match op {
                CalendarOp::Book { appointment, services, minute_index, day } => {
                    AppointmentCommand::BookAppointment(BookAppointment {
                        appointment: id(appointment),
                        subject: SubjectId(Uuid::from_u128(u128::from(appointment) + 1_000)),
                        department: department.clone(),
                        services: services.into_iter().map(ServiceId::from).collect(),
                        start: at_local(t, days[usize::from(day)], minutes[minute_index % minutes.len()]),
                        channel: BookingChannel::Online,
                        invited_by: None,
                        contact: contact(),
                        access: None,
                    }).into()
                }
                CalendarOp::Cancel { appointment } => AppointmentCommand::CancelAppointment {
                    appointment: id(appointment),
                    by: CancelledBy::Clerk,
                    reason: None,
                }.into(),
                CalendarOp::Reschedule { appointment, minute_index, day } => AppointmentCommand::RescheduleAppointment {
                    appointment: id(appointment),
                    start: at_local(t, days[usize::from(day)], minutes[minute_index % minutes.len()]),
                }.into(),
            };
            // Refusals are expected; only the invariant matters.
            let _ = log.execute(t, NOW, &command);
            for day in days {
                // The day as the free-slots read model folds it: every slot stream of the day,
                // in global order.
                let prefix = format!("slot-{}-{department}-{day}-", t.id);
                let whole_day = log
                    .events
                    .iter()
                    .filter(|(s, _)| s.as_str().starts_with(&prefix))
                    .fold(CalendarState::default(), |state, (_, e)| state.evolve(e));
                for &minute in &minutes {
                    let slot = log
                        .stream(&calendar::slot_stream(t, &department, day, minute))
                        .iter()
                        .fold(SlotState::default(), SlotState::evolve);
                    prop_assert!(slot.holders.len() <= usize::from(dept.capacity));
                    prop_assert_eq!(
                        usize::from(whole_day.occupancy(minute, dept.slot_minutes)),
                        slot.holders.len()
                    );
                }
            }
        }
    }
}

#[derive(Debug, Clone)]
enum FormOp {
    Change {
        field: &'static str,
        value: String,
        by: Party,
    },
    Request(SignatureMethod),
    Sign(SignatureMethod),
}

fn form_op() -> impl Strategy<Value = FormOp> {
    let field = prop_oneof![
        Just("familienname"),
        Just("vorname"),
        Just("geburtsdatum"),
        Just("taetigkeit"),
        Just("beginn"),
        Just("beschaeftigte"),
        Just("rechtsform"),
        Just("unbekannt"),
    ];
    let method = prop_oneof![
        Just(SignatureMethod::Touchpad),
        Just(SignatureMethod::HiddenTan),
        Just(SignatureMethod::HandyTan)
    ];
    let party = prop_oneof![Just(Party::Citizen), Just(Party::Clerk)];
    prop_oneof![
        3 => (field, "[a-zA-Z0-9 -]{0,12}", party).prop_map(|(field, value, by)| FormOp::Change { field, value, by }),
        1 => method.clone().prop_map(FormOp::Request),
        1 => method.prop_map(FormOp::Sign),
    ]
}

/// A session of the Gewerbebehörde Ettlingen with the Gewerbeanmeldung form signed.
fn signed_form() -> (MemoryLog, FormId) {
    let (mut log, form) = form_to_sign();
    let sign = FormCommand::SignForm {
        form,
        method: SignatureMethod::Touchpad,
        evidence_sha256: "e".repeat(64).parse().expect("64 hex digits"),
        document_sha256: "d".repeat(64).parse().expect("64 hex digits"),
        edits_seen: None,
    };
    log.execute(tenant("ettlingen"), NOW, &sign.into())
        .expect("signed");
    (log, form)
}

/// The same session with the form filled in and a touchpad signature asked for.
fn form_to_sign() -> (MemoryLog, FormId) {
    let t = tenant("ettlingen");
    let mut log = MemoryLog::default();
    let appointment = AppointmentId(Uuid::from_u128(1));
    let session = SessionId(Uuid::from_u128(2));
    let form = FormId(Uuid::from_u128(3));
    let mut steps = vec![
        AppointmentCommand::BookAppointment(BookAppointment {
            appointment,
            subject: SubjectId(Uuid::from_u128(4)),
            department: "gewerbebehoerde".into(),
            services: vec!["gewerbeanmeldung".into()],
            start: datetime!(2026-11-24 07:50 UTC),
            channel: BookingChannel::Online,
            invited_by: None,
            contact: contact(),
            access: None,
        })
        .into(),
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
        SessionCommand::Admit {
            session,
            clerk: "k.wagner".into(),
        }
        .into(),
        FormCommand::StartForm {
            session,
            form,
            template: "antrag-gewerbeanmeldung".into(),
        }
        .into(),
    ];
    for (field, value) in [
        ("familienname", "Mustermann"),
        ("vorname", "Erika"),
        ("geburtsdatum", "1964-08-12"),
        ("staatsangehoerigkeit", "deutsch"),
        ("betriebsstaette", "Marktplatz 2, 76275 Ettlingen"),
        ("taetigkeit", "Fahrradreparatur"),
        ("beginn", "2027-01-01"),
        ("rechtsform", "GbR"),
        ("niederlassung", "Hauptniederlassung"),
    ] {
        steps.push(
            FormCommand::ChangeField {
                form,
                field: field.into(),
                value: Personal::plain(value),
                by: Party::Clerk,
                based_on: None,
            }
            .into(),
        );
    }
    steps.push(
        FormCommand::RequestSignature {
            form,
            method: SignatureMethod::Touchpad,
        }
        .into(),
    );
    for step in steps {
        log.execute(t, NOW, &step).expect("the setup is accepted");
    }
    (log, form)
}

/// Both parties' steps around a signature: edits, a rendering of the form as it is then (the
/// room renders the PDF), and signing with the last rendering.
#[derive(Debug, Clone)]
enum SigningOp {
    Change {
        field: &'static str,
        value: String,
        by: Party,
    },
    Render,
    Sign,
}

fn signing_op() -> impl Strategy<Value = SigningOp> {
    let field = prop_oneof![Just("vorname"), Just("taetigkeit"), Just("beschaeftigte")];
    let party = prop_oneof![Just(Party::Citizen), Just(Party::Clerk)];
    prop_oneof![
        4 => (field, "[a-z]{1,6}|[0-9]{1,3}", party)
            .prop_map(|(field, value, by)| SigningOp::Change { field, value, by }),
        2 => Just(SigningOp::Render),
        2 => Just(SigningOp::Sign),
    ]
}

/// What a rendering of the form shows, as the document hash stands for it: the values, in
/// field order (plain in this log, which seals nothing).
fn document_of(state: &FormState) -> videoamt_core::domain::document::Sha256 {
    use std::hash::{Hash as _, Hasher as _};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    for (field, value) in &state.values {
        field.hash(&mut hasher);
        if let Personal::Plain(text) = value {
            text.hash(&mut hasher);
        }
    }
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&hasher.finish().to_le_bytes());
    videoamt_core::domain::document::Sha256::from_bytes(bytes)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Under any interleaving of both parties' edits with renderings and signing, the signed
    /// document is the one of the form's values at `FormLocked`, and no `FieldChanged`
    /// follows `FormLocked`: a signature based on an older rendering is refused.
    #[test]
    fn the_signed_document_always_shows_the_values_at_the_lock(
        ops in prop::collection::vec(signing_op(), 1..40)
    ) {
        let t = tenant("ettlingen");
        let (mut log, form) = form_to_sign();
        let mut rendered = None;
        for op in ops {
            let state = FormState::of_events(&log.stream(&form.stream()));
            match op {
                SigningOp::Change { field, value, by } => {
                    let change = FormCommand::ChangeField {
                        form, field: field.into(), value: Personal::plain(value), by,
                        based_on: Some(state.version(field)),
                    };
                    let _ = log.execute(t, NOW, &change.into());
                }
                SigningOp::Render => rendered = Some((state.edits, document_of(&state))),
                SigningOp::Sign => {
                    if let Some((edits, document)) = rendered {
                        let sign = FormCommand::SignForm {
                            form, method: SignatureMethod::Touchpad,
                            evidence_sha256: "e".repeat(64).parse().expect("64 hex digits"),
                            document_sha256: document, edits_seen: Some(edits),
                        };
                        let outcome = log.execute(t, NOW, &sign.into());
                        if edits != state.edits || state.locked {
                            prop_assert!(outcome.is_err());
                        }
                    }
                }
            }
        }
        let events = log.stream(&form.stream());
        if let Some(lock) = events.iter().position(|e| matches!(e, DomainEvent::FormLocked(_))) {
            let at_lock = FormState::of_events(&events[..lock]);
            let signed = events[..lock].iter().rev().find_map(|e| match e {
                DomainEvent::FormSigned(s) => Some(s.document_sha256),
                _ => None,
            });
            prop_assert_eq!(signed, Some(document_of(&at_lock)));
            prop_assert!(!events[lock..].iter().any(|e| matches!(e, DomainEvent::FieldChanged(_))));
        }
    }

    /// After `FormSigned`, no sequence of commands from anyone changes the form.
    #[test]
    fn a_signed_form_never_changes(ops in prop::collection::vec(form_op(), 1..30)) {
        let t = tenant("ettlingen");
        let (mut log, form) = signed_form();
        let before = log.stream(&form.stream());
        for op in ops {
            let command = match op {
                FormOp::Change { field, value, by } => FormCommand::ChangeField { form, field: field.into(), value: Personal::plain(value), by, based_on: None }.into(),
                FormOp::Request(method) => FormCommand::RequestSignature { form, method }.into(),
                FormOp::Sign(method) => FormCommand::SignForm { form, method, evidence_sha256: "f".repeat(64).parse().expect("64 hex digits"), document_sha256: "c".repeat(64).parse().expect("64 hex digits"), edits_seen: None }.into(),
            };
            prop_assert_eq!(log.execute(t, NOW, &command), Err(DomainError::FormLocked));
        }
        prop_assert_eq!(&log.stream(&form.stream()), &before);
        let state = before.iter().fold(FormState::default(), FormState::evolve);
        prop_assert!(state.signed && state.locked);
    }
}

#[derive(Debug, Clone, Copy)]
enum PaymentOp {
    Choose(bool),
    Authorize,
    Capture,
    Fail,
    Refund(u64),
    /// A provider transaction `n` is opened (an attempt).
    Start(u8),
    /// The provider reports transaction `n` approved, with a card or not.
    Approve(u8, bool),
    /// The provider reports transaction `n` declined or abandoned.
    FailAttempt(u8, bool),
}

fn payment_op() -> impl Strategy<Value = PaymentOp> {
    prop_oneof![
        2 => any::<bool>().prop_map(PaymentOp::Choose),
        2 => Just(PaymentOp::Authorize),
        3 => Just(PaymentOp::Capture),
        1 => Just(PaymentOp::Fail),
        2 => (0u64..20_000).prop_map(PaymentOp::Refund),
        2 => (0u8..4).prop_map(PaymentOp::Start),
        2 => (0u8..4, any::<bool>()).prop_map(|(n, card)| PaymentOp::Approve(n, card)),
        2 => (0u8..4, any::<bool>()).prop_map(|(n, gone)| PaymentOp::FailAttempt(n, gone)),
    ]
}

fn transaction(n: u8) -> videoamt_core::payment::ProviderReference {
    videoamt_core::payment::ProviderReference::parse(&format!("sbx_{n}")).expect("valid")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// The requested amount is the sum of the booked services' fees, and whatever happens
    /// afterwards (attempts opened, approved, declined, abandoned and reported again, in any
    /// order) the payment is captured at most once, never has two provider transactions open
    /// at once, and is never refunded beyond the capture.
    #[test]
    fn payment_is_the_fee_sum_and_captured_at_most_once(
        concerns in prop_oneof![
            Just(vec!["personalausweis"]),
            Just(vec!["personalausweis", "reisepass"]),
            Just(vec!["reisepass", "meldebescheinigung"]),
            Just(vec!["personalausweis", "reisepass", "meldebescheinigung"]),
            Just(vec!["meldebescheinigung", "fuehrungszeugnis"]),
        ],
        ops in prop::collection::vec(payment_op(), 0..25),
    ) {
        let t = tenant("ettlingen");
        let mut log = MemoryLog::default();
        let appointment = AppointmentId(Uuid::from_u128(1));
        let payment = PaymentId(Uuid::from_u128(2));
        let services: Vec<ServiceId> = concerns.iter().map(|s| ServiceId::from(*s)).collect();
        log.execute(t, NOW, &AppointmentCommand::BookAppointment(BookAppointment {
            appointment,
            subject: SubjectId(Uuid::from_u128(3)),
            department: "buergerbuero".into(),
            services: services.clone(),
            start: datetime!(2026-11-24 08:00 UTC),
            channel: BookingChannel::Online,
            invited_by: None,
            contact: contact(),
            access: None,
        }).into()).expect("booked");
        let decision = log.execute(t, NOW, &PaymentCommand::RequestPayment { payment, appointment, session: None }.into()).expect("requested");
        let expected: u64 = services.iter().map(|s| t.service(s).expect("service").fee.0).sum();
        match &decision[0].1 {
            DomainEvent::PaymentRequested(r) => {
                prop_assert_eq!(r.amount.0, expected);
                prop_assert_eq!(r.items.iter().map(|i| i.amount.0).sum::<u64>(), expected);
            }
            other => prop_assert!(false, "unexpected {:?}", other),
        }
        for op in ops {
            let command = match op {
                PaymentOp::Choose(card) => PaymentCommand::ChoosePaymentMethod {
                    payment,
                    method: if card { "kreditkarte".into() } else { "paypal".into() },
                }.into(),
                PaymentOp::Authorize => PaymentCommand::AuthorizePayment { payment, provider_reference: "sandbox".into(), method: None }.into(),
                PaymentOp::Capture => PaymentCommand::CapturePayment { payment }.into(),
                PaymentOp::Fail => PaymentCommand::FailPayment {
                    payment,
                    provider_reference: None,
                    kind: PaymentFailure::Declined,
                    reason: "abgelehnt".into(),
                }.into(),
                PaymentOp::Start(n) => PaymentCommand::StartPayment {
                    payment,
                    provider_reference: transaction(n),
                    redirect_url: format!("http://amt.test/sandbox/zahlung/bezahlen/sbx_{n}"),
                }.into(),
                PaymentOp::Approve(n, card) => PaymentCommand::AuthorizePayment {
                    payment,
                    provider_reference: transaction(n).to_string(),
                    method: Some(if card { "kreditkarte".into() } else { "wero".into() }),
                }.into(),
                PaymentOp::FailAttempt(n, gone) => PaymentCommand::FailPayment {
                    payment,
                    provider_reference: Some(transaction(n)),
                    kind: if gone { PaymentFailure::Abandoned } else { PaymentFailure::Declined },
                    reason: "Sandbox".into(),
                }.into(),
                PaymentOp::Refund(cents) => PaymentCommand::RefundPayment { payment, amount: videoamt_core::tenant::Cents(cents) }.into(),
            };
            let _ = log.execute(t, NOW, &command);
        }
        let events = log.stream(&payment.stream());
        let captures: Vec<u64> = events.iter().filter_map(|e| match e {
            DomainEvent::PaymentCaptured(c) => Some(c.amount.0),
            _ => None,
        }).collect();
        prop_assert!(captures.len() <= 1);
        prop_assert!(captures.iter().all(|&c| c == expected));
        // A transaction opens only after the one before it failed.
        let mut open = false;
        for e in &events {
            match e {
                DomainEvent::PaymentTransactionCreated(_) => {
                    prop_assert!(!open, "two transactions open: {:?}", events);
                    open = true;
                }
                DomainEvent::PaymentFailed(_) => open = false,
                DomainEvent::PaymentCaptured(_) | DomainEvent::PaymentAuthorized(_) => open = true,
                _ => {}
            }
        }
        let refunded: u64 = events.iter().filter_map(|e| match e {
            DomainEvent::PaymentRefunded(r) => Some(r.amount.0),
            _ => None,
        }).sum();
        prop_assert!(refunded <= captures.first().copied().unwrap_or(0));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Exactly one `PurgeScheduled` per subject, due exactly `retention` calendar months after
    /// the final state in the tenant's time zone, however often the final state is reported.
    #[test]
    fn exactly_one_purge_due_retention_months_after_the_final_state(
        tenant_index in 0usize..2,
        final_offset_minutes in 0i64..(3 * 366 * 24 * 60),
        repeats in 1usize..5,
        final_state in prop_oneof![Just(FinalState::Completed), Just(FinalState::Cancelled), Just(FinalState::NoShow)],
    ) {
        let t = &tenants()[tenant_index];
        let mut log = MemoryLog::default();
        let appointment = AppointmentId(Uuid::from_u128(1));
        let subject = SubjectId(Uuid::from_u128(2));
        let (department, service) = if t.id.as_str() == "ettlingen" {
            ("buergerbuero", "meldebescheinigung")
        } else {
            ("ordnung-waffen", "jagdschein")
        };
        log.execute(t, NOW, &AppointmentCommand::BookAppointment(BookAppointment {
            appointment,
            subject,
            department: department.into(),
            services: vec![service.into()],
            start: datetime!(2026-11-24 08:00 UTC),
            channel: BookingChannel::Online,
            invited_by: None,
            contact: contact(),
            access: None,
        }).into()).expect("booked");
        let final_at = datetime!(2026-01-01 00:00 UTC) + Duration::minutes(final_offset_minutes);
        for i in 0..repeats {
            // Later reports carry later times; only the first counts.
            let at = final_at + Duration::minutes(i64::try_from(i).unwrap_or(0));
            log.execute(t, NOW, &SubjectCommand::SchedulePurge { appointment, final_state, final_at: at }.into()).expect("accepted");
        }
        let scheduled: Vec<_> = log.stream(&subject.stream()).into_iter().filter_map(|e| match e {
            DomainEvent::PurgeScheduled(p) => Some(p),
            _ => None,
        }).collect();
        prop_assert_eq!(scheduled.len(), 1);
        let p = &scheduled[0];
        prop_assert_eq!(p.final_at, final_at);
        let local_end = t.local(final_at);
        let local_due = t.local(p.due);
        let expected_day = add_calendar_months(local_end.date(), t.retention_months);
        prop_assert_eq!(local_due.date(), expected_day);
        let months = (expected_day.year() - local_end.year()) * 12
            + i32::from(expected_day.month() as u8) - i32::from(local_end.month() as u8);
        prop_assert_eq!(months, i32::try_from(t.retention_months).unwrap_or(0));
        // Same wall-clock time, unless that hour does not exist on the due day (spring gap).
        if local_due.time() != local_end.time() {
            prop_assert_eq!(local_due.time(), local_end.time() + Duration::HOUR);
        }
        prop_assert!(p.due > final_at);
    }
}
