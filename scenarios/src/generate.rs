//! A large, realistic log for the projection benchmarks: many complete visits, fast.
//!
//! Driving every visit through the command bus would be the most faithful way, but it manages
//! about 1,300 commands a second, so a million events would take most of an hour. Instead the
//! generator records a few *template* visits through the real [`CommandBus`] (so every event
//! is decided by the real deciders, and the process managers add what they add in production)
//! into a throw-away SQLite store, and then copies them many times straight into the target
//! store with [`EventStore::append`], in large batches.
//!
//! Each copy (a *replica*) is a visit of its own:
//!
//! - every UUID of the template (appointment, subject, session, form, payment and document ids,
//!   event, correlation and command ids) is replaced by a fresh UUIDv7, consistently within the
//!   replica, in stream ids, payloads and envelopes; causation chains are kept;
//! - every time (payload timestamps such as `start`, `end`, `final_at`, `due`; the envelope's
//!   `recorded_at`; the slot streams' day and start) is moved by the replica's offset, in the tenant's
//!   local time so that the wall-clock times stay inside the opening hours across daylight
//!   saving changes. Replicas fill about three quarters of the department's places in a week
//!   (weekday × slot × capacity), week after week, so the log covers many weeks and the
//!   calendars stay within capacity; `SlotsReserved` gets the replica's first minute and
//!   `PurgeScheduled` a due date computed with the tenant's retention rule.
//!
//! Replicas are written in groups, phase by phase: the template's event sequence is cut into
//! *segments* in which each stream occurs once, and one append carries the same segment of many
//! replicas. So each replica's events keep exactly the template's order in the global log
//! (only slot events of the same slot, shared by several replicas, are moved forward to the
//! first of them in an append), and visits overlap in the log as they do in reality. Only one
//! group's replicas (a few hundred small id tables) and two append batches (one being written,
//! one being built) are in memory at a time; appends are still sent one after the other. Each
//! append guards the replica's streams with `NoStream` / `Exact` versions, so a mistake would
//! be refused by the store rather than written.
//!
//! On SQLite in release mode a million events take about 8 s on two cores. Must run inside a
//! Tokio runtime (the append in flight is a spawned task).
//!
//! One extra-large visit, the first replica, gets many more `FieldChanged` events on its form
//! before the signature, so that audit replays of a long record can be measured.

use std::collections::HashMap;
use std::fmt;
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;

use time::format_description::well_known::Rfc3339;
use time::{Date, Duration, OffsetDateTime, PrimitiveDateTime};
use tokio::task::JoinHandle;
use uuid::Uuid;
use videoamt_adapters::bus::{BusError, CommandBus};
use videoamt_adapters::keys::{Kek, Keyring};
use videoamt_adapters::store::sqlite::SqliteStore;
use videoamt_core::domain::appointment::AppointmentCommand;
use videoamt_core::domain::appointment::BookAppointment;
use videoamt_core::domain::document::MediaType;
use videoamt_core::domain::events::{
    Contact, DecodeError, Party, PurgeScheduled, SessionOutcome, SlotsReserved,
};
use videoamt_core::domain::form::FormCommand;
use videoamt_core::domain::identity::{DocumentType, SecurityFeature};
use videoamt_core::domain::payment::PaymentCommand;
use videoamt_core::domain::session::SessionCommand;
use videoamt_core::domain::{AppointmentId, DomainEvent, Personal};
use videoamt_core::event::{
    Actor, ActorRole, EventMetadata, EventType, InvalidInput, NewEvent, Payload, RecordedEvent,
    StreamId, TenantId,
};
use videoamt_core::store::{
    AppendBatch, AppendError, Appended, EventStore, ExpectedVersion, MAX_EVENTS_PER_BATCH,
    StoreError, StreamAppend,
};
use videoamt_core::tenant::{BookingChannel, SignatureMethod, Tenant, example_tenants};

use crate::{StoryError, Visit, VisitIds};

/// What to generate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BulkSpec {
    /// Visits are appended until at least this many events are written.
    pub target_events: u64,
    /// About how many events the big appointment's record (its appointment, subject, session,
    /// form and payment streams) should hold.
    pub big_record_events: u64,
}

impl Default for BulkSpec {
    fn default() -> Self {
        Self {
            target_events: 1_000_000,
            big_record_events: 300,
        }
    }
}

/// What was generated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BulkLog {
    /// Events appended.
    pub events: u64,
    /// Every appointment of the log, the big one first.
    pub appointments: Vec<AppointmentId>,
    /// One appointment whose record has about `big_record_events` events, for audit-replay
    /// latency.
    pub big_appointment: AppointmentId,
}

/// Why the log could not be generated.
#[derive(Debug)]
pub enum GenerateError {
    /// Recording a template visit through the bus failed.
    Story(StoryError),
    /// The target store refused or failed an append.
    Append(AppendError),
    Store(StoreError),
    Invalid(InvalidInput),
    Decode(DecodeError),
    /// A template visit does not look as expected (a bug in this module or in the tenants).
    Template(String),
}

impl fmt::Display for GenerateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GenerateError::Story(e) => write!(f, "recording a template visit: {e}"),
            GenerateError::Append(e) => write!(f, "appending generated events: {e}"),
            GenerateError::Store(e) => write!(f, "{e}"),
            GenerateError::Invalid(e) => write!(f, "generated an invalid event: {e}"),
            GenerateError::Decode(e) => write!(f, "a template event cannot be read: {e}"),
            GenerateError::Template(e) => write!(f, "template visit: {e}"),
        }
    }
}

impl std::error::Error for GenerateError {}

impl From<StoryError> for GenerateError {
    fn from(e: StoryError) -> Self {
        GenerateError::Story(e)
    }
}

