//! The event log on KurrentDB (ADR 0004), through the official gRPC client `kurrentdb` 1.2.
//!
//! Only [`EventStore`] lives here: read models, keys, staff sessions and leases stay in
//! PostgreSQL (`AdminStore`), see `docs/operations/kurrentdb.md`.
//!
//! - Our stream `appointment-1` is the KurrentDB stream `{namespace}/appointment-1`. A stream id
//!   of ours never contains `/`, so the mapping is one to one, and several installations (or a
//!   test run) can share a cluster under different namespaces. Reads of `$all` are filtered
//!   on the prefix `{namespace}/`, which also leaves out the server's `$` system streams.
//! - `GlobalPosition` is the event's commit position in `$all`: strictly increasing in commit
//!   order, but not gap-free (ADR 0004). The adapter checks the increase on every read and
//!   reports a store failure rather than hand out two events under one position.
//! - Client 1.2 has no multi-stream append (the server's, KurrentDB 25.1, is not in this
//!   client), so a batch of several streams is refused with a store failure: nothing is
//!   written. Booking, which appends slot, appointment and subject streams together
//!   (ADR 0005, 0012), therefore cannot run on this backend; see the operations document.
//! - The envelope (tenant, correlation, causation, actor, recorded_at, schema_version) is the
//!   event's custom metadata, as JSON; the payload is the event's data, as JSON.

use std::collections::HashMap;
use std::fmt;

use futures::StreamExt as _;
use kurrentdb::{
    AppendToStreamOptions, Client, ClientSettings, CurrentRevision, EventData, Position,
    ReadAllOptions, ReadStreamOptions, ResolvedEvent, StreamPosition, StreamState,
    SubscribeToAllOptions, SubscriptionFilter,
};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use uuid::Uuid;
use videoamt_core::event::{
    Actor, ActorRole, EventMetadata, EventType, GlobalPosition, NewEvent, Payload, RecordedEvent,
    StreamId, StreamVersion, TenantId,
};
use videoamt_core::store::{
    AppendBatch, AppendError, Appended, EventStore, EventStream, ExpectedVersion, StoreError,
};

/// The namespace `serve` would use; one installation per cluster needs nothing else.
pub const DEFAULT_NAMESPACE: &str = "videoamt";

/// The message for a batch this backend cannot write atomically.
pub const MULTI_STREAM_REFUSED: &str = "the KurrentDB backend cannot append several streams \
     atomically (client kurrentdb 1.2 has no multi-stream append); nothing was written";

/// The log on a KurrentDB cluster.
#[derive(Clone)]
pub struct KurrentStore {
    client: Client,
    namespace: String,
}

impl fmt::Debug for KurrentStore {
    // The connection string may carry a password; show only the namespace.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KurrentStore")
            .field("namespace", &self.namespace)
            .finish_non_exhaustive()
    }
}

fn failure(what: &str, e: impl fmt::Display) -> StoreError {
    StoreError::new(format!("KurrentDB {what}: {e}"))
}

