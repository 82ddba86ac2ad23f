//! Crash safety: the server is killed with SIGKILL while publishers and a
//! consumer run, then restarted on the same data directory, over and over.
//! After every restart: every acknowledged publish is stored exactly once
//! with identical bytes, the consumer resumes after its last confirmed ack,
//! and the deduplication window still knows every acknowledged Msg-Id.
//!
//! Herald only: the stream asks for `sync: always` through Herald's stream
//! metadata (`herald.sync`); nats-server has no per-stream sync setting.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::consumer::pull;
use async_nats::jetstream::message::PublishMessage as Publish;
use async_nats::jetstream::stream::Config;
use async_nats::jetstream::AckKind;
use bytes::Bytes;
use futures_util::StreamExt as _;

use crate::server::is_nats_server;
use crate::util::*;

/// Kill/restart cycles in the test; `HERALD_CRASH_CYCLES` raises it (the
/// soak script, `scripts/soak.sh`, runs hundreds).
const CYCLES_DEFAULT: usize = 20;

fn cycles() -> usize {
    std::env::var("HERALD_CRASH_CYCLES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(CYCLES_DEFAULT)
        .max(CYCLES_DEFAULT)
}
/// Concurrent publishers per cycle.
const PUBLISHERS: usize = 4;

/// What the publishers got acknowledged: Msg-Id → (sequence, subject, payload).
type Acked = Arc<Mutex<BTreeMap<String, (u64, String, Bytes)>>>;

/// A payload that differs per message and covers every byte value.
fn payload(cycle: usize, publisher: usize, n: usize) -> Bytes {
    let seed = (cycle * 1_000_003 + publisher * 7_919 + n) as u32;
    let len = 16 + (seed % 300) as usize;
    (0..len)
        .map(|i| (seed.wrapping_mul(2_654_435_761).wrapping_add(i as u32 * 40_503) >> 13) as u8)
        .collect::<Vec<u8>>()
        .into()
}

#[tokio::test]
async fn acked_messages_survive_repeated_sigkill_exactly_once() {
    if is_nats_server() {
        eprintln!("skipped: sync always per stream is a herald extension");
        return;
    }
    let mut env = Env::start().await;
    env.stream(Config {
        name: "CRASH".into(),
        subjects: vec!["crash.>".into()],
        duplicate_window: Duration::from_secs(600),
        metadata: HashMap::from([("herald.sync".to_string(), "always".to_string())]),
        ..Default::default()
    })
    .await;
    let acked: Acked = Arc::default();
    // Stream sequences whose ack the server confirmed (double ack).
    let consumed: Arc<Mutex<BTreeSet<u64>>> = Arc::default();

    let cycles = cycles();
    for cycle in 0..cycles {
        let stream = within("get stream", env.js.get_stream("CRASH"))
            .await
            .expect("stream");
        let consumer = pull_consumer(
            &stream,
            "WORKER",
            pull::Config {
                ack_wait: Duration::from_secs(30),
                ..Default::default()
            },
        )
        .await;
        let mut tasks = Vec::new();
        for publisher in 0..PUBLISHERS {
            let js = env.js.clone();
            let acked = acked.clone();
            tasks.push(tokio::spawn(async move {
                for n in 0.. {
                    let id = format!("c{cycle}-p{publisher}-{n}");
                    let subject = format!("crash.p{publisher}");
                    let data = payload(cycle, publisher, n);
                    let publish = Publish::build().message_id(id.as_str()).payload(data.clone());
                    let Ok(ack) = js.send_publish(subject.clone(), publish).await else {
                        return;
                    };
                    let Ok(Ok(ack)) = tokio::time::timeout(Duration::from_secs(2), ack).await else {
                        return;
                    };
                    assert!(!ack.duplicate, "{id} is new");
                    acked.lock().unwrap().insert(id, (ack.sequence, subject, data));
                }
            }));
        }
        let consumed_now = consumed.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                let Ok(mut batch) = consumer
                    .fetch()
                    .max_messages(20)
                    .expires(Duration::from_millis(200))
                    .messages()
                    .await
                else {
                    return;
                };
                while let Some(Ok(message)) = batch.next().await {
                    let seq = stream_seq(&message);
                    if message.double_ack_with(AckKind::Ack).await.is_err() {
                        return;
                    }
                    consumed_now.lock().unwrap().insert(seq);
                }
            }
        }));
        tokio::time::sleep(Duration::from_millis(100 + (cycle as u64 * 37) % 150)).await;
        env.server.kill_9();
        // Whatever was in flight at the kill is either acked (and recorded)
        // or not; the tasks have nothing more to tell.
        for task in tasks {
            task.abort();
        }
        env.server.restart();
        env.reconnect().await;
        verify(&env, &acked, &consumed, cycle).await;
    }
    assert!(
        acked.lock().unwrap().len() > cycles * PUBLISHERS,
        "the publishers got acks in most cycles"
    );
}

