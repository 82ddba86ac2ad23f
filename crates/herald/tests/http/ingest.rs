//! `POST /v1/events`: CloudEvents in binary, structured and batch mode and
//! plain bodies reach NATS subscribers and streams; bad input gets precise
//! problems and stores nothing.

use futures_util::StreamExt as _;
use serde_json::{json, Value};

use crate::util::Env;

fn structured(id: &str, ty: &str, data: Value) -> String {
    json!({"specversion": "1.0", "id": id, "source": "/shop", "type": ty, "data": data}).to_string()
}

async fn next_message(env: &Env, sub: &mut async_nats::Subscriber) -> async_nats::Message {
    match tokio::time::timeout(crate::util::WAIT, sub.next()).await {
        Ok(msg) => msg.expect("subscription open"),
        Err(_) => panic!("no NATS delivery; server log:\n{}", env.server.log()),
    }
}

fn header<'a>(msg: &'a async_nats::Message, name: &str) -> Option<&'a str> {
    msg.headers.as_ref()?.get(name).map(|v| v.as_str())
}

#[tokio::test]
async fn binary_mode_reaches_a_nats_subscriber_with_its_attributes_as_headers() {
    let env = Env::start().await;
    let mut sub = env.subscribe("orders.created").await;
    let (status, body) = env
        .post(
            "/v1/events/orders.created",
            "application/json",
            &[
                ("ce-specversion", "1.0"),
                ("ce-id", "b-1"),
                ("ce-source", "/shop"),
                ("ce-type", "order.created"),
                ("ce-tenant", "acme"),
            ],
            r#"{"order":1}"#,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["subject"], "orders.created");
    assert_eq!(body["delivered"], true);
    assert!(body.get("stream").is_none(), "no stream captures it: {body}");
    let msg = next_message(&env, &mut sub).await;
    assert_eq!(msg.payload.as_ref(), br#"{"order":1}"#);
    assert_eq!(header(&msg, "ce-id"), Some("b-1"));
    assert_eq!(header(&msg, "ce-type"), Some("order.created"));
    assert_eq!(header(&msg, "ce-tenant"), Some("acme"));
    assert_eq!(header(&msg, "content-type"), Some("application/json"));
    // The stream's dedup id: source and id, as CloudEvents scopes ids.
    assert_eq!(header(&msg, "Nats-Msg-Id"), Some("ce:5:/shop:b-1"));
}

#[tokio::test]
async fn structured_mode_is_stored_by_the_capturing_stream_and_reported() {
    let env = Env::start().await;
    env.stream("ORDERS", &["orders.>"]).await;
    let mut sub = env.subscribe("orders.>").await;
    let event = structured("s-1", "order.created", json!({"order": 7}));
    let (status, body) = env
        .post("/v1/events/orders.eu", "application/cloudevents+json", &[], event)
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["stream"], "ORDERS");
    assert_eq!(body["seq"], 1);
    let msg = next_message(&env, &mut sub).await;
    assert_eq!(msg.payload.as_ref(), br#"{"order":7}"#);
    assert_eq!(header(&msg, "ce-source"), Some("/shop"));
    let stored = env
        .js
        .get_stream("ORDERS")
        .await
        .unwrap()
        .get_raw_message(1)
        .await
        .unwrap();
    assert_eq!(stored.subject.as_str(), "orders.eu");
    assert_eq!(stored.payload.as_ref(), br#"{"order":7}"#);
    assert_eq!(
        stored.headers.get("ce-type").map(|v| v.as_str()),
        Some("order.created")
    );
}

#[tokio::test]
async fn a_retried_event_id_is_stored_once() {
    let env = Env::start().await;
    env.stream("ORDERS", &["orders.>"]).await;
    let event = structured("same-id", "order.created", json!(1));
    let (_, first) = env
        .post(
            "/v1/events/orders.x",
            "application/cloudevents+json",
            &[],
            event.clone(),
        )
        .await;
    let (status, second) = env
        .post("/v1/events/orders.x", "application/cloudevents+json", &[], event)
        .await;
    assert_eq!(status, 200);
    assert_eq!(first["duplicate"], Value::Null, "{first}");
    assert_eq!(second["duplicate"], true, "{second}");
    assert_eq!(second["seq"], first["seq"]);
    assert_eq!(env.stored_messages("ORDERS").await, 1);
}

#[tokio::test]
async fn a_publish_captured_by_a_no_ack_stream_is_answered_without_waiting_for_a_pub_ack() {
    let env = Env::start().await;
    let config = async_nats::jetstream::stream::Config {
        name: "QUIET".into(),
        subjects: vec!["quiet.>".into()],
        no_ack: true,
        ..Default::default()
    };
    env.js
        .create_stream(config)
        .await
        .expect("create a no_ack stream");
    // A no_ack stream answers nothing: waiting for its PubAck ended in a
    // 504 after 5 s, though the message was stored.
    let started = std::time::Instant::now();
    let (status, body) = env.post("/v1/events/quiet.x", "text/plain", &[], "hi").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["delivered"], true, "{body}");
    assert!(body.get("stream").is_none(), "no PubAck to report: {body}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(4),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(env.stored_messages("QUIET").await, 1);
}

#[tokio::test]
async fn events_of_two_sources_with_the_same_id_are_both_stored() {
    let env = Env::start().await;
    env.stream("ORDERS", &["orders.>"]).await;
    let mut seqs = Vec::new();
    for source in ["/shop/eu", "/shop/us"] {
        let event = json!({
            "specversion": "1.0", "id": "1", "source": source, "type": "order.created", "data": source,
        })
        .to_string();
        let (status, body) = env
            .post("/v1/events/orders.x", "application/cloudevents+json", &[], event)
            .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["duplicate"], Value::Null, "{source}: {body}");
        seqs.push(body["seq"].clone());
    }
    assert_eq!(seqs, [json!(1), json!(2)]);
    assert_eq!(env.stored_messages("ORDERS").await, 2);
}

#[tokio::test]
async fn a_batch_reaches_subscriber_and_stream_in_order() {
    let env = Env::start().await;
    env.stream("ORDERS", &["orders.>"]).await;
    let mut sub = env.subscribe("orders.batch").await;
    let batch = format!(
        "[{},{},{}]",
        structured("1", "t", json!(1)),
        structured("2", "t", json!(2)),
        structured("3", "t", json!(3))
    );
    let (status, body) = env
        .post(
            "/v1/events/orders.batch",
            "application/cloudevents-batch+json",
            &[],
            batch,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let seqs: Vec<_> = body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["seq"].clone())
        .collect();
    assert_eq!(seqs, [json!(1), json!(2), json!(3)]);
    for expected in ["1", "2", "3"] {
        let msg = next_message(&env, &mut sub).await;
        assert_eq!(msg.payload.as_ref(), expected.as_bytes());
        assert_eq!(header(&msg, "ce-id"), Some(expected));
    }
}

#[tokio::test]
async fn the_subject_template_routes_events_posted_without_a_subject() {
    let env = Env::start().await;
    let mut sub = env.subscribe("billing.invoice.paid").await;
    let event = structured("t-1", "billing.invoice.paid", json!({}));
    let (status, body) = env
        .post("/v1/events", "application/cloudevents+json", &[], event)
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["subject"], "billing.invoice.paid");
    next_message(&env, &mut sub).await;
    let (status, body) = env.post("/v1/events", "application/json", &[], "{}").await;
    assert_eq!(status, 400, "a plain body needs a subject: {body}");
}

#[tokio::test]
async fn plain_bodies_keep_their_content_type_and_idempotency_key() {
    let env = Env::start().await;
    env.stream("LOGS", &["logs.>"]).await;
    let mut sub = env.subscribe("logs.app").await;
    for _ in 0..2 {
        let (status, body) = env
            .post(
                "/v1/events/logs.app",
                "text/plain",
                &[("idempotency-key", "k-1")],
                "started",
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }
    let msg = next_message(&env, &mut sub).await;
    assert_eq!(msg.payload.as_ref(), b"started");
    assert_eq!(header(&msg, "content-type"), Some("text/plain"));
    assert_eq!(
        env.stored_messages("LOGS").await,
        1,
        "the idempotency key is the dedup id"
    );
}

#[tokio::test]
async fn malformed_events_get_precise_problems_and_publish_nothing() {
    let env = Env::start().await;
    env.stream("ORDERS", &["orders.>"]).await;
    let cases = [
        (r#"{"specversion":"1.0","id":"1","type":"t"}"#, "source"),
        (
            r#"{"specversion":"0.3","id":"1","source":"s","type":"t"}"#,
            "specversion",
        ),
        (
            r#"{"specversion":"1.0","id":"1","source":"s","type":"t","time":"noon"}"#,
            "time",
        ),
        (
            r#"{"specversion":"1.0","id":"1","source":"s","type":"t","data":1,"data_base64":"AA=="}"#,
            "data",
        ),
        (r#"{"specversion":"1.0""#, "JSON"),
        (r#"[1,2]"#, "object"),
    ];
    for (body, mentions) in cases {
        let (status, problem) = env
            .post("/v1/events/orders.bad", "application/cloudevents+json", &[], body)
            .await;
        assert_eq!(status, 400, "{body}: {problem}");
        assert!(
            problem["detail"].as_str().unwrap().contains(mentions),
            "{body}: the detail should mention {mentions}: {problem}"
        );
    }
    let batch = format!("[{},{{}}]", structured("1", "t", json!(1)));
    let (status, problem) = env
        .post(
            "/v1/events/orders.bad",
            "application/cloudevents-batch+json",
            &[],
            batch,
        )
        .await;
    assert_eq!(status, 400);
    assert!(
        problem["detail"].as_str().unwrap().contains("event 1"),
        "{problem}"
    );
    let (status, problem) = env
        .post(
            "/v1/events/orders.bad",
            "application/json",
            &[("ce-specversion", "1.0"), ("ce-id", "1")],
            "{}",
        )
        .await;
    assert_eq!(status, 400, "{problem}");
    assert_eq!(
        env.stored_messages("ORDERS").await,
        0,
        "a refused batch stores none of its events"
    );
}

#[tokio::test]
async fn bad_subjects_oversize_bodies_and_stream_refusals_are_problems() {
    let env = Env::start().await;
    env.stream("ORDERS", &["orders.>"]).await;
    let (status, problem) = env.post("/v1/events/orders.*", "text/plain", &[], "x").await;
    assert_eq!(status, 400, "{problem}");
    let (status, problem) = env.post("/v1/events/a..b", "text/plain", &[], "x").await;
    assert_eq!(status, 400, "{problem}");
    let big = vec![b'x'; 1024 * 1024 + 1];
    let (status, problem) = env
        .post("/v1/events/orders.big", "application/octet-stream", &[], big)
        .await;
    assert_eq!(status, 413, "{problem}");
    let (status, problem) = env
        .post(
            "/v1/events/orders.x",
            "text/plain",
            &[("nats-expected-last-sequence", "5")],
            "late",
        )
        .await;
    assert_eq!(status, 400, "{problem}");
    assert_eq!(problem["err_code"], 10071, "{problem}");
    let (status, problem) = env.get("/v1/nothing-here").await;
    assert_eq!(status, 404, "{problem}");
}
