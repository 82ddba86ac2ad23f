//! Stream and consumer configuration, as `$JS.API.STREAM.CREATE` /
//! `$JS.API.CONSUMER.CREATE` requests carry it and info responses echo it.
//!
//! Field names, `omitempty` rules and enum spellings follow nats-server's
//! `StreamConfig`/`ConsumerConfig`; durations are `i64` nanoseconds. Parsing
//! is lenient like Go's `encoding/json`: unknown fields are ignored, missing
//! fields and `null` take the zero value. Server-side defaults are applied by
//! [`StreamConfig::with_defaults`] / [`ConsumerConfig::with_defaults`], never
//! while parsing, so a request can be compared with what was stored.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::serde_util::{is_default, nullable, string_enum};
use super::time::Timestamp;

mod consumer;

pub use consumer::{AckPolicy, ConsumerConfig, DeliverPolicy, PriorityPolicy, ReplayPolicy};

/// One second in nanoseconds.
pub(crate) const SECOND_NS: i64 = 1_000_000_000;
/// nats-server's default duplicate window (`StreamDefaultDuplicatesWindow`).
pub const DEFAULT_DUPLICATE_WINDOW_NS: i64 = 120 * SECOND_NS;

string_enum! {
    /// How messages are retained (`retention`).
    pub enum RetentionPolicy {
        /// Kept until a limit (count, bytes, age) removes them.
        #[default]
        Limits = "limits",
        /// Kept while some consumer has not acknowledged them.
        Interest = "interest",
        /// Removed once acknowledged by the one consumer that receives them.
        WorkQueue = "workqueue",
    }
}

string_enum! {
    /// What happens when a stream limit is reached (`discard`). nats-server
    /// reads this case-insensitively.
    pub enum DiscardPolicy {
        /// Old messages are removed to make room.
        #[default]
        Old = "old" | "Old" | "OLD",
        /// New messages are refused.
        New = "new" | "New" | "NEW",
    }
}

string_enum! {
    /// Where messages are stored (`storage`).
    pub enum StorageType {
        /// On disk.
        #[default]
        File = "file",
        /// In memory.
        Memory = "memory",
    }
}

string_enum! {
    /// On-disk compression (`compression`).
    pub enum Compression {
        /// No compression.
        #[default]
        None = "none",
        /// S2 compression.
        S2 = "s2",
    }
}

string_enum! {
    /// Persistence mode (`persist_mode`, nats-server 2.12+).
    pub enum PersistMode {
        /// Flushed before the publish is acknowledged.
        #[default]
        Default = "default" | "",
        /// Flushed asynchronously.
        Async = "async",
    }
}

