//! Pull consumers: management, fetch / batch / no_wait / max_bytes, every
//! kind of ack, redelivery, max_deliver and its advisory, backoff,
//! max_ack_pending, filters, deliver policies, message metadata,
//! ephemeral consumers, and resuming a durable.

use std::time::{Duration, Instant};

use async_nats::jetstream::consumer::{pull, AckPolicy, DeliverPolicy, ReplayPolicy};
use async_nats::jetstream::context::ConsumerInfoErrorKind;
use async_nats::jetstream::stream::ConsumerCreateStrictErrorKind;
use async_nats::jetstream::stream::{Config, Stream};
use async_nats::jetstream::{AckKind, ErrorCode};
use futures_util::{StreamExt as _, TryStreamExt as _};

use crate::util::*;

const ACK_WAIT: Duration = Duration::from_millis(300);

/// A server with stream `P` on `p.>` holding `n` messages on `p.<i>`
/// with payload `m<i>` (i = 1..=n).
pub async fn stream_with(n: u64) -> (Env, Stream) {
    let env = Env::start().await;
    let stream = env
        .stream(Config {
            name: "P".into(),
            subjects: vec!["p.>".into()],
            ..Default::default()
        })
        .await;
    for i in 1..=n {
        assert_eq!(env.publish(&format!("p.{i}"), format!("m{i}")).await.sequence, i);
    }
    (env, stream)
}

pub fn short_ack_wait() -> pull::Config {
    pull::Config {
        ack_wait: ACK_WAIT,
        ..Default::default()
    }
}

#[tokio::test]
async fn durable_pull_create_info_list_delete() {
    let (_env, stream) = stream_with(3).await;
    let consumer = pull_consumer(
        &stream,
        "C",
        pull::Config {
            description: Some("orders worker".into()),
            ..Default::default()
        },
    )
    .await;
    let info = consumer.cached_info();
    assert_eq!(info.name, "C");
    assert_eq!(info.stream_name, "P");
    assert_eq!(info.config.durable_name.as_deref(), Some("C"));
    assert_eq!(info.config.description.as_deref(), Some("orders worker"));
    assert_eq!(
        info.config.deliver_subject, None,
        "pull consumers have no deliver subject"
    );
    // Defaults filled in by the server.
    assert_eq!(info.config.ack_policy, AckPolicy::Explicit);
    assert_eq!(info.config.deliver_policy, DeliverPolicy::All);
    assert_eq!(info.config.replay_policy, ReplayPolicy::Instant);
    assert_eq!(info.config.ack_wait, Duration::from_secs(30));
    assert_eq!(info.config.max_deliver, -1);
    assert_eq!(info.config.max_ack_pending, 1000);
    assert_eq!(info.config.max_waiting, 512);
    assert_eq!(info.num_pending, 3);
    assert_eq!(info.num_ack_pending, 0);
    assert_eq!(info.delivered.stream_sequence, 0);
    assert_eq!(info.ack_floor.stream_sequence, 0);

    // Creating again with the same config is idempotent.
    pull_consumer(
        &stream,
        "C",
        pull::Config {
            description: Some("orders worker".into()),
            ..Default::default()
        },
    )
    .await;
    // Strict create of an existing name with another config: 10148.
    let err = within(
        "strict create",
        stream.create_consumer_strict(pull::Config {
            durable_name: Some("C".into()),
            description: Some("different".into()),
            ..Default::default()
        }),
    )
    .await
    .expect_err("consumer exists with another config");
    assert_eq!(
        err.kind(),
        ConsumerCreateStrictErrorKind::AlreadyExists,
        "{err:?}"
    );
    let reply = _env
        .api(
            "CONSUMER.CREATE.P.C",
            r#"{"stream_name":"P","config":{"durable_name":"C","description":"different"},"action":"create"}"#,
        )
        .await;
    assert_eq!(
        reply["error"]["err_code"],
        ErrorCode::CONSUMER_ALREADY_EXISTS.0,
        "{reply}"
    );

    pull_consumer(&stream, "D", Default::default()).await;
    let mut names: Vec<String> = within("consumer names", stream.consumer_names().try_collect())
        .await
        .expect("consumer names");
    names.sort();
    assert_eq!(names, ["C", "D"]);
    let infos: Vec<async_nats::jetstream::consumer::Info> =
        within("consumer list", stream.consumers().try_collect())
            .await
            .expect("consumer list");
    let mut listed: Vec<(String, u64)> = infos.iter().map(|i| (i.name.clone(), i.num_pending)).collect();
    listed.sort();
    assert_eq!(listed, [("C".to_string(), 3), ("D".to_string(), 3)]);

    let deleted = within("delete consumer", stream.delete_consumer("C"))
        .await
        .expect("delete consumer");
    assert!(deleted.success);
    let err = within("info deleted", stream.consumer_info("C"))
        .await
        .expect_err("deleted consumer");
    assert_eq!(err.kind(), ConsumerInfoErrorKind::NotFound, "{err:?}");
    let reply = _env.api("CONSUMER.INFO.P.C", "").await;
    assert_eq!(reply["error"]["code"], 404, "{reply}");
    assert_eq!(reply["error"]["err_code"], 10014, "{reply}");
    let Err(err) = within("delete again", stream.delete_consumer("C")).await else {
        panic!("deleting a deleted consumer must fail");
    };
    assert_eq!(err_code(&err), ErrorCode::CONSUMER_NOT_FOUND.0, "{err:?}");
    let names: Vec<String> = within("consumer names", stream.consumer_names().try_collect())
        .await
        .expect("consumer names");
    assert_eq!(names, ["D"]);
}

