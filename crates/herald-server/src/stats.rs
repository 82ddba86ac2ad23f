//! Server-wide counters for monitoring.
//!
//! Connection tasks count into plain local fields while they process a read
//! buffer and add them here once per buffer, so the hot path touches no
//! shared cache line per message.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Protocol verbs counted per operation and per error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(usize)]
pub enum Verb {
    /// `CONNECT`
    Connect,
    /// `PUB`
    Pub,
    /// `HPUB`
    Hpub,
    /// `SUB`
    Sub,
    /// `UNSUB`
    Unsub,
    /// `PING`
    Ping,
    /// `PONG`
    Pong,
    /// Anything that could not be attributed to a verb (unknown or unparsable).
    Other,
}

impl Verb {
    /// Every verb, in index order.
    pub const ALL: [Verb; 8] = [
        Verb::Connect,
        Verb::Pub,
        Verb::Hpub,
        Verb::Sub,
        Verb::Unsub,
        Verb::Ping,
        Verb::Pong,
        Verb::Other,
    ];

    /// The label used in metrics.
    pub fn label(self) -> &'static str {
        match self {
            Verb::Connect => "CONNECT",
            Verb::Pub => "PUB",
            Verb::Hpub => "HPUB",
            Verb::Sub => "SUB",
            Verb::Unsub => "UNSUB",
            Verb::Ping => "PING",
            Verb::Pong => "PONG",
            Verb::Other => "OTHER",
        }
    }
}

const VERBS: usize = Verb::ALL.len();

/// Counters shared by the whole server.
#[derive(Debug, Default)]
pub struct Stats {
    /// Connections currently open.
    pub connections: AtomicU64,
    /// Connections accepted since start.
    pub total_connections: AtomicU64,
    /// Connections refused because `max_connections` was reached.
    pub rejected_connections: AtomicU64,
    /// Messages received from publishers.
    pub in_msgs: AtomicU64,
    /// Payload bytes received from publishers.
    pub in_bytes: AtomicU64,
    /// Messages delivered to subscribers.
    pub out_msgs: AtomicU64,
    /// Payload bytes delivered to subscribers.
    pub out_bytes: AtomicU64,
    /// Connections closed as slow consumers.
    pub slow_consumers: AtomicU64,
    /// Connections closed as stale (keepalive PINGs unanswered).
    pub stale_connections: AtomicU64,
    /// Operations received, per verb.
    pub ops: [AtomicU64; VERBS],
    /// `-ERR` replies sent, per verb of the operation that caused them.
    pub errors: [AtomicU64; VERBS],
}

impl Stats {
    /// Adds one error for `verb`.
    pub fn count_error(&self, verb: Verb) {
        self.errors[verb as usize].fetch_add(1, Relaxed);
    }

    /// Reads a counter.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Relaxed)
    }
}

/// Counts gathered by one connection while it processes one read buffer.
#[derive(Debug, Default)]
pub(crate) struct LocalCounts {
    pub in_msgs: u64,
    pub in_bytes: u64,
    pub out_msgs: u64,
    pub out_bytes: u64,
    pub ops: [u64; VERBS],
}

impl LocalCounts {
    /// Adds the local counts to `stats` and resets them.
    pub fn drain_into(&mut self, stats: &Stats) {
        if self.in_msgs > 0 {
            stats.in_msgs.fetch_add(self.in_msgs, Relaxed);
            stats.in_bytes.fetch_add(self.in_bytes, Relaxed);
        }
        if self.out_msgs > 0 {
            stats.out_msgs.fetch_add(self.out_msgs, Relaxed);
            stats.out_bytes.fetch_add(self.out_bytes, Relaxed);
        }
        for (i, n) in self.ops.iter_mut().enumerate() {
            if *n > 0 {
                stats.ops[i].fetch_add(*n, Relaxed);
                *n = 0;
            }
        }
        self.in_msgs = 0;
        self.in_bytes = 0;
        self.out_msgs = 0;
        self.out_bytes = 0;
    }
}
