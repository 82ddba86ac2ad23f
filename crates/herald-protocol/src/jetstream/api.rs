//! Request and response bodies of the JetStream JSON API (`$JS.API.>`).
//!
//! Every API response carries `"type": "io.nats.jetstream.api.v1.<…>_response"`
//! first, then its body fields; [`encode_response`] writes that. Publish acks
//! ([`PubAck`]) are the exception: nats-server sends them without a type.

use serde::{Deserialize, Serialize};

use super::config::{ConsumerConfig, StreamConfig};
use super::serde_util::{is_default, nullable, string_enum};
use super::time::Timestamp;

mod info;
mod msg;

pub use info::{
    AccountInfo, AccountLimits, ApiStats, ClusterInfo, ConsumerInfo, PeerInfo, PriorityGroupState,
    SequenceInfo, StreamInfo, StreamSourceInfo, StreamState, Tier,
};
pub use msg::{MsgDeleteRequest, MsgGetRequest, MsgGetResponse, NextRequest, NextRequestError, StoredMsg};

/// Most names in one stream/consumer names page (`JSApiNamesLimit`).
pub const NAMES_PAGE_LIMIT: usize = 1024;
/// Most entries in one stream/consumer list page (`JSApiListLimit`).
pub const LIST_PAGE_LIMIT: usize = 256;

string_enum! {
    /// The `type` of an API response.
    pub enum ResponseType {
        /// `$JS.API.INFO`
        #[default]
        AccountInfo = "io.nats.jetstream.api.v1.account_info_response",
        /// `$JS.API.STREAM.CREATE.<stream>`
        StreamCreate = "io.nats.jetstream.api.v1.stream_create_response",
        /// `$JS.API.STREAM.UPDATE.<stream>`
        StreamUpdate = "io.nats.jetstream.api.v1.stream_update_response",
        /// `$JS.API.STREAM.INFO.<stream>`
        StreamInfo = "io.nats.jetstream.api.v1.stream_info_response",
        /// `$JS.API.STREAM.DELETE.<stream>`
        StreamDelete = "io.nats.jetstream.api.v1.stream_delete_response",
        /// `$JS.API.STREAM.PURGE.<stream>`
        StreamPurge = "io.nats.jetstream.api.v1.stream_purge_response",
        /// `$JS.API.STREAM.NAMES`
        StreamNames = "io.nats.jetstream.api.v1.stream_names_response",
        /// `$JS.API.STREAM.LIST`
        StreamList = "io.nats.jetstream.api.v1.stream_list_response",
        /// `$JS.API.STREAM.MSG.GET.<stream>`
        StreamMsgGet = "io.nats.jetstream.api.v1.stream_msg_get_response",
        /// `$JS.API.STREAM.MSG.DELETE.<stream>`
        StreamMsgDelete = "io.nats.jetstream.api.v1.stream_msg_delete_response",
        /// `$JS.API.CONSUMER.CREATE.<stream>[.<consumer>[.<filter>]]`, `…DURABLE.CREATE…`
        ConsumerCreate = "io.nats.jetstream.api.v1.consumer_create_response",
        /// `$JS.API.CONSUMER.INFO.<stream>.<consumer>`
        ConsumerInfo = "io.nats.jetstream.api.v1.consumer_info_response",
        /// `$JS.API.CONSUMER.DELETE.<stream>.<consumer>`
        ConsumerDelete = "io.nats.jetstream.api.v1.consumer_delete_response",
        /// `$JS.API.CONSUMER.NAMES.<stream>`
        ConsumerNames = "io.nats.jetstream.api.v1.consumer_names_response",
        /// `$JS.API.CONSUMER.LIST.<stream>`
        ConsumerList = "io.nats.jetstream.api.v1.consumer_list_response",
        /// `$JS.API.CONSUMER.PAUSE.<stream>.<consumer>`
        ConsumerPause = "io.nats.jetstream.api.v1.consumer_pause_response",
        /// `$JS.API.CONSUMER.UNPIN.<stream>.<consumer>`
        ConsumerUnpin = "io.nats.jetstream.api.v1.consumer_unpin_response",
        /// Errors not tied to one API (e.g. an unknown `$JS.API` subject).
        System = "io.nats.jetstream.api.v1.system_response",
    }
}

