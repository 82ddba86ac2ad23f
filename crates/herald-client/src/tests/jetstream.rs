//! Unit tests of the JetStream layer: request encoding against the scripted
//! server, and decoding of replies, deliveries and KV entries.

use std::time::Duration;

use bytes::Bytes;
use herald_protocol::jetstream::api::{CreateConsumerRequest, StoredMsg};
use herald_protocol::jetstream::config::{AckPolicy, DiscardPolicy};
use herald_protocol::jetstream::{ApiErrorCode, ConsumerConfig, NextRequest, PubAck, Timestamp};
use herald_protocol::Headers;

use super::fake::{Conn, Op};
use super::{connect, within, FakeServer};
use crate::jetstream::{
    check_bucket, check_key, next_request, parse_response, Entry, KvConfig, MessageInfo, Operation,
    PublishOptions, PullEvent, StreamMessage,
};
use crate::{Error, Message};

/// The next `PUB`/`HPUB`, answering `PING`s and skipping `SUB`s meanwhile.
async fn next_pub(conn: &mut Conn) -> (String, Option<String>, Option<Headers>, Vec<u8>) {
    match conn.expect(|op| matches!(op, Op::Pub { .. })).await {
        Op::Pub {
            subject,
            reply,
            headers,
            payload,
        } => (
            subject,
            reply,
            headers.map(|h| Headers::parse(&h).expect("valid header block")),
            payload,
        ),
        _ => unreachable!(),
    }
}

/// The sid of the request inbox (`_INBOX.<id>.*`), from the first `SUB`.
async fn inbox_sid(conn: &mut Conn) -> String {
    match conn.expect(|op| matches!(op, Op::Sub { .. })).await {
        Op::Sub { subject, sid, .. } => {
            assert!(
                subject.starts_with("_INBOX.") && subject.ends_with(".*"),
                "{subject}"
            );
            sid
        }
        _ => unreachable!(),
    }
}

/// Sends `HMSG` with a header block and payload.
async fn hmsg(
    conn: &mut Conn,
    subject: &str,
    sid: &str,
    reply: Option<&str>,
    headers: &[u8],
    payload: &[u8],
) {
    let mut data = headers.to_vec();
    data.extend_from_slice(payload);
    let mut out = Vec::new();
    herald_protocol::encode::msg(
        &mut out,
        subject.as_bytes(),
        sid.as_bytes(),
        reply.map(str::as_bytes),
        Some(headers.len()),
        &data,
    );
    conn.send(&out).await;
}

#[tokio::test]
async fn publish_with_options_sends_headers_and_reads_the_ack_or_error() {
    let server = FakeServer::start().await;
    let (client, mut conn) = connect(&server).await;
    let js = client.jetstream();
    let publishing = tokio::spawn({
        let js = js.clone();
        async move {
            let mut headers = Headers::new();
            headers.append("Trace", "t1");
            let options = PublishOptions {
                msg_id: Some("id-1".into()),
                expected_stream: Some("ORDERS".into()),
                expected_last_seq: Some(4),
                expected_last_subject_seq: Some(2),
                expected_last_msg_id: Some("id-0".into()),
            };
            js.publish_with("orders.new", Some(&headers), "body", options)
                .await
        }
    });
    let sid = inbox_sid(&mut conn).await;
    let (subject, reply, headers, payload) = next_pub(&mut conn).await;
    assert_eq!(
        (subject.as_str(), payload.as_slice()),
        ("orders.new", &b"body"[..])
    );
    let headers = headers.expect("headers sent");
    let pairs: Vec<(&str, &str)> = headers.iter().collect();
    assert_eq!(
        pairs,
        [
            ("Trace", "t1"),
            ("Nats-Msg-Id", "id-1"),
            ("Nats-Expected-Stream", "ORDERS"),
            ("Nats-Expected-Last-Sequence", "4"),
            ("Nats-Expected-Last-Subject-Sequence", "2"),
            ("Nats-Expected-Last-Msg-Id", "id-0"),
        ]
    );
    let reply = reply.expect("publish waits for an ack");
    conn.msg(
        &reply,
        &sid,
        None,
        br#"{"stream":"ORDERS","seq":5,"duplicate":true}"#,
    )
    .await;
    let ack = within("ack", publishing).await.unwrap().unwrap();
    assert_eq!(
        ack,
        PubAck {
            duplicate: true,
            ..PubAck::new("ORDERS", 5)
        }
    );

    // Without headers or options: a plain PUB; an error reply is typed.
    let publishing = tokio::spawn({
        let js = js.clone();
        async move { js.publish("orders.new", "x").await }
    });
    let (_, reply, headers, _) = next_pub(&mut conn).await;
    assert!(headers.is_none());
    conn.msg(
        &reply.unwrap(),
        &sid,
        None,
        br#"{"error":{"code":400,"err_code":10071,"description":"wrong last sequence: 3"},"stream":"ORDERS","seq":0}"#,
    )
    .await;
    let err = within("error", publishing).await.unwrap().unwrap_err();
    assert!(err.is_wrong_last_sequence(), "{err:?}");
    assert_eq!(err.api_error().unwrap().description, "wrong last sequence: 3");
    assert_eq!(err.to_string(), "JetStream error: wrong last sequence: 3 (10071)");
}

