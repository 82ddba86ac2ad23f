//! JetStream API errors: the `error` object of API responses and the table
//! of codes Herald emits.
//!
//! Every entry of [`ApiErrorCode`] carries nats-server's HTTP-like `code`,
//! its JetStream `err_code` and the description exactly as worded in
//! nats-server's `server/errors.json`. Descriptions with a `{placeholder}`
//! are filled by [`ApiError::with_arg`].

use std::fmt;

use serde::{Deserialize, Serialize};

use super::api::ResponseType;
use super::serde_util::is_default;

macro_rules! error_table {
    ($(
        $(#[$meta:meta])*
        $variant:ident = ($code:literal, $err_code:literal, $description:literal),
    )+) => {
        /// The JetStream errors Herald emits: one row per nats-server
        /// `errors.json` entry, named after its constant without `JS`/`Err`.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ApiErrorCode {
            $($(#[$meta])* $variant,)+
        }

        impl ApiErrorCode {
            /// Every row of the table.
            pub const ALL: &'static [ApiErrorCode] = &[$(ApiErrorCode::$variant,)+];

            /// HTTP-like status (`code`).
            pub const fn code(self) -> u16 {
                match self {
                    $(ApiErrorCode::$variant => $code,)+
                }
            }

            /// JetStream error code (`err_code`).
            pub const fn err_code(self) -> u16 {
                match self {
                    $(ApiErrorCode::$variant => $err_code,)+
                }
            }

            /// Description template as nats-server words it.
            pub const fn description(self) -> &'static str {
                match self {
                    $(ApiErrorCode::$variant => $description,)+
                }
            }
        }
    };
}

error_table! {
    /// 10002
    AccountResourcesExceeded = (400, 10002, "resource limits exceeded for account"),
    /// 10003
    BadRequest = (400, 10003, "bad request"),
    /// 10012: `{err}`
    ConsumerCreate = (500, 10012, "{err}"),
    /// 10013
    ConsumerNameExist = (400, 10013, "consumer name already in use"),
    /// 10014
    ConsumerNotFound = (404, 10014, "consumer not found"),
    /// 10016
    ConsumerDurableNameNotInSubject = (400, 10016, "consumer expected to be durable but no durable name set in subject"),
    /// 10017
    ConsumerDurableNameNotMatchSubject = (400, 10017, "consumer name in subject does not match durable name in request"),
    /// 10018
    ConsumerDurableNameNotSet = (400, 10018, "consumer expected to be durable but a durable name was not set"),
    /// 10019
    ConsumerEphemeralWithDurableInSubject = (400, 10019, "consumer expected to be ephemeral but detected a durable name set in subject"),
    /// 10020
    ConsumerEphemeralWithDurableName = (400, 10020, "consumer expected to be ephemeral but a durable name was set in request"),
    /// 10023
    InsufficientResources = (503, 10023, "insufficient resources"),
    /// 10025: `{err}` is the JSON decoder's message.
    InvalidJson = (400, 10025, "invalid JSON: {err}"),
    /// 10026
    MaximumConsumersLimit = (400, 10026, "maximum consumers limit reached"),
    /// 10027
    MaximumStreamsLimit = (400, 10027, "maximum number of streams reached"),
    /// 10028
    MemoryResourcesExceeded = (500, 10028, "insufficient memory resources available"),
    /// 10031
    MirrorWithSources = (400, 10031, "stream mirrors can not also contain other sources"),
    /// 10032
    MirrorWithStartSeqAndTime = (400, 10032, "stream mirrors can not have both start seq and start time configured"),
    /// 10033
    MirrorWithSubjectFilters = (400, 10033, "stream mirrors can not contain filtered subjects"),
    /// 10034
    MirrorWithSubjects = (400, 10034, "stream mirrors can not contain subjects"),
    /// 10035
    NoAccount = (503, 10035, "account not found"),
    /// 10036
    ClusterUnsupportedFeature = (503, 10036, "not currently supported in clustered mode"),
    /// 10037
    NoMessageFound = (404, 10037, "no message found"),
    /// 10038
    NotEmptyRequest = (400, 10038, "expected an empty request payload"),
    /// 10039
    NotEnabledForAccount = (503, 10039, "JetStream not enabled for account"),
    /// 10043: `{seq}`
    SequenceNotFound = (400, 10043, "sequence {seq} not found"),
    /// 10047
    StorageResourcesExceeded = (500, 10047, "insufficient storage resources available"),
    /// 10049: `{err}`
    StreamCreate = (500, 10049, "{err}"),
    /// 10050: `{err}`
    StreamDelete = (500, 10050, "{err}"),
    /// 10051: `{err}`
    StreamGeneral = (500, 10051, "{err}"),
    /// 10052: `{err}`, e.g. "stream name is required and can not contain '.', '*', '>', '\\', '/'"
    StreamInvalidConfig = (500, 10052, "{err}"),
    /// 10053: `{err}`
    StreamLimits = (500, 10053, "{err}"),
    /// 10054
    StreamMessageExceedsMaximum = (400, 10054, "message size exceeds maximum allowed"),
    /// 10055
    StreamMirrorNotUpdatable = (400, 10055, "stream mirror configuration can not be updated"),
    /// 10056
    StreamMismatch = (400, 10056, "stream name in subject does not match request"),
    /// 10057: `{err}`, e.g. "message delete not permitted" for `deny_delete`
    StreamMsgDeleteFailed = (500, 10057, "{err}"),
    /// 10058
    StreamNameExist = (400, 10058, "stream name already in use with a different configuration"),
    /// 10059
    StreamNotFound = (404, 10059, "stream not found"),
    /// 10060
    StreamNotMatch = (400, 10060, "expected stream does not match"),
    /// 10061
    StreamReplicasNotUpdatable = (400, 10061, "Replicas configuration can not be updated"),
    /// 10065
    StreamSubjectOverlap = (400, 10065, "subjects overlap with an existing stream"),
    /// 10069: `{err}`
    StreamUpdate = (500, 10069, "{err}"),
    /// 10070: `{id}`
    StreamWrongLastMsgId = (400, 10070, "wrong last msg ID: {id}"),
    /// 10071: `{seq}`
    StreamWrongLastSequence = (400, 10071, "wrong last sequence: {seq}"),
    /// 10074
    StreamReplicasNotSupported = (500, 10074, "replicas > 1 not supported in non-clustered mode"),
    /// 10076
    NotEnabled = (503, 10076, "JetStream not enabled"),
    /// 10077: `{err}`, e.g. "maximum messages exceeded", "maximum bytes
    /// exceeded", "maximum messages per subject exceeded", "message too large"
    StreamStoreFailed = (503, 10077, "{err}"),
    /// 10078
    ConsumerConfigRequired = (400, 10078, "consumer config required"),
    /// 10079
    ConsumerDeliverToWildcards = (400, 10079, "consumer deliver subject has wildcards"),
    /// 10080
    ConsumerPushMaxWaiting = (400, 10080, "consumer in push mode can not set max waiting"),
    /// 10081
    ConsumerDeliverCycle = (400, 10081, "consumer deliver subject forms a cycle"),
    /// 10082
    ConsumerMaxPendingAckPolicyRequired = (400, 10082, "consumer requires ack policy for max ack pending"),
    /// 10083
    ConsumerSmallHeartbeat = (400, 10083, "consumer idle heartbeat needs to be >= 100ms"),
    /// 10084
    ConsumerPullRequiresAck = (400, 10084, "consumer in pull mode requires explicit ack policy on workqueue stream"),
    /// 10086
    ConsumerPullWithRateLimit = (400, 10086, "consumer in pull mode can not have rate limit set"),
    /// 10087
    ConsumerMaxWaitingNegative = (400, 10087, "consumer max waiting needs to be positive"),
    /// 10088
    ConsumerHeartbeatRequiresPush = (400, 10088, "consumer idle heartbeat requires a push based consumer"),
    /// 10089
    ConsumerFlowControlRequiresPush = (400, 10089, "consumer flow control requires a push based consumer"),
    /// 10093
    ConsumerFilterNotSubset = (400, 10093, "consumer filter subject is not a valid subset of the interest subjects"),
    /// 10094: `{err}`, e.g. "consumer delivery policy is deliver by start sequence, but optional start sequence is not set"
    ConsumerInvalidPolicy = (400, 10094, "{err}"),
    /// 10095: `{err}`
    ConsumerInvalidSampling = (400, 10095, "failed to parse consumer sampling configuration: {err}"),
    /// 10097
    StreamHeaderExceedsMaximum = (400, 10097, "header size exceeds maximum allowed of 64k"),
    /// 10098
    ConsumerWqRequiresExplicitAck = (400, 10098, "workqueue stream requires explicit ack"),
    /// 10099
    ConsumerWqMultipleUnfiltered = (400, 10099, "multiple non-filtered consumers not allowed on workqueue stream"),
    /// 10100
    ConsumerWqConsumerNotUnique = (400, 10100, "filtered consumer not unique on workqueue stream"),
    /// 10101
    ConsumerWqConsumerNotDeliverAll = (400, 10101, "consumer must be deliver all on workqueue stream"),
    /// 10102: `{max}`
    ConsumerNameTooLong = (400, 10102, "consumer name is too long, maximum allowed is {max}"),
    /// 10103
    ConsumerBadDurableName = (400, 10103, "durable name can not contain '.', '*', '>'"),
    /// 10104: `{err}`
    ConsumerStoreFailed = (500, 10104, "error creating store for consumer: {err}"),
    /// 10105
    ConsumerExistingActive = (400, 10105, "consumer already exists and is still active"),
    /// 10106
    ConsumerReplacementWithDifferentName = (400, 10106, "consumer replacement durable config not the same"),
    /// 10107: `{max}`
    ConsumerDescriptionTooLong = (400, 10107, "consumer description is too long, maximum allowed is {max}"),
    /// 10108
    ConsumerWithFlowControlNeedsHeartbeats = (400, 10108, "consumer with flow control also needs heartbeats"),
    /// 10109
    StreamSealed = (400, 10109, "invalid operation on sealed stream"),
    /// 10110: `{err}`, e.g. "stream purge not permitted" for `deny_purge`
    StreamPurgeFailed = (500, 10110, "{err}"),
    /// 10111: `{err}`, e.g. "rollup not permitted"
    StreamRollupFailed = (500, 10111, "{err}"),
    /// 10112
    ConsumerInvalidDeliverSubject = (400, 10112, "invalid push consumer deliver subject"),
    /// 10114
    ConsumerMaxRequestBatchNegative = (400, 10114, "consumer max request batch needs to be > 0"),
    /// 10115
    ConsumerMaxRequestExpiresTooSmall = (400, 10115, "consumer max request expires needs to be >= 1ms"),
    /// 10116
    ConsumerMaxDeliverBackoff = (400, 10116, "max deliver is required to be > length of backoff values"),
    /// 10117
    StreamInfoMaxSubjects = (500, 10117, "subject details would exceed maximum allowed"),
    /// 10121: `{limit}`
    ConsumerMaxPendingAckExcess = (400, 10121, "consumer max ack pending exceeds system limit of {limit}"),
    /// 10125: `{limit}`
    ConsumerMaxRequestBatchExceeded = (400, 10125, "consumer max request batch exceeds server limit of {limit}"),
    /// 10126
    ConsumerReplicasExceedsStream = (400, 10126, "consumer config replica count exceeds parent stream"),
    /// 10127
    ConsumerNameContainsPathSeparators = (400, 10127, "Consumer name can not contain path separators"),
    /// 10128
    StreamNameContainsPathSeparators = (400, 10128, "Stream name can not contain path separators"),
    /// 10131
    ConsumerCreateFilterSubjectMismatch = (400, 10131, "Consumer create request did not match filtered subject from create subject"),
    /// 10132
    ConsumerCreateDurableAndNameMismatch = (400, 10132, "Consumer Durable and Name have to be equal if both are provided"),
    /// 10133
    ReplicasCountCannotBeNegative = (400, 10133, "replicas count cannot be negative"),
    /// 10135: `{limit}`
    ConsumerMetadataLength = (400, 10135, "consumer metadata exceeds maximum size of {limit}"),
    /// 10136
    ConsumerDuplicateFilterSubjects = (400, 10136, "consumer cannot have both FilterSubject and FilterSubjects specified"),
    /// 10137
    ConsumerMultipleFiltersNotAllowed = (400, 10137, "consumer with multiple subject filters cannot use subject based API"),
    /// 10138
    ConsumerOverlappingSubjectFilters = (400, 10138, "consumer subject filters cannot overlap"),
    /// 10139
    ConsumerEmptyFilter = (400, 10139, "consumer filter in FilterSubjects cannot be empty"),
    /// 10143
    MirrorWithFirstSeq = (400, 10143, "stream mirrors can not have first sequence configured"),
    /// 10148
    ConsumerAlreadyExists = (400, 10148, "consumer already exists"),
    /// 10149
    ConsumerDoesNotExist = (400, 10149, "consumer does not exist"),
    /// 10153: `{limit}`
    ConsumerInactiveThresholdExcess = (400, 10153, "consumer inactive threshold exceeds system limit of {limit}"),
    /// 10157: `{err}`
    Pedantic = (400, 10157, "pedantic mode: {err}"),
    /// 10158
    StreamDuplicateMessageConflict = (409, 10158, "duplicate message id is in process"),
    /// 10159
    ConsumerPriorityPolicyWithoutGroup = (400, 10159, "Setting PriorityPolicy requires at least one PriorityGroup to be set"),
    /// 10160
    ConsumerInvalidPriorityGroup = (400, 10160, "Provided priority group does not exist for this consumer"),
    /// 10161
    ConsumerEmptyGroupName = (400, 10161, "Group name cannot be an empty string"),
    /// 10162
    ConsumerInvalidGroupName = (400, 10162, "Valid priority group name must match A-Z, a-z, 0-9, -_/=)+ and may not exceed 16 characters"),
    /// 10164
    StreamWrongLastSequenceConstant = (400, 10164, "wrong last sequence"),
    /// 10165
    MessageTtlInvalid = (400, 10165, "invalid per-message TTL"),
    /// 10166
    MessageTtlDisabled = (400, 10166, "per-message TTL is disabled"),
    /// 10167
    StreamTooManyRequests = (429, 10167, "too many requests"),
    /// 10174
    AtomicPublishDisabled = (400, 10174, "atomic publish is disabled"),
    /// 10175
    AtomicPublishMissingSeq = (400, 10175, "atomic publish sequence is missing"),
    /// 10176
    AtomicPublishIncompleteBatch = (400, 10176, "atomic publish batch is incomplete"),
    /// 10177
    AtomicPublishUnsupportedHeader = (400, 10177, "atomic publish unsupported header used: {header}"),
    /// 10179
    AtomicPublishInvalidBatchId = (400, 10179, "atomic publish batch ID is invalid"),
    /// 10178
    ConsumerPushWithPriorityGroup = (400, 10178, "priority groups can not be used with push consumers"),
    /// 10181
    ConsumerAckPolicyInvalid = (400, 10181, "consumer ack policy invalid"),
    /// 10182
    ConsumerReplayPolicyInvalid = (400, 10182, "consumer replay policy invalid"),
    /// 10183
    ConsumerAckWaitNegative = (400, 10183, "consumer ack wait needs to be positive"),
    /// 10184
    ConsumerBackOffNegative = (400, 10184, "consumer backoff needs to be positive"),
    /// 10193
    StreamExpectedLastSeqPerSubjectInvalid = (400, 10193, "missing sequence for expected last sequence per subject"),
    /// 10196
    ConsumerPriorityGroupWithPolicyNone = (400, 10196, "consumer can not have priority groups when policy is none"),
    /// 10197
    ConsumerPinnedTtlWithoutPriorityPolicyNone = (400, 10197, "PinnedTTL cannot be set when PriorityPolicy is none"),
    /// 10199
    AtomicPublishTooLargeBatch = (400, 10199, "atomic publish batch is too large: {size}"),
    /// 10200
    AtomicPublishInvalidBatchCommit = (400, 10200, "atomic publish batch commit is invalid"),
    /// 10201
    AtomicPublishContainsDuplicateMessage = (400, 10201, "atomic publish batch contains duplicate message id"),
    /// 10210
    AtomicPublishTooManyInflight = (400, 10210, "atomic publish too many inflight"),
}

impl ApiErrorCode {
    /// The row with this `err_code`.
    pub fn from_err_code(err_code: u16) -> Option<ApiErrorCode> {
        ApiErrorCode::ALL
            .iter()
            .copied()
            .find(|e| e.err_code() == err_code)
    }

    /// Whether the description has a `{placeholder}` to fill.
    pub fn has_placeholder(self) -> bool {
        self.description().contains('{')
    }
}

/// The `error` object of a JetStream API response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiError {
    /// HTTP-like status.
    pub code: u16,
    /// JetStream error code; `0` when there is none.
    #[serde(default, skip_serializing_if = "is_default")]
    pub err_code: u16,
    /// Human-readable description.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
}

