//! Durability across restarts on the same data directory: graceful
//! (SIGTERM) and crash (SIGKILL).

use std::time::Duration;

use async_nats::jetstream::consumer::{pull, PullConsumer};
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::stream::{Config, StorageType};

use crate::util::*;

const N: u64 = 50;

/// Payload `i`: binary, of varying length (0 for i = 0 mod 7), with bytes
/// that would confuse a text protocol.
fn payload(i: u64) -> Vec<u8> {
    let len = ((i * 37) % 300) as usize * usize::from(i % 7 != 0);
    (0..len)
        .map(|j| ((i as usize * 31 + j * 7) % 256) as u8)
        .collect()
}

struct Stored {
    subject: String,
    payload: Vec<u8>,
    header: Option<String>,
    time: i128,
}

/// Creates stream `DUR` (file storage) and consumer `worker`, publishes
/// [`N`] messages with acks (every 3rd with a header and a Msg-Id), and
/// acks the first 10 through the consumer. Returns what was stored.
async fn populate(env: &Env) -> Vec<Stored> {
    let stream = env
        .stream(Config {
            name: "DUR".into(),
            subjects: vec!["dur.>".into()],
            storage: StorageType::File,
            max_messages: 10_000,
            ..Default::default()
        })
        .await;
    for i in 1..=N {
        let subject = format!("dur.{}", i % 4);
        let mut message = PublishMessage::build().payload(payload(i).into());
        if i % 3 == 0 {
            message = message
                .header("X-Index", i.to_string().as_str())
                .message_id(format!("id-{i}").as_str());
        }
        let ack = env.try_publish(&subject, message).await.expect("publish");
        assert_eq!(ack.sequence, i);
    }
    let consumer = pull_consumer(
        &stream,
        "worker",
        pull::Config {
            ack_wait: Duration::from_secs(30),
            ..Default::default()
        },
    )
    .await;
    let pulled = fetch(&consumer, 10).await;
    assert_eq!(pulled.stream_seqs(), (1..=10).collect::<Vec<_>>());
    for m in &pulled.messages {
        ack(m).await;
    }
    let mut stored = Vec::new();
    for seq in 1..=N {
        let m = stream.get_raw_message(seq).await.expect("stored message");
        stored.push(Stored {
            subject: m.subject.to_string(),
            payload: m.payload.to_vec(),
            header: header(Some(&m.headers), "X-Index").map(str::to_string),
            time: nanos(m.time),
        });
    }
    stored
}

/// Everything [`populate`] stored is back, byte for byte; the consumer
/// resumes after its last ack; the dedup window still knows old Msg-Ids.
async fn verify(env: &Env, before: &[Stored]) {
    let info = env.info("DUR").await;
    assert_eq!(info.config.subjects, vec!["dur.>".to_string()]);
    assert_eq!(info.config.max_messages, 10_000);
    assert_eq!(info.state.messages, N);
    assert_eq!(info.state.first_sequence, 1);
    assert_eq!(info.state.last_sequence, N);
    assert_eq!(info.state.consumer_count, 1);
    let stream = within("get stream", env.js.get_stream("DUR")).await.unwrap();
    for (i, expected) in before.iter().enumerate() {
        let seq = i as u64 + 1;
        let m = stream.get_raw_message(seq).await.expect("message after restart");
        assert_eq!(m.subject.as_str(), expected.subject, "seq {seq}");
        assert_eq!(m.payload.to_vec(), expected.payload, "seq {seq}");
        assert_eq!(
            header(Some(&m.headers), "X-Index").map(str::to_string),
            expected.header,
            "seq {seq}"
        );
        assert_eq!(nanos(m.time), expected.time, "seq {seq}");
    }

    // The durable resumes after its last ack: 11.. with nothing redelivered.
    let consumer: PullConsumer = within("get consumer", stream.get_consumer("worker"))
        .await
        .expect("consumer survives");
    assert_eq!(consumer.cached_info().ack_floor.stream_sequence, 10);
    let pulled = fetch(&consumer, 5).await;
    assert_eq!(pulled.stream_seqs(), [11, 12, 13, 14, 15]);
    assert!(pulled.messages.iter().all(|m| delivered(m) == 1));
    for (m, seq) in pulled.messages.iter().zip(11u64..) {
        assert_eq!(m.payload.to_vec(), before[seq as usize - 1].payload);
    }

    // The dedup window survived.
    let dup = env
        .try_publish(
            "dur.0",
            PublishMessage::build().payload("again".into()).message_id("id-3"),
        )
        .await
        .expect("duplicate publish after restart");
    assert!(dup.duplicate, "Msg-Id id-3 is still in the dedup window");
    assert_eq!(dup.sequence, 3);
    // New messages continue the sequence.
    assert_eq!(env.publish("dur.new", "next").await.sequence, N + 1);
}

