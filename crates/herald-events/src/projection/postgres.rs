//! The PostgreSQL adapter: the projection's tables and its checkpoint in
//! one database, changed in one transaction per batch.

use std::fmt;
use std::future::Future;

use tokio_postgres::{Client, Transaction};

use super::{sql_position, BoxError, Projection, ProjectionError, ReadModel, CHECKPOINT_TABLE};
use crate::event::RecordedEvent;

/// A projection into PostgreSQL tables.
///
/// Every method gets the open transaction; the adapter commits it
/// together with the checkpoint, so a failure of any event (or a crash)
/// leaves no trace of its batch. Implement the methods as `async fn`.
pub trait PostgresProjection: Projection {
    /// Creates the projection's tables unless they exist; called when the
    /// model is set up.
    fn init(&self, tx: &Transaction<'_>) -> impl Future<Output = Result<(), BoxError>> + Send;

    /// Empties the projection's tables, for a rebuild.
    fn reset(&self, tx: &Transaction<'_>) -> impl Future<Output = Result<(), BoxError>> + Send;

    /// Applies one event.
    fn apply(
        &self,
        tx: &Transaction<'_>,
        event: &RecordedEvent,
    ) -> impl Future<Output = Result<(), BoxError>> + Send;
}

/// A [`PostgresProjection`]'s tables and its checkpoint (a row of
/// [`CHECKPOINT_TABLE`](super::CHECKPOINT_TABLE)) in one PostgreSQL
/// database, over a connection the model owns (its connection task must be
/// running, as with any `tokio_postgres::Client`).
///
/// Each batch locks the projection's checkpoint row (`FOR UPDATE`) before
/// reading it, so two runners of one projection apply each event once.
pub struct PostgresModel<P: PostgresProjection> {
    projection: P,
    client: Client,
}

impl<P: PostgresProjection> PostgresModel<P> {
    /// Sets up `projection` on `client`: the checkpoint table, its row, and
    /// the projection's [`init`](PostgresProjection::init), in one
    /// transaction. Tables are created where `search_path` says.
    pub async fn new(mut client: Client, projection: P) -> Result<PostgresModel<P>, ProjectionError> {
        let setup = async {
            let tx = client.transaction().await?;
            tx.batch_execute(&format!(
                "CREATE TABLE IF NOT EXISTS {CHECKPOINT_TABLE} \
                 (projection TEXT PRIMARY KEY, position BIGINT NOT NULL)"
            ))
            .await?;
            tx.execute(
                &format!("INSERT INTO {CHECKPOINT_TABLE} (projection, position) VALUES ($1, 0) ON CONFLICT DO NOTHING"),
                &[&projection.name()],
            )
            .await?;
            projection.init(&tx).await?;
            tx.commit().await?;
            Ok::<(), BoxError>(())
        };
        setup
            .await
            .map_err(|e| ProjectionError::storage(&projection, e))?;
        Ok(PostgresModel { projection, client })
    }

    /// The connection, to read the model (between batches: the runner
    /// holds it while applying).
    pub fn client(&self) -> &Client {
        &self.client
    }
}

/// Writes `position` as the checkpoint of `name`.
async fn write_checkpoint(
    tx: &Transaction<'_>,
    name: &str,
    position: i64,
) -> Result<(), tokio_postgres::Error> {
    tx.execute(
        &format!(
            "INSERT INTO {CHECKPOINT_TABLE} (projection, position) VALUES ($1, $2) \
             ON CONFLICT (projection) DO UPDATE SET position = excluded.position"
        ),
        &[&name, &position],
    )
    .await?;
    Ok(())
}

impl<P: PostgresProjection> fmt::Debug for PostgresModel<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresModel")
            .field("projection", &self.projection.name())
            .finish_non_exhaustive()
    }
}

impl<P: PostgresProjection> ReadModel for PostgresModel<P> {
    type Projection = P;

    fn projection(&self) -> &P {
        &self.projection
    }

    async fn checkpoint(&mut self) -> Result<u64, ProjectionError> {
        let row = self
            .client
            .query_opt(
                &format!("SELECT position FROM {CHECKPOINT_TABLE} WHERE projection = $1"),
                &[&self.projection.name()],
            )
            .await
            .map_err(|e| ProjectionError::storage(&self.projection, e))?;
        Ok(row.map_or(0, |row| row.get::<_, i64>(0).max(0) as u64))
    }

    async fn apply(&mut self, events: Vec<RecordedEvent>) -> Result<u64, ProjectionError> {
        let PostgresModel { projection, client } = self;
        let storage = |e: tokio_postgres::Error| ProjectionError::storage(projection, e);
        let tx = client.transaction().await.map_err(storage)?;
        // The row lock serializes runners of this projection: the
        // checkpoint read here holds until this transaction ends.
        let row = tx
            .query_opt(
                &format!("SELECT position FROM {CHECKPOINT_TABLE} WHERE projection = $1 FOR UPDATE"),
                &[&projection.name()],
            )
            .await
            .map_err(storage)?;
        let stored = row.map_or(0, |row| row.get::<_, i64>(0).max(0) as u64);
        let mut checkpoint = stored;
        for event in events.iter().filter(|e| e.position > stored) {
            projection
                .apply(&tx, event)
                .await
                .map_err(|source| ProjectionError::Apply {
                    projection: projection.name().to_string(),
                    position: event.position,
                    source,
                })?;
            checkpoint = event.position;
        }
        if checkpoint != stored {
            write_checkpoint(&tx, projection.name(), sql_position(projection, checkpoint)?)
                .await
                .map_err(storage)?;
            tx.commit().await.map_err(storage)?;
        }
        // Otherwise dropping the transaction rolls back an empty one.
        Ok(checkpoint)
    }

    async fn reset(&mut self) -> Result<(), ProjectionError> {
        let PostgresModel { projection, client } = self;
        let reset = async {
            let tx = client.transaction().await?;
            projection.reset(&tx).await?;
            write_checkpoint(&tx, projection.name(), 0).await?;
            tx.commit().await?;
            Ok::<(), BoxError>(())
        };
        reset.await.map_err(|e| ProjectionError::storage(projection, e))
    }
}
