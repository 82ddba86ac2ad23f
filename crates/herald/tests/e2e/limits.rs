//! Configured limits: payload size, control line length, subscriptions per
//! connection, connections, slow consumers and keepalive.

use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payload_over_max_payload_is_refused_and_only_that_connection_closes() {
    let server = TestServer::start_with(&["--max-payload", "1024"]);
    let bystander = connect(&server.url()).await;
    assert_eq!(
        bystander.server_info().max_payload,
        1024,
        "INFO advertises --max-payload"
    );
    let mut sub = subscribe(&bystander, "big").await;

    let mut raw = server.raw();
    assert_eq!(raw.info["max_payload"], 1024);
    raw.send("CONNECT {\"verbose\":false}\r\n");
    // Exactly at the limit is accepted and delivered.
    raw.send(format!("PUB big 1024\r\n{}\r\n", "x".repeat(1024)));
    assert_eq!(raw.ping(), "");
    assert_eq!(next(&mut sub).await.payload.len(), 1024);

    // One byte over is refused and closes the connection.
    let _ = raw.try_send(format!("PUB big 1025\r\n{}\r\n", "y".repeat(1025)));
    assert_eq!(
        raw.read_to_close_text(WAIT),
        "-ERR 'Maximum Payload Violation'\r\n"
    );

    // Everyone else carries on; the oversized message was not routed.
    bystander
        .publish("big", "still here".into())
        .await
        .expect("publish");
    bystander.flush().await.expect("flush");
    assert_eq!(&next(&mut sub).await.payload[..], b"still here");
    assert_pubsub_works(&server.url()).await;
}

