//! The outbox worker: follows the log from its checkpoint, asks the process managers what
//! each event brings (`react`), runs the commands among it (e.g. `SchedulePurge` when an
//! appointment reaches its final state) and sends the mails, at least once. The checkpoint
//! moves after an event's commands are decided and its mails sent and recorded (`MailSent` or,
//! after the last try, `DeliveryFailed`), so a crash runs them again: the commands decide
//! nothing the second time, and a mail goes out again with the same message id whose second
//! record decides nothing. Timers (`Reaction::Timer`) are kept by the due-timer projection and
//! fired by the scheduler (`api/src/timers.rs`).

use std::sync::Arc;
use std::time::Duration;

use uuid::Uuid;
use videoamt_adapters::bus::Issued;
use videoamt_core::domain::DomainEvent;
use videoamt_core::domain::appointment::AppointmentCommand;
use videoamt_core::domain::command::Command;
use videoamt_core::domain::events::MailKind;
use videoamt_core::domain::process::{Reaction, WorkItem, react};
use videoamt_core::event::{Actor, ActorRole, RecordedEvent};
use videoamt_core::keys::{Revealed, reveal};
use videoamt_core::mail::{MailError, Mailer, OutgoingMail};
use videoamt_core::readmodel::ProjectionCheckpoint;

use crate::app::System;

/// The worker's checkpoint in the read-model store's checkpoint table.
pub const CHECKPOINT: &str = "mail-outbox";
const BATCH: usize = 100;

/// How often and how patiently a mail is tried.
#[derive(Debug, Clone, Copy)]
pub struct Retry {
    pub attempts: u32,
    /// The wait after the first failed try; doubled after each further one.
    pub first_wait: Duration,
}

impl Retry {
    /// As the settings say.
    pub fn of(settings: &crate::app::Settings) -> Self {
        Self {
            attempts: settings.mail_attempts.max(1),
            first_wait: settings.mail_retry(),
        }
    }
}

impl Default for Retry {
    fn default() -> Self {
        Self {
            attempts: 5,
            first_wait: Duration::from_secs(2),
        }
    }
}

#[derive(Clone)]
pub struct Outbox {
    system: System,
    mailer: Arc<dyn Mailer>,
    public_url: String,
    from: String,
    retry: Retry,
}

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbox").finish_non_exhaustive()
    }
}

/// The mailer `serve` uses: SMTP when a relay is set, else `.eml` files in the data folder's
/// outbox.
pub fn mailer(system: &System) -> anyhow::Result<Arc<dyn Mailer>> {
    Ok(match system.settings.smtp() {
        Some(url) => Arc::new(
            videoamt_adapters::mail::SmtpMailer::from_url(url).map_err(anyhow::Error::msg)?,
        ),
        _ => Arc::new(videoamt_adapters::mail::FolderMailer::new(
            system.outbox_dir(),
        )),
    })
}

