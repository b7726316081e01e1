//! The command bus: loads the streams a command names, lets core decide, and appends the
//! decision to all of them in one atomic batch, each guarded by the version it read.
//!
//! Before anything is stored, every personal value of the decision is sealed with its data
//! subject's key (issued here when the decision starts a subject), so the log never holds
//! personal data in the clear.
//!
//! Commands of this process that touch the same streams queue for them (`queue.rs`) and run one
//! after another, so they never conflict with each other. A version conflict means another
//! process wrote in between; the bus reloads and decides again, a bounded number of times. The
//! caller gets either the domain's refusal (unchanged) or the positions of what was written.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;
use queue::{Held, StreamQueues, Taken};
use time::OffsetDateTime;
use uuid::Uuid;
use videoamt_core::domain::calendar;
use videoamt_core::domain::command::Command;
use videoamt_core::domain::events::DecodeError;
use videoamt_core::domain::{
    Context, Decision, DomainError, DomainEvent, Histories, Personal, data_subject, encode,
};
use videoamt_core::event::{
    Actor, EventMetadata, GlobalPosition, InvalidInput, NewEvent, StreamId, StreamVersion, TenantId,
};
use videoamt_core::keys::{KeyError, KeyStore};
use videoamt_core::store::{
    AppendBatch, AppendError, EventStore, ExpectedVersion, MAX_EVENTS_PER_BATCH, StoreError,
    StreamAppend,
};
use videoamt_core::tenant::Tenant;

mod queue;

/// How often a command is decided again after a version conflict (a write of another process)
/// before giving up.
pub const MAX_ATTEMPTS: u32 = 32;
/// Streams a command may name, over all its loading rounds.
const MAX_STREAMS: usize = 64;
/// Commands loaded and decided at the same time when [`CommandBus::execute_all`] falls back to
/// loading them one by one.
const LOAD_PARALLEL: usize = 16;
/// Streams read in one round trip when many commands are loaded together.
const LOAD_CHUNK: usize = 1_000;

/// A command's streams as loaded: their events, and the version each was read at.
type Loaded = (Histories, BTreeMap<StreamId, Option<StreamVersion>>);

/// Who issues a command, for whom, when, and as part of which flow.
#[derive(Debug, Clone)]
pub struct Issued {
    pub tenant: TenantId,
    pub actor: Actor,
    pub correlation_id: Uuid,
    /// The id of this command; the events' causation id.
    pub command_id: Uuid,
    pub now: OffsetDateTime,
}

/// The position a piece of work (one HTTP request) wrote up to, so that what it answers can
/// tell the caller's next read which position that read must see (ADR 0029).
pub mod written {
    use std::cell::Cell;

    use videoamt_core::event::GlobalPosition;

    tokio::task_local! {
        static WRITTEN: Cell<GlobalPosition>;
    }

    /// Runs `work` and tells the highest position the bus appended during it; 0 for none.
    pub async fn noting<F: std::future::Future>(work: F) -> (F::Output, GlobalPosition) {
        WRITTEN
            .scope(Cell::new(0), async {
                let out = work.await;
                (out, WRITTEN.with(Cell::get))
            })
            .await
    }

    /// Outside [`noting`] nothing is noted.
    pub(super) fn note(positions: &[GlobalPosition]) {
        if let Some(last) = positions.iter().copied().max() {
            let _ = WRITTEN.try_with(|w| w.set(w.get().max(last)));
        }
    }
}

