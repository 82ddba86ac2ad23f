//! `POST /v1/events/{subject}` and `POST /v1/events`: publishing over HTTP.
//!
//! The body is read by its media type:
//! - `application/cloudevents+json`: one event in structured mode;
//! - `application/cloudevents-batch+json`: an array of them;
//! - any type with a `ce-specversion` header: one event in binary mode;
//! - anything else: a plain message, the body as payload.
//!
//! A CloudEvent becomes a message whose `ce-*` headers are its attributes,
//! `content-type` its data content type and `Nats-Msg-Id` its `source` and
//! `id` ([`CloudEvent::dedup_id`]), so a capturing stream drops a retried
//! event within its duplicate window. The answer comes once the message is
//! routed to every subscriber, or, when a stream captures the subject, once
//! the stream stored it (the PubAck).

use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use herald_protocol::cloudevents::CloudEvent;
use herald_protocol::jetstream::error::ErrorResponse;
use herald_protocol::jetstream::PubAck;
use herald_protocol::Headers;
use serde::Serialize;

use super::problem::Problem;
use super::Http;

/// Longest a publish waits for its stream's PubAck.
const PUB_ACK_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest batch body (each event is also bounded by the max payload).
pub(crate) const BATCH_BODY_BYTES_MAX: usize = 16 * 1024 * 1024;
/// HTTP headers copied onto the message as they are: JetStream's publish
/// expectations and dedup id.
const FORWARDED_PREFIX: &str = "nats-";

/// What happened to one published message.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct PublishResult {
    /// The subject it was published to.
    pub subject: String,
    /// Some subscriber or stream took it.
    pub delivered: bool,
    /// The stream that stored it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream: Option<String>,
    /// Its sequence in that stream (the original's, for a duplicate).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    /// The stream had it already (same id within the duplicate window).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub duplicate: bool,
}

/// The answer to a batch: one entry per event, in order.
#[derive(Debug, Serialize)]
struct BatchResult {
    results: Vec<BatchEntry>,
}

#[derive(Debug, Serialize)]
#[serde(untagged)]
enum BatchEntry {
    Ok(PublishResult),
    Failed { error: Problem },
}

