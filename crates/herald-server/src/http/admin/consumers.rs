//! `/v1/streams/{stream}/consumers…`: consumers, and fetching from pull
//! consumers over HTTP.
//!
//! `next` sends one pull request (`$JS.API.CONSUMER.MSG.NEXT`) to a local
//! inbox and answers with what arrived: each message with its ack id, the
//! `$JS.ACK…` reply subject. `ack` publishes `+ACK`, `-NAK` or `+TERM` to
//! ack ids, exactly what a NATS client does with the reply subject.

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use herald_protocol::jetstream::AckMetadata;
use herald_protocol::jetstream::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::super::problem::Problem;
use super::super::Http;
use super::{
    call, call_json, created_or_ok, get_stored, json_body, MessageJson, NameKind, PathParams, QueryParams,
};

/// Most messages one `next` call fetches.
const NEXT_BATCH_MAX: u64 = 256;
/// Longest a `next` call waits for messages.
const NEXT_EXPIRES_MS_MAX: u64 = 10_000;
/// Wait beyond the pull request's own expiry for its closing status.
const NEXT_GRACE: Duration = Duration::from_secs(2);
/// Room in the inbox beyond the messages asked for (status messages).
const NEXT_STATUS_SLACK: usize = 8;
/// Most ack ids one `ack` call takes.
const ACK_IDS_MAX: usize = 1024;

/// `(stream, consumer)` from the path, checked.
fn names(stream: &str, consumer: &str) -> Result<(), Problem> {
    super::check_name(NameKind::Stream, stream)?;
    super::check_name(NameKind::Consumer, consumer)
}

/// `?offset=` of the consumer list.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListQuery {
    /// Skip this many consumers (pages hold up to 256).
    #[serde(default)]
    offset: u64,
}

/// `GET /v1/streams/{stream}/consumers`.
pub(crate) async fn list(
    State(http): State<Http>,
    PathParams(stream): PathParams<String>,
    QueryParams(query): QueryParams<ListQuery>,
) -> Result<Json<Value>, Problem> {
    super::check_name(NameKind::Stream, &stream)?;
    let request = json!({ "offset": query.offset }).to_string();
    let mut answer = call_json(&http, &format!("CONSUMER.LIST.{stream}"), request.as_bytes()).await?;
    if answer.get("consumers").is_none_or(Value::is_null) {
        answer["consumers"] = json!([]);
    }
    Ok(Json(answer))
}

/// The consumer's name in a configuration body (`name`, else
/// `durable_name`); `None` for an ephemeral consumer.
fn config_name(config: &Value) -> Result<Option<String>, Problem> {
    let Some(object) = config.as_object() else {
        return Err(Problem::bad_request(
            "invalid-json",
            "the body must be a JSON object (a consumer configuration)",
        ));
    };
    let mut found = None;
    for member in ["durable_name", "name"] {
        match object.get(member) {
            None | Some(Value::Null) => {}
            Some(Value::String(name)) if name.is_empty() => {}
            Some(Value::String(name)) => {
                super::check_name(NameKind::Consumer, name)?;
                found = Some(name.clone());
            }
            Some(_) => {
                return Err(Problem::bad_request(
                    "invalid-json",
                    format!("`{member}` must be a string"),
                ))
            }
        }
    }
    Ok(found)
}

