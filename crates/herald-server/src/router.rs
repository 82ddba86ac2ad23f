//! The shared subscription index and what a subscription points at.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use herald_core::{MatchResult, SubjectError, Sublist};
use parking_lot::{Mutex, RwLock};
use rustc_hash::FxHashMap;

use crate::outbound::Outbound;

/// State of one client connection that other connections reach: its outbound
/// side, the options it connected with and its subscriptions.
pub struct ClientShared {
    /// Server-assigned connection id.
    pub id: u64,
    /// The client's address.
    pub peer: std::net::SocketAddr,
    /// When the connection was accepted.
    pub connected_at: std::time::SystemTime,
    /// Name, language and version from CONNECT, for monitoring.
    pub identity: Mutex<ClientIdentity>,
    /// Messages and payload bytes received from this client (added once per
    /// read buffer).
    pub in_msgs: AtomicU64,
    /// See `in_msgs`.
    pub in_bytes: AtomicU64,
    /// Where messages for this client are queued.
    pub outbound: Outbound,
    /// The client understands `HMSG`; otherwise headers are stripped.
    pub headers: AtomicBool,
    /// Subscriptions by sid. Touched only on SUB/UNSUB/close, never per message.
    pub subs: Mutex<FxHashMap<Box<[u8]>, Arc<Subscription>>>,
    /// Mark of the last publisher read buffer that queued data here, so a
    /// publisher lists each client it must flush once per buffer.
    pub touch_mark: AtomicU64,
}

/// What a client said about itself in CONNECT.
#[derive(Debug, Clone, Default)]
pub struct ClientIdentity {
    /// Client name.
    pub name: Option<String>,
    /// Client library language.
    pub lang: String,
    /// Client library version.
    pub version: String,
}

/// One subscription of one client.
pub struct Subscription {
    /// The owning client.
    pub client: Arc<ClientShared>,
    /// Client-chosen subscription id.
    pub sid: Box<[u8]>,
    /// Subject or pattern.
    pub subject: Box<[u8]>,
    /// Queue group, if any.
    pub queue: Option<Box<[u8]>>,
    /// Auto-unsubscribe after this many deliveries; 0 means never.
    pub max: AtomicU64,
    /// Deliveries so far.
    pub delivered: AtomicU64,
    /// Set once removed; stale cached matches skip it.
    pub closed: AtomicBool,
}

impl Subscription {
    /// Claims one delivery. Returns `None` if the subscription is closed or
    /// has reached its maximum, else whether this delivery is the last one.
    #[inline]
    pub fn claim_delivery(&self) -> Option<bool> {
        if self.closed.load(Ordering::Relaxed) {
            return None;
        }
        // Counted from the start, as NATS counts toward `UNSUB sid max`.
        let n = self.delivered.fetch_add(1, Ordering::Relaxed) + 1;
        let max = self.max.load(Ordering::Relaxed);
        if max == 0 {
            Some(false)
        } else if n > max {
            None
        } else {
            Some(n == max)
        }
    }
}

/// A subscription as stored in the index: a client's, or one of the
/// server's own (JetStream API, stream capture, acks); equal when it is the
/// same one.
#[derive(Clone)]
pub enum SubRef {
    /// Delivered into a client's outbound buffer.
    Client(Arc<Subscription>),
    /// Handled inside the server by the publishing task.
    Internal(Arc<InternalSub>),
}