/// A stream's configuration (`StreamConfig` in nats-server).
///
/// Numeric limits use `-1` for "unlimited" once defaults are applied; `0`
/// in a request means "not set".
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct StreamConfig {
    /// Stream name.
    #[serde(deserialize_with = "nullable")]
    pub name: String,
    /// Free text.
    #[serde(skip_serializing_if = "String::is_empty", deserialize_with = "nullable")]
    pub description: String,
    /// Subjects the stream captures; defaults to `[name]`.
    #[serde(skip_serializing_if = "Vec::is_empty", deserialize_with = "nullable")]
    pub subjects: Vec<String>,
    /// Retention policy.
    #[serde(deserialize_with = "nullable")]
    pub retention: RetentionPolicy,
    /// Most consumers, `-1` unlimited.
    #[serde(deserialize_with = "nullable")]
    pub max_consumers: i64,
    /// Most messages, `-1` unlimited.
    #[serde(deserialize_with = "nullable")]
    pub max_msgs: i64,
    /// Most bytes, `-1` unlimited.
    #[serde(deserialize_with = "nullable")]
    pub max_bytes: i64,
    /// Oldest message age in nanoseconds, `0` unlimited.
    #[serde(deserialize_with = "nullable")]
    pub max_age: i64,
    /// Most messages per subject, `-1` unlimited.
    #[serde(deserialize_with = "nullable")]
    pub max_msgs_per_subject: i64,
    /// Largest message in bytes, `-1` unlimited.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub max_msg_size: i32,
    /// Discard policy.
    #[serde(deserialize_with = "nullable")]
    pub discard: DiscardPolicy,
    /// Storage type.
    #[serde(deserialize_with = "nullable")]
    pub storage: StorageType,
    /// Replica count; defaults to 1.
    #[serde(deserialize_with = "nullable")]
    pub num_replicas: i64,
    /// Publishes are not acknowledged.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub no_ack: bool,
    /// Window for `Nats-Msg-Id` de-duplication, nanoseconds.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub duplicate_window: i64,
    /// Cluster placement.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub placement: Option<Placement>,
    /// Stream this one mirrors.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mirror: Option<StreamSource>,
    /// Streams this one sources from.
    #[serde(skip_serializing_if = "Vec::is_empty", deserialize_with = "nullable")]
    pub sources: Vec<StreamSource>,
    /// On-disk compression.
    #[serde(deserialize_with = "nullable")]
    pub compression: Compression,
    /// First sequence of a new stream.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub first_seq: u64,
    /// Transform applied to incoming subjects.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject_transform: Option<SubjectTransform>,
    /// Republish stored messages.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub republish: Option<RePublish>,
    /// Direct get (`$JS.API.DIRECT.GET`) allowed.
    #[serde(deserialize_with = "nullable")]
    pub allow_direct: bool,
    /// Direct get allowed on mirrors.
    #[serde(deserialize_with = "nullable")]
    pub mirror_direct: bool,
    /// With `discard: new`, refuse per subject once `max_msgs_per_subject` is hit.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub discard_new_per_subject: bool,
    /// Nothing may be added or removed.
    #[serde(deserialize_with = "nullable")]
    pub sealed: bool,
    /// Message deletion refused.
    #[serde(deserialize_with = "nullable")]
    pub deny_delete: bool,
    /// Purges refused.
    #[serde(deserialize_with = "nullable")]
    pub deny_purge: bool,
    /// `Nats-Rollup` headers honoured.
    #[serde(deserialize_with = "nullable")]
    pub allow_rollup_hdrs: bool,
    /// Defaults for consumers of this stream.
    #[serde(deserialize_with = "nullable")]
    pub consumer_limits: StreamConsumerLimits,
    /// `Nats-TTL` headers honoured.
    #[serde(deserialize_with = "nullable")]
    pub allow_msg_ttl: bool,
    /// TTL of subject delete markers, nanoseconds; `0` none.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub subject_delete_marker_ttl: i64,
    /// Counter CRDT stream.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub allow_msg_counter: bool,
    /// Atomic batch publish allowed.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub allow_atomic: bool,
    /// Message schedules allowed.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub allow_msg_schedules: bool,
    /// Persistence mode.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub persist_mode: PersistMode,
    /// Fast batch publish allowed.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub allow_batched: bool,
    /// User metadata.
    #[serde(skip_serializing_if = "BTreeMap::is_empty", deserialize_with = "nullable")]
    pub metadata: BTreeMap<String, String>,
}

/// Consumer defaults a stream imposes (`consumer_limits`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct StreamConsumerLimits {
    /// Default inactive threshold, nanoseconds.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub inactive_threshold: i64,
    /// Default max ack pending.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub max_ack_pending: i64,
}

/// Cluster placement (`placement`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Placement {
    /// Cluster name.
    #[serde(skip_serializing_if = "String::is_empty", deserialize_with = "nullable")]
    pub cluster: String,
    /// Server tags.
    #[serde(skip_serializing_if = "Vec::is_empty", deserialize_with = "nullable")]
    pub tags: Vec<String>,
    /// Preferred leader.
    #[serde(skip_serializing_if = "String::is_empty", deserialize_with = "nullable")]
    pub preferred: String,
}

/// A mirror or source (`StreamSource`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct StreamSource {
    /// Origin stream name.
    #[serde(deserialize_with = "nullable")]
    pub name: String,
    /// Start at this sequence.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub opt_start_seq: u64,
    /// Start at this time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub opt_start_time: Option<Timestamp>,
    /// Only subjects matching this filter.
    #[serde(skip_serializing_if = "String::is_empty", deserialize_with = "nullable")]
    pub filter_subject: String,
    /// Filters with transforms.
    #[serde(skip_serializing_if = "Vec::is_empty", deserialize_with = "nullable")]
    pub subject_transforms: Vec<SubjectTransform>,
    /// Origin in another account or domain.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external: Option<ExternalStream>,
    /// Durable consumer used for sourcing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consumer: Option<StreamConsumerSource>,
}

