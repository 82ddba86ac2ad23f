//! Event-carried state transfer: a local replica of another service's
//! entities, kept current from a stream and read without calling anyone.
//!
//! The owning service publishes the **full current state** of an entity
//! each time it changes, one subject per entity (e.g. a stream `CUSTOMERS`
//! with subjects `customers.state.*`, customer `c-1` on
//! `customers.state.c-1`). A [`Replica`] loads the last message of every
//! subject matching its filter (an ephemeral consumer with
//! `DeliverPolicy::LastPerSubject`: one message per entity, not the
//! history), then applies updates as they are stored. Reads
//! ([`Replica::get`], [`Replica::snapshot`]…) only touch local memory:
//! they keep working while the owning service is down, and while the
//! server is, serving the last state received.
//!
//! **Deletions** are tombstones: a message with an **empty payload**
//! removes its key. That is also what a key-value bucket stores for a
//! delete or purge (`KV-Operation: DEL`/`PURGE`), so a replica can follow a
//! bucket's stream (`KV_<bucket>`, filter `$KV.<bucket>.>`) as well.
//! Messages removed from the stream by limits or a purge are not
//! deletions: a running replica does not see them go.
//!
//! Payloads are decoded with [`decode_state`] by default: JSON, or CBOR
//! when the message's `content-type` header says so (the herald-events
//! envelope headers may be present, and are ignored); the key is the last
//! subject token. [`Replica::start_with`] takes other key and decode
//! functions.
//!
//! A background task owns the consumer. It watches the consumer sequence
//! and the server's idle heartbeats; a missed delivery, silence, or a
//! reconnect makes it create a new consumer from the last position
//! applied, retrying while the server is unreachable. Dropping the last
//! handle of the replica stops the task and deletes the consumer.
//!
//! ```no_run
//! use std::time::Duration;
//! use herald_events::Replica;
//! use serde::Deserialize;
//!
//! #[derive(Debug, Deserialize)]
//! struct Customer {
//!     name: String,
//!     city: String,
//! }
//!
//! # #[tokio::main] async fn main() -> herald_events::Result<()> {
//! let client = herald_client::Client::connect("nats://127.0.0.1:4333").await?;
//! let js = client.jetstream();
//! // Returns once every customer's latest state is loaded.
//! let customers: Replica<Customer> = Replica::start(&js, "CUSTOMERS", "customers.state.*").await?;
//! if let Some(customer) = customers.get("c-1") {
//!     println!("{} lives in {}", customer.name, customer.city);
//! }
//! // Read your own writes: wait until the replica has applied a publish.
//! let ack = js.publish("customers.state.c-2", r#"{"name":"bob","city":"Oslo"}"#).await?;
//! customers.wait_for(ack.seq, Duration::from_secs(5)).await?;
//! assert_eq!(customers.get("c-2").unwrap().city, "Oslo");
//! # Ok(()) }
//! ```

use std::borrow::Borrow;
use std::collections::HashMap;
use std::fmt;
use std::hash::Hash;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use herald_client::jetstream::{
    AckPolicy, ConsumerConfig, DeliverPolicy, JetStream, MessageInfo, ReplayPolicy,
};
use herald_client::{ConnectionState, Message, Subscriber};
use herald_protocol::jetstream::headers as js_headers;
use serde::de::DeserializeOwned;
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;

use crate::notification::decode_state;
use crate::Result;

/// Default interval of the idle heartbeats the server sends a replica.
pub const HEARTBEAT_DEFAULT: Duration = Duration::from_secs(1);
/// Default bound on how long [`Replica::start`] waits for the snapshot.
pub const START_TIMEOUT_DEFAULT: Duration = Duration::from_secs(30);
/// Changes buffered per [`Replica::changes`] receiver before it lags.
pub const CHANGES_MAX: usize = 1024;
/// Heartbeats that may go missing before the replica assumes its consumer
/// is gone and creates another.
const MISSED_HEARTBEATS_MAX: u32 = 3;
/// How long the server keeps a consumer nobody reads (a replica that was
/// dropped without reaching the server, e.g. while disconnected).
const INACTIVE_THRESHOLD: Duration = Duration::from_secs(30);
/// First pause between attempts to recreate the consumer.
const RETRY_DELAY_MIN: Duration = Duration::from_millis(100);
/// Longest pause between attempts to recreate the consumer.
const RETRY_DELAY_MAX: Duration = Duration::from_secs(2);

