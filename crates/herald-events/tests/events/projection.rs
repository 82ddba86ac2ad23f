//! Projection tests: read models in memory, SQLite and PostgreSQL fed by a
//! real server; a runner killed mid-stream (a real process, SIGKILL) and
//! resumed; rebuilds from zero.

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use herald_events::projection::{
    BoxError, MemoryModel, MemoryProjection, PostgresModel, PostgresProjection, Progress, Projection,
    ProjectionRunner, ReadModel, RunnerConfig, SqliteModel, SqliteProjection,
};
use herald_events::{AggregateId, EventStore, ExpectedVersion, NewEvent, RecordedEvent};

use crate::support::{self, within};

/// Makes the test binary act as the worker process of the kill test.
const WORKER_ENV: &str = "HERALD_EVENTS_PROJECTION_WORKER";
/// The server URL and database file the worker uses.
const WORKER_URL_ENV: &str = "HERALD_EVENTS_PROJECTION_WORKER_URL";
const WORKER_DB_ENV: &str = "HERALD_EVENTS_PROJECTION_WORKER_DB";
/// The kill test's name, for the worker's `--exact`.
const KILL_TEST: &str = "projection::killed_mid_stream_resumes_without_double_applying";
/// PostgreSQL URL of the Postgres tests; they are skipped without it.
const POSTGRES_ENV: &str = "HERALD_TEST_POSTGRES_URL";

/// What every adapter stores per event.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Row {
    position: u64,
    subject: String,
    id: String,
    event_type: String,
    data: String,
}

impl Row {
    fn of(event: &RecordedEvent) -> Row {
        Row {
            position: event.position,
            subject: event.aggregate.subject(),
            id: event.envelope.id.clone(),
            event_type: event.envelope.event_type.clone(),
            data: String::from_utf8_lossy(&event.data).into_owned(),
        }
    }
}

/// The ledger of a category: one row per event, in memory.
struct Ledger {
    name: &'static str,
    category: &'static str,
}

impl Projection for Ledger {
    fn name(&self) -> &str {
        self.name
    }
    fn category(&self) -> &str {
        self.category
    }
}

impl MemoryProjection for Ledger {
    type Model = Vec<Row>;
    fn apply(&self, rows: &mut Vec<Row>, event: &RecordedEvent) -> Result<(), BoxError> {
        rows.push(Row::of(event));
        Ok(())
    }
}

/// The same ledger in SQL: `ledger` refuses an event applied twice (its
/// primary key), and `totals.applied` counts applications, so it would be
/// too high if any were applied twice. `delay` slows every event down.
struct SqlLedger {
    name: &'static str,
    category: &'static str,
    delay: Duration,
}

impl Projection for SqlLedger {
    fn name(&self) -> &str {
        self.name
    }
    fn category(&self) -> &str {
        self.category
    }
}

const LEDGER_TABLES: &str =
    "CREATE TABLE IF NOT EXISTS ledger (id TEXT PRIMARY KEY, position BIGINT NOT NULL UNIQUE, \
     subject TEXT NOT NULL, event_type TEXT NOT NULL, data TEXT NOT NULL); \
     CREATE TABLE IF NOT EXISTS totals (name TEXT PRIMARY KEY, n BIGINT NOT NULL); \
     INSERT INTO totals (name, n) VALUES ('applied', 0) ON CONFLICT DO NOTHING";
const LEDGER_RESET: &str = "DELETE FROM ledger; UPDATE totals SET n = 0";
const LEDGER_INSERT_SQLITE: &str =
    "INSERT INTO ledger (id, position, subject, event_type, data) VALUES (?1, ?2, ?3, ?4, ?5)";
const LEDGER_INSERT_PG: &str =
    "INSERT INTO ledger (id, position, subject, event_type, data) VALUES ($1, $2, $3, $4, $5)";
const TOTALS_BUMP: &str = "UPDATE totals SET n = n + 1 WHERE name = 'applied'";

