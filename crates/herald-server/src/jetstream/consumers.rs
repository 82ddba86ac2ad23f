//! Creating, recovering and deleting consumers, and checking their
//! configurations.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use herald_core::consumer::{AckPolicy, Consumer, ConsumerPolicy};
use herald_core::{validate_literal_subject, validate_subject};
use herald_protocol::jetstream::config::{
    AckPolicy as ApiAckPolicy, ConsumerConfig, DeliverPolicy, ReplayPolicy,
};
use herald_protocol::jetstream::ApiErrorCode as Code;
use herald_storage::SubjectFilter;
use parking_lot::Mutex;
use tokio::sync::Notify;

use super::consumer::{ConsumerInner, ConsumerShared};
use super::convert::{subjects_overlap, valid_name};
use super::persist::{self, Meta};
use super::settings::{ConsumerSettings, Retention};
use super::stream::Stream;
use super::{err, err_arg, monotonic_ns, unix_now_ns, JetStream, JsError};
use crate::ServerState;

/// Metadata key of the Herald extension naming a consumer's dead-letter
/// subject.
pub(crate) const DEAD_LETTER_METADATA_KEY: &str = "herald.dead_letter_subject";
/// Shortest idle heartbeat accepted.
const IDLE_HEARTBEAT_NS_MIN: i64 = 100_000_000;

/// Checks a consumer configuration (defaults applied) against its stream.
pub(crate) fn consumer_settings(
    config: &ConsumerConfig,
    stream: &Stream,
) -> Result<(ConsumerSettings, ConsumerPolicy), JsError> {
    let invalid = |why: &str| err_arg(Code::ConsumerInvalidPolicy, why);
    let stream_inner = stream.inner.lock();
    if !config.filter_subject.is_empty() && !config.filter_subjects.is_empty() {
        return Err(err(Code::ConsumerDuplicateFilterSubjects));
    }
    let filters: Vec<String> = config.filters().into_iter().map(str::to_owned).collect();
    for (i, filter) in filters.iter().enumerate() {
        if filters[..i].iter().any(|other| subjects_overlap(other, filter)) {
            return Err(err(Code::ConsumerOverlappingSubjectFilters));
        }
    }
    for filter in &filters {
        if validate_subject(filter.as_bytes()).is_err() {
            return Err(err(Code::ConsumerFilterNotSubset));
        }
        if !stream_inner
            .settings
            .subjects
            .iter()
            .any(|s| subjects_overlap(s, filter))
        {
            return Err(err(Code::ConsumerFilterNotSubset));
        }
    }
    let push = !config.deliver_subject.is_empty();
    if push {
        if validate_subject(config.deliver_subject.as_bytes()).is_err() {
            return Err(err(Code::ConsumerInvalidDeliverSubject));
        }
        if validate_literal_subject(config.deliver_subject.as_bytes()).is_err() {
            return Err(err(Code::ConsumerDeliverToWildcards));
        }
    } else {
        if config.idle_heartbeat > 0 {
            return Err(err(Code::ConsumerHeartbeatRequiresPush));
        }
        if config.flow_control {
            return Err(err(Code::ConsumerFlowControlRequiresPush));
        }
    }
    if config.idle_heartbeat > 0 && config.idle_heartbeat < IDLE_HEARTBEAT_NS_MIN {
        return Err(err(Code::ConsumerSmallHeartbeat));
    }
    if config.flow_control && config.idle_heartbeat == 0 {
        return Err(err(Code::ConsumerWithFlowControlNeedsHeartbeats));
    }
    if config.max_deliver > 0
        && !config.backoff.is_empty()
        && config.max_deliver as usize <= config.backoff.len()
    {
        return Err(err(Code::ConsumerMaxDeliverBackoff));
    }
    if config.backoff.iter().any(|&b| b <= 0) || config.ack_wait < 0 {
        return Err(invalid("ack wait and backoff values must be positive"));
    }
    let ack = match config.ack_policy {
        ApiAckPolicy::None => AckPolicy::None,
        ApiAckPolicy::All => AckPolicy::All,
        ApiAckPolicy::Explicit => AckPolicy::Explicit,
        ApiAckPolicy::FlowControl => return Err(invalid("ack policy flow_control is not supported")),
    };
    if stream_inner.settings.retention == Retention::WorkQueue {
        if ack != AckPolicy::Explicit {
            return Err(err(Code::ConsumerWqRequiresExplicitAck));
        }
        if config.deliver_policy != DeliverPolicy::All {
            return Err(err(Code::ConsumerWqConsumerNotDeliverAll));
        }
    }
    if config.deliver_policy == DeliverPolicy::ByStartSequence && config.opt_start_seq == 0 {
        return Err(invalid(
            "consumer delivery policy is deliver by start sequence, but optional start sequence is not set",
        ));
    }
    if config.deliver_policy == DeliverPolicy::LastPerSubject && filters.is_empty() {
        return Err(invalid(
            "consumer delivery policy is deliver last per subject, but optional filter subject is not set",
        ));
    }
    if config.deliver_policy == DeliverPolicy::ByStartTime && config.opt_start_time.is_none() {
        return Err(invalid(
            "consumer delivery policy is deliver by start time, but optional start time is not set",
        ));
    }
    let dead_letter_subject = match config.metadata.get(DEAD_LETTER_METADATA_KEY) {
        None => None,
        Some(subject) if validate_literal_subject(subject.as_bytes()).is_ok() => Some(subject.clone()),
        Some(_) => return Err(invalid("herald.dead_letter_subject must be a literal subject")),
    };
    let positive = |n: i64| (n > 0).then_some(n as u64);
    let settings = ConsumerSettings {
        filter: SubjectFilter::new(filters),
        deliver_subject: push.then(|| config.deliver_subject.clone()),
        idle_heartbeat_ns: config.idle_heartbeat.max(0) as u64,
        flow_control: config.flow_control,
        max_waiting: config.max_waiting.max(0) as usize,
        max_batch: positive(config.max_batch),
        headers_only: config.headers_only,
        dead_letter_subject,
        durable: config.is_durable(),
        inactive_threshold_ns: config.inactive_threshold.max(0) as u64,
        replay_original: config.replay_policy == ReplayPolicy::Original,
    };
    let policy = ConsumerPolicy {
        ack,
        ack_wait_ns: config.ack_wait.max(0) as u64,
        max_deliver: positive(config.max_deliver),
        backoff_ns: config.backoff.iter().map(|&b| b as u64).collect(),
        max_ack_pending: positive(config.max_ack_pending),
    };
    Ok((settings, policy))
}

