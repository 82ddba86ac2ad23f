//! Atomic batch publish (ADR-50): several messages stored all or nothing,
//! on streams created with `allow_atomic`.

use bytes::Bytes;
use herald_protocol::Headers;

use super::{parse_response, JetStream, PubAck, PublishOptions};
use crate::{Error, Result};

/// `Nats-Batch-Id`: which batch a message belongs to.
pub const BATCH_ID: &str = "Nats-Batch-Id";
/// `Nats-Batch-Sequence`: its place in the batch, from 1.
pub const BATCH_SEQUENCE: &str = "Nats-Batch-Sequence";
/// `Nats-Batch-Commit: 1` on the last message stores the batch.
pub const BATCH_COMMIT: &str = "Nats-Batch-Commit";
/// Messages one batch may hold (the server's limit).
pub const BATCH_MSGS_MAX: usize = 1000;

/// One message of an atomic batch; see [`JetStream::publish_batch`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BatchMessage {
    /// Subject (captured by the batch's stream).
    pub subject: String,
    /// Headers of its own (may be empty).
    pub headers: Headers,
    /// Checks this message must pass when the batch is committed, each
    /// against the stream as it is after the messages before it.
    pub options: PublishOptions,
    /// The payload.
    pub payload: Bytes,
}

impl JetStream {
    /// Publishes `messages` as one atomic batch: the stream stores all of
    /// them, in order, or none. Returns the stream's one [`PubAck`]: `seq`
    /// is the last message's sequence and `batch_size` how many were stored.
    /// A failed check of any message (e.g. [`Error::is_wrong_last_sequence`])
    /// fails the whole batch.
    ///
    /// The messages before the last are sent without waiting; the server
    /// answers the last one, which carries `Nats-Batch-Commit: 1`.
    pub async fn publish_batch(&self, messages: &[BatchMessage]) -> Result<PubAck> {
        if messages.is_empty() || messages.len() > BATCH_MSGS_MAX {
            return Err(Error::InvalidArgument(format!(
                "an atomic batch holds 1 to {BATCH_MSGS_MAX} messages, not {}",
                messages.len()
            )));
        }
        let batch_id = self.client.new_inbox()["_INBOX.".len()..].to_string();
        let last = messages.len() - 1;
        for (index, message) in messages.iter().enumerate() {
            let mut headers = message.headers.clone();
            message.options.apply(&mut headers);
            headers.append(BATCH_ID, batch_id.clone());
            headers.append(BATCH_SEQUENCE, (index + 1).to_string());
            if index < last {
                self.client
                    .publish_with_headers(&message.subject, &headers, &message.payload)?;
                continue;
            }
            headers.append(BATCH_COMMIT, "1");
            let reply = self
                .client
                .request_with_headers(&message.subject, &headers, &message.payload, self.timeout())
                .await?;
            return parse_response(&reply.payload);
        }
        unreachable!("the loop returns at the last message")
    }
}