#[test]
fn hpub_whose_headers_and_payload_exceed_max_payload_is_refused() {
    let server = TestServer::start_with(&["--max-payload", "1024"]);
    let mut raw = server.raw_connected(r#"{"verbose":false,"headers":true}"#);
    // Headers count toward the limit: 12 + 1013 = 1025 bytes in all.
    let header = "NATS/1.0\r\n\r\n";
    let _ = raw.try_send(format!("HPUB big 12 1025\r\n{header}{}\r\n", "p".repeat(1013)));
    assert_eq!(
        raw.read_to_close_text(WAIT),
        "-ERR 'Maximum Payload Violation'\r\n"
    );
}

#[test]
fn control_line_over_max_control_line_is_refused_and_the_connection_closes() {
    let server = TestServer::start_with(&["--max-control-line", "128"]);
    let mut raw = server.raw_connected(r#"{"verbose":false}"#);
    let fits = "s".repeat(100); // "SUB <100> 1" is 106 bytes
    raw.send(format!("SUB {fits} 1\r\n"));
    assert_eq!(raw.ping(), "", "a line under the limit is fine");
    let _ = raw.try_send(format!("SUB {} 2\r\n", "s".repeat(200)));
    assert_eq!(
        raw.read_to_close_text(WAIT),
        "-ERR 'Maximum Control Line Exceeded'\r\n"
    );

    let mut other = server.raw_connected(r#"{"verbose":false}"#);
    other.send(format!("SUB {fits} 1\r\nPUB {fits} 2\r\nok\r\n"));
    assert_eq!(other.ping(), format!("MSG {fits} 1 2\r\nok\r\n"));
}

#[test]
fn endless_control_line_is_cut_off_at_the_default_limit_without_waiting_for_a_newline() {
    let server = TestServer::start();
    let mut raw = server.raw_connected(r#"{"verbose":false}"#);
    // 8 KiB with no line end: twice the default 4096-byte limit.
    let _ = raw.try_send(format!("PUB {}", "a".repeat(8 * 1024)));
    assert_eq!(
        raw.read_to_close_text(WAIT),
        "-ERR 'Maximum Control Line Exceeded'\r\n"
    );
    server.raw_connected(r#"{"verbose":false}"#).ping();
}

#[test]
fn subscription_over_max_subscriptions_is_refused_and_the_connection_stays() {
    let server = TestServer::start_with(&["--max-subscriptions", "2"]);
    let mut raw = server.raw_connected(r#"{"verbose":false}"#);
    raw.send("SUB a 1\r\nSUB b 2\r\nSUB c 3\r\n");
    assert_eq!(raw.ping(), "-ERR 'Maximum Subscriptions Exceeded'\r\n");
    raw.send("PUB c 1\r\nx\r\nPUB a 1\r\ny\r\n");
    assert_eq!(
        raw.ping(),
        "MSG a 1 1\r\ny\r\n",
        "the refused subscription must not exist"
    );
    // The limit is on subscriptions held now: freeing one makes room.
    raw.send("UNSUB 1\r\nSUB c 3\r\nPUB c 1\r\nz\r\n");
    assert_eq!(raw.ping(), "MSG c 3 1\r\nz\r\n");
    // The limit is per connection.
    let mut other = server.raw_connected(r#"{"verbose":false}"#);
    other.send("SUB x 1\r\nSUB y 2\r\n");
    assert_eq!(other.ping(), "");
}

#[test]
fn connection_over_max_connections_is_refused_and_the_others_stay() {
    let server = TestServer::start_with(&["--max-connections", "2"]);
    let mut first = server.raw_connected(r#"{"verbose":false}"#);
    let mut second = server.raw_connected(r#"{"verbose":false}"#);

    let mut third = RawConn::connect_bare(server.client_addr);
    let got = third.read_to_close_text(WAIT);
    assert!(
        got.ends_with("-ERR 'maximum connections exceeded'\r\n"),
        "third connection got {got:?}"
    );
    assert!(
        !got.contains("PONG") && got.matches("-ERR").count() == 1,
        "third connection got {got:?}"
    );

    assert_eq!(first.ping(), "");
    assert_eq!(second.ping(), "");
    assert_eq!(server.varz_u64("connections"), 2);
    assert_eq!(server.varz_u64("rejected_connections"), 1);

    // A slot freed by a client leaving can be used again.
    drop(second);
    eventually("the closed connection is no longer counted", || {
        server.varz_u64("connections") == 1
    });
    let mut fourth = server.raw_connected(r#"{"verbose":false}"#);
    assert_eq!(fourth.ping(), "");
    assert_eq!(first.ping(), "");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_consumer_is_cut_off_while_the_publisher_and_other_subscribers_carry_on() {
    const CHUNK: usize = 32 * 1024;
    const PER_ROUND: usize = 8; // 256 KiB per round
    const ROUNDS: usize = 80; // 20 MiB in all
    let server = TestServer::start_with(&["--max-pending", "1048576"]);

    // Subscribes, then never reads again.
    let mut slow = server.raw_connected(r#"{"verbose":false}"#);
    slow.send("SUB firehose 1\r\n");
    assert_eq!(slow.ping(), "");

    let healthy_client = connect(&server.url()).await;
    let mut healthy = subscribe(&healthy_client, "firehose").await;
    let publisher = connect(&server.url()).await;
    let payload = Bytes::from(vec![b'z'; CHUNK]);

    for round in 0..ROUNDS {
        for _ in 0..PER_ROUND {
            publisher
                .publish("firehose", payload.clone())
                .await
                .expect("publish");
        }
        publisher.flush().await.expect("flush");
        // Pace by the healthy subscriber, so only the reader that never
        // reads can fall behind by more than max_pending.
        for m in next_n(&mut healthy, PER_ROUND).await {
            assert_eq!(m.payload.len(), CHUNK, "round {round}");
        }
    }

    let received = slow.read_to_close(WAIT);
    assert!(
        received.len() < ROUNDS * PER_ROUND * CHUNK,
        "the slow consumer received everything ({} bytes) instead of being cut off",
        received.len()
    );
    eventually("/varz counts the slow consumer", || {
        server.varz_u64("slow_consumers") >= 1
    });
    eventually("the slow consumer's subscription is removed", || {
        server.varz_u64("subscriptions") == 1
    });

    // The publisher's connection is healthy (a full round trip) and its
    // messages still reach the healthy subscriber.
    sync(&publisher).await;
    publisher
        .publish("firehose", "after".into())
        .await
        .expect("publish");
    publisher.flush().await.expect("flush");
    assert_eq!(&next(&mut healthy).await.payload[..], b"after");
    assert_eq!(server.varz_u64("connections"), 2);
}

#[test]
fn subscriber_unwritable_past_the_write_deadline_is_cut_off_under_max_pending() {
    // Far below max_pending (64 MiB), but more than loopback socket buffers
    // hold: only the write deadline can end this subscriber.
    const CHUNK: usize = 64 * 1024;
    const COUNT: usize = 400; // 25 MiB
    let server = TestServer::start_with(&["--write-deadline-ms", "300"]);
    let mut stuck = server.raw_connected(r#"{"verbose":false}"#);
    stuck.send("SUB deadline 1\r\n");
    assert_eq!(stuck.ping(), "");
    let mut publisher = server.raw_connected(r#"{"verbose":false}"#);
    let frame = format!("PUB deadline {CHUNK}\r\n{}\r\n", "d".repeat(CHUNK));
    let started = std::time::Instant::now();
    for _ in 0..COUNT {
        publisher.send(&frame);
    }
    assert_eq!(publisher.ping(), "", "the publisher is not held up");
    eventually("/varz counts the slow consumer", || {
        server.varz_u64("slow_consumers") >= 1
    });
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "not before the deadline"
    );
    let received = stuck.read_to_close(WAIT);
    assert!(received.len() < COUNT * CHUNK, "cut off, not fully delivered");
    assert_eq!(server.varz_u64("slow_consumers"), 1, "counted once");
}

#[test]
fn client_that_never_answers_ping_is_closed_as_stale_while_one_that_answers_stays() {
    let server = TestServer::start_with(&["--ping-interval-ms", "200", "--max-pings-out", "2"]);
    let mut silent = server.raw();
    let mut lively = server.raw();
    silent.send("CONNECT {\"verbose\":false}\r\n");
    lively.send("CONNECT {\"verbose\":false}\r\n");
    let started = Instant::now();

    // Answers keepalive PINGs for well past the time the silent one gets.
    let lively = std::thread::spawn(move || {
        for _ in 0..6 {
            lively.read_until(b"PING\r\n");
            lively.send("PONG\r\n");
        }
        lively
    });

    let got = silent.read_to_close_text(Duration::from_secs(3));
    let elapsed = started.elapsed();
    assert_eq!(got, "PING\r\nPING\r\n-ERR 'Stale Connection'\r\n");
    assert!(
        elapsed < Duration::from_secs(2),
        "stale connection closed only after {elapsed:?}"
    );

    let mut lively = lively.join().expect("lively thread");
    let before_pong = lively.ping();
    assert_eq!(
        before_pong.replace("PING\r\n", ""),
        "",
        "the answering client must still be served"
    );
    assert!(started.elapsed() > Duration::from_millis(1000));
    eventually("/varz counts one stale connection", || {
        server.varz_u64("stale_connections") == 1
    });
}
