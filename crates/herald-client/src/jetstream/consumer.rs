//! Consumer management, pulling messages, and acknowledging them.

use std::time::Duration;

use bytes::Bytes;
use herald_protocol::jetstream::api::{
    ConsumerAction, ConsumerListResponse, ConsumerNamesResponse, ConsumersRequest, CreateConsumerRequest,
    DeleteResponse,
};
use herald_protocol::jetstream::{
    AckBody, AckMetadata, ConsumerConfig, ConsumerInfo, NextRequest, Timestamp,
};
use herald_protocol::Headers;
use tokio::time::Instant;

use super::stream::success;
use super::{check_name, nanos, JetStream};
use crate::{Client, Error, Message, Result};

/// How much longer than a pull request's `expires` [`JetStream::fetch`]
/// waits for the server's end-of-request status.
const FETCH_GRACE: Duration = Duration::from_secs(1);

/// A message delivered by a consumer, with what is needed to acknowledge it.
///
/// Acks are published to the message's `$JS.ACK…` reply subject and, like
/// any publish, only queued: [`crate::Client::flush`] (or
/// [`JsMessage::double_ack`]) makes sure the server has them.
#[derive(Debug, Clone)]
pub struct JsMessage {
    /// Subject the message was published to.
    pub subject: String,
    /// Its headers, if any.
    pub headers: Option<Headers>,
    /// The payload.
    pub payload: Bytes,
    reply: Option<String>,
    client: Client,
    timeout: Duration,
}

/// What a delivery's `$JS.ACK` reply subject says about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageInfo {
    /// JetStream domain, if any.
    pub domain: Option<String>,
    /// Stream name.
    pub stream: String,
    /// Consumer name.
    pub consumer: String,
    /// Stream sequence.
    pub stream_seq: u64,
    /// Consumer (delivery) sequence.
    pub consumer_seq: u64,
    /// Delivery attempt, from 1.
    pub delivered: u64,
    /// Messages pending for the consumer after this one.
    pub pending: u64,
    /// When the message was stored.
    pub timestamp: Timestamp,
}

impl MessageInfo {
    /// Parses a `$JS.ACK` reply subject (v1 or v2 form).
    pub fn parse(reply: &str) -> Result<MessageInfo> {
        let meta = AckMetadata::parse_str(reply)
            .map_err(|e| Error::InvalidResponse(format!("ack subject {reply:?}: {e}")))?;
        Ok(MessageInfo {
            domain: meta.domain.map(str::to_string),
            stream: meta.stream.to_string(),
            consumer: meta.consumer.to_string(),
            stream_seq: meta.stream_seq,
            consumer_seq: meta.consumer_seq,
            delivered: meta.delivered,
            pending: meta.pending,
            timestamp: Timestamp::from_unix_nanos(meta.timestamp),
        })
    }
}

impl JsMessage {
    pub(crate) fn new(message: Message, client: Client, timeout: Duration) -> JsMessage {
        JsMessage {
            subject: message.subject,
            headers: message.headers,
            payload: message.payload,
            reply: message.reply,
            client,
            timeout,
        }
    }

    /// The `$JS.ACK…` reply subject, if the server set one.
    pub fn reply(&self) -> Option<&str> {
        self.reply.as_deref()
    }

