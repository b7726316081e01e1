//! Every command of the workflow, the streams it reads and writes, and its decision.
//!
//! A command names its streams in rounds: [`Command::streams`] is asked again after each load,
//! so a command that only knows an appointment id can ask for that appointment's calendar slots
//! once the appointment is loaded. The command bus appends the decision to all of them in one
//! atomic batch, each with the version it read.

use time::OffsetDateTime;

use super::account::AccountCommand;
use super::appointment::{self, AppointmentState, BookAppointment};
use super::events::*;
use super::form::FormCommand;
use super::payment::PaymentCommand;
use super::record::RecordCommand;
use super::session::SessionCommand;
use super::subject::SubjectCommand;
use super::{AppointmentId, Context, Decision, DomainError, Histories, Personal, one};
use crate::event::StreamId;

// Commands are made and decided one at a time, never stored in bulk; boxing the booking
// would only add an allocation per booking.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Account(AccountCommand),
    Session(SessionCommand),
    Form(FormCommand),
    Payment(PaymentCommand),
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
    Subject(SubjectCommand),
    Record(RecordCommand),
}

fn appointment_of(h: &Histories, id: AppointmentId) -> AppointmentState {
    h.fold(&id.stream(), AppointmentState::evolve)
}

/// The outcome of a mail of a booked appointment, once per message id: the worker may send
/// and record a mail again after a crash.
fn record_mail(
    h: &Histories,
    appointment: AppointmentId,
    message_id: &str,
    outcome: impl Into<super::DomainEvent>,
) -> Result<Decision, DomainError> {
    let state = appointment_of(h, appointment);
    if state.booking.is_none() {
        return Err(DomainError::UnknownAppointment);
    }
    if state.mails.contains(message_id) {
        return Ok(vec![]);
    }
    Ok(one(appointment.stream(), outcome))
}

macro_rules! kinds {
    ($($variant:ident($kind:ty)),* $(,)?) => {
        $(
            impl From<$kind> for Command {
                fn from(command: $kind) -> Self {
                    Self::$variant(command)
                }
            }
        )*
    };
}

kinds!(
    Account(AccountCommand),
    Session(SessionCommand),
    Form(FormCommand),
    Payment(PaymentCommand),
    Subject(SubjectCommand),
    Record(RecordCommand),
);

impl Command {
    /// The streams this command needs, given what is loaded so far. The bus loads what is
    /// missing and asks again until nothing new is named.
    pub fn streams(&self, loaded: &Histories, ctx: &Context<'_>) -> Vec<StreamId> {
        use Command::*;
        let tenant = ctx.tenant;
        let with_calendar = |appointment: AppointmentId| {
            let state = appointment_of(loaded, appointment);
            let mut streams = vec![appointment.stream()];
            streams.extend(state.calendar_streams(tenant));
            streams
        };
        match self {
            Account(c) => c.streams(loaded, ctx),
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
                    appointment_of(loaded, *appointment).calendar_streams_at(tenant, *start),
                );
                streams
            }
            Session(c) => c.streams(loaded, ctx),
            Form(c) => c.streams(loaded, ctx),
            Payment(c) => c.streams(loaded, ctx),
            Subject(c) => c.streams(loaded, ctx),
            Record(c) => c.streams(loaded, ctx),
        }
    }

    /// The streams still to load before deciding: what [`Command::streams`] names now, less
    /// what is loaded. Empty when loading is done.
    pub fn streams_to_load(&self, loaded: &Histories, ctx: &Context<'_>) -> Vec<StreamId> {
        self.streams(loaded, ctx)
            .into_iter()
            .filter(|s| !loaded.contains(s))
            .collect()
    }

    /// Loads every stream the command needs, in rounds, from a synchronous source (an
    /// in-memory log in tests).
    pub fn load_with(
        &self,
        ctx: &Context<'_>,
        mut fetch: impl FnMut(&StreamId) -> Vec<super::DomainEvent>,
    ) -> Histories {
        let mut histories = Histories::default();
        loop {
            let wanted = self.streams_to_load(&histories, ctx);
            if wanted.is_empty() {
                return histories;
            }
            for stream in wanted {
                let events = fetch(&stream);
                histories.insert(stream, events);
            }
        }
    }

    /// Decides the command over the loaded streams. An empty decision means "nothing to do"
    /// (e.g. a timer that finds its work already done).
    pub fn decide(&self, h: &Histories, ctx: &Context<'_>) -> Result<Decision, DomainError> {
        use Command::*;
        match self {
            Account(c) => c.decide(h, ctx),
            BookAppointment(b) => appointment::book(&appointment_of(h, b.appointment), h, b, ctx),
            ConfirmAppointment { appointment } => {
                let state = appointment_of(h, *appointment);
                state.open_booking()?;
                if state.confirmed {
                    return Ok(vec![]);
                }
                Ok(one(appointment.stream(), AppointmentConfirmed {}))
            }
            RescheduleAppointment { appointment, start } => {
                appointment::reschedule(&appointment_of(h, *appointment), h, *start, ctx)
            }
            CancelAppointment {
                appointment,
                by,
                reason,
            } => appointment::cancel(
                &appointment_of(h, *appointment),
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
                let state = appointment_of(h, *appointment);
                match state.open_booking() {
                    Ok(_) if !state.reminder_sent => Ok(one(appointment.stream(), ReminderSent {})),
                    _ => Ok(vec![]),
                }
            }
            CheckNoShow { appointment } => {
                let state = appointment_of(h, *appointment);
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
                let state = appointment_of(h, *appointment);
                if state.confirmed || state.open_booking().is_err() {
                    return Ok(vec![]);
                }
                appointment::cancel(&state, h, CancelledBy::System, None, ctx)
            }
            Session(c) => c.decide(h, ctx),
            Form(c) => c.decide(h, ctx),
            Payment(c) => c.decide(h, ctx),
            Subject(c) => c.decide(h, ctx),
            Record(c) => c.decide(h, ctx),
        }
    }
}
