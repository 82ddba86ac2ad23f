//! One consumer as the server holds it: the core state machine
//! ([`herald_core::consumer::Consumer`]) plus what needs the stream and the
//! network — waiting pull requests, building deliveries with their
//! `$JS.ACK` reply subjects, status messages, heartbeats, dead letters.
//!
//! [`ConsumerInner::pump`] delivers as much as it may and returns the
//! messages to send; the consumer's task ([`super::consumer_task`]) calls it
//! whenever it is woken (new messages, a pull request, an ack, a deadline).

use std::cell::Cell;
use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use bytes::Bytes;
use herald_core::consumer::{Consumer, Exhausted, Next};
use herald_protocol::jetstream::ConsumerConfig;
use herald_storage::StoredMessage;
use parking_lot::Mutex;
use tokio::sync::Notify;

use super::settings::ConsumerSettings;
use super::stream::Stream;
use crate::publisher::OutMsg;

/// Messages one pump delivers at most, so one busy consumer cannot keep
/// its task (and the stream lock) for long, and the first deliveries of a
/// long backlog leave while the next ones are read: the task sends each
/// chunk and pumps again at once while `more_ready` says so.
pub(crate) const PUMP_DELIVERIES_MAX: usize = 256;

/// A consumer shared between its task, the ack handler and the API.
pub(crate) struct ConsumerShared {
    pub stream: Arc<Stream>,
    pub name: String,
    /// Unix nanoseconds of creation.
    pub created_ns: i64,
    /// Where its state is saved; `None` for memory streams.
    pub dir: Option<PathBuf>,
    pub waker: Arc<Notify>,
    pub inner: Mutex<ConsumerInner>,
    /// Set when deleted; its task exits.
    pub deleted: AtomicBool,
}

/// The mutable part of a consumer.
pub(crate) struct ConsumerInner {
    pub config: ConsumerConfig,
    pub settings: ConsumerSettings,
    pub machine: Consumer,
    pub waiting: VecDeque<PullRequest>,
    /// State changed since it was last saved.
    pub dirty: bool,
    /// Monotonic ns of the last delivery or heartbeat to the push subject.
    pub last_push_ns: u64,
    /// Monotonic ns of the last sign of a client (pull, ack, interest).
    pub last_active_ns: u64,
    /// A client acknowledged something since the task last looked (the ack
    /// path does not read the clock).
    pub active: bool,
    /// Unix ns of the last delivery, for consumer info.
    pub last_delivery_unix_ns: i64,
    /// Messages handed to the dead-letter path (max deliveries or term).
    pub dead_lettered: u64,
    /// Push consumer has a subscriber on its deliver subject.
    pub push_bound: bool,
    /// Deliver policy `last_per_subject`: up to this stream sequence only
    /// the last message of each subject is delivered.
    pub last_per_subject_until: u64,
    /// Replay `original`: (stored time, monotonic time) of the last delivery.
    pub replay_mark: Option<(i64, u64)>,
    /// Replay `original`: when the next message is due.
    pub replay_wake_ns: Option<u64>,
    /// Push flow control: bytes delivered since the last request.
    pub flow_control_bytes: u64,
    /// Push flow control: the reply subject of the request the client has
    /// not answered yet; no message is delivered until it does.
    pub flow_control_waiting: Option<String>,
    /// The last pump stopped at [`PUMP_DELIVERIES_MAX`] with messages left.
    pub more_ready: bool,
    /// The last count of undelivered matching messages, corrected on the
    /// next count instead of taken again; cleared when the filter changes.
    pub pending_count: Cell<Option<PendingCount>>,
}

/// A count of the stream's messages in `[from, through]` that match the
/// consumer's filter, valid while the store has removed nothing since
/// (`removals`): later counts add what was appended and subtract what the
/// consumer moved past, in time proportional to those ranges. A count from
/// scratch passes over every subject of the stream for a wildcard filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PendingCount {
    count: u64,
    from: u64,
    through: u64,
    removals: u64,
}

/// Bytes a flow-controlled push consumer delivers between flow control
/// requests.
const FLOW_CONTROL_BYTES_MAX: u64 = 1024 * 1024;
/// Reply subjects of flow control requests: `$JS.FC.<stream>.<consumer>.<n>`.
pub(crate) const FLOW_CONTROL_PREFIX: &str = "$JS.FC.";

