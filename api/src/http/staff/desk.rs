//! What logged-in staff do: clerks their schedule, waiting room, appointment details,
//! invitations and cancellations; auditors search and replay; DPOs the retention report and a
//! subject's deletion evidence; statistics for everybody of a municipality. The JSON handlers
//! and the pages share these functions, and every rule of who may see what is here:
//!
//! - a clerk sees and changes only appointments of their own departments;
//! - auditors read histories (each read recorded first) and never write anything else;
//! - DPOs see ids, dates, counts and checks, never a personal value;
//! - nobody sees another municipality's data;
//! - everybody changes their own password, giving the old one; only admins manage accounts,
//!   and only those of their municipality.

use serde::{Deserialize, Serialize};
use time::{Date, OffsetDateTime};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;
use videoamt_adapters::bus::Issued;
use videoamt_core::domain::DomainError;
use videoamt_core::domain::account::{Login, StaffRole};
use videoamt_core::domain::appointment::AppointmentCommand;
use videoamt_core::domain::command::Command;
use videoamt_core::domain::events::CancelledBy;
use videoamt_core::domain::{AppointmentId, Personal, SubjectId};
use videoamt_core::keys::reveal;
use videoamt_core::tenant::{BookingChannel, ClerkId, DepartmentId, Tenant};
use videoamt_projections::schedule::{self, ScheduleEntry, VisitStatus};

use super::session::Staff;
use crate::app::accounts::{self as app_accounts, AccountInfo, IssuedLink};
use crate::http::AppState;
use crate::http::citizen::service::{
    self as citizen, Booked, BookingRequest, ContactInput, rfc3339,
};
use crate::http::error::{Error, FieldError};

/// Days one schedule query may cover.
pub(crate) const MAX_SCHEDULE_DAYS: u8 = 7;

fn unavailable(e: impl std::fmt::Display) -> Error {
    Error::unavailable(format!("read model unavailable: {e}"))
}

fn field(name: &str, message: &str) -> Error {
    Error::invalid_fields(vec![FieldError {
        field: name.to_owned(),
        message: message.to_owned(),
    }])
}

fn unknown_appointment() -> Error {
    Error::Refused(videoamt_core::domain::DomainError::UnknownAppointment)
}

fn department_name(tenant: &Tenant, d: &DepartmentId) -> String {
    tenant
        .department(d)
        .map_or_else(|| d.to_string(), |d| d.name.clone())
}

fn service_names(tenant: &Tenant, services: &[videoamt_core::tenant::ServiceId]) -> Vec<String> {
    services
        .iter()
        .map(|s| {
            tenant
                .service(s)
                .map_or_else(|| s.to_string(), |s| s.name.clone())
        })
        .collect()
}

/// The local date today in the tenant's zone.
pub(crate) fn today(state: &AppState, tenant: &Tenant) -> Date {
    tenant.local(state.now()).date()
}

// --- who am I ---

#[derive(Debug, Clone, Serialize, ToSchema)]
pub(crate) struct MeView {
    pub tenant: String,
    pub tenant_name: String,
    pub login: String,
    /// `clerk`, `auditor`, `dpo` or `admin`.
    #[schema(value_type = String)]
    pub role: StaffRole,
    pub role_label: String,
    /// A clerk's departments.
    pub departments: Vec<String>,
    /// Signed in through the municipality's directory: its password is changed there.
    pub directory: bool,
}

pub(crate) fn me(state: &AppState, staff: &Staff) -> Result<MeView, Error> {
    let tenant = staff.tenant(state)?;
    Ok(MeView {
        tenant: tenant.id.to_string(),
        tenant_name: tenant.name.clone(),
        login: staff.login.to_string(),
        role: staff.role,
        role_label: staff.role.label().to_owned(),
        departments: staff.departments.iter().map(|d| d.to_string()).collect(),
        directory: staff.directory,
    })
}

// --- schedule ---

