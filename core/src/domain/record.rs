//! The whole record of one appointment, as auditors see it: the states of all its streams.
//!
//! Time travel ("the state as of global position N") folds this record over the appointment's
//! events up to N. It uses the very `evolve` functions the deciders use, so what an auditor
//! sees is what the rules saw; there is no second implementation to drift.

use std::collections::BTreeMap;

use super::appointment::AppointmentState;
use super::calendar::{CalendarState, Reservation};
use super::events::AuditRecordViewed;
use super::form::FormState;
use super::payment::PaymentState;
use super::session::SessionState;
use super::subject::SubjectState;
use super::{
    AppointmentId, Context, Decision, DomainError, DomainEvent, FormId, Histories, PaymentId,
    SessionId, one,
};
use crate::event::StreamId;

/// The stream of audit reads of one appointment.
pub fn audit_stream(appointment: AppointmentId) -> StreamId {
    StreamId::of("audit", appointment.0).expect("a category and a UUID make a valid stream id")
}

/// The command of an appointment's audit stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordCommand {
    /// Before an auditor is shown an appointment's record (as of a position, or current).
    RecordAuditView {
        appointment: AppointmentId,
        as_of: Option<u64>,
    },
}

impl RecordCommand {
    pub fn streams(&self, _loaded: &Histories, _ctx: &Context<'_>) -> Vec<StreamId> {
        let Self::RecordAuditView { appointment, .. } = self;
        vec![appointment.stream(), audit_stream(*appointment)]
    }

    pub fn decide(&self, h: &Histories, _ctx: &Context<'_>) -> Result<Decision, DomainError> {
        let Self::RecordAuditView { appointment, as_of } = self;
        // Any appointment ever booked has a record, cancelled or purged ones included.
        if h.fold(&appointment.stream(), AppointmentState::evolve)
            .booking
            .is_none()
        {
            return Err(DomainError::UnknownAppointment);
        }
        Ok(one(
            audit_stream(*appointment),
            AuditRecordViewed {
                appointment: *appointment,
                as_of: *as_of,
            },
        ))
    }
}

/// The state of every stream of one appointment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AppointmentRecord {
    pub appointment: AppointmentState,
    /// The appointment's own reservation on its calendar day; the rest of the day belongs to
    /// other appointments and is not part of this record.
    pub reservation: Option<Reservation>,
    pub session: Option<(SessionId, SessionState)>,
    pub forms: BTreeMap<FormId, FormState>,
    pub payments: BTreeMap<PaymentId, PaymentState>,
    pub subject: SubjectState,
    /// Audit reads of this record so far.
    pub audit_views: u32,
}

impl AppointmentRecord {
    /// Folds one event of one of the appointment's streams.
    pub fn evolve(mut self, id: AppointmentId, stream: &StreamId, event: &DomainEvent) -> Self {
        let Some((category, rest)) = stream.as_str().split_once('-') else {
            return self;
        };
        let uuid = uuid::Uuid::parse_str(rest).ok();
        match (category, uuid) {
            ("appointment", _) => self.appointment = self.appointment.evolve(event),
            ("slot" | "calendar", _) => {
                // Only this appointment's own reservation, folded with the calendar's evolve;
                // each slot stream repeats the whole reservation.
                let mut day = CalendarState::default();
                if let Some(r) = self.reservation {
                    day.reservations.insert(id, r);
                }
                self.reservation = day.evolve(event).reservations.get(&id).copied();
            }
            ("session", Some(uuid)) => {
                let (session, state) = self
                    .session
                    .take()
                    .unwrap_or_else(|| (SessionId(uuid), SessionState::default()));
                self.session = Some((session, state.evolve(event)));
            }
            ("form", Some(uuid)) => {
                let state = self.forms.remove(&FormId(uuid)).unwrap_or_default();
                self.forms.insert(FormId(uuid), state.evolve(event));
            }
            ("payment", Some(uuid)) => {
                let state = self.payments.remove(&PaymentId(uuid)).unwrap_or_default();
                self.payments.insert(PaymentId(uuid), state.evolve(event));
            }
            ("subject", _) => self.subject = std::mem::take(&mut self.subject).evolve(event),
            ("audit", _) => {
                if matches!(event, DomainEvent::AuditRecordViewed(_)) {
                    self.audit_views += 1;
                }
            }
            _ => {}
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::gwt::{MONDAY_8, ettlingen, given};

    fn appointment(n: u128) -> AppointmentId {
        AppointmentId(uuid::Uuid::from_u128(n))
    }

    #[test]
    fn given_no_appointment_when_recording_an_audit_view_then_refused() {
        given(ettlingen(), vec![])
            .at(MONDAY_8)
            .when(RecordCommand::RecordAuditView {
                appointment: appointment(7),
                as_of: None,
            })
            .then_error(DomainError::UnknownAppointment);
    }

    #[test]
    fn audit_views_count_only_on_the_audit_stream() {
        let id = appointment(7);
        let viewed: DomainEvent = AuditRecordViewed {
            appointment: id,
            as_of: Some(3),
        }
        .into();
        let record = AppointmentRecord::default()
            .evolve(id, &audit_stream(id), &viewed)
            .evolve(id, &audit_stream(id), &viewed);
        assert_eq!(record.audit_views, 2);
        assert_eq!(record.appointment, AppointmentState::default());
    }
}
