//! The task of one consumer: waits for something to do (new messages, a
//! pull request, an ack, a deadline), runs the consumer's pump, sends what
//! it produced and saves the consumer's state when it changed.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::consumer::{ConsumerInner, ConsumerShared};
use super::{monotonic_ns, persist};
use crate::publisher::Publisher;
use crate::ServerState;

/// How often a push consumer without a subscriber checks for one, and the
/// longest a consumer sleeps without a deadline.
const IDLE_CHECK_MS: u64 = 100;
/// Shortest time between two saves of a consumer's state by its task. Acks
/// that ask for confirmation are saved at once by the ack handler; the rest
/// may be redelivered after a crash (at-least-once), never lost.
const SAVE_INTERVAL_NS: u64 = 50_000_000;

/// Runs until the consumer is deleted or the server shuts down.
pub(crate) async fn run(
    state: Arc<ServerState>,
    consumer: Arc<ConsumerShared>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut publisher = Publisher::new(state.clone());
    let mut out = Vec::new();
    let mut last_save_ns = 0;
    loop {
        if consumer.deleted.load(Ordering::Acquire) {
            return;
        }
        let now = monotonic_ns();
        let wake_at = {
            let mut inner = consumer.inner.lock();
            if let Some(subject) = inner.settings.deliver_subject.clone() {
                let (_, matched) = state.router.matches(subject.as_bytes());
                let bound = !matched.is_empty();
                if bound {
                    inner.last_active_ns = now;
                    if !inner.push_bound {
                        // A new subscriber never saw the old request.
                        inner.flow_control_waiting = None;
                    }
                }
                inner.push_bound = bound;
            }
            if std::mem::take(&mut inner.active) {
                inner.last_active_ns = now;
            }
            inner.pump(&consumer, now, &mut out);
            let idle = !inner.settings.durable
                && inner.settings.inactive_threshold_ns > 0
                && inner.waiting.is_empty()
                && !inner.push_bound
                && now.saturating_sub(inner.last_active_ns) > inner.settings.inactive_threshold_ns;
            if idle {
                drop(inner);
                tracing::debug!(consumer = %consumer.name, "inactive ephemeral consumer removed");
                state.jetstream.forget_consumer(&consumer);
                return;
            }
            let mut wake = inner.next_wake_ns();
            if inner.dirty {
                if now.saturating_sub(last_save_ns) >= SAVE_INTERVAL_NS {
                    last_save_ns = now;
                    save_state(&consumer, &mut inner);
                } else {
                    let at = last_save_ns + SAVE_INTERVAL_NS;
                    wake = Some(wake.map_or(at, |w| w.min(at)));
                }
            }
            wake
        };
        if !out.is_empty() {
            publisher.send_all(&out, false);
            out.clear();
        }
        if consumer.inner.lock().more_ready {
            // A backlog: let the connection tasks write what was just sent,
            // then go on with it.
            tokio::task::yield_now().await;
            continue;
        }
        let idle = Duration::from_millis(IDLE_CHECK_MS);
        let sleep_for = wake_at.map_or(idle, |at| {
            Duration::from_nanos(at.saturating_sub(monotonic_ns())).min(idle)
        });
        tokio::select! {
            _ = consumer.waker.notified() => {}
            _ = tokio::time::sleep(sleep_for) => {}
            _ = shutdown.changed() => {
                save_state(&consumer, &mut consumer.inner.lock());
                return;
            }
        }
    }
}

/// Saves the consumer's state if it changed. Called with the consumer
/// locked, so saves never interleave.
pub(crate) fn save_state(consumer: &ConsumerShared, inner: &mut ConsumerInner) {
    if !std::mem::take(&mut inner.dirty) {
        return;
    }
    let Some(dir) = &consumer.dir else {
        return;
    };
    if let Err(e) = persist::save_consumer_state(dir, &inner.machine.save()) {
        tracing::error!(consumer = %consumer.name, error = %e, "cannot save consumer state");
    }
}
