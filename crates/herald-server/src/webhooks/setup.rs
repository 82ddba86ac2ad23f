//! The JetStream side of a webhook: the stream it reads and its durable
//! consumer, managed through the JetStream API exactly as a NATS client
//! would (so nothing about webhooks lives in the JetStream code).

use std::time::Duration;

use herald_protocol::jetstream::api::{StreamInfoResponse, StreamListResponse};
use herald_protocol::jetstream::error::ErrorResponse;
use herald_protocol::jetstream::{ApiError, ApiErrorCode};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::json;

use super::config::{covers, jetstream_name, overlaps, WebhookConfig};
use crate::local::{Local, LocalError};

/// Longest wait for one JetStream API answer.
const API_TIMEOUT: Duration = Duration::from_secs(5);
/// Pull requests a webhook's consumer keeps waiting at most (the delivery
/// task has one or two).
const MAX_WAITING: u64 = 16;

/// Why the JetStream side could not be set up or read.
#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum SetupError {
    /// The request contradicts the streams that exist (400).
    #[error("{0}")]
    Invalid(String),
    /// The request conflicts with existing streams (409).
    #[error("{0}")]
    Conflict(String),
    /// The JetStream API refused.
    #[error("{}", .0.description)]
    Api(ApiError),
    /// The JetStream API did not answer.
    #[error(transparent)]
    Local(#[from] LocalError),
    /// The answer did not parse.
    #[error("unexpected JetStream API answer to {api}: {reason}")]
    Reply { api: String, reason: String },
}

impl SetupError {
    /// Whether this is JetStream's "not found" for `code`.
    pub fn is(&self, code: ApiErrorCode) -> bool {
        matches!(self, SetupError::Api(e) if e.err_code == code.err_code())
    }
}

/// Calls `$JS.API.<api>` and reads the answer as `T` (or its error).
async fn call<T: DeserializeOwned>(local: &Local, api: &str, body: &[u8]) -> Result<T, SetupError> {
    let reply = local.js_api(api, body, API_TIMEOUT).await?;
    if let Ok(error) = serde_json::from_slice::<ErrorResponse>(&reply) {
        return Err(SetupError::Api(error.error));
    }
    serde_json::from_slice(&reply).map_err(|e| SetupError::Reply {
        api: api.to_string(),
        reason: e.to_string(),
    })
}

/// Any successful answer.
#[derive(Deserialize)]
struct Ignored {}

/// The stream a new webhook reads: `requested` if given (it must capture
/// some of `filter`), else the stream that captures all of `filter`, else
/// `WEBHOOK_<name>` made for it. Returns the name and whether Herald made it.
pub(crate) async fn resolve_stream(
    local: &Local,
    name: &str,
    filter: &str,
    requested: Option<&str>,
) -> Result<(String, bool), SetupError> {
    if let Some(stream) = requested {
        let info: StreamInfoResponse = call(local, &format!("STREAM.INFO.{stream}"), b"").await?;
        let subjects = &info.info.config.subjects;
        if !subjects.iter().any(|s| overlaps(s, filter)) {
            return Err(SetupError::Invalid(format!(
                "stream {stream} captures nothing that matches {filter} (its subjects: {})",
                subjects.join(", ")
            )));
        }
        return Ok((stream.to_string(), false));
    }
    let request = json!({ "subject": filter }).to_string();
    let list: StreamListResponse = call(local, "STREAM.LIST", request.as_bytes()).await?;
    let overlapping: Vec<_> = list.streams.iter().map(|s| &s.config).collect();
    if let Some(config) = overlapping
        .iter()
        .find(|c| c.subjects.iter().any(|s| covers(s, filter)))
    {
        // Streams never overlap each other, so a stream that captures the
        // whole filter is the only one that captures any of it.
        return Ok((config.name.clone(), false));
    }
    if !overlapping.is_empty() {
        let names: Vec<&str> = overlapping.iter().map(|c| c.name.as_str()).collect();
        return Err(SetupError::Conflict(format!(
            "subject {filter} is partly captured by stream(s) {}, none of which captures all of it: \
             give `stream`, or a filter within one stream's subjects",
            names.join(", ")
        )));
    }
    let stream = jetstream_name(name);
    create_stream(local, &stream, filter).await?;
    Ok((stream, true))
}

