//! The event envelope and the checked types it is made of.
//!
//! Every fact in videoamt is one [`RecordedEvent`] in one global log. Writers hand the store
//! [`NewEvent`]s; the store adds the position, the stream version and nothing else.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

/// Position of an event in the global log. The first event has position 1; position 0 means
/// "before the first event" and is the checkpoint of a reader that has seen nothing.
pub type GlobalPosition = u64;

/// Version of an event within its stream. The first event of a stream has version 0.
pub type StreamVersion = u64;

/// Longest accepted stream id, in bytes. Long enough for `calendar-{department}-{date}` with
/// a generous department slug, short enough to keep the unique index small.
pub const MAX_STREAM_ID_LEN: usize = 128;
/// Longest accepted event type name.
pub const MAX_EVENT_TYPE_LEN: usize = 64;
/// Largest accepted payload, in bytes of JSON text. Documents live in the blob store, never in
/// events, so anything near this size is a mistake.
pub const MAX_PAYLOAD_BYTES: usize = 256 * 1024;

/// Why a value handed to the log was refused. Each variant says which rule was broken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidInput {
    #[error("the batch is empty")]
    EmptyBatch,
    #[error("stream {0} has no events in the batch")]
    EmptyStream(StreamId),
    #[error("stream {0} appears twice in the batch")]
    DuplicateStream(StreamId),
    #[error("event id {0} appears twice in the batch")]
    DuplicateEventId(Uuid),
    #[error("stream id is empty")]
    EmptyStreamId,
    #[error("stream id is {len} bytes long, at most {MAX_STREAM_ID_LEN} are allowed")]
    StreamIdTooLong { len: usize },
    #[error(
        "stream id {0:?} is malformed: expected `category-id`, a lowercase category and an id of \
         letters, digits, `-`, `_`, `.` or `:`"
    )]
    MalformedStreamId(String),
    #[error("event type {0:?} is malformed: expected a PascalCase name of at most 64 characters")]
    MalformedEventType(String),
    #[error("tenant {0:?} is malformed: expected a lowercase slug of at most 32 characters")]
    MalformedTenant(String),
    #[error("actor id {0:?} is malformed: expected at most 64 visible ASCII characters")]
    MalformedActorId(String),
    #[error("schema version must be at least 1")]
    ZeroSchemaVersion,
    #[error("payload is not JSON: {0}")]
    PayloadNotJson(String),
    #[error("payload must be a JSON object")]
    PayloadNotObject,
    #[error("payload is {len} bytes, at most {MAX_PAYLOAD_BYTES} are allowed")]
    PayloadTooLarge { len: usize },
    #[error(
        "the batch has {events} events, at most {} are allowed",
        crate::store::MAX_EVENTS_PER_BATCH
    )]
    BatchTooLarge { events: usize },
}

/// The id of a stream: `category-id`, e.g. `appointment-0192f3c4-…` or
/// `calendar-buergerbuero-2026-11-21`.
///
/// The category is what projections and operators filter by, so it is restricted to
/// lowercase ASCII; the rest allows what ids, slugs and dates need and nothing that would need
/// quoting in a URL, a shell or a log line.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct StreamId(Arc<str>);

impl StreamId {
    pub fn parse(raw: &str) -> Result<Self, InvalidInput> {
        if raw.is_empty() {
            return Err(InvalidInput::EmptyStreamId);
        }
        if raw.len() > MAX_STREAM_ID_LEN {
            return Err(InvalidInput::StreamIdTooLong { len: raw.len() });
        }
        let malformed = || InvalidInput::MalformedStreamId(raw.to_owned());
        let (category, id) = raw.split_once('-').ok_or_else(malformed)?;
        let category_ok = category.starts_with(|c: char| c.is_ascii_lowercase())
            && category
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        let id_ok = !id.is_empty()
            && id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'));
        if category_ok && id_ok {
            Ok(Self(raw.into()))
        } else {
            Err(malformed())
        }
    }