/// Writes an API response: `{"type":"<ty>", …fields of body}`. `body` must
/// serialize as a JSON object.
pub fn encode_response<T: Serialize + ?Sized>(ty: ResponseType, body: &T) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    out.extend_from_slice(b"{\"type\":\"");
    out.extend_from_slice(ty.as_str().as_bytes());
    out.push(b'"');
    let fields = serde_json::to_vec(body).expect("API bodies serialize");
    assert!(
        fields.first() == Some(&b'{') && fields.last() == Some(&b'}'),
        "API response body must be a JSON object"
    );
    if fields.len() > 2 {
        out.push(b',');
        out.extend_from_slice(&fields[1..]);
    } else {
        out.push(b'}');
    }
    out
}

/// Paging fields of names/list responses (`ApiPaged`). All three are
/// required when parsing, as nats-server always writes them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Paged {
    /// Entries in total.
    pub total: u64,
    /// Offset of this page.
    pub offset: u64,
    /// Page size limit.
    pub limit: u64,
}

/// Body of `$JS.API.STREAM.NAMES` and `$JS.API.STREAM.LIST` (may be empty).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct StreamNamesRequest {
    /// Skip this many entries.
    #[serde(deserialize_with = "nullable")]
    pub offset: u64,
    /// Only streams whose subjects match this subject (wildcards allowed).
    #[serde(skip_serializing_if = "String::is_empty", deserialize_with = "nullable")]
    pub subject: String,
}

/// Body of `$JS.API.STREAM.LIST`: the same as the names request.
pub type StreamListRequest = StreamNamesRequest;

/// Response of `$JS.API.STREAM.NAMES`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct StreamNamesResponse {
    /// Paging.
    #[serde(flatten)]
    pub paged: Paged,
    /// Names on this page.
    #[serde(deserialize_with = "nullable")]
    pub streams: Vec<String>,
}

/// Response of `$JS.API.STREAM.LIST`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct StreamListResponse {
    /// Paging.
    #[serde(flatten)]
    pub paged: Paged,
    /// Streams on this page.
    #[serde(deserialize_with = "nullable")]
    pub streams: Vec<StreamInfo>,
    /// Streams that could not be read.
    #[serde(skip_serializing_if = "Vec::is_empty", deserialize_with = "nullable")]
    pub missing: Vec<String>,
}

/// Body of `$JS.API.CONSUMER.NAMES.<stream>` / `…LIST.<stream>` (may be empty).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ConsumersRequest {
    /// Skip this many entries.
    #[serde(deserialize_with = "nullable")]
    pub offset: u64,
}

/// Response of `$JS.API.CONSUMER.NAMES.<stream>`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ConsumerNamesResponse {
    /// Paging.
    #[serde(flatten)]
    pub paged: Paged,
    /// Names on this page.
    #[serde(deserialize_with = "nullable")]
    pub consumers: Vec<String>,
}

/// Response of `$JS.API.CONSUMER.LIST.<stream>`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ConsumerListResponse {
    /// Paging.
    #[serde(flatten)]
    pub paged: Paged,
    /// Consumers on this page.
    #[serde(deserialize_with = "nullable")]
    pub consumers: Vec<ConsumerInfo>,
    /// Consumers that could not be read.
    #[serde(skip_serializing_if = "Vec::is_empty", deserialize_with = "nullable")]
    pub missing: Vec<String>,
}

/// Body of `$JS.API.STREAM.INFO.<stream>` (may be empty).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct StreamInfoRequest {
    /// Offset into the subjects map.
    #[serde(deserialize_with = "nullable")]
    pub offset: u64,
    /// Report deleted sequences.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub deleted_details: bool,
    /// Report per-subject counts for subjects matching this filter.
    #[serde(skip_serializing_if = "String::is_empty", deserialize_with = "nullable")]
    pub subjects_filter: String,
}

