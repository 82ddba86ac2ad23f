//! The event store: one stream per category, one subject per aggregate,
//! appends guarded by the aggregate's expected version.

use std::collections::HashSet;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use herald_client::jetstream::{
    BatchMessage, JetStream, PubAck, PublishOptions, StorageType, StreamConfig, BATCH_MSGS_MAX,
};
use herald_client::{Client, Headers};

use crate::codec::Codec;
use crate::envelope::{check_type_name, new_id, Attributes, Causation};
use crate::event::{DomainEvent, NewEvent, RecordedEvent, Upcasters};
use crate::naming::{check_token, AggregateId};
use crate::reader::{Next, OrderedReader};
use crate::subscription::Subscription;
use crate::{Error, Result};

/// Stream metadata key of Herald's per-stream sync policy.
const SYNC_METADATA: &str = "herald.sync";

/// What an append expects of the aggregate's version (the stream position
/// of its last event, `0` before its first).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpectedVersion {
    /// No check: append whatever the aggregate holds.
    Any,
    /// The aggregate must have no events yet.
    NoEvents,
    /// The aggregate's last event must be at this position.
    Exactly(u64),
}

impl ExpectedVersion {
    /// The check for an aggregate last read at `version` (0: none).
    pub fn at(version: u64) -> ExpectedVersion {
        if version == 0 {
            ExpectedVersion::NoEvents
        } else {
            ExpectedVersion::Exactly(version)
        }
    }

    fn last_subject_seq(self) -> Option<u64> {
        match self {
            ExpectedVersion::Any => None,
            ExpectedVersion::NoEvents => Some(0),
            ExpectedVersion::Exactly(version) => Some(version),
        }
    }
}

impl fmt::Display for ExpectedVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExpectedVersion::Any => f.write_str("any version"),
            ExpectedVersion::NoEvents => f.write_str("no events"),
            ExpectedVersion::Exactly(version) => write!(f, "version {version}"),
        }
    }
}

/// What an append stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Appended {
    /// The aggregate appended to.
    pub aggregate: AggregateId,
    /// Position of the first event appended.
    pub first_position: u64,
    /// The aggregate's version now: the position of the last event.
    pub version: u64,
    /// Events appended.
    pub count: usize,
    /// The events' ids, in order.
    pub ids: Vec<String>,
    /// A single event that the stream had already stored under the same
    /// id (a retried append): nothing was stored again.
    pub duplicate: bool,
}

/// How an [`EventStore`] names and configures category streams.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// Prefix of category stream names: `ES_` gives `ES_orders`.
    pub stream_prefix: String,
    /// CloudEvents `source` of the events this store writes.
    pub source: String,
    /// Codec of new events' data.
    pub codec: Codec,
    /// Storage of category streams created by the store.
    pub storage: StorageType,
    /// Whether category streams created by the store flush every append
    /// to disk before acknowledging it (Herald's `sync: always`).
    pub sync_always: bool,
    /// De-duplication window of category streams (retried appends of one
    /// event within it are stored once).
    pub duplicate_window: Duration,
}

impl Default for StoreConfig {
    fn default() -> StoreConfig {
        StoreConfig {
            stream_prefix: "ES_".into(),
            source: "herald-events".into(),
            codec: Codec::Json,
            storage: StorageType::File,
            sync_always: true,
            duplicate_window: Duration::from_secs(120),
        }
    }
}

