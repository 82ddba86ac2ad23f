//! Messages delivered to subscribers and replies to requests.

use bytes::Bytes;
use herald_protocol::Headers;

/// A received message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Subject it was published to.
    pub subject: String,
    /// Where to send a reply, if the publisher wants one.
    pub reply: Option<String>,
    /// Headers, if the publisher sent any.
    pub headers: Option<Headers>,
    /// The payload.
    pub payload: Bytes,
    /// Status code from the headers' version line (e.g. 503 for no responders).
    pub status: Option<u16>,
}
