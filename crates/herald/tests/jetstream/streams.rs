//! Stream management: create, info, update, list, delete, and the errors
//! of each.

use std::time::Duration;

use async_nats::jetstream::context::{CreateStreamErrorKind, GetStreamErrorKind};
use async_nats::jetstream::stream::{Config, DiscardPolicy, RetentionPolicy, StorageType};
use async_nats::jetstream::ErrorCode;
use futures_util::TryStreamExt as _;

use crate::util::*;

#[tokio::test]
async fn create_file_and_memory_streams() {
    let env = Env::start().await;
    let file = env
        .stream(Config {
            name: "FILE".into(),
            subjects: vec!["file.>".into()],
            storage: StorageType::File,
            ..Default::default()
        })
        .await;
    let info = file.cached_info();
    assert_eq!(info.config.name, "FILE");
    assert_eq!(info.config.storage, StorageType::File);
    assert_eq!(info.config.subjects, vec!["file.>".to_string()]);
    assert_eq!(info.state.messages, 0);
    assert_eq!(info.state.bytes, 0);
    assert_eq!(info.state.last_sequence, 0);

    let memory = env
        .stream(Config {
            name: "MEM".into(),
            subjects: vec!["mem.>".into()],
            storage: StorageType::Memory,
            ..Default::default()
        })
        .await;
    assert_eq!(memory.cached_info().config.storage, StorageType::Memory);

    // Both accept messages, each on its own subjects.
    let a = env.publish("file.a", "one").await;
    let b = env.publish("mem.a", "two").await;
    assert_eq!((a.stream.as_str(), a.sequence), ("FILE", 1));
    assert_eq!((b.stream.as_str(), b.sequence), ("MEM", 1));
    assert_eq!(env.info("FILE").await.state.messages, 1);
    assert_eq!(env.info("MEM").await.state.messages, 1);
    assert_eq!(env.info("MEM").await.config.storage, StorageType::Memory);
}

#[tokio::test]
async fn create_is_idempotent_with_the_same_config() {
    let env = Env::start().await;
    let config = Config {
        name: "SAME".into(),
        subjects: vec!["same.>".into()],
        max_messages: 10,
        ..Default::default()
    };
    env.stream(config.clone()).await;
    env.publish("same.x", "kept").await;
    // Creating again with an identical config succeeds and changes nothing.
    let again = env.stream(config).await;
    assert_eq!(again.cached_info().state.messages, 1);
    assert_eq!(again.cached_info().config.max_messages, 10);
}

#[tokio::test]
async fn info_echoes_config_and_counts_state() {
    let env = Env::start().await;
    let stream = env
        .stream(Config {
            name: "ORDERS".into(),
            description: Some("all orders".into()),
            subjects: vec!["orders.*".into()],
            max_messages: 1000,
            max_bytes: 1 << 20,
            max_age: Duration::from_secs(3600),
            max_message_size: 4096,
            max_messages_per_subject: 100,
            duplicate_window: Duration::from_secs(60),
            discard: DiscardPolicy::Old,
            retention: RetentionPolicy::Limits,
            ..Default::default()
        })
        .await;
    let created = stream.cached_info().created;

    let first = env.publish("orders.new", "a").await;
    env.publish("orders.paid", "bb").await;
    let last = env.publish("orders.new", "ccc").await;
    assert_eq!((first.sequence, last.sequence), (1, 3));

    let info = env.info("ORDERS").await;
    let c = &info.config;
    assert_eq!(c.name, "ORDERS");
    assert_eq!(c.description.as_deref(), Some("all orders"));
    assert_eq!(c.subjects, vec!["orders.*".to_string()]);
    assert_eq!(c.max_messages, 1000);
    assert_eq!(c.max_bytes, 1 << 20);
    assert_eq!(c.max_age, Duration::from_secs(3600));
    assert_eq!(c.max_message_size, 4096);
    assert_eq!(c.max_messages_per_subject, 100);
    assert_eq!(c.duplicate_window, Duration::from_secs(60));
    assert_eq!(c.discard, DiscardPolicy::Old);
    assert_eq!(c.retention, RetentionPolicy::Limits);
    assert_eq!(c.storage, StorageType::File);
    assert_eq!(c.num_replicas, 1);
    assert_eq!(info.created, created, "created time is stable");

    let s = &info.state;
    assert_eq!(s.messages, 3);
    assert!(s.bytes > 6, "bytes counts at least the payloads: {}", s.bytes);
    assert_eq!(s.first_sequence, 1);
    assert_eq!(s.last_sequence, 3);
    assert_eq!(s.subjects_count, 2);
    assert_eq!(s.consumer_count, 0);
    assert!(s.first_timestamp <= s.last_timestamp);
    let first_msg = stream.get_raw_message(1).await.expect("message 1");
    let last_msg = stream.get_raw_message(3).await.expect("message 3");
    assert_eq!(s.first_timestamp, first_msg.time);
    assert_eq!(s.last_timestamp, last_msg.time);

    // A consumer shows up in the count.
    pull_consumer(&stream, "C", Default::default()).await;
    assert_eq!(env.info("ORDERS").await.state.consumer_count, 1);
}

