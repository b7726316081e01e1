//! The JSON of the payment protocol that [`super::HttpPaymentProvider`] speaks and the
//! built-in sandbox serves. Its names follow XBezahldienste (`requestId`, `purpose`,
//! `paymentInformation`, `transactionId`, `status` `INITIAL`/`PAYED`/`FAILED`/`CANCELED`);
//! where it differs, it says so (ADR 0019): amounts are integer cents, the tenant's methods
//! are offered by their slugs, a transaction may be `AUTHORIZED` before it is captured, and a
//! callback goes to `notifyUrl`.
//!
//! - `POST {base}/api/v1/paymenttransaction`: a [`PaymentRequest`]; 201 and a
//!   [`PaymentTransaction`].
//! - `GET {base}/api/v1/paymenttransaction/{transactionId}`: 200 and a
//!   [`PaymentTransaction`].
//! - `POST {base}/api/v1/paymenttransaction/{transactionId}/capture` with an
//!   `Idempotency-Key` header: 200 and a [`PaymentTransaction`] with `capturedAmountCents`.
//!
//! Every request carries `Authorization: Bearer {token}`; refusals are problem documents
//! (RFC 9457) whose `type` names the refusal ([`PROBLEM_NOT_APPROVED`], …).

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The path of the transactions, below the base URL.
pub const TRANSACTIONS: &str = "/api/v1/paymenttransaction";
/// The header of a capture's idempotency key.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";
/// The problem types the adapter tells apart.
pub const PROBLEM_UNKNOWN: &str = "/problems/payment-unknown-transaction";
pub const PROBLEM_NOT_APPROVED: &str = "/problems/payment-not-approved";
pub const PROBLEM_KEY_USED: &str = "/problems/payment-key-used";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PaymentRequest {
    pub request_id: Uuid,
    pub tenant: String,
    /// Always `EUR`.
    pub currency: String,
    pub gross_amount_cents: u64,
    pub purpose: String,
    pub description: String,
    pub redirect_url: String,
    pub notify_url: String,
    pub payment_methods: Vec<Method>,
    pub items: Vec<Item>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Method {
    pub id: String,
    pub label: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Item {
    pub reference: String,
    pub description: String,
    pub quantity: u32,
    pub total_cents: u64,
}

/// A transaction as the provider reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentTransaction {
    pub payment_information: PaymentInformation,
    /// What a capture took; only in the capture's answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub captured_amount_cents: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentInformation {
    pub transaction_id: String,
    /// The transaction's own URL, for the status.
    pub transaction_url: String,
    /// The citizen's page; only while the transaction is open.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transaction_redirect_url: Option<String>,
    pub status: Status,
    /// The method the citizen paid with, one of the offered ids; set once approved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payment_method: Option<String>,
    /// Why it failed, in the provider's words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_detail: Option<String>,
    /// When it was captured, RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transaction_timestamp: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Status {
    Initial,
    Authorized,
    Payed,
    Failed,
    Canceled,
}

/// What the provider posts to `notifyUrl`, signed ([`super::signature`]): only which
/// transaction changed, never its status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Notification {
    pub request_id: Uuid,
    pub transaction_id: String,
}

/// The part of a problem document the adapter reads.
#[derive(Debug, Clone, Deserialize)]
pub struct ProblemType {
    #[serde(rename = "type")]
    pub kind: String,
}