/// Where a new consumer starts, from its deliver policy.
fn start_seq(
    config: &ConsumerConfig,
    stream: &Stream,
    filter: &SubjectFilter,
) -> Result<(u64, u64), JsError> {
    let mut inner = stream.inner.lock();
    let state = inner.store.state();
    let store_err = super::stream::store_error;
    // (start sequence, last-per-subject boundary)
    Ok(match config.deliver_policy {
        DeliverPolicy::All => (state.first_seq, 0),
        DeliverPolicy::New => (state.last_seq + 1, 0),
        DeliverPolicy::Last => match inner.store.last_matching(filter).map_err(store_err)? {
            Some(msg) => (msg.seq, 0),
            None => (state.last_seq + 1, 0),
        },
        DeliverPolicy::ByStartSequence => (config.opt_start_seq, 0),
        DeliverPolicy::ByStartTime => {
            let at = config.opt_start_time.and_then(|t| t.unix_nanos()).unwrap_or(0);
            (inner.store.seq_at_time(at).map_err(store_err)?, 0)
        }
        DeliverPolicy::LastPerSubject => {
            let subjects = inner.store.subject_counts(filter);
            let first = subjects
                .iter()
                .filter_map(|(subject, _)| inner.store.last_seq_of_subject(subject))
                .min()
                .unwrap_or(state.last_seq + 1);
            (first, state.last_seq)
        }
    })
}

