//! Where a push subscription's events come from: a live core subscription,
//! or pull requests on a JetStream consumer (an ephemeral one of our own, or
//! a durable one the client names).
//!
//! Both hand out [`Delivery`]s one at a time and hold only a bounded number
//! unsent: the live subscription has a bounded backlog and is cut off when
//! it overflows; a consumer is pulled in small batches, the next batch only
//! once the last one was taken, so a slow reader just reads slower.

use std::sync::Arc;
use std::time::Duration;

use herald_protocol::cloudevents::{CloudEvent, Defaults};
use herald_protocol::jetstream::{AckMetadata, NextRequest, Timestamp};
use parking_lot::Mutex;
use serde_json::{Map, Value};

use crate::local::{Local, LocalInbox, LocalMsg, LocalSubscription};

/// How long one pull request waits for messages. Short, because a request
/// outlives the client that made it: what the consumer delivers to it after
/// the client left is only handed back once it ended.
pub(crate) const PULL_EXPIRES_MS: u64 = 2_000;
/// Messages asked for by one pull request.
pub(crate) const PULL_BATCH_MAX: u64 = 64;
/// Bytes asked for by one pull request (raised to twice the server's max
/// payload, so that any single message fits).
pub(crate) const PULL_BYTES_MAX: u64 = 1024 * 1024;
/// Longest wait for the end of a pull request beyond its expiry before it
/// is taken as ended (its `408` was lost or never sent).
const PULL_STALL_MS: u64 = PULL_EXPIRES_MS + 5_000;
/// Unread messages an inbox holds: one batch and its closing status, with
/// room for a request made again while a late status was on its way.
const PULL_INBOX_MAX: usize = 2 * PULL_BATCH_MAX as usize + 8;

/// One event, ready to be written.
#[derive(Debug)]
pub(crate) struct Delivery {
    /// The CloudEvent as a structured-mode JSON object, with Herald's
    /// extension attributes.
    pub event: Map<String, Value>,
    /// Its stream sequence (stream mode): the SSE `id`.
    pub seq: Option<u64>,
    /// The `$JS.ACK` subject, when the consumer wants this delivery acked.
    pub ack: Option<String>,
}

impl Delivery {
    /// The event as one line of JSON, with `heraldackid` when given.
    pub fn into_json(mut self, ack_id: Option<String>) -> String {
        if let Some(id) = ack_id {
            self.event.insert("heraldackid".into(), Value::String(id));
        }
        serde_json::to_string(&self.event).unwrap_or_default()
    }
}

/// Why a source gives no more events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum End {
    /// The reader fell behind: the live backlog overflowed.
    Slow(String),
    /// The stream or consumer went away or answered something unusable.
    Failed(String),
}

/// Deliveries handed back unacknowledged (not written, or written and not
/// acked when the client left): negatively acked once the pull request in
/// flight has ended, so that the consumer redelivers them to the next
/// client at once instead of after its `ack_wait`.
pub(crate) type Returned = Arc<Mutex<Vec<String>>>;

/// The events of one push subscription.
pub(crate) enum Source {
    /// Everything published to the pattern from now on.
    Live(Live),
    /// A JetStream consumer's deliveries.
    Pulled(Pulled),
}

impl Source {
    /// The next event; cancel-safe (nothing is lost when the future is
    /// dropped before it completes).
    pub async fn next(&mut self) -> Result<Delivery, End> {
        match self {
            Source::Live(live) => live.next().await,
            Source::Pulled(pulled) => pulled.next().await,
        }
    }

    /// Whether the live backlog overflowed (never, for consumers).
    pub fn overflowed(&self) -> bool {
        match self {
            Source::Live(live) => live.sub.overflowed(),
            Source::Pulled(_) => false,
        }
    }

    /// Whether deliveries carry ack subjects to be acked by someone.
    pub fn acks(&self) -> bool {
        matches!(self, Source::Pulled(p) if p.acks)
    }

    /// Where unacknowledged deliveries are handed back.
    pub fn returned(&self) -> Returned {
        match self {
            Source::Live(_) => Returned::default(),
            Source::Pulled(pulled) => pulled.returned.clone(),
        }
    }
}

/// A live core subscription.
pub(crate) struct Live {
    sub: LocalSubscription,
    backlog: String,
    /// Prefix of the generated event ids: unique per subscription.
    id_prefix: String,
    next_id: u64,
}

impl Live {
    /// Wraps `sub`; `backlog` says what its bound is, for the cut-off reason.
    pub fn new(sub: LocalSubscription, backlog: String) -> Live {
        Live {
            sub,
            backlog,
            id_prefix: format!("{:016x}", fastrand::u64(..)),
            next_id: 0,
        }
    }

