//! `/v1/webhooks`: webhook subscriptions.
//!
//! - `POST /v1/webhooks`: create (201 with the webhook and its secret);
//! - `GET /v1/webhooks`: `{"webhooks": [...]}` with each one's stats;
//! - `GET /v1/webhooks/{name}`: one webhook with its stats;
//! - `DELETE /v1/webhooks/{name}`: 204.

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;

use super::problem::Problem;
use super::Http;
use crate::webhooks::config::{check_name, CreateRequest};
use crate::webhooks::setup::SetupError;
use crate::webhooks::{WebhookError, WebhookView};

/// Largest create request body.
const CREATE_BODY_BYTES_MAX: usize = 64 * 1024;

/// The webhook routes.
pub(crate) fn routes() -> Router<Http> {
    Router::new()
        .route("/v1/webhooks", get(list).post(create))
        .route("/v1/webhooks/{name}", get(info).delete(remove))
}

#[derive(Serialize)]
struct List {
    webhooks: Vec<WebhookView>,
}

async fn create(State(http): State<Http>, body: Body) -> Result<Response, Problem> {
    let body = read_body(body).await?;
    let request = CreateRequest::parse(&body).map_err(|e| Problem::bad_request("invalid-webhook", e))?;
    let view = http.webhooks.create(request).await.map_err(problem)?;
    Ok((StatusCode::CREATED, Json(view)).into_response())
}

async fn list(State(http): State<Http>) -> Json<List> {
    Json(List {
        webhooks: http.webhooks.list().await,
    })
}

async fn info(State(http): State<Http>, Path(name): Path<String>) -> Result<Json<WebhookView>, Problem> {
    check_name(&name).map_err(|_| not_found(&name))?;
    Ok(Json(http.webhooks.get(&name).await.map_err(problem)?))
}

async fn remove(State(http): State<Http>, Path(name): Path<String>) -> Result<StatusCode, Problem> {
    check_name(&name).map_err(|_| not_found(&name))?;
    http.webhooks.delete(&name).await.map_err(problem)?;
    Ok(StatusCode::NO_CONTENT)
}

fn not_found(name: &str) -> Problem {
    Problem::not_found(format!("no webhook named {name}"))
}

fn problem(error: WebhookError) -> Problem {
    match error {
        WebhookError::Conflict(detail) => Problem::new(StatusCode::CONFLICT, "conflict", detail),
        WebhookError::NotFound(name) => not_found(&name),
        WebhookError::Setup(SetupError::Invalid(detail)) => Problem::bad_request("invalid-webhook", detail),
        WebhookError::Setup(SetupError::Conflict(detail)) => {
            Problem::new(StatusCode::CONFLICT, "conflict", detail)
        }
        WebhookError::Setup(SetupError::Api(e)) => super::admin::api_problem(&e),
        WebhookError::Setup(SetupError::Local(e)) => e.into(),
        WebhookError::Setup(e @ SetupError::Reply { .. }) => {
            Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string())
        }
        WebhookError::Storage(detail) => Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "storage", detail),
    }
}

/// The body, refused with 413 past [`CREATE_BODY_BYTES_MAX`].
async fn read_body(body: Body) -> Result<Bytes, Problem> {
    axum::body::to_bytes(body, CREATE_BODY_BYTES_MAX)
        .await
        .map_err(|_| Problem::too_large(CREATE_BODY_BYTES_MAX))
}
