//! JetStream wire types against async-nats' own: what clients send parses,
//! and what Herald sends, clients read.

use std::collections::HashMap;
use std::time::Duration;

use async_nats::jetstream::consumer::{self, IntoConsumerConfig};
use async_nats::jetstream::response::Response;
use async_nats::jetstream::{account, publish, stream, AckKind, ErrorCode};
use herald_protocol::jetstream::api::{
    self, AccountLimits, ApiStats, ClusterInfo, MsgGetResponse, Paged, PeerInfo, SequenceInfo, StoredMsg,
    StreamInfoResponse, StreamListResponse, StreamPurgeResponse,
};
use herald_protocol::jetstream::{
    encode_response, AccountInfo, AckBody, ApiError, ApiErrorCode, ConsumerConfig, ConsumerInfo,
    DeleteResponse, NextRequest, PubAck, ResponseType, StreamConfig, StreamInfo, StreamState, Timestamp,
};

const T0: i64 = 1_700_000_000_123_456_789;

fn time(nanos: i64) -> async_nats::datetime::DateTime {
    async_nats::datetime::from_nanos(i128::from(nanos)).unwrap()
}

/// Client value → JSON → Herald type → JSON → client type.
fn through_herald<C, H>(client: &C) -> (H, C)
where
    C: serde::Serialize + serde::de::DeserializeOwned,
    H: serde::Serialize + serde::de::DeserializeOwned,
{
    let sent = serde_json::to_vec(client).unwrap();
    let ours: H =
        serde_json::from_slice(&sent).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&sent)));
    let back = serde_json::to_vec(&ours).unwrap();
    let theirs: C =
        serde_json::from_slice(&back).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&back)));
    (ours, theirs)
}

/// Decodes a Herald response the way the client does.
fn client_reads<T: serde::de::DeserializeOwned>(body: &[u8]) -> T {
    match serde_json::from_slice::<Response<T>>(body)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(body)))
    {
        Response::Ok(value) => value,
        Response::Err { error } => panic!("unexpected error {error}"),
    }
}

fn full_stream_config() -> stream::Config {
    let source = stream::Source {
        name: "ORIGIN".into(),
        start_sequence: Some(3),
        start_time: Some(time(T0)),
        filter_subject: Some("orders.eu.>".into()),
        external: Some(stream::External {
            api_prefix: "$JS.hub.API".into(),
            delivery_prefix: Some("deliver.hub".into()),
        }),
        subject_transforms: vec![stream::SubjectTransform {
            source: "a.>".into(),
            destination: "b.>".into(),
        }],
        consumer: Some(stream::StreamConsumerSource {
            name: "src".into(),
            deliver_subject: "src.deliver".into(),
        }),
        ..Default::default()
    };
    stream::Config {
        name: "ORDERS".into(),
        max_bytes: 1 << 30,
        max_messages: 1_000,
        max_messages_per_subject: 10,
        discard: stream::DiscardPolicy::New,
        discard_new_per_subject: true,
        subjects: vec!["orders.>".into(), "returns.*".into()],
        retention: stream::RetentionPolicy::WorkQueue,
        max_consumers: 5,
        max_age: Duration::from_secs(3600),
        max_message_size: 65_536,
        storage: stream::StorageType::Memory,
        num_replicas: 1,
        no_ack: true,
        duplicate_window: Duration::from_secs(60),
        sealed: true,
        description: Some("orders of the shop".into()),
        allow_rollup: true,
        deny_delete: true,
        deny_purge: true,
        republish: Some(stream::Republish {
            source: "orders.>".into(),
            destination: "repub.>".into(),
            headers_only: true,
        }),
        allow_direct: true,
        mirror_direct: true,
        mirror: Some(source.clone()),
        sources: Some(vec![source]),
        metadata: HashMap::from([("team".to_string(), "shop".to_string())]),
        subject_transform: Some(stream::SubjectTransform {
            source: "in.>".into(),
            destination: "orders.>".into(),
        }),
        compression: Some(stream::Compression::S2),
        consumer_limits: Some(stream::ConsumerLimits {
            inactive_threshold: Duration::from_secs(30),
            max_ack_pending: 100,
        }),
        first_sequence: Some(42),
        placement: Some(stream::Placement {
            cluster: Some("east".into()),
            tags: vec!["ssd".into()],
        }),
        persist_mode: Some(stream::PersistenceMode::Async),
        allow_message_ttl: true,
        subject_delete_marker_ttl: Some(Duration::from_secs(5)),
        allow_atomic_publish: true,
        allow_message_schedules: true,
        allow_message_counter: true,
        allow_batch_publish: true,
        ..Default::default()
    }
}