/// API and delivery prefixes of an external stream.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ExternalStream {
    /// API prefix, e.g. `$JS.hub.API`.
    #[serde(deserialize_with = "nullable")]
    pub api: String,
    /// Delivery prefix (left out when empty; nats-server writes `""`).
    #[serde(skip_serializing_if = "String::is_empty", deserialize_with = "nullable")]
    pub deliver: String,
}

/// A named durable consumer used by a source.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct StreamConsumerSource {
    /// Consumer name.
    #[serde(skip_serializing_if = "String::is_empty", deserialize_with = "nullable")]
    pub name: String,
    /// Deliver subject.
    #[serde(skip_serializing_if = "String::is_empty", deserialize_with = "nullable")]
    pub deliver_subject: String,
}

/// A subject transform (`src` → `dest`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SubjectTransform {
    /// Source filter.
    #[serde(deserialize_with = "nullable")]
    pub src: String,
    /// Destination template.
    #[serde(deserialize_with = "nullable")]
    pub dest: String,
}

/// Republish configuration.
///
/// `src` is always written: nats-server leaves it out when empty, but
/// async-nats requires it when decoding a stream config.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RePublish {
    /// Source filter.
    #[serde(deserialize_with = "nullable")]
    pub src: String,
    /// Destination template.
    #[serde(deserialize_with = "nullable")]
    pub dest: String,
    /// Republish headers only.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub headers_only: bool,
}

/// Normalises a numeric limit the way nats-server does: `0` (unset) or any
/// value below `-1` becomes `-1` (unlimited).
fn unlimited_if_unset<T: PartialOrd + From<i8>>(value: &mut T) {
    if *value == T::from(0) || *value < T::from(-1) {
        *value = T::from(-1);
    }
}

impl StreamConfig {
    /// A configuration with only a name and subjects set.
    pub fn new(name: impl Into<String>, subjects: Vec<String>) -> StreamConfig {
        StreamConfig {
            name: name.into(),
            subjects,
            ..StreamConfig::default()
        }
    }

    /// The configuration nats-server stores for this request (the
    /// non-pedantic path of `checkStreamCfg`): one replica, `-1` for unset
    /// count/byte/size/consumer limits, a 2-minute duplicate window (no more
    /// than `max_age`) unless the stream is a mirror or has sources,
    /// `subjects = [name]` when none are given and it is not a mirror or
    /// sourced, and a subject delete marker TTL switches on message TTLs and
    /// rollups (clearing `deny_purge`). Validation is separate.
    pub fn with_defaults(mut self) -> StreamConfig {
        if self.num_replicas == 0 {
            self.num_replicas = 1;
        }
        unlimited_if_unset(&mut self.max_msgs);
        unlimited_if_unset(&mut self.max_msgs_per_subject);
        unlimited_if_unset(&mut self.max_bytes);
        unlimited_if_unset(&mut self.max_msg_size);
        unlimited_if_unset(&mut self.max_consumers);
        let derived = self.mirror.is_some() || !self.sources.is_empty();
        if self.duplicate_window == 0 && !derived {
            self.duplicate_window = if self.max_age > 0 && self.max_age < DEFAULT_DUPLICATE_WINDOW_NS {
                self.max_age
            } else {
                DEFAULT_DUPLICATE_WINDOW_NS
            };
        }
        if self.subject_delete_marker_ttl > 0 {
            self.allow_msg_ttl = true;
            if !self.allow_rollup_hdrs {
                self.allow_rollup_hdrs = true;
                self.deny_purge = false;
            }
        }
        if self.subjects.is_empty() && !derived {
            self.subjects.push(self.name.clone());
        }
        self
    }

