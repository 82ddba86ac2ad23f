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
//! - [`connections`]: accepting and serving connections: `TCP_NODELAY`, a
//!   write deadline, a header read (and keep-alive idle) timeout.
//!
//! Every handler talks to the router through the server's in-process client
//! ([`crate::local::Local`]), so HTTP and NATS clients see each other's
//! messages and share streams.

pub(crate) mod admin;
pub(crate) mod connections;
pub(crate) mod ingest;
pub(crate) mod problem;
pub(crate) mod push;
pub(crate) mod push_source;
pub(crate) mod sse;
pub(crate) mod stats;
pub(crate) mod webhooks;
pub(crate) mod ws;

use std::sync::Arc;

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
    shutdown: watch::Receiver<bool>,
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
    let app = crate::monitor::routes().with_state(state.clone()).merge(v1);
    connections::serve(listener, app, state, shutdown).await;
}

/// Completes once the server shuts down (or its stop signal is gone, which
/// means the same).
pub(crate) async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|&stop| stop).await;
}

async fn not_found(uri: axum::http::Uri) -> problem::Problem {
    problem::Problem::not_found(format!("no such path: {}", uri.path()))
}