/// Checks the invariants after a restart.
async fn verify(env: &Env, acked: &Acked, consumed: &Arc<Mutex<BTreeSet<u64>>>, cycle: usize) {
    let acked = acked.lock().unwrap().clone();
    let stream = within("get stream", env.js.get_stream("CRASH"))
        .await
        .expect("stream after restart");
    // Read everything back in one pass through an ephemeral consumer.
    let info = env.info("CRASH").await;
    let reader = within(
        "reader",
        stream.create_consumer(pull::Config {
            ack_policy: async_nats::jetstream::consumer::AckPolicy::None,
            ..Default::default()
        }),
    )
    .await
    .expect("reader consumer");
    let mut stored: HashMap<String, (u64, String, Bytes)> = HashMap::new();
    let mut read = 0;
    while read < info.state.messages {
        let batch = pull(&reader, 1000, Duration::from_secs(2)).await;
        assert!(
            !batch.messages.is_empty(),
            "cycle {cycle}: read {read} of {}",
            info.state.messages
        );
        for message in &batch.messages {
            read += 1;
            let id = header(message.headers.as_ref(), "Nats-Msg-Id")
                .expect("every message has an id")
                .to_owned();
            let entry = (
                stream_seq(message),
                message.subject.to_string(),
                message.payload.clone(),
            );
            // Exactly once: no Msg-Id is stored twice.
            assert!(
                stored.insert(id.clone(), entry).is_none(),
                "cycle {cycle}: {id} stored twice"
            );
        }
    }
    // Every acknowledged message is there, byte for byte.
    for (id, expected) in &acked {
        let found = stored.get(id);
        assert_eq!(
            found,
            Some(expected),
            "cycle {cycle}: acked {id} missing or changed"
        );
    }
    // The dedup window still knows an old acknowledged id.
    if let Some((id, (seq, subject, data))) = acked.iter().next() {
        let publish = Publish::build().message_id(id.as_str()).payload(data.clone());
        let ack = within("republish", env.js.send_publish(subject.clone(), publish))
            .await
            .expect("send")
            .await
            .expect("ack");
        assert!(ack.duplicate, "cycle {cycle}: {id} not recognised as a duplicate");
        assert_eq!(ack.sequence, *seq);
    }
    // The consumer resumes after its confirmed acks: none comes back.
    let consumer = pull_consumer(&stream, "WORKER", pull::Config::default()).await;
    let pulled = pull(&consumer, 50, Duration::from_millis(300)).await;
    let consumed = consumed.lock().unwrap().clone();
    for seq in pulled.stream_seqs() {
        assert!(
            !consumed.contains(&seq),
            "cycle {cycle}: confirmed ack of {seq} was lost"
        );
    }
    for message in &pulled.messages {
        let _ = message.ack_with(AckKind::Nak(None)).await;
    }
}
