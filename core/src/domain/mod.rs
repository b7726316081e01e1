//! The consultation workflow: events, the state each stream folds to, and the rules.
//!
//! Every stream kind has a module with its state (`…State`, with `evolve`), its commands
//! (`…Command`, with `streams` and `decide`) and their given/when/then tests; decisions are pure
//! functions over the states of the streams a command touches. [`command::Command`] only
//! dispatches to them. Nothing here reads the clock or makes ids: `now` comes in a
//! [`Context`], ids in the commands.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::event::{InvalidInput, Payload, StreamId};
use crate::keys::Sealed;
use crate::tenant::Tenant;

pub mod account;
pub mod appointment;
pub mod calendar;
pub mod command;
pub mod document;
pub mod error;
pub mod events;
pub mod form;
pub mod identity;
pub mod payment;
pub mod process;
pub mod record;
pub mod session;
pub mod subject;

pub use error::DomainError;
pub use events::DomainEvent;

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident, $category:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            pub const CATEGORY: &'static str = $category;

            /// The stream this id names.
            pub fn stream(self) -> StreamId {
                StreamId::of(Self::CATEGORY, self.0)
                    .expect("a lowercase category and a UUID always make a valid stream id")
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

uuid_id!(
    /// One booked video appointment (`Termin`).
    AppointmentId,
    "appointment"
);
uuid_id!(
    /// The video session of an appointment.
    SessionId,
    "session"
);
uuid_id!(
    /// One filled-in form.
    FormId,
    "form"
);
uuid_id!(
    /// The payment of an appointment's fees.
    PaymentId,
    "payment"
);
uuid_id!(
    /// The data subject of an appointment: the unit of retention and erasure.
    SubjectId,
    "subject"
);
uuid_id!(
    /// An uploaded document; its bytes live in the blob store.
    DocumentId,
    "document"
);

/// Personal data in an event payload.
///
/// Kept apart by type so that it can be sealed with the subject's key and erased by destroying
/// that key; never printed by `Debug`. Commands carry it [`Personal::Plain`]; the command bus
/// seals every value before anything is stored, so the log only ever holds
/// [`Personal::Sealed`]. A plain JSON string is read as `Plain` (the shape before sealing).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Personal {
    Sealed(Sealed),
    Plain(String),
}

impl Personal {
    pub fn plain(value: impl Into<String>) -> Self {
        Self::Plain(value.into())
    }

    pub fn sealed(&self) -> Option<&Sealed> {
        match self {
            Self::Sealed(s) => Some(s),
            Self::Plain(_) => None,
        }
    }
}

impl fmt::Debug for Personal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Sealed(_) => f.write_str("Personal(‹sealed›)"),
            Self::Plain(_) => f.write_str("Personal(‹redacted›)"),
        }
    }
}

/// What a decision may look at besides the streams: the tenant's configuration and the time.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    pub tenant: &'a Tenant,
    pub now: OffsetDateTime,
}

/// The events of the streams a command touches, already loaded, as decoded domain events.
#[derive(Debug, Clone, Default)]
pub struct Histories {
    streams: BTreeMap<StreamId, Vec<DomainEvent>>,
}

impl Histories {
    pub fn insert(&mut self, stream: StreamId, events: Vec<DomainEvent>) {
        self.streams.insert(stream, events);
    }

    pub fn contains(&self, stream: &StreamId) -> bool {
        self.streams.contains_key(stream)
    }

    pub fn events(&self, stream: &StreamId) -> &[DomainEvent] {
        self.streams.get(stream).map_or(&[], Vec::as_slice)
    }

    /// Folds one stream with the given state's `evolve`.
    pub fn fold<S: Default>(&self, stream: &StreamId, evolve: fn(S, &DomainEvent) -> S) -> S {
        self.events(stream).iter().fold(S::default(), evolve)
    }
}

/// New events, each with the stream it goes to, in order.
pub type Decision = Vec<(StreamId, DomainEvent)>;

/// A decision of one event on one stream.
pub(crate) fn one(stream: StreamId, event: impl Into<DomainEvent>) -> Decision {
    vec![(stream, event.into())]
}

