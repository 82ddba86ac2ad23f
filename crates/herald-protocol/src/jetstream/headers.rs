//! JetStream header names, the status messages of pull and push consumers
//! (byte-exact as nats-server writes them), and readers for the publish
//! headers a stream honours.

use thiserror::Error;

use super::time::{format_go_duration, parse_go_duration, Timestamp};
use crate::Headers;

/// De-duplication id of a published message.
pub const MSG_ID: &str = "Nats-Msg-Id";
/// Publish only if the subject belongs to this stream.
pub const EXPECTED_STREAM: &str = "Nats-Expected-Stream";
/// Publish only if the stream's last `Nats-Msg-Id` is this.
pub const EXPECTED_LAST_MSG_ID: &str = "Nats-Expected-Last-Msg-Id";
/// Publish only if the stream's last sequence is this.
pub const EXPECTED_LAST_SEQUENCE: &str = "Nats-Expected-Last-Sequence";
/// Publish only if the subject's last sequence is this (`0`: no message yet).
pub const EXPECTED_LAST_SUBJECT_SEQUENCE: &str = "Nats-Expected-Last-Subject-Sequence";
/// Subject used for the check above instead of the published subject.
pub const EXPECTED_LAST_SUBJECT_SEQUENCE_SUBJECT: &str = "Nats-Expected-Last-Subject-Sequence-Subject";
/// Roll-up: purge earlier messages of the subject (`sub`) or stream (`all`).
pub const ROLLUP: &str = "Nats-Rollup";
/// Per-message TTL: Go duration, seconds, or `never`.
pub const TTL: &str = "Nats-TTL";
/// Stream of a republished / directly fetched message.
pub const STREAM: &str = "Nats-Stream";
/// Sequence of a republished / directly fetched message.
pub const SEQUENCE: &str = "Nats-Sequence";
/// Store time (RFC 3339) of a republished / directly fetched message.
pub const TIME_STAMP: &str = "Nats-Time-Stamp";
/// Original subject of a republished / directly fetched message.
pub const SUBJECT: &str = "Nats-Subject";
/// Previous sequence in a republish or batched direct get.
pub const LAST_SEQUENCE: &str = "Nats-Last-Sequence";
/// Messages left in a batched direct get.
pub const NUM_PENDING: &str = "Nats-Num-Pending";
/// Upper sequence of a multi-last direct get.
pub const UP_TO_SEQUENCE: &str = "Nats-UpTo-Sequence";
/// Payload size of a headers-only delivery.
pub const MSG_SIZE: &str = "Nats-Msg-Size";
/// Last consumer sequence, in idle heartbeats.
pub const LAST_CONSUMER: &str = "Nats-Last-Consumer";
/// Last stream sequence, in idle heartbeats.
pub const LAST_STREAM: &str = "Nats-Last-Stream";
/// Flow-control reply subject a stalled push consumer waits on.
pub const CONSUMER_STALLED: &str = "Nats-Consumer-Stalled";
/// Messages left of a pull request, in its terminal status.
pub const PENDING_MESSAGES: &str = "Nats-Pending-Messages";
/// Bytes left of a pull request, in its terminal status.
pub const PENDING_BYTES: &str = "Nats-Pending-Bytes";

/// `Nats-Rollup: sub`.
pub const ROLLUP_SUBJECT: &str = "sub";
/// `Nats-Rollup: all`.
pub const ROLLUP_ALL: &str = "all";

/// `404 No Messages`: a `no_wait` pull found nothing.
pub const NO_MESSAGES: &[u8] = b"NATS/1.0 404 No Messages\r\n\r\n";
/// `409 Consumer Deleted`: the consumer went away under a pull request.
pub const CONSUMER_DELETED: &[u8] = b"NATS/1.0 409 Consumer Deleted\r\n\r\n";
/// `409 Consumer is push based`: a pull request to a push consumer.
pub const CONSUMER_IS_PUSH_BASED: &[u8] = b"NATS/1.0 409 Consumer is push based\r\n\r\n";
/// `409 Exceeded MaxWaiting`: too many waiting pull requests.
pub const EXCEEDED_MAX_WAITING: &[u8] = b"NATS/1.0 409 Exceeded MaxWaiting\r\n\r\n";
/// `409 Leadership Change`.
pub const LEADERSHIP_CHANGE: &[u8] = b"NATS/1.0 409 Leadership Change\r\n\r\n";
/// `100 FlowControl Request`: push flow control; reply to its subject.
pub const FLOW_CONTROL_REQUEST: &[u8] = b"NATS/1.0 100 FlowControl Request\r\n\r\n";
/// `404 Message Not Found`: a direct get found nothing.
pub const MESSAGE_NOT_FOUND: &[u8] = b"NATS/1.0 404 Message Not Found\r\n\r\n";

