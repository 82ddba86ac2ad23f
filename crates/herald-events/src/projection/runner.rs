//! The projection runner: a durable pull consumer feeding a read model.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::pin;
use std::time::Duration;

use herald_client::jetstream::{
    AckPolicy, ConsumerConfig, ConsumerInfo, DeliverPolicy, JetStream, JsMessage, ReplayPolicy, Timestamp,
};
use herald_protocol::jetstream::AckMetadata;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::{Projection, ProjectionError, ReadModel};
use crate::event::RecordedEvent;
use crate::naming::check_token;
use crate::store::EventStore;
use crate::Error;

/// Most events one pull asks for ([`RunnerConfig::batch_max`]). Each pull
/// is received on a subscription of its own, which the SDK lets hold 8192
/// messages by default: a bigger batch could overflow it.
pub const FETCH_BATCH_MAX: usize = 4096;
/// Longest wait of one pull for new events ([`RunnerConfig::fetch_expires_ms`]).
pub const FETCH_EXPIRES_MS_MAX: u64 = 60_000;
/// Longest acknowledgement wait ([`RunnerConfig::ack_wait_ms`]).
pub const ACK_WAIT_MS_MAX: u64 = 3_600_000;
/// Pulls kept outstanding while events are pending.
const PULLS_AHEAD: usize = 2;
/// Pull requests the consumer accepts at once: those ahead, and room for
/// those left behind by a stopped run. Also the batches that may be
/// unacknowledged at once (the one applied and those ahead).
const PULLS_MAX: usize = PULLS_AHEAD + 2;
/// First wait before [`ProjectionRunner::run`] retries after the
/// connection or server failed; it doubles on each failure in a row...
const RETRY_DELAY_MS_MIN: u64 = 100;
/// ...up to this.
const RETRY_DELAY_MS_MAX: u64 = 5_000;

/// How a [`ProjectionRunner`] pulls events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunnerConfig {
    /// Events per pull, and so at most per transaction of the read model
    /// (1 to [`FETCH_BATCH_MAX`], default 1000).
    pub batch_max: usize,
    /// How long [`ProjectionRunner::run`] waits in one pull for new events
    /// once caught up (1 to [`FETCH_EXPIRES_MS_MAX`], default 5000).
    pub fetch_expires_ms: u64,
    /// How long the server waits for a batch to be applied and
    /// acknowledged before delivering it again (1000 to
    /// [`ACK_WAIT_MS_MAX`], default 60000). Redelivered events are skipped,
    /// so a too short wait costs only bandwidth.
    pub ack_wait_ms: u64,
}

impl Default for RunnerConfig {
    fn default() -> RunnerConfig {
        RunnerConfig {
            batch_max: 1000,
            fetch_expires_ms: 5_000,
            ack_wait_ms: 60_000,
        }
    }
}

impl RunnerConfig {
    fn bounded(self) -> RunnerConfig {
        RunnerConfig {
            batch_max: self.batch_max.clamp(1, FETCH_BATCH_MAX),
            fetch_expires_ms: self.fetch_expires_ms.clamp(1, FETCH_EXPIRES_MS_MAX),
            ack_wait_ms: self.ack_wait_ms.clamp(1_000, ACK_WAIT_MS_MAX),
        }
    }
}

/// Where a projection stands, as of its last batch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Progress {
    /// The position of the last event applied: the model's checkpoint.
    pub checkpoint: u64,
    /// The lag: events stored after the last one pulled, when it was
    /// delivered (0 once a pull found nothing more).
    pub pending: u64,
    /// Whether the last pull left nothing pending.
    pub caught_up: bool,
    /// Events applied by this runner.
    pub applied: u64,
    /// Events this runner was delivered again and skipped, because the
    /// checkpoint already covered them.
    pub skipped: u64,
}