/// Where a replica reads from, and its timing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaConfig {
    /// The stream, e.g. `CUSTOMERS`.
    pub stream: String,
    /// The subjects replicated, e.g. `customers.state.*`: one entity each.
    pub filter: String,
    /// Interval of the server's idle heartbeats; a replica that hears
    /// nothing for three of them recreates its consumer.
    pub heartbeat: Duration,
    /// How long [`Replica::start`] waits for the initial snapshot.
    pub start_timeout: Duration,
}

impl ReplicaConfig {
    /// `filter` of `stream`, with default timing.
    pub fn new(stream: impl Into<String>, filter: impl Into<String>) -> ReplicaConfig {
        ReplicaConfig {
            stream: stream.into(),
            filter: filter.into(),
            heartbeat: HEARTBEAT_DEFAULT,
            start_timeout: START_TIMEOUT_DEFAULT,
        }
    }

    fn silence_max(&self) -> Duration {
        self.heartbeat * MISSED_HEARTBEATS_MAX
    }
}

/// One change applied to a replica; see [`Replica::changes`].
#[derive(Debug)]
pub struct Change<K, V> {
    /// The key changed.
    pub key: K,
    /// Its new value; `None` when it was deleted.
    pub value: Option<Arc<V>>,
    /// The stream position of the change.
    pub position: u64,
}

// Not derived: that would require `V: Clone`, and values are shared.
impl<K: Clone, V> Clone for Change<K, V> {
    fn clone(&self) -> Self {
        Change {
            key: self.key.clone(),
            value: self.value.clone(),
            position: self.position,
        }
    }
}

/// How current a replica is; see [`Replica::status`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaStatus {
    /// Stream position of the last message applied.
    pub position: u64,
    /// Keys held.
    pub keys: usize,
    /// Whether it follows live updates: its consumer is in place and the
    /// server was heard from within three heartbeats.
    pub connected: bool,
    /// Time since the server last sent a message or heartbeat.
    pub since_contact: Duration,
    /// Consumers recreated after a missed delivery, silence or reconnect.
    pub recoveries: u64,
    /// Full reloads, after messages the replica had not seen yet were
    /// removed from the stream (or the stream was recreated).
    pub resyncs: u64,
    /// Messages skipped because no key or value could be made of them.
    pub skipped: u64,
}

/// The key of a subject: its last token (`customers.state.c-1` → `c-1`).
pub fn last_token(subject: &str) -> Option<String> {
    subject
        .rsplit('.')
        .next()
        .filter(|t| !t.is_empty())
        .map(str::to_string)
}

type KeyFn<K> = Arc<dyn Fn(&str) -> Option<K> + Send + Sync>;
type DecodeFn<V> = Arc<dyn Fn(&Message) -> Result<V> + Send + Sync>;

/// A local, read-only copy of the latest state of every entity on a
/// stream's subjects, kept current in the background; see the
/// [module documentation](self).
///
/// Keyed by `K` (by default the last subject token, as a `String`); values
/// are shared as `Arc<V>`. Cheap to clone; the background task stops when
/// the last clone is dropped.
pub struct Replica<V, K = String> {
    shared: Arc<Shared<K, V>>,
    _task: Arc<TaskGuard>,
}

impl<V, K> Clone for Replica<V, K> {
    fn clone(&self) -> Self {
        Replica {
            shared: self.shared.clone(),
            _task: self._task.clone(),
        }
    }
}

/// Aborts the background task when the last replica handle goes.
struct TaskGuard(JoinHandle<()>);

