//! Aggregates: state rebuilt from their events, commands turned into new
//! events, and a repository that loads (from a snapshot plus the tail),
//! handles, and appends with the loaded version, retrying on conflict.

use std::collections::HashSet;
use std::marker::PhantomData;
use std::time::Duration;

use herald_client::jetstream::{Kv, KvConfig};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::envelope::{new_id, Causation};
use crate::event::DomainEvent;
use crate::naming::AggregateId;
use crate::store::{EventStore, ExpectedVersion};
use crate::{Error, Result};

/// Attempts [`Repository::execute`] makes before giving up on conflicts.
pub const EXECUTE_ATTEMPTS_MAX: u32 = 5;
/// First ceiling of the random pause after a conflict; it doubles per attempt.
const CONFLICT_BACKOFF_US: u64 = 100;
/// Longest pause after a conflict.
const CONFLICT_BACKOFF_US_MAX: u64 = 20_000;
/// Command ids remembered in a snapshot, to recognise a command retried
/// after its events were stored.
const SNAPSHOT_COMMAND_IDS_MAX: usize = 64;

/// A consistency boundary: its state is the fold of its events, and it
/// decides which events a command produces.
///
/// ```
/// use herald_events::{Aggregate, DomainEvent};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Debug, Default, Serialize, Deserialize)]
/// struct Account { open: bool, balance: u64 }
///
/// #[derive(Debug, Clone, Serialize, Deserialize)]
/// #[serde(tag = "type", content = "data")]
/// enum AccountEvent { Opened, Deposited { amount: u64 } }
/// impl DomainEvent for AccountEvent {}
///
/// #[derive(Debug, Clone, Serialize, Deserialize)]
/// #[serde(tag = "type", content = "data")]
/// enum AccountCommand { Open, Deposit { amount: u64 } }
///
/// #[derive(Debug, thiserror::Error, Serialize, Deserialize)]
/// enum AccountError { #[error("account already open")] AlreadyOpen, #[error("account not open")] NotOpen }
///
/// impl Aggregate for Account {
///     const CATEGORY: &'static str = "accounts";
///     type Command = AccountCommand;
///     type Event = AccountEvent;
///     type Error = AccountError;
///
///     fn handle(&self, command: &AccountCommand) -> Result<Vec<AccountEvent>, AccountError> {
///         match command {
///             AccountCommand::Open if self.open => Err(AccountError::AlreadyOpen),
///             AccountCommand::Open => Ok(vec![AccountEvent::Opened]),
///             AccountCommand::Deposit { .. } if !self.open => Err(AccountError::NotOpen),
///             AccountCommand::Deposit { amount } => Ok(vec![AccountEvent::Deposited { amount: *amount }]),
///         }
///     }
///
///     fn apply(&mut self, event: &AccountEvent) {
///         match event {
///             AccountEvent::Opened => self.open = true,
///             AccountEvent::Deposited { amount } => self.balance += amount,
///         }
///     }
/// }
/// ```
pub trait Aggregate: Default + Serialize + DeserializeOwned + Send + Sync + 'static {
    /// The category: its events live in stream `ES_<CATEGORY>` on subjects
    /// `<CATEGORY>.<id>`, its commands on `cmd.<CATEGORY>.<id>`.
    const CATEGORY: &'static str;
    /// The version of the state's serialized shape: snapshots written with
    /// another version are ignored (the state is replayed from events).
    const SNAPSHOT_VERSION: u32 = 1;
    /// What can be asked of it.
    type Command: Serialize + DeserializeOwned + Send + Sync;
    /// What happened to it.
    type Event: DomainEvent + Clone;
    /// Why a command is refused.
    type Error: std::error::Error + Serialize + DeserializeOwned + Send + Sync + 'static;

    /// Decides: the events `command` produces, or why it is refused. Must
    /// not change anything (it may run again after a conflict).
    fn handle(&self, command: &Self::Command) -> std::result::Result<Vec<Self::Event>, Self::Error>;

    /// Evolves the state by one event. Must not fail: the event happened.
    fn apply(&mut self, event: &Self::Event);
}

/// An aggregate's state as loaded.
#[derive(Debug)]
pub struct Loaded<A> {
    /// Which aggregate.
    pub id: AggregateId,
    /// Its state.
    pub state: A,
    /// Its version: the position of its last event (0: none).
    pub version: u64,
    /// Events replayed on top of the snapshot (all of them without one).
    pub replayed: u64,
    /// Whether a snapshot was used.
    pub from_snapshot: bool,
    /// Ids of commands whose events are part of the state (recent ones).
    command_ids: HashSet<String>,
}

impl<A> Loaded<A> {
    /// Whether the events of the command with this id are already part of
    /// the state (recent commands only).
    pub fn has_handled(&self, command_id: &str) -> bool {
        self.command_ids.contains(command_id)
    }
}

/// Where a command comes from: its id (for idempotency) and the chain it
/// belongs to. Events it produces are caused by the command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandContext {
    /// Unique id of the command; a retried command keeps its id.
    pub command_id: String,
    /// Correlation id of the chain (the command id when it starts one).
    pub correlation_id: String,
}

