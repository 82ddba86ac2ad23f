//! `js-replay`: how fast a pull consumer drains a stream.
//!
//! Fills the stream with the `js-pub` machinery (unless `--no-fill`), creates
//! a durable pull consumer delivering everything, and drains it with
//! `$JS.API.CONSUMER.MSG.NEXT` requests of `--batch` messages, keeping
//! `--pulls` batches requested at all times ([`PullWindow`]). Every request
//! has its own reply subject under one wildcard inbox; data messages arrive
//! there with their original subject and a `$JS.ACK.…` reply subject, which
//! is acknowledged with `+ACK` under `--ack explicit`. Status messages
//! (`NATS/1.0 408/404/409/100`, empty body) are counted, not delivered.
//! The clock runs from the first request to the last data message.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use serde::Serialize;

use crate::conn::{server_addr, Conn};
use crate::js::{consumer_config, parse_ack_reply, parse_status, unique_token, AckPolicy, Api, StreamArgs};
use crate::jspub::{self, JsPubReport, LoadArgs};
use crate::stats::{human, rate};
use crate::{CommonArgs, Report};

/// How often a blocked read looks at the clock.
const POLL: Duration = Duration::from_millis(50);

/// Options of `herald bench js-replay`.
#[derive(Debug, Clone, clap::Args)]
pub struct JsReplayArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(flatten)]
    pub stream: StreamArgs,
    /// How the stream is filled first (`--msgs` also without --no-fill: none are read then).
    #[command(flatten)]
    pub load: LoadArgs,
    /// Replay the stream as it is instead of recreating and filling it.
    #[arg(long)]
    pub no_fill: bool,
    /// Name of the durable pull consumer (deleted first, and again at the end).
    #[arg(long, default_value = "bench-replay")]
    pub consumer: String,
    /// Acknowledgement policy of the consumer; explicit acks every message with +ACK.
    #[arg(long, value_enum, default_value_t = AckPolicy::Explicit)]
    pub ack: AckPolicy,
    /// Messages asked for by each pull request.
    #[arg(long, default_value_t = 1000)]
    pub batch: u64,
    /// Pull requests (batches) kept outstanding.
    #[arg(long, default_value_t = 2)]
    pub pulls: u64,
    /// Seconds a pull request waits on the server before it expires.
    #[arg(long, default_value_t = 5.0)]
    pub expires: f64,
    /// The consumer's max_ack_pending (with --ack explicit).
    #[arg(long, default_value_t = 20_000)]
    pub max_ack_pending: i64,
}

/// Result of one `js-replay` run.
#[derive(Debug, Serialize)]
pub struct JsReplayReport {
    pub workload: &'static str,
    pub server: String,
    pub stream: String,
    pub storage: crate::js::Storage,
    pub sync: crate::js::SyncMode,
    pub consumer: String,
    pub ack: AckPolicy,
    pub batch: u64,
    pub pulls: u64,
    /// Messages in the stream when the replay started.
    pub expected: u64,
    /// Data messages received.
    pub delivered: u64,
    /// Acks published (explicit acks only).
    pub acks_sent: u64,
    /// Deliveries whose `$JS.ACK` subject said they were not the first.
    pub redelivered: u64,
    /// Stream sequences received more than once.
    pub duplicates: u64,
    /// Messages of the stream never received.
    pub missing: u64,
    /// Pull requests sent.
    pub requests: u64,
    /// Status messages received, by code (408 expired request, 100 heartbeat, ...).
    pub statuses: BTreeMap<u16, u64>,
    pub elapsed_secs: f64,
    /// Data messages per second, from the first pull request to the last message.
    pub msgs_per_sec: f64,
    /// Payload megabytes (10^6 bytes) delivered per second.
    pub mb_per_sec: f64,
    /// The run that filled the stream (none with --no-fill).
    pub fill: Option<JsPubReport>,
    pub error: Option<String>,
}

impl Report for JsReplayReport {
    fn line(&self) -> String {
        let mut line = format!(
            "js-replay ack {}, batch {} x {}: delivered {} of {} in {:.3} s = {} msgs/s, {:.1} MB/s",
            self.ack.as_str(),
            self.batch,
            self.pulls,
            self.delivered,
            self.expected,
            self.elapsed_secs,
            human(self.msgs_per_sec),
            self.mb_per_sec
        );
        if let Some(fill) = &self.fill {
            line += &format!(" (filled at {} msgs/s)", human(fill.msgs_per_sec));
        }
        if let Some(err) = &self.error {
            line += &format!(" ERROR: {err}");
        }
        line
    }

    fn error(&self) -> Option<&str> {
        self.error.as_deref()
    }
}

/// Credit-based flow control of pull requests: messages requested and not
/// yet delivered are `credit`; a new request of up to `batch` goes out
/// whenever less than `pulls - 1` batches of credit are left, and never for
/// more than the messages still wanted.
#[derive(Debug, Clone)]
pub struct PullWindow {
    batch: u64,
    pulls: u64,
    wanted: u64,
    delivered: u64,
    credit: u64,
    requests: u64,
}

