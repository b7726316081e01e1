//! The event-store contract: the [`EventStore`] port and the rules every backend applies.
//!
//! The rules (expected versions, idempotent retries, position assignment) are written once,
//! here, as the pure function [`plan_group`]. A backend gathers what it needs from its tables
//! (current stream heads, events already stored under the batch's ids), asks the plan what to
//! write and writes exactly that in one transaction. So all backends agree by construction and
//! the contract suite checks that they also agree in practice.

use std::collections::{HashMap, HashSet};
use std::pin::Pin;

use futures_core::Stream;
use uuid::Uuid;

use crate::event::{
    EventType, GlobalPosition, InvalidInput, NewEvent, Payload, RecordedEvent, StreamId,
    StreamVersion,
};

/// Most events one batch may carry. Bounded so that one append is one reasonably sized
/// transaction; bulk imports use several batches.
pub const MAX_EVENTS_PER_BATCH: usize = 10_000;

/// What the writer believes about a stream before appending to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum ExpectedVersion {
    /// No check.
    Any,
    /// The stream must not exist yet.
    NoStream,
    /// The stream's last event must have exactly this version.
    Exact(StreamVersion),
}

impl ExpectedVersion {
    fn admits(self, actual: Option<StreamVersion>) -> bool {
        match self {
            ExpectedVersion::Any => true,
            ExpectedVersion::NoStream => actual.is_none(),
            ExpectedVersion::Exact(v) => actual == Some(v),
        }
    }
}

/// The events for one stream within a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamAppend {
    pub stream: StreamId,
    pub expected: ExpectedVersion,
    pub events: Vec<NewEvent>,
}

/// One atomic append: one or more streams, each with its expectation. Either every event is
/// written or none is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendBatch {
    streams: Vec<StreamAppend>,
}

impl AppendBatch {
    /// Checks the batch's shape: not empty, no empty stream, no stream or event id twice, not
    /// more than [`MAX_EVENTS_PER_BATCH`] events.
    pub fn new(streams: Vec<StreamAppend>) -> Result<Self, InvalidInput> {
        if streams.is_empty() {
            return Err(InvalidInput::EmptyBatch);
        }
        let mut seen_streams = HashSet::new();
        let mut seen_ids = HashSet::new();
        for s in &streams {
            if s.events.is_empty() {
                return Err(InvalidInput::EmptyStream(s.stream.clone()));
            }
            if !seen_streams.insert(&s.stream) {
                return Err(InvalidInput::DuplicateStream(s.stream.clone()));
            }
            for e in &s.events {
                if !seen_ids.insert(e.event_id) {
                    return Err(InvalidInput::DuplicateEventId(e.event_id));
                }
            }
        }
        if seen_ids.len() > MAX_EVENTS_PER_BATCH {
            return Err(InvalidInput::BatchTooLarge {
                events: seen_ids.len(),
            });
        }
        Ok(Self { streams })
    }

    /// A batch for a single stream.
    pub fn single(
        stream: StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<Self, InvalidInput> {
        Self::new(vec![StreamAppend {
            stream,
            expected,
            events,
        }])
    }

    pub fn streams(&self) -> &[StreamAppend] {
        &self.streams
    }

    pub fn event_count(&self) -> usize {
        self.streams.iter().map(|s| s.events.len()).sum()
    }

    /// All events with their stream, in batch order (the order positions are assigned in).
    pub fn events(&self) -> impl Iterator<Item = (&StreamId, &NewEvent)> {
        self.streams
            .iter()
            .flat_map(|s| s.events.iter().map(move |e| (&s.stream, e)))
    }
}

/// What a successful append wrote (or, for an idempotent retry, had written before).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Appended {
    /// Global position of every event, in batch order.
    pub positions: Vec<GlobalPosition>,
    /// The new last version of every stream, in batch order.
    pub stream_versions: Vec<(StreamId, StreamVersion)>,
}

impl Appended {
    pub fn last_position(&self) -> GlobalPosition {
        self.positions.iter().copied().max().unwrap_or(0)
    }
}