#[tokio::test]
async fn info_fills_in_defaults() {
    let env = Env::start().await;
    env.stream(Config {
        name: "DEFAULTS".into(),
        subjects: vec!["defaults".into()],
        ..Default::default()
    })
    .await;
    let c = env.info("DEFAULTS").await.config;
    // Unset limits mean "unlimited" (-1); the duplicate window defaults to 2 minutes.
    assert_eq!(c.max_messages, -1);
    assert_eq!(c.max_bytes, -1);
    assert_eq!(c.max_messages_per_subject, -1);
    assert_eq!(c.max_consumers, -1);
    assert_eq!(c.max_message_size, -1);
    assert_eq!(c.max_age, Duration::ZERO);
    assert_eq!(c.duplicate_window, Duration::from_secs(120));
    assert_eq!(c.retention, RetentionPolicy::Limits);
    assert_eq!(c.discard, DiscardPolicy::Old);
    assert_eq!(c.storage, StorageType::File);
    assert_eq!(c.num_replicas, 1);
}

#[tokio::test]
async fn stream_without_subjects_captures_its_name() {
    let env = Env::start().await;
    let info = env
        .stream(Config {
            name: "bare".into(),
            ..Default::default()
        })
        .await
        .cached_info()
        .clone();
    assert_eq!(info.config.subjects, vec!["bare".to_string()]);
    let ack = env.publish("bare", "x").await;
    assert_eq!((ack.stream.as_str(), ack.sequence), ("bare", 1));
}

#[tokio::test]
async fn update_changes_limits_and_subjects() {
    let env = Env::start().await;
    let mut config = Config {
        name: "UPD".into(),
        subjects: vec!["upd.a".into()],
        ..Default::default()
    };
    env.stream(config.clone()).await;
    for i in 1..=5 {
        env.publish("upd.a", format!("m{i}")).await;
    }

    config.max_messages = 2;
    config.subjects = vec!["upd.a".into(), "upd.b".into()];
    config.description = Some("updated".into());
    let info = within("update stream", env.js.update_stream(&config))
        .await
        .expect("update stream");
    assert_eq!(info.config.max_messages, 2);
    assert_eq!(info.config.description.as_deref(), Some("updated"));

    // The new limit applies to what is stored right away: the oldest go.
    let info = env.info("UPD").await;
    assert_eq!(info.config.max_messages, 2);
    assert_eq!(
        info.config.subjects,
        vec!["upd.a".to_string(), "upd.b".to_string()]
    );
    assert_eq!(info.state.messages, 2);
    assert_eq!(info.state.first_sequence, 4);
    assert_eq!(info.state.last_sequence, 5);

    // The added subject is captured.
    let ack = env.publish("upd.b", "new subject").await;
    assert_eq!((ack.stream.as_str(), ack.sequence), ("UPD", 6));
    assert_eq!(env.info("UPD").await.state.messages, 2);
}

