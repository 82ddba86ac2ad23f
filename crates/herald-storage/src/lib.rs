//! Herald's storage engine: the append-only message store under each stream.
//!
//! The main types:
//! - [`Store`]: what a stream needs from its storage — append, read by
//!   sequence / subject / time, delete, purge, retention limits, sync.
//! - [`FileStore`]: segment files of checksummed records plus an in-memory
//!   index; recovers after a crash by verifying checksums and truncating a
//!   torn tail. Disk format: `docs/internals/storage.md`.
//! - [`MemoryStore`]: the same contract kept in memory (stream storage
//!   `memory`), and the reference the file store is tested against.
//!
//! ```
//! use herald_storage::{MemoryStore, Store, StoreConfig};
//! let mut store = MemoryStore::new(StoreConfig::default());
//! let seq = store.append("orders.new", b"", b"hello", 1).unwrap().seq;
//! assert_eq!(store.get(seq).unwrap().unwrap().payload.as_ref(), b"hello");
//! ```
//!
//! Stores are plain synchronous state: no threads, no async. The server owns
//! one per stream behind a lock and decides when to call [`Store::write_out`]
//! and [`Store::sync`] (its sync policy, group commit).

mod error;
mod file;
mod memory;
mod types;

pub use error::{Limit, StoreError};
pub use file::{FileStore, Recovery};
pub use memory::MemoryStore;
pub use types::*;

/// What a stream needs from its storage.
///
/// Sequences start at 1 and grow by one per appended message; deleted,
/// purged or expired messages leave gaps but never reuse a sequence, and the
/// last sequence survives a purge of everything (and a restart).
pub trait Store: Send {
    /// Appends one message, then enforces the limits of the config
    /// (discard old removes the oldest messages; discard new refuses this
    /// one with [`StoreError::LimitReached`] before writing anything).
    /// `headers` is the raw `NATS/1.0` header block, empty if none.
    /// `time_ns` is nanoseconds since the Unix epoch.
    fn append(
        &mut self,
        subject: &str,
        headers: &[u8],
        payload: &[u8],
        time_ns: i64,
    ) -> Result<Appended, StoreError>;

    /// Appends several messages as one: either all are stored, with
    /// consecutive sequences, or none (a limit refuses the batch before
    /// anything is written; a crash while it is written drops it whole at
    /// recovery). Returns the last sequence. An empty batch stores nothing.
    fn append_batch(&mut self, batch: &[BatchMessage<'_>], time_ns: i64) -> Result<Appended, StoreError>;

    /// Hands everything appended so far to the operating system (a
    /// `write`), so that it survives a crash of the process. Cheap when
    /// nothing is buffered.
    fn write_out(&mut self) -> Result<(), StoreError>;

    /// Writes out and makes everything durable on the device (`fsync`).
    fn sync(&mut self) -> Result<(), StoreError>;

    /// The message with sequence `seq`, or `None` if it does not exist (never
    /// stored, deleted, purged or expired).
    fn get(&mut self, seq: u64) -> Result<Option<StoredMessage>, StoreError>;

    /// The first message with sequence `>= from_seq` whose subject matches
    /// `filter`.
    fn next_matching(
        &mut self,
        from_seq: u64,
        filter: &SubjectFilter,
    ) -> Result<Option<StoredMessage>, StoreError>;

    /// The last message whose subject matches `filter` (a literal subject or
    /// a pattern).
    fn last_matching(&mut self, filter: &SubjectFilter) -> Result<Option<StoredMessage>, StoreError>;

    /// Sequence of the last message stored on the literal `subject`, if any
    /// is still stored.
    fn last_seq_of_subject(&self, subject: &str) -> Option<u64>;

    /// The first sequence whose message was stored at or after `time_ns`
    /// (`last_seq + 1` if none).
    fn seq_at_time(&mut self, time_ns: i64) -> Result<u64, StoreError>;

    /// Number of stored messages with sequence `>= from_seq` matching
    /// `filter`.
    fn count_matching(&self, from_seq: u64, filter: &SubjectFilter) -> u64;

    /// Number of stored messages with sequence in `[from_seq, to_seq)`
    /// matching `filter`, in time proportional to that range (not to the
    /// number of subjects): for keeping a count up to date as a stream grows.
    fn count_matching_range(&mut self, from_seq: u64, to_seq: u64, filter: &SubjectFilter) -> u64 {
        if from_seq >= to_seq {
            return 0;
        }
        self.count_matching(from_seq, filter) - self.count_matching(to_seq, filter)
    }

    /// Messages removed since the store was opened, by any means (delete,
    /// purge, limits, expiry). A count derived from the store stays true
    /// while this does not change and only appends happen.
    fn removals(&self) -> u64;

    /// Calls `visit(seq, time_ns, headers)` for every stored message with
    /// sequence `>= from_seq` that has headers, in order. Meant for scans
    /// of many messages (rebuilding a deduplication window at start), so
    /// implementations avoid materialising each message.
    fn scan_headers(
        &mut self,
        from_seq: u64,
        visit: &mut dyn FnMut(u64, i64, &[u8]),
    ) -> Result<(), StoreError> {
        let all = SubjectFilter::all();
        let mut seq = from_seq;
        while let Some(msg) = self.next_matching(seq, &all)? {
            if !msg.headers.is_empty() {
                visit(msg.seq, msg.time_ns, &msg.headers);
            }
            seq = msg.seq + 1;
        }
        Ok(())
    }

    /// Stored messages per subject for the subjects matching `filter`.
    fn subject_counts(&self, filter: &SubjectFilter) -> Vec<(String, u64)>;

    /// Removes one message. Returns whether it existed.
    fn delete(&mut self, seq: u64) -> Result<bool, StoreError>;

    /// Removes messages as the JetStream purge request describes it.
    /// Returns how many were removed.
    fn purge(&mut self, purge: &Purge) -> Result<u64, StoreError>;

    /// Removes messages older than `max_age` relative to `now_ns`. Returns
    /// how many were removed.
    fn expire(&mut self, now_ns: i64) -> Result<u64, StoreError>;

    /// Counters and bounds of what is stored.
    fn state(&self) -> StoreState;

    /// Applies new limits (enforcing them at once).
    fn set_config(&mut self, config: StoreConfig) -> Result<(), StoreError>;

    /// The limits in force.
    fn config(&self) -> &StoreConfig;
}
