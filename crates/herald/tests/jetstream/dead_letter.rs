//! Herald extension: a consumer whose metadata names a dead-letter subject
//! republishes a message there once max_deliver is exhausted.

use std::collections::HashMap;
use std::time::Duration;

use async_nats::jetstream::consumer::pull;
use async_nats::jetstream::stream::Config;
use async_nats::jetstream::AckKind;

use crate::server::is_nats_server;
use crate::util::*;

#[tokio::test]
async fn exhausted_message_goes_to_the_dead_letter_subject() {
    if is_nats_server() {
        eprintln!("skipped: dead-letter subjects are a herald extension nats-server does not have");
        return;
    }
    let env = Env::start().await;
    let orders = env
        .stream(Config {
            name: "ORDERS".into(),
            subjects: vec!["orders.>".into()],
            ..Default::default()
        })
        .await;
    env.stream(Config {
        name: "DLQ".into(),
        subjects: vec!["dlq.>".into()],
        ..Default::default()
    })
    .await;
    let consumer = pull_consumer(
        &orders,
        "C",
        pull::Config {
            max_deliver: 2,
            ack_wait: Duration::from_millis(300),
            metadata: HashMap::from([("herald.dead_letter_subject".to_string(), "dlq.orders".to_string())]),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(
        consumer
            .cached_info()
            .config
            .metadata
            .get("herald.dead_letter_subject")
            .map(String::as_str),
        Some("dlq.orders")
    );
    env.publish_with_headers("orders.new", headers(&[("X-Trace", "abc")]), "order-1")
        .await;

    let first = pull(&consumer, 1, Duration::from_secs(2)).await;
    assert_eq!(delivered(&first.messages[0]), 1);
    within("nak 1", first.messages[0].double_ack_with(AckKind::Nak(None)))
        .await
        .expect("nak");
    let second = pull(&consumer, 1, Duration::from_secs(3)).await;
    assert_eq!(second.stream_seqs(), [1]);
    assert_eq!(delivered(&second.messages[0]), 2);
    within("nak 2", second.messages[0].double_ack_with(AckKind::Nak(None)))
        .await
        .expect("nak");
    // No third delivery.
    let third = pull(&consumer, 1, Duration::from_millis(800)).await;
    assert!(third.messages.is_empty(), "{:?}", third.stream_seqs());

    eventually("the message reaches the dead-letter stream", || async {
        env.info("DLQ").await.state.messages == 1
    })
    .await;
    let dlq = within("get DLQ", env.js.get_stream("DLQ")).await.unwrap();
    let dead = dlq.get_raw_message(1).await.expect("dead letter");
    assert_eq!(dead.subject.as_str(), "dlq.orders");
    assert_eq!(dead.payload, "order-1".as_bytes());
    assert_eq!(
        header(Some(&dead.headers), "Herald-Original-Subject"),
        Some("orders.new")
    );
    assert_eq!(
        header(Some(&dead.headers), "X-Trace"),
        Some("abc"),
        "original headers kept"
    );
    assert_eq!(header(Some(&dead.headers), "Herald-Deliveries"), Some("2"));
}