#[test]
fn stream_config_round_trips() {
    let client = full_stream_config();
    let (ours, back): (StreamConfig, stream::Config) = through_herald(&client);
    assert_eq!(back, client);
    assert_eq!(ours.max_age, 3_600_000_000_000);
    assert_eq!(ours.consumer_limits.max_ack_pending, 100);
    assert_eq!(ours.sources[0].opt_start_time.unwrap().unix_nanos(), Some(T0));

    // What the client sends for a bare config (note `consumer_limits: null`).
    let bare = stream::Config {
        name: "EVENTS".into(),
        ..Default::default()
    };
    let (ours, back): (StreamConfig, stream::Config) = through_herald(&bare);
    assert_eq!(ours.name, "EVENTS");
    // nats-server always writes `compression`; the client then reads `Some(None)`.
    assert_eq!(back.compression, Some(stream::Compression::None));
    assert_eq!(
        stream::Config {
            compression: None,
            ..back
        },
        bare
    );
}

#[test]
fn stream_info_decodes_in_client() {
    let (config, _): (StreamConfig, stream::Config) = through_herald(&stream::Config {
        name: "ORDERS".into(),
        subjects: vec!["orders.>".into()],
        ..Default::default()
    });
    let config = config.with_defaults();
    let info = StreamInfo {
        config: config.clone(),
        created: Timestamp::from_unix_nanos(T0),
        state: StreamState {
            messages: 3,
            bytes: 300,
            first_seq: 1,
            first_ts: Timestamp::from_unix_nanos(T0 + 1),
            last_seq: 3,
            last_ts: Timestamp::from_unix_nanos(T0 + 2),
            num_subjects: 2,
            subjects: [("orders.a".to_string(), 2), ("orders.b".to_string(), 1)].into(),
            num_deleted: 1,
            deleted: vec![2],
            consumer_count: 1,
        },
        cluster: Some(ClusterInfo {
            leader: "herald-1".into(),
            replicas: vec![PeerInfo {
                name: "herald-2".into(),
                current: true,
                active: 1_000,
                lag: 4,
                ..Default::default()
            }],
            ..Default::default()
        }),
        ts: Timestamp::from_unix_nanos(T0 + 3),
        ..Default::default()
    };
    let body = encode_response(
        ResponseType::StreamCreate,
        &StreamInfoResponse {
            info: info.clone(),
            did_create: true,
            paged: Some(Paged {
                total: 2,
                offset: 0,
                limit: 100_000,
            }),
        },
    );
    let theirs: stream::Info = client_reads(&body);
    assert_eq!(theirs.config.name, "ORDERS");
    assert_eq!(theirs.config.max_messages, -1);
    assert_eq!(theirs.config.max_bytes, -1);
    assert_eq!(theirs.config.max_message_size, -1);
    assert_eq!(theirs.config.num_replicas, 1);
    assert_eq!(theirs.config.duplicate_window, Duration::from_secs(120));
    assert_eq!(theirs.created, time(T0));
    assert_eq!(theirs.state.messages, 3);
    assert_eq!(theirs.state.bytes, 300);
    assert_eq!(theirs.state.first_sequence, 1);
    assert_eq!(theirs.state.first_timestamp, time(T0 + 1));
    assert_eq!(theirs.state.last_sequence, 3);
    assert_eq!(theirs.state.last_timestamp, time(T0 + 2));
    assert_eq!(theirs.state.subjects_count, 2);
    assert_eq!(theirs.state.deleted_count, Some(1));
    assert_eq!(theirs.state.deleted, Some(vec![2]));
    assert_eq!(theirs.state.consumer_count, 1);
    let cluster = theirs.cluster.unwrap();
    assert_eq!(cluster.leader.as_deref(), Some("herald-1"));
    assert_eq!(cluster.replicas[0].lag, Some(4));
    let parsed: StreamInfoResponse = serde_json::from_slice(&body).unwrap();
    assert_eq!(parsed.info, info);

    // An empty stream: Go zero times, as nats-server writes them.
    let empty = StreamInfo {
        config,
        ..Default::default()
    };
    let theirs: stream::Info = client_reads(&encode_response(ResponseType::StreamInfo, &empty));
    assert_eq!(theirs.state.messages, 0);
    assert_eq!(
        theirs.state.first_timestamp,
        async_nats::datetime::parse_rfc3339("0001-01-01T00:00:00Z").unwrap()
    );

    // List entries are the same bodies.
    let list = StreamListResponse {
        paged: Paged {
            total: 1,
            offset: 0,
            limit: api::LIST_PAGE_LIMIT as u64,
        },
        streams: vec![info],
        missing: vec![],
    };
    let v: serde_json::Value =
        serde_json::from_slice(&encode_response(ResponseType::StreamList, &list)).unwrap();
    let entry: stream::Info = serde_json::from_value(v["streams"][0].clone()).unwrap();
    assert_eq!(entry.state.messages, 3);
    assert_eq!(v["total"], 1);
}