/// Installs aws-lc-rs as the process's rustls provider unless one is installed already.
///
/// The client's own reqwest brings rustls's ring provider and tonic brings aws-lc-rs; with
/// both compiled in, rustls cannot pick one by itself and panics at the first TLS
/// configuration built without an explicit provider (ADR 0004; a unit test here shows the
/// panic). Client 1.2 installs aws-lc-rs itself when it sets up its connection; doing it here
/// too keeps that true whatever a later release does, and gives a binary one function to call
/// before its first other TLS use.
pub fn install_crypto_provider() {
    // An error means a provider is installed already, which is all we need.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

impl KurrentStore {
    /// Connects to `url` (`kurrentdb://…` or `kurrentdb+discover://…`), from inside a Tokio
    /// runtime. The client connects lazily, so this fails only on a malformed URL (or outside
    /// a runtime); the first read or append reaches the cluster.
    pub fn connect(url: &str, namespace: &str) -> Result<Self, StoreError> {
        if namespace.is_empty() || namespace.contains('/') || namespace.starts_with('$') {
            return Err(StoreError::new(format!(
                "KurrentDB namespace {namespace:?} must be non-empty, without `/`, not starting with `$`"
            )));
        }
        install_crypto_provider();
        let settings: ClientSettings = url.parse().map_err(|e| failure("connection string", e))?;
        // The client spawns its connection task on the current runtime (and panics without
        // one); ask first, so a caller outside a runtime gets an error instead.
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|e| failure("client needs a Tokio runtime", e))?;
        let client =
            Client::with_runtime_handle(runtime, settings).map_err(|e| failure("client", e))?;
        Ok(Self {
            client,
            namespace: namespace.to_owned(),
        })
    }

    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    fn stream_name(&self, stream: &StreamId) -> String {
        format!("{}/{}", self.namespace, stream.as_str())
    }

    fn filter(&self) -> SubscriptionFilter {
        SubscriptionFilter::on_stream_name().add_prefix(format!("{}/", self.namespace))
    }

    /// Every event of `stream` from version `from`, in version order; empty if it does not
    /// exist.
    async fn read_from(
        &self,
        stream: &StreamId,
        from: StreamVersion,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let options = ReadStreamOptions::default()
            .forwards()
            .position(StreamPosition::Position(from));
        let mut read = match self
            .client
            .read_stream(self.stream_name(stream), &options)
            .await
        {
            Ok(read) => read,
            Err(kurrentdb::Error::ResourceNotFound) => return Ok(Vec::new()),
            Err(e) => return Err(failure("read", e)),
        };
        let mut events = Vec::new();
        loop {
            match read.next().await {
                Ok(Some(resolved)) => events.push(self.decode(&resolved)?),
                Ok(None) => break,
                Err(kurrentdb::Error::ResourceNotFound) => break,
                Err(e) => return Err(failure("read", e)),
            }
        }
        Ok(events)
    }

    /// Up to `limit` of our events from `$all` at or after `from`, in commit order.
    async fn read_all_from(
        &self,
        from: StreamPosition<Position>,
        limit: usize,
        backwards: bool,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let mut options = ReadAllOptions::default()
            .position(from)
            .filter(self.filter())
            .max_count(limit);
        options = if backwards {
            options.backwards()
        } else {
            options.forwards()
        };
        let mut read = self
            .client
            .read_all(&options)
            .await
            .map_err(|e| failure("read of $all", e))?;
        let mut events = Vec::new();
        while events.len() < limit {
            match read.next().await {
                Ok(Some(resolved)) => events.push(self.decode(&resolved)?),
                Ok(None) => break,
                Err(e) => return Err(failure("read of $all", e)),
            }
        }
        Ok(events)
    }

    fn decode(&self, resolved: &ResolvedEvent) -> Result<RecordedEvent, StoreError> {
        let e = resolved.get_original_event();
        let name = e.stream_id();
        let Some(ours) = name
            .strip_prefix(self.namespace.as_str())
            .and_then(|rest| rest.strip_prefix('/'))
        else {
            return Err(StoreError::new(format!(
                "KurrentDB returned stream {name:?}, outside namespace {:?}",
                self.namespace
            )));
        };
        decode_event(
            ours,
            e.revision,
            e.id,
            &e.event_type,
            &e.data,
            &e.custom_metadata,
            e.position.commit,
        )
    }

    /// Appends one stream's events and reports where each landed.
    async fn append_one(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: &[NewEvent],
    ) -> Result<Appended, AppendError> {
        // `Any` would let the server append a retry a second time if other events came after
        // it (its own id check is best effort); look for the batch's ids first and write with
        // the head we saw as the expectation, so a retry is found whatever came after.
        loop {
            let stream_state = if expected == ExpectedVersion::Any {
                let stored = self.read_from(stream, 0).await?;
                if let Some(outcome) = retry_outcome(stream, events, &stored) {
                    return outcome;
                }
                match stored.last() {
                    Some(last) => StreamState::StreamRevision(last.stream_version),
                    None => StreamState::NoStream,
                }
            } else {
                to_stream_state(expected)
            };
            let data = events
                .iter()
                .map(encode_event)
                .collect::<Result<Vec<_>, _>>()?;
            let options = AppendToStreamOptions::default().stream_state(stream_state);
            match self
                .client
                .append_to_stream(self.stream_name(stream), &options, data)
                .await
            {
                Ok(written) => {
                    // The write result has the last event's version only; read the events back
                    // for every position. A retry the server recognised itself acknowledges
                    // the original write, which this finds too.
                    let count = events.len() as u64;
                    let first = (written.next_expected_version + 1).saturating_sub(count);
                    let stored = self.read_from(stream, first).await?;
                    if let Some(outcome) = retry_outcome(stream, events, &stored) {
                        return outcome;
                    }
                    let stored = self.read_from(stream, 0).await?;
                    return retry_outcome(stream, events, &stored).unwrap_or_else(|| {
                        Err(StoreError::new(
                            "KurrentDB acknowledged an append whose events cannot be read back",
                        )
                        .into())
                    });
                }
                Err(kurrentdb::Error::WrongExpectedVersion { current, .. }) => {
                    let stored = self.read_from(stream, 0).await?;
                    if let Some(outcome) = retry_outcome(stream, events, &stored) {
                        return outcome;
                    }
                    if expected == ExpectedVersion::Any {
                        // Someone appended between our look and our write: look again.
                        continue;
                    }
                    return Err(AppendError::Conflict {
                        stream: stream.clone(),
                        expected,
                        actual: from_current(current),
                    });
                }
                Err(e) => return Err(failure("append", e).into()),
            }
        }
    }
}

