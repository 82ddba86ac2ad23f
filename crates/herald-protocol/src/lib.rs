//! The NATS client protocol as Herald speaks it: a zero-copy parser and an
//! encoder for both directions, with no I/O and no async runtime.
//!
//! The main types:
//! - [`ClientOp`] and [`parse_client_op`]: what a client sends (`PUB`, `HPUB`,
//!   `SUB`, `UNSUB`, `CONNECT`, `PING`, `PONG`), parsed from a byte buffer.
//! - [`ServerOp`] and [`parse_server_op`]: what a server sends (`MSG`, `HMSG`,
//!   `INFO`, `PING`, `PONG`, `+OK`, `-ERR`), used by clients and benchmarks.
//! - [`encode`]: writers for every operation into a `Vec<u8>`.
//! - [`ServerInfo`], [`ConnectInfo`]: the JSON bodies of `INFO` and `CONNECT`.
//! - [`Headers`]: the `NATS/1.0` header block carried by `HPUB`/`HMSG`.
//! - [`ProtocolError`]: why a buffer is not valid protocol, with the `-ERR`
//!   text a server sends for it.
//! - [`cloudevents`]: CloudEvents 1.0 to and from NATS messages (binary
//!   mode in headers), for the HTTP front end.
//! - [`jetstream`]: the JetStream JSON API bodies, ack subjects and bodies,
//!   headers and status messages.
//!
//! Parsers borrow from the input buffer and report how many bytes the
//! operation used, so a caller can process a whole read buffer without
//! copying and advance past each operation:
//!
//! ```
//! use herald_protocol::{parse_client_op, ClientOp, Limits};
//!
//! let buf = b"PUB orders.created 5\r\nhello\r\nPING\r\n";
//! let limits = Limits::default();
//! let (op, used) = parse_client_op(buf, &limits).unwrap().unwrap();
//! match op {
//!     ClientOp::Pub { subject, data, .. } => {
//!         assert_eq!(subject, b"orders.created");
//!         assert_eq!(data, b"hello");
//!     }
//!     _ => unreachable!(),
//! }
//! let (op, _) = parse_client_op(&buf[used..], &limits).unwrap().unwrap();
//! assert!(matches!(op, ClientOp::Ping));
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod args;
mod client_op;
pub mod cloudevents;
pub mod encode;
mod error;
mod headers;
mod info;
pub mod jetstream;
mod server_op;

pub use client_op::{parse_client_op, ClientOp};
pub use error::ProtocolError;
pub use headers::{Headers, HeadersError};
pub use info::{ConnectInfo, ServerInfo};
pub use server_op::{parse_server_op, ServerOp};

/// Default largest payload a server accepts (1 MiB), as advertised in `INFO`.
pub const MAX_PAYLOAD_DEFAULT: usize = 1024 * 1024;
/// Default longest control line (the part of an operation before its payload).
pub const MAX_CONTROL_LINE_DEFAULT: usize = 4096;

/// Limits the parser enforces while it reads untrusted input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest control line in bytes, not counting the line terminator.
    pub max_control_line: usize,
    /// Largest payload (headers included) in bytes.
    pub max_payload: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_control_line: MAX_CONTROL_LINE_DEFAULT,
            max_payload: MAX_PAYLOAD_DEFAULT,
        }
    }
}
