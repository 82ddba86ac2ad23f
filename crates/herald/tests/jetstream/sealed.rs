//! A sealed stream (set by an update) refuses publishes, deletes and
//! purges, and cannot be unsealed; a stream cannot be created sealed.

use async_nats::jetstream::stream::Config;

use crate::util::*;

#[tokio::test]
async fn sealed_stream_refuses_every_change() {
    let env = Env::start().await;
    let config = Config {
        name: "SEAL".into(),
        subjects: vec!["seal.>".into()],
        ..Default::default()
    };
    env.stream(config.clone()).await;
    env.publish("seal.a", "before").await;

    let created_sealed = env
        .api(
            "STREAM.CREATE.SEAL2",
            r#"{"name":"SEAL2","subjects":["seal2"],"sealed":true}"#,
        )
        .await;
    assert_eq!(created_sealed["error"]["err_code"], 10052, "{created_sealed}");

    let sealed = Config {
        sealed: true,
        ..config.clone()
    };
    within("seal", env.js.update_stream(&sealed))
        .await
        .expect("seal by update");
    let refused = env
        .try_publish(
            "seal.a",
            async_nats::jetstream::message::PublishMessage::build().payload("after".into()),
        )
        .await;
    assert_publish_error(refused, 10109, "publish to a sealed stream");
    let purge = env.api("STREAM.PURGE.SEAL", "").await;
    assert_eq!(purge["error"]["err_code"], 10109, "{purge}");
    let delete = env.api("STREAM.MSG.DELETE.SEAL", r#"{"seq":1}"#).await;
    assert_eq!(delete["error"]["err_code"], 10109, "{delete}");
    assert!(
        env.js.update_stream(&config).await.is_err(),
        "a sealed stream cannot be unsealed"
    );
    assert_eq!(env.info("SEAL").await.state.messages, 1);
}
