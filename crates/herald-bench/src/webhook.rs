//! `webhook`: webhook delivery throughput to a local receiver.
//!
//! Starts a minimal HTTP/1.1 receiver on loopback (one thread per
//! connection, answers `204` at once), creates a webhook on Herald for
//! `--subject` pointing at it (`POST /v1/webhooks`), publishes `--events`
//! messages over the NATS protocol as fast as the server takes them, and
//! measures from the first publish until the receiver has seen every event
//! (counted by distinct `webhook-id`, so retries do not count twice). The
//! webhook is deleted at the end.

use std::collections::HashSet;
use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use serde::Serialize;

use crate::conn::{server_addr, Conn};
use crate::js::unique_token;
use crate::stats::{human, rate};
use crate::{CommonArgs, Report};

/// Largest request head the receiver accepts.
const REQUEST_HEAD_BYTES_MAX: usize = 64 * 1024;
/// Messages per publish burst before the generator checks for errors.
const PUBLISH_BURST: u64 = 1000;

/// Options of `herald bench webhook`.
#[derive(Debug, Clone, clap::Args)]
pub struct WebhookArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Herald's HTTP address (host:port or http://host:port).
    #[arg(long, default_value = "http://127.0.0.1:8333")]
    pub http: String,
    /// Events published and delivered.
    #[arg(long, default_value_t = 20_000)]
    pub events: u64,
    /// Payload bytes per event.
    #[arg(long, default_value_t = 128)]
    pub size: usize,
    /// The webhook's concurrency (requests in flight to the receiver).
    #[arg(long, default_value_t = 16)]
    pub concurrency: u32,
    /// Give up when this many seconds pass without a delivery.
    #[arg(long, default_value_t = 30.0)]
    pub timeout: f64,
}

/// Result of one `webhook` run.
#[derive(Debug, Serialize)]
pub struct WebhookReport {
    pub workload: &'static str,
    pub http: String,
    pub size: usize,
    pub concurrency: u32,
    /// Distinct events the receiver got.
    pub delivered: u64,
    /// Requests the receiver got (more than `delivered` when retried).
    pub requests: u64,
    pub elapsed_secs: f64,
    pub deliveries_per_sec: f64,
    pub error: Option<String>,
}

impl Report for WebhookReport {
    fn line(&self) -> String {
        format!(
            "webhook {} B, concurrency {}: {} deliveries/s ({} events, {} requests){}",
            self.size,
            self.concurrency,
            human(self.deliveries_per_sec),
            self.delivered,
            self.requests,
            self.error
                .as_ref()
                .map_or_else(String::new, |e| format!(" ERROR {e}")),
        )
    }

    fn error(&self) -> Option<&str> {
        self.error.as_deref()
    }
}

/// What the receiver saw.
#[derive(Default)]
struct Received {
    ids: HashSet<String>,
    requests: u64,
    last: Option<Instant>,
}

/// Runs the workload.
pub fn run(args: &WebhookArgs) -> anyhow::Result<WebhookReport> {
    let http = crate::httpingest::http_addr(&args.http)?;
    let listener = TcpListener::bind("127.0.0.1:0").context("cannot bind the receiver")?;
    let receiver_url = format!("http://{}/hook", listener.local_addr()?);
    let received = Arc::new(Mutex::new(Received::default()));
    let stop = Arc::new(AtomicBool::new(false));
    {
        let received = received.clone();
        let stop = stop.clone();
        thread::spawn(move || accept_loop(listener, received, stop));
    }
    let token = unique_token();
    let name = format!("bench-{token}");
    let subject = format!("bench.webhook.{token}");
    let body = serde_json::json!({
        "name": name,
        "subject": format!("{subject}.>"),
        "url": receiver_url,
        "concurrency": args.concurrency,
        "backoff_initial_ms": 100,
    });
    let (status, answer) = http_request(&http, "POST", "/v1/webhooks", Some(&body.to_string()))?;
    if status != 201 {
        bail!("creating the webhook: HTTP {status}: {answer}");
    }
    let result = publish_and_wait(args, &subject, &received);
    stop.store(true, Ordering::Relaxed);
    let _ = http_request(&http, "DELETE", &format!("/v1/webhooks/{name}"), None);
    let (began, error) = match result {
        Ok(began) => (began, None),
        Err(e) => (Instant::now(), Some(format!("{e:#}"))),
    };
    let received = received
        .lock()
        .map_err(|_| anyhow::anyhow!("receiver state poisoned"))?;
    let elapsed = received
        .last
        .map_or(Duration::ZERO, |last| last.saturating_duration_since(began));
    let delivered = received.ids.len() as u64;
    Ok(WebhookReport {
        workload: "webhook",
        http: args.http.clone(),
        size: args.size,
        concurrency: args.concurrency,
        delivered,
        requests: received.requests,
        elapsed_secs: elapsed.as_secs_f64(),
        deliveries_per_sec: rate(delivered as f64, elapsed),
        error,
    })
}

