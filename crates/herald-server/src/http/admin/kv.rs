//! `/v1/kv…`: key-value buckets, built as NATS clients build them.
//!
//! Bucket `b` is stream `KV_b` capturing `$KV.b.>`; key `k` is subject
//! `$KV.b.k`, its value the payload of the last message there, its
//! revision that message's sequence. A delete stores an empty message with
//! `KV-Operation: DEL`. Buckets made here are used by NATS KV clients and
//! the other way round.

use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use herald_protocol::jetstream::api::StoredMsg;
use herald_protocol::jetstream::error::ErrorResponse;
use herald_protocol::jetstream::PubAck;
use herald_protocol::Headers;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::super::problem::Problem;
use super::super::Http;
use super::{body_error, call, call_json, created_or_ok, get_stored, json_body, PathParams, NAME_LEN_MAX};

/// Header naming a KV operation (`DEL`, `PURGE`).
const KV_OPERATION: &str = "KV-Operation";
/// Reason header of server-written subject delete markers.
const MARKER_REASON: &str = "Nats-Marker-Reason";
/// Response header carrying a key's revision.
const REVISION_HEADER: &str = "Herald-Revision";
/// The most revisions a bucket keeps per key (as NATS clients allow).
const HISTORY_MAX: i64 = 64;
/// Longest key in bytes.
const KEY_LEN_MAX: usize = 1024;
/// Most keys one listing reads.
const KEYS_MAX: usize = 10_000;
/// Most buckets one listing reads.
const BUCKETS_MAX: usize = 10_000;
/// Longest a put waits for its PubAck.
const PUB_ACK_TIMEOUT: Duration = Duration::from_secs(5);

/// Checks a bucket name: letters, digits, `-` and `_`.
fn check_bucket(bucket: &str) -> Result<(), Problem> {
    let ok = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
    let bad = |why: String| Problem::bad_request("invalid-bucket", format!("bucket name {bucket:?} {why}"));
    if bucket.is_empty() {
        return Err(bad("is empty".into()));
    }
    if bucket.len() > NAME_LEN_MAX - 3 {
        return Err(bad(format!("is longer than {} bytes", NAME_LEN_MAX - 3)));
    }
    if let Some(c) = bucket.chars().find(|&c| !ok(c)) {
        return Err(bad(format!(
            "contains {c:?}; bucket names are letters, digits, '-' and '_'"
        )));
    }
    Ok(())
}

/// Checks a key: letters, digits and `-/_=.`, no empty `.`-separated token.
fn check_key(key: &str) -> Result<(), Problem> {
    let ok = |c: char| c.is_ascii_alphanumeric() || "-/_=.".contains(c);
    let bad = |why: String| Problem::bad_request("invalid-key", format!("key {key:?} {why}"));
    if key.is_empty() {
        return Err(bad("is empty".into()));
    }
    if key.len() > KEY_LEN_MAX {
        return Err(bad(format!("is longer than {KEY_LEN_MAX} bytes")));
    }
    if let Some(c) = key.chars().find(|&c| !ok(c)) {
        return Err(bad(format!(
            "contains {c:?}; keys are letters, digits and '-', '/', '_', '=', '.'"
        )));
    }
    if key.split('.').any(str::is_empty) {
        return Err(bad("starts or ends with '.' or has '..'".into()));
    }
    Ok(())
}

/// "stream not found" said of the bucket.
fn bucket_problem(bucket: &str, problem: Problem) -> Problem {
    if problem.err_code == Some(10059) {
        Problem {
            detail: format!("no bucket {bucket}"),
            ..problem
        }
    } else {
        problem
    }
}

/// `GET /v1/kv`: `{"buckets": [names]}`.
pub(crate) async fn list(State(http): State<Http>) -> Result<Json<Value>, Problem> {
    let mut buckets = Vec::new();
    let mut offset = 0u64;
    loop {
        let request = json!({ "offset": offset, "subject": "$KV.>" }).to_string();
        let page: Value = call(&http, "STREAM.NAMES", request.as_bytes()).await?;
        let names: Vec<&str> = page["streams"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        offset += names.len() as u64;
        buckets.extend(
            names
                .iter()
                .filter_map(|n| n.strip_prefix("KV_"))
                .map(str::to_string),
        );
        let total = page["total"].as_u64().unwrap_or(0);
        if names.is_empty() || offset >= total || buckets.len() >= BUCKETS_MAX {
            break;
        }
    }
    buckets.truncate(BUCKETS_MAX);
    buckets.sort();
    Ok(Json(json!({ "buckets": buckets })))
}

/// The body of `PUT /v1/kv/{bucket}`; all optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BucketRequest {
    /// Revisions kept per key, 1 to 64 [default: 1].
    history: Option<i64>,
    /// Entries older than this are removed; 0 keeps them [default: 0].
    ttl_ms: Option<u64>,
    /// Largest value in bytes, -1 unlimited [default: -1].
    max_value_size: Option<i32>,
    /// Most bytes in the bucket, -1 unlimited [default: -1].
    max_bytes: Option<i64>,
    /// Free text.
    description: Option<String>,
    /// `file` or `memory` [default: file].
    storage: Option<Storage>,
}