    async fn next(&mut self) -> Result<Delivery, End> {
        let slow = || {
            End::Slow(format!(
                "slow consumer: more than {} waited unsent; messages were dropped",
                self.backlog
            ))
        };
        if self.sub.overflowed() {
            return Err(slow());
        }
        let Some(msg) = self.sub.next().await else {
            return Err(slow());
        };
        self.next_id += 1;
        let id = format!("{}-{}", self.id_prefix, self.next_id);
        let time = Timestamp::now().to_rfc3339();
        let subject = msg.subject_str();
        let mut event = render(&msg, subject, &id, &time);
        event.insert("heraldsubject".into(), Value::String(subject.to_string()));
        Ok(Delivery {
            event,
            seq: None,
            ack: None,
        })
    }
}

/// A consumer pulled in small batches through one inbox.
pub(crate) struct Pulled {
    local: Arc<Local>,
    stream: String,
    consumer: String,
    /// Ours: deleted when the subscription ends.
    ephemeral: bool,
    /// Deliveries must be acked (explicit or all ack policy).
    acks: bool,
    /// `None` only once handed to the clean-up.
    inbox: Option<LocalInbox>,
    request: Vec<u8>,
    batch: u64,
    /// Messages received for the pull request in flight; `None`: none is.
    in_flight: Option<u64>,
    returned: Returned,
}

/// Limits a durable consumer sets on pull requests (`0`: none).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct PullLimits {
    pub max_batch: i64,
    pub max_expires_ns: i64,
    pub max_bytes: i64,
}

impl Pulled {
    /// Pulls from `stream`'s `consumer`. `max_payload` sizes the byte
    /// budget of each request so that any message fits.
    pub fn new(
        local: Arc<Local>,
        stream: String,
        consumer: String,
        ephemeral: bool,
        acks: bool,
        max_payload: usize,
        limits: PullLimits,
    ) -> Pulled {
        let within = |ours: u64, theirs: i64| {
            if theirs > 0 {
                ours.min(theirs as u64)
            } else {
                ours
            }
        };
        let batch = within(PULL_BATCH_MAX, limits.max_batch);
        let request = NextRequest {
            batch: batch as i64,
            expires: within(PULL_EXPIRES_MS * 1_000_000, limits.max_expires_ns) as i64,
            max_bytes: within(PULL_BYTES_MAX.max(2 * max_payload as u64), limits.max_bytes) as i64,
            ..NextRequest::default()
        };
        let inbox = local.inbox(PULL_INBOX_MAX);
        Pulled {
            local,
            stream,
            consumer,
            ephemeral,
            acks,
            inbox: Some(inbox),
            request: serde_json::to_vec(&request).unwrap_or_default(),
            batch,
            in_flight: None,
            returned: Returned::default(),
        }
    }

    async fn next(&mut self) -> Result<Delivery, End> {
        loop {
            let Some(inbox) = self.inbox.as_mut() else {
                return Err(End::Failed("the subscription is closed".into()));
            };
            if self.in_flight.is_none() {
                let subject = format!("$JS.API.CONSUMER.MSG.NEXT.{}.{}", self.stream, self.consumer);
                let published = self.local.publish(
                    subject.as_bytes(),
                    Some(inbox.subject.as_bytes()),
                    &[],
                    &self.request,
                );
                if !published.delivered {
                    return Err(End::Failed("JetStream is not serving pull requests".into()));
                }
                self.in_flight = Some(0);
            }
            let msg = inbox.next(Duration::from_millis(PULL_STALL_MS)).await;
            if inbox.overflowed() {
                // Cannot happen while one request is in flight at a time;
                // if it does, events were lost, and silently going on would
                // break the no-gap promise of resuming.
                return Err(End::Failed(
                    "internal: pulled messages overflowed the inbox".into(),
                ));
            }
            let Some(msg) = msg else {
                self.in_flight = None;
                continue;
            };
            match classify(&msg) {
                Pull::Delivery => {}
                Pull::Ended => {
                    self.in_flight = None;
                    continue;
                }
                Pull::Ignore => continue,
                Pull::Failed(reason) => {
                    self.in_flight = None;
                    return Err(End::Failed(format!(
                        "consumer {} of stream {}: {reason}",
                        self.consumer, self.stream
                    )));
                }
            }
            let received = self.in_flight.map_or(1, |n| n + 1);
            self.in_flight = (received < self.batch).then_some(received);
            if let Some(delivery) = self.render(&msg) {
                return Ok(delivery);
            }
        }
    }

    fn render(&self, msg: &LocalMsg) -> Option<Delivery> {
        let reply = std::str::from_utf8(msg.reply.as_deref()?).ok()?;
        let meta = AckMetadata::parse_str(reply).ok()?;
        let id = format!("{}-{}", meta.stream, meta.stream_seq);
        let time = Timestamp::from_unix_nanos(meta.timestamp).to_rfc3339();
        let subject = msg.shown_str();
        let mut event = render(msg, subject, &id, &time);
        event.insert("heraldsubject".into(), Value::String(subject.to_string()));
        event.insert("heraldstream".into(), Value::String(meta.stream.to_string()));
        event.insert("heraldseq".into(), Value::from(meta.stream_seq));
        Some(Delivery {
            event,
            seq: Some(meta.stream_seq),
            ack: self.acks.then(|| reply.to_string()),
        })
    }
}

