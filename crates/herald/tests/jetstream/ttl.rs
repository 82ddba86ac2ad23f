//! Per-message TTLs (`Nats-TTL`, nats-server 2.11+): a message published
//! with a TTL to a stream that allows them is removed once it passes, also
//! across a restart; streams that do not allow them refuse the header.

use std::future::IntoFuture as _;
use std::time::Duration;

use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::stream::Config;

use crate::util::*;

fn ttl_stream(name: &str, allow: bool) -> Config {
    Config {
        name: name.into(),
        subjects: vec![format!("{}.>", name.to_lowercase())],
        allow_message_ttl: allow,
        ..Default::default()
    }
}

async fn publish_ttl(
    env: &Env,
    subject: &str,
    ttl: Duration,
) -> Result<u64, async_nats::jetstream::context::PublishError> {
    let message = PublishMessage::build().payload("short-lived".into()).ttl(ttl);
    let ack = within("publish", env.js.send_publish(subject.to_string(), message)).await?;
    within("ack", ack.into_future()).await.map(|a| a.sequence)
}

#[tokio::test]
async fn message_with_a_ttl_is_removed_once_it_passes() {
    let env = Env::start().await;
    env.stream(ttl_stream("TTL", true)).await;
    publish_ttl(&env, "ttl.a", Duration::from_secs(1))
        .await
        .expect("ttl publish");
    env.publish("ttl.b", "kept").await;
    assert_eq!(env.info("TTL").await.state.messages, 2);
    eventually("the message past its TTL is gone", || async {
        env.info("TTL").await.state.messages == 1
    })
    .await;
    let stream = within("get stream", env.js.get_stream("TTL"))
        .await
        .expect("stream");
    assert!(stream.get_raw_message(1).await.is_err(), "seq 1 expired");
    assert_eq!(
        stream.get_raw_message(2).await.expect("kept").payload,
        "kept".as_bytes()
    );
}

#[tokio::test]
async fn ttls_are_kept_across_a_restart() {
    let mut env = Env::start().await;
    env.stream(ttl_stream("TTLR", true)).await;
    publish_ttl(&env, "ttlr.a", Duration::from_secs(2))
        .await
        .expect("ttl publish");
    env.server.restart();
    env.reconnect().await;
    assert_eq!(env.info("TTLR").await.state.messages, 1, "not expired yet");
    eventually("expired after the restart", || async {
        env.info("TTLR").await.state.messages == 0
    })
    .await;
}

#[tokio::test]
async fn ttl_header_is_refused_unless_the_stream_allows_it() {
    let env = Env::start().await;
    env.stream(ttl_stream("NOTTL", false)).await;
    let err = publish_ttl(&env, "nottl.a", Duration::from_secs(5))
        .await
        .expect_err("ttl disabled");
    assert_eq!(err_code(&err), 10166, "{err:?}");
    assert_eq!(env.info("NOTTL").await.state.messages, 0);
}
