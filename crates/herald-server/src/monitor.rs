//! HTTP monitoring: `/healthz`, `/metrics` (Prometheus text), `/varz`,
//! `/connz` and `/jsz` (JSON).

use std::fmt::Write as _;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;

use crate::stats::Verb;
use crate::ServerState;

/// The monitoring routes.
pub(crate) fn routes() -> Router<Arc<ServerState>> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/varz", get(varz))
        .route("/connz", get(connz))
        .route("/jsz", get(jsz))
}

/// Most connections one `/connz` answer lists.
const CONNZ_LIMIT_MAX: usize = 10_000;

#[derive(Debug, serde::Deserialize)]
struct ConnzQuery {
    /// Connections to list, by ascending id [default: 1024].
    limit: Option<usize>,
    /// Skip this many connections first [default: 0].
    offset: Option<usize>,
}

#[derive(Debug, Serialize)]
struct Connz {
    num_connections: usize,
    total: usize,
    offset: usize,
    limit: usize,
    connections: Vec<ConnInfo>,
}

#[derive(Debug, Serialize)]
struct ConnInfo {
    cid: u64,
    ip: String,
    port: u16,
    start: String,
    name: Option<String>,
    lang: String,
    version: String,
    subscriptions: usize,
    pending_bytes: usize,
    in_msgs: u64,
    in_bytes: u64,
    out_msgs: u64,
}

async fn connz(
    State(state): State<Arc<ServerState>>,
    axum::extract::Query(query): axum::extract::Query<ConnzQuery>,
) -> impl IntoResponse {
    let limit = query.limit.unwrap_or(1024).min(CONNZ_LIMIT_MAX);
    let offset = query.offset.unwrap_or(0);
    let mut clients: Vec<_> = state.clients.lock().values().cloned().collect();
    clients.sort_unstable_by_key(|c| c.id);
    let total = clients.len();
    let connections: Vec<ConnInfo> = clients
        .iter()
        .skip(offset)
        .take(limit)
        .map(|client| {
            let identity = client.identity.lock().clone();
            let (subscriptions, out_msgs) = {
                let subs = client.subs.lock();
                let delivered = subs.values().map(|s| s.delivered.load(Relaxed)).sum();
                (subs.len(), delivered)
            };
            ConnInfo {
                cid: client.id,
                ip: client.peer.ip().to_string(),
                port: client.peer.port(),
                start: humantime_free::Rfc3339::from(client.connected_at).0,
                name: identity.name,
                lang: identity.lang,
                version: identity.version,
                subscriptions,
                pending_bytes: client.outbound.queued_bytes(),
                in_msgs: client.in_msgs.load(Relaxed),
                in_bytes: client.in_bytes.load(Relaxed),
                out_msgs,
            }
        })
        .collect();
    Json(Connz {
        num_connections: connections.len(),
        total,
        offset,
        limit,
        connections,
    })
}

async fn healthz() -> impl IntoResponse {
    Json(serde_json::json!({ "status": "ok" }))
}

/// The figures both `/varz` and `/metrics` report.
#[derive(Debug, Serialize)]
struct Varz {
    server_id: String,
    server_name: String,
    version: String,
    proto: i32,
    host: String,
    port: u16,
    max_payload: usize,
    max_connections: usize,
    max_pending: usize,
    start: String,
    uptime_seconds: u64,
    mem_bytes: u64,
    connections: u64,
    total_connections: u64,
    rejected_connections: u64,
    subscriptions: u64,
    in_msgs: u64,
    out_msgs: u64,
    in_bytes: u64,
    out_bytes: u64,
    slow_consumers: u64,
    stale_connections: u64,
    ops: std::collections::BTreeMap<&'static str, u64>,
    errors: std::collections::BTreeMap<&'static str, u64>,
}

fn collect(state: &ServerState) -> Varz {
    let stats = &state.stats;
    let start: humantime_free::Rfc3339 = state.started_at.into();
    Varz {
        server_id: state.info.server_id.clone(),
        server_name: state.info.server_name.clone(),
        version: state.info.version.clone(),
        proto: state.info.proto,
        host: state.info.host.clone(),
        port: state.info.port,
        max_payload: state.config.max_payload,
        max_connections: state.config.max_connections,
        max_pending: state.config.max_pending,
        start: start.0,
        uptime_seconds: state.started.elapsed().as_secs(),
        mem_bytes: resident_memory_bytes(),
        connections: stats.connections.load(Relaxed),
        total_connections: stats.total_connections.load(Relaxed),
        rejected_connections: stats.rejected_connections.load(Relaxed),
        subscriptions: state.router.subscription_count() as u64,
        in_msgs: stats.in_msgs.load(Relaxed),
        out_msgs: stats.out_msgs.load(Relaxed),
        in_bytes: stats.in_bytes.load(Relaxed),
        out_bytes: stats.out_bytes.load(Relaxed),
        slow_consumers: stats.slow_consumers.load(Relaxed),
        stale_connections: stats.stale_connections.load(Relaxed),
        ops: Verb::ALL
            .iter()
            .map(|v| (v.label(), stats.ops[*v as usize].load(Relaxed)))
            .collect(),
        errors: Verb::ALL
            .iter()
            .map(|v| (v.label(), stats.errors[*v as usize].load(Relaxed)))
            .collect(),
    }
}