fn check_consumer_round_trip(client: consumer::Config) -> ConsumerConfig {
    let (ours, back): (ConsumerConfig, consumer::Config) = through_herald(&client);
    assert_eq!(back, client);
    ours
}

#[test]
fn consumer_configs_round_trip() {
    let pull = consumer::pull::Config {
        durable_name: Some("worker".into()),
        name: Some("worker".into()),
        description: Some("pulls orders".into()),
        deliver_policy: consumer::DeliverPolicy::ByStartSequence { start_sequence: 7 },
        ack_policy: consumer::AckPolicy::Explicit,
        ack_wait: Duration::from_secs(10),
        max_deliver: 5,
        filter_subjects: vec!["orders.eu".into(), "orders.us".into()],
        replay_policy: consumer::ReplayPolicy::Original,
        sample_frequency: 50,
        max_waiting: 64,
        max_ack_pending: 20,
        headers_only: true,
        max_batch: 100,
        max_bytes: 1 << 20,
        max_expires: Duration::from_secs(60),
        inactive_threshold: Duration::from_secs(300),
        num_replicas: 1,
        memory_storage: true,
        metadata: HashMap::from([("k".to_string(), "v".to_string())]),
        backoff: vec![Duration::from_secs(1), Duration::from_secs(5)],
        priority_policy: consumer::PriorityPolicy::PinnedClient,
        priority_groups: vec!["jobs".into()],
        priority_timeout: Duration::from_secs(90),
        pause_until: Some(time(T0)),
        ..Default::default()
    };
    let ours = check_consumer_round_trip(pull.clone().into_consumer_config());
    assert_eq!(
        ours.deliver_policy,
        herald_protocol::jetstream::config::DeliverPolicy::ByStartSequence
    );
    assert_eq!(ours.opt_start_seq, 7);
    assert_eq!(ours.backoff, vec![1_000_000_000, 5_000_000_000]);
    assert_eq!(ours.sample_freq, "50");
    assert!(ours.is_durable() && ours.is_pull());
    // The pull config type also serializes directly; it spells
    // `memory_storage` unrenamed (the wire form, via
    // `into_consumer_config`, says `mem_storage`), so that one is lost.
    let direct: ConsumerConfig = serde_json::from_value(serde_json::to_value(&pull).unwrap()).unwrap();
    assert_eq!(
        direct,
        ConsumerConfig {
            mem_storage: false,
            ..ours
        }
    );

    let push = consumer::push::Config {
        deliver_subject: "deliver.orders".into(),
        durable_name: Some("mirror".into()),
        deliver_group: Some("grp".into()),
        deliver_policy: consumer::DeliverPolicy::ByStartTime { start_time: time(T0) },
        ack_policy: consumer::AckPolicy::All,
        filter_subject: "orders.>".into(),
        rate_limit: 1_000_000,
        flow_control: true,
        idle_heartbeat: Duration::from_secs(5),
        ..Default::default()
    };
    let ours = check_consumer_round_trip(push.into_consumer_config());
    assert_eq!(ours.opt_start_time.unwrap().unix_nanos(), Some(T0));
    assert_eq!(ours.deliver_group, "grp");
    assert!(!ours.is_pull());

    for policy in [
        consumer::DeliverPolicy::All,
        consumer::DeliverPolicy::Last,
        consumer::DeliverPolicy::New,
        consumer::DeliverPolicy::LastPerSubject,
    ] {
        check_consumer_round_trip(consumer::Config {
            deliver_policy: policy,
            ack_policy: consumer::AckPolicy::None,
            ..Default::default()
        });
    }
    check_consumer_round_trip(consumer::Config {
        ack_policy: consumer::AckPolicy::FlowControl,
        priority_policy: consumer::PriorityPolicy::Prioritized,
        ..Default::default()
    });
    let ordered = consumer::pull::OrderedConfig {
        filter_subject: "orders.>".into(),
        ..Default::default()
    };
    check_consumer_round_trip(ordered.into_consumer_config());
}

