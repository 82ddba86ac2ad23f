//! Key-value buckets, built on streams the way NATS clients build them.
//!
//! Bucket `B` is stream `KV_B` capturing `$KV.B.>`; key `k` is subject
//! `$KV.B.k`, and its value the last message on that subject. The stream
//! keeps `history` messages per key, allows roll-ups and direct gets,
//! denies message deletion and discards new messages at its limits. A
//! delete stores an empty message with `KV-Operation: DEL`; a purge one with
//! `KV-Operation: PURGE` and `Nats-Rollup: sub`, which removes the key's
//! earlier revisions.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_core::Stream as _;
use herald_protocol::jetstream::config::{
    AckPolicy, DeliverPolicy, DiscardPolicy, ReplayPolicy, StorageType,
};
use herald_protocol::jetstream::headers as js_headers;
use herald_protocol::jetstream::{ConsumerConfig, StreamConfig, Timestamp};
use herald_protocol::Headers;

use super::consumer::MessageInfo;
use super::{nanos, JetStream, PublishOptions, StreamMessage};
use crate::{Error, Message, Result, Subscriber};

/// Header naming a KV operation.
pub const KV_OPERATION: &str = "KV-Operation";
/// Reason header of server-written subject delete markers.
const MARKER_REASON: &str = "Nats-Marker-Reason";
/// The most revisions a bucket may keep per key.
pub const MAX_HISTORY: i64 = 64;

/// What an [`Entry`] records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// A value was put.
    Put,
    /// The key was deleted (`KV-Operation: DEL`).
    Delete,
    /// The key was purged (`KV-Operation: PURGE`): earlier revisions are gone.
    Purge,
}

impl Operation {
    /// `PUT`, `DEL` or `PURGE`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Operation::Put => "PUT",
            Operation::Delete => "DEL",
            Operation::Purge => "PURGE",
        }
    }

    /// The operation a stored message's headers record.
    pub fn of(headers: Option<&Headers>) -> Operation {
        let Some(headers) = headers else {
            return Operation::Put;
        };
        match headers.get(KV_OPERATION) {
            Some("DEL") => Operation::Delete,
            Some("PURGE") => Operation::Purge,
            Some(_) => Operation::Put,
            None => match headers.get(MARKER_REASON) {
                Some("MaxAge" | "Purge") => Operation::Purge,
                Some("Remove") => Operation::Delete,
                _ => Operation::Put,
            },
        }
    }
}

impl std::fmt::Display for Operation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One revision of a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Bucket name.
    pub bucket: String,
    /// Key.
    pub key: String,
    /// Value (empty for a delete or purge).
    pub value: Bytes,
    /// Revision: the stream sequence of this entry.
    pub revision: u64,
    /// When it was stored.
    pub created: Timestamp,
    /// For watched entries, how many newer entries were pending; else 0.
    pub delta: u64,
    /// What the entry records.
    pub operation: Operation,
}

impl Entry {
    /// The entry of a message read from the bucket's stream.
    pub fn from_stream_message(bucket: &str, message: StreamMessage) -> Result<Entry> {
        let prefix = format!("$KV.{bucket}.");
        let key = key_of(&prefix, &message.subject)?;
        Ok(Entry {
            bucket: bucket.to_string(),
            key,
            operation: Operation::of(message.headers.as_ref()),
            value: message.payload,
            revision: message.sequence,
            created: message.time,
            delta: 0,
        })
    }

    /// The entry of a message a watch consumer delivered (its reply subject
    /// carries the revision, time and pending count).
    pub fn from_delivery(bucket: &str, message: &Message) -> Result<Entry> {
        let prefix = format!("$KV.{bucket}.");
        let key = key_of(&prefix, &message.subject)?;
        let reply = message
            .reply
            .as_deref()
            .ok_or_else(|| Error::InvalidResponse("watched entry without ack subject".into()))?;
        let info = MessageInfo::parse(reply)?;
        Ok(Entry {
            bucket: bucket.to_string(),
            key,
            value: message.payload.clone(),
            revision: info.stream_seq,
            created: info.timestamp,
            delta: info.pending,
            operation: Operation::of(message.headers.as_ref()),
        })
    }
}

fn key_of(prefix: &str, subject: &str) -> Result<String> {
    subject
        .strip_prefix(prefix)
        .map(str::to_string)
        .ok_or_else(|| Error::InvalidResponse(format!("subject {subject:?} is not under {prefix}")))
}