#[tokio::test]
async fn fetch_returns_batches_of_n() {
    let (_env, stream) = stream_with(10).await;
    let consumer = pull_consumer(&stream, "C", Default::default()).await;
    assert_eq!(fetch(&consumer, 4).await.stream_seqs(), [1, 2, 3, 4]);
    assert_eq!(fetch(&consumer, 4).await.stream_seqs(), [5, 6, 7, 8]);
    let last = fetch(&consumer, 4).await;
    assert_eq!(last.stream_seqs(), [9, 10]);
    assert_eq!(last.payloads(), ["m9", "m10"]);
    assert!(fetch(&consumer, 4).await.messages.is_empty());
    let info = consumer_info(&stream, "C").await;
    assert_eq!(info.num_pending, 0);
    assert_eq!(info.num_ack_pending, 10);
    assert_eq!(info.delivered.stream_sequence, 10);
    assert_eq!(info.delivered.consumer_sequence, 10);
}

#[tokio::test]
async fn batch_with_expires_waits_for_messages_then_expires() {
    let (env, stream) = stream_with(3).await;
    let consumer = pull_consumer(&stream, "C", Default::default()).await;
    // Enough messages: the batch completes without waiting for expiry.
    let started = Instant::now();
    let full = pull(&consumer, 3, Duration::from_secs(5)).await;
    assert_eq!(full.stream_seqs(), [1, 2, 3]);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );

    // Not enough: messages published while the request waits are delivered,
    // then the request expires.
    let publisher = env.js.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        for i in 4..=5 {
            publish_msg(
                &publisher,
                &format!("p.{i}"),
                async_nats::jetstream::message::PublishMessage::build().payload(format!("m{i}").into()),
            )
            .await
            .expect("publish while pulling");
        }
    });
    let started = Instant::now();
    let partial = pull(&consumer, 5, Duration::from_millis(1500)).await;
    let elapsed = started.elapsed();
    assert_eq!(partial.stream_seqs(), [4, 5]);
    assert!(
        elapsed >= Duration::from_millis(1300) && elapsed < Duration::from_millis(4500),
        "the request should end when it expires (1.5 s), ended after {elapsed:?}"
    );
}

#[tokio::test]
async fn no_wait_on_an_empty_stream_returns_nothing_quickly() {
    let (_env, stream) = stream_with(0).await;
    let consumer = pull_consumer(&stream, "C", Default::default()).await;
    let started = Instant::now();
    let pulled = fetch(&consumer, 10).await;
    assert!(pulled.messages.is_empty());
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    // The request does not linger.
    assert_eq!(consumer_info(&stream, "C").await.num_waiting, 0);
}

