//! The payment provider port, shaped after FITKO's XBezahldienste (ADR 0019).
//!
//! A payment goes through a provider in four steps, and the room trusts only the provider's
//! own answers:
//!
//! 1. [`PaymentProvider::create`] opens a *payment transaction* for the fees ([`Cents`], a
//!    [`Purpose`] of at most 27 characters, the fee items, a return URL and a notify URL) and
//!    answers with the provider's reference and the page the citizen is sent to.
//! 2. The citizen approves, declines or abandons on the provider's page and comes back to the
//!    return URL; the provider also posts a callback to the notify URL.
//! 3. Neither the return nor the callback is taken at its word: on either, the room asks
//!    [`PaymentProvider::status`]. A callback is first checked with
//!    [`PaymentProvider::verify_callback`] (a signature over its body), and even a valid one
//!    only says "ask again".
//! 4. An approved transaction is captured with [`PaymentProvider::capture`] under an
//!    idempotency key: the same key twice captures once, so a reloaded return page and a
//!    replayed callback end in the same single capture.
//!
//! This module only declares the port and its checked values; `videoamt-adapters` implements
//! it (feature `payment`), and the room calls nothing else.

use std::fmt;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::domain::{AppointmentId, PaymentId};
use crate::event::TenantId;
use crate::tenant::{Cents, PaymentMethod, PaymentMethodId};

/// The purpose of a payment (`Verwendungszweck`) as the citizen's bank statement shows it: at
/// most [`Purpose::MAX_CHARS`] characters of ASCII letters, digits, spaces and hyphens, the
/// line XBezahldienste and the banks' booking texts take.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Purpose(String);

impl Purpose {
    pub const MAX_CHARS: usize = 27;

    pub fn parse(raw: &str) -> Result<Self, PaymentError> {
        let chars = raw.chars().count();
        if chars > Self::MAX_CHARS {
            return Err(PaymentError::PurposeTooLong(chars));
        }
        let allowed = |c: char| c.is_ascii_alphanumeric() || c == ' ' || c == '-';
        if raw.trim().is_empty() || !raw.chars().all(allowed) {
            return Err(PaymentError::PurposeInvalid);
        }
        Ok(Self(raw.to_owned()))
    }