/// A waiting `CONSUMER.MSG.NEXT` request.
pub(crate) struct PullRequest {
    pub reply: Bytes,
    pub batch_left: u64,
    /// Remaining byte budget; `None` for no limit.
    pub bytes_left: Option<u64>,
    /// Monotonic ns after which it ends with 408.
    pub expires_ns: Option<u64>,
    pub no_wait: bool,
    pub heartbeat_ns: u64,
    pub next_heartbeat_ns: u64,
    /// Messages delivered to it so far.
    pub delivered: u64,
}

/// What became of a message offered to the target.
enum Sent {
    Delivered,
    /// The pull request ended (byte budget); the message waits.
    Refused,
}

/// Where a delivery goes.
enum Target {
    Push(Bytes),
    Pull,
}

impl ConsumerInner {
    /// Delivers what may be delivered now. Returns the messages to send.
    pub fn pump(&mut self, shared: &ConsumerShared, now_ns: u64, out: &mut Vec<OutMsg>) {
        let exhausted = self.machine.expire(now_ns);
        if !exhausted.is_empty() {
            self.dirty = true;
            for gone in exhausted {
                self.dead_letter(shared, gone, "max_deliveries", out);
            }
        }
        self.end_expired_pulls(now_ns, out);
        let target = match &self.settings.deliver_subject {
            // Stalled: the client has not answered the last flow control
            // request (its heartbeats say so, so it can answer again).
            Some(_) if self.flow_control_waiting.is_some() => None,
            Some(subject) if self.push_bound => Some(Target::Push(Bytes::from(subject.clone()))),
            Some(_) => None,
            None => Some(Target::Pull),
        };
        if let Some(target) = target {
            self.deliver(shared, &target, now_ns, out);
        }
        self.heartbeats(shared, now_ns, out);
    }

    fn deliver(&mut self, shared: &ConsumerShared, target: &Target, now_ns: u64, out: &mut Vec<OutMsg>) {
        let mut delivered = 0;
        // Set again below if this pump reaches its bound.
        self.more_ready = false;
        // Matching messages not yet delivered (the ack subject's `pending`).
        let mut undelivered: Option<u64> = None;
        while delivered < PUMP_DELIVERIES_MAX {
            if matches!(target, Target::Pull) && self.waiting.is_empty() {
                return;
            }
            if self.flow_control_waiting.is_some() {
                // A flow control request just went out: wait for its answer.
                break;
            }
            let Some(next) = self.machine.next() else {
                break;
            };
            let found = {
                let mut stream = shared.stream.inner.lock();
                if undelivered.is_none() {
                    // Counted once per pump, then kept up to date.
                    undelivered = Some(self.undelivered(&mut stream));
                }
                match next {
                    Next::Redeliver { stream_seq } => match stream.store.get(stream_seq) {
                        Ok(Some(msg)) => Some(msg),
                        Ok(None) => {
                            self.machine.skip(stream_seq);
                            self.dirty = true;
                            continue;
                        }
                        Err(e) => {
                            tracing::error!(stream = %shared.stream.name, error = %e, "cannot read message");
                            return;
                        }
                    },
                    Next::New { from_stream_seq } => {
                        match stream.store.next_matching(from_stream_seq, &self.settings.filter) {
                            Ok(Some(msg))
                                if msg.seq <= self.last_per_subject_until
                                    && stream.store.last_seq_of_subject(&msg.subject) != Some(msg.seq) =>
                            {
                                self.machine.skip_to(msg.seq + 1);
                                continue;
                            }
                            Ok(Some(msg)) => Some(msg),
                            Ok(None) => {
                                let last = stream.store.state().last_seq;
                                self.machine.skip_to(last + 1);
                                None
                            }
                            Err(e) => {
                                tracing::error!(stream = %shared.stream.name, error = %e, "cannot read message");
                                return;
                            }
                        }
                    }
                }
            };
            let Some(msg) = found else {
                break;
            };
            if self.settings.replay_original {
                if let Some((last_time_ns, last_mono_ns)) = self.replay_mark {
                    let gap = msg.time_ns.saturating_sub(last_time_ns).max(0) as u64;
                    if now_ns < last_mono_ns + gap {
                        self.replay_wake_ns = Some(last_mono_ns + gap);
                        break;
                    }
                }
                self.replay_mark = Some((msg.time_ns, now_ns));
                self.replay_wake_ns = None;
            }
            let new = matches!(next, Next::New { .. });
            let mut pending = undelivered.unwrap_or(0);
            if new {
                pending = pending.saturating_sub(1);
            }
            match self.send(shared, target, msg, pending, now_ns, out) {
                Sent::Delivered => {
                    if new {
                        undelivered = Some(pending);
                    }
                }
                Sent::Refused => {}
            }
            delivered += 1;
        }
        if delivered > 0 {
            self.last_delivery_unix_ns = super::unix_now_ns();
        }
        if delivered >= PUMP_DELIVERIES_MAX {
            // Stopped by the bound, not for want of messages: the task pumps
            // again right after sending these, and no_wait requests wait.
            self.more_ready = true;
            return;
        }
        // Nothing (more) to deliver now: no_wait requests end here.
        if matches!(target, Target::Pull) {
            while let Some(pos) = self.waiting.iter().position(|r| r.no_wait) {
                if let Some(request) = self.waiting.remove(pos) {
                    out.push(status(&request.reply, b"NATS/1.0 404 No Messages\r\n\r\n"));
                }
            }
        }
    }

