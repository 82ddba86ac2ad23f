//! The administration API: `/v1/server`, `/v1/streams…`, `/v1/kv…`, and
//! the OpenAPI document at `/v1/openapi.json`.
//!
//! Every operation is the NATS-side JetStream API called through the
//! server's in-process client ([`crate::local::Local::js_api`]), so HTTP and
//! NATS clients see the same streams, consumers and buckets, and a request
//! is refused for the same reasons on both sides. JetStream errors become
//! problems with the JetStream `err_code` kept ([`api_problem`]).
//!
//! - [`server`]: server information and the document;
//! - [`streams`]: streams and their messages;
//! - [`consumers`]: consumers, fetching and acknowledging;
//! - [`kv`]: key-value buckets.
//!
//! Nothing a client sends may end in a plain-text error or a 5xx: path and
//! query values, JSON bodies and media types are checked by the extractors
//! here, and [`problem_safety_net`] turns whatever error axum itself answers
//! (405, …) into a problem.

mod consumers;
mod kv;
mod server;
mod streams;

use std::time::Duration;

use axum::body::Body;
use axum::extract::{FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use base64::Engine as _;
use herald_protocol::jetstream::api::{MsgGetResponse, StoredMsg};
use herald_protocol::jetstream::error::ErrorResponse;
use herald_protocol::jetstream::ApiError;
use herald_protocol::Headers;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::problem::Problem;
use super::Http;

/// Longest wait for a JetStream API answer.
const API_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest JSON body of an administration request (configurations).
const JSON_BODY_BYTES_MAX: usize = 1024 * 1024;
/// Longest stream, consumer or bucket name (a directory name on disk).
const NAME_LEN_MAX: usize = 255;
/// Most bytes of an error body read by [`problem_safety_net`].
const FOREIGN_ERROR_BYTES_MAX: usize = 4096;

/// Every `/v1` route (method, path), of every module: the routes the
/// OpenAPI document must describe, no more and no less. The document test
/// (`crates/herald/tests/http/admin.rs`) probes each one on the running
/// server and compares the list with the served document; the admin
/// router below registers its routes from these same paths.
pub const V1_ROUTES: &[(&str, &str)] = &[
    ("POST", "/v1/events"),
    ("POST", "/v1/events/{subject}"),
    ("GET", "/v1/events/{subject}"),
    ("GET", "/v1/webhooks"),
    ("POST", "/v1/webhooks"),
    ("GET", "/v1/webhooks/{name}"),
    ("DELETE", "/v1/webhooks/{name}"),
    ("GET", SERVER),
    ("GET", OPENAPI),
    ("GET", STREAMS),
    ("POST", STREAMS),
    ("GET", STREAM),
    ("PUT", STREAM),
    ("DELETE", STREAM),
    ("POST", STREAM_PURGE),
    ("GET", MESSAGES),
    ("GET", MESSAGE),
    ("DELETE", MESSAGE),
    ("GET", CONSUMERS),
    ("POST", CONSUMERS),
    ("GET", CONSUMER),
    ("DELETE", CONSUMER),
    ("POST", CONSUMER_NEXT),
    ("POST", CONSUMER_ACK),
    ("GET", BUCKETS),
    ("GET", BUCKET),
    ("PUT", BUCKET),
    ("DELETE", BUCKET),
    ("GET", BUCKET_KEYS),
    ("GET", KEY),
    ("PUT", KEY),
    ("DELETE", KEY),
];

const SERVER: &str = "/v1/server";
const OPENAPI: &str = "/v1/openapi.json";
const STREAMS: &str = "/v1/streams";
const STREAM: &str = "/v1/streams/{stream}";
const STREAM_PURGE: &str = "/v1/streams/{stream}/purge";
const MESSAGES: &str = "/v1/streams/{stream}/messages";
const MESSAGE: &str = "/v1/streams/{stream}/messages/{seq}";
const CONSUMERS: &str = "/v1/streams/{stream}/consumers";
const CONSUMER: &str = "/v1/streams/{stream}/consumers/{consumer}";
const CONSUMER_NEXT: &str = "/v1/streams/{stream}/consumers/{consumer}/next";
const CONSUMER_ACK: &str = "/v1/streams/{stream}/consumers/{consumer}/ack";
const BUCKETS: &str = "/v1/kv";
const BUCKET: &str = "/v1/kv/{bucket}";
const BUCKET_KEYS: &str = "/v1/kv/{bucket}/keys";
const KEY: &str = "/v1/kv/{bucket}/{key}";

/// The administration routes and the OpenAPI document.
pub(crate) fn routes() -> Router<Http> {
    Router::new()
        .route(SERVER, get(server::info))
        .route(OPENAPI, get(server::openapi))
        .route(STREAMS, get(streams::list).post(streams::create))
        .route(
            STREAM,
            get(streams::info).put(streams::update).delete(streams::delete),
        )
        .route(STREAM_PURGE, post(streams::purge))
        .route(MESSAGES, get(streams::last_message))
        .route(MESSAGE, get(streams::get_message).delete(streams::delete_message))
        .route(CONSUMERS, get(consumers::list).post(consumers::create))
        .route(CONSUMER, get(consumers::info).delete(consumers::delete))
        .route(CONSUMER_NEXT, post(consumers::next))
        .route(CONSUMER_ACK, post(consumers::ack))
        .route(BUCKETS, get(kv::list))
        .route(
            BUCKET,
            get(kv::bucket_info)
                .put(kv::create_bucket)
                .delete(kv::delete_bucket),
        )
        // `keys` is the listing; PUT and DELETE still reach the key named
        // `keys` (a static segment takes precedence over `{key}`).
        .route(
            BUCKET_KEYS,
            get(kv::keys).put(kv::put_keys_key).delete(kv::delete_keys_key),
        )
        .route(KEY, get(kv::get).put(kv::put).delete(kv::delete))
}

/// Middleware for every `/v1` route: an error response that is not a
/// problem already (axum's own 405, 413, 415, …) is replaced by one with
/// the same status and the original text as its detail.
pub(crate) async fn problem_safety_net(request: Request, next: Next) -> Response {
    let path = request.uri().path().to_string();
    let method = request.method().clone();
    let response = next.run(request).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) || is_problem(response.headers()) {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, FOREIGN_ERROR_BYTES_MAX)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .unwrap_or_default();
    let detail = match (status, text.is_empty()) {
        // (axum adds the Allow header outside this layer.)
        (StatusCode::METHOD_NOT_ALLOWED, _) => format!("{path} does not take {method}"),
        (_, false) => text,
        (_, true) => format!("{path}: {}", status.canonical_reason().unwrap_or("error")),
    };
    let slug = match status {
        StatusCode::METHOD_NOT_ALLOWED => "method-not-allowed",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported-media-type",
        StatusCode::PAYLOAD_TOO_LARGE => "payload-too-large",
        StatusCode::BAD_REQUEST => "bad-request",
        _ => "error",
    };
    let mut problem = Problem::new(status, slug, detail).into_response();
    for (name, value) in &parts.headers {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            problem.headers_mut().insert(name.clone(), value.clone());
        }
    }
    problem
}