/// A technical failure of the store: unreachable, disk full, corrupt row. Never a refusal.
#[derive(Debug, thiserror::Error)]
// The cause is shown in the message rather than as `source`, so that it is printed once.
#[error("event store failure: {0}")]
pub struct StoreError(pub Box<dyn std::error::Error + Send + Sync>);

impl StoreError {
    pub fn new(e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self(e.into())
    }
}

/// Why an append did not happen.
#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    /// The stream moved on since the writer read it. Nothing of the batch was written.
    #[error("version conflict on stream {stream}: expected {expected:?}, actual {actual:?}")]
    Conflict {
        stream: StreamId,
        expected: ExpectedVersion,
        /// The stream's last version, `None` if it does not exist.
        actual: Option<StreamVersion>,
    },
    /// An event id of the batch is already stored, for a different event (or the batch is only
    /// partly stored). Nothing of the batch was written.
    #[error("event id {event_id} is already used by a different event")]
    EventIdReused { event_id: Uuid },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A stream of events from a subscription. It ends only with an error.
pub type EventStream = Pin<Box<dyn Stream<Item = Result<RecordedEvent, StoreError>> + Send>>;

/// The one global log.
///
/// Positions are gap-free and strictly increasing in commit order: a reader that has seen
/// position `n` will never later find an event below `n` that it did not see. Backends must
/// hold this under concurrent writers, which is what makes checkpoints safe.
#[async_trait::async_trait]
pub trait EventStore: Send + Sync {
    /// Appends a batch atomically. Retrying a batch whose event ids are already stored returns
    /// the original positions and writes nothing.
    async fn append(&self, batch: AppendBatch) -> Result<Appended, AppendError>;

    /// The events of one stream with version `>= from`, in version order.
    async fn read_stream(
        &self,
        stream: &StreamId,
        from: StreamVersion,
    ) -> Result<Vec<RecordedEvent>, StoreError>;

    /// Whole streams, each in version order, in the order of `streams`. Backends read them in
    /// one round trip; this default reads one after the other.
    async fn read_streams(
        &self,
        streams: &[StreamId],
    ) -> Result<Vec<Vec<RecordedEvent>>, StoreError> {
        let mut read = Vec::with_capacity(streams.len());
        for stream in streams {
            read.push(self.read_stream(stream, 0).await?);
        }
        Ok(read)
    }

    /// Up to `limit` events with position `> after`, in position order.
    async fn read_all(
        &self,
        after: GlobalPosition,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError>;

    /// The events at `positions` (any order, duplicates allowed), in position order; positions
    /// not in the log are left out. One query, for reading a record whose positions an index
    /// already knows.
    async fn read_positions(
        &self,
        positions: &[GlobalPosition],
    ) -> Result<Vec<RecordedEvent>, StoreError>;

    /// The position of the last event, 0 for an empty log.
    async fn last_position(&self) -> Result<GlobalPosition, StoreError>;

    /// Every event with position `> after`: first those already stored (catch-up), then new
    /// ones as they are committed (live), each exactly once and in order.
    fn subscribe(&self, after: GlobalPosition) -> EventStream;
}

/// An event already in the log, as far as the idempotency check needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredIdentity {
    pub global_position: GlobalPosition,
    pub stream_id: StreamId,
    pub stream_version: StreamVersion,
    pub event_type: EventType,
    pub schema_version: u16,
    pub payload: Payload,
}

impl StoredIdentity {
    fn is_same_event(&self, stream: &StreamId, e: &NewEvent) -> bool {
        &self.stream_id == stream
            && self.event_type == e.event_type
            && self.schema_version == e.schema_version
            && self.payload.same_json(&e.payload)
    }
}

/// What a backend knows before planning a group of appends, read inside its write transaction
/// (so no other writer can change it until commit).
#[derive(Debug, Default)]
pub struct GroupSnapshot {
    /// Position of the last stored event.
    pub last_position: GlobalPosition,
    /// Last version of every stream the group touches that exists.
    pub heads: HashMap<StreamId, StreamVersion>,
    /// Stored events whose id appears in the group.
    pub existing: HashMap<Uuid, StoredIdentity>,
}

/// One row to insert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlannedRow {
    /// Index of the request in the group.
    pub request: usize,
    /// Index of the stream within the request's batch.
    pub stream: usize,
    /// Index of the event within that stream.
    pub event: usize,
    pub global_position: GlobalPosition,
    pub stream_version: StreamVersion,
}

