//! HTTP monitoring: `/healthz`, `/metrics`, `/varz` and `/connz` report the truth.

use crate::support::*;

#[test]
fn healthz_answers_ok_as_json() {
    let server = TestServer::start();
    let response = server.http_get("/healthz");
    assert_eq!(response.status, 200, "{response:?}");
    assert!(
        response
            .header("content-type")
            .is_some_and(|t| t.starts_with("application/json")),
        "{response:?}"
    );
    let body: serde_json::Value = serde_json::from_str(&response.body).expect("JSON body");
    assert_eq!(body, serde_json::json!({ "status": "ok" }));
}

#[test]
fn unknown_monitoring_path_is_404() {
    let server = TestServer::start();
    assert_eq!(server.http_get("/no-such-page").status, 404);
}

const METRIC_NAMES: [&str; 11] = [
    "herald_connections",
    "herald_connections_total",
    "herald_subscriptions",
    "herald_in_messages_total",
    "herald_out_messages_total",
    "herald_in_bytes_total",
    "herald_out_bytes_total",
    "herald_slow_consumers_total",
    "herald_stale_connections_total",
    "herald_ops_total",
    "herald_errors_total",
];

#[test]
fn metrics_expose_every_documented_series_in_prometheus_text() {
    let server = TestServer::start();
    let response = server.http_get("/metrics");
    assert_eq!(response.status, 200);
    assert!(
        response
            .header("content-type")
            .is_some_and(|t| t.starts_with("text/plain")),
        "{response:?}"
    );
    let metrics = Metrics::parse(&response.body);
    for name in METRIC_NAMES {
        assert!(
            metrics
                .0
                .keys()
                .any(|k| k == name || k.starts_with(&format!("{name}{{"))),
            "metric {name} missing from /metrics:\n{}",
            response.body
        );
        assert!(
            response.body.contains(&format!("# TYPE {name} ")),
            "metric {name} has no TYPE line"
        );
    }
    assert!(metrics.has("herald_ops_total{verb=\"PUB\"}"), "{}", response.body);
    assert!(
        metrics
            .0
            .keys()
            .any(|k| k.starts_with("herald_errors_total{verb=\"")),
        "{}",
        response.body
    );
}