#[tokio::test]
async fn everything_survives_a_graceful_restart() {
    let mut env = Env::start().await;
    let before = populate(&env).await;
    env.server.restart();
    env.reconnect().await;
    verify(&env, &before).await;
}

#[tokio::test]
async fn everything_survives_sigkill() {
    let mut env = Env::start().await;
    let before = populate(&env).await;
    // Acked publishes must be durable at once. Consumer acks may be written
    // a little later (nats-server flushes consumer state within ~100 ms), so
    // allow that before the crash.
    tokio::time::sleep(Duration::from_millis(500)).await;
    env.server.kill_9();
    env.server.restart();
    env.reconnect().await;
    verify(&env, &before).await;
}

#[tokio::test]
async fn acked_publishes_survive_an_immediate_sigkill() {
    let mut env = Env::start().await;
    env.stream(Config {
        name: "CRASH".into(),
        subjects: vec!["crash".into()],
        ..Default::default()
    })
    .await;
    for i in 1..=20u64 {
        env.publish("crash", payload(i)).await;
    }
    // No grace period: every PubAck'd message must be on disk.
    env.server.kill_9();
    env.server.restart();
    env.reconnect().await;
    let info = env.info("CRASH").await;
    assert_eq!(info.state.messages, 20);
    assert_eq!(info.state.last_sequence, 20);
    let stream = within("get stream", env.js.get_stream("CRASH")).await.unwrap();
    for i in 1..=20u64 {
        assert_eq!(
            stream.get_raw_message(i).await.unwrap().payload.to_vec(),
            payload(i)
        );
    }
}

#[tokio::test]
async fn restart_twice_and_keep_going() {
    let mut env = Env::start().await;
    env.stream(Config {
        name: "TWICE".into(),
        subjects: vec!["twice".into()],
        ..Default::default()
    })
    .await;
    env.publish("twice", "1").await;
    env.server.restart();
    env.reconnect().await;
    assert_eq!(env.publish("twice", "2").await.sequence, 2);
    env.server.kill_9();
    env.server.restart();
    env.reconnect().await;
    assert_eq!(env.publish("twice", "3").await.sequence, 3);
    let info = env.info("TWICE").await;
    assert_eq!((info.state.messages, info.state.first_sequence), (3, 1));
}

#[tokio::test]
async fn deleted_stream_stays_deleted_after_restart() {
    let mut env = Env::start().await;
    for name in ["KEEP", "DROP"] {
        env.stream(Config {
            name: name.into(),
            subjects: vec![name.to_lowercase()],
            ..Default::default()
        })
        .await;
        env.publish(&name.to_lowercase(), "x").await;
    }
    within("delete", env.js.delete_stream("DROP"))
        .await
        .expect("delete");
    env.server.restart();
    env.reconnect().await;
    let names: Vec<String> = {
        use futures_util::TryStreamExt as _;
        within("names", env.js.stream_names().try_collect())
            .await
            .unwrap()
    };
    assert_eq!(names, ["KEEP"]);
    assert_eq!(env.info("KEEP").await.state.messages, 1);
}