#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ScheduleQuery {
    /// The first day (`YYYY-MM-DD`, local); today when missing.
    pub from: Option<String>,
    /// How many days (1 to 7; 1 when missing).
    #[param(minimum = 1, maximum = 7)]
    pub days: Option<u8>,
    /// Only this department (one of the clerk's own).
    pub department: Option<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub(crate) struct ScheduleView {
    pub tenant: String,
    pub days: Vec<DayView>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub(crate) struct DayView {
    /// Local date, `YYYY-MM-DD`.
    pub date: String,
    pub appointments: Vec<EntryView>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub(crate) struct EntryView {
    pub appointment: Uuid,
    pub department: String,
    pub department_name: String,
    /// RFC 3339 with the local offset.
    pub start: String,
    pub end: String,
    pub services: Vec<String>,
    /// `online` or `clerk_invitation`.
    #[schema(value_type = String)]
    pub channel: BookingChannel,
    /// `booked`, `in_session`, `completed`, `aborted`, `cancelled` or `no_show`.
    #[schema(value_type = String)]
    pub status: VisitStatus,
    pub status_label: String,
    pub invited_by: Option<String>,
}

/// An RFC 3339 instant as stored (UTC) in the municipality's offset; kept as it is when it
/// does not parse (an empty field).
pub(crate) fn local_time(tenant: &Tenant, raw: &str) -> String {
    OffsetDateTime::parse(raw, &time::format_description::well_known::Rfc3339)
        .map_or_else(|_| raw.to_owned(), |t| rfc3339(tenant.zoned(t)))
}

fn entry_view(tenant: &Tenant, e: &ScheduleEntry) -> EntryView {
    let local = |raw: &str| local_time(tenant, raw);
    EntryView {
        appointment: e.appointment.0,
        department: e.department.to_string(),
        department_name: department_name(tenant, &e.department),
        start: local(&e.start),
        end: local(&e.end),
        services: service_names(tenant, &e.services),
        channel: e.channel,
        status: e.status,
        status_label: e.status.german().to_owned(),
        invited_by: e.invited_by.as_ref().map(ToString::to_string),
    }
}

/// The clerk's departments, or the one asked for if it is theirs.
fn departments(staff: &Staff, only: Option<&str>) -> Result<Vec<DepartmentId>, Error> {
    staff.require(StaffRole::Clerk)?;
    match only.filter(|d| !d.is_empty()) {
        Some(d) => {
            let d = DepartmentId::from(d);
            if staff.may_work_on(&d) {
                Ok(vec![d])
            } else {
                Err(Error::Forbidden)
            }
        }
        None => Ok(staff.departments.iter().cloned().collect()),
    }
}

pub(crate) async fn schedule(
    state: &AppState,
    staff: &Staff,
    q: &ScheduleQuery,
) -> Result<ScheduleView, Error> {
    let departments = departments(staff, q.department.as_deref())?;
    let tenant = staff.tenant(state)?;
    let from = match q.from.as_deref() {
        Some(raw) => citizen::parse_date(raw)
            .ok_or_else(|| field("from", "Bitte ein Datum im Format JJJJ-MM-TT angeben."))?,
        None => today(state, tenant),
    };
    let days = q.days.unwrap_or(1);
    if days == 0 || days > MAX_SCHEDULE_DAYS {
        return Err(field(
            "days",
            &format!("Es können 1 bis {MAX_SCHEDULE_DAYS} Tage abgefragt werden."),
        ));
    }
    let plans = schedule::for_departments(
        state.reads.as_ref(),
        tenant,
        &departments,
        from,
        u16::from(days),
    )
    .await
    .map_err(unavailable)?;
    Ok(ScheduleView {
        tenant: tenant.id.to_string(),
        days: plans
            .iter()
            .map(|p| DayView {
                date: p.date.to_string(),
                appointments: p
                    .appointments
                    .iter()
                    .map(|e| entry_view(tenant, e))
                    .collect(),
            })
            .collect(),
    })
}

// --- waiting room ---

#[derive(Debug, Clone, Serialize, ToSchema)]
pub(crate) struct WaitingView {
    pub session: String,
    pub appointment: String,
    pub department: String,
    pub department_name: String,
    /// RFC 3339 with the local offset; when the citizen joined.
    pub waiting_since: String,
    pub privacy_notice_accepted: bool,
    pub connection_lost: bool,
    /// The last pre-call check passed; absent when none was made.
    pub pre_call_check_passed: Option<bool>,
    /// The upload that check measured, in kbit/s.
    pub upload_kbit_s: Option<u32>,
    /// Admitted before and back in the waiting room (sent back, or a lost connection).
    pub returned: bool,
}

pub(crate) async fn waiting_room(
    state: &AppState,
    staff: &Staff,
) -> Result<Vec<WaitingView>, Error> {
    let departments = departments(staff, None)?;
    let tenant = staff.tenant(state)?;
    let mut waiting = Vec::new();
    for d in &departments {
        let of = videoamt_projections::waiting_room::waiting(
            state.reads.as_ref(),
            tenant.id.as_str(),
            d.as_str(),
        )
        .await
        .map_err(unavailable)?;
        waiting.extend(of.into_iter().map(|w| (d, w)));
    }
    waiting.sort_by(|(_, a), (_, b)| a.waiting_since.cmp(&b.waiting_since));
    Ok(waiting
        .into_iter()
        .map(|(d, w)| WaitingView {
            waiting_since: local_time(tenant, &w.waiting_since),
            session: w.session,
            appointment: w.appointment,
            department: d.to_string(),
            department_name: department_name(tenant, d),
            privacy_notice_accepted: w.privacy_notice_accepted,
            connection_lost: w.connection_lost,
            pre_call_check_passed: w.pre_call_check.map(|(passed, _)| passed),
            upload_kbit_s: w.pre_call_check.map(|(_, kbit)| kbit),
            returned: w.returned,
        })
        .collect())
}

// --- one appointment ---

#[derive(Debug, Clone, Serialize, ToSchema)]
pub(crate) struct DetailView {
    pub appointment: Uuid,
    pub department: String,
    pub department_name: String,
    pub services: Vec<String>,
    pub start: String,
    pub end: String,
    #[schema(value_type = String)]
    pub channel: BookingChannel,
    pub status_label: String,
    pub confirmed: bool,
    pub invited_by: Option<String>,
    /// The citizen's name as entered, or "[gelöscht]" after the retention period.
    pub contact_name: String,
    pub documents_to_bring: Vec<String>,
    pub fee_total_cents: u64,
    /// Whether the citizen has accepted the privacy notice in the waiting room.
    pub privacy_notice_accepted: bool,
    pub identity: Option<String>,
}

/// An appointment of the clerk's departments: 404 when it does not exist in their
/// municipality, 403 when it belongs to another department.
async fn clerk_appointment(
    state: &AppState,
    staff: &Staff,
    id: AppointmentId,
) -> Result<
    (
        videoamt_core::domain::appointment::AppointmentState,
        videoamt_core::domain::events::AppointmentBooked,
    ),
    Error,
> {
    staff.require(StaffRole::Clerk)?;
    let (appointment, tenant) = state
        .system
        .appointment(id)
        .await
        .map_err(unavailable)?
        .ok_or_else(unknown_appointment)?;
    let booking = appointment
        .booking
        .clone()
        .filter(|_| tenant == staff.tenant)
        .ok_or_else(unknown_appointment)?;
    if !staff.may_work_on(&booking.department) {
        return Err(Error::Forbidden);
    }
    Ok((appointment, booking))
}

pub(crate) async fn detail(state: &AppState, staff: &Staff, id: Uuid) -> Result<DetailView, Error> {
    let id = AppointmentId(id);
    let (appointment, booking) = clerk_appointment(state, staff, id).await?;
    let tenant = staff.tenant(state)?;
    let detail = videoamt_projections::detail::detail(state.store.as_ref(), id)
        .await
        .map_err(unavailable)?;
    let name = reveal(state.system.keys.as_ref(), &booking.contact.name)
        .await
        .map_err(|e| Error::internal(format!("contact cannot be opened: {e}")))?;
    let status = detail
        .as_ref()
        .and_then(|d| d.status)
        .unwrap_or(match appointment.status {
            videoamt_core::domain::appointment::Status::Cancelled => VisitStatus::Cancelled,
            videoamt_core::domain::appointment::Status::NoShow => VisitStatus::NoShow,
            videoamt_core::domain::appointment::Status::Completed => VisitStatus::Completed,
            _ => VisitStatus::Booked,
        });
    let session = detail.as_ref().and_then(|d| d.session.as_ref());
    let documents = tenant.documents_to_bring(&booking.services);
    Ok(DetailView {
        appointment: id.0,
        department: booking.department.to_string(),
        department_name: department_name(tenant, &booking.department),
        services: booking.service_names(tenant),
        start: rfc3339(tenant.zoned(booking.start)),
        end: rfc3339(tenant.zoned(booking.end)),
        channel: booking.channel,
        status_label: status.german().to_owned(),
        confirmed: appointment.confirmed,
        invited_by: booking.invited_by.as_ref().map(ToString::to_string),
        contact_name: name.shown().to_owned(),
        documents_to_bring: documents,
        // As booked: a fee changed since applies to new bookings only.
        fee_total_cents: booking.fees(tenant).map_or(0, |(_, total)| total.0),
        privacy_notice_accepted: session.is_some_and(|s| s.privacy_notice_accepted),
        identity: session.and_then(|s| s.identity.clone()),
    })
}

#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ClerkCancelRequest {
    /// Why the appointment is called off (required, at most 500 characters); deleted with
    /// the appointment's data.
    pub reason: String,
}

/// A clerk calls an appointment off, with a reason; the citizen gets the cancellation mail.
pub(crate) async fn cancel(
    state: &AppState,
    staff: &Staff,
    id: Uuid,
    req: &ClerkCancelRequest,
) -> Result<DetailView, Error> {
    let reason = req.reason.trim();
    if reason.is_empty() {
        return Err(field(
            "reason",
            "Bitte geben Sie einen Grund für die Absage an.",
        ));
    }
    if reason.chars().count() > 500 || reason.chars().any(|c| c.is_control() && c != '\n') {
        return Err(field(
            "reason",
            "Der Grund darf höchstens 500 Zeichen lang sein.",
        ));
    }
    let appointment = AppointmentId(id);
    clerk_appointment(state, staff, appointment).await?;
    let tenant = staff.tenant(state)?;
    let command = AppointmentCommand::CancelAppointment {
        appointment,
        by: CancelledBy::Clerk,
        reason: Some(Personal::plain(reason)),
    }
    .into();
    execute(state, staff, tenant, &command, id).await?;
    detail(state, staff, id).await
}

async fn execute(
    state: &AppState,
    staff: &Staff,
    tenant: &Tenant,
    command: &Command,
    correlation: Uuid,
) -> Result<(), Error> {
    let issued = Issued {
        tenant: tenant.id.clone(),
        actor: staff.actor(),
        correlation_id: correlation,
        command_id: Uuid::now_v7(),
        now: state.now(),
    };
    state
        .system
        .bus()
        .execute(command, &issued)
        .await
        .map(|_| ())
        .map_err(Error::from)
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct InvitationRequest {
    /// One or more services of one of the clerk's departments.
    pub services: Vec<String>,
    /// The agreed start (RFC 3339), one of the free starts.
    #[schema(value_type = String, format = DateTime)]
    #[serde(with = "time::serde::rfc3339")]
    pub start: OffsetDateTime,
    pub contact: ContactInput,
}

/// The clerk books for a citizen after a call or mail (the clerk-invitation channel); the
/// citizen gets the confirmation mail with their link.
pub(crate) async fn invite(
    state: &AppState,
    staff: &Staff,
    req: InvitationRequest,
) -> Result<Booked, Error> {
    staff.require(StaffRole::Clerk)?;
    let tenant = staff.tenant(state)?;
    if let Some(department) = req
        .services
        .first()
        .and_then(|s| tenant.service(&s.as_str().into()))
        .map(|s| s.department.clone())
        && !staff.may_work_on(&department)
    {
        return Err(Error::Forbidden);
    }
    let booking = BookingRequest {
        tenant: tenant.id.to_string(),
        services: req.services,
        start: req.start,
        contact: req.contact,
        privacy_accepted: false,
    };
    citizen::book(
        state,
        booking,
        citizen::Booker::Clerk(ClerkId::from(staff.login.as_str()), staff.actor()),
    )
    .await
}

// --- audit ---

#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct AuditQuery {
    /// An appointment id (UUID).
    pub appointment: Option<String>,
    /// A local date (`YYYY-MM-DD`).
    pub date: Option<String>,
    /// A department of the municipality.
    pub department: Option<String>,
}

pub(crate) async fn audit_search(
    state: &AppState,
    staff: &Staff,
    q: &AuditQuery,
) -> Result<Vec<EntryView>, Error> {
    staff.require(StaffRole::Auditor)?;
    let tenant = staff.tenant(state)?;
    if let Some(raw) = q.appointment.as_deref().filter(|a| !a.trim().is_empty()) {
        let id = Uuid::parse_str(raw.trim())
            .map_err(|_| field("appointment", "Bitte eine Termin-ID (UUID) angeben."))?;
        let Some((appointment, tenant_id)) = state
            .system
            .appointment(AppointmentId(id))
            .await
            .map_err(unavailable)?
        else {
            return Ok(vec![]);
        };
        let Some(b) = appointment.booking.filter(|_| tenant_id == tenant.id) else {
            return Ok(vec![]);
        };
        let date = tenant.local(b.start).date();
        let plans =
            schedule::for_departments(state.reads.as_ref(), tenant, [&b.department], date, 1)
                .await
                .map_err(unavailable)?;
        return Ok(plans
            .iter()
            .flat_map(|p| &p.appointments)
            .filter(|e| e.appointment.0 == id)
            .map(|e| entry_view(tenant, e))
            .collect());
    }
    let date = match q.date.as_deref().filter(|d| !d.is_empty()) {
        Some(raw) => citizen::parse_date(raw)
            .ok_or_else(|| field("date", "Bitte ein Datum im Format JJJJ-MM-TT angeben."))?,
        None => today(state, tenant),
    };
    let departments: Vec<DepartmentId> = match q.department.as_deref().filter(|d| !d.is_empty()) {
        Some(d) => {
            let d = DepartmentId::from(d);
            if tenant.department(&d).is_none() {
                return Err(field("department", "Diesen Bereich gibt es hier nicht."));
            }
            vec![d]
        }
        None => tenant.departments.keys().cloned().collect(),
    };
    let plans = schedule::for_departments(state.reads.as_ref(), tenant, &departments, date, 1)
        .await
        .map_err(unavailable)?;
    let mut hits: Vec<EntryView> = plans
        .iter()
        .flat_map(|p| &p.appointments)
        .map(|e| entry_view(tenant, e))
        .collect();
    hits.sort_by(|a, b| a.start.cmp(&b.start));
    Ok(hits)
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub(crate) struct TimelineView {
    pub appointment: Uuid,
    /// The position the state is shown as of.
    pub as_of: u64,
    /// The log's last position when it was read.
    pub head: u64,
    /// The positions of this appointment's events, for the time-travel slider.
    pub positions: Vec<u64>,
    pub entries: Vec<TimelineEntry>,
    /// The state as of `as_of`, in German, without personal values.
    pub state: Vec<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub(crate) struct TimelineEntry {
    pub position: u64,
    pub stream: String,
    pub event_type: String,
    pub actor: String,
    /// RFC 3339 with the local offset.
    pub recorded_at: String,
    pub summary: String,
}

/// A timeline as the auditor reads it, times in the municipality's zone.
fn timeline(tenant: &Tenant, entries: &[videoamt_projections::audit::Entry]) -> Vec<TimelineEntry> {
    entries
        .iter()
        .map(|e| TimelineEntry {
            position: e.position,
            stream: e.stream.clone(),
            event_type: e.event_type.clone(),
            actor: e.actor.clone(),
            recorded_at: local_time(tenant, &e.recorded_at),
            summary: e.summary.clone(),
        })
        .collect()
}

/// An auditor reads an appointment's record, as of a position if given. The read is recorded
/// (`AuditRecordViewed`) before anything is shown; a refused read writes nothing.
pub(crate) async fn audit_view(
    state: &AppState,
    staff: &Staff,
    id: Uuid,
    at: Option<u64>,
) -> Result<TimelineView, Error> {
    staff.require(StaffRole::Auditor)?;
    let appointment = AppointmentId(id);
    match state.system.appointment(appointment).await {
        Ok(Some((_, tenant))) if tenant == staff.tenant => {}
        Ok(_) => return Err(unknown_appointment()),
        Err(e) => return Err(unavailable(e)),
    }
    let tenant = staff.tenant(state)?;
    let desk = crate::app::audit::AuditDesk::new(state.system.bus(), state.store.clone());
    let replay = desk
        .view(appointment, at, &staff.actor())
        .await
        .map_err(|e| match e {
            crate::app::audit::AuditError::Replay(
                videoamt_projections::audit::ReplayError::BeyondEnd { .. },
            ) => field("at", "Diese Position liegt hinter dem Ende des Protokolls."),
            crate::app::audit::AuditError::Replay(
                videoamt_projections::audit::ReplayError::UnknownAppointment(_),
            ) => unknown_appointment(),
            crate::app::audit::AuditError::Bus(e) => Error::from(e),
            other => unavailable(other),
        })?;
    // The whole timeline, for the slider's marks, is the replay at the head.
    let positions = if replay.as_of == replay.head {
        replay.timeline.iter().map(|e| e.position).collect()
    } else {
        videoamt_projections::audit::replay(
            state.store.as_ref(),
            state.store.as_ref(),
            appointment,
            Some(replay.head),
            None,
        )
        .await
        .map_err(unavailable)?
        .timeline
        .iter()
        .map(|e| e.position)
        .collect()
    };
    Ok(TimelineView {
        appointment: id,
        as_of: replay.as_of,
        head: replay.head,
        positions,
        entries: timeline(tenant, &replay.timeline),
        state: videoamt_projections::audit::describe(&replay.record, Some(tenant)),
    })
}

// --- retention ---

#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ReportQuery {
    /// Only subjects in this state (German, as shown: `aktiv`, `fällig`, `gelöscht`, …).
    pub state: Option<String>,
    /// `json` (default) or `csv`.
    pub format: Option<String>,
    /// At most this many rows (1 to 500; 100 when missing). The CSV export holds them all.
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
    /// Skip this many of the matching rows first (0 when missing); `next_offset` of the
    /// previous page.
    #[param(minimum = 0, maximum = 1000000)]
    pub offset: Option<u32>,
}

/// Rows of the report per page when the query names no limit, and the most a page holds.
pub(crate) const REPORT_PAGE: u32 = 100;
pub(crate) const REPORT_PAGE_MAX: u32 = 500;
/// The furthest a page may start, as the schema says.
const REPORT_OFFSET_MAX: u32 = 1_000_000;

#[derive(Debug, Clone, Serialize, ToSchema)]
pub(crate) struct ReportView {
    pub tenant: String,
    /// Subjects per state (German), over all of the municipality's subjects.
    pub counts: Vec<StateCount>,
    /// The page of the rows matching the filter: `offset` on, at most `limit` of them.
    pub rows: Vec<crate::app::retention::ReportRow>,
    /// How many rows match the filter, over all pages.
    pub total: u64,
    /// Where this page starts among the matching rows.
    pub offset: u64,
    /// The `offset` of the next page; `null` on the last.
    pub next_offset: Option<u64>,
}

impl ReportView {
    /// This view cut to the page `q` asks for (the whole report holds every matching row).
    pub(crate) fn page(mut self, q: &ReportQuery) -> Result<Self, Error> {
        let limit = q.limit.unwrap_or(REPORT_PAGE);
        if !(1..=REPORT_PAGE_MAX).contains(&limit) {
            return Err(field(
                "limit",
                "Bitte zwischen 1 und 500 Zeilen je Seite angeben.",
            ));
        }
        let offset = q.offset.unwrap_or(0);
        if offset > REPORT_OFFSET_MAX {
            return Err(field(
                "offset",
                "Bitte einen Beginn zwischen 0 und 1000000 angeben.",
            ));
        }
        let offset = offset as usize;
        let end = offset.saturating_add(limit as usize);
        let rows = std::mem::take(&mut self.rows);
        self.next_offset = (end < rows.len()).then_some(end as u64);
        self.offset = offset as u64;
        self.rows = rows.into_iter().skip(offset).take(limit as usize).collect();
        Ok(self)
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub(crate) struct StateCount {
    pub state: String,
    pub subjects: u64,
}

pub(crate) async fn retention_report(
    state: &AppState,
    staff: &Staff,
    q: &ReportQuery,
) -> Result<ReportView, Error> {
    staff.require(StaffRole::Dpo)?;
    let tenant = staff.tenant(state)?;
    let report =
        crate::app::retention::report(&state.system, Some(tenant.id.as_str()), state.now())
            .await
            .map_err(unavailable)?;
    let filter = q.state.as_deref().filter(|s| !s.is_empty());
    let rows: Vec<_> = report
        .rows
        .into_iter()
        .filter(|r| filter.is_none_or(|f| r.state == f))
        .collect();
    Ok(ReportView {
        tenant: tenant.id.to_string(),
        counts: report
            .counts
            .into_iter()
            .map(|(state, subjects)| StateCount {
                state: state.to_owned(),
                subjects,
            })
            .collect(),
        total: rows.len() as u64,
        offset: 0,
        next_offset: None,
        rows,
    })
}

/// One subject's deletion evidence: dates, what the purge removed, what the verifier checked.
pub(crate) async fn subject_evidence(
    state: &AppState,
    staff: &Staff,
    id: Uuid,
) -> Result<crate::app::retention::ReportRow, Error> {
    staff.require(StaffRole::Dpo)?;
    let tenant = staff.tenant(state)?;
    let subject = SubjectId(id).to_string();
    crate::app::retention::report(&state.system, Some(tenant.id.as_str()), state.now())
        .await
        .map_err(unavailable)?
        .rows
        .into_iter()
        .find(|r| r.subject == subject)
        .ok_or_else(|| Error::not_found("Diese betroffene Person gibt es hier nicht."))
}

// --- statistics ---

#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct StatisticsQuery {
    /// Only this department.
    pub department: Option<String>,
    /// `json` (default) or `csv`.
    pub format: Option<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub(crate) struct StatisticsRow {
    pub department: String,
    pub department_name: String,
    /// ISO week, `YYYY-Www`.
    pub week: String,
    pub sessions: u64,
    /// Of the sessions: the concern done, and technically aborted.
    pub completed: u64,
    pub aborted: u64,
    pub no_shows: u64,
    pub duration_median_minutes: Option<f64>,
    pub duration_p90_minutes: Option<f64>,
    pub lead_median_hours: Option<f64>,
    pub identity_check_share: Option<f64>,
    pub signature_share: Option<f64>,
    pub payment_share: Option<f64>,
    /// How many gave 1, 2, 3, 4 and 5 stars.
    pub feedback: Vec<u64>,
}

/// The pilot statistics of the municipality; a clerk's only of their departments.
pub(crate) async fn statistics(
    state: &AppState,
    staff: &Staff,
    q: &StatisticsQuery,
) -> Result<Vec<videoamt_projections::statistics::WeekRow>, Error> {
    let tenant = staff.tenant(state)?;
    let only = q.department.as_deref().filter(|d| !d.is_empty());
    if let Some(d) = only {
        let d = DepartmentId::from(d);
        if tenant.department(&d).is_none() {
            return Err(field("department", "Diesen Bereich gibt es hier nicht."));
        }
        if staff.role == StaffRole::Clerk && !staff.may_work_on(&d) {
            return Err(Error::Forbidden);
        }
    }
    let rows =
        videoamt_projections::statistics::rows(state.store.as_ref(), Some(tenant.id.as_str()))
            .await
            .map_err(unavailable)?;
    Ok(rows
        .into_iter()
        .filter(|r| only.is_none_or(|d| r.department == d))
        .filter(|r| {
            staff.role != StaffRole::Clerk
                || staff.may_work_on(&DepartmentId::from(r.department.as_str()))
        })
        .collect())
}

pub(crate) fn statistics_row(
    tenant: &Tenant,
    r: &videoamt_projections::statistics::WeekRow,
) -> StatisticsRow {
    StatisticsRow {
        department: r.department.clone(),
        department_name: department_name(tenant, &DepartmentId::from(r.department.as_str())),
        week: r.week.clone(),
        sessions: r.sessions,
        completed: r.completed,
        aborted: r.aborted,
        no_shows: r.no_shows,
        duration_median_minutes: r.duration_median_minutes,
        duration_p90_minutes: r.duration_p90_minutes,
        lead_median_hours: r.lead_median_hours,
        identity_check_share: r.identity_check_share,
        signature_share: r.signature_share,
        payment_share: r.payment_share,
        feedback: r.feedback.to_vec(),
    }
}

// --- accounts ---

/// The rules every new password follows, as shown beside the field.
pub(crate) fn password_rules() -> String {
    format!(
        "Mindestens {} und höchstens 256 Zeichen; Leerzeichen zählen mit. Ein langer Satz, den \
         Sie sich merken können, ist ein gutes Passwort.",
        videoamt_adapters::passwords::MIN_LENGTH
    )
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PasswordChangeRequest {
    #[schema(min_length = 1, max_length = 1024)]
    pub old_password: String,
    /// At least 12 and at most 256 characters.
    #[schema(min_length = 12, max_length = 256)]
    pub new_password: String,
}

/// A new password's rule broken, named beside `field`.
fn password_field(e: Error, field: &str) -> Error {
    match e {
        Error::InvalidFields(mut errors) => {
            for e in &mut errors {
                if e.field == "password" {
                    field.clone_into(&mut e.field);
                }
            }
            Error::InvalidFields(errors)
        }
        Error::Refused(videoamt_core::domain::DomainError::WrongPassword) => {
            Error::InvalidFields(vec![FieldError {
                field: "old_password".to_owned(),
                message: videoamt_core::domain::DomainError::WrongPassword.to_string(),
            }])
        }
        other => other,
    }
}

/// The staff member changes their own password with the old one. Their other sessions end;
/// the one of `cookie` goes on.
pub(crate) async fn change_password(
    state: &AppState,
    staff: &Staff,
    cookie: &str,
    request: &PasswordChangeRequest,
) -> Result<(), Error> {
    let tenant = staff.tenant(state)?;
    let epoch = crate::app::accounts::change_password(
        &state.system,
        tenant,
        &staff.actor(),
        &staff.login,
        &request.old_password,
        &request.new_password,
        state.now(),
    )
    .await
    .map_err(|e| password_field(e.into(), "new_password"))?;
    crate::http::staff::session::carry_over(state, cookie, epoch).await
}

/// An account as the admin sees it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(crate) struct AccountView {
    pub login: String,
    /// `clerk`, `auditor`, `dpo` or `admin`.
    #[schema(value_type = String)]
    pub role: StaffRole,
    pub role_label: String,
    /// A clerk's departments.
    pub departments: Vec<String>,
    pub department_names: Vec<String>,
    /// A deactivated account cannot log in.
    pub active: bool,
    /// RFC 3339: locked until then (only after an upgrade, by a lock of the old rules).
    pub locked_until: Option<String>,
    /// Failed logins since the last success or unlock: five from one address throttle that
    /// address for 15 minutes, which an unlock lifts.
    pub failed_logins: u32,
    /// RFC 3339: the password waits for the one-time link that expires then.
    pub password_link_expires: Option<String>,
    /// Signs in through the municipality's directory, which keeps its password and decides
    /// its role and departments.
    pub directory: bool,
}

/// A one-time link to set a password, for the admin to pass on; shown once.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(crate) struct PasswordLinkView {
    pub login: String,
    /// Opens the page where the account holder sets the password; used once.
    pub link: String,
    /// RFC 3339, 72 hours after it was issued.
    pub expires: String,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewAccountRequest {
    /// 2 to 48 characters of `a-z`, `0-9`, `.`, `-`, `_`, starting with a letter.
    #[schema(min_length = 2, max_length = 48, pattern = "^[a-z][a-z0-9._-]*$")]
    pub login: String,
    /// `clerk`, `auditor`, `dpo` or `admin`.
    #[schema(pattern = "^(clerk|auditor|dpo|admin)$")]
    pub role: String,
    /// A clerk's departments (at least one); none for the other roles.
    #[serde(default)]
    pub departments: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RoleRequest {
    /// `clerk`, `auditor`, `dpo` or `admin`.
    #[schema(pattern = "^(clerk|auditor|dpo|admin)$")]
    pub role: String,
    /// A clerk's departments (at least one); none for the other roles.
    #[serde(default)]
    pub departments: Vec<String>,
}

/// The admin's municipality: only admins manage accounts, and only their own municipality's.
fn admin_of<'a>(state: &'a AppState, staff: &Staff) -> Result<&'a Tenant, Error> {
    staff.require(StaffRole::Admin)?;
    staff.tenant(state)
}

/// A login in a path: one that cannot exist is an unknown account.
fn account_login(raw: &str) -> Result<Login, Error> {
    Login::parse(raw).ok_or(Error::Refused(DomainError::UnknownAccount))
}

fn role_of(raw: &str) -> Result<StaffRole, Error> {
    StaffRole::parse(raw).ok_or_else(|| {
        field(
            "role",
            "Diese Rolle gibt es nicht; möglich sind Sachbearbeitung (clerk), Prüfung (auditor), \
             Datenschutz (dpo) und Verwaltung (admin).",
        )
    })
}

fn departments_of(raw: &[String]) -> Vec<DepartmentId> {
    let given: Vec<String> = raw.iter().filter(|d| !d.is_empty()).cloned().collect();
    videoamt_core::domain::account::departments(&given)
}

fn account_view(tenant: &Tenant, info: &AccountInfo) -> AccountView {
    let local = |t: OffsetDateTime| rfc3339(tenant.zoned(t));
    AccountView {
        login: info.login.to_string(),
        role: info.role,
        role_label: info.role.label().to_owned(),
        departments: info.departments.iter().map(ToString::to_string).collect(),
        department_names: info
            .departments
            .iter()
            .map(|d| department_name(tenant, d))
            .collect(),
        active: info.active,
        locked_until: info.locked_until.map(local),
        failed_logins: info.failed_logins,
        password_link_expires: info.link_expires.map(local),
        directory: info.directory,
    }
}

fn link_view(
    state: &AppState,
    tenant: &Tenant,
    login: &Login,
    link: &IssuedLink,
) -> PasswordLinkView {
    PasswordLinkView {
        login: login.to_string(),
        link: link.url(&state.public_url),
        expires: rfc3339(tenant.zoned(link.expires)),
    }
}

/// The municipality's accounts, by login.
pub(crate) async fn accounts(state: &AppState, staff: &Staff) -> Result<Vec<AccountView>, Error> {
    let tenant = admin_of(state, staff)?;
    let infos = app_accounts::list(&state.system, &tenant.id, state.now()).await?;
    Ok(infos.iter().map(|i| account_view(tenant, i)).collect())
}

/// The municipality's accounts as the auditor sees them: who there is, to open the history of.
pub(crate) async fn audited_accounts(
    state: &AppState,
    staff: &Staff,
) -> Result<Vec<AccountView>, Error> {
    staff.require(StaffRole::Auditor)?;
    let tenant = staff.tenant(state)?;
    let infos = app_accounts::list(&state.system, &tenant.id, state.now()).await?;
    Ok(infos.iter().map(|i| account_view(tenant, i)).collect())
}

/// An account's history for the auditor, recorded before it is returned; the auditor's own
/// municipality only.
pub(crate) async fn account_history(
    state: &AppState,
    staff: &Staff,
    login: &str,
) -> Result<(AccountView, Vec<TimelineEntry>), Error> {
    staff.require(StaffRole::Auditor)?;
    let tenant = staff.tenant(state)?;
    let login = account_login(login)?;
    let entries =
        app_accounts::history(&state.system, tenant, &staff.actor(), &login, state.now()).await?;
    let info = app_accounts::info(&state.system, &tenant.id, &login, state.now())
        .await?
        .ok_or(Error::Refused(DomainError::UnknownAccount))?;
    Ok((account_view(tenant, &info), timeline(tenant, &entries)))
}

/// One account of the municipality.
pub(crate) async fn account(
    state: &AppState,
    staff: &Staff,
    login: &str,
) -> Result<AccountView, Error> {
    let tenant = admin_of(state, staff)?;
    let login = account_login(login)?;
    let info = app_accounts::info(&state.system, &tenant.id, &login, state.now())
        .await?
        .ok_or(Error::Refused(DomainError::UnknownAccount))?;
    Ok(account_view(tenant, &info))
}

/// The admin creates an account; its holder sets the password through the link returned.
pub(crate) async fn create_account(
    state: &AppState,
    staff: &Staff,
    request: &NewAccountRequest,
) -> Result<PasswordLinkView, Error> {
    let tenant = admin_of(state, staff)?;
    let login = Login::parse(request.login.trim()).ok_or_else(|| {
        field(
            "login",
            "Der Anmeldename braucht 2 bis 48 Zeichen aus a–z, 0–9, Punkt, Bindestrich und \
             Unterstrich und beginnt mit einem Buchstaben.",
        )
    })?;
    let role = role_of(&request.role)?;
    let link = app_accounts::create(
        &state.system,
        tenant,
        &staff.actor(),
        login.clone(),
        role,
        departments_of(&request.departments),
        state.now(),
    )
    .await?;
    Ok(link_view(state, tenant, &login, &link))
}

/// The admin resets the password: the old one stops working, the link returned sets a new one.
pub(crate) async fn reset_password(
    state: &AppState,
    staff: &Staff,
    login: &str,
) -> Result<PasswordLinkView, Error> {
    let tenant = admin_of(state, staff)?;
    let login = account_login(login)?;
    let link = app_accounts::reset(
        &state.system,
        tenant,
        &staff.actor(),
        login.clone(),
        state.now(),
    )
    .await?;
    Ok(link_view(state, tenant, &login, &link))
}

/// What an admin does to one account, besides creating it and resetting its password.
#[derive(Debug, Clone)]
pub(crate) enum AccountChange {
    Deactivate,
    Reactivate,
    Unlock,
    Role(RoleRequest),
}

/// The admin changes an account; the account as it is afterwards.
pub(crate) async fn change_account(
    state: &AppState,
    staff: &Staff,
    login: &str,
    change: &AccountChange,
) -> Result<AccountView, Error> {
    let tenant = admin_of(state, staff)?;
    let login = account_login(login)?;
    let (system, actor, now) = (&state.system, staff.actor(), state.now());
    match change {
        AccountChange::Deactivate => {
            app_accounts::deactivate(system, tenant, &actor, login.clone(), now).await?;
        }
        AccountChange::Reactivate => {
            app_accounts::reactivate(system, tenant, &actor, login.clone(), now).await?;
        }
        AccountChange::Unlock => {
            app_accounts::unlock(system, tenant, &actor, login.clone(), now).await?;
        }
        AccountChange::Role(r) => {
            let role = role_of(&r.role)?;
            let departments = departments_of(&r.departments);
            app_accounts::change_role(
                system,
                tenant,
                &actor,
                login.clone(),
                role,
                departments,
                now,
            )
            .await?;
        }
    }
    account(state, staff, login.as_str()).await
}

/// The municipality and account a one-time link sets the password of, while it can.
pub(crate) async fn password_link<'s>(
    state: &'s AppState,
    token: &str,
) -> Result<(&'s Tenant, Login), Error> {
    let invalid = || Error::Refused(DomainError::PasswordLinkInvalid);
    let (tenant_id, login) =
        videoamt_adapters::passwords::link_account(token).ok_or_else(invalid)?;
    let tenant = state
        .tenants
        .iter()
        .find(|t| t.id == tenant_id)
        .ok_or_else(invalid)?;
    let account = app_accounts::state(&state.system, &tenant.id, &login).await?;
    let digest = videoamt_adapters::access::token_hash(token);
    let link = account
        .account
        .as_ref()
        .filter(|a| a.active)
        .and_then(|a| a.link.as_ref())
        .filter(|l| l.digest == digest)
        .ok_or_else(invalid)?;
    if state.now() >= link.expires {
        return Err(Error::Refused(DomainError::PasswordLinkExpired));
    }
    Ok((tenant, login))
}

/// The account holder sets a password through the one-time link; the link is used up.
pub(crate) async fn set_password(
    state: &AppState,
    token: &str,
    password: &str,
) -> Result<(), Error> {
    let (tenant, login) = password_link(state, token).await?;
    app_accounts::set_by_link(&state.system, tenant, login, token, password, state.now())
        .await
        .map_err(|e| password_field(e.into(), "new_password"))
}