#[test]
fn consumer_info_decodes_in_client() {
    let config = check_consumer_round_trip(
        consumer::pull::Config {
            durable_name: Some("worker".into()),
            ..Default::default()
        }
        .into_consumer_config(),
    )
    .with_defaults(&StreamConfig::default());
    let info = ConsumerInfo {
        stream_name: "ORDERS".into(),
        name: "worker".into(),
        created: Timestamp::from_unix_nanos(T0),
        config,
        delivered: SequenceInfo {
            consumer_seq: 10,
            stream_seq: 12,
            last_active: Some(Timestamp::from_unix_nanos(T0 + 5)),
        },
        ack_floor: SequenceInfo {
            consumer_seq: 8,
            stream_seq: 9,
            last_active: None,
        },
        num_ack_pending: 2,
        num_redelivered: 1,
        num_waiting: 3,
        num_pending: 40,
        push_bound: true,
        paused: true,
        pause_remaining: 2_000_000_000,
        ts: Timestamp::from_unix_nanos(T0 + 6),
        priority_groups: vec![api::PriorityGroupState {
            group: "jobs".into(),
            pinned_client_id: "abc".into(),
            pinned_ts: Some(Timestamp::from_unix_nanos(T0)),
        }],
        ..Default::default()
    };
    let theirs: consumer::Info = client_reads(&encode_response(ResponseType::ConsumerCreate, &info));
    assert_eq!(theirs.stream_name, "ORDERS");
    assert_eq!(theirs.name, "worker");
    assert_eq!(theirs.created, time(T0));
    assert_eq!(theirs.config.durable_name.as_deref(), Some("worker"));
    assert_eq!(theirs.config.ack_policy, consumer::AckPolicy::Explicit);
    assert_eq!(theirs.config.ack_wait, Duration::from_secs(30));
    assert_eq!(theirs.config.max_deliver, -1);
    assert_eq!(theirs.config.max_waiting, 512);
    assert_eq!(theirs.config.max_ack_pending, 1000);
    assert_eq!(theirs.delivered.consumer_sequence, 10);
    assert_eq!(theirs.delivered.stream_sequence, 12);
    assert_eq!(theirs.delivered.last_active, Some(time(T0 + 5)));
    assert_eq!(theirs.ack_floor.stream_sequence, 9);
    assert_eq!(theirs.ack_floor.last_active, None);
    assert_eq!(theirs.num_ack_pending, 2);
    assert_eq!(theirs.num_redelivered, 1);
    assert_eq!(theirs.num_waiting, 3);
    assert_eq!(theirs.num_pending, 40);
    assert!(theirs.push_bound && theirs.paused);
    assert_eq!(theirs.pause_remaining, Some(Duration::from_secs(2)));
    assert_eq!(theirs.priority_groups[0].pinned_client_id.as_deref(), Some("abc"));
    assert_eq!(theirs.priority_groups[0].pinned_ts, Some(time(T0)));
}