/// Our expectation in the client's terms. `Exact(v)` is the revision of the stream's last
/// event, which is what our version is (both start at 0).
pub fn to_stream_state(expected: ExpectedVersion) -> StreamState {
    match expected {
        ExpectedVersion::Any => StreamState::Any,
        ExpectedVersion::NoStream => StreamState::NoStream,
        ExpectedVersion::Exact(v) => StreamState::StreamRevision(v),
    }
}

/// The server's view of a stream after a refused expectation, in our terms.
pub fn from_current(current: CurrentRevision) -> Option<StreamVersion> {
    match current {
        CurrentRevision::Current(v) => Some(v),
        CurrentRevision::NoStream => None,
    }
}

/// A `GlobalPosition` as a `$all` position to read from. For an event written in one append
/// of its own stream the commit and prepare positions are the same, so an event's position
/// is `(p, p)`; reads from it include it, and callers skip it.
pub fn to_all_position(after: GlobalPosition) -> StreamPosition<Position> {
    if after == 0 {
        StreamPosition::Start
    } else {
        StreamPosition::Position(Position {
            commit: after,
            prepare: after,
        })
    }
}

/// The envelope as it is stored in the event's custom metadata.
#[derive(Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct Envelope {
    tenant: String,
    correlation_id: Uuid,
    causation_id: Uuid,
    actor_role: String,
    actor_id: String,
    /// RFC 3339, in UTC, to the microsecond.
    recorded_at: String,
    schema_version: u16,
}

/// Our event as the client's: the payload as JSON data, the envelope as JSON metadata, our
/// event id as KurrentDB's (so the server's own duplicate check sees the same id).
pub fn encode_event(e: &NewEvent) -> Result<EventData, StoreError> {
    let envelope = envelope_of(e)?;
    let payload: serde_json::Value =
        serde_json::from_str(e.payload.as_str()).map_err(|err| failure("payload", err))?;
    EventData::json(e.event_type.as_str(), &payload)
        .and_then(|data| data.metadata_as_json(&envelope))
        .map(|data| data.id(e.event_id))
        .map_err(|err| failure("event encoding", err))
}

fn envelope_of(e: &NewEvent) -> Result<Envelope, StoreError> {
    Ok(Envelope {
        tenant: e.meta.tenant.as_str().to_owned(),
        correlation_id: e.meta.correlation_id,
        causation_id: e.meta.causation_id,
        actor_role: e.meta.actor.role.as_str().to_owned(),
        actor_id: e.meta.actor.id.to_string(),
        recorded_at: e
            .meta
            .recorded_at
            .format(&Rfc3339)
            .map_err(|e| failure("envelope time", e))?,
        schema_version: e.schema_version,
    })
}

