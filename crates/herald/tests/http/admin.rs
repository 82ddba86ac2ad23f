//! The administration API (`/v1/server`, `/v1/streams…`, `/v1/kv…`) and
//! the OpenAPI document: every operation through reqwest against the
//! binary, with the NATS side (async-nats) seeing the same streams,
//! consumers and buckets; and the document checked against the router.

mod kv;
mod openapi;

use reqwest::header::HeaderMap;
use reqwest::Method;
use serde_json::{json, Value};

use crate::util::{status_and_json, within, Env};

/// One request; the status, the JSON body (`Null` when not JSON) and the
/// response headers. Error bodies are checked to be problems.
pub(super) async fn send(
    env: &Env,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<(&str, Vec<u8>)>,
) -> (u16, Value, HeaderMap) {
    let mut request = env.http.request(method.clone(), env.url(path));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    if let Some((content_type, bytes)) = body {
        request = request.header("content-type", content_type).body(bytes);
    }
    let response = within("request", request.send())
        .await
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
    let headers = response.headers().clone();
    let (status, json) = status_and_json(response).await;
    (status, json, headers)
}

pub(super) async fn get(env: &Env, path: &str) -> (u16, Value) {
    let (status, json, _) = send(env, Method::GET, path, &[], None).await;
    (status, json)
}

pub(super) async fn send_json(env: &Env, method: Method, path: &str, body: Value) -> (u16, Value) {
    let bytes = body.to_string().into_bytes();
    let (status, json, _) = send(env, method, path, &[], Some(("application/json", bytes))).await;
    (status, json)
}

pub(super) async fn delete(env: &Env, path: &str) -> (u16, Value) {
    let (status, json, _) = send(env, Method::DELETE, path, &[], None).await;
    (status, json)
}

/// Asserts a problem: status, and the JetStream code when given.
pub(super) fn assert_problem(what: &str, (status, body): &(u16, Value), want: u16, err_code: Option<u64>) {
    assert_eq!(*status, want, "{what}: {body}");
    if let Some(code) = err_code {
        assert_eq!(body["err_code"], code, "{what}: {body}");
    }
}

async fn publish(env: &Env, subject: &str, payload: &'static [u8]) -> u64 {
    within("publish", async {
        env.js
            .publish(subject.to_string(), payload.into())
            .await
            .expect("publish")
            .await
            .expect("puback")
            .sequence
    })
    .await
}

#[tokio::test]
async fn server_info_reports_identity_and_jetstream_totals() {
    let env = Env::start().await;
    env.stream("ORDERS", &["orders.>"]).await;
    let (status, body) = get(&env, "/v1/server").await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body["server_id"].as_str().is_some_and(|id| !id.is_empty()),
        "{body}"
    );
    assert_eq!(body["streams"], 1);
    assert_eq!(body["consumers"], 0);
    assert_eq!(body["max_payload"], 1024 * 1024);
    assert!(
        body["connections"].as_u64().unwrap_or(0) >= 1,
        "the test's NATS client: {body}"
    );
    assert!(
        body["uptime_seconds"].is_u64() && body["start"].is_string(),
        "{body}"
    );
}

