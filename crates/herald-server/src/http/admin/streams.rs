//! `/v1/streams…`: streams and their stored messages.
//!
//! Configurations are passed to the JetStream API as the client wrote
//! them (only the name is checked first, since it becomes a subject
//! token), so they are read, defaulted and refused exactly as on the NATS
//! side. Answers are the JetStream API's JSON less its `type`.

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::super::problem::Problem;
use super::super::Http;
use super::{
    call, call_json, check_filter, check_name, created_or_ok, get_stored, json_body, MessageJson, NameKind,
    PathParams, QueryParams,
};

/// `?offset=&subject=` of the stream list.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListQuery {
    /// Skip this many streams (pages hold up to 256).
    #[serde(default)]
    offset: u64,
    /// Only streams capturing subjects that overlap this one.
    #[serde(default)]
    subject: Option<String>,
}

/// `GET /v1/streams`.
pub(crate) async fn list(
    State(http): State<Http>,
    QueryParams(query): QueryParams<ListQuery>,
) -> Result<Json<Value>, Problem> {
    let mut request = json!({ "offset": query.offset });
    if let Some(subject) = &query.subject {
        check_filter("subject", subject)?;
        request["subject"] = json!(subject);
    }
    let mut answer = call_json(&http, "STREAM.LIST", request.to_string().as_bytes()).await?;
    // A page past the end lists nothing rather than null.
    if answer.get("streams").is_none_or(Value::is_null) {
        answer["streams"] = json!([]);
    }
    Ok(Json(answer))
}

/// The `name` member of a configuration body, checked.
fn config_name(config: &Value) -> Result<Option<String>, Problem> {
    let Some(object) = config.as_object() else {
        return Err(Problem::bad_request(
            "invalid-json",
            "the body must be a JSON object (a stream configuration)",
        ));
    };
    match object.get("name") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(name)) if name.is_empty() => Ok(None),
        Some(Value::String(name)) => {
            check_name(NameKind::Stream, name)?;
            Ok(Some(name.clone()))
        }
        Some(_) => Err(Problem::bad_request("invalid-json", "`name` must be a string")),
    }
}

/// A configuration body, required.
async fn config_body(headers: &HeaderMap, body: Body) -> Result<Value, Problem> {
    json_body::<Value>(headers, body)
        .await?
        .ok_or_else(|| Problem::bad_request("body-required", "the body must be a stream configuration"))
}

/// Stream create/update/info answers: the info, less `did_create`.
fn info_of(mut answer: Value) -> (bool, Value) {
    let created = answer
        .as_object_mut()
        .and_then(|o| o.remove("did_create"))
        .and_then(|v| v.as_bool())
        .unwrap_or(false);
    (created, answer)
}

