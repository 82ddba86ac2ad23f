//! `GET /v1/events/{pattern}`: Server-Sent Events and WebSocket push.
//!
//! The transport is chosen by the request: a WebSocket upgrade, or
//! `Accept: text/event-stream` for SSE (anything else is a 406). What is
//! pushed is chosen by the query:
//!
//! - no `stream`: live, a core subscription to the pattern;
//! - `stream=S`: replay and live from stream `S` through an ephemeral
//!   consumer filtered by the pattern, from `deliver=all|new|last` (default
//!   `all`) or `start_seq=N`, or after the sequence in `Last-Event-ID`
//!   (header, or `last_event_id` query) to resume without gap or duplicate;
//! - `stream=S&consumer=D`: the durable pull consumer `D`, shared with any
//!   other client of it (competing consumers).
//!
//! Everything is bounded: open subscriptions ([`PUSH_SUBSCRIPTIONS_MAX`]),
//! the live backlog ([`PUSH_BACKLOG_MAX`], [`PUSH_BACKLOG_BYTES_MAX`]),
//! what is pulled ahead ([`super::push_source`]), and the time a write may
//! make no progress ([`PUSH_WRITE_TIMEOUT_MS`]). See
//! `docs/internals/http.md`, "Push: SSE and WebSocket".

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::QueryRejection;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;
use axum::Router;
use herald_protocol::jetstream::config::{AckPolicy, DeliverPolicy};
use herald_protocol::jetstream::error::ErrorResponse;
use herald_protocol::jetstream::{ConsumerConfig, ConsumerInfo, CreateConsumerRequest};
use serde::Deserialize;
use tokio::sync::watch;

use super::problem::Problem;
use super::push_source::{Live, PullLimits, Pulled, Source};
use super::Http;
use crate::local::Local;
use crate::ServerState;

/// Most push subscriptions (SSE and WebSocket) open at once.
pub(crate) const PUSH_SUBSCRIPTIONS_MAX: u64 = 1024;
/// Most live messages waiting unsent for one subscriber.
pub(crate) const PUSH_BACKLOG_MAX: usize = 4096;
/// Most header and payload bytes waiting unsent for one live subscriber.
pub(crate) const PUSH_BACKLOG_BYTES_MAX: usize = 16 * 1024 * 1024;
/// A write that makes no progress for this long cuts the client off.
pub(crate) const PUSH_WRITE_TIMEOUT_MS: u64 = 10_000;
/// Keep-alive period: an SSE comment or a WebSocket ping.
pub(crate) const PUSH_KEEP_ALIVE_MS: u64 = 15_000;
/// How often a blocked write checks whether the live backlog overflowed.
pub(crate) const OVERFLOW_CHECK_MS: u64 = 50;
/// Longest wait for a JetStream API answer.
pub(crate) const API_TIMEOUT_MS: u64 = 5_000;
/// An ephemeral consumer of ours is removed after this long without pull
/// requests, should its subscription's task die without deleting it. Longer
/// than a write may block plus a pull request's life.
const CONSUMER_INACTIVE_MS: u64 = 60_000;
/// Longest stream or consumer name accepted.
const NAME_BYTES_MAX: usize = 255;

/// The push routes.
pub(crate) fn routes() -> Router<Http> {
    // Named like the POST route's segment: axum refuses two names for one
    // path position. Here it is a pattern.
    Router::new().route("/v1/events/{subject}", axum::routing::get(subscribe))
}

/// The query of `GET /v1/events/{pattern}`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct PushQuery {
    stream: Option<String>,
    consumer: Option<String>,
    deliver: Option<String>,
    start_seq: Option<u64>,
    last_event_id: Option<String>,
}

/// One open push subscription: its events, and what its transport needs
/// to count and stop. Counted in `push_open` while it exists.
pub(crate) struct Push {
    pub source: Source,
    pub local: Arc<Local>,
    pub server: Arc<ServerState>,
    pub shutdown: watch::Receiver<bool>,
    _open: OpenGuard,
}

impl Push {
    /// One more event written.
    pub fn sent(&self) {
        self.server.http_stats.push_sent.fetch_add(1, Relaxed);
    }

    /// The client was cut off for falling behind.
    pub fn slow(&self) {
        self.server.http_stats.push_slow.fetch_add(1, Relaxed);
    }
}

