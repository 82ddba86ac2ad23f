//! Subject wildcards: `*` matches exactly one token, `>` one or more trailing
//! tokens; malformed subscription subjects are refused without closing.

use crate::support::*;

/// Subscribes one client to each pattern, publishes every subject once (the
/// subject is also the payload), and returns what each pattern received.
async fn route(server: &TestServer, patterns: &[&str], subjects: &[&str]) -> Vec<Vec<String>> {
    let subscriber = connect(&server.url()).await;
    let publisher = connect(&server.url()).await;
    let mut subs = Vec::new();
    for p in patterns {
        subs.push(subscribe(&subscriber, p).await);
    }
    for s in subjects {
        publisher
            .publish(s.to_string(), s.to_string().into())
            .await
            .expect("publish");
    }
    // Barrier: the server routed every publish, then the subscriber has
    // dispatched everything queued for it.
    sync(&publisher).await;
    sync(&subscriber).await;
    subs.iter_mut()
        .map(|sub| {
            ready(sub)
                .into_iter()
                // The barrier's own messages (to `_INBOX.*`) match broad patterns.
                .filter(|m| !m.subject.starts_with("_INBOX."))
                .map(|m| {
                    assert_eq!(
                        m.subject.as_bytes(),
                        &m.payload[..],
                        "subject rewritten in delivery"
                    );
                    m.subject.to_string()
                })
                .collect()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn star_matches_exactly_one_token() {
    let server = TestServer::start();
    let subjects = ["a", "a.b", "a.b.c", "b.a", "a.z", "ab.c", "a.b.c.d"];
    let got = route(&server, &["a.*", "a.*.c", "*"], &subjects).await;
    assert_eq!(got[0], ["a.b", "a.z"], "a.*");
    assert_eq!(got[1], ["a.b.c"], "a.*.c");
    assert_eq!(got[2], ["a"], "*");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn star_as_first_token_matches_any_first_token() {
    let server = TestServer::start();
    let subjects = ["x.c", "ab.c", "c", "x.y.c", "x.c.d"];
    let got = route(&server, &["*.c"], &subjects).await;
    assert_eq!(got[0], ["x.c", "ab.c"], "*.c");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn greater_than_matches_one_or_more_trailing_tokens() {
    let server = TestServer::start();
    let subjects = ["a", "a.b", "a.b.c", "b.a", "a.b.c.d.e", "ab.c", "x.a.b"];
    let got = route(&server, &["a.>", "a.b.>", "*.>"], &subjects).await;
    assert_eq!(got[0], ["a.b", "a.b.c", "a.b.c.d.e"], "a.>");
    assert_eq!(got[1], ["a.b.c", "a.b.c.d.e"], "a.b.>");
    assert_eq!(
        got[2],
        ["a.b", "a.b.c", "b.a", "a.b.c.d.e", "ab.c", "x.a.b"],
        "*.>"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn literal_subscription_matches_only_the_same_subject() {
    let server = TestServer::start();
    let subjects = [
        "orders",
        "orders.created",
        "orders.created.eu",
        "Orders.created",
        "orders.create",
    ];
    let got = route(&server, &["orders.created"], &subjects).await;
    assert_eq!(
        got[0],
        ["orders.created"],
        "subjects are case-sensitive and matched token by token"
    );
}

#[test]
fn invalid_subscribe_subjects_get_invalid_subject_and_connection_stays_open() {
    let server = TestServer::start();
    let mut conn = server.raw_connected(r#"{"verbose":false,"pedantic":false}"#);
    for (sid, subject) in ["a..b", ".a", "a.", "a.>.b", ">.a", "."].iter().enumerate() {
        conn.send(format!("SUB {subject} {}\r\n", sid + 1));
        let before_pong = conn.ping();
        assert_eq!(
            before_pong, "-ERR 'Invalid Subject'\r\n",
            "SUB {subject:?}: expected one -ERR and the connection kept"
        );
    }
    // The connection still works, and none of the refused subscriptions exists.
    conn.send("SUB ok.subject 100\r\nPUB ok.subject 2\r\nhi\r\nPUB a..b 1\r\nx\r\n");
    assert_eq!(conn.ping(), "MSG ok.subject 100 2\r\nhi\r\n");
    eventually("only the valid subscription is registered", || {
        server.varz_u64("subscriptions") == 1
    });
}