/// What becomes of one request of a group.
#[derive(Debug)]
pub enum PlannedOutcome {
    /// Written by this group's rows.
    Write(Appended),
    /// Already stored by an earlier call: answer with the original positions.
    Duplicate(Appended),
    Rejected(AppendError),
    /// Shares an event id with an earlier request of the same group; plan it again in the next
    /// group, when the earlier one is stored and the retry can be recognised as such.
    Deferred,
}

#[derive(Debug)]
pub struct GroupPlan {
    pub outcomes: Vec<PlannedOutcome>,
    pub rows: Vec<PlannedRow>,
    /// Position of the last row, or the snapshot's if nothing is written.
    pub last_position: GlobalPosition,
}

/// The stream ids and event ids a backend must look up before planning `group`.
pub fn group_keys(group: &[&AppendBatch]) -> (Vec<StreamId>, Vec<Uuid>) {
    let mut streams: Vec<StreamId> = group
        .iter()
        .flat_map(|b| b.streams.iter().map(|s| s.stream.clone()))
        .collect();
    streams.sort();
    streams.dedup();
    let ids = group
        .iter()
        .flat_map(|b| b.events().map(|(_, e)| e.event_id))
        .collect();
    (streams, ids)
}

/// Decides, for a group of batches committed in one transaction, which are written (and
/// where), which are retries and which are refused. Requests are planned in order, each one
/// seeing the streams as the earlier ones of the group leave them, so the group commits
/// exactly as if the batches had been appended one after another.
pub fn plan_group(group: &[&AppendBatch], snapshot: &GroupSnapshot) -> GroupPlan {
    let mut heads = snapshot.heads.clone();
    let mut next_position = snapshot.last_position + 1;
    let mut claimed: HashSet<Uuid> = HashSet::new();
    let mut rows = Vec::new();
    let mut outcomes = Vec::with_capacity(group.len());

    for (request, batch) in group.iter().enumerate() {
        if batch.events().any(|(_, e)| claimed.contains(&e.event_id)) {
            outcomes.push(PlannedOutcome::Deferred);
            continue;
        }
        if let Some(outcome) = check_retry(batch, &snapshot.existing) {
            outcomes.push(outcome);
            continue;
        }
        if let Some(conflict) = batch.streams.iter().find_map(|s| {
            let actual = heads.get(&s.stream).copied();
            (!s.expected.admits(actual)).then(|| AppendError::Conflict {
                stream: s.stream.clone(),
                expected: s.expected,
                actual,
            })
        }) {
            outcomes.push(PlannedOutcome::Rejected(conflict));
            continue;
        }

        let mut positions = Vec::with_capacity(batch.event_count());
        let mut stream_versions = Vec::with_capacity(batch.streams.len());
        for (stream_index, s) in batch.streams.iter().enumerate() {
            let mut version = heads.get(&s.stream).map_or(0, |v| v + 1);
            for (event_index, e) in s.events.iter().enumerate() {
                claimed.insert(e.event_id);
                rows.push(PlannedRow {
                    request,
                    stream: stream_index,
                    event: event_index,
                    global_position: next_position,
                    stream_version: version,
                });
                positions.push(next_position);
                next_position += 1;
                version += 1;
            }
            let last = version - 1;
            heads.insert(s.stream.clone(), last);
            stream_versions.push((s.stream.clone(), last));
        }
        outcomes.push(PlannedOutcome::Write(Appended {
            positions,
            stream_versions,
        }));
    }

    GroupPlan {
        outcomes,
        rows,
        last_position: next_position - 1,
    }
}

