//! Pull consumers: what they deliver (filters, deliver policies, metadata,
//! replay pace) and their life cycle (ephemeral, durable resume).

use std::time::{Duration, Instant};

use async_nats::jetstream::consumer::{pull, DeliverPolicy, PullConsumer, ReplayPolicy};
use async_nats::jetstream::context::ConsumerInfoErrorKind;
use async_nats::jetstream::stream::Config;
use async_nats::jetstream::{AckKind, ErrorCode};
use futures_util::TryStreamExt as _;

use crate::pull::stream_with;
use crate::util::*;

#[tokio::test]
async fn filter_subject_and_filter_subjects() {
    let env = Env::start().await;
    let stream = env
        .stream(Config {
            name: "F".into(),
            subjects: vec!["f.>".into()],
            ..Default::default()
        })
        .await;
    // seq: 1 f.a, 2 f.b, 3 f.c, 4 f.a, 5 f.b.x
    for subject in ["f.a", "f.b", "f.c", "f.a", "f.b.x"] {
        env.publish(subject, subject).await;
    }
    let one = pull_consumer(
        &stream,
        "one",
        pull::Config {
            filter_subject: "f.a".into(),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(one.cached_info().num_pending, 2);
    let pulled = fetch(&one, 10).await;
    assert_eq!(pulled.stream_seqs(), [1, 4]);
    assert_eq!(
        pulled
            .messages
            .iter()
            .map(|m| m.subject.to_string())
            .collect::<Vec<_>>(),
        ["f.a", "f.a"]
    );

    let many = pull_consumer(
        &stream,
        "many",
        pull::Config {
            filter_subjects: vec!["f.a".into(), "f.b.>".into(), "f.c".into()],
            ..Default::default()
        },
    )
    .await;
    assert_eq!(many.cached_info().num_pending, 4);
    assert_eq!(fetch(&many, 10).await.stream_seqs(), [1, 3, 4, 5]);

    let wildcard = pull_consumer(
        &stream,
        "wild",
        pull::Config {
            filter_subject: "f.*".into(),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(fetch(&wildcard, 10).await.stream_seqs(), [1, 2, 3, 4]);

    // Overlapping filters are refused.
    let err = within(
        "overlapping filters",
        stream.create_consumer(pull::Config {
            durable_name: Some("overlap".into()),
            filter_subjects: vec!["f.>".into(), "f.a".into()],
            ..Default::default()
        }),
    )
    .await
    .expect_err("overlapping filter subjects");
    assert_eq!(
        err_code(&err),
        ErrorCode::CONSUMER_OVERLAPPING_SUBJECT_FILTERS.0,
        "{err:?}"
    );

    // New messages reach only the matching consumers. (Waiting pulls: a
    // consumer may learn of a message just after its PubAck went out.)
    env.publish("f.c", "late").await; // seq 6
    assert_eq!(
        pull(&many, 10, Duration::from_millis(300)).await.stream_seqs(),
        [6]
    );
    assert_eq!(
        pull(&one, 10, Duration::from_millis(300)).await.stream_seqs(),
        Vec::<u64>::new()
    );
}

#[tokio::test]
async fn deliver_policies() {
    let env = Env::start().await;
    let stream = env
        .stream(Config {
            name: "D".into(),
            subjects: vec!["d.*".into()],
            ..Default::default()
        })
        .await;
    // seq: 1 d.a, 2 d.b, 3 d.a, 4 d.a, 5 d.c
    for subject in ["d.a", "d.b", "d.a", "d.a", "d.c"] {
        env.publish(subject, subject).await;
    }
    let start_time = stream.get_raw_message(3).await.expect("message 3").time;

    let policies = [
        ("all", DeliverPolicy::All, vec![1, 2, 3, 4, 5]),
        ("last", DeliverPolicy::Last, vec![5]),
        ("new", DeliverPolicy::New, vec![]),
        (
            "seq",
            DeliverPolicy::ByStartSequence { start_sequence: 3 },
            vec![3, 4, 5],
        ),
        ("time", DeliverPolicy::ByStartTime { start_time }, vec![3, 4, 5]),
        ("lastper", DeliverPolicy::LastPerSubject, vec![2, 4, 5]),
    ];
    let mut consumers = Vec::new();
    for (name, policy, expected) in policies {
        let consumer = pull_consumer(
            &stream,
            name,
            pull::Config {
                deliver_policy: policy,
                // last_per_subject requires a filter (10094 without one).
                filter_subject: "d.*".into(),
                ..Default::default()
            },
        )
        .await;
        assert_eq!(consumer.cached_info().config.deliver_policy, policy, "{name}");
        assert_eq!(
            consumer.cached_info().num_pending,
            expected.len() as u64,
            "{name}"
        );
        let pulled = fetch(&consumer, 10).await;
        assert_eq!(pulled.stream_seqs(), expected, "{name}");
        // Consumer sequences start at 1 whatever the start.
        let consumer_seqs: Vec<u64> = pulled
            .messages
            .iter()
            .map(|m| m.info().unwrap().consumer_sequence)
            .collect();
        assert_eq!(
            consumer_seqs,
            (1..=expected.len() as u64).collect::<Vec<_>>(),
            "{name}"
        );
        consumers.push((name, consumer));
    }
    // Every policy continues with new messages. (Waiting pulls: a consumer
    // may learn of a message just after its PubAck went out.)
    env.publish("d.b", "new").await; // seq 6
    for (name, consumer) in &consumers {
        let pulled = pull(consumer, 10, Duration::from_millis(300)).await;
        assert_eq!(pulled.stream_seqs(), [6], "{name}");
    }
}

#[tokio::test]
async fn message_metadata_is_exact() {
    let env = Env::start().await;
    let stream = env
        .stream(Config {
            name: "META".into(),
            subjects: vec!["meta.*".into()],
            ..Default::default()
        })
        .await;
    // seq: 1 meta.a, 2 meta.b, 3 meta.a, 4 meta.b, 5 meta.b
    for subject in ["meta.a", "meta.b", "meta.a", "meta.b", "meta.b"] {
        env.publish(subject, subject).await;
    }
    let all = pull_consumer(&stream, "all", Default::default()).await;
    let pulled = fetch(&all, 5).await;
    for (i, message) in pulled.messages.iter().enumerate() {
        let seq = i as u64 + 1;
        let info = message.info().expect("metadata");
        assert_eq!(info.stream, "META");
        assert_eq!(info.consumer, "all");
        assert_eq!(info.stream_sequence, seq);
        assert_eq!(info.consumer_sequence, seq);
        assert_eq!(info.delivered, 1);
        assert_eq!(info.pending, 5 - seq, "pending after message {seq}");
        let stored = stream.get_raw_message(seq).await.unwrap();
        assert_eq!(
            nanos(info.published),
            nanos(stored.time),
            "published time of {seq} is the stored time"
        );
        assert!(message.reply.as_ref().unwrap().starts_with("$JS.ACK.META.all."));
    }

    // A filtered consumer counts only its subjects.
    let only_b = pull_consumer(
        &stream,
        "onlyb",
        pull::Config {
            filter_subject: "meta.b".into(),
            ..Default::default()
        },
    )
    .await;
    let pulled = fetch(&only_b, 2).await;
    let info = pulled.messages[1].info().unwrap();
    assert_eq!(
        (info.stream_sequence, info.consumer_sequence, info.pending),
        (4, 2, 1)
    );
    assert_eq!(info.consumer, "onlyb");

    // A redelivery keeps the stream sequence, bumps the rest.
    within("nak", pulled.messages[0].double_ack_with(AckKind::Nak(None)))
        .await
        .unwrap();
    let again = pull(&only_b, 1, Duration::from_secs(2)).await;
    let info = again.messages[0].info().unwrap();
    assert_eq!(
        (info.stream_sequence, info.consumer_sequence, info.delivered),
        (2, 3, 2)
    );
}

#[tokio::test]
async fn ephemeral_consumer() {
    let (_env, stream) = stream_with(3).await;
    let consumer: PullConsumer = within(
        "create ephemeral",
        stream.create_consumer(pull::Config {
            inactive_threshold: Duration::from_millis(500),
            ..Default::default()
        }),
    )
    .await
    .expect("create ephemeral");
    let info = consumer.cached_info().clone();
    assert!(!info.name.is_empty(), "the server names it");
    assert_eq!(info.config.durable_name, None);
    assert_eq!(info.config.inactive_threshold, Duration::from_millis(500));
    let pulled = fetch(&consumer, 10).await;
    assert_eq!(pulled.stream_seqs(), [1, 2, 3]);
    // Acked, so nothing is awaiting an ack that could keep it alive.
    for m in &pulled.messages {
        ack(m).await;
    }
    let names: Vec<String> = within("names", stream.consumer_names().try_collect())
        .await
        .unwrap();
    assert_eq!(names, vec![info.name.clone()]);
    // Unused for longer than its inactive threshold, it goes away.
    eventually("inactive ephemeral consumer is removed", || async {
        matches!(
            stream.consumer_info(&info.name).await,
            Err(e) if e.kind() == ConsumerInfoErrorKind::NotFound
        )
    })
    .await;
}

#[tokio::test]
async fn durable_resumes_after_its_last_ack() {
    let (_env, stream) = stream_with(5).await;
    let config = pull::Config {
        durable_name: Some("D".into()),
        ack_wait: Duration::from_secs(30),
        ..Default::default()
    };
    {
        let consumer = within("create", stream.create_consumer(config.clone()))
            .await
            .unwrap();
        let pulled = fetch(&consumer, 3).await;
        assert_eq!(pulled.stream_seqs(), [1, 2, 3]);
        for m in &pulled.messages {
            ack(m).await;
        }
    } // The client-side handle is gone; the durable stays on the server.

    let again: PullConsumer = within("recreate", stream.create_consumer(config))
        .await
        .expect("recreate by durable name");
    assert_eq!(again.cached_info().ack_floor.stream_sequence, 3);
    assert_eq!(again.cached_info().num_pending, 2);
    let pulled = fetch(&again, 10).await;
    assert_eq!(pulled.stream_seqs(), [4, 5]);
    assert!(pulled.messages.iter().all(|m| delivered(m) == 1));
    let looked_up: PullConsumer = within("get consumer", stream.get_consumer("D"))
        .await
        .expect("get consumer");
    assert_eq!(looked_up.cached_info().delivered.stream_sequence, 5);
}

#[tokio::test]
async fn replay_original_spaces_messages_like_publishing() {
    let env = Env::start().await;
    let stream = env
        .stream(Config {
            name: "R".into(),
            subjects: vec!["r".into()],
            ..Default::default()
        })
        .await;
    env.publish("r", "1").await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    env.publish("r", "2").await;
    let consumer = pull_consumer(
        &stream,
        "C",
        pull::Config {
            replay_policy: ReplayPolicy::Original,
            ..Default::default()
        },
    )
    .await;
    let started = Instant::now();
    let pulled = pull(&consumer, 2, Duration::from_secs(5)).await;
    assert_eq!(pulled.stream_seqs(), [1, 2]);
    assert!(
        started.elapsed() >= Duration::from_millis(500),
        "replay original should keep the 600 ms gap, took {:?}",
        started.elapsed()
    );
}
