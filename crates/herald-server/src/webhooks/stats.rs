//! Per-webhook counters: shown by `GET /v1/webhooks/{name}` and written to
//! `/metrics` with a `webhook` label.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use parking_lot::Mutex;
use serde::Serialize;

use crate::http::stats::Histogram;

/// Longest `last_error` kept.
const LAST_ERROR_CHARS_MAX: usize = 300;

/// Counters of one webhook. Updated by its delivery tasks (relaxed atomics;
/// the last outcome under a short lock).
#[derive(Debug, Default)]
pub(crate) struct WebhookStats {
    /// Messages the endpoint accepted (2xx).
    pub delivered: AtomicU64,
    /// Requests made.
    pub attempts: AtomicU64,
    /// Requests that failed (non-2xx, timeout, connection error).
    pub failed_attempts: AtomicU64,
    /// Messages given up and published to the dead-letter subject.
    pub dead_lettered: AtomicU64,
    /// Messages not yet delivered: waiting in the stream plus in flight or
    /// waiting for a retry (the consumer's pending and ack-pending counts).
    pub pending: AtomicU64,
    /// Duration of each request.
    pub latency: Histogram,
    last: Mutex<LastOutcome>,
}

#[derive(Debug, Default, Clone)]
struct LastOutcome {
    status: Option<u16>,
    error: Option<String>,
}

/// The `stats` member of a webhook object.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct StatsView {
    pub delivered: u64,
    pub attempts: u64,
    pub failed_attempts: u64,
    pub dead_lettered: u64,
    pub pending: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_status: Option<u16>,
}

impl WebhookStats {
    /// Records the HTTP status of the latest attempt (clears its error).
    pub fn set_last_status(&self, status: u16) {
        let mut last = self.last.lock();
        last.status = Some(status);
        last.error = None;
    }

    /// Records the error of the latest attempt (no status: it got none).
    pub fn set_last_error(&self, error: &str) {
        let error: String = error.chars().take(LAST_ERROR_CHARS_MAX).collect();
        let mut last = self.last.lock();
        last.status = None;
        last.error = Some(error);
    }

    /// A snapshot for the API.
    pub fn view(&self) -> StatsView {
        let last = self.last.lock().clone();
        StatsView {
            delivered: self.delivered.load(Relaxed),
            attempts: self.attempts.load(Relaxed),
            failed_attempts: self.failed_attempts.load(Relaxed),
            dead_lettered: self.dead_lettered.load(Relaxed),
            pending: self.pending.load(Relaxed),
            last_error: last.error,
            last_status: last.status,
        }
    }
}

/// The counters of every webhook, by name, for `/metrics`. Lives in the
/// server state so the monitoring handler reaches it.
#[derive(Debug, Default)]
pub(crate) struct WebhookMetrics {
    hooks: Mutex<BTreeMap<String, Arc<WebhookStats>>>,
}

impl WebhookMetrics {
    /// Adds (or replaces) the counters of `name`.
    pub fn register(&self, name: &str, stats: Arc<WebhookStats>) {
        self.hooks.lock().insert(name.to_string(), stats);
    }

    /// Removes the counters of `name`.
    pub fn unregister(&self, name: &str) {
        self.hooks.lock().remove(name);
    }

    /// Writes every webhook series in the Prometheus text format. Webhook
    /// names are `[A-Za-z0-9_-]`, so labels need no escaping.
    pub fn write_prometheus(&self, out: &mut String) {
        let hooks: Vec<(String, Arc<WebhookStats>)> = self
            .hooks
            .lock()
            .iter()
            .map(|(n, s)| (n.clone(), s.clone()))
            .collect();
        type Field = fn(&WebhookStats) -> &AtomicU64;
        let series: [(&str, &str, &str, Field); 5] = [
            (
                "herald_webhook_attempts_total",
                "counter",
                "Webhook delivery requests made.",
                |s| &s.attempts,
            ),
            (
                "herald_webhook_delivered_total",
                "counter",
                "Messages a webhook endpoint accepted (2xx).",
                |s| &s.delivered,
            ),
            (
                "herald_webhook_failed_attempts_total",
                "counter",
                "Webhook requests that failed (non-2xx, timeout, connection error).",
                |s| &s.failed_attempts,
            ),
            (
                "herald_webhook_dead_lettered_total",
                "counter",
                "Messages given up after the last attempt and published to the dead-letter subject.",
                |s| &s.dead_lettered,
            ),
            (
                "herald_webhook_pending",
                "gauge",
                "Messages not yet delivered to a webhook (waiting, in flight or awaiting a retry).",
                |s| &s.pending,
            ),
        ];
        for (name, kind, help, field) in series {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for (hook, stats) in &hooks {
                let _ = writeln!(out, "{name}{{webhook=\"{hook}\"}} {}", field(stats).load(Relaxed));
            }
        }
        let name = "herald_webhook_attempt_seconds";
        let _ = writeln!(
            out,
            "# HELP {name} Duration of webhook delivery requests.\n# TYPE {name} histogram"
        );
        for (hook, stats) in &hooks {
            stats.latency.write(name, &format!("webhook=\"{hook}\""), out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn series_carry_the_webhook_label() {
        let metrics = WebhookMetrics::default();
        let stats = Arc::new(WebhookStats::default());
        stats.attempts.fetch_add(3, Relaxed);
        stats.latency.observe(Duration::from_millis(3));
        metrics.register("a-1", stats.clone());
        let mut out = String::new();
        metrics.write_prometheus(&mut out);
        assert!(
            out.contains("herald_webhook_attempts_total{webhook=\"a-1\"} 3\n"),
            "{out}"
        );
        assert!(
            out.contains("herald_webhook_attempt_seconds_count{webhook=\"a-1\"} 1\n"),
            "{out}"
        );
        assert!(out.contains("# TYPE herald_webhook_pending gauge\n"), "{out}");
        metrics.unregister("a-1");
        let mut out = String::new();
        metrics.write_prometheus(&mut out);
        assert!(!out.contains("a-1"), "{out}");
    }

    #[test]
    fn the_last_outcome_is_a_status_or_an_error() {
        let stats = WebhookStats::default();
        stats.set_last_error(&"x".repeat(1000));
        let view = stats.view();
        assert_eq!(view.last_error.map(|e| e.len()), Some(LAST_ERROR_CHARS_MAX));
        stats.set_last_status(500);
        let view = stats.view();
        assert_eq!((view.last_status, view.last_error), (Some(500), None));
    }
}
