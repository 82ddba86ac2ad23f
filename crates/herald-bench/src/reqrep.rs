//! `reqrep`: sequential request-reply round-trip latency.

use std::io::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use serde::Serialize;

use crate::conn::{server_addr, Conn};
use crate::stats::{human, rate, Latency};
use crate::{CommonArgs, Report};

/// Prefix of the requester's reply subjects (it subscribes to `PREFIX*`).
const INBOX_PREFIX: &str = "_INBOX.bench.";

/// Options of `herald bench reqrep`.
#[derive(Debug, Clone, clap::Args)]
pub struct ReqrepArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Requests measured.
    #[arg(long, default_value_t = 20_000)]
    pub count: usize,
    /// Requests sent first and not measured.
    #[arg(long, default_value_t = 1_000)]
    pub warmup: usize,
    /// Payload bytes of each request and each reply.
    #[arg(long, default_value_t = 128)]
    pub size: usize,
    /// Subject the responder listens on.
    #[arg(long, default_value = "bench.req")]
    pub subject: String,
    /// Give up when one reply takes longer than this many seconds.
    #[arg(long, default_value_t = 30.0)]
    pub timeout: f64,
}

/// Result of one `reqrep` run.
#[derive(Debug, Serialize)]
pub struct ReqrepReport {
    pub workload: &'static str,
    pub server: String,
    pub size: usize,
    /// Requests measured (completed).
    pub count: usize,
    pub warmup: usize,
    pub elapsed_secs: f64,
    pub requests_per_sec: f64,
    #[serde(flatten)]
    pub latency: Option<Latency>,
    /// Replies that did not answer the request in flight (late or stray).
    pub unexpected: u64,
    pub error: Option<String>,
}