    /// The purpose of the fees of `appointment`: "Videotermin " and the last eight hex digits
    /// of its id, which tell one appointment from another (the first digits of a UUIDv7 are
    /// its time and repeat).
    pub fn of_appointment(appointment: AppointmentId) -> Self {
        let hex = appointment.0.simple().to_string().to_ascii_uppercase();
        Self(format!("Videotermin {}", &hex[hex.len() - 8..]))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Purpose {
    type Error = PaymentError;

    fn try_from(raw: String) -> Result<Self, Self::Error> {
        Self::parse(&raw)
    }
}

impl From<Purpose> for String {
    fn from(p: Purpose) -> Self {
        p.0
    }
}

impl fmt::Display for Purpose {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The provider's id of one payment transaction (XBezahldienste's `transactionId`): 1 to 44
/// ASCII letters, digits, `-` and `_`, so that it can go into a URL path and a log line as it
/// is.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ProviderReference(String);

impl ProviderReference {
    pub const MAX_CHARS: usize = 44;

    pub fn parse(raw: &str) -> Result<Self, PaymentError> {
        let ok = !raw.is_empty()
            && raw.len() <= Self::MAX_CHARS
            && raw
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if ok {
            Ok(Self(raw.to_owned()))
        } else {
            Err(PaymentError::InvalidReference)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ProviderReference {
    type Error = PaymentError;

    fn try_from(raw: String) -> Result<Self, Self::Error> {
        Self::parse(&raw)
    }
}

impl From<ProviderReference> for String {
    fn from(r: ProviderReference) -> Self {
        r.0
    }
}

impl fmt::Display for ProviderReference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One fee of the payment (XBezahldienste's `items`): a service and what it costs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentItem {
    /// The service's id, e.g. `personalausweis`.
    pub reference: String,
    /// The service's name, for the provider's page.
    pub description: String,
    pub amount: Cents,
}

/// What [`PaymentProvider::create`] opens a transaction for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatePayment {
    pub tenant: TenantId,
    /// Our payment id (XBezahldienste's `requestId`); the callback names it.
    pub reference: PaymentId,
    pub amount: Cents,
    pub purpose: Purpose,
    /// A longer text for the provider's page: the municipality and the services.
    pub description: String,
    pub items: Vec<PaymentItem>,
    /// Where the citizen's browser comes back to, whatever the outcome.
    pub return_url: String,
    /// Where the provider posts its signed callback.
    pub notify_url: String,
    /// The methods the tenant offers; the citizen picks one on the provider's page.
    pub methods: Vec<PaymentMethod>,
}

impl CreatePayment {
    /// The request's own consistency, checked before anything is sent: something to pay, the
    /// items adding up to the amount, at least one method, both URLs.
    pub fn check(&self) -> Result<(), PaymentError> {
        if self.amount.0 == 0 {
            return Err(PaymentError::InvalidRequest(
                "Der Betrag muss größer als 0 € sein.",
            ));
        }
        let sum = self
            .items
            .iter()
            .try_fold(Cents(0), |sum, i| sum.checked_add(i.amount));
        if sum != Some(self.amount) {
            return Err(PaymentError::InvalidRequest(
                "Die Positionen ergeben nicht den Gesamtbetrag.",
            ));
        }
        if self.methods.is_empty() {
            return Err(PaymentError::InvalidRequest(
                "Es ist keine Zahlungsart angegeben.",
            ));
        }
        if self.return_url.is_empty() || self.notify_url.is_empty() {
            return Err(PaymentError::InvalidRequest(
                "Rücksprung- und Benachrichtigungsadresse fehlen.",
            ));
        }
        Ok(())
    }
}

/// A transaction the provider opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Created {
    pub provider_reference: ProviderReference,
    /// The provider's page for the citizen (XBezahldienste's `transactionRedirectUrl`).
    pub redirect_url: String,
}

/// Where a transaction stands, as the provider says when asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProviderStatus {
    /// Nothing decided yet (XBezahldienste `INITIAL`).
    Open,
    /// The citizen approved with `method`; the money is reserved, not yet taken.
    Approved { method: PaymentMethodId },
    /// The provider refused (XBezahldienste `FAILED`), e.g. a declined card.
    Declined { reason: String },
    /// The citizen broke off on the provider's page (XBezahldienste `CANCELED`).
    Abandoned,
    /// Captured (XBezahldienste `PAYED`), with the method it was paid with.
    Captured { method: PaymentMethodId },
}

/// What a capture took.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Captured {
    pub amount: Cents,
}

/// A callback whose signature held: which transaction to ask about. It says nothing about the
/// transaction's status; that is asked with [`PaymentProvider::status`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Callback {
    pub reference: PaymentId,
    pub provider_reference: ProviderReference,
}

/// Why a call to the provider failed. The texts are German; causes kept for the log
/// (`Unavailable`, `Protocol`) hold no personal data, only statuses and what was malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PaymentError {
    #[error("Der Verwendungszweck darf höchstens 27 Zeichen lang sein; dieser hat {0} Zeichen.")]
    PurposeTooLong(usize),
    #[error(
        "Der Verwendungszweck darf nur Buchstaben ohne Umlaute, Ziffern, Leerzeichen und \
         Bindestriche enthalten."
    )]
    PurposeInvalid,
    #[error("Die Transaktionsnummer des Zahlungsdienstes ist ungültig.")]
    InvalidReference,
    #[error("Die Zahlung ist unvollständig: {0}")]
    InvalidRequest(&'static str),
    #[error("Die Rückmeldung des Zahlungsdienstes trägt keine gültige Signatur.")]
    BadSignature,
    #[error("Die Zugangsdaten für den Zahlungsdienst sind ungültig.")]
    Unauthorized,
    #[error("Diese Zahlung kennt der Zahlungsdienst nicht.")]
    UnknownTransaction,
    #[error("Die Zahlung ist beim Zahlungsdienst noch nicht genehmigt.")]
    NotApproved,
    #[error(
        "Diese Zahlung wurde beim Zahlungsdienst bereits über eine andere Transaktion eingezogen."
    )]
    KeyUsed,
    #[error(
        "Der Zahlungsdienst ist nicht erreichbar. Bitte versuchen Sie es in einigen Minuten erneut."
    )]
    Unavailable(String),
    #[error("Der Zahlungsdienst hat unerwartet geantwortet.")]
    Protocol(String),
}

impl PaymentError {
    /// What goes into the log beside the German text: the technical cause, if any.
    pub fn cause(&self) -> Option<&str> {
        match self {
            Self::Unavailable(c) | Self::Protocol(c) => Some(c),
            _ => None,
        }
    }
}

/// The room's view of a payment provider. Cheap to share (`Arc<dyn PaymentProvider>`).
#[async_trait]
pub trait PaymentProvider: Send + Sync {
    /// Opens a payment transaction; the citizen is then sent to `redirect_url`.
    async fn create(&self, request: &CreatePayment) -> Result<Created, PaymentError>;