async fn varz(State(state): State<Arc<ServerState>>) -> impl IntoResponse {
    Json(collect(&state))
}

/// Streams and consumers with their counters.
async fn jsz(State(state): State<Arc<ServerState>>) -> impl IntoResponse {
    Json(state.jetstream.stats())
}

async fn metrics(State(state): State<Arc<ServerState>>) -> impl IntoResponse {
    let v = collect(&state);
    let mut out = String::with_capacity(4096);
    let mut metric = |name: &str, kind: &str, help: &str, value: u64| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}");
    };
    metric(
        "herald_connections",
        "gauge",
        "Client connections currently open.",
        v.connections,
    );
    metric(
        "herald_connections_total",
        "counter",
        "Client connections accepted since start.",
        v.total_connections,
    );
    metric(
        "herald_connections_rejected_total",
        "counter",
        "Connections refused because max_connections was reached.",
        v.rejected_connections,
    );
    metric(
        "herald_subscriptions",
        "gauge",
        "Subscriptions currently registered.",
        v.subscriptions,
    );
    metric(
        "herald_in_messages_total",
        "counter",
        "Messages received from publishers.",
        v.in_msgs,
    );
    metric(
        "herald_in_bytes_total",
        "counter",
        "Payload bytes received from publishers.",
        v.in_bytes,
    );
    metric(
        "herald_out_messages_total",
        "counter",
        "Messages delivered to subscribers.",
        v.out_msgs,
    );
    metric(
        "herald_out_bytes_total",
        "counter",
        "Payload bytes delivered to subscribers.",
        v.out_bytes,
    );
    metric(
        "herald_slow_consumers_total",
        "counter",
        "Connections cut off as slow consumers.",
        v.slow_consumers,
    );
    metric(
        "herald_stale_connections_total",
        "counter",
        "Connections closed after unanswered keepalive PINGs.",
        v.stale_connections,
    );
    metric(
        "herald_resident_memory_bytes",
        "gauge",
        "Resident memory of the process.",
        v.mem_bytes,
    );
    metric(
        "herald_uptime_seconds",
        "gauge",
        "Seconds since the server started.",
        v.uptime_seconds,
    );
    let _ = writeln!(
        out,
        "# HELP herald_ops_total Protocol operations received, by verb."
    );
    let _ = writeln!(out, "# TYPE herald_ops_total counter");
    for (verb, n) in &v.ops {
        let _ = writeln!(out, "herald_ops_total{{verb=\"{verb}\"}} {n}");
    }
    let _ = writeln!(
        out,
        "# HELP herald_errors_total -ERR replies sent, by verb of the offending operation."
    );
    let _ = writeln!(out, "# TYPE herald_errors_total counter");
    for (verb, n) in &v.errors {
        let _ = writeln!(out, "herald_errors_total{{verb=\"{verb}\"}} {n}");
    }
    crate::jetstream::metrics::write_prometheus(&state.jetstream.stats(), &mut out);
    state.http_stats.write_prometheus(&mut out);
    state.webhooks.write_prometheus(&mut out);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out)
}

/// Resident set size of this process, from `/proc/self/statm` (0 elsewhere).
fn resident_memory_bytes() -> u64 {
    let Ok(statm) = std::fs::read_to_string("/proc/self/statm") else {
        return 0;
    };
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

/// RFC 3339 formatting of a `SystemTime` without a date-time dependency.
mod humantime_free {
    use std::time::{SystemTime, UNIX_EPOCH};

    pub struct Rfc3339(pub String);

    impl From<SystemTime> for Rfc3339 {
        fn from(t: SystemTime) -> Self {
            let secs = t.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
            let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
            // Civil-from-days (proleptic Gregorian), after Howard Hinnant's algorithm.
            let z = days + 719_468;
            let era = z.div_euclid(146_097);
            let doe = z.rem_euclid(146_097);
            let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
            let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
            let mp = (5 * doy + 2) / 153;
            let day = doy - (153 * mp + 2) / 5 + 1;
            let month = if mp < 10 { mp + 3 } else { mp - 9 };
            let year = yoe + era * 400 + i64::from(month <= 2);
            Rfc3339(format!(
                "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
                rem / 3600,
                rem % 3600 / 60,
                rem % 60
            ))
        }
    }
}
