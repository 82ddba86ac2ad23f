//! Queue groups: one member of each group gets each message; plain
//! subscribers are unaffected.

use std::collections::BTreeSet;

use async_nats::{Client, Subscriber};

use crate::support::*;

/// Payload ids (`"<n>"`) received by `sub` so far; requires a [`sync`] of
/// its client first.
fn ids(sub: &mut Subscriber) -> Vec<u32> {
    ready(sub)
        .iter()
        .map(|m| std::str::from_utf8(&m.payload).unwrap().parse().unwrap())
        .collect()
}

async fn publish_ids(publisher: &Client, subject: &str, n: u32) {
    for i in 0..n {
        publisher
            .publish(subject.to_string(), i.to_string().into())
            .await
            .expect("publish");
    }
    sync(publisher).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_group_delivers_each_message_to_exactly_one_member_and_shares_the_load() {
    const N: u32 = 3000;
    let server = TestServer::start();
    let publisher = connect(&server.url()).await;
    let mut members = Vec::new();
    for _ in 0..3 {
        let client = connect(&server.url()).await;
        let sub = queue_subscribe(&client, "jobs.resize", "workers").await;
        members.push((client, sub));
    }
    let plain_client = connect(&server.url()).await;
    let mut plain = subscribe(&plain_client, "jobs.resize").await;

    publish_ids(&publisher, "jobs.resize", N).await;

    let mut per_member = Vec::new();
    let mut all = Vec::new();
    for (client, sub) in &mut members {
        sync(client).await;
        let got = ids(sub);
        per_member.push(got.len());
        all.extend(got);
    }
    let distinct: BTreeSet<u32> = all.iter().copied().collect();
    assert_eq!(
        all.len(),
        N as usize,
        "group deliveries per member: {per_member:?}"
    );
    assert_eq!(
        distinct.len(),
        N as usize,
        "some message went to two members: {per_member:?}"
    );
    assert_eq!(distinct, (0..N).collect(), "some message went to no member");
    for (i, n) in per_member.iter().enumerate() {
        assert!(
            *n > N as usize / 10,
            "member {i} got {n} of {N} messages; shares {per_member:?} are not spread"
        );
    }

    sync(&plain_client).await;
    let plain_ids = ids(&mut plain);
    assert_eq!(
        plain_ids,
        (0..N).collect::<Vec<_>>(),
        "the plain subscriber must get every message in order"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_queue_groups_on_one_subject_each_get_every_message_once() {
    const N: u32 = 400;
    let server = TestServer::start();
    let publisher = connect(&server.url()).await;
    let mut groups = Vec::new();
    for group in ["billing", "audit"] {
        let mut members = Vec::new();
        for _ in 0..2 {
            let client = connect(&server.url()).await;
            let sub = queue_subscribe(&client, "orders.*", group).await;
            members.push((client, sub));
        }
        groups.push((group, members));
    }

    publish_ids(&publisher, "orders.created", N).await;

    for (group, members) in &mut groups {
        let mut all = Vec::new();
        for (client, sub) in members.iter_mut() {
            sync(client).await;
            all.extend(ids(sub));
        }
        all.sort_unstable();
        assert_eq!(
            all,
            (0..N).collect::<Vec<_>>(),
            "group {group}: each message exactly once"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_member_that_leaves_stops_receiving_and_the_rest_take_over() {
    const N: u32 = 200;
    let server = TestServer::start();
    let publisher = connect(&server.url()).await;
    let a = connect(&server.url()).await;
    let b = connect(&server.url()).await;
    let mut sub_a = queue_subscribe(&a, "tasks", "q").await;
    let mut sub_b = queue_subscribe(&b, "tasks", "q").await;
    sub_a.unsubscribe().await.expect("unsubscribe");
    sync(&a).await;

    publish_ids(&publisher, "tasks", N).await;
    sync(&b).await;
    assert_eq!(
        ids(&mut sub_b),
        (0..N).collect::<Vec<_>>(),
        "the remaining member gets everything"
    );
    sync(&a).await;
    assert!(
        ids(&mut sub_a).is_empty(),
        "the member that left still got messages"
    );
}
