//! Atomic batch publish (ADR-50, nats-server 2.12+), with the raw headers
//! every client sends: `Nats-Batch-Id`, `Nats-Batch-Sequence`, and
//! `Nats-Batch-Commit: 1` on the last message. The batch is stored whole
//! with one PubAck, or not at all.

use async_nats::jetstream::stream::Config;
use async_nats::HeaderMap;
use bytes::Bytes;

use crate::util::*;

async fn atomic_stream(env: &Env, name: &str, allow: bool) {
    env.stream(Config {
        name: name.into(),
        subjects: vec![format!("{}.>", name.to_lowercase())],
        allow_atomic_publish: allow,
        ..Default::default()
    })
    .await;
}

fn batch_headers(id: &str, seq: u64, commit: bool, extra: &[(&str, &str)]) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert("Nats-Batch-Id", id);
    headers.insert("Nats-Batch-Sequence", seq.to_string().as_str());
    if commit {
        headers.insert("Nats-Batch-Commit", "1");
    }
    for (name, value) in extra {
        headers.insert(*name, *value);
    }
    headers
}

/// Sends one batch message as a request; the reply's JSON (null for an
/// empty confirmation).
async fn send(env: &Env, subject: &str, headers: HeaderMap, payload: &str) -> serde_json::Value {
    let reply = within(
        "batch message",
        env.client
            .request_with_headers(subject.to_string(), headers, Bytes::from(payload.to_string())),
    )
    .await
    .expect("reply");
    if reply.payload.is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::from_slice(&reply.payload).expect("JSON reply")
    }
}

#[tokio::test]
async fn batch_is_stored_whole_with_one_puback() {
    let env = Env::start().await;
    atomic_stream(&env, "ATOM", true).await;
    env.publish("atom.before", "x").await;
    assert_eq!(
        send(&env, "atom.a", batch_headers("b1", 1, false, &[]), "one").await,
        serde_json::Value::Null
    );
    // Messages in the middle may go without a reply subject.
    within(
        "publish",
        env.client
            .publish_with_headers("atom.b", batch_headers("b1", 2, false, &[]), "two".into()),
    )
    .await
    .unwrap();
    assert_eq!(
        env.info("ATOM").await.state.messages,
        1,
        "nothing stored before the commit"
    );
    let ack = send(&env, "atom.a", batch_headers("b1", 3, true, &[]), "three").await;
    assert_eq!(ack["stream"], "ATOM", "{ack}");
    assert_eq!(ack["seq"], 4, "{ack}");
    assert_eq!(ack["batch"], "b1", "{ack}");
    assert_eq!(ack["count"], 3, "{ack}");
    let stream = within("get stream", env.js.get_stream("ATOM")).await.unwrap();
    for (seq, payload) in [(2, "one"), (3, "two"), (4, "three")] {
        let msg = within("get", stream.get_raw_message(seq)).await.expect("stored");
        assert_eq!(msg.payload, payload.as_bytes());
    }
}

#[tokio::test]
async fn batch_with_a_failing_expectation_stores_nothing() {
    let env = Env::start().await;
    atomic_stream(&env, "ATOMX", true).await;
    env.publish("atomx.order", "created").await;
    let stale = [("Nats-Expected-Last-Subject-Sequence", "5")];
    assert_eq!(
        send(&env, "atomx.order", batch_headers("b2", 1, false, &stale), "paid").await,
        serde_json::Value::Null
    );
    let reply = send(&env, "atomx.order", batch_headers("b2", 2, true, &[]), "shipped").await;
    assert_eq!(reply["error"]["err_code"], 10071, "{reply}");
    let info = env.info("ATOMX").await;
    assert_eq!(
        (info.state.messages, info.state.last_sequence),
        (1, 1),
        "nothing of the batch"
    );
    // The right expectation goes through.
    let right = [("Nats-Expected-Last-Subject-Sequence", "1")];
    send(&env, "atomx.order", batch_headers("b3", 1, false, &right), "paid").await;
    let ack = send(&env, "atomx.order", batch_headers("b3", 2, true, &[]), "shipped").await;
    assert_eq!(
        (ack["seq"].as_u64(), ack["count"].as_u64()),
        (Some(3), Some(2)),
        "{ack}"
    );
}

#[tokio::test]
async fn batches_need_allow_atomic_and_no_gaps() {
    let env = Env::start().await;
    atomic_stream(&env, "PLAIN", false).await;
    let reply = send(&env, "plain.a", batch_headers("b4", 1, true, &[]), "x").await;
    assert_eq!(reply["error"]["err_code"], 10174, "{reply}");

    atomic_stream(&env, "GAPPY", true).await;
    send(&env, "gappy.a", batch_headers("b5", 1, false, &[]), "one").await;
    let reply = send(&env, "gappy.a", batch_headers("b5", 3, true, &[]), "three").await;
    assert_eq!(reply["error"]["err_code"], 10176, "{reply}");
    assert_eq!(env.info("GAPPY").await.state.messages, 0);
}
