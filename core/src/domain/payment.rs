//! `payment-{id}`: the fee of an appointment, through a payment provider.
//!
//! Invariants: the amount is the sum of the booked services' fees; a payment is captured at
//! most once; refunds never exceed what was captured.

use super::appointment::{AppointmentState, Status};
use super::events::{
    FeeItem, PaymentAuthorized, PaymentCaptured, PaymentFailed, PaymentMethodChosen,
    PaymentRefunded, PaymentRequested,
};
use super::{
    AppointmentId, Context, Decision, DomainError, DomainEvent, Histories, PaymentId, one,
};
use crate::event::StreamId;
use crate::tenant::{Cents, PaymentMethodId, ServiceId, Tenant};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PaymentStatus {
    #[default]
    New,
    Requested,
    Authorized,
    Captured,
    Failed,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PaymentState {
    pub status: PaymentStatus,
    pub request: Option<PaymentRequested>,
    pub method: Option<PaymentMethodId>,
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
            DomainEvent::PaymentAuthorized(_) => self.status = PaymentStatus::Authorized,
            DomainEvent::PaymentCaptured(e) => {
                self.status = PaymentStatus::Captured;
                self.captured = e.amount;
            }
            DomainEvent::PaymentFailed(_) => self.status = PaymentStatus::Failed,
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
}

/// The commands of a payment's stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PaymentCommand {
    /// Requests the fees of the appointment's services.
    RequestPayment {
        payment: PaymentId,
        appointment: AppointmentId,
    },
    ChoosePaymentMethod {
        payment: PaymentId,
        method: PaymentMethodId,
    },
    AuthorizePayment {
        payment: PaymentId,
        provider_reference: String,
    },
    CapturePayment {
        payment: PaymentId,
    },
    FailPayment {
        payment: PaymentId,
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
            | Self::AuthorizePayment { payment, .. }
            | Self::CapturePayment { payment }
            | Self::FailPayment { payment, .. }
            | Self::RefundPayment { payment, .. } => *payment,
        }
    }

    pub fn streams(&self, _loaded: &Histories, _ctx: &Context<'_>) -> Vec<StreamId> {
        match self {
            Self::RequestPayment {
                payment,
                appointment,
            } => vec![payment.stream(), appointment.stream()],
            _ => vec![self.payment().stream()],
        }
    }

    pub fn decide(&self, h: &Histories, ctx: &Context<'_>) -> Result<Decision, DomainError> {
        let tenant = ctx.tenant;
        let payment = self.payment();
        let state = PaymentState::of(h, payment);
        let stream = payment.stream();
        match self {
            Self::RequestPayment { appointment, .. } => {
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
                let (items, amount) = fees(tenant, &booking.services)?;
                if amount.0 == 0 {
                    return Err(DomainError::NothingToPay);
                }
                let names: Vec<&str> = items
                    .iter()
                    .filter_map(|i| tenant.service(&i.service).map(|s| s.name.as_str()))
                    .collect();
                Ok(one(
                    stream,
                    PaymentRequested {
                        appointment: *appointment,
                        amount,
                        purpose: format!("{}: {}", tenant.name, names.join(", ")),
                        items,
                    },
                ))
            }
            Self::ChoosePaymentMethod { method, .. } => {
                state.in_progress()?;
                if state.status == PaymentStatus::Authorized {
                    return Err(DomainError::PaymentClosed);
                }
                if !tenant.payment_methods.iter().any(|m| &m.id == method) {
                    return Err(DomainError::PaymentMethodNotOffered);
                }
                Ok(one(
                    stream,
                    PaymentMethodChosen {
                        method: method.clone(),
                    },
                ))
            }
            Self::AuthorizePayment {
                provider_reference, ..
            } => {
                state.in_progress()?;
                if state.method.is_none() {
                    return Err(DomainError::PaymentMethodMissing);
                }
                if state.status == PaymentStatus::Authorized {
                    return Ok(vec![]);
                }
                Ok(one(
                    stream,
                    PaymentAuthorized {
                        provider_reference: provider_reference.clone(),
                    },
                ))
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
            Self::FailPayment { reason, .. } => {
                state.in_progress()?;
                Ok(one(
                    stream,
                    PaymentFailed {
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

/// The fee items and their sum for a set of services.
fn fees(tenant: &Tenant, services: &[ServiceId]) -> Result<(Vec<FeeItem>, Cents), DomainError> {
    let mut items = Vec::new();
    let mut total = Cents(0);
    for id in services {
        let service = tenant
            .service(id)
            .ok_or_else(|| DomainError::UnknownService(id.clone()))?;
        if service.fee.0 > 0 {
            items.push(FeeItem {
                service: id.clone(),
                amount: service.fee,
            });
        }
        total = total
            .checked_add(service.fee)
            .ok_or(DomainError::NothingToPay)?;
    }
    Ok((items, total))
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;
    use crate::domain::appointment::tests::{TUE_9, appointment, booked, booking};
    use crate::domain::command::Command;
    use crate::domain::events::*;
    use crate::domain::gwt::{ettlingen, given};
    use crate::domain::{Decision, PaymentId};

    fn payment() -> PaymentId {
        PaymentId(Uuid::from_u128(3))
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
            },
        )
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
            })
            .then_expect(vec![(
                payment().stream(),
                PaymentRequested {
                    appointment: appointment(1),
                    amount: Cents(4_700),
                    purpose: "Stadt Ettlingen: Personalausweis beantragen, Meldebescheinigung"
                        .into(),
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
                reason: "abgelehnt".into(),
            })
            .then_error(DomainError::AlreadyCaptured);
    }

    #[test]
    fn a_failed_payment_is_closed() {
        let failed = then(
            &requested(),
            PaymentCommand::FailPayment {
                payment: payment(),
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
}
