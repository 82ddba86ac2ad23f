//! `herald bench`: a workload generator for any server speaking the NATS
//! client protocol, to compare Herald with nats-server side by side.
//!
//! The generator is deliberately cheap, because on a small machine it
//! competes with the server for the same cores: raw protocol over blocking
//! `std::net::TcpStream`s, one OS thread per connection, pre-built write
//! buffers, 256 KiB reads and a scanner that only parses control lines and
//! jumps over payloads.
//!
//! Workloads:
//!
//! * `pubsub` — publishers send `--msgs` messages of `--size` bytes to
//!   `--subs` subscribers (or one `--queue` group of that many members) and
//!   the throughput delivered is measured, from the first publish to the last
//!   message received. A window (`--window`) keeps the server from ever
//!   buffering without bound. Every payload of 8 bytes or more carries its
//!   sequence number, so losses and duplicates are detected.
//! * `reqrep` — one responder, one requester, sequential requests; the
//!   round-trip time is reported as percentiles.
//! * `js-pub` — JetStream publishing: recreates a stream (`--stream`, capturing
//!   `bench.js.>`, `--storage file|memory`), then `--conns` connections publish
//!   `--msgs` messages with a reply subject each, keeping `--in-flight` of them
//!   unacknowledged per connection; reports PubAcks per second and the ack
//!   latency. An error reply fails the run.
//! * `js-replay` — fills a stream the same way (or not, with `--no-fill`),
//!   then drains it through a durable pull consumer (`--ack none|explicit`)
//!   with `--pulls` outstanding `MSG.NEXT` requests of `--batch` messages.
//! * `memory` — holds `--conns` idle connections open and reports the growth
//!   of the server's resident memory (`--pid`) per connection.
//! * `es-append-pg` — not a NATS workload: event-sourcing appends with an
//!   expected version from `--aggregates` concurrent writers into a
//!   PostgreSQL event table (`--pg-url`), the baseline Herald's event appends
//!   are compared with; `scripts/postgres.sh` starts a throwaway server.
//! * `es-append` — the same load through the `herald-events` SDK into a
//!   category stream with `sync: always`.
//! * `es-load` — the time to load one aggregate of `--events` events
//!   (read, decode, apply) through the SDK's repository.
//! * `es-project` — a projection catching up with `--events` stored events
//!   into an in-memory read model (decode, apply, checkpoint).
//! * `http-ingest` — not NATS: events posted to Herald's HTTP API
//!   (`POST /v1/events/{subject}`) over `--conns` keep-alive connections,
//!   as fast as answered or at a fixed `--rate` (latency then measured from
//!   each request's scheduled time); `--capture` stores every event.
//! * `webhook` — webhook delivery throughput: a receiver on loopback, a
//!   webhook to it, `--events` published over NATS, timed until every event
//!   arrived.
//! * `machine-stalls` — no server: counts plain CPU work per 5 ms window on
//!   every core and reports how often the machine itself ran at under half
//!   speed. Open-loop latency runs inherit those slow windows, so tail
//!   latencies are read beside this figure.
//!
//! Each prints one human-readable line, or one JSON object with `--json`.
//!
//! ```text
//! nats-server -a 127.0.0.1 -p 4222 -js -sd /tmp/nats-js &
//! herald bench pubsub --server nats://127.0.0.1:4222 --subs 4 --size 128 --msgs 1000000
//! herald bench pubsub --server 127.0.0.1:4222 --subs 3 --queue workers --json
//! herald bench reqrep --server 127.0.0.1:4222 --count 20000
//! herald bench js-pub --server 127.0.0.1:4222 --msgs 500000 --in-flight 256 --storage file
//! herald bench js-replay --server 127.0.0.1:4222 --msgs 1000000 --ack explicit --batch 1000
//! herald bench memory --server 127.0.0.1:4222 --conns 1000 --pid "$(pidof nats-server)"
//! herald bench es-append-pg --pg-url "$(scripts/postgres.sh start /tmp/herald-pg)" --aggregates 64
//! ```
//!
//! Without the `herald` binary, the same options work through the example:
//! `cargo run -p herald-bench --release --example bench -- pubsub --server 127.0.0.1:4222`.

