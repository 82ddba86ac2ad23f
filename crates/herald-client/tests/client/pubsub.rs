//! Publish-subscribe, wildcards, headers and queue groups.

use std::time::Duration;

use futures_util::StreamExt;
use herald_client::{Client, Headers};

use crate::support::{server, within};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_reaches_matching_subscribers_only() {
    let server = server!();
    let client = Client::connect(&server.url()).await.unwrap();
    let publisher = Client::connect(&server.url()).await.unwrap();
    let mut exact = client.subscribe("orders.created").await.unwrap();
    let mut wildcard = client.subscribe("orders.*").await.unwrap();
    let mut tail = client.subscribe("orders.>").await.unwrap();
    client.flush().await.unwrap();
    publisher.publish("orders.created", "one").unwrap();
    publisher.publish("orders.eu.deleted", [0u8, 255]).unwrap();
    publisher.publish("other", "ignored").unwrap();
    publisher.flush().await.unwrap();

    let m = within("exact", exact.next()).await.unwrap();
    assert_eq!(
        (m.subject.as_str(), &m.payload[..]),
        ("orders.created", &b"one"[..])
    );
    assert!(m.reply.is_none() && m.headers.is_none() && m.status.is_none());
    // Stream API too.
    let m = within("wildcard", StreamExt::next(&mut wildcard)).await.unwrap();
    assert_eq!(m.subject, "orders.created");
    let a = within("tail 1", tail.next()).await.unwrap();
    let b = within("tail 2", tail.next()).await.unwrap();
    assert_eq!(a.subject, "orders.created");
    assert_eq!(
        (b.subject.as_str(), &b.payload[..]),
        ("orders.eu.deleted", &[0u8, 255][..])
    );
    assert!(tokio::time::timeout(Duration::from_millis(100), wildcard.next())
        .await
        .is_err());
    assert_eq!(exact.dropped() + wildcard.dropped() + tail.dropped(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_and_reply_subjects_arrive() {
    let server = server!();
    let client = Client::connect(&server.url()).await.unwrap();
    let mut sub = client.subscribe("hdr.>").await.unwrap();
    client.flush().await.unwrap();
    let mut headers = Headers::new();
    headers.append("Trace-Id", "abc-123");
    headers.append("X-Multi", "1");
    headers.append("X-Multi", "2");
    client.publish_with_headers("hdr.a", &headers, "body").unwrap();
    client.publish_with_reply("hdr.b", "answers.here", "q").unwrap();
    client
        .publish_with_reply_and_headers("hdr.c", "answers.there", &headers, "")
        .unwrap();

    let a = within("a", sub.next()).await.unwrap();
    let got = a.headers.expect("headers");
    assert_eq!(got.get("trace-id"), Some("abc-123"));
    assert_eq!(got.iter().filter(|(n, _)| *n == "X-Multi").count(), 2);
    assert_eq!(&a.payload[..], b"body");
    let b = within("b", sub.next()).await.unwrap();
    assert_eq!(b.reply.as_deref(), Some("answers.here"));
    assert!(b.headers.is_none());
    let c = within("c", sub.next()).await.unwrap();
    assert_eq!(c.reply.as_deref(), Some("answers.there"));
    assert!(c.payload.is_empty());
    assert_eq!(c.headers.unwrap().get("Trace-Id"), Some("abc-123"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_group_delivers_each_message_to_one_member() {
    let server = server!();
    let client = Client::connect(&server.url()).await.unwrap();
    let mut members = Vec::new();
    for _ in 0..3 {
        members.push(client.queue_subscribe("jobs", "workers").await.unwrap());
    }
    let mut plain = client.subscribe("jobs").await.unwrap();
    client.flush().await.unwrap();
    for i in 0..300 {
        client.publish("jobs", i.to_string()).unwrap();
    }
    client.flush().await.unwrap();

    let mut seen = Vec::new();
    let mut per_member = Vec::new();
    for member in &mut members {
        let mut n = 0;
        while let Ok(Some(m)) = tokio::time::timeout(Duration::from_millis(300), member.next()).await {
            seen.push(
                String::from_utf8(m.payload.to_vec())
                    .unwrap()
                    .parse::<u32>()
                    .unwrap(),
            );
            n += 1;
        }
        per_member.push(n);
    }
    seen.sort_unstable();
    assert_eq!(seen, (0..300).collect::<Vec<_>>(), "each message exactly once");
    assert!(per_member.iter().all(|&n| n > 0), "spread: {per_member:?}");
    // A plain subscriber still sees everything.
    for _ in 0..300 {
        within("plain", plain.next()).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_echo_skips_own_messages() {
    let server = server!();
    let client = herald_client::ConnectOptions::new()
        .no_echo()
        .connect(&server.url())
        .await
        .unwrap();
    let other = Client::connect(&server.url()).await.unwrap();
    let mut sub = client.subscribe("echo").await.unwrap();
    client.flush().await.unwrap();
    client.publish("echo", "mine").unwrap();
    client.flush().await.unwrap();
    other.publish("echo", "theirs").unwrap();
    other.flush().await.unwrap();
    assert_eq!(
        &within("theirs", sub.next()).await.unwrap().payload[..],
        b"theirs"
    );
}
