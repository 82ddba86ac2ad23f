//! State shared by the client handles, the subscribers and the connection task.
//!
//! Lock order, where two are held at once: `inbox` → `out` → `subs` →
//! `requests`, and `out` → `pongs`.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use herald_protocol::encode;
use parking_lot::Mutex;
use tokio::sync::{mpsc, oneshot, watch, Notify};

use crate::{ConnectOptions, ConnectionState, Error, Message, Result};

/// Where a subscription's messages go.
pub(crate) enum Sink {
    /// A [`crate::Subscriber`]'s queue, with its count of dropped messages.
    Channel(mpsc::Sender<Message>, Arc<AtomicU64>),
    /// The client's request inbox: replies are matched to waiting requests.
    Inbox,
}

pub(crate) struct SubEntry {
    pub subject: String,
    pub queue: Option<String>,
    pub sink: Sink,
    /// Total deliveries after which the subscription ends, if set.
    pub max: Option<u64>,
    pub delivered: u64,
}

impl SubEntry {
    /// Appends `SUB` (and `UNSUB sid remaining` for an auto-unsubscribe).
    pub fn encode(&self, sid: u64, out: &mut Vec<u8>) {
        let sid = sid.to_string();
        encode::sub(
            out,
            self.subject.as_bytes(),
            self.queue.as_deref().map(str::as_bytes),
            sid.as_bytes(),
        );
        if let Some(max) = self.max {
            encode::unsub(
                out,
                sid.as_bytes(),
                Some(max.saturating_sub(self.delivered).max(1)),
            );
        }
    }
}

/// Bytes waiting for the writer, and what the server already knows.
#[derive(Default)]
pub(crate) struct Outgoing {
    pub buf: Vec<u8>,
    /// A writer is attached to a live connection; publishes are unbounded.
    pub connected: bool,
    /// The current connection's handshake sent the subscriptions, so later
    /// `SUB`/`UNSUB` must be queued. While false, the next handshake sends
    /// every live subscription instead.
    pub subs_sent: bool,
    /// `PING`s of [`crate::Client::flush`] that are in `buf`.
    pub pings: usize,
}

/// Flushes waiting for a `PONG`, oldest first.
#[derive(Default)]
pub(crate) struct Pongs {
    pub waiters: VecDeque<oneshot::Sender<Result<()>>>,
    /// How many of the oldest waiters' `PING`s the writer took from the
    /// buffer on the current connection (the rest are still queued).
    pub in_flight: usize,
}

pub(crate) struct Shared {
    pub url: String,
    pub addr: String,
    pub options: ConnectOptions,
    pub out: Mutex<Outgoing>,
    pub wake_writer: Notify,
    pub subs: Mutex<HashMap<u64, SubEntry>>,
    pub next_sid: AtomicU64,
    pub pongs: Mutex<Pongs>,
    pub max_payload: AtomicUsize,
    pub state: watch::Sender<ConnectionState>,
    pub closed: AtomicBool,
    pub shutdown: Notify,
    /// `_INBOX.<random>` once the inbox subscription exists.
    pub inbox: Mutex<Option<String>>,
    pub requests: Mutex<HashMap<String, oneshot::Sender<Message>>>,
    pub next_request: AtomicU64,
}

impl Shared {
    pub fn new(url: String, addr: String, options: ConnectOptions) -> Shared {
        let (state, _) = watch::channel(ConnectionState::Reconnecting);
        Shared {
            url,
            addr,
            options,
            out: Mutex::new(Outgoing::default()),
            wake_writer: Notify::new(),
            subs: Mutex::new(HashMap::new()),
            next_sid: AtomicU64::new(1),
            pongs: Mutex::new(Pongs::default()),
            max_payload: AtomicUsize::new(herald_protocol::MAX_PAYLOAD_DEFAULT),
            state,
            closed: AtomicBool::new(false),
            shutdown: Notify::new(),
            inbox: Mutex::new(None),
            requests: Mutex::new(HashMap::new()),
            next_request: AtomicU64::new(1),
        }
    }

    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Queues what `write` appends (about `len` bytes) for the writer. While
    /// disconnected, bytes are kept up to the reconnect buffer bound.
    pub fn send_with(&self, len: usize, write: impl FnOnce(&mut Vec<u8>)) -> Result<()> {
        {
            let mut out = self.out.lock();
            if self.is_closed() {
                return Err(Error::Closed);
            }
            if !out.connected && out.buf.len() + len > self.options.reconnect_buffer_max {
                return Err(Error::Disconnected);
            }
            write(&mut out.buf);
        }
        self.wake_writer.notify_one();
        Ok(())
    }

    /// Registers a subscription and tells the server now, or at the next
    /// handshake when disconnected. Returns its sid.
    pub fn subscribe(&self, entry: SubEntry) -> Result<u64> {
        let sid = self.next_sid.fetch_add(1, Ordering::Relaxed);
        {
            let mut out = self.out.lock();
            if self.is_closed() {
                return Err(Error::Closed);
            }
            if out.subs_sent {
                entry.encode(sid, &mut out.buf);
            }
            self.subs.lock().insert(sid, entry);
        }
        self.wake_writer.notify_one();
        Ok(sid)
    }

