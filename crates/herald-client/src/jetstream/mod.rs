//! JetStream: streams, consumers, acknowledged publishing and a key-value
//! layer, over the `$JS.API` request/reply API that Herald and nats-server
//! both serve.
//!
//! [`Client::jetstream`] returns a [`JetStream`] context. Its methods send
//! one API request each and wait for the reply (up to
//! [`JetStream::timeout`]); an `error` in the reply becomes
//! [`Error::JetStream`] carrying the server's [`ApiError`]. The wire types
//! ([`StreamConfig`], [`ConsumerConfig`], [`StreamInfo`], [`PubAck`], …) are
//! those of `herald_protocol::jetstream`, re-exported here.
//!
//! - streams: [`JetStream::create_stream`], [`JetStream::stream_info`],
//!   [`JetStream::streams`], [`JetStream::purge_stream`],
//!   [`JetStream::get_message`], …
//! - publishing with a [`PubAck`]: [`JetStream::publish`],
//!   [`JetStream::publish_with`] and [`PublishOptions`] (de-duplication id,
//!   optimistic concurrency checks);
//! - atomic batches, stored all or nothing: [`JetStream::publish_batch`];
//! - consumers: [`JetStream::create_consumer`], [`JetStream::fetch`] (pull)
//!   returning [`JsMessage`]s to ack, nak, term…;
//! - key-value buckets: [`JetStream::kv_create_bucket`], [`JetStream::kv`]
//!   and [`Kv`].

mod batch;
mod consumer;
mod error;
mod kv;
mod stream;

use std::time::Duration;

use bytes::Bytes;
use herald_protocol::jetstream::headers as js_headers;
use herald_protocol::Headers;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::{Client, Error, Result};

pub use batch::{BatchMessage, BATCH_COMMIT, BATCH_ID, BATCH_MSGS_MAX, BATCH_SEQUENCE};
pub use consumer::{JsMessage, MessageInfo};
pub use herald_protocol::jetstream::api::{AccountInfo, SequenceInfo, StreamPurgeRequest};
pub use herald_protocol::jetstream::config::{
    AckPolicy, DeliverPolicy, DiscardPolicy, ReplayPolicy, RetentionPolicy, StorageType,
};
pub use herald_protocol::jetstream::{
    ApiError, ApiErrorCode, ConsumerConfig, ConsumerInfo, PubAck, StreamConfig, StreamInfo, StreamState,
    Timestamp,
};
pub use kv::{Entry, Kv, KvConfig, Operation, Watch};
pub use stream::StreamMessage;

pub(crate) use error::parse_response;
#[cfg(test)]
pub(crate) use {
    consumer::{next_request, PullEvent},
    kv::{check_bucket, check_key},
};

/// The API subject prefix without a domain.
pub const DEFAULT_API_PREFIX: &str = "$JS.API";

/// A JetStream context: the API prefix and timeout for requests on one
/// [`Client`]. Cheap to clone.
///
/// ```no_run
/// # async fn f(client: herald_client::Client) -> herald_client::Result<()> {
/// use herald_client::jetstream::{PublishOptions, StreamConfig};
/// let js = client.jetstream();
/// js.create_stream(StreamConfig::new("ORDERS", vec!["orders.>".into()])).await?;
/// let ack = js.publish("orders.created", "order 42").await?;
/// let options = PublishOptions { msg_id: Some("order-43".into()), ..Default::default() };
/// js.publish_with("orders.created", None, "order 43", options).await?;
/// println!("stored as {} in {}", ack.seq, ack.stream);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct JetStream {
    pub(crate) client: Client,
    prefix: String,
    timeout: Duration,
}

/// Checks a publish must pass before the stream stores it, and its
/// de-duplication id. Each set field becomes the matching `Nats-…` header.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PublishOptions {
    /// `Nats-Msg-Id`: a second publish with this id within the stream's
    /// duplicate window is not stored again (its [`PubAck`] says `duplicate`).
    pub msg_id: Option<String>,
    /// `Nats-Expected-Stream`: the subject must belong to this stream.
    pub expected_stream: Option<String>,
    /// `Nats-Expected-Last-Sequence`: the stream's last sequence must be this.
    pub expected_last_seq: Option<u64>,
    /// `Nats-Expected-Last-Subject-Sequence`: the last sequence stored on
    /// this subject must be this (`0`: nothing stored on it yet).
    pub expected_last_subject_seq: Option<u64>,
    /// `Nats-Expected-Last-Msg-Id`: the stream's last `Nats-Msg-Id` must be this.
    pub expected_last_msg_id: Option<String>,
}

impl PublishOptions {
    /// Whether no option is set.
    pub fn is_empty(&self) -> bool {
        *self == PublishOptions::default()
    }

    /// Appends the headers of the set options to `headers`.
    pub fn apply(&self, headers: &mut Headers) {
        if let Some(id) = &self.msg_id {
            headers.append(js_headers::MSG_ID, id.clone());
        }
        if let Some(stream) = &self.expected_stream {
            headers.append(js_headers::EXPECTED_STREAM, stream.clone());
        }
        if let Some(seq) = self.expected_last_seq {
            headers.append(js_headers::EXPECTED_LAST_SEQUENCE, seq.to_string());
        }
        if let Some(seq) = self.expected_last_subject_seq {
            headers.append(js_headers::EXPECTED_LAST_SUBJECT_SEQUENCE, seq.to_string());
        }
        if let Some(id) = &self.expected_last_msg_id {
            headers.append(js_headers::EXPECTED_LAST_MSG_ID, id.clone());
        }
    }
}