impl From<BusError> for GenerateError {
    fn from(e: BusError) -> Self {
        GenerateError::Story(StoryError::Bus(e))
    }
}

impl From<AppendError> for GenerateError {
    fn from(e: AppendError) -> Self {
        GenerateError::Append(e)
    }
}

impl From<StoreError> for GenerateError {
    fn from(e: StoreError) -> Self {
        GenerateError::Store(e)
    }
}

impl From<InvalidInput> for GenerateError {
    fn from(e: InvalidInput) -> Self {
        GenerateError::Invalid(e)
    }
}

impl From<DecodeError> for GenerateError {
    fn from(e: DecodeError) -> Self {
        GenerateError::Decode(e)
    }
}

pub(crate) fn template_error(message: impl Into<String>) -> GenerateError {
    GenerateError::Template(message.into())
}

/// Events of the replicas written together, phase by phase.
const GROUP_EVENTS: u64 = 20_000;
/// An append is sent once it holds about this many events.
const BATCH_EVENTS: usize = 5_000;

/// Appends complete visits to `store` until at least `spec.target_events` events are written
/// (always at least the big appointment), calling `progress` with the number written so far
/// after each append.
pub async fn bulk_log(
    store: Arc<dyn EventStore>,
    spec: &BulkSpec,
    mut progress: impl FnMut(u64),
) -> Result<BulkLog, GenerateError> {
    let tenants = example_tenants().map_err(|e| template_error(e.to_string()))?;
    let dir = tempfile::tempdir().map_err(StoreError::new)?;
    let mut templates = Vec::new();
    for variant in [Variant::ettlingen(), Variant::stuttgart()] {
        let events = record(dir.path(), &variant, &tenants).await?;
        let tenant = tenants
            .iter()
            .find(|t| t.id.as_str() == variant.tenant)
            .ok_or_else(|| template_error(format!("no tenant {}", variant.tenant)))?;
        templates.push(Template::build(&events, tenant)?);
    }
    // All templates start in the week of the earliest one.
    if let Some(first) = templates.iter().map(|t| t.monday).min() {
        for t in &mut templates {
            let back = first - t.monday;
            t.places.iter_mut().for_each(|p| *p += back);
        }
    }

    let mut plan = Plan::default();
    let mut writer = Writer {
        store,
        batch: Batch::default(),
        in_flight: None,
        written: 0,
    };
    let mut appointments = Vec::new();
    let mut planned = 0u64;
    let mut big = None;
    while big.is_none() || planned < spec.target_events {
        // One group: replicas until the group is full or the target is reached.
        let mut group = Vec::new();
        let mut group_events = 0;
        while group_events < GROUP_EVENTS && (big.is_none() || planned < spec.target_events) {
            let (template, delta) = plan.next_place(&templates);
            let template = &templates[template];
            let extra = if big.is_none() {
                spec.big_record_events
                    .saturating_sub(template.record_events)
                    .try_into()
                    .unwrap_or(usize::MAX)
            } else {
                0
            };
            let replica = Replica::new(template, delta, extra);
            if big.is_none() {
                big = Some(replica.appointment());
            }
            appointments.push(replica.appointment());
            let events = template.events.len() as u64 + replica.extra as u64;
            group_events += events;
            planned += events;
            group.push(replica);
        }
        let segments = group
            .iter()
            .map(|r| r.template.segments.len())
            .max()
            .unwrap_or(0);
        for segment in 0..segments {
            for replica in &mut group {
                let template: &Template = replica.template;
                let Some(runs) = template.segments.get(segment) else {
                    continue;
                };
                for run in runs {
                    let (stream, events) = replica.run(run)?;
                    writer
                        .add(replica, run.stream, stream, events, &mut progress)
                        .await?;
                }
            }
        }
    }
    writer.flush(&mut progress).await?;
    writer.wait(&mut progress).await?;
    Ok(BulkLog {
        events: writer.written,
        appointments,
        big_appointment: big.ok_or_else(|| template_error("no replica written"))?,
    })
}

// ---- the template visits, through the real bus ------------------------------------------------

/// What differs between the template visits.
struct Variant {
    tenant: &'static str,
    /// When the booking is made.
    booked_at: OffsetDateTime,
    start: OffsetDateTime,
    department: &'static str,
    services: &'static [&'static str],
    channel: BookingChannel,
    clerk: &'static str,
    citizen: &'static str,
    contact: (&'static str, &'static str, Option<&'static str>),
    template: &'static str,
    fields: &'static [(&'static str, &'static str)],
    signature: SignatureMethod,
    payment_method: &'static str,
}

impl Variant {
    fn of(tenant: &str) -> Self {
        if tenant == "stuttgart" {
            Self::stuttgart()
        } else {
            Self::ettlingen()
        }
    }

    /// The Ettlingen visit of the scenarios: booked online, two concerns, HandyTAN.
    fn ettlingen() -> Self {
        Self {
            tenant: "ettlingen",
            // Monday 23 November 2026, 08:00; the appointment is Tuesday 09:00.
            booked_at: time::macros::datetime!(2026-11-23 07:00 UTC),
            start: time::macros::datetime!(2026-11-24 08:00 UTC),
            department: "buergerbuero",
            services: &["personalausweis", "meldebescheinigung"],
            channel: BookingChannel::Online,
            clerk: "a.becker",
            citizen: "token-1",
            contact: (
                "Erika Mustermann",
                "erika@example.org",
                Some("0170 1234567"),
            ),
            template: "antrag-personalausweis",
            fields: &[
                ("familienname", "Mustermann"),
                ("vorname", "Erika"),
                ("geburtsdatum", "1964-08-12"),
                ("eid", "ja"),
            ],
            signature: SignatureMethod::HandyTan,
            payment_method: "paypal",
        }
    }

