//! The payment sandbox: a stand-in payment provider that videoamt serves itself under
//! `/sandbox/zahlung`, for development and tests (ADR 0019). **No real payment**: nothing is
//! charged anywhere, and every page says so.
//!
//! It speaks the protocol the HTTP adapter speaks (`videoamt_adapters::payment::wire`): a
//! small REST API (create, status, capture) behind a bearer token, and the citizen's page,
//! where one of the tenant's methods is chosen and the payment approved, declined or
//! abandoned. After the decision it posts a signed callback to the notify URL and then
//! sends the browser back to the return URL, in that order, so that a run goes the same way
//! every time; the room settles on whichever arrives first, and the second finds nothing to
//! do.
//!
//! **Its state lives in memory**: a restart forgets every transaction (a payment left open
//! then is tried again with a new one), and past [`MAX_TRANSACTIONS`] the oldest are
//! forgotten. It is served only while no payment provider is configured.

mod page;

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use time::OffsetDateTime;
use videoamt_adapters::payment::signature::{CallbackKey, same_secret};
use videoamt_adapters::payment::wire;
use videoamt_core::payment::{PaymentError, ProviderReference, Purpose};

use crate::http::AppState;
use crate::http::error::Error;

/// Where the sandbox is served.
pub(crate) const BASE: &str = "/sandbox/zahlung";
/// Transactions kept; past it the oldest are forgotten.
pub(crate) const MAX_TRANSACTIONS: usize = 10_000;
/// The title of every sandbox page.
pub(crate) const TITLE: &str = "Zahlungs-Sandbox – keine echte Zahlung";

/// The sandbox's routes: the API and the citizen's page.
pub(crate) fn routes() -> Router<AppState> {
    let transactions = format!("{BASE}{}", wire::TRANSACTIONS);
    Router::new()
        .route(&transactions, post(create))
        .route(&format!("{transactions}/{{id}}"), get(status))
        .route(&format!("{transactions}/{{id}}/capture"), post(capture))
        .route(
            &format!("{BASE}/bezahlen/{{id}}"),
            get(page::show).post(page::decide),
        )
}

/// One transaction as the sandbox keeps it.
#[derive(Debug, Clone)]
pub(crate) struct Transaction {
    pub id: ProviderReference,
    pub request: wire::PaymentRequest,
    pub status: wire::Status,
    pub method: Option<String>,
    pub detail: Option<String>,
    pub captured_at: Option<OffsetDateTime>,
}

#[derive(Debug, Default)]
struct Book {
    transactions: HashMap<ProviderReference, Transaction>,
    /// Creation order, for forgetting the oldest.
    order: VecDeque<ProviderReference>,
    /// Idempotency key → the transaction it captured.
    keys: HashMap<String, ProviderReference>,
}

/// The sandbox provider's state: its credentials and its transactions, in memory.
pub(crate) struct Sandbox {
    token: String,
    key: CallbackKey,
    book: Mutex<Book>,
    /// Transactions kept ([`MAX_TRANSACTIONS`]).
    cap: usize,
}

impl std::fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sandbox").finish_non_exhaustive()
    }
}

impl Sandbox {
    pub(crate) fn new(token: &str, secret: &str) -> Self {
        Self::with_cap(token, secret, MAX_TRANSACTIONS)
    }

    fn with_cap(token: &str, secret: &str, cap: usize) -> Self {
        Self {
            token: token.to_owned(),
            key: CallbackKey::new(secret.as_bytes()),
            book: Mutex::default(),
            cap,
        }
    }

    fn book(&self) -> std::sync::MutexGuard<'_, Book> {
        self.book.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn get(&self, id: &ProviderReference) -> Option<Transaction> {
        self.book().transactions.get(id).cloned()
    }

    fn insert(&self, transaction: Transaction) {
        let mut book = self.book();
        book.order.push_back(transaction.id.clone());
        book.transactions
            .insert(transaction.id.clone(), transaction);
        while book.order.len() > self.cap {
            if let Some(old) = book.order.pop_front() {
                book.transactions.remove(&old);
                book.keys.retain(|_, t| *t != old);
            }
        }
    }

