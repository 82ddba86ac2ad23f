//! Atomic batch publish (ADR-50, nats-server 2.12+): messages carrying
//! `Nats-Batch-Id` and `Nats-Batch-Sequence` are staged per batch; the one
//! with `Nats-Batch-Commit: 1` checks every staged message's expectations
//! against the stream as it would be after the ones before it, then stores
//! them all with one [`Store::append_batch`](herald_storage::Store::append_batch)
//! (all or nothing, also across a crash) and answers with one PubAck
//! `{"stream","seq","batch","count"}`. Any failure abandons the batch and
//! stores nothing.

use herald_protocol::jetstream::ApiErrorCode as Code;
use herald_storage::BatchMessage;
use rustc_hash::FxHashMap;

use super::headers::MsgHeaders;
use super::stream::{store_error, StreamInner};
use super::{err, err_arg, JsError};

/// Messages one batch may hold (as nats-server).
pub(crate) const BATCH_MSGS_MAX: usize = 1000;
/// Unfinished batches one stream may hold at once (as nats-server).
pub(crate) const BATCHES_PER_STREAM_MAX: usize = 50;
/// A batch without a message for this long is abandoned.
pub(crate) const BATCH_IDLE_NS_MAX: u64 = 10_000_000_000;
/// Longest batch id.
const BATCH_ID_LEN_MAX: usize = 64;

/// A batch being received.
pub(crate) struct PendingBatch {
    msgs: Vec<Staged>,
    /// Monotonic ns of its last message.
    last_ns: u64,
}

struct Staged {
    subject: String,
    headers: Vec<u8>,
    payload: Vec<u8>,
}

/// What one message of a batch did.
pub(crate) enum BatchStep {
    /// Kept until the commit.
    Staged,
    /// The batch was stored: its last sequence and size.
    Committed { id: String, seq: u64, count: u64 },
}

/// Unfinished batches of one stream.
#[derive(Default)]
pub(crate) struct Batches {
    pending: FxHashMap<String, PendingBatch>,
}

impl Batches {
    /// Drops batches idle for too long. Returns their ids.
    pub fn abandon_idle(&mut self, now_mono_ns: u64) -> Vec<String> {
        let mut gone = Vec::new();
        self.pending.retain(|id, batch| {
            let keep = now_mono_ns.saturating_sub(batch.last_ns) < BATCH_IDLE_NS_MAX;
            if !keep {
                gone.push(id.clone());
            }
            keep
        });
        gone
    }
}

/// Handles one message that carries `Nats-Batch-Id`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn step(
    inner: &mut StreamInner,
    stream_name: &str,
    subject: &str,
    headers: &[u8],
    payload: &[u8],
    hdrs: &MsgHeaders<'_>,
    now_ns: i64,
    now_mono_ns: u64,
) -> Result<BatchStep, JsError> {
    if !inner.settings.allow_atomic {
        return Err(err(Code::AtomicPublishDisabled));
    }
    let id = match hdrs.batch_id.map(std::str::from_utf8) {
        Some(Ok(id)) if !id.is_empty() && id.len() <= BATCH_ID_LEN_MAX => id,
        _ => return Err(err(Code::AtomicPublishInvalidBatchId)),
    };
    let Some(seq) = hdrs
        .batch_seq
        .and_then(|s| std::str::from_utf8(s).ok()?.trim().parse::<u64>().ok())
        .filter(|&s| s > 0)
    else {
        inner.batches.pending.remove(id);
        return Err(err(Code::AtomicPublishMissingSeq));
    };
    let commit = match hdrs.batch_commit {
        None => false,
        Some(b"1") => true,
        Some(_) => {
            inner.batches.pending.remove(id);
            return Err(err(Code::AtomicPublishInvalidBatchCommit));
        }
    };
    if let Some(header) = unsupported_header(hdrs) {
        inner.batches.pending.remove(id);
        return Err(err_arg(Code::AtomicPublishUnsupportedHeader, header));
    }
    let pending = &mut inner.batches.pending;
    if seq == 1 {
        if !pending.contains_key(id) && pending.len() >= BATCHES_PER_STREAM_MAX {
            return Err(err(Code::AtomicPublishTooManyInflight));
        }
        pending.insert(
            id.to_owned(),
            PendingBatch {
                msgs: Vec::new(),
                last_ns: now_mono_ns,
            },
        );
    }
    let Some(batch) = pending.get_mut(id) else {
        return Err(err(Code::AtomicPublishIncompleteBatch));
    };
    if seq != batch.msgs.len() as u64 + 1 {
        // A gap (or a repeat): the batch cannot be completed.
        pending.remove(id);
        return Err(err(Code::AtomicPublishIncompleteBatch));
    }
    if batch.msgs.len() >= BATCH_MSGS_MAX {
        pending.remove(id);
        return Err(err_arg(Code::AtomicPublishTooLargeBatch, BATCH_MSGS_MAX));
    }
    batch.msgs.push(Staged {
        subject: subject.to_owned(),
        headers: headers.to_vec(),
        payload: payload.to_vec(),
    });
    batch.last_ns = now_mono_ns;
    if !commit {
        return Ok(BatchStep::Staged);
    }
    let batch = pending.remove(id).expect("looked up above");
    check_expectations(inner, stream_name, &batch.msgs)?;
    let messages: Vec<BatchMessage<'_>> = batch
        .msgs
        .iter()
        .map(|m| BatchMessage {
            subject: &m.subject,
            headers: &m.headers,
            payload: &m.payload,
        })
        .collect();
    let appended = inner.store.append_batch(&messages, now_ns).map_err(store_error)?;
    Ok(BatchStep::Committed {
        id: id.to_owned(),
        seq: appended.seq,
        count: messages.len() as u64,
    })
}

/// Headers a batch message may not carry.
fn unsupported_header(hdrs: &MsgHeaders<'_>) -> Option<&'static str> {
    if hdrs.msg_id.is_some() {
        Some("Nats-Msg-Id")
    } else if hdrs.expected_last_msg_id.is_some() {
        Some("Nats-Expected-Last-Msg-Id")
    } else if hdrs.rollup.is_some() {
        Some("Nats-Rollup")
    } else if hdrs.ttl.is_some() {
        Some("Nats-TTL")
    } else {
        None
    }
}

/// Checks every message's expectations, in order, against the stream as
/// it would be once the messages before it were stored.
fn check_expectations(inner: &StreamInner, stream_name: &str, msgs: &[Staged]) -> Result<(), JsError> {
    let state = inner.store.state();
    let mut last_of_subject: FxHashMap<&str, u64> = FxHashMap::default();
    for (i, m) in msgs.iter().enumerate() {
        let last_seq = state.last_seq + i as u64;
        let hdrs = MsgHeaders::scan(&m.headers);
        if inner
            .settings
            .max_msg_size
            .is_some_and(|max| m.headers.len() + m.payload.len() > max as usize)
        {
            return Err(err(Code::StreamMessageExceedsMaximum));
        }
        if hdrs.expected_stream.is_some_and(|s| s != stream_name.as_bytes()) {
            return Err(err(Code::StreamNotMatch));
        }
        hdrs.check_expected_sequences(&m.subject, last_seq, |on| match last_of_subject.get(on) {
            Some(&seq) => seq,
            None => inner.store.last_seq_of_subject(on).unwrap_or(0),
        })
        .map_err(|actual| err_arg(Code::StreamWrongLastSequence, actual))?;
        last_of_subject.insert(&m.subject, last_seq + 1);
    }
    Ok(())
}
