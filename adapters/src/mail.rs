//! Mail transports for the outbox worker: SMTP (lettre) when `VIDEOAMT_SMTP_URL` is set, else
//! `.eml` files in the data folder's outbox, one folder per data subject (the purge scrubs it).

use std::path::PathBuf;

use lettre::message::header::ContentType;
use lettre::message::{Attachment, Mailbox, MultiPart, SinglePart};
use lettre::{AsyncSmtpTransport, AsyncTransport as _, Message, Tokio1Executor};
use videoamt_core::mail::{MailError, Mailer, OutgoingMail};

/// The mail as RFC 5322 message: a plain-text part and, when there is one, the calendar entry
/// as `termin.ics`.
pub fn message(mail: &OutgoingMail) -> Result<Message, MailError> {
    let address = |raw: &str, what: &str| {
        raw.parse::<lettre::Address>()
            .map_err(|_| MailError::Permanent(format!("ungültige {what}-Adresse")))
    };
    let builder = Message::builder()
        .message_id(Some(mail.message_id.clone()))
        .from(Mailbox::new(
            Some(mail.from_name.clone()),
            address(&mail.from, "Absender")?,
        ))
        .to(Mailbox::new(
            Some(mail.to_name.clone()),
            address(&mail.to, "Empfänger")?,
        ))
        .subject(mail.subject.clone());
    let text = SinglePart::plain(mail.text.clone());
    let built = match &mail.calendar {
        None => builder.singlepart(text),
        Some(ics) => {
            let method = if ics.contains("\r\nMETHOD:CANCEL\r\n") {
                "CANCEL"
            } else {
                "PUBLISH"
            };
            let kind =
                ContentType::parse(&format!("text/calendar; charset=utf-8; method={method}"))
                    .map_err(|_| MailError::Permanent("Kalenderformat".into()))?;
            builder.multipart(
                MultiPart::mixed()
                    .singlepart(text)
                    .singlepart(Attachment::new("termin.ics".to_owned()).body(ics.clone(), kind)),
            )
        }
    };
    built.map_err(|e| MailError::Permanent(format!("Nachricht nicht baubar: {e}")))
}

/// Delivers over SMTP. Plain SMTP to a relay on the same host or network; TLS to the outside
/// world is the relay's job.
#[derive(Clone)]
pub struct SmtpMailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
}

impl std::fmt::Debug for SmtpMailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpMailer").finish_non_exhaustive()
    }
}

impl SmtpMailer {
    /// From `smtp://host:port` (port 25 when missing).
    pub fn from_url(url: &str) -> Result<Self, String> {
        let rest = url
            .strip_prefix("smtp://")
            .ok_or_else(|| format!("{url}: only smtp://host:port is supported"))?;
        let rest = rest.trim_end_matches('/');
        let (host, port) = match rest.rsplit_once(':') {
            Some((h, p)) => (
                h,
                p.parse::<u16>()
                    .map_err(|_| format!("{url}: invalid port"))?,
            ),
            None => (rest, 25),
        };
        if host.is_empty() {
            return Err(format!("{url}: no host"));
        }
        Ok(Self {
            transport: AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
                .port(port)
                .timeout(Some(std::time::Duration::from_secs(30)))
                .build(),
        })
    }
}

#[async_trait::async_trait]
impl Mailer for SmtpMailer {
    async fn send(&self, mail: &OutgoingMail) -> Result<(), MailError> {
        let message = message(mail)?;
        match self.transport.send(message).await {
            Ok(_) => Ok(()),
            // Only the reply code goes into the error: the server's text may quote the address.
            Err(e) => {
                let code = e
                    .status()
                    .map_or_else(|| "keine Antwort".to_owned(), |c| format!("SMTP {c}"));
                if e.is_permanent() {
                    Err(MailError::Permanent(code))
                } else {
                    Err(MailError::Transient(code))
                }
            }
        }
    }
}

/// Writes each mail as `{dir}/{subject}/{message id}.eml`, for machines without a mail server
/// (the embedded default); `/dev/outbox` lists them.
#[derive(Debug, Clone)]
pub struct FolderMailer {
    dir: PathBuf,
}

impl FolderMailer {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// The file a mail is written to: the message id with everything but letters, digits,
    /// `.` and `-` replaced, so it is a safe file name.
    pub fn file_name(message_id: &str) -> String {
        let safe: String = message_id
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        format!("{safe}.eml")
    }
}

#[async_trait::async_trait]
impl Mailer for FolderMailer {
    async fn send(&self, mail: &OutgoingMail) -> Result<(), MailError> {
        let bytes = message(mail)?.formatted();
        let folder = self.dir.join(mail.owner.to_string());
        let path = folder.join(Self::file_name(&mail.message_id));
        let io = |e: std::io::Error| MailError::Transient(format!("Ablage: {}", e.kind()));
        tokio::task::spawn_blocking(move || {
            std::fs::create_dir_all(&folder)?;
            // Written beside and renamed, so a reader never sees half a mail.
            let partial = path.with_extension("eml.part");
            std::fs::write(&partial, bytes)?;
            std::fs::rename(&partial, &path)
        })
        .await
        .map_err(|_| MailError::Transient("Ablage abgebrochen".into()))?
        .map_err(io)
    }
}