#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    #[error(transparent)]
    Store(#[from] videoamt_core::store::StoreError),
    #[error(transparent)]
    ReadModel(#[from] videoamt_core::readmodel::ReadModelError),
    #[error(transparent)]
    Bus(#[from] videoamt_adapters::bus::BusError),
    #[error(transparent)]
    Decode(#[from] videoamt_core::domain::events::DecodeError),
    #[error(transparent)]
    Load(#[from] crate::app::system::LoadError),
}

impl Outbox {
    pub fn new(system: System, mailer: Arc<dyn Mailer>, public_url: &str) -> Self {
        Self {
            mailer,
            public_url: public_url.trim_end_matches('/').to_owned(),
            from: system.settings.mail_from.clone(),
            retry: Retry::of(&system.settings),
            system,
        }
    }

    pub fn with_retry(mut self, retry: Retry) -> Self {
        self.retry = retry;
        self
    }

    /// Works through the log until `stop`, then returns.
    pub async fn run(self, mut stop: tokio::sync::watch::Receiver<bool>) {
        loop {
            if *stop.borrow() {
                return;
            }
            let idle = match self.step().await {
                Ok(0) => true,
                Ok(_) => false,
                Err(e) => {
                    tracing::warn!(error = %e, "outbox step failed; trying again");
                    true
                }
            };
            if idle {
                tokio::select! {
                    _ = stop.changed() => {}
                    () = tokio::time::sleep(Duration::from_millis(200)) => {}
                }
            }
        }
    }

    /// Handles the events after the checkpoint (at most one batch); returns how many.
    pub async fn step(&self) -> Result<usize, OutboxError> {
        let models = &self.system.store;
        let from = models.checkpoint(CHECKPOINT).await?.position;
        let events = self.system.store.read_all(from, BATCH).await?;
        let mut at = from;
        for recorded in &events {
            let event = DomainEvent::from_payload(
                recorded.event_type.as_str(),
                recorded.schema_version,
                &recorded.payload,
            );
            // Operational events (probes, benchmarks) are not domain events and bring no mail.
            if let Ok(event) = event {
                for reaction in react(&recorded.stream_id, &event, recorded.meta.recorded_at) {
                    match reaction {
                        Reaction::Work(item) => self.perform(&item, recorded).await?,
                        Reaction::Command(command) => self.decide(&command, recorded).await?,
                        Reaction::Timer { .. } => {}
                    }
                }
            }
            models
                .commit(
                    CHECKPOINT,
                    at,
                    ProjectionCheckpoint {
                        projection: CHECKPOINT.to_owned(),
                        position: recorded.global_position,
                        event_recorded_at: Some(recorded.meta.recorded_at),
                    },
                    vec![],
                )
                .await?;
            at = recorded.global_position;
        }
        Ok(events.len())
    }

    /// Runs a command the process manager asked for. A refusal is the workflow's answer (e.g.
    /// the purge of a subject already purged) and is not tried again.
    async fn decide(&self, command: &Command, cause: &RecordedEvent) -> Result<(), OutboxError> {
        let issued = Issued {
            tenant: cause.meta.tenant.clone(),
            actor: Actor::new(ActorRole::System, "process-manager").expect("a valid actor id"),
            correlation_id: cause.meta.correlation_id,
            command_id: Uuid::now_v7(),
            // The command's own facts (a purge's final time) come from the cause; the time it
            // is decided and recorded is now.
            now: time::OffsetDateTime::now_utc(),
        };
        match self.system.bus().execute(command, &issued).await {
            Ok(_) => Ok(()),
            Err(videoamt_adapters::bus::BusError::Refused(e)) => {
                tracing::info!(refusal = %e, position = cause.global_position, "process manager command refused");
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn perform(&self, item: &WorkItem, cause: &RecordedEvent) -> Result<(), OutboxError> {
        let (appointment, kind) = match item {
            WorkItem::ConfirmationMail { appointment } => (*appointment, MailKind::Confirmation),
            WorkItem::ReminderMail { appointment } => (*appointment, MailKind::Reminder),
            WorkItem::CancellationMail { appointment } => (*appointment, MailKind::Cancellation),
            // The feedback invitation is shown in the session room itself (issue 7).
            WorkItem::FeedbackInvitation { .. } => return Ok(()),
        };
        let message_id = format!(
            "<{}.{}.{}@videoamt>",
            appointment,
            cause.global_position,
            kind.as_str()
        );
        let Some((state, tenant)) = self.system.appointment(appointment).await? else {
            return Ok(());
        };
        let Some(booking) = state.booking.as_ref() else {
            return Ok(());
        };
        if state.mails.contains(&message_id) {
            return Ok(());
        }
        let Some(tenant) = self.system.tenants.iter().find(|t| t.id == tenant) else {
            return Ok(());
        };
        let keys = self.system.keys.as_ref();
        let (Ok(Revealed::Text(to)), Ok(Revealed::Text(name))) = (
            reveal(keys, &booking.contact.email).await,
            reveal(keys, &booking.contact.name).await,
        ) else {
            // Erased (purged) or unreadable: there is nobody to write to any more.
            tracing::info!(kind = kind.as_str(), "mail skipped: contact erased");
            return Ok(());
        };
        let link = format!(
            "{}/termin/{}",
            self.public_url,
            self.system.access.token(appointment)
        );
        let rendered = crate::app::mails::Appointment {
            tenant,
            booking,
            name: &name,
            link,
            sequence: u32::try_from(cause.stream_version).unwrap_or(u32::MAX),
            now: cause.meta.recorded_at,
        }
        .render(kind);
        let mail = OutgoingMail {
            message_id: message_id.clone(),
            from: self.from.clone(),
            from_name: format!("{} – Videoberatung", tenant.name),
            to,
            to_name: name,
            subject: rendered.subject,
            text: rendered.text,
            calendar: rendered.calendar,
            owner: booking.subject,
        };
        let mut wait = self.retry.first_wait;
        let mut attempts = 0;
        let failure = loop {
            attempts += 1;
            match self.mailer.send(&mail).await {
                Ok(()) => break None,
                Err(MailError::Permanent(reason)) => break Some(format!("{reason} (dauerhaft)")),
                Err(MailError::Transient(reason)) if attempts >= self.retry.attempts => {
                    break Some(format!("{reason} (vorübergehend)"));
                }
                Err(MailError::Transient(reason)) => {
                    tracing::warn!(kind = kind.as_str(), attempts, %reason, "mail not sent yet");
                    tokio::time::sleep(wait).await;
                    wait *= 2;
                }
            }
        };
        let command = match failure {
            None => AppointmentCommand::RecordMailSent {
                appointment,
                kind,
                message_id,
            }
            .into(),
            Some(reason) => {
                tracing::warn!(kind = kind.as_str(), attempts, %reason, "mail undeliverable");
                AppointmentCommand::RecordDeliveryFailed {
                    appointment,
                    kind,
                    message_id,
                    attempts,
                    reason,
                }
                .into()
            }
        };
        self.system
            .bus()
            .execute(
                &command,
                &Issued {
                    tenant: tenant.id.clone(),
                    actor: Actor::new(ActorRole::System, "outbox").expect("valid id"),
                    correlation_id: cause.meta.correlation_id,
                    command_id: Uuid::now_v7(),
                    now: time::OffsetDateTime::now_utc(),
                },
            )
            .await?;
        Ok(())
    }
}

/// Moves the worker's checkpoint to the end of the log without sending anything, for a log
/// whose mails are not to go out (demo data). Does nothing once the worker has started.
pub async fn skip_to_head(system: &System) -> Result<(), OutboxError> {
    let current = system.store.checkpoint(CHECKPOINT).await?;
    let head = system.store.last_position().await?;
    if current.position == 0 && head > 0 {
        system
            .store
            .commit(
                CHECKPOINT,
                0,
                ProjectionCheckpoint {
                    projection: CHECKPOINT.to_owned(),
                    position: head,
                    event_recorded_at: None,
                },
                vec![],
            )
            .await?;
    }
    Ok(())
}
