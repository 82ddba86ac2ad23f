//! Malformed and hostile input: each bad connection gets `-ERR` and is
//! closed alone; the server keeps serving everyone else.

use crate::support::*;

/// Sends `bytes` on a fresh connection (after `INFO`, without `CONNECT`
/// unless `bytes` has one) and checks that the server answers exactly
/// `expected` and closes that connection, while a connection opened before
/// stays served and a new `async-nats` client can still publish and
/// subscribe.
fn assert_refused(bytes: &[u8], expected: &str) {
    let server = TestServer::start();
    let mut bystander = server.raw_connected(r#"{"verbose":false}"#);
    bystander.send("SUB watch.> 1\r\n");
    assert_eq!(bystander.ping(), "");

    let mut bad = server.raw();
    let _ = bad.try_send(bytes);
    let got = bad.read_to_close_text(WAIT);
    assert_eq!(got, expected, "reply to {:?}", String::from_utf8_lossy(bytes));

    bystander.send("PUB watch.it 2\r\nok\r\n");
    assert_eq!(
        bystander.ping(),
        "MSG watch.it 1 2\r\nok\r\n",
        "the bystander must still be served"
    );
    assert_pubsub_works_blocking(&server.url());
    eventually("only the bystander is still connected", || {
        server.varz_u64("connections") == 1
    });
}

#[test]
fn unknown_verb_gets_unknown_protocol_operation() {
    assert_refused(b"FOO bar\r\n", "-ERR 'Unknown Protocol Operation'\r\n");
}

#[test]
fn pub_with_non_numeric_size_gets_parser_error() {
    assert_refused(b"PUB a x\r\n", "-ERR 'Parser Error'\r\n");
}

#[test]
fn pub_with_too_few_arguments_gets_parser_error() {
    assert_refused(b"PUB a\r\n", "-ERR 'Parser Error'\r\n");
}

#[test]
fn pub_whose_payload_is_longer_than_announced_gets_parser_error() {
    assert_refused(b"PUB a 3\r\nabcdef\r\n", "-ERR 'Parser Error'\r\n");
}

#[test]
fn sub_without_arguments_gets_parser_error() {
    assert_refused(b"SUB\r\n", "-ERR 'Parser Error'\r\n");
}

#[test]
fn hpub_with_header_size_over_total_gets_parser_error() {
    assert_refused(b"HPUB a 5 3\r\nabc\r\n", "-ERR 'Parser Error'\r\n");
}

#[test]
fn unsub_with_non_numeric_max_gets_parser_error() {
    assert_refused(b"UNSUB 1 many\r\n", "-ERR 'Parser Error'\r\n");
}

#[test]
fn binary_garbage_gets_unknown_protocol_operation() {
    assert_refused(
        b"\x00\x01\x02\xfe\xff\x80\x7f garbage \x1b[0m\r\n",
        "-ERR 'Unknown Protocol Operation'\r\n",
    );
}

#[test]
fn invalid_connect_json_gets_invalid_connect_json() {
    assert_refused(
        b"CONNECT {\"verbose\":fals\r\n",
        "-ERR 'Invalid CONNECT JSON'\r\n",
    );
}

#[test]
fn operations_before_the_bad_one_are_still_carried_out() {
    let server = TestServer::start();
    let mut bad = server.raw();
    let _ =
        bad.try_send("CONNECT {\"verbose\":false}\r\nSUB x 1\r\nPUB x 2\r\nhi\r\nPING\r\nBOGUS\r\nPING\r\n");
    assert_eq!(
        bad.read_to_close_text(WAIT),
        "MSG x 1 2\r\nhi\r\nPONG\r\n-ERR 'Unknown Protocol Operation'\r\n"
    );
}

#[test]
fn truncated_frame_then_close_is_dropped_without_delivery() {
    // A client that disappears mid-frame cannot be told anything; the server
    // must close its side, route nothing, and carry on.
    let server = TestServer::start();
    let mut watcher = server.raw_connected(r#"{"verbose":false}"#);
    watcher.send("SUB cut 1\r\n");
    assert_eq!(watcher.ping(), "");

    let mut bad = server.raw_connected(r#"{"verbose":false}"#);
    bad.send("PUB cut 10\r\nabc");
    bad.shutdown_write();
    assert_eq!(
        bad.read_to_close_text(WAIT),
        "",
        "nothing is owed to a client that left"
    );

    assert_eq!(watcher.ping(), "", "the partial message must not be delivered");
    assert_pubsub_works_blocking(&server.url());
    eventually("the truncated connection is gone", || {
        server.varz_u64("connections") == 1
    });
}

#[test]
fn two_hundred_random_byte_buffers_do_not_disturb_the_server() {
    let server = TestServer::start();
    let mut rng = XorShift::new(0x5EED_4E4A_1D00_2025);
    let prefixes: [&[u8]; 9] = [
        b"",
        b"PUB ",
        b"HPUB ",
        b"SUB ",
        b"UNSUB ",
        b"CONNECT ",
        b"CONNECT {\"headers\":true,\"verbose\":true}\r\nHPUB a r ",
        b"PUB a 5\r\n",
        b"MSG ",
    ];
    for round in 0..200 {
        let mut bytes = prefixes[rng.below(prefixes.len())].to_vec();
        let mut noise = vec![0u8; 1 + rng.below(2048)];
        rng.fill(&mut noise);
        // Sprinkle line ends so that some inputs reach argument parsing.
        for _ in 0..rng.below(4) {
            let at = rng.below(noise.len());
            noise[at] = b'\n';
            if at > 0 {
                noise[at - 1] = b'\r';
            }
        }
        bytes.extend_from_slice(&noise);

        let mut conn = server.raw();
        let _ = conn.try_send(&bytes);
        // End of input: whatever the bytes did, the server must now close.
        conn.shutdown_write();
        assert!(
            conn.is_closed_within(WAIT),
            "round {round}: the server kept a connection open after end of input; sent {bytes:?}"
        );
    }

    let mut probe = server.raw_connected(r#"{"verbose":false}"#);
    assert_eq!(probe.ping(), "");
    let health = server.http_get("/healthz");
    assert_eq!(health.status, 200);
    assert_pubsub_works_blocking(&server.url());
    eventually("every fuzzed connection is gone", || {
        server.varz_u64("connections") == 1
    });
    let total = server.varz_u64("total_connections");
    assert!(total >= 201, "total_connections = {total}");
    // Still fully responsive after all that.
    let mut again = server.raw_connected(r#"{"verbose":false}"#);
    again.send("SUB z 1\r\nPUB z 1\r\n!\r\n");
    assert_eq!(again.ping(), "MSG z 1 1\r\n!\r\n");
}
