//! The SQLite adapter: the projection's tables and its checkpoint in one
//! database, changed in one transaction per batch.

use std::fmt;
use std::future::Future;
use std::path::Path;
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior};

use super::{sql_position, BoxError, Projection, ProjectionError, ReadModel, CHECKPOINT_TABLE};
use crate::event::RecordedEvent;

/// How long a write waits for another connection's lock on the database
/// before failing (SQLite's `busy_timeout`).
const BUSY_TIMEOUT_MS: u64 = 5_000;

/// A projection into SQLite tables.
///
/// Every method gets the open transaction; the adapter commits it
/// together with the checkpoint, so a failure of any event (or a crash)
/// leaves no trace of its batch.
pub trait SqliteProjection: Projection {
    /// Creates the projection's tables unless they exist; called when the
    /// model is opened.
    fn init(&self, tx: &Transaction<'_>) -> Result<(), BoxError>;

    /// Empties the projection's tables, for a rebuild.
    fn reset(&self, tx: &Transaction<'_>) -> Result<(), BoxError>;

    /// Applies one event.
    fn apply(&self, tx: &Transaction<'_>, event: &RecordedEvent) -> Result<(), BoxError>;
}

/// A [`SqliteProjection`]'s tables and its checkpoint (a row of
/// [`CHECKPOINT_TABLE`](super::CHECKPOINT_TABLE)) in one SQLite database.
///
/// Batches are applied on Tokio's blocking threads, since SQLite calls
/// block. Clones share the connection: read the model through
/// [`SqliteModel::connection`] (or another connection to the same file).
pub struct SqliteModel<P: SqliteProjection> {
    projection: Arc<P>,
    connection: Arc<Mutex<Connection>>,
}

impl<P: SqliteProjection> SqliteModel<P> {
    /// Opens (or creates) the database file at `path` in WAL mode, so that
    /// readers do not block the projection, and sets up `projection`.
    ///
    /// Durability is `synchronous = NORMAL`: a power cut may lose the last
    /// batches, but model and checkpoint are lost together, and the events
    /// are applied again.
    pub fn open(path: impl AsRef<Path>, projection: P) -> Result<SqliteModel<P>, ProjectionError> {
        let storage = |e: rusqlite::Error| ProjectionError::storage(&projection, e);
        let connection = Connection::open(path).map_err(storage)?;
        connection
            .pragma_update(None, "journal_mode", "WAL")
            .and_then(|()| connection.pragma_update(None, "synchronous", "NORMAL"))
            .and_then(|()| connection.busy_timeout(std::time::Duration::from_millis(BUSY_TIMEOUT_MS)))
            .map_err(storage)?;
        SqliteModel::new(connection, projection)
    }

    /// Uses `connection` as it is configured, and sets up `projection`:
    /// the checkpoint table, its row, and the projection's
    /// [`init`](SqliteProjection::init), in one transaction.
    pub fn new(mut connection: Connection, projection: P) -> Result<SqliteModel<P>, ProjectionError> {
        let name = projection.name().to_string();
        let mut setup = || -> Result<(), BoxError> {
            let tx = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
            tx.execute_batch(&format!(
                "CREATE TABLE IF NOT EXISTS {CHECKPOINT_TABLE} \
                 (projection TEXT PRIMARY KEY, position INTEGER NOT NULL)"
            ))?;
            tx.execute(
                &format!("INSERT INTO {CHECKPOINT_TABLE} (projection, position) VALUES (?1, 0) ON CONFLICT DO NOTHING"),
                [&name],
            )?;
            projection.init(&tx)?;
            tx.commit()?;
            Ok(())
        };
        setup().map_err(|e| ProjectionError::storage(&projection, e))?;
        Ok(SqliteModel {
            projection: Arc::new(projection),
            connection: Arc::new(Mutex::new(connection)),
        })
    }

    /// The connection, to read the model. Holding its lock stalls the
    /// projection.
    pub fn connection(&self) -> &Arc<Mutex<Connection>> {
        &self.connection
    }

    /// Runs `work` with the connection on a blocking thread.
    fn blocking<T, F>(&self, work: F) -> impl Future<Output = Result<T, ProjectionError>> + Send
    where
        T: Send + 'static,
        F: FnOnce(&P, &mut Connection) -> Result<T, ProjectionError> + Send + 'static,
    {
        let projection = self.projection.clone();
        let connection = self.connection.clone();
        let name = projection.name().to_string();
        async move {
            let task = tokio::task::spawn_blocking(move || {
                let mut connection = connection.lock().map_err(|_| {
                    ProjectionError::storage(&*projection, "the SQLite connection's lock is poisoned")
                })?;
                work(&projection, &mut connection)
            });
            match task.await {
                Ok(result) => result,
                Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                Err(e) => Err(ProjectionError::Storage {
                    projection: name,
                    source: e.into(),
                }),
            }
        }
    }
}

/// The stored checkpoint of `name`.
fn read_checkpoint(tx: &Transaction<'_>, name: &str) -> rusqlite::Result<u64> {
    let position: Option<i64> = tx
        .query_row(
            &format!("SELECT position FROM {CHECKPOINT_TABLE} WHERE projection = ?1"),
            [name],
            |row| row.get(0),
        )
        .optional()?;
    Ok(position.map_or(0, |p| p.max(0) as u64))
}

fn write_checkpoint(tx: &Transaction<'_>, name: &str, position: i64) -> rusqlite::Result<()> {
    tx.execute(
        &format!(
            "INSERT INTO {CHECKPOINT_TABLE} (projection, position) VALUES (?1, ?2) \
             ON CONFLICT (projection) DO UPDATE SET position = excluded.position"
        ),
        rusqlite::params![name, position],
    )?;
    Ok(())
}

/// The body of [`ReadModel::apply`]: skip what the stored checkpoint
/// covers, apply the rest, move the checkpoint, commit.
fn apply_batch<P: SqliteProjection>(
    projection: &P,
    connection: &mut Connection,
    events: &[RecordedEvent],
) -> Result<u64, ProjectionError> {
    let storage = |e: rusqlite::Error| ProjectionError::storage(projection, e);
    // IMMEDIATE takes the write lock now, so the checkpoint read below
    // cannot be changed by another writer before this commit.
    let tx = connection
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(storage)?;
    let stored = read_checkpoint(&tx, projection.name()).map_err(storage)?;
    let mut checkpoint = stored;
    for event in events.iter().filter(|e| e.position > stored) {
        projection
            .apply(&tx, event)
            .map_err(|source| ProjectionError::Apply {
                projection: projection.name().to_string(),
                position: event.position,
                source,
            })?;
        checkpoint = event.position;
    }
    if checkpoint != stored {
        write_checkpoint(&tx, projection.name(), sql_position(projection, checkpoint)?).map_err(storage)?;
        tx.commit().map_err(storage)?;
    }
    // Otherwise dropping the transaction rolls back an empty one.
    Ok(checkpoint)
}

impl<P: SqliteProjection> Clone for SqliteModel<P> {
    fn clone(&self) -> SqliteModel<P> {
        SqliteModel {
            projection: self.projection.clone(),
            connection: self.connection.clone(),
        }
    }
}

impl<P: SqliteProjection> fmt::Debug for SqliteModel<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteModel")
            .field("projection", &self.projection.name())
            .finish_non_exhaustive()
    }
}

impl<P: SqliteProjection> ReadModel for SqliteModel<P> {
    type Projection = P;

