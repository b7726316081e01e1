//! The hot read models in the serving process's memory (ADR 0029).
//!
//! The citizen's free slots, the clerk's schedule and the waiting room are read on almost
//! every request. [`MemoryModels`] holds their documents in memory, seeded from the database
//! copy at start and kept current by a runner of its own (`Runner::new(store, memory)`), so
//! a read is a map lookup under a lock that a commit holds only while it swaps documents in
//! (no I/O, no write waited for). The database copy stays what restarts and rebuilds work
//! from; the memory copy is this process's own fold and never conflicts with another node's.
//!
//! Memory is bounded by municipality and horizon: documents whose local day lies more than
//! [`KEEP_DAYS`] before today are dropped, and a read of such a day goes to the database.
//! What is left per municipality is its departments' booking horizon of days (free slots),
//! the appointments of those days (schedule) and the citizens waiting now; see
//! `docs/operations/scaling.md` for the figures.
//!
//! A read that must see the caller's own write runs inside [`must_see`] with the position
//! that write reached; it waits for this copy to fold that position, and for nothing else.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use time::{Date, OffsetDateTime};
use tokio::sync::watch;
use videoamt_core::event::GlobalPosition;
use videoamt_core::readmodel::{
    Change, DocKey, ProjectionCheckpoint, ReadModelError, ReadModelStore,
};
use videoamt_core::store::StoreError;

use crate::Projection;

/// Days before today whose documents stay in memory: the clerk's last week and some.
pub const KEEP_DAYS: i64 = 14;
/// How long a read waits for its own write's position before it asks the database.
const MUST_SEE_AT_MOST: Duration = Duration::from_secs(2);

tokio::task_local! {
    static MUST_SEE: GlobalPosition;
}

/// Runs `read` so that every hot read in it sees the log at least up to `position`.
pub async fn must_see<F: std::future::Future>(position: GlobalPosition, read: F) -> F::Output {
    MUST_SEE.scope(position, read).await
}

/// The local day a document belongs to, from its key or else from its content; `None` for a
/// document of no day, which is never dropped.
pub type DayOf = fn(&DocKey, Option<&serde_json::Value>) -> Option<Date>;

/// A projection held in memory and how to tell its documents' days.
#[derive(Clone)]
pub struct Hot {
    pub projection: Arc<dyn Projection>,
    pub day_of: DayOf,
}

impl std::fmt::Debug for Hot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hot")
            .field("projection", &self.projection.name())
            .finish_non_exhaustive()
    }
}

struct Held {
    day_of: DayOf,
    state: RwLock<State>,
    moved: watch::Sender<GlobalPosition>,
}

#[derive(Default)]
struct State {
    checkpoint: Option<ProjectionCheckpoint>,
    docs: BTreeMap<DocKey, serde_json::Value>,
    /// Documents of days before this one were dropped, or never loaded.
    cutoff: Option<Date>,
    /// Reads are served from here only from this position on: a copy folded from the log
    /// after a failed seed is behind the database copy until then.
    serve_from: GlobalPosition,
}

impl State {
    fn position(&self) -> GlobalPosition {
        self.checkpoint.as_ref().map_or(0, |c| c.position)
    }

    /// Drops the documents of days before `cutoff`.
    fn evict(&mut self, cutoff: Date, day_of: DayOf) {
        if self.cutoff.is_some_and(|c| c >= cutoff) {
            return;
        }
        self.docs
            .retain(|k, v| day_of(k, Some(v)).is_none_or(|d| d >= cutoff));
        self.cutoff = Some(cutoff);
    }

    /// Whether a document of this key may have been dropped: its day is known and before the
    /// cutoff, or its day is only in its content and anything was dropped.
    fn may_be_dropped(&self, key: &DocKey, day_of: DayOf) -> bool {
        match (self.cutoff, day_of(key, None)) {
            (None, _) => false,
            (Some(cutoff), Some(day)) => day < cutoff,
            (Some(_), None) => true,
        }
    }
}

/// Copies of a projection [`MemoryModels::seed`] takes before it gives up on one that holds
/// still.
const SEED_ATTEMPTS: usize = 5;

