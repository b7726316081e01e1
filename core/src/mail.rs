//! The mail port: what the outbox worker hands to a mail transport. Rendering (German text,
//! calendar entry) happens before; the transport only delivers.

use crate::domain::SubjectId;

/// One mail, ready to send. Holds personal data (address, name, text): never logged, and its
/// `Debug` shows only the message id.
#[derive(Clone, PartialEq, Eq)]
pub struct OutgoingMail {
    /// `<…@…>`; the same for every try of the same mail, so receivers can drop duplicates.
    pub message_id: String,
    pub from: String,
    pub from_name: String,
    pub to: String,
    pub to_name: String,
    pub subject: String,
    /// The plain-text body.
    pub text: String,
    /// An RFC 5545 calendar object, attached as `termin.ics`.
    pub calendar: Option<String>,
    /// Whose data the mail is: a copy kept on disk is filed under this subject, so the purge
    /// finds it.
    pub owner: SubjectId,
}

impl std::fmt::Debug for OutgoingMail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutgoingMail")
            .field("message_id", &self.message_id)
            .finish_non_exhaustive()
    }
}

/// Why a mail did not go out. The texts hold reply codes and classes, never addresses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MailError {
    /// Worth trying again later (connection refused, 4xx replies).
    #[error("{0} (vorübergehend)")]
    Transient(String),
    /// Trying again will not help (5xx replies, an address the transport rejects).
    #[error("{0} (dauerhaft)")]
    Permanent(String),
}

#[async_trait::async_trait]
pub trait Mailer: Send + Sync {
    async fn send(&self, mail: &OutgoingMail) -> Result<(), MailError>;
}