/// A status-only header block: `NATS/1.0 <code> <description>\r\n\r\n`.
pub fn status(code: u16, description: &str) -> Vec<u8> {
    format!("NATS/1.0 {code} {description}\r\n\r\n").into_bytes()
}

/// A status block with the pull request's leftovers, as nats-server ends a
/// pull request: `408 Request Timeout`, `408 Interest Expired`,
/// `409 Message Size Exceeds MaxBytes`, `409 Batch Completed`,
/// `409 Server Shutdown`.
pub fn status_with_pending(code: u16, description: &str, pending_msgs: u64, pending_bytes: u64) -> Vec<u8> {
    format!(
        "NATS/1.0 {code} {description}\r\n{PENDING_MESSAGES}: {pending_msgs}\r\n{PENDING_BYTES}: {pending_bytes}\r\n\r\n"
    )
    .into_bytes()
}

/// `408 Request Timeout` with the request's leftovers.
pub fn request_timeout(pending_msgs: u64, pending_bytes: u64) -> Vec<u8> {
    status_with_pending(408, "Request Timeout", pending_msgs, pending_bytes)
}

/// `400 Bad Request - <reason>` for a pull request that does not parse.
pub fn bad_request(reason: &str) -> Vec<u8> {
    status(400, &format!("Bad Request - {reason}"))
}

/// `409 Exceeded MaxRequestBatch of <n>`.
pub fn exceeded_max_request_batch(max: i64) -> Vec<u8> {
    status(409, &format!("Exceeded MaxRequestBatch of {max}"))
}

/// `409 Exceeded MaxRequestExpires of <Go duration>`, e.g. `1m0s`.
pub fn exceeded_max_request_expires(max_ns: i64) -> Vec<u8> {
    status(
        409,
        &format!("Exceeded MaxRequestExpires of {}", format_go_duration(max_ns)),
    )
}

/// `409 Exceeded MaxRequestMaxBytes of <n>`.
pub fn exceeded_max_request_max_bytes(max: i64) -> Vec<u8> {
    status(409, &format!("Exceeded MaxRequestMaxBytes of {max}"))
}

/// `100 Idle Heartbeat` with the last delivered sequences and, for a push
/// consumer stalled on flow control, the subject it waits on.
pub fn idle_heartbeat(last_consumer: u64, last_stream: u64, stalled: Option<&str>) -> Vec<u8> {
    let mut out = format!(
        "NATS/1.0 100 Idle Heartbeat\r\n{LAST_CONSUMER}: {last_consumer}\r\n{LAST_STREAM}: {last_stream}\r\n"
    );
    if let Some(subject) = stalled {
        out.push_str(&format!("{CONSUMER_STALLED}: {subject}\r\n"));
    }
    out.push_str("\r\n");
    out.into_bytes()
}

/// Appends `name: value` to a header block the way nats-server's
/// `genHeader` does: an empty block becomes `NATS/1.0`, existing headers
/// stay (a name may then appear twice), the block stays terminated.
pub fn append_header(block: &mut Vec<u8>, name: &str, value: &str) {
    if block.len() > 2 {
        block.truncate(block.len() - 2);
    } else {
        block.clear();
        block.extend_from_slice(b"NATS/1.0\r\n");
    }
    block.extend_from_slice(name.as_bytes());
    block.extend_from_slice(b": ");
    block.extend_from_slice(value.as_bytes());
    block.extend_from_slice(b"\r\n\r\n");
}

/// The header block of a direct get reply (and of republished messages):
/// the stored headers, if any, followed by `Nats-Stream`, `Nats-Subject`,
/// `Nats-Sequence`, `Nats-Time-Stamp`.
pub fn stored_message_headers(
    stored: &[u8],
    stream: &str,
    subject: &str,
    seq: u64,
    time: Timestamp,
) -> Vec<u8> {
    let mut block = stored.to_vec();
    append_header(&mut block, STREAM, stream);
    append_header(&mut block, SUBJECT, subject);
    append_header(&mut block, SEQUENCE, &seq.to_string());
    append_header(&mut block, TIME_STAMP, &time.to_rfc3339());
    block
}

