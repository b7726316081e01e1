//! `appointment-{id}`: booking, confirmation, rescheduling, cancellation, reminders, no-shows,
//! the link to the session and completion.
//!
//! Invariants: a finished appointment (completed, no-show) cannot be cancelled or moved;
//! rescheduling goes only to a free slot (checked by the calendar).

use time::{Duration, OffsetDateTime, PrimitiveDateTime};

use super::calendar::{self, Placement, Slots};
use super::events::{
    AppointmentBooked, AppointmentCancelled, AppointmentConfirmed, AppointmentRescheduled,
    BookingTerms, CancelledBy, CitizenAccessGranted, Contact, DeliveryFailed, MailKind, MailSent,
    NoShowRecorded, ReminderSent, SubjectKeyIssued,
};
use super::{
    AppointmentId, Context, Decision, DomainError, DomainEvent, Histories, Personal, SessionId,
    SubjectId, one,
};
use crate::event::StreamId;
use crate::tenant::{BookingChannel, ClerkId, Department, DepartmentId, ServiceId, Tenant};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Status {
    #[default]
    New,
    Booked,
    Cancelled,
    NoShow,
    Completed,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AppointmentState {
    pub status: Status,
    pub booking: Option<AppointmentBooked>,
    pub confirmed: bool,
    pub reminder_sent: bool,
    pub session: Option<SessionId>,
    /// The citizen's capability link (its hash and expiry), when one was issued.
    pub access: Option<CitizenAccessGranted>,
    /// Message ids of the mails recorded as sent or failed, so recording is idempotent.
    pub mails: std::collections::BTreeSet<String>,
}

impl AppointmentState {
    /// The appointment's state as its loaded stream folds.
    pub fn of(h: &Histories, appointment: AppointmentId) -> Self {
        h.fold(&appointment.stream(), Self::evolve)
    }

    pub fn evolve(mut self, event: &DomainEvent) -> Self {
        match event {
            DomainEvent::AppointmentBooked(e) => {
                self.status = Status::Booked;
                self.booking = Some(e.clone());
            }
            DomainEvent::AppointmentConfirmed(_) => self.confirmed = true,
            DomainEvent::AppointmentRescheduled(e) => {
                if let Some(b) = &mut self.booking {
                    b.start = e.start;
                    b.end = e.end;
                }
                self.reminder_sent = false;
            }
            DomainEvent::AppointmentCancelled(_) => self.status = Status::Cancelled,
            DomainEvent::ReminderSent(_) => self.reminder_sent = true,
            DomainEvent::CitizenAccessGranted(e) => self.access = Some(e.clone()),
            DomainEvent::MailSent(e) => {
                self.mails.insert(e.message_id.clone());
            }
            DomainEvent::DeliveryFailed(e) => {
                self.mails.insert(e.message_id.clone());
            }
            DomainEvent::NoShowRecorded(_) => self.status = Status::NoShow,
            DomainEvent::SessionLinked(e) => self.session = Some(e.session),
            DomainEvent::AppointmentCompleted(_) => self.status = Status::Completed,
            _ => {}
        }
        self
    }

    /// The booking of an appointment that is still open (booked, not cancelled or finished).
    pub fn open_booking(&self) -> Result<&AppointmentBooked, DomainError> {
        match (self.status, &self.booking) {
            (Status::Booked, Some(b)) => Ok(b),
            (Status::New, _) | (_, None) => Err(DomainError::UnknownAppointment),
            (Status::Cancelled, _) => Err(DomainError::AlreadyCancelled),
            (Status::NoShow | Status::Completed, _) => Err(DomainError::AppointmentFinished),
        }
    }

    /// Where the booked appointment lies on its department's calendar, as its start and end
    /// say; `None` without a booking or when the department is no longer configured.
    pub fn placement<'t>(&self, tenant: &'t Tenant) -> Option<(&'t Department, Placement)> {
        let b = self.booking.as_ref()?;
        let dept = tenant.department(&b.department)?;
        let (date, first_minute) = local_slot(tenant, b.start).ok()?;
        let minutes = u64::try_from((b.end - b.start).whole_minutes()).ok()?;
        let slots = u16::try_from(minutes.div_ceil(u64::from(dept.slot_minutes))).ok()?;
        Some((
            dept,
            Placement {
                date,
                first_minute,
                slots,
            },
        ))
    }

    /// The calendar streams the appointment's slots are in.
    pub fn calendar_streams(&self, tenant: &Tenant) -> Vec<StreamId> {
        self.placement(tenant)
            .map(|(dept, p)| p.streams(tenant, dept))
            .unwrap_or_default()
    }

    /// The calendar streams of the slots the booked concerns would take from `start` on.
    pub fn calendar_streams_at(&self, tenant: &Tenant, start: OffsetDateTime) -> Vec<StreamId> {
        self.booking
            .as_ref()
            .and_then(|b| placement_at(tenant, &b.department, &b.services, start).ok())
            .map(|(dept, p)| p.streams(tenant, dept))
            .unwrap_or_default()
    }
}

/// A booking request, online by the citizen or by a clerk's invitation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BookAppointment {
    pub appointment: AppointmentId,
    pub subject: SubjectId,
    pub department: DepartmentId,
    pub services: Vec<ServiceId>,
    pub start: OffsetDateTime,
    pub channel: BookingChannel,
    pub invited_by: Option<ClerkId>,
    pub contact: Contact,
    /// The citizen's capability link, issued with the booking so the confirmation mail can
    /// carry it; `None` for bookings without one (bulk generators, imports).
    pub access: Option<CitizenAccessGranted>,
}