impl Drop for Pulled {
    fn drop(&mut self) {
        let Some(inbox) = self.inbox.take() else {
            return;
        };
        let cleanup = Cleanup {
            local: self.local.clone(),
            stream: std::mem::take(&mut self.stream),
            consumer: std::mem::take(&mut self.consumer),
            ephemeral: self.ephemeral,
            acks: self.acks,
            inbox,
            batch: self.batch,
            in_flight: self.in_flight,
            returned: self.returned.clone(),
        };
        // Deleting a consumer is an API call: done on a task of its own.
        // Without a runtime (process exit) the ephemeral consumer's
        // inactive threshold removes it.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(cleanup.run());
        }
    }
}

/// What is left to do when a pulled subscription ends.
struct Cleanup {
    local: Arc<Local>,
    stream: String,
    consumer: String,
    ephemeral: bool,
    acks: bool,
    inbox: LocalInbox,
    batch: u64,
    in_flight: Option<u64>,
    returned: Returned,
}

impl Cleanup {
    async fn run(mut self) {
        if self.ephemeral {
            let api = format!("CONSUMER.DELETE.{}.{}", self.stream, self.consumer);
            if let Err(e) = self
                .local
                .js_api(&api, b"", Duration::from_millis(super::push::API_TIMEOUT_MS))
                .await
            {
                tracing::debug!(stream = %self.stream, consumer = %self.consumer, error = %e,
                    "cannot delete a push subscription's consumer; its inactive threshold will");
            }
            return;
        }
        if !self.acks {
            return;
        }
        let mut naks = Vec::new();
        // Wait for the request in flight to end first: nacked messages
        // would otherwise be redelivered to it, and so to nobody.
        if let Some(mut received) = self.in_flight {
            let deadline = tokio::time::Instant::now() + Duration::from_millis(PULL_STALL_MS);
            while received < self.batch {
                let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                let Some(msg) = self.inbox.next(left).await else {
                    break;
                };
                match classify(&msg) {
                    Pull::Delivery => {
                        received += 1;
                        if let Some(reply) = msg.reply.as_deref().and_then(|r| std::str::from_utf8(r).ok()) {
                            naks.push(reply.to_string());
                        }
                    }
                    Pull::Ignore => {}
                    Pull::Ended | Pull::Failed(_) => break,
                }
            }
        }
        naks.append(&mut self.returned.lock());
        for ack in naks {
            self.local.publish(ack.as_bytes(), None, &[], b"-NAK");
        }
    }
}

/// What a message on a pull inbox is.
enum Pull {
    /// A message of the consumer.
    Delivery,
    /// The pull request ended without failure (expired, byte budget).
    Ended,
    /// A heartbeat, or something not for us.
    Ignore,
    /// The consumer cannot be pulled (gone, too many waiting requests, ...).
    Failed(String),
}

fn classify(msg: &LocalMsg) -> Pull {
    let is_ack = msg
        .reply
        .as_deref()
        .is_some_and(|r| r.starts_with(herald_protocol::jetstream::ack::ACK_PREFIX.as_bytes()));
    if is_ack {
        return Pull::Delivery;
    }
    let Some(headers) = msg.parsed_headers() else {
        return Pull::Ignore;
    };
    let description = headers.description.clone().unwrap_or_default();
    match headers.status {
        Some(404 | 408) => Pull::Ended,
        Some(409) if description.contains("MaxBytes") => Pull::Ended,
        Some(100) => Pull::Ignore,
        Some(503) => Pull::Failed("the consumer no longer exists".into()),
        Some(status) => Pull::Failed(format!("it answered {status} {description}")),
        None => Pull::Ignore,
    }
}

/// The CloudEvent of `msg` as a JSON object, shown under `subject`.
fn render(msg: &LocalMsg, subject: &str, id: &str, time: &str) -> Map<String, Value> {
    let headers = msg.parsed_headers();
    let defaults = Defaults {
        subject,
        id,
        time: Some(time),
    };
    match CloudEvent::from_message(headers.as_ref(), &msg.payload, defaults).to_json() {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ack_id_is_added_to_the_json() {
        let mut event = Map::new();
        event.insert("id".into(), Value::String("x".into()));
        let delivery = Delivery {
            event,
            seq: Some(1),
            ack: None,
        };
        let json: Value = serde_json::from_str(&delivery.into_json(Some("7\"".into()))).unwrap();
        assert_eq!(json["heraldackid"], "7\"");
        assert_eq!(json["id"], "x");
        let plain = Delivery {
            event: Map::new(),
            seq: None,
            ack: None,
        };
        assert_eq!(plain.into_json(None), "{}");
    }
}
