//! `http-ingest`: events published over HTTP (`POST /v1/events/{subject}`)
//! by `--conns` keep-alive connections, each with one request in flight.
//!
//! The client is hand-written HTTP/1.1 over blocking sockets, one thread per
//! connection, with the request bytes built before the clock starts: on a
//! small machine the generator shares the cores with the server, and a full
//! HTTP client library would measure itself. Without `--rate` each
//! connection sends its next request as soon as the answer came (closed
//! loop: throughput). With `--rate` requests are sent on a fixed schedule
//! and each latency is measured from the time the request *should* have
//! been sent, so a stalled server is not hidden by the generator waiting
//! for it (no coordinated omission). That latency is also split in two:
//! how late each request left (`late_send`: the generator or the machine
//! fell behind the schedule, or the previous answer on the connection was
//! slow) and the time from sending to the answer (`service`). Read both with
//! `herald bench machine-stalls`: on a machine that periodically slows down
//! as a whole, the schedule falls behind whatever the server does.
//!
//! `--format cloudevents` posts structured-mode CloudEvents with unique ids;
//! `--capture` recreates the benchmark stream (over the NATS protocol,
//! `--server`) so every event is stored before it is answered.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use serde::Serialize;

use crate::conn::{server_addr, Conn};
use crate::js::{unique_token, Api, StreamArgs};
use crate::stats::{human, rate, Latency};
use crate::{CommonArgs, Report};

/// Subject events are posted to when the stream captures them.
const CAPTURED_SUBJECT: &str = "bench.js.http";
/// Largest response header block accepted.
const RESPONSE_HEAD_BYTES_MAX: usize = 16 * 1024;
/// How long one response may take before the run fails.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(30);

/// What each request carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// A plain body (`application/octet-stream`).
    Plain,
    /// A structured-mode CloudEvent (`application/cloudevents+json`).
    Cloudevents,
    /// `--batch` structured-mode CloudEvents per request (`application/cloudevents-batch+json`).
    Batch,
}

/// Options of `herald bench http-ingest`.
#[derive(Debug, Clone, clap::Args)]
pub struct HttpIngestArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(flatten)]
    pub stream: StreamArgs,
    /// Herald's HTTP address (host:port or http://host:port).
    #[arg(long, default_value = "http://127.0.0.1:8333")]
    pub http: String,
    /// Keep-alive connections, one request in flight on each.
    #[arg(long, default_value_t = 16)]
    pub conns: usize,
    /// Events posted in total (after the warm-up).
    #[arg(long, default_value_t = 200_000)]
    pub events: u64,
    /// Events posted first and not measured.
    #[arg(long, default_value_t = 5_000)]
    pub warmup: u64,
    /// Payload (data) bytes per event.
    #[arg(long, default_value_t = 128)]
    pub size: usize,
    /// Body format.
    #[arg(long, value_enum, default_value_t = Format::Plain)]
    pub format: Format,
    /// Target events per second over all connections; 0 sends as fast as answers come.
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,
    /// Events per request with `--format batch`.
    #[arg(long, default_value_t = 100)]
    pub batch: usize,
    /// Recreate the benchmark stream first, so each event is stored before it is answered.
    #[arg(long)]
    pub capture: bool,
    /// Subject to post to (when not capturing).
    #[arg(long, default_value = "bench.http")]
    pub subject: String,
}

/// Result of one `http-ingest` run.
#[derive(Debug, Serialize)]
pub struct HttpIngestReport {
    pub workload: &'static str,
    pub http: String,
    pub format: Format,
    pub conns: usize,
    pub size: usize,
    pub captured: bool,
    /// Target rate; 0 for as fast as possible.
    pub target_rate: f64,
    /// Events per request.
    pub batch: usize,
    /// Events answered with 200 in the measured part.
    pub events: u64,
    pub elapsed_secs: f64,
    pub events_per_sec: f64,
    /// From each request's scheduled time (or, without `--rate`, its send) to its answer.
    #[serde(flatten)]
    pub latency: Option<Latency>,
    /// From the actual send to the answer.
    pub service: Option<Latency>,
    /// From the scheduled time to the actual send (only with `--rate`).
    pub late_send: Option<Latency>,
    pub error: Option<String>,
}

impl Report for HttpIngestReport {
    fn line(&self) -> String {
        let latency = self.latency.map_or_else(String::new, |l| {
            format!(
                " latency p50 {:.0} µs p99 {:.0} µs p99.9 {:.0} µs max {:.0} µs",
                l.p50_us, l.p99_us, l.p999_us, l.max_us
            )
        });
        let target = if self.target_rate > 0.0 {
            format!(" (target {}/s)", human(self.target_rate))
        } else {
            String::new()
        };
        let split = match (self.service, self.late_send) {
            (Some(service), Some(late)) => format!(
                " (send to answer p99 {:.0} µs; sends late p99 {:.0} µs)",
                service.p99_us, late.p99_us
            ),
            _ => String::new(),
        };
        format!(
            "http-ingest {:?}{} {} B x{} conns{}: {} events/s{target}{latency}{split}{}",
            self.format,
            if self.batch > 1 {
                format!(" of {}", self.batch)
            } else {
                String::new()
            },
            self.size,
            self.conns,
            if self.captured { " stored" } else { "" },
            human(self.events_per_sec),
            self.error
                .as_ref()
                .map_or_else(String::new, |e| format!(" ERROR {e}")),
        )
    }

