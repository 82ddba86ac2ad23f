//! Message headers: delivered intact to clients that support them, stripped
//! (payload only, as `MSG`) for clients that do not.

use async_nats::HeaderMap;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_arrive_with_every_value_and_the_names_case() {
    let server = TestServer::start();
    let subscriber = connect(&server.url()).await;
    let publisher = connect(&server.url()).await;
    let mut sub = subscribe(&subscriber, "hdr.test").await;

    let mut headers = HeaderMap::new();
    headers.insert("Trace-Id", "abc-123");
    headers.append("X-Multi", "first");
    headers.append("X-Multi", "second");
    headers.append("X-Multi", "third value with spaces");
    headers.insert("lower-case-name", "v");
    headers.insert("MiXeD-CaSe", "kept");
    publisher
        .publish_with_headers("hdr.test", headers, "the payload".into())
        .await
        .expect("publish_with_headers");
    publisher.flush().await.expect("flush");

    let m = next(&mut sub).await;
    assert_eq!(&m.payload[..], b"the payload");
    let got = m.headers.expect("the message must carry headers");
    assert_eq!(got.get("Trace-Id").map(|v| v.as_str()), Some("abc-123"));
    let multi: Vec<&str> = got.get_all("X-Multi").map(|v| v.as_str()).collect();
    assert_eq!(
        multi,
        ["first", "second", "third value with spaces"],
        "values and their order"
    );
    let mut names: Vec<String> = got.iter().map(|(name, _)| name.to_string()).collect();
    names.sort();
    assert_eq!(
        names,
        ["MiXeD-CaSe", "Trace-Id", "X-Multi", "lower-case-name"],
        "names and their case"
    );
    assert_eq!(got.get("MiXeD-CaSe").map(|v| v.as_str()), Some("kept"));
}

#[test]
fn header_block_is_delivered_verbatim_to_a_raw_header_aware_subscriber() {
    let server = TestServer::start();
    let mut sub = server.raw_connected(r#"{"verbose":false,"headers":true}"#);
    sub.send("SUB raw.hdr 5\r\n");
    assert_eq!(sub.ping(), "");
    let mut publisher = server.raw_connected(r#"{"verbose":false,"headers":true}"#);
    let header_block = "NATS/1.0\r\nX-Case: MiXeD\r\nX-Case: again\r\nempty:\r\n\r\n";
    let payload = "body\r\nwith crlf";
    let total = header_block.len() + payload.len();
    publisher.send(format!(
        "HPUB raw.hdr reply.to {} {total}\r\n{header_block}{payload}\r\n",
        header_block.len()
    ));
    assert_eq!(publisher.ping(), "");
    assert_eq!(
        sub.ping(),
        format!(
            "HMSG raw.hdr 5 reply.to {} {total}\r\n{header_block}{payload}\r\n",
            header_block.len()
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_without_header_support_gets_a_plain_msg_with_the_payload_only() {
    let server = TestServer::start();
    let mut old = server.raw_connected(r#"{"verbose":false,"headers":false}"#);
    old.send("SUB hdr.plain 1\r\n");
    assert_eq!(old.ping(), "");
    // A client that does not mention headers at all is treated the same.
    let mut older = server.raw_connected(r#"{"verbose":false}"#);
    older.send("SUB hdr.plain 2\r\n");
    assert_eq!(older.ping(), "");

    let publisher = connect(&server.url()).await;
    let mut headers = HeaderMap::new();
    headers.insert("Trace-Id", "abc");
    // Small payloads are copied, large ones (≥ 2 KiB) shared between
    // subscribers: both paths must strip the headers.
    let large: String = "0123456789abcdef".repeat(300);
    for payload in ["small body", large.as_str()] {
        publisher
            .publish_with_headers("hdr.plain", headers.clone(), payload.to_string().into())
            .await
            .expect("publish_with_headers");
    }
    sync(&publisher).await;

    let expected = format!(
        "MSG hdr.plain {{sid}} 10\r\nsmall body\r\nMSG hdr.plain {{sid}} {}\r\n{large}\r\n",
        large.len()
    );
    assert_eq!(old.ping(), expected.replace("{sid}", "1"));
    assert_eq!(older.ping(), expected.replace("{sid}", "2"));
}