    /// The first value of header `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.as_ref().and_then(|h| h.get(name))
    }

    /// Stream, consumer, sequences, delivery count, pending count and time,
    /// from the reply subject.
    pub fn info(&self) -> Result<MessageInfo> {
        MessageInfo::parse(self.ack_subject()?)
    }

    fn ack_subject(&self) -> Result<&str> {
        self.reply
            .as_deref()
            .ok_or_else(|| Error::InvalidArgument("message has no ack reply subject".into()))
    }

    fn send(&self, body: AckBody) -> Result<()> {
        self.client.publish(self.ack_subject()?, body.encode())
    }

    /// Acknowledges the message (`+ACK`).
    pub fn ack(&self) -> Result<()> {
        self.send(AckBody::Ack)
    }

    /// Asks for redelivery (`-NAK`), after `delay` if given.
    pub fn nak(&self, delay: Option<Duration>) -> Result<()> {
        self.send(AckBody::Nak {
            delay: delay.map(nanos),
        })
    }

    /// Still working on it: restarts the ack timer (`+WPI`).
    pub fn in_progress(&self) -> Result<()> {
        self.send(AckBody::Progress)
    }

    /// Stops redelivery without success (`+TERM`).
    pub fn term(&self) -> Result<()> {
        self.send(AckBody::Term { reason: None })
    }

    /// Acknowledges and waits until the server confirms it has recorded the
    /// ack (an ack sent as a request, answered with an empty message).
    pub async fn double_ack(&self) -> Result<()> {
        self.client
            .request_with_timeout(self.ack_subject()?, AckBody::Ack.encode(), self.timeout)
            .await
            .map(|_| ())
    }
}

impl JetStream {
    /// Creates a consumer on `stream`, or updates it if one with the same
    /// name exists (`CONSUMER.CREATE.<stream>[.<name>]`). Without `name`
    /// and `durable_name` the consumer is ephemeral and the server names it.
    ///
    /// The configuration is sent as given: `ack_policy` defaults to `none`
    /// (the wire's zero value), so set `AckPolicy::Explicit` for a work
    /// queue.
    pub async fn create_consumer(&self, stream: &str, config: ConsumerConfig) -> Result<ConsumerInfo> {
        check_name("stream", stream)?;
        let name = if config.name.is_empty() {
            config.durable_name.clone()
        } else {
            config.name.clone()
        };
        let api = if name.is_empty() {
            format!("CONSUMER.CREATE.{stream}")
        } else {
            check_name("consumer", &name)?;
            format!("CONSUMER.CREATE.{stream}.{name}")
        };
        let request = CreateConsumerRequest {
            stream_name: stream.to_string(),
            config: Some(config),
            action: ConsumerAction::CreateOrUpdate,
            pedantic: false,
        };
        self.request(&api, &request).await
    }

    /// A consumer's configuration and state (`CONSUMER.INFO`).
    pub async fn consumer_info(&self, stream: &str, name: &str) -> Result<ConsumerInfo> {
        check_name("stream", stream)?;
        check_name("consumer", name)?;
        self.request_bytes(&format!("CONSUMER.INFO.{stream}.{name}"), b"")
            .await
    }

    /// The names of `stream`'s consumers (`CONSUMER.NAMES`, every page).
    pub async fn consumer_names(&self, stream: &str) -> Result<Vec<String>> {
        check_name("stream", stream)?;
        let api = format!("CONSUMER.NAMES.{stream}");
        let mut names = Vec::new();
        loop {
            let request = ConsumersRequest {
                offset: names.len() as u64,
            };
            let page: ConsumerNamesResponse = self.request(&api, &request).await?;
            let done = page.consumers.is_empty();
            names.extend(page.consumers);
            if done || names.len() as u64 >= page.paged.total {
                return Ok(names);
            }
        }
    }

    /// The information of `stream`'s consumers (`CONSUMER.LIST`, every page).
    pub async fn consumers(&self, stream: &str) -> Result<Vec<ConsumerInfo>> {
        check_name("stream", stream)?;
        let api = format!("CONSUMER.LIST.{stream}");
        let mut consumers = Vec::new();
        let mut offset = 0u64;
        loop {
            let page: ConsumerListResponse = self.request(&api, &ConsumersRequest { offset }).await?;
            let got = (page.consumers.len() + page.missing.len()) as u64;
            offset += got;
            consumers.extend(page.consumers);
            if got == 0 || offset >= page.paged.total {
                return Ok(consumers);
            }
        }
    }

    /// Deletes a consumer (`CONSUMER.DELETE`).
    pub async fn delete_consumer(&self, stream: &str, name: &str) -> Result<()> {
        check_name("stream", stream)?;
        check_name("consumer", name)?;
        let response: DeleteResponse = self
            .request_bytes(&format!("CONSUMER.DELETE.{stream}.{name}"), b"")
            .await?;
        success(response.success, "consumer delete")
    }