    /// A stream id made of a category and an id part, e.g. `StreamId::of("appointment", id)`.
    pub fn of(category: &str, id: impl fmt::Display) -> Result<Self, InvalidInput> {
        Self::parse(&format!("{category}-{id}"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn category(&self) -> &str {
        // parse() guarantees a '-' after a non-empty category.
        self.0
            .split_once('-')
            .map_or(&self.0, |(category, _)| category)
    }
}

impl TryFrom<String> for StreamId {
    type Error = InvalidInput;
    fn try_from(raw: String) -> Result<Self, Self::Error> {
        Self::parse(&raw)
    }
}

impl From<StreamId> for String {
    fn from(id: StreamId) -> Self {
        id.0.as_ref().to_owned()
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StreamId({})", self.0)
    }
}

/// The name of an event type, past tense and PascalCase: `AppointmentBooked`.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct EventType(Arc<str>);

impl EventType {
    pub fn parse(raw: &str) -> Result<Self, InvalidInput> {
        let ok = !raw.is_empty()
            && raw.len() <= MAX_EVENT_TYPE_LEN
            && raw.starts_with(|c: char| c.is_ascii_uppercase())
            && raw.chars().all(|c| c.is_ascii_alphanumeric());
        if ok {
            Ok(Self(raw.into()))
        } else {
            Err(InvalidInput::MalformedEventType(raw.to_owned()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for EventType {
    type Error = InvalidInput;
    fn try_from(raw: String) -> Result<Self, Self::Error> {
        Self::parse(&raw)
    }
}

impl From<EventType> for String {
    fn from(t: EventType) -> Self {
        t.0.as_ref().to_owned()
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EventType({})", self.0)
    }
}

/// The municipality an event belongs to, as the slug of its configuration file: `ettlingen`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TenantId(Arc<str>);

impl TenantId {
    pub fn parse(raw: &str) -> Result<Self, InvalidInput> {
        let ok = !raw.is_empty()
            && raw.len() <= 32
            && raw.starts_with(|c: char| c.is_ascii_lowercase())
            && raw
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if ok {
            Ok(Self(raw.into()))
        } else {
            Err(InvalidInput::MalformedTenant(raw.to_owned()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for TenantId {
    type Error = InvalidInput;
    fn try_from(raw: String) -> Result<Self, Self::Error> {
        Self::parse(&raw)
    }
}

impl From<TenantId> for String {
    fn from(t: TenantId) -> Self {
        t.0.as_ref().to_owned()
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TenantId({})", self.0)
    }
}

/// Who caused an event, by role. Stored as its lowercase name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ActorRole {
    Citizen,
    Clerk,
    Auditor,
    Dpo,
    Admin,
    /// The system itself: timers, process managers, the purge job.
    System,
}

impl ActorRole {
    pub const ALL: [ActorRole; 6] = [
        ActorRole::Citizen,
        ActorRole::Clerk,
        ActorRole::Auditor,
        ActorRole::Dpo,
        ActorRole::Admin,
        ActorRole::System,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ActorRole::Citizen => "citizen",
            ActorRole::Clerk => "clerk",
            ActorRole::Auditor => "auditor",
            ActorRole::Dpo => "dpo",
            ActorRole::Admin => "admin",
            ActorRole::System => "system",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == raw)
    }
}

/// Role plus id of whoever caused an event. The id is an account name, a capability-token id
/// or a component name, never a person's name or mail address: the envelope is not sealed.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Actor {
    pub role: ActorRole,
    pub id: Arc<str>,
}

impl Actor {
    pub fn new(role: ActorRole, id: &str) -> Result<Self, InvalidInput> {
        let ok = !id.is_empty() && id.len() <= 64 && id.chars().all(|c| c.is_ascii_graphic());
        if ok {
            Ok(Self {
                role,
                id: id.into(),
            })
        } else {
            Err(InvalidInput::MalformedActorId(id.to_owned()))
        }
    }

    /// The system actor for a named component, e.g. `Actor::system("purge")`.
    pub fn system(component: &'static str) -> Self {
        Self {
            role: ActorRole::System,
            id: component.into(),
        }
    }
}

/// The JSON text of an event payload: always a JSON object, at most [`MAX_PAYLOAD_BYTES`].
///
/// Kept as text rather than a parsed tree: the store writes and reads it without re-encoding,
/// and readers deserialize straight into their typed events.
#[derive(Clone, PartialEq, Eq)]
pub struct Payload(Arc<str>);

impl Payload {
    pub fn from_json(text: impl Into<String>) -> Result<Self, InvalidInput> {
        let text = text.into();
        if text.len() > MAX_PAYLOAD_BYTES {
            return Err(InvalidInput::PayloadTooLarge { len: text.len() });
        }
        let value: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| InvalidInput::PayloadNotJson(e.to_string()))?;
        if !value.is_object() {
            return Err(InvalidInput::PayloadNotObject);
        }
        Ok(Self(text.into()))
    }

    /// Serializes a typed payload. Fails only if it is not a JSON object or too large.
    pub fn from_value<T: Serialize>(value: &T) -> Result<Self, InvalidInput> {
        let text = serde_json::to_string(value)
            .map_err(|e| InvalidInput::PayloadNotJson(e.to_string()))?;
        Self::from_json(text)
    }

    /// Wraps text the store itself wrote after checking it on the way in.
    ///
    /// Only for adapters reading their own tables: it skips the parse so that reading the log
    /// stays cheap.
    pub fn from_stored(text: String) -> Self {
        Self(text.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn parse<T: serde::de::DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_str(&self.0)
    }

    /// Same JSON value, whatever the formatting. Used to tell an idempotent retry from an id
    /// reused for a different event, since a backend may reformat stored JSON.
    pub fn same_json(&self, other: &Payload) -> bool {
        if self.0 == other.0 {
            return true;
        }
        match (
            serde_json::from_str::<serde_json::Value>(&self.0),
            serde_json::from_str::<serde_json::Value>(&other.0),
        ) {
            (Ok(a), Ok(b)) => a == b,
            _ => false,
        }
    }
}

impl fmt::Debug for Payload {
    // Payloads may carry sealed personal data; keep them out of debug output and so out of logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Payload({} bytes)", self.0.len())
    }
}

/// The envelope fields a writer supplies, shared by all events of one command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventMetadata {
    pub tenant: TenantId,
    /// The id of the whole business flow (e.g. the booking), copied from cause to effect.
    pub correlation_id: Uuid,
    /// The id of the command or event that directly caused this one.
    pub causation_id: Uuid,
    pub actor: Actor,
    /// When the fact was recorded. Truncated to microseconds, the precision every backend keeps.
    pub recorded_at: OffsetDateTime,
}

impl EventMetadata {
    pub fn new(
        tenant: TenantId,
        correlation_id: Uuid,
        causation_id: Uuid,
        actor: Actor,
        recorded_at: OffsetDateTime,
    ) -> Self {
        Self {
            tenant,
            correlation_id,
            causation_id,
            actor,
            recorded_at: truncate_to_micros(recorded_at),
        }
    }
}

/// Drops sub-microsecond digits and normalizes to UTC.
pub fn truncate_to_micros(t: OffsetDateTime) -> OffsetDateTime {
    let t = t.to_offset(time::UtcOffset::UTC);
    let nanos = t.nanosecond();
    t.replace_nanosecond(nanos - nanos % 1_000)
        .expect("a nanosecond value rounded down stays in range")
}

/// An event on its way into the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEvent {
    /// UUIDv7, generated by the caller. Retrying with the same id is idempotent.
    pub event_id: Uuid,
    pub event_type: EventType,
    pub schema_version: u16,
    pub meta: EventMetadata,
    pub payload: Payload,
}

impl NewEvent {
    pub fn new(
        event_id: Uuid,
        event_type: EventType,
        schema_version: u16,
        meta: EventMetadata,
        payload: Payload,
    ) -> Result<Self, InvalidInput> {
        if schema_version == 0 {
            return Err(InvalidInput::ZeroSchemaVersion);
        }
        Ok(Self {
            event_id,
            event_type,
            schema_version,
            meta,
            payload,
        })
    }
}

/// An event as the log holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedEvent {
    pub global_position: GlobalPosition,
    pub stream_id: StreamId,
    pub stream_version: StreamVersion,
    pub event_id: Uuid,
    pub event_type: EventType,
    pub schema_version: u16,
    pub meta: EventMetadata,
    pub payload: Payload,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_ids_follow_category_dash_id() {
        for ok in [
            "appointment-0192f3c4-7b1a-7cc0-8f00-000000000001",
            "calendar-buergerbuero-2026-11-21",
            "timer-reminder:0192",
            "subject_v2-a.b",
        ] {
            assert_eq!(
                StreamId::parse(ok).map(|s| s.to_string()),
                Ok(ok.to_owned())
            );
        }
        for bad in [
            "appointment",
            "-x",
            "Appointment-1",
            "appointment-",
            "appointment-a b",
            "a-ä",
        ] {
            assert!(
                matches!(
                    StreamId::parse(bad),
                    Err(InvalidInput::MalformedStreamId(_))
                ),
                "{bad} should be malformed"
            );
        }
        assert_eq!(StreamId::parse(""), Err(InvalidInput::EmptyStreamId));
        let long = format!("a-{}", "x".repeat(MAX_STREAM_ID_LEN));
        assert_eq!(
            StreamId::parse(&long),
            Err(InvalidInput::StreamIdTooLong {
                len: MAX_STREAM_ID_LEN + 2
            })
        );
    }

    #[test]
    fn category_is_the_part_before_the_first_dash() {
        let id = StreamId::parse("calendar-buergerbuero-2026-11-21").expect("valid id");
        assert_eq!(id.category(), "calendar");
    }

    #[test]
    fn payload_must_be_a_json_object() {
        assert!(Payload::from_json(r#"{"a":1}"#).is_ok());
        assert!(matches!(
            Payload::from_json("{not json"),
            Err(InvalidInput::PayloadNotJson(_))
        ));
        assert_eq!(
            Payload::from_json("[1,2]"),
            Err(InvalidInput::PayloadNotObject)
        );
        let big = format!(r#"{{"a":"{}"}}"#, "x".repeat(MAX_PAYLOAD_BYTES));
        assert!(matches!(
            Payload::from_json(big),
            Err(InvalidInput::PayloadTooLarge { .. })
        ));
    }

    #[test]
    fn same_json_ignores_formatting_but_not_content() {
        let a = Payload::from_json(r#"{"a":1,"b":[1,2]}"#).expect("valid");
        let b = Payload::from_json(r#"{ "b": [1, 2], "a": 1 }"#).expect("valid");
        let c = Payload::from_json(r#"{"a":2,"b":[1,2]}"#).expect("valid");
        assert!(a.same_json(&b));
        assert!(!a.same_json(&c));
    }

    #[test]
    fn payload_debug_hides_content() {
        let p = Payload::from_json(r#"{"name":"Erika Mustermann"}"#).expect("valid");
        assert!(!format!("{p:?}").contains("Erika"));
    }

    #[test]
    fn event_types_and_tenants_are_checked() {
        assert!(EventType::parse("AppointmentBooked").is_ok());
        assert!(EventType::parse("appointment_booked").is_err());
        assert!(TenantId::parse("ettlingen").is_ok());
        assert!(TenantId::parse("Ettlingen").is_err());
        assert!(Actor::new(ActorRole::Clerk, "m.mueller").is_ok());
        assert!(Actor::new(ActorRole::Clerk, "Max Müller").is_err());
    }

    #[test]
    fn recorded_at_is_kept_to_the_microsecond() {
        let t = time::macros::datetime!(2026-11-21 10:00:00.123_456_789 +01:00);
        assert_eq!(
            truncate_to_micros(t),
            time::macros::datetime!(2026-11-21 09:00:00.123_456 UTC)
        );
    }
}
