//! State shared by the client handles, the subscribers and the connection task.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

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

/// Bytes waiting for the writer, and whether a connection is up to take them.
pub(crate) struct Outgoing {
    pub buf: Vec<u8>,
    pub connected: bool,
}

pub(crate) struct Shared {
    pub url: String,
    pub addr: String,
    pub options: ConnectOptions,
    pub out: Mutex<Outgoing>,
    pub wake_writer: Notify,
    pub subs: Mutex<HashMap<u64, SubEntry>>,
    pub next_sid: AtomicU64,
    /// Flushes waiting for their PONG, oldest first.
    pub pongs: Mutex<VecDeque<oneshot::Sender<Result<()>>>>,
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
    /// Queues protocol bytes for the writer. While disconnected they are kept
    /// up to the reconnect buffer bound.
    pub fn send(&self, bytes: &[u8]) -> Result<()> {
        self.send_with(bytes.len(), |buf| buf.extend_from_slice(bytes))
    }

    /// Queues what `write` appends, which must be about `len` bytes.
    pub fn send_with(&self, len: usize, write: impl FnOnce(&mut Vec<u8>)) -> Result<()> {
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::Closed);
        }
        {
            let mut out = self.out.lock();
            if !out.connected && out.buf.len() + len > self.options.reconnect_buffer_max {
                return Err(Error::Disconnected);
            }
            write(&mut out.buf);
        }
        self.wake_writer.notify_one();
        Ok(())
    }

    /// Removes a subscription and tells the server.
    pub fn unsubscribe(&self, sid: u64, max: Option<u64>) {
        if max.is_none() {
            self.subs.lock().remove(&sid);
        }
        let sid = sid.to_string();
        let _ = self.send_with(32, |buf| herald_protocol::encode::unsub(buf, sid.as_bytes(), max));
    }

    /// Fails every waiting flush; used when the connection drops or closes.
    pub fn fail_pongs(&self, error: impl Fn() -> Error) {
        for waiter in self.pongs.lock().drain(..) {
            let _ = waiter.send(Err(error()));
        }
    }

    pub fn set_state(&self, state: ConnectionState) {
        self.state.send_replace(state);
    }
}