#[test]
fn pub_ack_decodes_in_client() {
    let ack: publish::PublishAck = client_reads(&PubAck::new("ORDERS", 9).to_json());
    assert_eq!(
        (ack.stream.as_str(), ack.sequence, ack.duplicate),
        ("ORDERS", 9, false)
    );
    assert_eq!(ack.domain, "");
    let dup = PubAck {
        duplicate: true,
        domain: "hub".into(),
        ..PubAck::new("ORDERS", 9)
    };
    let ack: publish::PublishAck = client_reads(&dup.to_json());
    assert!(ack.duplicate);
    assert_eq!(ack.domain, "hub");

    let refused = ApiError::with_arg(ApiErrorCode::StreamWrongLastSequence, 8);
    let body = refused.to_pub_ack_response("ORDERS");
    match serde_json::from_slice::<Response<publish::PublishAck>>(&body).unwrap() {
        Response::Err { error } => {
            assert_eq!(error.error_code(), ErrorCode::STREAM_WRONG_LAST_SEQUENCE);
            assert_eq!(error.code(), 400);
            assert!(error.to_string().starts_with("wrong last sequence: 8"));
        }
        Response::Ok(_) => panic!("error read as success"),
    }
}

#[test]
fn account_info_decodes_in_client() {
    let info = AccountInfo {
        memory: 1,
        storage: 2,
        reserved_memory: 3,
        reserved_storage: 4,
        streams: 5,
        consumers: 6,
        limits: AccountLimits::unlimited(),
        api: ApiStats {
            level: 2,
            total: 100,
            errors: 7,
            inflight: 1,
        },
        ..Default::default()
    };
    let theirs: account::Account = client_reads(&encode_response(ResponseType::AccountInfo, &info));
    assert_eq!((theirs.memory, theirs.storage), (1, 2));
    assert_eq!((theirs.reserved_memory, theirs.reserved_storage), (3, 4));
    assert_eq!((theirs.streams, theirs.consumers), (5, 6));
    assert_eq!(theirs.domain, None);
    assert_eq!(theirs.limits.max_memory, None);
    assert_eq!(theirs.limits.max_streams, None);
    assert_eq!(theirs.limits.storage_max_stream_bytes, Some(-1));
    assert_eq!((theirs.requests.total, theirs.requests.errors), (100, 7));
    assert_eq!((theirs.requests.level, theirs.requests.inflight), (2, 1));
}

#[test]
fn stored_message_decodes_in_client() {
    let msg = StoredMsg {
        subject: "orders.eu".into(),
        seq: 4,
        hdrs: b"NATS/1.0\r\nNats-Msg-Id: abc\r\n\r\n".to_vec(),
        data: b"\x00binary\xffpayload".to_vec(),
        time: Timestamp::from_unix_nanos(T0),
    };
    let body = encode_response(
        ResponseType::StreamMsgGet,
        &MsgGetResponse { message: msg.clone() },
    );
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let raw: stream::RawMessage = serde_json::from_value(v["message"].clone()).unwrap();
    let theirs = async_nats::jetstream::message::StreamMessage::try_from(raw).unwrap();
    assert_eq!(theirs.subject.as_str(), "orders.eu");
    assert_eq!(theirs.sequence, 4);
    assert_eq!(&theirs.payload[..], &msg.data[..]);
    assert_eq!(theirs.headers.get("Nats-Msg-Id").map(|v| v.as_str()), Some("abc"));
    assert_eq!(theirs.time, time(T0));
}

#[test]
fn purge_and_delete_decode_in_client() {
    let purge: stream::PurgeResponse = client_reads(&encode_response(
        ResponseType::StreamPurge,
        &StreamPurgeResponse {
            success: true,
            purged: 12,
        },
    ));
    assert!(purge.success);
    assert_eq!(purge.purged, 12);
    let del: stream::DeleteStatus = client_reads(&encode_response(
        ResponseType::StreamDelete,
        &DeleteResponse { success: true },
    ));
    assert!(del.success);

    let request = stream::PurgeRequest {
        sequence: Some(10),
        filter: Some("orders.>".into()),
        keep: None,
    };
    let ours: api::StreamPurgeRequest =
        serde_json::from_value(serde_json::to_value(&request).unwrap()).unwrap();
    assert_eq!((ours.seq, ours.filter.as_str(), ours.keep), (10, "orders.>", 0));
}

