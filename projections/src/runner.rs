//! Feeds projections from the log: catch-up in batches, then live.

use std::sync::Arc;
use std::time::{Duration, Instant};

use videoamt_core::domain::events::DecodeError;
use videoamt_core::domain::{AppointmentId, DomainEvent};
use videoamt_core::event::{GlobalPosition, RecordedEvent};
use videoamt_core::readmodel::{
    Commit, DocKey, Docs, ProjectionCheckpoint, ReadModelError, ReadModelStore,
};
use videoamt_core::store::{EventStore, StoreError};

use crate::owner::Owners;
use crate::{Projection, Recorded};

/// Events per committed batch when following the log.
pub const BATCH: usize = 500;
/// Events per page read when rebuilding.
pub const REBUILD_BATCH: usize = 20_000;
/// Events a rebuild folds in memory before it writes: each document changed in the window is
/// written once, in one transaction, however often its events changed it.
const REBUILD_WINDOW: usize = 200_000;
/// The same bound in changed documents, so that one commit stays a bounded size.
const REBUILD_WINDOW_DOCS: usize = 50_000;
/// Documents a projection keeps cached between batches before starting over.
const CACHE_LIMIT: usize = 100_000;
/// The same while rebuilding: as long as the cache holds every document, nothing is read
/// back from the store.
const REBUILD_CACHE_LIMIT: usize = 1_000_000;
/// Tasks that decode one page of a rebuild at once.
const DECODE_PARTS: usize = 2;
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
    rebuild: RebuildSizes,
    /// Which appointment the streams seen so far belong to, shared by every feed.
    owners: Arc<Owners>,
}

/// How a rebuild cuts the log: pages read, and windows folded in memory between commits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RebuildSizes {
    /// Events per page read.
    pub page: usize,
    /// Events folded before a commit.
    pub window: usize,
    /// Changed documents of one projection before a commit, whatever the events.
    pub window_docs: usize,
}

impl Default for RebuildSizes {
    fn default() -> Self {
        Self {
            page: REBUILD_BATCH,
            window: REBUILD_WINDOW,
            window_docs: REBUILD_WINDOW_DOCS,
        }
    }
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

/// What a rebuild did and where its time went.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Rebuilt {
    pub events: u64,
    pub seconds: f64,
    /// Until the last page was read and handed on (reading, decoding, and waiting for the
    /// slowest projection's queue).
    pub read_seconds: f64,
    pub projections: Vec<Spent>,
}

/// One projection's share of a rebuild.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Spent {
    pub projection: &'static str,
    /// Folding the events into documents in memory.
    pub fold_seconds: f64,
    /// Serialising the changed documents and writing them with the checkpoint.
    pub commit_seconds: f64,
    pub commits: u32,
    pub documents_written: u64,
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
    /// The appointment of each decoded event, in the same order.
    owners: Vec<Option<AppointmentId>>,
    /// Position and time of the last event.
    position: GlobalPosition,
    recorded_at: time::OffsetDateTime,
}

/// The page of `events` (`None` when there are none), decoded in `parts` tasks at once; its
/// owners are left to [`Runner::page_of`].
async fn decoded_page(
    events: Vec<RecordedEvent>,
    parts: usize,
) -> Result<Option<Page>, RunnerError> {
    let Some(last) = events.last() else {
        return Ok(None);
    };
    let (position, recorded_at) = (last.global_position, last.meta.recorded_at);
    let (events, decoded) = if parts <= 1 || events.len() < 2 * parts {
        let decoded = decode(&events)?;
        (events, decoded)
    } else {
        let events = Arc::new(events);
        let per_part = events.len().div_ceil(parts);
        let tasks: Vec<_> = (0..parts)
            .map(|part| {
                let events = events.clone();
                tokio::spawn(async move {
                    let from = (part * per_part).min(events.len());
                    let to = (from + per_part).min(events.len());
                    let mut found = decode(&events[from..to])?;
                    for (i, _) in &mut found {
                        *i += from;
                    }
                    Ok::<_, RunnerError>(found)
                })
            })
            .collect();
        let mut decoded = Vec::with_capacity(events.len());
        for task in tasks {
            decoded.extend(task.await.map_err(|e| RunnerError::Task(e.to_string()))??);
        }
        // The tasks are done, so this is the only reference left.
        let events = Arc::try_unwrap(events).unwrap_or_else(|shared| (*shared).clone());
        (events, decoded)
    };
    Ok(Some(Page {
        events,
        decoded,
        owners: Vec::new(),
        position,
        recorded_at,
    }))
}