impl BookAppointment {
    /// The calendar streams of the slots the booking wants; none if its concerns or start are
    /// invalid, which the decision refuses.
    pub fn calendar_streams(&self, tenant: &Tenant) -> Vec<StreamId> {
        placement_at(tenant, &self.department, &self.services, self.start)
            .map(|(dept, p)| p.streams(tenant, dept))
            .unwrap_or_default()
    }
}

/// The commands of an appointment's stream and its calendar slots.
// Commands are made and decided one at a time, never stored in bulk; boxing the booking
// would only add an allocation per booking.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppointmentCommand {
    BookAppointment(BookAppointment),
    ConfirmAppointment {
        appointment: AppointmentId,
    },
    RescheduleAppointment {
        appointment: AppointmentId,
        start: OffsetDateTime,
    },
    CancelAppointment {
        appointment: AppointmentId,
        by: CancelledBy,
        reason: Option<Personal>,
    },
    /// Fired by the reminder timer 24 h before the start.
    SendReminder {
        appointment: AppointmentId,
    },
    /// From the outbox worker after a mail of the appointment was handed over.
    RecordMailSent {
        appointment: AppointmentId,
        kind: MailKind,
        message_id: String,
    },
    /// From the outbox worker after the last failed try.
    RecordDeliveryFailed {
        appointment: AppointmentId,
        kind: MailKind,
        message_id: String,
        attempts: u32,
        reason: String,
    },
    /// Fired by the no-show timer 15 minutes after the start.
    CheckNoShow {
        appointment: AppointmentId,
    },
    /// Fired by the slot-hold timer: an appointment still unconfirmed gives its slots back.
    ExpireSlotHold {
        appointment: AppointmentId,
    },
}

/// The outcome of a mail of a booked appointment, once per message id: the worker may send
/// and record a mail again after a crash.
fn record_mail(
    h: &Histories,
    appointment: AppointmentId,
    message_id: &str,
    outcome: impl Into<DomainEvent>,
) -> Result<Decision, DomainError> {
    let state = AppointmentState::of(h, appointment);
    if state.booking.is_none() {
        return Err(DomainError::UnknownAppointment);
    }
    if state.mails.contains(message_id) {
        return Ok(vec![]);
    }
    Ok(one(appointment.stream(), outcome))
}

impl AppointmentCommand {
    /// The streams this command needs, given what is loaded so far: a cancellation knows only
    /// the appointment id and asks for its calendar slots once the appointment is loaded.
    pub fn streams(&self, loaded: &Histories, ctx: &Context<'_>) -> Vec<StreamId> {
        use AppointmentCommand::*;
        let tenant = ctx.tenant;
        let with_calendar = |appointment: AppointmentId| {
            let state = AppointmentState::of(loaded, appointment);
            let mut streams = vec![appointment.stream()];
            streams.extend(state.calendar_streams(tenant));
            streams
        };
        match self {
            BookAppointment(b) => {
                let mut streams = b.calendar_streams(tenant);
                streams.extend([b.appointment.stream(), b.subject.stream()]);
                streams
            }
            ConfirmAppointment { appointment }
            | SendReminder { appointment }
            | CheckNoShow { appointment }
            | RecordMailSent { appointment, .. }
            | RecordDeliveryFailed { appointment, .. } => {
                vec![appointment.stream()]
            }
            CancelAppointment { appointment, .. } | ExpireSlotHold { appointment } => {
                with_calendar(*appointment)
            }
            RescheduleAppointment { appointment, start } => {
                let mut streams = with_calendar(*appointment);
                streams.extend(
                    AppointmentState::of(loaded, *appointment).calendar_streams_at(tenant, *start),
                );
                streams
            }
        }
    }

    pub fn decide(&self, h: &Histories, ctx: &Context<'_>) -> Result<Decision, DomainError> {
        use AppointmentCommand::*;
        match self {
            BookAppointment(b) => book(&AppointmentState::of(h, b.appointment), h, b, ctx),
            ConfirmAppointment { appointment } => {
                let state = AppointmentState::of(h, *appointment);
                state.open_booking()?;
                if state.confirmed {
                    return Ok(vec![]);
                }
                Ok(one(appointment.stream(), AppointmentConfirmed {}))
            }
            RescheduleAppointment { appointment, start } => {
                reschedule(&AppointmentState::of(h, *appointment), h, *start, ctx)
            }
            CancelAppointment {
                appointment,
                by,
                reason,
            } => cancel(
                &AppointmentState::of(h, *appointment),
                h,
                *by,
                reason.clone(),
                ctx,
            ),
            RecordMailSent {
                appointment,
                kind,
                message_id,
            } => record_mail(
                h,
                *appointment,
                message_id,
                MailSent {
                    kind: *kind,
                    message_id: message_id.clone(),
                },
            ),
            RecordDeliveryFailed {
                appointment,
                kind,
                message_id,
                attempts,
                reason,
            } => record_mail(
                h,
                *appointment,
                message_id,
                DeliveryFailed {
                    kind: *kind,
                    message_id: message_id.clone(),
                    attempts: *attempts,
                    reason: reason.clone(),
                },
            ),
            SendReminder { appointment } => {
                let state = AppointmentState::of(h, *appointment);
                match state.open_booking() {
                    Ok(_) if !state.reminder_sent => Ok(one(appointment.stream(), ReminderSent {})),
                    _ => Ok(vec![]),
                }
            }
            CheckNoShow { appointment } => {
                let state = AppointmentState::of(h, *appointment);
                let Ok(booking) = state.open_booking() else {
                    return Ok(vec![]);
                };
                if state.session.is_some() {
                    return Ok(vec![]);
                }
                if ctx.now < booking.start + time::Duration::minutes(15) {
                    return Err(DomainError::NotYetStarted);
                }
                Ok(one(appointment.stream(), NoShowRecorded {}))
            }
            ExpireSlotHold { appointment } => {
                let state = AppointmentState::of(h, *appointment);
                if state.confirmed || state.open_booking().is_err() {
                    return Ok(vec![]);
                }
                cancel(&state, h, CancelledBy::System, None, ctx)
            }
        }
    }
}

