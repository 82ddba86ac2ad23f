//! Event sourcing and CQRS on Herald.
//!
//! The main types:
//! - [`EventStore`]: one stream per category, one subject per aggregate
//!   (`<category>.<id>`); [`EventStore::append`] with an
//!   [`ExpectedVersion`] (atomic for several events, [`Error::Conflict`] if
//!   another writer got there first), [`EventStore::read`],
//!   [`EventStore::read_category`], and catch-up subscriptions from a
//!   checkpoint ([`EventStore::subscribe_category`],
//!   [`EventStore::subscribe_all`]).
//! - [`Envelope`]: each event's CloudEvents attributes (`ce-id` as a ULID,
//!   `ce-type`, `ce-source`, `ce-time`, `ce-schemaversion`,
//!   `ce-correlationid`, `ce-causationid`) carried as message headers, so
//!   any NATS client can read them; [`Causation`] links a chain.
//! - [`DomainEvent`], [`NewEvent`], [`RecordedEvent`]: typed events
//!   (JSON, or CBOR with [`Codec::Cbor`]) and [`Upcasters`] that bring old
//!   schema versions up to date on read.
//!
//! ```no_run
//! use herald_events::{AggregateId, Causation, DomainEvent, EventStore, ExpectedVersion};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Debug, Clone, Serialize, Deserialize)]
//! #[serde(tag = "type", content = "data")]
//! enum AccountEvent {
//!     Opened { owner: String },
//!     Deposited { amount: u64 },
//! }
//! impl DomainEvent for AccountEvent {}
//!
//! # #[tokio::main] async fn main() -> herald_events::Result<()> {
//! let client = herald_client::Client::connect("nats://127.0.0.1:4333").await?;
//! let store = EventStore::new(&client);
//! let account = AggregateId::new("accounts", "a-1")?;
//! let events = [
//!     AccountEvent::Opened { owner: "ada".into() },
//!     AccountEvent::Deposited { amount: 100 },
//! ];
//! // Both or neither, and only if the account has no events yet.
//! let appended = store
//!     .append_events(&account, ExpectedVersion::NoEvents, &events, &Causation::none())
//!     .await?;
//! let history: Vec<AccountEvent> = store
//!     .read(&account, 0)
//!     .await?
//!     .iter()
//!     .map(|event| store.decode(event))
//!     .collect::<Result<_, _>>()?;
//! assert_eq!(history.len(), 2);
//! # let _ = appended; Ok(()) }
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod aggregate;
pub mod codec;
mod command;
pub mod envelope;
mod error;
mod event;
mod naming;
mod policy;
mod reader;
mod store;
mod subscription;

pub use aggregate::{
    Aggregate, CommandContext, ExecuteError, Executed, Loaded, Repository, EXECUTE_ATTEMPTS_MAX,
};
pub use codec::Codec;
pub use command::{
    command_subject, Accepted, CommandBus, CommandError, CommandHandler, COMMAND_TIMEOUT_DEFAULT,
    HANDLER_IN_FLIGHT_MAX,
};
pub use envelope::{Causation, Envelope};
pub use error::{Error, Result};
pub use event::{DomainEvent, NewEvent, RecordedEvent, Upcasters};
pub use naming::{AggregateId, NAME_LEN_MAX};
pub use policy::{Policy, PolicyRunner, Reaction};
pub use store::{Appended, EventStore, ExpectedVersion, StoreConfig};
pub use subscription::{AllSubscription, Checkpoints, Subscription};