    /// Pulls up to `batch` messages from a pull consumer
    /// (`CONSUMER.MSG.NEXT.<stream>.<consumer>` with a fresh inbox as reply).
    ///
    /// Returns when `batch` messages arrived, when the server ends the
    /// request (`404 No Messages`, `408 Request Timeout`, a `409`), or when
    /// `expires` has passed; fewer messages (even none) is not an error.
    /// A zero `expires` asks for what is available now (`no_wait`). A `409`
    /// or `400` before any message (e.g. `409 Consumer is push based`) is
    /// [`Error::JetStreamStatus`]; a missing consumer is
    /// [`Error::NoResponders`].
    pub async fn fetch(
        &self,
        stream: &str,
        consumer: &str,
        batch: usize,
        expires: Duration,
    ) -> Result<Vec<JsMessage>> {
        check_name("stream", stream)?;
        check_name("consumer", consumer)?;
        let batch = batch.max(1);
        let subject = self.api_subject(&format!("CONSUMER.MSG.NEXT.{stream}.{consumer}"));
        let inbox = self.client.new_inbox();
        let mut sub = self.client.subscribe(&inbox).await?;
        let request = next_request(batch, expires);
        let body = serde_json::to_vec(&request).expect("pull request serializes");
        self.client.publish_with_reply(&subject, &inbox, body)?;
        let wait = if expires.is_zero() {
            self.timeout()
        } else {
            expires + FETCH_GRACE
        };
        let deadline = Instant::now() + wait;
        let mut messages = Vec::with_capacity(batch.min(1024));
        while messages.len() < batch {
            let message = match tokio::time::timeout_at(deadline, sub.next()).await {
                Err(_) => break,
                Ok(None) => return Err(Error::Closed),
                Ok(Some(message)) => message,
            };
            match PullEvent::of(&message) {
                PullEvent::Message => {
                    messages.push(JsMessage::new(message, self.client.clone(), self.timeout()))
                }
                PullEvent::Heartbeat => {}
                PullEvent::End => break,
                PullEvent::NoResponders => return Err(Error::NoResponders { subject }),
                PullEvent::Failed { code, description } => {
                    if messages.is_empty() {
                        return Err(Error::JetStreamStatus { code, description });
                    }
                    break;
                }
            }
        }
        sub.unsubscribe();
        Ok(messages)
    }
}

/// The pull request body of [`JetStream::fetch`].
pub(crate) fn next_request(batch: usize, expires: Duration) -> NextRequest {
    NextRequest {
        batch: i64::try_from(batch).unwrap_or(i64::MAX),
        expires: nanos(expires),
        no_wait: expires.is_zero(),
        ..NextRequest::default()
    }
}

/// What one message on a pull request's inbox means.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum PullEvent {
    /// A delivered message.
    Message,
    /// `100 Idle Heartbeat`: keep waiting.
    Heartbeat,
    /// The request is over: `404 No Messages`, `408 Request Timeout`,
    /// `409 Batch Completed`, `409 Message Size Exceeds MaxBytes`, or
    /// another `409` (consumer deleted, limits) after some messages.
    End,
    /// `503`: nothing serves the consumer's subject.
    NoResponders,
    /// Another status, e.g. `400 Bad Request`, `409 Consumer is push based`.
    Failed {
        /// Status code.
        code: u16,
        /// Its description.
        description: String,
    },
}

impl PullEvent {
    pub(crate) fn of(message: &Message) -> PullEvent {
        let Some(code) = message.status else {
            return PullEvent::Message;
        };
        let description = message
            .headers
            .as_ref()
            .and_then(|h| h.description.clone())
            .unwrap_or_default();
        match code {
            100 => PullEvent::Heartbeat,
            404 | 408 => PullEvent::End,
            409 if description == "Batch Completed" || description.starts_with("Message Size Exceeds") => {
                PullEvent::End
            }
            503 => PullEvent::NoResponders,
            _ => PullEvent::Failed { code, description },
        }
    }
}