/// How long a citizen's capability link works: until the appointment's data is due for
/// deletion at the earliest (a day after the start plus the municipality's retention).
pub fn link_expiry(tenant: &Tenant, start: OffsetDateTime) -> OffsetDateTime {
    tenant.add_months(start + Duration::days(1), tenant.retention_months)
}

/// What a citizen's link is asked to change, for [`writes_end`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CitizenWrite {
    /// The visit itself: confirming, cancelling, moving, the waiting room, the pre-call check,
    /// the room's socket, documents, forms, signatures.
    Visit,
    /// What follows the visit by nature: the feedback, and paying the fees.
    Aftercare,
}

/// How long after the visit's end the feedback and the payment stay open.
pub const AFTERCARE: Duration = Duration::days(1);

/// The appointment's video session, as far as the link's lifetime asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Visit {
    /// No session was opened.
    NotHeld,
    /// The session is open: the citizen waits or talks.
    Running,
    /// The session ended at this instant.
    Ended(OffsetDateTime),
}

/// Until when a citizen's link may change anything (reads go on until [`link_expiry`]): the
/// appointment's end; a session that ran over keeps its writes until it ended, a running one
/// until the end of the appointment's day in the municipality at the latest, so that a session
/// nobody ended does not keep the link writable. Aftercare writes get [`AFTERCARE`] more.
pub fn writes_end(
    tenant: &Tenant,
    scheduled_end: OffsetDateTime,
    visit: Visit,
    write: CitizenWrite,
) -> OffsetDateTime {
    let local = tenant.local(scheduled_end);
    let day_end = tenant.instant(PrimitiveDateTime::new(
        local.date().next_day().unwrap_or(local.date()),
        time::Time::MIDNIGHT,
    ));
    let end = match visit {
        Visit::NotHeld => scheduled_end,
        Visit::Running => day_end.max(scheduled_end),
        Visit::Ended(at) => at.min(day_end).max(scheduled_end),
    };
    match write {
        CitizenWrite::Visit => end,
        CitizenWrite::Aftercare => end + AFTERCARE,
    }
}

/// Checks the chosen concerns and sizes them: the department and the number of slots.
pub fn size_concerns<'t>(
    tenant: &'t Tenant,
    department: &DepartmentId,
    services: &[ServiceId],
) -> Result<(&'t Department, u16), DomainError> {
    let dept = tenant
        .department(department)
        .ok_or_else(|| DomainError::UnknownDepartment(department.clone()))?;
    if services.is_empty() {
        return Err(DomainError::NoServices);
    }
    let mut minutes: u32 = 0;
    for (i, id) in services.iter().enumerate() {
        let service = tenant
            .service(id)
            .ok_or_else(|| DomainError::UnknownService(id.clone()))?;
        if &service.department != department {
            return Err(DomainError::ServiceOfOtherDepartment(id.clone()));
        }
        if !service.online {
            return Err(DomainError::NotOfferedOnline(id.clone()));
        }
        for earlier in &services[..i] {
            if earlier == id {
                return Err(DomainError::DuplicateService(id.clone()));
            }
            if !service.combinable_with.contains(earlier) {
                return Err(DomainError::NotCombinable(earlier.clone(), id.clone()));
            }
        }
        minutes += u32::from(service.duration_minutes);
    }
    let slot = u32::from(dept.slot_minutes);
    let slots = u16::try_from(minutes.div_ceil(slot)).unwrap_or(u16::MAX);
    Ok((dept, slots))
}

/// Where a start instant falls on the department's local calendar: (day, minute of day).
fn local_slot(tenant: &Tenant, start: OffsetDateTime) -> Result<(time::Date, u16), DomainError> {
    let local = tenant.local(start);
    if local.second() != 0 || local.nanosecond() != 0 {
        return Err(DomainError::OutsideOpeningHours);
    }
    Ok((local.date(), calendar::minute_of(local.time())))
}

/// Where concerns booked from `start` would lie on their department's calendar.
fn placement_at<'t>(
    tenant: &'t Tenant,
    department: &DepartmentId,
    services: &[ServiceId],
    start: OffsetDateTime,
) -> Result<(&'t Department, Placement), DomainError> {
    let (dept, slots) = size_concerns(tenant, department, services)?;
    let (date, first_minute) = local_slot(tenant, start)?;
    Ok((
        dept,
        Placement {
            date,
            first_minute,
            slots,
        },
    ))
}

fn book(
    existing: &AppointmentState,
    h: &Histories,
    cmd: &BookAppointment,
    ctx: &Context<'_>,
) -> Result<Decision, DomainError> {
    let tenant = ctx.tenant;
    if existing.status != Status::New {
        return Err(DomainError::AlreadyBooked);
    }
    if !tenant.booking_channels.contains(&cmd.channel) {
        return Err(DomainError::ChannelNotOffered);
    }
    let (dept, slots) = size_concerns(tenant, &cmd.department, &cmd.services)?;
    if cmd.channel == BookingChannel::Online && !dept.online_booking {
        return Err(DomainError::OnlineBookingNotOffered);
    }
    if cmd.start <= ctx.now {
        return Err(DomainError::SlotInPast);
    }
    let (date, first_minute) = local_slot(tenant, cmd.start)?;
    let placement = Placement {
        date,
        first_minute,
        slots,
    };
    let mut decision = Slots::load(h, tenant, dept, &[placement]).reserve(
        tenant,
        dept,
        cmd.appointment,
        placement,
    )?;
    let end = cmd.start + Duration::minutes(i64::from(slots) * i64::from(dept.slot_minutes));
    let booked = AppointmentBooked {
        appointment: cmd.appointment,
        subject: cmd.subject,
        department: cmd.department.clone(),
        services: cmd.services.clone(),
        start: cmd.start,
        end,
        channel: cmd.channel,
        invited_by: cmd.invited_by.clone(),
        contact: cmd.contact.clone(),
        terms: BookingTerms::of(tenant, &cmd.department, &cmd.services).map(Box::new),
    };
    decision.push((cmd.appointment.stream(), booked.into()));
    if let Some(access) = &cmd.access {
        if access.expires <= end {
            return Err(DomainError::AccessExpiresTooEarly);
        }
        decision.push((cmd.appointment.stream(), access.clone().into()));
    }
    decision.push((
        cmd.subject.stream(),
        SubjectKeyIssued {
            subject: cmd.subject,
            appointment: cmd.appointment,
        }
        .into(),
    ));
    Ok(decision)
}

