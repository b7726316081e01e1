//! `payment-{id}`: the fee of an appointment, through a payment provider.
//!
//! Invariants: the amount is the sum of the booked services' fees; a payment is captured at
//! most once; refunds never exceed what was captured.

use super::events::{FeeItem, PaymentRequested};
use super::{DomainError, DomainEvent};
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

/// The fee items and their sum for a set of services.
pub fn fees(tenant: &Tenant, services: &[ServiceId]) -> Result<(Vec<FeeItem>, Cents), DomainError> {
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

    fn then(history: &Decision, command: Command) -> Decision {
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
            Command::RequestPayment {
                payment: payment(),
                appointment: appointment(1),
            },
        )
    }

    fn authorized() -> Decision {
        let h = then(
            &requested(),
            Command::ChoosePaymentMethod {
                payment: payment(),
                method: "paypal".into(),
            },
        );
        then(
            &h,
            Command::AuthorizePayment {
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
            .when(Command::RequestPayment {
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
            .when(Command::RequestPayment {
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
            .when(Command::RequestPayment {
                payment: payment(),
                appointment: appointment(1),
            })
            .then_error(DomainError::NothingToPay);
    }

    #[test]
    fn method_then_authorization_then_one_capture() {
        given(ettlingen(), requested())
            .when(Command::ChoosePaymentMethod {
                payment: payment(),
                method: "giropay".into(),
            })
            .then_error(DomainError::PaymentMethodNotOffered);
        given(ettlingen(), requested())
            .when(Command::AuthorizePayment {
                payment: payment(),
                provider_reference: "x".into(),
            })
            .then_error(DomainError::PaymentMethodMissing);
        given(ettlingen(), requested())
            .when(Command::CapturePayment { payment: payment() })
            .then_error(DomainError::PaymentNotAuthorized);
        given(ettlingen(), authorized())
            .when(Command::CapturePayment { payment: payment() })
            .then_expect(vec![(
                payment().stream(),
                PaymentCaptured {
                    amount: Cents(4_700),
                }
                .into(),
            )]);
        let captured = then(
            &authorized(),
            Command::CapturePayment { payment: payment() },
        );
        given(ettlingen(), captured.clone())
            .when(Command::CapturePayment { payment: payment() })
            .then_error(DomainError::AlreadyCaptured);
        given(ettlingen(), captured)
            .when(Command::FailPayment {
                payment: payment(),
                reason: "abgelehnt".into(),
            })
            .then_error(DomainError::AlreadyCaptured);
    }

    #[test]
    fn a_failed_payment_is_closed() {
        let failed = then(
            &requested(),
            Command::FailPayment {
                payment: payment(),
                reason: "Karte abgelehnt".into(),
            },
        );
        given(ettlingen(), failed)
            .when(Command::ChoosePaymentMethod {
                payment: payment(),
                method: "kreditkarte".into(),
            })
            .then_error(DomainError::PaymentClosed);
        given(ettlingen(), vec![])
            .when(Command::CapturePayment { payment: payment() })
            .then_error(DomainError::UnknownPayment);
    }

    #[test]
    fn refunds_never_exceed_the_capture() {
        given(ettlingen(), authorized())
            .when(Command::RefundPayment {
                payment: payment(),
                amount: Cents(100),
            })
            .then_error(DomainError::RefundTooHigh);
        let captured = then(
            &authorized(),
            Command::CapturePayment { payment: payment() },
        );
        let h = then(
            &captured,
            Command::RefundPayment {
                payment: payment(),
                amount: Cents(1_000),
            },
        );
        given(ettlingen(), h.clone())
            .when(Command::RefundPayment {
                payment: payment(),
                amount: Cents(3_701),
            })
            .then_error(DomainError::RefundTooHigh);
        given(ettlingen(), h)
            .when(Command::RefundPayment {
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