#[derive(Debug, Default, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum Storage {
    #[default]
    File,
    Memory,
}

/// A bucket as the API shows it.
#[derive(Debug, Serialize)]
pub(crate) struct BucketInfo {
    bucket: String,
    /// The stream behind it.
    stream: String,
    history: i64,
    ttl_ms: i64,
    max_value_size: i64,
    max_bytes: i64,
    storage: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    description: String,
    /// Entries stored (every revision and delete marker).
    values: u64,
    /// Bytes stored.
    bytes: u64,
}

impl BucketInfo {
    fn from_stream_info(bucket: &str, info: &Value) -> BucketInfo {
        let config = &info["config"];
        let int = |v: &Value| v.as_i64().unwrap_or(0);
        BucketInfo {
            bucket: bucket.to_string(),
            stream: format!("KV_{bucket}"),
            history: int(&config["max_msgs_per_subject"]),
            ttl_ms: int(&config["max_age"]) / 1_000_000,
            max_value_size: config["max_msg_size"].as_i64().unwrap_or(-1),
            max_bytes: int(&config["max_bytes"]),
            storage: config["storage"].as_str().unwrap_or("file").to_string(),
            description: config["description"].as_str().unwrap_or("").to_string(),
            values: info["state"]["messages"].as_u64().unwrap_or(0),
            bytes: info["state"]["bytes"].as_u64().unwrap_or(0),
        }
    }
}

fn invalid(detail: String) -> Problem {
    Problem::bad_request("invalid-bucket-config", detail)
}

/// The stream configuration of bucket `bucket`, as NATS KV clients write it.
fn stream_config(bucket: &str, request: &BucketRequest) -> Result<Value, Problem> {
    let history = request.history.unwrap_or(1);
    if !(1..=HISTORY_MAX).contains(&history) {
        return Err(invalid(format!(
            "history must be from 1 to {HISTORY_MAX}, not {history}"
        )));
    }
    let ttl_ns = request
        .ttl_ms
        .unwrap_or(0)
        .checked_mul(1_000_000)
        .and_then(|ns| i64::try_from(ns).ok())
        .ok_or_else(|| invalid("ttl_ms is too large".into()))?;
    let max_value_size = request.max_value_size.unwrap_or(-1);
    if max_value_size == 0 || max_value_size < -1 {
        return Err(invalid(format!(
            "max_value_size must be -1 (unlimited) or positive, not {max_value_size}"
        )));
    }
    let max_bytes = request.max_bytes.unwrap_or(-1);
    if max_bytes == 0 || max_bytes < -1 {
        return Err(invalid(format!(
            "max_bytes must be -1 (unlimited) or positive, not {max_bytes}"
        )));
    }
    Ok(json!({
        "name": format!("KV_{bucket}"),
        "description": request.description.clone().unwrap_or_default(),
        "subjects": [format!("$KV.{bucket}.>")],
        "max_msgs_per_subject": history,
        "max_bytes": max_bytes,
        "max_age": ttl_ns,
        "max_msg_size": max_value_size,
        "storage": request.storage.unwrap_or_default(),
        "num_replicas": 1,
        "allow_rollup_hdrs": true,
        "deny_delete": true,
        "deny_purge": false,
        "allow_direct": true,
        "discard": "new",
    }))
}