/// Creates `WEBHOOK_<name>` capturing `filter`: interest retention, so a
/// message is kept exactly until the webhook has delivered or given it up.
async fn create_stream(local: &Local, stream: &str, filter: &str) -> Result<(), SetupError> {
    let config = json!({
        "name": stream,
        "description": "Herald webhook stream",
        "subjects": [filter],
        "retention": "interest",
        "storage": "file",
        "num_replicas": 1,
    });
    let _: Ignored = call(
        local,
        &format!("STREAM.CREATE.{stream}"),
        config.to_string().as_bytes(),
    )
    .await?;
    Ok(())
}

/// Creates (or, when it exists with the same settings, keeps) the webhook's
/// durable consumer; recreates the stream first if Herald made it and it is
/// gone.
pub(crate) async fn ensure(local: &Local, config: &WebhookConfig) -> Result<(), SetupError> {
    if config.stream_created {
        let info: Result<Ignored, _> = call(local, &format!("STREAM.INFO.{}", config.stream), b"").await;
        match info {
            Err(e) if e.is(ApiErrorCode::StreamNotFound) => {
                create_stream(local, &config.stream, &config.subject).await?;
            }
            other => {
                other?;
            }
        }
    }
    let consumer = config.consumer_name();
    let request = json!({
        "stream_name": config.stream,
        "config": {
            "durable_name": consumer,
            "name": consumer,
            "description": format!("Herald webhook {}", config.name),
            // A subscription sees what is published from now on.
            "deliver_policy": "new",
            "ack_policy": "explicit",
            "ack_wait": config.ack_wait_ms().saturating_mul(1_000_000),
            // The webhook gives up itself (dead letter, then +TERM).
            "max_deliver": -1,
            "filter_subject": config.subject,
            "replay_policy": "instant",
            "max_ack_pending": config.effective_concurrency(),
            "max_waiting": MAX_WAITING,
        },
    });
    let _: Ignored = call(
        local,
        &format!("CONSUMER.CREATE.{}.{consumer}", config.stream),
        request.to_string().as_bytes(),
    )
    .await?;
    Ok(())
}

/// Deletes the consumer and, if Herald made it, the stream. What is
/// already gone is not an error.
pub(crate) async fn remove(local: &Local, config: &WebhookConfig) -> Result<(), SetupError> {
    let api = format!("CONSUMER.DELETE.{}.{}", config.stream, config.consumer_name());
    match call::<Ignored>(local, &api, b"").await {
        Err(e) if !e.is(ApiErrorCode::ConsumerNotFound) && !e.is(ApiErrorCode::StreamNotFound) => {
            return Err(e)
        }
        _ => {}
    }
    if config.stream_created {
        match call::<Ignored>(local, &format!("STREAM.DELETE.{}", config.stream), b"").await {
            Err(e) if !e.is(ApiErrorCode::StreamNotFound) => return Err(e),
            _ => {}
        }
    }
    Ok(())
}

/// Messages not yet delivered: waiting in the stream plus unacknowledged.
pub(crate) async fn pending(local: &Local, config: &WebhookConfig) -> Result<u64, SetupError> {
    #[derive(Deserialize)]
    struct Counts {
        #[serde(default)]
        num_pending: u64,
        #[serde(default)]
        num_ack_pending: u64,
    }
    let api = format!("CONSUMER.INFO.{}.{}", config.stream, config.consumer_name());
    let counts: Counts = call(local, &api, b"").await?;
    Ok(counts.num_pending.saturating_add(counts.num_ack_pending))
}
