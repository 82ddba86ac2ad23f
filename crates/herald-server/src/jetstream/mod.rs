//! JetStream: durable streams and consumers behind the JSON API that NATS
//! clients speak (`$JS.API.>` requests, `$JS.ACK.>` acknowledgements).
//!
//! - [`JetStream`]: the registry of streams and consumers, their start-up
//!   recovery from the data directory, and their creation and deletion.
//! - [`stream`]: one stream — publish checks, dedup, commit before PubAck.
//! - [`consumer`] / [`consumer_task`]: delivery, pull requests, heartbeats,
//!   dead letters; one task per consumer.
//! - [`api`]: the request handlers; [`acks`]: the acknowledgement handler.
//! - [`commit`]: group commit for `sync: always`.

pub(crate) mod acks;
pub(crate) mod api;
mod batch;
pub(crate) mod commit;
pub(crate) mod consumer;
pub(crate) mod consumer_task;
mod consumers;
mod convert;
pub(crate) mod headers;
mod lifecycle;
pub(crate) mod metrics;
pub(crate) mod persist;
pub(crate) mod settings;
pub(crate) mod stream;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use herald_protocol::jetstream::{ApiError, ApiErrorCode, ResponseType};
use parking_lot::RwLock;
use rustc_hash::FxHashMap;

pub(crate) use consumer::ConsumerShared;
pub(crate) use convert::acking_capture_refusal;
pub(crate) use settings::SyncPolicy;
pub(crate) use stream::Stream;

/// An API error on its way to a client.
#[derive(Debug, Clone)]
pub(crate) struct JsError(pub ApiError);

impl From<ApiError> for JsError {
    fn from(e: ApiError) -> JsError {
        JsError(e)
    }
}

impl JsError {
    /// The API reply of this error.
    pub fn json(&self, ty: ResponseType) -> Bytes {
        self.0.to_response(ty).into()
    }

    /// The reply to a refused publish.
    pub fn pub_ack_json(&self, stream: &str) -> Bytes {
        self.0.to_pub_ack_response(stream).into()
    }
}

/// The error of one row of the JetStream error table.
pub(crate) fn err(kind: ApiErrorCode) -> JsError {
    JsError(ApiError::new(kind))
}

/// The error of one row of the table, its placeholder filled with `arg`.
pub(crate) fn err_arg(kind: ApiErrorCode, arg: impl std::fmt::Display) -> JsError {
    JsError(ApiError::with_arg(kind, arg))
}

/// Every stream and consumer of the server.
pub(crate) struct JetStream {
    /// Where file streams live.
    pub dir: PathBuf,
    /// The server-wide sync policy (streams may override it).
    pub sync: SyncPolicy,
    pub sync_interval_ms: u64,
    pub streams: RwLock<BTreeMap<String, Arc<Stream>>>,
    /// Consumers by stream name, then consumer name (looked up on every
    /// ack, without allocating).
    pub consumers: RwLock<FxHashMap<String, FxHashMap<String, Arc<ConsumerShared>>>>,
    /// Tells consumer tasks the server is stopping.
    pub shutdown: tokio::sync::watch::Receiver<bool>,
}

impl JetStream {
    pub fn new(
        data_dir: &std::path::Path,
        sync: SyncPolicy,
        sync_interval_ms: u64,
        shutdown: tokio::sync::watch::Receiver<bool>,
    ) -> JetStream {
        JetStream {
            shutdown,
            dir: persist::streams_dir(data_dir),
            sync,
            sync_interval_ms,
            streams: RwLock::new(BTreeMap::new()),
            consumers: RwLock::new(FxHashMap::default()),
        }
    }

    pub fn stream(&self, name: &str) -> Option<Arc<Stream>> {
        self.streams.read().get(name).cloned()
    }

    pub fn consumer(&self, stream: &str, name: &str) -> Option<Arc<ConsumerShared>> {
        self.consumers.read().get(stream)?.get(name).cloned()
    }

