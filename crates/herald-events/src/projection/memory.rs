//! The in-memory adapter: a model of any `Default` type behind a mutex.

use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};

use super::{BoxError, Projection, ProjectionError, ReadModel};
use crate::event::RecordedEvent;

/// A projection into a model kept in memory.
pub trait MemoryProjection: Projection {
    /// The read model, empty by default.
    type Model: Default + Send + 'static;

    /// Applies one event to the model.
    fn apply(&self, model: &mut Self::Model, event: &RecordedEvent) -> Result<(), BoxError>;
}

/// A [`MemoryProjection`]'s model and checkpoint in memory, shared by its
/// clones: hand one to a [`ProjectionRunner`](super::ProjectionRunner),
/// read through another.
///
/// Model and checkpoint change under one lock, so readers never see one
/// without the other, and both vanish together with the process (a new
/// process starts from position 0 and replays).
pub struct MemoryModel<P: MemoryProjection> {
    projection: Arc<P>,
    state: Arc<Mutex<State<P::Model>>>,
}

#[derive(Default)]
struct State<M> {
    model: M,
    checkpoint: u64,
}

impl<P: MemoryProjection> MemoryModel<P> {
    /// An empty model of `projection`, at checkpoint 0.
    pub fn new(projection: P) -> MemoryModel<P> {
        MemoryModel {
            projection: Arc::new(projection),
            state: Arc::default(),
        }
    }

    /// Calls `read` with the model; the runner waits meanwhile, so keep it
    /// short.
    pub fn read<R>(&self, read: impl FnOnce(&P::Model) -> R) -> R {
        read(&self.lock().model)
    }

    /// The position of the last event applied, 0 before the first.
    pub fn checkpoint(&self) -> u64 {
        self.lock().checkpoint
    }

    fn lock(&self) -> MutexGuard<'_, State<P::Model>> {
        // A projection that panicked mid-event leaves a model we cannot
        // trust; refusing to go on is the honest answer.
        self.state
            .lock()
            .expect("a memory projection panicked while applying an event")
    }

    fn apply_now(&self, events: Vec<RecordedEvent>) -> Result<u64, ProjectionError> {
        let mut state = self.lock();
        let state = &mut *state;
        for event in &events {
            if event.position <= state.checkpoint {
                continue;
            }
            self.projection
                .apply(&mut state.model, event)
                .map_err(|source| ProjectionError::Apply {
                    projection: self.projection.name().to_string(),
                    position: event.position,
                    source,
                })?;
            // Moved per event: what is applied and the checkpoint never
            // disagree, even when a later event of the batch fails.
            state.checkpoint = event.position;
        }
        Ok(state.checkpoint)
    }
}

impl<P: MemoryProjection> Clone for MemoryModel<P> {
    fn clone(&self) -> MemoryModel<P> {
        MemoryModel {
            projection: self.projection.clone(),
            state: self.state.clone(),
        }
    }
}

impl<P: MemoryProjection> fmt::Debug for MemoryModel<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryModel")
            .field("projection", &self.projection.name())
            .field("checkpoint", &self.checkpoint())
            .finish()
    }
}

impl<P: MemoryProjection> ReadModel for MemoryModel<P> {
    type Projection = P;

    fn projection(&self) -> &P {
        &self.projection
    }

    fn checkpoint(&mut self) -> impl Future<Output = Result<u64, ProjectionError>> + Send {
        std::future::ready(Ok(MemoryModel::checkpoint(self)))
    }

    fn apply(
        &mut self,
        events: Vec<RecordedEvent>,
    ) -> impl Future<Output = Result<u64, ProjectionError>> + Send {
        // Applied right away: the lock is never held across an await.
        std::future::ready(self.apply_now(events))
    }

    fn reset(&mut self) -> impl Future<Output = Result<(), ProjectionError>> + Send {
        *self.lock() = State::default();
        std::future::ready(Ok(()))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use bytes::Bytes;
    use herald_client::jetstream::Timestamp;

    use super::*;
    use crate::envelope::Envelope;
    use crate::naming::AggregateId;

    /// A recorded event at `position` of aggregate `accounts.<id>`.
    pub(crate) fn event(position: u64, id: &str) -> RecordedEvent {
        RecordedEvent {
            aggregate: AggregateId::new("accounts", id).unwrap(),
            position,
            stored_at: Timestamp::default(),
            envelope: Envelope {
                id: format!("event-{position}"),
                event_type: "Deposited".into(),
                source: String::new(),
                subject: format!("accounts.{id}"),
                time: Timestamp::default(),
                schema_version: 1,
                content_type: "application/json".into(),
                correlation_id: format!("event-{position}"),
                causation_id: None,
            },
            data: Bytes::from(position.to_string()),
        }
    }

    struct Positions;

    impl Projection for Positions {
        fn name(&self) -> &str {
            "positions"
        }
        fn category(&self) -> &str {
            "accounts"
        }
    }

    impl MemoryProjection for Positions {
        type Model = Vec<u64>;
        fn apply(&self, model: &mut Vec<u64>, event: &RecordedEvent) -> Result<(), BoxError> {
            if event.aggregate.id() == "bad" {
                return Err("refused".into());
            }
            model.push(event.position);
            Ok(())
        }
    }

    #[tokio::test]
    async fn events_at_or_below_the_checkpoint_are_skipped() {
        let mut model = MemoryModel::new(Positions);
        let reader = model.clone();
        let batch = |range: std::ops::RangeInclusive<u64>| range.map(|p| event(p, "a")).collect::<Vec<_>>();
        assert_eq!(ReadModel::apply(&mut model, batch(1..=5)).await.unwrap(), 5);
        // Delivered again after a crash, overlapping: only 6..=8 are new.
        assert_eq!(ReadModel::apply(&mut model, batch(3..=8)).await.unwrap(), 8);
        assert_eq!(ReadModel::apply(&mut model, batch(2..=4)).await.unwrap(), 8);
        assert_eq!(reader.read(Vec::clone), (1..=8).collect::<Vec<_>>());
        assert_eq!(reader.checkpoint(), 8);

        let failing = vec![event(9, "a"), event(10, "bad"), event(11, "a")];
        let err = ReadModel::apply(&mut model, failing).await.unwrap_err();
        assert!(
            matches!(err, ProjectionError::Apply { position: 10, .. }),
            "{err}"
        );
        // The event before the failing one stays, with its checkpoint.
        assert_eq!((reader.checkpoint(), reader.read(|m| m.len())), (9, 9));

        ReadModel::reset(&mut model).await.unwrap();
        assert_eq!((reader.checkpoint(), reader.read(|m| m.len())), (0, 0));
    }
}