#[tokio::test]
async fn streams_are_created_read_updated_purged_and_deleted() {
    let env = Env::start().await;
    let config = json!({"name": "ORDERS", "subjects": ["orders.>"], "max_msgs": 100});
    let (status, info) = send_json(&env, Method::POST, "/v1/streams", config.clone()).await;
    assert_eq!(status, 201, "{info}");
    assert_eq!(info["config"]["max_msgs"], 100);
    assert_eq!(info["config"]["max_bytes"], -1, "defaults applied: {info}");
    assert!(
        info.get("type").is_none() && info.get("did_create").is_none(),
        "{info}"
    );
    // The NATS side sees it.
    let nats = within("stream info", env.js.get_stream("ORDERS"))
        .await
        .expect("exists");
    assert_eq!(nats.cached_info().config.subjects, vec!["orders.>".to_string()]);

    let again = send_json(&env, Method::POST, "/v1/streams", config).await;
    assert_eq!(again.0, 200, "an identical stream exists: {}", again.1);
    let different = json!({"name": "ORDERS", "subjects": ["other.>"]});
    let conflict = send_json(&env, Method::POST, "/v1/streams", different).await;
    assert_problem("different config", &conflict, 409, Some(10058));

    for n in 0..3 {
        publish(&env, &format!("orders.{n}"), b"x").await;
    }
    let (status, info) = get(&env, "/v1/streams/ORDERS").await;
    assert_eq!(status, 200, "{info}");
    assert_eq!(info["state"]["messages"], 3);
    let (status, list) = get(&env, "/v1/streams").await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(
        (list["total"].as_u64(), list["offset"].as_u64()),
        (Some(1), Some(0))
    );
    assert_eq!(list["streams"][0]["config"]["name"], "ORDERS");
    let (_, past_end) = get(&env, "/v1/streams?offset=5").await;
    assert_eq!(past_end["streams"], json!([]));
    let (_, filtered) = get(&env, "/v1/streams?subject=nothing.here").await;
    assert_eq!(filtered["total"], 0, "{filtered}");

    let update = json!({"name": "ORDERS", "subjects": ["orders.>"], "max_msgs": 2});
    let (status, info) = send_json(&env, Method::PUT, "/v1/streams/ORDERS", update).await;
    assert_eq!(status, 200, "{info}");
    assert_eq!(info["config"]["max_msgs"], 2);
    assert_eq!(info["state"]["messages"], 2, "the new limit applies: {info}");
    let mismatch = json!({"name": "OTHER", "subjects": ["orders.>"]});
    let refused = send_json(&env, Method::PUT, "/v1/streams/ORDERS", mismatch).await;
    assert_problem("name mismatch", &refused, 400, Some(10056));

    publish(&env, "orders.keep", b"y").await;
    let (status, purged) = send_json(
        &env,
        Method::POST,
        "/v1/streams/ORDERS/purge",
        json!({"filter": "orders.2"}),
    )
    .await;
    assert_eq!((status, purged), (200, json!({"purged": 1})));
    let (status, purged, _) = send(&env, Method::POST, "/v1/streams/ORDERS/purge", &[], None).await;
    assert_eq!(
        (status, purged),
        (200, json!({"purged": 1})),
        "no body purges all"
    );

    let (status, body) = delete(&env, "/v1/streams/ORDERS").await;
    assert_eq!(status, 204, "{body}");
    assert_problem(
        "deleted",
        &get(&env, "/v1/streams/ORDERS").await,
        404,
        Some(10059),
    );
    assert_problem(
        "delete again",
        &delete(&env, "/v1/streams/ORDERS").await,
        404,
        Some(10059),
    );
}

#[tokio::test]
async fn bad_stream_requests_get_precise_problems_and_change_nothing() {
    let env = Env::start().await;
    let bad_name = send_json(&env, Method::POST, "/v1/streams", json!({"name": "a.b"})).await;
    assert_problem("dotted name", &bad_name, 400, None);
    assert!(
        bad_name.1["detail"].as_str().unwrap_or("").contains("'.'"),
        "{}",
        bad_name.1
    );
    let nameless = send_json(&env, Method::POST, "/v1/streams", json!({"subjects": ["a"]})).await;
    assert_problem("no name", &nameless, 400, None);
    let bad_subject = json!({"name": "S", "subjects": ["a..b"]});
    let bad_config = send_json(&env, Method::POST, "/v1/streams", bad_subject).await;
    assert_problem(
        "invalid subject (NATS says 500, an input error)",
        &bad_config,
        400,
        Some(10052),
    );
    let bad_type = send_json(
        &env,
        Method::POST,
        "/v1/streams",
        json!({"name": "S", "max_msgs": "many"}),
    )
    .await;
    assert_problem("wrong type", &bad_type, 400, Some(10025));
    let not_object = send_json(&env, Method::POST, "/v1/streams", json!(["S"])).await;
    assert_problem("array body", &not_object, 400, None);

    let syntax = send(
        &env,
        Method::POST,
        "/v1/streams",
        &[],
        Some(("application/json", b"{\"name\":".to_vec())),
    )
    .await;
    assert_problem("JSON syntax", &(syntax.0, syntax.1), 400, None);
    let form = send(
        &env,
        Method::POST,
        "/v1/streams",
        &[],
        Some(("text/plain", b"{\"name\":\"S\"}".to_vec())),
    )
    .await;
    assert_problem("wrong media type", &(form.0, form.1), 415, None);
    let empty = send(&env, Method::POST, "/v1/streams", &[], None).await;
    assert_problem("missing body", &(empty.0, empty.1), 400, None);
    assert_problem(
        "bad offset",
        &get(&env, "/v1/streams?offset=minus").await,
        400,
        None,
    );
    assert_problem(
        "unknown query",
        &get(&env, "/v1/streams?limit=3").await,
        400,
        None,
    );
    assert_problem(
        "unknown stream",
        &get(&env, "/v1/streams/NOPE").await,
        404,
        Some(10059),
    );
    assert_problem("wildcard name", &get(&env, "/v1/streams/a*").await, 400, None);
    assert_problem(
        "purge of nothing",
        &send_json(&env, Method::POST, "/v1/streams/NOPE/purge", json!({})).await,
        404,
        Some(10059),
    );
    let purge_both = json!({"seq": 3, "keep": 1});
    assert_problem(
        "seq and keep",
        &send_json(&env, Method::POST, "/v1/streams/NOPE/purge", purge_both).await,
        400,
        None,
    );
    assert_problem(
        "unknown purge member",
        &send_json(&env, Method::POST, "/v1/streams/NOPE/purge", json!({"all": true})).await,
        400,
        None,
    );

    let (_, server) = get(&env, "/v1/server").await;
    assert_eq!(server["streams"], 0, "nothing was created: {server}");

    // Last, on a client of its own: the server answers before reading the
    // whole body and closes that connection.
    let huge = vec![b' '; 2 * 1024 * 1024];
    let request = reqwest::Client::new()
        .post(env.url("/v1/streams"))
        .header("content-type", "application/json")
        .body(huge);
    let response = within("oversize", request.send()).await.expect("oversize body");
    assert_problem("oversize body", &status_and_json(response).await, 413, None);
}