impl Drop for TaskGuard {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// What the replica handles and the background task share.
struct Shared<K, V> {
    /// The state. Only the task writes, one change at a time; nobody holds
    /// the lock across an `.await`.
    entries: RwLock<HashMap<K, Arc<V>>>,
    /// Stream position of the last message applied, updated after the
    /// entries so that a waiter woken by it sees the change.
    position: watch::Sender<u64>,
    changes: broadcast::Sender<Change<K, V>>,
    health: Mutex<Health>,
    silence_max: Duration,
}

struct Health {
    connected: bool,
    last_contact: Instant,
    recoveries: u64,
    resyncs: u64,
    skipped: u64,
}

// A panic elsewhere cannot leave the map half-changed (each change is
// one insert or remove), so a poisoned lock is still good to use.
impl<K, V> Shared<K, V> {
    fn health(&self) -> MutexGuard<'_, Health> {
        self.health.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn read(&self) -> RwLockReadGuard<'_, HashMap<K, Arc<V>>> {
        self.entries.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, HashMap<K, Arc<V>>> {
        self.entries.write().unwrap_or_else(PoisonError::into_inner)
    }
}

impl<V> Replica<V>
where
    V: DeserializeOwned + Send + Sync + 'static,
{
    /// Replicates `filter` of `stream`: keys are last subject tokens,
    /// values decoded by [`decode_state`]. Returns once the latest message
    /// of every subject is loaded.
    pub async fn start(js: &JetStream, stream: &str, filter: &str) -> Result<Replica<V>> {
        Replica::start_with(
            js,
            ReplicaConfig::new(stream, filter),
            last_token,
            |message: &Message| decode_state(message.headers.as_ref(), &message.payload),
        )
        .await
    }
}

impl<V, K> Replica<V, K>
where
    V: Send + Sync + 'static,
    K: Eq + Hash + Clone + Send + Sync + 'static,
{
    /// Replicates as `config` says, keys made of subjects by `key` and
    /// values of messages by `decode` (neither sees tombstones, which
    /// remove their key). A message either refuses is skipped, counted in
    /// [`ReplicaStatus::skipped`]. Returns once the latest message of every
    /// subject is loaded; fails if the stream does not exist, or the
    /// snapshot takes longer than [`ReplicaConfig::start_timeout`].
    pub async fn start_with(
        js: &JetStream,
        config: ReplicaConfig,
        key: impl Fn(&str) -> Option<K> + Send + Sync + 'static,
        decode: impl Fn(&Message) -> Result<V> + Send + Sync + 'static,
    ) -> Result<Replica<V, K>> {
        let shared = Arc::new(Shared {
            entries: RwLock::new(HashMap::new()),
            position: watch::Sender::new(0),
            changes: broadcast::Sender::new(CHANGES_MAX),
            health: Mutex::new(Health {
                connected: false,
                last_contact: Instant::now(),
                recoveries: 0,
                resyncs: 0,
                skipped: 0,
            }),
            silence_max: config.silence_max(),
        });
        let mut states = js.client().state_changes();
        states.borrow_and_update();
        let start_timeout = config.start_timeout;
        let mut follower = Follower {
            js: js.clone(),
            config,
            key: Arc::new(key),
            decode: Arc::new(decode),
            shared: shared.clone(),
            states,
            sub: None,
            consumer: String::new(),
            next_consumer_seq: 1,
            position: 0,
            loading: Some(Loading::new()),
            last_contact: Instant::now(),
        };
        // The first consumer outside the retry loop: a missing stream or a
        // bad filter is the caller's to hear about.
        follower.create_consumer(None).await?;
        let loaded = tokio::time::timeout(start_timeout, async {
            while follower.loading.is_some() {
                follower.step().await?;
            }
            Ok::<_, crate::Error>(())
        })
        .await;
        match loaded {
            Ok(result) => result?,
            Err(_) => return Err(herald_client::Error::Timeout.into()),
        }
        let task = tokio::spawn(async move {
            // Only a closed client stops it.
            while follower.step().await.is_ok() {}
            follower.set_connected(false);
        });
        Ok(Replica {
            shared,
            _task: Arc::new(TaskGuard(task)),
        })
    }

    /// The value of `key`, if the replica holds one.
    pub fn get<Q>(&self, key: &Q) -> Option<Arc<V>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.read().get(key).cloned()
    }

