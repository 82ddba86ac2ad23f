//! Unit tests of the client against a scripted in-process server.

mod fake;
mod jetstream;

use std::time::Duration;

use fake::{FakeServer, Op, WAIT};

use crate::{Client, ConnectOptions, ConnectionState, Error};

/// Connects with `options` while the fake server completes the handshake.
async fn connect_with(server: &FakeServer, options: ConnectOptions) -> (Client, fake::Conn, Vec<Op>) {
    let url = server.url();
    let client = tokio::spawn(async move { options.connect(&url).await });
    let (conn, _, before_ping) = server.accept_handshake().await;
    let client = client.await.unwrap().expect("client connects");
    (client, conn, before_ping)
}

async fn connect(server: &FakeServer) -> (Client, fake::Conn) {
    let options = ConnectOptions::new().reconnect_delay(Duration::from_millis(10), Duration::from_millis(50));
    let (client, conn, _) = connect_with(server, options).await;
    (client, conn)
}

async fn within<T>(what: &str, future: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(WAIT, future)
        .await
        .unwrap_or_else(|_| panic!("timed out: {what}"))
}

#[tokio::test]
async fn handshake_sends_connect_and_returns_only_after_pong() {
    let server = FakeServer::start().await;
    let url = server.url();
    let mut connecting =
        tokio::spawn(async move { ConnectOptions::new().name("unit").no_echo().connect(&url).await });
    let mut conn = server.accept().await;
    let Op::Connect(info) = conn.op().await else {
        panic!("expected CONNECT");
    };
    assert!(info.headers && info.no_responders);
    assert!(!info.verbose && !info.pedantic && !info.echo);
    assert_eq!(info.protocol, 1);
    assert_eq!(info.lang, "rust");
    assert_eq!(info.name.as_deref(), Some("unit"));
    assert_eq!(conn.until_ping().await, vec![]);
    // Not connected until the PONG.
    assert!(tokio::time::timeout(Duration::from_millis(100), &mut connecting)
        .await
        .is_err());
    conn.send(b"PONG\r\n").await;
    let client = within("connect", connecting).await.unwrap().unwrap();
    assert_eq!(client.connection_state(), ConnectionState::Connected);
}

#[tokio::test]
async fn err_during_handshake_is_a_protocol_error() {
    let server = FakeServer::start().await;
    let url = server.url();
    let connecting = tokio::spawn(async move { Client::connect(&url).await });
    let mut conn = server.accept().await;
    conn.expect(|op| *op == Op::Ping).await;
    conn.send(b"-ERR 'Authorization Violation'\r\n").await;
    let err = within("connect", connecting).await.unwrap().unwrap_err();
    assert!(
        matches!(&err, Error::Protocol(text) if text == "Authorization Violation"),
        "{err:?}"
    );
}

#[tokio::test]
async fn connection_refused_names_the_address() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let err = Client::connect(&format!("127.0.0.1:{port}")).await.unwrap_err();
    let url = format!("nats://127.0.0.1:{port}");
    assert!(
        matches!(&err, Error::ConnectionRefused { url: u } if *u == url),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        format!("cannot connect to {url}: connection refused")
    );
}

#[tokio::test]
async fn answers_server_pings_and_publishes() {
    let server = FakeServer::start().await;
    let (client, mut conn) = connect(&server).await;
    conn.send(b"PING\r\n").await;
    assert_eq!(conn.op().await, Op::Pong);
    let mut headers = crate::Headers::new();
    headers.append("K", "v");
    client.publish("a.b", "one").unwrap();
    client.publish_with_headers("a.c", &headers, "two").unwrap();
    client.publish_with_reply("a.d", "r.1", "three").unwrap();
    assert_eq!(
        conn.op().await,
        Op::Pub {
            subject: "a.b".into(),
            reply: None,
            headers: None,
            payload: b"one".to_vec()
        }
    );
    assert_eq!(
        conn.op().await,
        Op::Pub {
            subject: "a.c".into(),
            reply: None,
            headers: Some(b"NATS/1.0\r\nK: v\r\n\r\n".to_vec()),
            payload: b"two".to_vec()
        }
    );
    assert!(matches!(conn.op().await, Op::Pub { reply: Some(r), .. } if r == "r.1"));
    assert!(matches!(
        client.publish("a..b", ""),
        Err(Error::InvalidSubject(_))
    ));
}