#[tokio::test]
async fn max_bytes_limits_a_pull() {
    let env = Env::start().await;
    let stream = env
        .stream(Config {
            name: "BIG".into(),
            subjects: vec!["big".into()],
            ..Default::default()
        })
        .await;
    for _ in 0..5 {
        env.publish("big", vec![b'x'; 1000]).await;
    }
    let consumer = pull_consumer(&stream, "C", Default::default()).await;
    let batch = within(
        "fetch with max_bytes",
        consumer.fetch().max_messages(10).max_bytes(2500).messages(),
    )
    .await
    .expect("fetch");
    let pulled = drain(batch).await;
    assert_eq!(
        pulled.stream_seqs(),
        [1, 2],
        "two ~1 KB messages fit in 2500 bytes"
    );
    // Nothing was skipped: the next pull continues at 3.
    assert_eq!(fetch(&consumer, 10).await.stream_seqs(), [3, 4, 5]);
}

#[tokio::test]
async fn explicit_ack_moves_the_ack_floor() {
    let (_env, stream) = stream_with(3).await;
    let consumer = pull_consumer(&stream, "C", Default::default()).await;
    let pulled = fetch(&consumer, 3).await;
    assert_eq!(pulled.stream_seqs(), [1, 2, 3]);
    let info = consumer_info(&stream, "C").await;
    assert_eq!(info.num_ack_pending, 3);
    assert_eq!(info.ack_floor.stream_sequence, 0);

    // Acking 1 and 3 leaves 2 pending: the floor stops at 1.
    ack(&pulled.messages[0]).await;
    ack(&pulled.messages[2]).await;
    let info = consumer_info(&stream, "C").await;
    assert_eq!(info.num_ack_pending, 1);
    assert_eq!(info.ack_floor.stream_sequence, 1);
    assert_eq!(info.ack_floor.consumer_sequence, 1);

    ack(&pulled.messages[1]).await;
    let info = consumer_info(&stream, "C").await;
    assert_eq!(info.num_ack_pending, 0);
    assert_eq!(info.num_pending, 0);
    assert_eq!(info.ack_floor.stream_sequence, 3);
    assert_eq!(info.ack_floor.consumer_sequence, 3);
    assert_eq!(info.delivered.stream_sequence, 3);
}

#[tokio::test]
async fn plain_ack_is_applied() {
    let (_env, stream) = stream_with(2).await;
    let consumer = pull_consumer(&stream, "C", Default::default()).await;
    let pulled = fetch(&consumer, 2).await;
    for m in &pulled.messages {
        within("ack", m.ack()).await.expect("ack");
    }
    eventually("fire-and-forget acks are applied", || async {
        consumer_info(&stream, "C").await.num_ack_pending == 0
    })
    .await;
    assert_eq!(consumer_info(&stream, "C").await.ack_floor.stream_sequence, 2);
}

#[tokio::test]
async fn double_ack_waits_for_the_server() {
    let (_env, stream) = stream_with(2).await;
    let consumer = pull_consumer(&stream, "C", Default::default()).await;
    let pulled = fetch(&consumer, 2).await;
    within("double ack", pulled.messages[0].double_ack())
        .await
        .expect("double ack of a pending message");
    // Confirmed: the server state already reflects it, no polling needed.
    let info = consumer_info(&stream, "C").await;
    assert_eq!(info.num_ack_pending, 1);
    assert_eq!(info.ack_floor.stream_sequence, 1);
    within("double term", pulled.messages[1].double_ack_with(AckKind::Term))
        .await
        .expect("double ack with term");
    assert_eq!(consumer_info(&stream, "C").await.num_ack_pending, 0);
}