/// `POST /v1/streams/{stream}/consumers`: the body is a consumer
/// configuration; durable when it names the consumer. 201 with the info
/// when created, 200 when an identical consumer exists, 409 when one
/// exists with another configuration.
pub(crate) async fn create(
    State(http): State<Http>,
    PathParams(stream): PathParams<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Problem> {
    super::check_name(NameKind::Stream, &stream)?;
    let config = json_body::<Value>(&headers, body)
        .await?
        .ok_or_else(|| Problem::bad_request("body-required", "the body must be a consumer configuration"))?;
    let name = config_name(&config)?;
    let request = json!({ "stream_name": stream, "config": config, "action": "create" }).to_string();
    let (api, existed) = match &name {
        Some(name) => {
            let existed = call::<Value>(&http, &format!("CONSUMER.INFO.{stream}.{name}"), b"")
                .await
                .is_ok();
            (format!("CONSUMER.CREATE.{stream}.{name}"), existed)
        }
        None => (format!("CONSUMER.CREATE.{stream}"), false),
    };
    let answer = call_json(&http, &api, request.as_bytes()).await?;
    Ok(created_or_ok(!existed, answer))
}

/// `GET /v1/streams/{stream}/consumers/{consumer}`.
pub(crate) async fn info(
    State(http): State<Http>,
    PathParams((stream, consumer)): PathParams<(String, String)>,
) -> Result<Json<Value>, Problem> {
    names(&stream, &consumer)?;
    Ok(Json(
        call_json(&http, &format!("CONSUMER.INFO.{stream}.{consumer}"), b"").await?,
    ))
}

/// `DELETE /v1/streams/{stream}/consumers/{consumer}`: 204.
pub(crate) async fn delete(
    State(http): State<Http>,
    PathParams((stream, consumer)): PathParams<(String, String)>,
) -> Result<StatusCode, Problem> {
    names(&stream, &consumer)?;
    call::<Value>(&http, &format!("CONSUMER.DELETE.{stream}.{consumer}"), b"").await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `?batch=&expires_ms=&ack=` of `next`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NextQuery {
    /// Messages wanted, 1 to [`NEXT_BATCH_MAX`] [default: 1].
    batch: Option<u64>,
    /// Wait up to this long for them; 0 answers with what is there now
    /// [default: 0].
    expires_ms: Option<u64>,
    /// Acknowledge the messages before answering [default: false].
    ack: Option<bool>,
}

/// One fetched message: the stored message and how to acknowledge it.
#[derive(Debug, Serialize)]
pub(crate) struct Fetched {
    #[serde(flatten)]
    message: MessageJson,
    /// Publish acks to this subject, or pass it to `…/ack`.
    ack_id: String,
    /// Delivery attempt, from 1.
    delivered: u64,
    /// The consumer's sequence of this delivery.
    consumer_seq: u64,
    /// Messages left for the consumer after this one.
    pending: u64,
    /// Whether it was acknowledged by this call (`ack=true`).
    acked: bool,
}

/// `POST /v1/streams/{stream}/consumers/{consumer}/next`: up to `batch`
/// messages of a pull consumer.
pub(crate) async fn next(
    State(http): State<Http>,
    PathParams((stream, consumer)): PathParams<(String, String)>,
    QueryParams(query): QueryParams<NextQuery>,
) -> Result<Json<Value>, Problem> {
    names(&stream, &consumer)?;
    let batch = query.batch.unwrap_or(1);
    if !(1..=NEXT_BATCH_MAX).contains(&batch) {
        return Err(Problem::bad_request(
            "invalid-query",
            format!("batch must be from 1 to {NEXT_BATCH_MAX}, not {batch}"),
        ));
    }
    let expires_ms = query.expires_ms.unwrap_or(0);
    if expires_ms > NEXT_EXPIRES_MS_MAX {
        return Err(Problem::bad_request(
            "invalid-query",
            format!("expires_ms must be at most {NEXT_EXPIRES_MS_MAX}, not {expires_ms}"),
        ));
    }
    // 404 for an unknown stream or consumer, 409 for a push consumer: the
    // pull request itself would only say "no responders".
    let info: Value = call(&http, &format!("CONSUMER.INFO.{stream}.{consumer}"), b"").await?;
    let deliver_subject = info["config"]["deliver_subject"].as_str().unwrap_or("");
    if !deliver_subject.is_empty() {
        return Err(Problem::new(
            StatusCode::CONFLICT,
            "push-consumer",
            format!("consumer {consumer} is a push consumer (it delivers to {deliver_subject}); only pull consumers can be fetched from"),
        ));
    }
    let request = if expires_ms == 0 {
        json!({ "batch": batch, "no_wait": true })
    } else {
        json!({ "batch": batch, "expires": expires_ms * 1_000_000 })
    };
    let mut inbox = http.local.inbox(batch as usize + NEXT_STATUS_SLACK);
    let subject = format!("$JS.API.CONSUMER.MSG.NEXT.{stream}.{consumer}");
    http.local.publish(
        subject.as_bytes(),
        Some(inbox.subject.as_bytes()),
        &[],
        request.to_string().as_bytes(),
    );
    let deadline = Instant::now() + Duration::from_millis(expires_ms) + NEXT_GRACE;
    let mut delivered = Vec::new();
    while (delivered.len() as u64) < batch {
        let left = deadline.saturating_duration_since(Instant::now());
        let Some(msg) = inbox.next(left).await else { break };
        match msg.status() {
            None => delivered.push(msg),
            Some(100) => continue,
            Some(409) if delivered.is_empty() => {
                let why = msg
                    .parsed_headers()
                    .and_then(|h| h.description)
                    .unwrap_or_else(|| "the pull request was refused".into());
                return Err(Problem::new(StatusCode::CONFLICT, "pull-refused", why));
            }
            // 404 No Messages, 408 Request Timeout, or a later refusal:
            // the request is over.
            Some(_) => break,
        }
    }
    let mut messages = Vec::with_capacity(delivered.len());
    for msg in delivered {
        let Some(reply) = msg.reply.as_ref().and_then(|r| std::str::from_utf8(r).ok()) else {
            continue;
        };
        let Ok(meta) = AckMetadata::parse_str(reply) else {
            continue;
        };
        // The delivery names the inbox; the stored subject comes from the
        // stream (the message is still there: acks have not been sent).
        let time = Timestamp::from_unix_nanos(meta.timestamp).to_rfc3339();
        let subject = get_stored(&http, &stream, json!({ "seq": meta.stream_seq }))
            .await
            .map(|stored| stored.subject)
            .unwrap_or_default();
        let message = MessageJson::new(
            &stream,
            subject,
            meta.stream_seq,
            time,
            &msg.headers,
            &msg.payload,
        );
        let acked = query.ack.unwrap_or(false);
        if acked {
            http.local.publish(reply.as_bytes(), None, &[], b"+ACK");
        }
        messages.push(Fetched {
            message,
            ack_id: reply.to_string(),
            delivered: meta.delivered,
            consumer_seq: meta.consumer_seq,
            pending: meta.pending,
            acked,
        });
    }
    Ok(Json(json!({ "messages": messages })))
}

/// What `ack` does to each message.
#[derive(Debug, Default, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub(crate) enum AckAction {
    /// `+ACK`: done with it.
    #[default]
    Ack,
    /// `-NAK`: deliver it again (after `delay_ms`).
    Nak,
    /// `+TERM`: never deliver it again.
    Term,
}

/// The body of `POST …/{consumer}/ack`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AckRequest {
    /// Ack ids from `next` (the `$JS.ACK…` reply subjects).
    ack_ids: Vec<String>,
    /// What to do [default: ack].
    #[serde(default)]
    action: AckAction,
    /// For `nak`: redeliver after this long [default: at once].
    #[serde(default)]
    delay_ms: Option<u64>,
}