/// Response of stream create/update/info: the [`StreamInfo`] fields, with
/// `did_create` on create and paging when subject details were requested.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamInfoResponse {
    /// The stream.
    #[serde(flatten)]
    pub info: StreamInfo,
    /// The create request made a new stream (vs. an identical existing one).
    #[serde(default, skip_serializing_if = "is_default")]
    pub did_create: bool,
    /// Paging of `state.subjects`.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub paged: Option<Paged>,
}

/// Body of `$JS.API.STREAM.PURGE.<stream>` (may be empty: purge all).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct StreamPurgeRequest {
    /// Only subjects matching this filter.
    #[serde(skip_serializing_if = "String::is_empty", deserialize_with = "nullable")]
    pub filter: String,
    /// Purge up to, not including, this sequence.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub seq: u64,
    /// Keep this many newest messages.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub keep: u64,
}

/// Response of `$JS.API.STREAM.PURGE.<stream>`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct StreamPurgeResponse {
    /// Always written (async-nats requires it).
    #[serde(deserialize_with = "nullable")]
    pub success: bool,
    /// Messages removed.
    #[serde(deserialize_with = "nullable")]
    pub purged: u64,
}

/// Response of stream delete, consumer delete and message delete.
/// `success` is always written: async-nats requires it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct DeleteResponse {
    /// The thing was deleted.
    #[serde(deserialize_with = "nullable")]
    pub success: bool,
}

string_enum! {
    /// What a consumer create request may do (`action`).
    pub enum ConsumerAction {
        /// Create, or update an existing consumer.
        #[default]
        CreateOrUpdate = "",
        /// Create only; fails if a different consumer exists.
        Create = "create",
        /// Update only; fails if the consumer does not exist.
        Update = "update",
    }
}

/// Body of `$JS.API.CONSUMER.CREATE…` / `$JS.API.CONSUMER.DURABLE.CREATE…`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct CreateConsumerRequest {
    /// Stream name; must match the subject.
    #[serde(deserialize_with = "nullable")]
    pub stream_name: String,
    /// Requested configuration (`null`/missing is error 10078).
    pub config: Option<ConsumerConfig>,
    /// Create/update semantics.
    #[serde(deserialize_with = "nullable")]
    pub action: ConsumerAction,
    /// Reject instead of adjusting invalid values.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub pedantic: bool,
}

/// Body of `$JS.API.CONSUMER.PAUSE.<stream>.<consumer>` (empty resumes).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ConsumerPauseRequest {
    /// Pause until this time; missing or past resumes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pause_until: Option<Timestamp>,
}

/// Response of `$JS.API.CONSUMER.PAUSE.<stream>.<consumer>`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ConsumerPauseResponse {
    /// Now paused.
    #[serde(deserialize_with = "nullable")]
    pub paused: bool,
    /// Until when (Go zero time when not paused).
    pub pause_until: Timestamp,
    /// Pause left, nanoseconds.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub pause_remaining: i64,
}

/// Request body of `$JS.API.STREAM.CREATE`/`UPDATE`: the configuration.
pub type StreamCreateRequest = StreamConfig;

/// The reply to a JetStream publish (`PubAck`), without a `type` field.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PubAck {
    /// Stream that stored the message.
    #[serde(deserialize_with = "nullable")]
    pub stream: String,
    /// Its sequence (of the original for a duplicate).
    #[serde(deserialize_with = "nullable")]
    pub seq: u64,
    /// JetStream domain.
    #[serde(skip_serializing_if = "String::is_empty", deserialize_with = "nullable")]
    pub domain: String,
    /// The message was a duplicate within the window and not stored again.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub duplicate: bool,
    /// Counter value, for counter streams.
    #[serde(skip_serializing_if = "Option::is_none", rename = "val")]
    pub value: Option<String>,
    /// Committed atomic batch id.
    #[serde(
        skip_serializing_if = "String::is_empty",
        rename = "batch",
        deserialize_with = "nullable"
    )]
    pub batch_id: String,
    /// Messages in the committed batch.
    #[serde(
        skip_serializing_if = "is_default",
        rename = "count",
        deserialize_with = "nullable"
    )]
    pub batch_size: u64,
}