impl ApiError {
    /// The error of a table row, its description used as is.
    pub fn new(kind: ApiErrorCode) -> ApiError {
        ApiError {
            code: kind.code(),
            err_code: kind.err_code(),
            description: kind.description().to_string(),
        }
    }

    /// The error of a table row with its `{placeholder}` replaced by `arg`
    /// (`wrong last sequence: 5`). Without a placeholder, like [`ApiError::new`].
    pub fn with_arg(kind: ApiErrorCode, arg: impl fmt::Display) -> ApiError {
        let template = kind.description();
        let description = match (template.find('{'), template.find('}')) {
            (Some(open), Some(close)) if open < close => {
                format!("{}{arg}{}", &template[..open], &template[close + 1..])
            }
            _ => template.to_string(),
        };
        ApiError {
            code: kind.code(),
            err_code: kind.err_code(),
            description,
        }
    }

    /// The table row this error belongs to, by `err_code`.
    pub fn kind(&self) -> Option<ApiErrorCode> {
        ApiErrorCode::from_err_code(self.err_code)
    }

    /// The whole API response: `{"type": …, "error": {…}}`.
    pub fn to_response(&self, ty: ResponseType) -> Vec<u8> {
        #[derive(Serialize)]
        struct Body<'a> {
            #[serde(rename = "type")]
            ty: &'static str,
            error: &'a ApiError,
        }
        serde_json::to_vec(&Body {
            ty: ty.as_str(),
            error: self,
        })
        .expect("error response serializes")
    }

    /// The reply to a publish that was refused: nats-server sends no `type`
    /// here, but the stream name and `seq: 0` beside the error.
    pub fn to_pub_ack_response(&self, stream: &str) -> Vec<u8> {
        #[derive(Serialize)]
        struct Body<'a> {
            error: &'a ApiError,
            stream: &'a str,
            seq: u64,
        }
        serde_json::to_vec(&Body {
            error: self,
            stream,
            seq: 0,
        })
        .expect("error response serializes")
    }
}

