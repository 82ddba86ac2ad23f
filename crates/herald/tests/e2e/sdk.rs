//! Herald's own Rust SDK (`herald-client`) against the real server. The
//! SDK's own suite (`crates/herald-client/tests`) covers it in depth; these
//! pin down the end-to-end behaviours through this crate's binary.

use std::time::Duration;

use herald_client::{Client, ConnectOptions, ConnectionState, Error, Headers};

use crate::support::{within, TestServer, WAIT};

async fn connect(server: &TestServer) -> Client {
    within(WAIT, "SDK connect", Client::connect(&server.url()))
        .await
        .expect("SDK connects")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_pub_sub_with_headers_and_wildcards() {
    let server = TestServer::start();
    let client = connect(&server).await;
    let mut sub = client.subscribe("sdk.*.created").await.unwrap();
    client.flush().await.unwrap();
    let mut headers = Headers::new();
    headers.append("Trace-Id", "abc");
    client
        .publish_with_headers("sdk.order.created", &headers, [0u8, 1, 255])
        .unwrap();
    client.publish("sdk.order.deleted", "not for us").unwrap();
    client.publish("sdk.user.created", "").unwrap();
    let first = within(WAIT, "first message", sub.next()).await.unwrap();
    assert_eq!(first.subject, "sdk.order.created");
    assert_eq!(&first.payload[..], &[0u8, 1, 255]);
    assert_eq!(first.headers.unwrap().get("trace-id"), Some("abc"));
    let second = within(WAIT, "second message", sub.next()).await.unwrap();
    assert_eq!(second.subject, "sdk.user.created");
    assert!(second.payload.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_requests_concurrent_and_no_responders() {
    let server = TestServer::start();
    let client = connect(&server).await;
    let mut service = client.queue_subscribe("sdk.echo", "echo").await.unwrap();
    let responder = client.clone();
    tokio::spawn(async move {
        while let Some(request) = service.next().await {
            let mut reply = b"echo:".to_vec();
            reply.extend_from_slice(&request.payload);
            responder.respond(&request, reply).unwrap();
        }
    });
    client.flush().await.unwrap();
    let requests = (0..50).map(|i| {
        let client = client.clone();
        async move { (i, client.request("sdk.echo", i.to_string()).await) }
    });
    for (i, reply) in futures_util::future::join_all(requests).await {
        assert_eq!(reply.unwrap().payload, format!("echo:{i}").as_bytes());
    }
    let started = std::time::Instant::now();
    let err = client.request("sdk.nobody", "x").await.unwrap_err();
    assert!(matches!(err, Error::NoResponders { .. }), "{err:?}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "no-responders is immediate, not a timeout"
    );
    assert_eq!(err.to_string(), "no responders on sdk.nobody");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_request_times_out_when_responder_is_silent() {
    let server = TestServer::start();
    let client = connect(&server).await;
    let _silent = client.subscribe("sdk.silent").await.unwrap();
    client.flush().await.unwrap();
    let err = client
        .request_with_timeout("sdk.silent", "x", Duration::from_millis(200))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Timeout), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_unsubscribe_after_ends_the_stream() {
    let server = TestServer::start();
    let client = connect(&server).await;
    let mut sub = client.subscribe("sdk.few").await.unwrap();
    sub.unsubscribe_after(3);
    client.flush().await.unwrap();
    for i in 0..10 {
        client.publish("sdk.few", i.to_string()).unwrap();
    }
    let mut got = Vec::new();
    while let Some(m) = within(WAIT, "stream end", sub.next()).await {
        got.push(m.payload);
    }
    assert_eq!(got, vec!["0", "1", "2"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_drain_delivers_what_was_sent_then_ends() {
    let server = TestServer::start();
    let client = connect(&server).await;
    let publisher = connect(&server).await;
    let mut sub = client.subscribe("sdk.drain").await.unwrap();
    client.flush().await.unwrap();
    for i in 0..1000 {
        publisher.publish("sdk.drain", i.to_string()).unwrap();
    }
    publisher.flush().await.unwrap();
    within(WAIT, "drain", client.drain()).await.unwrap();
    let mut n = 0;
    while let Some(_m) = within(WAIT, "drained stream", sub.next()).await {
        n += 1;
    }
    assert_eq!(n, 1000);
    assert_eq!(client.connection_state(), ConnectionState::Closed);
    assert!(matches!(client.publish("sdk.drain", "late"), Err(Error::Closed)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_rejects_payload_over_server_max() {
    let server = TestServer::start_with(&["--max-payload", "1024"]);
    let client = connect(&server).await;
    assert_eq!(client.max_payload(), 1024);
    let err = client.publish("sdk.big", vec![0u8; 2000]).unwrap_err();
    assert!(
        matches!(
            err,
            Error::MaxPayload {
                size: 2000,
                max: 1024
            }
        ),
        "{err:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_connect_refused_is_a_clear_error() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let err = Client::connect(&format!("nats://127.0.0.1:{port}"))
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with(&format!("cannot connect to nats://127.0.0.1:{port}")),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_reconnects_and_resubscribes_after_server_restart() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port().to_string()
    };
    let server = TestServer::start_with(&["--port", &port]);
    let client = ConnectOptions::new()
        .reconnect_delay(Duration::from_millis(20), Duration::from_millis(200))
        .connect(&server.url())
        .await
        .unwrap();
    let mut sub = client.subscribe("sdk.survives").await.unwrap();
    client.flush().await.unwrap();
    let mut states = client.state_changes();
    drop(server);
    within(
        WAIT,
        "disconnect noticed",
        states.wait_for(|s| *s == ConnectionState::Reconnecting),
    )
    .await
    .unwrap();
    let server = TestServer::start_with(&["--port", &port]);
    within(
        WAIT,
        "reconnected",
        states.wait_for(|s| *s == ConnectionState::Connected),
    )
    .await
    .unwrap();
    client.flush().await.unwrap();
    let other = connect(&server).await;
    other.publish("sdk.survives", "after restart").unwrap();
    other.flush().await.unwrap();
    let m = within(WAIT, "message after restart", sub.next()).await.unwrap();
    assert_eq!(&m.payload[..], b"after restart");
}
