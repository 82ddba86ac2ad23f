//! What can go wrong in the event store and around it.

use crate::naming::AggregateId;

/// An event-store error.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Optimistic concurrency: the aggregate's version is not the one the
    /// append expected (another writer got there first); nothing was stored.
    /// [`crate::EventStore::version`] tells the current version.
    #[error("version conflict on {aggregate}: expected {expected}, the aggregate has moved on")]
    Conflict {
        /// The aggregate appended to.
        aggregate: AggregateId,
        /// The version the append expected.
        expected: crate::ExpectedVersion,
    },
    /// A category, aggregate id or event type that cannot be used.
    #[error("invalid {what}: {detail}")]
    Invalid {
        /// What was invalid, e.g. "aggregate id".
        what: &'static str,
        /// Why.
        detail: String,
    },
    /// An event's payload or envelope could not be encoded or decoded.
    #[error("codec: {0}")]
    Codec(String),
    /// A stored event has an older schema version than the code reads and
    /// no upcaster is registered for that step.
    #[error("no upcaster for event type {event_type} from schema version {from}")]
    MissingUpcaster {
        /// The event type.
        event_type: String,
        /// The stored schema version.
        from: u32,
    },
    /// An upcaster refused an event.
    #[error("upcasting {event_type} from schema version {from}: {detail}")]
    Upcast {
        /// The event type.
        event_type: String,
        /// The schema version it was upcast from.
        from: u32,
        /// The upcaster's message.
        detail: String,
    },
    /// A stored event lacks a header the envelope needs, or has a bad one.
    #[error("event at position {position} of stream {stream}: {detail}")]
    BadEnvelope {
        /// The stream.
        stream: String,
        /// Its stream sequence.
        position: u64,
        /// What is wrong.
        detail: String,
    },
    /// The server or the connection failed.
    #[error(transparent)]
    Client(#[from] herald_client::Error),
}

impl Error {
    /// Whether this is an optimistic-concurrency [`Error::Conflict`].
    pub fn is_conflict(&self) -> bool {
        matches!(self, Error::Conflict { .. })
    }

    pub(crate) fn invalid(what: &'static str, detail: impl Into<String>) -> Error {
        Error::Invalid {
            what,
            detail: detail.into(),
        }
    }
}

impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Error {
        Error::Codec(e.to_string())
    }
}

/// A `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
