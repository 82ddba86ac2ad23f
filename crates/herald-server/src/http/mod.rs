//! Herald over HTTP, on the port `--http-port` opens: monitoring
//! (`/healthz`, `/metrics`, `/varz`, `/connz`, `/jsz`) and the `/v1` API.
//!
//! - [`ingest`]: `POST /v1/events/{subject}`, CloudEvents (binary,
//!   structured, batch) and plain bodies, routed like an `HPUB`.
//! - [`push`]: `GET /v1/events/{pattern}`, Server-Sent Events and WebSocket.
//! - [`webhooks`]: `/v1/webhooks`, webhook subscriptions.
//! - [`admin`]: streams, consumers, messages, KV, server info, and the
//!   OpenAPI document at `/v1/openapi.json`.
//! - [`problem`]: RFC 9457 problem details, the body of every error.
//!
//! Every handler talks to the router through the server's in-process client
//! ([`crate::local::Local`]), so HTTP and NATS clients see each other's
//! messages and share streams.

pub(crate) mod admin;
pub(crate) mod ingest;
pub(crate) mod problem;
pub(crate) mod push;
pub(crate) mod push_source;
pub(crate) mod sse;
pub(crate) mod stats;
pub(crate) mod webhooks;
pub(crate) mod ws;

use std::sync::Arc;

use axum::serve::ListenerExt as _;
use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::local::Local;
use crate::ServerState;

/// What every `/v1` handler needs.
#[derive(Clone)]
pub(crate) struct Http {
    pub server: Arc<ServerState>,
    pub local: Arc<Local>,
    /// Webhook subscriptions.
    pub webhooks: Arc<crate::webhooks::Webhooks>,
    /// Turns true when the server shuts down: long-lived responses (push
    /// streams) end then, so the graceful shutdown does not wait on them.
    pub shutdown: watch::Receiver<bool>,
}

/// Serves monitoring and the `/v1` API until `shutdown`.
pub(crate) async fn serve(
    state: Arc<ServerState>,
    local: Arc<Local>,
    webhooks: Arc<crate::webhooks::Webhooks>,
    listener: TcpListener,
    mut shutdown: watch::Receiver<bool>,
) {
    let http = Http {
        server: state.clone(),
        local,
        webhooks,
        shutdown: shutdown.clone(),
    };
    let v1 = Router::new()
        .route("/v1/events", axum::routing::post(ingest::publish_by_template))
        .route(
            "/v1/events/{subject}",
            axum::routing::post(ingest::publish_to_subject),
        )
        .merge(push::routes())
        .merge(webhooks::routes())
        .merge(admin::routes())
        .fallback(not_found)
        .layer(axum::middleware::from_fn(admin::problem_safety_net))
        .with_state(http);
    let app = crate::monitor::routes().with_state(state).merge(v1);
    let stop = async move {
        let _ = shutdown.changed().await;
    };
    if let Err(e) = axum::serve(listener.tap_io(set_nodelay), app)
        .with_graceful_shutdown(stop)
        .await
    {
        tracing::error!(error = %e, "HTTP server failed");
    }
}

/// Answers leave at once: with Nagle's algorithm a response written in two
/// parts waits for the client's delayed ACK (40 ms on Linux), which showed
/// as a p99 of 30-50 ms in `herald bench http-ingest --rate`.
fn set_nodelay(stream: &mut tokio::net::TcpStream) {
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!(error = %e, "cannot set TCP_NODELAY on an HTTP connection");
    }
}

async fn not_found(uri: axum::http::Uri) -> problem::Problem {
    problem::Problem::not_found(format!("no such path: {}", uri.path()))
}
