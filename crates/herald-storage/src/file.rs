//! The file store: segment files of checksummed records plus an in-memory
//! index. (Being written; see `docs/internals/storage.md`.)

/// What recovery found and did when a file store was opened.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recovery {
    /// Messages found intact.
    pub msgs: u64,
    /// Bytes cut off the tail of the last segment (torn or corrupt records).
    pub truncated_bytes: u64,
    /// Records dropped because their checksum or framing was wrong.
    pub dropped_records: u64,
}

/// Segment files on disk (not written yet).
pub struct FileStore;