/// Publishes the events and waits until all were delivered; returns when
/// the first was published.
fn publish_and_wait(
    args: &WebhookArgs,
    subject: &str,
    received: &Mutex<Received>,
) -> anyhow::Result<Instant> {
    let server = server_addr(&args.common.server)?;
    let mut conn = Conn::connect(&server)?;
    let payload = "x".repeat(args.size);
    let began = Instant::now();
    let mut published = 0;
    while published < args.events {
        let burst = PUBLISH_BURST.min(args.events - published);
        let mut frames = Vec::with_capacity(burst as usize * (args.size + 64));
        for n in published..published + burst {
            let _ = write!(frames, "PUB {subject}.{n} {}\r\n{payload}\r\n", args.size);
        }
        conn.write_all(&frames)?;
        published += burst;
    }
    conn.flush_roundtrip()?;
    if let Some(err) = conn.errors().first() {
        bail!("the server refused a publish: {err}");
    }
    let timeout = Duration::from_secs_f64(args.timeout);
    let mut last_progress = (0, Instant::now());
    loop {
        let delivered = received
            .lock()
            .map_err(|_| anyhow::anyhow!("receiver state poisoned"))?
            .ids
            .len() as u64;
        if delivered >= args.events {
            return Ok(began);
        }
        if delivered != last_progress.0 {
            last_progress = (delivered, Instant::now());
        } else if last_progress.1.elapsed() > timeout {
            bail!(
                "{delivered} of {} events delivered, none for {timeout:?}",
                args.events
            );
        }
        thread::sleep(Duration::from_millis(5));
    }
}

fn accept_loop(listener: TcpListener, received: Arc<Mutex<Received>>, stop: Arc<AtomicBool>) {
    for stream in listener.incoming() {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let Ok(stream) = stream else { continue };
        let received = received.clone();
        thread::spawn(move || {
            let _ = serve_receiver(stream, &received);
        });
    }
}

/// Answers every request on one keep-alive connection with 204, recording
/// its `webhook-id`.
fn serve_receiver(mut stream: TcpStream, received: &Mutex<Received>) -> anyhow::Result<()> {
    stream.set_nodelay(true)?;
    let mut buf = Vec::with_capacity(16 * 1024);
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let (head_len, body_len, id) = loop {
            if let Some(end) = memchr::memmem::find(&buf, b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..end]).into_owned();
                let header = |name: &str| {
                    head.lines().find_map(|line| {
                        let (n, v) = line.split_once(':')?;
                        n.trim().eq_ignore_ascii_case(name).then(|| v.trim().to_string())
                    })
                };
                let body_len = header("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
                break (end + 4, body_len, header("webhook-id"));
            }
            if buf.len() > REQUEST_HEAD_BYTES_MAX {
                bail!("request head too long");
            }
            let n = stream.read(&mut chunk)?;
            if n == 0 {
                return Ok(());
            }
            buf.extend_from_slice(&chunk[..n]);
        };
        while buf.len() < head_len + body_len {
            let n = stream.read(&mut chunk)?;
            if n == 0 {
                return Ok(());
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        buf.drain(..head_len + body_len);
        {
            let mut received = received
                .lock()
                .map_err(|_| anyhow::anyhow!("receiver state poisoned"))?;
            received.requests += 1;
            if let Some(id) = id {
                received.ids.insert(id);
            }
            received.last = Some(Instant::now());
        }
        stream.write_all(b"HTTP/1.1 204 No Content\r\n\r\n")?;
    }
}

/// One request on a fresh connection (`Connection: close`); the status and
/// the body.
fn http_request(addr: &str, method: &str, path: &str, body: Option<&str>) -> anyhow::Result<(u16, String)> {
    let mut stream = TcpStream::connect(addr).with_context(|| format!("cannot connect to {addr}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let body = body.unwrap_or("");
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("bad HTTP response: {response:?}"))?;
    let body = response.split_once("\r\n\r\n").map_or("", |(_, b)| b).to_string();
    Ok((status, body))
}