    /// Whether the replica holds a value for `key`.
    pub fn contains_key<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.read().contains_key(key)
    }

    /// How many keys the replica holds.
    pub fn len(&self) -> usize {
        self.read().len()
    }

    /// Whether the replica holds no key.
    pub fn is_empty(&self) -> bool {
        self.read().is_empty()
    }

    /// The keys held, in no particular order.
    pub fn keys(&self) -> Vec<K> {
        self.read().keys().cloned().collect()
    }

    /// A copy of the whole state (values shared, not cloned).
    pub fn snapshot(&self) -> HashMap<K, Arc<V>> {
        self.read().clone()
    }

    fn read(&self) -> RwLockReadGuard<'_, HashMap<K, Arc<V>>> {
        self.shared.read()
    }
}

impl<V, K> Replica<V, K> {
    /// Stream position of the last message applied. It only goes back if
    /// the stream was recreated (and the replica reloaded it).
    pub fn position(&self) -> u64 {
        *self.shared.position.borrow()
    }

    /// Waits until the replica has applied stream position `position` or
    /// a later one, e.g. the [`PubAck`](herald_client::jetstream::PubAck)
    /// sequence of a state just published (reading your own writes);
    /// returns the position reached. `position` must be of a message the
    /// filter matches, or a later one must come. Fails with
    /// [`herald_client::Error::Timeout`] after `timeout`.
    pub async fn wait_for(&self, position: u64, timeout: Duration) -> Result<u64> {
        let mut positions = self.shared.position.subscribe();
        let reached = async { positions.wait_for(|p| *p >= position).await.map(|p| *p) };
        match tokio::time::timeout(timeout, reached).await {
            Ok(Ok(reached)) => Ok(reached),
            Ok(Err(_)) => Err(herald_client::Error::Closed.into()),
            Err(_) => Err(herald_client::Error::Timeout.into()),
        }
    }

    /// Changes applied from now on, in order. A receiver more than
    /// [`CHANGES_MAX`] changes behind gets `Lagged` and misses some (read
    /// [`Replica::snapshot`] then). After a full reload every key held is
    /// reported, and every key gone as deleted.
    pub fn changes(&self) -> broadcast::Receiver<Change<K, V>> {
        self.shared.changes.subscribe()
    }

    /// Whether the replica follows live updates: its consumer is in place
    /// and the server was heard from within three heartbeats. Reads work
    /// either way, from what was received.
    pub fn is_connected(&self) -> bool {
        let health = self.shared.health();
        health.connected && health.last_contact.elapsed() < self.shared.silence_max
    }

    /// Time since the server last sent a message or heartbeat: about the
    /// heartbeat interval at most while connected, growing while not.
    pub fn staleness(&self) -> Duration {
        self.shared.health().last_contact.elapsed()
    }

    /// Position, size, connection and recovery counters.
    pub fn status(&self) -> ReplicaStatus {
        let keys = self.shared.read().len();
        let position = self.position();
        let connected = self.is_connected();
        let health = self.shared.health();
        ReplicaStatus {
            position,
            keys,
            connected,
            since_contact: health.last_contact.elapsed(),
            recoveries: health.recoveries,
            resyncs: health.resyncs,
            skipped: health.skipped,
        }
    }
}

impl<V, K> fmt::Debug for Replica<V, K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Replica")
            .field("status", &self.status())
            .finish_non_exhaustive()
    }
}

