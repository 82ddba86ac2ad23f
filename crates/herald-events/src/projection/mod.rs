//! Projections: read models kept up to date from a category's events.
//!
//! A [`Projection`] follows one category (the stream `ES_<category>`, see
//! [`EventStore::stream_name`](crate::EventStore::stream_name)) and applies
//! each [`RecordedEvent`] to a read model. Where the model lives is the
//! adapter's business, a [`ReadModel`]:
//!
//! - [`MemoryModel`] with a [`MemoryProjection`]: any `Default` type in
//!   memory (`&mut Model` per event);
//! - `SqliteModel` with a `SqliteProjection` (feature `sqlite`, on by
//!   default): tables in SQLite (`&rusqlite::Transaction` per event);
//! - `PostgresModel` with a `PostgresProjection` (feature `postgres`):
//!   tables in PostgreSQL (`&tokio_postgres::Transaction` per event).
//!
//! Each adapter stores the projection's **checkpoint** (the position of the
//! last event applied) *with* the model: one call applies a batch and moves
//! the checkpoint in the same transaction, and events at or below the
//! stored checkpoint are skipped inside that transaction. A crash therefore
//! loses both or neither, and an event delivered again after a crash (or
//! by a second runner) has no effect: exactly-once *effect* on top of
//! at-least-once delivery.
//!
//! A [`ProjectionRunner`] feeds a model from a durable pull consumer on the
//! category stream, resumes from the model's checkpoint, reports its lag
//! ([`Progress`]) and can [`rebuild`](ProjectionRunner::rebuild) the model
//! from the first event.
//!
//! ```no_run
//! use std::collections::HashMap;
//! use herald_events::projection::{BoxError, MemoryModel, MemoryProjection, Projection, ProjectionRunner};
//! use herald_events::{EventStore, RecordedEvent};
//!
//! /// Events per account.
//! struct EventCounts;
//!
//! impl Projection for EventCounts {
//!     fn name(&self) -> &str { "event-counts" }
//!     fn category(&self) -> &str { "accounts" }
//! }
//!
//! impl MemoryProjection for EventCounts {
//!     type Model = HashMap<String, u64>;
//!     fn apply(&self, model: &mut Self::Model, event: &RecordedEvent) -> Result<(), BoxError> {
//!         *model.entry(event.aggregate.id().to_string()).or_default() += 1;
//!         Ok(())
//!     }
//! }
//!
//! # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let client = herald_client::Client::connect("nats://127.0.0.1:4333").await?;
//! let store = EventStore::new(&client);
//! let model = MemoryModel::new(EventCounts);
//! // The runner owns a clone; this one reads the same model.
//! let mut runner = ProjectionRunner::new(&store, model.clone())?;
//! let progress = runner.run_until_caught_up().await?;
//! println!("at position {}: {:?}", progress.checkpoint, model.read(|counts| counts.get("a-1").copied()));
//! // Then follow live events until ctrl-c.
//! runner.run(async { tokio::signal::ctrl_c().await.ok(); }).await?;
//! # Ok(()) }
//! ```

use std::future::Future;

use crate::event::RecordedEvent;

mod memory;
#[cfg(feature = "postgres")]
mod postgres;
mod runner;
#[cfg(feature = "sqlite")]
mod sqlite;

pub use memory::{MemoryModel, MemoryProjection};
#[cfg(feature = "postgres")]
pub use postgres::{PostgresModel, PostgresProjection};
pub use runner::{
    Progress, ProjectionRunner, RunnerConfig, ACK_WAIT_MS_MAX, FETCH_BATCH_MAX, FETCH_EXPIRES_MS_MAX,
};
#[cfg(feature = "sqlite")]
pub use sqlite::{SqliteModel, SqliteProjection};

/// Any error a projection's own code returns (`?` converts most errors).
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Name of the table the SQL adapters keep checkpoints in, one row per
/// projection: `(projection TEXT PRIMARY KEY, position BIGINT)`.
pub const CHECKPOINT_TABLE: &str = "herald_projection_checkpoints";