/// Moves an open appointment: releases its slots, then reserves the new ones, in that order,
/// so that a slot both hold (and every fold of the day) ends up held.
fn reschedule(
    state: &AppointmentState,
    h: &Histories,
    start: OffsetDateTime,
    ctx: &Context<'_>,
) -> Result<Decision, DomainError> {
    let booking = state.open_booking()?;
    if start <= ctx.now {
        return Err(DomainError::SlotInPast);
    }
    let tenant = ctx.tenant;
    let (dept, new) = placement_at(tenant, &booking.department, &booking.services, start)?;
    let old = state.placement(tenant).map(|(_, p)| p);
    let placements: Vec<Placement> = old.into_iter().chain([new]).collect();
    let slots = Slots::load(h, tenant, dept, &placements);
    let appointment = booking.appointment;
    // The old slots must not count against the new ones.
    let reserved = slots
        .clone()
        .without(appointment)
        .reserve(tenant, dept, appointment, new)?;
    let mut decision = old
        .map(|old| slots.release(tenant, dept, appointment, old))
        .unwrap_or_default();
    decision.extend(reserved);
    let end = start + Duration::minutes(i64::from(new.slots) * i64::from(dept.slot_minutes));
    decision.push((
        appointment.stream(),
        AppointmentRescheduled {
            previous_start: booking.start,
            start,
            end,
        }
        .into(),
    ));
    Ok(decision)
}

/// Calls off an open appointment and gives back the slots it holds.
fn cancel(
    state: &AppointmentState,
    h: &Histories,
    by: CancelledBy,
    reason: Option<Personal>,
    ctx: &Context<'_>,
) -> Result<Decision, DomainError> {
    let booking = state.open_booking()?;
    let tenant = ctx.tenant;
    let mut decision = state
        .placement(tenant)
        .map(|(dept, p)| {
            Slots::load(h, tenant, dept, &[p]).release(tenant, dept, booking.appointment, p)
        })
        .unwrap_or_default();
    decision.push((
        booking.appointment.stream(),
        AppointmentCancelled { by, reason }.into(),
    ));
    Ok(decision)
}

#[cfg(test)]
pub(crate) mod tests {
    use time::macros::datetime;
    use uuid::Uuid;

    use super::*;
    use crate::domain::command::Command;
    use crate::domain::events::*;
    use crate::domain::gwt::{MONDAY_8, ettlingen, given, stuttgart};
    use crate::tenant::Cents;

    /// Tuesday 24 November 2026, 09:00 in Germany.
    pub(crate) const TUE_9: OffsetDateTime = datetime!(2026-11-24 08:00 UTC);

    pub(crate) fn contact() -> Contact {
        Contact {
            name: Personal::plain("Erika Mustermann"),
            email: Personal::plain("erika@example.org"),
            phone: None,
        }
    }

    pub(crate) fn appointment(n: u128) -> AppointmentId {
        AppointmentId(Uuid::from_u128(n))
    }

    pub(crate) fn subject(n: u128) -> SubjectId {
        SubjectId(Uuid::from_u128(1_000 + n))
    }

    pub(crate) fn booking(
        n: u128,
        department: &str,
        services: &[&str],
        start: OffsetDateTime,
    ) -> AppointmentCommand {
        AppointmentCommand::BookAppointment(BookAppointment {
            appointment: appointment(n),
            subject: subject(n),
            department: department.into(),
            services: services.iter().map(|s| ServiceId::from(*s)).collect(),
            start,
            channel: BookingChannel::Online,
            invited_by: None,
            contact: contact(),
            access: None,
        })
    }

    fn buergerbuero(n: u128, services: &[&str], start: OffsetDateTime) -> AppointmentCommand {
        booking(n, "buergerbuero", services, start)
    }

    /// The events of an accepted booking, to build histories from.
    pub(crate) fn booked(
        tenant: &'static Tenant,
        history: Decision,
        command: impl Into<Command>,
    ) -> Decision {
        let mut all = history;
        all.extend(given(tenant, all.clone()).when(command).decision());
        all
    }

    /// The stream of the slot of Tuesday 24 November 2026 starting `minute` minutes after
    /// local midnight.
    fn tuesday_slot(department: &str, minute: u16) -> crate::event::StreamId {
        calendar::slot_stream(
            ettlingen(),
            &department.into(),
            time::macros::date!(2026 - 11 - 24),
            minute,
        )
    }