#[tokio::test]
async fn nak_redelivers_at_once() {
    let (_env, stream) = stream_with(2).await;
    let consumer = pull_consumer(&stream, "C", Default::default()).await;
    let first = fetch(&consumer, 1).await;
    assert_eq!(first.stream_seqs(), [1]);
    assert_eq!(delivered(&first.messages[0]), 1);
    within("nak", first.messages[0].double_ack_with(AckKind::Nak(None)))
        .await
        .expect("nak");

    let again = pull(&consumer, 1, Duration::from_secs(2)).await;
    assert_eq!(again.stream_seqs(), [1], "the nak'd message comes first");
    let info = again.messages[0].info().expect("info");
    assert_eq!(info.delivered, 2);
    assert_eq!(info.consumer_sequence, 2);
    let cinfo = consumer_info(&stream, "C").await;
    assert_eq!(cinfo.num_redelivered, 1);
    assert_eq!(cinfo.delivered.consumer_sequence, 2);
    assert_eq!(cinfo.delivered.stream_sequence, 1);
    ack(&again.messages[0]).await;
    assert_eq!(fetch(&consumer, 5).await.stream_seqs(), [2]);
}

#[tokio::test]
async fn nak_with_delay_redelivers_after_the_delay() {
    let (_env, stream) = stream_with(1).await;
    let consumer = pull_consumer(&stream, "C", Default::default()).await;
    let first = fetch(&consumer, 1).await;
    let naked = Instant::now();
    within(
        "nak with delay",
        first.messages[0].double_ack_with(AckKind::Nak(Some(Duration::from_millis(700)))),
    )
    .await
    .expect("nak with delay");
    let early = pull(&consumer, 1, Duration::from_millis(300)).await;
    assert!(
        early.messages.is_empty(),
        "redelivered before the delay: {:?}",
        early.stream_seqs()
    );
    let later = pull(&consumer, 1, Duration::from_secs(3)).await;
    assert_eq!(later.stream_seqs(), [1]);
    assert_eq!(delivered(&later.messages[0]), 2);
    assert!(
        naked.elapsed() >= Duration::from_millis(650),
        "redelivered {:?} after a 700 ms nak delay",
        naked.elapsed()
    );
}

#[tokio::test]
async fn in_progress_extends_the_ack_wait() {
    let (_env, stream) = stream_with(1).await;
    let consumer = pull_consumer(&stream, "C", short_ack_wait()).await;
    let first = fetch(&consumer, 1).await;
    let message = first.messages[0].clone();
    // +WPI every 100 ms for 1.2 s (4 × ack_wait).
    let progress = tokio::spawn(async move {
        for _ in 0..12 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            message.ack_with(AckKind::Progress).await.expect("in progress");
        }
    });
    let during = pull(&consumer, 1, Duration::from_millis(1100)).await;
    assert!(
        during.messages.is_empty(),
        "redelivered while +WPI kept it in progress: {:?}",
        during.stream_seqs()
    );
    within("progress task", progress).await.expect("progress task");
    // Without progress reports the ack wait runs out and it is redelivered.
    let after = pull(&consumer, 1, Duration::from_secs(3)).await;
    assert_eq!(after.stream_seqs(), [1]);
    assert_eq!(delivered(&after.messages[0]), 2);
}

#[tokio::test]
async fn term_is_never_redelivered() {
    let (_env, stream) = stream_with(2).await;
    let consumer = pull_consumer(&stream, "C", short_ack_wait()).await;
    let first = fetch(&consumer, 1).await;
    assert_eq!(first.stream_seqs(), [1]);
    within("term", first.messages[0].double_ack_with(AckKind::Term))
        .await
        .expect("term");
    // Several ack waits later only message 2 was delivered (then redelivered
    // because it is not acked) — never message 1.
    let later = pull(&consumer, 10, Duration::from_millis(1200)).await;
    assert!(!later.messages.is_empty());
    assert!(
        later.stream_seqs().iter().all(|&s| s == 2),
        "{:?}",
        later.stream_seqs()
    );
    let info = consumer_info(&stream, "C").await;
    assert_eq!(
        info.ack_floor.stream_sequence, 1,
        "a terminated message counts as done"
    );
}

#[tokio::test]
async fn unacked_message_is_redelivered_after_ack_wait() {
    let (_env, stream) = stream_with(1).await;
    let consumer = pull_consumer(&stream, "C", short_ack_wait()).await;
    assert_eq!(consumer.cached_info().config.ack_wait, ACK_WAIT);
    let first = fetch(&consumer, 1).await;
    let delivered_at = Instant::now();
    assert_eq!(first.stream_seqs(), [1]);
    let again = pull(&consumer, 1, Duration::from_secs(3)).await;
    let gap = delivered_at.elapsed();
    assert_eq!(again.stream_seqs(), [1]);
    let info = again.messages[0].info().unwrap();
    assert_eq!(info.delivered, 2);
    assert_eq!(info.consumer_sequence, 2);
    assert!(
        gap >= Duration::from_millis(250),
        "redelivered after {gap:?} < ack_wait"
    );
    assert_eq!(consumer_info(&stream, "C").await.num_redelivered, 1);
}