impl SqliteProjection for SqlLedger {
    fn init(&self, tx: &rusqlite::Transaction<'_>) -> Result<(), BoxError> {
        tx.execute_batch(LEDGER_TABLES)?;
        Ok(())
    }
    fn reset(&self, tx: &rusqlite::Transaction<'_>) -> Result<(), BoxError> {
        tx.execute_batch(LEDGER_RESET)?;
        Ok(())
    }
    fn apply(&self, tx: &rusqlite::Transaction<'_>, event: &RecordedEvent) -> Result<(), BoxError> {
        let row = Row::of(event);
        tx.prepare_cached(LEDGER_INSERT_SQLITE)?
            .execute(rusqlite::params![
                row.id,
                row.position as i64,
                row.subject,
                row.event_type,
                row.data
            ])?;
        tx.prepare_cached(TOTALS_BUMP)?.execute([])?;
        if !self.delay.is_zero() {
            std::thread::sleep(self.delay);
        }
        Ok(())
    }
}

impl PostgresProjection for SqlLedger {
    async fn init(&self, tx: &tokio_postgres::Transaction<'_>) -> Result<(), BoxError> {
        tx.batch_execute(LEDGER_TABLES).await?;
        Ok(())
    }
    async fn reset(&self, tx: &tokio_postgres::Transaction<'_>) -> Result<(), BoxError> {
        tx.batch_execute(LEDGER_RESET).await?;
        Ok(())
    }
    async fn apply(
        &self,
        tx: &tokio_postgres::Transaction<'_>,
        event: &RecordedEvent,
    ) -> Result<(), BoxError> {
        let row = Row::of(event);
        let position = row.position as i64;
        tx.execute(
            LEDGER_INSERT_PG,
            &[&row.id, &position, &row.subject, &row.event_type, &row.data],
        )
        .await?;
        tx.execute(TOTALS_BUMP, &[]).await?;
        Ok(())
    }
}

/// The ledger's rows and the applications counted, from SQLite.
fn sqlite_ledger(connection: &rusqlite::Connection) -> (Vec<Row>, u64) {
    let mut statement = connection
        .prepare("SELECT position, subject, id, event_type, data FROM ledger ORDER BY position")
        .unwrap();
    let rows = statement
        .query_map([], |r| {
            Ok(Row {
                position: r.get::<_, i64>(0)? as u64,
                subject: r.get(1)?,
                id: r.get(2)?,
                event_type: r.get(3)?,
                data: r.get(4)?,
            })
        })
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let applied: i64 = connection
        .query_row("SELECT n FROM totals WHERE name = 'applied'", [], |r| r.get(0))
        .unwrap();
    (rows, applied as u64)
}

fn sqlite_checkpoint(connection: &rusqlite::Connection, name: &str) -> u64 {
    let sql = format!(
        "SELECT position FROM {} WHERE projection = ?1",
        herald_events::projection::CHECKPOINT_TABLE
    );
    connection
        .query_row(&sql, [name], |r| r.get::<_, i64>(0))
        .unwrap() as u64
}