/// `PUT /v1/kv/{bucket}`: 201 when created, 200 when it exists with the
/// same settings, 409 with other settings.
pub(crate) async fn create_bucket(
    State(http): State<Http>,
    PathParams(bucket): PathParams<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Problem> {
    check_bucket(&bucket)?;
    let request = json_body::<BucketRequest>(&headers, body)
        .await?
        .unwrap_or_default();
    let config = stream_config(&bucket, &request)?.to_string();
    let mut info = call_json(&http, &format!("STREAM.CREATE.KV_{bucket}"), config.as_bytes()).await?;
    let created = info
        .as_object_mut()
        .and_then(|o| o.remove("did_create"))
        .and_then(|v| v.as_bool())
        .unwrap_or(false);
    Ok(created_or_ok(
        created,
        BucketInfo::from_stream_info(&bucket, &info),
    ))
}

/// `GET /v1/kv/{bucket}`.
pub(crate) async fn bucket_info(
    State(http): State<Http>,
    PathParams(bucket): PathParams<String>,
) -> Result<Json<BucketInfo>, Problem> {
    check_bucket(&bucket)?;
    let info = call_json(&http, &format!("STREAM.INFO.KV_{bucket}"), b"")
        .await
        .map_err(|p| bucket_problem(&bucket, p))?;
    Ok(Json(BucketInfo::from_stream_info(&bucket, &info)))
}

/// `DELETE /v1/kv/{bucket}`: 204.
pub(crate) async fn delete_bucket(
    State(http): State<Http>,
    PathParams(bucket): PathParams<String>,
) -> Result<StatusCode, Problem> {
    check_bucket(&bucket)?;
    call::<Value>(&http, &format!("STREAM.DELETE.KV_{bucket}"), b"")
        .await
        .map_err(|p| bucket_problem(&bucket, p))?;
    Ok(StatusCode::NO_CONTENT)
}

/// Whether a stored entry is a delete or purge marker rather than a value.
fn is_marker(msg: &StoredMsg) -> bool {
    let Ok(Some(headers)) = msg.headers() else {
        return false;
    };
    match headers.get(KV_OPERATION) {
        Some(op) => op == "DEL" || op == "PURGE",
        None => matches!(headers.get(MARKER_REASON), Some("MaxAge" | "Purge" | "Remove")),
    }
}

/// The latest entry of `key` (markers included); `None` if it has none.
async fn latest(http: &Http, bucket: &str, key: &str) -> Result<Option<StoredMsg>, Problem> {
    let request = json!({ "last_by_subj": format!("$KV.{bucket}.{key}") });
    match get_stored(http, &format!("KV_{bucket}"), request).await {
        Ok(msg) => Ok(Some(msg)),
        Err(problem) if problem.err_code == Some(10037) => Ok(None),
        Err(problem) => Err(bucket_problem(bucket, problem)),
    }
}

/// `GET /v1/kv/{bucket}/keys`: `{"keys": [...], "truncated": bool}`, the
/// keys that have a value, sorted.
pub(crate) async fn keys(
    State(http): State<Http>,
    PathParams(bucket): PathParams<String>,
) -> Result<Json<Value>, Problem> {
    check_bucket(&bucket)?;
    let prefix = format!("$KV.{bucket}.");
    let request = json!({ "subjects_filter": format!("{prefix}>") }).to_string();
    let info: Value = call(&http, &format!("STREAM.INFO.KV_{bucket}"), request.as_bytes())
        .await
        .map_err(|p| bucket_problem(&bucket, p))?;
    let subjects: Vec<String> = info["state"]["subjects"]
        .as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default();
    let truncated = subjects.len() > KEYS_MAX;
    let mut keys = Vec::new();
    for subject in subjects.iter().take(KEYS_MAX) {
        let Some(key) = subject.strip_prefix(&prefix) else {
            continue;
        };
        // A key whose latest entry is a marker has no value.
        if latest(&http, &bucket, key).await?.is_some_and(|m| !is_marker(&m)) {
            keys.push(key.to_string());
        }
    }
    Ok(Json(json!({ "keys": keys, "truncated": truncated })))
}

/// `GET /v1/kv/{bucket}/{key}`: the value as it is, with its revision in
/// `Herald-Revision`; 404 when the key has no value.
pub(crate) async fn get(
    State(http): State<Http>,
    PathParams((bucket, key)): PathParams<(String, String)>,
) -> Result<Response, Problem> {
    check_bucket(&bucket)?;
    check_key(&key)?;
    let Some(entry) = latest(&http, &bucket, &key).await? else {
        return Err(Problem::not_found(format!(
            "key {key} has no value in bucket {bucket}"
        )));
    };
    if is_marker(&entry) {
        return Err(Problem::not_found(format!(
            "key {key} was deleted from bucket {bucket} (revision {})",
            entry.seq
        )));
    }
    let mut response = ([(header::CONTENT_TYPE, "application/octet-stream")], entry.data).into_response();
    response
        .headers_mut()
        .insert(REVISION_HEADER, HeaderValue::from(entry.seq));
    Ok(response)
}

/// What `If-Match` / `If-None-Match` ask of a put.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Condition {
    None,
    /// The key's latest revision must be this one.
    Revision(u64),
    /// The key must have no value.
    Absent,
}

