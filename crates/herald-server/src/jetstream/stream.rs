//! One stream: its store, its deduplication window, the checks a publish
//! must pass (expected stream, last sequence, last message id, last
//! sequence per subject), and committing what was written before PubAcks
//! leave.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use herald_core::{DedupWindow, DEDUP_IDS_MAX};
use herald_protocol::jetstream::{ApiErrorCode as Code, PubAck, StreamConfig};
use herald_storage::{Purge, Store, StoreError, SubjectFilter};
use parking_lot::Mutex;
use tokio::sync::Notify;

use super::batch::{self, BatchStep, Batches};
use super::commit::{Committer, SendFn};
use super::headers::MsgHeaders;
use super::settings::{Retention, StreamSettings, SyncPolicy};
use super::{err, err_arg, monotonic_ns, unix_now_ns, JsError};
use crate::publisher::Effects;
use crate::publisher::{Commit, OutMsg};
use crate::router::{InMsg, InternalHandler, InternalSub};

/// A stream as the server holds it.
pub(crate) struct Stream {
    pub name: String,
    /// Unix nanoseconds of creation.
    pub created_ns: i64,
    /// Where its files live; `None` for memory storage.
    pub dir: Option<PathBuf>,
    pub inner: Mutex<StreamInner>,
    /// The consumers' wakers (notified when messages are committed) and
    /// filters (interest retention keeps only messages some consumer wants).
    pub wakers: Mutex<Vec<(Arc<Notify>, SubjectFilter)>>,
    /// Group commit for `sync: always`.
    committer: OnceLock<Committer>,
    /// Publish outcomes since start, for monitoring.
    pub counters: PublishCounters,
    /// Setting `no_ack`, readable without the lock on the publish path.
    pub no_ack: AtomicBool,
    /// Retention policy; an update may not change it.
    retention: Retention,
}

/// Publish outcomes of one stream.
#[derive(Default)]
pub(crate) struct PublishCounters {
    pub stored: AtomicU64,
    pub duplicates: AtomicU64,
    pub rejected: AtomicU64,
}

/// The mutable part of a stream, behind its lock (never held across an
/// await; held briefly by publishers, consumers and API requests).
pub(crate) struct StreamInner {
    pub config: StreamConfig,
    pub settings: StreamSettings,
    pub store: Box<dyn Store>,
    dedup: DedupWindow,
    last_msg_id: Option<Box<str>>,
    /// The router subscriptions that capture this stream's subjects.
    pub captures: Vec<Arc<InternalSub>>,
    /// Something was appended since the last write-out.
    dirty: bool,
    /// Per-message TTLs (`Nats-TTL`): (expiry, Unix ns; sequence), soonest first.
    ttl_expiries: BinaryHeap<Reverse<(i64, u64)>>,
    /// Atomic batches being received.
    pub batches: Batches,
}

/// What a publish did.
pub(crate) enum Published {
    /// Stored (or recognised as a duplicate).
    Stored(Stored),
    /// Kept as part of an atomic batch, not stored yet.
    Staged,
    /// The last message of an atomic batch: the whole batch was stored.
    Committed { id: String, seq: u64, count: u64 },
}

/// A stored (or duplicate) publish.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stored {
    pub seq: u64,
    pub duplicate: bool,
}

impl Stream {
    pub fn new(
        name: String,
        created_ns: i64,
        dir: Option<PathBuf>,
        config: StreamConfig,
        settings: StreamSettings,
        store: Box<dyn Store>,
        send: SendFn,
    ) -> Arc<Stream> {
        let dedup = DedupWindow::new(settings.duplicate_window_ns, DEDUP_IDS_MAX);
        // File streams get a group commit thread even when their policy is
        // not `always` now: an update may switch it on.
        let memory = settings.memory;
        let no_ack = settings.no_ack;
        let retention = settings.retention;
        let stream = Arc::new(Stream {
            name,
            created_ns,
            dir,
            inner: Mutex::new(StreamInner {
                config,
                settings,
                store,
                dedup,
                last_msg_id: None,
                captures: Vec::new(),
                dirty: false,
                ttl_expiries: BinaryHeap::new(),
                batches: Batches::default(),
            }),
            wakers: Mutex::new(Vec::new()),
            committer: OnceLock::new(),
            counters: PublishCounters::default(),
            no_ack: AtomicBool::new(no_ack),
            retention,
        });
        stream.rebuild_dedup();
        if !memory {
            let _ = stream
                .committer
                .set(Committer::new(Arc::downgrade(&stream), send));
        }
        stream
    }

