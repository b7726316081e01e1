//! What a citizen can do without an account: read the catalogue, find free slots, book, and,
//! with the capability link from the mail, see, confirm, cancel and move the appointment.
//! The JSON handlers here and the HTML pages share these functions.

use std::str::FromStr as _;

use serde::{Deserialize, Serialize};
use time::{Date, Duration, OffsetDateTime};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;
use videoamt_adapters::access::token_hash;
use videoamt_adapters::bus::Issued;
use videoamt_core::domain::appointment::AppointmentCommand;
use videoamt_core::domain::appointment::{AppointmentState, BookAppointment, Status};
use videoamt_core::domain::command::Command;
use videoamt_core::domain::events::{CancelledBy, CitizenAccessGranted, Contact};
use videoamt_core::domain::session::SessionCommand;
use videoamt_core::domain::{AppointmentId, Personal, SubjectId};
use videoamt_core::event::{Actor, ActorRole};
use videoamt_core::keys::reveal;
use videoamt_core::tenant::{BookingChannel, DepartmentId, ServiceId, Tenant};

use crate::http::AppState;
use crate::http::error::{Error, FieldError};
use crate::http::middleware::guard::Client;

/// Days one slot query may cover.
pub(crate) const MAX_SLOT_DAYS: u8 = 14;

// --- catalogue ---