    /// The Stuttgart visit of the scenarios: a clerk's invitation, one concern, touchpad.
    fn stuttgart() -> Self {
        Self {
            tenant: "stuttgart",
            // Friday 28 August 2026, 10:00, for Monday 31 August 2026, 10:00.
            booked_at: time::macros::datetime!(2026-08-28 08:00 UTC),
            start: time::macros::datetime!(2026-08-31 08:00 UTC),
            department: "ordnung-waffen",
            services: &["waffenbesitzkarte"],
            channel: BookingChannel::ClerkInvitation,
            clerk: "j.keller",
            citizen: "token-2",
            contact: ("Max Schütz", "max@example.org", None),
            template: "antrag-waffenbesitzkarte",
            fields: &[
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
            signature: SignatureMethod::Touchpad,
            payment_method: "kreditkarte",
        }
    }
}

fn actor(role: ActorRole, id: &str) -> Result<Actor, GenerateError> {
    Ok(Actor::new(role, id)?)
}

/// Runs the timers due by `to`, in order, each at its time, then sets the clock to `to`. A
/// timer whose command is refused (nothing left to do) is dropped, as the timer service does.
async fn advance(v: &mut Visit, to: OffsetDateTime) -> Result<(), GenerateError> {
    loop {
        let next = v
            .timers
            .iter()
            .enumerate()
            .filter(|(_, (due, _))| *due <= to)
            .min_by_key(|(_, (due, _))| *due)
            .map(|(i, _)| i);
        let Some(i) = next else { break };
        let (due, command) = v.timers.remove(i);
        v.now = v.now.max(due);
        match v.run(&Actor::system("timer"), command).await {
            Ok(_) | Err(StoryError::Bus(BusError::Refused(_))) => {}
            Err(e) => return Err(e.into()),
        }
    }
    v.now = v.now.max(to);
    Ok(())
}

/// Records one complete visit through the bus into a store of its own and returns its events.
async fn record(
    dir: &Path,
    variant: &Variant,
    tenants: &[Tenant],
) -> Result<Vec<RecordedEvent>, GenerateError> {
    let store = Arc::new(SqliteStore::open(dir.join(format!("{}.db", variant.tenant))).await?);
    // The template's keys stay in the throw-away store: replicas carry the template's
    // ciphertext under their own subject ids, so in the target store their personal values
    // read as erased. The generator makes volume, not readable persons.
    let kek = Kek::ephemeral().map_err(|e| template_error(e.to_string()))?;
    let keys = Arc::new(Keyring::new(kek, store.clone()));
    let bus = CommandBus::new(store, keys, tenants.iter().cloned());
    let mut v = Visit::new(bus, TenantId::parse(variant.tenant)?, variant.booked_at);
    let personal = PersonalValues::of(variant);
    drive(
        &mut v,
        variant,
        &personal,
        VisitIds::fresh(),
        Handover::Done,
    )
    .await?;
    Ok(v.events().await?.into_iter().map(|(r, _)| r).collect())
}

/// Every personal value a complete visit records, so that tests can put their own in (e.g.
/// unique canary strings) and find them again.
#[derive(Clone)]
pub struct PersonalValues {
    pub name: String,
    pub email: String,
    pub phone: Option<String>,
    /// Values for the form's fields, by field id; fields not named keep the example's value.
    pub fields: Vec<(String, String)>,
    pub file_name: String,
    pub feedback: String,
    /// The clerk's reason for a first, failed identity check, if there is one.
    pub identity_failure: Option<String>,
}

/// Whether the visit hands its case over where a service needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handover {
    Done,
    /// Left out, so that the purge must wait.
    Missing,
}

impl std::fmt::Debug for PersonalValues {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PersonalValues(‹redacted›)")
    }
}

impl PersonalValues {
    fn of(variant: &Variant) -> Self {
        let (name, email, phone) = variant.contact;
        Self {
            name: name.into(),
            email: email.into(),
            phone: phone.map(Into::into),
            fields: vec![],
            file_name: "nachweis.pdf".into(),
            feedback: "Sehr gut".into(),
            identity_failure: None,
        }
    }

    /// The example visit's values.
    pub fn example(tenant: &str) -> Self {
        Self::of(&Variant::of(tenant))
    }

    /// The text form fields of the tenant's example visit, which accept any text.
    pub fn text_fields(tenant: &str) -> Vec<&'static str> {
        let variant = Variant::of(tenant);
        let Ok(tenants) = videoamt_core::tenant::example_tenants() else {
            return vec![];
        };
        let Some(template) = tenants
            .iter()
            .find(|t| t.id.as_str() == tenant)
            .and_then(|t| t.forms.get(&variant.template.into()))
        else {
            return vec![];
        };
        variant
            .fields
            .iter()
            .map(|(f, _)| *f)
            .filter(|f| {
                matches!(
                    template.field(f).map(|d| &d.kind),
                    Some(videoamt_core::tenant::FieldKind::Text { .. })
                )
            })
            .collect()
    }
}

/// Drives one complete visit of `tenant`'s example (`ettlingen` or `stuttgart`) with the given
/// personal values and ids through `v`: booking, confirmation, reminder, session with identity
/// check, upload, form, signature, payment, the case-system handover where the service needs
/// one, end and feedback. The process managers' reactions run as in production.
pub async fn complete_visit(
    v: &mut Visit,
    tenant: &str,
    personal: &PersonalValues,
    ids: VisitIds,
    handover: Handover,
) -> Result<(), GenerateError> {
    drive(v, &Variant::of(tenant), personal, ids, handover).await
}

/// When `tenant`'s example visit starts and ends (the booking is made a few days before).
pub fn visit_times(tenant: &str) -> (OffsetDateTime, OffsetDateTime) {
    let v = Variant::of(tenant);
    (v.booked_at, v.start)
}