#[tokio::test]
async fn update_cannot_change_storage_or_unknown_stream() {
    let env = Env::start().await;
    let config = Config {
        name: "IMMUTABLE".into(),
        subjects: vec!["imm".into()],
        storage: StorageType::File,
        ..Default::default()
    };
    env.stream(config.clone()).await;
    let err = within(
        "update storage",
        env.js.update_stream(&Config {
            storage: StorageType::Memory,
            ..config.clone()
        }),
    )
    .await
    .expect_err("storage type cannot change");
    assert_eq!(err_code(&err), ErrorCode::STREAM_INVALID_CONFIG.0, "{err:?}");
    assert_eq!(env.info("IMMUTABLE").await.config.storage, StorageType::File);

    let err = within(
        "update unknown",
        env.js.update_stream(&Config {
            name: "NOPE".into(),
            subjects: vec!["nope".into()],
            ..Default::default()
        }),
    )
    .await
    .expect_err("unknown stream");
    // The client maps 10059 on update to its NotFound kind.
    assert_eq!(err.kind(), CreateStreamErrorKind::NotFound, "{err:?}");
}

#[tokio::test]
async fn list_names_and_infos() {
    let env = Env::start().await;
    for (name, subject) in [("ALPHA", "alpha.>"), ("BETA", "beta.>"), ("GAMMA", "gamma.*")] {
        env.stream(Config {
            name: name.into(),
            subjects: vec![subject.into()],
            ..Default::default()
        })
        .await;
    }
    env.publish("beta.x", "1").await;

    let mut names: Vec<String> = within("stream names", env.js.stream_names().try_collect())
        .await
        .expect("stream names");
    names.sort();
    assert_eq!(names, ["ALPHA", "BETA", "GAMMA"]);

    let infos: Vec<async_nats::jetstream::stream::Info> =
        within("stream list", env.js.streams().try_collect())
            .await
            .expect("stream list");
    let mut listed: Vec<(String, Vec<String>, u64)> = infos
        .iter()
        .map(|i| (i.config.name.clone(), i.config.subjects.clone(), i.state.messages))
        .collect();
    listed.sort();
    assert_eq!(
        listed,
        vec![
            ("ALPHA".to_string(), vec!["alpha.>".to_string()], 0),
            ("BETA".to_string(), vec!["beta.>".to_string()], 1),
            ("GAMMA".to_string(), vec!["gamma.*".to_string()], 0),
        ]
    );

    // Lookup by subject ($JS.API.STREAM.NAMES with a subject filter).
    let by_subject = within("stream by subject", env.js.stream_by_subject("gamma.one"))
        .await
        .expect("stream by subject");
    assert_eq!(by_subject, "GAMMA");
    let none = within("stream by subject", env.js.stream_by_subject("delta.one")).await;
    assert!(none.is_err(), "no stream captures delta.one: {none:?}");
}

#[tokio::test]
async fn delete_stream_removes_it() {
    let env = Env::start().await;
    env.stream(Config {
        name: "GONE".into(),
        subjects: vec!["gone.>".into()],
        ..Default::default()
    })
    .await;
    env.publish("gone.a", "x").await;

    let status = within("delete stream", env.js.delete_stream("GONE"))
        .await
        .expect("delete stream");
    assert!(status.success);

    let err = within("info deleted", env.js.get_stream("GONE"))
        .await
        .expect_err("deleted stream has no info");
    assert_eq!(err_code(&err), ErrorCode::STREAM_NOT_FOUND.0);
    let Err(err) = within("delete again", env.js.delete_stream("GONE")).await else {
        panic!("deleting twice must fail");
    };
    assert_eq!(err_code(&err), ErrorCode::STREAM_NOT_FOUND.0);
    assert_no_stream(
        env.try_publish(
            "gone.a",
            async_nats::jetstream::message::PublishMessage::build().payload("y".into()),
        )
        .await,
        "publish to a deleted stream's subject",
    );
    let names: Vec<String> = within("stream names", env.js.stream_names().try_collect())
        .await
        .expect("stream names");
    assert!(names.is_empty(), "{names:?}");

    // The name can be used again, starting from sequence 1.
    env.stream(Config {
        name: "GONE".into(),
        subjects: vec!["gone.>".into()],
        ..Default::default()
    })
    .await;
    assert_eq!(env.publish("gone.b", "z").await.sequence, 1);
}

