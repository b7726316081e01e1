//! Audit reads. Every read of an appointment's record is itself recorded first
//! (`AuditRecordViewed`), so auditors are audited; nothing is shown without that event.

use std::sync::Arc;

use time::OffsetDateTime;
use uuid::Uuid;
use videoamt_adapters::bus::{BusError, CommandBus, Issued};
use videoamt_core::domain::AppointmentId;
use videoamt_core::domain::record::RecordCommand;
use videoamt_core::event::{Actor, GlobalPosition};
use videoamt_core::readmodel::{ReadModelError, ReadModelStore};
use videoamt_projections::Projection;
use videoamt_projections::audit::{self, Replay, ReplayError};
use videoamt_projections::runner::{Runner, RunnerError};

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error(transparent)]
    Replay(#[from] ReplayError),
    #[error(transparent)]
    Bus(#[from] BusError),
    #[error(transparent)]
    Runner(#[from] RunnerError),
    #[error("the audit timeline did not catch up: another runner kept moving it")]
    Busy,
}

#[derive(Clone)]
pub struct AuditDesk {
    bus: CommandBus,
    models: Arc<dyn ReadModelStore>,
    runner: Runner,
    timeline: Vec<Arc<dyn Projection>>,
}

impl std::fmt::Debug for AuditDesk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditDesk").finish_non_exhaustive()
    }
}

impl AuditDesk {
    pub fn new(bus: CommandBus, models: Arc<dyn ReadModelStore>) -> Self {
        let runner = Runner::new(bus.store().clone(), models.clone());
        Self {
            bus,
            models,
            runner,
            timeline: vec![Arc::new(audit::AuditTimeline)],
        }
    }

    /// Records that `viewer` reads the record of `appointment` as of `as_of` (now when
    /// `None`), then returns it. Refused before anything is written when the position lies
    /// beyond the log or the appointment is unknown.
    pub async fn view(
        &self,
        appointment: AppointmentId,
        as_of: Option<GlobalPosition>,
        viewer: &Actor,
    ) -> Result<Replay, AuditError> {
        let events = self.bus.store();
        let head = events.last_position().await.map_err(ReplayError::from)?;
        if let Some(position) = as_of.filter(|p| *p > head) {
            return Err(ReplayError::BeyondEnd { position, head }.into());
        }
        let first = events
            .read_stream(&appointment.stream(), 0)
            .await
            .map_err(ReplayError::from)?;
        let Some(first) = first.first() else {
            return Err(ReplayError::UnknownAppointment(appointment).into());
        };
        let issued = Issued {
            tenant: first.meta.tenant.clone(),
            actor: viewer.clone(),
            correlation_id: Uuid::now_v7(),
            command_id: Uuid::now_v7(),
            now: OffsetDateTime::now_utc(),
        };
        let executed = self
            .bus
            .execute(
                &RecordCommand::RecordAuditView { appointment, as_of }.into(),
                &issued,
            )
            .await?;
        // The view itself belongs in the timeline that is shown.
        let viewed = executed.positions.iter().copied().max().unwrap_or(0);
        self.timeline_reaches(viewed).await?;
        let tenant = self.bus.tenant(&issued.tenant);
        Ok(audit::replay(
            events.as_ref(),
            self.models.as_ref(),
            appointment,
            as_of,
            tenant,
        )
        .await?)
    }

    /// Brings the audit timeline up to `position`. A running server's own runner may move the
    /// checkpoint at the same time (then this one's commit is refused and nothing is written
    /// twice); the timeline is up to date once either of them got past `position`.
    async fn timeline_reaches(&self, position: GlobalPosition) -> Result<(), AuditError> {
        for _ in 0..100 {
            match self.runner.catch_up(&self.timeline).await {
                Ok(_) => return Ok(()),
                Err(RunnerError::ReadModel(ReadModelError::CheckpointMoved { actual, .. }))
                    if actual >= position =>
                {
                    return Ok(());
                }
                Err(RunnerError::ReadModel(ReadModelError::CheckpointMoved { .. })) => {
                    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(AuditError::Busy)
    }
}