/// Completes once the live backlog of `source` overflowed (never for
/// consumers): raced against blocked writes so that a stuck client is cut
/// off as soon as it lost messages.
pub(crate) async fn overflow(source: &Source) {
    if matches!(source, Source::Pulled(_)) {
        return std::future::pending().await;
    }
    while !source.overflowed() {
        tokio::time::sleep(Duration::from_millis(OVERFLOW_CHECK_MS)).await;
    }
}

/// The problem sent to a client cut off for falling behind.
pub(crate) fn slow_problem(detail: impl Into<String>) -> Problem {
    Problem::new(StatusCode::SERVICE_UNAVAILABLE, "slow-consumer", detail)
}

/// The `push_open` gauge, held while a subscription exists.
struct OpenGuard {
    server: Arc<ServerState>,
}

impl OpenGuard {
    fn acquire(server: &Arc<ServerState>) -> Result<OpenGuard, Problem> {
        let open = &server.http_stats.push_open;
        open.fetch_update(Relaxed, Relaxed, |n| {
            (n < PUSH_SUBSCRIPTIONS_MAX).then_some(n + 1)
        })
        .map_err(|_| {
            Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "too-many-subscriptions",
                format!(
                    "{PUSH_SUBSCRIPTIONS_MAX} push subscriptions are open, the most allowed; retry later"
                ),
            )
        })?;
        Ok(OpenGuard {
            server: server.clone(),
        })
    }
}

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.server.http_stats.push_open.fetch_sub(1, Relaxed);
    }
}

/// `GET /v1/events/{pattern}`.
async fn subscribe(
    State(http): State<Http>,
    Path(pattern): Path<String>,
    query: Result<Query<PushQuery>, QueryRejection>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let upgrade = match upgrade {
        Ok(upgrade) => Some(upgrade),
        Err(rejection) if wants_websocket(&headers) => {
            return Err(Problem::bad_request("invalid-upgrade", rejection.body_text()));
        }
        Err(_) if accepts_event_stream(&headers) => None,
        Err(_) => {
            return Err(Problem::new(
                StatusCode::NOT_ACCEPTABLE,
                "not-acceptable",
                "GET /v1/events/{pattern} streams events: send `Accept: text/event-stream` for \
                 Server-Sent Events, or open a WebSocket (`Connection: Upgrade`, `Upgrade: websocket`)",
            ));
        }
    };
    let Query(query) = query.map_err(|e| Problem::bad_request("invalid-query", e.body_text()))?;
    if let Err(e) = herald_core::validate_subject(pattern.as_bytes()) {
        return Err(Problem::bad_request(
            "invalid-pattern",
            format!("`{pattern}` is not a valid subject pattern: {e}"),
        ));
    }
    let open = OpenGuard::acquire(&http.server)?;
    let source = source(&http, &pattern, &query, &headers).await?;
    let push = Push {
        source,
        local: http.local.clone(),
        server: http.server.clone(),
        shutdown: http.shutdown.clone(),
        _open: open,
    };
    Ok(match upgrade {
        Some(upgrade) => super::ws::respond(push, upgrade),
        None => super::sse::respond(push),
    })
}

/// Whether the request asks for a WebSocket (however badly).
fn wants_websocket(headers: &HeaderMap) -> bool {
    headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

/// Whether `Accept` lists `text/event-stream`.
fn accepts_event_stream(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|range| {
            range
                .split(';')
                .next()
                .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("text/event-stream"))
        })
}

/// The events the query asks for.
async fn source(
    http: &Http,
    pattern: &str,
    query: &PushQuery,
    headers: &HeaderMap,
) -> Result<Source, Problem> {
    let Some(stream) = &query.stream else {
        let needs_stream = [
            ("consumer", query.consumer.is_some()),
            ("deliver", query.deliver.is_some()),
            ("start_seq", query.start_seq.is_some()),
            ("last_event_id", query.last_event_id.is_some()),
        ];
        if let Some((name, _)) = needs_stream.iter().find(|(_, set)| *set) {
            return Err(Problem::bad_request(
                "stream-required",
                format!("`{name}` needs `stream`: live subscriptions have no position"),
            ));
        }
        let sub = http
            .local
            .subscribe_bounded(pattern, PUSH_BACKLOG_MAX, PUSH_BACKLOG_BYTES_MAX)
            .map_err(Problem::from)?;
        let backlog = format!("{PUSH_BACKLOG_MAX} messages or {PUSH_BACKLOG_BYTES_MAX} bytes");
        return Ok(Source::Live(Live::new(sub, backlog)));
    };
    check_name("stream", stream)?;
    match &query.consumer {
        Some(durable) => durable_source(http, pattern, stream, durable, query).await,
        None => ephemeral_source(http, pattern, stream, query, headers).await,
    }
}