#[tokio::test]
async fn create_with_conflicting_config_is_10058() {
    let env = Env::start().await;
    env.stream(Config {
        name: "TAKEN".into(),
        subjects: vec!["taken.a".into()],
        ..Default::default()
    })
    .await;
    let err = within(
        "conflicting create",
        env.js.create_stream(Config {
            name: "TAKEN".into(),
            subjects: vec!["taken.b".into()],
            ..Default::default()
        }),
    )
    .await
    .expect_err("same name, different config");
    match err.kind() {
        CreateStreamErrorKind::JetStream(api) => {
            assert_eq!(api.error_code(), ErrorCode::STREAM_NAME_EXIST, "{api}");
            assert_eq!(api.code(), 400);
        }
        other => panic!("expected a JetStream error, got {other:?}"),
    }
    // The original is untouched.
    assert_eq!(
        env.info("TAKEN").await.config.subjects,
        vec!["taken.a".to_string()]
    );
}

#[tokio::test]
async fn info_on_unknown_stream_is_10059() {
    let env = Env::start().await;
    let err = within("info unknown", env.js.get_stream("UNKNOWN"))
        .await
        .expect_err("no such stream");
    match err.kind() {
        GetStreamErrorKind::JetStream(api) => {
            assert_eq!(api.error_code(), ErrorCode::STREAM_NOT_FOUND, "{api}");
            assert_eq!(api.code(), 404);
        }
        other => panic!("expected a JetStream error, got {other:?}"),
    }
    // The same through the raw API.
    let reply = env.api("STREAM.INFO.UNKNOWN", "").await;
    assert_eq!(reply["error"]["code"], 404, "{reply}");
    assert_eq!(reply["error"]["err_code"], 10059, "{reply}");
}

#[tokio::test]
async fn wildcard_subjects_capture_matching_messages() {
    let env = Env::start().await;
    let stream = env
        .stream(Config {
            name: "WILD".into(),
            subjects: vec!["events.*.created".into(), "logs.>".into()],
            ..Default::default()
        })
        .await;
    let captured = [
        "events.user.created",
        "logs.app",
        "logs.app.db.slow",
        "events.order.created",
    ];
    for (i, subject) in captured.iter().enumerate() {
        let ack = env.publish(subject, format!("m{i}")).await;
        assert_eq!(
            (ack.stream.as_str(), ack.sequence),
            ("WILD", i as u64 + 1),
            "{subject}"
        );
    }
    for subject in [
        "events.created",
        "events.user.deleted",
        "events.a.b.created",
        "logs",
        "other",
    ] {
        let msg = async_nats::jetstream::message::PublishMessage::build().payload("no".into());
        assert_no_stream(env.try_publish(subject, msg).await, subject);
    }
    let info = env.info("WILD").await;
    assert_eq!(info.state.messages, 4);
    assert_eq!(info.state.subjects_count, 4);
    for (i, subject) in captured.iter().enumerate() {
        let message = stream
            .get_raw_message(i as u64 + 1)
            .await
            .expect("stored message");
        assert_eq!(message.subject.as_str(), *subject);
        assert_eq!(message.payload, format!("m{i}").as_bytes());
    }
}

