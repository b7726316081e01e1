//! The payment provider over HTTP (feature `payment`): [`HttpPaymentProvider`] implements
//! the [`PaymentProvider`] port against a provider that speaks the protocol of [`wire`], by
//! base URL and API token. The built-in sandbox (`/sandbox/zahlung`, ADR 0019) is one; ePayBL
//! and pmPayment, which speak their own, are planned as adapters of their own.
//!
//! The client is [`crate::http`]'s exchange, one connection per call within a timeout. It speaks
//! plain `http://` only, which the sandbox at the server's own address needs; TLS comes with
//! the first provider outside.

pub mod signature;
pub mod wire;

use std::time::Duration;

use async_trait::async_trait;
use hyper::body::Bytes;
use hyper::{Method, StatusCode, header};
use videoamt_core::domain::PaymentId;
use videoamt_core::payment::{
    Callback, Captured, CreatePayment, Created, PaymentError, PaymentProvider, ProviderReference,
    ProviderStatus,
};
use videoamt_core::tenant::{Cents, PaymentMethodId};

use self::signature::CallbackKey;
use crate::http::{ExchangeError, Target, exchange};

/// How long one call to the provider may take, connection included.
const TIMEOUT: Duration = Duration::from_secs(10);
/// The largest answer read from the provider.
const MAX_ANSWER: usize = 64 * 1024;

/// Why the provider's settings cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PaymentConfigError {
    #[error(
        "the payment provider's URL must be http://host[:port][/path]; https needs TLS, which \
         this adapter does not speak yet: {0}"
    )]
    BadUrl(String),
    /// A link-local or metadata-service address (SSRF, see `crate::http::forbidden_host`).
    #[error(
        "the payment provider's URL names an address not allowed (link-local or metadata service): {0}"
    )]
    ForbiddenUrl(String),
    #[error("the payment provider needs an API token and a callback secret")]
    NoCredentials,
}

/// A provider that speaks [`wire`] at a base URL.
#[derive(Clone)]
pub struct HttpPaymentProvider {
    base: Target,
    token: String,
    key: CallbackKey,
}

impl std::fmt::Debug for HttpPaymentProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpPaymentProvider")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

impl HttpPaymentProvider {
    /// The provider at `base_url` (e.g. `http://127.0.0.1:8080/sandbox/zahlung`), called with
    /// `token`, whose callbacks are signed with `secret`.
    pub fn new(base_url: &str, token: &str, secret: &str) -> Result<Self, PaymentConfigError> {
        if token.is_empty() || secret.is_empty() {
            return Err(PaymentConfigError::NoCredentials);
        }
        Ok(Self {
            base: Target::parse(base_url).ok_or_else(|| {
                let host = base_url.parse::<hyper::Uri>().ok();
                match host.as_ref().and_then(|u| u.host()) {
                    Some(h) if crate::http::forbidden_host(h) => {
                        PaymentConfigError::ForbiddenUrl(base_url.to_owned())
                    }
                    _ => PaymentConfigError::BadUrl(base_url.to_owned()),
                }
            })?,
            token: token.to_owned(),
            key: CallbackKey::new(secret.as_bytes()),
        })
    }

    /// One call with the token: the status and the answer's body.
    async fn call(
        &self,
        method: Method,
        path: &str,
        extra: Option<(&str, &str)>,
        body: Option<Vec<u8>>,
    ) -> Result<(StatusCode, Bytes), PaymentError> {
        let bearer = format!("Bearer {}", self.token);
        let mut headers = vec![(header::AUTHORIZATION.as_str(), bearer.as_str())];
        headers.extend(extra);
        call(&self.base, method, path, &headers, body).await
    }

    /// The transaction an answer carries, or the refusal it is.
    fn transaction(
        path: &str,
        status: StatusCode,
        body: &[u8],
        expected: StatusCode,
    ) -> Result<wire::PaymentTransaction, PaymentError> {
        if status == expected {
            return serde_json::from_slice(body)
                .map_err(|e| PaymentError::Protocol(format!("answer to {path}: {e}")));
        }
        let kind = serde_json::from_slice::<wire::ProblemType>(body)
            .map(|p| p.kind)
            .unwrap_or_default();
        Err(match (status, kind.as_str()) {
            (StatusCode::UNAUTHORIZED, _) => PaymentError::Unauthorized,
            (_, wire::PROBLEM_UNKNOWN) | (StatusCode::NOT_FOUND, _) => {
                PaymentError::UnknownTransaction
            }
            (_, wire::PROBLEM_NOT_APPROVED) => PaymentError::NotApproved,
            (_, wire::PROBLEM_KEY_USED) => PaymentError::KeyUsed,
            (s, _) if s.is_server_error() => PaymentError::Unavailable(format!("{path}: {s}")),
            (s, kind) => PaymentError::Protocol(format!("{path}: {s} {kind}")),
        })
    }

