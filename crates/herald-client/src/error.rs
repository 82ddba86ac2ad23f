//! The SDK's error type.

use std::io;

use thiserror::Error;

/// Everything that can go wrong talking to a server.
///
/// The `Display` texts are meant for end users, e.g. `cannot connect to
/// nats://127.0.0.1:4333: connection refused` or `no responders on
/// orders.get`.
///
/// ```no_run
/// # async fn f(client: herald_client::Client) {
/// use herald_client::Error;
/// match client.request("orders.get", "42").await {
///     Ok(reply) => println!("{}", String::from_utf8_lossy(&reply.payload)),
///     Err(Error::NoResponders { subject }) => eprintln!("nobody serves {subject}"),
///     Err(Error::Timeout) => eprintln!("no reply in time"),
///     Err(other) => eprintln!("{other}"),
/// }
/// # }
/// ```
#[derive(Debug, Error)]
pub enum Error {
    /// The server URL could not be understood.
    #[error("invalid server URL {0:?}: expected nats://host:port or host:port")]
    InvalidUrl(String),
    /// Nothing listens at the server address (the server is not running,
    /// or not on this port).
    #[error("cannot connect to {url}: connection refused")]
    ConnectionRefused {
        /// The URL tried.
        url: String,
    },
    /// The server address could not be reached: name resolution failed, the
    /// network is unreachable, or the connection timed out.
    #[error("cannot connect to {url}: {source}")]
    Unreachable {
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
    /// A request or flush did not complete in time.
    #[error("timed out")]
    Timeout,
    /// A request found no subscriber on its subject.
    #[error("no responders on {subject}")]
    NoResponders {
        /// The request subject.
        subject: String,
    },
    /// The server reported an error with `-ERR` (e.g. `Maximum Payload
    /// Violation`, `Authorization Violation`, `Permissions Violation`).
    #[error("server error: {0}")]
    Protocol(String),
    /// The client was closed or drained, or gave up reconnecting.
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
    #[error("invalid data from the server: {0}")]
    Parse(#[from] herald_protocol::ProtocolError),
    /// A socket error.
    #[error("I/O error: {0}")]
    Io(#[from] io::Error),
    /// The JetStream API refused a request: the reply's `error` object,
    /// e.g. `stream not found` (10059) or `wrong last sequence: 4` (10071).
    /// See [`Error::api_error`] and the `is_…` helpers.
    #[error("JetStream error: {} ({})", .0.description, .0.err_code)]
    JetStream(herald_protocol::jetstream::ApiError),
    /// A JetStream status message ended an operation, e.g. `409 Consumer
    /// Deleted` or `400 Bad Request` in reply to a pull request.
    #[error("JetStream status {code}: {description}")]
    JetStreamStatus {
        /// The status code.
        code: u16,
        /// Its description.
        description: String,
    },
    /// Nothing answers on the JetStream API subjects: the server does not
    /// have JetStream enabled (or the account has no access to it).
    #[error("JetStream is not enabled on the server (no responders on {subject})")]
    JetStreamNotEnabled {
        /// The API subject that had no responders.
        subject: String,
    },
    /// A reply could not be understood (e.g. JSON that does not match the
    /// expected response).
    #[error("invalid response: {0}")]
    InvalidResponse(String),
    /// An argument is not valid, e.g. a stream name with a `.`, a key
    /// with a space, or a bucket history above 64.
    #[error("{0}")]
    InvalidArgument(String),
}

/// Result with the SDK's [`enum@Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
