//! Process managers and policies: react to events by sending commands,
//! idempotently. A policy follows one category through a durable consumer
//! and acknowledges an event only after its reaction succeeded; a
//! reaction that runs again (after a crash or a failure) sends the same
//! commands with the same ids, derived from the causing event's id, so
//! their handlers recognise them and apply them once.

use std::future::Future;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use herald_client::jetstream::{AckPolicy, ConsumerConfig, DeliverPolicy, JsMessage, MessageInfo};
use tokio::task::JoinHandle;

use crate::aggregate::{Aggregate, CommandContext};
use crate::command::{Accepted, CommandBus, CommandError};
use crate::envelope::Envelope;
use crate::event::{DomainEvent, RecordedEvent};
use crate::naming::{check_token, AggregateId};
use crate::store::EventStore;
use crate::Result;

/// Events a policy runner pulls at once.
const POLICY_BATCH_MAX: usize = 64;
/// How long one pull waits for events.
const POLICY_PULL_EXPIRES: Duration = Duration::from_secs(5);
/// How long a failed reaction waits before it is retried.
const POLICY_RETRY_DELAY: Duration = Duration::from_secs(1);
/// How long an event may be in a reaction before it is redelivered.
const POLICY_ACK_WAIT: Duration = Duration::from_secs(30);

/// Reacts to the events of one category.
pub trait Policy: Send + Sync + 'static {
    /// The events it reads.
    type Event: DomainEvent;
    /// Its name: the durable consumer `policy-<NAME>` keeps its place.
    const NAME: &'static str;
    /// The category it follows.
    const CATEGORY: &'static str;

    /// Reacts to one event, typically by sending commands with
    /// [`Reaction::send`]. An `Err` retries the event later; to give up on
    /// a refused command, return `Ok`.
    fn react(
        &self,
        event: Self::Event,
        reaction: &Reaction,
    ) -> impl Future<Output = std::result::Result<(), String>> + Send;
}

/// What a reaction may do: send commands caused by the event.
#[derive(Debug)]
pub struct Reaction {
    bus: CommandBus,
    event: RecordedEvent,
    sent: AtomicU32,
}

impl Reaction {
    /// The event being handled.
    pub fn event(&self) -> &RecordedEvent {
        &self.event
    }

    /// Its envelope.
    pub fn envelope(&self) -> &Envelope {
        &self.event.envelope
    }

    /// Sends a command caused by the event. Its id is the event's id plus
    /// the number of commands sent before in this reaction, so a reaction
    /// that runs again sends the same ids (reactions must send their
    /// commands in the same order each time).
    pub async fn send<A: Aggregate>(
        &self,
        id: &str,
        command: &A::Command,
    ) -> std::result::Result<Accepted, CommandError<A::Error>> {
        let n = self.sent.fetch_add(1, Ordering::Relaxed);
        let context = CommandContext {
            command_id: format!("{}-{n}", self.event.envelope.id),
            correlation_id: self.event.envelope.correlation_id.clone(),
        };
        self.bus.send_with::<A>(id, command, &context).await
    }
}

/// A running policy; dropping it stops it.
#[derive(Debug)]
pub struct PolicyRunner {
    task: JoinHandle<()>,
}

impl Drop for PolicyRunner {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl PolicyRunner {
    /// Starts `policy` on `store`'s category stream, sending its commands
    /// on `bus`; returns once its durable consumer exists.
    pub async fn start<P: Policy>(store: &EventStore, bus: &CommandBus, policy: P) -> Result<PolicyRunner> {
        check_token("policy name", P::NAME)?;
        store.ensure_category(P::CATEGORY).await?;
        let stream = store.stream_name(P::CATEGORY);
        let durable = format!("policy-{}", P::NAME);
        let config = ConsumerConfig {
            durable_name: durable.clone(),
            description: format!("herald-events policy {}", P::NAME),
            filter_subject: format!("{}.*", P::CATEGORY),
            deliver_policy: DeliverPolicy::All,
            ack_policy: AckPolicy::Explicit,
            ack_wait: nanos(POLICY_ACK_WAIT),
            max_ack_pending: POLICY_BATCH_MAX as i64 * 4,
            ..ConsumerConfig::default()
        };
        store.jetstream().create_consumer(&stream, config).await?;
        let store = store.clone();
        let bus = bus.clone();
        let task = tokio::spawn(async move {
            loop {
                // What is there now; if nothing, wait for the next one. A
                // long pull for a whole batch would sit on the first events
                // until the batch filled or the pull expired.
                let js = store.jetstream();
                let pulled = match js
                    .fetch(&stream, &durable, POLICY_BATCH_MAX, Duration::ZERO)
                    .await
                {
                    Ok(messages) if messages.is_empty() => {
                        js.fetch(&stream, &durable, 1, POLICY_PULL_EXPIRES).await
                    }
                    other => other,
                };
                let messages = match pulled {
                    Ok(messages) => messages,
                    Err(e) => {
                        tracing::warn!(error = %e, policy = P::NAME, "pulling events failed; retrying");
                        tokio::time::sleep(POLICY_RETRY_DELAY).await;
                        continue;
                    }
                };
                for message in messages {
                    react_to(&policy, &store, &bus, message).await;
                }
            }
        });
        Ok(PolicyRunner { task })
    }
}

async fn react_to<P: Policy>(policy: &P, store: &EventStore, bus: &CommandBus, message: JsMessage) {
    let event = match recorded(&message) {
        Ok(event) => event,
        Err(e) => {
            // Not an event this policy can ever read: do not retry it forever.
            tracing::error!(error = %e, policy = P::NAME, "unreadable event skipped");
            let _ = message.term();
            return;
        }
    };
    let typed: P::Event = match store.decode(&event) {
        Ok(typed) => typed,
        Err(e) => {
            tracing::error!(error = %e, policy = P::NAME, position = event.position, "undecodable event skipped");
            let _ = message.term();
            return;
        }
    };
    let reaction = Reaction {
        bus: bus.clone(),
        event,
        sent: AtomicU32::new(0),
    };
    match policy.react(typed, &reaction).await {
        Ok(()) => {
            let _ = message.ack();
        }
        Err(e) => {
            tracing::warn!(error = %e, policy = P::NAME, position = reaction.event.position, "reaction failed; retrying");
            let _ = message.nak(Some(POLICY_RETRY_DELAY));
        }
    }
}

/// A pulled message as a [`RecordedEvent`].
fn recorded(message: &JsMessage) -> std::result::Result<RecordedEvent, String> {
    let info: MessageInfo = message.info().map_err(|e| e.to_string())?;
    let envelope = Envelope::read(message.headers.as_ref())?;
    let aggregate = AggregateId::parse_subject(&message.subject).map_err(|e| e.to_string())?;
    Ok(RecordedEvent {
        aggregate,
        position: info.stream_seq,
        stored_at: info.timestamp,
        envelope,
        data: message.payload.clone(),
    })
}

fn nanos(duration: Duration) -> i64 {
    i64::try_from(duration.as_nanos()).unwrap_or(i64::MAX)
}