/// The hot read models in memory over the database copy (the `fallback`), which serves every
/// other projection and the days no longer held.
pub struct MemoryModels {
    held: HashMap<&'static str, Held>,
    projections: Vec<Arc<dyn Projection>>,
    fallback: Arc<dyn ReadModelStore>,
    today: Arc<dyn Fn() -> Date + Send + Sync>,
}

impl std::fmt::Debug for MemoryModels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryModels")
            .field("held", &self.held.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// The documents held, per projection, for the operator's metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holding {
    pub projection: &'static str,
    pub documents: usize,
    pub position: GlobalPosition,
}

impl MemoryModels {
    /// Nothing held yet: [`MemoryModels::seed`] loads the database copy.
    pub fn new(
        hot: Vec<Hot>,
        fallback: Arc<dyn ReadModelStore>,
        today: Arc<dyn Fn() -> Date + Send + Sync>,
    ) -> Self {
        let projections = hot.iter().map(|h| h.projection.clone()).collect();
        let held = hot
            .into_iter()
            .map(|h| {
                (
                    h.projection.name(),
                    Held {
                        day_of: h.day_of,
                        state: RwLock::new(State::default()),
                        moved: watch::channel(0).0,
                    },
                )
            })
            .collect();
        Self {
            held,
            projections,
            fallback,
            today,
        }
    }

    /// The hot projections, for the runner that keeps this copy current.
    pub fn projections(&self) -> Vec<Arc<dyn Projection>> {
        self.projections.clone()
    }

    fn cutoff(&self) -> Date {
        (self.today)()
            .checked_sub(time::Duration::days(KEEP_DAYS))
            .unwrap_or(Date::MIN)
    }

    /// Loads each hot projection's database copy: its checkpoint and its documents of the
    /// horizon. The copy is taken again if a commit moved its checkpoint meanwhile, up to
    /// `SEED_ATTEMPTS` times; a copy that never holds still is left aside, and the projection
    /// starts empty at position 0, folded from the log by this process's runner, its reads
    /// going to the database copy until the fold has passed the position last seen there.
    pub async fn seed(&self) -> Result<(), StoreError> {
        let cutoff = self.cutoff();
        for (name, held) in &self.held {
            let (mut taken, mut seen) = (None, 0);
            for _ in 0..SEED_ATTEMPTS {
                let before = self.fallback.checkpoint(name).await?;
                let docs = self.fallback.dump(name).await?;
                let after = self.fallback.checkpoint(name).await?;
                seen = after.position;
                if before.position == after.position {
                    taken = Some((after, docs));
                    break;
                }
            }
            // Until the log is folded past what the database copy showed, reads go there.
            let serve_from = if taken.is_some() { 0 } else { seen };
            let (checkpoint, docs) = taken.unwrap_or_else(|| {
                tracing::warn!(
                    projection = name,
                    "the database copy kept moving while it was read; folding from the log"
                );
                (
                    ProjectionCheckpoint {
                        projection: (*name).to_owned(),
                        position: 0,
                        event_recorded_at: None,
                    },
                    Vec::new(),
                )
            });
            let position = checkpoint.position;
            let mut state = State {
                checkpoint: Some(checkpoint),
                docs: docs.into_iter().collect(),
                cutoff: None,
                serve_from,
            };
            state.evict(cutoff, held.day_of);
            *write(&held.state) = state;
            held.moved.send_replace(position);
        }
        Ok(())
    }

    pub fn holding(&self) -> Vec<Holding> {
        let mut out: Vec<Holding> = self
            .held
            .iter()
            .map(|(name, held)| {
                let state = read(&held.state);
                Holding {
                    projection: name,
                    documents: state.docs.len(),
                    position: state.position(),
                }
            })
            .collect();
        out.sort_by_key(|h| h.projection);
        out
    }

    /// The held projection, once this read may be served from it: after the caller's own
    /// write ([`must_see`]) is folded. `None` sends the read to the database copy: not hot,
    /// or the wait ran out.
    async fn ready(&self, projection: &str) -> Option<&Held> {
        let held = self.held.get(projection)?;
        {
            let state = read(&held.state);
            // Not seeded: this process does not serve from memory (a tool, a worker).
            state.checkpoint.as_ref()?;
            // Folding from the log after a failed seed, still behind the database copy.
            if state.position() < state.serve_from {
                return None;
            }
        }
        let Ok(position) = MUST_SEE.try_with(|p| *p) else {
            return Some(held);
        };
        let mut moved = held.moved.subscribe();
        let folded = tokio::time::timeout(MUST_SEE_AT_MOST, moved.wait_for(|at| *at >= position));
        match folded.await {
            Ok(Ok(_)) => Some(held),
            _ => None,
        }
    }
}

