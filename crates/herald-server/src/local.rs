//! The server's own client: how the HTTP front end and the webhook
//! dispatcher publish, subscribe and call the JetStream API without a
//! socket.
//!
//! A [`Local`] routes through the same [`Publisher`] as a client
//! connection, so an event published over HTTP reaches NATS subscribers and
//! streams exactly as an `HPUB` would. Replies (API answers, PubAcks, pulled
//! messages) come back through one internal wildcard subscription on the
//! local inbox prefix and are handed to whoever waits for that inbox token,
//! through a bounded channel: a reader that falls behind loses its channel
//! (it is told it overflowed), the publishing task never waits.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use herald_protocol::Headers;
use parking_lot::Mutex;
use rustc_hash::FxHashMap;
use tokio::sync::mpsc;

use crate::publisher::{PubData, Publisher};
use crate::router::{InMsg, InternalHandler, InternalSub};
use crate::ServerState;

/// Publishers kept for reuse (each holds a subject match cache).
const PUBLISHERS_POOLED_MAX: usize = 64;

/// A message as the local client receives it: owned, cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct LocalMsg {
    /// The subject it was routed to (for deliveries of a consumer: the
    /// inbox; see [`LocalMsg::shown`] for the stored subject).
    pub subject: Bytes,
    /// The subject a client would be shown when it differs from `subject`:
    /// the stored subject of a consumer delivery.
    pub shown: Option<Bytes>,
    /// Its reply subject (a JetStream ack subject for consumer deliveries).
    pub reply: Option<Bytes>,
    /// The raw header block, empty for none.
    pub headers: Bytes,
    /// The payload.
    pub payload: Bytes,
}

impl LocalMsg {
    fn copy_of(msg: &InMsg<'_>) -> LocalMsg {
        LocalMsg {
            subject: Bytes::copy_from_slice(msg.subject),
            shown: (msg.shown != msg.subject).then(|| Bytes::copy_from_slice(msg.shown)),
            reply: msg.reply.map(Bytes::copy_from_slice),
            headers: Bytes::copy_from_slice(msg.headers),
            payload: Bytes::copy_from_slice(msg.payload),
        }
    }

    /// The parsed header block; `None` when there is none or it is damaged.
    pub fn parsed_headers(&self) -> Option<Headers> {
        if self.headers.is_empty() {
            return None;
        }
        Headers::parse(&self.headers).ok()
    }

    /// The status code of a status-only message (`NATS/1.0 404 ...`).
    pub fn status(&self) -> Option<u16> {
        self.parsed_headers()?.status
    }

    /// The subject as text (subjects are validated ASCII on the way in).
    pub fn subject_str(&self) -> &str {
        std::str::from_utf8(&self.subject).unwrap_or("")
    }

    /// The subject a client is shown: the stored subject of a consumer
    /// delivery, else the subject, as text.
    pub fn shown_str(&self) -> &str {
        let shown = self.shown.as_ref().unwrap_or(&self.subject);
        std::str::from_utf8(shown).unwrap_or("")
    }

    /// Header and payload bytes, what a byte bound counts.
    fn size(&self) -> usize {
        self.headers.len() + self.payload.len()
    }
}

/// Why a local call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum LocalError {
    /// No answer came in time.
    #[error("no reply within {0:?}")]
    Timeout(Duration),
    /// Nothing is subscribed to the request subject.
    #[error("no responders for {0}")]
    NoResponders(String),
    /// The subject is not a valid subject (or pattern, for subscriptions).
    #[error("invalid subject: {0}")]
    InvalidSubject(String),
}

/// What one publish did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Published {
    /// Some subscription (client or internal) took the message.
    pub delivered: bool,
}

/// One receiver of messages on an inbox token or a subscription: a bounded
/// channel, and the flag raised when it was full.
struct Sink {
    tx: mpsc::Sender<LocalMsg>,
    overflowed: Arc<AtomicBool>,
    /// Unread bytes and their bound, for receivers bounded in bytes too.
    queued: Option<Arc<QueuedBytes>>,
}

/// Header and payload bytes waiting unread in one channel.
struct QueuedBytes {
    now: AtomicUsize,
    max: usize,
}

impl Sink {
    fn offer(&self, msg: LocalMsg) {
        if self.overflowed.load(Ordering::Relaxed) {
            return;
        }
        let size = msg.size();
        if let Some(queued) = &self.queued {
            // A count bound alone lets large messages pile up to count x
            // max payload; the byte bound caps the memory one reader holds.
            if queued.now.fetch_add(size, Ordering::Relaxed) + size > queued.max {
                queued.now.fetch_sub(size, Ordering::Relaxed);
                self.overflowed.store(true, Ordering::Relaxed);
                return;
            }
        }
        if let Err(e) = self.tx.try_send(msg) {
            if let Some(queued) = &self.queued {
                queued.now.fetch_sub(size, Ordering::Relaxed);
            }
            if let mpsc::error::TrySendError::Full(_) = e {
                // Never block the publishing task: the reader learns it lost
                // messages and decides (HTTP streams are cut off).
                self.overflowed.store(true, Ordering::Relaxed);
            }
        }
    }
}

