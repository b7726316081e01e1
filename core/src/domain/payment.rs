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