#[tokio::test]
async fn payload_is_checked_against_the_servers_max() {
    let server = FakeServer::start().await;
    let url = server.url();
    let connecting = tokio::spawn(async move { Client::connect(&url).await });
    let mut conn = server.accept_with(16).await;
    conn.handshake().await;
    let client = within("connect", connecting).await.unwrap().unwrap();
    assert_eq!(client.max_payload(), 16);
    assert!(client.publish("a", [0u8; 16]).is_ok());
    let err = client.publish("a", [0u8; 17]).unwrap_err();
    assert!(matches!(err, Error::MaxPayload { size: 17, max: 16 }), "{err:?}");
    let mut headers = crate::Headers::new();
    headers.append("Name", "value");
    assert!(matches!(
        client.publish_with_headers("a", &headers, [0u8; 8]),
        Err(Error::MaxPayload { .. })
    ));
}

#[tokio::test]
async fn a_full_subscriber_queue_drops_and_counts() {
    let server = FakeServer::start().await;
    let options = ConnectOptions::new().subscription_capacity(2);
    let (client, mut conn, _) = connect_with(&server, options).await;
    let mut sub = client.subscribe("s").await.unwrap();
    let Op::Sub { sid, .. } = conn.op().await else {
        panic!("expected SUB");
    };
    for i in 0..5 {
        conn.msg("s", &sid, None, format!("m{i}").as_bytes()).await;
    }
    // The PONG comes after the messages, so once the flush returns all five
    // have been dispatched.
    let flush = tokio::spawn({
        let client = client.clone();
        async move { client.flush().await }
    });
    conn.expect(|op| *op == Op::Ping).await;
    conn.send(b"PONG\r\n").await;
    within("flush", flush).await.unwrap().unwrap();
    assert_eq!(&within("first", sub.next()).await.unwrap().payload[..], b"m0");
    assert_eq!(&within("second", sub.next()).await.unwrap().payload[..], b"m1");
    assert_eq!(sub.dropped(), 3);
}

#[tokio::test]
async fn unsubscribe_after_sends_max_and_ends_the_stream() {
    let server = FakeServer::start().await;
    let (client, mut conn) = connect(&server).await;
    let mut sub = client.subscribe("few").await.unwrap();
    sub.unsubscribe_after(2);
    let Op::Sub { sid, .. } = conn.op().await else {
        panic!("expected SUB");
    };
    assert_eq!(
        conn.op().await,
        Op::Unsub {
            sid: sid.clone(),
            max: Some(2)
        }
    );
    for i in 0..3 {
        conn.msg("few", &sid, None, format!("{i}").as_bytes()).await;
    }
    assert_eq!(&within("1", sub.next()).await.unwrap().payload[..], b"0");
    assert_eq!(&within("2", sub.next()).await.unwrap().payload[..], b"1");
    assert!(within("end", sub.next()).await.is_none());
    drop(sub);
    let other = client.subscribe("other").await.unwrap();
    // No UNSUB for the ended subscription on drop.
    assert!(matches!(conn.op().await, Op::Sub { subject, .. } if subject == "other"));
    other.unsubscribe();
    assert!(matches!(conn.op().await, Op::Unsub { max: None, .. }));
}

#[tokio::test]
async fn requests_match_replies_by_token_and_503_is_no_responders() {
    let server = FakeServer::start().await;
    let (client, mut conn) = connect(&server).await;
    let first = tokio::spawn({
        let client = client.clone();
        async move { client.request("svc", "a").await }
    });
    let Op::Sub {
        subject: inbox, sid, ..
    } = conn.op().await
    else {
        panic!("expected the inbox SUB");
    };
    assert!(inbox.starts_with("_INBOX.") && inbox.ends_with(".*"), "{inbox}");
    let Op::Pub {
        reply: Some(reply_a), ..
    } = conn.op().await
    else {
        panic!("expected PUB");
    };
    let second = tokio::spawn({
        let client = client.clone();
        async move { client.request("svc", "b").await }
    });
    let Op::Pub {
        reply: Some(reply_b), ..
    } = conn.op().await
    else {
        panic!("expected PUB");
    };
    // Answer in reverse order.
    conn.msg(&reply_b, &sid, None, b"for b").await;
    conn.msg(&reply_a, &sid, None, b"for a").await;
    assert_eq!(&within("a", first).await.unwrap().unwrap().payload[..], b"for a");
    assert_eq!(&within("b", second).await.unwrap().unwrap().payload[..], b"for b");

    let third = tokio::spawn({
        let client = client.clone();
        async move { client.request("nobody", "").await }
    });
    let Op::Pub {
        reply: Some(reply), ..
    } = conn.op().await
    else {
        panic!("expected PUB");
    };
    let status = format!("HMSG {reply} {sid} 16 16\r\nNATS/1.0 503\r\n\r\n\r\n");
    conn.send(status.as_bytes()).await;
    let err = within("no responders", third).await.unwrap().unwrap_err();
    assert!(
        matches!(&err, Error::NoResponders { subject } if subject == "nobody"),
        "{err:?}"
    );

    let err = client
        .request_with_timeout("slow", "", Duration::from_millis(50))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Timeout), "{err:?}");
    assert!(
        client.shared().requests.lock().is_empty(),
        "waiters are cleaned up"
    );
}