impl PullWindow {
    /// Wants `wanted` messages, `batch` per request, `pulls` requests outstanding.
    pub fn new(batch: u64, pulls: u64, wanted: u64) -> Self {
        Self {
            batch: batch.max(1),
            pulls: pulls.max(1),
            wanted,
            delivered: 0,
            credit: 0,
            requests: 0,
        }
    }

    /// The size of the next request to send now, if one is due (counted as sent).
    pub fn next_request(&mut self) -> Option<u64> {
        if self.credit > self.batch * (self.pulls - 1) {
            return None;
        }
        let unrequested = self.wanted.saturating_sub(self.delivered + self.credit);
        let n = self.batch.min(unrequested);
        if n == 0 {
            return None;
        }
        self.credit += n;
        self.requests += 1;
        Some(n)
    }

    /// One data message arrived.
    pub fn on_message(&mut self) {
        self.delivered += 1;
        self.credit = self.credit.saturating_sub(1);
    }

    /// A request ended early (408 expired, 409, 404) with `pending` of its
    /// messages undelivered; unknown counts as a whole batch.
    pub fn on_request_end(&mut self, pending: Option<u64>) {
        self.credit -= pending.unwrap_or(self.batch).min(self.credit);
    }

    /// Forgets all credit: every request outstanding is known to be over.
    pub fn reset(&mut self) {
        self.credit = 0;
    }

    /// Every wanted message arrived.
    pub fn done(&self) -> bool {
        self.delivered >= self.wanted
    }

    pub fn delivered(&self) -> u64 {
        self.delivered
    }

    /// Messages requested and neither delivered nor known to be lost.
    pub fn credit(&self) -> u64 {
        self.credit
    }

    /// Requests sent.
    pub fn requests(&self) -> u64 {
        self.requests
    }
}

/// Whether a 409 status ends the whole replay rather than one request.
fn fatal_409(description: &str) -> bool {
    let d = description.to_ascii_lowercase();
    d.contains("deleted") || d.contains("push") || d.contains("exceeded maxrequest")
}

/// Runs the workload.
pub fn run(args: &JsReplayArgs) -> anyhow::Result<JsReplayReport> {
    if args.batch == 0 || args.pulls == 0 || args.expires <= 0.0 {
        bail!("--batch, --pulls and --expires must be above 0");
    }
    let addr = server_addr(&args.common.server)?;
    let token = unique_token();
    let mut conn = Conn::connect(&addr)?;
    let mut api = Api::subscribe(&mut conn, &format!("_INBOX.{token}.api"), 1, &args.common.server)?;
    let mut report = JsReplayReport {
        workload: "js-replay",
        server: args.common.server.clone(),
        stream: args.stream.stream.clone(),
        storage: args.stream.storage,
        sync: args.stream.sync,
        consumer: args.consumer.clone(),
        ack: args.ack,
        batch: args.batch,
        pulls: args.pulls,
        expected: 0,
        delivered: 0,
        acks_sent: 0,
        redelivered: 0,
        duplicates: 0,
        missing: 0,
        requests: 0,
        statuses: BTreeMap::new(),
        elapsed_secs: 0.0,
        msgs_per_sec: 0.0,
        mb_per_sec: 0.0,
        fill: None,
        error: None,
    };
    if !args.no_fill {
        api.recreate_stream(&mut conn, &args.stream)?;
        let fill = jspub::publish(&addr, &token, &args.common, &args.stream, &args.load)?;
        report.error = fill.error.as_ref().map(|e| format!("filling the stream: {e}"));
        report.fill = Some(fill);
        if report.error.is_some() {
            return Ok(report);
        }
    }
    let (stream, consumer) = (&args.stream.stream, &args.consumer);
    let state = api.stream_state(&mut conn, stream)?;
    if state.messages == 0 {
        bail!("stream {stream} holds no messages to replay");
    }
    report.expected = state.messages;
    api.delete_consumer(&mut conn, stream, consumer)?;
    let config = consumer_config(stream, consumer, args.ack, args.max_ack_pending);
    api.call(
        &mut conn,
        &format!("$JS.API.CONSUMER.CREATE.{stream}.{consumer}"),
        &config,
    )
    .with_context(|| format!("creating consumer {consumer}"))?;
    let inbox = format!("_INBOX.{token}.pull.");
    conn.write_all(format!("SUB {inbox}* 2\r\n").as_bytes())?;
    conn.flush_roundtrip().context("subscribing the pull inbox")?;

    let drained = drain(&mut conn, args, &inbox, state.first_seq, state.messages);
    report.delivered = drained.window.delivered();
    report.requests = drained.window.requests();
    report.acks_sent = drained.acks_sent;
    report.redelivered = drained.redelivered;
    report.duplicates = drained.duplicates;
    report.missing = state.messages.saturating_sub(drained.unique);
    report.statuses = drained.statuses;
    report.elapsed_secs = drained.elapsed.as_secs_f64();
    report.msgs_per_sec = rate(report.delivered as f64, drained.elapsed);
    report.mb_per_sec = rate(drained.bytes as f64, drained.elapsed) / 1e6;
    report.error = drained.failure;
    if report.error.is_none() {
        if let Err(e) = api.delete_consumer(&mut conn, stream, consumer) {
            report.error = Some(format!("after the replay: {e:#}"));
        }
    }
    Ok(report)
}

