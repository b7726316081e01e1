//! `payment-{id}`: the fee of an appointment, through a payment provider.
//!
//! Invariants: the amount is the sum of the booked services' fees; a payment is captured at
//! most once; refunds never exceed what was captured.
//!
//! A payment made in the session room goes through the provider port ([`crate::payment`],
//! ADR 0019) in attempts: each attempt is one provider transaction
//! ([`PaymentTransactionCreated`]); it ends approved ([`PaymentAuthorized`], then
//! [`PaymentCaptured`]) or failed, declined or abandoned ([`PaymentFailed`]), and a failed
//! attempt may be followed by another. Only one attempt is open at a time, so that a citizen
//! cannot pay twice. The provider's answers arrive more than once (the return page is
//! reloaded, callbacks are repeated); a fact the stream already holds is not written again.

use super::appointment::{AppointmentState, Status};
use super::events::{
    PaymentAttached, PaymentAuthorized, PaymentCaptured, PaymentFailed, PaymentFailure,
    PaymentMethodChosen, PaymentRefunded, PaymentRequested, PaymentTransactionCreated,
};
use super::session::SessionState;
use super::{
    AppointmentId, Context, Decision, DomainError, DomainEvent, Histories, PaymentId, SessionId,
    one,
};
use crate::event::StreamId;
use crate::payment::{ProviderReference, Purpose};
use crate::tenant::{Cents, PaymentMethodId, Tenant};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PaymentStatus {
    #[default]
    New,
    Requested,
    /// A provider transaction is open: the citizen is on the provider's page.
    Pending,
    Authorized,
    Captured,
    /// The last attempt failed; another may start.
    Failed,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PaymentState {
    pub status: PaymentStatus,
    pub request: Option<PaymentRequested>,
    pub method: Option<PaymentMethodId>,
    /// The provider transactions, one per attempt, in order; the last is the current one.
    pub attempts: Vec<PaymentTransactionCreated>,
    /// The provider reference the payment was authorized under.
    pub authorized: Option<String>,
    /// How the last failed attempt ended.
    pub failure: Option<PaymentFailed>,
    pub captured: Cents,
    pub refunded: Cents,
}

impl PaymentState {
    /// The payment's state as its loaded stream folds.
    pub fn of(h: &Histories, payment: PaymentId) -> Self {
        h.fold(&payment.stream(), Self::evolve)
    }

    pub fn evolve(mut self, event: &DomainEvent) -> Self {
        match event {
            DomainEvent::PaymentRequested(e) => {
                self.status = PaymentStatus::Requested;
                self.request = Some(e.clone());
            }
            DomainEvent::PaymentMethodChosen(e) => self.method = Some(e.method.clone()),
            DomainEvent::PaymentTransactionCreated(e) => {
                self.status = PaymentStatus::Pending;
                self.attempts.push(e.clone());
            }
            DomainEvent::PaymentAuthorized(e) => {
                self.status = PaymentStatus::Authorized;
                self.authorized = Some(e.provider_reference.clone());
            }
            DomainEvent::PaymentCaptured(e) => {
                self.status = PaymentStatus::Captured;
                self.captured = e.amount;
            }
            DomainEvent::PaymentFailed(e) => {
                self.status = PaymentStatus::Failed;
                self.failure = Some(e.clone());
            }
            DomainEvent::PaymentRefunded(e) => {
                self.refunded = self.refunded.checked_add(e.amount).unwrap_or(self.refunded);
            }
            _ => {}
        }
        self
    }

    pub fn requested(&self) -> Result<&PaymentRequested, DomainError> {
        self.request.as_ref().ok_or(DomainError::UnknownPayment)
    }

    /// Still before capture and not failed: method, authorization and capture may follow.
    pub fn in_progress(&self) -> Result<&PaymentRequested, DomainError> {
        let request = self.requested()?;
        match self.status {
            PaymentStatus::Captured => Err(DomainError::AlreadyCaptured),
            PaymentStatus::Failed => Err(DomainError::PaymentClosed),
            _ => Ok(request),
        }
    }

    /// The current attempt's transaction.
    pub fn current(&self) -> Option<&ProviderReference> {
        self.attempts.last().map(|a| &a.provider_reference)
    }

    /// Where `reference` stands among the attempts.
    fn attempt(&self, reference: &str) -> Attempt {
        match self
            .attempts
            .iter()
            .position(|a| a.provider_reference.as_str() == reference)
        {
            None => Attempt::Unknown,
            Some(i) if i + 1 == self.attempts.len() => Attempt::Current,
            Some(_) => Attempt::Earlier,
        }
    }
}

/// A provider reference, against a payment's attempts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Attempt {
    Unknown,
    /// Of an earlier attempt, which has failed: a late or repeated answer about it.
    Earlier,
    Current,
}

