//! Bad API requests get JSON errors and never take the server down: every
//! `$JS.API` subject Herald serves is sent malformed, mistyped and
//! out-of-range bodies. Herald only (nats-server leaves some unanswered).

use std::time::Duration;

use async_nats::jetstream::stream::Config;

use crate::server::is_nats_server;
use crate::util::*;

const SUBJECTS: &[&str] = &[
    "INFO",
    "STREAM.CREATE.G",
    "STREAM.CREATE.NEW",
    "STREAM.UPDATE.G",
    "STREAM.INFO.G",
    "STREAM.PURGE.G",
    "STREAM.NAMES",
    "STREAM.LIST",
    "STREAM.MSG.GET.G",
    "STREAM.MSG.DELETE.G",
    "CONSUMER.CREATE.G",
    "CONSUMER.CREATE.G.C",
    "CONSUMER.CREATE.G.C.g.x",
    "CONSUMER.DURABLE.CREATE.G.C",
    "CONSUMER.INFO.G.C",
    "CONSUMER.NAMES.G",
    "CONSUMER.LIST.G",
    "STREAM.CREATE.NOPE.NOPE",
    "NOT.A.THING",
];

const BODIES: &[&[u8]] = &[
    b"",
    b"null",
    b"[]",
    b"{",
    b"\xff\xfe\x00garbage",
    b"{\"name\":5}",
    b"{\"name\":\"G\",\"subjects\":[\"\"]}",
    b"{\"name\":\"G\",\"subjects\":[\"a..b\"]}",
    b"{\"name\":\"G\",\"max_msgs\":-99,\"max_age\":-1}",
    b"{\"name\":\"G\",\"subjects\":[\"g.>\"],\"max_msg_size\":99999999999}",
    b"{\"seq\":18446744073709551615}",
    b"{\"seq\":-1}",
    b"{\"last_by_subj\":\"*.>\"}",
    b"{\"filter\":\"\",\"seq\":5,\"keep\":5}",
    b"{\"stream_name\":\"G\",\"config\":null}",
    b"{\"stream_name\":\"G\",\"config\":{\"ack_policy\":\"sometimes\"}}",
    b"{\"stream_name\":\"G\",\"config\":{\"durable_name\":\"a.b\"}}",
    b"{\"stream_name\":\"G\",\"config\":{\"deliver_subject\":\"x.*\"}}",
    b"{\"stream_name\":\"G\",\"config\":{\"filter_subject\":\"elsewhere\"}}",
    b"{\"stream_name\":\"G\",\"config\":{\"backoff\":[-5],\"max_deliver\":2}}",
    b"{\"stream_name\":\"G\",\"config\":{\"idle_heartbeat\":5}}",
    b"{\"offset\":18446744073709551615}",
];

#[tokio::test]
async fn malformed_requests_get_json_errors_and_the_server_survives() {
    if is_nats_server() {
        eprintln!("skipped: nats-server leaves some of these unanswered");
        return;
    }
    let env = Env::start().await;
    env.stream(Config {
        name: "G".into(),
        subjects: vec!["g.>".into()],
        ..Default::default()
    })
    .await;
    for subject in SUBJECTS {
        for body in BODIES {
            let full = format!("$JS.API.{subject}");
            let reply = within(
                "api reply",
                env.client.request(full.clone(), bytes::Bytes::from_static(body)),
            )
            .await
            .unwrap_or_else(|e| panic!("{full} {:?}: no reply: {e}", String::from_utf8_lossy(body)));
            let json: serde_json::Value = serde_json::from_slice(&reply.payload).unwrap_or_else(|e| {
                panic!(
                    "{full} {:?}: reply is not JSON ({e}): {:?}",
                    String::from_utf8_lossy(body),
                    String::from_utf8_lossy(&reply.payload)
                )
            });
            if let Some(error) = json.get("error") {
                let code = error["code"].as_u64().unwrap_or(0);
                assert!((400..600).contains(&code), "{full}: {json}");
                assert!(
                    error["description"].as_str().is_some_and(|d| !d.is_empty()),
                    "{full}: {json}"
                );
            } else {
                assert!(
                    json.get("type").is_some(),
                    "{full}: neither error nor response: {json}"
                );
            }
        }
    }
    // Still serving.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let info = env.info("G").await;
    assert_eq!(info.config.name, "G");
}
