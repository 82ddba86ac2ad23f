//! Consumer configuration (`ConsumerConfig` in nats-server).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::super::serde_util::{is_default, nullable, string_enum};
use super::super::time::Timestamp;
use super::{StreamConfig, SECOND_NS};

/// Default ack wait for explicit/all ack policies (`JsAckWaitDefault`).
pub const DEFAULT_ACK_WAIT_NS: i64 = 30 * SECOND_NS;
/// Default max ack pending when acks are required (`JsDefaultMaxAckPending`).
pub const DEFAULT_MAX_ACK_PENDING: i64 = 1000;
/// Default number of waiting pull requests (`JSWaitQueueDefaultMax`).
pub const DEFAULT_MAX_WAITING: i64 = 512;
/// Inactive threshold stamped on ephemerals that set none (`JsDeleteWaitTimeDefault`).
pub const DEFAULT_EPHEMERAL_INACTIVE_THRESHOLD_NS: i64 = 5 * SECOND_NS;
/// Pin timeout for the pinned-client priority policy (`JsDefaultPinnedTTL`).
pub const DEFAULT_PRIORITY_TIMEOUT_NS: i64 = 120 * SECOND_NS;
/// Heartbeat set for the flow-control ack policy (`sourceHealthHB`).
pub const FLOW_CONTROL_HEARTBEAT_NS: i64 = SECOND_NS;

string_enum! {
    /// Where a consumer starts (`deliver_policy`).
    pub enum DeliverPolicy {
        /// From the first message (`"undefined"` is read as this too).
        #[default]
        All = "all" | "undefined",
        /// From the last message.
        Last = "last",
        /// Only messages stored after creation.
        New = "new",
        /// From `opt_start_seq`.
        ByStartSequence = "by_start_sequence",
        /// From the first message at or after `opt_start_time`.
        ByStartTime = "by_start_time",
        /// The last message of each subject, then new ones.
        LastPerSubject = "last_per_subject",
    }
}

string_enum! {
    /// How deliveries are acknowledged (`ack_policy`). A missing field is
    /// `none`, Go's zero value; clients always send it.
    pub enum AckPolicy {
        /// No acks.
        #[default]
        None = "none",
        /// Acking a message acks all before it.
        All = "all",
        /// Each message is acked.
        Explicit = "explicit",
        /// Acked by flow-control responses (sourcing, nats-server 2.14+).
        FlowControl = "flow_control",
    }
}

string_enum! {
    /// Delivery pace for stored messages (`replay_policy`).
    pub enum ReplayPolicy {
        /// As fast as possible.
        #[default]
        Instant = "instant",
        /// At the pace they were stored.
        Original = "original",
    }
}

string_enum! {
    /// Pull priority policy (`priority_policy`, nats-server 2.11+).
    pub enum PriorityPolicy {
        /// None.
        #[default]
        None = "none",
        /// Requests with `min_pending`/`min_ack_pending` get messages on overflow.
        Overflow = "overflow",
        /// One client is pinned.
        PinnedClient = "pinned_client",
        /// Requests with a lower `priority` are served first.
        Prioritized = "prioritized",
    }
}

