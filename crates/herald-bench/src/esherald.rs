//! Herald's half of the event-sourcing benchmarks (issue 4), through the
//! `herald-events` SDK as an application would use it:
//!
//! * `es-append`: the load of [`crate::espg`] (one writer and connection per
//!   aggregate, each appending one event at a time with the next expected
//!   version) into a category stream with `sync: always`, so that both
//!   stores acknowledge an append only once it is on disk.
//! * `es-load`: the time to load one aggregate of `--events` events with
//!   the SDK's repository (read, decode, apply), repeated `--loads` times.

use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _};
use bytes::Bytes;
use herald_client::Client;
use herald_events::{
    Aggregate, AggregateId, DomainEvent, EventStore, ExpectedVersion, NewEvent, Repository, StoreConfig,
};
use serde::{Deserialize, Serialize};
use tokio::task::JoinSet;

use crate::es::{AggregateOutcome, EsAppendArgs, EsAppendOptions, EsAppendReport, RunInfo, Window};
use crate::espg::{aggregate_id, payload_bytes};
use crate::js::unique_token;
use crate::stats::Latency;
use crate::Report;

/// An append that takes longer than this stops the run.
const STALL: Duration = Duration::from_secs(30);
/// Event type of the appended events (as in the PostgreSQL half).
const EVENT_TYPE: &str = "OrderLineAdded";
/// Category of the benchmark's aggregates.
const CATEGORY: &str = "orders";

/// `herald bench es-append`.
#[derive(Debug, Clone, clap::Args)]
pub struct EsAppendHeraldArgs {
    #[command(flatten)]
    pub common: crate::CommonArgs,
    /// Client connections the writers share, round robin (1: one client for
    /// the whole process, as an application uses Herald; --aggregates: one
    /// each, as PostgreSQL needs one connection per concurrent transaction).
    #[arg(long, default_value_t = 1)]
    pub conns: usize,
    #[command(flatten)]
    pub es: EsAppendArgs,
}

/// Runs `es-append`.
pub fn run_append(args: &EsAppendHeraldArgs) -> anyhow::Result<EsAppendReport> {
    let opts = args.es.options()?;
    if args.conns == 0 {
        bail!("--conns must be at least 1");
    }
    runtime()?.block_on(append(&args.common.server, &opts, args.conns))
}