/// A projection: a name and the category whose events it applies. How it
/// applies them depends on where its model lives: see
/// [`MemoryProjection`] and the SQL adapters' traits.
pub trait Projection: Send + Sync + 'static {
    /// Its name, unique among the projections of a server: it names the
    /// durable consumer (`projection_<name>`) and the checkpoint row.
    /// 1 to 128 of `A-Z a-z 0-9 - _ ~ =`.
    fn name(&self) -> &str;

    /// The category it follows (the stream `ES_<category>` with the
    /// default store configuration); positions are that stream's sequences.
    fn category(&self) -> &str;
}

/// Where a projection's model and its checkpoint are stored; the adapters
/// ([`MemoryModel`], `SqliteModel`, `PostgresModel`) implement it, and a
/// [`ProjectionRunner`] drives it.
///
/// The contract that makes a projection exactly-once in effect:
/// [`ReadModel::apply`] applies the events above the stored checkpoint and
/// stores the new checkpoint atomically with them.
pub trait ReadModel: Send + 'static {
    /// The projection this model is built by.
    type Projection: Projection;

    /// The projection.
    fn projection(&self) -> &Self::Projection;

    /// The stored checkpoint: the position of the last event applied, 0
    /// before the first.
    fn checkpoint(&mut self) -> impl Future<Output = Result<u64, ProjectionError>> + Send;

    /// Applies `events` (in position order) whose position is above the
    /// stored checkpoint, and stores the last position applied as the new
    /// checkpoint, in one transaction; returns the checkpoint. If applying
    /// fails, the model and checkpoint stay consistent with each other (the
    /// SQL adapters roll the whole batch back; memory keeps the events
    /// before the failing one, with the checkpoint of the last of them).
    fn apply(
        &mut self,
        events: Vec<RecordedEvent>,
    ) -> impl Future<Output = Result<u64, ProjectionError>> + Send;

    /// Empties the model and sets the checkpoint back to 0, in one
    /// transaction: the start of a rebuild.
    fn reset(&mut self) -> impl Future<Output = Result<(), ProjectionError>> + Send;
}

/// What can stop a projection.
#[derive(Debug, thiserror::Error)]
pub enum ProjectionError {
    /// The event store failed: the server, the connection, an event
    /// without a valid envelope, an invalid projection or category name,
    /// or a checkpoint beyond the end of the stream.
    #[error(transparent)]
    Events(#[from] crate::Error),
    /// The projection refused an event; nothing of its batch is stored
    /// (the memory adapter keeps the events before it).
    #[error("projection {projection}: applying the event at position {position}: {source}")]
    Apply {
        /// The projection's name.
        projection: String,
        /// The event's position.
        position: u64,
        /// The projection's error.
        #[source]
        source: BoxError,
    },
    /// The read model's storage failed (opening, a transaction, the
    /// checkpoint, `init` or `reset` of the projection).
    #[error("projection {projection}: read model storage: {source}")]
    Storage {
        /// The projection's name.
        projection: String,
        /// The storage's error.
        #[source]
        source: BoxError,
    },
}

impl From<herald_client::Error> for ProjectionError {
    fn from(e: herald_client::Error) -> ProjectionError {
        ProjectionError::Events(e.into())
    }
}

impl ProjectionError {
    /// A storage error of `projection`.
    #[cfg(any(feature = "sqlite", feature = "postgres"))]
    pub(crate) fn storage(projection: &impl Projection, source: impl Into<BoxError>) -> ProjectionError {
        ProjectionError::Storage {
            projection: projection.name().to_string(),
            source: source.into(),
        }
    }

    /// Whether this is the connection or server failing (worth retrying),
    /// rather than a bad event or the read model's storage.
    pub fn is_transient(&self) -> bool {
        matches!(self, ProjectionError::Events(crate::Error::Client(_)))
    }
}

/// A position as SQL's signed 64-bit integer (stream sequences stay far
/// below 2^63).
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) fn sql_position(projection: &impl Projection, position: u64) -> Result<i64, ProjectionError> {
    i64::try_from(position)
        .map_err(|_| ProjectionError::storage(projection, format!("position {position} exceeds i64")))
}
