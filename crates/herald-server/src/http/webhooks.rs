//! `/v1/webhooks`: webhook subscriptions.

use axum::Router;

use super::Http;

/// The webhook routes.
pub(crate) fn routes() -> Router<Http> {
    Router::new()
}