fn read(lock: &RwLock<State>) -> std::sync::RwLockReadGuard<'_, State> {
    lock.read().unwrap_or_else(|p| p.into_inner())
}

fn write(lock: &RwLock<State>) -> std::sync::RwLockWriteGuard<'_, State> {
    lock.write().unwrap_or_else(|p| p.into_inner())
}

/// The keys of one kind that start with `prefix`, in key order.
fn prefixed<'a>(
    docs: &'a BTreeMap<DocKey, serde_json::Value>,
    kind: &'a str,
    prefix: &'a str,
) -> impl Iterator<Item = (&'a DocKey, &'a serde_json::Value)> + 'a {
    docs.range(DocKey::new(kind, prefix)..)
        .take_while(move |(k, _)| k.kind == kind && k.key.starts_with(prefix))
}

#[async_trait::async_trait]
impl ReadModelStore for MemoryModels {
    async fn checkpoint(&self, projection: &str) -> Result<ProjectionCheckpoint, StoreError> {
        if let Some(held) = self.held.get(projection)
            && let Some(checkpoint) = read(&held.state).checkpoint.clone()
        {
            return Ok(checkpoint);
        }
        self.fallback.checkpoint(projection).await
    }

    async fn checkpoints(&self) -> Result<Vec<ProjectionCheckpoint>, StoreError> {
        let mut all = self.fallback.checkpoints().await?;
        for c in &mut all {
            if let Some(held) = self.held.get(c.projection.as_str())
                && let Some(mine) = read(&held.state).checkpoint.clone()
            {
                *c = mine;
            }
        }
        Ok(all)
    }

    async fn get(
        &self,
        projection: &str,
        keys: &[DocKey],
    ) -> Result<Vec<(DocKey, serde_json::Value)>, StoreError> {
        let Some(held) = self.ready(projection).await else {
            return self.fallback.get(projection, keys).await;
        };
        let (mut found, dropped, cutoff) = {
            let state = read(&held.state);
            let mut found = Vec::with_capacity(keys.len());
            let mut dropped = Vec::new();
            for key in keys {
                match state.docs.get(key) {
                    Some(doc) => found.push((key.clone(), doc.clone())),
                    None if state.may_be_dropped(key, held.day_of) => dropped.push(key.clone()),
                    None => {}
                }
            }
            (found, dropped, state.cutoff)
        };
        if !dropped.is_empty() {
            // Only what is of a day before the cutoff was dropped; anything newer that the
            // database has and memory lacks is a change this copy has not folded yet.
            let cutoff = cutoff.unwrap_or(Date::MIN);
            found.extend(
                self.fallback
                    .get(projection, &dropped)
                    .await?
                    .into_iter()
                    .filter(|(k, v)| (held.day_of)(k, Some(v)).is_some_and(|d| d < cutoff)),
            );
        }
        Ok(found)
    }

    async fn list(
        &self,
        projection: &str,
        kind: &str,
        prefix: &str,
    ) -> Result<Vec<(String, serde_json::Value)>, StoreError> {
        let Some(held) = self.ready(projection).await else {
            return self.fallback.list(projection, kind, prefix).await;
        };
        {
            let state = read(&held.state);
            let of_prefix = DocKey::new(kind, prefix);
            let old = state
                .cutoff
                .zip((held.day_of)(&of_prefix, None))
                .is_some_and(|(cutoff, day)| day < cutoff);
            if !old {
                return Ok(prefixed(&state.docs, kind, prefix)
                    .map(|(k, v)| (k.key.clone(), v.clone()))
                    .collect());
            }
        }
        self.fallback.list(projection, kind, prefix).await
    }

