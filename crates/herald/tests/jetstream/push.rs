//! Push consumers: durable delivery to a subject, queue groups, idle
//! heartbeats and flow control, and ordered consumers.

use std::collections::BTreeSet;
use std::time::Duration;

use async_nats::jetstream::consumer::{pull, push, DeliverPolicy, PushConsumer};
use async_nats::jetstream::stream::{Config, StorageType, Stream};
use async_nats::StatusCode;
use futures_util::StreamExt as _;

use crate::util::*;

async fn stream_with(n: u64) -> (Env, Stream) {
    let env = Env::start().await;
    let stream = env
        .stream(Config {
            name: "PUSH".into(),
            subjects: vec!["push.>".into()],
            ..Default::default()
        })
        .await;
    for i in 1..=n {
        env.publish(&format!("push.{i}"), format!("m{i}")).await;
    }
    (env, stream)
}

/// The next `n` JetStream messages of a push consumer.
async fn next_n(messages: &mut push::Messages, n: usize) -> Vec<async_nats::jetstream::Message> {
    let mut out = Vec::with_capacity(n);
    within("push messages", async {
        while out.len() < n {
            let message = messages
                .next()
                .await
                .expect("push messages ended")
                .expect("push message");
            out.push(message);
        }
    })
    .await;
    out
}

#[tokio::test]
async fn durable_push_delivers_everything_to_its_subject() {
    let (env, stream) = stream_with(5).await;
    let deliver = env.client.new_inbox();
    let consumer: PushConsumer = within(
        "create push consumer",
        stream.create_consumer(push::Config {
            durable_name: Some("pusher".into()),
            deliver_subject: deliver.clone(),
            ..Default::default()
        }),
    )
    .await
    .expect("create push consumer");
    let info = consumer.cached_info();
    assert_eq!(info.config.deliver_subject.as_deref(), Some(deliver.as_str()));
    assert_eq!(info.config.durable_name.as_deref(), Some("pusher"));

    let mut messages = consumer.messages().await.expect("subscribe");
    let got = next_n(&mut messages, 5).await;
    for (i, message) in got.iter().enumerate() {
        let seq = i as u64 + 1;
        assert_eq!(message.subject.as_str(), format!("push.{seq}"));
        assert_eq!(message.payload, format!("m{seq}").as_bytes());
        let meta = message.info().unwrap();
        assert_eq!(
            (meta.stream_sequence, meta.consumer_sequence, meta.delivered),
            (seq, seq, 1)
        );
        ack(message).await;
    }
    // Live messages follow.
    env.publish("push.live", "live").await;
    let live = next_n(&mut messages, 1).await;
    assert_eq!(live[0].payload, "live".as_bytes());
    ack(&live[0]).await;
    let info = consumer_info(&stream, "pusher").await;
    assert!(info.push_bound, "a subscriber is bound to the deliver subject");
    assert_eq!(info.num_ack_pending, 0);
    assert_eq!(info.delivered.stream_sequence, 6);
}

#[tokio::test]
async fn push_consumer_redelivers_unacked_messages() {
    let (env, stream) = stream_with(1).await;
    let deliver = env.client.new_inbox();
    let consumer: PushConsumer = within(
        "create",
        stream.create_consumer(push::Config {
            durable_name: Some("redeliver".into()),
            deliver_subject: deliver,
            ack_wait: Duration::from_millis(300),
            ..Default::default()
        }),
    )
    .await
    .unwrap();
    let mut messages = consumer.messages().await.unwrap();
    let first = next_n(&mut messages, 1).await;
    assert_eq!(delivered(&first[0]), 1);
    let second = next_n(&mut messages, 1).await;
    assert_eq!(stream_seq(&second[0]), 1);
    assert_eq!(delivered(&second[0]), 2);
    ack(&second[0]).await;
}