#[derive(Debug, Clone, Serialize, ToSchema)]
pub(crate) struct TenantView {
    pub id: String,
    pub name: String,
    /// IANA time zone of all local times of this municipality.
    pub time_zone: String,
    pub support: SupportView,
    /// Minimum upload bandwidth for the video call, in Mbit/s.
    pub min_upload_mbit: u32,
    pub departments: Vec<DepartmentView>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub(crate) struct SupportView {
    pub phone: String,
    pub hours: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub(crate) struct DepartmentView {
    pub id: String,
    pub name: String,
    /// Whether citizens book online; otherwise only by a clerk's invitation.
    pub online_booking: bool,
    pub slot_minutes: u16,
    pub services: Vec<ServiceView>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub(crate) struct ServiceView {
    pub id: String,
    pub name: String,
    pub duration_minutes: u16,
    /// The fee in euro cents.
    pub fee_cents: u64,
    /// Documents to have ready in the call.
    pub documents: Vec<String>,
    pub identity_check: bool,
    pub signature: bool,
    /// Services that can be handled in the same appointment.
    pub combinable_with: Vec<String>,
}

pub(crate) fn tenant_view(t: &Tenant) -> TenantView {
    TenantView {
        id: t.id.to_string(),
        name: t.name.clone(),
        time_zone: t.time_zone_name.clone(),
        support: SupportView {
            phone: t.support.phone.clone(),
            hours: t.support.hours.clone(),
        },
        min_upload_mbit: t.min_upload_mbit,
        departments: t
            .departments
            .values()
            .map(|d| DepartmentView {
                id: d.id.to_string(),
                name: d.name.clone(),
                online_booking: d.online_booking,
                slot_minutes: d.slot_minutes,
                services: t
                    .services
                    .values()
                    .filter(|s| s.department == d.id && s.online)
                    .map(|s| ServiceView {
                        id: s.id.to_string(),
                        name: s.name.clone(),
                        duration_minutes: s.duration_minutes,
                        fee_cents: s.fee.0,
                        documents: s.documents.clone(),
                        identity_check: s.identity_check,
                        signature: s.signature,
                        combinable_with: s.combinable_with.iter().map(|c| c.to_string()).collect(),
                    })
                    .collect(),
            })
            .collect(),
    }
}

pub(crate) fn tenant<'a>(state: &'a AppState, id: &str) -> Option<&'a Tenant> {
    state.tenants.iter().find(|t| t.id.as_str() == id)
}

// --- slots ---

#[derive(Debug, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct SlotQuery {
    /// The municipality (`ettlingen`, `stuttgart`).
    pub tenant: String,
    /// The chosen services, comma-separated; all of one department.
    #[param(pattern = r"^[a-z0-9-]+(,[a-z0-9-]+)*$", max_length = 400)]
    pub services: String,
    /// The first day (`YYYY-MM-DD`, local).
    #[param(format = Date, pattern = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")]
    pub from: String,
    /// How many days from `from` (1 to 14; 1 when missing).
    #[param(minimum = 1, maximum = 14)]
    pub days: Option<u8>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub(crate) struct SlotsView {
    pub tenant: String,
    pub department: String,
    /// Minutes the chosen services take together, rounded up to whole slots.
    pub duration_minutes: u32,
    pub fee_total_cents: u64,
    pub days: Vec<DaySlots>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub(crate) struct DaySlots {
    /// Local date, `YYYY-MM-DD`.
    pub date: String,
    /// Free starts as RFC 3339 instants with the local offset.
    pub starts: Vec<String>,
}

pub(crate) fn parse_services(raw: &str) -> Vec<ServiceId> {
    raw.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(ServiceId::from)
        .collect()
}

pub(crate) fn parse_date(raw: &str) -> Option<Date> {
    Date::parse(
        raw,
        time::macros::format_description!("[year]-[month]-[day]"),
    )
    .ok()
}

pub(crate) fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

pub(crate) async fn free_slots(state: &AppState, q: &SlotQuery) -> Result<SlotsView, Error> {
    let tenant = tenant(state, &q.tenant).ok_or_else(unknown_tenant)?;
    let services = parse_services(&q.services);
    let from = parse_date(&q.from).ok_or_else(|| {
        Error::invalid_fields(vec![field(
            "from",
            "Bitte ein Datum im Format JJJJ-MM-TT angeben.",
        )])
    })?;
    let days = q.days.unwrap_or(1);
    if days == 0 || days > MAX_SLOT_DAYS {
        return Err(Error::invalid_fields(vec![field(
            "days",
            &format!("Es können 1 bis {MAX_SLOT_DAYS} Tage abgefragt werden."),
        )]));
    }
    let first = services.first().ok_or(Error::Refused(
        videoamt_core::domain::DomainError::NoServices,
    ))?;
    let department = tenant
        .service(first)
        .ok_or_else(|| {
            Error::Refused(videoamt_core::domain::DomainError::UnknownService(
                first.clone(),
            ))
        })?
        .department
        .clone();
    let (dept, slots) =
        videoamt_core::domain::appointment::size_concerns(tenant, &department, &services)
            .map_err(Error::Refused)?;
    let now = state.now();
    let mut out = Vec::new();
    for offset in 0..days {
        let date = from + Duration::days(i64::from(offset));
        let starts = videoamt_projections::slots::free_slots(
            state.reads.as_ref(),
            tenant,
            &services,
            date,
            now,
        )
        .await
        .map_err(|e| match e {
            videoamt_projections::slots::FreeSlotsError::Domain(e) => Error::Refused(e),
            videoamt_projections::slots::FreeSlotsError::Store(e) => {
                Error::unavailable(format!("free slots unavailable: {e}"))
            }
        })?;
        out.push(DaySlots {
            date: date.to_string(),
            starts: starts
                .into_iter()
                .map(|s| rfc3339(tenant.zoned(s)))
                .collect(),
        });
    }
    Ok(SlotsView {
        tenant: tenant.id.to_string(),
        department: dept.id.to_string(),
        duration_minutes: u32::from(slots) * u32::from(dept.slot_minutes),
        fee_total_cents: services
            .iter()
            .filter_map(|s| tenant.service(s))
            .map(|s| s.fee.0)
            .sum(),
        days: out,
    })
}

// --- booking ---

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct BookingRequest {
    pub tenant: String,
    /// One or more services of one department.
    #[schema(min_items = 1, max_items = 10)]
    pub services: Vec<String>,
    /// The chosen start (RFC 3339), one of the free starts.
    #[schema(value_type = String, format = DateTime)]
    #[serde(with = "time::serde::rfc3339")]
    pub start: OffsetDateTime,
    pub contact: ContactInput,
    /// The citizen read the privacy notice and agrees to the processing.
    pub privacy_accepted: bool,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ContactInput {
    /// At most 200 characters, no control characters.
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\u0000-\u001f\u007f]*[^\s\u0000-\u001f\u007f][^\u0000-\u001f\u007f]*$"
    )]
    pub name: String,
    #[schema(
        max_length = 254,
        pattern = r"^[A-Za-z0-9_%+-]+(\.[A-Za-z0-9_%+-]+)*@[A-Za-z0-9]+(-[A-Za-z0-9]+)*(\.[A-Za-z0-9]+(-[A-Za-z0-9]+)*)+$"
    )]
    pub email: String,
    /// Digits with spaces, `+`, `-`, `/` and brackets; 6 to 20 digits.
    #[schema(max_length = 40, pattern = r"^([ +/()-]*([0-9][ +/()-]*){6,20})?$")]
    #[serde(default)]
    pub phone: Option<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub(crate) struct Booked {
    /// What happens next, in German. The link to the appointment, its capability, goes out
    /// by mail only.
    pub notice: String,
    pub appointment: AppointmentView,
}

