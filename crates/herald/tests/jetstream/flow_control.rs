//! Push flow control stalls: a flow-controlled push consumer stops
//! delivering until the client answers its flow control request, says so
//! in its idle heartbeats (`Nats-Consumer-Stalled`), and resumes on the
//! answer. Herald only (nats-server's request window differs).

use std::time::Duration;

use async_nats::jetstream::consumer::{push, PushConsumer};
use async_nats::jetstream::stream::{Config, StorageType};
use async_nats::StatusCode;
use futures_util::StreamExt as _;

use crate::server::is_nats_server;
use crate::util::*;

#[tokio::test]
async fn unanswered_flow_control_request_stalls_the_push_consumer() {
    if is_nats_server() {
        eprintln!("skipped: the flow control window is herald's");
        return;
    }
    let env = Env::start().await;
    let stream = env
        .stream(Config {
            name: "STALL".into(),
            subjects: vec!["stall".into()],
            storage: StorageType::Memory,
            ..Default::default()
        })
        .await;
    // 64 × 64 KiB = 4 MiB; a request goes out every 1 MiB.
    const N: usize = 64;
    for _ in 0..N {
        env.publish("stall", vec![b's'; 64 * 1024]).await;
    }
    let deliver = env.client.new_inbox();
    let mut raw = env.client.subscribe(deliver.clone()).await.expect("subscribe");
    env.client.flush().await.unwrap();
    let _consumer: PushConsumer = within(
        "create",
        stream.create_consumer(push::Config {
            durable_name: Some("stall".into()),
            deliver_subject: deliver,
            idle_heartbeat: Duration::from_millis(200),
            flow_control: true,
            ack_policy: async_nats::jetstream::consumer::AckPolicy::None,
            ..Default::default()
        }),
    )
    .await
    .expect("create");

    // Read until the first flow control request; do not answer it.
    let mut data = 0;
    let request = within("a flow control request", async {
        loop {
            let message = raw.next().await.expect("subscription");
            match (message.status, message.reply) {
                (None, _) => data += 1,
                (Some(StatusCode::IDLE_HEARTBEAT), Some(reply)) => return reply,
                _ => {}
            }
        }
    })
    .await;
    assert!(data < N, "stalled before the end ({data} delivered)");
    // While stalled: heartbeats name the request, no data arrives.
    within("a stalled heartbeat", async {
        loop {
            let message = raw.next().await.expect("subscription");
            assert!(message.status.is_some(), "data delivered while stalled");
            let stalled = message
                .headers
                .as_ref()
                .and_then(|h| h.get("Nats-Consumer-Stalled"))
                .map(|v| v.to_string());
            if stalled.as_deref() == Some(request.as_str()) {
                return;
            }
        }
    })
    .await;
    // Answering lets it go on; later requests are answered at once.
    env.client.publish(request, "".into()).await.unwrap();
    within("the rest", async {
        while data < N {
            let message = raw.next().await.expect("subscription");
            match (message.status, message.reply) {
                (None, _) => data += 1,
                (Some(StatusCode::IDLE_HEARTBEAT), Some(reply)) => {
                    env.client.publish(reply, "".into()).await.unwrap()
                }
                _ => {}
            }
        }
    })
    .await;
}
