//! Unsubscribing, flush, drain, close, limits and connection errors.

use std::time::Duration;

use herald_client::{Client, ConnectionState, Error};

use crate::support::{free_port, server, within};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsubscribe_after_ends_the_stream_after_n() {
    let server = server!();
    let client = Client::connect(&server.url()).await.unwrap();
    let mut sub = client.subscribe("few").await.unwrap();
    sub.unsubscribe_after(3);
    client.flush().await.unwrap();
    for i in 0..10 {
        client.publish("few", i.to_string()).unwrap();
    }
    let mut got = Vec::new();
    while let Some(m) = within("stream end", sub.next()).await {
        got.push(m.payload);
    }
    assert_eq!(got, vec!["0", "1", "2"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsubscribe_and_drop_stop_delivery() {
    let server = server!();
    let client = Client::connect(&server.url()).await.unwrap();
    let gone = client.subscribe("u.gone").await.unwrap();
    let dropped = client.subscribe("u.dropped").await.unwrap();
    let mut watcher = client.subscribe("u.*").await.unwrap();
    client.flush().await.unwrap();
    gone.unsubscribe();
    drop(dropped);
    client.flush().await.unwrap();
    // The server no longer has the two subscriptions (dropping one sent
    // UNSUB); the watcher still gets both messages.
    client.publish("u.gone", "1").unwrap();
    client.publish("u.dropped", "2").unwrap();
    client.flush().await.unwrap();
    assert_eq!(&within("1", watcher.next()).await.unwrap().payload[..], b"1");
    assert_eq!(&within("2", watcher.next()).await.unwrap().payload[..], b"2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flush_confirms_a_subscription_before_another_client_publishes() {
    let server = server!();
    let client = Client::connect(&server.url()).await.unwrap();
    let publisher = Client::connect(&server.url()).await.unwrap();
    for round in 0..20 {
        let subject = format!("flush.{round}");
        let mut sub = client.subscribe(&subject).await.unwrap();
        client.flush().await.unwrap();
        publisher.publish(&subject, "x").unwrap();
        publisher.flush().await.unwrap();
        within("message", sub.next()).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_delivers_what_was_sent_then_closes() {
    let server = server!();
    let client = Client::connect(&server.url()).await.unwrap();
    let publisher = Client::connect(&server.url()).await.unwrap();
    let mut sub = client.subscribe("drain").await.unwrap();
    client.flush().await.unwrap();
    for i in 0..2000 {
        publisher.publish("drain", i.to_string()).unwrap();
    }
    publisher.flush().await.unwrap();
    within("drain", client.drain()).await.unwrap();
    let mut n = 0;
    while let Some(m) = within("drained stream", sub.next()).await {
        assert_eq!(m.payload, n.to_string().as_bytes());
        n += 1;
    }
    assert_eq!(n, 2000);
    assert_eq!(client.connection_state(), ConnectionState::Closed);
    assert!(matches!(client.publish("drain", "late"), Err(Error::Closed)));
    assert!(matches!(client.subscribe("drain").await, Err(Error::Closed)));
    assert!(matches!(client.flush().await, Err(Error::Closed)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_sends_what_was_published_and_is_quick() {
    let server = server!();
    let receiver = Client::connect(&server.url()).await.unwrap();
    let mut sub = receiver.subscribe("last").await.unwrap();
    receiver.flush().await.unwrap();
    let client = Client::connect(&server.url()).await.unwrap();
    for i in 0..100 {
        client.publish("last", i.to_string()).unwrap();
    }
    let started = std::time::Instant::now();
    client.close().await;
    assert!(
        started.elapsed() < Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(client.connection_state(), ConnectionState::Closed);
    for _ in 0..100 {
        within("message", sub.next()).await.unwrap();
    }
    client.close().await; // Idempotent.
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payload_over_the_servers_max_is_refused_locally() {
    let server = server!();
    let client = Client::connect(&server.url()).await.unwrap();
    let max = client.max_payload();
    assert!(max > 0);
    let err = client.publish("big", vec![0u8; max + 1]).unwrap_err();
    assert!(
        matches!(err, Error::MaxPayload { size, max: m } if size == max + 1 && m == max),
        "{err:?}"
    );
    // The largest allowed payload goes through.
    let mut sub = client.subscribe("big").await.unwrap();
    client.publish("big", vec![7u8; max]).unwrap();
    assert_eq!(
        within("big message", sub.next()).await.unwrap().payload.len(),
        max
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_refused_is_quick_and_clear() {
    let port = free_port();
    let started = std::time::Instant::now();
    let err = Client::connect(&format!("nats://127.0.0.1:{port}"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::ConnectionRefused { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!("cannot connect to nats://127.0.0.1:{port}: connection refused")
    );
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(matches!(
        Client::connect("nats://").await,
        Err(Error::InvalidUrl(_))
    ));
}