fn condition(headers: &HeaderMap) -> Result<Condition, Problem> {
    let text = |name: header::HeaderName| -> Result<Option<String>, Problem> {
        headers
            .get(&name)
            .map(|v| {
                v.to_str().map(|s| s.trim().to_string()).map_err(|_| {
                    Problem::bad_request("invalid-header", format!("{name} is not visible ASCII"))
                })
            })
            .transpose()
    };
    match (text(header::IF_MATCH)?, text(header::IF_NONE_MATCH)?) {
        (None, None) => Ok(Condition::None),
        (Some(_), Some(_)) => Err(Problem::bad_request(
            "invalid-condition",
            "give If-Match or If-None-Match, not both",
        )),
        (Some(revision), None) => revision
            .trim_matches('"')
            .parse()
            .map(Condition::Revision)
            .map_err(|_| {
                Problem::bad_request(
                    "invalid-condition",
                    format!("If-Match must be a revision (a whole number), not {revision:?}"),
                )
            }),
        (None, Some(star)) if star == "*" => Ok(Condition::Absent),
        (None, Some(other)) => Err(Problem::bad_request(
            "invalid-condition",
            format!("If-None-Match takes only *, not {other:?}"),
        )),
    }
}

/// Publishes an entry of `key` and waits for its PubAck; the revision.
async fn publish(
    http: &Http,
    bucket: &str,
    key: &str,
    headers: &Headers,
    value: &[u8],
) -> Result<u64, Problem> {
    let subject = format!("$KV.{bucket}.{key}");
    let block = if headers.is_empty() {
        Vec::new()
    } else {
        headers.to_bytes()
    };
    let max_payload = http.server.config.max_payload;
    if block.len() + value.len() > max_payload {
        return Err(Problem::too_large(max_payload));
    }
    let (_, inbox) = http.local.publish_for_ack(subject.as_bytes(), &block, value);
    let Some(mut inbox) = inbox else {
        return Err(Problem {
            err_code: Some(10059),
            ..Problem::not_found(format!("no bucket {bucket}"))
        });
    };
    let Some(reply) = inbox.next(PUB_ACK_TIMEOUT).await else {
        return Err(Problem::new(
            StatusCode::GATEWAY_TIMEOUT,
            "timeout",
            format!("the bucket did not confirm within {PUB_ACK_TIMEOUT:?}"),
        ));
    };
    if let Ok(error) = serde_json::from_slice::<ErrorResponse>(&reply.payload) {
        let error = error.error;
        let status = match error.err_code {
            10071 => StatusCode::PRECONDITION_FAILED,
            // A bucket at its limits (max_bytes with discard new).
            10077 if error.description.contains("exceeded") => StatusCode::CONFLICT,
            _ => return Err(super::api_problem(&error)),
        };
        return Err(Problem {
            err_code: Some(error.err_code),
            ..Problem::new(status, "jetstream", error.description)
        });
    }
    match serde_json::from_slice::<PubAck>(&reply.payload) {
        Ok(ack) if !ack.stream.is_empty() => Ok(ack.seq),
        _ => Err(Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "unexpected-reply",
            format!(
                "the bucket answered {:?}",
                String::from_utf8_lossy(&reply.payload)
            ),
        )),
    }
}

/// Checks that `bucket` exists, so that nothing is published for a
/// bucket that is not there.
async fn require_bucket(http: &Http, bucket: &str) -> Result<(), Problem> {
    call::<Value>(http, &format!("STREAM.INFO.KV_{bucket}"), b"")
        .await
        .map(|_| ())
        .map_err(|p| bucket_problem(bucket, p))
}