    fn error(&self) -> Option<&str> {
        self.error.as_deref()
    }
}

/// Runs the workload.
pub fn run(args: &HttpIngestArgs) -> anyhow::Result<HttpIngestReport> {
    if args.conns == 0 {
        bail!("--conns must be at least 1");
    }
    let batch = if args.format == Format::Batch {
        args.batch.clamp(1, 1000)
    } else {
        1
    };
    let addr = http_addr(&args.http)?;
    let subject = if args.capture {
        let server = server_addr(&args.common.server)?;
        let mut conn = Conn::connect(&server)?;
        let mut api = Api::subscribe(&mut conn, &format!("_INBOX.{}", unique_token()), 1, &server)?;
        api.recreate_stream(&mut conn, &args.stream)?;
        CAPTURED_SUBJECT.to_string()
    } else {
        args.subject.clone()
    };
    let token = unique_token();
    let per_conn =
        |total: u64, i: usize| total / args.conns as u64 + u64::from((i as u64) < total % args.conns as u64);
    let start = Arc::new(Barrier::new(args.conns + 1));
    // Every connection starts its measured part together, after every
    // warm-up: one still warming up would load the server while another
    // measures, and the schedules would begin at different times.
    let measure = Arc::new(Barrier::new(args.conns));
    let mut workers = Vec::with_capacity(args.conns);
    for i in 0..args.conns {
        let plan = Plan {
            addr: addr.clone(),
            path: format!("/v1/events/{subject}"),
            format: args.format,
            size: args.size,
            id_prefix: format!("{token}-{i}-"),
            batch,
            warmup: per_conn(args.warmup, i).div_ceil(batch as u64),
            events: per_conn(args.events, i).div_ceil(batch as u64),
            interval: (args.rate > 0.0)
                .then(|| Duration::from_secs_f64(args.conns as f64 * batch as f64 / args.rate)),
        };
        let (start, measure) = (start.clone(), measure.clone());
        workers.push(thread::spawn(move || plan.run(&start, &measure)));
    }
    start.wait();
    let mut began: Option<Instant> = None;
    let mut samples = Vec::with_capacity(args.events as usize);
    let mut service = Vec::with_capacity(args.events as usize);
    let mut late_send = Vec::with_capacity(args.events as usize);
    let mut error = None;
    let mut events = 0;
    let mut last_done: Option<Instant> = None;
    for worker in workers {
        match worker.join() {
            Ok(Ok(done)) => {
                events += done.samples.len() as u64 * batch as u64;
                samples.extend(done.samples);
                service.extend(done.service);
                late_send.extend(done.late_send);
                began = Some(began.map_or(done.began, |b| b.min(done.began)));
                last_done = Some(last_done.map_or(done.finished, |l| l.max(done.finished)));
            }
            Ok(Err(e)) => error = Some(format!("{e:#}")),
            Err(_) => error = Some("a connection thread panicked".into()),
        }
    }
    let elapsed = match (began, last_done) {
        (Some(began), Some(last)) => last.saturating_duration_since(began),
        _ => Duration::ZERO,
    };
    Ok(HttpIngestReport {
        workload: "http-ingest",
        http: args.http.clone(),
        format: args.format,
        conns: args.conns,
        size: args.size,
        captured: args.capture,
        target_rate: args.rate,
        batch,
        events,
        elapsed_secs: elapsed.as_secs_f64(),
        events_per_sec: rate(events as f64, elapsed),
        latency: Latency::from_samples(&mut samples),
        service: Latency::from_samples(&mut service),
        late_send: if args.rate > 0.0 {
            Latency::from_samples(&mut late_send)
        } else {
            None
        },
        error,
    })
}

/// `http://host:port/…`, `host:port` → `host:port`.
pub(crate) fn http_addr(url: &str) -> anyhow::Result<String> {
    let rest = url.strip_prefix("http://").unwrap_or(url);
    let rest = rest.split('/').next().unwrap_or("");
    if rest.is_empty() || url.starts_with("https://") {
        bail!("unsupported HTTP address {url:?}; expected http://host:port");
    }
    Ok(if rest.contains(':') {
        rest.to_string()
    } else {
        format!("{rest}:80")
    })
}

/// What one connection does.
struct Plan {
    addr: String,
    path: String,
    format: Format,
    size: usize,
    id_prefix: String,
    batch: usize,
    warmup: u64,
    events: u64,
    interval: Option<Duration>,
}

struct Done {
    /// Scheduled time (or send) to answer.
    samples: Vec<Duration>,
    /// Send to answer.
    service: Vec<Duration>,
    /// Scheduled time to send.
    late_send: Vec<Duration>,
    /// When the measured part began and ended on this connection.
    began: Instant,
    finished: Instant,
}