/// The commands of a payment's stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PaymentCommand {
    /// Requests the fees of the appointment's services; in `session`, when the citizen is to
    /// pay in the room (the session must be the appointment's, with the citizen admitted).
    RequestPayment {
        payment: PaymentId,
        appointment: AppointmentId,
        session: Option<SessionId>,
    },
    ChoosePaymentMethod {
        payment: PaymentId,
        method: PaymentMethodId,
    },
    /// Records the transaction the provider opened for a new attempt.
    StartPayment {
        payment: PaymentId,
        provider_reference: ProviderReference,
        redirect_url: String,
    },
    /// The provider authorized the payment; `method`, when given, is the method the provider
    /// reports, recorded with it.
    AuthorizePayment {
        payment: PaymentId,
        provider_reference: String,
        method: Option<PaymentMethodId>,
    },
    CapturePayment {
        payment: PaymentId,
    },
    /// The attempt `provider_reference` (or, without one, the payment outside any
    /// transaction) failed.
    FailPayment {
        payment: PaymentId,
        provider_reference: Option<ProviderReference>,
        kind: PaymentFailure,
        reason: String,
    },
    RefundPayment {
        payment: PaymentId,
        amount: Cents,
    },
}

impl PaymentCommand {
    pub fn payment(&self) -> PaymentId {
        match self {
            Self::RequestPayment { payment, .. }
            | Self::ChoosePaymentMethod { payment, .. }
            | Self::StartPayment { payment, .. }
            | Self::AuthorizePayment { payment, .. }
            | Self::CapturePayment { payment }
            | Self::FailPayment { payment, .. }
            | Self::RefundPayment { payment, .. } => *payment,
        }
    }

    pub fn streams(&self, loaded: &Histories, _ctx: &Context<'_>) -> Vec<StreamId> {
        match self {
            Self::RequestPayment {
                payment,
                appointment,
                session,
            } => {
                let mut streams = vec![payment.stream(), appointment.stream()];
                streams.extend(session.map(SessionId::stream));
                streams
            }
            // A new attempt in a session needs the citizen in the room: the session is named
            // by the request, once the payment is loaded.
            Self::StartPayment { payment, .. } => {
                let mut streams = vec![payment.stream()];
                if loaded.contains(&payment.stream()) {
                    let state = PaymentState::of(loaded, *payment);
                    streams.extend(state.request.and_then(|r| r.session).map(SessionId::stream));
                }
                streams
            }
            _ => vec![self.payment().stream()],
        }
    }

