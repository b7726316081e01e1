//! Feeds projections from the log: catch-up in batches, then live.

use std::sync::Arc;
use std::time::Duration;

use videoamt_core::domain::DomainEvent;
use videoamt_core::domain::events::DecodeError;
use videoamt_core::event::{GlobalPosition, RecordedEvent};
use videoamt_core::readmodel::{
    DocKey, Docs, ProjectionCheckpoint, ReadModelError, ReadModelStore,
};
use videoamt_core::store::{EventStore, StoreError};

use crate::{Projection, Recorded};

/// Events per committed batch when following the log.
pub const BATCH: usize = 500;
/// Events per committed batch when rebuilding: fewer, larger transactions.
pub const REBUILD_BATCH: usize = 20_000;
/// Documents a projection keeps cached between batches before starting over.
const CACHE_LIMIT: usize = 100_000;
/// The same while rebuilding: as long as the cache holds every document, nothing is read
/// back from the store.
const REBUILD_CACHE_LIMIT: usize = 1_000_000;
/// Rounds of index lookups one event may need.
const MAX_KEY_ROUNDS: usize = 4;

#[derive(Debug, thiserror::Error)]
pub enum RunnerError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    ReadModel(#[from] ReadModelError),
    #[error("a projection task failed: {0}")]
    Task(String),
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
    /// Age of the oldest event not yet applied; 0 when caught up.
    pub seconds_behind: f64,
}

/// One projection being fed: its cache of documents and the checkpoint it last committed.
struct Feed {
    projection: Arc<dyn Projection>,
    docs: Docs,
    cache_limit: usize,
    at: Option<GlobalPosition>,
}

impl Feed {
    fn new(projection: Arc<dyn Projection>) -> Self {
        Self {
            projection,
            docs: Docs::default(),
            cache_limit: CACHE_LIMIT,
            at: None,
        }
    }

    /// A feed of a projection that was just reset: its cache starts out holding everything.
    fn rebuilding(projection: Arc<dyn Projection>) -> Self {
        Self {
            docs: Docs::complete(),
            cache_limit: REBUILD_CACHE_LIMIT,
            ..Self::new(projection)
        }
    }

    /// Forget what may be stale, after a failure or another writer's commit.
    fn reset(&mut self) {
        self.docs.clear();
        self.at = None;
    }
}

fn decode(page: &[RecordedEvent]) -> Result<Vec<(usize, DomainEvent)>, RunnerError> {
    let mut decoded = Vec::with_capacity(page.len());
    for (i, envelope) in page.iter().enumerate() {
        match DomainEvent::from_payload(
            envelope.event_type.as_str(),
            envelope.schema_version,
            &envelope.payload,
        ) {
            Ok(event) => decoded.push((i, event)),
            // Operational events (probes, benchmarks) are not part of any read model.
            Err(DecodeError::UnknownType(_)) => {}
            Err(source) => {
                return Err(RunnerError::Decode {
                    position: envelope.global_position,
                    source,
                });
            }
        }
    }
    Ok(decoded)
}

/// One batch of the log, read and decoded once for every projection.
struct Page {
    events: Vec<RecordedEvent>,
    decoded: Vec<(usize, DomainEvent)>,
    /// Position and time of the last event.
    position: GlobalPosition,
    recorded_at: time::OffsetDateTime,
}