#[tokio::test]
async fn fatal_err_reconnects_and_resubscribes_with_remaining_max() {
    let server = FakeServer::start().await;
    let (client, mut conn) = connect(&server).await;
    let mut states = client.state_changes();
    let mut sub = client.subscribe("keep").await.unwrap();
    sub.unsubscribe_after(3);
    let Op::Sub { sid, .. } = conn.op().await else {
        panic!("expected SUB");
    };
    conn.msg("keep", &sid, None, b"1").await;
    assert_eq!(&within("first", sub.next()).await.unwrap().payload[..], b"1");
    conn.send(b"-ERR 'Stale Connection'\r\n").await;
    // The client hangs up and reconnects, re-sending the subscription.
    let (mut conn2, _, resent) = within("reconnect", server.accept_handshake()).await;
    assert_eq!(
        resent,
        vec![
            Op::Sub {
                subject: "keep".into(),
                queue: None,
                sid: sid.clone()
            },
            Op::Unsub {
                sid: sid.clone(),
                max: Some(2)
            }
        ]
    );
    within("connected", states.wait_for(|s| *s == ConnectionState::Connected))
        .await
        .unwrap();
    conn2.msg("keep", &sid, None, b"2").await;
    assert_eq!(
        &within("after reconnect", sub.next()).await.unwrap().payload[..],
        b"2"
    );
    // The old connection was closed.
    conn.expect(|op| *op == Op::Eof).await;
}

#[tokio::test]
async fn unanswered_keepalive_ping_reconnects() {
    let server = FakeServer::start().await;
    let options = ConnectOptions::new()
        .ping_interval(Duration::from_millis(50))
        .reconnect_delay(Duration::from_millis(5), Duration::from_millis(10));
    let (client, mut conn, _) = connect_with(&server, options).await;
    assert_eq!(conn.op().await, Op::Ping, "keepalive");
    conn.send(b"PONG\r\n").await;
    assert_eq!(conn.op().await, Op::Ping, "keepalive again");
    // Silence: the client gives up on this connection and reconnects.
    let (_conn2, _, _) = within("reconnect", server.accept_handshake()).await;
    conn.expect(|op| *op == Op::Eof).await;
    let mut states = client.state_changes();
    within("connected", states.wait_for(|s| *s == ConnectionState::Connected))
        .await
        .unwrap();
}

#[tokio::test]
async fn non_fatal_err_keeps_the_connection() {
    let server = FakeServer::start().await;
    let (client, mut conn) = connect(&server).await;
    conn.send(b"-ERR 'Permissions Violation for Publish to \"x\"'\r\n")
        .await;
    let flush = tokio::spawn({
        let client = client.clone();
        async move { client.flush().await }
    });
    conn.expect(|op| *op == Op::Ping).await;
    conn.send(b"PONG\r\n").await;
    within("flush", flush).await.unwrap().unwrap();
    assert_eq!(client.connection_state(), ConnectionState::Connected);
}