impl PartialEq for SubRef {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (SubRef::Client(a), SubRef::Client(b)) => Arc::ptr_eq(a, b),
            (SubRef::Internal(a), SubRef::Internal(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}

/// A subscription of the server itself.
pub struct InternalSub {
    /// Subject or pattern.
    pub subject: Box<[u8]>,
    /// What handles the messages.
    pub handler: Arc<dyn InternalHandler>,
}

/// One message as an internal subscription sees it.
pub struct InMsg<'a> {
    /// The subject it was published to.
    pub subject: &'a [u8],
    /// The subject subscribers are shown: the stored subject of a consumer
    /// delivery routed to an inbox; otherwise `subject`.
    pub shown: &'a [u8],
    /// Its reply subject.
    pub reply: Option<&'a [u8]>,
    /// The raw header block (`NATS/1.0 ...\r\n\r\n`), empty if none.
    pub headers: &'a [u8],
    /// The payload.
    pub payload: &'a [u8],
}

/// Code of the server that receives messages like a subscriber. Runs on the
/// publishing task, so it must not block for long; what it wants sent goes
/// into `effects`.
pub trait InternalHandler: Send + Sync {
    /// Handles one message.
    fn on_message(&self, msg: &InMsg<'_>, effects: &mut crate::publisher::Effects);

    /// Whether this is a stream's capture: a message it takes is stored
    /// and answered with a PubAck.
    fn captures(&self) -> bool {
        false
    }
}

/// The subscription index shared by every connection.
///
/// Readers match under a read lock, or not at all when their per-connection
/// cache is current: [`Router::generation`] changes with every change of the
/// index and can be read without the lock.
#[derive(Default)]
pub struct Router {
    sublist: RwLock<Sublist<SubRef>>,
    generation: AtomicU64,
    internal_subs: AtomicU64,
}

impl Router {
    /// A new empty index.
    pub fn new() -> Router {
        Router::default()
    }

    /// Current generation of the index.
    #[inline]
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Matches `subject`, returning the generation the result belongs to.
    pub fn matches(&self, subject: &[u8]) -> (u64, Arc<MatchResult<SubRef>>) {
        let sublist = self.sublist.read();
        (sublist.generation(), Arc::new(sublist.matches(subject)))
    }

    /// Matches `subject` into `result`, reusing its buffers (no cache).
    pub fn matches_into(&self, subject: &[u8], result: &mut MatchResult<SubRef>) {
        self.sublist.read().matches_into(subject, result);
    }

    /// Adds a subscription to the index.
    pub fn insert(&self, sub: &Arc<Subscription>) -> Result<(), SubjectError> {
        let mut sublist = self.sublist.write();
        sublist.insert(&sub.subject, sub.queue.as_deref(), SubRef::Client(sub.clone()))?;
        self.generation.store(sublist.generation(), Ordering::Release);
        Ok(())
    }

    /// Removes subscriptions from the index and marks them closed.
    pub fn remove<'a>(&self, subs: impl IntoIterator<Item = &'a Arc<Subscription>>) {
        let mut sublist = self.sublist.write();
        for sub in subs {
            sub.closed.store(true, Ordering::Relaxed);
            sublist.remove(&sub.subject, sub.queue.as_deref(), &SubRef::Client(sub.clone()));
        }
        self.generation.store(sublist.generation(), Ordering::Release);
    }

    /// Adds one of the server's own subscriptions.
    pub fn insert_internal(&self, sub: &Arc<InternalSub>) -> Result<(), SubjectError> {
        let mut sublist = self.sublist.write();
        sublist.insert(&sub.subject, None, SubRef::Internal(sub.clone()))?;
        self.internal_subs.fetch_add(1, Ordering::Relaxed);
        self.generation.store(sublist.generation(), Ordering::Release);
        Ok(())
    }

    /// Removes one of the server's own subscriptions.
    pub fn remove_internal(&self, sub: &Arc<InternalSub>) {
        let mut sublist = self.sublist.write();
        if sublist.remove(&sub.subject, None, &SubRef::Internal(sub.clone())) {
            self.internal_subs.fetch_sub(1, Ordering::Relaxed);
        }
        self.generation.store(sublist.generation(), Ordering::Release);
    }

    /// Number of client subscriptions in the index.
    pub fn subscription_count(&self) -> usize {
        let internal = self.internal_subs.load(Ordering::Relaxed) as usize;
        self.sublist.read().len().saturating_sub(internal)
    }
}
