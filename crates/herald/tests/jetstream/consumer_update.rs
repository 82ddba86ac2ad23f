//! Updating a consumer: limits change in place; the ack policy, the deliver
//! policy and push/pull cannot change (10012, as nats-server).

use async_nats::jetstream::consumer::{pull, AckPolicy};
use async_nats::jetstream::stream::Config;

use crate::util::*;

#[tokio::test]
async fn limits_update_but_ack_policy_does_not() {
    let env = Env::start().await;
    let stream = env
        .stream(Config {
            name: "UPD".into(),
            subjects: vec!["upd.>".into()],
            ..Default::default()
        })
        .await;
    let config = pull::Config {
        durable_name: Some("C".into()),
        max_ack_pending: 10,
        ..Default::default()
    };
    within("create", stream.create_consumer(config.clone()))
        .await
        .expect("create");
    let updated = pull::Config {
        max_ack_pending: 20,
        filter_subject: "upd.a".into(),
        ..config.clone()
    };
    within("update", stream.update_consumer(updated))
        .await
        .expect("limits and filter update");
    let info = consumer_info(&stream, "C").await;
    assert_eq!(info.config.max_ack_pending, 20);
    assert_eq!(info.config.filter_subject, "upd.a");

    let other_ack = pull::Config {
        ack_policy: AckPolicy::All,
        ..config
    };
    let err = within("update ack policy", stream.update_consumer(other_ack))
        .await
        .expect_err("ack policy cannot change");
    assert_eq!(err_code(&err), 10012, "{err:?}");
    assert_eq!(
        consumer_info(&stream, "C").await.config.ack_policy,
        AckPolicy::Explicit
    );
}