/// Feeds a [`ReadModel`] from its category's stream through a durable pull
/// consumer named `projection_<name>`, filtered on `<category>.*`, with
/// `AckPolicy::All`.
///
/// Each batch (up to [`RunnerConfig::batch_max`] events) is applied with
/// its checkpoint in one transaction of the model, then acknowledged.
/// While events are pending, the next pulls are sent before a batch is
/// applied, so that pulling and applying overlap; once caught up,
/// [`ProjectionRunner::run`] waits for the next event with a long poll.
///
/// The model's checkpoint, not the consumer, decides where to resume: on
/// start the consumer is kept only if nothing it delivered is
/// unacknowledged and it has not delivered past the checkpoint; otherwise
/// it is created again from the event after the checkpoint (an
/// unacknowledged event would come back only after the ack wait, out of
/// order). Events at or below the checkpoint are skipped, and a delivery
/// that jumps past the next position (a message lost on the way) makes
/// the runner recreate the consumer from the checkpoint.
pub struct ProjectionRunner<M: ReadModel> {
    store: EventStore,
    model: M,
    config: RunnerConfig,
    stream: String,
    filter: String,
    consumer: String,
    progress: watch::Sender<Progress>,
}

/// Where a pull stands within one start of the runner.
struct Cursor {
    /// The last position applied or known to be covered by the checkpoint.
    floor: u64,
    /// The consumer was just created from `floor + 1`: its first delivery
    /// is the first stored event after it, even if positions were deleted.
    fresh: bool,
}

/// What one pull delivered, decoded in the pull's task (in parallel with
/// the batch before being applied).
struct Pulled {
    /// Each message's stream position and its event, or why it is not one
    /// (an error only if the event is to be applied).
    deliveries: Vec<(u64, Result<RecordedEvent, Error>)>,
    /// The last message, whose acknowledgement covers all before it.
    last: Option<JsMessage>,
    /// Events stored after the last message, when it was delivered.
    pending: u64,
}

/// What one delivered batch turned into.
struct Batch {
    events: Vec<RecordedEvent>,
    skipped: u64,
    /// A delivery jumped past the next position; the rest was dropped.
    gap: bool,
}

impl<M: ReadModel> ProjectionRunner<M> {
    /// A runner of `model`'s projection on `store`'s category stream, with
    /// the default [`RunnerConfig`]. Nothing is contacted until it runs.
    pub fn new(store: &EventStore, model: M) -> Result<ProjectionRunner<M>, ProjectionError> {
        let projection = model.projection();
        check_token("projection name", projection.name())?;
        check_token("category", projection.category())?;
        let category = projection.category();
        Ok(ProjectionRunner {
            stream: store.stream_name(category),
            filter: format!("{category}.*"),
            consumer: format!("projection_{}", projection.name()),
            store: store.clone(),
            model,
            config: RunnerConfig::default(),
            progress: watch::Sender::new(Progress::default()),
        })
    }

    /// This runner with `config` (each field bounded to its range).
    pub fn with_config(mut self, config: RunnerConfig) -> ProjectionRunner<M> {
        self.config = config.bounded();
        self
    }

    /// The read model.
    pub fn model(&self) -> &M {
        &self.model
    }

    /// The read model, to change between runs.
    pub fn model_mut(&mut self) -> &mut M {
        &mut self.model
    }

    /// The durable consumer's name: `projection_<name>`.
    pub fn consumer_name(&self) -> &str {
        &self.consumer
    }

    /// The category stream followed.
    pub fn stream_name(&self) -> &str {
        &self.stream
    }

    /// Where the projection stood after the last batch.
    pub fn progress(&self) -> Progress {
        *self.progress.borrow()
    }

    /// A receiver of [`Progress`], updated after every batch: wait on it
    /// for the lag to reach 0 or the checkpoint to reach a position.
    pub fn watch(&self) -> watch::Receiver<Progress> {
        self.progress.subscribe()
    }

    /// The lag as the server counts it now: events the consumer has not
    /// delivered plus those delivered but not yet acknowledged (an error
    /// before a run created the consumer).
    pub async fn lag(&self) -> Result<u64, ProjectionError> {
        let info = self
            .store
            .jetstream()
            .consumer_info(&self.stream, &self.consumer)
            .await?;
        Ok(info.num_pending + info.num_ack_pending)
    }

    /// Applies every event stored so far, then returns: pulls ask only for
    /// what is available (`no_wait`).
    pub async fn run_until_caught_up(&mut self) -> Result<Progress, ProjectionError> {
        let cursor = self.start().await?;
        let progress = self
            .pump(cursor, true, pin!(std::future::pending::<()>()))
            .await?;
        self.flush_acks().await?;
        Ok(progress)
    }