#[tokio::test]
async fn overlapping_subjects_are_rejected_with_10065() {
    let env = Env::start().await;
    env.stream(Config {
        name: "FIRST".into(),
        subjects: vec!["shared.>".into()],
        ..Default::default()
    })
    .await;
    for subjects in [
        vec!["shared.a"],
        vec!["shared.*"],
        vec!["shared.>"],
        vec!["other", "shared.x.y"],
    ] {
        let err = within(
            "overlapping create",
            env.js.create_stream(Config {
                name: "SECOND".into(),
                subjects: subjects.iter().map(|s| s.to_string()).collect(),
                ..Default::default()
            }),
        )
        .await
        .expect_err("overlapping subjects");
        assert_eq!(
            err_code(&err),
            ErrorCode::STREAM_SUBJECT_OVERLAP.0,
            "{subjects:?}: {err:?}"
        );
    }
    // Disjoint subjects are fine; updating into an overlap is not.
    let mut disjoint = Config {
        name: "SECOND".into(),
        subjects: vec!["private.>".into()],
        ..Default::default()
    };
    env.stream(disjoint.clone()).await;
    disjoint.subjects.push("shared.b".into());
    let err = within("overlapping update", env.js.update_stream(&disjoint))
        .await
        .expect_err("update into an overlap");
    assert_eq!(err_code(&err), ErrorCode::STREAM_SUBJECT_OVERLAP.0, "{err:?}");
    assert_eq!(
        env.info("SECOND").await.config.subjects,
        vec!["private.>".to_string()]
    );
}

/// A stream acking what it captures in the server's API spaces would answer
/// API requests with PubAcks; nats-server refuses those subjects unless the
/// stream is `no_ack`, and so does Herald, with the same code and message.
#[tokio::test]
async fn api_subject_spaces_need_no_ack() {
    let env = Env::start().await;
    let create = |name: &str, subject: &str, no_ack: bool| {
        let body = serde_json::json!({
            "name": name, "subjects": [subject], "no_ack": no_ack, "storage": "memory",
        });
        let (name, body) = (name.to_string(), body.to_string());
        let env = &env;
        async move { env.api(&format!("STREAM.CREATE.{name}"), body).await }
    };
    for (subject, why) in [
        (">", "capturing all subjects requires no-ack to be true"),
        (
            "$JS.API.>",
            "subjects that overlap with jetstream api require no-ack to be true",
        ),
        (
            "*.>",
            "subjects that overlap with jetstream api require no-ack to be true",
        ),
        (
            "$SYS.REQ.>",
            "subjects that overlap with system api require no-ack to be true",
        ),
    ] {
        let refused = create("REFUSED", subject, false).await;
        assert_eq!(refused["error"]["err_code"], 10052, "{subject}: {refused}");
        let description = refused["error"]["description"].as_str().unwrap_or_default();
        assert!(description.contains(why), "{subject}: {refused}");
    }
    // Advisories are ordinary events.
    let advisories = create("ADVISORIES", "$JS.EVENT.ADVISORY.>", false).await;
    assert!(advisories["error"].is_null(), "{advisories}");
    let deleted = env.api("STREAM.DELETE.ADVISORIES", "").await;
    assert_eq!(deleted["success"], true, "{deleted}");
    // With no_ack the stream only stores: the API keeps answering, and a
    // publish with a reply subject gets no PubAck.
    let everything = create("EVERYTHING", ">", true).await;
    assert!(everything["error"].is_null(), "{everything}");
    let info = env.api("INFO", "").await;
    assert!(info["error"].is_null(), "{info}");
    let request = env.client.request("orders.new", "x".into());
    let answer = tokio::time::timeout(std::time::Duration::from_millis(500), request).await;
    assert!(
        !matches!(answer, Ok(Ok(_))),
        "a no_ack stream answered a publish: {answer:?}"
    );
    assert!(env.info("EVERYTHING").await.state.messages >= 1);
}