    async fn list_range(
        &self,
        projection: &str,
        kind: &str,
        after: &str,
        before: &str,
        limit: u32,
    ) -> Result<Vec<(String, serde_json::Value)>, StoreError> {
        // No hot reader pages through a range; the database copy answers.
        self.fallback
            .list_range(projection, kind, after, before, limit)
            .await
    }

    async fn commit(
        &self,
        projection: &str,
        from: GlobalPosition,
        to: ProjectionCheckpoint,
        changes: Vec<Change>,
    ) -> Result<(), ReadModelError> {
        let Some(held) = self.held.get(projection) else {
            return self.fallback.commit(projection, from, to, changes).await;
        };
        // Parsed before the lock is taken: readers wait for the swap only.
        let changes: Vec<(DocKey, Option<serde_json::Value>)> = changes
            .into_iter()
            .map(|c| match c {
                Change::Put(key, json) | Change::Insert(key, json) => {
                    let value = serde_json::from_str(&json).map_err(|e| {
                        StoreError::new(format!(
                            "document {}/{} unreadable: {e}",
                            key.kind, key.key
                        ))
                    })?;
                    Ok((key, Some(value)))
                }
                Change::Delete(key) => Ok((key, None)),
            })
            .collect::<Result<_, ReadModelError>>()?;
        let cutoff = self.cutoff();
        let position = to.position;
        {
            let mut state = write(&held.state);
            let actual = state.position();
            if actual != from {
                return Err(ReadModelError::CheckpointMoved {
                    projection: projection.to_owned(),
                    expected: from,
                    actual,
                });
            }
            state.evict(cutoff, held.day_of);
            for (key, value) in changes {
                match value {
                    // A change of a day no longer held (a late correction, a purge) stays
                    // in the database copy only.
                    Some(v) if (held.day_of)(&key, Some(&v)).is_none_or(|d| d >= cutoff) => {
                        state.docs.insert(key, v);
                    }
                    _ => {
                        state.docs.remove(&key);
                    }
                }
            }
            state.checkpoint = Some(to);
        }
        held.moved.send_replace(position);
        Ok(())
    }

    async fn reset(&self, projection: &str) -> Result<(), StoreError> {
        let Some(held) = self.held.get(projection) else {
            return self.fallback.reset(projection).await;
        };
        // Only this copy: the database copy is rebuilt by `videoamt rebuild`.
        *write(&held.state) = State {
            checkpoint: Some(ProjectionCheckpoint {
                projection: projection.to_owned(),
                position: 0,
                event_recorded_at: None,
            }),
            ..State::default()
        };
        held.moved.send_replace(0);
        Ok(())
    }

    async fn dump(&self, projection: &str) -> Result<Vec<(DocKey, serde_json::Value)>, StoreError> {
        match self.held.get(projection) {
            Some(held) => Ok(read(&held.state)
                .docs
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()),
            None => self.fallback.dump(projection).await,
        }
    }
}

/// A local day from the `n`-th `/`-separated part of a key (`YYYY-MM-DD`).
pub fn day_in(key: &str, n: usize) -> Option<Date> {
    let part = key.split('/').nth(n)?;
    Date::parse(
        part,
        time::macros::format_description!("[year]-[month]-[day]"),
    )
    .ok()
}

/// Today in UTC; the horizon is days wide, so the municipality's offset does not matter.
pub fn today_utc() -> Date {
    OffsetDateTime::now_utc().date()
}

/// The read models the citizen's and the clerk's routes read on every request.
pub fn hot(tenants: Arc<Vec<videoamt_core::tenant::Tenant>>) -> Vec<Hot> {
    vec![
        Hot {
            projection: Arc::new(crate::slots::FreeSlots),
            day_of: crate::slots::day_of,
        },
        Hot {
            projection: Arc::new(crate::schedule::ClerkSchedule::new(tenants)),
            day_of: crate::schedule::day_of,
        },
        Hot {
            projection: Arc::new(crate::waiting_room::WaitingRoom),
            day_of: crate::waiting_room::day_of,
        },
    ]
}

#[cfg(test)]
mod tests {
    use time::macros::date;

    use super::*;

