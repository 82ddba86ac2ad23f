//! Event notification: a thin event says *what* changed; whoever cares
//! fetches the current state from its owner.
//!
//! A [`Notification`] carries only the key of the entity that changed
//! (e.g. a customer id, or an aggregate's `<category>.<id>`), its version
//! after the change, the event type, and an id, as small JSON. Receivers
//! ([`Notifier::subscribe`]) then fetch the state they need:
//! - the latest message on the entity's state subject, by direct get:
//!   [`fetch_latest`] (its [`Latest::version`] is the stream position, to
//!   compare with [`Notification::version`]);
//! - the aggregate's events from an [`EventStore`](crate::EventStore): `store.read(
//!   &notification.aggregate()?, 0)`, or just `store.version(…)`;
//! - or by asking the owning service (`client.request(…)`).
//!
//! Compared with a [`Replica`](crate::Replica) (event-carried state
//! transfer) the payloads stay small and the state is always read fresh,
//! at the cost of a call per notification, to a source that must be up.
//!
//! Notifications go out as plain publishes: receivers that are not
//! subscribed miss them, unless a stream captures the subject (any
//! consumer can then decode them with [`Notification::decode`]).
//!
//! ```no_run
//! use herald_events::{fetch_latest, Notification, Notifier};
//! use serde::Deserialize;
//!
//! #[derive(Debug, Deserialize)]
//! struct Customer {
//!     city: String,
//! }
//!
//! # #[tokio::main] async fn main() -> herald_events::Result<()> {
//! let client = herald_client::Client::connect("nats://127.0.0.1:4333").await?;
//! let js = client.jetstream();
//! let notifier = Notifier::new(&client);
//! let mut notifications = notifier.subscribe("notify.customers").await?;
//!
//! // The owner: store the new state, then say so.
//! let ack = js.publish("customers.state.c-1", r#"{"city":"Oslo"}"#).await?;
//! notifier.notify("notify.customers", &Notification::new("c-1", ack.seq, "CustomerMoved"))?;
//!
//! // A receiver: fetch the state the notification points at.
//! let notification = notifications.next().await.expect("open")?;
//! let subject = format!("customers.state.{}", notification.key);
//! let latest = fetch_latest::<Customer>(&js, "CUSTOMERS", &subject).await?.expect("stored");
//! assert!(latest.version >= notification.version);
//! println!("{} now lives in {}", notification.key, latest.value.city);
//! # Ok(()) }
//! ```

use herald_client::jetstream::JetStream;
use herald_client::{Client, Headers, Subscriber};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::codec::{Codec, JSON};
use crate::envelope::{new_id, CONTENT_TYPE};
use crate::naming::AggregateId;
use crate::store::Appended;
use crate::{Error, Result};

/// Largest encoded notification: it is meant to be thin.
pub const NOTIFICATION_LEN_MAX: usize = 4096;

/// A thin event: which entity changed, to which version, how.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notification {
    /// The entity: a key such as `c-1`, or an aggregate's
    /// `<category>.<id>` (see [`Notification::aggregate`]).
    pub key: String,
    /// Its version after the change: the stream position of its new state
    /// or last event (0 if unversioned).
    pub version: u64,
    /// What happened, e.g. `CustomerMoved`.
    #[serde(rename = "type")]
    pub event_type: String,
    /// Unique (a ULID): receivers may drop repeats by it.
    pub id: String,
}

impl Notification {
    /// A notification with a new id.
    pub fn new(key: impl Into<String>, version: u64, event_type: impl Into<String>) -> Notification {
        Notification {
            key: key.into(),
            version,
            event_type: event_type.into(),
            id: new_id(),
        }
    }

    /// The notification of an append to an [`EventStore`](crate::EventStore): the aggregate
    /// as key, its new version.
    pub fn appended(appended: &Appended, event_type: impl Into<String>) -> Notification {
        Notification::new(appended.aggregate.to_string(), appended.version, event_type)
    }

    /// The key as an aggregate (`<category>.<id>`).
    pub fn aggregate(&self) -> Result<AggregateId> {
        AggregateId::parse_subject(&self.key)
    }

    /// The JSON payload.
    pub fn encode(&self) -> Result<Vec<u8>> {
        let bytes = serde_json::to_vec(self)?;
        if bytes.len() > NOTIFICATION_LEN_MAX {
            return Err(Error::invalid(
                "notification",
                format!("{} bytes; at most {NOTIFICATION_LEN_MAX}", bytes.len()),
            ));
        }
        Ok(bytes)
    }

    /// Reads a notification's JSON payload.
    pub fn decode(payload: &[u8]) -> Result<Notification> {
        Ok(serde_json::from_slice(payload)?)
    }
}