fn field(name: &str, message: &str) -> FieldError {
    FieldError {
        field: name.to_owned(),
        message: message.to_owned(),
    }
}

fn unknown_tenant() -> Error {
    Error::invalid_fields(vec![field("tenant", "Diese Kommune gibt es hier nicht.")])
}

/// The contact as entered, checked; each invalid field named with a German message.
pub(crate) fn check_contact(input: &ContactInput) -> Result<Contact, Vec<FieldError>> {
    let mut errors = vec![];
    let name = input.name.trim();
    if name.is_empty() {
        errors.push(field("contact.name", "Bitte geben Sie Ihren Namen an."));
    } else if name.chars().count() > 200 || name.chars().any(char::is_control) {
        errors.push(field(
            "contact.name",
            "Der Name darf höchstens 200 Zeichen und keine Steuerzeichen enthalten.",
        ));
    }
    let email = input.email.trim();
    let domain_ok = email
        .rsplit_once('@')
        .is_some_and(|(_, domain)| domain.contains('.') && !domain.ends_with('.'));
    if email.len() > 254 || lettre::Address::from_str(email).is_err() || !domain_ok {
        errors.push(field(
            "contact.email",
            "Bitte geben Sie eine gültige E-Mail-Adresse an, z. B. name@beispiel.de.",
        ));
    }
    let phone = input
        .phone
        .as_deref()
        .map(str::trim)
        .filter(|p| !p.is_empty());
    if let Some(p) = phone {
        let digits = p.chars().filter(char::is_ascii_digit).count();
        let allowed = p
            .chars()
            .all(|c| c.is_ascii_digit() || " +-/()".contains(c));
        if !allowed || !(6..=20).contains(&digits) {
            errors.push(field(
                "contact.phone",
                "Bitte geben Sie eine Telefonnummer aus Ziffern an (6 bis 20 Ziffern, z. B. +49 721 1234567).",
            ));
        }
    }
    if errors.is_empty() {
        Ok(Contact {
            name: Personal::plain(name),
            email: Personal::plain(email),
            phone: phone.map(Personal::plain),
        })
    } else {
        Err(errors)
    }
}

pub(crate) fn citizen_actor(token: &str) -> Actor {
    let id = format!("link-{}", &token_hash(token)[..16]);
    Actor::new(ActorRole::Citizen, &id).expect("a short ascii id")
}

fn issued(state: &AppState, tenant: &Tenant, actor: Actor, correlation: Uuid) -> Issued {
    Issued {
        tenant: tenant.id.clone(),
        actor,
        correlation_id: correlation,
        command_id: Uuid::now_v7(),
        now: state.now(),
    }
}

/// Who books.
pub(crate) enum Booker {
    /// A citizen online, from this client address: counted against the daily caps.
    Online(Client),
    /// A clerk, for a citizen after a call or mail (the clerk-invitation channel).
    Clerk(videoamt_core::tenant::ClerkId, Actor),
}

