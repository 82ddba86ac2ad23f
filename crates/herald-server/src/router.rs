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

/// A subscription as stored in the index; equal when it is the same one.
#[derive(Clone)]
pub struct SubRef(pub Arc<Subscription>);

impl PartialEq for SubRef {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
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

    /// Adds a subscription to the index.
    pub fn insert(&self, sub: &Arc<Subscription>) -> Result<(), SubjectError> {
        let mut sublist = self.sublist.write();
        sublist.insert(&sub.subject, sub.queue.as_deref(), SubRef(sub.clone()))?;
        self.generation.store(sublist.generation(), Ordering::Release);
        Ok(())
    }

    /// Removes subscriptions from the index and marks them closed.
    pub fn remove<'a>(&self, subs: impl IntoIterator<Item = &'a Arc<Subscription>>) {
        let mut sublist = self.sublist.write();
        for sub in subs {
            sub.closed.store(true, Ordering::Relaxed);
            sublist.remove(&sub.subject, sub.queue.as_deref(), &SubRef(sub.clone()));
        }
        self.generation.store(sublist.generation(), Ordering::Release);
    }

    /// Number of subscriptions in the index.
    pub fn subscription_count(&self) -> usize {
        self.sublist.read().len()
    }
}