impl JetStream {
    /// Creates a consumer, or returns the existing one when the
    /// configuration is the same (or updates it when `update` allows).
    pub fn create_consumer(
        &self,
        state: &Arc<ServerState>,
        stream: &Arc<Stream>,
        config: ConsumerConfig,
        update: bool,
    ) -> Result<Arc<ConsumerShared>, JsError> {
        let stream_config = stream.inner.lock().config.clone();
        let mut config = config.with_defaults(&stream_config);
        let name = match (config.name.is_empty(), config.durable_name.is_empty()) {
            (false, _) => config.name.clone(),
            (true, false) => config.durable_name.clone(),
            (true, true) => random_name(),
        };
        if !valid_name(&name) {
            return Err(err(Code::ConsumerBadDurableName));
        }
        config.name = name.clone();
        let (settings, policy) = consumer_settings(&config, stream)?;
        if let Some(existing) = self.consumer(&stream.name, &name) {
            let mut inner = existing.inner.lock();
            if inner.config == config {
                drop(inner);
                return Ok(existing);
            }
            if !update {
                return Err(err(Code::ConsumerAlreadyExists));
            }
            let before = &inner.config;
            let refused = if before.ack_policy != config.ack_policy {
                Some("ack policy can not be updated")
            } else if before.deliver_policy != config.deliver_policy
                || before.opt_start_seq != config.opt_start_seq
                || before.opt_start_time != config.opt_start_time
            {
                Some("deliver policy can not be updated")
            } else if before.is_pull() != config.is_pull() {
                Some("can not change a consumer between push and pull")
            } else {
                None
            };
            if let Some(why) = refused {
                return Err(err_arg(Code::ConsumerCreate, why));
            }
            inner.config = config.clone();
            let filter = settings.filter.clone();
            inner.settings = settings;
            // Counted for the old filter.
            inner.pending_count.set(None);
            inner.machine.set_policy(policy);
            drop(inner);
            // Interest retention reads the filters the stream keeps.
            for (waker, kept) in stream.wakers.lock().iter_mut() {
                if Arc::ptr_eq(waker, &existing.waker) {
                    *kept = filter.clone();
                }
            }
            if let Some(dir) = &existing.dir {
                persist::save_meta(
                    dir,
                    &Meta {
                        config,
                        created_ns: existing.created_ns,
                    },
                )
                .map_err(|e| err_arg(Code::ConsumerStoreFailed, e))?;
            }
            existing.waker.notify_one();
            return Ok(existing);
        }
        let existing = self.consumers_of(&stream.name);
        {
            let inner = stream.inner.lock();
            if inner
                .settings
                .max_consumers
                .is_some_and(|max| existing.len() as u64 >= max)
            {
                return Err(err(Code::MaximumConsumersLimit));
            }
            if inner.settings.retention == Retention::WorkQueue {
                for other in &existing {
                    let other = other.inner.lock();
                    let (a, b) = (&other.settings.filter, &settings.filter);
                    if a.is_all() || b.is_all() {
                        return Err(err(Code::ConsumerWqMultipleUnfiltered));
                    }
                    let clash = a
                        .patterns()
                        .iter()
                        .any(|x| b.patterns().iter().any(|y| subjects_overlap(x, y)));
                    if clash {
                        return Err(err(Code::ConsumerWqConsumerNotUnique));
                    }
                }
            }
        }
        let (start, last_per_subject_until) = start_seq(&config, stream, &settings.filter)?;
        let created_ns = unix_now_ns();
        let dir = match (&stream.dir, settings.durable) {
            (Some(dir), true) => Some(dir.join("consumers").join(&name)),
            _ => None,
        };
        if let Some(dir) = &dir {
            persist::save_meta(
                dir,
                &Meta {
                    config: config.clone(),
                    created_ns,
                },
            )
            .map_err(|e| err_arg(Code::ConsumerStoreFailed, e))?;
        }
        let machine = Consumer::new(policy, start);
        let consumer = self.register(state, stream, name, created_ns, dir, config, settings, machine);
        consumer.inner.lock().last_per_subject_until = last_per_subject_until;
        Ok(consumer)
    }

