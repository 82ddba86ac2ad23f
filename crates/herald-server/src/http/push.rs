//! `GET /v1/events/{pattern}`: Server-Sent Events and WebSocket push.

use axum::Router;

use super::Http;

/// The push routes.
pub(crate) fn routes() -> Router<Http> {
    Router::new()
}