/// Books; the capability link goes out by mail only, so that a booking is confirmed by
/// whoever reads that mailbox.
pub(crate) async fn book(
    state: &AppState,
    req: BookingRequest,
    booker: Booker,
) -> Result<Booked, Error> {
    let (channel, invited_by, client) = match booker {
        Booker::Online(client) => (BookingChannel::Online, None, Some(client)),
        Booker::Clerk(clerk, actor) => {
            (BookingChannel::ClerkInvitation, Some((clerk, actor)), None)
        }
    };
    let tenant = tenant(state, &req.tenant).ok_or_else(unknown_tenant)?;
    let mut errors = match check_contact(&req.contact) {
        Ok(_) => vec![],
        Err(e) => e,
    };
    if !req.privacy_accepted && channel == BookingChannel::Online {
        errors.push(field(
            "privacy_accepted",
            "Bitte bestätigen Sie, dass Sie den Datenschutzhinweis gelesen haben.",
        ));
    }
    if req.services.is_empty() {
        errors.push(field(
            "services",
            "Bitte wählen Sie mindestens ein Anliegen.",
        ));
    }
    if !errors.is_empty() {
        return Err(Error::invalid_fields(errors));
    }
    let contact = check_contact(&req.contact).map_err(Error::invalid_fields)?;
    let since_epoch = |now: time::OffsetDateTime| {
        std::time::Duration::from_secs(u64::try_from(now.unix_timestamp()).unwrap_or(0))
    };
    let counted = client
        .map(|client| {
            state.booking_caps.check(
                tenant.id.as_str(),
                &req.contact.email,
                client,
                since_epoch(state.now()),
            )
        })
        .transpose()?;
    let services: Vec<ServiceId> = req
        .services
        .iter()
        .map(|s| ServiceId::from(s.as_str()))
        .collect();
    let department: DepartmentId = tenant
        .service(&services[0])
        .ok_or_else(|| {
            Error::Refused(videoamt_core::domain::DomainError::UnknownService(
                services[0].clone(),
            ))
        })?
        .department
        .clone();
    let appointment = AppointmentId(Uuid::now_v7());
    let token = state.system.access.token(appointment);
    let command = AppointmentCommand::BookAppointment(BookAppointment {
        appointment,
        subject: SubjectId(Uuid::now_v7()),
        department,
        services,
        start: req.start,
        channel,
        invited_by: invited_by.as_ref().map(|(clerk, _)| clerk.clone()),
        contact,
        access: Some(CitizenAccessGranted {
            token_hash: token_hash(&token),
            expires: videoamt_core::domain::appointment::link_expiry(tenant, req.start),
        }),
    })
    .into();
    // An invitation is the clerk's act; an online booking the link holder's.
    let actor = invited_by.map_or_else(|| citizen_actor(&token), |(_, clerk)| clerk);
    state
        .system
        .bus()
        .execute(&command, &issued(state, tenant, actor, appointment.0))
        .await
        .map_err(Error::from)?;
    if let Some(counted) = counted {
        state.booking_caps.count(counted, since_epoch(state.now()));
    }
    let found = by_token(state, &token).await?;
    Ok(Booked {
        notice: if channel == BookingChannel::Online {
            format!(
                "Wir haben Ihnen eine E-Mail mit dem Link zu Ihrem Termin geschickt. Bitte \
                 bestätigen Sie den Termin über diesen Link innerhalb von {} Minuten; sonst \
                 wird er wieder freigegeben.",
                videoamt_core::domain::process::SLOT_HOLD.whole_minutes()
            )
        } else {
            "Die Bürgerin oder der Bürger erhält eine E-Mail mit dem Link zum Termin.".to_owned()
        },
        appointment: view(state, &found).await?,
    })
}

// --- by token ---

/// An appointment opened with its capability link.
#[derive(Debug, Clone)]
pub(crate) struct Found {
    pub id: AppointmentId,
    pub state: AppointmentState,
    pub tenant: Tenant,
    pub token: String,
}

