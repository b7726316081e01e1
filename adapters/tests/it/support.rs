//! Building blocks for the store tests.

use time::OffsetDateTime;
use uuid::Uuid;
use videoamt_core::event::{
    Actor, ActorRole, EventMetadata, EventType, NewEvent, Payload, StreamId, TenantId,
};
use videoamt_core::store::{AppendBatch, ExpectedVersion, StreamAppend};

pub(crate) fn stream(raw: &str) -> StreamId {
    StreamId::parse(raw).expect("test stream ids are valid")
}

pub(crate) fn meta() -> EventMetadata {
    EventMetadata::new(
        TenantId::parse("ettlingen").expect("valid tenant"),
        Uuid::now_v7(),
        Uuid::now_v7(),
        Actor::new(ActorRole::Clerk, "clerk-7").expect("valid actor"),
        OffsetDateTime::now_utc(),
    )
}

pub(crate) fn event_with(event_type: &str, payload: serde_json::Value) -> NewEvent {
    NewEvent::new(
        Uuid::now_v7(),
        EventType::parse(event_type).expect("valid type"),
        1,
        meta(),
        Payload::from_value(&payload).expect("object payload"),
    )
    .expect("valid event")
}

pub(crate) fn event(n: u64) -> NewEvent {
    event_with("ThingHappened", serde_json::json!({ "n": n }))
}

pub(crate) fn single(s: &str, expected: ExpectedVersion, events: Vec<NewEvent>) -> AppendBatch {
    AppendBatch::single(stream(s), expected, events).expect("valid batch")
}

pub(crate) fn multi(parts: Vec<(&str, ExpectedVersion, Vec<NewEvent>)>) -> AppendBatch {
    AppendBatch::new(
        parts
            .into_iter()
            .map(|(s, expected, events)| StreamAppend {
                stream: stream(s),
                expected,
                events,
            })
            .collect(),
    )
    .expect("valid batch")
}