/// A consumer's configuration.
///
/// The deliver policy is kept flat as nats-server has it: `deliver_policy`
/// plus `opt_start_seq`/`opt_start_time`. Durations are nanoseconds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ConsumerConfig {
    /// Durable name; empty for an ephemeral consumer.
    #[serde(skip_serializing_if = "String::is_empty", deserialize_with = "nullable")]
    pub durable_name: String,
    /// Consumer name (2.9+ API); may equal `durable_name`.
    #[serde(skip_serializing_if = "String::is_empty", deserialize_with = "nullable")]
    pub name: String,
    /// Free text.
    #[serde(skip_serializing_if = "String::is_empty", deserialize_with = "nullable")]
    pub description: String,
    /// Start position.
    #[serde(deserialize_with = "nullable")]
    pub deliver_policy: DeliverPolicy,
    /// Start sequence for `by_start_sequence`.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub opt_start_seq: u64,
    /// Start time for `by_start_time`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub opt_start_time: Option<Timestamp>,
    /// Ack policy.
    #[serde(deserialize_with = "nullable")]
    pub ack_policy: AckPolicy,
    /// Redelivery delay for unacked messages, nanoseconds.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub ack_wait: i64,
    /// Most deliveries of a message, `-1` unlimited.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub max_deliver: i64,
    /// Redelivery delays per attempt, nanoseconds.
    #[serde(skip_serializing_if = "Vec::is_empty", deserialize_with = "nullable")]
    pub backoff: Vec<i64>,
    /// Single subject filter.
    #[serde(skip_serializing_if = "String::is_empty", deserialize_with = "nullable")]
    pub filter_subject: String,
    /// Several subject filters (exclusive with `filter_subject`).
    #[serde(skip_serializing_if = "Vec::is_empty", deserialize_with = "nullable")]
    pub filter_subjects: Vec<String>,
    /// Replay policy.
    #[serde(deserialize_with = "nullable")]
    pub replay_policy: ReplayPolicy,
    /// Push delivery rate limit, bits per second.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub rate_limit_bps: u64,
    /// Ack sampling, e.g. `"50"` or `"50%"`.
    #[serde(skip_serializing_if = "String::is_empty", deserialize_with = "nullable")]
    pub sample_freq: String,
    /// Most waiting pull requests.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub max_waiting: i64,
    /// Most unacknowledged messages, `-1` unlimited.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub max_ack_pending: i64,
    /// Push flow control.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub flow_control: bool,
    /// Deliver headers only (adds `Nats-Msg-Size`).
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub headers_only: bool,
    /// Largest `batch` of a pull request.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub max_batch: i64,
    /// Longest `expires` of a pull request, nanoseconds.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub max_expires: i64,
    /// Largest `max_bytes` of a pull request.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub max_bytes: i64,
    /// Push consumer delivery subject; empty for pull.
    #[serde(skip_serializing_if = "String::is_empty", deserialize_with = "nullable")]
    pub deliver_subject: String,
    /// Push consumer queue group.
    #[serde(skip_serializing_if = "String::is_empty", deserialize_with = "nullable")]
    pub deliver_group: String,
    /// Push idle heartbeat, nanoseconds.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub idle_heartbeat: i64,
    /// Delete the consumer after this much inactivity, nanoseconds.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub inactive_threshold: i64,
    /// Replica count; `0` inherits the stream's.
    #[serde(deserialize_with = "nullable")]
    pub num_replicas: i64,
    /// Force memory storage of consumer state.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub mem_storage: bool,
    /// User metadata.
    #[serde(skip_serializing_if = "BTreeMap::is_empty", deserialize_with = "nullable")]
    pub metadata: BTreeMap<String, String>,
    /// Paused until this time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pause_until: Option<Timestamp>,
    /// Priority groups of a pull consumer.
    #[serde(skip_serializing_if = "Vec::is_empty", deserialize_with = "nullable")]
    pub priority_groups: Vec<String>,
    /// Priority policy.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub priority_policy: PriorityPolicy,
    /// Pin timeout for `pinned_client`, nanoseconds.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub priority_timeout: i64,
}

impl ConsumerConfig {
    /// Whether the consumer is durable (has a `durable_name`).
    pub fn is_durable(&self) -> bool {
        !self.durable_name.is_empty()
    }

    /// Whether the consumer is pull based (no `deliver_subject`).
    pub fn is_pull(&self) -> bool {
        self.deliver_subject.is_empty()
    }

    /// The subject filters, whichever field holds them; empty means all.
    pub fn filters(&self) -> Vec<&str> {
        if self.filter_subject.is_empty() {
            self.filter_subjects.iter().map(String::as_str).collect()
        } else {
            vec![self.filter_subject.as_str()]
        }
    }