impl CommandContext {
    /// A command that starts a new chain.
    pub fn new() -> CommandContext {
        let id = new_id();
        CommandContext {
            correlation_id: id.clone(),
            command_id: id,
        }
    }

    /// A command with this id, in the chain of `causation`.
    pub fn with_id(command_id: impl Into<String>, causation: &Causation) -> CommandContext {
        let command_id = command_id.into();
        CommandContext {
            correlation_id: causation
                .correlation_id
                .clone()
                .unwrap_or_else(|| command_id.clone()),
            command_id,
        }
    }

    fn causation(&self) -> Causation {
        Causation::caused_by(&self.command_id, &self.correlation_id)
    }
}

impl Default for CommandContext {
    fn default() -> CommandContext {
        CommandContext::new()
    }
}

/// What [`Repository::execute`] did.
#[derive(Debug, Clone)]
pub struct Executed<E> {
    /// The aggregate's version after the command.
    pub version: u64,
    /// The events the command produced (empty for a no-op or a duplicate).
    pub events: Vec<E>,
    /// The command's events were already stored (a retried command).
    pub duplicate: bool,
    /// Attempts it took (more than 1 after conflicts).
    pub attempts: u32,
}

/// Why [`Repository::execute`] failed.
#[derive(Debug, thiserror::Error)]
pub enum ExecuteError<E: std::error::Error> {
    /// The aggregate refused the command.
    #[error("refused: {0}")]
    Rejected(E),
    /// Other writers kept changing the aggregate; nothing was stored.
    #[error("{aggregate} kept changing: gave up after {attempts} attempts")]
    Contended {
        /// The aggregate.
        aggregate: AggregateId,
        /// Attempts made.
        attempts: u32,
    },
    /// Loading or appending failed.
    #[error(transparent)]
    Store(#[from] Error),
}

/// A snapshot as kept in the KV bucket.
#[derive(Serialize, Deserialize)]
struct Snapshot<A> {
    snapshot_version: u32,
    version: u64,
    command_ids: Vec<String>,
    state: A,
}

/// Loads, handles and saves aggregates of type `A`.
///
/// ```no_run
/// # use herald_events::{Aggregate, EventStore, Repository, CommandContext};
/// # async fn f<A: Aggregate>(store: EventStore, command: A::Command) -> herald_events::Result<()> {
/// let accounts = Repository::<A>::new(store).with_snapshots(100).await?;
/// match accounts.execute("a-1", &command, &CommandContext::new()).await {
///     Ok(done) => println!("now at version {}", done.version),
///     Err(e) => println!("{e}"),
/// }
/// # Ok(()) }
/// ```
pub struct Repository<A> {
    store: EventStore,
    snapshots: Option<Kv>,
    snapshot_every: u64,
    attempts_max: u32,
    _aggregate: PhantomData<fn() -> A>,
}

impl<A> Clone for Repository<A> {
    fn clone(&self) -> Self {
        Repository {
            store: self.store.clone(),
            snapshots: self.snapshots.clone(),
            snapshot_every: self.snapshot_every,
            attempts_max: self.attempts_max,
            _aggregate: PhantomData,
        }
    }
}

impl<A: Aggregate> Repository<A> {
    /// A repository without snapshots, [`EXECUTE_ATTEMPTS_MAX`] attempts.
    pub fn new(store: EventStore) -> Repository<A> {
        Repository {
            store,
            snapshots: None,
            snapshot_every: 0,
            attempts_max: EXECUTE_ATTEMPTS_MAX,
            _aggregate: PhantomData,
        }
    }

    /// Keeps a snapshot per aggregate in the KV bucket
    /// `ES_snapshots_<category>` (created if needed), rewritten after a
    /// command once `every` events were replayed or appended since the last.
    pub async fn with_snapshots(mut self, every: u64) -> Result<Repository<A>> {
        let bucket = self.snapshot_bucket();
        let js = self.store.jetstream();
        let kv = match js.kv(&bucket).await {
            Ok(kv) => kv,
            Err(e) if e.is_not_found() => js.kv_create_bucket_with(KvConfig::new(bucket, 1)).await?,
            Err(e) => return Err(e.into()),
        };
        self.snapshots = Some(kv);
        self.snapshot_every = every.max(1);
        Ok(self)
    }

    /// At most `attempts` tries per command (at least 1).
    pub fn with_attempts(mut self, attempts: u32) -> Repository<A> {
        self.attempts_max = attempts.max(1);
        self
    }

    /// The store.
    pub fn store(&self) -> &EventStore {
        &self.store
    }

    /// The snapshot bucket's name.
    pub fn snapshot_bucket(&self) -> String {
        format!("{}snapshots_{}", self.store.config().stream_prefix, A::CATEGORY)
    }

    /// The aggregate `id` of this category.
    pub fn aggregate_id(&self, id: &str) -> Result<AggregateId> {
        AggregateId::new(A::CATEGORY, id)
    }