    #[test]
    fn given_a_free_day_when_booking_two_concerns_then_consecutive_slots_in_one_append() {
        let reserved: DomainEvent = SlotsReserved {
            appointment: appointment(1),
            first_minute: 9 * 60,
            slots: 2,
        }
        .into();
        given(ettlingen(), vec![])
            .when(buergerbuero(
                1,
                &["personalausweis", "meldebescheinigung"],
                TUE_9,
            ))
            .then_expect(vec![
                (tuesday_slot("buergerbuero", 9 * 60), reserved.clone()),
                (tuesday_slot("buergerbuero", 9 * 60 + 15), reserved),
                (
                    appointment(1).stream(),
                    AppointmentBooked {
                        appointment: appointment(1),
                        subject: subject(1),
                        department: "buergerbuero".into(),
                        services: vec!["personalausweis".into(), "meldebescheinigung".into()],
                        start: TUE_9,
                        end: datetime!(2026-11-24 08:30 UTC),
                        channel: BookingChannel::Online,
                        invited_by: None,
                        contact: contact(),
                        terms: Some(Box::new(BookingTerms {
                            department_name: "Bürgerbüro".into(),
                            slot_minutes: 15,
                            services: vec![
                                BookedService {
                                    service: "personalausweis".into(),
                                    name: "Personalausweis beantragen".into(),
                                    fee: Cents(3700),
                                    duration_minutes: 15,
                                },
                                BookedService {
                                    service: "meldebescheinigung".into(),
                                    name: "Meldebescheinigung".into(),
                                    fee: Cents(1000),
                                    duration_minutes: 10,
                                },
                            ],
                        })),
                    }
                    .into(),
                ),
                (
                    subject(1).stream(),
                    SubjectKeyIssued {
                        subject: subject(1),
                        appointment: appointment(1),
                    }
                    .into(),
                ),
            ]);
    }

    #[test]
    fn given_capacity_two_when_a_third_books_the_slot_then_slot_taken() {
        let history = booked(
            ettlingen(),
            vec![],
            buergerbuero(1, &["meldebescheinigung"], TUE_9),
        );
        let history = booked(
            ettlingen(),
            history,
            buergerbuero(2, &["meldebescheinigung"], TUE_9),
        );
        given(ettlingen(), history.clone())
            .when(buergerbuero(3, &["meldebescheinigung"], TUE_9))
            .then_error(DomainError::SlotTaken);
        // The slot after is still free.
        given(ettlingen(), history)
            .when(buergerbuero(
                3,
                &["meldebescheinigung"],
                TUE_9 + Duration::minutes(15),
            ))
            .decision();
    }

    #[test]
    fn given_a_two_slot_booking_when_its_second_slot_is_full_then_slot_taken() {
        // Gewerbebehörde: capacity 1, 20-minute slots from 08:30; two concerns take 40 minutes.
        let at_8_50 = datetime!(2026-11-24 07:50 UTC);
        let both = || {
            booking(
                2,
                "gewerbebehoerde",
                &["gewerbeanmeldung", "gewerbeabmeldung"],
                at_8_50,
            )
        };
        given(ettlingen(), vec![]).when(both()).decision();
        let history = booked(
            ettlingen(),
            vec![],
            booking(
                1,
                "gewerbebehoerde",
                &["gewerbeabmeldung"],
                at_8_50 + Duration::minutes(20),
            ),
        );
        given(ettlingen(), history)
            .when(both())
            .then_error(DomainError::SlotTaken);
    }

    #[test]
    fn bookings_outside_the_opening_hours_or_off_the_slot_grid_are_refused() {
        for start in [
            datetime!(2026-11-24 12:00 UTC), // 13:00, closed
            TUE_9 + Duration::minutes(5),    // not on the 15-minute grid
            datetime!(2026-11-24 10:45 UTC), // 11:45 + 2 slots runs past 12:00
            datetime!(2026-11-28 08:00 UTC), // Saturday
        ] {
            given(ettlingen(), vec![])
                .when(buergerbuero(
                    1,
                    &["personalausweis", "meldebescheinigung"],
                    start,
                ))
                .then_error(DomainError::OutsideOpeningHours);
        }
    }

    #[test]
    fn concerns_are_checked_before_a_slot_is_taken() {
        let cases: [(&[&str], DomainError); 5] = [
            (&[], DomainError::NoServices),
            (
                &["personalausweis", "fuehrungszeugnis"],
                DomainError::NotCombinable("personalausweis".into(), "fuehrungszeugnis".into()),
            ),
            (
                &["reisepass", "reisepass"],
                DomainError::DuplicateService("reisepass".into()),
            ),
            (
                &["sternenpass"],
                DomainError::UnknownService("sternenpass".into()),
            ),
            (
                &["gewerbeanmeldung"],
                DomainError::ServiceOfOtherDepartment("gewerbeanmeldung".into()),
            ),
        ];
        given(ettlingen(), vec![])
            .when(buergerbuero(1, &["beglaubigung"], TUE_9))
            .then_error(DomainError::NotOfferedOnline("beglaubigung".into()));
        for (services, error) in cases {
            given(ettlingen(), vec![])
                .when(buergerbuero(1, services, TUE_9))
                .then_error(error);
        }
        given(ettlingen(), vec![])
            .when(booking(1, "rathaus", &["personalausweis"], TUE_9))
            .then_error(DomainError::UnknownDepartment("rathaus".into()));
    }

    #[test]
    fn a_slot_in_the_past_is_refused() {
        given(ettlingen(), vec![])
            .at(TUE_9 + Duration::minutes(1))
            .when(buergerbuero(1, &["meldebescheinigung"], TUE_9))
            .then_error(DomainError::SlotInPast);
    }

    #[test]
    fn channels_follow_the_tenant_and_department() {
        // Ettlingen books online only.
        let mut invitation = booking(1, "buergerbuero", &["meldebescheinigung"], TUE_9);
        if let AppointmentCommand::BookAppointment(b) = &mut invitation {
            b.channel = BookingChannel::ClerkInvitation;
        }
        given(ettlingen(), vec![])
            .when(invitation)
            .then_error(DomainError::ChannelNotOffered);
        // Stuttgart's Jobcenter takes invitations only.
        given(stuttgart(), vec![])
            .when(booking(1, "jobcenter", &["buergergeld"], TUE_9))
            .then_error(DomainError::OnlineBookingNotOffered);
        let mut invitation = booking(1, "jobcenter", &["buergergeld"], TUE_9);
        if let AppointmentCommand::BookAppointment(b) = &mut invitation {
            b.channel = BookingChannel::ClerkInvitation;
            b.invited_by = Some("e.braun".into());
        }
        given(stuttgart(), vec![]).when(invitation).decision();
    }