fn is_problem(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("application/problem+json"))
}

/// A path extractor whose rejection is a problem (`axum::extract::Path`
/// answers in plain text).
pub(crate) struct PathParams<T>(pub T);

impl<T, S> FromRequestParts<S> for PathParams<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Problem> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| PathParams(p.0))
            .map_err(|e| Problem::bad_request("invalid-path", e.body_text()))
    }
}

/// A query-string extractor whose rejection is a problem.
pub(crate) struct QueryParams<T>(pub T);

impl<T, S> FromRequestParts<S> for QueryParams<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Problem> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| QueryParams(q.0))
            .map_err(|e| Problem::bad_request("invalid-query", e.body_text()))
    }
}

/// Reads a JSON request body of at most [`JSON_BODY_BYTES_MAX`] bytes;
/// `None` when it is empty. A body must be declared as JSON (or carry no
/// content type).
async fn json_body<T: DeserializeOwned>(headers: &HeaderMap, body: Body) -> Result<Option<T>, Problem> {
    let bytes = axum::body::to_bytes(body, JSON_BODY_BYTES_MAX)
        .await
        .map_err(|e| body_error(e, JSON_BODY_BYTES_MAX))?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    if let Some(content_type) = headers.get(header::CONTENT_TYPE) {
        let essence = content_type
            .to_str()
            .unwrap_or("")
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        if essence != "application/json" && !essence.ends_with("+json") {
            return Err(Problem::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                format!(
                    "the body must be application/json (Content-Type: application/json), not {essence:?}"
                ),
            ));
        }
    }
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| Problem::bad_request("invalid-json", format!("the body is not valid here: {e}")))
}

