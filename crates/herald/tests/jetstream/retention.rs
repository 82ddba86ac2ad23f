//! Retention: limits (max_msgs, max_msgs_per_subject, max_age), work-queue
//! and interest.

use std::time::Duration;

use async_nats::jetstream::consumer::pull;
use async_nats::jetstream::stream::{Config, RetentionPolicy, StorageType};
use async_nats::jetstream::ErrorCode;

use crate::util::*;

fn config(name: &str, subjects: &[&str]) -> Config {
    Config {
        name: name.into(),
        subjects: subjects.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

/// The sequences still stored among `1..=last`.
async fn stored(stream: &async_nats::jetstream::stream::Stream, last: u64) -> Vec<u64> {
    let mut out = Vec::new();
    for seq in 1..=last {
        if stream.get_raw_message(seq).await.is_ok() {
            out.push(seq);
        }
    }
    out
}

#[tokio::test]
async fn max_msgs_with_discard_old_keeps_the_newest() {
    let env = Env::start().await;
    let stream = env
        .stream(Config {
            max_messages: 3,
            ..config("LIMITS", &["limits"])
        })
        .await;
    for i in 1..=5 {
        // Discard old never rejects a publish.
        assert_eq!(env.publish("limits", format!("m{i}")).await.sequence, i);
    }
    let info = env.info("LIMITS").await;
    assert_eq!(info.state.messages, 3);
    assert_eq!(info.state.first_sequence, 3);
    assert_eq!(info.state.last_sequence, 5);
    assert_eq!(stored(&stream, 5).await, [3, 4, 5]);
    assert_eq!(stream.get_raw_message(3).await.unwrap().payload, "m3".as_bytes());
}

#[tokio::test]
async fn max_bytes_with_discard_old_keeps_the_newest() {
    let env = Env::start().await;
    let stream = env
        .stream(Config {
            max_bytes: 2500,
            storage: StorageType::Memory,
            ..config("BYTES", &["bytes"])
        })
        .await;
    for _ in 0..5 {
        env.publish("bytes", vec![b'x'; 1000]).await;
    }
    let info = env.info("BYTES").await;
    assert_eq!(info.state.messages, 2, "two 1000-byte messages fit in 2500 bytes");
    assert!(info.state.bytes <= 2500, "{}", info.state.bytes);
    assert_eq!(stored(&stream, 5).await, [4, 5]);
}

#[tokio::test]
async fn max_msgs_per_subject_keeps_the_last_n_of_each_subject() {
    let env = Env::start().await;
    let stream = env
        .stream(Config {
            max_messages_per_subject: 2,
            ..config("PERSUBJ", &["ps.*"])
        })
        .await;
    // seq: 1 a, 2 a, 3 a, 4 b, 5 b, 6 b, 7 a
    for subject in ["ps.a", "ps.a", "ps.a", "ps.b", "ps.b", "ps.b", "ps.a"] {
        env.publish(subject, subject).await;
    }
    let info = env.info("PERSUBJ").await;
    assert_eq!(info.state.messages, 4);
    assert_eq!(info.state.subjects_count, 2);
    assert_eq!(stored(&stream, 7).await, [3, 5, 6, 7]);
}

#[tokio::test]
async fn max_age_expires_messages() {
    let env = Env::start().await;
    let stream = env
        .stream(Config {
            max_age: Duration::from_secs(1),
            ..config("AGE", &["age"])
        })
        .await;
    env.publish("age", "1").await;
    env.publish("age", "2").await;
    // Well within max_age: both are there.
    assert_eq!(env.info("AGE").await.state.messages, 2);
    eventually("messages older than max_age are removed", || async {
        env.info("AGE").await.state.messages == 0
    })
    .await;
    let info = env.info("AGE").await;
    assert_eq!(info.state.last_sequence, 2);
    assert_eq!(info.state.first_sequence, 3);
    assert!(stream.get_raw_message(1).await.is_err());
    // New messages are kept (for max_age).
    assert_eq!(env.publish("age", "3").await.sequence, 3);
    assert_eq!(env.info("AGE").await.state.messages, 1);
}

#[tokio::test]
async fn work_queue_removes_a_message_once_acked() {
    let env = Env::start().await;
    let stream = env
        .stream(Config {
            retention: RetentionPolicy::WorkQueue,
            ..config("WQ", &["wq.>"])
        })
        .await;
    let consumer = pull_consumer(&stream, "worker", Default::default()).await;
    for i in 1..=3 {
        env.publish("wq.job", format!("job{i}")).await;
    }
    let pulled = pull(&consumer, 3, Duration::from_secs(2)).await;
    assert_eq!(pulled.stream_seqs(), [1, 2, 3]);
    // Delivered but not acked: still stored.
    assert_eq!(env.info("WQ").await.state.messages, 3);
    ack(&pulled.messages[0]).await;
    ack(&pulled.messages[2]).await;
    eventually("acked work-queue messages are removed", || async {
        env.info("WQ").await.state.messages == 1
    })
    .await;
    assert_eq!(stored(&stream, 3).await, [2]);
    ack(&pulled.messages[1]).await;
    eventually("all acked", || async { env.info("WQ").await.state.messages == 0 }).await;
}

#[tokio::test]
async fn work_queue_rejects_overlapping_consumers() {
    let env = Env::start().await;
    let stream = env
        .stream(Config {
            retention: RetentionPolicy::WorkQueue,
            ..config("WQO", &["wqo.>"])
        })
        .await;
    pull_consumer(
        &stream,
        "orders",
        pull::Config {
            filter_subject: "wqo.orders.>".into(),
            ..Default::default()
        },
    )
    .await;
    for (name, filter) in [
        ("all", "wqo.>"),
        ("same", "wqo.orders.>"),
        ("sub", "wqo.orders.eu"),
    ] {
        let err = within(
            "overlapping work-queue consumer",
            stream.create_consumer(pull::Config {
                durable_name: Some(name.into()),
                filter_subject: filter.into(),
                ..Default::default()
            }),
        )
        .await
        .expect_err("overlapping filter");
        assert_eq!(
            err_code(&err),
            ErrorCode::CONSUMER_WQ_CONSUMER_NOT_UNIQUE.0,
            "{filter}: {err:?}"
        );
    }
    // An unfiltered second consumer is refused too.
    let err = within(
        "unfiltered work-queue consumer",
        stream.create_consumer(pull::Config {
            durable_name: Some("unfiltered".into()),
            ..Default::default()
        }),
    )
    .await
    .expect_err("unfiltered second consumer");
    assert_eq!(
        err_code(&err),
        ErrorCode::CONSUMER_WQ_MULTIPLE_UNFILTERED.0,
        "{err:?}"
    );
    // A disjoint filter is fine.
    pull_consumer(
        &stream,
        "payments",
        pull::Config {
            filter_subject: "wqo.payments.>".into(),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(env.info("WQO").await.state.consumer_count, 2);
}

#[tokio::test]
async fn interest_removes_a_message_once_every_consumer_acked() {
    let env = Env::start().await;
    let stream = env
        .stream(Config {
            retention: RetentionPolicy::Interest,
            ..config("INTEREST", &["interest"])
        })
        .await;
    // No consumers: a message is acked but not kept.
    let ack0 = env.publish("interest", "nobody").await;
    assert_eq!(ack0.sequence, 1);
    assert_eq!(env.info("INTEREST").await.state.messages, 0);

    let a = pull_consumer(&stream, "a", Default::default()).await;
    let b = pull_consumer(&stream, "b", Default::default()).await;
    env.publish("interest", "m2").await;
    env.publish("interest", "m3").await;
    assert_eq!(env.info("INTEREST").await.state.messages, 2);

    let from_a = pull(&a, 2, Duration::from_secs(2)).await;
    assert_eq!(from_a.stream_seqs(), [2, 3]);
    for m in &from_a.messages {
        ack(m).await;
    }
    // b has not acked: both stay.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(env.info("INTEREST").await.state.messages, 2);

    let from_b = pull(&b, 2, Duration::from_secs(2)).await;
    assert_eq!(from_b.stream_seqs(), [2, 3]);
    ack(&from_b.messages[0]).await;
    eventually("seq 2 acked by both is removed", || async {
        env.info("INTEREST").await.state.messages == 1
    })
    .await;
    assert_eq!(stored(&stream, 3).await, [3]);
    ack(&from_b.messages[1]).await;
    eventually("seq 3 acked by both is removed", || async {
        env.info("INTEREST").await.state.messages == 0
    })
    .await;
}