    /// Refills the deduplication window from the messages stored within it,
    /// and the TTL schedule from every message with a `Nats-TTL` (after a
    /// restart). Scans header sections only.
    fn rebuild_dedup(&self) {
        let mut inner = self.inner.lock();
        let window = inner.settings.duplicate_window_ns;
        let ttls = inner.settings.allow_msg_ttl;
        if window == 0 && !ttls {
            return;
        }
        let now = unix_now_ns();
        let window_from_ns = now.saturating_sub(window.min(i64::MAX as u64) as i64);
        let from_seq = if ttls {
            inner.store.state().first_seq
        } else {
            match inner.store.seq_at_time(window_from_ns) {
                Ok(seq) => seq,
                Err(_) => return,
            }
        };
        let inner = &mut *inner;
        let (dedup, last_msg_id, expiries) =
            (&mut inner.dedup, &mut inner.last_msg_id, &mut inner.ttl_expiries);
        let scanned = inner.store.scan_headers(from_seq, &mut |seq, time_ns, headers| {
            let found = MsgHeaders::scan(headers);
            if time_ns >= window_from_ns && window > 0 {
                if let Some(Ok(id)) = found.msg_id.map(std::str::from_utf8) {
                    dedup.insert(id, seq, time_ns);
                    *last_msg_id = Some(id.into());
                }
            }
            if let Some(ttl_s) = ttls.then_some(found.ttl).flatten().and_then(parse_ttl) {
                if ttl_s > 0 {
                    expiries.push(Reverse((
                        time_ns.saturating_add(ttl_s.saturating_mul(1_000_000_000)),
                        seq,
                    )));
                }
            }
        });
        if let Err(e) = scanned {
            tracing::error!(stream = %self.name, error = %e, "cannot rebuild the deduplication window");
        }
    }

    /// Removes messages whose `Nats-TTL` has passed. Returns how many.
    pub fn expire_ttls(&self, now_ns: i64) -> u64 {
        let mut inner = self.inner.lock();
        for id in inner.batches.abandon_idle(monotonic_ns()) {
            tracing::info!(stream = %self.name, batch = %id, "idle atomic batch abandoned");
        }
        let mut removed = 0;
        while let Some(&Reverse((at, seq))) = inner.ttl_expiries.peek() {
            if at > now_ns {
                break;
            }
            inner.ttl_expiries.pop();
            if let Ok(true) = inner.store.delete(seq) {
                removed += 1;
            }
        }
        if removed > 0 {
            if let Err(e) = inner.store.write_out() {
                tracing::error!(stream = %self.name, error = %e, "cannot write TTL expiry");
            }
        }
        removed
    }