/// An event read from the server, checked as the SQL backends check their rows: anything that
/// no longer parses is reported as corruption, not passed on.
pub fn decode_event(
    stream: &str,
    revision: u64,
    event_id: Uuid,
    event_type: &str,
    data: &[u8],
    metadata: &[u8],
    commit_position: u64,
) -> Result<RecordedEvent, StoreError> {
    let corrupt = |what: &str| {
        StoreError::new(format!(
            "corrupt event {event_id} in KurrentDB stream {stream:?}: {what}"
        ))
    };
    // Stream reads carry the `$all` position only on servers from 22.6 on; older ones send
    // u64::MAX, which no real commit position reaches.
    if commit_position == u64::MAX {
        return Err(StoreError::new(
            "KurrentDB sent no $all position with a stream read; videoamt needs a server \
             that does (22.6 or later)",
        ));
    }
    let envelope: Envelope =
        serde_json::from_slice(metadata).map_err(|_| corrupt("envelope metadata"))?;
    let role = ActorRole::parse(&envelope.actor_role).ok_or_else(|| corrupt("actor role"))?;
    let recorded_at =
        OffsetDateTime::parse(&envelope.recorded_at, &Rfc3339).map_err(|_| corrupt("time"))?;
    let text = std::str::from_utf8(data).map_err(|_| corrupt("payload is not UTF-8"))?;
    Ok(RecordedEvent {
        global_position: commit_position,
        stream_id: StreamId::parse(stream).map_err(|_| corrupt("stream id"))?,
        stream_version: revision,
        event_id,
        event_type: EventType::parse(event_type).map_err(|_| corrupt("event type"))?,
        schema_version: envelope.schema_version,
        meta: EventMetadata::new(
            TenantId::parse(&envelope.tenant).map_err(|_| corrupt("tenant"))?,
            envelope.correlation_id,
            envelope.causation_id,
            Actor::new(role, &envelope.actor_id).map_err(|_| corrupt("actor id"))?,
            recorded_at,
        ),
        payload: Payload::from_json(text).map_err(|_| corrupt("payload"))?,
    })
}

/// What `stored` (events of the batch's stream) says about appending `events` there: `None`
/// if none of their ids is stored; the original positions if all are, each the same event (a
/// retry); `EventIdReused` otherwise. The rules of `plan_group`'s retry check, for one stream.
pub fn retry_outcome(
    stream: &StreamId,
    events: &[NewEvent],
    stored: &[RecordedEvent],
) -> Option<Result<Appended, AppendError>> {
    let by_id: HashMap<Uuid, &RecordedEvent> = stored.iter().map(|e| (e.event_id, e)).collect();
    if !events.iter().any(|e| by_id.contains_key(&e.event_id)) {
        return None;
    }
    let mut positions = Vec::with_capacity(events.len());
    let mut last = 0;
    for e in events {
        match by_id.get(&e.event_id) {
            Some(s)
                if &s.stream_id == stream
                    && s.event_type == e.event_type
                    && s.schema_version == e.schema_version
                    && s.payload.same_json(&e.payload) =>
            {
                positions.push(s.global_position);
                last = last.max(s.stream_version);
            }
            _ => {
                return Some(Err(AppendError::EventIdReused {
                    event_id: e.event_id,
                }));
            }
        }
    }
    Some(Ok(Appended {
        positions,
        stream_versions: vec![(stream.clone(), last)],
    }))
}

/// Checks that positions strictly increase, as the contract requires of `$all`.
fn check_increasing(events: &[RecordedEvent], after: GlobalPosition) -> Result<(), StoreError> {
    let mut previous = after;
    for e in events {
        if e.global_position <= previous {
            return Err(StoreError::new(format!(
                "KurrentDB gave event {} the commit position {} after {previous}: positions do \
                 not increase, so they cannot serve as checkpoints",
                e.event_id, e.global_position
            )));
        }
        previous = e.global_position;
    }
    Ok(())
}

#[async_trait::async_trait]
impl EventStore for KurrentStore {
    async fn append(&self, batch: AppendBatch) -> Result<Appended, AppendError> {
        match batch.streams() {
            [one] => {
                self.append_one(&one.stream, one.expected, &one.events)
                    .await
            }
            _ => Err(StoreError::new(MULTI_STREAM_REFUSED).into()),
        }
    }

    async fn read_stream(
        &self,
        stream: &StreamId,
        from: StreamVersion,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.read_from(stream, from).await
    }

    async fn read_streams(
        &self,
        streams: &[StreamId],
    ) -> Result<Vec<Vec<RecordedEvent>>, StoreError> {
        // One request per stream, all in flight at once: the server has no multi-stream read.
        futures::future::try_join_all(streams.iter().map(|s| self.read_from(s, 0))).await
    }

    async fn read_all(
        &self,
        after: GlobalPosition,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        // The read starts at `after` itself; one more covers the event there.
        let mut events = self
            .read_all_from(to_all_position(after), limit.saturating_add(1), false)
            .await?;
        events.retain(|e| e.global_position > after);
        events.truncate(limit);
        check_increasing(&events, after)?;
        Ok(events)
    }