    /// Whether the stream takes its messages from other streams.
    pub fn is_derived(&self) -> bool {
        self.mirror.is_some() || !self.sources.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn minimal_request_and_defaults() {
        let cfg: StreamConfig =
            serde_json::from_value(json!({"name": "ORDERS", "subjects": ["orders.>"]})).unwrap();
        assert_eq!(cfg.retention, RetentionPolicy::Limits);
        assert_eq!(cfg.storage, StorageType::File);
        assert_eq!(cfg.max_msgs, 0);
        let cfg = cfg.with_defaults();
        assert_eq!(cfg.num_replicas, 1);
        assert_eq!(
            (cfg.max_msgs, cfg.max_bytes, cfg.max_msg_size, cfg.max_consumers),
            (-1, -1, -1, -1)
        );
        assert_eq!(cfg.max_msgs_per_subject, -1);
        assert_eq!(cfg.duplicate_window, DEFAULT_DUPLICATE_WINDOW_NS);
        let v = serde_json::to_value(&cfg).unwrap();
        assert_eq!(
            v,
            json!({
                "name": "ORDERS", "subjects": ["orders.>"], "retention": "limits",
                "max_consumers": -1, "max_msgs": -1, "max_bytes": -1, "max_age": 0,
                "max_msgs_per_subject": -1, "max_msg_size": -1, "discard": "old",
                "storage": "file", "num_replicas": 1, "duplicate_window": 120_000_000_000i64,
                "compression": "none", "allow_direct": false, "mirror_direct": false,
                "sealed": false, "deny_delete": false, "deny_purge": false,
                "allow_rollup_hdrs": false, "consumer_limits": {}, "allow_msg_ttl": false
            })
        );
    }

    #[test]
    fn defaults_follow_server_rules() {
        let cfg = StreamConfig {
            name: "S".into(),
            max_age: SECOND_NS,
            max_msgs: -5,
            subject_delete_marker_ttl: SECOND_NS,
            deny_purge: true,
            ..Default::default()
        }
        .with_defaults();
        assert_eq!(cfg.subjects, vec!["S".to_string()]);
        assert_eq!(cfg.duplicate_window, SECOND_NS);
        assert_eq!(cfg.max_msgs, -1);
        assert!(cfg.allow_msg_ttl && cfg.allow_rollup_hdrs && !cfg.deny_purge);

        let mirror = StreamConfig {
            name: "M".into(),
            mirror: Some(StreamSource {
                name: "S".into(),
                ..Default::default()
            }),
            ..Default::default()
        }
        .with_defaults();
        assert!(mirror.subjects.is_empty());
        assert_eq!(mirror.duplicate_window, 0);
        // Applying defaults twice changes nothing.
        assert_eq!(cfg.clone().with_defaults(), cfg);
    }

    #[test]
    fn lenient_like_go() {
        let cfg: StreamConfig = serde_json::from_value(json!({
            "name": "S", "consumer_limits": null, "description": null,
            "discard": "New", "some_future_field": {"x": 1}, "compression": "s2",
            "persist_mode": "async", "metadata": {"a": "b"},
            "mirror": null, "sources": [{"name": "A", "opt_start_time": "2024-01-02T03:04:05Z",
                "external": {"api": "$JS.hub.API", "deliver": ""}}]
        }))
        .unwrap();
        assert_eq!(cfg.discard, DiscardPolicy::New);
        assert_eq!(cfg.compression, Compression::S2);
        assert_eq!(cfg.persist_mode, PersistMode::Async);
        assert_eq!(cfg.sources[0].external.as_ref().unwrap().api, "$JS.hub.API");
        assert!(cfg.sources[0].opt_start_time.is_some());
        assert!(serde_json::from_value::<StreamConfig>(json!({"retention": "forever"})).is_err());
        assert!(serde_json::from_value::<StreamConfig>(json!({"max_msgs": "1"})).is_err());
    }

    #[test]
    fn round_trips() {
        let cfg = StreamConfig {
            name: "KV_x".into(),
            description: "d".into(),
            subjects: vec!["$KV.x.>".into()],
            retention: RetentionPolicy::WorkQueue,
            max_age: 5 * SECOND_NS,
            discard: DiscardPolicy::New,
            discard_new_per_subject: true,
            max_msgs_per_subject: 1,
            storage: StorageType::Memory,
            republish: Some(RePublish {
                src: String::new(),
                dest: "r.>".into(),
                headers_only: true,
            }),
            placement: Some(Placement {
                cluster: "c".into(),
                tags: vec!["t".into()],
                preferred: String::new(),
            }),
            allow_atomic: true,
            consumer_limits: StreamConsumerLimits {
                inactive_threshold: SECOND_NS,
                max_ack_pending: 10,
            },
            ..Default::default()
        }
        .with_defaults();
        let text = serde_json::to_string(&cfg).unwrap();
        assert!(text.contains("\"src\":\"\""));
        assert_eq!(serde_json::from_str::<StreamConfig>(&text).unwrap(), cfg);
    }
}