async fn drive(
    v: &mut Visit,
    variant: &Variant,
    personal: &PersonalValues,
    ids: VisitIds,
    handover: Handover,
) -> Result<(), GenerateError> {
    let citizen = actor(ActorRole::Citizen, variant.citizen)?;
    let clerk = actor(ActorRole::Clerk, variant.clerk)?;
    let VisitIds {
        appointment,
        subject,
        session,
        form,
        payment,
        document,
    } = ids;
    let invited = variant.channel == BookingChannel::ClerkInvitation;

    v.run(
        if invited { &clerk } else { &citizen },
        AppointmentCommand::BookAppointment(BookAppointment {
            appointment,
            subject,
            department: variant.department.into(),
            services: variant.services.iter().map(|&s| s.into()).collect(),
            start: variant.start,
            channel: variant.channel,
            invited_by: invited.then(|| variant.clerk.into()),
            contact: Contact {
                name: Personal::plain(personal.name.clone()),
                email: Personal::plain(personal.email.clone()),
                phone: personal.phone.clone().map(Personal::plain),
            },
            access: None,
        })
        .into(),
    )
    .await?;
    // The outbox sends the confirmation mail at once.
    v.run(
        &Actor::system("outbox"),
        AppointmentCommand::ConfirmAppointment { appointment }.into(),
    )
    .await?;
    // The reminder a day before; the citizen arrives two minutes early.
    advance(v, variant.start - Duration::minutes(2)).await?;

    v.run(
        &clerk,
        SessionCommand::OpenSession {
            appointment,
            session,
        }
        .into(),
    )
    .await?;
    v.run(
        &citizen,
        SessionCommand::Join {
            session,
            party: Party::Citizen,
        }
        .into(),
    )
    .await?;
    v.run(
        &citizen,
        SessionCommand::AcceptPrivacyNotice { session }.into(),
    )
    .await?;
    v.run(
        &clerk,
        SessionCommand::Join {
            session,
            party: Party::Clerk,
        }
        .into(),
    )
    .await?;
    v.run(
        &clerk,
        SessionCommand::Admit {
            session,
            clerk: variant.clerk.into(),
        }
        .into(),
    )
    .await?;
    if let Some(reason) = &personal.identity_failure {
        v.run(
            &clerk,
            SessionCommand::FailIdentityCheck {
                session,
                document_type: DocumentType::Reisepass,
                questions_asked: true,
                reason: Personal::plain(reason.clone()),
                clerk: variant.clerk.into(),
            }
            .into(),
        )
        .await?;
    }
    v.run(
        &clerk,
        SessionCommand::VerifyIdentity {
            session,
            document_type: DocumentType::Personalausweis,
            questions_asked: true,
            features_checked: vec![
                SecurityFeature::Lichtbild,
                SecurityFeature::Hologramm,
                SecurityFeature::Guillochen,
            ],
            clerk: variant.clerk.into(),
        }
        .into(),
    )
    .await?;
    v.run(
        &citizen,
        SessionCommand::UploadDocument {
            session,
            document,
            by: Party::Citizen,
            file_name: Personal::plain(personal.file_name.clone()),
            media_type: MediaType::PDF,
            size_bytes: 48_213,
            sha256: "5e".repeat(32).parse().expect("64 hex digits"),
        }
        .into(),
    )
    .await?;
    v.run(
        &clerk,
        SessionCommand::ShareDocument { session, document }.into(),
    )
    .await?;
    v.run(
        &clerk,
        FormCommand::StartForm {
            session,
            form,
            template: variant.template.into(),
        }
        .into(),
    )
    .await?;
    for (i, (field, value)) in variant.fields.iter().enumerate() {
        let (by, who) = if i % 2 == 0 {
            (Party::Clerk, &clerk)
        } else {
            (Party::Citizen, &citizen)
        };
        let value = personal
            .fields
            .iter()
            .find(|(f, _)| f == field)
            .map_or(*value, |(_, v)| v.as_str());
        v.run(
            who,
            FormCommand::ChangeField {
                form,
                field: (*field).into(),
                value: Personal::plain(value),
                by,
                based_on: None,
            }
            .into(),
        )
        .await?;
    }
    v.run(
        &clerk,
        FormCommand::RequestSignature {
            form,
            method: variant.signature,
        }
        .into(),
    )
    .await?;
    if matches!(
        variant.signature,
        SignatureMethod::HiddenTan | SignatureMethod::HandyTan
    ) {
        // The TAN's digest stands in for the keyed hash the room computes.
        let digest: videoamt_core::domain::document::Sha256 =
            "7a".repeat(32).parse().expect("64 hex digits");
        v.run(
            &citizen,
            FormCommand::IssueTan {
                form,
                method: variant.signature,
                tan: Uuid::from_u128(form.0.as_u128() ^ 0x7a4),
                digest,
            }
            .into(),
        )
        .await?;
        v.run(&citizen, FormCommand::EnterTan { form, digest }.into())
            .await?;
    }
    v.run(
        &citizen,
        FormCommand::SignForm {
            form,
            method: variant.signature,
            evidence_sha256: "ab".repeat(32).parse().expect("64 hex digits"),
            document_sha256: "cd".repeat(32).parse().expect("64 hex digits"),
            edits_seen: None,
        }
        .into(),
    )
    .await?;
    v.run(
        &clerk,
        PaymentCommand::RequestPayment {
            payment,
            appointment,
            session: None,
        }
        .into(),
    )
    .await?;
    v.run(
        &citizen,
        PaymentCommand::ChoosePaymentMethod {
            payment,
            method: variant.payment_method.into(),
        }
        .into(),
    )
    .await?;
    let sandbox = Actor::system("payment-sandbox");
    v.run(
        &sandbox,
        PaymentCommand::AuthorizePayment {
            payment,
            provider_reference: "sandbox-42".into(),
            method: None,
        }
        .into(),
    )
    .await?;
    v.run(&sandbox, PaymentCommand::CapturePayment { payment }.into())
        .await?;
    v.run(
        &citizen,
        SessionCommand::DownloadDocument {
            session,
            document,
            by: Party::Citizen,
        }
        .into(),
    )
    .await?;
    // What must be kept goes to the case system before the session ends.
    let tenant = v
        .bus
        .tenant(&v.tenant)
        .ok_or_else(|| template_error("unknown tenant"))?;
    let targets: Vec<String> = variant
        .services
        .iter()
        .filter_map(|s| tenant.service(&(*s).into())?.case_system.clone())
        .filter(|_| handover == Handover::Done)
        .collect();
    for target in targets {
        v.run(
            &clerk,
            SessionCommand::HandOverToCaseSystem {
                session,
                target,
                reference: format!("AZ-{}", session.0.simple()),
            }
            .into(),
        )
        .await?;
    }
    // The no-show check finds the session and does nothing.
    let end = v.now + Duration::minutes(25);
    advance(v, end).await?;
    v.run(
        &clerk,
        SessionCommand::EndSession {
            session,
            outcome: SessionOutcome::Completed,
        }
        .into(),
    )
    .await?;
    v.run(
        &citizen,
        SessionCommand::SubmitFeedback {
            session,
            score: 5,
            aspects: None,
            comment: Some(Personal::plain(personal.feedback.clone())),
        }
        .into(),
    )
    .await?;
    Ok(())
}