#[test]
fn errors_decode_in_client() {
    let pairs = [
        (ApiErrorCode::StreamNotFound, ErrorCode::STREAM_NOT_FOUND),
        (ApiErrorCode::ConsumerNotFound, ErrorCode::CONSUMER_NOT_FOUND),
        (ApiErrorCode::StreamNameExist, ErrorCode::STREAM_NAME_EXIST),
        (
            ApiErrorCode::StreamWrongLastSequence,
            ErrorCode::STREAM_WRONG_LAST_SEQUENCE,
        ),
        (
            ApiErrorCode::StreamWrongLastMsgId,
            ErrorCode::STREAM_WRONG_LAST_MESSAGE_ID,
        ),
        (ApiErrorCode::StreamNotMatch, ErrorCode::STREAM_NOT_MATCH),
        (ApiErrorCode::NoMessageFound, ErrorCode::NO_MESSAGE_FOUND),
        (ApiErrorCode::BadRequest, ErrorCode::BAD_REQUEST),
        (ApiErrorCode::InvalidJson, ErrorCode::INVALID_JSON),
        (
            ApiErrorCode::StreamInvalidConfig,
            ErrorCode::STREAM_INVALID_CONFIG,
        ),
        (ApiErrorCode::ConsumerNameExist, ErrorCode::CONSUMER_NAME_EXIST),
        (
            ApiErrorCode::ConsumerAlreadyExists,
            ErrorCode::CONSUMER_ALREADY_EXISTS,
        ),
        (
            ApiErrorCode::ConsumerDoesNotExist,
            ErrorCode::CONSUMER_DOES_NOT_EXIST,
        ),
        (
            ApiErrorCode::ConsumerExistingActive,
            ErrorCode::CONSUMER_EXISTING_ACTIVE,
        ),
        (
            ApiErrorCode::StreamMessageExceedsMaximum,
            ErrorCode::STREAM_MESSAGE_EXCEEDS_MAXIMUM,
        ),
        (ApiErrorCode::StreamStoreFailed, ErrorCode::STREAM_STORE_FAILED),
        (
            ApiErrorCode::NotEnabledForAccount,
            ErrorCode::JETSTREAM_NOT_ENABLED_FOR_ACCOUNT,
        ),
        (ApiErrorCode::NotEnabled, ErrorCode::JETSTREAM_NOT_ENABLED),
        (
            ApiErrorCode::StreamSubjectOverlap,
            ErrorCode::STREAM_SUBJECT_OVERLAP,
        ),
        (
            ApiErrorCode::MaximumConsumersLimit,
            ErrorCode::MAXIMUM_CONSUMERS_LIMIT,
        ),
        (
            ApiErrorCode::MaximumStreamsLimit,
            ErrorCode::MAXIMUM_STREAMS_LIMIT,
        ),
        (
            ApiErrorCode::ConsumerFilterNotSubset,
            ErrorCode::CONSUMER_FILTER_NOT_SUBSET,
        ),
        (
            ApiErrorCode::ConsumerInvalidPolicy,
            ErrorCode::CONSUMER_INVALID_POLICY,
        ),
        (
            ApiErrorCode::StreamMsgDeleteFailed,
            ErrorCode::STREAM_MESSAGE_DELETE_FAILED,
        ),
        (ApiErrorCode::StreamPurgeFailed, ErrorCode::STREAM_PURGE_FAILED),
        (ApiErrorCode::StreamRollupFailed, ErrorCode::STREAM_ROLLUP_FAILED),
        (ApiErrorCode::StreamSealed, ErrorCode::STREAM_SEALED),
        (ApiErrorCode::SequenceNotFound, ErrorCode::SEQUENCE_NOT_FOUND),
        (ApiErrorCode::MessageTtlInvalid, ErrorCode::MESSAGE_TTL_INVALID),
        (ApiErrorCode::MessageTtlDisabled, ErrorCode::MESSAGE_TTL_DISABLED),
        (
            ApiErrorCode::StreamWrongLastSequenceConstant,
            ErrorCode::STREAM_WRONG_LAST_SEQUENCE_CONSTANT,
        ),
        (
            ApiErrorCode::StreamDuplicateMessageConflict,
            ErrorCode::STREAM_DUPLICATE_MESSAGE_CONFLICT,
        ),
        (
            ApiErrorCode::ConsumerMaxRequestBatchExceeded,
            ErrorCode::CONSUMER_MAX_REQUEST_BATCH_EXCEEDED,
        ),
        (
            ApiErrorCode::ReplicasCountCannotBeNegative,
            ErrorCode::REPLICAS_COUNT_CANNOT_BE_NEGATIVE,
        ),
        (ApiErrorCode::Pedantic, ErrorCode::PEDANTIC),
    ];
    for (ours, theirs) in pairs {
        assert_eq!(u64::from(ours.err_code()), theirs.0, "{ours:?}");
        let err = ApiError::with_arg(ours, "x");
        let body = err.to_response(ResponseType::StreamInfo);
        match serde_json::from_slice::<Response<stream::Info>>(&body).unwrap() {
            Response::Err { error } => {
                assert_eq!(error.error_code(), theirs);
                assert_eq!(error.code(), usize::from(ours.code()));
                assert!(error.to_string().starts_with(&err.description));
            }
            Response::Ok(_) => panic!("error read as success"),
        }
    }
}

