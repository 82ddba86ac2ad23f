//! Request-reply, and the no-responders status a requester gets when nobody
//! subscribes to the request subject.

use std::time::{Duration, Instant};

use async_nats::{ConnectOptions, RequestErrorKind};
use futures_util::StreamExt as _;

use crate::support::*;

/// Starts a responder answering `echo:<payload>` on `subject`; returns once
/// the server has registered its subscription.
async fn start_echo_responder(url: &str, subject: &str) -> tokio::task::JoinHandle<()> {
    let client = connect(url).await;
    let mut sub = subscribe(&client, subject).await;
    tokio::spawn(async move {
        while let Some(request) = sub.next().await {
            let Some(reply) = request.reply else { continue };
            let mut body = b"echo:".to_vec();
            body.extend_from_slice(&request.payload);
            if client.publish(reply, body.into()).await.is_err() {
                break;
            }
            let _ = client.flush().await;
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_gets_the_responders_reply() {
    let server = TestServer::start();
    let responder = start_echo_responder(&server.url(), "svc.echo").await;
    let requester = connect_with(
        ConnectOptions::new().request_timeout(Some(Duration::from_secs(5))),
        &server.url(),
    )
    .await;
    let reply = within(WAIT, "request", requester.request("svc.echo", "ping".into()))
        .await
        .expect("request");
    assert_eq!(&reply.payload[..], b"echo:ping");
    responder.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_requests_each_get_their_own_reply() {
    let server = TestServer::start();
    let responder = start_echo_responder(&server.url(), "svc.concurrent").await;
    let requester = connect_with(
        ConnectOptions::new().request_timeout(Some(Duration::from_secs(8))),
        &server.url(),
    )
    .await;
    let requests = (0..50).map(|i| {
        let requester = requester.clone();
        async move {
            let reply = requester
                .request("svc.concurrent", format!("req-{i}").into())
                .await
                .unwrap_or_else(|e| panic!("request {i}: {e}"));
            (i, reply.payload)
        }
    });
    let replies = within(
        WAIT * 2,
        "50 concurrent requests",
        futures_util::future::join_all(requests),
    )
    .await;
    assert_eq!(replies.len(), 50);
    for (i, payload) in replies {
        assert_eq!(
            &payload[..],
            format!("echo:req-{i}").as_bytes(),
            "request {i} got someone else's reply"
        );
    }
    responder.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_without_responders_fails_fast_with_no_responders() {
    let server = TestServer::start();
    let timeout = Duration::from_secs(8);
    let requester = connect_with(
        ConnectOptions::new().request_timeout(Some(timeout)),
        &server.url(),
    )
    .await;
    let started = Instant::now();
    let result = within(
        WAIT,
        "request to nobody",
        requester.request("nobody.home", "hello?".into()),
    )
    .await;
    let elapsed = started.elapsed();
    let err = result.expect_err("a request nobody subscribes to must fail");
    assert_eq!(err.kind(), RequestErrorKind::NoResponders, "got {err}");
    assert!(
        elapsed < Duration::from_secs(2),
        "no-responders took {elapsed:?}; it should come from the server, not the {timeout:?} timeout"
    );
}

#[test]
fn raw_no_responders_reply_is_exactly_hmsg_503() {
    let server = TestServer::start();
    let mut conn = server.raw_connected(r#"{"verbose":false,"headers":true,"no_responders":true}"#);
    conn.send("SUB _INBOX.raw.1 7\r\nPUB nobody.home _INBOX.raw.1 5\r\nhello\r\n");
    assert_eq!(
        conn.ping(),
        "HMSG _INBOX.raw.1 7 16 16\r\nNATS/1.0 503\r\n\r\n\r\n"
    );
    // A request with an empty payload and a request via HPUB are answered the same way.
    conn.send(
        "PUB nobody.home _INBOX.raw.1 0\r\n\r\nHPUB nobody.home _INBOX.raw.1 12 14\r\nNATS/1.0\r\n\r\nhi\r\n",
    );
    assert_eq!(
        conn.ping(),
        "HMSG _INBOX.raw.1 7 16 16\r\nNATS/1.0 503\r\n\r\n\r\n".repeat(2)
    );
}

#[test]
fn no_responders_status_is_only_sent_to_clients_that_asked_for_it() {
    let server = TestServer::start();
    let mut conn = server.raw_connected(r#"{"verbose":false,"headers":true}"#);
    conn.send("SUB _INBOX.raw.2 1\r\nPUB nobody.home _INBOX.raw.2 2\r\nhi\r\n");
    assert_eq!(conn.ping(), "", "no_responders was not requested in CONNECT");
}

#[test]
fn no_responders_is_not_sent_when_a_subscriber_exists() {
    let server = TestServer::start();
    let mut responder = server.raw_connected(r#"{"verbose":false}"#);
    responder.send("SUB svc.slow 1\r\n");
    assert_eq!(responder.ping(), "");
    let mut requester = server.raw_connected(r#"{"verbose":false,"headers":true,"no_responders":true}"#);
    requester.send("SUB _INBOX.raw.3 1\r\nPUB svc.slow _INBOX.raw.3 2\r\nhi\r\n");
    assert_eq!(requester.ping(), "", "a subscriber exists, so no 503 may be sent");
    assert_eq!(responder.ping(), "MSG svc.slow 1 _INBOX.raw.3 2\r\nhi\r\n");
}

#[test]
fn connect_with_no_responders_but_without_headers_is_refused() {
    let server = TestServer::start();
    let mut conn = server.raw();
    conn.send("CONNECT {\"verbose\":false,\"no_responders\":true}\r\n");
    let got = conn.read_to_close_text(WAIT);
    assert_eq!(got, "-ERR 'no responders requires headers support'\r\n");
}