#[tokio::test]
async fn api_requests_use_the_documented_subjects_and_bodies() {
    let server = FakeServer::start().await;
    let (client, mut conn) = connect(&server).await;
    let js = client.jetstream();
    let info = tokio::spawn({
        let js = js.clone();
        async move { js.stream_info("ORDERS").await }
    });
    let sid = inbox_sid(&mut conn).await;
    let (subject, reply, _, payload) = next_pub(&mut conn).await;
    assert_eq!(subject, "$JS.API.STREAM.INFO.ORDERS");
    assert!(payload.is_empty());
    conn.msg(
        &reply.unwrap(),
        &sid,
        None,
        br#"{"type":"io.nats.jetstream.api.v1.stream_info_response","error":{"code":404,"err_code":10059,"description":"stream not found"}}"#,
    )
    .await;
    let err = within("info", info).await.unwrap().unwrap_err();
    assert!(err.is_stream_not_found() && err.is_not_found(), "{err:?}");
    assert_eq!(err.api_error_code(), Some(ApiErrorCode::StreamNotFound));

    let create = tokio::spawn({
        let js = js.clone();
        async move {
            let config = ConsumerConfig {
                durable_name: "worker".into(),
                ack_policy: AckPolicy::Explicit,
                ..Default::default()
            };
            js.create_consumer("ORDERS", config).await
        }
    });
    let (subject, reply, _, payload) = next_pub(&mut conn).await;
    assert_eq!(subject, "$JS.API.CONSUMER.CREATE.ORDERS.worker");
    let request: CreateConsumerRequest = serde_json::from_slice(&payload).unwrap();
    assert_eq!(request.stream_name, "ORDERS");
    let config = request.config.unwrap();
    assert_eq!(
        (config.durable_name.as_str(), config.ack_policy),
        ("worker", AckPolicy::Explicit)
    );
    conn.msg(
        &reply.unwrap(),
        &sid,
        None,
        br#"{"type":"io.nats.jetstream.api.v1.consumer_create_response","stream_name":"ORDERS","name":"worker","created":"2024-01-01T00:00:00Z","config":{"durable_name":"worker","ack_policy":"explicit"},"delivered":{"consumer_seq":0,"stream_seq":0},"ack_floor":{"consumer_seq":0,"stream_seq":0},"num_ack_pending":0,"num_redelivered":0,"num_waiting":0,"num_pending":3,"ts":"2024-01-01T00:00:01Z"}"#,
    )
    .await;
    let info = within("create", create).await.unwrap().unwrap();
    assert_eq!((info.name.as_str(), info.num_pending), ("worker", 3));

    // Invalid names never reach the server.
    let err = js.stream_info("a.b").await.unwrap_err();
    assert!(matches!(err, Error::InvalidArgument(_)), "{err:?}");
}

