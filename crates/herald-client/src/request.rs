//! Request-reply over one wildcard inbox subscription per client.

use std::sync::atomic::Ordering;
use std::time::Duration;

use herald_protocol::Headers;
use tokio::sync::oneshot;

use crate::shared::{Shared, Sink, SubEntry};
use crate::validate::check_subject;
use crate::{Client, Error, Message, Result};

/// Status code a server puts in the reply when a request has no subscriber.
const NO_RESPONDERS: u16 = 503;

impl Client {
    /// Sends a request and waits for the first reply, up to the default
    /// request timeout ([`crate::ConnectOptions::request_timeout`]).
    ///
    /// No subscriber on `subject` is [`Error::NoResponders`] (at once, not
    /// after the timeout); no reply in time is [`Error::Timeout`]. Any
    /// number of requests may run concurrently.
    pub async fn request(&self, subject: &str, payload: impl AsRef<[u8]>) -> Result<Message> {
        let timeout = self.shared().options.request_timeout;
        self.request_full(subject, None, payload.as_ref(), timeout).await
    }

    /// [`Client::request`] with its own timeout.
    pub async fn request_with_timeout(
        &self,
        subject: &str,
        payload: impl AsRef<[u8]>,
        timeout: Duration,
    ) -> Result<Message> {
        self.request_full(subject, None, payload.as_ref(), timeout).await
    }

    /// [`Client::request`] with headers and a timeout.
    pub async fn request_with_headers(
        &self,
        subject: &str,
        headers: &Headers,
        payload: impl AsRef<[u8]>,
        timeout: Duration,
    ) -> Result<Message> {
        self.request_full(subject, Some(headers), payload.as_ref(), timeout)
            .await
    }

    /// Publishes `payload` to the reply subject of `request`.
    ///
    /// Fails with [`Error::InvalidSubject`] if the message has no reply
    /// subject.
    pub fn respond(&self, request: &Message, payload: impl AsRef<[u8]>) -> Result<()> {
        let reply = request
            .reply
            .as_deref()
            .ok_or_else(|| Error::InvalidSubject("message has no reply subject".into()))?;
        self.publish(reply, payload)
    }

    async fn request_full(
        &self,
        subject: &str,
        headers: Option<&Headers>,
        payload: &[u8],
        timeout: Duration,
    ) -> Result<Message> {
        check_subject(subject)?;
        let shared = self.shared();
        let inbox = inbox(shared)?;
        let token = shared.next_request.fetch_add(1, Ordering::Relaxed).to_string();
        let (tx, rx) = oneshot::channel();
        shared.requests.lock().insert(token.clone(), tx);
        // Removes the waiter however this future ends (error, timeout, drop).
        let _pending = Pending {
            shared,
            token: &token,
        };
        let reply = format!("{inbox}.{token}");
        self.publish_full(subject, Some(&reply), headers, payload)?;
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(message)) if message.status == Some(NO_RESPONDERS) => Err(Error::NoResponders {
                subject: subject.to_string(),
            }),
            Ok(Ok(message)) => Ok(message),
            Ok(Err(_)) => Err(Error::Closed),
            Err(_) => Err(Error::Timeout),
        }
    }
}

/// The inbox prefix `_INBOX.<random>`, subscribing `<prefix>.*` on first use.
fn inbox(shared: &Shared) -> Result<String> {
    let mut inbox = shared.inbox.lock();
    if let Some(prefix) = inbox.as_ref() {
        return Ok(prefix.clone());
    }
    let random: String = std::iter::repeat_with(fastrand::alphanumeric).take(22).collect();
    let prefix = format!("_INBOX.{random}");
    shared.subscribe(SubEntry {
        subject: format!("{prefix}.*"),
        queue: None,
        sink: Sink::Inbox,
        max: None,
        delivered: 0,
    })?;
    *inbox = Some(prefix.clone());
    Ok(prefix)
}

/// Routes a message that arrived on the inbox to its waiting request.
pub(crate) fn deliver_reply(shared: &Shared, message: Message) {
    let token = message.subject.rsplit('.').next().unwrap_or_default();
    if let Some(waiter) = shared.requests.lock().remove(token) {
        let _ = waiter.send(message);
    }
}

struct Pending<'a> {
    shared: &'a Shared,
    token: &'a str,
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        self.shared.requests.lock().remove(self.token);
    }
}
