//! Stream, consumer and account information bodies.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::super::config::{ConsumerConfig, ExternalStream, StreamConfig, SubjectTransform};
use super::super::error::ApiError;
use super::super::serde_util::{is_default, nullable};
use super::super::time::Timestamp;

/// Configuration and state of a stream (`StreamInfo`): the body of
/// stream create/update/info responses and of stream list entries.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct StreamInfo {
    /// The configuration in force (defaults applied).
    pub config: StreamConfig,
    /// When the stream was created.
    pub created: Timestamp,
    /// Current state.
    pub state: StreamState,
    /// JetStream domain.
    #[serde(skip_serializing_if = "String::is_empty", deserialize_with = "nullable")]
    pub domain: String,
    /// Leader and replicas.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster: Option<ClusterInfo>,
    /// Mirror status.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mirror: Option<StreamSourceInfo>,
    /// Source status.
    #[serde(skip_serializing_if = "Vec::is_empty", deserialize_with = "nullable")]
    pub sources: Vec<StreamSourceInfo>,
    /// When this information was gathered.
    pub ts: Timestamp,
}

/// A stream's state (`StreamState`). Times of an empty stream are Go's zero
/// time, as nats-server writes them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct StreamState {
    /// Stored messages.
    #[serde(deserialize_with = "nullable")]
    pub messages: u64,
    /// Stored bytes.
    #[serde(deserialize_with = "nullable")]
    pub bytes: u64,
    /// First sequence.
    #[serde(deserialize_with = "nullable")]
    pub first_seq: u64,
    /// Time of the first message.
    pub first_ts: Timestamp,
    /// Last sequence.
    #[serde(deserialize_with = "nullable")]
    pub last_seq: u64,
    /// Time of the last message.
    pub last_ts: Timestamp,
    /// Distinct subjects.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub num_subjects: u64,
    /// Messages per subject, when requested with `subjects_filter`.
    #[serde(skip_serializing_if = "BTreeMap::is_empty", deserialize_with = "nullable")]
    pub subjects: BTreeMap<String, u64>,
    /// Deleted messages between first and last.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub num_deleted: u64,
    /// Deleted sequences, when requested with `deleted_details`.
    #[serde(skip_serializing_if = "Vec::is_empty", deserialize_with = "nullable")]
    pub deleted: Vec<u64>,
    /// Consumers on the stream.
    #[serde(deserialize_with = "nullable")]
    pub consumer_count: u64,
}

/// Leader and replicas of a stream or consumer (`ClusterInfo`). A single
/// server reports itself as leader.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ClusterInfo {
    /// Cluster name.
    #[serde(skip_serializing_if = "String::is_empty", deserialize_with = "nullable")]
    pub name: String,
    /// Raft group.
    #[serde(skip_serializing_if = "String::is_empty", deserialize_with = "nullable")]
    pub raft_group: String,
    /// Leader server name.
    #[serde(skip_serializing_if = "String::is_empty", deserialize_with = "nullable")]
    pub leader: String,
    /// Leader since.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub leader_since: Option<Timestamp>,
    /// Other replicas.
    #[serde(skip_serializing_if = "Vec::is_empty", deserialize_with = "nullable")]
    pub replicas: Vec<PeerInfo>,
}

/// A replica (`PeerInfo`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PeerInfo {
    /// Server name.
    #[serde(deserialize_with = "nullable")]
    pub name: String,
    /// Caught up.
    #[serde(deserialize_with = "nullable")]
    pub current: bool,
    /// Not seen recently.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub offline: bool,
    /// Since last seen, nanoseconds.
    #[serde(deserialize_with = "nullable")]
    pub active: i64,
    /// Operations behind.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub lag: u64,
    /// Peer id.
    #[serde(deserialize_with = "nullable")]
    pub peer: String,
}

/// Status of a mirror or source (`StreamSourceInfo`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct StreamSourceInfo {
    /// Origin stream.
    #[serde(deserialize_with = "nullable")]
    pub name: String,
    /// Origin account/domain.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external: Option<ExternalStream>,
    /// Messages behind.
    #[serde(deserialize_with = "nullable")]
    pub lag: u64,
    /// Since last contact, nanoseconds; `-1` never.
    #[serde(deserialize_with = "nullable")]
    pub active: i64,
    /// Last setup error.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ApiError>,
    /// Filter.
    #[serde(skip_serializing_if = "String::is_empty", deserialize_with = "nullable")]
    pub filter_subject: String,
    /// Transforms.
    #[serde(skip_serializing_if = "Vec::is_empty", deserialize_with = "nullable")]
    pub subject_transforms: Vec<SubjectTransform>,
}

