//! Unsubscribing: immediately, and after a maximum number of deliveries
//! counted from the start of the subscription.

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsubscribe_after_delivers_exactly_max_messages_and_removes_the_subscription() {
    let server = TestServer::start();
    let subscriber = connect(&server.url()).await;
    let publisher = connect(&server.url()).await;
    let mut sub = subscribe(&subscriber, "unsub.after").await;
    sub.unsubscribe_after(5).await.expect("unsubscribe_after");
    sync(&subscriber).await;
    eventually("the subscription is registered", || {
        server.varz_u64("subscriptions") == 1
    });

    for i in 0..10 {
        publisher
            .publish("unsub.after", format!("{i}").into())
            .await
            .expect("publish");
    }
    sync(&publisher).await;

    let got = next_n(&mut sub, 5).await;
    let payloads: Vec<String> = got
        .iter()
        .map(|m| String::from_utf8_lossy(&m.payload).into_owned())
        .collect();
    assert_eq!(payloads, ["0", "1", "2", "3", "4"]);
    expect_end(&mut sub).await;
    // The server, not only the client, dropped the subscription.
    eventually("the server removed the subscription after 5 deliveries", || {
        server.varz_u64("subscriptions") == 0
    });
}

#[test]
fn raw_unsub_with_max_counts_deliveries_from_the_start_of_the_subscription() {
    let server = TestServer::start();
    let mut conn = server.raw_connected(r#"{"verbose":false}"#);
    conn.send("SUB u 1\r\nPUB u 1\r\na\r\n");
    assert_eq!(conn.ping(), "MSG u 1 1\r\na\r\n");
    // One delivery already happened, so "at most 2" leaves exactly one more.
    conn.send("UNSUB 1 2\r\nPUB u 1\r\nb\r\nPUB u 1\r\nc\r\nPUB u 1\r\nd\r\n");
    assert_eq!(conn.ping(), "MSG u 1 1\r\nb\r\n");
    conn.send("PUB u 1\r\ne\r\n");
    assert_eq!(conn.ping(), "");
    eventually("the exhausted subscription is removed", || {
        server.varz_u64("subscriptions") == 0
    });
}

#[test]
fn raw_unsub_with_max_already_reached_removes_the_subscription_at_once() {
    let server = TestServer::start();
    let mut conn = server.raw_connected(r#"{"verbose":false}"#);
    conn.send("SUB v 2\r\nPUB v 1\r\na\r\nPUB v 1\r\nb\r\n");
    assert_eq!(conn.ping(), "MSG v 2 1\r\na\r\nMSG v 2 1\r\nb\r\n");
    conn.send("UNSUB 2 2\r\nPUB v 1\r\nc\r\n");
    assert_eq!(conn.ping(), "");
    eventually("the subscription is removed", || {
        server.varz_u64("subscriptions") == 0
    });
}

#[test]
fn raw_unsub_without_max_stops_delivery_and_other_sids_are_untouched() {
    let server = TestServer::start();
    let mut conn = server.raw_connected(r#"{"verbose":false}"#);
    conn.send("SUB w 3\r\nSUB w 4\r\n");
    assert_eq!(conn.ping(), "");
    conn.send("UNSUB 3\r\nPUB w 1\r\nx\r\n");
    assert_eq!(conn.ping(), "MSG w 4 1\r\nx\r\n");
    // Unsubscribing an unknown sid is harmless.
    conn.send("UNSUB 99\r\nPUB w 1\r\ny\r\n");
    assert_eq!(conn.ping(), "MSG w 4 1\r\ny\r\n");
    eventually("one subscription left", || server.varz_u64("subscriptions") == 1);
}

#[test]
fn repeated_sid_keeps_the_first_subscription() {
    let server = TestServer::start();
    let mut conn = server.raw_connected(r#"{"verbose":false}"#);
    conn.send("SUB first 1\r\nSUB second 1\r\nPUB first 1\r\na\r\nPUB second 1\r\nb\r\n");
    assert_eq!(conn.ping(), "MSG first 1 1\r\na\r\n");
}

#[test]
fn closing_a_connection_removes_its_subscriptions() {
    let server = TestServer::start();
    let mut conn = server.raw_connected(r#"{"verbose":false}"#);
    conn.send("SUB a 1\r\nSUB b 2\r\nSUB c.> 3\r\n");
    assert_eq!(conn.ping(), "");
    assert_eq!(server.varz_u64("subscriptions"), 3);
    drop(conn);
    eventually("subscriptions of a closed connection are removed", || {
        server.varz_u64("subscriptions") == 0
    });
}