    /// Sends one message to the target.
    fn send(
        &mut self,
        shared: &ConsumerShared,
        target: &Target,
        msg: StoredMessage,
        pending: u64,
        now_ns: u64,
        out: &mut Vec<OutMsg>,
    ) -> Sent {
        let size = (msg.subject.len() + msg.headers.len() + msg.payload.len()) as u64;
        let to = match target {
            Target::Push(subject) => subject.clone(),
            Target::Pull => {
                let request = self.waiting.front_mut().expect("checked non-empty");
                if let Some(left) = request.bytes_left {
                    if size > left {
                        // The request ends here; the message waits for the next.
                        let request = self.waiting.pop_front().expect("front exists");
                        out.push(status(
                            &request.reply,
                            b"NATS/1.0 409 Message Size Exceeds MaxBytes\r\n\r\n",
                        ));
                        return Sent::Refused;
                    }
                    request.bytes_left = Some(left - size);
                }
                request.batch_left -= 1;
                request.delivered += 1;
                let reply = request.reply.clone();
                if request.batch_left == 0 || request.bytes_left == Some(0) {
                    self.waiting.pop_front();
                }
                reply
            }
        };
        let (consumer_seq, deliveries) = self.machine.delivered_msg(msg.seq, now_ns);
        self.dirty = true;
        self.last_push_ns = now_ns;
        let reply = ack_subject(
            &shared.stream.name,
            &shared.name,
            deliveries,
            msg.seq,
            consumer_seq,
            msg.time_ns,
            pending,
        );
        let (headers, payload) = if self.settings.headers_only {
            let mut block = open_header_block(&msg.headers);
            block.extend_from_slice(format!("Nats-Msg-Size: {}\r\n\r\n", msg.payload.len()).as_bytes());
            (Bytes::from(block), Bytes::new())
        } else {
            (msg.headers, msg.payload)
        };
        let to_push = matches!(target, Target::Push(_));
        out.push(OutMsg {
            subject: to.clone(),
            shown: Some(Bytes::from(msg.subject)),
            reply: Some(reply.into()),
            headers,
            payload,
        });
        if to_push && self.settings.flow_control {
            self.flow_control_bytes += size;
            if self.flow_control_bytes >= FLOW_CONTROL_BYTES_MAX {
                self.flow_control_bytes = 0;
                let reply = format!(
                    "{FLOW_CONTROL_PREFIX}{}.{}.{}",
                    shared.stream.name,
                    shared.name,
                    fastrand::u32(..)
                );
                self.flow_control_waiting = Some(reply.clone());
                out.push(OutMsg {
                    reply: Some(reply.into()),
                    headers: Bytes::from_static(b"NATS/1.0 100 FlowControl Request\r\n\r\n"),
                    ..OutMsg::new(to, Bytes::new())
                });
            }
        }
        Sent::Delivered
    }

    /// Messages not yet delivered that match the filter (for info).
    pub fn num_pending(&self, shared: &ConsumerShared) -> u64 {
        self.undelivered(&mut shared.stream.inner.lock())
    }

    /// Messages not yet delivered that match the filter, with the stream
    /// locked: for `last_per_subject`, only the last message of each subject
    /// counts up to the boundary.
    fn undelivered(&self, stream: &mut super::stream::StreamInner) -> u64 {
        let from = self.machine.next_stream_seq();
        let all = herald_storage::SubjectFilter::all();
        // A filter that takes in every subject of the stream counts like no
        // filter: from the index totals instead of a pass over the subjects
        // (this count is taken for every delivery, for its ack subject).
        let filter = if self.covers_stream(stream) {
            &all
        } else {
            &self.settings.filter
        };
        let until = self.last_per_subject_until;
        if until < from {
            if filter.is_all() {
                return stream.store.count_matching(from, filter);
            }
            return self.count_kept_up(stream, from);
        }
        let lasts = stream
            .store
            .subject_counts(filter)
            .iter()
            .filter_map(|(subject, _)| stream.store.last_seq_of_subject(subject))
            .filter(|&seq| seq >= from && seq <= until)
            .count() as u64;
        lasts + stream.store.count_matching(until + 1, filter)
    }