    fn reference_path(reference: &ProviderReference) -> String {
        format!("{}/{reference}", wire::TRANSACTIONS)
    }
}

/// One exchange with the provider, its failures as the port's: no answer is
/// `Unavailable`, a broken request `Protocol`.
async fn call(
    target: &Target,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<Vec<u8>>,
) -> Result<(StatusCode, Bytes), PaymentError> {
    exchange(target, method, path, headers, body, TIMEOUT, MAX_ANSWER)
        .await
        .map_err(|e| match e {
            ExchangeError::Request(_) => PaymentError::Protocol(format!("{path}: {e}")),
            _ => PaymentError::Unavailable(format!("{}{path}: {e}", target.authority)),
        })
}

/// The provider's side of a callback: posts `notification`, signed with `key`, to
/// `notify_url` (an `http://` URL); the status the receiver answered. For the sandbox, which
/// plays the provider.
pub async fn notify(
    notify_url: &str,
    key: &CallbackKey,
    notification: &wire::Notification,
) -> Result<StatusCode, PaymentError> {
    let target = Target::parse(notify_url)
        .ok_or_else(|| PaymentError::Unavailable(format!("notify URL {notify_url}")))?;
    let body = serde_json::to_vec(notification)
        .map_err(|e| PaymentError::Protocol(format!("notification: {e}")))?;
    let signature = key.sign(&body);
    call(
        &target,
        Method::POST,
        "",
        &[(signature::SIGNATURE_HEADER, signature.as_str())],
        Some(body),
    )
    .await
    .map(|(status, _)| status)
}

fn method(info: &wire::PaymentInformation) -> Result<PaymentMethodId, PaymentError> {
    info.payment_method
        .as_deref()
        .filter(|m| !m.is_empty())
        .map(PaymentMethodId::from)
        .ok_or_else(|| PaymentError::Protocol(format!("{}: no method", info.transaction_id)))
}

/// The port's status of a transaction as the protocol reports it.
pub fn status_of(info: &wire::PaymentInformation) -> Result<ProviderStatus, PaymentError> {
    Ok(match info.status {
        wire::Status::Initial => ProviderStatus::Open,
        wire::Status::Authorized => ProviderStatus::Approved {
            method: method(info)?,
        },
        wire::Status::Payed => ProviderStatus::Captured {
            method: method(info)?,
        },
        wire::Status::Failed => ProviderStatus::Declined {
            reason: info
                .status_detail
                .clone()
                .unwrap_or_else(|| "abgelehnt".to_owned()),
        },
        wire::Status::Canceled => ProviderStatus::Abandoned,
    })
}

#[async_trait]
impl PaymentProvider for HttpPaymentProvider {
    async fn create(&self, request: &CreatePayment) -> Result<Created, PaymentError> {
        request.check()?;
        let body = wire::PaymentRequest {
            request_id: request.reference.0,
            tenant: request.tenant.as_str().to_owned(),
            currency: "EUR".to_owned(),
            gross_amount_cents: request.amount.0,
            purpose: request.purpose.to_string(),
            description: request.description.clone(),
            redirect_url: request.return_url.clone(),
            notify_url: request.notify_url.clone(),
            payment_methods: (request.methods.iter())
                .map(|m| wire::Method {
                    id: m.id.to_string(),
                    label: m.label.clone(),
                })
                .collect(),
            items: (request.items.iter())
                .map(|i| wire::Item {
                    reference: i.reference.clone(),
                    description: i.description.clone(),
                    quantity: 1,
                    total_cents: i.amount.0,
                })
                .collect(),
        };
        let body = serde_json::to_vec(&body)
            .map_err(|e| PaymentError::Protocol(format!("request: {e}")))?;
        let path = wire::TRANSACTIONS;
        let (status, answer) = self.call(Method::POST, path, None, Some(body)).await?;
        let info =
            Self::transaction(path, status, &answer, StatusCode::CREATED)?.payment_information;
        let provider_reference = ProviderReference::parse(&info.transaction_id)?;
        let redirect_url = info
            .transaction_redirect_url
            .filter(|u| u.starts_with("http://") || u.starts_with("https://"))
            .ok_or_else(|| PaymentError::Protocol(format!("{path}: no page to send to")))?;
        Ok(Created {
            provider_reference,
            redirect_url,
        })
    }