/// A roll-up requested by `Nats-Rollup`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rollup {
    /// Purge earlier messages of the same subject.
    Subject,
    /// Purge the whole stream.
    All,
}

/// A JetStream publish header whose value is not valid.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("invalid {header} header value {value:?}")]
pub struct HeaderValueError {
    /// The header name.
    pub header: &'static str,
    /// Its value.
    pub value: String,
}

/// Reads a `Nats-TTL` value as nats-server does: `never` (any case) is `-1`,
/// a Go duration of at least one second is its whole seconds, a bare
/// integer is seconds (`"0"` itself is a zero Go duration, hence invalid).
/// `None` if invalid (error 10165 "invalid per-message TTL").
pub fn parse_message_ttl(value: &str) -> Option<i64> {
    if value.eq_ignore_ascii_case("never") {
        return Some(-1);
    }
    if let Some(ns) = parse_go_duration(value) {
        return (ns >= 1_000_000_000).then_some(ns / 1_000_000_000);
    }
    value.parse::<u64>().ok().and_then(|s| i64::try_from(s).ok())
}

/// The JetStream headers of a published message that steer storing it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PublishHeaders {
    /// `Nats-Msg-Id`.
    pub msg_id: Option<String>,
    /// `Nats-Expected-Stream`.
    pub expected_stream: Option<String>,
    /// `Nats-Expected-Last-Msg-Id`.
    pub expected_last_msg_id: Option<String>,
    /// `Nats-Expected-Last-Sequence`.
    pub expected_last_seq: Option<u64>,
    /// `Nats-Expected-Last-Subject-Sequence`.
    pub expected_last_subject_seq: Option<u64>,
    /// `Nats-Expected-Last-Subject-Sequence-Subject`.
    pub expected_last_subject_seq_subject: Option<String>,
    /// `Nats-Rollup` (read case-insensitively).
    pub rollup: Option<Rollup>,
    /// `Nats-TTL` in seconds, `-1` never (see [`parse_message_ttl`]).
    pub ttl: Option<i64>,
}