/// `POST /v1/events/{subject}`.
pub(crate) async fn publish_to_subject(
    State(http): State<Http>,
    Path(subject): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Problem> {
    counted(&http, ingest(&http, Some(&subject), &headers, body).await)
}

/// `POST /v1/events`: CloudEvents only; the subject comes from the
/// configured template over `type`, `source` and `subject`.
pub(crate) async fn publish_by_template(
    State(http): State<Http>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Problem> {
    counted(&http, ingest(&http, None, &headers, body).await)
}

fn counted(http: &Http, result: Result<Response, Problem>) -> Result<Response, Problem> {
    if result.is_err() {
        http.server.http_stats.ingest_refused.fetch_add(1, Relaxed);
    }
    result
}

async fn ingest(
    http: &Http,
    subject: Option<&str>,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, Problem> {
    let max_payload = http.server.config.max_payload;
    let content_type = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let essence = content_type
        .as_deref()
        .map(|t| t.split(';').next().unwrap_or("").trim().to_ascii_lowercase());
    let limit = if essence.as_deref() == Some("application/cloudevents-batch+json") {
        BATCH_BODY_BYTES_MAX
    } else {
        max_payload
    };
    let body = read_body(body, limit).await?;
    match essence.as_deref() {
        Some("application/cloudevents-batch+json") => {
            let events = CloudEvent::parse_batch(&body).map_err(invalid_event)?;
            let mut results = Vec::with_capacity(events.len());
            let mut failed = 0;
            for event in &events {
                let entry = match publish_event(http, subject, event).await {
                    Ok(result) => BatchEntry::Ok(result),
                    Err(error) => {
                        failed += 1;
                        BatchEntry::Failed { error }
                    }
                };
                results.push(entry);
            }
            let status = if failed == 0 {
                StatusCode::OK
            } else {
                StatusCode::MULTI_STATUS
            };
            Ok((status, Json(BatchResult { results })).into_response())
        }
        Some("application/cloudevents+json") => {
            let event = CloudEvent::parse_structured(&body).map_err(invalid_event)?;
            Ok(Json(publish_event(http, subject, &event).await?).into_response())
        }
        _ if CloudEvent::is_binary(headers.keys().map(|k| k.as_str())) => {
            let pairs = headers
                .iter()
                .filter_map(|(name, value)| Some((name.as_str(), value.to_str().ok()?)));
            let event = CloudEvent::from_binary(pairs, content_type.as_deref(), body.to_vec())
                .map_err(invalid_event)?;
            Ok(Json(publish_event(http, subject, &event).await?).into_response())
        }
        _ => {
            let Some(subject) = subject else {
                return Err(Problem::bad_request(
                    "subject-required",
                    "POST /v1/events takes CloudEvents only (the subject comes from their attributes); \
                     publish a plain body to /v1/events/{subject}",
                ));
            };
            let mut message_headers = Headers::new();
            if let Some(content_type) = &content_type {
                message_headers.append("content-type", content_type);
            }
            forward_nats_headers(headers, &mut message_headers)?;
            if let Some(key) = headers.get("idempotency-key").and_then(|v| v.to_str().ok()) {
                if message_headers.get("Nats-Msg-Id").is_none() {
                    message_headers.append("Nats-Msg-Id", key);
                }
            }
            let block = if message_headers.is_empty() {
                Vec::new()
            } else {
                message_headers.to_bytes()
            };
            let result = publish(http, subject, &block, &body).await?;
            Ok(Json(result).into_response())
        }
    }
}

/// Reads the whole body, refusing more than `limit` bytes with a 413.
async fn read_body(body: Body, limit: usize) -> Result<Bytes, Problem> {
    axum::body::to_bytes(body, limit).await.map_err(|e| {
        if std::error::Error::source(&e).is_some_and(|s| s.is::<http_body_util::LengthLimitError>()) {
            Problem::too_large(limit)
        } else {
            Problem::bad_request("unreadable-body", format!("cannot read the body: {e}"))
        }
    })
}

fn invalid_event(e: herald_protocol::cloudevents::CloudEventError) -> Problem {
    Problem::bad_request("invalid-cloudevent", e.to_string())
}

/// Copies `Nats-*` request headers (`Nats-Msg-Id`, `Nats-Expected-…`) onto
/// the message.
fn forward_nats_headers(from: &HeaderMap, to: &mut Headers) -> Result<(), Problem> {
    for (name, value) in from {
        if !name.as_str().starts_with(FORWARDED_PREFIX) {
            continue;
        }
        let value = value.to_str().map_err(|_| {
            Problem::bad_request("invalid-header", format!("header {name} is not visible ASCII"))
        })?;
        to.append(canonical_nats_name(name.as_str()), value);
    }
    Ok(())
}

/// `nats-msg-id` → `Nats-Msg-Id` (HTTP lowercases names; JetStream
/// clients write them capitalised, and tools display them so).
fn canonical_nats_name(lower: &str) -> String {
    lower
        .split('-')
        .map(|part| {
            let mut chars = part.chars();
            match chars.next() {
                Some(first) => first.to_ascii_uppercase().to_string() + chars.as_str(),
                None => String::new(),
            }
        })
        .collect::<Vec<_>>()
        .join("-")
}

/// Publishes one CloudEvent to `subject`, or to the subject the template
/// makes of its attributes.
async fn publish_event(
    http: &Http,
    subject: Option<&str>,
    event: &CloudEvent,
) -> Result<PublishResult, Problem> {
    let subject = match subject {
        Some(subject) => subject.to_string(),
        None => render_template(&http.server.config.http_subject_template, event)?,
    };
    let mut block = Vec::with_capacity(256);
    event.write_headers(true, &mut block);
    publish(http, &subject, &block, &event.data).await
}

/// Replaces `{type}`, `{source}` and `{subject}` in `template`.
fn render_template(template: &str, event: &CloudEvent) -> Result<String, Problem> {
    let mut subject = template.to_string();
    for name in ["type", "source", "subject"] {
        let placeholder = format!("{{{name}}}");
        if subject.contains(&placeholder) {
            let value = event.attribute(name).ok_or_else(|| {
                Problem::bad_request(
                    "subject-template",
                    format!(
                        "the subject template `{template}` needs attribute `{name}`, which the event lacks"
                    ),
                )
            })?;
            subject = subject.replace(&placeholder, value);
        }
    }
    Ok(subject)
}

/// Publishes a message (`block`: an encoded header block or empty) and,
/// when a stream captures it, waits for the PubAck.
pub(crate) async fn publish(
    http: &Http,
    subject: &str,
    block: &[u8],
    payload: &[u8],
) -> Result<PublishResult, Problem> {
    if let Err(e) = herald_core::validate_literal_subject(subject.as_bytes()) {
        return Err(Problem::bad_request(
            "invalid-subject",
            format!("`{subject}` is not a valid subject to publish to: {e}"),
        ));
    }
    let max_payload = http.server.config.max_payload;
    if block.len() + payload.len() > max_payload {
        return Err(Problem::too_large(max_payload));
    }
    let started = std::time::Instant::now();
    let (published, inbox) = http.local.publish_for_ack(subject.as_bytes(), block, payload);
    let mut result = PublishResult {
        subject: subject.to_string(),
        delivered: published.delivered,
        stream: None,
        seq: None,
        duplicate: false,
    };
    let Some(mut inbox) = inbox else {
        http.server.http_stats.ingested.fetch_add(1, Relaxed);
        return Ok(result);
    };
    let Some(reply) = inbox.next(PUB_ACK_TIMEOUT).await else {
        return Err(Problem::new(
            StatusCode::GATEWAY_TIMEOUT,
            "timeout",
            format!("the stream did not confirm within {PUB_ACK_TIMEOUT:?}"),
        ));
    };
    // A PubAck, or an error reply with the stream's name: look for the
    // error member before parsing for it (the common case is a PubAck).
    let refused = memchr::memmem::find(&reply.payload, b"\"error\"").is_some();
    if let Some(error) = refused
        .then(|| serde_json::from_slice::<ErrorResponse>(&reply.payload).ok())
        .flatten()
    {
        return Err(Problem::from_api(&error.error));
    }
    match serde_json::from_slice::<PubAck>(&reply.payload) {
        Ok(ack) if !ack.stream.is_empty() => {
            http.server.http_stats.ingested.fetch_add(1, Relaxed);
            http.server.http_stats.ingest_latency.observe(started.elapsed());
            result.stream = Some(ack.stream);
            result.seq = Some(ack.seq);
            result.duplicate = ack.duplicate;
            Ok(result)
        }
        _ => Err(Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "unexpected-reply",
            format!(
                "the stream answered {:?}",
                String::from_utf8_lossy(&reply.payload)
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nats_header_names_are_capitalised() {
        assert_eq!(canonical_nats_name("nats-msg-id"), "Nats-Msg-Id");
        assert_eq!(
            canonical_nats_name("nats-expected-last-subject-sequence"),
            "Nats-Expected-Last-Subject-Sequence"
        );
    }

    #[test]
    fn templates_need_their_attributes() {
        let event = CloudEvent {
            attributes: vec![
                ("type".into(), "order.created".into()),
                ("source".into(), "shop".into()),
            ],
            ..CloudEvent::default()
        };
        assert_eq!(
            render_template("ev.{source}.{type}", &event).unwrap(),
            "ev.shop.order.created"
        );
        assert!(render_template("ev.{subject}", &event).is_err());
    }
}