/// Configuration and state of a consumer (`ConsumerInfo`): the body of
/// consumer create/info responses and consumer list entries.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ConsumerInfo {
    /// Stream the consumer reads.
    #[serde(deserialize_with = "nullable")]
    pub stream_name: String,
    /// Consumer name.
    #[serde(deserialize_with = "nullable")]
    pub name: String,
    /// When created.
    pub created: Timestamp,
    /// Configuration in force (defaults applied).
    pub config: ConsumerConfig,
    /// Last delivered sequences.
    pub delivered: SequenceInfo,
    /// Acknowledgement floor.
    pub ack_floor: SequenceInfo,
    /// Delivered but not acknowledged.
    #[serde(deserialize_with = "nullable")]
    pub num_ack_pending: u64,
    /// Redelivered and not acknowledged.
    #[serde(deserialize_with = "nullable")]
    pub num_redelivered: u64,
    /// Waiting pull requests.
    #[serde(deserialize_with = "nullable")]
    pub num_waiting: u64,
    /// Messages matching the filter not yet delivered.
    #[serde(deserialize_with = "nullable")]
    pub num_pending: u64,
    /// Leader and replicas.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster: Option<ClusterInfo>,
    /// A push consumer has a subscriber on its deliver subject.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub push_bound: bool,
    /// Paused.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub paused: bool,
    /// Pause left, nanoseconds.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub pause_remaining: i64,
    /// When this information was gathered.
    pub ts: Timestamp,
    /// Priority group state.
    #[serde(skip_serializing_if = "Vec::is_empty", deserialize_with = "nullable")]
    pub priority_groups: Vec<PriorityGroupState>,
}

/// A pair of consumer and stream sequences (`SequenceInfo`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SequenceInfo {
    /// Consumer (delivery) sequence.
    #[serde(deserialize_with = "nullable")]
    pub consumer_seq: u64,
    /// Stream sequence.
    #[serde(deserialize_with = "nullable")]
    pub stream_seq: u64,
    /// Time of last activity.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_active: Option<Timestamp>,
}

/// State of one priority group.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PriorityGroupState {
    /// Group name.
    #[serde(deserialize_with = "nullable")]
    pub group: String,
    /// Pinned client id.
    #[serde(skip_serializing_if = "String::is_empty", deserialize_with = "nullable")]
    pub pinned_client_id: String,
    /// When the client was pinned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pinned_ts: Option<Timestamp>,
}

/// JetStream usage and limits of an account: the `$JS.API.INFO` response
/// body (`JetStreamAccountStats`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct AccountInfo {
    /// Memory-stored bytes.
    #[serde(deserialize_with = "nullable")]
    pub memory: u64,
    /// File-stored bytes.
    #[serde(deserialize_with = "nullable")]
    pub storage: u64,
    /// Memory reserved by stream limits.
    #[serde(deserialize_with = "nullable")]
    pub reserved_memory: u64,
    /// Storage reserved by stream limits.
    #[serde(deserialize_with = "nullable")]
    pub reserved_storage: u64,
    /// Streams.
    #[serde(deserialize_with = "nullable")]
    pub streams: u64,
    /// Consumers.
    #[serde(deserialize_with = "nullable")]
    pub consumers: u64,
    /// Limits.
    pub limits: AccountLimits,
    /// JetStream domain.
    #[serde(skip_serializing_if = "String::is_empty", deserialize_with = "nullable")]
    pub domain: String,
    /// API request counters.
    pub api: ApiStats,
    /// Per-tier usage, when tiers are configured.
    #[serde(skip_serializing_if = "BTreeMap::is_empty", deserialize_with = "nullable")]
    pub tiers: BTreeMap<String, Tier>,
}