    /// Ends a subscription now (`max` = `None`) or after `max` deliveries in
    /// total. Returns whether it has ended.
    pub fn unsubscribe(&self, sid: u64, max: Option<u64>) -> bool {
        let ended = {
            let mut out = self.out.lock();
            let mut subs = self.subs.lock();
            let Some(entry) = subs.get_mut(&sid) else {
                return true;
            };
            let ended = match max {
                Some(max) if entry.delivered < max => {
                    entry.max = Some(max);
                    false
                }
                _ => {
                    subs.remove(&sid);
                    true
                }
            };
            if out.subs_sent && !self.is_closed() {
                let remaining = max.filter(|_| !ended);
                encode::unsub(&mut out.buf, sid.to_string().as_bytes(), remaining);
            }
            ended
        };
        self.wake_writer.notify_one();
        ended
    }

    /// Tells the server to stop every subscription while keeping them here,
    /// so messages already on their way are still delivered. Returns the sids.
    pub fn unsubscribe_all_on_server(&self) -> Vec<u64> {
        let sids: Vec<u64> = {
            let mut out = self.out.lock();
            let sids: Vec<u64> = self.subs.lock().keys().copied().collect();
            if out.subs_sent && !self.is_closed() {
                for sid in &sids {
                    encode::unsub(&mut out.buf, sid.to_string().as_bytes(), None);
                }
            }
            sids
        };
        self.wake_writer.notify_one();
        sids
    }

    /// Queues a `PING` whose `PONG` completes the returned receiver.
    pub fn ping(&self) -> Result<oneshot::Receiver<Result<()>>> {
        let (tx, rx) = oneshot::channel();
        {
            let mut out = self.out.lock();
            if self.is_closed() {
                return Err(Error::Closed);
            }
            if !out.connected && out.buf.len() + encode::PING.len() > self.options.reconnect_buffer_max {
                return Err(Error::Disconnected);
            }
            out.buf.extend_from_slice(encode::PING);
            out.pings += 1;
            self.pongs.lock().waiters.push_back(tx);
        }
        self.wake_writer.notify_one();
        Ok(rx)
    }

    /// A `PONG` arrived: completes the oldest flush.
    pub fn pong(&self) {
        let mut pongs = self.pongs.lock();
        pongs.in_flight = pongs.in_flight.saturating_sub(1);
        if let Some(waiter) = pongs.waiters.pop_front() {
            let _ = waiter.send(Ok(()));
        }
    }

    /// Takes the queued bytes for writing into `spare` (which must be empty).
    pub fn take_outgoing(&self, spare: &mut Vec<u8>) {
        let mut out = self.out.lock();
        std::mem::swap(&mut out.buf, spare);
        let pings = std::mem::take(&mut out.pings);
        if pings > 0 {
            self.pongs.lock().in_flight += pings;
        }
    }

    /// The connection dropped: flushes whose `PING` went out on it fail;
    /// later ones stay queued for the next connection.
    pub fn disconnected(&self) {
        let mut out = self.out.lock();
        out.connected = false;
        out.subs_sent = false;
        let mut pongs = self.pongs.lock();
        let lost = std::mem::take(&mut pongs.in_flight).min(pongs.waiters.len());
        for waiter in pongs.waiters.drain(..lost) {
            let _ = waiter.send(Err(Error::Disconnected));
        }
    }

    /// Starts closing: no new operations; the connection task writes what is
    /// queued and ends.
    pub fn begin_close(&self) {
        self.closed.store(true, Ordering::Release);
        self.shutdown.notify_one();
        self.wake_writer.notify_one();
    }

    /// Closed for good: every waiter fails and every stream ends.
    pub fn close_everything(&self) {
        self.closed.store(true, Ordering::Release);
        self.set_state(ConnectionState::Closed);
        {
            let mut out = self.out.lock();
            out.buf = Vec::new();
            out.pings = 0;
            out.connected = false;
            out.subs_sent = false;
            let mut pongs = self.pongs.lock();
            pongs.in_flight = 0;
            for waiter in pongs.waiters.drain(..) {
                let _ = waiter.send(Err(Error::Closed));
            }
        }
        // Dropping the senders ends every subscriber's stream and request.
        self.subs.lock().clear();
        self.requests.lock().clear();
    }

    pub fn set_state(&self, state: ConnectionState) {
        self.state.send_replace(state);
    }
}

/// Owner of the connection on behalf of the user's handles: [`crate::Client`]
/// clones and [`crate::Subscriber`]s share one; when the last is dropped the
/// connection closes.
pub(crate) struct Handle {
    pub shared: Arc<Shared>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.shared.begin_close();
    }
}