#[tokio::test]
async fn lost_ping_fails_its_flush_and_buffered_publishes_survive() {
    let server = FakeServer::start().await;
    let (client, mut conn) = connect(&server).await;
    let mut states = client.state_changes();
    let flush = tokio::spawn({
        let client = client.clone();
        async move { client.flush().await }
    });
    conn.expect(|op| *op == Op::Ping).await;
    drop(conn); // The PING is never answered.
    assert!(matches!(
        within("flush", flush).await.unwrap(),
        Err(Error::Disconnected)
    ));
    within(
        "reconnecting",
        states.wait_for(|s| *s == ConnectionState::Reconnecting),
    )
    .await
    .unwrap();
    // Queued while disconnected, sent after the next handshake.
    client.publish("later", "kept").unwrap();
    let queued_flush = tokio::spawn({
        let client = client.clone();
        async move { client.flush().await }
    });
    let (mut conn, _, _) = within("reconnect", server.accept_handshake()).await;
    assert!(matches!(conn.op().await, Op::Pub { subject, .. } if subject == "later"));
    assert_eq!(conn.op().await, Op::Ping);
    conn.send(b"PONG\r\n").await;
    within("queued flush", queued_flush).await.unwrap().unwrap();
    // PINGs and PONGs still pair up.
    let flush = tokio::spawn({
        let client = client.clone();
        async move { client.flush().await }
    });
    conn.expect(|op| *op == Op::Ping).await;
    conn.send(b"PONG\r\n").await;
    within("flush", flush).await.unwrap().unwrap();
}

#[tokio::test]
async fn reconnect_buffer_is_bounded() {
    let server = FakeServer::start().await;
    let options = ConnectOptions::new()
        .reconnect_buffer_max(100)
        .reconnect_delay(Duration::from_secs(30), Duration::from_secs(30));
    let (client, conn, _) = connect_with(&server, options).await;
    let mut states = client.state_changes();
    drop(conn);
    within(
        "reconnecting",
        states.wait_for(|s| *s == ConnectionState::Reconnecting),
    )
    .await
    .unwrap();
    client.publish("a", [0u8; 50]).unwrap();
    assert!(matches!(client.publish("a", [0u8; 50]), Err(Error::Disconnected)));
    client.close().await;
    assert!(matches!(client.publish("a", ""), Err(Error::Closed)));
}

#[tokio::test]
async fn reconnect_gives_up_after_max_attempts() {
    let server = FakeServer::start().await;
    let options = ConnectOptions::new()
        .max_reconnect_attempts(2)
        .reconnect_delay(Duration::from_millis(5), Duration::from_millis(10));
    let (client, conn, _) = connect_with(&server, options).await;
    let mut sub = client.subscribe("x").await.unwrap();
    drop(conn);
    drop(server); // Nothing listens any more.
    let mut states = client.state_changes();
    within("closed", states.wait_for(|s| *s == ConnectionState::Closed))
        .await
        .unwrap();
    assert!(within("stream end", sub.next()).await.is_none());
    assert!(matches!(client.flush().await, Err(Error::Closed)));
}

#[tokio::test]
async fn dropping_every_handle_closes_the_connection() {
    let server = FakeServer::start().await;
    let (client, mut conn) = connect(&server).await;
    let sub = client.subscribe("x").await.unwrap();
    assert!(matches!(conn.op().await, Op::Sub { .. }));
    drop(client);
    // The subscriber keeps the connection open.
    assert!(tokio::time::timeout(Duration::from_millis(100), conn.op())
        .await
        .is_err());
    drop(sub);
    assert!(matches!(conn.op().await, Op::Unsub { .. }));
    assert_eq!(conn.op().await, Op::Eof);
}

#[tokio::test]
async fn close_writes_what_is_queued_and_hangs_up() {
    let server = FakeServer::start().await;
    let (client, mut conn) = connect(&server).await;
    client.publish("last", "words").unwrap();
    let closing = tokio::spawn({
        let client = client.clone();
        async move { client.close().await }
    });
    assert!(matches!(conn.op().await, Op::Pub { subject, .. } if subject == "last"));
    assert_eq!(conn.op().await, Op::Ping);
    conn.send(b"PONG\r\n").await;
    assert_eq!(conn.op().await, Op::Eof);
    within("close", closing).await.unwrap();
    assert_eq!(client.connection_state(), ConnectionState::Closed);
}

#[test]
fn fatal_errors() {
    use crate::connection::is_fatal;
    for fatal in [
        "Maximum Payload Violation",
        "Slow Consumer",
        "Stale Connection",
        "Parser Error",
        "Authorization Violation",
    ] {
        assert!(is_fatal(fatal), "{fatal}");
    }
    for kept in [
        "Invalid Subject",
        "Permissions Violation for Subscription to \"x\"",
        "Maximum Subscriptions Exceeded",
    ] {
        assert!(!is_fatal(kept), "{kept}");
    }
}