pub mod conn;
pub mod es;
pub mod esherald;
pub mod espg;
pub mod httpingest;
pub mod js;
pub mod jspub;
pub mod jsreplay;
pub mod memory;
pub mod pubsub;
pub mod reqrep;
pub mod scan;
pub mod stalls;
pub mod stats;
pub mod webhook;
mod workers;

use std::io::Write as _;

use serde::Serialize;

/// Options of `herald bench`.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub workload: Workload,
}

/// The workloads `herald bench` can run.
#[derive(Debug, clap::Subcommand)]
pub enum Workload {
    /// Publish-subscribe throughput: fan-out to N subscribers or one queue group.
    Pubsub(pubsub::PubsubArgs),
    /// Request-reply round-trip latency.
    Reqrep(reqrep::ReqrepArgs),
    /// JetStream publish throughput and PubAck latency.
    JsPub(jspub::JsPubArgs),
    /// JetStream pull-consumer replay throughput.
    JsReplay(jsreplay::JsReplayArgs),
    /// Server memory per idle connection (Linux: reads /proc/PID/status).
    Memory(memory::MemoryArgs),
    /// Event-sourcing appends with expected version into a PostgreSQL event table.
    EsAppendPg(espg::EsAppendPgArgs),
    /// Event-sourcing appends with expected version through the herald-events SDK.
    EsAppend(esherald::EsAppendHeraldArgs),
    /// Time to load one aggregate of --events events through the herald-events SDK.
    EsLoad(esherald::EsLoadArgs),
    /// Projection catch-up into an in-memory read model through the herald-events SDK.
    EsProject(esherald::EsProjectArgs),
    /// Events published over HTTP (POST /v1/events): throughput, or latency at a fixed rate.
    HttpIngest(httpingest::HttpIngestArgs),
    /// Webhook delivery throughput to a local receiver started by the benchmark.
    Webhook(webhook::WebhookArgs),
    /// How steadily this machine runs plain CPU work (no server): slow periods every latency run inherits.
    MachineStalls(stalls::StallsArgs),
}

/// Options every workload takes.
#[derive(Debug, Clone, clap::Args)]
pub struct CommonArgs {
    /// Server to measure: nats://host:port or host:port.
    #[arg(long, default_value = "nats://127.0.0.1:4333")]
    pub server: String,
    /// Print one JSON object per result instead of a readable line.
    #[arg(long)]
    pub json: bool,
}

/// A workload result: printable as one line or as one JSON object.
pub trait Report: Serialize {
    /// The readable one-line form.
    fn line(&self) -> String;
    /// Why the run failed, if it did (printed, then returned as the error).
    fn error(&self) -> Option<&str>;
}

/// Runs the benchmark described by `args`.
pub fn run(args: BenchArgs) -> anyhow::Result<()> {
    match args.workload {
        Workload::Pubsub(args) => emit(args.common.json, &pubsub::run(&args)?),
        Workload::Reqrep(args) => emit(args.common.json, &reqrep::run(&args)?),
        Workload::JsPub(args) => emit(args.common.json, &jspub::run(&args)?),
        Workload::JsReplay(args) => emit(args.common.json, &jsreplay::run(&args)?),
        Workload::Memory(args) => emit(args.common.json, &memory::run(&args)?),
        Workload::EsAppendPg(args) => emit(args.json, &espg::run(&args)?),
        Workload::EsAppend(args) => emit(args.common.json, &esherald::run_append(&args)?),
        Workload::EsLoad(args) => emit(args.common.json, &esherald::run_load(&args)?),
        Workload::EsProject(args) => emit(args.common.json, &esherald::run_project(&args)?),
        Workload::HttpIngest(args) => emit(args.common.json, &httpingest::run(&args)?),
        Workload::Webhook(args) => emit(args.common.json, &webhook::run(&args)?),
        Workload::MachineStalls(args) => emit(args.json, &stalls::run(&args)?),
    }
}

/// Prints `report` (as JSON if `json`) and turns its error, if any, into the result.
fn emit<R: Report>(json: bool, report: &R) -> anyhow::Result<()> {
    let line = if json {
        serde_json::to_string(report)?
    } else {
        report.line()
    };
    // A reader that went away (`| head`, a killed script) is not worth a panic.
    match writeln!(std::io::stdout(), "{line}") {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => return Err(e.into()),
        _ => {}
    }
    match report.error() {
        Some(err) => anyhow::bail!("{err}"),
        None => Ok(()),
    }
}