/// The data subject whose key seals the personal values of events on `stream`: named by the
/// stream's first event (booking, session, form, subject key), in the history loaded for the
/// decision or, for a stream the decision starts, in the decision itself.
pub fn data_subject(
    stream: &StreamId,
    loaded: &Histories,
    decision: &Decision,
) -> Option<SubjectId> {
    let named = |event: &DomainEvent| match event {
        DomainEvent::AppointmentBooked(e) => Some(e.subject),
        DomainEvent::SessionOpened(e) => e.subject,
        DomainEvent::FormStarted(e) => e.subject,
        DomainEvent::SubjectKeyIssued(e) => Some(e.subject),
        _ => None,
    };
    loaded
        .events(stream)
        .iter()
        .chain(decision.iter().filter(|(s, _)| s == stream).map(|(_, e)| e))
        .find_map(named)
}

/// Encodes a domain event for the log.
pub fn encode(
    event: &DomainEvent,
) -> Result<(crate::event::EventType, u16, Payload), InvalidInput> {
    Ok((
        crate::event::EventType::parse(event.event_type())?,
        event.schema_version(),
        event.to_payload()?,
    ))
}

/// Given/when/then for commands: given events on streams, when a command is decided at a
/// time, then these events (or this refusal).
#[cfg(test)]
pub(crate) mod gwt {
    use std::sync::OnceLock;

    use time::OffsetDateTime;
    use time::macros::datetime;

    use super::command::Command;
    use super::{Context, Decision, DomainError, DomainEvent};
    use crate::event::StreamId;
    use crate::tenant::{EXAMPLE_TENANTS, Tenant};

    fn load(name: &str) -> Tenant {
        let (file, text) = EXAMPLE_TENANTS
            .iter()
            .find(|(f, _)| f.contains(name))
            .expect("example exists");
        Tenant::from_toml(file, text).expect("example tenant is valid")
    }

    pub(crate) fn ettlingen() -> &'static Tenant {
        static T: OnceLock<Tenant> = OnceLock::new();
        T.get_or_init(|| load("ettlingen"))
    }

    pub(crate) fn stuttgart() -> &'static Tenant {
        static T: OnceLock<Tenant> = OnceLock::new();
        T.get_or_init(|| load("stuttgart"))
    }

    /// Monday 23 November 2026, 08:00 in Germany.
    pub(crate) const MONDAY_8: OffsetDateTime = datetime!(2026-11-23 07:00 UTC);

    pub(crate) struct Given {
        tenant: &'static Tenant,
        now: OffsetDateTime,
        events: Vec<(StreamId, DomainEvent)>,
    }

    pub(crate) fn given(tenant: &'static Tenant, events: Decision) -> Given {
        Given {
            tenant,
            now: MONDAY_8,
            events,
        }
    }

    impl Given {
        pub(crate) fn at(mut self, now: OffsetDateTime) -> Self {
            self.now = now;
            self
        }

        pub(crate) fn when(self, command: impl Into<Command>) -> Then {
            let command: Command = command.into();
            let ctx = Context {
                tenant: self.tenant,
                now: self.now,
            };
            let histories = command.load_with(&ctx, |stream| {
                self.events
                    .iter()
                    .filter(|(s, _)| s == stream)
                    .map(|(_, e)| e.clone())
                    .collect()
            });
            // Every stream the decision writes must have been named, or the bus could not
            // guard it with an expected version.
            let outcome = command.decide(&histories, &ctx);
            if let Ok(decision) = &outcome {
                for (stream, _) in decision {
                    assert!(
                        histories.contains(stream),
                        "{stream} written but not loaded"
                    );
                }
            }
            Then(outcome)
        }
    }

    pub(crate) struct Then(pub(crate) Result<Decision, DomainError>);

    impl Then {
        pub(crate) fn then_expect(self, expected: Decision) {
            assert_eq!(self.0, Ok(expected));
        }

        pub(crate) fn then_error(self, expected: DomainError) {
            assert_eq!(self.0, Err(expected));
        }

        pub(crate) fn then_nothing(self) {
            assert_eq!(self.0, Ok(vec![]));
        }

        pub(crate) fn decision(self) -> Decision {
            self.0.expect("the command is accepted")
        }
    }
}
