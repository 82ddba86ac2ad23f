//! Helpers shared by the JetStream tests: a server plus a connected
//! `async-nats` client, bounded waits, JetStream error codes, publishing,
//! pulling and raw API requests.

#![allow(dead_code)] // Not every module uses every helper.

use std::future::{Future, IntoFuture};
use std::time::{Duration, Instant};

use async_nats::jetstream::consumer::{self, PullConsumer};
use async_nats::jetstream::context::{PublishError, PublishErrorKind};
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::publish::PublishAck;
use async_nats::jetstream::{self, stream, Context};
use async_nats::{Client, HeaderMap};
use bytes::Bytes;
use futures_util::StreamExt as _;

use crate::server::JsServer;

/// Upper bound for any single wait.
pub const WAIT: Duration = Duration::from_secs(10);

/// A server of its own plus a client and JetStream context on it.
pub struct Env {
    pub server: JsServer,
    pub client: Client,
    pub js: Context,
}

impl Env {
    /// A fresh server and a client connected to it.
    pub async fn start() -> Env {
        let server = JsServer::start();
        let client = connect(&server.url()).await;
        let js = jetstream::new(client.clone());
        Env { server, client, js }
    }

    /// Replaces the client (and context) with a new connection, e.g. after
    /// a restart.
    pub async fn reconnect(&mut self) {
        self.client = connect(&self.server.url()).await;
        self.js = jetstream::new(self.client.clone());
    }

    /// Creates a stream, failing the test on error.
    pub async fn stream(&self, config: stream::Config) -> stream::Stream {
        let name = config.name.clone();
        within("create stream", self.js.create_stream(config))
            .await
            .unwrap_or_else(|e| panic!("create stream {name}: {e:?}"))
    }

    /// Stream info, failing the test on error.
    pub async fn info(&self, name: &str) -> stream::Info {
        let stream = within("get stream", self.js.get_stream(name))
            .await
            .unwrap_or_else(|e| panic!("stream info {name}: {e:?}"));
        stream.cached_info().clone()
    }

    /// Publishes and waits for the PubAck, failing the test on error.
    pub async fn publish(&self, subject: &str, payload: impl Into<Bytes>) -> PublishAck {
        publish_msg(&self.js, subject, PublishMessage::build().payload(payload.into()))
            .await
            .unwrap_or_else(|e| panic!("publish to {subject}: {e:?}"))
    }

    /// Publishes with headers and waits for the PubAck.
    pub async fn publish_with_headers(
        &self,
        subject: &str,
        headers: HeaderMap,
        payload: impl Into<Bytes>,
    ) -> PublishAck {
        publish_msg(
            &self.js,
            subject,
            PublishMessage::build().payload(payload.into()).headers(headers),
        )
        .await
        .unwrap_or_else(|e| panic!("publish to {subject}: {e:?}"))
    }

    /// Publishes a built message; the PubAck or the error.
    pub async fn try_publish(
        &self,
        subject: &str,
        message: PublishMessage,
    ) -> Result<PublishAck, PublishError> {
        publish_msg(&self.js, subject, message).await
    }

    /// A raw JetStream API request (`$JS.API.<what>`) with a raw body; the
    /// response parsed as JSON.
    pub async fn api(&self, what: &str, body: impl Into<Bytes>) -> serde_json::Value {
        api(&self.client, what, body).await
    }
}

/// Connects an `async-nats` client.
pub async fn connect(url: &str) -> Client {
    within(
        "connect",
        async_nats::ConnectOptions::new()
            .connection_timeout(WAIT)
            .connect(url),
    )
    .await
    .unwrap_or_else(|e| panic!("cannot connect to {url}: {e}"))
}

/// Publishes `message` to `subject` and waits for the PubAck (both bounded).
pub async fn publish_msg(
    js: &Context,
    subject: &str,
    message: PublishMessage,
) -> Result<PublishAck, PublishError> {
    let ack = within("publish", js.send_publish(subject.to_string(), message)).await?;
    within("PubAck", ack.into_future()).await
}

/// Awaits `future` for at most [`WAIT`].
pub async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    within_for(WAIT, what, future).await
}

/// Awaits `future` for at most `limit`.
pub async fn within_for<T>(limit: Duration, what: &str, future: impl Future<Output = T>) -> T {
    match tokio::time::timeout(limit, future).await {
        Ok(value) => value,
        Err(_) => panic!("timed out after {limit:?}: {what}"),
    }
}

/// Polls `check` every 20 ms until it returns true; fails after [`WAIT`].
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + WAIT;
    loop {
        if check().await {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {WAIT:?} waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The JetStream API error inside `err`: `(code, err_code)`, e.g.
/// `(400, 10058)`. Looks through the error's source chain, then through its
/// kind (several kinds embed the API error, e.g. `CreateStreamErrorKind::JetStream`).
pub fn api_error<E: std::error::Error + 'static>(err: &E) -> Option<(u64, u64)> {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = current {
        if let Some(api) = e.downcast_ref::<jetstream::Error>() {
            return Some((api.code() as u64, api.error_code().0));
        }
        current = e.source();
    }
    // Kinds that carry the API error: its Debug form is
    // `Error { code: 400, err_code: ErrorCode(10058), description: .. }`.
    let debug = format!("{err:?}");
    let number_after = |marker: &str, from: usize| -> Option<(u64, usize)> {
        let start = debug[from..].find(marker)? + from + marker.len();
        let digits: String = debug[start..].chars().take_while(char::is_ascii_digit).collect();
        Some((digits.parse().ok()?, start))
    };
    const MARKER: &str = "err_code: ErrorCode(";
    let (err_code, at) = number_after(MARKER, 0)?;
    let code_at = debug[..at - MARKER.len()].rfind("code: ")?;
    let (code, _) = number_after("code: ", code_at)?;
    Some((code, err_code))
}