// ---- templates: a recorded visit with its ids and times as holes -----------------------------

/// A stream of the template: named by one of its UUIDs, a calendar day, or anything else (kept
/// as it is, shared by all replicas).
enum StreamTemplate {
    Uuid {
        category: String,
        id: usize,
    },
    Calendar {
        prefix: String,
        date: Date,
    },
    /// A slot stream: `{prefix}{YYYY-MM-DD}-{HHMM}`, moved with the replica's start.
    Slot {
        prefix: String,
        at: PrimitiveDateTime,
    },
    Fixed(StreamId),
}

/// Part of a payload's JSON text.
#[derive(Clone)]
enum Piece {
    Text(String),
    Uuid(usize),
    Time(OffsetDateTime),
}

enum PayloadTemplate {
    Pieces(Vec<Piece>),
    /// The first minute moves with the replica's start.
    SlotsReserved {
        event: SlotsReserved,
        appointment: usize,
    },
    /// The due date is computed again with the tenant's retention rule.
    PurgeScheduled(PurgeScheduled),
}

struct EventTemplate {
    stream: usize,
    event_id: usize,
    correlation_id: usize,
    causation_id: usize,
    event_type: EventType,
    schema_version: u16,
    tenant: TenantId,
    actor: Actor,
    recorded_at: OffsetDateTime,
    payload: PayloadTemplate,
}

/// Consecutive events of one stream.
struct Run {
    stream: usize,
    events: Range<usize>,
}

struct Template {
    tenant: Tenant,
    /// How many distinct UUIDs the visit has.
    uuids: usize,
    appointment: usize,
    streams: Vec<StreamTemplate>,
    events: Vec<EventTemplate>,
    /// The visit cut into segments in which each stream occurs at most once.
    segments: Vec<Vec<Run>>,
    /// The start of the appointment, local time.
    local_start: PrimitiveDateTime,
    /// The Monday of its week.
    monday: Date,
    /// Where a replica may start, relative to `local_start`: every place of the template's
    /// week.
    places: Vec<Duration>,
    /// Events outside the calendar: the appointment's record.
    record_events: u64,
    /// The `FieldChanged` events, copied to inflate the big appointment's form.
    field_changes: Vec<usize>,
}

#[derive(Default)]
struct UuidIndex(HashMap<Uuid, usize>);

impl UuidIndex {
    fn of(&mut self, id: Uuid) -> usize {
        let next = self.0.len();
        *self.0.entry(id).or_insert(next)
    }
}

fn is_uuid(s: &str) -> Option<Uuid> {
    (s.len() == 36).then(|| Uuid::parse_str(s).ok()).flatten()
}

fn is_time(s: &str) -> Option<OffsetDateTime> {
    // Cheap pre-check: `YYYY-MM-DDT…`.
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[10] != b'T' {
        return None;
    }
    OffsetDateTime::parse(s, &Rfc3339).ok()
}

/// Every string (keys included) of a JSON value.
fn strings<'v>(value: &'v serde_json::Value, out: &mut Vec<&'v str>) {
    match value {
        serde_json::Value::String(s) => out.push(s),
        serde_json::Value::Array(items) => items.iter().for_each(|v| strings(v, out)),
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                out.push(k);
                strings(v, out);
            }
        }
        _ => {}
    }
}

/// Cuts a payload's JSON text at every UUID and timestamp string.
fn pieces(payload: &Payload, uuids: &mut UuidIndex) -> Result<Vec<Piece>, GenerateError> {
    let text = payload.as_str();
    let value: serde_json::Value = payload
        .parse()
        .map_err(|e| template_error(format!("payload is not JSON: {e}")))?;
    let mut all = Vec::new();
    strings(&value, &mut all);
    all.sort_unstable();
    all.dedup();
    let mut holes: Vec<(usize, usize, Piece)> = Vec::new();
    for s in all {
        let piece = if let Some(id) = is_uuid(s) {
            Piece::Uuid(uuids.of(id))
        } else if let Some(t) = is_time(s) {
            Piece::Time(t)
        } else {
            continue;
        };
        let quoted = format!("\"{s}\"");
        for (at, _) in text.match_indices(&quoted) {
            holes.push((at + 1, s.len(), piece.clone()));
        }
    }
    holes.sort_by_key(|(at, _, _)| *at);
    let mut out = Vec::new();
    let mut from = 0;
    for (at, len, piece) in holes {
        if at > from {
            out.push(Piece::Text(text[from..at].to_owned()));
        }
        out.push(piece);
        from = at + len;
    }
    if from < text.len() {
        out.push(Piece::Text(text[from..].to_owned()));
    }
    Ok(out)
}