/// `host:port` or a URL, as a `nats://` URL.
fn nats_url(server: &str) -> String {
    if server.contains("://") {
        server.to_string()
    } else {
        format!("nats://{server}")
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")
}

/// A connection and a store whose streams are new for this run.
async fn connect_store(server: &str) -> anyhow::Result<(Client, EventStore)> {
    let url = nats_url(server);
    let client = Client::connect(&url)
        .await
        .with_context(|| format!("connecting to {url}"))?;
    let store = EventStore::with_config(&client, store_config(&unique_token()));
    Ok((client, store))
}

/// A store whose streams are new for this run (a unique prefix).
fn store_config(token: &str) -> StoreConfig {
    StoreConfig {
        stream_prefix: format!("BENCH_{token}_"),
        source: "herald-bench".into(),
        sync_always: true,
        ..StoreConfig::default()
    }
}

async fn append(server: &str, opts: &EsAppendOptions, conns: usize) -> anyhow::Result<EsAppendReport> {
    opts.validate()?;
    let url = nats_url(server);
    let token = unique_token();
    let admin = Client::connect(&url)
        .await
        .with_context(|| format!("connecting to {url}"))?;
    let admin_store = EventStore::with_config(&admin, store_config(&token));
    admin_store.ensure_category(CATEGORY).await?;
    let stream = admin_store.stream_name(CATEGORY);
    let payload = Bytes::from(payload_bytes(opts.payload_size, &token));

    let mut clients = Vec::with_capacity(conns);
    for index in 0..conns.min(opts.aggregates) {
        clients.push(
            Client::connect(&url)
                .await
                .with_context(|| format!("connection {index}"))?,
        );
    }
    let mut writers = Vec::with_capacity(opts.aggregates);
    for index in 0..opts.aggregates {
        let client = clients[index % clients.len()].clone();
        let store = EventStore::with_config(&client, store_config(&token));
        let aggregate = AggregateId::new(CATEGORY, aggregate_id(&token, index))?;
        writers.push((client, store, aggregate));
    }
    let window = Window::after_warmup(Instant::now(), opts);
    let mut running = JoinSet::new();
    for (client, store, aggregate) in writers {
        let payload = payload.clone();
        running.spawn(async move {
            let outcome = write(&store, &aggregate, payload, window).await;
            drop(client);
            outcome
        });
    }
    let mut outcomes = Vec::with_capacity(opts.aggregates);
    while let Some(joined) = running.join_next().await {
        outcomes.push(joined.map_err(|e| anyhow!("writer task failed: {e}"))?);
    }
    let info = RunInfo {
        workload: "es-append",
        target: url.clone(),
        server_version: "NATS protocol server (herald-events SDK)".into(),
        durability: format!(
            "stream {stream} with metadata herald.sync=always, {} client connection(s)",
            clients.len()
        ),
    };
    let verified = verify(&admin, &stream, &outcomes).await;
    let mut report = EsAppendReport::summarize(info, opts, &mut outcomes);
    if let Err(err) = verified {
        report.error.get_or_insert_with(|| format!("{err:#}"));
    }
    let _ = admin.jetstream().delete_stream(&stream).await;
    Ok(report)
}

/// Appends to one aggregate with the expected version until the window ends.
async fn write(
    store: &EventStore,
    aggregate: &AggregateId,
    payload: Bytes,
    window: Window,
) -> AggregateOutcome {
    let mut out = AggregateOutcome::new(aggregate.to_string());
    let mut version = 0;
    let event = NewEvent {
        content_type: "application/octet-stream".into(),
        ..NewEvent::json(EVENT_TYPE, payload)
    };
    let events = std::slice::from_ref(&event);
    while window.running(Instant::now()) {
        let started = Instant::now();
        let result = tokio::time::timeout(
            STALL,
            store.append(aggregate, ExpectedVersion::at(version), events),
        )
        .await;
        let done = Instant::now();
        match result {
            Ok(Ok(appended)) => {
                version = appended.version;
                out.appended += 1;
                if window.counts(done) {
                    out.samples.push(done - started);
                }
            }
            Ok(Err(e)) if e.is_conflict() => {
                out.conflicts += 1;
                out.failure = Some(format!("{aggregate}: unexpected conflict at version {version}"));
                break;
            }
            Ok(Err(e)) => {
                out.failure = Some(format!("{aggregate} after version {version}: {e}"));
                break;
            }
            Err(_) => {
                out.failure = Some(format!("{aggregate}: no answer within {} s", STALL.as_secs()));
                break;
            }
        }
    }
    out
}

/// Checks that the stream holds exactly the appends the writers saw succeed.
async fn verify(admin: &Client, stream: &str, outcomes: &[AggregateOutcome]) -> anyhow::Result<()> {
    let info = admin.jetstream().stream_info(stream).await?;
    let appended: u64 = outcomes.iter().map(|o| o.appended).sum();
    if info.state.messages != appended {
        bail!(
            "stream {stream} holds {} events after {appended} successful appends",
            info.state.messages
        );
    }
    Ok(())
}

/// `herald bench es-load`.
#[derive(Debug, Clone, clap::Args)]
pub struct EsLoadArgs {
    #[command(flatten)]
    pub common: crate::CommonArgs,
    /// Events in the aggregate.
    #[arg(long, default_value_t = 1000)]
    pub events: usize,
    /// Times the aggregate is loaded (after one unmeasured load).
    #[arg(long, default_value_t = 50)]
    pub loads: usize,
}

/// Result of `es-load`.
#[derive(Debug, Serialize)]
pub struct EsLoadReport {
    pub workload: &'static str,
    pub events: usize,
    pub loads: usize,
    /// Time of one load: read all events, decode, apply.
    #[serde(flatten)]
    pub latency: Option<Latency>,
    pub error: Option<String>,
}

impl Report for EsLoadReport {
    fn line(&self) -> String {
        match &self.latency {
            Some(l) => format!(
                "es-load: aggregate of {} events loaded {} times: p50 {:.2} ms, p99 {:.2} ms, mean {:.2} ms",
                self.events,
                self.loads,
                l.p50_us / 1000.0,
                l.p99_us / 1000.0,
                l.mean_us / 1000.0
            ),
            None => format!(
                "es-load: no load measured: {}",
                self.error.as_deref().unwrap_or("?")
            ),
        }
    }

    fn error(&self) -> Option<&str> {
        self.error.as_deref()
    }
}

/// A counter aggregate: what `es-load` folds.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Tally {
    lines: u64,
    total_cents: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
enum TallyEvent {
    LineAdded { sku: String, cents: u64 },
}

impl DomainEvent for TallyEvent {}

#[derive(Debug, Serialize, Deserialize, thiserror::Error)]
#[error("never")]
struct Never;

impl Aggregate for Tally {
    const CATEGORY: &'static str = "tallies";
    type Command = ();
    type Event = TallyEvent;
    type Error = Never;

    fn handle(&self, _: &()) -> Result<Vec<TallyEvent>, Never> {
        Ok(Vec::new())
    }

    fn apply(&mut self, event: &TallyEvent) {
        let TallyEvent::LineAdded { cents, .. } = event;
        self.lines += 1;
        self.total_cents += cents;
    }
}

/// Runs `es-load`.
pub fn run_load(args: &EsLoadArgs) -> anyhow::Result<EsLoadReport> {
    if args.events == 0 || args.loads == 0 {
        bail!("--events and --loads must be at least 1");
    }
    // One thread, as a request handler loading an aggregate runs: the
    // connection's reader and the loader share it, so no event crosses
    // threads between being read from the socket and being applied.
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?
        .block_on(load(args))
}

async fn load(args: &EsLoadArgs) -> anyhow::Result<EsLoadReport> {
    let (client, store) = connect_store(&args.common.server).await?;
    let repository = Repository::<Tally>::new(store.clone());
    let id = repository.aggregate_id("t-1")?;
    let mut version = 0;
    let mut left = args.events;
    while left > 0 {
        let n = left.min(100);
        let events: Vec<TallyEvent> = (0..n)
            .map(|i| TallyEvent::LineAdded {
                sku: format!("sku-{i:05}"),
                cents: 1,
            })
            .collect();
        version = store
            .append_events(&id, ExpectedVersion::at(version), &events, &Default::default())
            .await?
            .version;
        left -= n;
    }
    let mut samples = Vec::with_capacity(args.loads);
    let mut error = None;
    for round in 0..=args.loads {
        let started = Instant::now();
        let loaded = repository.load("t-1").await?;
        let took = started.elapsed();
        if loaded.state.lines != args.events as u64 {
            error = Some(format!(
                "loaded {} events, expected {}",
                loaded.state.lines, args.events
            ));
            break;
        }
        if round > 0 {
            samples.push(took);
        }
    }
    if std::env::var_os("HERALD_BENCH_KEEP").is_none() {
        let _ = client
            .jetstream()
            .delete_stream(&store.stream_name(Tally::CATEGORY))
            .await;
    }
    Ok(EsLoadReport {
        workload: "es-load",
        events: args.events,
        loads: samples.len(),
        latency: Latency::from_samples(&mut samples),
        error,
    })
}

/// `herald bench es-project`.
#[derive(Debug, Clone, clap::Args)]
pub struct EsProjectArgs {
    #[command(flatten)]
    pub common: crate::CommonArgs,
    /// Events appended first (in atomic batches of 1000, 1000 per aggregate).
    #[arg(long, default_value_t = 200_000)]
    pub events: usize,
    /// Events the runner pulls at once.
    #[arg(long, default_value_t = 1000)]
    pub batch: usize,
}

/// Result of `es-project`.
#[derive(Debug, Serialize)]
pub struct EsProjectReport {
    pub workload: &'static str,
    pub events: u64,
    pub elapsed_secs: f64,
    pub events_per_sec: f64,
    pub error: Option<String>,
}

impl Report for EsProjectReport {
    fn line(&self) -> String {
        format!(
            "es-project: {} events projected into memory (decoded, applied, checkpointed) in {:.3} s = {}/s",
            self.events,
            self.elapsed_secs,
            crate::stats::human(self.events_per_sec)
        )
    }

    fn error(&self) -> Option<&str> {
        self.error.as_deref()
    }
}

/// Totals per aggregate: the read model `es-project` builds.
struct Totals;

#[derive(Default)]
struct TotalsModel {
    per_aggregate: std::collections::HashMap<String, (u64, u64)>,
    events: u64,
}

impl herald_events::Projection for Totals {
    fn name(&self) -> &str {
        "bench-totals"
    }
    fn category(&self) -> &str {
        Tally::CATEGORY
    }
}

/// The data of a `LineAdded` event.
#[derive(Deserialize)]
struct LineAdded {
    cents: u64,
}

impl herald_events::projection::MemoryProjection for Totals {
    type Model = TotalsModel;

    fn apply(
        &self,
        model: &mut TotalsModel,
        event: &herald_events::RecordedEvent,
    ) -> Result<(), herald_events::projection::BoxError> {
        let line: LineAdded = serde_json::from_slice(&event.data)?;
        let id = event.aggregate.id();
        let entry = match model.per_aggregate.get_mut(id) {
            Some(entry) => entry,
            None => model.per_aggregate.entry(id.to_string()).or_default(),
        };
        entry.0 += 1;
        entry.1 += line.cents;
        model.events += 1;
        Ok(())
    }
}

/// Runs `es-project`.
pub fn run_project(args: &EsProjectArgs) -> anyhow::Result<EsProjectReport> {
    if args.events == 0 || args.batch == 0 {
        bail!("--events and --batch must be at least 1");
    }
    runtime()?.block_on(project(args))
}

async fn project(args: &EsProjectArgs) -> anyhow::Result<EsProjectReport> {
    use herald_events::projection::{MemoryModel, RunnerConfig};
    let (client, store) = connect_store(&args.common.server).await?;
    let mut appends = JoinSet::new();
    for (index, start) in (0..args.events).step_by(1000).enumerate() {
        let n = (args.events - start).min(1000);
        let store = store.clone();
        appends.spawn(async move {
            let id = AggregateId::new(Tally::CATEGORY, format!("t-{index}"))?;
            let events: Vec<TallyEvent> = (0..n)
                .map(|i| TallyEvent::LineAdded {
                    sku: format!("sku-{i:05}"),
                    cents: 1,
                })
                .collect();
            store
                .append_events(&id, ExpectedVersion::NoEvents, &events, &Default::default())
                .await
        });
        while appends.len() >= 8 {
            appends.join_next().await.expect("tasks")??;
        }
    }
    while let Some(done) = appends.join_next().await {
        done??;
    }
    let model = MemoryModel::new(Totals);
    let config = RunnerConfig {
        batch_max: args.batch,
        ..RunnerConfig::default()
    };
    let mut runner = herald_events::ProjectionRunner::new(&store, model.clone())?.with_config(config);
    let started = Instant::now();
    runner.run_until_caught_up().await?;
    let elapsed = started.elapsed();
    let events = model.read(|m| m.events);
    let cents: u64 = model.read(|m| m.per_aggregate.values().map(|(_, c)| c).sum());
    let error = (events != args.events as u64 || cents != events).then(|| {
        format!(
            "projected {events} events ({cents} cents), expected {}",
            args.events
        )
    });
    let _ = runner.delete_consumer().await;
    let _ = client
        .jetstream()
        .delete_stream(&store.stream_name(Tally::CATEGORY))
        .await;
    Ok(EsProjectReport {
        workload: "es-project",
        events,
        elapsed_secs: elapsed.as_secs_f64(),
        events_per_sec: crate::stats::rate(events as f64, elapsed),
        error,
    })
}