/// The inbox handler: hands each reply to the waiter of its last token.
#[derive(Default)]
struct Inbox {
    waiters: Mutex<FxHashMap<u64, Sink>>,
}

impl InternalHandler for Inbox {
    fn on_message(&self, msg: &InMsg<'_>, _effects: &mut crate::publisher::Effects) {
        let token = msg
            .subject
            .rsplit(|&b| b == b'.')
            .next()
            .and_then(|t| std::str::from_utf8(t).ok())
            .and_then(|t| t.parse::<u64>().ok());
        let Some(token) = token else { return };
        let waiters = self.waiters.lock();
        if let Some(sink) = waiters.get(&token) {
            sink.offer(LocalMsg::copy_of(msg));
        }
    }
}

/// A subscription's handler: every matching message into one channel.
struct SubscriptionSink(Sink);

impl InternalHandler for SubscriptionSink {
    fn on_message(&self, msg: &InMsg<'_>, _effects: &mut crate::publisher::Effects) {
        self.0.offer(LocalMsg::copy_of(msg));
    }
}

/// The server's in-process client. Cheap to share (`Arc`).
pub(crate) struct Local {
    state: Arc<ServerState>,
    /// `_HERALD.LOCAL.<random>.`: every inbox of this client starts so.
    inbox_prefix: String,
    inbox: Arc<Inbox>,
    inbox_sub: Arc<InternalSub>,
    next_token: AtomicU64,
    publishers: Mutex<Vec<Publisher>>,
}

impl Local {
    /// A client of `state`'s router, with its inbox subscribed.
    pub fn new(state: Arc<ServerState>) -> Arc<Local> {
        let inbox_prefix = format!("_HERALD.LOCAL.{:016x}.", fastrand::u64(..));
        let inbox = Arc::new(Inbox::default());
        let inbox_sub = Arc::new(InternalSub {
            subject: format!("{inbox_prefix}>").into_bytes().into(),
            handler: inbox.clone(),
        });
        state
            .router
            .insert_internal(&inbox_sub)
            .expect("the local inbox subject is valid");
        Arc::new(Local {
            state,
            inbox_prefix,
            inbox,
            inbox_sub,
            next_token: AtomicU64::new(1),
            publishers: Mutex::new(Vec::new()),
        })
    }

    /// Publishes one message. `headers` is a raw `NATS/1.0` block or empty.
    /// Returns once every subscriber's buffer has it and any capturing
    /// stream has stored it (its PubAck, if `reply` asked for one, is on its
    /// way).
    pub fn publish(&self, subject: &[u8], reply: Option<&[u8]>, headers: &[u8], payload: &[u8]) -> Published {
        let mut publisher = self.publisher();
        let published = route(&mut publisher, subject, reply, headers, payload);
        self.recycle(publisher);
        published
    }

    /// Publishes like [`Local::publish`]; when a stream captures `subject`,
    /// with a reply inbox for its PubAck, which is returned to wait on.
    pub fn publish_for_ack(
        &self,
        subject: &[u8],
        headers: &[u8],
        payload: &[u8],
    ) -> (Published, Option<LocalInbox>) {
        let mut publisher = self.publisher();
        let inbox = publisher.captures(subject).then(|| self.inbox(1));
        let reply = inbox.as_ref().map(|inbox| inbox.subject.as_bytes());
        let published = route(&mut publisher, subject, reply, headers, payload);
        self.recycle(publisher);
        (published, inbox)
    }

    /// Sends a request and waits up to `timeout` for the first reply.
    pub async fn request(
        &self,
        subject: &str,
        headers: &[u8],
        payload: &[u8],
        timeout: Duration,
    ) -> Result<LocalMsg, LocalError> {
        let mut inbox = self.inbox(1);
        let routed = self.publish(
            subject.as_bytes(),
            Some(inbox.subject.as_bytes()),
            headers,
            payload,
        );
        if !routed.delivered {
            return Err(LocalError::NoResponders(subject.to_string()));
        }
        match tokio::time::timeout(timeout, inbox.rx.recv()).await {
            Ok(Some(msg)) => Ok(msg),
            _ => Err(LocalError::Timeout(timeout)),
        }
    }

    /// A JetStream API call: `$JS.API.<api>` with a JSON body.
    pub async fn js_api(&self, api: &str, body: &[u8], timeout: Duration) -> Result<Bytes, LocalError> {
        let subject = format!("$JS.API.{api}");
        Ok(self.request(&subject, &[], body, timeout).await?.payload)
    }

    /// A fresh inbox holding up to `capacity` unread messages. It is
    /// unregistered when dropped.
    pub fn inbox(&self, capacity: usize) -> LocalInbox {
        let token = self.next_token.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let overflowed = Arc::new(AtomicBool::new(false));
        self.inbox.waiters.lock().insert(
            token,
            Sink {
                tx,
                overflowed: overflowed.clone(),
                queued: None,
            },
        );
        LocalInbox {
            subject: format!("{}{token}", self.inbox_prefix),
            token,
            rx,
            overflowed,
            owner: self.inbox.clone(),
        }
    }