/// Account limits (`JetStreamAccountLimits`); `-1` unlimited.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct AccountLimits {
    /// Most memory bytes.
    #[serde(deserialize_with = "nullable")]
    pub max_memory: i64,
    /// Most file bytes.
    #[serde(deserialize_with = "nullable")]
    pub max_storage: i64,
    /// Most streams.
    #[serde(deserialize_with = "nullable")]
    pub max_streams: i64,
    /// Most consumers.
    #[serde(deserialize_with = "nullable")]
    pub max_consumers: i64,
    /// Highest `max_ack_pending` a consumer may set.
    #[serde(deserialize_with = "nullable")]
    pub max_ack_pending: i64,
    /// Largest memory stream.
    #[serde(deserialize_with = "nullable")]
    pub memory_max_stream_bytes: i64,
    /// Largest file stream.
    #[serde(deserialize_with = "nullable")]
    pub storage_max_stream_bytes: i64,
    /// Streams must set `max_bytes`.
    #[serde(deserialize_with = "nullable")]
    pub max_bytes_required: bool,
}

impl AccountLimits {
    /// Every limit off (`-1`; `max_ack_pending` `0`, as nats-server reports).
    pub fn unlimited() -> AccountLimits {
        AccountLimits {
            max_memory: -1,
            max_storage: -1,
            max_streams: -1,
            max_consumers: -1,
            max_ack_pending: 0,
            memory_max_stream_bytes: -1,
            storage_max_stream_bytes: -1,
            max_bytes_required: false,
        }
    }
}

/// API counters (`JetStreamAPIStats`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ApiStats {
    /// API level implemented.
    #[serde(deserialize_with = "nullable")]
    pub level: u64,
    /// Requests received.
    #[serde(deserialize_with = "nullable")]
    pub total: u64,
    /// Requests answered with an error.
    #[serde(deserialize_with = "nullable")]
    pub errors: u64,
    /// Requests in progress.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub inflight: u64,
}

/// Usage of one tier (`JetStreamTier`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Tier {
    /// Memory-stored bytes.
    #[serde(deserialize_with = "nullable")]
    pub memory: u64,
    /// File-stored bytes.
    #[serde(deserialize_with = "nullable")]
    pub storage: u64,
    /// Memory reserved.
    #[serde(deserialize_with = "nullable")]
    pub reserved_memory: u64,
    /// Storage reserved.
    #[serde(deserialize_with = "nullable")]
    pub reserved_storage: u64,
    /// Streams.
    #[serde(deserialize_with = "nullable")]
    pub streams: u64,
    /// Consumers.
    #[serde(deserialize_with = "nullable")]
    pub consumers: u64,
    /// Limits.
    pub limits: AccountLimits,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn empty_stream_state_uses_go_zero_times() {
        let v = serde_json::to_value(StreamState::default()).unwrap();
        assert_eq!(
            v,
            json!({"messages": 0, "bytes": 0, "first_seq": 0,
                "first_ts": "0001-01-01T00:00:00Z", "last_seq": 0,
                "last_ts": "0001-01-01T00:00:00Z", "consumer_count": 0})
        );
    }

    #[test]
    fn consumer_info_round_trips() {
        let info = ConsumerInfo {
            stream_name: "S".into(),
            name: "C".into(),
            created: Timestamp::from_unix_nanos(1_700_000_000_000_000_000),
            delivered: SequenceInfo {
                consumer_seq: 3,
                stream_seq: 9,
                last_active: Some(Timestamp::from_unix_nanos(1_700_000_001_000_000_000)),
            },
            num_pending: 4,
            push_bound: true,
            ts: Timestamp::from_unix_nanos(1_700_000_002_000_000_000),
            ..Default::default()
        };
        let v = serde_json::to_value(&info).unwrap();
        assert_eq!(v["delivered"]["last_active"], "2023-11-14T22:13:21Z");
        assert_eq!(v["ack_floor"], json!({"consumer_seq": 0, "stream_seq": 0}));
        assert_eq!(v["push_bound"], true);
        assert!(v.get("paused").is_none());
        assert_eq!(serde_json::from_value::<ConsumerInfo>(v).unwrap(), info);
    }

    #[test]
    fn account_info_shape() {
        let info = AccountInfo {
            limits: AccountLimits::unlimited(),
            api: ApiStats {
                level: 1,
                total: 5,
                errors: 1,
                inflight: 0,
            },
            ..Default::default()
        };
        let v = serde_json::to_value(&info).unwrap();
        assert_eq!(v["limits"]["max_memory"], -1);
        assert_eq!(v["api"], json!({"level": 1, "total": 5, "errors": 1}));
        assert!(v.get("domain").is_none() && v.get("tiers").is_none());
    }
}