impl From<ApiErrorCode> for ApiError {
    fn from(kind: ApiErrorCode) -> Self {
        ApiError::new(kind)
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} (code={}, err_code={})",
            self.description, self.code, self.err_code
        )
    }
}

impl std::error::Error for ApiError {}

/// A response that failed: what a client sees in any API reply with an
/// `error` member. Useful to tell an error reply from a success.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ErrorResponse {
    /// The response type, when present (pub-ack errors have none).
    #[serde(default, rename = "type")]
    pub ty: Option<String>,
    /// The error.
    pub error: ApiError,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn table_is_consistent() {
        let mut seen = HashSet::new();
        for kind in ApiErrorCode::ALL {
            assert!(seen.insert(kind.err_code()), "duplicate {kind:?}");
            assert!((10_000..11_000).contains(&kind.err_code()));
            assert!(matches!(kind.code(), 400 | 404 | 409 | 429 | 500 | 503));
            assert_eq!(ApiErrorCode::from_err_code(kind.err_code()), Some(*kind));
            assert_eq!(
                kind.description().matches('{').count(),
                kind.description().matches('}').count()
            );
            assert!(kind.description().matches('{').count() <= 1);
        }
        assert_eq!(ApiErrorCode::from_err_code(1), None);
    }

    #[test]
    fn response_shape() {
        let err = ApiError::new(ApiErrorCode::StreamNotFound);
        assert_eq!(
            String::from_utf8(err.to_response(ResponseType::StreamInfo)).unwrap(),
            r#"{"type":"io.nats.jetstream.api.v1.stream_info_response","error":{"code":404,"err_code":10059,"description":"stream not found"}}"#
        );
        let err = ApiError::with_arg(ApiErrorCode::StreamWrongLastSequence, 41);
        assert_eq!(err.description, "wrong last sequence: 41");
        assert_eq!(
            String::from_utf8(err.to_pub_ack_response("ORDERS")).unwrap(),
            r#"{"error":{"code":400,"err_code":10071,"description":"wrong last sequence: 41"},"stream":"ORDERS","seq":0}"#
        );
        let err = ApiError::with_arg(ApiErrorCode::StreamStoreFailed, "maximum messages exceeded");
        assert_eq!(err.description, "maximum messages exceeded");
        assert_eq!(err.kind(), Some(ApiErrorCode::StreamStoreFailed));
        let parsed: ErrorResponse = serde_json::from_slice(&err.to_pub_ack_response("S")).unwrap();
        assert_eq!(parsed.error, err);
        assert_eq!(parsed.ty, None);
        assert_eq!(
            ApiError::with_arg(ApiErrorCode::NotEnabled, "x").description,
            "JetStream not enabled"
        );
        assert_eq!(
            err.to_string(),
            "maximum messages exceeded (code=503, err_code=10077)"
        );
    }
}
