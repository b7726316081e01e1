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
use super::record;
use super::session::{SessionCommand, SessionState};
use super::subject::SubjectState;
use super::{
    AppointmentId, Context, Decision, DomainError, Histories, Personal, SessionId, SubjectId, one,
};
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
    /// From the process manager when an appointment reaches its final state.
    SchedulePurge {
        appointment: AppointmentId,
        final_state: FinalState,
        final_at: OffsetDateTime,
    },
    /// Before a due purge touches anything: appends `PurgeBlocked` (to be tried again at
    /// `retry_at`) while a required case-system handover is missing; decides nothing when the
    /// purge may go ahead.
    CheckPurge {
        subject: SubjectId,
        retry_at: OffsetDateTime,
    },
    ExecutePurge {
        subject: SubjectId,
        result: PurgeExecuted,
    },
    VerifyDeletion {
        subject: SubjectId,
        checks: Vec<String>,
    },
    /// The verifier found traces of a purged subject in `places`.
    FailDeletionVerification {
        subject: SubjectId,
        places: Vec<String>,
    },
    /// Before an auditor is shown an appointment's record (as of a position, or current).
    RecordAuditView {
        appointment: AppointmentId,
        as_of: Option<u64>,
    },
}

fn appointment_of(h: &Histories, id: AppointmentId) -> AppointmentState {
    h.fold(&id.stream(), AppointmentState::evolve)
}

fn session_of(h: &Histories, id: SessionId) -> SessionState {
    h.fold(&id.stream(), SessionState::evolve)
}

fn subject_of(h: &Histories, id: SubjectId) -> SubjectState {
    h.fold(&id.stream(), SubjectState::evolve)
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
            SchedulePurge { appointment, .. } => {
                let mut streams = vec![appointment.stream()];
                if let Some(b) = appointment_of(loaded, *appointment).booking {
                    streams.push(b.subject.stream());
                }
                streams
            }
            CheckPurge { subject, .. } => {
                let mut streams = vec![subject.stream()];
                if let Some(key) = subject_of(loaded, *subject).key {
                    streams.push(key.appointment.stream());
                    streams.extend(
                        appointment_of(loaded, key.appointment)
                            .session
                            .map(|s| s.stream()),
                    );
                }
                streams
            }
            ExecutePurge { subject, .. }
            | VerifyDeletion { subject, .. }
            | FailDeletionVerification { subject, .. } => vec![subject.stream()],
            RecordAuditView { appointment, .. } => {
                vec![appointment.stream(), record::audit_stream(*appointment)]
            }
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
        let tenant = ctx.tenant;
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
            SchedulePurge {
                appointment,
                final_state,
                final_at,
            } => {
                let state = appointment_of(h, *appointment);
                let booking = state
                    .booking
                    .as_ref()
                    .ok_or(DomainError::UnknownAppointment)?;
                let subject = booking.subject;
                match subject_of(h, subject).schedule(*final_state, *final_at, tenant)? {
                    Some(scheduled) => Ok(one(subject.stream(), scheduled)),
                    None => Ok(vec![]),
                }
            }
            CheckPurge { subject, retry_at } => {
                let state = subject_of(h, *subject);
                state.purge(ctx.now)?;
                let key = state.key.as_ref().ok_or(DomainError::UnknownSubject)?;
                let appointment = appointment_of(h, key.appointment);
                let session = appointment
                    .session
                    .map(|s| session_of(h, s))
                    .unwrap_or_default();
                match SubjectState::missing_handover(&appointment, &session, tenant) {
                    None => Ok(vec![]),
                    Some(reason) => Ok(one(
                        subject.stream(),
                        PurgeBlocked {
                            reason,
                            retry_at: *retry_at,
                        },
                    )),
                }
            }
            ExecutePurge { subject, result } => {
                subject_of(h, *subject).purge(ctx.now)?;
                Ok(one(subject.stream(), result.clone()))
            }
            VerifyDeletion { subject, checks } => {
                let state = subject_of(h, *subject);
                if !state.purged {
                    return Err(DomainError::NotYetPurged);
                }
                if state.verified {
                    return Ok(vec![]);
                }
                Ok(one(
                    subject.stream(),
                    DeletionVerified {
                        checks: checks.clone(),
                    },
                ))
            }
            FailDeletionVerification { subject, places } => {
                let state = subject_of(h, *subject);
                if !state.purged {
                    return Err(DomainError::NotYetPurged);
                }
                Ok(one(
                    subject.stream(),
                    DeletionVerificationFailed {
                        places: places.clone(),
                    },
                ))
            }
            RecordAuditView { appointment, as_of } => {
                // Any appointment ever booked has a record, cancelled or purged ones included.
                if appointment_of(h, *appointment).booking.is_none() {
                    return Err(DomainError::UnknownAppointment);
                }
                Ok(one(
                    record::audit_stream(*appointment),
                    AuditRecordViewed {
                        appointment: *appointment,
                        as_of: *as_of,
                    },
                ))
            }
        }
    }
}
