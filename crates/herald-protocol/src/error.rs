use thiserror::Error;

/// Why bytes received from a peer are not valid protocol.
///
/// Every variant is fatal for the connection that sent it: the stream can no
/// longer be framed reliably. [`ProtocolError::err_text`] gives the text of the
/// `-ERR` line a server sends before closing.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ProtocolError {
    /// The first word of a line is not an operation this side accepts.
    #[error("unknown protocol operation")]
    UnknownOperation,
    /// A control line is longer than the configured maximum.
    #[error("control line longer than {max} bytes")]
    ControlLineTooLong {
        /// The configured maximum.
        max: usize,
    },
    /// A payload is larger than the configured maximum.
    #[error("payload of {size} bytes exceeds the maximum of {max}")]
    PayloadTooLarge {
        /// The announced size.
        size: usize,
        /// The configured maximum.
        max: usize,
    },
    /// An operation has the wrong number or shape of arguments.
    #[error("invalid arguments for {op}")]
    InvalidArguments {
        /// The operation, e.g. `PUB`.
        op: &'static str,
    },
    /// A size or count is not a decimal number that fits.
    #[error("invalid number in {op}")]
    InvalidNumber {
        /// The operation, e.g. `PUB`.
        op: &'static str,
    },
    /// A header size is larger than the total size of an `HPUB`/`HMSG`.
    #[error("header size larger than total size")]
    HeaderSizeTooLarge,
    /// The bytes after a payload are not `\r\n`: the announced size is wrong.
    #[error("payload not followed by CRLF")]
    MissingPayloadTerminator,
}

impl ProtocolError {
    /// The text a server puts inside `-ERR '…'` for this error. The texts of
    /// nats-server are kept where clients recognise them.
    pub fn err_text(&self) -> &'static str {
        match self {
            ProtocolError::UnknownOperation => "Unknown Protocol Operation",
            ProtocolError::ControlLineTooLong { .. } => "Maximum Control Line Exceeded",
            ProtocolError::PayloadTooLarge { .. } => "Maximum Payload Violation",
            ProtocolError::InvalidArguments { .. }
            | ProtocolError::InvalidNumber { .. }
            | ProtocolError::HeaderSizeTooLarge
            | ProtocolError::MissingPayloadTerminator => "Parser Error",
        }
    }
}