    /// [`Self::undelivered`] for a filter narrower than the stream: the last
    /// count corrected, or a count from scratch when the store removed
    /// messages since or the consumer moved back.
    fn count_kept_up(&self, stream: &mut super::stream::StreamInner, from: u64) -> u64 {
        let filter = &self.settings.filter;
        let last = stream.store.state().last_seq;
        let removals = stream.store.removals();
        let count = match self.pending_count.get() {
            Some(kept) if kept.removals == removals && kept.from <= from && kept.through <= last => {
                // Moved past: [kept.from, from) within what was counted.
                let passed = stream
                    .store
                    .count_matching_range(kept.from, from.min(kept.through + 1), filter);
                // Appended: (kept.through, last] from `from` on.
                let appended =
                    stream
                        .store
                        .count_matching_range(from.max(kept.through + 1), last + 1, filter);
                // `passed` is part of `kept.count` (checked below in debug
                // builds); saturating so a broken count stays a count.
                kept.count.saturating_sub(passed) + appended
            }
            _ => stream.store.count_matching(from, filter),
        };
        debug_assert_eq!(
            count,
            stream.store.count_matching(from, filter),
            "pending count kept up to date diverged from a recount"
        );
        self.pending_count.set(Some(PendingCount {
            count,
            from,
            through: last,
            removals,
        }));
        count
    }

    /// Whether the consumer's filter selects every subject the stream
    /// captures (checked against the stream's current subjects, which an
    /// update may change).
    fn covers_stream(&self, stream: &super::stream::StreamInner) -> bool {
        let patterns = self.settings.filter.patterns();
        !self.settings.filter.is_all()
            && !stream.settings.subjects.is_empty()
            && stream
                .settings
                .subjects
                .iter()
                .all(|subject| patterns.iter().any(|p| herald_core::pattern_covers(p, subject)))
    }

    fn end_expired_pulls(&mut self, now_ns: u64, out: &mut Vec<OutMsg>) {
        self.waiting.retain(|request| match request.expires_ns {
            Some(at) if at <= now_ns => {
                out.push(status(&request.reply, b"NATS/1.0 408 Request Timeout\r\n\r\n"));
                false
            }
            _ => true,
        });
    }

    fn heartbeats(&mut self, shared: &ConsumerShared, now_ns: u64, out: &mut Vec<OutMsg>) {
        let delivered = self.machine.delivered();
        let stalled = self.flow_control_waiting.as_deref();
        let heartbeat = |to: &[u8], stalled: Option<&str>| {
            let block = herald_protocol::jetstream::headers::idle_heartbeat(
                delivered.consumer_seq,
                delivered.stream_seq,
                stalled,
            );
            OutMsg {
                subject: Bytes::copy_from_slice(to),
                shown: None,
                reply: None,
                headers: block.into(),
                payload: Bytes::new(),
            }
        };
        let every = self.settings.idle_heartbeat_ns;
        if every > 0 && self.push_bound {
            if let Some(subject) = &self.settings.deliver_subject {
                if now_ns.saturating_sub(self.last_push_ns) >= every {
                    out.push(heartbeat(subject.as_bytes(), stalled));
                    self.last_push_ns = now_ns;
                }
            }
        }
        for request in &mut self.waiting {
            if request.heartbeat_ns > 0 && request.next_heartbeat_ns <= now_ns {
                out.push(heartbeat(&request.reply, None));
                request.next_heartbeat_ns = now_ns + request.heartbeat_ns;
            }
        }
        let _ = shared;
    }

    /// When the consumer's task must wake up next without being notified.
    pub fn next_wake_ns(&self) -> Option<u64> {
        let mut wake = self.machine.next_deadline();
        let mut earliest = |t: u64| wake = Some(wake.map_or(t, |w| w.min(t)));
        for request in &self.waiting {
            if let Some(at) = request.expires_ns {
                earliest(at);
            }
            if request.heartbeat_ns > 0 {
                earliest(request.next_heartbeat_ns);
            }
        }
        if self.settings.idle_heartbeat_ns > 0 && self.settings.deliver_subject.is_some() {
            earliest(self.last_push_ns + self.settings.idle_heartbeat_ns);
        }
        if let Some(at) = self.replay_wake_ns {
            earliest(at);
        }
        wake
    }