#[tokio::test]
async fn messages_are_read_by_sequence_and_by_subject_and_deleted() {
    let env = Env::start().await;
    env.stream("ORDERS", &["orders.>"]).await;
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("X-Trace", "t-1");
    headers.append("X-Trace", "t-2");
    within("publish with headers", async {
        env.js
            .publish_with_headers("orders.eu", headers, "größe".into())
            .await
            .unwrap()
            .await
            .unwrap()
    })
    .await;
    publish(&env, "orders.us", b"\xff\x00binary").await;
    publish(&env, "orders.eu", b"second").await;

    let (status, msg) = get(&env, "/v1/streams/ORDERS/messages/1").await;
    assert_eq!(status, 200, "{msg}");
    assert_eq!(msg["stream"], "ORDERS");
    assert_eq!(
        (msg["subject"].as_str(), msg["seq"].as_u64()),
        (Some("orders.eu"), Some(1))
    );
    assert_eq!(msg["headers"]["X-Trace"], json!(["t-1", "t-2"]));
    assert_eq!(msg["text"], "größe");
    assert_eq!(msg["data"], "Z3LDtsOfZQ==", "base64 of the UTF-8 bytes");
    assert!(msg["time"].as_str().is_some_and(|t| t.ends_with('Z')), "{msg}");

    let (_, binary) = get(&env, "/v1/streams/ORDERS/messages/2").await;
    assert_eq!(binary["data"], "/wBiaW5hcnk=");
    assert!(binary.get("text").is_none(), "not UTF-8, so no text: {binary}");
    assert_eq!(binary["headers"], json!({}));

    let (status, last) = get(&env, "/v1/streams/ORDERS/messages?last_by_subject=orders.eu").await;
    assert_eq!(
        (status, last["seq"].as_u64(), last["text"].as_str()),
        (200, Some(3), Some("second"))
    );
    let (_, last_any) = get(&env, "/v1/streams/ORDERS/messages?last_by_subject=orders.*").await;
    assert_eq!(last_any["seq"], 3);
    assert_problem(
        "no subject given",
        &get(&env, "/v1/streams/ORDERS/messages").await,
        400,
        None,
    );
    assert_problem(
        "bad subject",
        &get(&env, "/v1/streams/ORDERS/messages?last_by_subject=a..b").await,
        400,
        None,
    );
    assert_problem(
        "none on subject",
        &get(&env, "/v1/streams/ORDERS/messages?last_by_subject=orders.jp").await,
        404,
        Some(10037),
    );

    assert_problem(
        "sequence 0",
        &get(&env, "/v1/streams/ORDERS/messages/0").await,
        400,
        None,
    );
    assert_problem(
        "not a number",
        &get(&env, "/v1/streams/ORDERS/messages/one").await,
        400,
        None,
    );
    assert_problem(
        "past the end",
        &get(&env, "/v1/streams/ORDERS/messages/99").await,
        404,
        Some(10037),
    );
    assert_problem(
        "unknown stream",
        &get(&env, "/v1/streams/NOPE/messages/1").await,
        404,
        Some(10059),
    );

    let (status, body) = delete(&env, "/v1/streams/ORDERS/messages/2").await;
    assert_eq!(status, 204, "{body}");
    assert_problem(
        "deleted",
        &get(&env, "/v1/streams/ORDERS/messages/2").await,
        404,
        Some(10037),
    );
    assert_problem(
        "delete again",
        &delete(&env, "/v1/streams/ORDERS/messages/2").await,
        404,
        Some(10057),
    );

    let locked = json!({"name": "LOCKED", "subjects": ["locked"], "deny_delete": true});
    assert_eq!(send_json(&env, Method::POST, "/v1/streams", locked).await.0, 201);
    publish(&env, "locked", b"z").await;
    assert_problem(
        "deny_delete",
        &delete(&env, "/v1/streams/LOCKED/messages/1").await,
        409,
        Some(10057),
    );
}