/// Stream and consumer names become subject tokens: no dots, wildcards or
/// white space, or the API call would go elsewhere.
fn check_name(what: &str, name: &str) -> Result<(), Problem> {
    let valid = !name.is_empty()
        && name.len() <= NAME_BYTES_MAX
        && !name
            .bytes()
            .any(|b| matches!(b, b'.' | b'*' | b'>') || b.is_ascii_whitespace() || b.is_ascii_control());
    if valid {
        Ok(())
    } else {
        Err(Problem::bad_request(
            "invalid-name",
            format!("`{name}` is not a valid {what} name"),
        ))
    }
}

/// Where an ephemeral consumer starts: `Last-Event-ID` (header, else
/// query) wins over `start_seq` and `deliver`, because a reconnecting
/// EventSource repeats the URL it started with and adds the header.
fn start(query: &PushQuery, headers: &HeaderMap) -> Result<(DeliverPolicy, u64), Problem> {
    let last_event_id = headers
        .get("last-event-id")
        .map(|v| v.to_str().unwrap_or("\u{fffd}").trim().to_string())
        .filter(|v| !v.is_empty())
        .or_else(|| query.last_event_id.clone());
    if let Some(id) = last_event_id {
        let seq: u64 = id.parse().map_err(|_| {
            Problem::bad_request(
                "invalid-last-event-id",
                format!("last event id `{id}` is not a stream sequence"),
            )
        })?;
        return Ok((DeliverPolicy::ByStartSequence, seq.saturating_add(1)));
    }
    match (&query.deliver, query.start_seq) {
        (Some(_), Some(_)) => Err(Problem::bad_request(
            "conflicting-start",
            "give `deliver` or `start_seq`, not both",
        )),
        (None, Some(seq)) => Ok((DeliverPolicy::ByStartSequence, seq.max(1))),
        (Some(deliver), None) => match deliver.as_str() {
            "all" => Ok((DeliverPolicy::All, 0)),
            "new" => Ok((DeliverPolicy::New, 0)),
            "last" => Ok((DeliverPolicy::Last, 0)),
            other => Err(Problem::bad_request(
                "invalid-deliver",
                format!("`deliver={other}`: expected all, new or last"),
            )),
        },
        (None, None) => Ok((DeliverPolicy::All, 0)),
    }
}

/// Creates an ephemeral consumer of our own on `stream`.
///
/// Its ack policy is `none`: the position that counts is the client's (the
/// SSE id it last saw, which it hands back on reconnect), not the
/// consumer's, which is deleted with the subscription; acking every message
/// would cost a publish each and protect nothing.
async fn ephemeral_source(
    http: &Http,
    pattern: &str,
    stream: &str,
    query: &PushQuery,
    headers: &HeaderMap,
) -> Result<Source, Problem> {
    let (deliver_policy, opt_start_seq) = start(query, headers)?;
    let name = format!("herald-push-{:016x}", fastrand::u64(..));
    let config = ConsumerConfig {
        name: name.clone(),
        description: "Herald HTTP push subscription".into(),
        deliver_policy,
        opt_start_seq,
        ack_policy: AckPolicy::None,
        // `>` is every subject of the stream: no filter at all.
        filter_subject: if pattern == ">" {
            String::new()
        } else {
            pattern.to_string()
        },
        inactive_threshold: (CONSUMER_INACTIVE_MS * 1_000_000) as i64,
        mem_storage: true,
        ..ConsumerConfig::default()
    };
    let request = CreateConsumerRequest {
        stream_name: stream.to_string(),
        config: Some(config),
        action: herald_protocol::jetstream::api::ConsumerAction::Create,
        pedantic: false,
    };
    let body = serde_json::to_vec(&request).unwrap_or_default();
    let info = api::<ConsumerInfo>(&http.local, &format!("CONSUMER.CREATE.{stream}.{name}"), &body).await?;
    Ok(Source::Pulled(Pulled::new(
        http.local.clone(),
        info.stream_name,
        info.name,
        true,
        false,
        http.server.config.max_payload,
        PullLimits::default(),
    )))
}

