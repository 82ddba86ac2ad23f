//! Reading a stream in order through an ephemeral push consumer, the way
//! NATS clients build "ordered consumers": no acks, flow control so the
//! server never outruns the reader, and a new consumer from the last
//! position seen whenever a delivery is missing (a gap in the consumer
//! sequence) or the consumer went quiet (no heartbeat).

use std::time::Duration;

use herald_client::jetstream::{
    AckPolicy, ConsumerConfig, DeliverPolicy, JetStream, ReplayPolicy, Timestamp,
};
use herald_client::{Message, Subscriber};
use herald_protocol::jetstream::AckMetadata;

use crate::event::RecordedEvent;
use crate::Result;

/// How often the server sends an idle heartbeat to a reader.
const HEARTBEAT: Duration = Duration::from_secs(2);
/// Silence after which a reader assumes its consumer is gone.
const SILENCE_MAX: Duration = Duration::from_secs(6);
/// How long the server keeps an abandoned reader's consumer.
const INACTIVE_THRESHOLD: Duration = Duration::from_secs(10);
/// Consumers a reader may create in a row without receiving anything
/// before it gives up.
const RESTARTS_MAX: u32 = 5;

/// An ordered reader of `filter` in `stream`.
pub(crate) struct OrderedReader {
    js: JetStream,
    stream: String,
    filter: String,
    sub: Option<Subscriber>,
    consumer: String,
    /// Last stream sequence delivered to the caller.
    last_position: u64,
    /// Consumer sequence expected next.
    next_consumer_seq: u64,
    /// Messages still to deliver of those the consumer had when created:
    /// a bounded read stops there, even while new events keep coming.
    remaining: u64,
    restarts: u32,
}

/// What one poll of the reader produced.
pub(crate) enum Next {
    Event(Box<RecordedEvent>),
    /// The reader has nothing more right now (pending reached zero).
    CaughtUp,
}

impl OrderedReader {
    /// Starts reading `filter` at stream position `from` (1 = the start).
    pub(crate) async fn start(
        js: &JetStream,
        stream: &str,
        filter: &str,
        from: u64,
    ) -> Result<OrderedReader> {
        let mut reader = OrderedReader {
            js: js.clone(),
            stream: stream.to_string(),
            filter: filter.to_string(),
            sub: None,
            consumer: String::new(),
            last_position: from.saturating_sub(1),
            next_consumer_seq: 1,
            remaining: 0,
            restarts: 0,
        };
        reader.create_consumer().await?;
        Ok(reader)
    }

    /// Messages left of those the current consumer had when created.
    pub(crate) fn remaining(&self) -> u64 {
        self.remaining
    }

    /// Last stream position handed out.
    pub(crate) fn last_position(&self) -> u64 {
        self.last_position
    }

    async fn create_consumer(&mut self) -> Result<()> {
        self.delete_consumer();
        let client = self.js.client();
        let inbox = client.new_inbox();
        let sub = client.subscribe(&inbox).await?;
        let config = ConsumerConfig {
            description: "herald-events ordered reader".into(),
            deliver_subject: inbox,
            filter_subject: self.filter.clone(),
            deliver_policy: DeliverPolicy::ByStartSequence,
            opt_start_seq: self.last_position + 1,
            ack_policy: AckPolicy::None,
            max_deliver: 1,
            replay_policy: ReplayPolicy::Instant,
            flow_control: true,
            idle_heartbeat: nanos(HEARTBEAT),
            inactive_threshold: nanos(INACTIVE_THRESHOLD),
            mem_storage: true,
            num_replicas: 1,
            ..ConsumerConfig::default()
        };
        let info = self.js.create_consumer(&self.stream, config).await?;
        self.consumer = info.name;
        self.remaining = info.num_pending;
        self.next_consumer_seq = 1;
        self.sub = Some(sub);
        Ok(())
    }

    /// Asks the server to drop the current consumer, without waiting.
    fn delete_consumer(&mut self) {
        if let Some(sub) = self.sub.take() {
            sub.unsubscribe();
            let subject = format!(
                "{}.CONSUMER.DELETE.{}.{}",
                self.js.api_prefix(),
                self.stream,
                self.consumer
            );
            let _ = self.js.client().publish(&subject, b"");
        }
    }

    /// The next event; [`Next::CaughtUp`] when `bounded` and the consumer
    /// has delivered everything it had when created.
    pub(crate) async fn next(&mut self, bounded: bool) -> Result<Next> {
        loop {
            if bounded && self.remaining == 0 {
                return Ok(Next::CaughtUp);
            }
            let sub = self.sub.as_mut().expect("a reader always has a consumer");
            let message = match tokio::time::timeout(SILENCE_MAX, sub.next()).await {
                Ok(Some(message)) => message,
                Ok(None) => return Err(herald_client::Error::Closed.into()),
                Err(_) => {
                    self.restart().await?;
                    continue;
                }
            };
            if message.status.is_some() {
                self.control(&message).await?;
                continue;
            }
            let reply = message.reply.as_deref().unwrap_or_default();
            // Borrowed parse: no strings allocated per delivered event.
            let info = AckMetadata::parse_str(reply)
                .map_err(|e| herald_client::Error::InvalidResponse(format!("ack subject {reply:?}: {e}")))?;
            if info.consumer_seq != self.next_consumer_seq || info.stream_seq <= self.last_position {
                // A delivery went missing (dropped by a full queue, or a
                // reconnect): start over right after the last one we have.
                self.restart().await?;
                continue;
            }
            self.next_consumer_seq += 1;
            self.last_position = info.stream_seq;
            self.restarts = 0;
            self.remaining = self.remaining.saturating_sub(1);
            let (position, stored_at) = (info.stream_seq, Timestamp::from_unix_nanos(info.timestamp));
            let event = RecordedEvent::from_delivery(
                &self.stream,
                &message.subject,
                message.headers.as_ref(),
                message.payload,
                position,
                stored_at,
            )?;
            return Ok(Next::Event(Box::new(event)));
        }
    }

    /// Answers flow control; checks a heartbeat for missed messages.
    async fn control(&mut self, message: &Message) -> Result<()> {
        if let Some(reply) = message.reply.as_deref().filter(|r| !r.is_empty()) {
            self.js.client().publish(reply, b"")?;
            return Ok(());
        }
        // An idle heartbeat: `Nats-Last-Consumer` is the last consumer
        // sequence the server sent; ahead of ours means we missed some.
        let last_sent = message
            .headers
            .as_ref()
            .and_then(|h| h.get("Nats-Last-Consumer"))
            .and_then(|v| v.parse::<u64>().ok());
        if let Some(last_sent) = last_sent {
            if last_sent >= self.next_consumer_seq {
                self.restart().await?;
            }
        }
        Ok(())
    }

    async fn restart(&mut self) -> Result<()> {
        self.restarts += 1;
        if self.restarts > RESTARTS_MAX {
            return Err(herald_client::Error::Timeout.into());
        }
        tracing::debug!(stream = %self.stream, filter = %self.filter, from = self.last_position + 1, "ordered reader restarts");
        self.create_consumer().await
    }
}

impl Drop for OrderedReader {
    fn drop(&mut self) {
        self.delete_consumer();
    }
}

fn nanos(duration: Duration) -> i64 {
    i64::try_from(duration.as_nanos()).unwrap_or(i64::MAX)
}