    pub fn decide(&self, h: &Histories, ctx: &Context<'_>) -> Result<Decision, DomainError> {
        let tenant = ctx.tenant;
        let payment = self.payment();
        let state = PaymentState::of(h, payment);
        let stream = payment.stream();
        match self {
            Self::RequestPayment {
                appointment,
                session,
                ..
            } => {
                if state.request.is_some() {
                    return Err(DomainError::PaymentAlreadyRequested);
                }
                let appointment_state = h.fold(&appointment.stream(), AppointmentState::evolve);
                let booking = appointment_state
                    .booking
                    .as_ref()
                    .ok_or(DomainError::UnknownAppointment)?;
                if appointment_state.status == Status::Cancelled {
                    return Err(DomainError::AlreadyCancelled);
                }
                if let Some(session) = session {
                    let session_state = SessionState::of(h, *session);
                    let opened = session_state.in_room()?;
                    if opened.appointment != *appointment {
                        return Err(DomainError::UnknownSession);
                    }
                    if session_state.payment.is_some() {
                        return Err(DomainError::PaymentAlreadyRequested);
                    }
                }
                // As booked: a fee changed since applies to new bookings only.
                let (items, amount) = booking.fees(tenant)?;
                if amount.0 == 0 {
                    return Err(DomainError::NothingToPay);
                }
                let mut decision = one(
                    stream,
                    PaymentRequested {
                        appointment: *appointment,
                        session: *session,
                        amount,
                        purpose: Purpose::of_appointment(*appointment).to_string(),
                        items,
                    },
                );
                if let Some(session) = session {
                    decision.push((session.stream(), PaymentAttached { payment }.into()));
                }
                Ok(decision)
            }
            Self::ChoosePaymentMethod { method, .. } => {
                state.in_progress()?;
                if state.status == PaymentStatus::Authorized {
                    return Err(DomainError::PaymentClosed);
                }
                offered(tenant, method)?;
                Ok(one(
                    stream,
                    PaymentMethodChosen {
                        method: method.clone(),
                    },
                ))
            }
            Self::StartPayment {
                provider_reference,
                redirect_url,
                ..
            } => {
                let request = state.requested()?;
                match state.status {
                    PaymentStatus::Captured => return Err(DomainError::AlreadyCaptured),
                    PaymentStatus::Pending | PaymentStatus::Authorized => {
                        return Err(DomainError::PaymentInProgress);
                    }
                    _ => {}
                }
                if let Some(session) = request.session {
                    SessionState::of(h, session).in_room()?;
                }
                Ok(one(
                    stream,
                    PaymentTransactionCreated {
                        provider_reference: provider_reference.clone(),
                        redirect_url: redirect_url.clone(),
                    },
                ))
            }
            Self::AuthorizePayment {
                provider_reference,
                method,
                ..
            } => {
                state.requested()?;
                let same = state.authorized.as_deref() == Some(provider_reference.as_str());
                // A repeated answer about what is already recorded writes nothing.
                if same
                    && matches!(
                        state.status,
                        PaymentStatus::Authorized | PaymentStatus::Captured
                    )
                {
                    return Ok(vec![]);
                }
                state.in_progress()?;
                if state.status == PaymentStatus::Authorized {
                    return Ok(vec![]);
                }
                if !state.attempts.is_empty()
                    && state.attempt(provider_reference) != Attempt::Current
                {
                    return Err(DomainError::UnknownPaymentTransaction);
                }
                let mut decision = Decision::new();
                if let Some(method) = method {
                    offered(tenant, method)?;
                    if state.method.as_ref() != Some(method) {
                        decision.push((
                            stream.clone(),
                            PaymentMethodChosen {
                                method: method.clone(),
                            }
                            .into(),
                        ));
                    }
                } else if state.method.is_none() {
                    return Err(DomainError::PaymentMethodMissing);
                }
                decision.push((
                    stream,
                    PaymentAuthorized {
                        provider_reference: provider_reference.clone(),
                    }
                    .into(),
                ));
                Ok(decision)
            }
            Self::CapturePayment { .. } => {
                let request = state.in_progress()?;
                if state.status != PaymentStatus::Authorized {
                    return Err(DomainError::PaymentNotAuthorized);
                }
                Ok(one(
                    stream,
                    PaymentCaptured {
                        amount: request.amount,
                    },
                ))
            }
            Self::FailPayment {
                provider_reference,
                kind,
                reason,
                ..
            } => {
                state.requested()?;
                let attempt = provider_reference
                    .as_ref()
                    .map(|r| state.attempt(r.as_str()));
                match attempt {
                    Some(Attempt::Unknown) => return Err(DomainError::UnknownPaymentTransaction),
                    // That attempt failed before (even if a later one was paid); saying so
                    // again changes nothing.
                    Some(Attempt::Earlier) => return Ok(vec![]),
                    _ => {}
                }
                if state.status == PaymentStatus::Captured {
                    return Err(DomainError::AlreadyCaptured);
                }
                match attempt {
                    Some(_) if state.status == PaymentStatus::Failed => return Ok(vec![]),
                    Some(_) => {}
                    None => {
                        state.in_progress()?;
                    }
                }
                Ok(one(
                    stream,
                    PaymentFailed {
                        provider_reference: provider_reference.clone(),
                        kind: *kind,
                        reason: reason.clone(),
                    },
                ))
            }
            Self::RefundPayment { amount, .. } => {
                state.requested()?;
                let after = state
                    .refunded
                    .checked_add(*amount)
                    .ok_or(DomainError::RefundTooHigh)?;
                if state.status != PaymentStatus::Captured
                    || after > state.captured
                    || amount.0 == 0
                {
                    return Err(DomainError::RefundTooHigh);
                }
                Ok(one(stream, PaymentRefunded { amount: *amount }))
            }
        }
    }
}