/// An event store on a Herald (or NATS) server.
///
/// Each category is a stream (`ES_<category>`, created on first use with
/// atomic batches allowed), each aggregate the subject
/// `<category>.<id>` in it. An aggregate's *version* is the stream
/// position of its last event: positions grow by one per event in the
/// category, so an aggregate's versions grow but have gaps. Appends name
/// the version they expect and fail with [`Error::Conflict`] if another
/// writer got there first; several events are appended as one atomic batch.
///
/// ```no_run
/// # async fn f() -> herald_events::Result<()> {
/// use herald_events::{AggregateId, EventStore, ExpectedVersion, NewEvent};
/// let client = herald_client::Client::connect("nats://127.0.0.1:4333").await?;
/// let store = EventStore::new(&client);
/// let account = AggregateId::new("accounts", "a-1")?;
/// let opened = NewEvent::json("Opened", r#"{"owner":"ada"}"#);
/// let appended = store.append(&account, ExpectedVersion::NoEvents, &[opened]).await?;
/// let again = NewEvent::json("Opened", r#"{"owner":"bob"}"#);
/// let err = store.append(&account, ExpectedVersion::NoEvents, &[again]).await.unwrap_err();
/// assert!(err.is_conflict());
/// for event in store.read(&account, 0).await? {
///     println!("{} {} {:?}", event.position, event.envelope.event_type, event.data);
/// }
/// # let _ = appended; Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct EventStore {
    js: JetStream,
    config: Arc<StoreConfig>,
    upcasters: Arc<Upcasters>,
    /// Categories whose stream is known to exist.
    ready: Arc<Mutex<HashSet<String>>>,
}

impl EventStore {
    /// A store with the default [`StoreConfig`].
    pub fn new(client: &Client) -> EventStore {
        EventStore::with_config(client, StoreConfig::default())
    }

    /// A store with `config`.
    pub fn with_config(client: &Client, config: StoreConfig) -> EventStore {
        EventStore {
            js: client.jetstream(),
            config: Arc::new(config),
            upcasters: Arc::new(Upcasters::new()),
            ready: Arc::default(),
        }
    }

    /// This store decoding events with `upcasters`.
    pub fn with_upcasters(mut self, upcasters: Upcasters) -> EventStore {
        self.upcasters = Arc::new(upcasters);
        self
    }

    /// The upcasters [`EventStore::decode`] applies.
    pub fn upcasters(&self) -> &Upcasters {
        &self.upcasters
    }

    /// The configuration.
    pub fn config(&self) -> &StoreConfig {
        &self.config
    }

    /// The JetStream context the store uses.
    pub fn jetstream(&self) -> &JetStream {
        &self.js
    }

    /// The stream holding `category`.
    pub fn stream_name(&self, category: &str) -> String {
        format!("{}{category}", self.config.stream_prefix)
    }

    /// Decodes a recorded event as `E`, upcasting old schema versions.
    pub fn decode<E: DomainEvent>(&self, event: &RecordedEvent) -> Result<E> {
        event.decode(&self.upcasters)
    }

    /// Encodes typed events with the store's codec.
    pub fn encode<E: DomainEvent>(&self, events: &[E]) -> Result<Vec<NewEvent>> {
        events
            .iter()
            .map(|event| NewEvent::from_event(event, self.config.codec))
            .collect()
    }