impl PubAck {
    /// A plain acknowledgement.
    pub fn new(stream: impl Into<String>, seq: u64) -> PubAck {
        PubAck {
            stream: stream.into(),
            seq,
            ..PubAck::default()
        }
    }

    /// The JSON reply: `{"stream":"S","seq":5}` (plus set optional fields).
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("pub ack serializes")
    }
}

/// Parses a request body that may be empty (Go treats an empty body as the
/// zero request). Whitespace-only counts as empty.
pub fn parse_optional_request<T>(body: &[u8]) -> Result<T, serde_json::Error>
where
    T: for<'de> Deserialize<'de> + Default,
{
    if body.iter().all(u8::is_ascii_whitespace) {
        Ok(T::default())
    } else {
        serde_json::from_slice(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn typed_responses() {
        let body = DeleteResponse { success: true };
        assert_eq!(
            encode_response(ResponseType::StreamDelete, &body),
            br#"{"type":"io.nats.jetstream.api.v1.stream_delete_response","success":true}"#
        );
        #[derive(Serialize)]
        struct Empty {}
        assert_eq!(
            encode_response(ResponseType::ConsumerUnpin, &Empty {}),
            br#"{"type":"io.nats.jetstream.api.v1.consumer_unpin_response"}"#
        );
        let names = StreamNamesResponse {
            paged: Paged {
                total: 1,
                offset: 0,
                limit: NAMES_PAGE_LIMIT as u64,
            },
            streams: vec!["S".into()],
        };
        let v: serde_json::Value =
            serde_json::from_slice(&encode_response(ResponseType::StreamNames, &names)).unwrap();
        assert_eq!(
            v,
            json!({"type": "io.nats.jetstream.api.v1.stream_names_response",
                "total": 1, "offset": 0, "limit": 1024, "streams": ["S"]})
        );
        let back: StreamNamesResponse = serde_json::from_value(v).unwrap();
        assert_eq!(back, names);
    }

    #[test]
    fn pub_ack_shapes() {
        assert_eq!(PubAck::new("S", 5).to_json(), br#"{"stream":"S","seq":5}"#);
        let dup = PubAck {
            duplicate: true,
            domain: "hub".into(),
            ..PubAck::new("S", 5)
        };
        assert_eq!(
            dup.to_json(),
            br#"{"stream":"S","seq":5,"domain":"hub","duplicate":true}"#
        );
    }

    #[test]
    fn requests() {
        let req: CreateConsumerRequest = serde_json::from_value(json!({
            "stream_name": "S", "config": {"durable_name": "d", "ack_policy": "explicit"},
            "action": "create"
        }))
        .unwrap();
        assert_eq!(req.action, ConsumerAction::Create);
        assert_eq!(req.config.unwrap().durable_name, "d");
        let req: CreateConsumerRequest =
            serde_json::from_value(json!({"stream_name": "S", "action": ""})).unwrap();
        assert!(req.config.is_none());
        assert_eq!(req.action, ConsumerAction::CreateOrUpdate);
        assert!(serde_json::from_value::<CreateConsumerRequest>(json!({"action": "x"})).is_err());

        let req: StreamPurgeRequest = parse_optional_request(b" ").unwrap();
        assert_eq!(req, StreamPurgeRequest::default());
        let req: StreamPurgeRequest = parse_optional_request(br#"{"filter":"a.>","keep":3}"#).unwrap();
        assert_eq!((req.filter.as_str(), req.keep, req.seq), ("a.>", 3, 0));
        assert!(parse_optional_request::<StreamNamesRequest>(b"{").is_err());

        let info: StreamInfoResponse = serde_json::from_value(json!({
            "config": {"name": "S"}, "created": "2024-01-01T00:00:00Z",
            "state": {}, "ts": "2024-01-01T00:00:01Z", "did_create": true
        }))
        .unwrap();
        assert!(info.did_create && info.paged.is_none());
        let v = serde_json::to_value(&info).unwrap();
        assert_eq!(v["did_create"], true);
        assert!(v.get("total").is_none());
    }
}