    /// Consumers of one stream, by name.
    pub fn consumers_of(&self, stream: &str) -> Vec<Arc<ConsumerShared>> {
        let mut found: Vec<_> = self
            .consumers
            .read()
            .get(stream)
            .map(|c| c.values().cloned().collect())
            .unwrap_or_default();
        found.sort_by(|a, b| a.name.cmp(&b.name));
        found
    }

    /// Number of consumers of all streams.
    pub fn consumer_count(&self) -> usize {
        self.consumers.read().values().map(|c| c.len()).sum()
    }
}

/// Nanoseconds since the Unix epoch.
pub(crate) fn unix_now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos().min(i64::MAX as u128) as i64)
}

/// Nanoseconds on the monotonic clock consumers' deadlines use.
pub(crate) fn monotonic_ns() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_nanos() as u64 + 1
}

/// Subscribes the API and acknowledgement handlers, reopens the streams and
/// consumers in the data directory, and starts the periodic sync.
pub(crate) fn start(state: &Arc<crate::ServerState>) {
    let weak = Arc::downgrade(state);
    let handlers: [(&str, Arc<dyn crate::router::InternalHandler>); 3] = [
        ("$JS.API.>", Arc::new(api::Api { state: weak.clone() })),
        ("$JS.ACK.>", Arc::new(acks::Acks { state: weak.clone() })),
        ("$JS.FC.>", Arc::new(acks::FlowControl { state: weak.clone() })),
    ];
    for (subject, handler) in handlers {
        let sub = Arc::new(crate::router::InternalSub {
            subject: subject.as_bytes().into(),
            handler,
        });
        state
            .router
            .insert_internal(&sub)
            .expect("the JetStream API subjects are valid");
    }
    state.jetstream.recover(state);
    let sync_every = std::time::Duration::from_millis(state.jetstream.sync_interval_ms);
    let mut shutdown = state.jetstream.shutdown.clone();
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(MAINTENANCE_INTERVAL);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_sync = std::time::Instant::now();
        loop {
            tokio::select! {
                _ = ticks.tick() => {}
                _ = shutdown.changed() => return,
            }
            let Some(state) = weak.upgrade() else {
                return;
            };
            let sync = last_sync.elapsed() >= sync_every;
            if sync {
                last_sync = std::time::Instant::now();
            }
            let _ = tokio::task::spawn_blocking(move || {
                state.jetstream.expire_old_messages();
                if sync {
                    state.jetstream.sync_interval_streams();
                }
            })
            .await;
        }
    });
}

/// How often streams drop messages past `max_age` (and check whether the
/// periodic sync is due).
const MAINTENANCE_INTERVAL: std::time::Duration = std::time::Duration::from_millis(100);

impl JetStream {
    /// Removes messages older than their stream's `max_age` or past their
    /// `Nats-TTL`.
    pub fn expire_old_messages(&self) {
        let streams: Vec<_> = self.streams.read().values().cloned().collect();
        let now = unix_now_ns();
        for stream in streams {
            stream.expire_ttls(now);
            let mut inner = stream.inner.lock();
            if inner.settings.store.max_age.is_none() {
                continue;
            }
            match inner.store.expire(now) {
                Ok(0) => {}
                Ok(_) => {
                    if let Err(e) = inner.store.write_out() {
                        tracing::error!(stream = %stream.name, error = %e, "cannot write expiry");
                    }
                }
                Err(e) => tracing::error!(stream = %stream.name, error = %e, "cannot expire messages"),
            }
        }
    }

    /// Writes out and fsyncs every stream (shutdown).
    pub fn sync_all(&self) {
        let streams: Vec<_> = self.streams.read().values().cloned().collect();
        for stream in streams {
            if let Err(e) = stream.sync_now() {
                tracing::error!(stream = %stream.name, error = %e, "final fsync failed");
            }
        }
    }
}
