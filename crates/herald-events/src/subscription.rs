//! Catch-up subscriptions: stored events from a checkpoint, then live ones.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::event::RecordedEvent;
use crate::reader::{Next, OrderedReader};
use crate::store::EventStore;
use crate::Result;

/// Events of one category (or aggregate) in stream order, from a
/// checkpoint on and then live; see [`EventStore::subscribe_category`].
/// Gaps (a full queue, a reconnect) are repaired by re-reading from the
/// last position delivered, so every event comes exactly once, in order.
pub struct Subscription {
    reader: OrderedReader,
}

impl Subscription {
    pub(crate) fn new(reader: OrderedReader) -> Subscription {
        Subscription { reader }
    }

    /// The next event; waits for one to be appended if caught up.
    pub async fn next(&mut self) -> Result<RecordedEvent> {
        loop {
            if let Next::Event(event) = self.reader.next(false).await? {
                return Ok(*event);
            }
        }
    }

    /// Position of the last event returned (the checkpoint to resume after).
    pub fn position(&self) -> u64 {
        self.reader.last_position()
    }
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("position", &self.position())
            .finish()
    }
}

/// Where a subscription to every category stands: the last position seen
/// per category (categories have separate streams, so no single position
/// orders them all).
pub type Checkpoints = BTreeMap<String, u64>;

/// How often [`EventStore::subscribe_all`] looks for new categories.
const CATEGORY_RESCAN: Duration = Duration::from_secs(5);
/// Events buffered between the category readers and the caller.
const ALL_QUEUE_MAX: usize = 1024;

/// Events of every category, each category in order, categories
/// interleaved as they arrive; see [`EventStore::subscribe_all`].
#[derive(Debug)]
pub struct AllSubscription {
    events: mpsc::Receiver<Result<RecordedEvent>>,
    task: JoinHandle<()>,
}

impl AllSubscription {
    /// The next event of any category; keep `checkpoints[category] =
    /// event.position` to resume after it.
    pub async fn next(&mut self) -> Result<RecordedEvent> {
        match self.events.recv().await {
            Some(event) => event,
            None => Err(herald_client::Error::Closed.into()),
        }
    }
}

impl Drop for AllSubscription {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl EventStore {
    /// Events of every category after the positions in `checkpoints`
    /// (categories not in it from their start), then live ones; categories
    /// created later are picked up within a few seconds.
    pub async fn subscribe_all(&self, checkpoints: Checkpoints) -> Result<AllSubscription> {
        let (tx, events) = mpsc::channel(ALL_QUEUE_MAX);
        let store = self.clone();
        let first = store.categories().await?;
        let task = tokio::spawn(async move {
            let mut readers: BTreeMap<String, JoinHandle<()>> = BTreeMap::new();
            let mut categories = first;
            loop {
                for category in categories {
                    if readers.contains_key(&category) {
                        continue;
                    }
                    let after = checkpoints.get(&category).copied().unwrap_or(0);
                    let reader = tokio::spawn(forward(store.clone(), category.clone(), after, tx.clone()));
                    readers.insert(category, reader);
                }
                tokio::time::sleep(CATEGORY_RESCAN).await;
                if tx.is_closed() {
                    break;
                }
                categories = match store.categories().await {
                    Ok(categories) => categories,
                    Err(e) => {
                        tracing::warn!(error = %e, "listing categories failed; retrying");
                        Vec::new()
                    }
                };
            }
            for reader in readers.into_values() {
                reader.abort();
            }
        });
        Ok(AllSubscription { events, task })
    }
}

/// Forwards one category's events until the receiver is gone or an error
/// (which is forwarded too).
async fn forward(store: EventStore, category: String, after: u64, tx: mpsc::Sender<Result<RecordedEvent>>) {
    let mut subscription = match store.subscribe_category(&category, after).await {
        Ok(subscription) => subscription,
        Err(e) => {
            let _ = tx.send(Err(e)).await;
            return;
        }
    };
    loop {
        let event = subscription.next().await;
        let failed = event.is_err();
        if tx.send(event).await.is_err() || failed {
            return;
        }
    }
}