/// Pulls from the existing durable consumer `durable` of `stream`.
async fn durable_source(
    http: &Http,
    pattern: &str,
    stream: &str,
    durable: &str,
    query: &PushQuery,
) -> Result<Source, Problem> {
    check_name("consumer", durable)?;
    if query.deliver.is_some() || query.start_seq.is_some() || query.last_event_id.is_some() {
        return Err(Problem::bad_request(
            "conflicting-start",
            "a durable consumer delivers from its own position: `deliver`, `start_seq` and \
             `last_event_id` apply to subscriptions without `consumer`",
        ));
    }
    let info = api::<ConsumerInfo>(&http.local, &format!("CONSUMER.INFO.{stream}.{durable}"), b"").await?;
    let config = &info.config;
    if !config.is_pull() {
        return Err(Problem::new(
            StatusCode::CONFLICT,
            "push-consumer",
            format!("consumer {durable} is a push consumer; HTTP push subscriptions pull"),
        ));
    }
    let filters = config.filters();
    if pattern != ">" && !filters.contains(&pattern) {
        return Err(Problem::bad_request(
            "pattern-mismatch",
            format!(
                "consumer {durable} delivers {}: subscribe to /v1/events/> or to its filter",
                if filters.is_empty() {
                    "every subject".to_string()
                } else {
                    filters.join(", ")
                }
            ),
        ));
    }
    let acks = matches!(config.ack_policy, AckPolicy::Explicit | AckPolicy::All);
    let limits = PullLimits {
        max_batch: config.max_batch,
        max_expires_ns: config.max_expires,
        max_bytes: config.max_bytes,
    };
    Ok(Source::Pulled(Pulled::new(
        http.local.clone(),
        info.stream_name,
        info.name,
        false,
        acks,
        http.server.config.max_payload,
        limits,
    )))
}

/// A JetStream API call whose error answer becomes its problem (404 with
/// err_code 10059 for an unknown stream, 10014 for an unknown consumer).
async fn api<T: serde::de::DeserializeOwned>(local: &Local, api: &str, body: &[u8]) -> Result<T, Problem> {
    let reply = local
        .js_api(api, body, Duration::from_millis(API_TIMEOUT_MS))
        .await
        .map_err(Problem::from)?;
    if let Ok(error) = serde_json::from_slice::<ErrorResponse>(&reply) {
        return Err(super::admin::api_problem(&error.error));
    }
    serde_json::from_slice(&reply).map_err(|e| {
        Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "unexpected-reply",
            format!("$JS.API.{api} answered something unreadable: {e}"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, value.parse().unwrap());
        }
        map
    }

    #[test]
    fn event_stream_is_found_among_accepted_types() {
        assert!(accepts_event_stream(&headers(&[("accept", "text/event-stream")])));
        assert!(accepts_event_stream(&headers(&[(
            "accept",
            "application/json, Text/Event-Stream;q=0.9"
        )])));
        assert!(!accepts_event_stream(&headers(&[("accept", "*/*")])));
        assert!(!accepts_event_stream(&HeaderMap::new()));
    }

    #[test]
    fn last_event_id_wins_and_resumes_after_it() {
        let query = PushQuery {
            start_seq: Some(3),
            ..PushQuery::default()
        };
        let (policy, seq) = start(&query, &headers(&[("last-event-id", "41")])).unwrap();
        assert_eq!((policy, seq), (DeliverPolicy::ByStartSequence, 42));
        assert_eq!(start(&query, &HeaderMap::new()).unwrap().1, 3);
        let query = PushQuery {
            last_event_id: Some("7".into()),
            ..PushQuery::default()
        };
        assert_eq!(start(&query, &HeaderMap::new()).unwrap().1, 8);
        assert!(start(&query, &headers(&[("last-event-id", "abc")])).is_err());
        let both = PushQuery {
            deliver: Some("new".into()),
            start_seq: Some(1),
            ..PushQuery::default()
        };
        assert!(start(&both, &HeaderMap::new()).is_err());
        let bad = PushQuery {
            deliver: Some("first".into()),
            ..PushQuery::default()
        };
        assert!(start(&bad, &HeaderMap::new()).is_err());
    }

    #[test]
    fn names_that_would_change_the_api_subject_are_refused() {
        assert!(check_name("stream", "ORDERS").is_ok());
        for bad in ["", "A.B", "A*", ">", "A B"] {
            assert!(check_name("stream", bad).is_err(), "{bad:?}");
        }
    }
}