/// `POST /v1/streams`: 201 with the info when created; 200 when an
/// identical stream exists; 409 when it exists with another configuration.
pub(crate) async fn create(
    State(http): State<Http>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Problem> {
    let config = config_body(&headers, body).await?;
    let Some(name) = config_name(&config)? else {
        return Err(Problem::bad_request(
            "name-required",
            "the stream configuration needs a `name`",
        ));
    };
    let answer = call_json(
        &http,
        &format!("STREAM.CREATE.{name}"),
        config.to_string().as_bytes(),
    )
    .await?;
    let (created, info) = info_of(answer);
    Ok(created_or_ok(created, info))
}

/// `GET /v1/streams/{stream}`.
pub(crate) async fn info(
    State(http): State<Http>,
    PathParams(stream): PathParams<String>,
) -> Result<Json<Value>, Problem> {
    check_name(NameKind::Stream, &stream)?;
    let answer = call_json(&http, &format!("STREAM.INFO.{stream}"), b"").await?;
    Ok(Json(info_of(answer).1))
}

/// `PUT /v1/streams/{stream}`: the new configuration; its `name`, if set,
/// must be the stream's.
pub(crate) async fn update(
    State(http): State<Http>,
    PathParams(stream): PathParams<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>, Problem> {
    check_name(NameKind::Stream, &stream)?;
    let config = config_body(&headers, body).await?;
    config_name(&config)?;
    let answer = call_json(
        &http,
        &format!("STREAM.UPDATE.{stream}"),
        config.to_string().as_bytes(),
    )
    .await?;
    Ok(Json(info_of(answer).1))
}

/// `DELETE /v1/streams/{stream}`: 204.
pub(crate) async fn delete(
    State(http): State<Http>,
    PathParams(stream): PathParams<String>,
) -> Result<StatusCode, Problem> {
    check_name(NameKind::Stream, &stream)?;
    call::<Value>(&http, &format!("STREAM.DELETE.{stream}"), b"").await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The body of `POST /v1/streams/{stream}/purge`; all optional.
#[derive(Debug, Default, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PurgeRequest {
    /// Only messages on subjects matching this filter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    filter: Option<String>,
    /// Purge up to, not including, this sequence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    seq: Option<u64>,
    /// Keep this many of the newest messages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    keep: Option<u64>,
}

/// `POST /v1/streams/{stream}/purge`: `{"purged": n}`.
pub(crate) async fn purge(
    State(http): State<Http>,
    PathParams(stream): PathParams<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>, Problem> {
    check_name(NameKind::Stream, &stream)?;
    let request = json_body::<PurgeRequest>(&headers, body)
        .await?
        .unwrap_or_default();
    if let Some(filter) = &request.filter {
        check_filter("filter", filter)?;
    }
    if request.seq.is_some_and(|s| s > 0) && request.keep.is_some_and(|k| k > 0) {
        return Err(Problem::bad_request(
            "invalid-purge",
            "`seq` and `keep` cannot both be set",
        ));
    }
    let body = serde_json::to_vec(&request).unwrap_or_default();
    let answer: Value = call(&http, &format!("STREAM.PURGE.{stream}"), &body).await?;
    let purged = answer.get("purged").and_then(Value::as_u64).unwrap_or(0);
    Ok(Json(json!({ "purged": purged })))
}

/// A sequence from the path: a whole number from 1.
fn sequence(text: &str) -> Result<u64, Problem> {
    match text.parse::<u64>() {
        Ok(seq) if seq > 0 => Ok(seq),
        _ => Err(Problem::bad_request(
            "invalid-sequence",
            format!("{text:?} is not a stream sequence (a whole number from 1)"),
        )),
    }
}

/// `GET /v1/streams/{stream}/messages/{seq}`.
pub(crate) async fn get_message(
    State(http): State<Http>,
    PathParams((stream, seq)): PathParams<(String, String)>,
) -> Result<Json<MessageJson>, Problem> {
    check_name(NameKind::Stream, &stream)?;
    let seq = sequence(&seq)?;
    let stored = get_stored(&http, &stream, json!({ "seq": seq })).await?;
    Ok(Json(MessageJson::from_stored(&stream, stored)))
}

/// `?last_by_subject=` of the message look-up.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LastQuery {
    /// The subject (wildcards allowed) whose latest message is wanted.
    last_by_subject: Option<String>,
}

/// `GET /v1/streams/{stream}/messages?last_by_subject=<subject>`.
pub(crate) async fn last_message(
    State(http): State<Http>,
    PathParams(stream): PathParams<String>,
    QueryParams(query): QueryParams<LastQuery>,
) -> Result<Json<MessageJson>, Problem> {
    check_name(NameKind::Stream, &stream)?;
    let Some(subject) = query.last_by_subject else {
        return Err(Problem::bad_request(
            "query-required",
            "give the subject whose last message is wanted: ?last_by_subject=<subject>",
        ));
    };
    check_filter("last_by_subject", &subject)?;
    let stored = get_stored(&http, &stream, json!({ "last_by_subj": subject })).await?;
    Ok(Json(MessageJson::from_stored(&stream, stored)))
}

/// `DELETE /v1/streams/{stream}/messages/{seq}`: 204.
pub(crate) async fn delete_message(
    State(http): State<Http>,
    PathParams((stream, seq)): PathParams<(String, String)>,
) -> Result<Response, Problem> {
    check_name(NameKind::Stream, &stream)?;
    let seq = sequence(&seq)?;
    let body = json!({ "seq": seq }).to_string();
    call::<Value>(&http, &format!("STREAM.MSG.DELETE.{stream}"), body.as_bytes()).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