/// Appends `per_aggregate` events to each of `aggregates` aggregates of
/// `category`, `per_append` at a time; returns every event of the
/// category as stored.
async fn append(
    store: &EventStore,
    category: &str,
    aggregates: usize,
    per_aggregate: usize,
    per_append: usize,
) -> Vec<RecordedEvent> {
    for a in 0..aggregates {
        let aggregate = AggregateId::new(category, format!("agg-{a}")).unwrap();
        for chunk in (0..per_aggregate).collect::<Vec<_>>().chunks(per_append) {
            let events: Vec<NewEvent> = chunk
                .iter()
                .map(|i| NewEvent::json("Deposited", format!(r#"{{"aggregate":{a},"n":{i}}}"#)))
                .collect();
            within("append", store.append(&aggregate, ExpectedVersion::Any, &events))
                .await
                .unwrap();
        }
    }
    within("read", store.read_category(category, 0, usize::MAX))
        .await
        .unwrap()
}

fn rows(events: &[RecordedEvent]) -> Vec<Row> {
    events.iter().map(Row::of).collect()
}

fn small_batches() -> RunnerConfig {
    // Several batches (and pulls sent ahead) even for a few hundred events.
    RunnerConfig {
        batch_max: 32,
        ..RunnerConfig::default()
    }
}

fn temp_db(what: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "herald-events-projection-{what}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("model.sqlite")
}

fn caught_up_at(progress: Progress, last: u64) {
    assert_eq!(progress.checkpoint, last, "{progress:?}");
    assert_eq!(progress.pending, 0, "{progress:?}");
    assert!(progress.caught_up, "{progress:?}");
}

#[tokio::test]
async fn projections_into_memory_and_sqlite_match_the_store() {
    let server = support::server!();
    let client = herald_client::Client::connect(&server.url()).await.unwrap();
    let store = EventStore::new(&client);
    let stored = append(&store, "accounts", 3, 40, 10).await;
    assert_eq!(stored.len(), 120);
    let last = stored.last().unwrap().position;

    let memory = MemoryModel::new(Ledger {
        name: "ledger-memory",
        category: "accounts",
    });
    let mut runner = ProjectionRunner::new(&store, memory.clone())
        .unwrap()
        .with_config(small_batches());
    let progress = within("memory catch-up", runner.run_until_caught_up())
        .await
        .unwrap();
    caught_up_at(progress, last);
    assert_eq!(progress.applied, 120);
    assert_eq!(memory.read(Vec::clone), rows(&stored));
    assert_eq!(within("lag", runner.lag()).await.unwrap(), 0);

    let path = temp_db("match");
    let sqlite = SqliteModel::open(
        &path,
        SqlLedger {
            name: "ledger-sqlite",
            category: "accounts",
            delay: Duration::ZERO,
        },
    )
    .unwrap();
    let mut sql_runner = ProjectionRunner::new(&store, sqlite.clone())
        .unwrap()
        .with_config(small_batches());
    caught_up_at(
        within("sqlite catch-up", sql_runner.run_until_caught_up())
            .await
            .unwrap(),
        last,
    );
    assert_eq!(within("lag", sql_runner.lag()).await.unwrap(), 0);
    {
        let connection = sqlite.connection().lock().unwrap();
        assert_eq!(sqlite_ledger(&connection), (rows(&stored), 120));
        assert_eq!(sqlite_checkpoint(&connection, "ledger-sqlite"), last);
    }

    // More events: a second catch-up applies only those, on the same
    // durable consumer (nothing was left in flight).
    let js = store.jetstream();
    let consumer = within("info", js.consumer_info("ES_accounts", runner.consumer_name()))
        .await
        .unwrap();
    let stored = append(&store, "accounts", 2, 25, 25).await;
    let last = stored.last().unwrap().position;
    let progress = within("memory again", runner.run_until_caught_up())
        .await
        .unwrap();
    caught_up_at(progress, last);
    assert_eq!(progress.applied, 170);
    assert_eq!(memory.read(Vec::clone), rows(&stored));
    let again = within("info", js.consumer_info("ES_accounts", runner.consumer_name()))
        .await
        .unwrap();
    assert_eq!(again.created, consumer.created, "the durable consumer was reused");
    assert_eq!(again.ack_floor.stream_seq, last);

    // Live: the runner follows appends while they happen; its watch shows
    // the lag going back to 0 at the last position.
    let mut watch = sql_runner.watch();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let live = tokio::spawn(async move {
        let result = sql_runner
            .run(async {
                let _ = stopped.await;
            })
            .await;
        (sql_runner, result)
    });
    let stored = append(&store, "accounts", 4, 30, 7).await;
    let last = stored.last().unwrap().position;
    within(
        "live projection reaches the last event",
        watch.wait_for(|p| p.checkpoint == last && p.caught_up && p.pending == 0),
    )
    .await
    .unwrap();
    // Caught up and waiting: a single new event is applied at once, not
    // when the waiting pull expires (5 s).
    let stored = append(&store, "accounts", 1, 1, 1).await;
    let last = stored.last().unwrap().position;
    tokio::time::timeout(Duration::from_secs(2), watch.wait_for(|p| p.checkpoint == last))
        .await
        .expect("a single new event is applied without waiting for the pull to expire")
        .unwrap();
    stop.send(()).unwrap();
    let (sql_runner, result) = within("stop", live).await.unwrap();
    caught_up_at(result.unwrap(), last);
    assert_eq!(within("lag", sql_runner.lag()).await.unwrap(), 0);
    {
        let connection = sqlite.connection().lock().unwrap();
        assert_eq!(sqlite_ledger(&connection), (rows(&stored), stored.len() as u64));
    }
    let _ = std::fs::remove_dir_all(path.parent().unwrap());
}

#[tokio::test]
async fn rebuild_from_zero_gives_the_same_model() {
    let server = support::server!();
    let client = herald_client::Client::connect(&server.url()).await.unwrap();
    let store = EventStore::new(&client);
    let stored = append(&store, "orders", 4, 30, 6).await;
    let last = stored.last().unwrap().position;

    let memory = MemoryModel::new(Ledger {
        name: "orders-memory",
        category: "orders",
    });
    let mut runner = ProjectionRunner::new(&store, memory.clone())
        .unwrap()
        .with_config(small_batches());
    within("catch-up", runner.run_until_caught_up()).await.unwrap();
    let before = memory.read(Vec::clone);
    let progress = within("rebuild", runner.rebuild()).await.unwrap();
    caught_up_at(progress, last);
    // Replayed from the first event, not resumed.
    assert_eq!(progress.applied, stored.len() as u64);
    assert_eq!(memory.read(Vec::clone), before);
    assert_eq!(before, rows(&stored));

    let path = temp_db("rebuild");
    let projection = || SqlLedger {
        name: "orders-sqlite",
        category: "orders",
        delay: Duration::ZERO,
    };
    let sqlite = SqliteModel::open(&path, projection()).unwrap();
    let mut runner = ProjectionRunner::new(&store, sqlite.clone())
        .unwrap()
        .with_config(small_batches());
    within("catch-up", runner.run_until_caught_up()).await.unwrap();
    let before = sqlite_ledger(&sqlite.connection().lock().unwrap());
    assert_eq!(before, (rows(&stored), stored.len() as u64));
    // Damage the model behind the projection's back; a rebuild repairs it.
    sqlite
        .connection()
        .lock()
        .unwrap()
        .execute_batch("DELETE FROM ledger WHERE position % 3 = 0; UPDATE totals SET n = 9999")
        .unwrap();
    let progress = within("rebuild", runner.rebuild()).await.unwrap();
    caught_up_at(progress, last);
    assert_eq!(progress.applied, stored.len() as u64);
    assert_eq!(sqlite_ledger(&sqlite.connection().lock().unwrap()), before);
    drop((runner, sqlite));

    // The model survives a restart of the process: a new runner on the
    // same file resumes at its checkpoint and applies nothing again.
    let mut runner = ProjectionRunner::new(&store, SqliteModel::open(&path, projection()).unwrap()).unwrap();
    let progress = within("resume", runner.run_until_caught_up()).await.unwrap();
    caught_up_at(progress, last);
    assert_eq!(progress.applied, 0);
    let _ = std::fs::remove_dir_all(path.parent().unwrap());
}

/// The kill test's worker: projects slowly into the SQLite file it is
/// given until it is killed (or, if nobody kills it, until caught up).
async fn kill_worker() {
    let url = std::env::var(WORKER_URL_ENV).expect("worker URL");
    let db = std::env::var(WORKER_DB_ENV).expect("worker database");
    let client = herald_client::Client::connect(&url).await.unwrap();
    let store = EventStore::new(&client);
    let model = SqliteModel::open(
        &db,
        SqlLedger {
            name: "ledger",
            category: "payments",
            delay: Duration::from_millis(3),
        },
    )
    .unwrap();
    let config = RunnerConfig {
        batch_max: 20,
        ..RunnerConfig::default()
    };
    let mut runner = ProjectionRunner::new(&store, model).unwrap().with_config(config);
    let progress = runner.run_until_caught_up().await.unwrap();
    eprintln!("worker: caught up without being killed: {progress:?}");
}

#[tokio::test]
async fn killed_mid_stream_resumes_without_double_applying() {
    if std::env::var_os(WORKER_ENV).is_some() {
        return kill_worker().await;
    }
    let server = support::server!();
    let client = herald_client::Client::connect(&server.url()).await.unwrap();
    let store = EventStore::new(&client);
    let stored = append(&store, "payments", 6, 100, 25).await;
    let last = stored.last().unwrap().position;
    assert_eq!(stored.len(), 600);

    let path = temp_db("kill");
    let log_path = path.with_file_name("worker.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut worker = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", KILL_TEST, "--nocapture", "--test-threads", "1"])
        .env(WORKER_ENV, "1")
        .env(WORKER_URL_ENV, server.url())
        .env(WORKER_DB_ENV, &path)
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let worker_log = || std::fs::read_to_string(&log_path).unwrap_or_default();

    // Kill it once it has committed a few batches: 600 events at 3 ms
    // take it about 2 s, so it is far from done.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = worker.try_wait().unwrap() {
            panic!(
                "the worker ended before it was killed ({status}):\n{}",
                worker_log()
            );
        }
        assert!(
            Instant::now() < deadline,
            "the worker made no progress:\n{}",
            worker_log()
        );
        if checkpoint_of(&path, "ledger") >= 100 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    worker.kill().unwrap();
    let status = worker.wait().unwrap();
    assert_eq!(status.signal(), Some(9), "worker: {status}\n{}", worker_log());

    // What the worker left: a committed prefix, with its checkpoint.
    let killed_at = checkpoint_of(&path, "ledger");
    assert!(
        killed_at >= 100 && killed_at < last,
        "killed at {killed_at} of {last}"
    );
    {
        let connection = rusqlite::Connection::open(&path).unwrap();
        let (rows_then, applied_then) = sqlite_ledger(&connection);
        assert_eq!(rows_then, rows(&stored[..killed_at as usize]));
        assert_eq!(applied_then, killed_at);
    }

    // Resume in this process, at full speed.
    let model = SqliteModel::open(
        &path,
        SqlLedger {
            name: "ledger",
            category: "payments",
            delay: Duration::ZERO,
        },
    )
    .unwrap();
    let mut runner = ProjectionRunner::new(&store, model.clone())
        .unwrap()
        .with_config(small_batches());
    let progress = within("resume", runner.run_until_caught_up()).await.unwrap();
    caught_up_at(progress, last);
    assert_eq!(progress.applied, last - killed_at, "{progress:?}");
    {
        let connection = model.connection().lock().unwrap();
        // Every event exactly once: all rows, and as many applications.
        assert_eq!(sqlite_ledger(&connection), (rows(&stored), stored.len() as u64));
        assert_eq!(sqlite_checkpoint(&connection, "ledger"), last);
    }
    assert_eq!(within("lag", runner.lag()).await.unwrap(), 0);
    let _ = std::fs::remove_dir_all(path.parent().unwrap());
}

/// The checkpoint in the SQLite file at `path` (0 before it exists).
fn checkpoint_of(path: &Path, name: &str) -> u64 {
    let Ok(connection) =
        rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
    else {
        return 0;
    };
    let sql = format!(
        "SELECT position FROM {} WHERE projection = ?1",
        herald_events::projection::CHECKPOINT_TABLE
    );
    connection
        .query_row(&sql, [name], |r| r.get::<_, i64>(0))
        .map_or(0, |p| p as u64)
}

/// A connection to the test PostgreSQL server in a schema of its own, or
/// `None` (with the reason on stderr) when there is none.
async fn postgres(test: &str) -> Option<(tokio_postgres::Client, String)> {
    let Ok(url) = std::env::var(POSTGRES_ENV) else {
        eprintln!(
            "skipped {test}: {POSTGRES_ENV} is not set (start a server with `scripts/postgres.sh start <dir>` \
             and export the URL it prints)"
        );
        return None;
    };
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("{POSTGRES_ENV}={url}: {e}"));
    tokio::spawn(connection);
    let schema = format!(
        "herald_projection_{test}_{}_{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_micros()
    );
    client
        .batch_execute(&format!("CREATE SCHEMA {schema}; SET search_path TO {schema}"))
        .await
        .unwrap();
    Some((client, schema))
}