    /// Subscribes like [`Local::subscribe`], also bounded by `bytes_max`
    /// unread header and payload bytes.
    pub fn subscribe_bounded(
        &self,
        pattern: &str,
        capacity: usize,
        bytes_max: usize,
    ) -> Result<LocalSubscription, LocalError> {
        let queued = Arc::new(QueuedBytes {
            now: AtomicUsize::new(0),
            max: bytes_max,
        });
        self.subscribe_with(pattern, capacity, Some(queued))
    }

    fn subscribe_with(
        &self,
        pattern: &str,
        capacity: usize,
        queued: Option<Arc<QueuedBytes>>,
    ) -> Result<LocalSubscription, LocalError> {
        if herald_core::validate_subject(pattern.as_bytes()).is_err() {
            return Err(LocalError::InvalidSubject(pattern.to_string()));
        }
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let overflowed = Arc::new(AtomicBool::new(false));
        let sub = Arc::new(InternalSub {
            subject: pattern.as_bytes().into(),
            handler: Arc::new(SubscriptionSink(Sink {
                tx,
                overflowed: overflowed.clone(),
                queued: queued.clone(),
            })),
        });
        self.state
            .router
            .insert_internal(&sub)
            .map_err(|_| LocalError::InvalidSubject(pattern.to_string()))?;
        Ok(LocalSubscription {
            rx,
            overflowed,
            queued,
            sub,
            state: self.state.clone(),
        })
    }

    fn publisher(&self) -> Publisher {
        self.publishers
            .lock()
            .pop()
            .unwrap_or_else(|| Publisher::new(self.state.clone()))
    }

    fn recycle(&self, publisher: Publisher) {
        let mut pool = self.publishers.lock();
        if pool.len() < PUBLISHERS_POOLED_MAX {
            pool.push(publisher);
        }
    }
}

/// Routes one message through `publisher` and finishes the batch.
fn route(
    publisher: &mut Publisher,
    subject: &[u8],
    reply: Option<&[u8]>,
    headers: &[u8],
    payload: &[u8],
) -> Published {
    let routed = if headers.is_empty() {
        publisher.route(subject, reply, None, PubData::Borrowed(payload), None)
    } else {
        let mut frame = Vec::with_capacity(headers.len() + payload.len());
        frame.extend_from_slice(headers);
        frame.extend_from_slice(payload);
        publisher.route(
            subject,
            reply,
            Some(headers.len()),
            PubData::Borrowed(&frame),
            None,
        )
    };
    publisher.counts.in_msgs += 1;
    publisher.counts.in_bytes += (headers.len() + payload.len()) as u64;
    publisher.finish();
    Published {
        delivered: routed.delivered,
    }
}

impl Drop for Local {
    fn drop(&mut self) {
        self.state.router.remove_internal(&self.inbox_sub);
    }
}

/// One inbox of the local client; see [`Local::inbox`].
pub(crate) struct LocalInbox {
    /// The reply subject to give out.
    pub subject: String,
    token: u64,
    rx: mpsc::Receiver<LocalMsg>,
    overflowed: Arc<AtomicBool>,
    owner: Arc<Inbox>,
}

impl LocalInbox {
    /// The next message; `None` after `timeout`.
    pub async fn next(&mut self, timeout: Duration) -> Option<LocalMsg> {
        tokio::time::timeout(timeout, self.rx.recv()).await.ok().flatten()
    }

    /// Whether messages were dropped because this inbox was full.
    pub fn overflowed(&self) -> bool {
        self.overflowed.load(Ordering::Relaxed)
    }
}

impl Drop for LocalInbox {
    fn drop(&mut self) {
        self.owner.waiters.lock().remove(&self.token);
    }
}

/// A live subscription of the local client; unsubscribed when dropped.
pub(crate) struct LocalSubscription {
    rx: mpsc::Receiver<LocalMsg>,
    overflowed: Arc<AtomicBool>,
    queued: Option<Arc<QueuedBytes>>,
    sub: Arc<InternalSub>,
    state: Arc<ServerState>,
}

impl LocalSubscription {
    /// The next message, waiting as long as it takes; `None` once the
    /// subscription overflowed and its backlog is read.
    pub async fn next(&mut self) -> Option<LocalMsg> {
        if self.overflowed() && self.rx.is_empty() {
            return None;
        }
        let msg = self.rx.recv().await?;
        if let Some(queued) = &self.queued {
            queued.now.fetch_sub(msg.size(), Ordering::Relaxed);
        }
        Some(msg)
    }

    /// Whether messages were dropped because the reader fell behind.
    pub fn overflowed(&self) -> bool {
        self.overflowed.load(Ordering::Relaxed)
    }
}

impl Drop for LocalSubscription {
    fn drop(&mut self) {
        self.state.router.remove_internal(&self.sub);
    }
}
