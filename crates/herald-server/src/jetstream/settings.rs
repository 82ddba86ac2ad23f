//! What the server enforces for a stream or consumer, derived from the
//! JetStream configuration the client sent (after defaults), so the rest of
//! the server works with checked, typed values instead of `-1` sentinels.

use herald_storage::StoreConfig;

/// When a stream's writes are made durable on the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SyncPolicy {
    /// fsync before each PubAck (group commit: one fsync per batch).
    Always,
    /// fsync every `sync_interval_ms`; a PubAck waits for the OS write only.
    #[default]
    Interval,
    /// Never fsync explicitly; the OS writes back when it likes.
    Never,
}

impl SyncPolicy {
    /// Parses `always`, `interval` or `never`.
    pub fn parse(text: &str) -> Option<SyncPolicy> {
        match text {
            "always" => Some(SyncPolicy::Always),
            "interval" => Some(SyncPolicy::Interval),
            "never" => Some(SyncPolicy::Never),
            _ => None,
        }
    }

    /// The name `parse` accepts.
    pub fn as_str(self) -> &'static str {
        match self {
            SyncPolicy::Always => "always",
            SyncPolicy::Interval => "interval",
            SyncPolicy::Never => "never",
        }
    }
}

/// When messages leave a stream other than by limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retention {
    /// Only limits remove messages.
    Limits,
    /// Removed once every consumer has acknowledged them.
    Interest,
    /// Removed once one consumer has acknowledged them.
    WorkQueue,
}

/// A stream's enforced settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamSettings {
    /// Subjects captured.
    pub subjects: Vec<String>,
    /// Store limits.
    pub store: StoreConfig,
    /// Retention policy.
    pub retention: Retention,
    /// Largest message (headers + payload) accepted.
    pub max_msg_size: Option<u32>,
    /// Deduplication window.
    pub duplicate_window_ns: u64,
    /// `Nats-Rollup` honoured.
    pub allow_rollup: bool,
    /// Message delete refused.
    pub deny_delete: bool,
    /// Purge refused.
    pub deny_purge: bool,
    /// Direct get served.
    pub allow_direct: bool,
    /// Durability of writes.
    pub sync: SyncPolicy,
    /// Publishes are stored but not acknowledged.
    pub no_ack: bool,
    /// Most consumers; `None` for unlimited.
    pub max_consumers: Option<u64>,
    /// Storage kind is memory.
    pub memory: bool,
    /// `Nats-TTL` headers honoured.
    pub allow_msg_ttl: bool,
    /// Nothing may be added or removed (publishes, deletes, purges refused).
    pub sealed: bool,
    /// Atomic batch publish (`Nats-Batch-*` headers) allowed.
    pub allow_atomic: bool,
}

/// A consumer's enforced settings (besides the ack policy rules, which
/// live in [`herald_core::consumer::ConsumerPolicy`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerSettings {
    /// Subjects delivered.
    pub filter: herald_storage::SubjectFilter,
    /// Push consumers deliver here; pull consumers have none.
    pub deliver_subject: Option<String>,
    /// Idle heartbeat interval (push); 0 for none.
    pub idle_heartbeat_ns: u64,
    /// Push flow control requested.
    pub flow_control: bool,
    /// Most waiting pull requests.
    pub max_waiting: usize,
    /// Largest batch a pull request may ask for; `None` for any.
    pub max_batch: Option<u64>,
    /// Deliver headers only (payload size in `Nats-Msg-Size`).
    pub headers_only: bool,
    /// Herald extension: republish messages that exhaust `max_deliver` or
    /// are terminated to this subject.
    pub dead_letter_subject: Option<String>,
    /// Has a durable name (survives restarts and inactivity).
    pub durable: bool,
    /// An ephemeral consumer without activity this long is deleted.
    pub inactive_threshold_ns: u64,
    /// Replay policy `original`: messages are spaced as they were stored.
    pub replay_original: bool,
}
