//! Counters of the HTTP front end, for `/metrics`.
//!
//! Handlers add to them directly (one relaxed atomic per event). Per-webhook
//! figures live with each webhook and are written by the webhook module.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Upper bounds (seconds) of the latency histogram buckets.
pub(crate) const LATENCY_BUCKETS_S: [f64; 10] =
    [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0];

/// A Prometheus histogram of durations, lock-free.
#[derive(Debug, Default)]
pub(crate) struct Histogram {
    /// Observations at or below each bound of [`LATENCY_BUCKETS_S`].
    buckets: [AtomicU64; LATENCY_BUCKETS_S.len()],
    count: AtomicU64,
    sum_us: AtomicU64,
}

impl Histogram {
    /// Records one duration.
    pub fn observe(&self, elapsed: std::time::Duration) {
        let seconds = elapsed.as_secs_f64();
        if let Some(i) = LATENCY_BUCKETS_S.iter().position(|&b| seconds <= b) {
            self.buckets[i].fetch_add(1, Relaxed);
        }
        self.count.fetch_add(1, Relaxed);
        self.sum_us.fetch_add(elapsed.as_micros() as u64, Relaxed);
    }

    /// Writes the `_bucket`, `_sum` and `_count` series of `name`, with
    /// `labels` (`key="value",…` or empty) on every line.
    pub fn write(&self, name: &str, labels: &str, out: &mut String) {
        let sep = if labels.is_empty() { "" } else { "," };
        let mut cumulative = 0;
        for (bound, n) in LATENCY_BUCKETS_S.iter().zip(&self.buckets) {
            cumulative += n.load(Relaxed);
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{bound}\"}} {cumulative}");
        }
        let count = self.count.load(Relaxed);
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {count}");
        let sum = self.sum_us.load(Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum{{{labels}}} {sum}");
        let _ = writeln!(out, "{name}_count{{{labels}}} {count}");
    }
}

/// Server-wide HTTP counters.
#[derive(Debug, Default)]
pub(crate) struct HttpStats {
    /// Messages published through `POST /v1/events` (batch events count one each).
    pub ingested: AtomicU64,
    /// Publishes refused (bad input, stream refusals).
    pub ingest_refused: AtomicU64,
    /// Open SSE and WebSocket subscriptions.
    pub push_open: AtomicU64,
    /// Messages sent to SSE and WebSocket clients.
    pub push_sent: AtomicU64,
    /// SSE and WebSocket clients cut off for falling behind.
    pub push_slow: AtomicU64,
    /// How long a stored publish waited for its PubAck.
    pub ingest_latency: Histogram,
    /// Open HTTP connections.
    pub connections: AtomicU64,
    /// Connections closed because the client accepted no data within the write deadline.
    pub write_timeouts: AtomicU64,
    /// Connections closed at once because `max_connections` were open.
    pub connections_refused: AtomicU64,
}

impl HttpStats {
    /// Writes every series in the Prometheus text format.
    pub fn write_prometheus(&self, out: &mut String) {
        let mut metric = |name: &str, kind: &str, help: &str, value: u64| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}");
        };
        metric(
            "herald_http_ingested_total",
            "counter",
            "Messages published over HTTP (POST /v1/events).",
            self.ingested.load(Relaxed),
        );
        metric(
            "herald_http_ingest_refused_total",
            "counter",
            "HTTP publishes refused (invalid input or refused by a stream).",
            self.ingest_refused.load(Relaxed),
        );
        metric(
            "herald_http_push_subscriptions",
            "gauge",
            "Open SSE and WebSocket subscriptions.",
            self.push_open.load(Relaxed),
        );
        metric(
            "herald_http_push_sent_total",
            "counter",
            "Messages sent to SSE and WebSocket clients.",
            self.push_sent.load(Relaxed),
        );
        metric(
            "herald_http_push_slow_total",
            "counter",
            "SSE and WebSocket clients cut off for falling behind.",
            self.push_slow.load(Relaxed),
        );
        metric(
            "herald_http_connections",
            "gauge",
            "Open HTTP connections.",
            self.connections.load(Relaxed),
        );
        metric(
            "herald_http_connections_refused_total",
            "counter",
            "HTTP connections closed at once because max_connections were open.",
            self.connections_refused.load(Relaxed),
        );
        metric(
            "herald_http_write_timeouts_total",
            "counter",
            "HTTP connections closed because the client accepted no data within write_deadline_ms.",
            self.write_timeouts.load(Relaxed),
        );
        let name = "herald_http_ingest_stored_seconds";
        let _ = writeln!(
            out,
            "# HELP {name} Time from an HTTP publish to its stream's PubAck.\n# TYPE {name} histogram"
        );
        self.ingest_latency.write(name, "", out);
    }
}