    /// The citizen's decision on an open transaction; `None` when it is not open (any more).
    pub(crate) fn decide(
        &self,
        id: &ProviderReference,
        status: wire::Status,
        method: Option<String>,
        detail: Option<String>,
    ) -> Option<Transaction> {
        let mut book = self.book();
        let t = book.transactions.get_mut(id)?;
        if t.status != wire::Status::Initial {
            return None;
        }
        t.status = status;
        t.method = method;
        t.detail = detail;
        Some(t.clone())
    }

    /// Captures `id` under `key`: once per transaction, and a key never for two.
    fn capture(
        &self,
        id: &ProviderReference,
        key: &str,
        now: OffsetDateTime,
    ) -> Result<Transaction, PaymentError> {
        let mut book = self.book();
        if book.keys.get(key).is_some_and(|t| t != id) {
            return Err(PaymentError::KeyUsed);
        }
        let t = book
            .transactions
            .get_mut(id)
            .ok_or(PaymentError::UnknownTransaction)?;
        match t.status {
            wire::Status::Payed => {}
            wire::Status::Authorized => {
                t.status = wire::Status::Payed;
                t.captured_at = Some(now);
            }
            _ => return Err(PaymentError::NotApproved),
        }
        let t = t.clone();
        book.keys.insert(key.to_owned(), id.clone());
        Ok(t)
    }

    /// Posts the signed callback for `t` to its notify URL; a receiver that does not answer
    /// is logged, the browser goes back all the same (the return page asks for the status).
    pub(crate) async fn notify(&self, t: &Transaction) {
        let notification = wire::Notification {
            request_id: t.request.request_id,
            transaction_id: t.id.to_string(),
        };
        match videoamt_adapters::payment::notify(&t.request.notify_url, &self.key, &notification)
            .await
        {
            Ok(status) if status.is_success() => {}
            Ok(status) => {
                tracing::warn!(transaction = %t.id, %status, "sandbox callback refused");
            }
            Err(e) => {
                tracing::warn!(transaction = %t.id, error = ?e.cause(), "sandbox callback not sent");
            }
        }
    }
}

/// The sandbox of this server, if it is the provider.
fn sandbox(state: &AppState) -> Result<Arc<Sandbox>, Error> {
    state
        .payments
        .as_ref()
        .and_then(|p| p.sandbox.clone())
        .ok_or_else(|| Error::not_found("Diese Adresse gibt es nicht."))
}

/// The sandbox, for a request that carries its token.
fn authorized(state: &AppState, headers: &HeaderMap) -> Result<Arc<Sandbox>, Error> {
    let sandbox = sandbox(state)?;
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    if same_secret(&sandbox.token, given) {
        Ok(sandbox)
    } else {
        Err(PaymentError::Unauthorized.into())
    }
}

/// The transaction as the protocol reports it.
fn answer(state: &AppState, t: &Transaction) -> wire::PaymentTransaction {
    let rfc3339 = &time::format_description::well_known::Rfc3339;
    wire::PaymentTransaction {
        payment_information: wire::PaymentInformation {
            transaction_id: t.id.to_string(),
            transaction_url: format!("{}{BASE}{}/{}", state.public_url, wire::TRANSACTIONS, t.id),
            transaction_redirect_url: (t.status == wire::Status::Initial)
                .then(|| format!("{}{BASE}/bezahlen/{}", state.public_url, t.id)),
            status: t.status,
            payment_method: t.method.clone(),
            status_detail: t.detail.clone(),
            transaction_timestamp: t.captured_at.and_then(|at| at.format(rfc3339).ok()),
        },
        captured_amount_cents: (t.status == wire::Status::Payed)
            .then_some(t.request.gross_amount_cents),
    }
}