/// Sends and receives [`Notification`]s on a connection.
#[derive(Debug, Clone)]
pub struct Notifier {
    client: Client,
}

impl Notifier {
    /// A notifier on `client`.
    pub fn new(client: &Client) -> Notifier {
        Notifier {
            client: client.clone(),
        }
    }

    /// Publishes `notification` on `subject`. Like any publish it is only
    /// queued: [`Client::flush`] waits until the server has it.
    pub fn notify(&self, subject: &str, notification: &Notification) -> Result<()> {
        let mut headers = Headers::new();
        headers.append(CONTENT_TYPE, JSON);
        self.client
            .publish_with_headers(subject, &headers, notification.encode()?)?;
        Ok(())
    }

    /// Notifications published on subjects matching `subject` from now on.
    pub async fn subscribe(&self, subject: &str) -> Result<Notifications> {
        Ok(Notifications {
            sub: self.client.subscribe(subject).await?,
        })
    }

    /// Like [`Notifier::subscribe`], each notification going to one member
    /// of `queue` only (competing receivers).
    pub async fn queue_subscribe(&self, subject: &str, queue: &str) -> Result<Notifications> {
        Ok(Notifications {
            sub: self.client.queue_subscribe(subject, queue).await?,
        })
    }
}

/// Received notifications; see [`Notifier::subscribe`].
#[derive(Debug)]
pub struct Notifications {
    sub: Subscriber,
}

impl Notifications {
    /// The next notification (an error for a payload that is not one);
    /// `None` once the connection has closed.
    pub async fn next(&mut self) -> Option<Result<Notification>> {
        let message = self.sub.next().await?;
        Some(Notification::decode(&message.payload))
    }
}

/// The latest state of an entity, as [`fetch_latest`] read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Latest<V> {
    /// The subject it was read from.
    pub subject: String,
    /// Its stream position: below a notification's version, it predates
    /// the change notified.
    pub version: u64,
    /// The decoded state.
    pub value: V,
}

/// The last message on `subject` in `stream` decoded as `V` (by
/// [`decode_state`]: JSON, or CBOR by `content-type`), read by direct get
/// without a consumer; `None` if there is none, or it is a tombstone (an
/// empty payload). The stream must allow direct gets (`allow_direct`):
/// with another stream, or none, the error is
/// [`herald_client::Error::NoResponders`].
pub async fn fetch_latest<V: DeserializeOwned>(
    js: &JetStream,
    stream: &str,
    subject: &str,
) -> Result<Option<Latest<V>>> {
    let Some(message) = js.direct_get_last(stream, subject).await? else {
        return Ok(None);
    };
    if message.payload.is_empty() {
        return Ok(None);
    }
    Ok(Some(Latest {
        value: decode_state(message.headers.as_ref(), &message.payload)?,
        subject: message.subject,
        version: message.sequence,
    }))
}

/// Decodes a state payload as `V`: JSON, or CBOR when `content-type`
/// says `application/cbor` (what herald-events envelopes carry).
pub fn decode_state<V: DeserializeOwned>(headers: Option<&Headers>, payload: &[u8]) -> Result<V> {
    let content_type = headers.and_then(|h| h.get(CONTENT_TYPE)).unwrap_or(JSON);
    let media = content_type.split(';').next().unwrap_or_default().trim();
    if media == JSON || media.is_empty() {
        // The common case, without an intermediate value tree.
        return Ok(serde_json::from_slice(payload)?);
    }
    Ok(serde_json::from_value(Codec::decode(content_type, payload)?)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_follows_the_content_type() {
        let json: serde_json::Value = decode_state(None, br#"{"a":1}"#).unwrap();
        assert_eq!(json["a"], 1);
        let mut headers = Headers::new();
        headers.append(CONTENT_TYPE, crate::codec::CBOR);
        let cbor = Codec::Cbor.encode(&serde_json::json!({"a": 2})).unwrap();
        let value: serde_json::Value = decode_state(Some(&headers), &cbor).unwrap();
        assert_eq!(value["a"], 2);
        assert!(decode_state::<serde_json::Value>(None, b"not json").is_err());
    }

    #[test]
    fn notifications_are_small_json() {
        let notification = Notification::new("accounts.a-1", 7, "Deposited");
        let bytes = notification.encode().unwrap();
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(
            text.starts_with(r#"{"key":"accounts.a-1","version":7,"type":"Deposited","id":""#),
            "{text}"
        );
        assert_eq!(Notification::decode(&bytes).unwrap(), notification);
        assert_eq!(notification.aggregate().unwrap().id(), "a-1");
        assert!(Notification::decode(b"{}").is_err());
        let fat = Notification::new("k".repeat(NOTIFICATION_LEN_MAX), 1, "T");
        assert!(fat.encode().is_err());
    }
}
