//! Routing one published message to every matching subscription: the part
//! of publishing shared by client connections and the server's own tasks
//! (JetStream replies, consumer deliveries, acknowledgements).
//!
//! A [`Publisher`] batches: deliveries go into subscribers' outbound buffers
//! as they are routed, and [`Publisher::finish`] flushes each touched buffer
//! once, after first running the [`Effects`] that internal subscriptions
//! asked for (writing streams out before their PubAcks are sent).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;
use herald_core::{MatchCache, MatchResult};

use crate::outbound::{Appended, Data, Flushed};
use crate::router::{ClientShared, InMsg, SubRef, Subscription};
use crate::stats::LocalCounts;
use crate::ServerState;

/// Subjects of JetStream acknowledgements, each seen once.
const ACK_PREFIX: &[u8] = b"$JS.ACK.";
/// Cached subject matches per publisher.
const MATCH_CACHE_ENTRIES_MAX: usize = 1024;
/// Rounds of effects producing further effects before `finish` gives up;
/// internal replies never chain this deep unless something loops.
const EFFECT_ROUNDS_MAX: usize = 8;

/// Publish data as it sits in a read buffer: borrowed, or shared when large.
pub(crate) enum PubData<'a> {
    Borrowed(&'a [u8]),
    Shared(&'a Bytes),
}

impl PubData<'_> {
    pub fn len(&self) -> usize {
        self.bytes().len()
    }

    pub fn bytes(&self) -> &[u8] {
        match self {
            PubData::Borrowed(b) => b,
            PubData::Shared(b) => b,
        }
    }
}

/// The publishing client, for echo suppression.
#[derive(Clone, Copy)]
pub(crate) struct Origin {
    pub client_id: u64,
    pub echo: bool,
}

/// What routing one message did.
pub(crate) struct Routed {
    /// Some subscription (client or internal) took the message.
    pub delivered: bool,
    /// No subscription matched the subject at all.
    pub unmatched: bool,
}

/// A message the server sends on its own behalf.
pub struct OutMsg {
    /// Subject to route it to.
    pub subject: Bytes,
    /// Subject shown to subscribers, when not `subject`.
    pub shown: Option<Bytes>,
    /// Reply subject.
    pub reply: Option<Bytes>,
    /// Raw header block; empty for none.
    pub headers: Bytes,
    /// Payload.
    pub payload: Bytes,
}

impl OutMsg {
    /// A message without headers or reply subject.
    pub fn new(subject: impl Into<Bytes>, payload: impl Into<Bytes>) -> OutMsg {
        OutMsg {
            subject: subject.into(),
            shown: None,
            reply: None,
            headers: Bytes::new(),
            payload: payload.into(),
        }
    }
}

/// Something written by internal handlers that must reach the OS (or disk)
/// before the messages that depend on it are sent.
pub trait Commit: Send + Sync {
    /// Makes the pending writes durable according to policy and sends or
    /// schedules `after`: pushing what may go now into `ready`.
    fn commit(&self, after: Vec<OutMsg>, ready: &mut Vec<OutMsg>);
}

/// What internal subscriptions ask the publisher to do once the current
/// batch is routed.
#[derive(Default)]
pub struct Effects {
    /// Messages to route now (API replies).
    pub send: Vec<OutMsg>,
    /// Writers to commit, each with the messages that wait for it.
    commits: Vec<(Arc<dyn Commit>, Vec<OutMsg>)>,
}

impl Effects {
    /// Sends `msg` once `writer` has committed what this batch wrote.
    pub fn after_commit(&mut self, writer: &Arc<dyn Commit>, msg: Option<OutMsg>) {
        let entry = match self.commits.iter_mut().find(|(w, _)| Arc::ptr_eq(w, writer)) {
            Some(entry) => entry,
            None => {
                self.commits.push((writer.clone(), Vec::new()));
                self.commits.last_mut().expect("just pushed")
            }
        };
        entry.1.extend(msg);
    }

    fn is_empty(&self) -> bool {
        self.send.is_empty() && self.commits.is_empty()
    }
}

/// Routes messages and batches the flushing of subscribers' buffers.
pub(crate) struct Publisher {
    pub state: Arc<ServerState>,
    cache: MatchCache<SubRef>,
    rng: fastrand::Rng,
    pub counts: LocalCounts,
    /// Clients whose outbound buffers this batch added to.
    touched: Vec<Arc<ClientShared>>,
    touch_mark: u64,
    /// Subscriptions that reached their auto-unsubscribe maximum.
    expired: Vec<Arc<Subscription>>,
    effects: Effects,
    /// Reused match buffer for subjects routed once.
    scratch: MatchResult<SubRef>,
}

