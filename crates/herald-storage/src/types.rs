//! Values passed across the [`Store`](crate::Store) interface.

use std::time::Duration;

use bytes::Bytes;
use herald_core::subject_matches;

/// What a store does when a limit would be exceeded by a new message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Discard {
    /// Remove the oldest messages to make room.
    #[default]
    Old,
    /// Refuse the new message.
    New,
}

/// Limits a store enforces. `None` means unlimited.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreConfig {
    /// Most messages kept.
    pub max_msgs: Option<u64>,
    /// Most bytes kept, counted as [`StoredMessage::stored_size`].
    pub max_bytes: Option<u64>,
    /// Oldest message kept, enforced by [`Store::expire`](crate::Store::expire).
    pub max_age: Option<Duration>,
    /// Most messages kept per subject. Always discards the subject's oldest
    /// (unless `discard_new_per_subject` and discard is `New`).
    pub max_msgs_per_subject: Option<u64>,
    /// What to do when `max_msgs` or `max_bytes` would be exceeded.
    pub discard: Discard,
    /// With `Discard::New`, also refuse a message that would exceed
    /// `max_msgs_per_subject` instead of removing the subject's oldest.
    pub discard_new_per_subject: bool,
    /// Size at which the file store starts a new segment file.
    pub segment_bytes_max: u64,
}

/// Default segment size: large enough that a segment holds many messages,
/// small enough that compaction and retention work in modest units.
pub const SEGMENT_BYTES_DEFAULT: u64 = 16 * 1024 * 1024;

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            max_msgs: None,
            max_bytes: None,
            max_age: None,
            max_msgs_per_subject: None,
            discard: Discard::Old,
            discard_new_per_subject: false,
            segment_bytes_max: SEGMENT_BYTES_DEFAULT,
        }
    }
}

/// One stored message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMessage {
    /// Stream sequence.
    pub seq: u64,
    /// When it was stored, nanoseconds since the Unix epoch.
    pub time_ns: i64,
    /// The subject it was published to.
    pub subject: String,
    /// Raw `NATS/1.0` header block; empty if none.
    pub headers: Bytes,
    /// The payload.
    pub payload: Bytes,
}

impl StoredMessage {
    /// Size charged against `max_bytes`: subject, headers, payload and a
    /// fixed per-message overhead (as JetStream counts it).
    pub fn stored_size(&self) -> u64 {
        stored_size(self.subject.len(), self.headers.len(), self.payload.len())
    }
}

/// Per-message overhead charged against `max_bytes`.
pub const MESSAGE_OVERHEAD_BYTES: u64 = 16;

/// Size charged against `max_bytes` for a message of these part lengths.
pub fn stored_size(subject_len: usize, headers_len: usize, payload_len: usize) -> u64 {
    (subject_len + headers_len + payload_len) as u64 + MESSAGE_OVERHEAD_BYTES
}

/// Result of a successful append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    /// Sequence given to the message.
    pub seq: u64,
    /// Messages removed to respect the limits (discard old, per subject).
    pub removed: u64,
}

/// Which subjects a read or count applies to: every subject, or those
/// matching any of a list of patterns.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SubjectFilter {
    patterns: Vec<String>,
}

impl SubjectFilter {
    /// Matches every subject.
    pub fn all() -> SubjectFilter {
        SubjectFilter::default()
    }

    /// Matches subjects matching any of `patterns`; an empty list (or one
    /// that contains `>`) matches everything.
    pub fn new<S: Into<String>>(patterns: impl IntoIterator<Item = S>) -> SubjectFilter {
        let patterns: Vec<String> = patterns.into_iter().map(Into::into).collect();
        if patterns.iter().any(|p| p == ">") {
            return SubjectFilter::all();
        }
        SubjectFilter { patterns }
    }