impl Client {
    /// A JetStream context on this connection, with the default API prefix
    /// (`$JS.API`) and the connection's request timeout.
    pub fn jetstream(&self) -> JetStream {
        JetStream {
            client: self.clone(),
            prefix: DEFAULT_API_PREFIX.to_string(),
            timeout: self.shared().options.request_timeout,
        }
    }

    /// A new unique inbox subject, `_INBOX.<random>`, e.g. to subscribe to
    /// before asking someone to send messages there.
    pub fn new_inbox(&self) -> String {
        let random: String = std::iter::repeat_with(fastrand::alphanumeric).take(22).collect();
        format!("_INBOX.{random}")
    }
}

impl JetStream {
    /// The client this context sends on.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// How long each API request (and publish) waits for its reply.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// This context with another request timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> JetStream {
        self.timeout = timeout;
        self
    }

    /// This context talking to the JetStream `domain` (`$JS.<domain>.API`).
    pub fn with_domain(mut self, domain: &str) -> JetStream {
        self.prefix = format!("$JS.{domain}.API");
        self
    }

    /// The API subject prefix, e.g. `$JS.API`.
    pub fn api_prefix(&self) -> &str {
        &self.prefix
    }

    /// Sends `body` to `<prefix>.<api>` (e.g. `STREAM.INFO.ORDERS`) and
    /// returns the reply's JSON as received, after checking it for an
    /// `error` ([`Error::JetStream`]). No responders means JetStream is not
    /// enabled ([`Error::JetStreamNotEnabled`]).
    pub async fn request_raw(&self, api: &str, body: impl AsRef<[u8]>) -> Result<Bytes> {
        let payload = self.request_unchecked(api, body.as_ref()).await?;
        error::check_response(&payload)?;
        Ok(payload)
    }

    /// Sends a JSON `body` to `<prefix>.<api>` and parses the reply as `T`;
    /// see [`JetStream::request_raw`].
    pub async fn request<T: DeserializeOwned>(&self, api: &str, body: &impl Serialize) -> Result<T> {
        let body = serde_json::to_vec(body).expect("JetStream request bodies serialize");
        self.request_bytes(api, &body).await
    }

    /// [`JetStream::request`] with a body already encoded (may be empty).
    pub(crate) async fn request_bytes<T: DeserializeOwned>(&self, api: &str, body: &[u8]) -> Result<T> {
        let payload = self.request_unchecked(api, body).await?;
        parse_response(&payload)
    }

    async fn request_unchecked(&self, api: &str, body: &[u8]) -> Result<Bytes> {
        let subject = self.api_subject(api);
        match self
            .client
            .request_with_timeout(&subject, body, self.timeout)
            .await
        {
            Ok(reply) => Ok(reply.payload),
            Err(Error::NoResponders { subject }) => Err(Error::JetStreamNotEnabled { subject }),
            Err(e) => Err(e),
        }
    }

    pub(crate) fn api_subject(&self, api: &str) -> String {
        format!("{}.{api}", self.prefix)
    }

    /// The account's JetStream usage and limits (`$JS.API.INFO`).
    pub async fn account_info(&self) -> Result<AccountInfo> {
        self.request_bytes("INFO", b"").await
    }

    /// Publishes to a subject a stream captures and waits for the stream's
    /// [`PubAck`]. A refusal (e.g. a limit) is [`Error::JetStream`]; no
    /// stream on the subject is [`Error::NoResponders`].
    pub async fn publish(&self, subject: &str, payload: impl AsRef<[u8]>) -> Result<PubAck> {
        self.publish_with(subject, None, payload, PublishOptions::default())
            .await
    }

    /// Publishes with headers and [`PublishOptions`] and waits for the
    /// [`PubAck`]. A failed check is [`Error::JetStream`], e.g.
    /// [`Error::is_wrong_last_sequence`] for the expected-sequence options.
    pub async fn publish_with(
        &self,
        subject: &str,
        headers: Option<&Headers>,
        payload: impl AsRef<[u8]>,
        options: PublishOptions,
    ) -> Result<PubAck> {
        let reply = if options.is_empty() && headers.is_none() {
            self.client
                .request_with_timeout(subject, payload, self.timeout)
                .await?
        } else {
            let mut all = headers.cloned().unwrap_or_default();
            options.apply(&mut all);
            self.client
                .request_with_headers(subject, &all, payload, self.timeout)
                .await?
        };
        parse_response(&reply.payload)
    }
}

/// Checks a stream or consumer name: not empty, none of `.`, `*`, `>`,
/// `/`, `\`, whitespace or control characters.
pub(crate) fn check_name(kind: &str, name: &str) -> Result<()> {
    let bad = |c: char| matches!(c, '.' | '*' | '>' | '/' | '\\') || c.is_whitespace() || c.is_control();
    if name.is_empty() || name.contains(bad) {
        return Err(Error::InvalidArgument(format!("invalid {kind} name {name:?}")));
    }
    Ok(())
}

/// `Duration` as JetStream's nanoseconds, saturating.
pub(crate) fn nanos(duration: Duration) -> i64 {
    i64::try_from(duration.as_nanos()).unwrap_or(i64::MAX)
}