/// `POST /v1/streams/{stream}/consumers/{consumer}/ack`: `{"acked": n}`.
pub(crate) async fn ack(
    State(http): State<Http>,
    PathParams((stream, consumer)): PathParams<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Problem> {
    names(&stream, &consumer)?;
    let request = json_body::<AckRequest>(&headers, body)
        .await?
        .ok_or_else(|| Problem::bad_request("body-required", "the body must be {\"ack_ids\": [...]}"))?;
    if request.ack_ids.len() > ACK_IDS_MAX {
        return Err(Problem::bad_request(
            "too-many-ack-ids",
            format!(
                "at most {ACK_IDS_MAX} ack ids per call, not {}",
                request.ack_ids.len()
            ),
        ));
    }
    if request.delay_ms.is_some() && request.action != AckAction::Nak {
        return Err(Problem::bad_request(
            "invalid-ack",
            "delay_ms goes with action nak only",
        ));
    }
    let delay_ns = request
        .delay_ms
        .map(|ms| ms.checked_mul(1_000_000).filter(|ns| *ns <= i64::MAX as u64))
        .map(|ns| ns.ok_or_else(|| Problem::bad_request("invalid-ack", "delay_ms is too large")))
        .transpose()?;
    for id in &request.ack_ids {
        let meta = AckMetadata::parse_str(id)
            .map_err(|e| Problem::bad_request("invalid-ack-id", format!("{id:?} is not an ack id: {e}")))?;
        if meta.stream != stream || meta.consumer != consumer {
            return Err(Problem::bad_request(
                "invalid-ack-id",
                format!(
                    "{id:?} is an ack id of consumer {} of stream {}",
                    meta.consumer, meta.stream
                ),
            ));
        }
        if herald_core::validate_literal_subject(id.as_bytes()).is_err() {
            return Err(Problem::bad_request(
                "invalid-ack-id",
                format!("{id:?} is not an ack id"),
            ));
        }
    }
    // Unknown stream or consumer: 404 rather than acks that go nowhere.
    call::<Value>(&http, &format!("CONSUMER.INFO.{stream}.{consumer}"), b"").await?;
    let body = match (request.action, delay_ns) {
        (AckAction::Ack, _) => b"+ACK".to_vec(),
        (AckAction::Nak, None) => b"-NAK".to_vec(),
        (AckAction::Nak, Some(ns)) => format!("-NAK {{\"delay\":{ns}}}").into_bytes(),
        (AckAction::Term, _) => b"+TERM".to_vec(),
    };
    for id in &request.ack_ids {
        http.local.publish(id.as_bytes(), None, &[], &body);
    }
    Ok(Json(json!({ "acked": request.ack_ids.len() })).into_response())
}