    #[test]
    fn the_same_appointment_cannot_be_booked_twice() {
        let history = booked(
            ettlingen(),
            vec![],
            buergerbuero(1, &["meldebescheinigung"], TUE_9),
        );
        given(ettlingen(), history)
            .when(buergerbuero(
                1,
                &["meldebescheinigung"],
                TUE_9 + Duration::minutes(15),
            ))
            .then_error(DomainError::AlreadyBooked);
    }

    #[test]
    fn cancelling_releases_the_slots_once() {
        let history = booked(
            ettlingen(),
            vec![],
            buergerbuero(1, &["meldebescheinigung"], TUE_9),
        );
        let cancel = AppointmentCommand::CancelAppointment {
            appointment: appointment(1),
            by: CancelledBy::CitizenByLink,
            reason: None,
        };
        let decision = given(ettlingen(), history.clone())
            .when(cancel.clone())
            .decision();
        assert_eq!(
            decision,
            vec![
                (
                    tuesday_slot("buergerbuero", 9 * 60),
                    SlotsReleased {
                        appointment: appointment(1)
                    }
                    .into()
                ),
                (
                    appointment(1).stream(),
                    AppointmentCancelled {
                        by: CancelledBy::CitizenByLink,
                        reason: None
                    }
                    .into()
                ),
            ]
        );
        let mut after = history;
        after.extend(decision);
        given(ettlingen(), after)
            .when(cancel)
            .then_error(DomainError::AlreadyCancelled);
        given(ettlingen(), vec![])
            .when(AppointmentCommand::CancelAppointment {
                appointment: appointment(9),
                by: CancelledBy::Clerk,
                reason: None,
            })
            .then_error(DomainError::UnknownAppointment);
    }

    #[test]
    fn a_finished_appointment_cannot_be_cancelled_or_moved() {
        let mut history = booked(
            ettlingen(),
            vec![],
            buergerbuero(1, &["meldebescheinigung"], TUE_9),
        );
        history.push((
            appointment(1).stream(),
            AppointmentCompleted {
                outcome: SessionOutcome::Completed,
            }
            .into(),
        ));
        given(ettlingen(), history.clone())
            .when(AppointmentCommand::CancelAppointment {
                appointment: appointment(1),
                by: CancelledBy::Clerk,
                reason: None,
            })
            .then_error(DomainError::AppointmentFinished);
        given(ettlingen(), history)
            .when(AppointmentCommand::RescheduleAppointment {
                appointment: appointment(1),
                start: TUE_9 + Duration::days(1),
            })
            .then_error(DomainError::AppointmentFinished);
    }

    #[test]
    fn rescheduling_moves_the_slots_only_to_a_free_slot() {
        // Waffenbehörde, capacity 1: Tuesday and Thursday 09:00–12:00, 30-minute slots.
        let history = booked(
            ettlingen(),
            vec![],
            booking(1, "waffenbehoerde", &["waffenbesitzkarte"], TUE_9),
        );
        let history = booked(
            ettlingen(),
            history,
            booking(
                2,
                "waffenbehoerde",
                &["waffenbesitzkarte"],
                TUE_9 + Duration::minutes(60),
            ),
        );
        // Half an hour later on the same day: its own slot does not block it.
        let later = TUE_9 + Duration::minutes(30);
        let decision = given(ettlingen(), history.clone())
            .when(AppointmentCommand::RescheduleAppointment {
                appointment: appointment(1),
                start: later,
            })
            .decision();
        assert_eq!(
            decision,
            vec![
                (
                    tuesday_slot("waffenbehoerde", 9 * 60),
                    SlotsReleased {
                        appointment: appointment(1)
                    }
                    .into()
                ),
                (
                    tuesday_slot("waffenbehoerde", 9 * 60 + 30),
                    SlotsReserved {
                        appointment: appointment(1),
                        first_minute: 9 * 60 + 30,
                        slots: 1
                    }
                    .into()
                ),
                (
                    appointment(1).stream(),
                    AppointmentRescheduled {
                        previous_start: TUE_9,
                        start: later,
                        end: later + Duration::minutes(30)
                    }
                    .into(),
                ),
            ]
        );
        given(ettlingen(), history.clone())
            .when(AppointmentCommand::RescheduleAppointment {
                appointment: appointment(1),
                start: TUE_9 + Duration::minutes(60),
            })
            .then_error(DomainError::SlotTaken);
        // To Thursday: another calendar stream.
        let thursday = datetime!(2026-11-26 09:00 UTC);
        let decision = given(ettlingen(), history)
            .when(AppointmentCommand::RescheduleAppointment {
                appointment: appointment(1),
                start: thursday,
            })
            .decision();
        assert_eq!(
            decision[1].0.as_str(),
            "slot-ettlingen-waffenbehoerde-2026-11-26-1000"
        );
    }

