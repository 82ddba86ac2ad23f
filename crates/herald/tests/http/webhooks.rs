//! Webhook subscriptions against a real receiver: an axum server started by
//! each test that records every request, checks its Standard Webhooks
//! signature with its own HMAC, and answers as the test scripts it.

use std::future::IntoFuture as _;
use std::sync::atomic::{AtomicU16, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use base64::Engine as _;
use futures_util::StreamExt as _;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

use crate::util::{eventually, status_and_json, within, within_for, Env, WAIT};

/// A longer bound for what waits on a restart (the server recovers, then
/// redelivers after the consumer's ack wait).
const RESTART_WAIT: Duration = Duration::from_secs(40);

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Recorded {
    id: String,
    timestamp: i64,
    content_type: String,
    body: Value,
    /// The signature verified with the receiver's key.
    verified: bool,
    /// What the receiver answered.
    answered: u16,
    at: Instant,
}

/// The receiver's script and record.
#[derive(Default)]
struct Script {
    /// HMAC key (the secret's bytes).
    key: Mutex<Vec<u8>>,
    /// Answer 500 to this many requests first.
    fail_first: AtomicUsize,
    /// Then answer this (0 reads as 200).
    status: AtomicU16,
    /// Wait this long before answering.
    delay_ms: AtomicU64,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    requests: Mutex<Vec<Recorded>>,
}

struct Receiver {
    url: String,
    script: Arc<Script>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Receiver {
    async fn start(secret: &str) -> Receiver {
        let script = Arc::new(Script::default());
        *script.key.lock().unwrap() = key_of(secret);
        let app = axum::Router::new()
            .route("/hook", axum::routing::post(receive))
            .with_state(script.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind receiver");
        let url = format!("http://{}/hook", listener.local_addr().expect("receiver address"));
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Receiver { url, script, task }
    }

    fn requests(&self) -> Vec<Recorded> {
        self.script.requests.lock().unwrap().clone()
    }

    fn delivered(&self) -> Vec<Recorded> {
        self.requests().into_iter().filter(|r| r.answered < 300).collect()
    }

    async fn wait_for_requests(&self, env: &Env, n: usize, limit: Duration) -> Vec<Recorded> {
        let deadline = Instant::now() + limit;
        loop {
            let requests = self.requests();
            if requests.len() >= n {
                return requests;
            }
            if Instant::now() > deadline {
                panic!(
                    "{} of {n} requests within {limit:?}: {requests:#?}\nserver log:\n{}",
                    requests.len(),
                    env.server.log()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn wait_for_deliveries(&self, env: &Env, n: usize, limit: Duration) -> Vec<Recorded> {
        let deadline = Instant::now() + limit;
        loop {
            let delivered = self.delivered();
            if delivered.len() >= n {
                return delivered;
            }
            if Instant::now() > deadline {
                panic!(
                    "{} of {n} deliveries within {limit:?}; requests: {:#?}\nserver log:\n{}",
                    delivered.len(),
                    self.requests(),
                    env.server.log()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn receive(State(script): State<Arc<Script>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let now = script.in_flight.fetch_add(1, SeqCst) + 1;
    script.max_in_flight.fetch_max(now, SeqCst);
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let (id, timestamp, signature) = (
        header("webhook-id"),
        header("webhook-timestamp"),
        header("webhook-signature"),
    );
    let key = script.key.lock().unwrap().clone();
    let verified = verify(&key, &id, &timestamp, &signature, &body);
    let answered = if script
        .fail_first
        .fetch_update(SeqCst, SeqCst, |n| n.checked_sub(1))
        .is_ok()
    {
        500
    } else {
        match script.status.load(SeqCst) {
            0 => 200,
            status => status,
        }
    };
    script.requests.lock().unwrap().push(Recorded {
        id,
        timestamp: timestamp.parse().unwrap_or(0),
        content_type: header("content-type"),
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
        verified,
        answered,
        at: Instant::now(),
    });
    let delay = script.delay_ms.load(SeqCst);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    script.in_flight.fetch_sub(1, SeqCst);
    StatusCode::from_u16(answered).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// The Standard Webhooks check: some `v1,<base64>` entry equals
/// HMAC-SHA256(key, "{id}.{timestamp}.{body}"), and the timestamp is within
/// five minutes of now.
fn verify(key: &[u8], id: &str, timestamp: &str, signature: &str, body: &[u8]) -> bool {
    let Ok(ts) = timestamp.parse::<i64>() else {
        return false;
    };
    if (unix_now() - ts).abs() > 300 || id.is_empty() {
        return false;
    }
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("any key length");
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    let expected = mac.finalize().into_bytes();
    signature.split(' ').any(|entry| {
        entry
            .strip_prefix("v1,")
            .and_then(|b64| base64::engine::general_purpose::STANDARD.decode(b64).ok())
            .is_some_and(|tag| tag.as_slice() == expected.as_slice())
    })
}

fn unix_now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

/// A fresh `whsec_` secret of 32 bytes.
fn new_secret() -> String {
    let key: Vec<u8> = (0..32).map(|_| rand_byte()).collect();
    format!("whsec_{}", base64::engine::general_purpose::STANDARD.encode(key))
}

fn rand_byte() -> u8 {
    static SEED: AtomicU64 = AtomicU64::new(0x9e37_79b9_7f4a_7c15);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64;
    let x = SEED
        .fetch_add(nanos | 1, SeqCst)
        .wrapping_mul(0x2545_f491_4f6c_dd1d);
    (x >> 56) as u8
}

fn key_of(secret: &str) -> Vec<u8> {
    let encoded = secret.strip_prefix("whsec_").expect("whsec_ secret");
    base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .expect("base64 secret")
}

/// Creates a webhook; returns the 201 body.
async fn create(env: &Env, body: Value) -> Value {
    let (status, created) = env
        .post("/v1/webhooks", "application/json", &[], body.to_string())
        .await;
    assert_eq!(status, 201, "create: {created}");
    created
}

async fn delete(env: &Env, name: &str) -> (u16, Value) {
    let response = within(
        "DELETE",
        env.http.delete(env.url(&format!("/v1/webhooks/{name}"))).send(),
    )
    .await
    .expect("DELETE");
    status_and_json(response).await
}

/// Publishes a structured CloudEvent over HTTP; the stream stores it.
async fn publish_event(env: &Env, subject: &str, id: &str, data: Value) {
    let event = json!({"specversion": "1.0", "id": id, "source": "/test", "type": "t", "data": data});
    let (status, body) = env
        .post(
            &format!("/v1/events/{subject}"),
            "application/cloudevents+json",
            &[],
            event.to_string(),
        )
        .await;
    assert_eq!(status, 200, "publish: {body}");
    assert!(body["stream"].is_string(), "not stored: {body}");
}

async fn stats(env: &Env, name: &str) -> Value {
    let (status, body) = env.get(&format!("/v1/webhooks/{name}")).await;
    assert_eq!(status, 200, "{body}");
    body["stats"].clone()
}

#[tokio::test]
async fn a_failing_endpoint_gets_the_event_after_retries_signed_and_with_one_id() {
    let env = Env::start().await;
    let secret = new_secret();
    let receiver = Receiver::start(&secret).await;
    receiver.script.fail_first.store(3, SeqCst);
    create(
        &env,
        json!({"name": "retry", "subject": "orders.>", "url": receiver.url, "secret": secret,
               "backoff_initial_ms": 50, "backoff_max_ms": 400}),
    )
    .await;
    publish_event(&env, "orders.created", "evt-1", json!({"order": 1})).await;

    let delivered = receiver.wait_for_deliveries(&env, 1, WAIT).await;
    let requests = receiver.requests();
    assert_eq!(requests.len(), 4, "3 failures then success: {requests:#?}");
    assert_eq!(
        requests.iter().map(|r| r.answered).collect::<Vec<_>>(),
        [500, 500, 500, 200]
    );
    for r in &requests {
        assert_eq!(r.id, "evt-1", "webhook-id is the event id on every attempt");
        assert!(r.verified, "signature does not verify: {r:#?}");
        assert_eq!(r.content_type, "application/cloudevents+json");
        assert_eq!(r.body["id"], "evt-1");
        assert_eq!(r.body["specversion"], "1.0");
        assert_eq!(r.body["subject"], "orders.created");
        assert_eq!(r.body["data"], json!({"order": 1}));
        assert!((unix_now() - r.timestamp).abs() < 60);
    }
    // Exponential backoff with jitter in the upper half: waits of at
    // least 25, 50 and 100 ms (minus scheduling slack).
    for (i, pair) in requests.windows(2).enumerate() {
        let gap = pair[1].at - pair[0].at;
        let least = Duration::from_millis((25 << i) - 5);
        assert!(
            gap >= least,
            "retry {} came after {gap:?}, before {least:?}",
            i + 1
        );
    }
    assert_eq!(delivered[0].body["data"], json!({"order": 1}));

    let stats = stats(&env, "retry").await;
    assert_eq!(stats["delivered"], 1, "{stats}");
    assert_eq!(stats["attempts"], 4, "{stats}");
    assert_eq!(stats["failed_attempts"], 3, "{stats}");
    assert_eq!(stats["dead_lettered"], 0, "{stats}");
    assert_eq!(stats["last_status"], 200, "{stats}");
    eventually("nothing pending", || async {
        stats_pending(&env, "retry").await == 0
    })
    .await;

    let metrics = within("GET /metrics", async {
        env.http.get(env.url("/metrics")).send().await?.text().await
    })
    .await
    .expect("metrics");
    for line in [
        "herald_webhook_attempts_total{webhook=\"retry\"} 4",
        "herald_webhook_delivered_total{webhook=\"retry\"} 1",
        "herald_webhook_failed_attempts_total{webhook=\"retry\"} 3",
        "herald_webhook_dead_lettered_total{webhook=\"retry\"} 0",
        "herald_webhook_attempt_seconds_count{webhook=\"retry\"} 4",
    ] {
        assert!(metrics.lines().any(|l| l == line), "no {line:?} in:\n{metrics}");
    }
}

async fn stats_pending(env: &Env, name: &str) -> u64 {
    stats(env, name).await["pending"].as_u64().unwrap_or(u64::MAX)
}

#[tokio::test]
async fn an_endpoint_that_never_recovers_leaves_the_event_on_the_dead_letter_subject() {
    let env = Env::start().await;
    let secret = new_secret();
    let receiver = Receiver::start(&secret).await;
    receiver.script.status.store(503, SeqCst);
    let created = create(
        &env,
        json!({"name": "doomed", "subject": "pay.*", "url": receiver.url, "secret": secret,
               "max_attempts": 3, "backoff_initial_ms": 20, "backoff_max_ms": 50}),
    )
    .await;
    assert_eq!(created["dead_letter_subject"], "herald.webhooks.doomed.dead");
    let mut dead = env.subscribe("herald.webhooks.doomed.dead").await;

    let mut headers = async_nats::HeaderMap::new();
    headers.insert("x-tenant", "acme");
    headers.insert("Nats-Msg-Id", "pay-77");
    let ack = within(
        "publish",
        env.js
            .publish_with_headers("pay.eu", headers, r#"{"amount":5}"#.into())
            .await
            .expect("publish")
            .into_future(),
    )
    .await
    .expect("stored");
    assert_eq!(ack.stream, "WEBHOOK_doomed");

    let msg = match tokio::time::timeout(WAIT, dead.next()).await {
        Ok(Some(msg)) => msg,
        _ => panic!(
            "no dead letter; requests {:#?}\nlog:\n{}",
            receiver.requests(),
            env.server.log()
        ),
    };
    let header = |name: &str| {
        msg.headers
            .as_ref()
            .and_then(|h| h.get(name))
            .map(|v| v.as_str().to_string())
    };
    assert_eq!(msg.payload.as_ref(), br#"{"amount":5}"#);
    assert_eq!(
        header("x-tenant").as_deref(),
        Some("acme"),
        "original headers kept"
    );
    assert_eq!(header("Herald-Webhook").as_deref(), Some("doomed"));
    assert_eq!(header("Herald-Webhook-Attempts").as_deref(), Some("3"));
    assert_eq!(header("Herald-Webhook-Last-Status").as_deref(), Some("503"));
    assert_eq!(header("Herald-Original-Subject").as_deref(), Some("pay.eu"));
    assert_eq!(
        header("Herald-Original-Stream").as_deref(),
        Some("WEBHOOK_doomed")
    );
    assert_eq!(header("Herald-Original-Sequence").as_deref(), Some("1"));

    let requests = receiver.requests();
    assert_eq!(requests.len(), 3, "{requests:#?}");
    assert!(
        requests.iter().all(|r| r.verified && r.id == "pay-77"),
        "{requests:#?}"
    );
    // Several backoff periods later, nothing more was attempted.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(receiver.requests().len(), 3, "attempts after the dead letter");
    let stats = stats(&env, "doomed").await;
    assert_eq!(stats["dead_lettered"], 1, "{stats}");
    assert_eq!(stats["delivered"], 0, "{stats}");
    assert_eq!(stats["failed_attempts"], 3, "{stats}");
    eventually("nothing pending", || async {
        stats_pending(&env, "doomed").await == 0
    })
    .await;
}

#[tokio::test]
async fn connection_errors_are_retried_and_reported_in_the_dead_letter() {
    let env = Env::start().await;
    // A port nothing listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    create(
        &env,
        json!({"name": "nowhere", "subject": "ping", "url": format!("http://{closed}/x"),
               "max_attempts": 2, "backoff_initial_ms": 10, "backoff_max_ms": 10,
               "dead_letter_subject": "dead.ping"}),
    )
    .await;
    let mut dead = env.subscribe("dead.ping").await;
    publish_event(&env, "ping", "p-1", json!(1)).await;
    let msg = within_for(WAIT, "dead letter", dead.next())
        .await
        .expect("dead letter");
    let headers = msg.headers.expect("headers");
    assert_eq!(
        headers.get("Herald-Webhook-Attempts").map(|v| v.as_str()),
        Some("2")
    );
    assert!(headers.get("Herald-Webhook-Last-Status").is_none());
    let error = headers
        .get("Herald-Webhook-Last-Error")
        .map(|v| v.as_str().to_string());
    assert!(
        error.as_deref().is_some_and(|e| e.contains("connect")),
        "last error: {error:?}"
    );
    assert_eq!(headers.get("ce-id").map(|v| v.as_str()), Some("p-1"));
    let stats = stats(&env, "nowhere").await;
    assert!(
        stats["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("connect")),
        "{stats}"
    );
}

async fn restart_mid_schedule(crash: bool) {
    let mut env = Env::start().await;
    let secret = new_secret();
    let receiver = Receiver::start(&secret).await;
    receiver.script.status.store(500, SeqCst);
    create(
        &env,
        json!({"name": "durable", "subject": "audit.>", "url": receiver.url, "secret": secret,
               "max_attempts": 100, "timeout_ms": 1000,
               "backoff_initial_ms": 100, "backoff_max_ms": 300}),
    )
    .await;
    publish_event(&env, "audit.login", "a-1", json!({"user": "ann"})).await;
    receiver.wait_for_requests(&env, 2, WAIT).await;
    if crash {
        env.server.kill_9();
        env.server.restart();
    } else {
        env.server.restart();
    }
    let before = receiver.requests().len();
    // Only the restarted server can see the endpoint recover.
    receiver.script.status.store(200, SeqCst);
    let delivered = receiver.wait_for_deliveries(&env, 1, RESTART_WAIT).await;
    assert_eq!(delivered[0].id, "a-1");
    assert!(delivered[0].verified);
    assert_eq!(delivered[0].body["data"], json!({"user": "ann"}));
    assert!(receiver.requests().len() > before);
    // The definition came back with the server.
    let stats = stats(&env, "durable").await;
    assert!(stats["delivered"].as_u64() >= Some(1), "{stats}");
    eventually("nothing pending", || async {
        stats_pending(&env, "durable").await == 0
    })
    .await;
}

#[tokio::test]
async fn a_restart_in_the_middle_of_a_retry_schedule_still_delivers() {
    restart_mid_schedule(false).await;
}

#[tokio::test]
async fn a_crash_in_the_middle_of_a_retry_schedule_still_delivers() {
    restart_mid_schedule(true).await;
}

#[tokio::test]
async fn ordered_webhooks_deliver_in_stream_order_while_retrying_the_head() {
    let env = Env::start().await;
    let secret = new_secret();
    let receiver = Receiver::start(&secret).await;
    receiver.script.fail_first.store(2, SeqCst);
    create(
        &env,
        json!({"name": "inorder", "subject": "ledger", "url": receiver.url, "secret": secret,
               "ordered": true, "concurrency": 8, "backoff_initial_ms": 50, "backoff_max_ms": 100}),
    )
    .await;
    for i in 1..=5 {
        publish_event(&env, "ledger", &format!("o-{i}"), json!(i)).await;
    }
    receiver.wait_for_deliveries(&env, 5, WAIT).await;
    let ids: Vec<String> = receiver.requests().iter().map(|r| r.id.clone()).collect();
    assert_eq!(ids, ["o-1", "o-1", "o-1", "o-2", "o-3", "o-4", "o-5"]);
    assert_eq!(receiver.script.max_in_flight.load(SeqCst), 1);
}

#[tokio::test]
async fn concurrency_bounds_the_requests_in_flight() {
    let env = Env::start().await;
    let secret = new_secret();
    let receiver = Receiver::start(&secret).await;
    receiver.script.delay_ms.store(300, SeqCst);
    create(
        &env,
        json!({"name": "pair", "subject": "jobs.*", "url": receiver.url, "secret": secret, "concurrency": 2}),
    )
    .await;
    for i in 1..=6 {
        publish_event(&env, &format!("jobs.{i}"), &format!("j-{i}"), json!(i)).await;
    }
    let delivered = receiver.wait_for_deliveries(&env, 6, WAIT).await;
    assert_eq!(delivered.len(), 6);
    assert_eq!(receiver.script.max_in_flight.load(SeqCst), 2);
}

#[tokio::test]
async fn webhooks_are_created_listed_shown_and_deleted_with_problems_for_bad_input() {
    let env = Env::start().await;
    let (status, created) = env
        .post(
            "/v1/webhooks",
            "application/json",
            &[],
            json!({"name": "crud", "subject": "crm.>", "url": "http://127.0.0.1:9/x"}).to_string(),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    assert!(created["secret"]
        .as_str()
        .is_some_and(|s| s.starts_with("whsec_")));
    assert_eq!(key_of(created["secret"].as_str().unwrap()).len(), 32);
    let expected_defaults = json!({
        "name": "crud", "subject": "crm.>", "url": "http://127.0.0.1:9/x", "stream": "WEBHOOK_crud",
        "max_attempts": 10, "max_age_ms": 86400000, "backoff_initial_ms": 1000,
        "backoff_max_ms": 3600000, "timeout_ms": 10000, "concurrency": 4, "ordered": false,
        "dead_letter_subject": "herald.webhooks.crud.dead",
    });
    for (key, value) in expected_defaults.as_object().unwrap() {
        assert_eq!(&created[key], value, "{key} in {created}");
    }
    assert!(created["created"]
        .as_str()
        .is_some_and(|t| t.ends_with('Z') && t.contains('T')));
    let file = env.server.data_dir().join("webhooks/crud.json");
    assert!(file.exists(), "no definition file");

    // A generated name.
    let unnamed = create(
        &env,
        json!({"subject": "misc", "url": "https://example.invalid/"}),
    )
    .await;
    let generated = unnamed["name"].as_str().unwrap().to_string();
    assert!(generated.starts_with("wh-"), "{generated}");

    // A stream that captures the filter is used as it is.
    env.stream("ORDERS", &["orders.>"]).await;
    // Captures part of what `eu.>` names: a webhook on `eu.>` cannot use it.
    env.stream("REGIONS", &["eu.*"]).await;
    let on_orders = create(
        &env,
        json!({"name": "eu", "subject": "orders.eu.*", "url": "http://127.0.0.1:9/"}),
    )
    .await;
    assert_eq!(on_orders["stream"], "ORDERS");

    let problems = [
        (
            json!({"name": "crud", "subject": "x", "url": "http://a/"}),
            409,
            "already exists",
        ),
        (
            json!({"subject": "x", "url": "http://a/", "colour": 1}),
            400,
            "unknown field `colour`",
        ),
        (json!({"url": "http://a/"}), 400, "`subject` is required"),
        (json!({"subject": "a..b", "url": "http://a/"}), 400, "`subject`"),
        (json!({"subject": "x", "url": "ftp://a/"}), 400, "http or https"),
        (
            json!({"subject": "x", "url": "http://a/", "max_attempts": 0}),
            400,
            "`max_attempts`",
        ),
        (
            json!({"subject": "x", "url": "http://a/", "concurrency": 1000}),
            400,
            "`concurrency`",
        ),
        (
            json!({"subject": "x", "url": "http://a/", "secret": "nope"}),
            400,
            "whsec_",
        ),
        (
            json!({"name": "bad name", "subject": "x", "url": "http://a/"}),
            400,
            "`name`",
        ),
        (json!({"subject": "eu.>", "url": "http://a/"}), 409, "REGIONS"),
        (json!({"subject": "*.eu", "url": "http://a/"}), 400, "API"),
        (
            json!({"subject": "x", "url": "http://a/", "stream": "NOPE"}),
            404,
            "stream not found",
        ),
        (
            json!({"subject": "crm.x", "url": "http://a/", "stream": "ORDERS"}),
            400,
            "captures nothing",
        ),
    ];
    for (body, status, needle) in problems {
        let (got, problem) = env
            .post("/v1/webhooks", "application/json", &[], body.to_string())
            .await;
        assert_eq!(got, status, "{body} -> {problem}");
        let detail = problem["detail"].as_str().unwrap_or("");
        assert!(detail.contains(needle), "{body}: {detail:?} lacks {needle:?}");
    }
    let (status, problem) = env.post("/v1/webhooks", "application/json", &[], "{oops").await;
    assert_eq!(status, 400, "{problem}");

    let (status, list) = env.get("/v1/webhooks").await;
    assert_eq!(status, 200);
    let hooks = list["webhooks"].as_array().expect("webhooks array");
    let mut names: Vec<&str> = hooks.iter().filter_map(|h| h["name"].as_str()).collect();
    names.sort();
    let mut expected = vec!["crud", "eu", generated.as_str()];
    expected.sort();
    assert_eq!(names, expected);
    for hook in hooks {
        assert!(hook.get("secret").is_none(), "secret listed: {hook}");
        assert_eq!(hook["stats"]["delivered"], 0, "{hook}");
    }
    let (status, one) = env.get("/v1/webhooks/crud").await;
    assert_eq!(status, 200);
    assert!(one.get("secret").is_none());
    for key in [
        "delivered",
        "attempts",
        "failed_attempts",
        "dead_lettered",
        "pending",
    ] {
        assert_eq!(one["stats"][key], 0, "{key} in {one}");
    }

    assert_eq!(delete(&env, "crud").await.0, 204);
    assert_eq!(env.get("/v1/webhooks/crud").await.0, 404);
    let (status, problem) = delete(&env, "crud").await;
    assert_eq!(status, 404, "{problem}");
    assert!(!file.exists(), "definition file left behind");
    // Its own stream went with it; a stream it merely used stays.
    assert!(
        env.js.get_stream("WEBHOOK_crud").await.is_err(),
        "WEBHOOK_crud left behind"
    );
    assert_eq!(delete(&env, "eu").await.0, 204);
    let mut orders = env.js.get_stream("ORDERS").await.expect("ORDERS kept");
    let info = orders.info().await.expect("info");
    assert_eq!(info.state.consumer_count, 0, "the webhook's consumer is gone");
    // The name is free again.
    create(
        &env,
        json!({"name": "crud", "subject": "crm.>", "url": "http://127.0.0.1:9/x"}),
    )
    .await;
}

fn cli(args: &[&str], http_url: Option<&str>) -> std::process::Output {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_herald"));
    command.arg("webhook").args(args).env_remove("HERALD_HTTP_URL");
    if let Some(url) = http_url {
        command.env("HERALD_HTTP_URL", url);
    }
    command.output().expect("run herald webhook")
}

fn stdout(output: &std::process::Output) -> String {
    assert!(
        output.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[tokio::test]
async fn the_cli_adds_lists_shows_and_removes_webhooks() {
    let env = Env::start().await;
    let url = env.server.http_url();
    let flag = ["--http-url", url.as_str()];
    let add = [
        &[
            "add",
            "crm.>",
            "http://127.0.0.1:9/hook",
            "--name",
            "cli",
            "--max-attempts",
            "3",
        ][..],
        &flag,
    ]
    .concat();
    let text = stdout(&cli(&add, None));
    assert!(text.contains("Created webhook"), "{text}");
    assert!(text.contains("whsec_"), "the secret is shown once: {text}");
    let (status, hook) = env.get("/v1/webhooks/cli").await;
    assert_eq!(status, 200);
    assert_eq!(hook["max_attempts"], 3);

    // The URL from the environment, table output.
    let table = stdout(&cli(&["ls"], Some(&url)));
    let mut lines = table.lines();
    assert!(
        lines
            .next()
            .is_some_and(|h| h.starts_with("NAME") && h.contains("PENDING")),
        "{table}"
    );
    assert!(
        lines.any(|l| l.starts_with("cli ") && l.contains("crm.>")),
        "{table}"
    );
    let json: serde_json::Value = serde_json::from_str(&stdout(&cli(&["ls", "--json"], Some(&url)))).unwrap();
    assert_eq!(json["webhooks"][0]["name"], "cli");
    let info = stdout(&cli(&[&["info", "cli"][..], &flag].concat(), None));
    assert!(
        info.contains("Max attempts:") && info.contains("WEBHOOK_cli"),
        "{info}"
    );
    assert!(!info.contains("whsec_"), "{info}");

    let removed = stdout(&cli(&[&["rm", "cli"][..], &flag].concat(), None));
    assert!(removed.contains("Deleted webhook cli"), "{removed}");
    let again = cli(&[&["rm", "cli"][..], &flag].concat(), None);
    assert_eq!(again.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(
        stderr.contains("no webhook named cli") && stderr.contains("404"),
        "{stderr}"
    );
    let invalid = cli(&[&["add", "a..b", "http://x/"][..], &flag].concat(), None);
    assert_eq!(invalid.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&invalid.stderr).contains("`subject`"));
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let unreachable = cli(&["ls", "--http-url", &format!("http://{closed}")], None);
    assert_eq!(unreachable.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&unreachable.stderr).contains("cannot connect"),
        "{}",
        String::from_utf8_lossy(&unreachable.stderr)
    );
}