impl Publisher {
    pub fn new(state: Arc<ServerState>) -> Publisher {
        // Never 0, the mark a new client starts with: the first batch must
        // list every client it touches.
        let touch_mark = state.next_touch_mark.fetch_add(1, Ordering::Relaxed);
        Publisher {
            state,
            cache: MatchCache::new(MATCH_CACHE_ENTRIES_MAX),
            rng: fastrand::Rng::new(),
            counts: LocalCounts::default(),
            touched: Vec::new(),
            touch_mark,
            expired: Vec::new(),
            effects: Effects::default(),
            scratch: MatchResult::empty(),
        }
    }

    /// Routes one message to every matching subscription.
    #[inline]
    pub fn route(
        &mut self,
        subject: &[u8],
        reply: Option<&[u8]>,
        header_len: Option<usize>,
        data: PubData<'_>,
        origin: Option<Origin>,
    ) -> Routed {
        if subject.starts_with(ACK_PREFIX) {
            // Every ack subject is unique: caching its match would only
            // churn the cache.
            return self.route_uncached(subject, subject, reply, header_len, data, origin);
        }
        self.route_as(subject, subject, reply, header_len, data, origin)
    }

    /// Routes by `subject` but shows clients `shown` as the message's
    /// subject (JetStream deliveries: routed to a deliver subject or pull
    /// inbox, shown with the subject the message was stored under).
    #[inline]
    pub fn route_as(
        &mut self,
        subject: &[u8],
        shown: &[u8],
        reply: Option<&[u8]>,
        header_len: Option<usize>,
        data: PubData<'_>,
        origin: Option<Origin>,
    ) -> Routed {
        let matched = self.cached_match(subject);
        self.route_matched(&matched, subject, shown, reply, header_len, data, origin)
    }

    #[inline]
    fn cached_match(&mut self, subject: &[u8]) -> Arc<MatchResult<SubRef>> {
        let generation = self.state.router.generation();
        match self.cache.get(subject, generation) {
            Some(result) => result.clone(),
            None => {
                let (generation, result) = self.state.router.matches(subject);
                self.cache.insert(subject, generation, result.clone());
                result
            }
        }
    }

    /// Whether a stream captures `subject` (a publish there is stored and
    /// answered with a PubAck).
    pub fn captures(&mut self, subject: &[u8]) -> bool {
        self.cached_match(subject).plain.iter().any(|sub| match sub {
            SubRef::Internal(sub) => sub.handler.captures(),
            SubRef::Client(_) => false,
        })
    }

    /// Routes a message whose subject is unlikely to be seen again (a
    /// PubAck or API reply to a unique inbox, an ack): matched into a reused
    /// buffer, without the cache.
    fn route_uncached(
        &mut self,
        subject: &[u8],
        shown: &[u8],
        reply: Option<&[u8]>,
        header_len: Option<usize>,
        data: PubData<'_>,
        origin: Option<Origin>,
    ) -> Routed {
        let mut matched = std::mem::take(&mut self.scratch);
        self.state.router.matches_into(subject, &mut matched);
        let routed = self.route_matched(&matched, subject, shown, reply, header_len, data, origin);
        self.scratch = matched;
        routed
    }

    #[allow(clippy::too_many_arguments)]
    #[inline]
    fn route_matched(
        &mut self,
        matched: &MatchResult<SubRef>,
        subject: &[u8],
        shown: &[u8],
        reply: Option<&[u8]>,
        header_len: Option<usize>,
        data: PubData<'_>,
        origin: Option<Origin>,
    ) -> Routed {
        let mut delivered = false;
        for sub in &matched.plain {
            delivered |= match sub {
                SubRef::Client(sub) => self.deliver(sub, shown, reply, header_len, &data, origin),
                SubRef::Internal(sub) => {
                    let bytes = data.bytes();
                    let split = header_len.unwrap_or(0).min(bytes.len());
                    let msg = InMsg {
                        subject,
                        shown,
                        reply,
                        headers: &bytes[..split],
                        payload: &bytes[split..],
                    };
                    sub.handler.on_message(&msg, &mut self.effects);
                    true
                }
            };
        }
        for group in &matched.queues {
            let members = &group.members;
            let start = if members.len() > 1 {
                self.rng.usize(..members.len())
            } else {
                0
            };
            for i in 0..members.len() {
                let SubRef::Client(sub) = &members[(start + i) % members.len()] else {
                    continue;
                };
                if self.deliver(sub, shown, reply, header_len, &data, origin) {
                    delivered = true;
                    break;
                }
            }
        }
        Routed {
            delivered,
            unmatched: matched.is_empty(),
        }
    }