fn decode(recorded: &RecordedEvent) -> Result<DomainEvent, GenerateError> {
    Ok(DomainEvent::from_payload(
        recorded.event_type.as_str(),
        recorded.schema_version,
        &recorded.payload,
    )?)
}

fn minute_of_day(t: time::Time) -> i64 {
    i64::from(t.hour()) * 60 + i64::from(t.minute())
}

/// Every place of the week starting on `monday` at which an appointment of `minutes` fits the
/// department's opening hours: weekday × start on the slot grid × parallel capacity, as
/// offsets from `local_start`.
fn week_places(
    tenant: &Tenant,
    department: &str,
    monday: Date,
    local_start: PrimitiveDateTime,
    minutes: i64,
) -> Result<Vec<Duration>, GenerateError> {
    let department = tenant
        .departments
        .values()
        .find(|d| d.id.as_str() == department)
        .ok_or_else(|| template_error(format!("unknown department {department}")))?;
    let slot = i64::from(department.slot_minutes.max(1));
    let step = ((minutes.max(1) + slot - 1) / slot) * slot;
    let mut places = Vec::new();
    for day in 0..7 {
        let date = monday + Duration::days(day);
        for window in department
            .hours
            .iter()
            .filter(|w| w.weekday == date.weekday())
        {
            let mut at = minute_of_day(window.from);
            while at + minutes <= minute_of_day(window.to) {
                let start =
                    PrimitiveDateTime::new(date, time::Time::MIDNIGHT) + Duration::minutes(at);
                for _ in 0..department.capacity {
                    places.push(start - local_start);
                }
                at += step;
            }
        }
    }
    if places.is_empty() {
        return Err(template_error(format!(
            "department {} has no place for {minutes} minutes",
            department.id.as_str()
        )));
    }
    Ok(places)
}

impl Template {
    fn build(recorded: &[RecordedEvent], tenant: &Tenant) -> Result<Self, GenerateError> {
        let mut uuids = UuidIndex::default();
        let mut stream_index: HashMap<StreamId, usize> = HashMap::new();
        let mut streams = Vec::new();
        let mut events = Vec::with_capacity(recorded.len());
        let mut booked = None;
        let mut field_changes = Vec::new();
        let mut record_events = 0;
        for r in recorded {
            let stream = match stream_index.get(&r.stream_id) {
                Some(&i) => i,
                None => {
                    let raw = r.stream_id.as_str();
                    let (category, id) = raw
                        .split_once('-')
                        .ok_or_else(|| template_error(format!("stream {raw}")))?;
                    let template = if let Some(id) = is_uuid(id) {
                        StreamTemplate::Uuid {
                            category: category.to_owned(),
                            id: uuids.of(id),
                        }
                    } else if category == "slot" && raw.len() > 15 {
                        let (prefix, at) = raw.split_at(raw.len() - 15);
                        let at = PrimitiveDateTime::parse(
                            at,
                            time::macros::format_description!(
                                "[year]-[month]-[day]-[hour][minute]"
                            ),
                        )
                        .map_err(|e| template_error(format!("slot stream {raw}: {e}")))?;
                        StreamTemplate::Slot {
                            prefix: prefix.to_owned(),
                            at,
                        }
                    } else if category == "calendar" && raw.len() > 10 {
                        let (prefix, date) = raw.split_at(raw.len() - 10);
                        let date = Date::parse(
                            date,
                            time::macros::format_description!("[year]-[month]-[day]"),
                        )
                        .map_err(|e| template_error(format!("calendar stream {raw}: {e}")))?;
                        StreamTemplate::Calendar {
                            prefix: prefix.to_owned(),
                            date,
                        }
                    } else {
                        StreamTemplate::Fixed(r.stream_id.clone())
                    };
                    streams.push(template);
                    stream_index.insert(r.stream_id.clone(), streams.len() - 1);
                    streams.len() - 1
                }
            };
            let event = decode(r)?;
            let payload = match &event {
                DomainEvent::SlotsReserved(e) => PayloadTemplate::SlotsReserved {
                    event: e.clone(),
                    appointment: uuids.of(e.appointment.0),
                },
                DomainEvent::PurgeScheduled(e) => PayloadTemplate::PurgeScheduled(e.clone()),
                _ => PayloadTemplate::Pieces(pieces(&r.payload, &mut uuids)?),
            };
            match &event {
                DomainEvent::AppointmentBooked(e) => {
                    booked = Some((e.clone(), uuids.of(e.appointment.0)));
                }
                DomainEvent::FieldChanged(_) => field_changes.push(events.len()),
                _ => {}
            }
            if !matches!(
                streams[stream],
                StreamTemplate::Calendar { .. } | StreamTemplate::Slot { .. }
            ) {
                record_events += 1;
            }
            events.push(EventTemplate {
                stream,
                event_id: uuids.of(r.event_id),
                correlation_id: uuids.of(r.meta.correlation_id),
                causation_id: uuids.of(r.meta.causation_id),
                event_type: r.event_type.clone(),
                schema_version: r.schema_version,
                tenant: r.meta.tenant.clone(),
                actor: r.meta.actor.clone(),
                recorded_at: r.meta.recorded_at,
                payload,
            });
        }
        let (booked, appointment) = booked.ok_or_else(|| template_error("nothing booked"))?;
        let local_start = tenant.local(booked.start);
        let minutes = (booked.end - booked.start).whole_minutes();
        let monday = local_start.date()
            - Duration::days(i64::from(
                local_start.date().weekday().number_days_from_monday(),
            ));
        let places = week_places(
            tenant,
            booked.department.as_str(),
            monday,
            local_start,
            minutes,
        )?;
        for s in &streams {
            let day = match s {
                StreamTemplate::Calendar { date, .. } => Some(*date),
                StreamTemplate::Slot { at, .. } => Some(at.date()),
                _ => None,
            };
            if let Some(date) = day
                && date != local_start.date()
            {
                return Err(template_error(format!(
                    "calendar day {date} is not the day of the start {local_start}"
                )));
            }
        }
        Ok(Self {
            tenant: tenant.clone(),
            uuids: uuids.0.len(),
            appointment,
            segments: segments(&events),
            streams,
            events,
            local_start,
            monday,
            places,
            record_events,
            field_changes,
        })
    }
}