    /// Applies stored events, then new ones as they are appended, until
    /// `stop` completes (`std::future::pending()` runs forever). A batch
    /// being applied is finished first. When the connection or server
    /// fails, the runner starts again from the model's checkpoint, after
    /// 0.1 to 5 s; a bad event or a failing read model ends the run with
    /// the error.
    pub async fn run(&mut self, stop: impl Future<Output = ()>) -> Result<Progress, ProjectionError> {
        let mut stop = pin!(stop);
        let mut delay_ms = RETRY_DELAY_MS_MIN;
        loop {
            let before = self.progress();
            let result = match self.start().await {
                Ok(cursor) => self.pump(cursor, false, stop.as_mut()).await,
                Err(e) => Err(e),
            };
            match result {
                Ok(progress) => {
                    self.flush_acks().await?;
                    return Ok(progress);
                }
                Err(e) if e.is_transient() => {
                    let now = self.progress();
                    if now.applied + now.skipped > before.applied + before.skipped {
                        delay_ms = RETRY_DELAY_MS_MIN;
                    }
                    tracing::warn!(projection = self.model.projection().name(), error = %e, delay_ms, "projection runner restarts");
                    tokio::select! {
                        biased;
                        () = stop.as_mut() => return Ok(self.progress()),
                        () = tokio::time::sleep(Duration::from_millis(delay_ms)) => {}
                    }
                    delay_ms = (delay_ms * 2).min(RETRY_DELAY_MS_MAX);
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Builds the model again from the first event: empties it and its
    /// checkpoint (one transaction), deletes the durable consumer, and
    /// replays every stored event.
    pub async fn rebuild(&mut self) -> Result<Progress, ProjectionError> {
        self.model.reset().await?;
        self.delete_consumer().await?;
        self.progress.send_modify(|p| *p = Progress::default());
        self.run_until_caught_up().await
    }

    /// Deletes the durable consumer (nothing if there is none): for a
    /// projection that is retired, since durable consumers stay on the
    /// server. The model is left as it is.
    pub async fn delete_consumer(&self) -> Result<(), ProjectionError> {
        match self
            .store
            .jetstream()
            .delete_consumer(&self.stream, &self.consumer)
            .await
        {
            Ok(()) => Ok(()),
            Err(e) if e.is_consumer_not_found() || e.is_stream_not_found() => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Reads the checkpoint and gets a consumer that delivers what follows it.
    async fn start(&mut self) -> Result<Cursor, ProjectionError> {
        let checkpoint = self.model.checkpoint().await?;
        self.store
            .ensure_category(self.model.projection().category())
            .await?;
        let js = self.store.jetstream();
        let last = js.stream_info(&self.stream).await?.state.last_seq;
        if checkpoint > last {
            // Positions are the stream's sequences: a model ahead of the
            // stream was built from another stream (deleted and created
            // again?), and would skip new events.
            return Err(Error::invalid(
                "checkpoint",
                format!(
                    "projection {} is at position {checkpoint} but stream {} ends at {last}: rebuild it",
                    self.model.projection().name(),
                    self.stream
                ),
            )
            .into());
        }
        let fresh = match js.consumer_info(&self.stream, &self.consumer).await {
            Ok(info) if self.reusable(&info, checkpoint) => false,
            Ok(_) => {
                self.delete_consumer().await?;
                self.create_consumer(checkpoint + 1).await?;
                true
            }
            Err(e) if e.is_consumer_not_found() => {
                self.create_consumer(checkpoint + 1).await?;
                true
            }
            Err(e) => return Err(e.into()),
        };
        tracing::debug!(
            projection = self.model.projection().name(),
            checkpoint,
            fresh,
            "projection runner starts"
        );
        self.progress.send_modify(|p| p.checkpoint = checkpoint);
        Ok(Cursor {
            floor: checkpoint,
            fresh,
        })
    }

    fn consumer_config(&self, start: u64) -> ConsumerConfig {
        let (deliver_policy, opt_start_seq) = if start <= 1 {
            (DeliverPolicy::All, 0)
        } else {
            (DeliverPolicy::ByStartSequence, start)
        };
        ConsumerConfig {
            durable_name: self.consumer.clone(),
            description: format!("herald-events projection {}", self.model.projection().name()),
            filter_subject: self.filter.clone(),
            deliver_policy,
            opt_start_seq,
            ack_policy: AckPolicy::All,
            ack_wait: millis_as_nanos(self.config.ack_wait_ms),
            // The batch applied and those pulled ahead, with room to spare.
            max_ack_pending: (self.config.batch_max * PULLS_MAX) as i64,
            max_waiting: PULLS_MAX as i64,
            replay_policy: ReplayPolicy::Instant,
            ..ConsumerConfig::default()
        }
    }

    /// Whether the existing consumer can go on: configured as this runner
    /// would, nothing in flight, and not past the checkpoint.
    fn reusable(&self, info: &ConsumerInfo, checkpoint: u64) -> bool {
        let (want, have) = (self.consumer_config(1), &info.config);
        have.filter_subject == want.filter_subject
            && have.ack_policy == want.ack_policy
            && have.ack_wait == want.ack_wait
            && have.max_ack_pending == want.max_ack_pending
            && have.max_waiting == want.max_waiting
            && info.num_ack_pending == 0
            && info.num_waiting == 0
            && info.delivered.stream_seq <= checkpoint
    }

    async fn create_consumer(&self, start: u64) -> Result<(), ProjectionError> {
        self.store
            .jetstream()
            .create_consumer(&self.stream, self.consumer_config(start))
            .await?;
        Ok(())
    }

    /// Makes sure the server has the acknowledgements sent, so the
    /// consumer can be reused by the next start.
    async fn flush_acks(&self) -> Result<(), ProjectionError> {
        Ok(self.store.jetstream().client().flush().await?)
    }

    /// Pulls and applies batches until caught up (if `until_caught_up`),
    /// `stop`, or an error.
    ///
    /// While events are pending, up to [`PULLS_AHEAD`] `no_wait` pulls are
    /// kept outstanding, so the server prepares the next batches while one
    /// is applied. Once caught up, [`ProjectionRunner::run`] waits with a
    /// pull of a single event (the SDK's fetch returns when its batch is
    /// full), so a new event is applied at once and the events pending
    /// behind it follow in full batches again.
    async fn pump(
        &mut self,
        mut cursor: Cursor,
        until_caught_up: bool,
        mut stop: std::pin::Pin<&mut impl Future<Output = ()>>,
    ) -> Result<Progress, ProjectionError> {
        let js = self.store.jetstream().clone();
        let long_poll = Duration::from_millis(self.config.fetch_expires_ms);
        let mut pulls: VecDeque<Pull> = VecDeque::with_capacity(PULLS_AHEAD);
        // Unknown at the start: assume events are waiting.
        let mut backlog = true;
        loop {
            if pulls.is_empty() {
                let (batch, expires) = match (backlog, until_caught_up) {
                    (true, _) => (self.config.batch_max, Duration::ZERO),
                    (false, true) => return Ok(self.progress()),
                    (false, false) => (1, long_poll),
                };
                pulls.push_back(Pull::spawn(&js, &self.stream, &self.consumer, batch, expires));
            }
            let pull = pulls.pop_front().expect("a pull is outstanding");
            let pulled = tokio::select! {
                biased;
                () = stop.as_mut() => return Ok(self.progress()),
                pulled = pull.join() => pulled?,
            };
            let Some(last) = pulled.last else {
                if pulls.is_empty() {
                    backlog = false;
                    self.progress.send_modify(|p| {
                        p.pending = 0;
                        p.caught_up = true;
                    });
                }
                continue;
            };
            let pending = pulled.pending;
            backlog = pending > 0;
            // Ask for what is pending beyond the pulls already out.
            let mut asked: u64 = pulls.iter().map(|pull| pull.batch as u64).sum();
            let mut sent = false;
            while pulls.len() < PULLS_AHEAD && pending > asked {
                let batch = usize::try_from(pending - asked)
                    .unwrap_or(usize::MAX)
                    .min(self.config.batch_max);
                pulls.push_back(Pull::spawn(
                    &js,
                    &self.stream,
                    &self.consumer,
                    batch,
                    Duration::ZERO,
                ));
                asked += batch as u64;
                sent = true;
            }
            if sent {
                // Lets the pulls go out now even on a single-threaded runtime.
                tokio::task::yield_now().await;
            }
            let batch = take_batch(&mut cursor, pulled.deliveries)?;
            let applied = batch.events.len() as u64;
            if applied > 0 {
                let checkpoint = self.model.apply(batch.events).await?;
                cursor.floor = cursor.floor.max(checkpoint);
            }
            if !batch.gap {
                // With a gap nothing is acknowledged: the consumer is
                // replaced below anyway.
                last.ack()?;
            }
            self.progress.send_modify(|p| {
                p.checkpoint = cursor.floor;
                p.applied += applied;
                p.skipped += batch.skipped;
                if !batch.gap {
                    p.pending = pending;
                    p.caught_up = pending == 0;
                }
            });
            if batch.gap {
                // The events after the gap were not applied; start over
                // right after the last one that was.
                pulls.clear();
                tracing::debug!(
                    projection = self.model.projection().name(),
                    after = cursor.floor,
                    "delivery gap; consumer recreated"
                );
                self.delete_consumer().await?;
                self.create_consumer(cursor.floor + 1).await?;
                cursor.fresh = true;
                backlog = true;
                continue;
            }
            if until_caught_up && pending == 0 && pulls.is_empty() {
                return Ok(self.progress());
            }
            // Between batches is where a stop takes effect.
            if futures_ready(stop.as_mut()).await {
                return Ok(self.progress());
            }
        }
    }
}

/// Picks the events to apply from what a pull delivered, skipping those
/// the checkpoint covers and stopping at a gap.
fn take_batch(
    cursor: &mut Cursor,
    deliveries: Vec<(u64, Result<RecordedEvent, Error>)>,
) -> Result<Batch, ProjectionError> {
    let mut batch = Batch {
        events: Vec::with_capacity(deliveries.len()),
        skipped: 0,
        gap: false,
    };
    for (position, event) in deliveries {
        if position <= cursor.floor {
            batch.skipped += 1;
        } else if position == cursor.floor + 1 || cursor.fresh {
            cursor.fresh = false;
            cursor.floor = position;
            batch.events.push(event?);
        } else {
            batch.gap = true;
            break;
        }
    }
    Ok(batch)
}

impl<M: ReadModel + std::fmt::Debug> std::fmt::Debug for ProjectionRunner<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProjectionRunner")
            .field("consumer", &self.consumer)
            .field("stream", &self.stream)
            .field("model", &self.model)
            .field("progress", &self.progress())
            .finish()
    }
}

/// Whether `future` is complete, polling it once.
async fn futures_ready(future: std::pin::Pin<&mut impl Future<Output = ()>>) -> bool {
    tokio::select! {
        biased;
        () = future => true,
        () = std::future::ready(()) => false,
    }
}

/// A pull request in a task of its own (so that several can be out at
/// once, and their messages are decoded while a batch is applied);
/// aborted if dropped unused.
struct Pull {
    task: JoinHandle<Result<Pulled, ProjectionError>>,
    /// Events asked for.
    batch: usize,
}

impl Pull {
    fn spawn(js: &JetStream, stream: &str, consumer: &str, batch: usize, expires: Duration) -> Pull {
        let (js, stream, consumer) = (js.clone(), stream.to_string(), consumer.to_string());
        let task = tokio::spawn(async move {
            let messages = js.fetch(&stream, &consumer, batch, expires).await?;
            let mut pulled = Pulled {
                deliveries: Vec::with_capacity(messages.len()),
                last: None,
                pending: 0,
            };
            for message in &messages {
                // Borrowed parse of the ack subject: no strings per event.
                let reply = message.reply().unwrap_or_default();
                let info = AckMetadata::parse_str(reply).map_err(|e| {
                    herald_client::Error::InvalidResponse(format!("ack subject {reply:?}: {e}"))
                })?;
                pulled.pending = info.pending;
                let stored_at = Timestamp::from_unix_nanos(info.timestamp);
                pulled.deliveries.push((
                    info.stream_seq,
                    RecordedEvent::from_delivery(
                        &stream,
                        &message.subject,
                        message.headers.as_ref(),
                        message.payload.clone(),
                        info.stream_seq,
                        stored_at,
                    ),
                ));
            }
            pulled.last = messages.into_iter().last();
            Ok(pulled)
        });
        Pull { task, batch }
    }

    async fn join(mut self) -> Result<Pulled, ProjectionError> {
        match (&mut self.task).await {
            Ok(pulled) => pulled,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(_) => Err(herald_client::Error::Closed.into()),
        }
    }
}

impl Drop for Pull {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn millis_as_nanos(ms: u64) -> i64 {
    i64::try_from(u128::from(ms) * 1_000_000).unwrap_or(i64::MAX)
}