#[tokio::test]
async fn max_deliver_stops_redelivery_and_sends_the_advisory() {
    let (env, stream) = stream_with(1).await;
    let mut advisories = within(
        "subscribe advisory",
        env.client
            .subscribe("$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.P.C"),
    )
    .await
    .expect("subscribe");
    env.client.flush().await.expect("flush");
    let consumer = pull_consumer(
        &stream,
        "C",
        pull::Config {
            max_deliver: 2,
            ..short_ack_wait()
        },
    )
    .await;
    assert_eq!(consumer.cached_info().config.max_deliver, 2);
    let first = fetch(&consumer, 1).await;
    assert_eq!(delivered(&first.messages[0]), 1);
    let second = pull(&consumer, 1, Duration::from_secs(3)).await;
    assert_eq!(second.stream_seqs(), [1]);
    assert_eq!(delivered(&second.messages[0]), 2);

    // Not acked again: no third delivery, however long we wait…
    let third = pull(&consumer, 1, Duration::from_millis(1200)).await;
    assert!(
        third.messages.is_empty(),
        "delivered a third time: {:?}",
        third.stream_seqs()
    );
    // …but an advisory.
    let advisory = within("max deliveries advisory", advisories.next())
        .await
        .expect("advisory subscription ended");
    let body: serde_json::Value = serde_json::from_slice(&advisory.payload).expect("advisory JSON");
    assert_eq!(
        body["type"], "io.nats.jetstream.advisory.v1.max_deliver",
        "{body}"
    );
    assert_eq!(body["stream"], "P", "{body}");
    assert_eq!(body["consumer"], "C", "{body}");
    assert_eq!(body["stream_seq"], 1, "{body}");
    assert_eq!(body["deliveries"], 2, "{body}");
    let info = consumer_info(&stream, "C").await;
    assert_eq!(info.num_ack_pending, 0, "given up on, no longer pending");
}

#[tokio::test]
async fn max_deliver_counts_naks_too() {
    let (env, stream) = stream_with(2).await;
    let mut advisories = within(
        "subscribe advisory",
        env.client
            .subscribe("$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.P.N"),
    )
    .await
    .expect("subscribe");
    env.client.flush().await.expect("flush");
    let consumer = pull_consumer(
        &stream,
        "N",
        pull::Config {
            max_deliver: 2,
            ..Default::default()
        },
    )
    .await;
    let first = fetch(&consumer, 1).await;
    assert_eq!(first.stream_seqs(), [1]);
    within("nak 1", first.messages[0].double_ack_with(AckKind::Nak(None)))
        .await
        .expect("nak");
    let second = pull(&consumer, 1, Duration::from_secs(2)).await;
    assert_eq!(second.stream_seqs(), [1]);
    assert_eq!(delivered(&second.messages[0]), 2);
    within("nak 2", second.messages[0].double_ack_with(AckKind::Nak(None)))
        .await
        .expect("nak");
    // Message 1 is done with; the consumer moves on to 2.
    let next = pull(&consumer, 5, Duration::from_millis(800)).await;
    assert_eq!(next.stream_seqs(), [2], "message 1 was nak'd max_deliver times");
    let advisory = within("max deliveries advisory", advisories.next())
        .await
        .expect("advisory subscription ended");
    let body: serde_json::Value = serde_json::from_slice(&advisory.payload).expect("advisory JSON");
    assert_eq!(body["consumer"], "N", "{body}");
    assert_eq!(body["stream_seq"], 1, "{body}");
    assert_eq!(body["deliveries"], 2, "{body}");
}