#[tokio::test]
async fn deliver_group_splits_messages_between_subscribers() {
    let (env, stream) = stream_with(0).await;
    let deliver = env.client.new_inbox();
    let consumer: PushConsumer = within(
        "create queue push consumer",
        stream.create_consumer(push::Config {
            durable_name: Some("workers".into()),
            deliver_subject: deliver.clone(),
            deliver_group: Some("workers".into()),
            ..Default::default()
        }),
    )
    .await
    .expect("create push consumer with deliver group");
    assert_eq!(
        consumer.cached_info().config.deliver_group.as_deref(),
        Some("workers")
    );
    // Two members of the queue group, on two connections.
    let other_client = connect(&env.server.url()).await;
    let other_js = async_nats::jetstream::new(other_client);
    let other: PushConsumer = within(
        "get consumer",
        other_js.get_consumer_from_stream("workers", "PUSH"),
    )
    .await
    .expect("get consumer");
    let mut first = consumer.messages().await.expect("first member");
    let mut second = other.messages().await.expect("second member");
    env.client.flush().await.unwrap();

    const N: u64 = 40;
    for i in 1..=N {
        env.publish(&format!("push.{i}"), format!("m{i}")).await;
    }
    let mut from_first = Vec::new();
    let mut from_second = Vec::new();
    within("queue deliveries", async {
        while (from_first.len() + from_second.len()) < N as usize {
            tokio::select! {
                Some(m) = first.next() => {
                    let m = m.expect("message");
                    ack(&m).await;
                    from_first.push(stream_seq(&m));
                }
                Some(m) = second.next() => {
                    let m = m.expect("message");
                    ack(&m).await;
                    from_second.push(stream_seq(&m));
                }
            }
        }
    })
    .await;
    assert!(
        !from_first.is_empty() && !from_second.is_empty(),
        "{from_first:?} / {from_second:?}"
    );
    let all: BTreeSet<u64> = from_first.iter().chain(&from_second).copied().collect();
    assert_eq!(all.len(), N as usize, "each message exactly once");
    assert_eq!(all, (1..=N).collect::<BTreeSet<_>>());
}

#[tokio::test]
async fn idle_heartbeats_and_flow_control() {
    let env = Env::start().await;
    let stream = env
        .stream(Config {
            name: "FC".into(),
            subjects: vec!["fc".into()],
            storage: StorageType::Memory,
            ..Default::default()
        })
        .await;
    // 64 × 64 KiB = 4 MiB: well past any flow-control window.
    const N: usize = 64;
    let payload = vec![b'f'; 64 * 1024];
    for _ in 0..N {
        env.publish("fc", payload.clone()).await;
    }
    let deliver = env.client.new_inbox();
    // A raw subscription, to see the status messages the client library
    // would hide; flow-control requests are answered by hand.
    let mut raw = env.client.subscribe(deliver.clone()).await.expect("subscribe");
    env.client.flush().await.unwrap();
    let _consumer: PushConsumer = within(
        "create",
        stream.create_consumer(push::Config {
            durable_name: Some("fc".into()),
            deliver_subject: deliver,
            idle_heartbeat: Duration::from_millis(200),
            flow_control: true,
            ack_policy: async_nats::jetstream::consumer::AckPolicy::None,
            ..Default::default()
        }),
    )
    .await
    .expect("create push consumer with heartbeats and flow control");

    let mut data = 0usize;
    let mut flow_control_requests = 0usize;
    let mut heartbeat = None;
    within("deliveries, flow control and an idle heartbeat", async {
        while data < N || heartbeat.is_none() {
            let message = raw.next().await.expect("subscription ended");
            match message.status {
                None => {
                    assert_eq!(message.payload.len(), payload.len());
                    data += 1;
                }
                Some(StatusCode::IDLE_HEARTBEAT) => match message.reply.clone() {
                    // "100 FlowControl Request": answer it.
                    Some(reply) => {
                        flow_control_requests += 1;
                        env.client.publish(reply, "".into()).await.unwrap();
                    }
                    // "100 Idle Heartbeat": only once everything was delivered.
                    None if data == N => heartbeat = Some(message),
                    None => {}
                },
                Some(other) => panic!("unexpected status {other} on the deliver subject"),
            }
        }
    })
    .await;
    assert!(
        flow_control_requests > 0,
        "4 MiB went by without a flow-control request"
    );
    let heartbeat = heartbeat.unwrap();
    assert!(heartbeat.payload.is_empty());
    let headers = heartbeat.headers.as_ref();
    assert_eq!(
        header(headers, "Nats-Last-Consumer"),
        Some(N.to_string().as_str())
    );
    assert_eq!(header(headers, "Nats-Last-Stream"), Some(N.to_string().as_str()));

    // After the heartbeat, new messages still flow.
    env.publish("fc", "after").await;
    let next = within("message after heartbeat", async {
        loop {
            let m = raw.next().await.expect("subscription ended");
            if m.status.is_none() {
                return m;
            }
        }
    })
    .await;
    assert_eq!(next.payload, "after".as_bytes());
}

