//! `appointment-{id}`: booking, confirmation, rescheduling, cancellation, reminders, no-shows,
//! the link to the session and completion.
//!
//! Invariants: a finished appointment (completed, no-show) cannot be cancelled or moved;
//! rescheduling goes only to a free slot (checked by the calendar).

use time::{Duration, OffsetDateTime};

use super::calendar::{self, CalendarState};
use super::events::{
    AppointmentBooked, AppointmentCancelled, AppointmentRescheduled, CancelledBy,
    CitizenAccessGranted, Contact, SubjectKeyIssued,
};
use super::{
    AppointmentId, Context, Decision, DomainError, DomainEvent, Personal, SessionId, SubjectId,
};
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

    /// The calendar stream the appointment's slots are in.
    pub fn calendar_stream(&self, tenant: &Tenant) -> Option<crate::event::StreamId> {
        let b = self.booking.as_ref()?;
        Some(calendar::stream(
            tenant,
            &b.department,
            tenant.local(b.start).date(),
        ))
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
    pub fn calendar_stream(&self, tenant: &Tenant) -> crate::event::StreamId {
        calendar::stream(tenant, &self.department, tenant.local(self.start).date())
    }
}

/// How long a citizen's capability link works: until the appointment's data is due for
/// deletion at the earliest (a day after the start plus the municipality's retention).
pub fn link_expiry(tenant: &Tenant, start: OffsetDateTime) -> OffsetDateTime {
    tenant.add_months(start + Duration::days(1), tenant.retention_months)
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

pub fn book(
    existing: &AppointmentState,
    calendar: &CalendarState,
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
    let reserved = calendar.reserve(dept, date.weekday(), cmd.appointment, first_minute, slots)?;
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
    };
    let mut decision: Decision = vec![
        (
            calendar::stream(tenant, &cmd.department, date),
            reserved.into(),
        ),
        (cmd.appointment.stream(), booked.into()),
    ];
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

pub fn reschedule(
    state: &AppointmentState,
    old_calendar: &CalendarState,
    new_calendar: &CalendarState,
    start: OffsetDateTime,
    ctx: &Context<'_>,
) -> Result<Decision, DomainError> {
    let booking = state.open_booking()?;
    if start <= ctx.now {
        return Err(DomainError::SlotInPast);
    }
    let tenant = ctx.tenant;
    let (dept, slots) = size_concerns(tenant, &booking.department, &booking.services)?;
    let (old_date, _) = local_slot(tenant, booking.start)?;
    let (new_date, first_minute) = local_slot(tenant, start)?;
    let appointment = booking.appointment;
    // On the same day the old slots must not count against the new ones.
    let base = if old_date == new_date {
        old_calendar
            .clone()
            .evolve(&super::events::SlotsReleased { appointment }.into())
    } else {
        new_calendar.clone()
    };
    let reserved = base.reserve(dept, new_date.weekday(), appointment, first_minute, slots)?;
    let old_stream = calendar::stream(tenant, &booking.department, old_date);
    let new_stream = calendar::stream(tenant, &booking.department, new_date);
    let mut decision: Decision = Vec::new();
    if let Some(released) = old_calendar.release(appointment) {
        decision.push((old_stream, released.into()));
    }
    decision.push((new_stream, reserved.into()));
    let end = start + Duration::minutes(i64::from(slots) * i64::from(dept.slot_minutes));
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

pub fn cancel(
    state: &AppointmentState,
    calendar: &CalendarState,
    by: CancelledBy,
    reason: Option<Personal>,
    ctx: &Context<'_>,
) -> Result<Decision, DomainError> {
    let booking = state.open_booking()?;
    let mut decision: Decision = Vec::new();
    if let Some(released) = calendar.release(booking.appointment) {
        let stream = state
            .calendar_stream(ctx.tenant)
            .ok_or(DomainError::UnknownAppointment)?;
        decision.push((stream, released.into()));
    }
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
    ) -> Command {
        Command::BookAppointment(BookAppointment {
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

    fn buergerbuero(n: u128, services: &[&str], start: OffsetDateTime) -> Command {
        booking(n, "buergerbuero", services, start)
    }

    /// The events of an accepted booking, to build histories from.
    pub(crate) fn booked(tenant: &'static Tenant, history: Decision, command: Command) -> Decision {
        let mut all = history;
        all.extend(given(tenant, all.clone()).when(command).decision());
        all
    }

    #[test]
    fn given_a_free_day_when_booking_two_concerns_then_consecutive_slots_in_one_append() {
        let calendar = calendar::stream(
            ettlingen(),
            &"buergerbuero".into(),
            time::macros::date!(2026 - 11 - 24),
        );
        given(ettlingen(), vec![])
            .when(buergerbuero(
                1,
                &["personalausweis", "meldebescheinigung"],
                TUE_9,
            ))
            .then_expect(vec![
                (
                    calendar,
                    SlotsReserved {
                        appointment: appointment(1),
                        first_minute: 9 * 60,
                        slots: 2,
                    }
                    .into(),
                ),
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
        if let Command::BookAppointment(b) = &mut invitation {
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
        if let Command::BookAppointment(b) = &mut invitation {
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
        let cancel = Command::CancelAppointment {
            appointment: appointment(1),
            by: CancelledBy::CitizenByLink,
            reason: None,
        };
        let calendar = calendar::stream(
            ettlingen(),
            &"buergerbuero".into(),
            time::macros::date!(2026 - 11 - 24),
        );
        let decision = given(ettlingen(), history.clone())
            .when(cancel.clone())
            .decision();
        assert_eq!(
            decision,
            vec![
                (
                    calendar,
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
            .when(Command::CancelAppointment {
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
            .when(Command::CancelAppointment {
                appointment: appointment(1),
                by: CancelledBy::Clerk,
                reason: None,
            })
            .then_error(DomainError::AppointmentFinished);
        given(ettlingen(), history)
            .when(Command::RescheduleAppointment {
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
            .when(Command::RescheduleAppointment {
                appointment: appointment(1),
                start: later,
            })
            .decision();
        let day = calendar::stream(
            ettlingen(),
            &"waffenbehoerde".into(),
            time::macros::date!(2026 - 11 - 24),
        );
        assert_eq!(
            decision,
            vec![
                (
                    day.clone(),
                    SlotsReleased {
                        appointment: appointment(1)
                    }
                    .into()
                ),
                (
                    day,
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
            .when(Command::RescheduleAppointment {
                appointment: appointment(1),
                start: TUE_9 + Duration::minutes(60),
            })
            .then_error(DomainError::SlotTaken);
        // To Thursday: another calendar stream.
        let thursday = datetime!(2026-11-26 09:00 UTC);
        let decision = given(ettlingen(), history)
            .when(Command::RescheduleAppointment {
                appointment: appointment(1),
                start: thursday,
            })
            .decision();
        assert_eq!(
            decision[1].0.as_str(),
            "calendar-ettlingen-waffenbehoerde-2026-11-26"
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
            .when(Command::ConfirmAppointment { appointment: a })
            .then_expect(vec![(a.stream(), AppointmentConfirmed {}.into())]);
        given(ettlingen(), history.clone())
            .when(Command::SendReminder { appointment: a })
            .then_expect(vec![(a.stream(), ReminderSent {}.into())]);
        let mut confirmed = history.clone();
        confirmed.push((a.stream(), AppointmentConfirmed {}.into()));
        confirmed.push((a.stream(), ReminderSent {}.into()));
        given(ettlingen(), confirmed.clone())
            .when(Command::ConfirmAppointment { appointment: a })
            .then_nothing();
        given(ettlingen(), confirmed.clone())
            .when(Command::SendReminder { appointment: a })
            .then_nothing();
        given(ettlingen(), confirmed)
            .when(Command::ExpireSlotHold { appointment: a })
            .then_nothing();
        // Unconfirmed when the hold expires: the system gives the slots back.
        let decision = given(ettlingen(), history)
            .when(Command::ExpireSlotHold { appointment: a })
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
            .when(Command::CheckNoShow { appointment: a })
            .then_error(DomainError::NotYetStarted);
        given(ettlingen(), history.clone())
            .at(TUE_9 + Duration::minutes(15))
            .when(Command::CheckNoShow { appointment: a })
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
            .when(Command::CheckNoShow { appointment: a })
            .then_nothing();
        let _ = MONDAY_8;
    }

    fn with_access(n: u128, expires: OffsetDateTime) -> Command {
        let Command::BookAppointment(mut b) =
            buergerbuero(n, &["personalausweis", "meldebescheinigung"], TUE_9)
        else {
            unreachable!("a booking")
        };
        b.access = Some(CitizenAccessGranted {
            token_hash: "ab".repeat(32),
            expires,
        });
        Command::BookAppointment(b)
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
        let record = || Command::RecordMailSent {
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
}