    /// Publishes the max-deliveries or terminated advisory and, if the
    /// consumer names a dead-letter subject, the message itself there.
    pub fn dead_letter(
        &mut self,
        shared: &ConsumerShared,
        gone: Exhausted,
        why: &str,
        out: &mut Vec<OutMsg>,
    ) {
        self.dead_lettered += 1;
        let stream = &shared.stream.name;
        let (kind, subject_kind) = if why == "max_deliveries" {
            ("io.nats.jetstream.advisory.v1.max_deliver", "MAX_DELIVERIES")
        } else {
            ("io.nats.jetstream.advisory.v1.terminated", "MSG_TERMINATED")
        };
        let advisory = serde_json::json!({
            "type": kind,
            "id": format!("{:016x}", fastrand::u64(..)),
            "timestamp": herald_protocol::jetstream::Timestamp::from_unix_nanos(super::unix_now_ns()).to_rfc3339(),
            "stream": stream,
            "consumer": shared.name,
            "stream_seq": gone.stream_seq,
            "deliveries": gone.deliveries,
        });
        out.push(OutMsg::new(
            format!(
                "$JS.EVENT.ADVISORY.CONSUMER.{subject_kind}.{stream}.{}",
                shared.name
            ),
            serde_json::to_vec(&advisory).unwrap_or_default(),
        ));
        let Some(dead_letter_subject) = self.settings.dead_letter_subject.clone() else {
            return;
        };
        let msg = match shared.stream.inner.lock().store.get(gone.stream_seq) {
            Ok(Some(msg)) => msg,
            _ => return,
        };
        let mut block = open_header_block(&msg.headers);
        block.extend_from_slice(
            format!(
                "Herald-Original-Subject: {}\r\nHerald-Original-Stream: {stream}\r\nHerald-Original-Sequence: {}\r\nHerald-Deliveries: {}\r\nHerald-Dead-Letter-Reason: {why}\r\n\r\n",
                msg.subject, msg.seq, gone.deliveries
            )
            .as_bytes(),
        );
        out.push(OutMsg {
            subject: dead_letter_subject.into(),
            shown: None,
            reply: None,
            headers: block.into(),
            payload: msg.payload,
        });
    }
}

/// A stored header block without its final blank line, ready for more
/// `Name: value` lines (a bare version line when the message had none).
/// Blocks are whatever a client sent, so nothing about their ending is
/// assumed.
fn open_header_block(headers: &[u8]) -> Vec<u8> {
    if headers.is_empty() {
        return b"NATS/1.0\r\n".to_vec();
    }
    let mut block = headers.to_vec();
    while block.ends_with(b"\r\n") {
        block.truncate(block.len() - 2);
    }
    block.extend_from_slice(b"\r\n");
    block
}

/// A status message (pull responses) to `reply`.
fn status(reply: &[u8], block: &'static [u8]) -> OutMsg {
    OutMsg {
        subject: Bytes::copy_from_slice(reply),
        shown: None,
        reply: None,
        headers: Bytes::from_static(block),
        payload: Bytes::new(),
    }
}

/// The `$JS.ACK` reply subject of a delivery, in the 9-token form clients
/// parse: stream, consumer, deliveries, stream seq, consumer seq, time,
/// pending.
pub(crate) fn ack_subject(
    stream: &str,
    consumer: &str,
    deliveries: u64,
    stream_seq: u64,
    consumer_seq: u64,
    time_ns: i64,
    pending: u64,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(24 + stream.len() + consumer.len() + 5 * 20);
    out.extend_from_slice(b"$JS.ACK.");
    out.extend_from_slice(stream.as_bytes());
    out.push(b'.');
    out.extend_from_slice(consumer.as_bytes());
    let mut number = itoa::Buffer::new();
    for n in [deliveries, stream_seq, consumer_seq] {
        out.push(b'.');
        out.extend_from_slice(number.format(n).as_bytes());
    }
    out.push(b'.');
    out.extend_from_slice(number.format(time_ns).as_bytes());
    out.push(b'.');
    out.extend_from_slice(number.format(pending).as_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::open_header_block;

    #[test]
    fn header_blocks_of_any_shape_are_reopened_without_panicking() {
        assert_eq!(open_header_block(b""), b"NATS/1.0\r\n");
        assert_eq!(
            open_header_block(b"NATS/1.0\r\nA: b\r\n\r\n"),
            b"NATS/1.0\r\nA: b\r\n"
        );
        assert_eq!(open_header_block(b"x"), b"x\r\n");
        assert_eq!(open_header_block(b"\r\n"), b"\r\n");
    }
}