/// The JetStream `err_code` inside `err`; fails the test if there is none.
pub fn err_code<E: std::error::Error + 'static>(err: &E) -> u64 {
    api_error(err)
        .unwrap_or_else(|| panic!("expected a JetStream API error, got {err:?}"))
        .1
}

/// Asserts that a publish failed with the JetStream error `expected`.
pub fn assert_publish_error(result: Result<PublishAck, PublishError>, expected: u64, what: &str) {
    match result {
        Ok(ack) => panic!("{what}: expected error {expected}, got PubAck {ack:?}"),
        Err(e) => assert_eq!(err_code(&e), expected, "{what}: {e:?}"),
    }
}

/// Asserts that a publish failed because no stream captures the subject.
pub fn assert_no_stream(result: Result<PublishAck, PublishError>, what: &str) {
    match result {
        Ok(ack) => panic!("{what}: expected no responders, got PubAck {ack:?}"),
        Err(e) => assert_eq!(e.kind(), PublishErrorKind::StreamNotFound, "{what}: {e:?}"),
    }
}

/// How a pull batch ended.
#[derive(Debug)]
pub struct Pulled {
    pub messages: Vec<jetstream::Message>,
    /// An error item the batch ended with (e.g. a 409 status), if any.
    pub error: Option<String>,
}

impl Pulled {
    /// Stream sequences of the messages, in order.
    pub fn stream_seqs(&self) -> Vec<u64> {
        self.messages.iter().map(stream_seq).collect()
    }

    pub fn payloads(&self) -> Vec<String> {
        self.messages
            .iter()
            .map(|m| String::from_utf8_lossy(&m.payload).into_owned())
            .collect()
    }
}

/// A `fetch` (no_wait pull) of up to `n` messages: what is available now.
pub async fn fetch(consumer: &PullConsumer, n: usize) -> Pulled {
    let batch = within("fetch request", consumer.fetch().max_messages(n).messages())
        .await
        .unwrap_or_else(|e| panic!("fetch: {e:?}"));
    drain(batch).await
}

/// A waiting pull of up to `n` messages that expires after `expires`.
pub async fn pull(consumer: &PullConsumer, n: usize, expires: Duration) -> Pulled {
    let batch = within(
        "batch request",
        consumer.batch().max_messages(n).expires(expires).messages(),
    )
    .await
    .unwrap_or_else(|e| panic!("batch: {e:?}"));
    drain(batch).await
}

/// Collects a pull batch until it ends (bounded by [`WAIT`] plus the
/// request's own expiry, which the client already bounds).
pub async fn drain(mut batch: consumer::pull::Batch) -> Pulled {
    let mut messages = Vec::new();
    let mut error = None;
    let collect = async {
        while let Some(item) = batch.next().await {
            match item {
                Ok(message) => messages.push(message),
                Err(e) => {
                    error = Some(e.to_string());
                    break;
                }
            }
        }
    };
    within_for(WAIT * 2, "pull batch to end", collect).await;
    Pulled { messages, error }
}

/// The stream sequence of a delivered message (from its ack subject).
pub fn stream_seq(message: &jetstream::Message) -> u64 {
    message
        .info()
        .unwrap_or_else(|e| panic!("message info: {e}"))
        .stream_sequence
}

/// Times delivered (from the ack subject).
pub fn delivered(message: &jetstream::Message) -> i64 {
    message
        .info()
        .unwrap_or_else(|e| panic!("message info: {e}"))
        .delivered
}

/// Acks and waits for the server's confirmation.
pub async fn ack(message: &jetstream::Message) {
    within("double ack", message.double_ack())
        .await
        .unwrap_or_else(|e| panic!("double_ack: {e}"));
}

/// Consumer info, failing the test on error.
pub async fn consumer_info(stream: &stream::Stream, name: &str) -> consumer::Info {
    within("consumer info", stream.consumer_info(name))
        .await
        .unwrap_or_else(|e| panic!("consumer info {name}: {e:?}"))
}

/// A durable pull consumer with `config` (its durable name set to `name`).
pub async fn pull_consumer(
    stream: &stream::Stream,
    name: &str,
    config: consumer::pull::Config,
) -> PullConsumer {
    let config = consumer::pull::Config {
        durable_name: Some(name.to_string()),
        ..config
    };
    within("create consumer", stream.create_consumer(config))
        .await
        .unwrap_or_else(|e| panic!("create consumer {name}: {e:?}"))
}

/// A raw JetStream API request: `$JS.API.<what>` with `body`; the reply
/// parsed as JSON.
pub async fn api(client: &Client, what: &str, body: impl Into<Bytes>) -> serde_json::Value {
    let subject = format!("$JS.API.{what}");
    let reply = within("API request", client.request(subject.clone(), body.into()))
        .await
        .unwrap_or_else(|e| panic!("request {subject}: {e}"));
    serde_json::from_slice(&reply.payload).unwrap_or_else(|e| {
        panic!(
            "reply to {subject} is not JSON ({e}): {:?}",
            String::from_utf8_lossy(&reply.payload)
        )
    })
}

/// A header map from `(name, value)` pairs.
pub fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.append(*name, *value);
    }
    map
}

/// The value of header `name`, if present.
pub fn header<'a>(headers: Option<&'a HeaderMap>, name: &str) -> Option<&'a str> {
    headers.and_then(|h| h.get(name)).map(|v| v.as_str())
}

/// Nanoseconds since the Unix epoch of a JetStream timestamp.
pub fn nanos(time: async_nats::datetime::DateTime) -> i128 {
    time.unix_timestamp_nanos()
}