/// Cuts the events into segments in which every stream occurs at most once, each as runs of
/// consecutive events of one stream, in order.
fn segments(events: &[EventTemplate]) -> Vec<Vec<Run>> {
    let mut segments: Vec<Vec<Run>> = Vec::new();
    let mut current: Vec<Run> = Vec::new();
    for (i, e) in events.iter().enumerate() {
        match current.last_mut() {
            Some(run) if run.stream == e.stream => run.events.end = i + 1,
            _ => {
                if current.iter().any(|r| r.stream == e.stream) {
                    segments.push(std::mem::take(&mut current));
                }
                current.push(Run {
                    stream: e.stream,
                    events: i..i + 1,
                });
            }
        }
    }
    if !current.is_empty() {
        segments.push(current);
    }
    segments
}

// ---- replicas -------------------------------------------------------------------------------

/// Which template visit goes where next: week after week, the templates' places in turn,
/// about three quarters of them used.
#[derive(Default)]
struct Plan {
    week: i64,
    queue: std::collections::VecDeque<(usize, Duration)>,
}

impl Plan {
    fn fill_week(&mut self, templates: &[Template]) {
        let longest = templates.iter().map(|t| t.places.len()).max().unwrap_or(0);
        let week = self.week;
        for place in 0..longest {
            for (t, template) in templates.iter().enumerate() {
                let Some(delta) = template.places.get(place) else {
                    continue;
                };
                // A fixed pattern that moves from week to week leaves a quarter free.
                let hash = (place as i64)
                    .wrapping_mul(7)
                    .wrapping_add(week.wrapping_mul(3));
                if hash.rem_euclid(4) == 3 {
                    continue;
                }
                self.queue.push_back((t, *delta + Duration::weeks(week)));
            }
        }
        self.week += 1;
    }

    fn next_place(&mut self, templates: &[Template]) -> (usize, Duration) {
        loop {
            if let Some(next) = self.queue.pop_front() {
                return next;
            }
            self.fill_week(templates);
        }
    }
}

struct Replica<'t> {
    template: &'t Template,
    /// A fresh UUID for each of the template's.
    ids: Vec<Uuid>,
    /// The offset in local wall-clock time.
    delta: Duration,
    /// Events written so far per template stream.
    written: Vec<u64>,
    /// `FieldChanged` events added after the template's last one.
    extra: usize,
}

impl<'t> Replica<'t> {
    fn new(template: &'t Template, delta: Duration, extra: usize) -> Self {
        let extra = if template.field_changes.is_empty() {
            0
        } else {
            extra
        };
        Self {
            template,
            ids: (0..template.uuids).map(|_| Uuid::now_v7()).collect(),
            delta,
            written: vec![0; template.streams.len()],
            extra,
        }
    }

    fn appointment(&self) -> AppointmentId {
        AppointmentId(self.ids[self.template.appointment])
    }

    /// `t` moved by the replica's offset in the tenant's local time.
    fn shift(&self, t: OffsetDateTime) -> OffsetDateTime {
        let tenant = &self.template.tenant;
        tenant
            .instant(tenant.local(t) + self.delta)
            .to_offset(t.offset())
    }

    fn stream(&self, stream: usize) -> Result<StreamId, GenerateError> {
        Ok(match &self.template.streams[stream] {
            StreamTemplate::Uuid { category, id } => StreamId::of(category, self.ids[*id])?,
            StreamTemplate::Calendar { prefix, date } => {
                let day = (PrimitiveDateTime::new(*date, self.template.local_start.time())
                    + self.delta)
                    .date();
                StreamId::parse(&format!("{prefix}{day}"))?
            }
            StreamTemplate::Slot { prefix, at } => {
                let at = *at + self.delta;
                StreamId::parse(&format!(
                    "{prefix}{}-{:02}{:02}",
                    at.date(),
                    at.hour(),
                    at.minute()
                ))?
            }
            StreamTemplate::Fixed(id) => id.clone(),
        })
    }