#[tokio::test]
async fn push_with_heartbeat_through_the_client() {
    let (env, stream) = stream_with(10).await;
    let consumer: PushConsumer = within(
        "create",
        stream.create_consumer(push::Config {
            durable_name: Some("hb".into()),
            deliver_subject: env.client.new_inbox(),
            idle_heartbeat: Duration::from_millis(200),
            flow_control: true,
            ..Default::default()
        }),
    )
    .await
    .unwrap();
    let mut messages = consumer.messages().await.unwrap();
    let got = next_n(&mut messages, 10).await;
    for m in &got {
        ack(m).await;
    }
    // Idle for several heartbeat intervals: the stream stays healthy (a
    // missing heartbeat would surface as an error item), and new messages
    // still arrive.
    tokio::time::sleep(Duration::from_millis(700)).await;
    env.publish("push.late", "late").await;
    let late = next_n(&mut messages, 1).await;
    assert_eq!(late[0].payload, "late".as_bytes());
}

#[tokio::test]
async fn ordered_push_consumer_receives_everything_in_order() {
    let (env, stream) = stream_with(20).await;
    let consumer = within(
        "create ordered push",
        stream.create_consumer(push::OrderedConfig {
            deliver_subject: env.client.new_inbox(),
            deliver_policy: DeliverPolicy::All,
            ..Default::default()
        }),
    )
    .await
    .expect("create ordered push consumer");
    let mut messages = consumer.messages().await.expect("ordered messages");
    let mut seqs = Vec::new();
    within("ordered push messages", async {
        while seqs.len() < 20 {
            let m = messages.next().await.expect("ended").expect("message");
            let info = m.info().unwrap();
            assert_eq!(info.consumer_sequence, seqs.len() as u64 + 1);
            assert_eq!(m.payload, format!("m{}", info.stream_sequence).as_bytes());
            seqs.push(info.stream_sequence);
        }
    })
    .await;
    assert_eq!(seqs, (1..=20).collect::<Vec<_>>());
}

#[tokio::test]
async fn ordered_pull_consumer_receives_everything_in_order() {
    let (env, stream) = stream_with(20).await;
    let consumer = within(
        "create ordered pull",
        stream.create_consumer(pull::OrderedConfig {
            filter_subject: "push.>".into(),
            ..Default::default()
        }),
    )
    .await
    .expect("create ordered pull consumer");
    let mut messages = consumer.messages().await.expect("ordered messages");
    let mut seqs = Vec::new();
    within("ordered pull messages", async {
        while seqs.len() < 20 {
            let m = messages.next().await.expect("ended").expect("message");
            seqs.push(stream_seq(&m));
        }
    })
    .await;
    assert_eq!(seqs, (1..=20).collect::<Vec<_>>());
    env.publish("push.more", "more").await;
    let m = within("live ordered message", messages.next())
        .await
        .expect("ended")
        .expect("message");
    assert_eq!(stream_seq(&m), 21);
}
