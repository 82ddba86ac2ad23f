//! `es-append-pg`: event-sourcing appends into a PostgreSQL event table, the
//! baseline of issue 4 ("appends with expected version from 64 concurrent
//! aggregates, sync always, >= 5x a PostgreSQL event table").
//!
//! The table is the one a Rust user of Postgres-backed event sourcing would
//! have: a global position, and a unique `(aggregate, version)` key that
//! turns "append at the expected version" into an insert that fails when the
//! version is taken. Each aggregate has its own connection (as a server
//! handling that many concurrent requests would have in its pool) and
//! appends one event per transaction with a prepared `INSERT` in autocommit,
//! so every append waits for its commit to be flushed (`synchronous_commit`,
//! reported with the result). Concurrent commits share WAL flushes, which is
//! Postgres's group commit.
//!
//! After the run, every aggregate's rows are counted: versions 1..=n must be
//! there for the n appends its writer saw succeed.
//!
//! ```text
//! scripts/postgres.sh start /tmp/herald-pg
//! herald bench es-append-pg --pg-url postgres://postgres@127.0.0.1:54329/herald
//! scripts/postgres.sh stop /tmp/herald-pg
//! ```

use std::collections::HashMap;
use std::fmt::Write as _;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{anyhow, bail, Context as _};
use bytes::{BufMut as _, BytesMut};
use tokio::task::{JoinHandle, JoinSet};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::{to_sql_checked, IsNull, ToSql, Type};
use tokio_postgres::{Client, Config, NoTls, Statement};

use crate::es::{
    rfc3339_utc, AggregateOutcome, EsAppendArgs, EsAppendOptions, EsAppendReport, RunInfo, Window,
};
use crate::js::unique_token;

/// The URL `scripts/postgres.sh start` prints with its default port.
pub const DEFAULT_PG_URL: &str = "postgres://postgres@127.0.0.1:54329/herald";

/// A writer gives up when one append takes longer than this: a benchmark
/// must end by itself even if the server hangs.
const STALL: Duration = Duration::from_secs(30);

/// The event type every append carries.
const EVENT_TYPE: &str = "OrderLineAdded";

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS events (
    position BIGSERIAL PRIMARY KEY,
    aggregate TEXT NOT NULL,
    version BIGINT NOT NULL,
    event_type TEXT NOT NULL,
    payload BYTEA NOT NULL,
    metadata JSONB NOT NULL,
    recorded_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (aggregate, version)
)";

const INSERT: &str =
    "INSERT INTO events (aggregate, version, event_type, payload, metadata) VALUES ($1, $2, $3, $4, $5)";

/// Options of `herald bench es-append-pg`.
#[derive(Debug, Clone, clap::Args)]
pub struct EsAppendPgArgs {
    /// PostgreSQL to append to; its table `events` is created if absent and emptied.
    #[arg(long, env = "HERALD_BENCH_PG_URL", default_value = DEFAULT_PG_URL)]
    pub pg_url: String,
    /// Print one JSON object instead of a readable line.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub es: EsAppendArgs,
}

/// Runs `es-append-pg` on a runtime of its own (the other workloads use
/// plain threads; tokio-postgres needs tokio).
pub fn run(args: &EsAppendPgArgs) -> anyhow::Result<EsAppendReport> {
    let opts = args.es.options()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    runtime.block_on(run_pg_append(&args.pg_url, &opts))
}

/// Empties the event table at `url` (creating it if needed), runs the load
/// of `opts` against it and checks what was stored.
pub async fn run_pg_append(url: &str, opts: &EsAppendOptions) -> anyhow::Result<EsAppendReport> {
    opts.validate()?;
    let config: Config = url
        .parse()
        .with_context(|| format!("not a PostgreSQL URL: {url}"))?;
    let (admin, _admin_conn) = connect(&config)
        .await
        .with_context(|| format!("connecting to {}", describe_target(&config)))?;
    let info = prepare(&admin, &config).await?;

    let token = unique_token();
    let payload = payload_bytes(opts.payload_size, &token);
    let mut connecting = JoinSet::new();
    for index in 0..opts.aggregates {
        let (config, payload, aggregate) = (config.clone(), payload.clone(), aggregate_id(&token, index));
        connecting.spawn(async move { Writer::connect(&config, aggregate, payload).await });
    }
    let mut writers = Vec::with_capacity(opts.aggregates);
    while let Some(joined) = connecting.join_next().await {
        let writer = joined.map_err(|e| anyhow!("connecting task failed: {e}"))?;
        writers.push(writer.with_context(|| format!("opening {} connections", opts.aggregates))?);
    }

    let window = Window::after_warmup(Instant::now(), opts);
    let mut running = JoinSet::new();
    for writer in writers {
        running.spawn(writer.run(window));
    }
    let mut outcomes = Vec::with_capacity(opts.aggregates);
    while let Some(joined) = running.join_next().await {
        outcomes.push(joined.map_err(|e| anyhow!("writer task failed: {e}"))?);
    }

    let verified = verify(&admin, &outcomes).await;
    let mut report = EsAppendReport::summarize(info, opts, &mut outcomes);
    if let Err(err) = verified {
        report.error.get_or_insert_with(|| format!("{err:#}"));
    }
    Ok(report)
}