/// A bucket's configuration; see [`JetStream::kv_create_bucket_with`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KvConfig {
    /// Bucket name: letters, digits, `-` and `_`.
    pub bucket: String,
    /// Free text.
    pub description: String,
    /// Revisions kept per key, 1 to 64.
    pub history: i64,
    /// Entries older than this are removed; zero keeps them.
    pub max_age: Duration,
    /// Most bytes in the bucket, `-1` unlimited.
    pub max_bytes: i64,
    /// Largest value in bytes, `-1` unlimited.
    pub max_value_size: i32,
    /// Storage type.
    pub storage: StorageType,
}

impl KvConfig {
    /// A bucket keeping `history` revisions per key, other settings default.
    pub fn new(bucket: impl Into<String>, history: i64) -> KvConfig {
        KvConfig {
            bucket: bucket.into(),
            description: String::new(),
            history,
            max_age: Duration::ZERO,
            max_bytes: -1,
            max_value_size: -1,
            storage: StorageType::File,
        }
    }

    /// The stream configuration of the bucket.
    pub fn to_stream_config(&self) -> Result<StreamConfig> {
        check_bucket(&self.bucket)?;
        let history = if self.history <= 0 { 1 } else { self.history };
        if history > MAX_HISTORY {
            return Err(Error::InvalidArgument(format!(
                "history of {history} exceeds the maximum of {MAX_HISTORY}"
            )));
        }
        Ok(StreamConfig {
            name: format!("KV_{}", self.bucket),
            description: self.description.clone(),
            subjects: vec![format!("$KV.{}.>", self.bucket)],
            max_msgs_per_subject: history,
            max_bytes: self.max_bytes,
            max_age: nanos(self.max_age),
            max_msg_size: self.max_value_size,
            storage: self.storage,
            num_replicas: 1,
            allow_rollup_hdrs: true,
            deny_delete: true,
            deny_purge: false,
            allow_direct: true,
            discard: DiscardPolicy::New,
            ..StreamConfig::default()
        })
    }
}

/// Bucket names: letters, digits, `-` and `_`.
pub(crate) fn check_bucket(bucket: &str) -> Result<()> {
    let ok = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
    if bucket.is_empty() || !bucket.chars().all(ok) {
        return Err(Error::InvalidArgument(format!("invalid bucket name {bucket:?}")));
    }
    Ok(())
}

/// Keys: letters, digits and `-/_=.`, not starting or ending with `.`.
/// With `wildcards`, `*` and `>` tokens are allowed too (watch patterns).
pub(crate) fn check_key(key: &str, wildcards: bool) -> Result<()> {
    let ok = |c: char| c.is_ascii_alphanumeric() || "-/_=.".contains(c) || (wildcards && "*>".contains(c));
    let tokens_ok = key.split('.').all(|t| !t.is_empty());
    if key.is_empty() || !key.chars().all(ok) || !tokens_ok {
        return Err(Error::InvalidArgument(format!("invalid key {key:?}")));
    }
    Ok(())
}

impl JetStream {
    /// Creates bucket `name` keeping `history` revisions per key (stream
    /// `KV_<name>`). Creating an existing bucket with the same settings
    /// succeeds.
    pub async fn kv_create_bucket(&self, name: &str, history: i64) -> Result<Kv> {
        self.kv_create_bucket_with(KvConfig::new(name, history)).await
    }

    /// Creates a bucket from a full [`KvConfig`].
    pub async fn kv_create_bucket_with(&self, config: KvConfig) -> Result<Kv> {
        let info = self.create_stream(config.to_stream_config()?).await?;
        Ok(Kv::new(self.clone(), &config.bucket, info.config.allow_direct))
    }

    /// Opens an existing bucket; a missing one is
    /// [`Error::is_stream_not_found`].
    pub async fn kv(&self, bucket: &str) -> Result<Kv> {
        check_bucket(bucket)?;
        let info = self.stream_info(&format!("KV_{bucket}")).await?;
        Ok(Kv::new(self.clone(), bucket, info.config.allow_direct))
    }

    /// Deletes a bucket and all its entries.
    pub async fn kv_delete_bucket(&self, bucket: &str) -> Result<()> {
        check_bucket(bucket)?;
        self.delete_stream(&format!("KV_{bucket}")).await
    }
}

