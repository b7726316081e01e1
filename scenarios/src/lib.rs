//! Executable stories from the seeds. A [`Visit`] drives the real command bus on a real store
//! the way the running system will: each command is executed, then the process managers react
//! to the new events (commands run at once; timers and outbox work are collected to be looked
//! at).

pub mod due;
pub mod generate;

use std::sync::Arc;

use time::OffsetDateTime;
use uuid::Uuid;
use videoamt_adapters::bus::{BusError, CommandBus, Executed, Issued};
use videoamt_core::domain::command::Command;
use videoamt_core::domain::process::{Reaction, WorkItem, react};
use videoamt_core::domain::{
    AppointmentId, DocumentId, DomainEvent, FormId, PaymentId, SessionId, SubjectId,
    events::DecodeError,
};
use videoamt_core::event::{Actor, GlobalPosition, RecordedEvent, TenantId};
use videoamt_core::store::{EventStore, StoreError};

/// Fresh ids for every stream and document of one visit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VisitIds {
    pub appointment: AppointmentId,
    pub subject: SubjectId,
    pub session: SessionId,
    pub form: FormId,
    pub payment: PaymentId,
    pub document: DocumentId,
}

impl VisitIds {
    pub fn fresh() -> Self {
        Self {
            appointment: AppointmentId(Uuid::now_v7()),
            subject: SubjectId(Uuid::now_v7()),
            session: SessionId(Uuid::now_v7()),
            form: FormId(Uuid::now_v7()),
            payment: PaymentId(Uuid::now_v7()),
            document: DocumentId(Uuid::now_v7()),
        }
    }
}

/// One party's view of the system during a story: the bus, a virtual clock, and what the
/// process managers asked for.
#[derive(Debug)]
pub struct Visit {
    pub bus: CommandBus,
    pub tenant: TenantId,
    pub now: OffsetDateTime,
    pub correlation_id: Uuid,
    checkpoint: GlobalPosition,
    /// Outbox work the process managers produced, in order.
    pub work: Vec<WorkItem>,
    /// Timers the process managers set, in order.
    pub timers: Vec<(OffsetDateTime, Command)>,
}

#[derive(Debug)]
pub enum StoryError {
    Bus(BusError),
    Store(StoreError),
    Decode(DecodeError),
}

impl std::fmt::Display for StoryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoryError::Bus(e) => write!(f, "{e}"),
            StoryError::Store(e) => write!(f, "{e}"),
            StoryError::Decode(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for StoryError {}

impl From<BusError> for StoryError {
    fn from(e: BusError) -> Self {
        StoryError::Bus(e)
    }
}

impl Visit {
    pub fn new(bus: CommandBus, tenant: TenantId, now: OffsetDateTime) -> Self {
        Self {
            bus,
            tenant,
            now,
            correlation_id: Uuid::now_v7(),
            checkpoint: 0,
            work: Vec::new(),
            timers: Vec::new(),
        }
    }

    pub fn store(&self) -> &Arc<dyn EventStore> {
        self.bus.store()
    }

    /// Runs one command as `actor` at the story's current time, then lets the process managers
    /// react to everything that is new in the log.
    pub async fn run(&mut self, actor: &Actor, command: Command) -> Result<Executed, StoryError> {
        let issued = Issued {
            tenant: self.tenant.clone(),
            actor: actor.clone(),
            correlation_id: self.correlation_id,
            command_id: Uuid::now_v7(),
            now: self.now,
        };
        let executed = self.bus.execute(&command, &issued).await?;
        self.react().await?;
        Ok(executed)
    }

    /// Feeds new events to the process managers until they have nothing more to say.
    async fn react(&mut self) -> Result<(), StoryError> {
        loop {
            let page = self
                .store()
                .read_all(self.checkpoint, 1_000)
                .await
                .map_err(StoryError::Store)?;
            let Some(last) = page.last() else {
                return Ok(());
            };
            self.checkpoint = last.global_position;
            for recorded in page {
                for reaction in reactions(&recorded)? {
                    match reaction {
                        Reaction::Command(command) => {
                            let system = Actor::system("process-manager");
                            let issued = Issued {
                                tenant: recorded.meta.tenant.clone(),
                                actor: system,
                                correlation_id: recorded.meta.correlation_id,
                                command_id: recorded.event_id,
                                now: self.now,
                            };
                            self.bus.execute(&command, &issued).await?;
                        }
                        Reaction::Timer { due, command } => self.timers.push((due, command)),
                        Reaction::Work(item) => self.work.push(item),
                    }
                }
            }
        }
    }

    /// All domain events of the log, in order.
    pub async fn events(&self) -> Result<Vec<(RecordedEvent, DomainEvent)>, StoryError> {
        let mut all = Vec::new();
        let mut after = 0;
        loop {
            let page = self
                .store()
                .read_all(after, 1_000)
                .await
                .map_err(StoryError::Store)?;
            let Some(last) = page.last() else {
                return Ok(all);
            };
            after = last.global_position;
            for recorded in page {
                let event = DomainEvent::from_payload(
                    recorded.event_type.as_str(),
                    recorded.schema_version,
                    &recorded.payload,
                )
                .map_err(StoryError::Decode)?;
                all.push((recorded, event));
            }
        }
    }
}

fn reactions(recorded: &RecordedEvent) -> Result<Vec<Reaction>, StoryError> {
    let event = DomainEvent::from_payload(
        recorded.event_type.as_str(),
        recorded.schema_version,
        &recorded.payload,
    )
    .map_err(StoryError::Decode)?;
    Ok(react(
        &recorded.stream_id,
        &event,
        recorded.meta.recorded_at,
    ))
}