/// What a command did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Executed {
    /// Positions of the appended events; empty when there was nothing to do.
    pub positions: Vec<GlobalPosition>,
    /// How many times the command was decided (1 without conflicts).
    pub attempts: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// The workflow refused the command; nothing was written.
    #[error(transparent)]
    Refused(#[from] DomainError),
    #[error("unknown tenant {0}")]
    UnknownTenant(TenantId),
    /// Other processes kept writing the same streams; nothing was written.
    #[error("the streams kept changing; gave up after {0} attempts")]
    Contention(u32),
    #[error("a stored event cannot be read: {0}")]
    Decode(#[from] DecodeError),
    #[error("the decision cannot be stored: {0}")]
    Invalid(#[from] InvalidInput),
    #[error("the command names more than {MAX_STREAMS} streams")]
    TooManyStreams,
    /// A personal value could not be sealed (no key, or no subject to seal it for).
    #[error("personal data cannot be sealed: {0}")]
    Sealing(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<KeyError> for BusError {
    fn from(e: KeyError) -> Self {
        match e {
            KeyError::Store(e) => Self::Store(e),
            other => Self::Sealing(other.to_string()),
        }
    }
}

#[derive(Clone)]
pub struct CommandBus {
    store: Arc<dyn EventStore>,
    keys: Arc<dyn KeyStore>,
    tenants: Arc<BTreeMap<TenantId, Tenant>>,
    queues: StreamQueues,
}

impl std::fmt::Debug for CommandBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CommandBus")
            .field("tenants", &self.tenants.keys())
            .finish_non_exhaustive()
    }
}

impl CommandBus {
    pub fn new(
        store: Arc<dyn EventStore>,
        keys: Arc<dyn KeyStore>,
        tenants: impl IntoIterator<Item = Tenant>,
    ) -> Self {
        let tenants = tenants.into_iter().map(|t| (t.id.clone(), t)).collect();
        Self {
            store,
            keys,
            tenants: Arc::new(tenants),
            queues: StreamQueues::default(),
        }
    }

    pub fn tenant(&self, id: &TenantId) -> Option<&Tenant> {
        self.tenants.get(id)
    }

    pub fn store(&self) -> &Arc<dyn EventStore> {
        &self.store
    }

    pub fn keys(&self) -> &Arc<dyn KeyStore> {
        &self.keys
    }

    pub async fn execute(&self, command: &Command, issued: &Issued) -> Result<Executed, BusError> {
        // Held from the first load until the last append, across retries.
        let mut held = self.queues.hold();
        for attempt in 1..=MAX_ATTEMPTS {
            let Some(batch) = self.prepare(command, issued, Some(&mut held)).await? else {
                return Ok(Executed {
                    positions: vec![],
                    attempts: attempt,
                });
            };
            match self.store.append(batch).await {
                Ok(appended) => {
                    written::note(&appended.positions);
                    return Ok(Executed {
                        positions: appended.positions,
                        attempts: attempt,
                    });
                }
                Err(AppendError::Conflict { .. }) => backoff(attempt).await,
                Err(AppendError::EventIdReused { event_id }) => {
                    // Fresh UUIDv7s never collide; this is a broken store, not a refusal.
                    return Err(
                        StoreError::new(format!("event id {event_id} reported as reused")).into(),
                    );
                }
                Err(AppendError::Store(e)) => return Err(e.into()),
            }
        }
        Err(BusError::Contention(MAX_ATTEMPTS))
    }

    /// Executes independent commands together, for jobs that work through many subjects: each
    /// is loaded and decided on its own, and every decision is appended in one atomic batch, so
    /// the whole set costs one commit instead of one per command. Commands whose streams overlap
    /// an earlier command's or are held by a command in flight, and every command of a combined
    /// append that fails (someone wrote one of the streams in between), are executed one by one
    /// with the usual queueing and retries; nothing of a failed combined append was written, so
    /// deciding again is safe. The combined append holds its streams without ever waiting for
    /// them, so commands in flight are not disturbed. Results come in the order of `commands`.
    pub async fn execute_all(
        &self,
        commands: &[(Command, Issued)],
    ) -> Vec<Result<Executed, BusError>> {
        let prepared = self.prepare_all(commands).await;
        let mut results: Vec<Option<Result<Executed, BusError>>> =
            Vec::with_capacity(commands.len());
        let mut combined: Vec<(usize, AppendBatch)> = Vec::new();
        let mut streams = std::collections::HashSet::new();
        let mut events = 0;
        let mut alone = Vec::new();
        let mut held = self.queues.hold();
        for (i, prepared) in prepared.into_iter().enumerate() {
            match prepared {
                Ok(None) => results.push(Some(Ok(Executed {
                    positions: vec![],
                    attempts: 1,
                }))),
                Ok(Some(batch)) => {
                    results.push(None);
                    let disjoint = batch.streams().iter().all(|s| !streams.contains(&s.stream));
                    if disjoint
                        && events + batch.event_count() <= MAX_EVENTS_PER_BATCH
                        && held.try_take(queued(batch.streams().iter().map(|s| &s.stream)).cloned())
                    {
                        streams.extend(batch.streams().iter().map(|s| s.stream.clone()));
                        events += batch.event_count();
                        combined.push((i, batch));
                    } else {
                        alone.push(i);
                    }
                }
                Err(e) => results.push(Some(Err(e))),
            }
        }
        if !combined.is_empty() {
            let merged: Vec<StreamAppend> = combined
                .iter()
                .flat_map(|(_, b)| b.streams().iter().cloned())
                .collect();
            let appended = match AppendBatch::new(merged) {
                Ok(batch) => self.store.append(batch).await.ok(),
                Err(_) => None,
            };
            match appended {
                Some(appended) => {
                    // Positions come in batch order, so each command's are the next slice.
                    let mut positions = appended.positions.into_iter();
                    for (i, batch) in &combined {
                        results[*i] = Some(Ok(Executed {
                            positions: positions.by_ref().take(batch.event_count()).collect(),
                            attempts: 1,
                        }));
                    }
                }
                None => alone.extend(combined.iter().map(|(i, _)| *i)),
            }
        }
        drop(held);
        for i in alone {
            let (command, issued) = &commands[i];
            results[i] = Some(self.execute(command, issued).await);
        }
        results
            .into_iter()
            .map(|r| r.expect("every command has a result"))
            .collect()
    }

    /// Loads, decides and seals one command: the batch to append, `None` if there is nothing
    /// to do.
    async fn prepare(
        &self,
        command: &Command,
        issued: &Issued,
        held: Option<&mut Held>,
    ) -> Result<Option<AppendBatch>, BusError> {
        let ctx = self.context(issued)?;
        let loaded = self.load(command, &ctx, held).await?;
        self.decided(command, issued, &ctx, loaded).await
    }

    fn context(&self, issued: &Issued) -> Result<Context<'_>, BusError> {
        let tenant = self
            .tenants
            .get(&issued.tenant)
            .ok_or_else(|| BusError::UnknownTenant(issued.tenant.clone()))?;
        Ok(Context {
            tenant,
            now: issued.now,
        })
    }

    /// Decides and seals a loaded command.
    async fn decided(
        &self,
        command: &Command,
        issued: &Issued,
        ctx: &Context<'_>,
        (histories, versions): Loaded,
    ) -> Result<Option<AppendBatch>, BusError> {
        let mut decision = command.decide(&histories, ctx)?;
        self.seal(&mut decision, &histories).await?;
        if decision.is_empty() {
            return Ok(None);
        }
        Ok(Some(batch(decision, &versions, issued)?))
    }

    /// [`CommandBus::prepare`] for many commands, without queueing: their streams are loaded
    /// together ([`CommandBus::load_all`]). Should that fail as a whole, each command is
    /// loaded on its own, so a failure is reported for the commands it concerns.
    async fn prepare_all(
        &self,
        commands: &[(Command, Issued)],
    ) -> Vec<Result<Option<AppendBatch>, BusError>> {
        if let Ok(loaded) = self.load_all(commands).await {
            let mut prepared = Vec::with_capacity(commands.len());
            for ((command, issued), loaded) in commands.iter().zip(loaded) {
                prepared.push(match (self.context(issued), loaded) {
                    (Ok(ctx), Ok(loaded)) => self.decided(command, issued, &ctx, loaded).await,
                    (Err(e), _) | (_, Err(e)) => Err(e),
                });
            }
            return prepared;
        }
        // The futures are made up front: a borrowing closure inside the stream would make the
        // caller's future not `Send` for every lifetime.
        let preparing: Vec<_> = commands
            .iter()
            .map(|(command, issued)| self.prepare(command, issued, None))
            .collect();
        futures::stream::iter(preparing)
            .buffered(LOAD_PARALLEL)
            .collect()
            .await
    }

    /// Loads the streams of many commands in rounds shared by all of them: each round reads
    /// what every unfinished command names next, in one `read_streams` per [`LOAD_CHUNK`]
    /// streams. A page of commands costs as many round trips as its deepest command needs
    /// rounds, instead of that many per command. Each command's result is what
    /// [`CommandBus::load`] gives it without queueing; an unreadable stream or a failed read
    /// fails the whole.
    async fn load_all(
        &self,
        commands: &[(Command, Issued)],
    ) -> Result<Vec<Result<Loaded, BusError>>, BusError> {
        let contexts: Vec<Result<Context<'_>, BusError>> = commands
            .iter()
            .map(|(_, issued)| self.context(issued))
            .collect();
        let mut state: Vec<Loaded> = vec![Loaded::default(); commands.len()];
        let mut done: Vec<Option<Result<Loaded, BusError>>> = contexts
            .iter()
            .map(|ctx| ctx.as_ref().err().map(|_| Ok(Loaded::default())))
            .collect();
        loop {
            let mut wanted_by = Vec::new();
            let mut union = std::collections::BTreeSet::new();
            for (i, ((command, _), ctx)) in commands.iter().zip(&contexts).enumerate() {
                let (Ok(ctx), None) = (ctx, &done[i]) else {
                    continue;
                };
                let (histories, versions) = &state[i];
                let mut wanted = command.streams_to_load(histories, ctx);
                wanted.sort_unstable();
                wanted.dedup();
                if wanted.is_empty() {
                    done[i] = Some(Ok(std::mem::take(&mut state[i])));
                } else if versions.len() + wanted.len() > MAX_STREAMS {
                    done[i] = Some(Err(BusError::TooManyStreams));
                } else {
                    union.extend(wanted.iter().cloned());
                    wanted_by.push((i, wanted));
                }
            }
            if wanted_by.is_empty() {
                break;
            }
            let union: Vec<StreamId> = union.into_iter().collect();
            let mut read = std::collections::HashMap::with_capacity(union.len());
            for chunk in union.chunks(LOAD_CHUNK) {
                for (stream, recorded) in chunk.iter().zip(self.store.read_streams(chunk).await?) {
                    let events = decoded(&recorded)?;
                    read.insert(stream, (recorded.last().map(|e| e.stream_version), events));
                }
            }
            for (i, wanted) in wanted_by {
                let (histories, versions) = &mut state[i];
                for stream in wanted {
                    let (version, events) = read
                        .get(&stream)
                        .ok_or_else(|| StoreError::new(format!("{stream} was not read")))?;
                    versions.insert(stream.clone(), *version);
                    histories.insert(stream, events.clone());
                }
            }
        }
        Ok(contexts
            .into_iter()
            .zip(done)
            .map(|(ctx, done)| match (ctx, done) {
                (Err(e), _) => Err(e),
                (Ok(_), Some(done)) => done,
                (Ok(_), None) => Err(StoreError::new("a command was left unloaded").into()),
            })
            .collect())
    }

    /// Issues the keys of subjects the decision starts, then seals every plain personal value
    /// with the key of its stream's subject, one key lookup per subject.
    async fn seal(&self, decision: &mut Decision, loaded: &Histories) -> Result<(), BusError> {
        for (_, event) in decision.iter() {
            if let DomainEvent::SubjectKeyIssued(e) = event {
                // Issuing keeps an existing key, so a retried decision issues nothing new.
                self.keys.issue(e.subject).await?;
            }
        }
        let subjects: Vec<_> = decision
            .iter()
            .map(|(stream, _)| data_subject(stream, loaded, decision))
            .collect();
        let mut by_subject: BTreeMap<_, Vec<&mut Personal>> = BTreeMap::new();
        for ((stream, event), subject) in decision.iter_mut().zip(subjects) {
            let plain: Vec<_> = event
                .personal_mut()
                .into_iter()
                .filter(|p| matches!(p, Personal::Plain(_)))
                .collect();
            if plain.is_empty() {
                continue;
            }
            let subject = subject
                .ok_or_else(|| BusError::Sealing(format!("stream {stream} names no subject")))?;
            by_subject.entry(subject).or_default().extend(plain);
        }
        for (subject, values) in by_subject {
            let texts: Vec<&[u8]> = values
                .iter()
                .map(|p| match p {
                    Personal::Plain(t) => t.as_bytes(),
                    Personal::Sealed(_) => &[],
                })
                .collect();
            let sealed = self.keys.seal_all(subject, &texts).await?;
            for (value, sealed) in values.into_iter().zip(sealed) {
                *value = Personal::Sealed(sealed);
            }
        }
        Ok(())
    }

    /// Loads the streams the command names, in rounds, with the version each was read at.
    /// With `held`, each round's streams are taken in the queues before they are read; if that
    /// meant letting go of streams read before, loading starts over.
    async fn load(
        &self,
        command: &Command,
        ctx: &Context<'_>,
        mut held: Option<&mut Held>,
    ) -> Result<Loaded, BusError> {
        'fresh: loop {
            let mut histories = Histories::default();
            let mut versions = BTreeMap::new();
            loop {
                let mut wanted = command.streams_to_load(&histories, ctx);
                wanted.sort_unstable();
                wanted.dedup();
                if wanted.is_empty() {
                    return Ok((histories, versions));
                }
                if versions.len() + wanted.len() > MAX_STREAMS {
                    return Err(BusError::TooManyStreams);
                }
                if let Some(held) = held.as_deref_mut()
                    && held.take(queued(&wanted).cloned()).await == Taken::LetGo
                {
                    continue 'fresh;
                }
                let reads = self.store.read_streams(&wanted).await?;
                for (stream, recorded) in wanted.into_iter().zip(reads) {
                    versions.insert(stream.clone(), recorded.last().map(|e| e.stream_version));
                    let events = decoded(&recorded)?;
                    histories.insert(stream, events);
                }
            }
        }
    }
}

