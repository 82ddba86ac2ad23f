//! The SDK's error type.

use std::io;

use thiserror::Error;

/// Everything that can go wrong talking to a server.
#[derive(Debug, Error)]
pub enum Error {
    /// The server URL could not be understood.
    #[error("invalid server URL {0:?}: expected nats://host:port or host:port")]
    InvalidUrl(String),
    /// The first connection could not be made.
    #[error("cannot connect to {url}: {source}")]
    Connect {
        /// The URL tried.
        url: String,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The server did not complete the handshake.
    #[error("handshake with {url} failed: {reason}")]
    Handshake {
        /// The URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// An operation did not complete in time.
    #[error("timed out")]
    Timeout,
    /// A request found no subscriber on its subject.
    #[error("no responders on {subject}")]
    NoResponders {
        /// The request subject.
        subject: String,
    },
    /// The server reported an error.
    #[error("server error: {0}")]
    Server(String),
    /// The client was closed or drained.
    #[error("client is closed")]
    Closed,
    /// Disconnected, and the buffer kept for reconnecting is full.
    #[error("disconnected from the server and the reconnect buffer is full")]
    Disconnected,
    /// A payload is larger than the server accepts.
    #[error("payload of {size} bytes exceeds the server's maximum of {max}")]
    MaxPayload {
        /// The payload size.
        size: usize,
        /// The server's `max_payload`.
        max: usize,
    },
    /// A subject or queue name is not valid.
    #[error("invalid subject {0:?}")]
    InvalidSubject(String),
    /// The server sent bytes that are not valid protocol.
    #[error("protocol error: {0}")]
    Protocol(#[from] herald_protocol::ProtocolError),
    /// A socket error.
    #[error("I/O error: {0}")]
    Io(#[from] io::Error),
}

/// Result with the SDK's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