    fn projection(&self) -> &P {
        &self.projection
    }

    fn checkpoint(&mut self) -> impl Future<Output = Result<u64, ProjectionError>> + Send {
        self.blocking(|projection, connection| {
            let storage = |e: rusqlite::Error| ProjectionError::storage(projection, e);
            let tx = connection.transaction().map_err(storage)?;
            read_checkpoint(&tx, projection.name()).map_err(storage)
        })
    }

    fn apply(
        &mut self,
        events: Vec<RecordedEvent>,
    ) -> impl Future<Output = Result<u64, ProjectionError>> + Send {
        self.blocking(move |projection, connection| apply_batch(projection, connection, &events))
    }

    fn reset(&mut self) -> impl Future<Output = Result<(), ProjectionError>> + Send {
        self.blocking(|projection, connection| {
            let mut reset = || -> Result<(), BoxError> {
                let tx = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
                projection.reset(&tx)?;
                write_checkpoint(&tx, projection.name(), 0)?;
                tx.commit()?;
                Ok(())
            };
            reset().map_err(|e| ProjectionError::storage(projection, e))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::projection::memory::tests::event;

    /// Positions in a table whose primary key refuses a second application.
    struct Positions;

    impl Projection for Positions {
        fn name(&self) -> &str {
            "positions"
        }
        fn category(&self) -> &str {
            "accounts"
        }
    }

    impl SqliteProjection for Positions {
        fn init(&self, tx: &Transaction<'_>) -> Result<(), BoxError> {
            tx.execute_batch("CREATE TABLE IF NOT EXISTS positions (position INTEGER PRIMARY KEY)")?;
            Ok(())
        }
        fn reset(&self, tx: &Transaction<'_>) -> Result<(), BoxError> {
            tx.execute_batch("DELETE FROM positions")?;
            Ok(())
        }
        fn apply(&self, tx: &Transaction<'_>, event: &RecordedEvent) -> Result<(), BoxError> {
            if event.aggregate.id() == "bad" {
                return Err("refused".into());
            }
            tx.execute("INSERT INTO positions VALUES (?1)", [event.position as i64])?;
            Ok(())
        }
    }

    fn positions(model: &SqliteModel<Positions>) -> Vec<u64> {
        let connection = model.connection().lock().unwrap();
        let mut statement = connection
            .prepare("SELECT position FROM positions ORDER BY position")
            .unwrap();
        let rows = statement.query_map([], |row| row.get::<_, i64>(0)).unwrap();
        rows.map(|p| p.unwrap() as u64).collect()
    }

    #[tokio::test]
    async fn batches_and_checkpoint_commit_together() {
        let mut model = SqliteModel::new(Connection::open_in_memory().unwrap(), Positions).unwrap();
        let batch = |range: std::ops::RangeInclusive<u64>| range.map(|p| event(p, "a")).collect::<Vec<_>>();
        assert_eq!(ReadModel::checkpoint(&mut model).await.unwrap(), 0);
        assert_eq!(ReadModel::apply(&mut model, batch(1..=5)).await.unwrap(), 5);
        // Redelivered and overlapping: the primary key would refuse 3..=5.
        assert_eq!(ReadModel::apply(&mut model, batch(3..=8)).await.unwrap(), 8);
        assert_eq!(positions(&model), (1..=8).collect::<Vec<_>>());

        // A failing event rolls back its whole batch, checkpoint included.
        let failing = vec![event(9, "a"), event(10, "bad")];
        let err = ReadModel::apply(&mut model, failing).await.unwrap_err();
        assert!(
            matches!(err, ProjectionError::Apply { position: 10, .. }),
            "{err}"
        );
        assert_eq!(ReadModel::checkpoint(&mut model).await.unwrap(), 8);
        assert_eq!(positions(&model).len(), 8);

        ReadModel::reset(&mut model).await.unwrap();
        assert_eq!(ReadModel::checkpoint(&mut model).await.unwrap(), 0);
        assert!(positions(&model).is_empty());
    }
}