#[tokio::test]
async fn fetch_collects_messages_until_the_end_status_and_acks_them() {
    let server = FakeServer::start().await;
    let (client, mut conn) = connect(&server).await;
    let js = client.jetstream();
    let fetching = tokio::spawn({
        let js = js.clone();
        async move { js.fetch("ORDERS", "worker", 5, Duration::from_secs(2)).await }
    });
    let Op::Sub {
        subject: inbox, sid, ..
    } = conn.expect(|op| matches!(op, Op::Sub { .. })).await
    else {
        unreachable!()
    };
    let (subject, reply, _, payload) = next_pub(&mut conn).await;
    assert_eq!(subject, "$JS.API.CONSUMER.MSG.NEXT.ORDERS.worker");
    assert_eq!(reply.as_deref(), Some(inbox.as_str()));
    let request: NextRequest = serde_json::from_slice(&payload).unwrap();
    assert_eq!(
        (request.batch, request.expires, request.no_wait),
        (5, 2_000_000_000, false)
    );

    conn.msg(
        "orders.a",
        &sid,
        Some("$JS.ACK.ORDERS.worker.1.10.1.1700000000000000001.1"),
        b"one",
    )
    .await;
    hmsg(
        &mut conn,
        &inbox,
        &sid,
        None,
        b"NATS/1.0 100 Idle Heartbeat\r\n\r\n",
        b"",
    )
    .await;
    hmsg(
        &mut conn,
        "orders.b",
        &sid,
        Some("$JS.ACK.ORDERS.worker.2.11.2.1700000000000000002.0"),
        b"NATS/1.0\r\nK: v\r\n\r\n",
        b"two",
    )
    .await;
    hmsg(
        &mut conn,
        &inbox,
        &sid,
        None,
        b"NATS/1.0 408 Request Timeout\r\nNats-Pending-Messages: 3\r\nNats-Pending-Bytes: 0\r\n\r\n",
        b"",
    )
    .await;
    let messages = within("fetch", fetching).await.unwrap().unwrap();
    assert_eq!(messages.len(), 2);
    assert_eq!(
        (messages[0].subject.as_str(), &messages[0].payload[..]),
        ("orders.a", &b"one"[..])
    );
    assert_eq!(messages[1].header("k"), Some("v"));
    let info = messages[1].info().unwrap();
    assert_eq!(
        info,
        MessageInfo {
            domain: None,
            stream: "ORDERS".into(),
            consumer: "worker".into(),
            stream_seq: 11,
            consumer_seq: 2,
            delivered: 2,
            pending: 0,
            timestamp: Timestamp::from_unix_nanos(1_700_000_000_000_000_002),
        }
    );
    messages[0].ack().unwrap();
    messages[1].nak(Some(Duration::from_secs(1))).unwrap();
    messages[1].term().unwrap();
    messages[1].in_progress().unwrap();
    let mut acks = Vec::new();
    while acks.len() < 4 {
        let (subject, _, _, payload) = next_pub(&mut conn).await;
        acks.push((subject, String::from_utf8(payload).unwrap()));
    }
    let ack1 = "$JS.ACK.ORDERS.worker.1.10.1.1700000000000000001.1".to_string();
    let ack2 = "$JS.ACK.ORDERS.worker.2.11.2.1700000000000000002.0".to_string();
    assert_eq!(
        acks,
        [
            (ack1, "+ACK".to_string()),
            (ack2.clone(), r#"-NAK {"delay":1000000000}"#.to_string()),
            (ack2.clone(), "+TERM".to_string()),
            (ack2, "+WPI".to_string()),
        ]
    );
}

#[test]
fn replies_are_errors_successes_or_invalid() {
    let ack: PubAck = parse_response(br#"{"stream":"S","seq":1}"#).unwrap();
    assert_eq!(ack, PubAck::new("S", 1));
    // A field merely mentioning "error" in a value is not an error reply.
    let ack: PubAck = parse_response(br#"{"stream":"error","seq":2}"#).unwrap();
    assert_eq!(ack.stream, "error");
    let err = parse_response::<PubAck>(br#"{"error":{"code":503,"err_code":10077,"description":"maximum messages exceeded"},"stream":"S","seq":0}"#).unwrap_err();
    assert_eq!(err.api_error().unwrap().err_code, 10077);
    assert!(!err.is_wrong_last_sequence());
    let err = parse_response::<PubAck>(b"not json").unwrap_err();
    assert!(
        matches!(&err, Error::InvalidResponse(text) if text.contains("not json")),
        "{err:?}"
    );
}

fn delivery(subject: &str, reply: &str, headers: Option<&[u8]>, payload: &[u8]) -> Message {
    let headers = headers.map(|h| Headers::parse(h).unwrap());
    Message {
        subject: subject.into(),
        reply: Some(reply.into()),
        status: headers.as_ref().and_then(|h| h.status),
        headers,
        payload: Bytes::copy_from_slice(payload),
    }
}

#[test]
fn kv_entries_decode_operation_revision_and_key() {
    let put = delivery(
        "$KV.cfg.a.b",
        "$JS.ACK.KV_cfg.w.1.7.1.1700000000000000000.2",
        None,
        b"v1",
    );
    let entry = Entry::from_delivery("cfg", &put).unwrap();
    assert_eq!(
        (
            entry.key.as_str(),
            &entry.value[..],
            entry.revision,
            entry.delta,
            entry.operation
        ),
        ("a.b", &b"v1"[..], 7, 2, Operation::Put)
    );
    assert_eq!(
        entry.created,
        Timestamp::from_unix_nanos(1_700_000_000_000_000_000)
    );
    let del = delivery(
        "$KV.cfg.a",
        "$JS.ACK._.H.KV_cfg.w.1.8.2.1.0.tok",
        Some(b"NATS/1.0\r\nKV-Operation: DEL\r\n\r\n"),
        b"",
    );
    assert_eq!(
        Entry::from_delivery("cfg", &del).unwrap().operation,
        Operation::Delete
    );
    let purge = delivery(
        "$KV.cfg.a",
        "$JS.ACK.KV_cfg.w.1.9.3.1.0",
        Some(b"NATS/1.0\r\nKV-Operation: PURGE\r\nNats-Rollup: sub\r\n\r\n"),
        b"",
    );
    assert_eq!(
        Entry::from_delivery("cfg", &purge).unwrap().operation,
        Operation::Purge
    );
    let marker = Headers::parse(b"NATS/1.0\r\nNats-Marker-Reason: MaxAge\r\n\r\n").unwrap();
    assert_eq!(Operation::of(Some(&marker)), Operation::Purge);
    assert!(Entry::from_delivery("other", &put).is_err());

    // Read back by direct get: the stored headers plus Nats-* ones.
    let reply = delivery(
        "_INBOX.x.1",
        "unused",
        Some(
            b"NATS/1.0\r\nKV-Operation: DEL\r\nNats-Stream: KV_cfg\r\nNats-Subject: $KV.cfg.k\r\nNats-Sequence: 12\r\nNats-Time-Stamp: 2024-05-06T07:08:09.5Z\r\n\r\n",
        ),
        b"",
    );
    let message = StreamMessage::from_direct(reply).unwrap().unwrap();
    assert_eq!((message.subject.as_str(), message.sequence), ("$KV.cfg.k", 12));
    assert_eq!(message.time.to_rfc3339(), "2024-05-06T07:08:09.5Z");
    let entry = Entry::from_stream_message("cfg", message.clone()).unwrap();
    assert_eq!(
        (entry.key.as_str(), entry.revision, entry.operation),
        ("k", 12, Operation::Delete)
    );
    let stored = message.to_stored();
    assert_eq!(StreamMessage::from_stored(stored).unwrap(), message);

    let not_found = delivery(
        "_INBOX.x.1",
        "r",
        Some(b"NATS/1.0 404 Message Not Found\r\n\r\n"),
        b"",
    );
    assert_eq!(StreamMessage::from_direct(not_found).unwrap(), None);
    let bad = delivery(
        "_INBOX.x.1",
        "r",
        Some(b"NATS/1.0 408 Empty Request\r\n\r\n"),
        b"",
    );
    assert!(matches!(
        StreamMessage::from_direct(bad),
        Err(Error::JetStreamStatus { code: 408, .. })
    ));
    let stored = StoredMsg {
        subject: "$KV.cfg.x".into(),
        seq: 3,
        data: b"v".to_vec(),
        ..Default::default()
    };
    let entry = Entry::from_stream_message("cfg", StreamMessage::from_stored(stored).unwrap()).unwrap();
    assert_eq!(
        (entry.key.as_str(), &entry.value[..], entry.operation),
        ("x", &b"v"[..], Operation::Put)
    );
}

#[test]
fn kv_bucket_config_matches_nats_clients() {
    let config = KvConfig::new("cfg", 5).to_stream_config().unwrap();
    assert_eq!(config.name, "KV_cfg");
    assert_eq!(config.subjects, ["$KV.cfg.>"]);
    assert_eq!(config.max_msgs_per_subject, 5);
    assert!(config.allow_rollup_hdrs && config.deny_delete && config.allow_direct && !config.deny_purge);
    assert_eq!(config.discard, DiscardPolicy::New);
    assert_eq!(
        KvConfig::new("cfg", 0)
            .to_stream_config()
            .unwrap()
            .max_msgs_per_subject,
        1
    );
    assert!(KvConfig::new("cfg", 65).to_stream_config().is_err());
    assert!(KvConfig::new("a.b", 1).to_stream_config().is_err());
    assert!(check_bucket("my-bucket_1").is_ok());
    for good in ["a", "a.b", "a/b=c_d-e", "A1"] {
        assert!(check_key(good, false).is_ok(), "{good}");
    }
    for bad in ["", ".a", "a.", "a..b", "a b", "a*", "a.>"] {
        assert!(check_key(bad, false).is_err(), "{bad:?}");
    }
    assert!(check_key("a.*", true).is_ok() && check_key(">", true).is_ok());
}

#[test]
fn pull_requests_and_statuses() {
    let request = next_request(10, Duration::from_millis(1500));
    assert_eq!(
        serde_json::to_string(&request).unwrap(),
        r#"{"expires":1500000000,"batch":10}"#
    );
    let request = next_request(1, Duration::ZERO);
    assert_eq!(
        serde_json::to_string(&request).unwrap(),
        r#"{"batch":1,"no_wait":true}"#
    );

    let status = |block: &[u8]| PullEvent::of(&delivery("_INBOX.a", "r", Some(block), b""));
    assert_eq!(status(b"NATS/1.0 404 No Messages\r\n\r\n"), PullEvent::End);
    assert_eq!(status(b"NATS/1.0 408 Request Timeout\r\n\r\n"), PullEvent::End);
    assert_eq!(status(b"NATS/1.0 409 Batch Completed\r\n\r\n"), PullEvent::End);
    assert_eq!(
        status(b"NATS/1.0 100 Idle Heartbeat\r\n\r\n"),
        PullEvent::Heartbeat
    );
    assert_eq!(status(b"NATS/1.0 503\r\n\r\n"), PullEvent::NoResponders);
    assert_eq!(
        status(b"NATS/1.0 409 Consumer is push based\r\n\r\n"),
        PullEvent::Failed {
            code: 409,
            description: "Consumer is push based".into()
        }
    );
    assert_eq!(status(b"NATS/1.0\r\nA: b\r\n\r\n"), PullEvent::Message);
}
