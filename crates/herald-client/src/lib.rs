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
//!   server's `-ERR`).
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

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod client;
mod connection;
mod error;
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
