//! API error replies for bad requests, plus the account info endpoint.

use async_nats::jetstream::consumer::pull;
use async_nats::jetstream::context::{ConsumerInfoErrorKind, GetStreamErrorKind};
use async_nats::jetstream::stream::{Config, StorageType};
use async_nats::jetstream::ErrorCode;

use crate::util::*;

#[tokio::test]
async fn malformed_json_is_a_400_error() {
    let env = Env::start().await;
    let reply = env.api("STREAM.CREATE.x", "{not json").await;
    let error = &reply["error"];
    assert_eq!(error["code"], 400, "{reply}");
    // JSInvalidJSONErr in nats-server's errors.json.
    assert_eq!(error["err_code"], ErrorCode::INVALID_JSON.0, "{reply}");
    assert!(error["description"].is_string(), "{reply}");
    // Nothing was created.
    let err = within("info x", env.js.get_stream("x"))
        .await
        .expect_err("no stream x");
    assert!(matches!(err.kind(), GetStreamErrorKind::JetStream(_)), "{err:?}");

    // The same for a consumer create.
    env.stream(Config {
        name: "S".into(),
        subjects: vec!["s".into()],
        ..Default::default()
    })
    .await;
    let reply = env.api("CONSUMER.CREATE.S", "[1, 2").await;
    assert_eq!(reply["error"]["code"], 400, "{reply}");
    assert_eq!(reply["error"]["err_code"], ErrorCode::INVALID_JSON.0, "{reply}");
}

#[tokio::test]
async fn invalid_stream_names_are_rejected() {
    let env = Env::start().await;
    // A wildcard character inside the name.
    let reply = env
        .api(
            "STREAM.CREATE.bad*name",
            r#"{"name":"bad*name","subjects":["bad"]}"#,
        )
        .await;
    assert_eq!(
        reply["error"]["err_code"],
        ErrorCode::STREAM_INVALID_CONFIG.0,
        "{reply}"
    );
    // A path separator.
    let reply = env
        .api(
            "STREAM.CREATE.bad/name",
            r#"{"name":"bad/name","subjects":["bad"]}"#,
        )
        .await;
    assert_eq!(reply["error"]["code"], 400, "{reply}");
    assert_eq!(
        reply["error"]["err_code"],
        ErrorCode::STREAM_NAME_CONTAINS_PATH_SEPARATORS.0,
        "{reply}"
    );
    // The name in the subject and in the body disagree.
    let reply = env
        .api("STREAM.CREATE.ONE", r#"{"name":"TWO","subjects":["two"]}"#)
        .await;
    assert_eq!(reply["error"]["code"], 400, "{reply}");
    assert_eq!(
        reply["error"]["err_code"],
        ErrorCode::STREAM_MISMATCH.0,
        "{reply}"
    );

    let names = env.api("STREAM.NAMES", "").await;
    assert_eq!(names["total"], 0, "{names}");
}

#[tokio::test]
async fn raw_create_returns_stream_info() {
    let env = Env::start().await;
    let reply = env
        .api(
            "STREAM.CREATE.RAW",
            r#"{"name":"RAW","subjects":["raw.>"],"storage":"memory","max_msgs":5}"#,
        )
        .await;
    assert!(reply.get("error").is_none(), "{reply}");
    assert_eq!(
        reply["type"], "io.nats.jetstream.api.v1.stream_create_response",
        "{reply}"
    );
    assert_eq!(reply["config"]["name"], "RAW", "{reply}");
    assert_eq!(reply["config"]["storage"], "memory", "{reply}");
    assert_eq!(reply["config"]["max_msgs"], 5, "{reply}");
    assert_eq!(reply["state"]["messages"], 0, "{reply}");
    let info = env.info("RAW").await;
    assert_eq!(info.config.storage, StorageType::Memory);
}

#[tokio::test]
async fn consumer_on_unknown_stream_is_10059() {
    let env = Env::start().await;
    let err = within(
        "consumer on unknown stream",
        env.js.create_consumer_on_stream(
            pull::Config {
                durable_name: Some("C".into()),
                ..Default::default()
            },
            "NOPE",
        ),
    )
    .await
    .expect_err("no stream NOPE");
    assert_eq!(
        api_error(&err),
        Some((404, ErrorCode::STREAM_NOT_FOUND.0)),
        "{err:?}"
    );

    let err = within("consumer info on unknown stream", async {
        env.js
            .get_stream_no_info("NOPE")
            .await
            .unwrap()
            .consumer_info("C")
            .await
    })
    .await
    .expect_err("no stream NOPE");
    assert_eq!(err.kind(), ConsumerInfoErrorKind::StreamNotFound, "{err:?}");
}

#[tokio::test]
async fn unknown_consumer_is_10014() {
    let env = Env::start().await;
    let stream = env
        .stream(Config {
            name: "S".into(),
            subjects: vec!["s".into()],
            ..Default::default()
        })
        .await;
    let err = within("info unknown consumer", stream.consumer_info("NOPE"))
        .await
        .expect_err("no consumer");
    assert_eq!(err.kind(), ConsumerInfoErrorKind::NotFound, "{err:?}");
    let reply = env.api("CONSUMER.INFO.S.NOPE", "").await;
    assert_eq!(reply["error"]["code"], 404, "{reply}");
    assert_eq!(
        reply["error"]["err_code"],
        ErrorCode::CONSUMER_NOT_FOUND.0,
        "{reply}"
    );
    let reply = env.api("CONSUMER.DELETE.S.NOPE", "").await;
    assert_eq!(
        reply["error"]["err_code"],
        ErrorCode::CONSUMER_NOT_FOUND.0,
        "{reply}"
    );
}

#[tokio::test]
async fn account_info_counts_streams_and_consumers() {
    let env = Env::start().await;
    let account = within("account info", env.js.query_account())
        .await
        .expect("account info");
    assert_eq!((account.streams, account.consumers), (0, 0));
    let stream = env
        .stream(Config {
            name: "S".into(),
            subjects: vec!["s".into()],
            ..Default::default()
        })
        .await;
    env.stream(Config {
        name: "M".into(),
        subjects: vec!["m".into()],
        storage: StorageType::Memory,
        ..Default::default()
    })
    .await;
    pull_consumer(&stream, "C", Default::default()).await;
    env.publish("s", vec![0u8; 1000]).await;
    env.publish("m", vec![0u8; 1000]).await;
    let account = within("account info", env.js.query_account())
        .await
        .expect("account info");
    assert_eq!((account.streams, account.consumers), (2, 1));
    assert!(account.storage >= 1000, "file bytes: {}", account.storage);
    assert!(account.memory >= 1000, "memory bytes: {}", account.memory);
}