#[test]
fn client_ack_bodies_parse() {
    let cases = [
        (AckKind::Ack, AckBody::Ack),
        (AckKind::Nak(None), AckBody::Nak { delay: None }),
        (
            AckKind::Nak(Some(Duration::from_millis(1500))),
            AckBody::Nak {
                delay: Some(1_500_000_000),
            },
        ),
        (AckKind::Progress, AckBody::Progress),
        (AckKind::Next, AckBody::Next(NextRequest::batch(1))),
        (AckKind::Term, AckBody::Term { reason: None }),
    ];
    for (kind, expected) in cases {
        let body = bytes::Bytes::from(kind);
        assert_eq!(AckBody::parse(&body).unwrap(), expected, "{kind:?}");
    }
}

#[test]
fn client_pull_requests_parse() {
    let batch = consumer::pull::BatchConfig {
        batch: 10,
        expires: Some(Duration::from_secs(30)),
        no_wait: false,
        max_bytes: 4096,
        idle_heartbeat: Duration::from_secs(15),
        ..Default::default()
    };
    let body = serde_json::to_vec(&batch).unwrap();
    let req = NextRequest::parse(&body).unwrap();
    assert_eq!(req.batch, 10);
    assert_eq!(req.expires, 30_000_000_000);
    assert_eq!(req.max_bytes, 4096);
    assert_eq!(req.idle_heartbeat, 15_000_000_000);

    let batch = consumer::pull::BatchConfig {
        batch: 1,
        no_wait: true,
        group: Some("jobs".into()),
        min_pending: Some(5),
        min_ack_pending: Some(2),
        priority: Some(3),
        ..Default::default()
    };
    let req = NextRequest::parse(&serde_json::to_vec(&batch).unwrap()).unwrap();
    assert!(req.no_wait);
    assert_eq!(req.group, "jobs");
    assert_eq!((req.min_pending, req.min_ack_pending, req.priority), (5, 2, 3));
}

#[test]
fn timestamps_match_client_parsing() {
    for nanos in [0, 1, T0, 1_700_000_000_000_000_000, 1_700_000_000_100_000_000] {
        let text = Timestamp::from_unix_nanos(nanos).to_rfc3339();
        let theirs = async_nats::datetime::parse_rfc3339(&text).unwrap();
        assert_eq!(theirs.unix_timestamp_nanos(), i128::from(nanos), "{text}");
    }
}