/// A transaction id no one guesses: its page is the way to approve it.
fn new_id() -> Result<ProviderReference, Error> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| Error::internal(format!("randomness: {e}")))?;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    ProviderReference::parse(&format!("sbx_{hex}")).map_err(Error::internal)
}

/// What a provider checks of a request before it opens a transaction.
fn check(request: &wire::PaymentRequest) -> Result<(), Error> {
    Purpose::parse(&request.purpose)?;
    let sum = (request.items.iter()).try_fold(0u64, |sum, i| {
        i.total_cents
            .checked_mul(u64::from(i.quantity))
            .and_then(|t| sum.checked_add(t))
    });
    let invalid = |what| Err(PaymentError::InvalidRequest(what).into());
    if request.currency != "EUR" {
        return invalid("Die Sandbox nimmt nur Euro an.");
    }
    if request.gross_amount_cents == 0 || sum != Some(request.gross_amount_cents) {
        return invalid("Die Positionen ergeben nicht den Gesamtbetrag.");
    }
    if request.payment_methods.is_empty() {
        return invalid("Es ist keine Zahlungsart angegeben.");
    }
    let http = |u: &str| u.starts_with("http://") || u.starts_with("https://");
    if !http(&request.redirect_url) || !http(&request.notify_url) {
        return invalid("Rücksprung- und Benachrichtigungsadresse fehlen.");
    }
    Ok(())
}

/// `POST /sandbox/zahlung/api/v1/paymenttransaction`: opens a transaction (201).
async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let opened = async {
        let sandbox = authorized(&state, &headers)?;
        let request: wire::PaymentRequest = serde_json::from_slice(&body).map_err(|e| {
            Error::InvalidData(format!("Die Anfrage passt nicht zum Protokoll: {e}"))
        })?;
        check(&request)?;
        let transaction = Transaction {
            id: new_id()?,
            request,
            status: wire::Status::Initial,
            method: None,
            detail: None,
            captured_at: None,
        };
        sandbox.insert(transaction.clone());
        Ok::<_, Error>(answer(&state, &transaction))
    };
    match opened.await {
        Ok(t) => (StatusCode::CREATED, axum::Json(t)).into_response(),
        Err(e) => e.into_response(),
    }
}

fn reference(raw: &str) -> Result<ProviderReference, Error> {
    ProviderReference::parse(raw).map_err(|_| PaymentError::UnknownTransaction.into())
}

/// `GET …/paymenttransaction/{id}`: the transaction's status.
async fn status(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let found = authorized(&state, &headers).and_then(|sandbox| {
        sandbox
            .get(&reference(&id)?)
            .ok_or_else(|| PaymentError::UnknownTransaction.into())
    });
    match found {
        Ok(t) => axum::Json(answer(&state, &t)).into_response(),
        Err(e) => e.into_response(),
    }
}

