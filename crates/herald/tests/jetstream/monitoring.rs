//! Per-stream and per-consumer figures on `/jsz` (JSON) and `/metrics`
//! (Prometheus). Herald only.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::time::Duration;

use async_nats::jetstream::consumer::pull;
use async_nats::jetstream::stream::Config;

use crate::server::is_nats_server;
use crate::util::*;

/// `GET path` on the monitoring port; the body.
fn get(url: &str, path: &str) -> String {
    let addr = url.trim_start_matches("http://");
    let mut conn = TcpStream::connect(addr).expect("connect to monitoring");
    conn.set_read_timeout(Some(WAIT)).expect("timeout");
    write!(
        conn,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .expect("request");
    let mut response = String::new();
    conn.read_to_string(&mut response).expect("response");
    let (head, body) = response.split_once("\r\n\r\n").expect("HTTP response");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    body.to_string()
}

#[tokio::test]
async fn stream_and_consumer_figures_are_published() {
    if is_nats_server() {
        eprintln!("skipped: herald's monitoring endpoints");
        return;
    }
    let env = Env::start().await;
    let stream = env
        .stream(Config {
            name: "WATCHED".into(),
            subjects: vec!["watched.>".into()],
            ..Default::default()
        })
        .await;
    for i in 0..5 {
        env.publish("watched.a", format!("m{i}")).await;
    }
    let consumer = pull_consumer(
        &stream,
        "READER",
        pull::Config {
            ack_wait: Duration::from_secs(30),
            ..Default::default()
        },
    )
    .await;
    let pulled = fetch(&consumer, 2).await;
    ack(&pulled.messages[0]).await;

    let url = env.server.http_url();
    eventually("jsz shows the acked message", || {
        let url = url.clone();
        async move {
            let jsz: serde_json::Value = serde_json::from_str(&get(&url, "/jsz")).expect("json");
            let s = &jsz["streams"][0];
            let c = &s["consumers"][0];
            s["name"] == "WATCHED"
                && s["messages"] == 5
                && s["last_seq"] == 5
                && s["stored_total"] == 5
                && c["name"] == "READER"
                && c["num_pending"] == 3
                && c["num_ack_pending"] == 1
        }
    })
    .await;
    let metrics = get(&url, "/metrics");
    for line in [
        "herald_stream_messages{stream=\"WATCHED\"} 5",
        "herald_stream_last_seq{stream=\"WATCHED\"} 5",
        "herald_consumer_pending{stream=\"WATCHED\",consumer=\"READER\"} 3",
        "herald_consumer_ack_pending{stream=\"WATCHED\",consumer=\"READER\"} 1",
        "herald_consumer_dead_lettered_total{stream=\"WATCHED\",consumer=\"READER\"} 0",
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "missing {line:?} in:\n{metrics}"
        );
    }
}