    /// Stores one published message after checking its expectations.
    pub fn store_message(
        &self,
        subject: &[u8],
        headers: &[u8],
        payload: &[u8],
    ) -> Result<Published, JsError> {
        let now = unix_now_ns();
        let mut inner = self.inner.lock();
        let inner = &mut *inner;
        let settings = &inner.settings;
        if settings.sealed {
            return Err(err(Code::StreamSealed));
        }
        let size = headers.len() + payload.len();
        if settings.max_msg_size.is_some_and(|max| size > max as usize) {
            return Err(err(Code::StreamMessageExceedsMaximum));
        }
        let Ok(subject) = std::str::from_utf8(subject) else {
            return Err(err(Code::BadRequest));
        };
        let hdrs = MsgHeaders::scan(headers);
        if hdrs.batch_id.is_some() {
            let step = batch::step(
                inner,
                &self.name,
                subject,
                headers,
                payload,
                &hdrs,
                now,
                monotonic_ns(),
            )?;
            inner.dirty = true;
            return Ok(match step {
                BatchStep::Staged => Published::Staged,
                BatchStep::Committed { id, seq, count } => Published::Committed { id, seq, count },
            });
        }
        if let Some(expected) = hdrs.expected_stream {
            if expected != self.name.as_bytes() {
                return Err(err(Code::StreamNotMatch));
            }
        }
        let ttl_s = match hdrs.ttl {
            None => None,
            Some(_) if !settings.allow_msg_ttl => return Err(err(Code::MessageTtlDisabled)),
            Some(value) => match parse_ttl(value) {
                Some(ttl) => Some(ttl),
                None => return Err(err(Code::MessageTtlInvalid)),
            },
        };
        inner.dedup.expire(now);
        let msg_id = match hdrs.msg_id.map(std::str::from_utf8) {
            Some(Ok(id)) if !id.is_empty() => Some(id),
            _ => None,
        };
        if let Some(id) = msg_id {
            if let Some(seq) = inner.dedup.get(id) {
                return Ok(Published::Stored(Stored { seq, duplicate: true }));
            }
        }
        let state = inner.store.state();
        let store = &inner.store;
        hdrs.check_expected_sequences(subject, state.last_seq, |on| {
            store.last_seq_of_subject(on).unwrap_or(0)
        })
        .map_err(|actual| err_arg(Code::StreamWrongLastSequence, actual))?;
        if let Some(expected) = hdrs.expected_last_msg_id {
            let last = inner.last_msg_id.as_deref().unwrap_or("");
            if expected != last.as_bytes() {
                return Err(err_arg(Code::StreamWrongLastMsgId, last));
            }
        }
        let rollup = match hdrs.rollup {
            None => None,
            Some(_) if !settings.allow_rollup => {
                return Err(err_arg(Code::StreamRollupFailed, "rollup not permitted"))
            }
            Some(b"sub") => Some(SubjectFilter::one(subject)),
            Some(b"all") => Some(SubjectFilter::all()),
            Some(_) => return Err(err_arg(Code::StreamRollupFailed, "rollup value invalid")),
        };
        let appended = inner
            .store
            .append(subject, headers, payload, now)
            .map_err(store_error)?;
        inner.dirty = true;
        if let Some(filter) = rollup {
            let purge = Purge {
                filter,
                up_to_seq: Some(appended.seq),
                keep: None,
            };
            inner.store.purge(&purge).map_err(store_error)?;
        }
        if let Some(id) = msg_id {
            inner.dedup.insert(id, appended.seq, now);
            inner.last_msg_id = Some(id.into());
        }
        if let Some(ttl) = ttl_s.filter(|&t| t > 0) {
            let at = now.saturating_add(ttl.saturating_mul(1_000_000_000));
            inner.ttl_expiries.push(Reverse((at, appended.seq)));
        }
        if inner.settings.retention == Retention::Interest
            && !self
                .wakers
                .lock()
                .iter()
                .any(|(_, filter)| filter.matches(subject))
        {
            // Nobody is interested: acknowledged, and gone at once.
            inner.store.delete(appended.seq).map_err(store_error)?;
        }
        Ok(Published::Stored(Stored {
            seq: appended.seq,
            duplicate: false,
        }))
    }

    /// Hands appended data to the OS (and, for `sync: always`, the group
    /// commit thread fsyncs before `after` is sent).
    fn write_out(&self) -> Result<(), StoreError> {
        let mut inner = self.inner.lock();
        if inner.dirty {
            inner.dirty = false;
            inner.store.write_out()?;
        }
        Ok(())
    }

    /// Wakes every consumer of this stream.
    pub fn wake_consumers(&self) {
        for (waker, _) in self.wakers.lock().iter() {
            waker.notify_one();
        }
    }

    /// The retention policy (fixed for the stream's life).
    pub fn retention(&self) -> Retention {
        self.retention
    }
}

impl Commit for Stream {
    fn commit(&self, after: Vec<OutMsg>, ready: &mut Vec<OutMsg>) {
        if let Err(e) = self.write_out() {
            tracing::error!(stream = %self.name, error = %e, "cannot write stream data");
            let payload = store_error(e).pub_ack_json(&self.name);
            ready.extend(after.into_iter().map(|msg| OutMsg {
                payload: payload.clone(),
                ..msg
            }));
            return;
        }
        match self.committer.get() {
            Some(committer) if !after.is_empty() && self.sync_policy() == SyncPolicy::Always => {
                committer.enqueue(after)
            }
            _ => ready.extend(after),
        }
        self.wake_consumers();
    }
}

/// The router subscription of a stream's subjects: stores what is
/// published and answers with a PubAck once it is committed.
pub(crate) struct Capture(pub Arc<Stream>);

