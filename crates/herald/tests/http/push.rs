//! SSE and WebSocket push (`GET /v1/events/{pattern}`): events published
//! on either side reach SSE and WebSocket clients as CloudEvents; stream
//! mode resumes after `Last-Event-ID` with exactly the missed events; a
//! durable consumer is acked over the WebSocket and hands back what a
//! client left unacked; a slow live client is cut off; bad requests get
//! problems.

use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use crate::util::{eventually, status_and_json, within, within_for, Env, WAIT};

type WsClient = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// One SSE event block.
#[derive(Debug, Clone, Default)]
struct SseEvent {
    id: Option<String>,
    event: Option<String>,
    data: String,
}

impl SseEvent {
    fn json(&self) -> Value {
        serde_json::from_str(&self.data).unwrap_or_else(|e| panic!("data is not JSON ({e}): {}", self.data))
    }
}

/// An SSE client that parses the stream itself.
struct Sse {
    body: futures_util::stream::BoxStream<'static, reqwest::Result<Bytes>>,
    buffer: Vec<u8>,
}

impl Sse {
    /// Opens `path` with `Accept: text/event-stream` (and `headers`);
    /// returns once the response headers are in (the subscription exists).
    async fn open(env: &Env, path: &str, headers: &[(&str, &str)]) -> Sse {
        let mut request = env.http.get(env.url(path)).header("accept", "text/event-stream");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = within("open SSE", request.send()).await.expect("GET SSE");
        assert_eq!(response.status(), 200, "SSE refused: {:?}", response.text().await);
        assert_eq!(
            response.headers()["content-type"].to_str().unwrap(),
            "text/event-stream"
        );
        Sse {
            body: response.bytes_stream().boxed(),
            buffer: Vec::new(),
        }
    }

    /// The next event block (comments skipped); `None` when the stream ended.
    async fn next(&mut self) -> Option<SseEvent> {
        loop {
            if let Some(end) = self.buffer.windows(2).position(|w| w == b"\n\n") {
                let block: Vec<u8> = self.buffer.drain(..end + 2).collect();
                let text = String::from_utf8(block).expect("SSE is UTF-8");
                let mut event = SseEvent::default();
                let mut fields = 0;
                for line in text.lines() {
                    if let Some(value) = line.strip_prefix("id: ") {
                        event.id = Some(value.to_string());
                    } else if let Some(value) = line.strip_prefix("event: ") {
                        event.event = Some(value.to_string());
                    } else if let Some(value) = line.strip_prefix("data: ") {
                        event.data.push_str(value);
                    } else if line.starts_with(':') || line.is_empty() {
                        continue;
                    } else {
                        panic!("unexpected SSE line {line:?}");
                    }
                    fields += 1;
                }
                if fields > 0 {
                    return Some(event);
                }
                continue;
            }
            match self.body.next().await {
                Some(Ok(chunk)) => self.buffer.extend_from_slice(&chunk),
                Some(Err(_)) | None => return None,
            }
        }
    }

    /// The next event, failing the test after [`WAIT`].
    async fn event(&mut self) -> SseEvent {
        within("SSE event", self.next())
            .await
            .expect("the SSE stream ended")
    }
}

async fn ws_open(env: &Env, path: &str) -> WsClient {
    let url = env.url(path).replacen("http://", "ws://", 1);
    let (socket, response) = within("open WebSocket", tokio_tungstenite::connect_async(url))
        .await
        .expect("WebSocket upgrade");
    assert_eq!(response.status(), 101);
    socket
}

/// The next text frame as JSON (pings and pongs skipped).
async fn ws_json(socket: &mut WsClient) -> Value {
    loop {
        match within("WebSocket frame", socket.next()).await {
            Some(Ok(Message::Text(text))) => return serde_json::from_str(text.as_str()).expect("JSON frame"),
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            other => panic!("expected a text frame, got {other:?}"),
        }
    }
}

async fn ws_send(socket: &mut WsClient, value: Value) {
    within(
        "WebSocket send",
        socket.send(Message::Text(value.to_string().into())),
    )
    .await
    .expect("send a frame");
}

