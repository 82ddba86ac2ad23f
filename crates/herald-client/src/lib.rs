//! A Rust client for Herald. It speaks the NATS client protocol, so it works
//! with Herald and with any NATS server.
//!
//! The main types:
//! - [`Client`]: one connection, cheap to clone: publish (with headers or a
//!   reply subject), subscribe, queue-subscribe, request with timeout, flush,
//!   drain, close. Reconnects with backoff and re-establishes subscriptions;
//!   [`Client::state_changes`] reports [`ConnectionState`] changes.
//! - [`Subscriber`]: a subscription's messages as a `Stream`, with a bounded
//!   queue that drops (and counts) rather than stalling the connection.
//! - [`Message`]: subject, reply, [`Headers`], payload, status.
//! - [`ConnectOptions`]: name, timeouts, reconnect policy, bounds.
//! - [`Error`]: what went wrong, e.g. [`Error::ConnectionRefused`],
//!   [`Error::NoResponders`], [`Error::Timeout`], [`Error::Protocol`] (the
//!   server's `-ERR`), [`Error::JetStream`] (a JetStream API error, with
//!   helpers such as [`Error::is_wrong_last_sequence`]).
//!
//! JetStream, in [`jetstream`] ([`Client::jetstream`]):
//! - [`jetstream::JetStream`]: manage streams and consumers, publish with a
//!   [`jetstream::PubAck`] and [`jetstream::PublishOptions`] (de-duplication,
//!   expected sequences), read stored messages, pull with
//!   [`jetstream::JetStream::fetch`].
//! - [`jetstream::JsMessage`]: a delivered message with
//!   [`jetstream::MessageInfo`] (stream, sequences, delivery count) and
//!   `ack`, `nak`, `in_progress`, `term`, `double_ack`.
//! - [`jetstream::Kv`]: key-value buckets (`put`, `get`, `create`,
//!   `update`, `delete`, `purge`, `keys`, `watch`) built on streams as NATS
//!   clients build them, so buckets are shared with other NATS clients.
//!
//! One background task per connection owns the socket: it reads and
//! dispatches messages, answers the server's `PING`s, and writes everything
//! the handles queued since its last write in one go, so many small
//! publishes cost few system calls. Publishing only queues bytes;
//! [`Client::flush`] waits until the server has processed them.
//!
//! ```no_run
//! use herald_client::{Client, Error};
//!
//! # #[tokio::main] async fn main() -> Result<(), Error> {
//! let client = Client::connect("nats://127.0.0.1:4333").await?;
//!
//! // Publish-subscribe.
//! let mut orders = client.subscribe("orders.*").await?;
//! client.publish("orders.created", "order 42")?;
//! let message = orders.next().await.expect("subscribed");
//! assert_eq!(&message.payload[..], b"order 42");
//!
//! // Request-reply: a responder answers on the request's reply subject.
//! let mut service = client.queue_subscribe("time.now", "clock").await?;
//! let responder = client.clone();
//! tokio::spawn(async move {
//!     while let Some(request) = service.next().await {
//!         let _ = responder.respond(&request, "12:00");
//!     }
//! });
//! let reply = client.request("time.now", "").await?;
//! assert_eq!(&reply.payload[..], b"12:00");
//!
//! // Nobody listening: a clear error instead of a timeout.
//! assert!(matches!(client.request("nobody.home", "").await, Err(Error::NoResponders { .. })));
//!
//! client.drain().await?;
//! # Ok(()) }
//! ```
//!
//! JetStream: a stream, an acknowledged publish, a pull consumer, a bucket.
//!
//! ```no_run
//! use std::time::Duration;
//! use herald_client::jetstream::{AckPolicy, ConsumerConfig, StreamConfig};
//!
//! # #[tokio::main] async fn main() -> Result<(), herald_client::Error> {
//! let client = herald_client::Client::connect("nats://127.0.0.1:4333").await?;
//! let js = client.jetstream();
//! js.create_stream(StreamConfig::new("ORDERS", vec!["orders.>".into()])).await?;
//! let ack = js.publish("orders.created", "order 42").await?;
//! assert_eq!(ack.stream, "ORDERS");
//!
//! let config = ConsumerConfig {
//!     durable_name: "worker".into(),
//!     ack_policy: AckPolicy::Explicit,
//!     ..Default::default()
//! };
//! js.create_consumer("ORDERS", config).await?;
//! for message in js.fetch("ORDERS", "worker", 10, Duration::from_secs(1)).await? {
//!     println!("#{} {:?}", message.info()?.stream_seq, message.payload);
//!     message.ack()?;
//! }
//!
//! let kv = js.kv_create_bucket("settings", 5).await?;
//! let revision = kv.put("mode", "fast").await?;
//! let err = kv.update("mode", "slow", revision - 1).await.unwrap_err();
//! assert!(err.is_wrong_last_sequence());
//! # Ok(()) }
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod client;
mod connection;
mod error;
pub mod jetstream;
mod message;
mod options;
mod request;
mod shared;
mod subscriber;
mod validate;

pub use client::{Client, ConnectionState};
pub use error::{Error, Result};
pub use herald_protocol::Headers;
pub use message::Message;
pub use options::ConnectOptions;
pub use subscriber::Subscriber;

#[cfg(test)]
mod tests;