/// `POST …/paymenttransaction/{id}/capture`: captures an approved transaction, once.
async fn capture(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let captured = authorized(&state, &headers).and_then(|sandbox| {
        let key = headers
            .get(wire::IDEMPOTENCY_KEY)
            .and_then(|v| v.to_str().ok())
            .filter(|k| !k.is_empty() && k.len() <= 255)
            .ok_or_else(|| Error::bad_request("Der Header Idempotency-Key fehlt."))?;
        Ok(sandbox.capture(&reference(&id)?, key, state.now())?)
    });
    match captured {
        Ok(t) => axum::Json(answer(&state, &t)).into_response(),
        Err(e) => e.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;

    fn request(purpose: &str) -> wire::PaymentRequest {
        wire::PaymentRequest {
            request_id: Uuid::from_u128(3),
            tenant: "ettlingen".into(),
            currency: "EUR".into(),
            gross_amount_cents: 4_700,
            purpose: purpose.into(),
            description: "Stadt Ettlingen".into(),
            redirect_url: "http://127.0.0.1/zurueck".into(),
            notify_url: "http://127.0.0.1/rueckmeldung".into(),
            payment_methods: vec![wire::Method {
                id: "wero".into(),
                label: "Wero".into(),
            }],
            items: vec![
                wire::Item {
                    reference: "personalausweis".into(),
                    description: "Personalausweis beantragen".into(),
                    quantity: 1,
                    total_cents: 3_700,
                },
                wire::Item {
                    reference: "meldebescheinigung".into(),
                    description: "Meldebescheinigung".into(),
                    quantity: 1,
                    total_cents: 1_000,
                },
            ],
        }
    }

    fn open(sandbox: &Sandbox, n: u8) -> ProviderReference {
        let id = ProviderReference::parse(&format!("sbx_{n}")).expect("valid");
        sandbox.insert(Transaction {
            id: id.clone(),
            request: request("Videotermin 00000001"),
            status: wire::Status::Initial,
            method: None,
            detail: None,
            captured_at: None,
        });
        id
    }

    #[test]
    fn a_request_is_checked_as_a_provider_would() {
        assert_eq!(
            check(&request("Videotermin 00000001")).map_err(|e| e.status()),
            Ok(())
        );
        let status = |r: &wire::PaymentRequest| check(r).err().map(|e| e.status());
        let long = request("Gebuehr Videotermin 3F2A9C1B");
        assert_eq!(status(&long), Some(StatusCode::UNPROCESSABLE_ENTITY));
        let mut short = request("Videotermin 00000001");
        short.items.pop();
        assert_eq!(status(&short), Some(StatusCode::UNPROCESSABLE_ENTITY));
        let mut dollars = request("Videotermin 00000001");
        dollars.currency = "USD".into();
        assert_eq!(status(&dollars), Some(StatusCode::UNPROCESSABLE_ENTITY));
    }

    #[test]
    fn a_transaction_is_decided_once_and_captured_once_per_key() {
        let sandbox = Sandbox::new("t", "s");
        let now = OffsetDateTime::UNIX_EPOCH;
        let first = open(&sandbox, 1);
        assert_eq!(
            sandbox.capture(&first, "k", now).err(),
            Some(PaymentError::NotApproved),
            "not before approval"
        );
        let decided = sandbox.decide(&first, wire::Status::Authorized, Some("wero".into()), None);
        assert!(decided.is_some());
        assert!(
            sandbox
                .decide(&first, wire::Status::Canceled, None, None)
                .is_none(),
            "decided already"
        );
        let captured = sandbox.capture(&first, "k", now).expect("captured");
        assert_eq!(captured.status, wire::Status::Payed);
        // Again with the same key: the same capture, nothing more.
        let again = sandbox
            .capture(&first, "k", now + time::Duration::hours(1))
            .expect("the same capture");
        assert_eq!(again.captured_at, captured.captured_at);
        // The key never captures another transaction.
        let second = open(&sandbox, 2);
        sandbox.decide(&second, wire::Status::Authorized, Some("wero".into()), None);
        assert_eq!(
            sandbox.capture(&second, "k", now).err(),
            Some(PaymentError::KeyUsed)
        );
        assert_eq!(
            sandbox.get(&second).map(|t| t.status),
            Some(wire::Status::Authorized)
        );
    }

    #[test]
    fn past_its_size_the_sandbox_forgets_the_oldest() {
        let sandbox = Sandbox::with_cap("t", "s", 3);
        let first = open(&sandbox, 0);
        sandbox.decide(&first, wire::Status::Authorized, Some("wero".into()), None);
        sandbox
            .capture(&first, "k", OffsetDateTime::UNIX_EPOCH)
            .expect("captured");
        for n in 1..=3 {
            open(&sandbox, n);
        }
        assert!(sandbox.get(&first).is_none(), "the oldest is forgotten");
        assert!(sandbox.book().keys.is_empty(), "with its key");
        for n in 1..=3 {
            assert!(
                sandbox
                    .get(&ProviderReference::parse(&format!("sbx_{n}")).expect("valid"))
                    .is_some()
            );
        }
    }
}