/// The value of an unlabelled series on `/metrics`.
async fn metric(env: &Env, name: &str) -> u64 {
    let text = within("GET /metrics", async {
        env.http.get(env.url("/metrics")).send().await?.text().await
    })
    .await
    .expect("GET /metrics");
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in /metrics"))
}

async fn publish_stored(env: &Env, subject: &str, payload: &str) -> u64 {
    let ack = within(
        "publish",
        env.js.publish(subject.to_string(), payload.to_string().into()),
    )
    .await
    .expect("publish");
    within("PubAck", std::future::IntoFuture::into_future(ack))
        .await
        .expect("PubAck")
        .sequence
}

#[tokio::test]
async fn a_nats_publish_reaches_sse_and_websocket_clients_as_cloudevents() {
    let env = Env::start().await;
    let mut sse = Sse::open(&env, "/v1/events/orders.*", &[]).await;
    let mut ws = ws_open(&env, "/v1/events/orders.*").await;
    assert_eq!(metric(&env, "herald_http_push_subscriptions").await, 2);

    env.nats
        .publish("orders.created", r#"{"order":1}"#.into())
        .await
        .unwrap();
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("ce-id", "evt-9");
    headers.insert("ce-type", "order.shipped");
    headers.insert("ce-source", "/warehouse");
    headers.insert("content-type", "text/plain");
    env.nats
        .publish_with_headers("orders.shipped", headers, "box 7".into())
        .await
        .unwrap();
    env.nats
        .publish("other.created", "not for us".into())
        .await
        .unwrap();
    env.nats.flush().await.unwrap();

    let plain = sse.event().await;
    assert_eq!(plain.id, None, "live mode has no SSE ids");
    assert_eq!(plain.event, None, "events have no type, so onmessage fires");
    let event = plain.json();
    assert_eq!(event["specversion"], "1.0");
    assert_eq!(event["type"], "io.herald.message");
    assert_eq!(event["source"], "nats:orders.created");
    assert_eq!(event["subject"], "orders.created");
    assert_eq!(event["heraldsubject"], "orders.created");
    assert_eq!(event["data"], json!({"order": 1}));
    assert!(event["id"].as_str().is_some_and(|id| !id.is_empty()), "{event}");
    assert!(
        event["time"].as_str().is_some_and(|t| t.ends_with('Z')),
        "{event}"
    );
    assert!(
        event.get("heraldseq").is_none(),
        "live mode has no sequence: {event}"
    );
    let with_attributes = sse.event().await.json();
    assert_eq!(with_attributes["id"], "evt-9");
    assert_eq!(with_attributes["type"], "order.shipped");
    assert_eq!(with_attributes["source"], "/warehouse");
    assert_eq!(with_attributes["datacontenttype"], "text/plain");
    assert_eq!(with_attributes["data"], "box 7");
    assert_eq!(with_attributes["heraldsubject"], "orders.shipped");

    let first = ws_json(&mut ws).await;
    assert_eq!(first["heraldsubject"], "orders.created");
    assert_eq!(first["data"], json!({"order": 1}));
    assert_eq!(first["type"], "io.herald.message");
    let second = ws_json(&mut ws).await;
    assert_eq!(second["id"], "evt-9");
    assert_eq!(second["data"], "box 7");

    // Pings are answered; a clean close ends the subscription.
    within("ping", ws.send(Message::Ping(Bytes::from_static(b"hi"))))
        .await
        .unwrap();
    loop {
        match within("pong", ws.next()).await {
            Some(Ok(Message::Pong(payload))) => {
                assert_eq!(payload.as_ref(), b"hi");
                break;
            }
            Some(Ok(Message::Text(text))) => panic!("unexpected event {text}"),
            other => assert!(matches!(other, Some(Ok(_))), "no pong: {other:?}"),
        }
    }
    within("close", ws.close(None)).await.unwrap();
    drop(sse);
    eventually("both subscriptions are closed", || async {
        metric(&env, "herald_http_push_subscriptions").await == 0
    })
    .await;
    assert!(metric(&env, "herald_http_push_sent_total").await >= 4);
}

#[tokio::test]
async fn an_http_post_reaches_an_sse_client() {
    let env = Env::start().await;
    let mut sse = Sse::open(&env, "/v1/events/shop.>", &[]).await;
    let event = json!({"specversion": "1.0", "id": "e-1", "source": "/shop", "type": "order.created",
        "tenant": "acme", "data": {"total": 12}});
    let (status, body) = env
        .post(
            "/v1/events/shop.orders.eu",
            "application/cloudevents+json",
            &[],
            event.to_string(),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let got = sse.event().await.json();
    assert_eq!(got["id"], "e-1");
    assert_eq!(got["source"], "/shop");
    assert_eq!(got["type"], "order.created");
    assert_eq!(got["tenant"], "acme");
    assert_eq!(got["data"], json!({"total": 12}));
    assert_eq!(got["heraldsubject"], "shop.orders.eu");
}

/// The stream sequence of an SSE event in stream mode, checked against
/// its CloudEvent.
fn seq_of(event: &SseEvent) -> u64 {
    let json = event.json();
    let seq = json["heraldseq"].as_u64().expect("heraldseq");
    assert_eq!(
        event.id.as_deref(),
        Some(seq.to_string().as_str()),
        "id line is the sequence"
    );
    assert_eq!(json["heraldstream"], "EV");
    seq
}

#[tokio::test]
async fn sse_resumes_after_last_event_id_with_exactly_the_missed_events() {
    let env = Env::start().await;
    env.stream("EV", &["ev.>"]).await;
    // Sequences 1..=6, every third one on a subject the pattern excludes.
    let mut wanted = Vec::new();
    for i in 1..=6 {
        let subject = if i % 3 == 0 { "ev.b.x" } else { "ev.a.x" };
        let seq = publish_stored(&env, subject, &format!(r#"{{"n":{i}}}"#)).await;
        if subject == "ev.a.x" {
            wanted.push(seq);
        }
    }
    let mut sse = Sse::open(&env, "/v1/events/ev.a.*?stream=EV", &[]).await;
    let first = sse.event().await;
    let json = first.json();
    assert_eq!(json["id"], "EV-1", "default id is <stream>-<seq>");
    assert_eq!(json["data"], json!({"n": 1}));
    assert_eq!(json["heraldsubject"], "ev.a.x");
    assert!(json["time"].as_str().is_some_and(|t| t.ends_with('Z')));
    let mut seen = vec![seq_of(&first)];
    for _ in 0..2 {
        seen.push(seq_of(&sse.event().await));
    }
    assert_eq!(seen, wanted[..3]);
    let last_seen = seen[2].to_string();
    drop(sse);

    // Published while disconnected.
    for i in 7..=12 {
        let subject = if i % 3 == 0 { "ev.b.x" } else { "ev.a.x" };
        let seq = publish_stored(&env, subject, &format!(r#"{{"n":{i}}}"#)).await;
        if subject == "ev.a.x" {
            wanted.push(seq);
        }
    }
    // An EventSource reconnects to the same URL with Last-Event-ID; it wins
    // over the URL's start position.
    let mut resumed = Sse::open(
        &env,
        "/v1/events/ev.a.*?stream=EV&start_seq=1",
        &[("last-event-id", &last_seen)],
    )
    .await;
    let mut got = Vec::new();
    for _ in 3..wanted.len() {
        got.push(seq_of(&resumed.event().await));
    }
    assert_eq!(got, wanted[3..], "exactly the missed events, in order");
    // Nothing else is pending: the next event is one published now.
    let sentinel = publish_stored(&env, "ev.a.x", r#"{"n":"sentinel"}"#).await;
    let next = resumed.event().await;
    assert_eq!(seq_of(&next), sentinel);
    assert_eq!(next.json()["data"], json!({"n": "sentinel"}));

    // The query form, for clients that cannot set headers.
    let after = wanted[wanted.len() - 2];
    let mut by_query = Sse::open(
        &env,
        &format!("/v1/events/ev.a.*?stream=EV&last_event_id={after}"),
        &[],
    )
    .await;
    assert_eq!(seq_of(&by_query.event().await), wanted[wanted.len() - 1]);
    assert_eq!(seq_of(&by_query.event().await), sentinel);

    // The ephemeral consumers go with their clients.
    drop(resumed);
    drop(by_query);
    let stream = env.js.get_stream("EV").await.unwrap();
    eventually("the push consumers are deleted", || {
        let mut stream = stream.clone();
        async move {
            stream
                .info()
                .await
                .map(|i| i.state.consumer_count == 0)
                .unwrap_or(false)
        }
    })
    .await;
}

#[tokio::test]
async fn websocket_acks_a_durable_consumer_and_hands_back_what_was_left_unacked() {
    let env = Env::start().await;
    env.stream("JOBS", &["jobs.>"]).await;
    let stream = env.js.get_stream("JOBS").await.unwrap();
    within(
        "create consumer",
        stream.create_consumer(async_nats::jetstream::consumer::pull::Config {
            durable_name: Some("workers".into()),
            ack_policy: async_nats::jetstream::consumer::AckPolicy::Explicit,
            // Long: what comes back below comes back because of a nak or
            // the hand-back on close, not because the ack wait ran out.
            ack_wait: Duration::from_secs(120),
            ..Default::default()
        }),
    )
    .await
    .expect("create consumer");
    for i in 1..=4 {
        publish_stored(&env, &format!("jobs.{i}"), &format!(r#"{{"job":{i}}}"#)).await;
    }
    let path = "/v1/events/%3E?stream=JOBS&consumer=workers";
    let mut ws = ws_open(&env, path).await;
    let mut ids = std::collections::HashMap::new();
    for expected in 1..=4u64 {
        let frame = ws_json(&mut ws).await;
        assert_eq!(frame["heraldseq"], expected);
        assert_eq!(frame["heraldstream"], "JOBS");
        assert_eq!(frame["heraldsubject"], format!("jobs.{expected}"));
        assert_eq!(frame["data"], json!({"job": expected}));
        let id = frame["heraldackid"].as_str().expect("heraldackid").to_string();
        ids.insert(expected, id);
    }
    ws_send(&mut ws, json!({"ack": ids[&1]})).await;
    ws_send(&mut ws, json!({"ack": ids[&2]})).await;
    ws_send(&mut ws, json!({"nak": ids[&3], "delay_ms": 0})).await;
    let again = ws_json(&mut ws).await;
    assert_eq!(again["heraldseq"], 3, "the nacked message comes back: {again}");
    assert_ne!(
        again["heraldackid"],
        ids[&3].as_str(),
        "a new delivery has a new ack id"
    );
    // An id acked already is refused with a problem, the socket stays open.
    ws_send(&mut ws, json!({"ack": ids[&1]})).await;
    let error = ws_json(&mut ws).await;
    assert_eq!(error["error"]["status"], 404, "{error}");
    ws_send(&mut ws, json!({"ack": 5})).await;
    let error = ws_json(&mut ws).await;
    assert_eq!(error["error"]["status"], 400, "{error}");

    // 3 (redelivered) and 4 are left unacked: the next client gets them.
    within("close", ws.close(None)).await.unwrap();
    drop(ws);
    let mut next_client = ws_open(&env, path).await;
    let mut redelivered = Vec::new();
    for _ in 0..2 {
        let frame = within_for(WAIT * 2, "redelivery", ws_json(&mut next_client)).await;
        redelivered.push(frame["heraldseq"].as_u64().unwrap());
        let id = frame["heraldackid"].as_str().unwrap().to_string();
        ws_send(&mut next_client, json!({"ack": id})).await;
    }
    redelivered.sort();
    assert_eq!(redelivered, [3, 4]);
    // 1 and 2 were acked for good: the next delivery is a new message.
    let seq = publish_stored(&env, "jobs.5", r#"{"job":5}"#).await;
    let frame = ws_json(&mut next_client).await;
    assert_eq!(frame["heraldseq"], seq);
    ws_send(&mut next_client, json!({"ack": frame["heraldackid"]})).await;
    wait_all_acked(&stream, "workers", 5, "every message is acked").await;
}

#[tokio::test]
async fn a_live_sse_client_that_does_not_read_is_cut_off() {
    // A write deadline far past the test, so what the slow client is left
    // with is the end of its stream, not a closed connection.
    let env = Env::start_with(&["--write-deadline-ms", "600000"]).await;
    let slow = open_unread_sse(&env, "/v1/events/big.>").await;
    // 48 MiB: more than the 16 MiB backlog plus every buffer between the
    // server and this unread response (socket buffers are a few MiB).
    flood_until_cut_off(&env).await;

    // The server is fine, and serves the next client.
    let (status, _) = env.get("/healthz").await;
    assert_eq!(status, 200);
    let mut fresh = Sse::open(&env, "/v1/events/big.>", &[]).await;
    env.nats
        .publish("big.data", r#"{"small":true}"#.into())
        .await
        .unwrap();
    env.nats.flush().await.unwrap();
    assert_eq!(fresh.event().await.json()["data"], json!({"small": true}));

    // Reading what is left of the slow stream ends in the reason.
    let mut rest = Sse {
        body: slow.bytes_stream().boxed(),
        buffer: Vec::new(),
    };
    let mut last = None;
    let mut events = 0;
    while let Some(event) = within("read the slow stream", rest.next()).await {
        events += 1;
        last = Some(event);
    }
    let last = last.expect("some events");
    assert_eq!(last.event.as_deref(), Some("error"), "after {events} events");
    let problem = last.json();
    assert!(
        problem["detail"].as_str().unwrap().contains("slow consumer"),
        "{problem}"
    );
    assert!(
        problem["type"].as_str().unwrap().ends_with("slow-consumer"),
        "{problem}"
    );
    assert!(events < 768, "the backlog was bounded: {events} events");
}

#[tokio::test]
async fn a_client_that_accepts_no_data_is_disconnected_at_the_write_deadline() {
    let env = Env::start_with(&["--write-deadline-ms", "1000"]).await;
    env.stream("BIG", &["big.>"]).await;
    // 40 MB stored: far more than the socket buffers and the frames queued
    // for the body, so the server's writes block while the client reads nothing.
    let payload = Bytes::from(vec![b'x'; 1_000_000]);
    for _ in 0..40 {
        let ack = within("publish", env.js.publish("big.data", payload.clone()))
            .await
            .expect("publish");
        within("PubAck", std::future::IntoFuture::into_future(ack))
            .await
            .expect("PubAck");
    }
    let slow = open_unread_sse(&env, "/v1/events/big.>?stream=BIG&deliver=all").await;
    eventually("the connection is closed at the write deadline", || async {
        metric(&env, "herald_http_write_timeouts_total").await == 1
    })
    .await;
    // Closing the connection ends the subscription and its consumer, well
    // before the push stream's own 10 s stall limit would have.
    eventually("the subscription ends with the connection", || async {
        metric(&env, "herald_http_push_subscriptions").await == 0
    })
    .await;
    let stream = env.js.get_stream("BIG").await.expect("stream BIG");
    eventually("its consumer is deleted", || {
        let mut stream = stream.clone();
        async move { stream.info().await.expect("stream info").state.consumer_count == 0 }
    })
    .await;
    assert_eq!(metric(&env, "herald_http_push_slow_total").await, 0);
    drop(slow);
    let (status, _) = env.get("/healthz").await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn bad_push_requests_get_problems() {
    let env = Env::start().await;
    env.stream("EV", &["ev.>"]).await;
    let get = |path: &str, accept: Option<&str>| {
        let mut request = env.http.get(env.url(path));
        if let Some(accept) = accept {
            request = request.header("accept", accept);
        }
        async move { status_and_json(within("GET", request.send()).await.expect("GET")).await }
    };
    let sse = Some("text/event-stream");

    let (status, problem) = get("/v1/events/ev.>", None).await;
    assert_eq!(status, 406);
    let detail = problem["detail"].as_str().unwrap();
    assert!(
        detail.contains("text/event-stream") && detail.contains("WebSocket"),
        "{detail}"
    );
    let (status, _) = get("/v1/events/ev.>", Some("application/json")).await;
    assert_eq!(status, 406);

    for pattern in ["ev..a", "ev.>.a", "ev.a%20b"] {
        let (status, problem) = get(&format!("/v1/events/{pattern}"), sse).await;
        assert_eq!(status, 400, "{pattern}: {problem}");
        assert!(
            problem["type"].as_str().unwrap().ends_with("invalid-pattern"),
            "{problem}"
        );
    }

    let (status, problem) = get("/v1/events/ev.>?stream=NOPE", sse).await;
    assert_eq!(status, 404, "{problem}");
    assert_eq!(problem["err_code"], 10059);
    let (status, problem) = get("/v1/events/ev.>?stream=EV&consumer=nobody", sse).await;
    assert_eq!(status, 404, "{problem}");
    assert_eq!(problem["err_code"], 10014);

    for query in [
        "stream=EV&start_seq=abc",
        "stream=EV&deliver=first",
        "stream=EV&deliver=new&start_seq=2",
        "consumer=c",
        "stream=E.V",
        "stream=EV&color=blue",
    ] {
        let (status, problem) = get(&format!("/v1/events/ev.>?{query}"), sse).await;
        assert_eq!(status, 400, "{query}: {problem}");
    }
    // A good request still works (its body never ends: not read).
    let good = within(
        "GET",
        env.http
            .get(env.url("/v1/events/ev.>?stream=EV"))
            .header("accept", "text/event-stream")
            .send(),
    )
    .await
    .expect("GET");
    assert_eq!(good.status(), 200);
}

#[tokio::test]
async fn a_live_websocket_client_that_does_not_read_is_closed() {
    let env = Env::start().await;
    let slow = ws_open(&env, "/v1/events/big.%3E").await;
    // As for SSE: well past the backlog and the buffers in between.
    flood_until_cut_off(&env).await;
    let (status, _) = env.get("/healthz").await;
    assert_eq!(status, 200);
    drop(slow);
}

#[tokio::test]
async fn sse_from_a_durable_consumer_acks_what_it_wrote() {
    let env = Env::start().await;
    env.stream("JOBS", &["jobs.>"]).await;
    let stream = env.js.get_stream("JOBS").await.unwrap();
    within(
        "create consumer",
        stream.create_consumer(async_nats::jetstream::consumer::pull::Config {
            durable_name: Some("mailer".into()),
            ack_policy: async_nats::jetstream::consumer::AckPolicy::Explicit,
            filter_subject: "jobs.mail".into(),
            ..Default::default()
        }),
    )
    .await
    .expect("create consumer");
    for _ in 0..3 {
        publish_stored(&env, "jobs.mail", r#"{"to":"a@example.com"}"#).await;
    }
    // The pattern is the consumer's filter (or `>`); anything else is refused.
    let (status, problem) = status_and_json(
        within(
            "GET",
            env.http
                .get(env.url("/v1/events/jobs.sms?stream=JOBS&consumer=mailer"))
                .header("accept", "text/event-stream")
                .send(),
        )
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, 400, "{problem}");
    let mut sse = Sse::open(&env, "/v1/events/jobs.mail?stream=JOBS&consumer=mailer", &[]).await;
    for seq in 1..=3u64 {
        let event = sse.event().await;
        assert_eq!(event.id.as_deref(), Some(seq.to_string().as_str()));
        assert!(
            event.json().get("heraldackid").is_none(),
            "SSE clients do not ack"
        );
    }
    wait_all_acked(&stream, "mailer", 3, "what was written is acked").await;
}

#[tokio::test]
async fn push_streams_end_when_the_server_stops() {
    let mut env = Env::start().await;
    env.stream("EV", &["ev.>"]).await;
    let mut live = Sse::open(&env, "/v1/events/ev.>", &[]).await;
    let mut stored = Sse::open(&env, "/v1/events/ev.>?stream=EV", &[]).await;
    let mut ws = ws_open(&env, "/v1/events/ev.%3E").await;
    // Fails the test unless the process exits in time with the streams open.
    env.server.stop();
    assert!(within("live SSE ends", live.next()).await.is_none());
    assert!(within("stored SSE ends", stored.next()).await.is_none());
    loop {
        match within("WebSocket ends", ws.next()).await {
            Some(Ok(Message::Close(frame))) => {
                let frame = frame.expect("a close frame with a code");
                assert_eq!(u16::from(frame.code), 1001, "going away: {frame:?}");
                break;
            }
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            other => panic!("expected a close frame, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn stream_mode_starts_where_asked() {
    let env = Env::start().await;
    env.stream("EV", &["ev.>"]).await;
    for i in 1..=4 {
        publish_stored(&env, &format!("ev.{}", i % 2), &format!(r#"{{"n":{i}}}"#)).await;
    }
    // Sequences: 1 ev.1, 2 ev.0, 3 ev.1, 4 ev.0.
    let mut last = Sse::open(&env, "/v1/events/ev.1?stream=EV&deliver=last", &[]).await;
    assert_eq!(
        last.event().await.id.as_deref(),
        Some("3"),
        "the last of the filter"
    );
    let mut from = Sse::open(&env, "/v1/events/ev.*?stream=EV&start_seq=2", &[]).await;
    assert_eq!(from.event().await.id.as_deref(), Some("2"));
    let mut ws_new = ws_open(&env, "/v1/events/ev.*?stream=EV&deliver=new").await;
    let mut sse_new = Sse::open(&env, "/v1/events/ev.*?stream=EV&deliver=new", &[]).await;
    let seq = publish_stored(&env, "ev.9", r#"{"n":9}"#).await;
    assert_eq!(seq, 5);
    assert_eq!(sse_new.event().await.id.as_deref(), Some("5"));
    let frame = ws_json(&mut ws_new).await;
    assert_eq!(frame["heraldseq"], 5, "WebSocket in stream mode: {frame}");
    assert_eq!(frame["heraldstream"], "EV");
    assert!(
        frame.get("heraldackid").is_none(),
        "ephemeral consumers take no acks"
    );
    assert_eq!(from.event().await.id.as_deref(), Some("3"));
    // Acks on a subscription without them are refused, the socket stays.
    ws_send(&mut ws_new, json!({"ack": "1"})).await;
    let error = ws_json(&mut ws_new).await;
    assert!(
        error["error"]["type"].as_str().unwrap().ends_with("no-acks"),
        "{error}"
    );
}

/// Opens an SSE response that the test then does not read.
async fn open_unread_sse(env: &Env, path: &str) -> reqwest::Response {
    let response = within(
        "open SSE",
        env.http
            .get(env.url(path))
            .header("accept", "text/event-stream")
            .send(),
    )
    .await
    .expect("open SSE");
    assert_eq!(response.status(), 200);
    response
}

/// Publishes 48 MiB on `big.data` (three times the live backlog bound,
/// plus socket buffers) and waits until the server counted one slow push
/// client and closed its subscription.
async fn flood_until_cut_off(env: &Env) {
    flood_until_cut_off_with(env, 64 * 1024, 768).await;
}

/// Publishes `count` payloads of `len` bytes on `big.data` and waits like
/// [`flood_until_cut_off`].
async fn flood_until_cut_off_with(env: &Env, len: usize, count: usize) {
    let payload = Bytes::from(vec![b'x'; len]);
    for _ in 0..count {
        env.nats.publish("big.data", payload.clone()).await.unwrap();
    }
    env.nats.flush().await.unwrap();
    // By the overflowed backlog at once, or at the latest by the write
    // timeout, should the buffers in between be larger than planned for.
    within_for(WAIT * 3, "the slow client is cut off", async {
        while metric(env, "herald_http_push_slow_total").await != 1 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    eventually("its subscription is closed", || async {
        metric(env, "herald_http_push_subscriptions").await == 0
    })
    .await;
}

/// Waits until consumer `name` has nothing pending an ack and its ack
/// floor is stream sequence `floor`.
async fn wait_all_acked(stream: &async_nats::jetstream::stream::Stream, name: &str, floor: u64, what: &str) {
    eventually(what, || {
        let stream = stream.clone();
        async move {
            let mut consumer: async_nats::jetstream::consumer::PullConsumer =
                stream.get_consumer(name).await.unwrap();
            let info = consumer.info().await.unwrap();
            info.num_ack_pending == 0 && info.ack_floor.stream_sequence == floor
        }
    })
    .await;
}