/// Creates and empties the table, and reads how durable a commit is.
async fn prepare(admin: &Client, config: &Config) -> anyhow::Result<RunInfo> {
    admin
        .batch_execute(SCHEMA)
        .await
        .map_err(pg_error)
        .context("creating the table events")?;
    admin
        .batch_execute("TRUNCATE events RESTART IDENTITY")
        .await
        .map_err(pg_error)
        .context("emptying the table events")?;
    // Starts every run from the same state: what earlier runs left dirty is
    // written now, not by a checkpoint in the middle of this one. Only a
    // superuser may; without it the run is merely noisier.
    let _ = admin.batch_execute("CHECKPOINT").await;
    let row = admin
        .query_one(
            "SELECT current_setting('server_version'), current_setting('synchronous_commit'), \
             current_setting('fsync'), current_setting('wal_sync_method')",
            &[],
        )
        .await
        .map_err(pg_error)
        .context("reading the server's settings")?;
    let setting = |i: usize| row.try_get::<_, String>(i).map_err(pg_error);
    Ok(RunInfo {
        workload: "es-append-pg",
        target: describe_target(config),
        server_version: format!("PostgreSQL {}", setting(0)?),
        durability: format!(
            "postgres synchronous_commit {}, fsync {} ({})",
            setting(1)?,
            setting(2)?,
            setting(3)?
        ),
    })
}

/// Checks that every aggregate holds exactly versions 1..=n for the n
/// appends its writer saw succeed, and nothing else is in the table.
async fn verify(admin: &Client, outcomes: &[AggregateOutcome]) -> anyhow::Result<()> {
    let rows = admin
        .query(
            "SELECT aggregate, count(*), min(version), max(version) FROM events GROUP BY aggregate",
            &[],
        )
        .await
        .map_err(pg_error)
        .context("reading back the appended events")?;
    let mut stored = HashMap::with_capacity(rows.len());
    for row in &rows {
        let aggregate: String = row.try_get(0).map_err(pg_error)?;
        let counts: (i64, i64, i64) = (
            row.try_get(1).map_err(pg_error)?,
            row.try_get(2).map_err(pg_error)?,
            row.try_get(3).map_err(pg_error)?,
        );
        stored.insert(aggregate, counts);
    }
    for o in outcomes {
        let n = o.appended as i64;
        let found = stored.remove(&o.aggregate).unwrap_or((0, 0, 0));
        let expected = if n == 0 { (0, 0, 0) } else { (n, 1, n) };
        if found != expected {
            bail!(
                "aggregate {} stored (count, min version, max version) {found:?} after {n} successful appends",
                o.aggregate
            );
        }
    }
    if let Some(stray) = stored.keys().next() {
        bail!("the table holds events of aggregate {stray}, which no writer appended to");
    }
    Ok(())
}

/// The writer of one aggregate, with its own connection.
struct Writer {
    client: Client,
    /// The connection's I/O task; its result says why the connection closed.
    connection: JoinHandle<Result<(), tokio_postgres::Error>>,
    insert: Statement,
    aggregate: String,
    payload: Vec<u8>,
}

impl Writer {
    async fn connect(config: &Config, aggregate: String, payload: Vec<u8>) -> anyhow::Result<Self> {
        let (client, connection) = connect(config).await?;
        let insert = client
            .prepare(INSERT)
            .await
            .map_err(pg_error)
            .context("preparing the INSERT")?;
        Ok(Self {
            client,
            connection,
            insert,
            aggregate,
            payload,
        })
    }

    /// Appends events with versions 1, 2, … until the window ends.
    async fn run(self, window: Window) -> AggregateOutcome {
        let Self {
            client,
            connection,
            insert,
            aggregate,
            payload,
        } = self;
        let mut out = AggregateOutcome::new(aggregate.clone());
        let mut metadata = String::with_capacity(256);
        let mut version: i64 = 0;
        while window.running(Instant::now()) {
            version += 1;
            envelope(&mut metadata, &aggregate, version, SystemTime::now());
            let params: [&(dyn ToSql + Sync); 5] = [
                &aggregate,
                &version,
                &EVENT_TYPE,
                &payload.as_slice(),
                &Jsonb(&metadata),
            ];
            let started = Instant::now();
            let result = tokio::time::timeout(STALL, client.execute(&insert, &params)).await;
            let done = Instant::now();
            match result {
                Ok(Ok(1)) => {
                    out.appended += 1;
                    if window.counts(done) {
                        out.samples.push(done - started);
                    }
                }
                Ok(Ok(rows)) => {
                    out.failure = Some(format!("aggregate {aggregate}: the INSERT reported {rows} rows"));
                    break;
                }
                // The expected version is taken: the optimistic-concurrency
                // check firing, which no other writer should ever cause here.
                Ok(Err(err)) if err.code() == Some(&SqlState::UNIQUE_VIOLATION) => out.conflicts += 1,
                Ok(Err(err)) => {
                    let cause = failure_cause(err, connection).await;
                    out.failure = Some(format!("aggregate {aggregate} version {version}: {cause}"));
                    break;
                }
                Err(_) => {
                    let stall = STALL.as_secs();
                    out.failure = Some(format!(
                        "aggregate {aggregate} version {version}: no answer within {stall} s"
                    ));
                    break;
                }
            }
        }
        out
    }
}

