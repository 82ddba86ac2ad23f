//! Why a store operation failed.

use std::path::PathBuf;

use thiserror::Error;

/// Why a store operation failed.
#[derive(Debug, Error)]
pub enum StoreError {
    /// Discard policy `new` and the message would exceed a limit.
    #[error("{0}")]
    LimitReached(Limit),
    /// An I/O operation on a store file failed.
    #[error("{op} {}: {source}", path.display())]
    Io {
        /// What was attempted.
        op: &'static str,
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A record that was intact at recovery no longer reads back intact
    /// (the file changed under the store).
    #[error("corrupt record in {}: {why}", path.display())]
    Corrupt {
        /// The segment file.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// The message is larger than a record can hold.
    #[error("message too large for the store")]
    TooLarge,
}

/// Which limit refused a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// `max_msgs`.
    Msgs,
    /// `max_bytes`.
    Bytes,
    /// `max_msgs_per_subject`.
    MsgsPerSubject,
}

impl std::fmt::Display for Limit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Limit::Msgs => "maximum messages exceeded",
            Limit::Bytes => "maximum bytes exceeded",
            Limit::MsgsPerSubject => "maximum messages per subject exceeded",
        })
    }
}
