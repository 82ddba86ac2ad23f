//! JetStream: streams, acknowledged publishing, pull consumers and the KV
//! layer, against a real server (Herald, or nats-server with `-js`).

use std::time::Duration;

use herald_client::jetstream::{
    AckPolicy, ConsumerConfig, JetStream, Operation, PublishOptions, StorageType, StreamConfig,
    StreamPurgeRequest,
};
use herald_client::{Client, Error, Headers};

use crate::support::{server, within};

async fn js(url: &str) -> JetStream {
    Client::connect(url).await.unwrap().jetstream()
}

fn stream(name: &str, subjects: &[&str]) -> StreamConfig {
    StreamConfig {
        storage: StorageType::Memory,
        ..StreamConfig::new(name, subjects.iter().map(|s| s.to_string()).collect())
    }
}

fn pull(name: &str) -> ConsumerConfig {
    ConsumerConfig {
        durable_name: name.into(),
        ack_policy: AckPolicy::Explicit,
        ack_wait: 30_000_000_000,
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_are_created_listed_read_purged_and_deleted() {
    let server = server!();
    let js = js(&server.url()).await;
    let info = within("create", js.create_stream(stream("ORDERS", &["orders.>"])))
        .await
        .unwrap();
    assert_eq!(info.config.name, "ORDERS");
    assert_eq!(info.config.max_msgs, -1, "defaults applied");
    // Same configuration again: fine. Another one: 10058.
    js.create_stream(stream("ORDERS", &["orders.>"])).await.unwrap();
    let err = js
        .create_stream(stream("ORDERS", &["other.>"]))
        .await
        .unwrap_err();
    assert_eq!(err.api_error().map(|e| e.err_code), Some(10058), "{err:?}");
    let audit = StreamConfig {
        allow_direct: true,
        ..stream("AUDIT", &["audit.>"])
    };
    js.create_stream(audit).await.unwrap();
    js.publish("audit.login", "alice").await.unwrap();
    let direct = js.direct_get_last("AUDIT", "audit.login").await.unwrap().unwrap();
    assert_eq!((direct.sequence, &direct.payload[..]), (1, &b"alice"[..]));
    assert_eq!(direct.header("Nats-Stream"), Some("AUDIT"));
    assert_eq!(js.direct_get_last("AUDIT", "audit.logout").await.unwrap(), None);

    let mut names = js.stream_names().await.unwrap();
    names.sort();
    assert_eq!(names, ["AUDIT", "ORDERS"]);
    let mut listed: Vec<String> = js
        .streams()
        .await
        .unwrap()
        .into_iter()
        .map(|i| i.config.name)
        .collect();
    listed.sort();
    assert_eq!(listed, ["AUDIT", "ORDERS"]);

    for (subject, body) in [
        ("orders.a", "1"),
        ("orders.b", "2"),
        ("orders.a", "3"),
        ("orders.b", "4"),
    ] {
        js.publish(subject, body).await.unwrap();
    }
    let mut headers = Headers::new();
    headers.append("Trace", "t-5");
    js.publish_with("orders.c", Some(&headers), "5", PublishOptions::default())
        .await
        .unwrap();
    let info = js.stream_info("ORDERS").await.unwrap();
    assert_eq!((info.state.messages, info.state.last_seq), (5, 5));

    let message = js.get_message("ORDERS", 2).await.unwrap();
    assert_eq!(
        (message.subject.as_str(), &message.payload[..]),
        ("orders.b", &b"2"[..])
    );
    let last = js.get_last_message("ORDERS", "orders.a").await.unwrap();
    assert_eq!((last.sequence, &last.payload[..]), (3, &b"3"[..]));
    let with_headers = js.get_message("ORDERS", 5).await.unwrap();
    assert_eq!(with_headers.header("Trace"), Some("t-5"));

    js.delete_message("ORDERS", 2).await.unwrap();
    let err = js.get_message("ORDERS", 2).await.unwrap_err();
    assert!(err.is_no_message_found(), "{err:?}");

    // Purge orders.a except its newest, then everything.
    let purged = js
        .purge_stream(
            "ORDERS",
            StreamPurgeRequest {
                filter: "orders.a".into(),
                keep: 1,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(purged, 1);
    let mut update = stream("ORDERS", &["orders.>"]);
    update.max_msgs = 100;
    let updated = js.update_stream(update).await.unwrap();
    assert_eq!(updated.config.max_msgs, 100);
    let purged = js
        .purge_stream("ORDERS", StreamPurgeRequest::default())
        .await
        .unwrap();
    assert_eq!(purged, 3);
    assert_eq!(js.stream_info("ORDERS").await.unwrap().state.messages, 0);

    js.delete_stream("ORDERS").await.unwrap();
    let err = js.stream_info("ORDERS").await.unwrap_err();
    assert!(err.is_stream_not_found(), "{err:?}");
    assert!(js
        .delete_stream("ORDERS")
        .await
        .unwrap_err()
        .is_stream_not_found());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_acks_deduplicates_and_checks_expected_sequences() {
    let server = server!();
    let js = js(&server.url()).await;
    js.create_stream(stream("EVENTS", &["events.>"])).await.unwrap();

    let ack = js.publish("events.a", "one").await.unwrap();
    assert_eq!(
        (ack.stream.as_str(), ack.seq, ack.duplicate),
        ("EVENTS", 1, false)
    );

    let dedup = |id: &str| PublishOptions {
        msg_id: Some(id.into()),
        ..Default::default()
    };
    let first = js
        .publish_with("events.a", None, "two", dedup("m-2"))
        .await
        .unwrap();
    let again = js
        .publish_with("events.a", None, "two", dedup("m-2"))
        .await
        .unwrap();
    assert_eq!((first.seq, first.duplicate), (2, false));
    assert_eq!((again.seq, again.duplicate), (2, true));

    // Expected last subject sequence: events.b has nothing yet (0).
    let expect_subject = |seq| PublishOptions {
        expected_last_subject_seq: Some(seq),
        ..Default::default()
    };
    let b = js
        .publish_with("events.b", None, "b1", expect_subject(0))
        .await
        .unwrap();
    assert_eq!(b.seq, 3);
    let err = js
        .publish_with("events.b", None, "b2", expect_subject(0))
        .await
        .unwrap_err();
    assert!(err.is_wrong_last_sequence(), "{err:?}");
    js.publish_with("events.b", None, "b2", expect_subject(3))
        .await
        .unwrap();

    let err = js
        .publish_with(
            "events.a",
            None,
            "x",
            PublishOptions {
                expected_last_seq: Some(1),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert!(err.is_wrong_last_sequence(), "{err:?}");
    let err = js
        .publish_with(
            "events.a",
            None,
            "x",
            PublishOptions {
                expected_last_msg_id: Some("nope".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert!(err.is_wrong_last_msg_id(), "{err:?}");
    let err = js
        .publish_with(
            "events.a",
            None,
            "x",
            PublishOptions {
                expected_stream: Some("OTHER".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(err.api_error().map(|e| e.err_code), Some(10060), "{err:?}");
    assert_eq!(js.stream_info("EVENTS").await.unwrap().state.messages, 4);

    let err = js.publish("nostream.here", "x").await.unwrap_err();
    assert!(matches!(&err, Error::NoResponders { .. }), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_consumers_fetch_ack_nak_and_term() {
    let server = server!();
    let js = js(&server.url()).await;
    js.create_stream(stream("WORK", &["work.>"])).await.unwrap();
    for i in 1..=3 {
        js.publish("work.job", format!("job {i}")).await.unwrap();
    }
    let info = js.create_consumer("WORK", pull("worker")).await.unwrap();
    assert_eq!((info.name.as_str(), info.num_pending), ("worker", 3));
    assert_eq!(js.consumer_names("WORK").await.unwrap(), ["worker"]);
    assert_eq!(
        js.consumers("WORK").await.unwrap()[0].config.ack_policy,
        AckPolicy::Explicit
    );

    let messages = within("fetch", js.fetch("WORK", "worker", 3, Duration::from_secs(5)))
        .await
        .unwrap();
    assert_eq!(messages.len(), 3);
    let infos: Vec<_> = messages.iter().map(|m| m.info().unwrap()).collect();
    assert_eq!(
        infos
            .iter()
            .map(|i| (i.stream_seq, i.consumer_seq, i.delivered, i.pending))
            .collect::<Vec<_>>(),
        [(1, 1, 1, 2), (2, 2, 1, 1), (3, 3, 1, 0)]
    );
    assert_eq!(
        (infos[0].stream.as_str(), infos[0].consumer.as_str()),
        ("WORK", "worker")
    );
    assert_eq!(&messages[0].payload[..], b"job 1");
    messages[0].ack().unwrap();
    messages[1].nak(None).unwrap();
    messages[2].term().unwrap();
    js.client().flush().await.unwrap();

    // Only the NAKed message comes back, as a second delivery.
    let again = within(
        "refetch",
        js.fetch("WORK", "worker", 3, Duration::from_millis(1500)),
    )
    .await
    .unwrap();
    assert_eq!(again.len(), 1, "{again:?}");
    let info = again[0].info().unwrap();
    assert_eq!((info.stream_seq, info.delivered), (2, 2));
    within("double ack", again[0].double_ack()).await.unwrap();

    let empty = js
        .fetch("WORK", "worker", 1, Duration::from_millis(300))
        .await
        .unwrap();
    assert!(empty.is_empty());
    let no_wait = js.fetch("WORK", "worker", 1, Duration::ZERO).await.unwrap();
    assert!(no_wait.is_empty());

    let state = js.consumer_info("WORK", "worker").await.unwrap();
    assert_eq!((state.num_ack_pending, state.num_pending), (0, 0));
    assert_eq!(state.ack_floor.stream_seq, 3);

    js.delete_consumer("WORK", "worker").await.unwrap();
    let err = js.consumer_info("WORK", "worker").await.unwrap_err();
    assert!(err.is_consumer_not_found(), "{err:?}");
    let err = js
        .fetch("WORK", "worker", 1, Duration::from_millis(300))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NoResponders { .. }), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kv_put_get_update_delete_purge_and_keys() {
    let server = server!();
    let js = js(&server.url()).await;
    let err = js.kv("cfg").await.unwrap_err();
    assert!(err.is_stream_not_found(), "{err:?}");
    let kv = js.kv_create_bucket("cfg", 3).await.unwrap();
    let info = js.stream_info("KV_cfg").await.unwrap();
    assert_eq!(info.config.subjects, ["$KV.cfg.>"]);
    assert_eq!(info.config.max_msgs_per_subject, 3);
    // Opening it again finds the same bucket.
    let kv = {
        drop(kv);
        js.kv("cfg").await.unwrap()
    };

    assert_eq!(kv.get("mode").await.unwrap(), None);
    let r1 = kv.put("mode", "fast").await.unwrap();
    assert_eq!(kv.get("mode").await.unwrap().as_deref(), Some(&b"fast"[..]));
    let entry = kv.entry("mode").await.unwrap().unwrap();
    assert_eq!(
        (entry.key.as_str(), entry.revision, entry.operation),
        ("mode", r1, Operation::Put)
    );

    let r2 = kv.update("mode", "safe", r1).await.unwrap();
    assert!(r2 > r1);
    let err = kv.update("mode", "lost", r1).await.unwrap_err();
    assert!(err.is_wrong_last_sequence(), "{err:?}");
    let err = kv.create("mode", "again").await.unwrap_err();
    assert!(err.is_wrong_last_sequence(), "{err:?}");
    kv.create("level", "1").await.unwrap();
    kv.put("a.b", "nested").await.unwrap();

    kv.delete("mode").await.unwrap();
    assert_eq!(kv.get("mode").await.unwrap(), None);
    let marker = kv.entry("mode").await.unwrap().unwrap();
    assert_eq!(marker.operation, Operation::Delete);
    // A deleted key can be created again.
    let r3 = kv.create("mode", "back").await.unwrap();
    assert_eq!(kv.get("mode").await.unwrap().as_deref(), Some(&b"back"[..]));
    assert!(r3 > marker.revision);

    kv.purge("level").await.unwrap();
    assert_eq!(kv.get("level").await.unwrap(), None);
    assert_eq!(
        kv.entry("level").await.unwrap().unwrap().operation,
        Operation::Purge
    );
    let messages = js.stream_info("KV_cfg").await.unwrap().state.messages;
    // mode keeps its last 3 of 4 (history), a.b 1, level only its PURGE marker.
    assert_eq!(messages, 5);

    let mut keys = kv.keys().await.unwrap();
    keys.sort();
    assert_eq!(keys, ["a.b", "mode"]);

    let err = kv.put("bad key", "x").await.unwrap_err();
    assert!(matches!(err, Error::InvalidArgument(_)), "{err:?}");
    js.kv_delete_bucket("cfg").await.unwrap();
    assert!(js.kv("cfg").await.unwrap_err().is_stream_not_found());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kv_watch_delivers_initial_values_then_changes() {
    let server = server!();
    let js = js(&server.url()).await;
    let kv = js.kv_create_bucket("watched", 5).await.unwrap();
    kv.put("a", "1").await.unwrap();
    kv.put("a", "2").await.unwrap();
    kv.put("b.x", "3").await.unwrap();
    kv.put("c", "4").await.unwrap();

    let mut history = kv.watch_with_history(">").await.unwrap();
    assert_eq!(history.initial(), 3);
    let mut initial = Vec::new();
    for _ in 0..3 {
        let entry = within("initial", history.next()).await.unwrap().unwrap();
        initial.push((
            entry.key,
            String::from_utf8(entry.value.to_vec()).unwrap(),
            entry.delta,
        ));
    }
    assert_eq!(
        initial,
        [
            ("a".to_string(), "2".to_string(), 2),
            ("b.x".to_string(), "3".to_string(), 1),
            ("c".to_string(), "4".to_string(), 0)
        ]
    );

    let mut b_only = kv.watch("b.*").await.unwrap();
    kv.put("b.y", "5").await.unwrap();
    kv.put("a", "6").await.unwrap();
    kv.delete("b.x").await.unwrap();

    let y = within("b.y", b_only.next()).await.unwrap().unwrap();
    assert_eq!(
        (y.key.as_str(), &y.value[..], y.operation),
        ("b.y", &b"5"[..], Operation::Put)
    );
    let deleted = within("b.x deleted", b_only.next()).await.unwrap().unwrap();
    assert_eq!(
        (deleted.key.as_str(), deleted.operation),
        ("b.x", Operation::Delete)
    );

    let mut changes = Vec::new();
    for _ in 0..3 {
        let entry = within("change", history.next()).await.unwrap().unwrap();
        changes.push((entry.key, entry.operation));
    }
    assert_eq!(
        changes,
        [
            ("b.y".to_string(), Operation::Put),
            ("a".to_string(), Operation::Put),
            ("b.x".to_string(), Operation::Delete)
        ]
    );
    assert!(
        tokio::time::timeout(Duration::from_millis(200), b_only.next())
            .await
            .is_err(),
        "nothing else matches b.*"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kv_watch_deltas_count_only_the_latest_revisions() {
    let server = server!();
    let js = js(&server.url()).await;
    let kv = js.kv_create_bucket("deltas", 5).await.unwrap();
    // An older revision of `a` (2) lies between the latest entries (1, 3, 4).
    kv.put("b", "1").await.unwrap();
    kv.put("a", "2").await.unwrap();
    kv.put("a", "3").await.unwrap();
    kv.put("c", "4").await.unwrap();
    let mut watch = kv.watch_with_history(">").await.unwrap();
    let mut seen = Vec::new();
    for _ in 0..3 {
        let entry = within("entry", watch.next()).await.unwrap().unwrap();
        seen.push((entry.key, entry.revision, entry.delta));
    }
    assert_eq!(
        seen,
        [
            ("b".to_string(), 1, 2),
            ("a".to_string(), 3, 1),
            ("c".to_string(), 4, 0)
        ],
        "delta: latest entries still to come"
    );
    let mut keys = within("keys", kv.keys()).await.unwrap();
    keys.sort();
    assert_eq!(keys, ["a", "b", "c"]);
}