#[tokio::test]
async fn backoff_spaces_redeliveries() {
    let (_env, stream) = stream_with(1).await;
    let backoff = vec![Duration::from_millis(200), Duration::from_millis(1000)];
    let consumer = pull_consumer(
        &stream,
        "C",
        pull::Config {
            backoff: backoff.clone(),
            max_deliver: 3,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(consumer.cached_info().config.backoff, backoff);
    let first = fetch(&consumer, 1).await;
    let t1 = Instant::now();
    assert_eq!(first.stream_seqs(), [1]);
    let second = pull(&consumer, 1, Duration::from_secs(3)).await;
    let t2 = Instant::now();
    assert_eq!(delivered(&second.messages[0]), 2);
    let third = pull(&consumer, 1, Duration::from_secs(4)).await;
    let t3 = Instant::now();
    assert_eq!(delivered(&third.messages[0]), 3);
    let (gap1, gap2) = (t2 - t1, t3 - t2);
    assert!(
        gap1 >= Duration::from_millis(150) && gap1 < Duration::from_millis(800),
        "first redelivery after {gap1:?}, backoff[0] is 200 ms"
    );
    assert!(
        gap2 >= Duration::from_millis(900) && gap2 < Duration::from_millis(2500),
        "second redelivery after {gap2:?}, backoff[1] is 1 s"
    );
    // max_deliver 3 reached.
    let fourth = pull(&consumer, 1, Duration::from_millis(1500)).await;
    assert!(fourth.messages.is_empty());
}

#[tokio::test]
async fn backoff_longer_than_max_deliver_is_rejected() {
    let (_env, stream) = stream_with(0).await;
    let err = within(
        "bad backoff",
        stream.create_consumer(pull::Config {
            durable_name: Some("C".into()),
            backoff: vec![Duration::from_millis(100), Duration::from_millis(200)],
            max_deliver: 1,
            ..Default::default()
        }),
    )
    .await
    .expect_err("max_deliver must exceed the backoff list");
    assert_eq!(
        err_code(&err),
        ErrorCode::CONSUMER_MAX_DELIVER_BACKOFF.0,
        "{err:?}"
    );
}

#[tokio::test]
async fn max_ack_pending_limits_outstanding_messages() {
    let (_env, stream) = stream_with(5).await;
    let consumer = pull_consumer(
        &stream,
        "C",
        pull::Config {
            max_ack_pending: 2,
            ..Default::default()
        },
    )
    .await;
    // (A waiting pull, not a no_wait fetch: nats-server keeps a no_wait
    // request open while max_ack_pending holds back pending messages.)
    let pulled = pull(&consumer, 5, Duration::from_millis(700)).await;
    assert_eq!(pulled.stream_seqs(), [1, 2]);
    let waiting = pull(&consumer, 5, Duration::from_millis(500)).await;
    assert!(waiting.messages.is_empty(), "{:?}", waiting.stream_seqs());
    ack(&pulled.messages[0]).await;
    assert_eq!(
        pull(&consumer, 5, Duration::from_millis(500)).await.stream_seqs(),
        [3]
    );
    let info = consumer_info(&stream, "C").await;
    assert_eq!(info.num_ack_pending, 2);
    assert_eq!(info.num_pending, 2);
}

#[tokio::test]
async fn ack_all_acks_everything_up_to_the_message() {
    let (_env, stream) = stream_with(5).await;
    let consumer = pull_consumer(
        &stream,
        "C",
        pull::Config {
            ack_policy: AckPolicy::All,
            ..short_ack_wait()
        },
    )
    .await;
    assert_eq!(consumer.cached_info().config.ack_policy, AckPolicy::All);
    let pulled = fetch(&consumer, 5).await;
    assert_eq!(pulled.stream_seqs(), [1, 2, 3, 4, 5]);
    ack(&pulled.messages[2]).await;
    let info = consumer_info(&stream, "C").await;
    assert_eq!(info.ack_floor.stream_sequence, 3);
    assert_eq!(info.ack_floor.consumer_sequence, 3);
    assert_eq!(info.num_ack_pending, 2);
    // Only 4 and 5 come back after the ack wait.
    let again = pull(&consumer, 2, Duration::from_secs(3)).await;
    assert_eq!(again.stream_seqs(), [4, 5]);
}