#[test]
fn metrics_count_published_and_delivered_messages_and_bytes_exactly() {
    let server = TestServer::start();
    let mut subscribers: Vec<RawConn> = (1..=2)
        .map(|_| {
            let mut s = server.raw_connected(r#"{"verbose":false}"#);
            s.send("SUB metrics.test 1\r\n");
            assert_eq!(s.ping(), "");
            s
        })
        .collect();
    let mut publisher = server.raw_connected(r#"{"verbose":false}"#);
    let before = server.metrics();
    assert_eq!(before.get("herald_connections"), 3.0);
    assert_eq!(before.get("herald_subscriptions"), 2.0);

    publisher.send("PUB metrics.test 10\r\n0123456789\r\n".repeat(100));
    assert_eq!(publisher.ping(), "");
    for s in &mut subscribers {
        let got = s.ping();
        assert_eq!(got.matches("MSG metrics.test 1 10\r\n").count(), 100);
    }

    let delta = |after: &Metrics, series: &str| after.get(series) - before.get(series);
    eventually("counters reflect 100 messages to 2 subscribers", || {
        let after = server.metrics();
        delta(&after, "herald_in_messages_total") >= 100.0
            && delta(&after, "herald_out_messages_total") >= 200.0
    });
    let after = server.metrics();
    assert_eq!(delta(&after, "herald_in_messages_total"), 100.0);
    assert_eq!(delta(&after, "herald_out_messages_total"), 200.0);
    assert_eq!(delta(&after, "herald_in_bytes_total"), 1000.0);
    assert_eq!(delta(&after, "herald_out_bytes_total"), 2000.0);
    assert_eq!(delta(&after, "herald_ops_total{verb=\"PUB\"}"), 100.0);
    assert_eq!(after.get("herald_connections"), 3.0);

    // Errors are counted too.
    let mut bad = server.raw();
    let _ = bad.try_send("NONSENSE\r\n");
    bad.read_to_close(WAIT);
    eventually("one more error counted", || {
        server.metrics().sum("herald_errors_total") - before.sum("herald_errors_total") == 1.0
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn varz_is_json_and_counts_the_connections_open_now() {
    let server = TestServer::start_with(&["--server-name", "e2e-varz"]);
    let varz = server.varz();
    for field in [
        "connections",
        "total_connections",
        "subscriptions",
        "in_msgs",
        "out_msgs",
        "in_bytes",
        "out_bytes",
        "slow_consumers",
        "max_payload",
    ] {
        assert!(
            varz[field].is_u64(),
            "/varz field {field} missing or not a number: {varz}"
        );
    }
    assert!(varz["ops"].is_object() && varz["errors"].is_object(), "{varz}");
    assert_eq!(varz["connections"], 0);
    assert_eq!(varz["max_payload"], 1_048_576);
    assert_eq!(varz["server_name"], "e2e-varz");

    let a = connect(&server.url()).await;
    let b = connect(&server.url()).await;
    let c = connect(&server.url()).await;
    let mut raw = server.raw_connected(r#"{"verbose":false}"#);
    sync(&a).await;
    sync(&b).await;
    sync(&c).await;
    assert_eq!(server.varz_u64("connections"), 4);
    assert!(server.varz_u64("total_connections") >= 4);

    raw.send("SUB varz.x 1\r\n");
    assert_eq!(raw.ping(), "");
    assert_eq!(server.varz_u64("subscriptions"), 1);
    drop(raw);
    eventually("a closed raw connection is no longer counted", || {
        server.varz_u64("connections") == 3
    });
    drop(c);
    eventually("a dropped async-nats client is no longer counted", || {
        server.varz_u64("connections") == 2
    });
    assert_eq!(server.varz_u64("total_connections"), 4);
    let _ = (a, b);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connz_lists_each_open_connection_with_its_figures() {
    let server = TestServer::start();
    let named = connect_with(
        async_nats::ConnectOptions::new().name("orders-service"),
        &server.url(),
    )
    .await;
    let _sub = subscribe(&named, "connz.>").await;
    let mut raw =
        server.raw_connected(r#"{"verbose":false,"name":"raw-one","lang":"python","version":"9.9"}"#);
    raw.send("PUB connz.a 3\r\nabc\r\nPUB connz.b 2\r\nde\r\n");
    assert_eq!(raw.ping(), "");
    sync(&named).await;

    let body = server.http_get("/connz");
    assert_eq!(body.status, 200);
    let connz: serde_json::Value = serde_json::from_str(&body.body).expect("JSON");
    assert_eq!(connz["total"], 2);
    let conns = connz["connections"].as_array().unwrap();
    let by_name = |name: &str| {
        conns
            .iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("{name} in {connz}"))
    };
    let raw_info = by_name("raw-one");
    assert_eq!(raw_info["lang"], "python");
    assert_eq!(raw_info["version"], "9.9");
    assert_eq!(raw_info["in_msgs"], 2);
    assert_eq!(raw_info["in_bytes"], 5);
    assert_eq!(raw_info["ip"], "127.0.0.1");
    let service = by_name("orders-service");
    assert_eq!(service["lang"], "rust");
    assert!(service["subscriptions"].as_u64().unwrap() >= 1);
    assert!(service["out_msgs"].as_u64().unwrap() >= 2, "{service}");

    let limited: serde_json::Value =
        serde_json::from_str(&server.http_get("/connz?limit=1&offset=1").body).unwrap();
    assert_eq!(limited["connections"].as_array().unwrap().len(), 1);
    assert_eq!(limited["total"], 2);
}