impl InternalHandler for Capture {
    /// A `no_ack` stream stores without answering: a publisher waiting for
    /// its PubAck would wait for nothing.
    fn captures(&self) -> bool {
        !self.0.no_ack.load(Ordering::Relaxed)
    }

    fn on_message(&self, msg: &InMsg<'_>, effects: &mut Effects) {
        let stream = &self.0;
        let result = stream.store_message(msg.subject, msg.headers, msg.payload);
        let counter = match &result {
            Ok(Published::Stored(stored)) if stored.duplicate => &stream.counters.duplicates,
            Ok(_) => &stream.counters.stored,
            Err(_) => &stream.counters.rejected,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        let reply = msg
            .reply
            .filter(|_| !stream.no_ack.load(Ordering::Relaxed))
            .map(Bytes::copy_from_slice);
        let commit: Arc<dyn Commit> = stream.clone();
        match result {
            Ok(Published::Stored(stored)) => {
                let ack = reply.map(|reply| OutMsg::new(reply, pub_ack(&stream.name, stored)));
                effects.after_commit(&commit, ack);
            }
            // A staged batch message is confirmed (if asked) with an empty
            // reply: nothing was written yet.
            Ok(Published::Staged) => effects
                .send
                .extend(reply.map(|reply| OutMsg::new(reply, Bytes::new()))),
            Ok(Published::Committed { id, seq, count }) => {
                let ack = PubAck {
                    stream: stream.name.clone(),
                    seq,
                    batch_id: id,
                    batch_size: count,
                    ..PubAck::default()
                };
                let ack = reply.map(|reply| OutMsg::new(reply, ack.to_json()));
                effects.after_commit(&commit, ack);
            }
            Err(e) => {
                if let Some(reply) = reply {
                    effects
                        .send
                        .push(OutMsg::new(reply, e.pub_ack_json(&stream.name)));
                }
            }
        }
    }
}

impl StreamInner {
    /// Applies a new configuration (already validated).
    pub fn set_settings(&mut self, config: StreamConfig, settings: StreamSettings) {
        self.dedup.set_window(settings.duplicate_window_ns);
        self.config = config;
        self.settings = settings;
    }
}

impl Stream {
    /// The stream's sync policy.
    pub fn sync_policy(&self) -> SyncPolicy {
        self.inner.lock().settings.sync
    }

    /// Makes everything written durable (the group commit thread's work).
    pub fn sync_now(&self) -> Result<(), StoreError> {
        let mut inner = self.inner.lock();
        inner.dirty = false;
        inner.store.sync()
    }
}

/// The API error for a store failure.
pub(crate) fn store_error(e: StoreError) -> JsError {
    match e {
        StoreError::LimitReached(herald_storage::Limit::Msgs) => {
            err_arg(Code::StreamStoreFailed, "maximum messages exceeded")
        }
        StoreError::LimitReached(herald_storage::Limit::Bytes) => {
            err_arg(Code::StreamStoreFailed, "maximum bytes exceeded")
        }
        StoreError::LimitReached(herald_storage::Limit::MsgsPerSubject) => {
            err_arg(Code::StreamStoreFailed, "maximum messages per subject exceeded")
        }
        StoreError::TooLarge => err(Code::StreamMessageExceedsMaximum),
        other => {
            tracing::error!(error = %other, "stream store failed");
            err_arg(Code::StreamStoreFailed, other)
        }
    }
}

/// A `Nats-TTL` value in seconds (`-1`: never), as nats-server reads it.
fn parse_ttl(value: &[u8]) -> Option<i64> {
    herald_protocol::jetstream::headers::parse_message_ttl(std::str::from_utf8(value).ok()?.trim())
}

/// A PubAck payload.
pub(crate) fn pub_ack(stream: &str, stored: Stored) -> Bytes {
    let mut out = Vec::with_capacity(48 + stream.len());
    out.extend_from_slice(b"{\"stream\":");
    serde_json::to_writer(&mut out, stream).expect("writing to a Vec cannot fail");
    out.extend_from_slice(b",\"seq\":");
    out.extend_from_slice(itoa::Buffer::new().format(stored.seq).as_bytes());
    if stored.duplicate {
        out.extend_from_slice(b",\"duplicate\":true");
    }
    out.push(b'}');
    out.into()
}