/// The problem for a body that could not be read.
fn body_error(e: axum::Error, limit: usize) -> Problem {
    if std::error::Error::source(&e).is_some_and(|s| s.is::<http_body_util::LengthLimitError>()) {
        Problem::too_large(limit)
    } else {
        Problem::bad_request("unreadable-body", format!("cannot read the body: {e}"))
    }
}

/// Calls `$JS.API.<api>` and decodes its answer as `T`; an `error` answer
/// becomes its problem.
async fn call<T: DeserializeOwned>(http: &Http, api: &str, body: &[u8]) -> Result<T, Problem> {
    let reply = http.local.js_api(api, body, API_TIMEOUT).await?;
    decode(&reply)
}

/// Decodes a JetStream API answer.
fn decode<T: DeserializeOwned>(reply: &[u8]) -> Result<T, Problem> {
    if let Ok(error) = serde_json::from_slice::<ErrorResponse>(reply) {
        return Err(api_problem(&error.error));
    }
    serde_json::from_slice(reply).map_err(|e| {
        Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "unexpected-reply",
            format!(
                "the JetStream API answered something unexpected ({e}): {}",
                String::from_utf8_lossy(reply)
            ),
        )
    })
}

/// Calls an API whose answer is passed on as it is, less its `type`.
async fn call_json(http: &Http, api: &str, body: &[u8]) -> Result<serde_json::Value, Problem> {
    let mut value: serde_json::Value = call(http, api, body).await?;
    if let Some(object) = value.as_object_mut() {
        object.remove("type");
    }
    Ok(value)
}

/// The problem for a JetStream API error. The status is the error's
/// `code`, except where nats-server's code calls the client's mistake a
/// server error or an HTTP client would expect a more precise status:
///
/// | err_code | NATS code | status |
/// |---|---|---|
/// | 10012, 10049, 10052, 10053, 10069, 10074, 10117 (invalid configurations) | 500 | 400 |
/// | 10013, 10058, 10105, 10106, 10148 (exists with another configuration) | 400 | 409 |
/// | 10057 "no message found" | 500 | 404 |
/// | 10057 other, 10109, 10110, 10111 (the stream forbids it) | 400/500 | 409 |
/// | 10054, 10097 (too large) | 400 | 413 |
pub(crate) fn api_problem(error: &ApiError) -> Problem {
    let status = match error.err_code {
        10012 | 10049 | 10052 | 10053 | 10069 | 10074 | 10117 => StatusCode::BAD_REQUEST,
        10013 | 10058 | 10105 | 10106 | 10148 => StatusCode::CONFLICT,
        10057 if error.description.contains("no message found") => StatusCode::NOT_FOUND,
        10057 | 10109 | 10110 | 10111 => StatusCode::CONFLICT,
        10054 | 10097 => StatusCode::PAYLOAD_TOO_LARGE,
        _ => return Problem::from_api(error),
    };
    Problem {
        err_code: Some(error.err_code),
        ..Problem::new(status, "jetstream", error.description.clone())
    }
}

/// What a name names, for messages.
#[derive(Debug, Clone, Copy)]
enum NameKind {
    Stream,
    Consumer,
}

impl NameKind {
    fn label(self) -> &'static str {
        match self {
            NameKind::Stream => "stream name",
            NameKind::Consumer => "consumer name",
        }
    }
}

/// Checks a stream or consumer name as the JetStream API will: one subject
/// token that is also a directory name.
fn check_name(kind: NameKind, name: &str) -> Result<(), Problem> {
    let label = kind.label();
    let bad = |why: String| Problem::bad_request("invalid-name", format!("{label} {name:?} {why}"));
    if name.is_empty() {
        return Err(bad("is empty".into()));
    }
    if name.len() > NAME_LEN_MAX {
        return Err(bad(format!("is longer than {NAME_LEN_MAX} bytes")));
    }
    if name.starts_with('.') {
        return Err(bad("starts with '.'".into()));
    }
    if let Some(c) = name
        .chars()
        .find(|&c| !c.is_ascii_graphic() || matches!(c, '.' | '*' | '>' | '/' | '\\'))
    {
        return Err(bad(format!(
            "contains {c:?}; names are printable ASCII without spaces, '.', '*', '>', '/' and '\\'"
        )));
    }
    Ok(())
}