/// The cause of a failed append. When `err` only says that the connection
/// closed, the connection's I/O task knows why.
async fn failure_cause(
    err: tokio_postgres::Error,
    connection: JoinHandle<Result<(), tokio_postgres::Error>>,
) -> String {
    if err.is_closed() {
        // The task ends with the connection; a moment is plenty.
        if let Ok(Ok(Err(io))) = tokio::time::timeout(Duration::from_secs(1), connection).await {
            if !io.is_closed() {
                return format!("connection closed: {:#}", pg_error(io));
            }
        }
    }
    format!("{:#}", pg_error(err))
}

/// Opens a connection and runs its I/O on a task of its own.
async fn connect(config: &Config) -> anyhow::Result<(Client, JoinHandle<Result<(), tokio_postgres::Error>>)> {
    let (client, connection) = config.connect(NoTls).await.map_err(pg_error)?;
    Ok((client, tokio::spawn(connection)))
}

/// `postgres://user@host:port/db` of `config`, without the password.
fn describe_target(config: &Config) -> String {
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        #[cfg(unix)]
        Some(tokio_postgres::config::Host::Unix(p)) => p.display().to_string(),
        None => "localhost".to_string(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    format!(
        "postgres://{}@{host}:{port}/{}",
        config.get_user().unwrap_or(""),
        config.get_dbname().unwrap_or("")
    )
}

/// An error with the server's message, which `Display` of
/// `tokio_postgres::Error` leaves out ("db error").
fn pg_error(err: tokio_postgres::Error) -> anyhow::Error {
    match err.as_db_error() {
        Some(db) => anyhow!(
            "{}: {} (SQLSTATE {})",
            db.severity(),
            db.message(),
            db.code().code()
        ),
        None => anyhow::Error::new(err),
    }
}

/// Writes the event's metadata: the envelope an event-sourcing library
/// stores beside the payload.
fn envelope(out: &mut String, aggregate: &str, version: i64, now: SystemTime) {
    out.clear();
    // Infallible: writing to a String.
    let _ = write!(
        out,
        r#"{{"id":"{aggregate}-{version}","type":"{EVENT_TYPE}","time":"{}","correlation_id":"{aggregate}-c{version}","causation_id":null}}"#,
        rfc3339_utc(now)
    );
}

/// A JSON text sent as a `jsonb` parameter in binary form (a version byte,
/// then the text), as clients with JSON support send it, without building a
/// `serde_json::Value` per append.
#[derive(Debug)]
struct Jsonb<'a>(&'a str);

impl ToSql for Jsonb<'_> {
    fn to_sql(
        &self,
        _ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        out.put_u8(1);
        out.put_slice(self.0.as_bytes());
        Ok(IsNull::No)
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::JSONB
    }

    to_sql_checked!();
}

/// A UUID-shaped aggregate id, as event-sourced aggregates usually have,
/// unique to this run and writer.
pub(crate) fn aggregate_id(token: &str, index: usize) -> String {
    let seed = token.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    let mut state = seed ^ (index as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    let (a, b) = (splitmix(&mut state), splitmix(&mut state));
    format!(
        "order-{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        (b >> 48) & 0xfff,
        b & 0xffff_ffff_ffff
    )
}

/// `size` pseudo-random bytes: incompressible, because Postgres compresses
/// large values (TOAST) and a store that does not would be compared unfairly.
pub(crate) fn payload_bytes(size: usize, token: &str) -> Vec<u8> {
    let mut state = token.len() as u64 ^ 0x5eed;
    let mut out = Vec::with_capacity(size + 8);
    while out.len() < size {
        out.extend_from_slice(&splitmix(&mut state).to_le_bytes());
    }
    out.truncate(size);
    out
}

fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_is_json() {
        let mut out = String::new();
        envelope(&mut out, "order-x", 7, std::time::UNIX_EPOCH);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["id"], "order-x-7");
        assert_eq!(v["type"], EVENT_TYPE);
        assert_eq!(v["time"], "1970-01-01T00:00:00Z");
        assert_eq!(v["correlation_id"], "order-x-c7");
    }

    #[test]
    fn ids_and_payloads() {
        let a = aggregate_id("tok", 0);
        assert_eq!(a.len(), "order-".len() + 36, "{a}");
        assert_ne!(a, aggregate_id("tok", 1));
        assert_ne!(a, aggregate_id("tok2", 0));
        assert_eq!(a, aggregate_id("tok", 0));
        assert_eq!(payload_bytes(0, "t").len(), 0);
        assert_eq!(payload_bytes(13, "t").len(), 13);
    }

    #[test]
    fn target_without_password() {
        let config: Config = "postgres://u:secret@127.0.0.1:54329/herald".parse().unwrap();
        assert_eq!(describe_target(&config), "postgres://u@127.0.0.1:54329/herald");
    }
}