/// A snapshot being loaded: the replica keeps serving the previous state
/// until it is complete.
struct Loading<K, V> {
    entries: HashMap<K, Arc<V>>,
    /// Stream position of the last message applied to `entries`.
    position: u64,
    /// Deliveries the current consumer still has of those it had when
    /// created: none left means the snapshot is complete.
    remaining: u64,
}

impl<K, V> Loading<K, V> {
    fn new() -> Self {
        Loading {
            entries: HashMap::new(),
            position: 0,
            remaining: 0,
        }
    }
}

/// The background side: owns the consumer and applies what it delivers.
struct Follower<K, V> {
    js: JetStream,
    config: ReplicaConfig,
    key: KeyFn<K>,
    decode: DecodeFn<V>,
    shared: Arc<Shared<K, V>>,
    states: watch::Receiver<ConnectionState>,
    sub: Option<Subscriber>,
    consumer: String,
    /// Consumer sequence expected next: another one means a delivery went
    /// missing.
    next_consumer_seq: u64,
    /// Stream position of the last message applied to the shared state.
    position: u64,
    loading: Option<Loading<K, V>>,
    last_contact: Instant,
}

impl<K, V> Follower<K, V>
where
    V: Send + Sync + 'static,
    K: Eq + Hash + Clone + Send + Sync + 'static,
{
    /// Waits for one thing and handles it: a delivery, a heartbeat or flow
    /// control, a connection change, or too long a silence. Fails only
    /// once the client is closed.
    async fn step(&mut self) -> Result<()> {
        let closed = || Err(herald_client::Error::Closed.into());
        let deadline = tokio::time::Instant::from_std(self.last_contact + self.config.silence_max());
        let sub = self
            .sub
            .as_mut()
            .expect("a follower between steps has a consumer");
        // Deliveries dropped by a full queue show as a gap in the consumer
        // sequence when a later one arrives; if none does (the tail was
        // dropped), the queue running dry says so.
        let dropped = sub.dropped() > 0;
        tokio::select! {
            biased;
            message = sub.next() => match message {
                Some(message) => self.handle(message).await,
                // The subscription only ends with the client.
                None => closed(),
            },
            () = std::future::ready(()), if dropped => self.recover("the queue dropped deliveries").await,
            () = tokio::time::sleep_until(deadline) => self.recover("no heartbeat").await,
            changed = self.states.changed() => {
                let state = changed.map(|()| *self.states.borrow_and_update());
                match state {
                    // Deliveries sent while disconnected are lost, and a
                    // restarted server has no ephemeral consumers left.
                    Ok(ConnectionState::Connected) => self.recover("reconnected").await,
                    Ok(ConnectionState::Reconnecting) => {
                        self.set_connected(false);
                        Ok(())
                    }
                    Ok(ConnectionState::Closed) | Err(_) => closed(),
                }
            }
        }
    }

    async fn handle(&mut self, message: Message) -> Result<()> {
        self.contact();
        if message.status.is_some() {
            return self.control(&message).await;
        }
        let Some(info) = message.reply.as_deref().and_then(|r| MessageInfo::parse(r).ok()) else {
            // Not a consumer delivery (someone published to our inbox).
            return Ok(());
        };
        if info.consumer_seq != self.next_consumer_seq || info.stream_seq <= self.applied() {
            return self.recover("missed a delivery").await;
        }
        self.next_consumer_seq += 1;
        self.apply(&message, info.stream_seq);
        if let Some(loading) = &mut self.loading {
            loading.remaining = loading.remaining.saturating_sub(1);
            if loading.remaining == 0 || info.pending == 0 {
                self.finish_loading();
            }
        }
        Ok(())
    }

    /// Handles a status message: flow control, or an idle heartbeat.
    async fn control(&mut self, message: &Message) -> Result<()> {
        let client = self.js.client();
        if message.status != Some(100) {
            // E.g. 409 Consumer Deleted: nothing more will come from it.
            return self.recover("consumer status").await;
        }
        if let Some(reply) = message.reply.as_deref().filter(|r| !r.is_empty()) {
            // Flow control: the server waits for this answer.
            let _ = client.publish(reply, b"");
            return Ok(());
        }
        let header = |name| message.headers.as_ref().and_then(|h| h.get(name));
        let stalled = header(js_headers::CONSUMER_STALLED);
        if let Some(stalled) = stalled {
            // Our flow-control answer was lost; the server still waits.
            let _ = client.publish(stalled, b"");
        }
        if let Some(last_sent) = header(js_headers::LAST_CONSUMER).and_then(|v| v.parse::<u64>().ok()) {
            if last_sent >= self.next_consumer_seq {
                return self.recover("heartbeat reports a missed delivery").await;
            }
            if stalled.is_none() {
                // Idle with everything sent: whatever a snapshot still
                // expects (a message removed meanwhile) is not coming.
                self.finish_loading();
            }
        }
        Ok(())
    }

    /// Stream position of the last message applied to what is being built.
    fn applied(&self) -> u64 {
        self.loading.as_ref().map_or(self.position, |l| l.position)
    }

    /// Applies one delivery; one that yields no key or value is skipped,
    /// but its position counts as applied.
    fn apply(&mut self, message: &Message, position: u64) {
        let change = match (self.key)(&message.subject) {
            None => Err("no key in the subject".to_string()),
            Some(key) if message.payload.is_empty() => Ok((key, None)),
            Some(key) => (self.decode)(message)
                .map(|value| (key, Some(Arc::new(value))))
                .map_err(|e| e.to_string()),
        };
        let change = change.map_err(|why| {
            let subject = &message.subject;
            tracing::warn!(stream = %self.config.stream, subject, position, why, "replica skips a message");
            self.shared.health().skipped += 1;
        });
        if let Some(loading) = &mut self.loading {
            if let Ok((key, value)) = change {
                set(&mut loading.entries, key, value);
            }
            loading.position = position;
            return;
        }
        if let Ok((key, value)) = &change {
            set(&mut self.shared.write(), key.clone(), value.clone());
        }
        self.position = position;
        self.shared.position.send_replace(position);
        if let Ok((key, value)) = change {
            // No receivers is fine.
            let _ = self.shared.changes.send(Change { key, value, position });
        }
    }

    /// Makes a complete snapshot the shared state.
    fn finish_loading(&mut self) {
        let Some(loading) = self.loading.take() else {
            return;
        };
        let position = loading.position;
        let mut changes = Vec::new();
        if self.shared.changes.receiver_count() > 0 {
            // The map is only written here, so what is read now stays true.
            let old = self.shared.read();
            let gone = old.keys().filter(|k| !loading.entries.contains_key(*k));
            changes.extend(gone.map(|key| (key.clone(), None)));
            changes.extend(loading.entries.iter().map(|(k, v)| (k.clone(), Some(v.clone()))));
        }
        let old = std::mem::replace(&mut *self.shared.write(), loading.entries);
        // Freed outside the lock.
        drop(old);
        self.position = position;
        self.shared.position.send_replace(position);
        for (key, value) in changes {
            let _ = self.shared.changes.send(Change { key, value, position });
        }
    }

    /// Replaces the consumer, retrying until the server takes it; reads
    /// keep being served meanwhile. Fails only once the client is closed.
    async fn recover(&mut self, why: &str) -> Result<()> {
        let (stream, filter) = (&self.config.stream, &self.config.filter);
        tracing::debug!(%stream, %filter, why, "replica recreates its consumer");
        self.set_connected(false);
        self.delete_consumer();
        self.shared.health().recoveries += 1;
        let mut delay = RETRY_DELAY_MIN;
        loop {
            if self.js.client().connection_state() == ConnectionState::Closed {
                return Err(herald_client::Error::Closed.into());
            }
            let Err(e) = self.resume().await else {
                return Ok(());
            };
            tracing::debug!(stream = %self.config.stream, error = %e, "replica cannot resume yet");
            // Sleep, or less if the connection comes back.
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                changed = self.states.changed() => if changed.is_err() {
                    return Err(herald_client::Error::Closed.into());
                },
            }
            delay = (delay * 2).min(RETRY_DELAY_MAX);
        }
    }

    /// Creates the consumer that continues from what was applied.
    async fn resume(&mut self) -> Result<()> {
        if let Some(loading) = &self.loading {
            // Nothing applied yet: the last message of each subject again.
            let from = (loading.position > 0).then_some(loading.position + 1);
            return self.create_consumer(from).await;
        }
        // Messages after our position that are gone may have been
        // anything, deletions included; a stream behind our position was
        // recreated. Either way only a full reload is right.
        let state = self.js.stream_info(&self.config.stream).await?.state;
        if state.first_seq > self.position + 1 || state.last_seq < self.position {
            let (stream, position) = (&self.config.stream, self.position);
            tracing::info!(%stream, position, "replica reloads the stream");
            self.shared.health().resyncs += 1;
            // Kept if the consumer cannot be created now: the next try
            // reloads too.
            self.loading = Some(Loading::new());
            return self.create_consumer(None).await;
        }
        self.create_consumer(Some(self.position + 1)).await
    }

    /// Creates a consumer delivering every message from stream position
    /// `from` on, or (`None`) the last message of each subject first.
    async fn create_consumer(&mut self, from: Option<u64>) -> Result<()> {
        let client = self.js.client().clone();
        let inbox = client.new_inbox();
        let sub = client.subscribe(&inbox).await?;
        let config = ConsumerConfig {
            description: "herald-events replica".into(),
            deliver_subject: inbox,
            filter_subject: self.config.filter.clone(),
            deliver_policy: match from {
                Some(_) => DeliverPolicy::ByStartSequence,
                None => DeliverPolicy::LastPerSubject,
            },
            opt_start_seq: from.unwrap_or(0),
            ack_policy: AckPolicy::None,
            max_deliver: 1,
            replay_policy: ReplayPolicy::Instant,
            flow_control: true,
            idle_heartbeat: nanos(self.config.heartbeat),
            inactive_threshold: nanos(INACTIVE_THRESHOLD),
            mem_storage: true,
            num_replicas: 1,
            ..ConsumerConfig::default()
        };
        let info = self.js.create_consumer(&self.config.stream, config).await?;
        self.consumer = info.name;
        self.sub = Some(sub);
        self.next_consumer_seq = 1;
        self.contact();
        self.set_connected(true);
        if let Some(loading) = &mut self.loading {
            // Deliveries may have started before the reply was written.
            loading.remaining = info.num_pending + info.delivered.consumer_seq;
            if loading.remaining == 0 {
                self.finish_loading();
            }
        }
        Ok(())
    }

    fn contact(&mut self) {
        self.last_contact = Instant::now();
        self.shared.health().last_contact = self.last_contact;
    }

    fn set_connected(&self, connected: bool) {
        self.shared.health().connected = connected;
    }
}

impl<K, V> Follower<K, V> {
    /// Asks the server to drop the current consumer, without waiting (it
    /// goes by itself once inactive if this does not arrive).
    fn delete_consumer(&mut self) {
        if let Some(sub) = self.sub.take() {
            sub.unsubscribe();
            let subject = format!(
                "{}.CONSUMER.DELETE.{}.{}",
                self.js.api_prefix(),
                self.config.stream,
                self.consumer
            );
            let _ = self.js.client().publish(&subject, b"");
        }
    }
}

impl<K, V> Drop for Follower<K, V> {
    fn drop(&mut self) {
        self.delete_consumer();
    }
}

/// Sets or (for `None`) removes `key`.
fn set<K: Eq + Hash, V>(entries: &mut HashMap<K, Arc<V>>, key: K, value: Option<Arc<V>>) {
    let _previous = match value {
        Some(value) => entries.insert(key, value),
        None => entries.remove(&key),
    };
}

fn nanos(duration: Duration) -> i64 {
    i64::try_from(duration.as_nanos()).unwrap_or(i64::MAX)
}