    #[allow(clippy::too_many_arguments)]
    fn register(
        &self,
        state: &Arc<ServerState>,
        stream: &Arc<Stream>,
        name: String,
        created_ns: i64,
        dir: Option<std::path::PathBuf>,
        config: ConsumerConfig,
        settings: ConsumerSettings,
        machine: Consumer,
    ) -> Arc<ConsumerShared> {
        let now = monotonic_ns();
        let consumer = Arc::new(ConsumerShared {
            stream: stream.clone(),
            name: name.clone(),
            created_ns,
            dir,
            waker: Arc::new(Notify::new()),
            inner: Mutex::new(ConsumerInner {
                config,
                settings,
                machine,
                waiting: VecDeque::new(),
                dirty: false,
                last_push_ns: now,
                last_active_ns: now,
                active: false,
                last_delivery_unix_ns: 0,
                dead_lettered: 0,
                push_bound: false,
                last_per_subject_until: 0,
                replay_mark: None,
                replay_wake_ns: None,
                flow_control_bytes: 0,
                flow_control_waiting: None,
                more_ready: false,
                pending_count: std::cell::Cell::new(None),
            }),
            deleted: AtomicBool::new(false),
        });
        let filter = consumer.inner.lock().settings.filter.clone();
        stream.wakers.lock().push((consumer.waker.clone(), filter));
        self.consumers
            .write()
            .entry(stream.name.clone())
            .or_default()
            .insert(name, consumer.clone());
        tokio::spawn(super::consumer_task::run(
            state.clone(),
            consumer.clone(),
            self.shutdown.clone(),
        ));
        consumer
    }

    /// Reopens the durable consumers saved with `stream`.
    pub fn recover_consumers(&self, state: &Arc<ServerState>, stream: &Arc<Stream>) {
        let Some(stream_dir) = &stream.dir else {
            return;
        };
        let Ok(entries) = std::fs::read_dir(stream_dir.join("consumers")) else {
            return;
        };
        for dir in entries.filter_map(|e| e.ok()).map(|e| e.path()) {
            let meta: Meta<ConsumerConfig> = match persist::load_meta(&dir) {
                Ok(meta) => meta,
                Err(e) => {
                    tracing::error!(dir = %dir.display(), error = %e, "cannot read consumer metadata; skipped");
                    continue;
                }
            };
            let (settings, policy) = match consumer_settings(&meta.config, stream) {
                Ok(checked) => checked,
                Err(e) => {
                    tracing::error!(dir = %dir.display(), error = %e.0, "stored consumer config refused; skipped");
                    continue;
                }
            };
            let machine = match persist::load_consumer_state(&dir) {
                Ok(Some(saved)) => Consumer::restore(policy, &saved, monotonic_ns()),
                Ok(None) => match start_seq(&meta.config, stream, &settings.filter) {
                    Ok((start, _)) => Consumer::new(policy, start),
                    Err(_) => continue,
                },
                Err(e) => {
                    tracing::error!(dir = %dir.display(), error = %e, "cannot read consumer state; skipped");
                    continue;
                }
            };
            let name = meta.config.name.clone();
            let consumer = self.register(
                state,
                stream,
                name,
                meta.created_ns,
                Some(dir),
                meta.config,
                settings,
                machine,
            );
            tracing::info!(stream = %stream.name, consumer = %consumer.name, "consumer recovered");
        }
    }

    /// Deletes a consumer and its saved state.
    pub fn delete_consumer(&self, stream: &str, name: &str) -> Result<(), JsError> {
        let Some(consumer) = self.consumer(stream, name) else {
            return Err(err(Code::ConsumerNotFound));
        };
        self.forget_consumer(&consumer);
        if let Some(dir) = &consumer.dir {
            if let Err(e) = std::fs::remove_dir_all(dir) {
                tracing::error!(consumer = %name, error = %e, "cannot remove consumer files");
            }
        }
        Ok(())
    }

    /// Removes a consumer from the registry and stops its task.
    pub fn forget_consumer(&self, consumer: &Arc<ConsumerShared>) {
        consumer.deleted.store(true, Ordering::Release);
        consumer.waker.notify_one();
        let mut consumers = self.consumers.write();
        if let Some(of_stream) = consumers.get_mut(&consumer.stream.name) {
            of_stream.remove(&consumer.name);
            if of_stream.is_empty() {
                consumers.remove(&consumer.stream.name);
            }
        }
        drop(consumers);
        consumer
            .stream
            .wakers
            .lock()
            .retain(|(w, _)| !Arc::ptr_eq(w, &consumer.waker));
    }
}

/// A name for an ephemeral consumer.
fn random_name() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    (0..8)
        .map(|_| ALPHABET[fastrand::usize(..ALPHABET.len())] as char)
        .collect()
}