    /// Routes a message the server sends on its own behalf. `once`: its
    /// subject is unique (a reply inbox), so skip the match cache.
    pub fn route_out(&mut self, msg: &OutMsg, once: bool) -> Routed {
        let shown = msg.shown.as_deref().unwrap_or(&msg.subject);
        let reply = msg.reply.as_deref();
        let frame;
        let (header_len, data) = if msg.headers.is_empty() {
            (None, PubData::Shared(&msg.payload))
        } else {
            let mut joined = Vec::with_capacity(msg.headers.len() + msg.payload.len());
            joined.extend_from_slice(&msg.headers);
            joined.extend_from_slice(&msg.payload);
            frame = Bytes::from(joined);
            (Some(msg.headers.len()), PubData::Shared(&frame))
        };
        if once {
            self.route_uncached(&msg.subject, shown, reply, header_len, data, None)
        } else {
            self.route_as(&msg.subject, shown, reply, header_len, data, None)
        }
    }

    /// Routes messages the server sends and finishes the batch. `once`:
    /// their subjects are unique reply inboxes (see [`Publisher::route_out`]).
    pub fn send_all(&mut self, msgs: &[OutMsg], once: bool) {
        for msg in msgs {
            self.route_out(msg, once);
        }
        self.finish();
    }

    /// Queues a message for one client subscription. Returns whether it was
    /// queued.
    #[inline]
    fn deliver(
        &mut self,
        sub: &Arc<Subscription>,
        subject: &[u8],
        reply: Option<&[u8]>,
        header_len: Option<usize>,
        data: &PubData<'_>,
        origin: Option<Origin>,
    ) -> bool {
        let client = &sub.client;
        if origin.is_some_and(|o| !o.echo && o.client_id == client.id) {
            return false;
        }
        let Some(last) = sub.claim_delivery() else {
            return false;
        };
        if last {
            self.expired.push(sub.clone());
        }
        // A client that did not declare header support gets the payload only.
        let (header_len, skip) = match header_len {
            Some(h) if !client.headers.load(Ordering::Relaxed) => (None, h),
            other => (other, 0),
        };
        let shared;
        let (payload, len) = match data {
            PubData::Borrowed(bytes) => (Data::Borrowed(&bytes[skip..]), bytes.len() - skip),
            PubData::Shared(bytes) if skip == 0 => (Data::Shared(bytes), bytes.len()),
            PubData::Shared(bytes) => {
                shared = bytes.slice(skip..);
                (Data::Shared(&shared), shared.len())
            }
        };
        match client
            .outbound
            .push_msg(subject, &sub.sid, reply, header_len, payload)
        {
            Appended::Queued => {
                self.counts.out_msgs += 1;
                self.counts.out_bytes += len as u64;
                self.touch(client);
                true
            }
            // The subscriber's own task closes it (and counts it) when slow.
            Appended::Closed | Appended::BecameSlow => false,
        }
    }

    /// Lists `client` for flushing at the end of this batch.
    pub fn touch(&mut self, client: &Arc<ClientShared>) {
        if client.touch_mark.swap(self.touch_mark, Ordering::Relaxed) != self.touch_mark {
            self.touched.push(client.clone());
        }
    }

    /// Runs the effects internal subscriptions asked for, flushes every
    /// outbound buffer this batch added to, and applies what had to wait
    /// for the end of the batch.
    pub fn finish(&mut self) {
        let mut rounds = 0;
        while !self.effects.is_empty() && rounds < EFFECT_ROUNDS_MAX {
            rounds += 1;
            let Effects { mut send, commits } = std::mem::take(&mut self.effects);
            for (writer, after) in commits {
                writer.commit(after, &mut send);
            }
            for msg in &send {
                self.route_out(msg, true);
            }
        }
        if !self.effects.is_empty() {
            tracing::error!("internal messages kept producing replies; dropped the rest");
            self.effects = Effects::default();
        }
        for client in self.touched.drain(..) {
            match client.outbound.flush() {
                Ok(Flushed::Done) | Ok(Flushed::Busy) => {}
                // The owner waits for writability (or notices the error).
                Ok(Flushed::WouldBlock) | Err(_) => client.outbound.wake_owner(),
            }
        }
        self.touch_mark = self.state.next_touch_mark.fetch_add(1, Ordering::Relaxed);
        if !self.expired.is_empty() {
            let expired = std::mem::take(&mut self.expired);
            for sub in &expired {
                let mut subs = sub.client.subs.lock();
                if subs
                    .get(&sub.sid)
                    .is_some_and(|current| Arc::ptr_eq(current, sub))
                {
                    subs.remove(&sub.sid);
                }
            }
            self.state.router.remove(&expired);
        }
        self.counts.drain_into(&self.state.stats);
    }
}