    async fn read_positions(
        &self,
        positions: &[GlobalPosition],
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let mut wanted: Vec<GlobalPosition> =
            positions.iter().copied().filter(|p| *p > 0).collect();
        wanted.sort_unstable();
        wanted.dedup();
        // `$all` has no lookup by position; read one event at each, all at once.
        let found = futures::future::try_join_all(wanted.iter().map(|p| async move {
            let at = self.read_all_from(to_all_position(*p), 1, false).await?;
            Ok::<_, StoreError>(at.into_iter().find(|e| e.global_position == *p))
        }))
        .await?;
        Ok(found.into_iter().flatten().collect())
    }

    async fn last_position(&self) -> Result<GlobalPosition, StoreError> {
        let last = self.read_all_from(StreamPosition::End, 1, true).await?;
        Ok(last.first().map_or(0, |e| e.global_position))
    }

    fn subscribe(&self, after: GlobalPosition) -> EventStream {
        let store = self.clone();
        // A subscription from a position starts after it (the start is exclusive); `Start`
        // includes the first event, which is above 0 anyway. The client resubscribes after a
        // dropped connection from the last event it delivered; `last` drops anything at or
        // below what was already handed on, so each event comes once and in order.
        subscription_stream(store, after)
    }
}

/// What a subscription does with an event the server sent.
#[derive(Debug)]
enum Step {
    Deliver,
    /// At or below what was handed on: the client's resubscription sent it again.
    Replayed,
    /// At the position just handed on but a different event: positions are not unique.
    Refuse(StoreError),
}

fn subscription_step(last: GlobalPosition, last_id: Option<Uuid>, e: &RecordedEvent) -> Step {
    if e.global_position > last {
        Step::Deliver
    } else if e.global_position == last && last_id.is_some_and(|id| id != e.event_id) {
        Step::Refuse(StoreError::new(format!(
            "KurrentDB gave events {} and {} the same commit position {last}",
            last_id.unwrap_or_default(),
            e.event_id
        )))
    } else {
        Step::Replayed
    }
}