    fn payload(&self, template: &PayloadTemplate) -> Result<Payload, GenerateError> {
        match template {
            PayloadTemplate::Pieces(pieces) => {
                let mut text = String::with_capacity(256);
                for piece in pieces {
                    match piece {
                        Piece::Text(t) => text.push_str(t),
                        Piece::Uuid(i) => {
                            let mut buf = Uuid::encode_buffer();
                            text.push_str(self.ids[*i].hyphenated().encode_lower(&mut buf));
                        }
                        Piece::Time(t) => {
                            let shifted = self
                                .shift(*t)
                                .format(&Rfc3339)
                                .map_err(|e| template_error(format!("time {t}: {e}")))?;
                            text.push_str(&shifted);
                        }
                    }
                }
                Ok(Payload::from_json(text)?)
            }
            PayloadTemplate::SlotsReserved { event, appointment } => {
                let start = self.template.local_start;
                let moved =
                    minute_of_day((start + self.delta).time()) - minute_of_day(start.time());
                let first_minute = u16::try_from(i64::from(event.first_minute) + moved)
                    .map_err(|_| template_error("first minute out of the day"))?;
                Ok(DomainEvent::SlotsReserved(SlotsReserved {
                    appointment: AppointmentId(self.ids[*appointment]),
                    first_minute,
                    slots: event.slots,
                })
                .to_payload()?)
            }
            PayloadTemplate::PurgeScheduled(event) => {
                let tenant = &self.template.tenant;
                let final_at = self.shift(event.final_at);
                Ok(DomainEvent::PurgeScheduled(PurgeScheduled {
                    final_state: event.final_state,
                    final_at,
                    due: tenant
                        .add_months(final_at, tenant.retention_months)
                        .to_offset(event.due.offset()),
                })
                .to_payload()?)
            }
        }
    }

    fn event(
        &self,
        e: &EventTemplate,
        event_id: Uuid,
        causation_id: Uuid,
    ) -> Result<NewEvent, GenerateError> {
        let meta = EventMetadata::new(
            e.tenant.clone(),
            self.ids[e.correlation_id],
            causation_id,
            e.actor.clone(),
            self.shift(e.recorded_at),
        );
        Ok(NewEvent::new(
            event_id,
            e.event_type.clone(),
            e.schema_version,
            meta,
            self.payload(&e.payload)?,
        )?)
    }

    /// The replica's events of one run, with the big appointment's extra field changes after
    /// the template's last one.
    fn run(&self, run: &Run) -> Result<(StreamId, Vec<NewEvent>), GenerateError> {
        let stream = self.stream(run.stream)?;
        let last_change = self.template.field_changes.last().copied();
        let mut events = Vec::with_capacity(run.events.len());
        for i in run.events.clone() {
            let e = &self.template.events[i];
            events.push(self.event(e, self.ids[e.event_id], self.ids[e.causation_id])?);
            if Some(i) == last_change {
                let changes = &self.template.field_changes;
                for k in 0..self.extra {
                    let copied = &self.template.events[changes[k % changes.len()]];
                    // A real `FieldChanged`, re-encoded, each from a command of its own.
                    let change = DomainEvent::from_payload(
                        copied.event_type.as_str(),
                        copied.schema_version,
                        &self.payload(&copied.payload)?,
                    )?;
                    let mut new = self.event(copied, Uuid::now_v7(), Uuid::now_v7())?;
                    new.payload = change.to_payload()?;
                    events.push(new);
                }
            }
        }
        Ok((stream, events))
    }
}

// ---- writing --------------------------------------------------------------------------------

#[derive(Default)]
struct Batch {
    streams: Vec<StreamAppend>,
    index: HashMap<StreamId, usize>,
    events: usize,
}

/// Sends full batches. One append is written while the next batch is built; it is awaited
/// before the next is sent, so appends are committed in order on any backend.
struct Writer {
    store: Arc<dyn EventStore>,
    batch: Batch,
    in_flight: Option<JoinHandle<Result<Appended, AppendError>>>,
    written: u64,
}

impl Writer {
    /// Adds a replica's run to the batch, sending the batch first when it is full.
    async fn add(
        &mut self,
        replica: &mut Replica<'_>,
        template_stream: usize,
        stream: StreamId,
        events: Vec<NewEvent>,
        progress: &mut impl FnMut(u64),
    ) -> Result<(), GenerateError> {
        let owned = matches!(
            replica.template.streams[template_stream],
            StreamTemplate::Uuid { .. }
        );
        let mut events = events.into_iter().peekable();
        while events.peek().is_some() {
            let chunk: Vec<NewEvent> = events.by_ref().take(MAX_EVENTS_PER_BATCH).collect();
            // A stream occurs once in a batch, so a replica's next segment may have to wait
            // for the next batch.
            let full = self.batch.events > 0 && self.batch.events + chunk.len() > BATCH_EVENTS;
            if full || (owned && self.batch.index.contains_key(&stream)) {
                self.flush(progress).await?;
            }
            let done = &mut replica.written[template_stream];
            let expected = match (owned, *done) {
                (false, _) => ExpectedVersion::Any,
                (true, 0) => ExpectedVersion::NoStream,
                (true, n) => ExpectedVersion::Exact(n - 1),
            };
            *done += chunk.len() as u64;
            self.batch.events += chunk.len();
            match self.batch.index.get(&stream) {
                // A slot or calendar day shared with an earlier replica of this batch.
                Some(&i) => self.batch.streams[i].events.extend(chunk),
                None => {
                    self.batch
                        .index
                        .insert(stream.clone(), self.batch.streams.len());
                    self.batch.streams.push(StreamAppend {
                        stream: stream.clone(),
                        expected,
                        events: chunk,
                    });
                }
            }
        }
        Ok(())
    }

    /// Sends the batch once the previous append is done.
    async fn flush(&mut self, progress: &mut impl FnMut(u64)) -> Result<(), GenerateError> {
        if self.batch.events == 0 {
            return Ok(());
        }
        let batch = AppendBatch::new(std::mem::take(&mut self.batch).streams)?;
        self.wait(progress).await?;
        let store = self.store.clone();
        self.in_flight = Some(tokio::spawn(async move { store.append(batch).await }));
        Ok(())
    }

    /// Waits for the append in flight, if any.
    async fn wait(&mut self, progress: &mut impl FnMut(u64)) -> Result<(), GenerateError> {
        if let Some(append) = self.in_flight.take() {
            let appended = append.await.map_err(StoreError::new)??;
            self.written += appended.positions.len() as u64;
            progress(self.written);
        }
        Ok(())
    }
}
