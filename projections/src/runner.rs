//! Feeds projections from the log: catch-up in batches, then live.

use std::sync::Arc;
use std::time::Duration;

use videoamt_core::domain::DomainEvent;
use videoamt_core::domain::events::DecodeError;
use videoamt_core::event::GlobalPosition;
use videoamt_core::readmodel::{Docs, ProjectionCheckpoint, ReadModelError, ReadModelStore};
use videoamt_core::store::{EventStore, StoreError};

use crate::{Projection, Recorded};

/// Events per committed batch.
pub const BATCH: usize = 500;
/// Rounds of index lookups one event may need.
const MAX_KEY_ROUNDS: usize = 4;

#[derive(Debug, thiserror::Error)]
pub enum RunnerError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    ReadModel(#[from] ReadModelError),
    #[error("event at position {position} cannot be read: {source}")]
    Decode {
        position: GlobalPosition,
        source: DecodeError,
    },
}

#[derive(Clone)]
pub struct Runner {
    events: Arc<dyn EventStore>,
    models: Arc<dyn ReadModelStore>,
}

impl std::fmt::Debug for Runner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runner").finish_non_exhaustive()
    }
}

/// How far a projection is behind the log.
#[derive(Debug, Clone, PartialEq)]
pub struct Lag {
    pub projection: &'static str,
    pub checkpoint: GlobalPosition,
    pub events_behind: u64,
    pub seconds_behind: f64,
}

impl Runner {
    pub fn new(events: Arc<dyn EventStore>, models: Arc<dyn ReadModelStore>) -> Self {
        Self { events, models }
    }

    /// Applies up to `batch` events after the checkpoint and commits them; the number applied
    /// (0 when caught up).
    pub async fn step(
        &self,
        projection: &dyn Projection,
        batch: usize,
    ) -> Result<usize, RunnerError> {
        let name = projection.name();
        let from = self.models.checkpoint(name).await?;
        let page = self.events.read_all(from.position, batch).await?;
        let Some(last) = page.last() else {
            return Ok(0);
        };
        let to = ProjectionCheckpoint {
            projection: name.to_owned(),
            position: last.global_position,
            event_recorded_at: Some(last.meta.recorded_at),
        };
        let mut docs = Docs::default();
        for envelope in &page {
            let event = match DomainEvent::from_payload(
                envelope.event_type.as_str(),
                envelope.schema_version,
                &envelope.payload,
            ) {
                Ok(event) => event,
                // Operational events (probes, benchmarks) are not part of any read model.
                Err(DecodeError::UnknownType(_)) => continue,
                Err(source) => {
                    return Err(RunnerError::Decode {
                        position: envelope.global_position,
                        source,
                    });
                }
            };
            let recorded = Recorded {
                envelope,
                event: &event,
            };
            for _ in 0..MAX_KEY_ROUNDS {
                let missing = docs.missing(&projection.keys(recorded, &docs));
                if missing.is_empty() {
                    break;
                }
                let found = self.models.get(name, &missing).await?;
                docs.load(&missing, found);
            }
            projection.apply(recorded, &mut docs);
        }
        self.models
            .commit(name, from.position, to, docs.take_changes())
            .await?;
        Ok(page.len())
    }

    /// Runs batches until the projection has seen the whole log; the events applied.
    pub async fn catch_up(&self, projection: &dyn Projection) -> Result<u64, RunnerError> {
        let mut applied = 0;
        loop {
            let n = self.step(projection, BATCH).await?;
            if n == 0 {
                return Ok(applied);
            }
            applied += n as u64;
        }
    }

    /// Drops the projection's documents and folds the whole log again; `progress` hears the
    /// position after every batch.
    pub async fn rebuild(
        &self,
        projection: &dyn Projection,
        mut progress: impl FnMut(GlobalPosition),
    ) -> Result<u64, RunnerError> {
        self.models.reset(projection.name()).await?;
        let mut applied = 0;
        loop {
            let n = self.step(projection, BATCH).await?;
            if n == 0 {
                return Ok(applied);
            }
            applied += n as u64;
            progress(self.models.checkpoint(projection.name()).await?.position);
        }
    }

    /// Keeps one projection up to date until `stop` turns true: catch-up, then a batch whenever
    /// the log grows.
    pub async fn run(
        &self,
        projection: Arc<dyn Projection>,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) -> Result<(), RunnerError> {
        use futures::StreamExt;
        loop {
            self.catch_up(projection.as_ref()).await?;
            let at = self.models.checkpoint(projection.name()).await?.position;
            let mut live = self.events.subscribe(at);
            tokio::select! {
                _ = stop.wait_for(|s| *s) => return Ok(()),
                next = live.next() => {
                    if let Some(Err(e)) = next {
                        tracing::warn!(error = %e, projection = projection.name(), "subscription failed");
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                }
            }
        }
    }

    /// Lag of every projection against the log's head.
    pub async fn lag(&self, projections: &[Arc<dyn Projection>]) -> Result<Vec<Lag>, RunnerError> {
        let head = self.events.last_position().await?;
        let now = time::OffsetDateTime::now_utc();
        let mut lags = Vec::new();
        for p in projections {
            let checkpoint = self.models.checkpoint(p.name()).await?;
            let behind = head.saturating_sub(checkpoint.position);
            let seconds = match (behind, checkpoint.event_recorded_at) {
                (0, _) => 0.0,
                (_, Some(at)) => (now - at).as_seconds_f64().max(0.0),
                (_, None) => 0.0,
            };
            lags.push(Lag {
                projection: p.name(),
                checkpoint: checkpoint.position,
                events_behind: behind,
                seconds_behind: seconds,
            });
        }
        Ok(lags)
    }
}