fn subscription_stream(store: KurrentStore, after: GlobalPosition) -> EventStream {
    struct State {
        store: KurrentStore,
        subscription: Option<kurrentdb::Subscription>,
        last: GlobalPosition,
        last_id: Option<Uuid>,
        failed: bool,
    }
    let state = State {
        store,
        subscription: None,
        last: after,
        last_id: None,
        failed: false,
    };
    futures::stream::unfold(state, |mut s| async move {
        if s.failed {
            return None;
        }
        let mut subscription = match s.subscription.take() {
            Some(open) => open,
            None => {
                let options = SubscribeToAllOptions::default()
                    .position(to_all_position(s.last))
                    .filter(s.store.filter())
                    .retry_options(kurrentdb::RetryOptions::default().retry_forever());
                s.store.client.subscribe_to_all(&options).await
            }
        };
        loop {
            let next = subscription.next().await;
            let item = match next {
                Ok(resolved) => match s.store.decode(&resolved) {
                    Ok(e) => match subscription_step(s.last, s.last_id, &e) {
                        Step::Replayed => continue,
                        Step::Deliver => {
                            s.last = e.global_position;
                            s.last_id = Some(e.event_id);
                            Ok(e)
                        }
                        Step::Refuse(error) => Err(error),
                    },
                    Err(e) => Err(e),
                },
                Err(e) => Err(failure("subscription", e)),
            };
            // The contract's streams end only with an error.
            s.failed = item.is_err();
            s.subscription = Some(subscription);
            return Some((item, s));
        }
    })
    .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(n: u64) -> NewEvent {
        NewEvent::new(
            Uuid::from_u128(u128::from(n)),
            EventType::parse("ThingHappened").expect("type"),
            2,
            EventMetadata::new(
                TenantId::parse("ettlingen").expect("tenant"),
                Uuid::from_u128(100),
                Uuid::from_u128(200),
                Actor::new(ActorRole::Clerk, "clerk-7").expect("actor"),
                OffsetDateTime::from_unix_timestamp_nanos(1_764_000_000_123_456_789).expect("time"),
            ),
            Payload::from_json(format!(r#"{{"n": {n}, "ü": "ß€"}}"#)).expect("payload"),
        )
        .expect("event")
    }

    fn stream(s: &str) -> StreamId {
        StreamId::parse(s).expect("stream")
    }

    fn recorded(n: u64, version: StreamVersion, position: GlobalPosition) -> RecordedEvent {
        let e = event(n);
        RecordedEvent {
            global_position: position,
            stream_id: stream("appointment-1"),
            stream_version: version,
            event_id: e.event_id,
            event_type: e.event_type,
            schema_version: e.schema_version,
            meta: e.meta,
            payload: e.payload,
        }
    }

    #[test]
    fn expectations_map_to_the_clients_stream_states() {
        assert_eq!(to_stream_state(ExpectedVersion::Any), StreamState::Any);
        assert_eq!(
            to_stream_state(ExpectedVersion::NoStream),
            StreamState::NoStream
        );
        assert_eq!(
            to_stream_state(ExpectedVersion::Exact(0)),
            StreamState::StreamRevision(0)
        );
        assert_eq!(
            to_stream_state(ExpectedVersion::Exact(41)),
            StreamState::StreamRevision(41)
        );
        assert_eq!(from_current(CurrentRevision::NoStream), None);
        assert_eq!(from_current(CurrentRevision::Current(3)), Some(3));
    }

    #[test]
    fn positions_map_to_all_positions_and_zero_is_the_start() {
        assert_eq!(to_all_position(0), StreamPosition::Start);
        assert_eq!(
            to_all_position(4_711),
            StreamPosition::Position(Position {
                commit: 4_711,
                prepare: 4_711
            })
        );
    }

    #[test]
    fn the_envelope_and_payload_round_trip_through_the_clients_event() {
        let e = event(7);
        let data = encode_event(&e).expect("encode");
        // EventData keeps its parts to itself; its Debug output shows them, which is how a
        // test outside the crate can see what goes over the wire.
        let shown = format!("{data:?}");
        assert!(shown.contains("ThingHappened"), "{shown}");
        assert!(shown.contains("application/json"), "{shown}");

        let envelope = envelope_of(&e).expect("envelope");
        assert_eq!(
            envelope,
            Envelope {
                tenant: "ettlingen".into(),
                correlation_id: Uuid::from_u128(100),
                causation_id: Uuid::from_u128(200),
                actor_role: "clerk".into(),
                actor_id: "clerk-7".into(),
                recorded_at: "2025-11-24T16:00:00.123456Z".into(),
                schema_version: 2,
            }
        );
        // The bytes that go on the wire as the event's custom metadata, and that a read hands
        // back to `decode_event`.
        let metadata = serde_json::to_vec(&envelope).expect("json");
        let wire = format!("{:?}", Some(bytes::Bytes::from(metadata.clone())));
        assert!(shown.contains(&wire), "{shown} lacks {wire}");
        let back = decode_event(
            "appointment-1",
            3,
            e.event_id,
            "ThingHappened",
            e.payload.as_str().as_bytes(),
            &metadata,
            9_000,
        )
        .expect("decode");
        assert_eq!(back.global_position, 9_000);
        assert_eq!(back.stream_id, stream("appointment-1"));
        assert_eq!(back.stream_version, 3);
        assert_eq!(back.event_id, e.event_id);
        assert_eq!(back.event_type, e.event_type);
        assert_eq!(back.schema_version, 2);
        assert_eq!(back.meta, e.meta);
        assert_eq!(back.payload, e.payload);
    }

    #[test]
    fn after_connect_rustls_has_a_provider_and_does_not_panic() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let _guard = rt.enter();
        KurrentStore::connect("kurrentdb://127.0.0.1:1?tls=true", "videoamt").expect("connect");
        assert!(rustls::crypto::CryptoProvider::get_default().is_some());
        // With ring and aws-lc-rs both compiled in, this panics unless a default is installed.
        let _ = rustls::ClientConfig::builder();
    }

    #[test]
    fn corrupt_or_positionless_events_are_store_failures() {
        let e = event(1);
        let good = serde_json::to_vec(&serde_json::json!({
            "tenant": "ettlingen", "correlation_id": Uuid::from_u128(1),
            "causation_id": Uuid::from_u128(2), "actor_role": "clerk", "actor_id": "c",
            "recorded_at": "2025-11-24T16:00:00Z", "schema_version": 1,
        }))
        .expect("json");
        let decode = |stream: &str, data: &[u8], meta: &[u8], position: u64| {
            decode_event(stream, 0, e.event_id, "ThingHappened", data, meta, position)
        };
        assert!(decode("appointment-1", b"{}", &good, 1).is_ok());
        assert!(decode("appointment-1", b"{}", &good, u64::MAX).is_err());
        assert!(decode("appointment-1", b"{}", b"{}", 1).is_err());
        assert!(decode("appointment-1", b"[1]", &good, 1).is_err());
        assert!(decode("$stats-1", b"{}", &good, 1).is_err());
        let bad_role = String::from_utf8(good.clone())
            .expect("utf8")
            .replace("clerk", "pope");
        assert!(decode("appointment-1", b"{}", bad_role.as_bytes(), 1).is_err());
    }

    #[test]
    fn a_faithful_retry_returns_the_original_positions() {
        let s = stream("appointment-1");
        let stored = vec![recorded(1, 0, 10), recorded(2, 1, 20), recorded(3, 2, 30)];
        assert!(retry_outcome(&s, &[event(4)], &stored).is_none());
        let retry = retry_outcome(&s, &[event(2), event(3)], &stored)
            .expect("found")
            .expect("a retry");
        assert_eq!(retry.positions, [20, 30]);
        assert_eq!(retry.stream_versions, [(s.clone(), 2)]);
    }

    #[test]
    fn an_id_used_for_another_event_or_a_partly_stored_batch_is_refused() {
        let s = stream("appointment-1");
        let stored = vec![recorded(1, 0, 10)];
        let mut changed = event(1);
        changed.payload = Payload::from_json(r#"{"n": 999}"#).expect("payload");
        assert!(matches!(
            retry_outcome(&s, &[changed], &stored),
            Some(Err(AppendError::EventIdReused { event_id })) if event_id == Uuid::from_u128(1)
        ));
        assert!(matches!(
            retry_outcome(&s, &[event(1), event(2)], &stored),
            Some(Err(AppendError::EventIdReused { event_id })) if event_id == Uuid::from_u128(2)
        ));
    }

    #[test]
    fn positions_that_do_not_increase_are_refused() {
        let ok = vec![recorded(1, 0, 10), recorded(2, 1, 20)];
        assert!(check_increasing(&ok, 5).is_ok());
        assert!(check_increasing(&ok, 10).is_err());
        let same = vec![recorded(1, 0, 10), recorded(2, 1, 10)];
        assert!(check_increasing(&same, 0).is_err());
    }

    #[test]
    fn a_subscription_drops_replays_and_refuses_shared_positions() {
        let first = recorded(1, 0, 10);
        let second = recorded(2, 1, 20);
        assert!(matches!(subscription_step(0, None, &first), Step::Deliver));
        assert!(matches!(
            subscription_step(10, Some(first.event_id), &first),
            Step::Replayed
        ));
        assert!(matches!(
            subscription_step(20, Some(second.event_id), &first),
            Step::Replayed
        ));
        assert!(matches!(
            subscription_step(10, Some(first.event_id), &second),
            Step::Deliver
        ));
        let mut twin = recorded(3, 1, 10);
        twin.global_position = 10;
        assert!(matches!(
            subscription_step(10, Some(first.event_id), &twin),
            Step::Refuse(_)
        ));
    }

    #[tokio::test]
    async fn several_streams_are_refused_before_anything_is_sent() {
        // Nothing listens on this port: a refusal that needed the server would fail
        // differently (or hang), so the message proves the batch never left.
        let store = KurrentStore::connect("kurrentdb://127.0.0.1:1?tls=false", "videoamt")
            .expect("a well-formed URL");
        let batch = AppendBatch::new(vec![
            videoamt_core::store::StreamAppend {
                stream: stream("slot-a-1"),
                expected: ExpectedVersion::NoStream,
                events: vec![event(1)],
            },
            videoamt_core::store::StreamAppend {
                stream: stream("appointment-1"),
                expected: ExpectedVersion::NoStream,
                events: vec![event(2)],
            },
        ])
        .expect("batch");
        match store.append(batch).await {
            Err(AppendError::Store(e)) => {
                assert!(e.to_string().contains("several streams"), "{e}")
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn namespaces_keep_streams_apart_and_bad_ones_are_refused() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let _guard = rt.enter();
        let store =
            KurrentStore::connect("kurrentdb://127.0.0.1:1?tls=false", "town").expect("connect");
        assert_eq!(
            store.stream_name(&stream("appointment-1")),
            "town/appointment-1"
        );
        for bad in ["", "a/b", "$all"] {
            assert!(
                KurrentStore::connect("kurrentdb://127.0.0.1:1?tls=false", bad).is_err(),
                "{bad:?}"
            );
        }
        assert!(KurrentStore::connect("postgres://x", "town").is_err());
    }
}