    /// Creates the category's stream unless it exists.
    pub async fn ensure_category(&self, category: &str) -> Result<()> {
        check_token("category", category)?;
        if self.ready.lock().expect("lock").contains(category) {
            return Ok(());
        }
        let name = self.stream_name(category);
        match self.js.stream_info(&name).await {
            Ok(_) => {}
            Err(e) if e.is_stream_not_found() => {
                let mut config = StreamConfig::new(name.clone(), vec![format!("{category}.*")]);
                config.description = format!("herald-events category {category}");
                config.storage = self.config.storage;
                config.allow_atomic = true;
                config.allow_direct = true;
                config.duplicate_window = nanos(self.config.duplicate_window);
                if self.config.sync_always {
                    config.metadata.insert(SYNC_METADATA.into(), "always".into());
                }
                match self.js.create_stream(config).await {
                    Ok(_) => {}
                    // Created meanwhile by another writer.
                    Err(e) if e.api_error().is_some_and(|a| a.err_code == 10058) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            Err(e) => return Err(e.into()),
        }
        self.ready.lock().expect("lock").insert(category.to_string());
        Ok(())
    }

    /// Appends `events` to `aggregate` if its version is as `expected`; a
    /// new correlation chain starts with the first event.
    pub async fn append(
        &self,
        aggregate: &AggregateId,
        expected: ExpectedVersion,
        events: &[NewEvent],
    ) -> Result<Appended> {
        self.append_with(aggregate, expected, events, &Causation::none())
            .await
    }

    /// Encodes typed events and appends them; see [`EventStore::append_with`].
    pub async fn append_events<E: DomainEvent>(
        &self,
        aggregate: &AggregateId,
        expected: ExpectedVersion,
        events: &[E],
        causation: &Causation,
    ) -> Result<Appended> {
        let events = self.encode(events)?;
        self.append_with(aggregate, expected, &events, causation).await
    }

    /// Appends `events` (1 to 1000) to `aggregate`, all or none, if its
    /// version is as `expected`; the envelope's correlation and causation
    /// ids come from `causation`. A stale `expected` is [`Error::Conflict`]
    /// and stores nothing.
    pub async fn append_with(
        &self,
        aggregate: &AggregateId,
        expected: ExpectedVersion,
        events: &[NewEvent],
        causation: &Causation,
    ) -> Result<Appended> {
        if events.is_empty() || events.len() > BATCH_MSGS_MAX {
            return Err(Error::invalid(
                "append",
                format!("1 to {BATCH_MSGS_MAX} events per append, not {}", events.len()),
            ));
        }
        for event in events {
            check_type_name(&event.event_type)?;
            if let Some(id) = &event.id {
                check_type_name(id).map_err(|_| Error::invalid("event id", format!("{id:?}")))?;
            }
        }
        self.ensure_category(aggregate.category()).await?;
        let subject = aggregate.subject();
        let ids: Vec<String> = events
            .iter()
            .map(|e| e.id.clone().unwrap_or_else(new_id))
            .collect();
        let correlation = causation.correlation_id.clone().unwrap_or_else(|| ids[0].clone());
        let time = herald_client::jetstream::Timestamp::now().to_rfc3339();
        let mut messages = Vec::with_capacity(events.len());
        for (event, id) in events.iter().zip(&ids) {
            let attributes = Attributes {
                id,
                event_type: &event.event_type,
                source: &self.config.source,
                subject: &subject,
                time: &time,
                schema_version: event.schema_version,
                content_type: &event.content_type,
                correlation_id: &correlation,
                causation_id: causation.causation_id.as_deref(),
            };
            messages.push((attributes.headers(), event.data.clone()));
        }
        let stream = self.stream_name(aggregate.category());
        let result = if messages.len() == 1 {
            let (headers, data) = messages.pop().expect("one message");
            let options = PublishOptions {
                msg_id: Some(ids[0].clone()),
                expected_stream: Some(stream),
                expected_last_subject_seq: expected.last_subject_seq(),
                ..PublishOptions::default()
            };
            self.js
                .publish_with(&subject, Some(&headers), data, options)
                .await
        } else {
            self.js
                .publish_batch(&self.batch(&subject, stream, expected, messages))
                .await
        };
        match result {
            Ok(ack) => Ok(appended(aggregate, ids, &ack)),
            Err(e) if e.is_wrong_last_sequence() => Err(Error::Conflict {
                aggregate: aggregate.clone(),
                expected,
            }),
            Err(e) => Err(e.into()),
        }
    }

    fn batch(
        &self,
        subject: &str,
        stream: String,
        expected: ExpectedVersion,
        messages: Vec<(Headers, Bytes)>,
    ) -> Vec<BatchMessage> {
        messages
            .into_iter()
            .enumerate()
            .map(|(index, (headers, payload))| BatchMessage {
                subject: subject.to_string(),
                headers,
                // The first event carries the check; the batch is stored
                // as a whole or not at all, so the others need none.
                options: PublishOptions {
                    expected_stream: (index == 0).then(|| stream.clone()),
                    expected_last_subject_seq: if index == 0 {
                        expected.last_subject_seq()
                    } else {
                        None
                    },
                    ..PublishOptions::default()
                },
                payload,
            })
            .collect()
    }

    /// The aggregate's events from stream position `from` on (0 or 1: all).
    pub async fn read(&self, aggregate: &AggregateId, from: u64) -> Result<Vec<RecordedEvent>> {
        self.read_filtered(aggregate.category(), &aggregate.subject(), from, usize::MAX)
            .await
    }

    /// Up to `max` events of the whole category from position `from` on,
    /// in stream order.
    pub async fn read_category(&self, category: &str, from: u64, max: usize) -> Result<Vec<RecordedEvent>> {
        check_token("category", category)?;
        self.read_filtered(category, &format!("{category}.*"), from, max)
            .await
    }

    async fn read_filtered(
        &self,
        category: &str,
        filter: &str,
        from: u64,
        max: usize,
    ) -> Result<Vec<RecordedEvent>> {
        let stream = self.stream_name(category);
        let mut reader = match OrderedReader::start(&self.js, &stream, filter, from.max(1)).await {
            Ok(reader) => reader,
            Err(Error::Client(e)) if e.is_stream_not_found() => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let mut events = Vec::with_capacity(reader.remaining().min(max as u64).min(4096) as usize);
        while events.len() < max {
            match reader.next(true).await? {
                Next::Event(event) => events.push(*event),
                Next::CaughtUp => break,
            }
        }
        Ok(events)
    }

    /// The aggregate's version: the position of its last event, 0 if none.
    pub async fn version(&self, aggregate: &AggregateId) -> Result<u64> {
        let stream = self.stream_name(aggregate.category());
        let subject = aggregate.subject();
        let absent = |e: &herald_client::Error| e.is_stream_not_found() || e.is_no_message_found();
        match self.js.direct_get_last(&stream, &subject).await {
            Ok(last) => Ok(last.map_or(0, |m| m.sequence)),
            Err(e) if absent(&e) => Ok(0),
            // Nobody answers direct gets for a stream that does not exist
            // (or does not allow them): ask the API, which says which.
            Err(herald_client::Error::NoResponders { .. }) => {
                match self.js.get_last_message(&stream, &subject).await {
                    Ok(last) => Ok(last.sequence),
                    Err(e) if absent(&e) => Ok(0),
                    Err(e) => Err(e.into()),
                }
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Events of `category` after position `after`, then live ones as they
    /// are appended: a catch-up subscription from a checkpoint.
    pub async fn subscribe_category(&self, category: &str, after: u64) -> Result<Subscription> {
        self.ensure_category(category).await?;
        let stream = self.stream_name(category);
        let reader = OrderedReader::start(&self.js, &stream, &format!("{category}.*"), after + 1).await?;
        Ok(Subscription::new(reader))
    }

    /// Events of one aggregate after version `after`, then live ones.
    pub async fn subscribe_aggregate(&self, aggregate: &AggregateId, after: u64) -> Result<Subscription> {
        self.ensure_category(aggregate.category()).await?;
        let stream = self.stream_name(aggregate.category());
        let reader = OrderedReader::start(&self.js, &stream, &aggregate.subject(), after + 1).await?;
        Ok(Subscription::new(reader))
    }

    /// The categories that have a stream (by the stream name prefix).
    pub async fn categories(&self) -> Result<Vec<String>> {
        let names = self.js.stream_names().await?;
        let mut categories: Vec<String> = names
            .iter()
            .filter_map(|name| name.strip_prefix(&self.config.stream_prefix))
            .filter(|category| check_token("category", category).is_ok())
            .map(str::to_string)
            .collect();
        categories.sort();
        Ok(categories)
    }
}

fn appended(aggregate: &AggregateId, ids: Vec<String>, ack: &PubAck) -> Appended {
    let count = ids.len();
    Appended {
        aggregate: aggregate.clone(),
        first_position: ack.seq + 1 - count as u64,
        version: ack.seq,
        count,
        ids,
        duplicate: ack.duplicate,
    }
}

fn nanos(duration: Duration) -> i64 {
    i64::try_from(duration.as_nanos()).unwrap_or(i64::MAX)
}