/// Checks a subject filter (wildcards allowed).
fn check_filter(what: &str, subject: &str) -> Result<(), Problem> {
    herald_core::validate_subject(subject.as_bytes()).map_err(|e| {
        Problem::bad_request(
            "invalid-subject",
            format!("{what} {subject:?} is not a valid subject: {e}"),
        )
    })
}

/// A stored message as the administration API shows it.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct MessageJson {
    /// The stream holding it.
    pub stream: String,
    /// The subject it was published to.
    pub subject: String,
    /// Its stream sequence.
    pub seq: u64,
    /// When it was stored (RFC 3339).
    pub time: String,
    /// Its headers: each name with its values in order.
    pub headers: std::collections::BTreeMap<String, Vec<String>>,
    /// The payload, base64 (standard alphabet, padded).
    pub data: String,
    /// The payload as text, when it is UTF-8.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

impl MessageJson {
    /// The JSON form of a message of `stream`.
    pub fn new(
        stream: &str,
        subject: String,
        seq: u64,
        time: String,
        headers: &[u8],
        data: &[u8],
    ) -> MessageJson {
        MessageJson {
            stream: stream.to_string(),
            subject,
            seq,
            time,
            headers: headers_object(headers),
            data: base64::engine::general_purpose::STANDARD.encode(data),
            text: std::str::from_utf8(data).ok().map(str::to_string),
        }
    }

    fn from_stored(stream: &str, msg: StoredMsg) -> MessageJson {
        MessageJson::new(
            stream,
            msg.subject,
            msg.seq,
            msg.time.to_rfc3339(),
            &msg.hdrs,
            &msg.data,
        )
    }
}

/// A raw header block as an object of arrays (names as first written).
fn headers_object(block: &[u8]) -> std::collections::BTreeMap<String, Vec<String>> {
    let mut out = std::collections::BTreeMap::<String, Vec<String>>::new();
    let Some(headers) = (!block.is_empty()).then(|| Headers::parse(block).ok()).flatten() else {
        return out;
    };
    for (name, value) in headers.iter() {
        let key = out
            .keys()
            .find(|k| k.eq_ignore_ascii_case(name))
            .cloned()
            .unwrap_or_else(|| name.to_string());
        out.entry(key).or_default().push(value.to_string());
    }
    out
}

/// `STREAM.MSG.GET` of `stream` with a JSON request.
async fn get_stored(http: &Http, stream: &str, request: serde_json::Value) -> Result<StoredMsg, Problem> {
    let body = serde_json::to_vec(&request).unwrap_or_default();
    let response: MsgGetResponse = call(http, &format!("STREAM.MSG.GET.{stream}"), &body).await?;
    Ok(response.message)
}

/// `201 Created` or `200 OK` with a JSON body.
fn created_or_ok(created: bool, body: impl Serialize) -> Response {
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    (status, axum::Json(body)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked_precisely() {
        assert!(check_name(NameKind::Stream, "ORDERS_1-x").is_ok());
        for bad in ["", "a.b", "a*", "a>", "a b", ".x", "a/b", "é"] {
            let problem = check_name(NameKind::Stream, bad).unwrap_err();
            assert_eq!(problem.status, 400, "{bad:?}");
            assert!(problem.detail.contains("stream name"), "{}", problem.detail);
        }
        assert!(check_name(NameKind::Consumer, &"x".repeat(256)).is_err());
    }

    #[test]
    fn configuration_errors_are_client_errors() {
        let error = ApiError::with_arg(
            herald_protocol::jetstream::ApiErrorCode::StreamInvalidConfig,
            "invalid subject",
        );
        let problem = api_problem(&error);
        assert_eq!((problem.status, problem.err_code), (400, Some(10052)));
        let exists = ApiError::new(herald_protocol::jetstream::ApiErrorCode::StreamNameExist);
        assert_eq!(api_problem(&exists).status, 409);
        let missing = ApiError::new(herald_protocol::jetstream::ApiErrorCode::StreamNotFound);
        assert_eq!(api_problem(&missing).status, 404);
    }

    #[test]
    fn headers_group_values_by_name() {
        let block = b"NATS/1.0\r\nA: 1\r\nb: 2\r\na: 3\r\n\r\n";
        let object = headers_object(block);
        assert_eq!(object["A"], vec!["1", "3"]);
        assert_eq!(object["b"], vec!["2"]);
        assert!(headers_object(b"").is_empty());
    }
}