/// Resolves once `stop` turns true (or its sender is gone). The guard `wait_for` returns is
/// dropped here, so the future stays `Send` for `tokio::spawn`.
async fn stopped(stop: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

impl Runner {
    pub fn new(events: Arc<dyn EventStore>, models: Arc<dyn ReadModelStore>) -> Self {
        Self {
            events,
            models,
            rebuild: RebuildSizes::default(),
            owners: Arc::default(),
        }
    }

    /// The same runner with other rebuild sizes: tests make windows small to see several.
    pub fn with_rebuild_sizes(mut self, sizes: RebuildSizes) -> Self {
        self.rebuild = sizes;
        self
    }

    /// Up to `batch` events after `after`; `None` at the end of the log.
    async fn read_page(
        &self,
        after: GlobalPosition,
        batch: usize,
    ) -> Result<Option<Arc<Page>>, RunnerError> {
        let events = self.events.read_all(after, batch).await?;
        self.page_of(events, 1).await
    }

    /// The page of `events`, decoded in `parts` tasks at once and with each event's
    /// appointment; `None` when there are none.
    async fn page_of(
        &self,
        events: Vec<RecordedEvent>,
        parts: usize,
    ) -> Result<Option<Arc<Page>>, RunnerError> {
        let Some(mut page) = decoded_page(events, parts).await? else {
            return Ok(None);
        };
        let events: Vec<_> = page
            .decoded
            .iter()
            .map(|(i, event)| (&page.events[*i], event))
            .collect();
        let owners = self.owners.resolve(self.events.as_ref(), &events).await?;
        page.owners = owners;
        Ok(Some(Arc::new(page)))
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
        page: &Page,
        after: GlobalPosition,
    ) -> Result<(), RunnerError> {
        let events: Vec<Recorded<'_>> = page
            .decoded
            .iter()
            .zip(&page.owners)
            .filter(|((i, _), _)| page.events[*i].global_position > after)
            .map(|((i, event), appointment)| Recorded {
                envelope: &page.events[*i],
                event,
                appointment: *appointment,
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
        // Each projection folds in its own task, so folds use every core; then what they
        // folded is committed together, in one transaction where the store has them (on
        // PostgreSQL two round trips instead of some seven per projection).
        let mut tasks = Vec::with_capacity(feeds.len());
        for mut feed in std::mem::take(feeds) {
            let (runner, page) = (self.clone(), page.clone());
            tasks.push(tokio::spawn(async move {
                let outcome = runner.fold_page(&mut feed, &page).await;
                if outcome.is_err() {
                    feed.reset();
                }
                (feed, outcome)
            }));
        }
        let mut failure = None;
        let mut folded = Vec::new();
        for task in tasks {
            match task.await {
                Ok((feed, outcome)) => {
                    match outcome {
                        Ok(true) => folded.push(feeds.len()),
                        Ok(false) => {}
                        Err(e) => {
                            failure.get_or_insert(e);
                        }
                    }
                    feeds.push(feed);
                }
                Err(e) => {
                    failure.get_or_insert(RunnerError::Task(e.to_string()));
                }
            }
        }
        if let Err(e) = self.commit_folded(feeds, &folded, &page).await {
            failure.get_or_insert(e);
        }
        match failure {
            Some(e) => Err(e),
            None => Ok(page.events.len()),
        }
    }

    /// Commits what the feeds at `folded` folded of `page`, together. On a refusal every one of
    /// them starts again from its stored checkpoint: with the default `commit_all` some may
    /// have been written.
    async fn commit_folded(
        &self,
        feeds: &mut [Feed],
        folded: &[usize],
        page: &Page,
    ) -> Result<(), RunnerError> {
        if folded.is_empty() {
            return Ok(());
        }
        let commits = folded
            .iter()
            .map(|&i| {
                let feed = &mut feeds[i];
                Commit {
                    from: feed.at.unwrap_or_default(),
                    to: ProjectionCheckpoint {
                        projection: feed.projection.name().to_owned(),
                        position: page.position,
                        event_recorded_at: Some(page.recorded_at),
                    },
                    changes: feed.docs.take_changes(),
                }
            })
            .collect();
        if let Err(e) = self.models.commit_all(commits).await {
            for &i in folded {
                feeds[i].reset();
            }
            return Err(e.into());
        }
        for &i in folded {
            let feed = &mut feeds[i];
            feed.at = Some(page.position);
            if feed.docs.len() > feed.cache_limit {
                feed.docs.clear();
            }
        }
        Ok(())
    }

    /// Folds the page's events after the feed's position into its documents, without writing;
    /// whether there was anything to fold.
    async fn fold_page(&self, feed: &mut Feed, page: &Page) -> Result<bool, RunnerError> {
        let after = feed.at.unwrap_or_default();
        if after >= page.position {
            return Ok(false);
        }
        self.fold(feed, page, after).await?;
        Ok(true)
    }

    /// Writes what the feed folded since its checkpoint, and moves the checkpoint to the end of
    /// `page`, the last page folded: [`Runner::commit_folded`] of this one feed.
    async fn commit(&self, feed: &mut Feed, page: &Page) -> Result<(), RunnerError> {
        self.commit_folded(std::slice::from_mut(feed), &[0], page)
            .await
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
    /// the next read, and the slowest sets the pace. A projection folds a window of pages in
    /// memory before it commits ([`RebuildSizes`]), so `progress` moves a window at a time.
    pub async fn rebuild(
        &self,
        projections: &[Arc<dyn Projection>],
        progress: impl FnMut(GlobalPosition),
    ) -> Result<u64, RunnerError> {
        Ok(self.rebuild_measured(projections, progress).await?.events)
    }

    /// [`Runner::rebuild`], telling where the time went.
    pub async fn rebuild_measured(
        &self,
        projections: &[Arc<dyn Projection>],
        mut progress: impl FnMut(GlobalPosition),
    ) -> Result<Rebuilt, RunnerError> {
        use std::sync::atomic::{AtomicU64, Ordering};
        for p in projections {
            self.models.reset(p.name()).await?;
        }
        let sizes = self.rebuild;
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
                let mut spent = Spent {
                    projection: feed.projection.name(),
                    ..Spent::default()
                };
                // The feed's checkpoint stays at the last commit while a window is folded.
                let (mut folded, mut last) = (0, None);
                while let Some(page) = pages.recv().await {
                    let started = Instant::now();
                    runner.fold_page(&mut feed, &page).await?;
                    spent.fold_seconds += started.elapsed().as_secs_f64();
                    folded += page.events.len();
                    if folded >= sizes.window || feed.docs.changed() >= sizes.window_docs {
                        runner.commit_measured(&mut feed, &page, &mut spent).await?;
                        committed[i].store(page.position, Ordering::Release);
                        folded = 0;
                        last = None;
                    } else {
                        last = Some(page);
                    }
                }
                if let Some(page) = last {
                    runner.commit_measured(&mut feed, &page, &mut spent).await?;
                    committed[i].store(page.position, Ordering::Release);
                }
                Ok::<Spent, RunnerError>(spent)
            }));
            queues.push(queue);
        }
        let slowest = |c: &[AtomicU64]| {
            c.iter()
                .map(|p| p.load(Ordering::Acquire))
                .min()
                .unwrap_or_default()
        };
        let started = Instant::now();
        let mut rebuilt = Rebuilt::default();
        // The next page is read while this one is decoded: the database and the decoding work
        // at once, not in turn.
        let (raw_pages, mut raw) = tokio::sync::mpsc::channel(2);
        let reader = tokio::spawn({
            let events = self.events.clone();
            async move {
                let mut after = 0;
                loop {
                    let page = events.read_all(after, sizes.page).await;
                    let end = match &page {
                        Ok(page) => page.last().map(|e| e.global_position),
                        Err(_) => None,
                    };
                    if raw_pages.send(page).await.is_err() {
                        return;
                    }
                    match end {
                        Some(end) => after = end,
                        None => return,
                    }
                }
            }
        });
        let mut failure = None;
        'pages: while let Some(events) = raw.recv().await {
            let page = match events.map_err(RunnerError::from) {
                Ok(events) => match self.page_of(events, DECODE_PARTS).await {
                    Ok(Some(page)) => page,
                    Ok(None) => break,
                    Err(e) => {
                        failure = Some(e);
                        break;
                    }
                },
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            };
            rebuilt.events += page.events.len() as u64;
            for queue in &queues {
                // A closed queue means that projection failed; its task tells why.
                if queue.send(page.clone()).await.is_err() {
                    break 'pages;
                }
            }
            progress(slowest(&committed));
        }
        rebuilt.read_seconds = started.elapsed().as_secs_f64();
        drop((queues, raw));
        reader.abort();
        for task in tasks {
            match task.await {
                Ok(Ok(spent)) => rebuilt.projections.push(spent),
                Ok(Err(e)) => {
                    failure.get_or_insert(e);
                }
                Err(e) => {
                    failure.get_or_insert(RunnerError::Task(e.to_string()));
                }
            }
        }
        rebuilt.seconds = started.elapsed().as_secs_f64();
        match failure {
            Some(e) => Err(e),
            None => {
                progress(slowest(&committed));
                Ok(rebuilt)
            }
        }
    }

    async fn commit_measured(
        &self,
        feed: &mut Feed,
        page: &Page,
        spent: &mut Spent,
    ) -> Result<(), RunnerError> {
        let started = Instant::now();
        spent.documents_written += feed.docs.changed() as u64;
        self.commit(feed, page).await?;
        spent.commits += 1;
        spent.commit_seconds += started.elapsed().as_secs_f64();
        Ok(())
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
