//! The client handle: connecting, publishing, subscribing, flush, drain, close.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use herald_protocol::{encode, Headers};
use tokio::sync::{mpsc, watch};

use crate::connection;
use crate::shared::{Handle, Shared, Sink, SubEntry};
use crate::validate::{check_queue, check_subject, parse_url};
use crate::{ConnectOptions, Error, Result, Subscriber};

/// How long [`Client::close`] waits for the server to confirm what was sent.
const CLOSE_FLUSH_WAIT: Duration = Duration::from_secs(1);
/// How long [`Client::close`] waits for the connection task to finish.
const CLOSE_WAIT: Duration = Duration::from_secs(2);

/// Where the client's connection stands; see [`Client::connection_state`]
/// and [`Client::state_changes`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionState {
    /// Connected and handshaken.
    Connected,
    /// Lost the connection; trying again. Publishes are buffered meanwhile.
    Reconnecting,
    /// Closed for good: by [`Client::close`], [`Client::drain`], after the
    /// last handle was dropped, or after reconnecting gave up.
    Closed,
}

/// A connection to a server speaking the NATS client protocol.
///
/// Cheap to clone: all clones (and every [`Subscriber`]) share one
/// connection, owned by a background task that reads, writes and
/// reconnects. The connection closes on [`Client::close`], on
/// [`Client::drain`], or once every clone and every subscriber is dropped.
#[derive(Clone)]
pub struct Client {
    pub(crate) handle: Arc<Handle>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("url", &self.shared().url)
            .field("state", &self.connection_state())
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Connects with default options to `nats://host:port` or `host:port`
    /// (the port defaults to 4333). Returns once the server has accepted the
    /// connection: its `INFO` was read, `CONNECT` sent and our first `PING`
    /// answered. A failed first connection is not retried.
    pub async fn connect(url: &str) -> Result<Client> {
        Self::connect_with(url, ConnectOptions::default()).await
    }

