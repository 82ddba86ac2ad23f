//! Publishing into streams: PubAcks, no-stream errors, de-duplication,
//! optimistic-concurrency headers, size limits, discard-new and rollups.

use std::time::Duration;

use async_nats::jetstream::context::PublishErrorKind;
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::stream::{Config, DiscardPolicy};
use async_nats::jetstream::ErrorCode;

use crate::util::*;

fn msg(payload: &str) -> PublishMessage {
    PublishMessage::build().payload(payload.to_string().into())
}

async fn env_with(config: Config) -> (Env, async_nats::jetstream::stream::Stream) {
    let env = Env::start().await;
    let stream = env.stream(config).await;
    (env, stream)
}

fn config(name: &str, subjects: &[&str]) -> Config {
    Config {
        name: name.into(),
        subjects: subjects.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

#[tokio::test]
async fn puback_carries_stream_and_increasing_sequence() {
    let (env, _) = env_with(config("ACKS", &["acks.>"])).await;
    for i in 1..=5u64 {
        let ack = env.publish(&format!("acks.{}", i % 2), format!("m{i}")).await;
        assert_eq!(ack.stream, "ACKS");
        assert_eq!(ack.sequence, i);
        assert!(!ack.duplicate);
    }
    // A plain publish (no ack requested) is stored too, and the next
    // PubAck counts it.
    env.client
        .publish("acks.plain", "fire and forget".into())
        .await
        .expect("core publish");
    assert_eq!(env.publish("acks.1", "after").await.sequence, 7);
    assert_eq!(env.info("ACKS").await.state.messages, 7);
}

#[tokio::test]
async fn publish_without_a_stream_has_no_responders() {
    let (env, _) = env_with(config("SOME", &["some.>"])).await;
    let result = env.try_publish("nothing.here", msg("x")).await;
    assert_no_stream(result, "subject no stream captures");
    assert_eq!(env.info("SOME").await.state.messages, 0);
}

#[tokio::test]
async fn duplicate_msg_id_is_acked_as_duplicate_and_not_stored() {
    let (env, stream) = env_with(config("DEDUP", &["dedup.>"])).await;
    let first = env
        .try_publish("dedup.a", msg("first").message_id("id-1"))
        .await
        .expect("first");
    assert_eq!((first.sequence, first.duplicate), (1, false));

    let second = env
        .try_publish("dedup.a", msg("second").message_id("id-1"))
        .await
        .expect("duplicate is acked, not rejected");
    assert_eq!(second.stream, "DEDUP");
    assert_eq!((second.sequence, second.duplicate), (1, true));

    // Same id on another subject of the stream is still a duplicate.
    let third = env
        .try_publish("dedup.b", msg("third").message_id("id-1"))
        .await
        .expect("duplicate");
    assert_eq!((third.sequence, third.duplicate), (1, true));

    let other = env
        .try_publish("dedup.a", msg("other").message_id("id-2"))
        .await
        .expect("new id");
    assert_eq!((other.sequence, other.duplicate), (2, false));

    let info = env.info("DEDUP").await;
    assert_eq!(info.state.messages, 2);
    let stored = stream.get_raw_message(1).await.expect("message 1");
    assert_eq!(stored.payload, "first".as_bytes());
    assert_eq!(header(Some(&stored.headers), "Nats-Msg-Id"), Some("id-1"));
}

#[tokio::test]
async fn duplicate_window_expires() {
    let (env, _) = env_with(Config {
        duplicate_window: Duration::from_millis(800),
        ..config("WINDOW", &["window"])
    })
    .await;
    let first = env
        .try_publish("window", msg("a").message_id("same"))
        .await
        .unwrap();
    let dup = env
        .try_publish("window", msg("b").message_id("same"))
        .await
        .unwrap();
    assert_eq!((first.sequence, dup.sequence, dup.duplicate), (1, 1, true));
    tokio::time::sleep(Duration::from_millis(2000)).await;
    let later = env
        .try_publish("window", msg("c").message_id("same"))
        .await
        .unwrap();
    assert_eq!(
        (later.sequence, later.duplicate),
        (2, false),
        "the 800 ms window has passed"
    );
}

#[tokio::test]
async fn expected_stream_mismatch_is_10060() {
    let (env, _) = env_with(config("EXPECT", &["expect.>"])).await;
    let result = env
        .try_publish("expect.a", msg("x").expected_stream("OTHER"))
        .await;
    assert_publish_error(result, ErrorCode::STREAM_NOT_MATCH.0, "wrong expected stream");
    let ok = env
        .try_publish("expect.a", msg("y").expected_stream("EXPECT"))
        .await
        .expect("right expected stream");
    assert_eq!(ok.sequence, 1);
    assert_eq!(env.info("EXPECT").await.state.messages, 1);
}

#[tokio::test]
async fn expected_last_sequence() {
    let (env, _) = env_with(config("LASTSEQ", &["lastseq.>"])).await;
    // On an empty stream the last sequence is 0.
    let ack = env
        .try_publish("lastseq.a", msg("1").expected_last_sequence(0))
        .await
        .expect("expected 0 on empty stream");
    assert_eq!(ack.sequence, 1);
    env.publish("lastseq.b", "2").await;
    let ack = env
        .try_publish("lastseq.a", msg("3").expected_last_sequence(2))
        .await
        .expect("right last sequence");
    assert_eq!(ack.sequence, 3);

    let result = env
        .try_publish("lastseq.a", msg("4").expected_last_sequence(2))
        .await;
    let err = result.expect_err("stale last sequence");
    assert_eq!(err.kind(), PublishErrorKind::WrongLastSequence);
    assert_eq!(err_code(&err), ErrorCode::STREAM_WRONG_LAST_SEQUENCE.0);
    assert_eq!(env.info("LASTSEQ").await.state.last_sequence, 3);
}

#[tokio::test]
async fn expected_last_msg_id() {
    let (env, _) = env_with(config("LASTID", &["lastid"])).await;
    env.try_publish("lastid", msg("a").message_id("a")).await.unwrap();
    let ack = env
        .try_publish("lastid", msg("b").message_id("b").expected_last_message_id("a"))
        .await
        .expect("right last msg id");
    assert_eq!(ack.sequence, 2);

    let result = env
        .try_publish("lastid", msg("c").message_id("c").expected_last_message_id("a"))
        .await;
    let err = result.expect_err("stale last msg id");
    assert_eq!(err.kind(), PublishErrorKind::WrongLastMessageId);
    assert_eq!(err_code(&err), ErrorCode::STREAM_WRONG_LAST_MESSAGE_ID.0);
    assert_eq!(env.info("LASTID").await.state.messages, 2);
}

#[tokio::test]
async fn expected_last_subject_sequence_accepts_current_and_rejects_stale() {
    let (env, _) = env_with(config("SUBSEQ", &["subseq.>"])).await;
    env.publish("subseq.a", "1").await; // seq 1
    env.publish("subseq.b", "2").await; // seq 2
    env.publish("subseq.a", "3").await; // seq 3

    let ack = env
        .try_publish("subseq.a", msg("4").expected_last_subject_sequence(3))
        .await
        .expect("current subject sequence");
    assert_eq!(ack.sequence, 4);
    // seq 3 is no longer the last on subseq.a: rejected.
    let err = env
        .try_publish("subseq.a", msg("stale").expected_last_subject_sequence(3))
        .await
        .expect_err("stale subject sequence");
    assert_eq!(err.kind(), PublishErrorKind::WrongLastSequence);
    assert_eq!(err_code(&err), ErrorCode::STREAM_WRONG_LAST_SEQUENCE.0);
    // The stream's last sequence does not matter, only the subject's.
    let ack = env
        .try_publish("subseq.b", msg("5").expected_last_subject_sequence(2))
        .await
        .expect("subject b's last is 2");
    assert_eq!(ack.sequence, 5);
    // A subject never written has last sequence 0.
    let ack = env
        .try_publish("subseq.new", msg("6").expected_last_subject_sequence(0))
        .await
        .expect("new subject expects 0");
    assert_eq!(ack.sequence, 6);
    let err = env
        .try_publish("subseq.other", msg("x").expected_last_subject_sequence(1))
        .await
        .expect_err("subject with no messages is not at 1");
    assert_eq!(err_code(&err), ErrorCode::STREAM_WRONG_LAST_SEQUENCE.0);
    assert_eq!(env.info("SUBSEQ").await.state.messages, 6);
}

#[tokio::test]
async fn max_msg_size_is_enforced() {
    let (env, _) = env_with(Config {
        max_message_size: 100,
        ..config("SMALL", &["small"])
    })
    .await;
    let ok = env.publish("small", vec![b'x'; 100]).await;
    assert_eq!(ok.sequence, 1);
    let result = env
        .try_publish("small", PublishMessage::build().payload(vec![b'x'; 101].into()))
        .await;
    assert_publish_error(
        result,
        ErrorCode::STREAM_MESSAGE_EXCEEDS_MAXIMUM.0,
        "101 bytes > 100",
    );
    assert_eq!(env.info("SMALL").await.state.messages, 1);
}

#[tokio::test]
async fn discard_new_rejects_when_full_with_10077() {
    let (env, _) = env_with(Config {
        max_messages: 2,
        discard: DiscardPolicy::New,
        ..config("FULL", &["full"])
    })
    .await;
    env.publish("full", "1").await;
    env.publish("full", "2").await;
    let result = env.try_publish("full", msg("3")).await;
    assert_publish_error(result, ErrorCode::STREAM_STORE_FAILED.0, "stream is full");
    let info = env.info("FULL").await;
    assert_eq!(info.state.messages, 2);
    assert_eq!(info.state.first_sequence, 1);
    assert_eq!(info.state.last_sequence, 2);
}

#[tokio::test]
async fn rollup_sub_keeps_only_the_rollup_message_on_its_subject() {
    let (env, stream) = env_with(Config {
        allow_rollup: true,
        ..config("ROLL", &["roll.>"])
    })
    .await;
    for i in 1..=3 {
        env.publish("roll.a", format!("a{i}")).await;
    }
    env.publish("roll.b", "b1").await;
    let ack = env
        .publish_with_headers("roll.a", headers(&[("Nats-Rollup", "sub")]), "a-rollup")
        .await;
    assert_eq!(ack.sequence, 5);

    let info = env.info("ROLL").await;
    assert_eq!(info.state.messages, 2, "roll.b's message and the rollup");
    for seq in 1..=3 {
        assert!(stream.get_raw_message(seq).await.is_err(), "seq {seq} rolled up");
    }
    assert_eq!(stream.get_raw_message(4).await.unwrap().payload, "b1".as_bytes());
    let last = stream.get_last_raw_message_by_subject("roll.a").await.unwrap();
    assert_eq!((last.sequence, &last.payload[..]), (5, "a-rollup".as_bytes()));

    // Nats-Rollup: all leaves only the rollup message in the stream.
    let ack = env
        .publish_with_headers("roll.c", headers(&[("Nats-Rollup", "all")]), "everything")
        .await;
    assert_eq!(ack.sequence, 6);
    let info = env.info("ROLL").await;
    assert_eq!(info.state.messages, 1);
    assert_eq!(info.state.first_sequence, 6);
}

#[tokio::test]
async fn rollup_is_refused_unless_allowed() {
    let (env, _) = env_with(config("NOROLL", &["noroll"])).await;
    env.publish("noroll", "1").await;
    let result = env
        .try_publish(
            "noroll",
            PublishMessage::build()
                .payload("r".into())
                .headers(headers(&[("Nats-Rollup", "sub")])),
        )
        .await;
    assert_publish_error(result, ErrorCode::STREAM_ROLLUP_FAILED.0, "rollup not allowed");
    assert_eq!(env.info("NOROLL").await.state.messages, 1);
}

#[tokio::test]
async fn headers_and_binary_payloads_are_stored_verbatim() {
    let (env, stream) = env_with(config("BYTES", &["bytes"])).await;
    let payload: Vec<u8> = (0..=255u8).chain(b"\r\nPUB x 1\r\n".iter().copied()).collect();
    let ack = env
        .publish_with_headers(
            "bytes",
            headers(&[("X-One", "1"), ("X-Multi", "a"), ("X-Multi", "b")]),
            payload.clone(),
        )
        .await;
    let stored = stream.get_raw_message(ack.sequence).await.expect("stored");
    assert_eq!(stored.payload, payload);
    assert_eq!(header(Some(&stored.headers), "X-One"), Some("1"));
    // (The client's STREAM.MSG.GET header parser keeps one value per name,
    // so repeated headers are checked on a delivered message.)
    let consumer = pull_consumer(&stream, "C", Default::default()).await;
    let pulled = fetch(&consumer, 1).await;
    let delivered = &pulled.messages[0];
    assert_eq!(delivered.payload, payload);
    assert_eq!(delivered.subject.as_str(), "bytes");
    let hdrs = delivered.headers.as_ref().expect("headers delivered");
    assert_eq!(header(Some(hdrs), "X-One"), Some("1"));
    let multi: Vec<&str> = hdrs.get_all("X-Multi").map(|v| v.as_str()).collect();
    assert_eq!(multi, ["a", "b"]);
    // Empty payload.
    let ack = env.publish("bytes", Vec::new()).await;
    assert!(stream
        .get_raw_message(ack.sequence)
        .await
        .unwrap()
        .payload
        .is_empty());
}