/// `PUT /v1/kv/{bucket}/{key}`: `{"revision": n}`. `If-Match: <revision>`
/// writes only over that revision, `If-None-Match: *` only when the key
/// has no value; 412 otherwise.
pub(crate) async fn put(
    State(http): State<Http>,
    PathParams((bucket, key)): PathParams<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>, Problem> {
    put_value(&http, &bucket, &key, &headers, body).await
}

/// `PUT /v1/kv/{bucket}/keys`: the key named `keys`.
pub(crate) async fn put_keys_key(
    State(http): State<Http>,
    PathParams(bucket): PathParams<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>, Problem> {
    put_value(&http, &bucket, "keys", &headers, body).await
}

async fn put_value(
    http: &Http,
    bucket: &str,
    key: &str,
    headers: &HeaderMap,
    body: Body,
) -> Result<Json<Value>, Problem> {
    check_bucket(bucket)?;
    check_key(key)?;
    let condition = condition(headers)?;
    let max_payload = http.server.config.max_payload;
    let value = axum::body::to_bytes(body, max_payload)
        .await
        .map_err(|e| body_error(e, max_payload))?;
    require_bucket(http, bucket).await?;
    let expect = |revision: u64| {
        let mut h = Headers::new();
        h.append("Nats-Expected-Last-Subject-Sequence", revision.to_string());
        h
    };
    let revision = match condition {
        Condition::None => publish(http, bucket, key, &Headers::new(), &value).await?,
        Condition::Revision(revision) => publish(http, bucket, key, &expect(revision), &value).await?,
        Condition::Absent => match publish(http, bucket, key, &expect(0), &value).await {
            Ok(revision) => revision,
            // A key whose latest entry is a delete marker has no value
            // either: write over the marker (as NATS clients' create does).
            Err(first) if first.status == 412 => match latest(http, bucket, key).await? {
                Some(marker) if is_marker(&marker) => {
                    publish(http, bucket, key, &expect(marker.seq), &value).await?
                }
                _ => {
                    return Err(Problem {
                        detail: format!("key {key} has a value already (If-None-Match: *)"),
                        ..first
                    })
                }
            },
            Err(other) => return Err(other),
        },
    };
    Ok(Json(json!({ "revision": revision })))
}

/// `DELETE /v1/kv/{bucket}/{key}`: writes a delete marker; 204.
pub(crate) async fn delete(
    State(http): State<Http>,
    PathParams((bucket, key)): PathParams<(String, String)>,
) -> Result<StatusCode, Problem> {
    delete_key(&http, &bucket, &key).await
}

/// `DELETE /v1/kv/{bucket}/keys`: the key named `keys`.
pub(crate) async fn delete_keys_key(
    State(http): State<Http>,
    PathParams(bucket): PathParams<String>,
) -> Result<StatusCode, Problem> {
    delete_key(&http, &bucket, "keys").await
}

async fn delete_key(http: &Http, bucket: &str, key: &str) -> Result<StatusCode, Problem> {
    check_bucket(bucket)?;
    check_key(key)?;
    require_bucket(http, bucket).await?;
    let mut headers = Headers::new();
    headers.append(KV_OPERATION, "DEL");
    publish(http, bucket, key, &headers, b"").await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_and_key_names() {
        assert!(check_bucket("config-1_x").is_ok());
        for bad in ["", "a.b", "a b", "a*"] {
            assert_eq!(check_bucket(bad).unwrap_err().status, 400, "{bad:?}");
        }
        assert!(check_key("a/b=c.d_e-f").is_ok());
        for bad in ["", ".a", "a.", "a..b", "a*", "a>", "a b"] {
            assert_eq!(check_key(bad).unwrap_err().status, 400, "{bad:?}");
        }
    }

    #[test]
    fn conditions() {
        let mut headers = HeaderMap::new();
        assert_eq!(condition(&headers).unwrap(), Condition::None);
        headers.insert(header::IF_MATCH, HeaderValue::from_static("\"7\""));
        assert_eq!(condition(&headers).unwrap(), Condition::Revision(7));
        headers.insert(header::IF_NONE_MATCH, HeaderValue::from_static("*"));
        assert!(condition(&headers).is_err());
        headers.remove(header::IF_MATCH);
        assert_eq!(condition(&headers).unwrap(), Condition::Absent);
        headers.insert(header::IF_NONE_MATCH, HeaderValue::from_static("x"));
        assert!(condition(&headers).is_err());
    }

    #[test]
    fn bucket_configs_are_bounded() {
        let ok = stream_config("b", &BucketRequest::default()).unwrap();
        assert_eq!(ok["subjects"][0], "$KV.b.>");
        assert_eq!(ok["max_msgs_per_subject"], 1);
        for bad in [
            BucketRequest {
                history: Some(65),
                ..Default::default()
            },
            BucketRequest {
                ttl_ms: Some(u64::MAX),
                ..Default::default()
            },
            BucketRequest {
                max_value_size: Some(0),
                ..Default::default()
            },
        ] {
            assert!(stream_config("b", &bad).is_err());
        }
    }
}