/// Opens the appointment a link names: a forged, foreign or unknown token is one and the same
/// "invalid link"; a link past its expiry is "expired".
pub(crate) async fn by_token(state: &AppState, token: &str) -> Result<Found, Error> {
    let id = state
        .system
        .access
        .appointment_of(token)
        .ok_or(Error::InvalidLink)?;
    let (appointment, tenant_id) = match state.system.appointment(id).await {
        Ok(Some(found)) => found,
        Ok(None) => return Err(Error::InvalidLink),
        Err(e) => return Err(Error::unavailable(format!("appointment unavailable: {e}"))),
    };
    let tenant = tenant(state, tenant_id.as_str())
        .ok_or(Error::InvalidLink)?
        .clone();
    let access = appointment.access.as_ref().ok_or(Error::InvalidLink)?;
    if access.token_hash != token_hash(token) {
        return Err(Error::InvalidLink);
    }
    if state.now() >= access.expires {
        return Err(Error::ExpiredLink);
    }
    Ok(Found {
        id,
        state: appointment,
        tenant,
        token: token.to_owned(),
    })
}

#[derive(Debug, Clone, Copy, Serialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub(crate) enum AppointmentStatus {
    Booked,
    Cancelled,
    NoShow,
    Completed,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub(crate) struct AppointmentView {
    pub id: Uuid,
    pub tenant: String,
    pub tenant_name: String,
    pub department: String,
    pub department_name: String,
    pub services: Vec<ServiceView>,
    /// RFC 3339 with the municipality's local offset.
    pub start: String,
    pub end: String,
    pub status: AppointmentStatus,
    /// The citizen confirmed the booking through the link.
    pub confirmed: bool,
    pub documents_to_bring: Vec<String>,
    pub fee_total_cents: u64,
    /// The name as entered, or "[gelöscht]" after the retention period.
    pub contact_name: String,
    pub support: SupportView,
    pub min_upload_mbit: u32,
}

pub(crate) async fn view(state: &AppState, found: &Found) -> Result<AppointmentView, Error> {
    let booking = found.state.booking.as_ref().ok_or(Error::InvalidLink)?;
    let t = &found.tenant;
    let catalogue = tenant_view(t);
    // Name, fee and duration as booked: a change of the configuration since applies to new
    // bookings only.
    let terms = booking.terms(t);
    let services: Vec<ServiceView> = booking
        .services
        .iter()
        .filter_map(|id| {
            let mut view = catalogue
                .departments
                .iter()
                .flat_map(|d| &d.services)
                .find(|s| s.id == id.as_str())
                .cloned()?;
            if let Some(booked) = terms
                .as_ref()
                .and_then(|terms| terms.services.iter().find(|s| &s.service == id))
            {
                view.name = booked.name.clone();
                view.fee_cents = booked.fee.0;
                view.duration_minutes = booked.duration_minutes;
            }
            Some(view)
        })
        .collect();
    let documents = t.documents_to_bring(&booking.services);
    let name = reveal(state.system.keys.as_ref(), &booking.contact.name)
        .await
        .map_err(|e| Error::internal(format!("contact cannot be opened: {e}")))?;
    let local = |i: OffsetDateTime| rfc3339(t.zoned(i));
    Ok(AppointmentView {
        id: found.id.0,
        tenant: t.id.to_string(),
        tenant_name: t.name.clone(),
        department: booking.department.to_string(),
        department_name: terms.as_ref().map_or_else(
            || {
                t.department(&booking.department)
                    .map(|d| d.name.clone())
                    .unwrap_or_default()
            },
            |terms| terms.department_name.clone(),
        ),
        fee_total_cents: booking.fees(t).map_or(0, |(_, total)| total.0),
        services,
        start: local(booking.start),
        end: local(booking.end),
        status: match found.state.status {
            Status::Cancelled => AppointmentStatus::Cancelled,
            Status::NoShow => AppointmentStatus::NoShow,
            Status::Completed => AppointmentStatus::Completed,
            Status::New | Status::Booked => AppointmentStatus::Booked,
        },
        confirmed: found.state.confirmed,
        documents_to_bring: documents,
        contact_name: name.shown().to_owned(),
        support: catalogue.support,
        min_upload_mbit: t.min_upload_mbit,
    })
}