    /// The transaction's status, asked of the provider itself.
    async fn status(&self, transaction: &ProviderReference)
    -> Result<ProviderStatus, PaymentError>;

    /// Captures an approved transaction. Idempotent: a second call with the same key answers
    /// the first capture again and takes nothing more; a key already used for another
    /// transaction is refused ([`PaymentError::KeyUsed`]).
    async fn capture(
        &self,
        transaction: &ProviderReference,
        idempotency_key: &str,
    ) -> Result<Captured, PaymentError>;

    /// Checks a callback's signature (`signature`: the header the provider sent, if any)
    /// over its raw `body` and reads which transaction it names.
    fn verify_callback(
        &self,
        body: &[u8],
        signature: Option<&str>,
    ) -> Result<Callback, PaymentError>;
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;

    #[test]
    fn a_purpose_has_at_most_27_plain_characters() {
        assert_eq!(
            Purpose::parse("Videotermin 3F2A9C1B").map(|p| p.to_string()),
            Ok("Videotermin 3F2A9C1B".to_owned())
        );
        assert!(Purpose::parse(&"A".repeat(27)).is_ok());
        assert_eq!(
            Purpose::parse(&"A".repeat(28)),
            Err(PaymentError::PurposeTooLong(28))
        );
        assert_eq!(
            Purpose::parse("Stadt Ettlingen: Personalausweis"),
            Err(PaymentError::PurposeTooLong(32))
        );
        for bad in ["", "   ", "Gebühr", "Termin: 1", "a\nb"] {
            assert_eq!(
                Purpose::parse(bad),
                Err(PaymentError::PurposeInvalid),
                "{bad:?}"
            );
        }
        assert!(
            PaymentError::PurposeTooLong(28)
                .to_string()
                .contains("höchstens 27 Zeichen")
        );
        // Read from JSON through the same check.
        assert!(serde_json::from_str::<Purpose>(&format!("\"{}\"", "B".repeat(28))).is_err());
    }

    #[test]
    fn an_appointments_purpose_fits_and_tells_appointments_apart() {
        let a = Purpose::of_appointment(AppointmentId(Uuid::from_u128(0x0192_f3c4_3f2a_9c1b)));
        assert_eq!(a.as_str(), "Videotermin 3F2A9C1B");
        assert_eq!(Purpose::parse(a.as_str()), Ok(a.clone()));
        let b = Purpose::of_appointment(AppointmentId(Uuid::from_u128(0x0192_f3c4_3f2a_9c1c)));
        assert_ne!(a, b);
    }

    #[test]
    fn provider_references_fit_a_path_segment() {
        assert!(ProviderReference::parse("sbx_0123456789abcdef").is_ok());
        assert!(ProviderReference::parse(&"a".repeat(44)).is_ok());
        for bad in ["", "a/b", "../x", "a b", &"a".repeat(45), "ä"] {
            assert_eq!(
                ProviderReference::parse(bad),
                Err(PaymentError::InvalidReference),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn a_request_adds_up_before_it_is_sent() {
        let item = |amount| PaymentItem {
            reference: "personalausweis".into(),
            description: "Personalausweis beantragen".into(),
            amount: Cents(amount),
        };
        let request = CreatePayment {
            tenant: TenantId::parse("ettlingen").expect("valid"),
            reference: PaymentId(Uuid::from_u128(1)),
            amount: Cents(4_700),
            purpose: Purpose::parse("Videotermin 00000001").expect("valid"),
            description: "Stadt Ettlingen".into(),
            items: vec![item(3_700), item(1_000)],
            return_url: "http://amt.test/zurueck".into(),
            notify_url: "http://amt.test/rueckmeldung".into(),
            methods: vec![PaymentMethod {
                id: "paypal".into(),
                label: "PayPal".into(),
            }],
        };
        assert_eq!(request.check(), Ok(()));
        let short = CreatePayment {
            items: vec![item(3_700)],
            ..request.clone()
        };
        assert!(matches!(
            short.check(),
            Err(PaymentError::InvalidRequest(_))
        ));
        let free = CreatePayment {
            amount: Cents(0),
            items: vec![],
            ..request.clone()
        };
        assert!(matches!(free.check(), Err(PaymentError::InvalidRequest(_))));
        let no_method = CreatePayment {
            methods: vec![],
            ..request
        };
        assert!(matches!(
            no_method.check(),
            Err(PaymentError::InvalidRequest(_))
        ));
    }
}
