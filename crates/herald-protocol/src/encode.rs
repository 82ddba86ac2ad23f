//! Writers for every protocol operation. Each appends to a `Vec<u8>` so that
//! many operations can be coalesced into one socket write.

use crate::{ConnectInfo, ServerInfo};

/// `PING\r\n`.
pub const PING: &[u8] = b"PING\r\n";
/// `PONG\r\n`.
pub const PONG: &[u8] = b"PONG\r\n";
/// `+OK\r\n`.
pub const OK: &[u8] = b"+OK\r\n";
/// `\r\n`, the terminator after a payload.
pub const CRLF: &[u8] = b"\r\n";

#[inline]
fn push_size(out: &mut Vec<u8>, n: usize) {
    let mut buf = itoa::Buffer::new();
    out.extend_from_slice(buf.format(n).as_bytes());
}

/// Writes `VERB subject [sid] [reply] [hdr] total\r\n`, the control line
/// shared by `MSG`/`HMSG` (with a sid) and `PUB`/`HPUB` (without).
#[inline]
fn frame_line(
    out: &mut Vec<u8>,
    verb: &[u8],
    subject: &[u8],
    sid: Option<&[u8]>,
    reply: Option<&[u8]>,
    header_len: Option<usize>,
    total_len: usize,
) {
    out.extend_from_slice(verb);
    out.extend_from_slice(subject);
    out.push(b' ');
    for word in [sid, reply].into_iter().flatten() {
        out.extend_from_slice(word);
        out.push(b' ');
    }
    if let Some(hdr) = header_len {
        push_size(out, hdr);
        out.push(b' ');
    }
    push_size(out, total_len);
    out.extend_from_slice(CRLF);
}

/// Writes the control line of a `MSG` (when `header_len` is `None`) or an
/// `HMSG`, not the payload. `total_len` counts headers and payload.
#[inline]
pub fn msg_line(
    out: &mut Vec<u8>,
    subject: &[u8],
    sid: &[u8],
    reply: Option<&[u8]>,
    header_len: Option<usize>,
    total_len: usize,
) {
    let verb: &[u8] = if header_len.is_some() { b"HMSG " } else { b"MSG " };
    frame_line(out, verb, subject, Some(sid), reply, header_len, total_len);
}

/// Writes a whole `MSG`/`HMSG`: control line, `data` (headers then payload), CRLF.
#[inline]
pub fn msg(
    out: &mut Vec<u8>,
    subject: &[u8],
    sid: &[u8],
    reply: Option<&[u8]>,
    header_len: Option<usize>,
    data: &[u8],
) {
    msg_line(out, subject, sid, reply, header_len, data.len());
    out.extend_from_slice(data);
    out.extend_from_slice(CRLF);
}

/// Writes a whole `PUB` (when `header_len` is `None`) or `HPUB`.
pub fn publish(
    out: &mut Vec<u8>,
    subject: &[u8],
    reply: Option<&[u8]>,
    header_len: Option<usize>,
    data: &[u8],
) {
    let verb: &[u8] = if header_len.is_some() { b"HPUB " } else { b"PUB " };
    frame_line(out, verb, subject, None, reply, header_len, data.len());
    out.extend_from_slice(data);
    out.extend_from_slice(CRLF);
}

/// Writes `HPUB subject [reply] hdr_len total`, the header block and the
/// payload, without first joining them in another buffer.
pub fn publish_headers(
    out: &mut Vec<u8>,
    subject: &[u8],
    reply: Option<&[u8]>,
    block: &[u8],
    payload: &[u8],
) {
    out.reserve(block.len() + payload.len() + subject.len() + reply.map_or(0, <[u8]>::len) + 32);
    frame_line(
        out,
        b"HPUB ",
        subject,
        None,
        reply,
        Some(block.len()),
        block.len() + payload.len(),
    );
    out.extend_from_slice(block);
    out.extend_from_slice(payload);
    out.extend_from_slice(CRLF);
}

/// Writes `SUB subject [queue] sid`.
pub fn sub(out: &mut Vec<u8>, subject: &[u8], queue: Option<&[u8]>, sid: &[u8]) {
    out.extend_from_slice(b"SUB ");
    out.extend_from_slice(subject);
    out.push(b' ');
    if let Some(queue) = queue {
        out.extend_from_slice(queue);
        out.push(b' ');
    }
    out.extend_from_slice(sid);
    out.extend_from_slice(CRLF);
}

/// Writes `UNSUB sid [max]`.
pub fn unsub(out: &mut Vec<u8>, sid: &[u8], max: Option<u64>) {
    out.extend_from_slice(b"UNSUB ");
    out.extend_from_slice(sid);
    if let Some(max) = max {
        out.push(b' ');
        let mut buf = itoa::Buffer::new();
        out.extend_from_slice(buf.format(max).as_bytes());
    }
    out.extend_from_slice(CRLF);
}

/// Writes `CONNECT {json}`.
pub fn connect(out: &mut Vec<u8>, info: &ConnectInfo) {
    out.extend_from_slice(b"CONNECT ");
    // Serializing a struct of plain fields into a Vec cannot fail.
    serde_json::to_writer(&mut *out, info).expect("CONNECT serializes");
    out.extend_from_slice(CRLF);
}

/// Writes `INFO {json}`.
pub fn info(out: &mut Vec<u8>, info: &ServerInfo) {
    out.extend_from_slice(b"INFO ");
    serde_json::to_writer(&mut *out, info).expect("INFO serializes");
    out.extend_from_slice(CRLF);
}

/// Writes `-ERR 'text'`.
pub fn err(out: &mut Vec<u8>, text: &str) {
    out.extend_from_slice(b"-ERR '");
    out.extend_from_slice(text.as_bytes());
    out.extend_from_slice(b"'\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{parse_client_op, parse_server_op, ClientOp, Limits, ServerOp};

    #[test]
    fn msg_round_trips() {
        let mut out = Vec::new();
        msg(
            &mut out,
            b"a.b",
            b"7",
            Some(b"r.1"),
            Some(12),
            b"NATS/1.0\r\n\r\nhello",
        );
        let (op, n) = parse_server_op(&out, &Limits::default()).unwrap().unwrap();
        assert_eq!(n, out.len());
        assert_eq!(
            op,
            ServerOp::Msg {
                subject: b"a.b",
                sid: b"7",
                reply: Some(b"r.1"),
                header_len: Some(12),
                data: b"NATS/1.0\r\n\r\nhello"
            }
        );
    }

    #[test]
    fn client_ops_round_trip() {
        let mut out = Vec::new();
        publish(&mut out, b"x", None, None, b"data");
        sub(&mut out, b"x.>", Some(b"workers"), b"3");
        unsub(&mut out, b"3", Some(5));
        let limits = Limits::default();
        let (op, n1) = parse_client_op(&out, &limits).unwrap().unwrap();
        assert_eq!(op.payload(), b"data");
        let (op, n2) = parse_client_op(&out[n1..], &limits).unwrap().unwrap();
        assert_eq!(
            op,
            ClientOp::Sub {
                subject: b"x.>",
                queue: Some(b"workers"),
                sid: b"3"
            }
        );
        let (op, _) = parse_client_op(&out[n1 + n2..], &limits).unwrap().unwrap();
        assert_eq!(
            op,
            ClientOp::Unsub {
                sid: b"3",
                max: Some(5)
            }
        );
    }
}