struct Drained {
    window: PullWindow,
    bytes: u64,
    acks_sent: u64,
    redelivered: u64,
    duplicates: u64,
    /// Distinct stream sequences received.
    unique: u64,
    statuses: BTreeMap<u16, u64>,
    elapsed: Duration,
    failure: Option<String>,
}

/// Pulls until `wanted` messages (stream sequences from `first_seq`) arrived.
fn drain(conn: &mut Conn, args: &JsReplayArgs, inbox: &str, first_seq: u64, wanted: u64) -> Drained {
    let mut d = Drained {
        window: PullWindow::new(args.batch, args.pulls, wanted),
        bytes: 0,
        acks_sent: 0,
        redelivered: 0,
        duplicates: 0,
        unique: 0,
        statuses: BTreeMap::new(),
        elapsed: Duration::ZERO,
        failure: None,
    };
    if let Err(e) = conn.set_read_timeout(Some(POLL)) {
        d.failure = Some(e.to_string());
        return d;
    }
    let next = format!(
        "$JS.API.CONSUMER.MSG.NEXT.{}.{}",
        args.stream.stream, args.consumer
    );
    let expires = Duration::from_secs_f64(args.expires);
    let timeout = Duration::from_secs_f64(args.load.timeout);
    let explicit = args.ack == AckPolicy::Explicit;
    // Bit n: stream sequence first_seq + n arrived.
    let mut seen = vec![0u64; wanted.div_ceil(64) as usize];
    let mut out = Vec::with_capacity(256 * 1024);
    let mut request_id = 0u64;
    let mut request = |out: &mut Vec<u8>, window: &mut PullWindow| {
        while let Some(n) = window.next_request() {
            request_id += 1;
            let body = format!("{{\"batch\":{n},\"expires\":{}}}", expires.as_nanos());
            let _ = write!(out, "PUB {next} {inbox}{request_id} {}\r\n{body}\r\n", body.len());
        }
    };

    let start = Instant::now();
    let mut last_data = start;
    let mut last_reset = start;
    let mut last_msg = None;
    request(&mut out, &mut d.window);
    while d.failure.is_none() {
        if !out.is_empty() {
            if let Err(e) = conn.write_all(&out) {
                d.failure = Some(format!("{e:#}"));
                break;
            }
        }
        out.clear();
        if d.window.done() {
            break;
        }
        let before = d.window.delivered();
        let mut arrived = None;
        let mut failure = None;
        let read = conn.read_some(|msg| {
            if let Some(status) = parse_status(msg) {
                *d.statuses.entry(status.code).or_default() += 1;
                match status.code {
                    100 => {}
                    404 | 408 => d.window.on_request_end(status.pending_msgs),
                    409 if !fatal_409(status.description) => d.window.on_request_end(status.pending_msgs),
                    code => {
                        failure.get_or_insert_with(|| format!("status {code} {}", status.description));
                    }
                }
                return;
            }
            arrived.get_or_insert_with(Instant::now);
            d.window.on_message();
            d.bytes += msg.body().len() as u64;
            let Some(reply) = msg.reply else {
                if explicit {
                    failure.get_or_insert_with(|| "a message without a reply subject to ack".into());
                }
                return;
            };
            if let Some(ack) = parse_ack_reply(reply) {
                d.redelivered += u64::from(ack.delivered > 1);
                let bit = ack.stream_seq.wrapping_sub(first_seq);
                if let Some(word) = seen.get_mut((bit / 64) as usize) {
                    let mask = 1u64 << (bit % 64);
                    d.duplicates += u64::from(*word & mask != 0);
                    d.unique += u64::from(*word & mask == 0);
                    *word |= mask;
                }
            }
            if explicit {
                out.extend_from_slice(b"PUB ");
                out.extend_from_slice(reply);
                out.extend_from_slice(b" 4\r\n+ACK\r\n");
                d.acks_sent += 1;
            }
        });
        if let Err(e) = read {
            failure = Some(format!("{e:#}"));
        }
        if d.window.delivered() > before {
            last_data = arrived.unwrap_or_else(Instant::now);
            last_msg = Some(last_data);
        } else if last_data.elapsed() > timeout {
            failure.get_or_insert_with(|| {
                format!(
                    "no message for {timeout:?}: delivered {} of {wanted}",
                    d.window.delivered()
                )
            });
        } else if d.window.credit() > 0
            && last_data.elapsed() > expires + Duration::from_secs(1)
            && last_reset.elapsed() > expires + Duration::from_secs(1)
        {
            // Every request outstanding has expired by now, reported or not.
            d.window.reset();
            last_reset = Instant::now();
        }
        d.failure = failure;
        request(&mut out, &mut d.window);
    }
    if d.failure.is_none() {
        if let Some(err) = conn.errors().first() {
            d.failure = Some(format!("server sent -ERR {err}"));
        }
    }
    d.elapsed = last_msg.map_or(Duration::ZERO, |at| at.saturating_duration_since(start));
    d
}