async fn act(state: &AppState, found: &Found, command: Command) -> Result<Found, Error> {
    state
        .system
        .bus()
        .execute(
            &command,
            &issued(
                state,
                &found.tenant,
                citizen_actor(&found.token),
                found.id.0,
            ),
        )
        .await
        .map_err(Error::from)?;
    by_token(state, &found.token).await
}

pub(crate) async fn confirm(state: &AppState, token: &str) -> Result<Found, Error> {
    let found = by_token(state, token).await?;
    act(
        state,
        &found,
        AppointmentCommand::ConfirmAppointment {
            appointment: found.id,
        }
        .into(),
    )
    .await
}

#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CancelRequest {
    /// Optional, at most 500 characters; deleted with the appointment's data.
    #[schema(max_length = 500)]
    #[serde(default)]
    pub reason: Option<String>,
}

pub(crate) async fn cancel(
    state: &AppState,
    token: &str,
    req: CancelRequest,
) -> Result<Found, Error> {
    let reason = req
        .reason
        .as_deref()
        .map(str::trim)
        .filter(|r| !r.is_empty());
    if reason
        .is_some_and(|r| r.chars().count() > 500 || r.chars().any(|c| c.is_control() && c != '\n'))
    {
        return Err(Error::invalid_fields(vec![field(
            "reason",
            "Der Grund darf höchstens 500 Zeichen lang sein.",
        )]));
    }
    let found = by_token(state, token).await?;
    act(
        state,
        &found,
        AppointmentCommand::CancelAppointment {
            appointment: found.id,
            by: CancelledBy::CitizenByLink,
            reason: reason.map(Personal::plain),
        }
        .into(),
    )
    .await
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RescheduleRequest {
    /// The new start (RFC 3339), one of the free starts for the same services.
    #[schema(value_type = String, format = DateTime)]
    #[serde(with = "time::serde::rfc3339")]
    pub start: OffsetDateTime,
}

pub(crate) async fn reschedule(
    state: &AppState,
    token: &str,
    req: RescheduleRequest,
) -> Result<Found, Error> {
    let found = by_token(state, token).await?;
    act(
        state,
        &found,
        AppointmentCommand::RescheduleAppointment {
            appointment: found.id,
            start: req.start,
        }
        .into(),
    )
    .await
}

/// The citizen accepts the privacy notice and enters the waiting room: the appointment's
/// session is opened if it is not yet, the citizen joins it and the acceptance is recorded.
/// Each step is idempotent, so entering again (another tab, a reload) changes nothing.
pub(crate) async fn enter_waiting_room(state: &AppState, token: &str) -> Result<Found, Error> {
    let found = by_token(state, token).await?;
    let session = ensure_session(state, &found).await?;
    act(
        state,
        &found,
        SessionCommand::Join {
            session,
            party: videoamt_core::domain::events::Party::Citizen,
        }
        .into(),
    )
    .await?;
    act(
        state,
        &found,
        SessionCommand::AcceptPrivacyNotice { session }.into(),
    )
    .await
}

/// The appointment's session, opened now if it is not yet. Two tabs opening it at once: the
/// second is refused as already open and takes the first one's session.
pub(crate) async fn ensure_session(
    state: &AppState,
    found: &Found,
) -> Result<videoamt_core::domain::SessionId, Error> {
    if let Some(s) = found.state.session {
        return Ok(s);
    }
    let session = videoamt_core::domain::SessionId(Uuid::now_v7());
    let opened = act(
        state,
        found,
        SessionCommand::OpenSession {
            appointment: found.id,
            session,
        }
        .into(),
    )
    .await;
    match opened {
        Ok(_) => Ok(session),
        Err(Error::Refused(videoamt_core::domain::DomainError::SessionAlreadyOpen)) => {
            by_token(state, &found.token)
                .await?
                .state
                .session
                .ok_or_else(|| Error::internal("session refused as open but not linked"))
        }
        Err(e) => Err(e),
    }
}
