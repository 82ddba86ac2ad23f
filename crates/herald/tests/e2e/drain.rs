//! Draining with `async-nats`: messages already sent are still delivered,
//! then the subscription (or the whole client) ends.

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscription_drain_delivers_messages_published_before_then_ends_the_stream() {
    const N: usize = 100;
    let server = TestServer::start();
    let subscriber = connect(&server.url()).await;
    let publisher = connect(&server.url()).await;
    let mut sub = subscribe(&subscriber, "drain.sub").await;
    let mut other = subscribe(&subscriber, "drain.other").await;

    for i in 0..N {
        publisher
            .publish("drain.sub", format!("{i}").into())
            .await
            .expect("publish");
    }
    // Every message has been routed and reached the subscribing client.
    // (async-nats ends a drained stream at its next read, so a message still
    // on the wire at that moment would be its loss, not the server's.)
    sync(&publisher).await;
    sync(&subscriber).await;
    sub.drain().await.expect("drain");

    let got = next_n(&mut sub, N).await;
    for (i, m) in got.iter().enumerate() {
        assert_eq!(&m.payload[..], format!("{i}").as_bytes(), "message {i}");
    }
    expect_end(&mut sub).await;

    // The server dropped the drained subscription; the other one still works.
    publisher
        .publish("drain.sub", "late".into())
        .await
        .expect("publish");
    publisher
        .publish("drain.other", "still subscribed".into())
        .await
        .expect("publish");
    publisher.flush().await.expect("flush");
    assert_eq!(&next(&mut other).await.payload[..], b"still subscribed");
    eventually("only the undrained subscription is left", || {
        server.varz_u64("subscriptions") == 1
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_drain_delivers_pending_messages_ends_every_subscription_and_disconnects() {
    const N: usize = 50;
    let server = TestServer::start();
    let subscriber = connect(&server.url()).await;
    let publisher = connect(&server.url()).await;
    let mut a = subscribe(&subscriber, "drain.a").await;
    let mut b = subscribe(&subscriber, "drain.b").await;
    eventually("two clients connected", || server.varz_u64("connections") == 2);

    for i in 0..N {
        publisher
            .publish("drain.a", format!("a{i}").into())
            .await
            .expect("publish");
        publisher
            .publish("drain.b", format!("b{i}").into())
            .await
            .expect("publish");
    }
    sync(&publisher).await;
    sync(&subscriber).await;
    subscriber.drain().await.expect("client drain");

    for (name, sub) in [("a", &mut a), ("b", &mut b)] {
        let got = next_n(sub, N).await;
        for (i, m) in got.iter().enumerate() {
            assert_eq!(&m.payload[..], format!("{name}{i}").as_bytes());
        }
        expect_end(sub).await;
    }
    eventually(
        "the drained client disconnected and its subscriptions are gone",
        || {
            let varz = server.varz();
            varz["connections"] == 1 && varz["subscriptions"] == 0
        },
    );
    sync(&publisher).await;
}
