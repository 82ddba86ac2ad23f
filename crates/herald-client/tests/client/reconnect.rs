//! Reconnecting after the server restarts.

use std::time::Duration;

use herald_client::{Client, ConnectOptions, ConnectionState, Error};

use crate::support::{server, within};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_survive_a_server_restart() {
    let server = server!();
    let client = ConnectOptions::new()
        .reconnect_delay(Duration::from_millis(20), Duration::from_millis(200))
        .connect(&server.url())
        .await
        .unwrap();
    let mut sub = client.subscribe("survives").await.unwrap();
    let mut limited = client.subscribe("limited").await.unwrap();
    limited.unsubscribe_after(3);
    let service = client.clone();
    let mut requests = client.subscribe("svc").await.unwrap();
    tokio::spawn(async move {
        while let Some(request) = requests.next().await {
            let _ = service.respond(&request, "pong");
        }
    });
    client.publish("limited", "1").unwrap();
    within("limited 1", limited.next()).await.unwrap();
    assert_eq!(&client.request("svc", "").await.unwrap().payload[..], b"pong");

    let mut states = client.state_changes();
    let url = server.url();
    let stopped = server.kill();
    within(
        "disconnect noticed",
        states.wait_for(|s| *s == ConnectionState::Reconnecting),
    )
    .await
    .unwrap();
    // Buffered while disconnected; delivered after the reconnect.
    client.publish("survives", "buffered").unwrap();
    let server = stopped.restart();
    within(
        "reconnected",
        states.wait_for(|s| *s == ConnectionState::Connected),
    )
    .await
    .unwrap();
    within("flush", client.flush()).await.unwrap();
    assert_eq!(
        &within("buffered", sub.next()).await.unwrap().payload[..],
        b"buffered"
    );

    let other = Client::connect(&url).await.unwrap();
    other.publish("survives", "after restart").unwrap();
    for i in 2..=5 {
        other.publish("limited", i.to_string()).unwrap();
    }
    other.flush().await.unwrap();
    assert_eq!(
        &within("after restart", sub.next()).await.unwrap().payload[..],
        b"after restart"
    );
    // Two more for the subscription limited to three in total, then it ends.
    assert_eq!(
        &within("limited 2", limited.next()).await.unwrap().payload[..],
        b"2"
    );
    assert_eq!(
        &within("limited 3", limited.next()).await.unwrap().payload[..],
        b"3"
    );
    assert!(within("limited ends", limited.next()).await.is_none());
    // The request inbox was re-subscribed too.
    assert_eq!(&client.request("svc", "").await.unwrap().payload[..], b"pong");
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_reconnect_the_client_closes() {
    let server = server!();
    let client = ConnectOptions::new()
        .reconnect(false)
        .connect(&server.url())
        .await
        .unwrap();
    let mut sub = client.subscribe("x").await.unwrap();
    client.flush().await.unwrap();
    let mut states = client.state_changes();
    drop(server.kill());
    within("closed", states.wait_for(|s| *s == ConnectionState::Closed))
        .await
        .unwrap();
    assert!(within("stream ends", sub.next()).await.is_none());
    assert!(matches!(client.publish("x", ""), Err(Error::Closed)));
}