/// A stream's recorded events as domain events.
fn decoded(
    recorded: &[videoamt_core::event::RecordedEvent],
) -> Result<Vec<DomainEvent>, DecodeError> {
    recorded
        .iter()
        .map(|e| DomainEvent::from_payload(e.event_type.as_str(), e.schema_version, &e.payload))
        .collect()
}

/// The streams commands queue for: all but the calendar-day streams, which every booking of
/// the day reads and only rare releases write.
fn queued<'s>(
    streams: impl IntoIterator<Item = &'s StreamId>,
) -> impl Iterator<Item = &'s StreamId> {
    streams.into_iter().filter(|s| !calendar::is_day_stream(s))
}

/// Groups the decision by stream (in order of first appearance), each stream guarded by the
/// version it was read at.
fn batch(
    decision: Decision,
    versions: &BTreeMap<StreamId, Option<StreamVersion>>,
    issued: &Issued,
) -> Result<AppendBatch, BusError> {
    let meta = EventMetadata::new(
        issued.tenant.clone(),
        issued.correlation_id,
        issued.command_id,
        issued.actor.clone(),
        issued.now,
    );
    let mut streams: Vec<StreamAppend> = Vec::new();
    for (stream, event) in decision {
        let (event_type, version, payload) = encode(&event)?;
        let new = NewEvent::new(Uuid::now_v7(), event_type, version, meta.clone(), payload)?;
        match streams.iter_mut().find(|s| s.stream == stream) {
            Some(s) => s.events.push(new),
            None => {
                let expected = match versions.get(&stream) {
                    Some(Some(v)) => ExpectedVersion::Exact(*v),
                    Some(None) => ExpectedVersion::NoStream,
                    // Core decided for a stream it did not name: a bug there, refused here.
                    None => {
                        return Err(StoreError::new(format!(
                            "decision writes unloaded stream {stream}"
                        ))
                        .into());
                    }
                };
                streams.push(StreamAppend {
                    stream,
                    expected,
                    events: vec![new],
                });
            }
        }
    }
    Ok(AppendBatch::new(streams)?)
}

/// A short, growing, jittered pause so that racing writers do not retry in lockstep.
async fn backoff(attempt: u32) {
    let jitter = u64::from(Uuid::now_v7().as_bytes()[15] % 8);
    let millis = u64::from(attempt.min(10)) + jitter;
    tokio::time::sleep(Duration::from_millis(millis)).await;
}