#[tokio::test]
async fn consumers_are_created_fetched_from_acked_and_deleted() {
    let env = Env::start().await;
    env.stream("ORDERS", &["orders.>"]).await;
    for n in 1..=3 {
        publish(&env, &format!("orders.{n}"), b"payload").await;
    }
    let config = json!({"durable_name": "worker", "ack_policy": "explicit", "ack_wait": 60_000_000_000u64});
    let (status, info) = send_json(&env, Method::POST, "/v1/streams/ORDERS/consumers", config.clone()).await;
    assert_eq!(status, 201, "{info}");
    assert_eq!(
        (info["name"].as_str(), info["num_pending"].as_u64()),
        (Some("worker"), Some(3))
    );
    let (status, _) = send_json(&env, Method::POST, "/v1/streams/ORDERS/consumers", config).await;
    assert_eq!(status, 200, "identical consumer");
    let changed = json!({"durable_name": "worker", "ack_policy": "none"});
    let conflict = send_json(&env, Method::POST, "/v1/streams/ORDERS/consumers", changed).await;
    assert_problem("another config", &conflict, 409, Some(10148));
    // The NATS side sees it.
    let stream = within("stream", env.js.get_stream("ORDERS")).await.unwrap();
    let mut nats_consumer: async_nats::jetstream::consumer::PullConsumer =
        within("consumer", stream.get_consumer("worker"))
            .await
            .expect("the consumer exists");
    assert_eq!(nats_consumer.info().await.unwrap().num_pending, 3);

    let (status, list) = get(&env, "/v1/streams/ORDERS/consumers").await;
    assert_eq!((status, list["total"].as_u64()), (200, Some(1)), "{list}");
    assert_eq!(list["consumers"][0]["name"], "worker");

    let (status, fetched) = send(
        &env,
        Method::POST,
        "/v1/streams/ORDERS/consumers/worker/next?batch=2",
        &[],
        None,
    )
    .await
    .into_pair();
    assert_eq!(status, 200, "{fetched}");
    let messages = fetched["messages"].as_array().expect("messages");
    assert_eq!(messages.len(), 2, "{fetched}");
    assert_eq!(
        (messages[0]["seq"].as_u64(), messages[0]["subject"].as_str()),
        (Some(1), Some("orders.1"))
    );
    assert_eq!(
        (messages[0]["delivered"].as_u64(), messages[1]["pending"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(messages[0]["text"], "payload");
    assert_eq!(messages[0]["acked"], false);
    let ids: Vec<&str> = messages.iter().filter_map(|m| m["ack_id"].as_str()).collect();
    assert!(
        ids.iter().all(|id| id.starts_with("$JS.ACK.ORDERS.worker.")),
        "{ids:?}"
    );

    // Nak the second: it comes back (before the third), delivered twice.
    let nak = json!({"ack_ids": [ids[1]], "action": "nak"});
    assert_eq!(
        send_json(&env, Method::POST, "/v1/streams/ORDERS/consumers/worker/ack", nak).await,
        (200, json!({"acked": 1}))
    );
    let ack = json!({"ack_ids": [ids[0]]});
    assert_eq!(
        send_json(&env, Method::POST, "/v1/streams/ORDERS/consumers/worker/ack", ack).await,
        (200, json!({"acked": 1}))
    );
    let (_, again) = send(
        &env,
        Method::POST,
        "/v1/streams/ORDERS/consumers/worker/next?batch=2&expires_ms=5000&ack=true",
        &[],
        None,
    )
    .await
    .into_pair();
    let again = again["messages"].as_array().cloned().unwrap_or_default();
    let seqs: Vec<u64> = again.iter().filter_map(|m| m["seq"].as_u64()).collect();
    assert_eq!(seqs, vec![2, 3], "{again:?}");
    assert_eq!(again[0]["delivered"], 2);
    assert!(again.iter().all(|m| m["acked"] == true));
    let (_, info) = get(&env, "/v1/streams/ORDERS/consumers/worker").await;
    assert_eq!(
        (info["num_ack_pending"].as_u64(), info["num_pending"].as_u64()),
        (Some(0), Some(0)),
        "{info}"
    );
    let (_, empty) = send(
        &env,
        Method::POST,
        "/v1/streams/ORDERS/consumers/worker/next?batch=3",
        &[],
        None,
    )
    .await
    .into_pair();
    assert_eq!(empty, json!({"messages": []}), "nothing left, answered at once");

    // Errors.
    let bad_ack = json!({"ack_ids": ["$JS.ACK.OTHER.worker.1.1.1.1.0"]});
    assert_problem(
        "ack id of another stream",
        &send_json(
            &env,
            Method::POST,
            "/v1/streams/ORDERS/consumers/worker/ack",
            bad_ack,
        )
        .await,
        400,
        None,
    );
    let not_ack = json!({"ack_ids": ["orders.1"]});
    assert_problem(
        "not an ack id",
        &send_json(
            &env,
            Method::POST,
            "/v1/streams/ORDERS/consumers/worker/ack",
            not_ack,
        )
        .await,
        400,
        None,
    );
    let next = |q: &'static str| format!("/v1/streams/ORDERS/consumers/worker/next{q}");
    for query in ["?batch=0", "?batch=1000", "?expires_ms=600000", "?ack=maybe"] {
        let problem = send(&env, Method::POST, &next(query), &[], None)
            .await
            .into_pair();
        assert_problem(query, &problem, 400, None);
    }
    assert_problem(
        "unknown consumer",
        &get(&env, "/v1/streams/ORDERS/consumers/nope").await,
        404,
        Some(10014),
    );
    let fetch_unknown = send(
        &env,
        Method::POST,
        "/v1/streams/ORDERS/consumers/nope/next",
        &[],
        None,
    )
    .await
    .into_pair();
    assert_problem("fetch from unknown consumer", &fetch_unknown, 404, Some(10014));
    assert_problem(
        "consumers of unknown stream",
        &get(&env, "/v1/streams/NOPE/consumers").await,
        404,
        Some(10059),
    );
    let push = json!({"durable_name": "pusher", "deliver_subject": "deliver.here", "ack_policy": "none"});
    assert_eq!(
        send_json(&env, Method::POST, "/v1/streams/ORDERS/consumers", push)
            .await
            .0,
        201
    );
    let fetch_push = send(
        &env,
        Method::POST,
        "/v1/streams/ORDERS/consumers/pusher/next",
        &[],
        None,
    )
    .await
    .into_pair();
    assert_problem("fetch from a push consumer", &fetch_push, 409, None);
    let bad_policy = json!({"durable_name": "x", "ack_policy": "sometimes"});
    assert_problem(
        "bad config",
        &send_json(&env, Method::POST, "/v1/streams/ORDERS/consumers", bad_policy).await,
        400,
        Some(10025),
    );

    let (status, body) = delete(&env, "/v1/streams/ORDERS/consumers/worker").await;
    assert_eq!(status, 204, "{body}");
    assert_problem(
        "deleted",
        &get(&env, "/v1/streams/ORDERS/consumers/worker").await,
        404,
        Some(10014),
    );

    // An ephemeral consumer gets a generated name.
    let (status, ephemeral) = send_json(
        &env,
        Method::POST,
        "/v1/streams/ORDERS/consumers",
        json!({"ack_policy": "none"}),
    )
    .await;
    assert_eq!(status, 201, "{ephemeral}");
    assert!(
        ephemeral["name"].as_str().is_some_and(|n| !n.is_empty()),
        "{ephemeral}"
    );
}

#[tokio::test]
async fn every_error_is_a_problem_even_axums_own() {
    let env = Env::start().await;
    // status_and_json (in send) asserts the problem shape of each.
    let (status, body, headers) = send(&env, Method::PATCH, "/v1/streams", &[], None).await;
    assert_eq!(status, 405, "{body}");
    assert!(headers.contains_key("allow"), "405 keeps Allow: {headers:?}");
    let (status, body) = get(&env, "/v1/nothing/here").await;
    assert_eq!(status, 404);
    assert!(
        body["detail"].as_str().unwrap_or("").starts_with("no such path"),
        "{body}"
    );
    let (status, _) = get(&env, "/v1/streams/%FF").await;
    assert_eq!(status, 400, "a path that is not UTF-8");
}

pub(super) trait IntoPair {
    fn into_pair(self) -> (u16, Value);
}

impl IntoPair for (u16, Value, HeaderMap) {
    fn into_pair(self) -> (u16, Value) {
        (self.0, self.1)
    }
}