fn offered(tenant: &Tenant, method: &PaymentMethodId) -> Result<(), DomainError> {
    if tenant.payment_methods.iter().any(|m| &m.id == method) {
        Ok(())
    } else {
        Err(DomainError::PaymentMethodNotOffered)
    }
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;
    use crate::domain::appointment::tests::{TUE_9, appointment, booked, booking};
    use crate::domain::command::Command;
    use crate::domain::events::Party;
    use crate::domain::events::*;
    use crate::domain::gwt::{ettlingen, given};
    use crate::domain::session::SessionCommand;
    use crate::domain::{Decision, PaymentId, SessionId};

    fn payment() -> PaymentId {
        PaymentId(Uuid::from_u128(3))
    }

    fn session() -> SessionId {
        SessionId(Uuid::from_u128(77))
    }

    fn reference(n: u8) -> ProviderReference {
        ProviderReference::parse(&format!("sbx_{n}")).expect("a valid reference")
    }

    /// The booked appointment's session with the citizen admitted.
    fn admitted() -> Decision {
        let mut h = booked(
            ettlingen(),
            vec![],
            booking(
                1,
                "buergerbuero",
                &["personalausweis", "meldebescheinigung"],
                TUE_9,
            ),
        );
        let steps: [Command; 4] = [
            SessionCommand::OpenSession {
                appointment: appointment(1),
                session: session(),
            }
            .into(),
            SessionCommand::Join {
                session: session(),
                party: Party::Citizen,
            }
            .into(),
            SessionCommand::AcceptPrivacyNotice { session: session() }.into(),
            SessionCommand::Admit {
                session: session(),
                clerk: "a.becker".into(),
            }
            .into(),
        ];
        for step in steps {
            h = then(&h, step);
        }
        h
    }

    /// The fees requested in the admitted session.
    fn requested_in_session() -> Decision {
        then(
            &admitted(),
            PaymentCommand::RequestPayment {
                payment: payment(),
                appointment: appointment(1),
                session: Some(session()),
            },
        )
    }

    fn start(n: u8) -> PaymentCommand {
        PaymentCommand::StartPayment {
            payment: payment(),
            provider_reference: reference(n),
            redirect_url: format!("http://amt.test/sandbox/zahlung/bezahlen/sbx_{n}"),
        }
    }

    fn fail(n: u8, kind: PaymentFailure) -> PaymentCommand {
        PaymentCommand::FailPayment {
            payment: payment(),
            provider_reference: Some(reference(n)),
            kind,
            reason: "Sandbox".into(),
        }
    }

    fn authorize(n: u8, method: &str) -> PaymentCommand {
        PaymentCommand::AuthorizePayment {
            payment: payment(),
            provider_reference: reference(n).to_string(),
            method: Some(method.into()),
        }
    }

    fn failed(n: u8, kind: PaymentFailure) -> DomainEvent {
        PaymentFailed {
            provider_reference: Some(reference(n)),
            kind,
            reason: "Sandbox".into(),
        }
        .into()
    }

    fn then(history: &Decision, command: impl Into<Command>) -> Decision {
        booked(ettlingen(), history.clone(), command)
    }

    fn requested() -> Decision {
        let h = booked(
            ettlingen(),
            vec![],
            booking(
                1,
                "buergerbuero",
                &["personalausweis", "meldebescheinigung"],
                TUE_9,
            ),
        );
        then(
            &h,
            PaymentCommand::RequestPayment {
                payment: payment(),
                appointment: appointment(1),
                session: None,
            },
        )
    }

    fn authorized() -> Decision {
        let h = then(
            &requested(),
            PaymentCommand::ChoosePaymentMethod {
                payment: payment(),
                method: "paypal".into(),
            },
        );
        then(
            &h,
            PaymentCommand::AuthorizePayment {
                payment: payment(),
                provider_reference: "sandbox-1".into(),
                method: None,
            },
        )
    }

    #[test]
    fn a_fee_changed_after_the_booking_applies_to_new_bookings_only() {
        let (file, text) = crate::tenant::EXAMPLE_TENANTS[0];
        let text = text.replace("fee_cents = 3700", "fee_cents = 4200");
        let dearer: &'static Tenant =
            Box::leak(Box::new(Tenant::from_toml(file, &text).expect("valid")));
        let services = ["personalausweis", "meldebescheinigung"];
        let request = || PaymentCommand::RequestPayment {
            payment: payment(),
            appointment: appointment(1),
            session: None,
        };
        let amount = |h: &Decision| match h.last() {
            Some((_, DomainEvent::PaymentRequested(p))) => (p.amount, p.items.clone()),
            other => panic!("not a request: {other:?}"),
        };
        // Booked at 37 € for the ID card, asked for after the change: still 37 €.
        let before = booked(
            ettlingen(),
            vec![],
            booking(1, "buergerbuero", &services, TUE_9),
        );
        let asked = given(dearer, before).when(request()).decision();
        assert_eq!(amount(&asked).0, Cents(4_700));
        assert_eq!(amount(&asked).1[0].amount, Cents(3_700));
        // Booked after the change: 42 €.
        let after = booked(dearer, vec![], booking(1, "buergerbuero", &services, TUE_9));
        let asked = given(dearer, after).when(request()).decision();
        assert_eq!(amount(&asked).0, Cents(5_200));
    }

    #[test]
    fn the_amount_is_the_sum_of_the_booked_services_fees() {
        let h = booked(
            ettlingen(),
            vec![],
            booking(
                1,
                "buergerbuero",
                &["personalausweis", "meldebescheinigung"],
                TUE_9,
            ),
        );
        given(ettlingen(), h)
            .when(PaymentCommand::RequestPayment {
                payment: payment(),
                appointment: appointment(1),
                session: None,
            })
            .then_expect(vec![(
                payment().stream(),
                PaymentRequested {
                    appointment: appointment(1),
                    session: None,
                    amount: Cents(4_700),
                    purpose: "Videotermin 00000001".into(),
                    items: vec![
                        FeeItem {
                            service: "personalausweis".into(),
                            amount: Cents(3_700),
                        },
                        FeeItem {
                            service: "meldebescheinigung".into(),
                            amount: Cents(1_000),
                        },
                    ],
                }
                .into(),
            )]);
        given(ettlingen(), requested())
            .when(PaymentCommand::RequestPayment {
                payment: payment(),
                appointment: appointment(1),
                session: None,
            })
            .then_error(DomainError::PaymentAlreadyRequested);
    }

    #[test]
    fn free_services_have_nothing_to_pay() {
        let h = booked(
            ettlingen(),
            vec![],
            booking(1, "wohngeldbehoerde", &["wohngeld-beratung"], TUE_9),
        );
        given(ettlingen(), h)
            .when(PaymentCommand::RequestPayment {
                payment: payment(),
                appointment: appointment(1),
                session: None,
            })
            .then_error(DomainError::NothingToPay);
    }

    #[test]
    fn method_then_authorization_then_one_capture() {
        given(ettlingen(), requested())
            .when(PaymentCommand::ChoosePaymentMethod {
                payment: payment(),
                method: "giropay".into(),
            })
            .then_error(DomainError::PaymentMethodNotOffered);
        given(ettlingen(), requested())
            .when(PaymentCommand::AuthorizePayment {
                payment: payment(),
                provider_reference: "x".into(),
                method: None,
            })
            .then_error(DomainError::PaymentMethodMissing);
        given(ettlingen(), requested())
            .when(PaymentCommand::CapturePayment { payment: payment() })
            .then_error(DomainError::PaymentNotAuthorized);
        given(ettlingen(), authorized())
            .when(PaymentCommand::CapturePayment { payment: payment() })
            .then_expect(vec![(
                payment().stream(),
                PaymentCaptured {
                    amount: Cents(4_700),
                }
                .into(),
            )]);
        let captured = then(
            &authorized(),
            PaymentCommand::CapturePayment { payment: payment() },
        );
        given(ettlingen(), captured.clone())
            .when(PaymentCommand::CapturePayment { payment: payment() })
            .then_error(DomainError::AlreadyCaptured);
        given(ettlingen(), captured)
            .when(PaymentCommand::FailPayment {
                payment: payment(),
                provider_reference: None,
                kind: PaymentFailure::Declined,
                reason: "abgelehnt".into(),
            })
            .then_error(DomainError::AlreadyCaptured);
    }

    #[test]
    fn a_failed_payment_outside_a_transaction_is_closed() {
        let failed = then(
            &requested(),
            PaymentCommand::FailPayment {
                payment: payment(),
                provider_reference: None,
                kind: PaymentFailure::Declined,
                reason: "Karte abgelehnt".into(),
            },
        );
        given(ettlingen(), failed)
            .when(PaymentCommand::ChoosePaymentMethod {
                payment: payment(),
                method: "kreditkarte".into(),
            })
            .then_error(DomainError::PaymentClosed);
        given(ettlingen(), vec![])
            .when(PaymentCommand::CapturePayment { payment: payment() })
            .then_error(DomainError::UnknownPayment);
    }

    #[test]
    fn refunds_never_exceed_the_capture() {
        given(ettlingen(), authorized())
            .when(PaymentCommand::RefundPayment {
                payment: payment(),
                amount: Cents(100),
            })
            .then_error(DomainError::RefundTooHigh);
        let captured = then(
            &authorized(),
            PaymentCommand::CapturePayment { payment: payment() },
        );
        let h = then(
            &captured,
            PaymentCommand::RefundPayment {
                payment: payment(),
                amount: Cents(1_000),
            },
        );
        given(ettlingen(), h.clone())
            .when(PaymentCommand::RefundPayment {
                payment: payment(),
                amount: Cents(3_701),
            })
            .then_error(DomainError::RefundTooHigh);
        given(ettlingen(), h)
            .when(PaymentCommand::RefundPayment {
                payment: payment(),
                amount: Cents(3_700),
            })
            .then_expect(vec![(
                payment().stream(),
                PaymentRefunded {
                    amount: Cents(3_700),
                }
                .into(),
            )]);
    }

    #[test]
    fn in_the_session_the_request_is_attached_to_the_room() {
        given(ettlingen(), admitted())
            .when(PaymentCommand::RequestPayment {
                payment: payment(),
                appointment: appointment(1),
                session: Some(session()),
            })
            .then_expect(vec![
                (
                    payment().stream(),
                    PaymentRequested {
                        appointment: appointment(1),
                        session: Some(session()),
                        amount: Cents(4_700),
                        purpose: "Videotermin 00000001".into(),
                        items: vec![
                            FeeItem {
                                service: "personalausweis".into(),
                                amount: Cents(3_700),
                            },
                            FeeItem {
                                service: "meldebescheinigung".into(),
                                amount: Cents(1_000),
                            },
                        ],
                    }
                    .into(),
                ),
                (
                    session().stream(),
                    PaymentAttached { payment: payment() }.into(),
                ),
            ]);
        // One payment per session.
        given(ettlingen(), requested_in_session())
            .when(PaymentCommand::RequestPayment {
                payment: PaymentId(Uuid::from_u128(4)),
                appointment: appointment(1),
                session: Some(session()),
            })
            .then_error(DomainError::PaymentAlreadyRequested);
        // Not before the citizen is in the room, and never for another appointment's session.
        let waiting = then(
            &admitted(),
            SessionCommand::SendBackToWaitingRoom {
                session: session(),
                clerk: "a.becker".into(),
            },
        );
        given(ettlingen(), waiting)
            .when(PaymentCommand::RequestPayment {
                payment: payment(),
                appointment: appointment(1),
                session: Some(session()),
            })
            .then_error(DomainError::NotAdmitted);
        let other = booked(
            ettlingen(),
            admitted(),
            booking(2, "buergerbuero", &["meldebescheinigung"], TUE_9),
        );
        given(ettlingen(), other)
            .when(PaymentCommand::RequestPayment {
                payment: payment(),
                appointment: appointment(2),
                session: Some(session()),
            })
            .then_error(DomainError::UnknownSession);
    }

    #[test]
    fn an_attempt_is_approved_with_its_method_and_captured_once() {
        given(ettlingen(), requested_in_session())
            .when(start(1))
            .then_expect(vec![(
                payment().stream(),
                PaymentTransactionCreated {
                    provider_reference: reference(1),
                    redirect_url: "http://amt.test/sandbox/zahlung/bezahlen/sbx_1".into(),
                }
                .into(),
            )]);
        let open = then(&requested_in_session(), start(1));
        // One attempt at a time: no second transaction while the first is open.
        given(ettlingen(), open.clone())
            .when(start(2))
            .then_error(DomainError::PaymentInProgress);
        given(ettlingen(), open.clone())
            .when(authorize(1, "giropay"))
            .then_error(DomainError::PaymentMethodNotOffered);
        given(ettlingen(), open.clone())
            .when(authorize(1, "paypal"))
            .then_expect(vec![
                (
                    payment().stream(),
                    PaymentMethodChosen {
                        method: "paypal".into(),
                    }
                    .into(),
                ),
                (
                    payment().stream(),
                    PaymentAuthorized {
                        provider_reference: "sbx_1".into(),
                    }
                    .into(),
                ),
            ]);
        let approved = then(&open, authorize(1, "paypal"));
        // The return page and the callback both report the approval: it is written once.
        given(ettlingen(), approved.clone())
            .when(authorize(1, "paypal"))
            .then_nothing();
        given(ettlingen(), approved.clone())
            .when(start(2))
            .then_error(DomainError::PaymentInProgress);
        let captured = then(
            &approved,
            PaymentCommand::CapturePayment { payment: payment() },
        );
        given(ettlingen(), captured.clone())
            .when(authorize(1, "paypal"))
            .then_nothing();
        given(ettlingen(), captured.clone())
            .when(PaymentCommand::CapturePayment { payment: payment() })
            .then_error(DomainError::AlreadyCaptured);
        given(ettlingen(), captured.clone())
            .when(start(2))
            .then_error(DomainError::AlreadyCaptured);
        given(ettlingen(), captured)
            .when(fail(1, PaymentFailure::Declined))
            .then_error(DomainError::AlreadyCaptured);
    }

    #[test]
    fn a_declined_or_abandoned_attempt_is_followed_by_another() {
        let open = then(&requested_in_session(), start(1));
        given(ettlingen(), open.clone())
            .when(fail(1, PaymentFailure::Declined))
            .then_expect(vec![(
                payment().stream(),
                failed(1, PaymentFailure::Declined),
            )]);
        let declined = then(&open, fail(1, PaymentFailure::Declined));
        // Told again (a reload, a replayed callback): nothing new.
        given(ettlingen(), declined.clone())
            .when(fail(1, PaymentFailure::Declined))
            .then_nothing();
        given(ettlingen(), declined.clone())
            .when(authorize(1, "paypal"))
            .then_error(DomainError::PaymentClosed);
        let retried = then(&declined, start(2));
        // A late word about the first attempt changes nothing about the second.
        given(ettlingen(), retried.clone())
            .when(fail(1, PaymentFailure::Declined))
            .then_nothing();
        given(ettlingen(), retried.clone())
            .when(authorize(1, "paypal"))
            .then_error(DomainError::UnknownPaymentTransaction);
        given(ettlingen(), retried.clone())
            .when(fail(9, PaymentFailure::Abandoned))
            .then_error(DomainError::UnknownPaymentTransaction);
        given(ettlingen(), retried.clone())
            .when(fail(2, PaymentFailure::Abandoned))
            .then_expect(vec![(
                payment().stream(),
                failed(2, PaymentFailure::Abandoned),
            )]);
        let abandoned = then(&retried, fail(2, PaymentFailure::Abandoned));
        let third = then(&abandoned, start(3));
        let approved = then(&third, authorize(3, "kreditkarte"));
        given(ettlingen(), approved.clone())
            .when(PaymentCommand::CapturePayment { payment: payment() })
            .then_expect(vec![(
                payment().stream(),
                PaymentCaptured {
                    amount: Cents(4_700),
                }
                .into(),
            )]);
        // Once paid, the earlier attempts' failures are still old news, not a refusal.
        let paid = then(
            &approved,
            PaymentCommand::CapturePayment { payment: payment() },
        );
        given(ettlingen(), paid.clone())
            .when(fail(1, PaymentFailure::Declined))
            .then_nothing();
        given(ettlingen(), paid)
            .when(fail(3, PaymentFailure::Declined))
            .then_error(DomainError::AlreadyCaptured);
    }

    #[test]
    fn a_new_attempt_in_a_session_needs_the_citizen_in_the_room() {
        let waiting = then(
            &requested_in_session(),
            SessionCommand::SendBackToWaitingRoom {
                session: session(),
                clerk: "a.becker".into(),
            },
        );
        given(ettlingen(), waiting)
            .when(start(1))
            .then_error(DomainError::NotAdmitted);
        // An attempt already open is still settled when the citizen is back in the waiting
        // room: the money must not be left in the air.
        let open = then(&requested_in_session(), start(1));
        let waiting = then(
            &open,
            SessionCommand::SendBackToWaitingRoom {
                session: session(),
                clerk: "a.becker".into(),
            },
        );
        let approved = then(&waiting, authorize(1, "paypal"));
        given(ettlingen(), approved)
            .when(PaymentCommand::CapturePayment { payment: payment() })
            .then_expect(vec![(
                payment().stream(),
                PaymentCaptured {
                    amount: Cents(4_700),
                }
                .into(),
            )]);
        // Outside a session nothing about a room is asked.
        given(ettlingen(), requested())
            .when(start(1))
            .then_expect(vec![(
                payment().stream(),
                PaymentTransactionCreated {
                    provider_reference: reference(1),
                    redirect_url: "http://amt.test/sandbox/zahlung/bezahlen/sbx_1".into(),
                }
                .into(),
            )]);
    }
}