/// A key-value bucket; see [`JetStream::kv`].
///
/// ```no_run
/// # async fn f(client: herald_client::Client) -> herald_client::Result<()> {
/// let kv = client.jetstream().kv_create_bucket("config", 5).await?;
/// let revision = kv.put("mode", "fast").await?;
/// kv.update("mode", "safe", revision).await?; // fails if someone wrote in between
/// assert_eq!(kv.get("mode").await?.as_deref(), Some(&b"safe"[..]));
/// kv.delete("mode").await?;
/// assert_eq!(kv.get("mode").await?, None);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Kv {
    js: JetStream,
    bucket: String,
    stream: String,
    prefix: String,
    allow_direct: bool,
}

impl Kv {
    fn new(js: JetStream, bucket: &str, allow_direct: bool) -> Kv {
        Kv {
            js,
            bucket: bucket.to_string(),
            stream: format!("KV_{bucket}"),
            prefix: format!("$KV.{bucket}."),
            allow_direct,
        }
    }

    /// The bucket name.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// The name of the bucket's stream, `KV_<bucket>`.
    pub fn stream_name(&self) -> &str {
        &self.stream
    }

    fn subject(&self, key: &str) -> Result<String> {
        check_key(key, false)?;
        Ok(format!("{}{key}", self.prefix))
    }

    /// Sets `key` to `value`; returns the new revision.
    pub async fn put(&self, key: &str, value: impl AsRef<[u8]>) -> Result<u64> {
        let ack = self.js.publish(&self.subject(key)?, value).await?;
        Ok(ack.seq)
    }

    /// Sets `key` only if it has no value (never set, deleted or purged);
    /// an existing value is [`Error::is_wrong_last_sequence`].
    pub async fn create(&self, key: &str, value: impl AsRef<[u8]>) -> Result<u64> {
        let value = value.as_ref();
        let first = match self.update(key, value, 0).await {
            Ok(revision) => return Ok(revision),
            Err(e) => e,
        };
        match self.entry(key).await? {
            Some(entry) if entry.operation != Operation::Put => self.update(key, value, entry.revision).await,
            _ => Err(first),
        }
    }

    /// Sets `key` only if its latest revision is `revision`; otherwise
    /// [`Error::is_wrong_last_sequence`]. Returns the new revision.
    pub async fn update(&self, key: &str, value: impl AsRef<[u8]>, revision: u64) -> Result<u64> {
        let options = PublishOptions {
            expected_last_subject_seq: Some(revision),
            ..PublishOptions::default()
        };
        let ack = self
            .js
            .publish_with(&self.subject(key)?, None, value, options)
            .await?;
        Ok(ack.seq)
    }

    /// The latest entry of `key`, deletes and purges included; `None` if
    /// the key never had one.
    pub async fn entry(&self, key: &str) -> Result<Option<Entry>> {
        let subject = self.subject(key)?;
        let message = if self.allow_direct {
            self.js.direct_get_last(&self.stream, &subject).await?
        } else {
            match self.js.get_last_message(&self.stream, &subject).await {
                Ok(message) => Some(message),
                Err(e) if e.is_no_message_found() => None,
                Err(e) => return Err(e),
            }
        };
        message
            .map(|m| Entry::from_stream_message(&self.bucket, m))
            .transpose()
    }

    /// The value of `key`; `None` if it has none (never set, deleted or
    /// purged).
    pub async fn get(&self, key: &str) -> Result<Option<Bytes>> {
        Ok(self
            .entry(key)
            .await?
            .filter(|e| e.operation == Operation::Put)
            .map(|e| e.value))
    }

    /// Deletes `key`, keeping its history (a `DEL` marker).
    pub async fn delete(&self, key: &str) -> Result<()> {
        let mut headers = Headers::new();
        headers.append(KV_OPERATION, "DEL");
        self.js
            .publish_with(
                &self.subject(key)?,
                Some(&headers),
                b"",
                PublishOptions::default(),
            )
            .await
            .map(|_| ())
    }

    /// Deletes `key` and its history (a `PURGE` marker rolling up the key).
    pub async fn purge(&self, key: &str) -> Result<()> {
        let mut headers = Headers::new();
        headers.append(KV_OPERATION, "PURGE");
        headers.append(js_headers::ROLLUP, js_headers::ROLLUP_SUBJECT);
        self.js
            .publish_with(
                &self.subject(key)?,
                Some(&headers),
                b"",
                PublishOptions::default(),
            )
            .await
            .map(|_| ())
    }

