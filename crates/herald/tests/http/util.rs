//! Helpers shared by the HTTP tests: a server with an HTTP client and a
//! NATS client on it, and bounded waits.

#![allow(dead_code)] // Not every module uses every helper.

use std::future::Future;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::server::JsServer;

/// Upper bound for any single wait.
pub const WAIT: Duration = Duration::from_secs(10);

/// A server of its own, an HTTP client and a NATS client on it.
pub struct Env {
    pub server: JsServer,
    pub nats: async_nats::Client,
    pub js: async_nats::jetstream::Context,
    pub http: reqwest::Client,
}

impl Env {
    /// A fresh server and clients connected to it.
    pub async fn start() -> Env {
        Self::start_with(&[]).await
    }

    /// A fresh server started with more `herald serve` options.
    pub async fn start_with(args: &[&str]) -> Env {
        let server = JsServer::start_with(args);
        let nats = within("connect", async_nats::connect(server.url()))
            .await
            .expect("connect to the server");
        let js = async_nats::jetstream::new(nats.clone());
        Env {
            server,
            nats,
            js,
            http: reqwest::Client::new(),
        }
    }

    /// Subscribes on the NATS side and waits until the server has the
    /// subscription (async-nats' `flush` only writes the socket: a request
    /// answered by the server proves the SUB before it was processed).
    pub async fn subscribe(&self, subject: &str) -> async_nats::Subscriber {
        let sub = self.nats.subscribe(subject.to_string()).await.expect("subscribe");
        within("round trip", self.nats.request("$JS.API.INFO", "".into()))
            .await
            .expect("the server answers $JS.API.INFO");
        sub
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server.http_url())
    }

    /// Creates a stream through the NATS side.
    pub async fn stream(&self, name: &str, subjects: &[&str]) {
        let config = async_nats::jetstream::stream::Config {
            name: name.to_string(),
            subjects: subjects.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        };
        within("create stream", self.js.create_stream(config))
            .await
            .unwrap_or_else(|e| panic!("create stream {name}: {e:?}"));
    }

    /// Messages the stream holds now.
    pub async fn stored_messages(&self, stream: &str) -> u64 {
        let mut stream = within("get stream", self.js.get_stream(stream))
            .await
            .unwrap_or_else(|e| panic!("get stream {stream}: {e:?}"));
        within("stream info", stream.info())
            .await
            .expect("stream info")
            .state
            .messages
    }

    /// POSTs `body` with `content_type` (plus `headers`) to `path`;
    /// returns the status and the JSON body (`Null` when not JSON).
    pub async fn post(
        &self,
        path: &str,
        content_type: &str,
        headers: &[(&str, &str)],
        body: impl Into<reqwest::Body>,
    ) -> (u16, Value) {
        let mut request = self
            .http
            .post(self.url(path))
            .header("content-type", content_type)
            .body(body);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = within("POST", request.send()).await.expect("POST");
        status_and_json(response).await
    }

    /// GETs `path`; the status and JSON body.
    pub async fn get(&self, path: &str) -> (u16, Value) {
        let response = within("GET", self.http.get(self.url(path)).send())
            .await
            .expect("GET");
        status_and_json(response).await
    }
}

/// The status and the JSON body of a response; problem bodies are checked
/// to have the RFC 9457 members and media type.
pub async fn status_and_json(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let bytes = within("read body", response.bytes()).await.expect("read body");
    let json: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    if status >= 400 {
        assert_eq!(
            content_type, "application/problem+json",
            "error without a problem body: {json}"
        );
        for member in ["type", "title", "status", "detail"] {
            assert!(json.get(member).is_some(), "problem without `{member}`: {json}");
        }
        assert_eq!(
            json["status"], status,
            "problem status differs from the HTTP status"
        );
    }
    (status, json)
}

/// Fails the test if `future` takes longer than [`WAIT`].
pub async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    within_for(WAIT, what, future).await
}

/// Fails the test if `future` takes longer than `limit`.
pub async fn within_for<T>(limit: Duration, what: &str, future: impl Future<Output = T>) -> T {
    match tokio::time::timeout(limit, future).await {
        Ok(value) => value,
        Err(_) => panic!("{what}: no result within {limit:?}"),
    }
}

/// Polls `check` until it returns true, failing after [`WAIT`].
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + WAIT;
    while !check().await {
        assert!(Instant::now() < deadline, "{what}: not true within {WAIT:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