    /// A single pattern (empty string: everything).
    pub fn one(pattern: &str) -> SubjectFilter {
        if pattern.is_empty() {
            SubjectFilter::all()
        } else {
            SubjectFilter::new([pattern])
        }
    }

    /// Whether this filter matches every subject.
    pub fn is_all(&self) -> bool {
        self.patterns.is_empty()
    }

    /// The patterns; empty for [`SubjectFilter::all`].
    pub fn patterns(&self) -> &[String] {
        &self.patterns
    }

    /// Whether `subject` passes the filter.
    pub fn matches(&self, subject: &str) -> bool {
        self.is_all()
            || self
                .patterns
                .iter()
                .any(|p| subject_matches(p.as_bytes(), subject.as_bytes()))
    }
}

/// A purge request, as JetStream defines it: remove the messages matching
/// `filter`, either all of them, those with sequence below `up_to_seq`, or
/// all but the newest `keep`. `up_to_seq` and `keep` are exclusive.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Purge {
    /// Which subjects.
    pub filter: SubjectFilter,
    /// Remove only sequences strictly below this one.
    pub up_to_seq: Option<u64>,
    /// Keep this many of the newest matching messages.
    pub keep: Option<u64>,
}

/// Counters and bounds of what a store holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StoreState {
    /// Messages stored.
    pub msgs: u64,
    /// Bytes stored, counted as [`StoredMessage::stored_size`].
    pub bytes: u64,
    /// Lowest stored sequence; `last_seq + 1` when empty.
    pub first_seq: u64,
    /// Time of the first stored message (0 when empty).
    pub first_time_ns: i64,
    /// Highest sequence ever given (survives purges).
    pub last_seq: u64,
    /// Time of the last appended message (0 if none ever).
    pub last_time_ns: i64,
    /// Distinct subjects among the stored messages.
    pub num_subjects: u64,
    /// Sequences between `first_seq` and `last_seq` no longer stored.
    pub num_deleted: u64,
}

/// One message of an atomic batch ([`Store::append_batch`](crate::Store::append_batch)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchMessage<'a> {
    /// Subject.
    pub subject: &'a str,
    /// Raw `NATS/1.0` header block; empty if none.
    pub headers: &'a [u8],
    /// Payload.
    pub payload: &'a [u8],
}

/// Most bytes (stored size) one atomic batch may hold.
pub const BATCH_BYTES_MAX: u64 = 64 * 1024 * 1024;

/// The discard-new limits a whole batch must fit, checked before anything
/// of it is written. `subject_count` gives the stored messages of a subject.
pub(crate) fn check_batch_limits(
    config: &StoreConfig,
    msgs: u64,
    bytes: u64,
    batch: &[BatchMessage<'_>],
    subject_count: impl Fn(&str) -> u64,
) -> Result<(), crate::StoreError> {
    use crate::error::Limit;
    let size: u64 = batch
        .iter()
        .map(|m| stored_size(m.subject.len(), m.headers.len(), m.payload.len()))
        .sum();
    if size > BATCH_BYTES_MAX {
        return Err(crate::StoreError::TooLarge);
    }
    if config.discard != Discard::New {
        return Ok(());
    }
    if config.max_msgs.is_some_and(|max| msgs + batch.len() as u64 > max) {
        return Err(crate::StoreError::LimitReached(Limit::Msgs));
    }
    if config.max_bytes.is_some_and(|max| bytes + size > max) {
        return Err(crate::StoreError::LimitReached(Limit::Bytes));
    }
    if let (true, Some(max)) = (config.discard_new_per_subject, config.max_msgs_per_subject) {
        let mut added: rustc_hash::FxHashMap<&str, u64> = rustc_hash::FxHashMap::default();
        for m in batch {
            let n = added.entry(m.subject).or_insert(0);
            *n += 1;
            if subject_count(m.subject) + *n > max {
                return Err(crate::StoreError::LimitReached(Limit::MsgsPerSubject));
            }
        }
    }
    Ok(())
}