/// `None` if no event of the batch is stored yet; otherwise the batch is either a faithful
/// retry (every event stored, each the same) or an id reuse.
fn check_retry(
    batch: &AppendBatch,
    existing: &HashMap<Uuid, StoredIdentity>,
) -> Option<PlannedOutcome> {
    if !batch
        .events()
        .any(|(_, e)| existing.contains_key(&e.event_id))
    {
        return None;
    }
    let mut positions = Vec::with_capacity(batch.event_count());
    for (stream, e) in batch.events() {
        match existing.get(&e.event_id) {
            Some(stored) if stored.is_same_event(stream, e) => {
                positions.push(stored.global_position)
            }
            _ => {
                return Some(PlannedOutcome::Rejected(AppendError::EventIdReused {
                    event_id: e.event_id,
                }));
            }
        }
    }
    let stream_versions = batch
        .streams
        .iter()
        .map(|s| {
            let last = s
                .events
                .iter()
                .filter_map(|e| existing.get(&e.event_id).map(|x| x.stream_version))
                .max()
                .unwrap_or(0);
            (s.stream.clone(), last)
        })
        .collect();
    Some(PlannedOutcome::Duplicate(Appended {
        positions,
        stream_versions,
    }))
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;
    use crate::event::{Actor, EventMetadata, TenantId};

    fn stream(s: &str) -> StreamId {
        StreamId::parse(s).expect("valid stream id")
    }

    fn event(n: u128, payload: &str) -> NewEvent {
        let meta = EventMetadata::new(
            TenantId::parse("ettlingen").expect("valid"),
            Uuid::from_u128(1),
            Uuid::from_u128(2),
            Actor::system("test"),
            datetime!(2026-11-21 10:00 UTC),
        );
        NewEvent::new(
            Uuid::from_u128(n),
            EventType::parse("ThingHappened").expect("valid"),
            1,
            meta,
            Payload::from_json(payload).expect("valid"),
        )
        .expect("valid event")
    }

    fn batch(s: &str, expected: ExpectedVersion, ids: &[u128]) -> AppendBatch {
        AppendBatch::single(
            stream(s),
            expected,
            ids.iter().map(|&n| event(n, "{}")).collect(),
        )
        .expect("valid batch")
    }

    fn stored(position: u64, s: &str, version: u64, e: &NewEvent) -> StoredIdentity {
        StoredIdentity {
            global_position: position,
            stream_id: stream(s),
            stream_version: version,
            event_type: e.event_type.clone(),
            schema_version: e.schema_version,
            payload: e.payload.clone(),
        }
    }

    #[test]
    fn given_empty_log_when_two_batches_then_positions_and_versions_follow_on() {
        let a = batch("a-1", ExpectedVersion::NoStream, &[10, 11]);
        let b = batch("a-1", ExpectedVersion::Exact(1), &[12]);
        let plan = plan_group(&[&a, &b], &GroupSnapshot::default());
        assert_eq!(plan.last_position, 3);
        let versions: Vec<_> = plan.rows.iter().map(|r| r.stream_version).collect();
        assert_eq!(versions, [0, 1, 2]);
        assert!(matches!(&plan.outcomes[1], PlannedOutcome::Write(a) if a.positions == [3]));
    }

    #[test]
    fn given_stream_at_version_4_when_expecting_3_then_conflict_names_stream() {
        let snapshot = GroupSnapshot {
            last_position: 9,
            heads: HashMap::from([(stream("a-1"), 4)]),
            ..Default::default()
        };
        let plan = plan_group(&[&batch("a-1", ExpectedVersion::Exact(3), &[1])], &snapshot);
        assert!(plan.rows.is_empty());
        assert_eq!(plan.last_position, 9);
        match &plan.outcomes[0] {
            PlannedOutcome::Rejected(AppendError::Conflict {
                stream: s,
                expected,
                actual,
            }) => {
                assert_eq!(s.as_str(), "a-1");
                assert_eq!(*expected, ExpectedVersion::Exact(3));
                assert_eq!(*actual, Some(4));
            }
            other => panic!("expected a conflict, got {other:?}"),
        }
    }

    #[test]
    fn given_one_failing_stream_when_multi_stream_batch_then_nothing_of_it_is_planned() {
        let multi = AppendBatch::new(vec![
            StreamAppend {
                stream: stream("calendar-x-1"),
                expected: ExpectedVersion::Any,
                events: vec![event(1, "{}")],
            },
            StreamAppend {
                stream: stream("appointment-1"),
                expected: ExpectedVersion::NoStream,
                events: vec![event(2, "{}")],
            },
        ])
        .expect("valid batch");
        let snapshot = GroupSnapshot {
            heads: HashMap::from([(stream("appointment-1"), 0)]),
            last_position: 1,
            ..Default::default()
        };
        let plan = plan_group(&[&multi], &snapshot);
        assert!(plan.rows.is_empty());
        assert!(matches!(
            plan.outcomes[0],
            PlannedOutcome::Rejected(AppendError::Conflict { ref stream, .. })
                if stream.as_str() == "appointment-1"
        ));
    }

    #[test]
    fn given_stored_batch_when_retried_then_original_positions() {
        let a = batch("a-1", ExpectedVersion::NoStream, &[10, 11]);
        let (_, events): (Vec<_>, Vec<_>) = a.events().unzip();
        let snapshot = GroupSnapshot {
            last_position: 7,
            heads: HashMap::from([(stream("a-1"), 1)]),
            existing: HashMap::from([
                (events[0].event_id, stored(6, "a-1", 0, events[0])),
                (events[1].event_id, stored(7, "a-1", 1, events[1])),
            ]),
        };
        let plan = plan_group(&[&a], &snapshot);
        assert!(plan.rows.is_empty());
        match &plan.outcomes[0] {
            PlannedOutcome::Duplicate(done) => {
                assert_eq!(done.positions, [6, 7]);
                assert_eq!(done.stream_versions, [(stream("a-1"), 1)]);
            }
            other => panic!("expected a duplicate, got {other:?}"),
        }
    }

    #[test]
    fn given_stored_id_when_other_payload_then_id_reused() {
        let original = event(10, r#"{"a":1}"#);
        let snapshot = GroupSnapshot {
            last_position: 1,
            heads: HashMap::from([(stream("a-1"), 0)]),
            existing: HashMap::from([(original.event_id, stored(1, "a-1", 0, &original))]),
        };
        let changed = AppendBatch::single(
            stream("a-1"),
            ExpectedVersion::Any,
            vec![event(10, r#"{"a":2}"#)],
        )
        .expect("valid");
        let plan = plan_group(&[&changed], &snapshot);
        assert!(matches!(
            plan.outcomes[0],
            PlannedOutcome::Rejected(AppendError::EventIdReused { event_id }) if event_id == original.event_id
        ));
    }

    #[test]
    fn given_partly_stored_batch_when_retried_then_id_reused() {
        let first = event(10, "{}");
        let snapshot = GroupSnapshot {
            last_position: 1,
            heads: HashMap::from([(stream("a-1"), 0)]),
            existing: HashMap::from([(first.event_id, stored(1, "a-1", 0, &first))]),
        };
        let plan = plan_group(&[&batch("a-1", ExpectedVersion::Any, &[10, 11])], &snapshot);
        assert!(matches!(
            plan.outcomes[0],
            PlannedOutcome::Rejected(AppendError::EventIdReused { .. })
        ));
    }

    #[test]
    fn given_same_ids_twice_in_one_group_then_the_second_waits_for_the_next_group() {
        let a = batch("a-1", ExpectedVersion::Any, &[10]);
        let plan = plan_group(&[&a, &a], &GroupSnapshot::default());
        assert_eq!(plan.rows.len(), 1);
        assert!(matches!(plan.outcomes[1], PlannedOutcome::Deferred));
    }

    #[test]
    fn batch_shape_is_checked() {
        assert_eq!(AppendBatch::new(vec![]), Err(InvalidInput::EmptyBatch));
        assert_eq!(
            AppendBatch::single(stream("a-1"), ExpectedVersion::Any, vec![]),
            Err(InvalidInput::EmptyStream(stream("a-1")))
        );
        assert_eq!(
            AppendBatch::single(
                stream("a-1"),
                ExpectedVersion::Any,
                vec![event(1, "{}"), event(1, "{}")]
            ),
            Err(InvalidInput::DuplicateEventId(Uuid::from_u128(1)))
        );
        let twice = StreamAppend {
            stream: stream("a-1"),
            expected: ExpectedVersion::Any,
            events: vec![event(1, "{}")],
        };
        let mut again = twice.clone();
        again.events = vec![event(2, "{}")];
        assert_eq!(
            AppendBatch::new(vec![twice, again]),
            Err(InvalidInput::DuplicateStream(stream("a-1")))
        );
    }
}