impl PublishHeaders {
    /// Reads the JetStream publish headers; empty values count as absent.
    ///
    /// Errors name the offending header. nats-server answers an invalid
    /// `Nats-TTL` with 10165 and an invalid `Nats-Rollup` with 10111
    /// (`rollup value invalid: "<v>"`); it reads an unparsable expected
    /// sequence as a mismatch (10071).
    pub fn from_headers(headers: &Headers) -> Result<PublishHeaders, HeaderValueError> {
        let get = |name: &str| headers.get(name).filter(|v| !v.is_empty());
        let text = |name: &str| get(name).map(str::to_string);
        let seq = |name: &'static str| -> Result<Option<u64>, HeaderValueError> {
            get(name)
                .map(|v| {
                    v.parse().map_err(|_| HeaderValueError {
                        header: name,
                        value: v.to_string(),
                    })
                })
                .transpose()
        };
        let rollup = match get(ROLLUP) {
            None => None,
            Some(v) if v.eq_ignore_ascii_case(ROLLUP_SUBJECT) => Some(Rollup::Subject),
            Some(v) if v.eq_ignore_ascii_case(ROLLUP_ALL) => Some(Rollup::All),
            Some(v) => {
                return Err(HeaderValueError {
                    header: ROLLUP,
                    value: v.to_string(),
                })
            }
        };
        let ttl = match get(TTL) {
            None => None,
            Some(v) => Some(parse_message_ttl(v).ok_or_else(|| HeaderValueError {
                header: TTL,
                value: v.to_string(),
            })?),
        };
        Ok(PublishHeaders {
            msg_id: text(MSG_ID),
            expected_stream: text(EXPECTED_STREAM),
            expected_last_msg_id: text(EXPECTED_LAST_MSG_ID),
            expected_last_seq: seq(EXPECTED_LAST_SEQUENCE)?,
            expected_last_subject_seq: seq(EXPECTED_LAST_SUBJECT_SEQUENCE)?,
            expected_last_subject_seq_subject: text(EXPECTED_LAST_SUBJECT_SEQUENCE_SUBJECT),
            rollup,
            ttl,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_blocks_are_byte_exact() {
        assert_eq!(
            request_timeout(5, 1024),
            b"NATS/1.0 408 Request Timeout\r\nNats-Pending-Messages: 5\r\nNats-Pending-Bytes: 1024\r\n\r\n"
        );
        assert_eq!(
            idle_heartbeat(3, 9, None),
            b"NATS/1.0 100 Idle Heartbeat\r\nNats-Last-Consumer: 3\r\nNats-Last-Stream: 9\r\n\r\n"
        );
        assert_eq!(
            idle_heartbeat(0, 0, Some("$JS.FC.x")),
            b"NATS/1.0 100 Idle Heartbeat\r\nNats-Last-Consumer: 0\r\nNats-Last-Stream: 0\r\nNats-Consumer-Stalled: $JS.FC.x\r\n\r\n"
        );
        assert_eq!(
            exceeded_max_request_expires(60_000_000_000),
            b"NATS/1.0 409 Exceeded MaxRequestExpires of 1m0s\r\n\r\n"
        );
        assert_eq!(
            bad_request("heartbeat value too large"),
            b"NATS/1.0 400 Bad Request - heartbeat value too large\r\n\r\n"
        );
        assert_eq!(status(409, "Exceeded MaxWaiting"), EXCEEDED_MAX_WAITING);
        // Every block reads back through the crate's header parser.
        for block in [
            NO_MESSAGES,
            CONSUMER_DELETED,
            FLOW_CONTROL_REQUEST,
            &request_timeout(1, 2)[..],
            &idle_heartbeat(1, 2, Some("s"))[..],
        ] {
            let h = Headers::parse(block).unwrap();
            assert!(h.status.is_some() && h.description.is_some());
        }
        let h = Headers::parse(&idle_heartbeat(4, 8, None)).unwrap();
        assert_eq!((h.status, h.get(LAST_STREAM)), (Some(100), Some("8")));
    }

    #[test]
    fn stored_headers() {
        let t = Timestamp::from_unix_nanos(1_700_000_000_500_000_000);
        assert_eq!(
            stored_message_headers(b"", "S", "a.b", 7, t),
            b"NATS/1.0\r\nNats-Stream: S\r\nNats-Subject: a.b\r\nNats-Sequence: 7\r\nNats-Time-Stamp: 2023-11-14T22:13:20.5Z\r\n\r\n"
        );
        let block = stored_message_headers(b"NATS/1.0\r\nX: 1\r\n\r\n", "S", "a", 1, t);
        let h = Headers::parse(&block).unwrap();
        assert_eq!((h.get("X"), h.get(SEQUENCE)), (Some("1"), Some("1")));
    }

    #[test]
    fn publish_headers() {
        let mut h = Headers::new();
        h.append(MSG_ID, "id-1");
        h.append(EXPECTED_LAST_SUBJECT_SEQUENCE, "0");
        h.append("nats-rollup", "SUB");
        h.append(TTL, "1m");
        let p = PublishHeaders::from_headers(&h).unwrap();
        assert_eq!(p.msg_id.as_deref(), Some("id-1"));
        assert_eq!(p.expected_last_subject_seq, Some(0));
        assert_eq!(p.expected_last_seq, None);
        assert_eq!(p.rollup, Some(Rollup::Subject));
        assert_eq!(p.ttl, Some(60));

        let mut h = Headers::new();
        h.append(EXPECTED_LAST_SEQUENCE, "x");
        assert_eq!(
            PublishHeaders::from_headers(&h).unwrap_err().header,
            EXPECTED_LAST_SEQUENCE
        );
        let mut h = Headers::new();
        h.append(ROLLUP, "some");
        assert!(PublishHeaders::from_headers(&h).is_err());

        assert_eq!(parse_message_ttl("never"), Some(-1));
        assert_eq!(parse_message_ttl("NEVER"), Some(-1));
        assert_eq!(parse_message_ttl("30"), Some(30));
        assert_eq!(parse_message_ttl("1.5s"), Some(1));
        assert_eq!(parse_message_ttl("500ms"), None);
        assert_eq!(parse_message_ttl("-1"), None);
        assert_eq!(parse_message_ttl("abc"), None);
    }
}
