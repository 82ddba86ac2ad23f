//! Regression tests, each named after the bug it guards against.

use crate::support::{RawConn, TestServer};

/// A connection's first read buffer used the same "already listed" mark as
/// a fresh subscriber, so deliveries from it were queued but not flushed
/// until some later activity. The subscriber here sends nothing after its
/// PING, so only the publisher's flush can get the message to it.
#[test]
fn first_read_buffer_of_a_publisher_is_flushed_to_subscribers() {
    let server = TestServer::start();
    let mut subscriber = RawConn::connect(server.client_addr);
    subscriber.send("SUB first.buffer 1\r\n");
    assert_eq!(subscriber.ping(), "");
    let mut publisher = RawConn::connect_bare(server.client_addr);
    publisher.send("PUB first.buffer 2\r\nhi\r\n");
    let got = subscriber.read_until(b"hi\r\n");
    assert_eq!(got, b"MSG first.buffer 1 2\r\nhi\r\n");
}

/// PONGs (and other replies to a client's own requests) were queued without
/// the `max_pending` bound, so a client sending PINGs without reading grew
/// the server's memory without limit.
#[test]
fn client_that_pings_without_reading_is_cut_off_as_slow_consumer() {
    // A long write deadline: only the max_pending bound may cut it off in time.
    let server = TestServer::start_with(&[
        "--max-payload",
        "1024",
        "--max-pending",
        "65536",
        "--write-deadline-ms",
        "60000",
    ]);
    let mut greedy = RawConn::connect(server.client_addr);
    let pings = "PING\r\n".repeat(100_000);
    // Far more PONGs than the socket buffers and max_pending hold together;
    // the server closes the connection part-way, so sending may fail.
    for _ in 0..40 {
        if greedy.try_send(&pings).is_err() {
            break;
        }
    }
    crate::support::eventually("slow consumer counted", || server.varz_u64("slow_consumers") >= 1);
    assert!(greedy.is_closed_within(crate::support::WAIT), "connection closed");
    let mut other = RawConn::connect(server.client_addr);
    assert_eq!(other.ping(), "", "the server still serves others");
}
