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