    async fn status(
        &self,
        transaction: &ProviderReference,
    ) -> Result<ProviderStatus, PaymentError> {
        let path = Self::reference_path(transaction);
        let (status, answer) = self.call(Method::GET, &path, None, None).await?;
        let info = Self::transaction(&path, status, &answer, StatusCode::OK)?.payment_information;
        if info.transaction_id != transaction.as_str() {
            return Err(PaymentError::Protocol(format!(
                "{path}: another transaction"
            )));
        }
        status_of(&info)
    }

    async fn capture(
        &self,
        transaction: &ProviderReference,
        idempotency_key: &str,
    ) -> Result<Captured, PaymentError> {
        let path = format!("{}/capture", Self::reference_path(transaction));
        let (status, answer) = self
            .call(
                Method::POST,
                &path,
                Some((wire::IDEMPOTENCY_KEY, idempotency_key)),
                Some(b"{}".to_vec()),
            )
            .await?;
        let answer = Self::transaction(&path, status, &answer, StatusCode::OK)?;
        let amount = answer
            .captured_amount_cents
            .filter(|_| answer.payment_information.status == wire::Status::Payed)
            .ok_or_else(|| PaymentError::Protocol(format!("{path}: not captured")))?;
        Ok(Captured {
            amount: Cents(amount),
        })
    }

    fn verify_callback(
        &self,
        body: &[u8],
        signature: Option<&str>,
    ) -> Result<Callback, PaymentError> {
        self.key.verify(body, signature)?;
        let notification: wire::Notification = serde_json::from_slice(body)
            .map_err(|e| PaymentError::Protocol(format!("callback: {e}")))?;
        Ok(Callback {
            reference: PaymentId(notification.request_id),
            provider_reference: ProviderReference::parse(&notification.transaction_id)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_settings_need_plain_http_and_credentials() {
        assert!(
            HttpPaymentProvider::new("http://127.0.0.1:8080/sandbox/zahlung", "t", "s").is_ok()
        );
        assert_eq!(
            HttpPaymentProvider::new("https://epaybl.example/pay", "t", "s").err(),
            Some(PaymentConfigError::BadUrl(
                "https://epaybl.example/pay".into()
            ))
        );
        assert_eq!(
            HttpPaymentProvider::new("http://169.254.169.254/latest", "t", "s").err(),
            Some(PaymentConfigError::ForbiddenUrl(
                "http://169.254.169.254/latest".into()
            ))
        );
        assert_eq!(
            HttpPaymentProvider::new("http://x", "", "s").err(),
            Some(PaymentConfigError::NoCredentials)
        );
    }

    #[test]
    fn the_protocols_statuses_are_the_ports() {
        let info = |status, method: Option<&str>| wire::PaymentInformation {
            transaction_id: "sbx_1".into(),
            transaction_url: "http://x/api/v1/paymenttransaction/sbx_1".into(),
            transaction_redirect_url: None,
            status,
            payment_method: method.map(str::to_owned),
            status_detail: None,
            transaction_timestamp: None,
        };
        assert_eq!(
            status_of(&info(wire::Status::Initial, None)),
            Ok(ProviderStatus::Open)
        );
        assert_eq!(
            status_of(&info(wire::Status::Authorized, Some("wero"))),
            Ok(ProviderStatus::Approved {
                method: "wero".into()
            })
        );
        assert_eq!(
            status_of(&info(wire::Status::Payed, Some("paypal"))),
            Ok(ProviderStatus::Captured {
                method: "paypal".into()
            })
        );
        assert!(matches!(
            status_of(&info(wire::Status::Failed, None)),
            Ok(ProviderStatus::Declined { .. })
        ));
        assert_eq!(
            status_of(&info(wire::Status::Canceled, None)),
            Ok(ProviderStatus::Abandoned)
        );
        // Approved without saying how is an answer the room cannot record.
        assert!(matches!(
            status_of(&info(wire::Status::Authorized, None)),
            Err(PaymentError::Protocol(_))
        ));
    }
}