    /// The configuration nats-server stores for this request on `stream`
    /// (`setConsumerConfigDefaults`, non-pedantic, plus the ephemeral
    /// inactive threshold stamped at creation):
    ///
    /// - `max_deliver` `0`/below `-1` → `-1`; negative `max_waiting`,
    ///   `max_batch`, `max_expires`, `max_bytes`, `idle_heartbeat`,
    ///   `inactive_threshold`, `priority_timeout` → `0`; `max_ack_pending`
    ///   below `-1` → `-1`;
    /// - pull consumers: `max_waiting` `0` → 512;
    /// - `ack_wait` `0` with `explicit`/`all` → 30 s; a `backoff` sets
    ///   `ack_wait` to its first value;
    /// - `max_ack_pending`/`inactive_threshold` unset → the stream's
    ///   `consumer_limits`; then `max_ack_pending` still `0` and acks
    ///   required → 1000 (server/account limits are not applied here);
    /// - `pinned_client` without `priority_timeout` → 2 min;
    /// - `flow_control` ack policy → `flow_control` on, 1 s heartbeat;
    /// - ephemeral with no `inactive_threshold` → 5 s.
    pub fn with_defaults(mut self, stream: &StreamConfig) -> ConsumerConfig {
        if self.max_deliver == 0 || self.max_deliver < -1 {
            self.max_deliver = -1;
        }
        for v in [
            &mut self.max_waiting,
            &mut self.max_batch,
            &mut self.max_expires,
            &mut self.max_bytes,
            &mut self.idle_heartbeat,
            &mut self.inactive_threshold,
            &mut self.priority_timeout,
        ] {
            *v = (*v).max(0);
        }
        if self.max_ack_pending < -1 {
            self.max_ack_pending = -1;
        }
        if self.is_pull() && self.max_waiting == 0 {
            self.max_waiting = DEFAULT_MAX_WAITING;
        }
        let acks = matches!(self.ack_policy, AckPolicy::Explicit | AckPolicy::All);
        if self.ack_wait == 0 && acks {
            self.ack_wait = DEFAULT_ACK_WAIT_NS;
        }
        if let Some(first) = self.backoff.first() {
            self.ack_wait = *first;
        }
        if self.max_ack_pending == 0 {
            self.max_ack_pending = stream.consumer_limits.max_ack_pending;
        }
        if self.inactive_threshold == 0 {
            self.inactive_threshold = stream.consumer_limits.inactive_threshold;
        }
        if self.max_ack_pending == 0 && self.ack_policy != AckPolicy::None {
            self.max_ack_pending = DEFAULT_MAX_ACK_PENDING;
        }
        if self.priority_policy == PriorityPolicy::PinnedClient && self.priority_timeout == 0 {
            self.priority_timeout = DEFAULT_PRIORITY_TIMEOUT_NS;
        }
        if self.ack_policy == AckPolicy::FlowControl {
            self.flow_control = true;
            self.idle_heartbeat = FLOW_CONTROL_HEARTBEAT_NS;
        }
        if !self.is_durable() && self.inactive_threshold <= 0 {
            self.inactive_threshold = DEFAULT_EPHEMERAL_INACTIVE_THRESHOLD_NS;
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pull_defaults() {
        let cfg: ConsumerConfig = serde_json::from_value(json!({
            "durable_name": "d", "deliver_policy": "all", "ack_policy": "explicit",
            "replay_policy": "instant", "future": true
        }))
        .unwrap();
        let cfg = cfg.with_defaults(&StreamConfig::default());
        assert_eq!(cfg.ack_wait, DEFAULT_ACK_WAIT_NS);
        assert_eq!(cfg.max_deliver, -1);
        assert_eq!(cfg.max_waiting, 512);
        assert_eq!(cfg.max_ack_pending, 1000);
        assert_eq!(cfg.inactive_threshold, 0);
        assert_eq!(
            serde_json::to_value(&cfg).unwrap(),
            json!({
                "durable_name": "d", "deliver_policy": "all", "ack_policy": "explicit",
                "ack_wait": 30_000_000_000i64, "max_deliver": -1, "replay_policy": "instant",
                "max_waiting": 512, "max_ack_pending": 1000, "num_replicas": 0
            })
        );
        assert_eq!(cfg.clone().with_defaults(&StreamConfig::default()), cfg);
    }

    #[test]
    fn push_ephemeral_and_stream_limits() {
        let stream = StreamConfig {
            consumer_limits: super::super::StreamConsumerLimits {
                inactive_threshold: 0,
                max_ack_pending: 7,
            },
            ..Default::default()
        };
        let cfg = ConsumerConfig {
            deliver_subject: "inbox".into(),
            ack_policy: AckPolicy::None,
            backoff: vec![SECOND_NS, 2 * SECOND_NS],
            ..Default::default()
        }
        .with_defaults(&stream);
        assert_eq!(cfg.max_waiting, 0);
        assert_eq!(cfg.ack_wait, SECOND_NS);
        assert_eq!(cfg.max_ack_pending, 7);
        assert_eq!(cfg.inactive_threshold, DEFAULT_EPHEMERAL_INACTIVE_THRESHOLD_NS);

        let none = ConsumerConfig::default().with_defaults(&StreamConfig::default());
        assert_eq!((none.ack_wait, none.max_ack_pending), (0, 0));

        let pinned = ConsumerConfig {
            durable_name: "p".into(),
            ack_policy: AckPolicy::FlowControl,
            priority_policy: PriorityPolicy::PinnedClient,
            ..Default::default()
        }
        .with_defaults(&StreamConfig::default());
        assert_eq!(pinned.priority_timeout, DEFAULT_PRIORITY_TIMEOUT_NS);
        assert!(pinned.flow_control);
        assert_eq!(pinned.idle_heartbeat, FLOW_CONTROL_HEARTBEAT_NS);
    }

    #[test]
    fn parse_all_fields() {
        let cfg: ConsumerConfig = serde_json::from_value(json!({
            "name": "n", "deliver_policy": "by_start_time",
            "opt_start_time": "2024-01-02T03:04:05.5Z", "ack_policy": "all",
            "filter_subjects": ["a", "b"], "replay_policy": "original",
            "sample_freq": "50%", "backoff": [1, 2], "metadata": {"k": "v"},
            "priority_policy": "overflow", "priority_groups": ["g"],
            "pause_until": "2030-01-01T00:00:00Z", "max_waiting": null
        }))
        .unwrap();
        assert_eq!(cfg.deliver_policy, DeliverPolicy::ByStartTime);
        assert_eq!(cfg.filters(), vec!["a", "b"]);
        assert_eq!(cfg.priority_policy, PriorityPolicy::Overflow);
        assert!(!cfg.is_durable() && cfg.is_pull());
        let text = serde_json::to_string(&cfg).unwrap();
        assert_eq!(serde_json::from_str::<ConsumerConfig>(&text).unwrap(), cfg);
        let undefined: ConsumerConfig =
            serde_json::from_value(json!({"deliver_policy": "undefined"})).unwrap();
        assert_eq!(undefined.deliver_policy, DeliverPolicy::All);
        assert!(serde_json::from_value::<ConsumerConfig>(json!({"ack_policy": "x"})).is_err());
    }
}