/// Resolves once `stop` turns true (or its sender is gone). The guard `wait_for` returns is
/// dropped here, so the future stays `Send` for `tokio::spawn`.
async fn stopped(stop: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

impl Runner {
    pub fn new(events: Arc<dyn EventStore>, models: Arc<dyn ReadModelStore>) -> Self {
        Self { events, models }
    }

    /// Up to `batch` events after `after`; `None` at the end of the log.
    async fn read_page(
        &self,
        after: GlobalPosition,
        batch: usize,
    ) -> Result<Option<Arc<Page>>, RunnerError> {
        let events = self.events.read_all(after, batch).await?;
        let Some(last) = events.last() else {
            return Ok(None);
        };
        let (position, recorded_at) = (last.global_position, last.meta.recorded_at);
        let decoded = decode(&events)?;
        Ok(Some(Arc::new(Page {
            events,
            decoded,
            position,
            recorded_at,
        })))
    }

    /// Loads `missing` keys of a projection in one query.
    async fn load(&self, feed: &mut Feed, missing: Vec<DocKey>) -> Result<(), RunnerError> {
        if missing.is_empty() {
            return Ok(());
        }
        let found = self.models.get(feed.projection.name(), &missing).await?;
        feed.docs.load(&missing, found);
        Ok(())
    }

    /// Folds the page's events after the feed's checkpoint into its documents. The documents a
    /// page needs are fetched up front in a few queries; what only shows up after earlier
    /// events of the page are applied is fetched as it comes.
    async fn fold(
        &self,
        feed: &mut Feed,
        page: &[RecordedEvent],
        decoded: &[(usize, DomainEvent)],
        after: GlobalPosition,
    ) -> Result<(), RunnerError> {
        let events: Vec<Recorded<'_>> = decoded
            .iter()
            .filter(|(i, _)| page[*i].global_position > after)
            .map(|(i, event)| Recorded {
                envelope: &page[*i],
                event,
            })
            .collect();
        if feed.docs.is_complete() {
            // Nothing to load: the projection's documents are all at hand.
            for event in events {
                feed.projection.apply(event, &mut feed.docs);
            }
            return Ok(());
        }
        for _ in 0..MAX_KEY_ROUNDS {
            let mut wanted: Vec<DocKey> = events
                .iter()
                .flat_map(|e| feed.projection.keys(*e, &feed.docs))
                .collect();
            wanted.sort_unstable();
            wanted.dedup();
            let missing = feed.docs.missing(&wanted);
            if missing.is_empty() {
                break;
            }
            self.load(feed, missing).await?;
        }
        for event in events {
            for _ in 0..MAX_KEY_ROUNDS {
                let missing = feed.docs.missing(&feed.projection.keys(event, &feed.docs));
                if missing.is_empty() {
                    break;
                }
                self.load(feed, missing).await?;
            }
            feed.projection.apply(event, &mut feed.docs);
        }
        Ok(())
    }

    /// Reads one page after the lowest checkpoint and lets every feed fold and commit it; the
    /// events read (0 when all are caught up). The log is read and decoded once for all.
    async fn step(&self, feeds: &mut Vec<Feed>, batch: usize) -> Result<usize, RunnerError> {
        for feed in feeds.iter_mut().filter(|f| f.at.is_none()) {
            feed.at = Some(
                self.models
                    .checkpoint(feed.projection.name())
                    .await?
                    .position,
            );
        }
        let Some(from) = feeds.iter().filter_map(|f| f.at).min() else {
            return Ok(0);
        };
        let Some(page) = self.read_page(from, batch).await? else {
            return Ok(0);
        };
        // Each projection folds and commits in its own task, so folds use every core.
        let mut tasks = Vec::with_capacity(feeds.len());
        for mut feed in std::mem::take(feeds) {
            let (runner, page) = (self.clone(), page.clone());
            tasks.push(tokio::spawn(async move {
                let outcome = runner.fold_and_commit(&mut feed, &page).await;
                if outcome.is_err() {
                    feed.reset();
                }
                (feed, outcome)
            }));
        }
        let mut failure = None;
        for task in tasks {
            match task.await {
                Ok((feed, outcome)) => {
                    feeds.push(feed);
                    if let Err(e) = outcome {
                        failure.get_or_insert(e);
                    }
                }
                Err(e) => {
                    failure.get_or_insert(RunnerError::Task(e.to_string()));
                }
            }
        }
        match failure {
            Some(e) => Err(e),
            None => Ok(page.events.len()),
        }
    }

    async fn fold_and_commit(&self, feed: &mut Feed, page: &Page) -> Result<(), RunnerError> {
        let after = feed.at.unwrap_or_default();
        let position = page.position;
        if after >= position {
            return Ok(());
        }
        self.fold(feed, &page.events, &page.decoded, after).await?;
        let to = ProjectionCheckpoint {
            projection: feed.projection.name().to_owned(),
            position,
            event_recorded_at: Some(page.recorded_at),
        };
        let changes = feed.docs.take_changes();
        self.models
            .commit(feed.projection.name(), after, to, changes)
            .await?;
        feed.at = Some(position);
        if feed.docs.len() > feed.cache_limit {
            feed.docs.clear();
        }
        Ok(())
    }

    async fn drain(&self, feeds: &mut Vec<Feed>, batch: usize) -> Result<u64, RunnerError> {
        let mut read = 0;
        loop {
            let n = self.step(feeds, batch).await?;
            if n == 0 {
                return Ok(read);
            }
            read += n as u64;
        }
    }

    /// Brings the projections up to the log's current end; the events read.
    pub async fn catch_up(&self, projections: &[Arc<dyn Projection>]) -> Result<u64, RunnerError> {
        let mut feeds: Vec<Feed> = projections.iter().cloned().map(Feed::new).collect();
        self.drain(&mut feeds, BATCH).await
    }

    /// Drops the projections' documents and folds the whole log again; `progress` hears the
    /// position all projections have committed, after every batch.
    ///
    /// One reader and one task per projection, joined by short queues: each projection folds
    /// and commits at its own pace, so one projection's commit overlaps the others' folds and
    /// the next read, and the slowest sets the pace.
    pub async fn rebuild(
        &self,
        projections: &[Arc<dyn Projection>],
        mut progress: impl FnMut(GlobalPosition),
    ) -> Result<u64, RunnerError> {
        use std::sync::atomic::{AtomicU64, Ordering};
        for p in projections {
            self.models.reset(p.name()).await?;
        }
        let committed: Arc<Vec<AtomicU64>> =
            Arc::new(projections.iter().map(|_| AtomicU64::new(0)).collect());
        let mut queues = Vec::with_capacity(projections.len());
        let mut tasks = Vec::with_capacity(projections.len());
        for (i, projection) in projections.iter().enumerate() {
            let (queue, mut pages) = tokio::sync::mpsc::channel::<Arc<Page>>(2);
            let (runner, committed) = (self.clone(), committed.clone());
            let mut feed = Feed::rebuilding(projection.clone());
            feed.at = Some(0);
            tasks.push(tokio::spawn(async move {
                while let Some(page) = pages.recv().await {
                    runner.fold_and_commit(&mut feed, &page).await?;
                    committed[i].store(page.position, Ordering::Release);
                }
                Ok::<(), RunnerError>(())
            }));
            queues.push(queue);
        }
        let slowest = |c: &[AtomicU64]| {
            c.iter()
                .map(|p| p.load(Ordering::Acquire))
                .min()
                .unwrap_or_default()
        };
        let (mut after, mut read, mut failure) = (0, 0, None);
        'pages: loop {
            let page = match self.read_page(after, REBUILD_BATCH).await {
                Ok(Some(page)) => page,
                Ok(None) => break,
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            };
            after = page.position;
            read += page.events.len() as u64;
            for queue in &queues {
                // A closed queue means that projection failed; its task tells why.
                if queue.send(page.clone()).await.is_err() {
                    break 'pages;
                }
            }
            progress(slowest(&committed));
        }
        drop(queues);
        for task in tasks {
            let outcome = match task.await {
                Ok(outcome) => outcome,
                Err(e) => Err(RunnerError::Task(e.to_string())),
            };
            if let Err(e) = outcome {
                failure.get_or_insert(e);
            }
        }
        match failure {
            Some(e) => Err(e),
            None => {
                progress(slowest(&committed));
                Ok(read)
            }
        }
    }

    /// Keeps the projections up to date until `stop` turns true: catch-up, then a batch
    /// whenever the log grows. A failed batch is retried after a pause, from the checkpoints.
    pub async fn run(
        &self,
        projections: Vec<Arc<dyn Projection>>,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) -> Result<(), RunnerError> {
        use futures::{FutureExt, StreamExt};
        let mut feeds: Vec<Feed> = projections.into_iter().map(Feed::new).collect();
        loop {
            if *stop.borrow() {
                return Ok(());
            }
            if let Err(e) = self.drain(&mut feeds, BATCH).await {
                tracing::warn!(error = %e, "projection batch failed; retrying");
                tokio::select! {
                    () = stopped(&mut stop) => return Ok(()),
                    () = tokio::time::sleep(Duration::from_millis(500)) => continue,
                }
            }
            let at = feeds.iter().filter_map(|f| f.at).min().unwrap_or_default();
            let mut live = self.events.subscribe(at);
            loop {
                tokio::select! {
                    () = stopped(&mut stop) => return Ok(()),
                    next = live.next() => match next {
                        Some(Ok(_)) => {
                            // Whatever else has arrived is read by the same batches.
                            while let Some(Some(Ok(_))) = live.next().now_or_never() {}
                            if let Err(e) = self.drain(&mut feeds, BATCH).await {
                                tracing::warn!(error = %e, "projection batch failed; retrying");
                                break;
                            }
                        }
                        Some(Err(e)) => {
                            tracing::warn!(error = %e, "subscription failed; resubscribing");
                            tokio::time::sleep(Duration::from_millis(500)).await;
                            break;
                        }
                        None => break,
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
            let seconds = if behind == 0 {
                0.0
            } else {
                match self.events.read_all(checkpoint.position, 1).await?.first() {
                    Some(oldest) => (now - oldest.meta.recorded_at).as_seconds_f64().max(0.0),
                    None => 0.0,
                }
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
