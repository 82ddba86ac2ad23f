//! `GET /v1/server` and `GET /v1/openapi.json`.

use std::sync::atomic::Ordering::Relaxed;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use herald_protocol::jetstream::{AccountInfo, Timestamp};
use serde::Serialize;

use super::super::problem::Problem;
use super::super::Http;
use super::call;

/// The OpenAPI 3 document of `/v1`, written by hand and kept true by the
/// document test and the schemathesis run in CI.
const OPENAPI_JSON: &str = include_str!("../openapi.json");

/// What `GET /v1/server` answers.
#[derive(Debug, Serialize)]
pub(crate) struct ServerInfo {
    server_id: String,
    server_name: String,
    version: String,
    /// Protocol version of the NATS side.
    proto: i32,
    /// When the server started (RFC 3339).
    start: String,
    uptime_seconds: u64,
    /// Client connections open now, and since start.
    connections: u64,
    total_connections: u64,
    subscriptions: u64,
    /// Largest message (headers and payload) in bytes.
    max_payload: usize,
    /// JetStream: streams, consumers, bytes stored in memory and on disk.
    streams: u64,
    consumers: u64,
    memory_bytes: u64,
    storage_bytes: u64,
}

/// `GET /v1/server`.
pub(crate) async fn info(axum::extract::State(http): State<Http>) -> Result<Json<ServerInfo>, Problem> {
    let account: AccountInfo = call(&http, "INFO", b"").await?;
    let state = &http.server;
    let started_ns = state
        .started_at
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    Ok(Json(ServerInfo {
        server_id: state.info.server_id.clone(),
        server_name: state.info.server_name.clone(),
        version: state.info.version.clone(),
        proto: state.info.proto,
        start: Timestamp::from_unix_nanos(started_ns).to_rfc3339(),
        uptime_seconds: state.started.elapsed().as_secs(),
        connections: state.stats.connections.load(Relaxed),
        total_connections: state.stats.total_connections.load(Relaxed),
        subscriptions: state.router.subscription_count() as u64,
        max_payload: state.config.max_payload,
        streams: account.streams,
        consumers: account.consumers,
        memory_bytes: account.memory,
        storage_bytes: account.storage,
    }))
}

/// `GET /v1/openapi.json`.
pub(crate) async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI_JSON).into_response()
}