    /// Loads aggregate `id`: the snapshot if there is a usable one, then
    /// the events after it. An aggregate without events is `A::default()`
    /// at version 0.
    pub async fn load(&self, id: &str) -> Result<Loaded<A>> {
        let aggregate = self.aggregate_id(id)?;
        let mut loaded = match self.read_snapshot(id).await {
            Some(snapshot) => Loaded {
                id: aggregate.clone(),
                state: snapshot.state,
                version: snapshot.version,
                replayed: 0,
                from_snapshot: true,
                command_ids: snapshot.command_ids.into_iter().collect(),
            },
            None => Loaded {
                id: aggregate.clone(),
                state: A::default(),
                version: 0,
                replayed: 0,
                from_snapshot: false,
                command_ids: HashSet::new(),
            },
        };
        for recorded in self.store.read(&aggregate, loaded.version + 1).await? {
            let event: A::Event = self.store.decode(&recorded)?;
            loaded.state.apply(&event);
            loaded.version = recorded.position;
            loaded.replayed += 1;
            if let Some(command_id) = recorded.envelope.causation_id {
                loaded.command_ids.insert(command_id);
            }
        }
        Ok(loaded)
    }

    async fn read_snapshot(&self, id: &str) -> Option<Snapshot<A>> {
        let kv = self.snapshots.as_ref()?;
        let bytes = match kv.get(id).await {
            Ok(bytes) => bytes?,
            Err(e) => {
                tracing::warn!(error = %e, id, "reading snapshot failed; replaying all events");
                return None;
            }
        };
        match serde_json::from_slice::<Snapshot<A>>(&bytes) {
            Ok(snapshot) if snapshot.snapshot_version == A::SNAPSHOT_VERSION => Some(snapshot),
            Ok(_) => None,
            Err(e) => {
                tracing::warn!(error = %e, id, "unreadable snapshot; replaying all events");
                None
            }
        }
    }

    /// Handles `command` on aggregate `id`: load, decide, append at the
    /// loaded version; on a conflict pause a random, growing moment (up to
    /// 20 ms), load again and retry (at most the repository's attempts). A command whose id is already among the
    /// aggregate's recent causes is not applied twice (`duplicate`).
    pub async fn execute(
        &self,
        id: &str,
        command: &A::Command,
        context: &CommandContext,
    ) -> std::result::Result<Executed<A::Event>, ExecuteError<A::Error>> {
        for attempt in 1..=self.attempts_max {
            let mut loaded = self.load(id).await?;
            if loaded.has_handled(&context.command_id) {
                return Ok(Executed {
                    version: loaded.version,
                    events: Vec::new(),
                    duplicate: true,
                    attempts: attempt,
                });
            }
            let events = loaded.state.handle(command).map_err(ExecuteError::Rejected)?;
            if events.is_empty() {
                return Ok(Executed {
                    version: loaded.version,
                    events,
                    duplicate: false,
                    attempts: attempt,
                });
            }
            let expected = ExpectedVersion::at(loaded.version);
            let appended = match self
                .store
                .append_events(&loaded.id, expected, &events, &context.causation())
                .await
            {
                Ok(appended) => appended,
                Err(e) if e.is_conflict() => {
                    // Writers that collided would collide again if they all
                    // reloaded at once: spread them out, more each time.
                    let ceiling_us = (CONFLICT_BACKOFF_US << attempt.min(8)).min(CONFLICT_BACKOFF_US_MAX);
                    tokio::time::sleep(Duration::from_micros(fastrand::u64(0..=ceiling_us))).await;
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            for event in &events {
                loaded.state.apply(event);
            }
            loaded.version = appended.version;
            loaded.replayed += events.len() as u64;
            loaded.command_ids.insert(context.command_id.clone());
            if self.snapshots.is_some() && loaded.replayed >= self.snapshot_every {
                self.save_snapshot(id, &loaded).await;
            }
            return Ok(Executed {
                version: appended.version,
                events,
                duplicate: appended.duplicate,
                attempts: attempt,
            });
        }
        Err(ExecuteError::Contended {
            aggregate: self.aggregate_id(id)?,
            attempts: self.attempts_max,
        })
    }

    /// Writes a snapshot of `loaded` now (also done by `execute`).
    pub async fn save_snapshot(&self, id: &str, loaded: &Loaded<A>) {
        let Some(kv) = &self.snapshots else { return };
        let mut command_ids: Vec<&String> = loaded.command_ids.iter().collect();
        // Ids are ULIDs (time-ordered) when made by this crate: keep the newest.
        command_ids.sort_unstable();
        let keep = command_ids.len().saturating_sub(SNAPSHOT_COMMAND_IDS_MAX);
        let snapshot = Snapshot {
            snapshot_version: A::SNAPSHOT_VERSION,
            version: loaded.version,
            command_ids: command_ids[keep..].iter().map(|s| s.to_string()).collect(),
            state: &loaded.state,
        };
        let result = match serde_json::to_vec(&snapshot) {
            Ok(bytes) => kv.put(id, bytes).await.map(|_| ()).map_err(Error::from),
            Err(e) => Err(e.into()),
        };
        // A lost snapshot costs a longer replay, never correctness.
        if let Err(e) = result {
            tracing::warn!(error = %e, id, "writing snapshot failed");
        }
    }
}
