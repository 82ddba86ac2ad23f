//! Atomic batches through the batch publisher NATS clients use
//! (`jetstream-extra`, on async-nats 0.48): the commit's PubAck, and a
//! failing expectation refusing the whole batch.

use async_nats_048 as nats;
use jetstream_extra::batch_publish::BatchPublishExt;

use crate::util::*;

async fn connect_048(env: &Env) -> nats::jetstream::Context {
    let client = within("connect", nats::connect(env.server.url()))
        .await
        .expect("connect");
    nats::jetstream::new(client)
}

#[tokio::test]
async fn jetstream_extra_commits_a_batch_atomically() {
    let env = Env::start().await;
    let js = connect_048(&env).await;
    within(
        "create",
        js.create_stream(nats::jetstream::stream::Config {
            name: "EXTRA".into(),
            subjects: vec!["extra.>".into()],
            allow_atomic_publish: true,
            ..Default::default()
        }),
    )
    .await
    .expect("stream");
    let mut batch = js.batch_publish().build();
    for i in 0..9 {
        within(
            "add",
            batch.add(format!("extra.{}", i % 3), format!("m{i}").into()),
        )
        .await
        .expect("add");
    }
    let ack = within("commit", batch.commit("extra.done", "last".into()))
        .await
        .expect("commit");
    assert_eq!(
        (ack.stream.as_str(), ack.sequence, ack.batch_size),
        ("EXTRA", 10, 10)
    );
    assert_eq!(env.info("EXTRA").await.state.messages, 10);

    // A stale expectation on the first message refuses everything.
    let mut batch = js.batch_publish().build();
    let mut headers = nats::HeaderMap::new();
    headers.insert("Nats-Expected-Last-Subject-Sequence", "1");
    within(
        "add",
        batch.add_message(nats::jetstream::message::OutboundMessage {
            subject: "extra.0".into(),
            payload: "stale".into(),
            headers: Some(headers),
        }),
    )
    .await
    .expect("add");
    let refused = within("commit", batch.commit("extra.done", "last".into())).await;
    assert!(refused.is_err(), "{refused:?}");
    assert_eq!(
        env.info("EXTRA").await.state.messages,
        10,
        "nothing of the refused batch"
    );
}