impl Plan {
    fn run(self, start: &Barrier, measure: &Barrier) -> anyhow::Result<Done> {
        // Built before any connection sends: formatting them would compete
        // with the measured requests of the other threads.
        let requests = self.requests();
        let connected =
            TcpStream::connect(&self.addr).with_context(|| format!("cannot connect to {}", self.addr));
        // Every thread reaches both barriers, even when it failed, so the run ends.
        start.wait();
        let warmed_up = connected.and_then(|mut stream| {
            stream.set_nodelay(true)?;
            stream.set_read_timeout(Some(RESPONSE_TIMEOUT))?;
            let mut reader = ResponseReader::default();
            for request in &requests[..self.warmup as usize] {
                stream.write_all(request)?;
                reader.read_ok(&mut stream)?;
            }
            Ok((stream, reader))
        });
        measure.wait();
        let (mut stream, mut reader) = warmed_up?;
        let mut samples = Vec::with_capacity(self.events as usize);
        let mut service = Vec::with_capacity(self.events as usize);
        let mut late_send = Vec::with_capacity(self.events as usize);
        let began = Instant::now();
        for (i, request) in requests[self.warmup as usize..].iter().enumerate() {
            let intended = match self.interval {
                Some(interval) => {
                    let at = began + interval * i as u32;
                    let now = Instant::now();
                    if at > now {
                        thread::sleep(at - now);
                    }
                    at
                }
                None => Instant::now(),
            };
            let sent = Instant::now();
            stream.write_all(request)?;
            reader.read_ok(&mut stream)?;
            let answered = Instant::now();
            samples.push(answered - intended);
            service.push(answered - sent);
            late_send.push(sent.saturating_duration_since(intended));
        }
        Ok(Done {
            samples,
            service,
            late_send,
            began,
            finished: Instant::now(),
        })
    }

    /// Every request of this connection, built before the clock starts.
    fn requests(&self) -> Vec<Vec<u8>> {
        let data = "x".repeat(self.size);
        (0..self.warmup + self.events)
            .map(|n| {
                let event = |k: usize| {
                    format!(
                        r#"{{"specversion":"1.0","id":"{}{n}-{k}","source":"/bench","type":"bench.event","datacontenttype":"text/plain","data":"{data}"}}"#,
                        self.id_prefix
                    )
                };
                let (content_type, body) = match self.format {
                    Format::Plain => ("application/octet-stream", data.clone()),
                    Format::Cloudevents => ("application/cloudevents+json", event(0)),
                    Format::Batch => {
                        let events: Vec<String> = (0..self.batch).map(event).collect();
                        ("application/cloudevents-batch+json", format!("[{}]", events.join(",")))
                    }
                };
                format!(
                    "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n{body}",
                    self.path,
                    self.addr,
                    body.len()
                )
                .into_bytes()
            })
            .collect()
    }
}

/// Reads HTTP/1.1 responses with a `Content-Length` off a keep-alive socket.
#[derive(Default)]
struct ResponseReader {
    buf: Vec<u8>,
}

impl ResponseReader {
    /// Reads one response; a status other than 200 fails the run.
    fn read_ok(&mut self, stream: &mut TcpStream) -> anyhow::Result<()> {
        let (head_len, status, body_len) = loop {
            if let Some(end) = memchr::memmem::find(&self.buf, b"\r\n\r\n") {
                let head = std::str::from_utf8(&self.buf[..end]).context("response head is not UTF-8")?;
                let status: u16 = head
                    .split(' ')
                    .nth(1)
                    .and_then(|s| s.parse().ok())
                    .with_context(|| format!("bad status line: {head:?}"))?;
                let body_len = head
                    .lines()
                    .find_map(|line| {
                        let (name, value) = line.split_once(':')?;
                        name.eq_ignore_ascii_case("content-length")
                            .then(|| value.trim().parse::<usize>().ok())?
                    })
                    .with_context(|| format!("response without Content-Length: {head:?}"))?;
                break (end + 4, status, body_len);
            }
            if self.buf.len() > RESPONSE_HEAD_BYTES_MAX {
                bail!("response head longer than {RESPONSE_HEAD_BYTES_MAX} bytes");
            }
            self.fill(stream)?;
        };
        while self.buf.len() < head_len + body_len {
            self.fill(stream)?;
        }
        if status != 200 {
            let body = String::from_utf8_lossy(&self.buf[head_len..head_len + body_len]).into_owned();
            bail!("HTTP {status}: {body}");
        }
        self.buf.drain(..head_len + body_len);
        Ok(())
    }

    fn fill(&mut self, stream: &mut TcpStream) -> anyhow::Result<()> {
        let mut chunk = [0u8; 16 * 1024];
        let n = stream.read(&mut chunk).context("reading the response")?;
        if n == 0 {
            bail!("the server closed the connection");
        }
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_addresses() {
        assert_eq!(http_addr("http://127.0.0.1:8333").unwrap(), "127.0.0.1:8333");
        assert_eq!(http_addr("localhost:9/x").unwrap(), "localhost:9");
        assert!(http_addr("https://a:1").is_err());
    }
}