    #[test]
    fn days_are_read_from_keys_and_places() {
        assert_eq!(
            day_in("ettlingen/buergerbuero/2026-11-24", 2),
            Some(date!(2026 - 11 - 24))
        );
        assert_eq!(
            day_in("ettlingen/buergerbuero/2026-11-24/0190-ab", 2),
            Some(date!(2026 - 11 - 24))
        );
        assert_eq!(day_in("ettlingen/buergerbuero/", 2), None);
        let place = serde_json::json!({"entry": "ettlingen/buergerbuero/2026-11-24/x"});
        assert_eq!(
            crate::schedule::day_of(&DocKey::new("place", "x"), Some(&place)),
            Some(date!(2026 - 11 - 24))
        );
    }

    /// A database copy whose checkpoint moves on every look, as under constant commits.
    struct Restless(std::sync::atomic::AtomicU64);

    #[async_trait::async_trait]
    impl ReadModelStore for Restless {
        async fn checkpoint(&self, projection: &str) -> Result<ProjectionCheckpoint, StoreError> {
            let position = self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
            Ok(ProjectionCheckpoint {
                projection: projection.to_owned(),
                position,
                event_recorded_at: None,
            })
        }
        async fn checkpoints(&self) -> Result<Vec<ProjectionCheckpoint>, StoreError> {
            Ok(Vec::new())
        }
        async fn get(
            &self,
            _: &str,
            _: &[DocKey],
        ) -> Result<Vec<(DocKey, serde_json::Value)>, StoreError> {
            Ok(Vec::new())
        }
        async fn list(
            &self,
            _: &str,
            _: &str,
            _: &str,
        ) -> Result<Vec<(String, serde_json::Value)>, StoreError> {
            Ok(Vec::new())
        }
        async fn list_range(
            &self,
            _: &str,
            _: &str,
            _: &str,
            _: &str,
            _: u32,
        ) -> Result<Vec<(String, serde_json::Value)>, StoreError> {
            Ok(Vec::new())
        }
        async fn commit(
            &self,
            _: &str,
            _: GlobalPosition,
            _: ProjectionCheckpoint,
            _: Vec<Change>,
        ) -> Result<(), ReadModelError> {
            Ok(())
        }
        async fn reset(&self, _: &str) -> Result<(), StoreError> {
            Ok(())
        }
        async fn dump(&self, _: &str) -> Result<Vec<(DocKey, serde_json::Value)>, StoreError> {
            Ok(vec![(
                DocKey::new("day", "a/b/2026-12-21"),
                serde_json::json!({}),
            )])
        }
    }

    #[tokio::test]
    async fn a_copy_that_never_holds_still_is_left_for_the_log() {
        let tenants = Arc::new(videoamt_core::tenant::example_tenants().expect("tenants"));
        let restless = Arc::new(Restless(Default::default()));
        let memory = MemoryModels::new(
            hot(tenants),
            restless.clone(),
            Arc::new(|| date!(2026 - 12 - 01)),
        );
        memory.seed().await.expect("seed ends");
        let holding = memory.holding();
        assert_eq!(holding.len(), 3);
        for h in holding {
            assert_eq!((h.documents, h.position), (0, 0), "{}", h.projection);
            // Empty and behind: reads go to the database copy, not to this.
            assert!(
                memory.ready(h.projection).await.is_none(),
                "{}",
                h.projection
            );
        }
        // Two looks at the checkpoint per attempt, for each of the three projections.
        assert_eq!(
            restless.0.load(std::sync::atomic::Ordering::SeqCst),
            3 * 2 * SEED_ATTEMPTS as u64
        );
    }

    #[test]
    fn eviction_drops_the_days_before_the_cutoff_only() {
        let mut state = State::default();
        for (key, day) in [("a/b/2026-11-24", 24), ("a/b/2026-12-21", 21)] {
            let _ = day;
            state
                .docs
                .insert(DocKey::new("day", key), serde_json::json!({}));
        }
        state.evict(date!(2026 - 12 - 01), crate::slots::day_of);
        let left: Vec<&str> = state.docs.keys().map(|k| k.key.as_str()).collect();
        assert_eq!(left, ["a/b/2026-12-21"]);
        assert!(state.may_be_dropped(&DocKey::new("day", "a/b/2026-11-30"), crate::slots::day_of));
        assert!(!state.may_be_dropped(&DocKey::new("day", "a/b/2026-12-01"), crate::slots::day_of));
    }
}
