//! Request-reply.

use std::time::{Duration, Instant};

use herald_client::{Client, ConnectOptions, Error, Headers};

use crate::support::server;

async fn echo_service(client: &Client, subject: &str) {
    let mut service = client.queue_subscribe(subject, "echo").await.unwrap();
    let responder = client.clone();
    tokio::spawn(async move {
        while let Some(request) = service.next().await {
            let mut reply = b"echo:".to_vec();
            reply.extend_from_slice(&request.payload);
            match &request.headers {
                Some(h) => {
                    let reply_to = request.reply.as_deref().unwrap();
                    responder.publish_with_headers(reply_to, h, reply).unwrap();
                }
                None => responder.respond(&request, reply).unwrap(),
            }
        }
    });
    client.flush().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_get_their_own_replies() {
    let server = server!();
    let service = Client::connect(&server.url()).await.unwrap();
    echo_service(&service, "svc.echo").await;
    let client = Client::connect(&server.url()).await.unwrap();
    let requests = (0..100).map(|i| {
        let client = client.clone();
        async move { (i, client.request("svc.echo", i.to_string()).await) }
    });
    for (i, reply) in futures_util::future::join_all(requests).await {
        assert_eq!(reply.unwrap().payload, format!("echo:{i}").as_bytes());
    }
    let mut headers = Headers::new();
    headers.append("Id", "7");
    let reply = client
        .request_with_headers("svc.echo", &headers, "h", Duration::from_secs(2))
        .await
        .unwrap();
    assert_eq!(&reply.payload[..], b"echo:h");
    assert_eq!(reply.headers.unwrap().get("id"), Some("7"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_responders_is_immediate() {
    let server = server!();
    let client = Client::connect(&server.url()).await.unwrap();
    let started = Instant::now();
    let err = client.request("nobody.home", "x").await.unwrap_err();
    assert!(
        matches!(&err, Error::NoResponders { subject } if subject == "nobody.home"),
        "{err:?}"
    );
    assert_eq!(err.to_string(), "no responders on nobody.home");
    assert!(started.elapsed() < Duration::from_secs(2), "not a timeout");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_responder_times_out() {
    let server = server!();
    let client = ConnectOptions::new()
        .request_timeout(Duration::from_millis(200))
        .connect(&server.url())
        .await
        .unwrap();
    let _silent = client.subscribe("silent").await.unwrap();
    client.flush().await.unwrap();
    let started = Instant::now();
    assert!(matches!(client.request("silent", "x").await, Err(Error::Timeout)));
    assert!(started.elapsed() >= Duration::from_millis(200));
    let err = client
        .request_with_timeout("silent", "x", Duration::from_millis(50))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Timeout), "{err:?}");
}