async fn postgres_ledger(client: &tokio_postgres::Client) -> (Vec<Row>, u64) {
    let rows = client
        .query(
            "SELECT position, subject, id, event_type, data FROM ledger ORDER BY position",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| Row {
            position: r.get::<_, i64>(0) as u64,
            subject: r.get(1),
            id: r.get(2),
            event_type: r.get(3),
            data: r.get(4),
        })
        .collect();
    let applied: i64 = client
        .query_one("SELECT n FROM totals WHERE name = 'applied'", &[])
        .await
        .unwrap()
        .get(0);
    (rows, applied as u64)
}

#[tokio::test]
async fn postgres_projection_matches_the_store_and_rebuilds() {
    let Some((pg, schema)) = postgres("postgres_projection").await else {
        return;
    };
    let server = support::server!();
    let client = herald_client::Client::connect(&server.url()).await.unwrap();
    let store = EventStore::new(&client);
    let stored = append(&store, "invoices", 3, 40, 8).await;
    let last = stored.last().unwrap().position;

    let projection = SqlLedger {
        name: "invoices-pg",
        category: "invoices",
        delay: Duration::ZERO,
    };
    let model = within("setup", PostgresModel::new(pg, projection)).await.unwrap();
    let mut runner = ProjectionRunner::new(&store, model)
        .unwrap()
        .with_config(small_batches());
    caught_up_at(
        within("catch-up", runner.run_until_caught_up()).await.unwrap(),
        last,
    );
    assert_eq!(within("lag", runner.lag()).await.unwrap(), 0);
    let before = postgres_ledger(runner.model().client()).await;
    assert_eq!(before, (rows(&stored), stored.len() as u64));
    assert_eq!(
        within("checkpoint", runner.model_mut().checkpoint())
            .await
            .unwrap(),
        last
    );

    // More events, then a rebuild of a damaged model.
    let stored = append(&store, "invoices", 1, 30, 30).await;
    let last = stored.last().unwrap().position;
    let progress = within("again", runner.run_until_caught_up()).await.unwrap();
    caught_up_at(progress, last);
    assert_eq!(progress.applied, stored.len() as u64);
    runner
        .model()
        .client()
        .batch_execute("DELETE FROM ledger WHERE position % 2 = 0; UPDATE totals SET n = -1")
        .await
        .unwrap();
    let progress = within("rebuild", runner.rebuild()).await.unwrap();
    caught_up_at(progress, last);
    assert_eq!(progress.applied, stored.len() as u64);
    assert_eq!(
        postgres_ledger(runner.model().client()).await,
        (rows(&stored), stored.len() as u64)
    );
    runner
        .model()
        .client()
        .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
        .await
        .unwrap();
}