    /// Connects with `options`; see [`Client::connect`].
    pub async fn connect_with(url: &str, options: ConnectOptions) -> Result<Client> {
        let (url, addr) = parse_url(url)?;
        let shared = Arc::new(Shared::new(url, addr, options));
        let established = connection::establish(&shared).await?;
        tokio::spawn(connection::run(shared.clone(), established));
        Ok(Client {
            handle: Arc::new(Handle { shared }),
        })
    }

    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.handle.shared
    }

    /// The URL connected to, as `nats://host:port`.
    pub fn url(&self) -> &str {
        &self.shared().url
    }

    /// The current connection state.
    pub fn connection_state(&self) -> ConnectionState {
        *self.shared().state.borrow()
    }

    /// A receiver that sees every change of the connection state, e.g. to
    /// wait for [`ConnectionState::Connected`] after a disconnect.
    pub fn state_changes(&self) -> watch::Receiver<ConnectionState> {
        self.shared().state.subscribe()
    }

    /// The largest payload (headers included) the server accepts, from its
    /// `INFO`. Larger publishes fail with [`Error::MaxPayload`].
    pub fn max_payload(&self) -> usize {
        self.shared().max_payload.load(Ordering::Relaxed)
    }

    /// Publishes `payload` to `subject`.
    ///
    /// Returns once the message is queued for the connection task, which
    /// coalesces queued messages into few socket writes; use
    /// [`Client::flush`] to wait until the server has them. While
    /// reconnecting, messages are buffered up to
    /// [`ConnectOptions::reconnect_buffer_max`], then [`Error::Disconnected`].
    pub fn publish(&self, subject: &str, payload: impl AsRef<[u8]>) -> Result<()> {
        self.publish_full(subject, None, None, payload.as_ref())
    }

    /// Publishes with headers.
    pub fn publish_with_headers(
        &self,
        subject: &str,
        headers: &Headers,
        payload: impl AsRef<[u8]>,
    ) -> Result<()> {
        self.publish_full(subject, None, Some(headers), payload.as_ref())
    }

    /// Publishes with a reply subject, where receivers send their answers.
    pub fn publish_with_reply(&self, subject: &str, reply: &str, payload: impl AsRef<[u8]>) -> Result<()> {
        check_subject(reply)?;
        self.publish_full(subject, Some(reply), None, payload.as_ref())
    }

    /// Publishes with a reply subject and headers.
    pub fn publish_with_reply_and_headers(
        &self,
        subject: &str,
        reply: &str,
        headers: &Headers,
        payload: impl AsRef<[u8]>,
    ) -> Result<()> {
        check_subject(reply)?;
        self.publish_full(subject, Some(reply), Some(headers), payload.as_ref())
    }

    pub(crate) fn publish_full(
        &self,
        subject: &str,
        reply: Option<&str>,
        headers: Option<&Headers>,
        payload: &[u8],
    ) -> Result<()> {
        check_subject(subject)?;
        let header_block = headers.map(Headers::to_bytes);
        let header_len = header_block.as_ref().map(Vec::len);
        let size = header_len.unwrap_or(0) + payload.len();
        let max = self.max_payload();
        if size > max {
            return Err(Error::MaxPayload { size, max });
        }
        let subject = subject.as_bytes();
        let reply = reply.map(str::as_bytes);
        let frame_len = size + subject.len() + reply.map_or(0, <[u8]>::len) + 32;
        self.shared().send_with(frame_len, |buf| match &header_block {
            Some(block) => encode::publish_headers(buf, subject, reply, block, payload),
            None => encode::publish(buf, subject, reply, None, payload),
        })
    }

    /// Subscribes to `subject`; `*` matches one token and `>` the rest.
    ///
    /// The subscription is queued like a publish: call [`Client::flush`] to
    /// be sure the server has it before relying on it (e.g. before another
    /// connection publishes).
    pub async fn subscribe(&self, subject: &str) -> Result<Subscriber> {
        self.subscribe_inner(subject, None)
    }

    /// Joins queue group `queue` on `subject`: each message goes to one
    /// member of the group.
    pub async fn queue_subscribe(&self, subject: &str, queue: &str) -> Result<Subscriber> {
        check_queue(queue)?;
        self.subscribe_inner(subject, Some(queue))
    }

    fn subscribe_inner(&self, subject: &str, queue: Option<&str>) -> Result<Subscriber> {
        check_subject(subject)?;
        let shared = self.shared();
        let (tx, rx) = mpsc::channel(shared.options.subscription_capacity);
        let dropped = Arc::new(AtomicU64::new(0));
        let sid = shared.subscribe(SubEntry {
            subject: subject.to_string(),
            queue: queue.map(str::to_string),
            sink: Sink::Channel(tx, dropped.clone()),
            max: None,
            delivered: 0,
        })?;
        Ok(Subscriber {
            sid,
            rx,
            handle: self.handle.clone(),
            dropped,
            ended: false,
        })
    }

    /// Waits until the server has processed everything sent so far (a
    /// `PING` and its `PONG`), up to the request timeout.
    ///
    /// While reconnecting, the `PING` waits in the buffer like a publish; a
    /// flush whose `PING` was lost with the connection fails with
    /// [`Error::Disconnected`].
    pub async fn flush(&self) -> Result<()> {
        let pong = self.shared().ping()?;
        match tokio::time::timeout(self.shared().options.request_timeout, pong).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(Error::Closed),
            Err(_) => Err(Error::Timeout),
        }
    }

    /// Closes gracefully: unsubscribes everything, waits until every message
    /// already sent to this client has arrived (a flush), lets subscribers
    /// read what they hold (their streams then end), and closes.
    pub async fn drain(&self) -> Result<()> {
        let shared = self.shared();
        if shared.is_closed() {
            return Ok(());
        }
        let sids = shared.unsubscribe_all_on_server();
        let flushed = self.flush().await;
        {
            let mut subs = shared.subs.lock();
            for sid in sids {
                subs.remove(&sid);
            }
        }
        self.close().await;
        flushed
    }

    /// Closes the connection: what is queued is written (the server is given
    /// up to a second to confirm it), subscriber streams end, pending
    /// requests and flushes fail with [`Error::Closed`], and further
    /// operations fail with [`Error::Closed`]. Idempotent.
    pub async fn close(&self) {
        let shared = self.shared();
        if !shared.is_closed() && self.connection_state() == ConnectionState::Connected {
            let _ = tokio::time::timeout(CLOSE_FLUSH_WAIT, self.flush()).await;
        }
        shared.begin_close();
        let mut state = shared.state.subscribe();
        let _ = tokio::time::timeout(CLOSE_WAIT, state.wait_for(|s| *s == ConnectionState::Closed)).await;
    }
}
