//! The `$JS.ACK.>` subscription: acknowledgements from clients, applied to
//! the consumer's state on the publishing task (no hop), then the consumer's
//! task is woken if the ack frees room or asks for a redelivery.

use std::sync::{Arc, Weak};

use bytes::Bytes;
use herald_core::consumer::{AckKind, AckOutcome, Exhausted};
use herald_protocol::jetstream::{AckBody, AckMetadata};

use super::monotonic_ns;
use super::settings::Retention;
use crate::publisher::{Effects, OutMsg};
use crate::router::{InMsg, InternalHandler};
use crate::ServerState;

/// The subscription to `$JS.ACK.>`.
pub(crate) struct Acks {
    pub state: Weak<ServerState>,
}

impl InternalHandler for Acks {
    fn on_message(&self, msg: &InMsg<'_>, effects: &mut Effects) {
        let Some(state) = self.state.upgrade() else {
            return;
        };
        let Ok(meta) = AckMetadata::parse(msg.subject) else {
            return;
        };
        let Some(consumer) = state.jetstream.consumer(meta.stream, meta.consumer) else {
            return;
        };
        let Ok(body) = AckBody::parse(msg.payload) else {
            tracing::debug!(consumer = meta.consumer, "unknown ack body ignored");
            return;
        };
        let (kind, next) = match body {
            AckBody::Ack => (AckKind::Ack, None),
            AckBody::Nak { delay } => (
                AckKind::Nak {
                    delay_ns: delay.filter(|&d| d > 0).map(|d| d as u64),
                },
                None,
            ),
            AckBody::Progress => (AckKind::Progress, None),
            AckBody::Term { .. } => (AckKind::Term, None),
            AckBody::Next(request) => (AckKind::Ack, Some(request)),
        };
        // Only redelivery deadlines need the time; plain acks skip the clock.
        let now = match kind {
            AckKind::Ack | AckKind::Term => 0,
            AckKind::Nak { .. } | AckKind::Progress => monotonic_ns(),
        };
        let mut out = Vec::new();
        let (outcome, acked_up_to, unblocked) = {
            let mut inner = consumer.inner.lock();
            inner.active = true;
            let was_blocked = inner.machine.is_blocked();
            let outcome = inner.machine.ack(meta.stream_seq, kind, now);
            let unblocked = was_blocked && !inner.machine.is_blocked();
            match outcome {
                AckOutcome::Terminated { deliveries } => {
                    inner.dirty = true;
                    let gone = Exhausted {
                        stream_seq: meta.stream_seq,
                        deliveries,
                    };
                    inner.dead_letter(&consumer, gone, "terminated", &mut out);
                }
                AckOutcome::Applied { .. } => inner.dirty = true,
                AckOutcome::NotPending => {}
            }
            if msg.reply.is_some() {
                // The client waits for confirmation: make the ack survive a
                // crash before confirming it.
                super::consumer_task::save_state(&consumer, &mut inner);
            }
            (outcome, inner.machine.ack_floor().stream_seq, unblocked)
        };
        let removed =
            matches!(kind, AckKind::Ack | AckKind::Term) && !matches!(outcome, AckOutcome::NotPending);
        if removed {
            remove_if_consumed(&state, &consumer.stream, meta.stream_seq, acked_up_to);
        }
        effects.send.extend(out);
        if let Some(reply) = msg.reply {
            // An ack that asks for confirmation (double ack).
            effects
                .send
                .push(OutMsg::new(Bytes::copy_from_slice(reply), Bytes::new()));
        }
        if let Some(request) = next {
            if let Some(reply) = msg.reply {
                let _ = request;
                let body = msg.payload.strip_prefix(b"+NXT").unwrap_or_default();
                if let Err(line) = super::api::queue_pull(&consumer, Bytes::copy_from_slice(reply), body) {
                    tracing::debug!(consumer = %consumer.name, %line, "+NXT refused");
                }
            }
        }
        // The consumer's task only has new work if the ack made room under
        // max_ack_pending or asked for a redelivery.
        if unblocked || matches!(kind, AckKind::Nak { .. } | AckKind::Progress) {
            consumer.waker.notify_one();
        }
    }
}

/// Work-queue and interest retention: removes a message once the consumers
/// that must see it have acknowledged it.
fn remove_if_consumed(state: &ServerState, stream: &Arc<super::Stream>, stream_seq: u64, _floor: u64) {
    match stream.retention() {
        Retention::Limits => {}
        Retention::WorkQueue => {
            let mut inner = stream.inner.lock();
            let _ = inner.store.delete(stream_seq);
        }
        Retention::Interest => {
            let subject = match stream.inner.lock().store.get(stream_seq) {
                Ok(Some(msg)) => msg.subject,
                _ => return,
            };
            let all_acked = state.jetstream.consumers_of(&stream.name).iter().all(|consumer| {
                let inner = consumer.inner.lock();
                !inner.settings.filter.matches(&subject)
                    || inner.machine.ack_floor().stream_seq >= stream_seq
                    || (stream_seq < inner.machine.next_stream_seq()
                        && inner.machine.pending(stream_seq).is_none())
            });
            if all_acked {
                let _ = stream.inner.lock().store.delete(stream_seq);
            }
        }
    }
}

/// The subscription to `$JS.FC.>`: clients' answers to flow control
/// requests, which let a stalled push consumer go on.
pub(crate) struct FlowControl {
    pub state: Weak<ServerState>,
}

impl InternalHandler for FlowControl {
    fn on_message(&self, msg: &InMsg<'_>, _effects: &mut Effects) {
        let Some(state) = self.state.upgrade() else {
            return;
        };
        let Ok(subject) = std::str::from_utf8(msg.subject) else {
            return;
        };
        let Some(rest) = subject.strip_prefix(super::consumer::FLOW_CONTROL_PREFIX) else {
            return;
        };
        let mut tokens = rest.split('.');
        let (Some(stream), Some(name)) = (tokens.next(), tokens.next()) else {
            return;
        };
        let Some(consumer) = state.jetstream.consumer(stream, name) else {
            return;
        };
        let mut inner = consumer.inner.lock();
        if inner.flow_control_waiting.as_deref() == Some(subject) {
            inner.flow_control_waiting = None;
            drop(inner);
            consumer.waker.notify_one();
        }
    }
}