    /// The keys that have a value, in stream order of their latest revision.
    ///
    /// Reads the latest entry of every key through an ephemeral consumer,
    /// until the server says none is pending or as many as the consumer had
    /// when created have arrived.
    pub async fn keys(&self) -> Result<Vec<String>> {
        let (mut sub, total) = self
            .push_consumer(">", DeliverPolicy::LastPerSubject, true)
            .await?;
        let mut keys = Vec::new();
        let mut left = total;
        let mut received = 0;
        while left > 0 && received < total {
            let message = tokio::time::timeout(self.js.timeout(), sub.next())
                .await
                .map_err(|_| Error::Timeout)?
                .ok_or(Error::Closed)?;
            if self.control(&message) {
                continue;
            }
            let entry = Entry::from_delivery(&self.bucket, &message)?;
            received += 1;
            if entry.operation == Operation::Put {
                keys.push(entry.key);
            }
            left = entry.delta;
        }
        Ok(keys)
    }

    /// Watches keys matching `pattern` (`*` one token, `>` the rest) for
    /// changes made from now on.
    pub async fn watch(&self, pattern: &str) -> Result<Watch> {
        self.watch_with(pattern, DeliverPolicy::New).await
    }

    /// Watches keys matching `pattern`, starting with the latest entry of
    /// each matching key (deletes and purges included), then changes.
    pub async fn watch_with_history(&self, pattern: &str) -> Result<Watch> {
        self.watch_with(pattern, DeliverPolicy::LastPerSubject).await
    }

    async fn watch_with(&self, pattern: &str, policy: DeliverPolicy) -> Result<Watch> {
        check_key(pattern, true)?;
        let (sub, initial) = self.push_consumer(pattern, policy, false).await?;
        Ok(Watch {
            sub,
            kv: self.clone(),
            initial,
        })
    }

    /// Subscribes to a new inbox and creates an ephemeral push consumer
    /// delivering there (no acks, one delivery, instant replay). Returns
    /// the subscription and how many messages the consumer had to deliver
    /// when created (pending plus already delivered).
    async fn push_consumer(
        &self,
        pattern: &str,
        deliver_policy: DeliverPolicy,
        headers_only: bool,
    ) -> Result<(Subscriber, u64)> {
        let client = self.js.client();
        let inbox = client.new_inbox();
        let sub = client.subscribe(&inbox).await?;
        let config = ConsumerConfig {
            description: "kv watch consumer".into(),
            deliver_subject: inbox,
            filter_subject: format!("{}{pattern}", self.prefix),
            deliver_policy,
            ack_policy: AckPolicy::None,
            max_deliver: 1,
            replay_policy: ReplayPolicy::Instant,
            headers_only,
            mem_storage: true,
            num_replicas: 1,
            ..ConsumerConfig::default()
        };
        let info = self.js.create_consumer(&self.stream, config).await?;
        Ok((sub, info.num_pending + info.delivered.consumer_seq))
    }

    /// Handles a status message on a push consumer's inbox (answering flow
    /// control); returns whether `message` was one.
    fn control(&self, message: &Message) -> bool {
        if message.status.is_none() {
            return false;
        }
        if let Some(reply) = &message.reply {
            let _ = self.js.client().publish(reply, b"");
        }
        true
    }
}

/// Changes to a bucket's keys; see [`Kv::watch`]. A
/// [`futures_core::Stream`] of entries, or use [`Watch::next`].
///
/// The consumer behind it is ephemeral: the server removes it a few
/// seconds after the watch is dropped.
#[derive(Debug)]
pub struct Watch {
    sub: Subscriber,
    kv: Kv,
    initial: u64,
}

impl Watch {
    /// The next entry; `None` once the connection has closed.
    pub async fn next(&mut self) -> Option<Result<Entry>> {
        std::future::poll_fn(|cx| self.poll_entry(cx)).await
    }

    /// How many entries the watch had to deliver when it started (for
    /// [`Kv::watch_with_history`]: the keys' latest entries).
    pub fn initial(&self) -> u64 {
        self.initial
    }

    fn poll_entry(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Entry>>> {
        loop {
            let Some(message) = std::task::ready!(Pin::new(&mut self.sub).poll_next(cx)) else {
                return Poll::Ready(None);
            };
            if !self.kv.control(&message) {
                return Poll::Ready(Some(Entry::from_delivery(&self.kv.bucket, &message)));
            }
        }
    }
}

impl futures_core::Stream for Watch {
    type Item = Result<Entry>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().poll_entry(cx)
    }
}
