//! The JetStream pieces without a server: PubAcks, status lines, `$JS.ACK`
//! subjects and the two flow-control windows.

use std::time::{Duration, Instant};

use herald_bench::js::{
    parse_ack_reply, parse_pub_ack, parse_pub_reply, parse_status, parse_status_headers, AckReply,
};
use herald_bench::jspub::{AckMatch, AckWindow, PubFrame};
use herald_bench::jsreplay::PullWindow;
use herald_bench::scan::{Frame, Msg, Scanner};

/// Scans `wire` and hands the first message to `check`.
fn with_msg(wire: &[u8], check: impl FnOnce(&Msg<'_>)) {
    let mut scanner = Scanner::new(1024);
    scanner.push(wire);
    let mut check = Some(check);
    scanner
        .scan(|frame| {
            if let (Frame::Msg(msg), Some(check)) = (frame, check.take()) {
                check(&msg);
            }
        })
        .unwrap();
    assert!(
        check.is_none(),
        "no message in {:?}",
        String::from_utf8_lossy(wire)
    );
}

#[test]
fn pub_acks() {
    let ack = parse_pub_ack(br#"{"stream":"BENCH","seq":42}"#).unwrap();
    assert_eq!(
        (ack.stream.as_ref(), ack.seq, ack.duplicate),
        ("BENCH", 42, false)
    );
    let ack = parse_pub_ack(br#"{"stream":"S","domain":"hub","seq":7,"duplicate":true}"#).unwrap();
    assert_eq!((ack.stream.as_ref(), ack.seq, ack.duplicate), ("S", 7, true));
    // Spacing and field order do not matter.
    let ack = parse_pub_ack(b"{ \"seq\" : 9 , \"stream\" : \"S\" }").unwrap();
    assert_eq!(ack.seq, 9);
}

#[test]
fn pub_ack_errors_fail() {
    let err = parse_pub_ack(
        br#"{"error":{"code":503,"err_code":10077,"description":"maximum messages exceeded"},"stream":"S","seq":0}"#,
    )
    .unwrap_err();
    assert!(err.contains("maximum messages exceeded"), "{err}");
    assert!(
        err.contains("code 503") && err.contains("err_code 10077"),
        "{err}"
    );
    assert!(parse_pub_ack(b"").unwrap_err().contains("malformed"));
    assert!(parse_pub_ack(b"+OK").unwrap_err().contains("malformed"));
    assert!(parse_pub_ack(br#"{"stream":"S"}"#)
        .unwrap_err()
        .contains("without"));
    assert!(parse_pub_ack(br#"{"seq":1}"#).is_err());
}

#[test]
fn pub_replies_with_status_are_failures() {
    with_msg(b"HMSG _INBOX.x.1 1 16 16\r\nNATS/1.0 503\r\n\r\n\r\n", |msg| {
        let err = parse_pub_reply(msg).unwrap_err();
        assert!(err.contains("no responders"), "{err}");
    });
    with_msg(
        b"MSG _INBOX.x.1 1 26\r\n{\"stream\":\"BENCH\",\"seq\":3}\r\n",
        |msg| {
            assert_eq!(parse_pub_reply(msg).unwrap().seq, 3);
        },
    );
}

#[test]
fn status_lines() {
    let s = parse_status_headers(
        b"NATS/1.0 408 Request Timeout\r\nNats-Pending-Messages: 17\r\nNats-Pending-Bytes: 2176\r\n\r\n",
    )
    .unwrap();
    assert_eq!(
        (s.code, s.description, s.pending_msgs),
        (408, "Request Timeout", Some(17))
    );
    let s = parse_status_headers(b"NATS/1.0 100 Idle Heartbeat\r\n\r\n").unwrap();
    assert_eq!(
        (s.code, s.description, s.pending_msgs),
        (100, "Idle Heartbeat", None)
    );
    let s = parse_status_headers(b"NATS/1.0 404 No Messages\r\n\r\n").unwrap();
    assert_eq!(s.code, 404);
    let s = parse_status_headers(b"NATS/1.0 409 Exceeded MaxWaiting\r\n\r\n").unwrap();
    assert_eq!((s.code, s.description), (409, "Exceeded MaxWaiting"));
    let s = parse_status_headers(b"NATS/1.0 503\r\n\r\n").unwrap();
    assert_eq!((s.code, s.description), (503, ""));
    // Header names are case-insensitive.
    let s = parse_status_headers(b"NATS/1.0 408 Request Timeout\r\nnats-pending-messages:3\r\n\r\n").unwrap();
    assert_eq!(s.pending_msgs, Some(3));
    // Headers without a code, and bodies, are data.
    assert!(parse_status_headers(b"NATS/1.0\r\nNats-Msg-Id: 1\r\n\r\n").is_none());
    assert!(parse_status_headers(b"").is_none());
    assert!(parse_status_headers(b"NATS/1.0 40\r\n\r\n").is_none());
    assert!(parse_status_headers(b"HTTP/1.1 408 Timeout\r\n\r\n").is_none());
}

#[test]
fn status_messages_on_the_wire() {
    let head = b"NATS/1.0 408 Request Timeout\r\nNats-Pending-Messages: 5\r\n\r\n";
    let mut wire = format!("HMSG _INBOX.t.pull.3 2 {0} {0}\r\n", head.len()).into_bytes();
    wire.extend_from_slice(head);
    wire.extend_from_slice(b"\r\n");
    with_msg(&wire, |msg| {
        let s = parse_status(msg).unwrap();
        assert_eq!((s.code, s.pending_msgs), (408, Some(5)));
        assert!(msg.body().is_empty());
    });
    // A plain data message is no status, with headers or without.
    with_msg(b"MSG bench.js.1 2 $JS.ACK.S.C.1.1.1.0.0 2\r\nhi\r\n", |msg| {
        assert!(parse_status(msg).is_none());
    });
    with_msg(b"HMSG bench.js.1 2 12 14\r\nNATS/1.0\r\n\r\nhi\r\n", |msg| {
        assert!(parse_status(msg).is_none());
    });
}

#[test]
fn ack_reply_subjects() {
    let v1 = parse_ack_reply(b"$JS.ACK.BENCH.bench-replay.1.42.40.1700000000000000000.958").unwrap();
    assert_eq!(
        v1,
        AckReply {
            delivered: 1,
            stream_seq: 42,
            consumer_seq: 40,
            pending: 958
        }
    );
    let v2 = parse_ack_reply(b"$JS.ACK.hub.ACCHASH.BENCH.c.2.42.41.1700000000000000000.0.r4nd0m").unwrap();
    assert_eq!(
        (v2.delivered, v2.stream_seq, v2.consumer_seq, v2.pending),
        (2, 42, 41, 0)
    );
    let v2 = parse_ack_reply(b"$JS.ACK._.ACCHASH.BENCH.c.1.5.5.17.3").unwrap();
    assert_eq!((v2.stream_seq, v2.pending), (5, 3));
    assert!(parse_ack_reply(b"$JS.ACK.S.C.1.x.1.1.1").is_none());
    assert!(parse_ack_reply(b"$JS.ACK.S.C.1.2").is_none());
    assert!(parse_ack_reply(b"_INBOX.abc.1").is_none());
}

#[test]
fn pub_frames_and_their_reply_numbers() {
    let frame = PubFrame::new("bench.js.1", "_INBOX.t.p1.", 5);
    let mut out = Vec::new();
    frame.push(&mut out, 0);
    frame.push(&mut out, 1234);
    assert_eq!(
        out,
        b"PUB bench.js.1 _INBOX.t.p1.0 5\r\nxxxxx\r\nPUB bench.js.1 _INBOX.t.p1.1234 5\r\nxxxxx\r\n"
    );
    assert_eq!(frame.seq_of(b"_INBOX.t.p1.1234"), Some(1234));
    assert_eq!(frame.seq_of(b"_INBOX.t.p1.0"), Some(0));
    assert_eq!(frame.seq_of(b"_INBOX.t.p2.5"), None);
    assert_eq!(frame.seq_of(b"_INBOX.t.p1."), None);
    assert_eq!(frame.seq_of(b"_INBOX.t.p1.12a"), None);
}

#[test]
fn ack_window_limits_what_is_in_flight() {
    let t0 = Instant::now();
    let mut w = AckWindow::new(3);
    assert_eq!(w.try_send(t0), Some(0));
    assert_eq!(w.try_send(t0), Some(1));
    assert_eq!(w.try_send(t0), Some(2));
    assert_eq!(w.try_send(t0), None, "window full");
    assert_eq!(w.outstanding(), 3);
    let t1 = t0 + Duration::from_micros(250);
    assert_eq!(w.ack(0, t1), AckMatch::Acked(Duration::from_micros(250)));
    assert_eq!(w.try_send(t1), Some(3));
    assert_eq!(w.try_send(t1), None);
    assert_eq!((w.sent(), w.acked(), w.outstanding()), (4, 1, 3));
}

#[test]
fn ack_window_flags_repeated_and_unknown_acks() {
    let t = Instant::now();
    let mut w = AckWindow::new(2);
    w.try_send(t);
    w.try_send(t);
    assert!(matches!(w.ack(1, t), AckMatch::Acked(_)));
    assert_eq!(w.ack(1, t), AckMatch::Repeated);
    assert_eq!(w.ack(2, t), AckMatch::Unknown, "never sent");
    assert!(matches!(w.ack(0, t), AckMatch::Acked(_)));
    assert_eq!(w.try_send(t), Some(2));
    assert!(matches!(w.ack(2, t), AckMatch::Acked(_)));
    // Slot of 0 reused by 2, both acknowledged: an old ack is a repeat.
    assert_eq!(w.ack(0, t), AckMatch::Repeated);
    assert_eq!((w.sent(), w.acked()), (3, 3));
}

#[test]
fn ack_window_out_of_order_never_overwrites_a_pending_message() {
    let t = Instant::now();
    let mut w = AckWindow::new(4);
    for _ in 0..4 {
        w.try_send(t);
    }
    // 1..3 acknowledged, 0 still pending: 4 would take 0's slot.
    for seq in 1..4 {
        assert!(matches!(w.ack(seq, t), AckMatch::Acked(_)));
    }
    assert_eq!(w.try_send(t), None, "slot of message 0 still busy");
    assert!(matches!(w.ack(0, t), AckMatch::Acked(_)));
    assert_eq!(w.try_send(t), Some(4));
}

#[test]
fn ack_window_of_zero_means_one() {
    let t = Instant::now();
    let mut w = AckWindow::new(0);
    assert_eq!(w.try_send(t), Some(0));
    assert_eq!(w.try_send(t), None);
}

#[test]
fn pull_window_keeps_two_batches_requested() {
    let mut w = PullWindow::new(100, 2, 1_000);
    assert_eq!(w.next_request(), Some(100));
    assert_eq!(w.next_request(), Some(100));
    assert_eq!(w.next_request(), None);
    for _ in 0..99 {
        w.on_message();
    }
    assert_eq!(w.next_request(), None, "101 left: more than one batch");
    w.on_message();
    assert_eq!(w.credit(), 100);
    assert_eq!(w.next_request(), Some(100));
    assert_eq!(w.requests(), 3);
}

#[test]
fn pull_window_never_asks_for_more_than_is_wanted() {
    let mut w = PullWindow::new(100, 2, 150);
    assert_eq!(w.next_request(), Some(100));
    assert_eq!(w.next_request(), Some(50));
    assert_eq!(w.next_request(), None);
    for _ in 0..150 {
        w.on_message();
        assert_eq!(w.next_request(), None);
    }
    assert!(w.done());
    assert_eq!(w.credit(), 0);
}

#[test]
fn pull_window_re_requests_what_expired() {
    let mut w = PullWindow::new(100, 2, 1_000);
    w.next_request();
    w.next_request();
    for _ in 0..30 {
        w.on_message();
    }
    // The first request expired with 70 of its messages undelivered.
    w.on_request_end(Some(70));
    assert_eq!(w.credit(), 100);
    assert_eq!(w.next_request(), Some(100));
    // Unknown pending counts as a whole batch, never below zero.
    w.on_request_end(None);
    w.on_request_end(None);
    w.on_request_end(None);
    assert_eq!(w.credit(), 0);
    assert_eq!(w.next_request(), Some(100));
    w.reset();
    assert_eq!(w.credit(), 0);
    assert_eq!(w.delivered(), 30);
}

#[test]
fn pull_window_with_one_pull_waits_for_the_whole_batch() {
    let mut w = PullWindow::new(10, 1, 100);
    assert_eq!(w.next_request(), Some(10));
    for _ in 0..9 {
        w.on_message();
        assert_eq!(w.next_request(), None);
    }
    w.on_message();
    assert_eq!(w.next_request(), Some(10));
}