    #[test]
    fn confirmation_reminder_and_slot_hold() {
        let history = booked(
            ettlingen(),
            vec![],
            buergerbuero(1, &["meldebescheinigung"], TUE_9),
        );
        let a = appointment(1);
        given(ettlingen(), history.clone())
            .when(AppointmentCommand::ConfirmAppointment { appointment: a })
            .then_expect(vec![(a.stream(), AppointmentConfirmed {}.into())]);
        given(ettlingen(), history.clone())
            .when(AppointmentCommand::SendReminder { appointment: a })
            .then_expect(vec![(a.stream(), ReminderSent {}.into())]);
        let mut confirmed = history.clone();
        confirmed.push((a.stream(), AppointmentConfirmed {}.into()));
        confirmed.push((a.stream(), ReminderSent {}.into()));
        given(ettlingen(), confirmed.clone())
            .when(AppointmentCommand::ConfirmAppointment { appointment: a })
            .then_nothing();
        given(ettlingen(), confirmed.clone())
            .when(AppointmentCommand::SendReminder { appointment: a })
            .then_nothing();
        given(ettlingen(), confirmed)
            .when(AppointmentCommand::ExpireSlotHold { appointment: a })
            .then_nothing();
        // Unconfirmed when the hold expires: the system gives the slots back.
        let decision = given(ettlingen(), history)
            .when(AppointmentCommand::ExpireSlotHold { appointment: a })
            .decision();
        assert_eq!(
            decision[1],
            (
                a.stream(),
                AppointmentCancelled {
                    by: CancelledBy::System,
                    reason: None
                }
                .into()
            )
        );
    }

    #[test]
    fn no_show_is_recorded_fifteen_minutes_after_the_start_without_a_session() {
        let history = booked(
            ettlingen(),
            vec![],
            buergerbuero(1, &["meldebescheinigung"], TUE_9),
        );
        let a = appointment(1);
        given(ettlingen(), history.clone())
            .at(TUE_9 + Duration::minutes(14))
            .when(AppointmentCommand::CheckNoShow { appointment: a })
            .then_error(DomainError::NotYetStarted);
        given(ettlingen(), history.clone())
            .at(TUE_9 + Duration::minutes(15))
            .when(AppointmentCommand::CheckNoShow { appointment: a })
            .then_expect(vec![(a.stream(), NoShowRecorded {}.into())]);
        let mut with_session = history;
        with_session.push((
            a.stream(),
            SessionLinked {
                session: crate::domain::SessionId(Uuid::from_u128(7)),
            }
            .into(),
        ));
        given(ettlingen(), with_session)
            .at(TUE_9 + Duration::minutes(20))
            .when(AppointmentCommand::CheckNoShow { appointment: a })
            .then_nothing();
        let _ = MONDAY_8;
    }

    fn with_access(n: u128, expires: OffsetDateTime) -> AppointmentCommand {
        let AppointmentCommand::BookAppointment(mut b) =
            buergerbuero(n, &["personalausweis", "meldebescheinigung"], TUE_9)
        else {
            unreachable!("a booking")
        };
        b.access = Some(CitizenAccessGranted {
            token_hash: "ab".repeat(32),
            expires,
        });
        AppointmentCommand::BookAppointment(b)
    }

    #[test]
    fn given_a_booking_with_a_link_then_only_the_link_hash_is_recorded_with_it() {
        let expires = datetime!(2027-02-25 08:00 UTC);
        let decision = given(ettlingen(), vec![])
            .when(with_access(1, expires))
            .decision();
        let granted: Vec<_> = decision
            .iter()
            .filter(|(s, e)| {
                *s == appointment(1).stream() && e.event_type() == "CitizenAccessGranted"
            })
            .collect();
        assert_eq!(granted.len(), 1);
        assert_eq!(
            granted[0].1,
            CitizenAccessGranted {
                token_hash: "ab".repeat(32),
                expires,
            }
            .into()
        );
        let state = decision
            .iter()
            .filter(|(s, _)| *s == appointment(1).stream())
            .fold(AppointmentState::default(), |st, (_, e)| st.evolve(e));
        assert_eq!(state.access.map(|a| a.expires), Some(expires));
    }

    #[test]
    fn a_link_lives_a_day_past_the_start_plus_the_retention_period() {
        // Ettlingen keeps data 3 months: 24 Nov 09:00 + 1 day + 3 months = 25 Feb 09:00.
        assert_eq!(
            link_expiry(ettlingen(), TUE_9),
            datetime!(2027-02-25 08:00 UTC)
        );
        assert_eq!(
            link_expiry(stuttgart(), TUE_9),
            datetime!(2027-05-25 07:00 UTC)
        );
    }

    #[test]
    fn a_link_writes_until_the_visit_ends_and_aftercare_a_day_longer() {
        use CitizenWrite::{Aftercare, Visit as Write};
        // Tuesday 24 November 2026, 09:00–09:30 in Ettlingen (UTC+1).
        let end = datetime!(2026-11-24 08:30 UTC);
        let midnight = datetime!(2026-11-24 23:00 UTC);
        let t = ettlingen();
        assert_eq!(writes_end(t, end, Visit::NotHeld, Write), end);
        assert_eq!(
            writes_end(t, end, Visit::NotHeld, Aftercare),
            end + Duration::days(1)
        );
        // Ended early: the appointment's end still counts.
        let early = datetime!(2026-11-24 08:10 UTC);
        assert_eq!(writes_end(t, end, Visit::Ended(early), Write), end);
        // Ran over by 20 minutes: until it ended.
        let late = datetime!(2026-11-24 08:50 UTC);
        assert_eq!(writes_end(t, end, Visit::Ended(late), Write), late);
        assert_eq!(
            writes_end(t, end, Visit::Ended(late), Aftercare),
            late + Duration::days(1)
        );
        // Still running, or ended only the next day: the appointment's day, no longer.
        assert_eq!(writes_end(t, end, Visit::Running, Write), midnight);
        let next_day = datetime!(2026-11-25 10:00 UTC);
        assert_eq!(writes_end(t, end, Visit::Ended(next_day), Write), midnight);
    }

    #[test]
    fn mail_kinds_are_stored_under_their_names() {
        use crate::domain::events::MailKind;
        for kind in [
            MailKind::Confirmation,
            MailKind::Reminder,
            MailKind::Cancellation,
        ] {
            assert_eq!(serde_json::to_value(kind).expect("json"), kind.as_str());
        }
    }

