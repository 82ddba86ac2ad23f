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
//! - [`Aggregate`] and [`Repository`]: load (from a KV snapshot plus the
//!   tail), handle a command, append at the loaded version, retry on
//!   conflict; a command retried with its id is applied once.
//! - [`CommandBus`] and [`CommandHandler`]: commands as requests to the
//!   queue group of their category (`cmd.<category>.<id>`), answered with
//!   the outcome or the typed domain error ([`CommandError`]).
//! - [`projection`]: read models ([`ProjectionRunner`] over a durable
//!   consumer; in memory, SQLite with the `sqlite` feature, PostgreSQL with
//!   `postgres`) whose checkpoint is stored in the same transaction as the
//!   model; lag, resume after a crash, rebuild by replay.
//! - [`Replica`]: a local copy of the latest state per key of a stream
//!   (event-carried state transfer), readable while its source is down;
//!   [`notification`] for thin events whose readers fetch the state.
//! - [`Policy`] and [`PolicyRunner`]: react to events with commands whose
//!   ids derive from the event's, so a repeated reaction is applied once.
//!
//! Subjects, headers and record formats: `docs/internals/events.md`. A
//! worked example (bank accounts: commands, events, an upcaster, a SQLite
//! projection and a replica) is `examples/bank.rs`:
//! `cargo run -p herald-events --example bank` against a local server.
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
pub mod notification;
mod policy;
pub mod projection;
mod reader;
pub mod replica;
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
pub use notification::{fetch_latest, Latest, Notification, Notifications, Notifier};
pub use policy::{Policy, PolicyRunner, Reaction};
pub use projection::{Progress, Projection, ProjectionError, ProjectionRunner, ReadModel};
pub use replica::{Change, Replica, ReplicaConfig, ReplicaStatus};
pub use store::{Appended, EventStore, ExpectedVersion, StoreConfig};
pub use subscription::{AllSubscription, Checkpoints, Subscription};
