//! The SMS port: how a Handy-TAN reaches the citizen's phone. The text is rendered before; the
//! gateway only delivers. No SMS gateway is reachable from the development machines, so the
//! default adapter is a sandbox that files the message under the data subject (shown at
//! `/dev/outbox`), and a generic HTTP gateway adapter speaks to a real one.

use crate::domain::SubjectId;

/// One SMS, ready to send. Holds personal data (number, text with a TAN): never logged, and
/// its `Debug` shows only whose it is.
#[derive(Clone, PartialEq, Eq)]
pub struct OutgoingSms {
    /// The number as the citizen gave it at booking.
    pub to: String,
    pub text: String,
    /// Whose data the message is: a copy kept on disk is filed under this subject, so the
    /// purge finds it.
    pub owner: SubjectId,
    /// The idempotency key, the TAN's id: every copy of one message carries it, so a gateway
    /// (and whoever reads the sandbox) tells a second copy from a second message. The SMS is
    /// sent before the TAN is recorded; a crash in between leaves a message under a key the
    /// log never names, and the citizen asks for a new TAN under a new key.
    pub key: uuid::Uuid,
}

impl std::fmt::Debug for OutgoingSms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutgoingSms")
            .field("owner", &self.owner)
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

/// Why an SMS did not go out. The texts hold status codes, never numbers or codes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SmsError {
    #[error("SMS-Versand gestört: {0}")]
    Unavailable(String),
    #[error("SMS-Versand abgelehnt: {0}")]
    Refused(String),
}

impl SmsError {
    /// The German sentence for the citizen.
    pub fn german(&self) -> &'static str {
        "Die SMS mit der TAN konnte gerade nicht versendet werden. Bitte versuchen Sie es gleich \
         noch einmal oder wählen Sie mit der Sachbearbeitung ein anderes Verfahren."
    }
}

#[async_trait::async_trait]
pub trait SmsGateway: Send + Sync {
    async fn send(&self, sms: &OutgoingSms) -> Result<(), SmsError>;
}

/// The number as it may be shown (to the citizen, never logged): all but the last three
/// digits hidden, e.g. `+49 ••• 567`.
pub fn masked(number: &str) -> String {
    let digits: Vec<char> = number.chars().filter(char::is_ascii_digit).collect();
    let tail: String = digits[digits.len().saturating_sub(3)..].iter().collect();
    let head = if number.trim_start().starts_with('+') {
        let cc: String = digits.iter().take(2).collect();
        format!("+{cc} ")
    } else {
        String::new()
    };
    format!("{head}••• {tail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_number_is_shown_with_its_last_three_digits_only() {
        assert_eq!(masked("+49 721 1234567"), "+49 ••• 567");
        assert_eq!(masked("0721/1234567"), "••• 567");
        assert_eq!(masked("12"), "••• 12");
        let sms = OutgoingSms {
            to: "+49 721 1234567".into(),
            text: "TAN 123456".into(),
            owner: SubjectId(uuid::Uuid::nil()),
            key: uuid::Uuid::nil(),
        };
        let debug = format!("{sms:?}");
        assert!(
            !debug.contains("1234567") && !debug.contains("123456"),
            "{debug}"
        );
    }
}
