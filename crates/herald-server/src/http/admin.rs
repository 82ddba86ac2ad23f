//! `/v1/streams`, `/v1/kv`, `/v1/server`: administration: streams, consumers, messages, KV, server info.

use axum::Router;

use super::Http;

/// The administration routes and the OpenAPI document.
pub(crate) fn routes() -> Router<Http> {
    Router::new()
}