    #[test]
    fn given_a_link_that_ends_before_the_appointment_when_booking_then_refused() {
        given(ettlingen(), vec![])
            .when(with_access(1, TUE_9))
            .then_error(DomainError::AccessExpiresTooEarly);
    }

    #[test]
    fn given_a_sent_mail_when_recording_it_again_then_nothing_happens() {
        use crate::domain::events::{MailKind, MailSent};
        let history = booked(
            ettlingen(),
            vec![],
            buergerbuero(1, &["meldebescheinigung"], TUE_9),
        );
        let record = || AppointmentCommand::RecordMailSent {
            appointment: appointment(1),
            kind: MailKind::Confirmation,
            message_id: "<1@videoamt>".into(),
        };
        given(ettlingen(), history.clone())
            .when(record())
            .then_expect(vec![(
                appointment(1).stream(),
                MailSent {
                    kind: MailKind::Confirmation,
                    message_id: "<1@videoamt>".into(),
                }
                .into(),
            )]);
        let sent = booked(ettlingen(), history, record());
        given(ettlingen(), sent).when(record()).then_nothing();
        given(ettlingen(), vec![])
            .when(record())
            .then_error(DomainError::UnknownAppointment);
    }

    #[test]
    fn bookings_of_different_slots_write_no_common_stream() {
        let ctx = Context {
            tenant: ettlingen(),
            now: MONDAY_8,
        };
        let written = |command: AppointmentCommand| -> std::collections::BTreeSet<_> {
            given(ettlingen(), vec![])
                .when(command)
                .decision()
                .into_iter()
                .map(|(stream, _)| stream)
                .collect()
        };
        let at_9 = buergerbuero(1, &["personalausweis", "meldebescheinigung"], TUE_9);
        let at_9_30 = buergerbuero(2, &["meldebescheinigung"], TUE_9 + Duration::minutes(30));
        assert!(written(at_9.clone()).is_disjoint(&written(at_9_30.clone())));
        // Both read the day's stream of schema 1, and neither writes it.
        let day = calendar::day_stream(
            ettlingen(),
            &"buergerbuero".into(),
            time::macros::date!(2026 - 11 - 24),
        );
        let histories = Histories::default();
        assert!(at_9.streams(&histories, &ctx).contains(&day));
        assert!(at_9_30.streams(&histories, &ctx).contains(&day));
        assert!(!written(at_9).contains(&day));
    }

    #[test]
    fn reservations_of_schema_1_on_the_day_stream_still_count_and_are_released_there() {
        let day = calendar::day_stream(
            ettlingen(),
            &"waffenbehoerde".into(),
            time::macros::date!(2026 - 11 - 24),
        );
        // Booked before slot streams: the reservation is on the day stream only.
        let mut history: Decision = booked(
            ettlingen(),
            vec![],
            booking(1, "waffenbehoerde", &["waffenbesitzkarte"], TUE_9),
        )
        .into_iter()
        .filter(|(stream, _)| stream.category() != "slot")
        .collect();
        history.push((
            day.clone(),
            SlotsReserved {
                appointment: appointment(1),
                first_minute: 9 * 60,
                slots: 1,
            }
            .into(),
        ));
        given(ettlingen(), history.clone())
            .when(booking(2, "waffenbehoerde", &["waffenbesitzkarte"], TUE_9))
            .then_error(DomainError::SlotTaken);
        let released: DomainEvent = SlotsReleased {
            appointment: appointment(1),
        }
        .into();
        let cancel = AppointmentCommand::CancelAppointment {
            appointment: appointment(1),
            by: CancelledBy::Clerk,
            reason: None,
        };
        let decision = given(ettlingen(), history.clone()).when(cancel).decision();
        assert_eq!(decision[0], (day.clone(), released.clone()));
        // Moved: released on the day stream, reserved on the new slot's stream.
        let decision = given(ettlingen(), history)
            .when(AppointmentCommand::RescheduleAppointment {
                appointment: appointment(1),
                start: TUE_9 + Duration::minutes(30),
            })
            .decision();
        assert_eq!(decision[0], (day, released));
        assert_eq!(decision[1].0, tuesday_slot("waffenbehoerde", 9 * 60 + 30));
    }

    #[test]
    fn moving_two_slots_by_one_releases_before_it_reserves_the_slot_both_hold() {
        let history = booked(
            ettlingen(),
            vec![],
            buergerbuero(1, &["personalausweis", "meldebescheinigung"], TUE_9),
        );
        let later = TUE_9 + Duration::minutes(15);
        let decision = given(ettlingen(), history.clone())
            .when(AppointmentCommand::RescheduleAppointment {
                appointment: appointment(1),
                start: later,
            })
            .decision();
        let written: Vec<_> = decision
            .iter()
            .map(|(s, e)| (s.clone(), e.event_type()))
            .collect();
        let slot = |minute| tuesday_slot("buergerbuero", minute);
        assert_eq!(
            written,
            vec![
                (slot(540), "SlotsReleased"),
                (slot(555), "SlotsReleased"),
                (slot(555), "SlotsReserved"),
                (slot(570), "SlotsReserved"),
                (appointment(1).stream(), "AppointmentRescheduled"),
            ]
        );
        // The slot both hold still holds it once, the one left behind no longer does.
        let mut after = history;
        after.extend(decision);
        let holders = |minute| {
            after
                .iter()
                .filter(|(s, _)| *s == slot(minute))
                .fold(calendar::SlotState::default(), |st, (_, e)| st.evolve(e))
                .holders
                .len()
        };
        assert_eq!((holders(540), holders(555), holders(570)), (0, 1, 1));
    }
}