impl Report for ReqrepReport {
    fn line(&self) -> String {
        let mut line = format!(
            "reqrep {} B: {} requests in {:.3} s = {} req/s",
            self.size,
            self.count,
            self.elapsed_secs,
            human(self.requests_per_sec)
        );
        if let Some(l) = &self.latency {
            line += &format!(
                ", latency us p50 {:.1} p90 {:.1} p99 {:.1} p99.9 {:.1} max {:.1}",
                l.p50_us, l.p90_us, l.p99_us, l.p999_us, l.max_us
            );
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

/// Runs the workload.
pub fn run(args: &ReqrepArgs) -> anyhow::Result<ReqrepReport> {
    let addr = server_addr(&args.common.server)?;
    let mut responder = Conn::connect(&addr)?;
    responder.write_all(format!("SUB {} 1\r\n", args.subject).as_bytes())?;
    responder.flush_roundtrip().context("subscribing the responder")?;
    let mut requester = Conn::connect(&addr)?;
    requester.write_all(format!("SUB {INBOX_PREFIX}* 1\r\n").as_bytes())?;
    requester.flush_roundtrip().context("subscribing the requester")?;

    let stop = Arc::new(AtomicBool::new(false));
    let responder = {
        let stop = Arc::clone(&stop);
        thread::spawn(move || respond(responder, &stop))
    };
    let outcome = request_loop(&mut requester, args);
    stop.store(true, Ordering::Relaxed);
    let responder_failure = responder
        .join()
        .map_err(|_| anyhow::anyhow!("responder thread panicked"))?;

    let mut error = outcome.failure.or(responder_failure);
    if error.is_none() {
        if let Some(err) = requester.errors().first() {
            error = Some(format!("requester: server sent -ERR {err}"));
        }
    }
    let mut samples = outcome.samples;
    Ok(ReqrepReport {
        workload: "reqrep",
        server: args.common.server.clone(),
        size: args.size,
        count: samples.len(),
        warmup: args.warmup,
        elapsed_secs: outcome.elapsed.as_secs_f64(),
        requests_per_sec: rate(samples.len() as f64, outcome.elapsed),
        latency: Latency::from_samples(&mut samples),
        unexpected: outcome.unexpected,
        error,
    })
}

struct Outcome {
    samples: Vec<Duration>,
    elapsed: Duration,
    unexpected: u64,
    failure: Option<String>,
}

/// Sends the requests one after another and times each round trip.
fn request_loop(conn: &mut Conn, args: &ReqrepArgs) -> Outcome {
    let mut out = Outcome {
        samples: Vec::with_capacity(args.count),
        elapsed: Duration::ZERO,
        unexpected: 0,
        failure: None,
    };
    if let Err(e) = conn.set_read_timeout(Some(Duration::from_millis(200))) {
        out.failure = Some(e.to_string());
        return out;
    }
    let timeout = Duration::from_secs_f64(args.timeout);
    let payload = vec![b'r'; args.size];
    let mut request = Vec::with_capacity(args.size + 64);
    let mut inbox = Vec::with_capacity(32);
    let mut measured_from = Instant::now();
    for i in 0..args.warmup + args.count {
        if i == args.warmup {
            measured_from = Instant::now();
        }
        inbox.clear();
        let _ = write!(inbox, "{INBOX_PREFIX}{i}");
        request.clear();
        let _ = write!(request, "PUB {} ", args.subject);
        request.extend_from_slice(&inbox);
        let _ = write!(request, " {}\r\n", args.size);
        request.extend_from_slice(&payload);
        request.extend_from_slice(b"\r\n");

        let sent = Instant::now();
        if let Err(e) = conn.write_all(&request) {
            out.failure = Some(format!("request {i}: {e:#}"));
            break;
        }
        match await_reply(conn, &inbox, args.size, sent, timeout, &mut out.unexpected) {
            Ok(rtt) if i >= args.warmup => out.samples.push(rtt),
            Ok(_) => {}
            Err(e) => {
                out.failure = Some(format!("request {i}: {e:#}"));
                break;
            }
        }
    }
    out.elapsed = measured_from.elapsed();
    out
}

/// Reads until the reply on `inbox` arrives; returns the round-trip time.
fn await_reply(
    conn: &mut Conn,
    inbox: &[u8],
    size: usize,
    sent: Instant,
    timeout: Duration,
    unexpected: &mut u64,
) -> anyhow::Result<Duration> {
    loop {
        let mut answered = None;
        let mut wrong_size = None;
        conn.read_some(|msg| {
            if msg.subject == inbox {
                answered = Some(Instant::now());
                if msg.body().len() != size {
                    wrong_size = Some(msg.body().len());
                }
            } else {
                *unexpected += 1;
            }
        })?;
        if let Some(len) = wrong_size {
            bail!("reply of {len} bytes, expected {size}");
        }
        if let Some(at) = answered {
            return Ok(at - sent);
        }
        if sent.elapsed() > timeout {
            bail!("no reply within {timeout:?}");
        }
    }
}

/// Answers every request with its own payload until `stop`.
fn respond(mut conn: Conn, stop: &AtomicBool) -> Option<String> {
    if let Err(e) = conn.set_read_timeout(Some(Duration::from_millis(100))) {
        return Some(e.to_string());
    }
    let mut replies = Vec::with_capacity(64 * 1024);
    while !stop.load(Ordering::Relaxed) {
        replies.clear();
        let read = conn.read_some(|msg| {
            if let Some(reply) = msg.reply {
                replies.extend_from_slice(b"PUB ");
                replies.extend_from_slice(reply);
                let _ = write!(replies, " {}\r\n", msg.body().len());
                replies.extend_from_slice(msg.body());
                replies.extend_from_slice(b"\r\n");
            }
        });
        let written = match read {
            Ok(_) if replies.is_empty() => Ok(()),
            Ok(_) => conn.write_all(&replies),
            Err(e) => Err(e),
        };
        if let Err(e) = written {
            return Some(format!("responder: {e:#}"));
        }
    }
    conn.errors()
        .first()
        .map(|e| format!("responder: server sent -ERR {e}"))
}
