//! Operations a client sends to a server.

use crate::args::{control_line, parse_size, payload, sizes, split_args, split_verb, trim_end};
use crate::{Limits, ProtocolError};

/// One operation sent by a client, borrowing from the input buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientOp<'a> {
    /// `CONNECT {json}`: the raw JSON body.
    Connect(&'a [u8]),
    /// `PUB` or `HPUB`: a message to publish.
    Pub {
        /// Subject to publish to.
        subject: &'a [u8],
        /// Optional reply subject.
        reply: Option<&'a [u8]>,
        /// For `HPUB`, the length of the header block at the start of `data`.
        header_len: Option<usize>,
        /// Header block (for `HPUB`) followed by the payload.
        data: &'a [u8],
    },
    /// `SUB subject [queue] sid`.
    Sub {
        /// Subject or pattern.
        subject: &'a [u8],
        /// Queue group, if any.
        queue: Option<&'a [u8]>,
        /// Client-chosen subscription id.
        sid: &'a [u8],
    },
    /// `UNSUB sid [max]`.
    Unsub {
        /// Subscription id.
        sid: &'a [u8],
        /// Unsubscribe after this many messages in total, if given.
        max: Option<u64>,
    },
    /// `PING`.
    Ping,
    /// `PONG`.
    Pong,
    /// `INFO {json}` sent by a client (accepted and ignored by servers).
    Info(&'a [u8]),
    /// `+OK` sent by a client (accepted and ignored).
    Ok,
    /// `-ERR …` sent by a client (accepted and ignored).
    Err(&'a [u8]),
}

impl ClientOp<'_> {
    /// The payload without its header block.
    pub fn payload(&self) -> &[u8] {
        match self {
            ClientOp::Pub { header_len, data, .. } => &data[header_len.unwrap_or(0)..],
            _ => &[],
        }
    }
}

/// Parses one client operation from the start of `buf`.
///
/// Returns `Ok(None)` when `buf` holds only part of an operation (read more
/// and call again), or the operation and the number of bytes it used.
pub fn parse_client_op<'a>(
    buf: &'a [u8],
    limits: &Limits,
) -> Result<Option<(ClientOp<'a>, usize)>, ProtocolError> {
    let (line, line_len) = match control_line(buf, limits.max_control_line) {
        Ok(Some(found)) => found,
        Ok(None) => return Ok(None),
        Err(()) => {
            return Err(ProtocolError::ControlLineTooLong {
                max: limits.max_control_line,
            })
        }
    };
    let (verb, rest) = split_verb(line);
    let op = match verb.len() {
        3 if verb.eq_ignore_ascii_case(b"PUB") => {
            return parse_pub(buf, rest, line_len, limits, false);
        }
        4 if verb.eq_ignore_ascii_case(b"HPUB") => {
            return parse_pub(buf, rest, line_len, limits, true);
        }
        3 if verb.eq_ignore_ascii_case(b"SUB") => parse_sub(rest)?,
        5 if verb.eq_ignore_ascii_case(b"UNSUB") => parse_unsub(rest)?,
        4 if verb.eq_ignore_ascii_case(b"PING") => ClientOp::Ping,
        4 if verb.eq_ignore_ascii_case(b"PONG") => ClientOp::Pong,
        7 if verb.eq_ignore_ascii_case(b"CONNECT") => ClientOp::Connect(trim_end(rest)),
        4 if verb.eq_ignore_ascii_case(b"INFO") => ClientOp::Info(trim_end(rest)),
        3 if verb.eq_ignore_ascii_case(b"+OK") => ClientOp::Ok,
        4 if verb.eq_ignore_ascii_case(b"-ERR") => ClientOp::Err(trim_end(rest)),
        _ => return Err(ProtocolError::UnknownOperation),
    };
    Ok(Some((op, line_len)))
}

#[inline]
fn parse_pub<'a>(
    buf: &'a [u8],
    rest: &'a [u8],
    line_len: usize,
    limits: &Limits,
    with_headers: bool,
) -> Result<Option<(ClientOp<'a>, usize)>, ProtocolError> {
    let op: &'static str = if with_headers { "HPUB" } else { "PUB" };
    let (args, n) = split_args(rest).ok_or(ProtocolError::InvalidArguments { op })?;
    let (subject, reply, hdr, total) = match (with_headers, n) {
        (false, 2) => (args[0], None, None, args[1]),
        (false, 3) => (args[0], Some(args[1]), None, args[2]),
        (true, 3) => (args[0], None, Some(args[1]), args[2]),
        (true, 4) => (args[0], Some(args[1]), Some(args[2]), args[3]),
        _ => return Err(ProtocolError::InvalidArguments { op }),
    };
    let (header_len, total) = sizes(op, hdr, total)?;
    let Some((data, used)) = payload(buf, line_len, total, limits)? else {
        return Ok(None);
    };
    let op = ClientOp::Pub {
        subject,
        reply,
        header_len,
        data,
    };
    Ok(Some((op, used)))
}

fn parse_sub(rest: &[u8]) -> Result<ClientOp<'_>, ProtocolError> {
    let op = "SUB";
    let (args, n) = split_args(rest).ok_or(ProtocolError::InvalidArguments { op })?;
    match n {
        2 => Ok(ClientOp::Sub {
            subject: args[0],
            queue: None,
            sid: args[1],
        }),
        3 => Ok(ClientOp::Sub {
            subject: args[0],
            queue: Some(args[1]),
            sid: args[2],
        }),
        _ => Err(ProtocolError::InvalidArguments { op }),
    }
}

fn parse_unsub(rest: &[u8]) -> Result<ClientOp<'_>, ProtocolError> {
    let op = "UNSUB";
    let (args, n) = split_args(rest).ok_or(ProtocolError::InvalidArguments { op })?;
    match n {
        1 => Ok(ClientOp::Unsub {
            sid: args[0],
            max: None,
        }),
        2 => {
            let max = parse_size(args[1]).ok_or(ProtocolError::InvalidNumber { op })?;
            Ok(ClientOp::Unsub {
                sid: args[0],
                max: Some(max as u64),
            })
        }
        _ => Err(ProtocolError::InvalidArguments { op }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(buf: &[u8]) -> Result<Option<(ClientOp<'_>, usize)>, ProtocolError> {
        parse_client_op(buf, &Limits::default())
    }

    #[test]
    fn pub_with_and_without_reply() {
        let (op, n) = parse(b"PUB a.b 3\r\nabc\r\n").unwrap().unwrap();
        assert_eq!(n, 16);
        assert_eq!(
            op,
            ClientOp::Pub {
                subject: b"a.b",
                reply: None,
                header_len: None,
                data: b"abc"
            }
        );
        let (op, _) = parse(b"pub a.b INBOX.1 0\r\n\r\n").unwrap().unwrap();
        assert_eq!(
            op,
            ClientOp::Pub {
                subject: b"a.b",
                reply: Some(b"INBOX.1"),
                header_len: None,
                data: b""
            }
        );
    }

    #[test]
    fn payload_may_contain_crlf_and_binary() {
        let (op, _) = parse(b"PUB a 4\r\n\r\n\x00\xff\r\n").unwrap().unwrap();
        assert_eq!(op.payload(), b"\r\n\x00\xff");
    }

    #[test]
    fn hpub_splits_headers() {
        let buf = b"HPUB a r 12 14\r\nNATS/1.0\r\n\r\nhi\r\n";
        let (op, n) = parse(buf).unwrap().unwrap();
        assert_eq!(n, buf.len());
        assert_eq!(op.payload(), b"hi");
        match op {
            ClientOp::Pub {
                header_len, reply, ..
            } => {
                assert_eq!(header_len, Some(12));
                assert_eq!(reply, Some(&b"r"[..]));
            }
            _ => panic!("expected Pub"),
        }
    }

    #[test]
    fn partial_input_asks_for_more() {
        let full = b"PUB a.b 5\r\nhello\r\n";
        for cut in 0..full.len() {
            assert_eq!(parse(&full[..cut]), Ok(None), "cut at {cut}");
        }
    }

    #[test]
    fn sub_unsub_ping_pong_connect() {
        assert_eq!(
            parse(b"SUB foo.* q 7\r\n").unwrap().unwrap().0,
            ClientOp::Sub {
                subject: b"foo.*",
                queue: Some(b"q"),
                sid: b"7"
            }
        );
        assert_eq!(
            parse(b"SUB foo 1\r\n").unwrap().unwrap().0,
            ClientOp::Sub {
                subject: b"foo",
                queue: None,
                sid: b"1"
            }
        );
        assert_eq!(
            parse(b"UNSUB 1 10\r\n").unwrap().unwrap().0,
            ClientOp::Unsub {
                sid: b"1",
                max: Some(10)
            }
        );
        assert_eq!(parse(b"ping\r\n").unwrap().unwrap().0, ClientOp::Ping);
        assert_eq!(parse(b"PONG\n").unwrap().unwrap().0, ClientOp::Pong);
        assert_eq!(
            parse(b"CONNECT {\"verbose\":false} \r\n").unwrap().unwrap().0,
            ClientOp::Connect(b"{\"verbose\":false}")
        );
    }

    #[test]
    fn errors() {
        assert_eq!(parse(b"FOO\r\n"), Err(ProtocolError::UnknownOperation));
        assert_eq!(
            parse(b"PUB a\r\n"),
            Err(ProtocolError::InvalidArguments { op: "PUB" })
        );
        assert_eq!(
            parse(b"PUB a x\r\n"),
            Err(ProtocolError::InvalidNumber { op: "PUB" })
        );
        assert_eq!(
            parse(b"PUB a 1\r\nxyz\r\n"),
            Err(ProtocolError::MissingPayloadTerminator)
        );
        assert_eq!(parse(b"HPUB a 5 3\r\n"), Err(ProtocolError::HeaderSizeTooLarge));
        assert_eq!(
            parse(b"SUB\r\n"),
            Err(ProtocolError::InvalidArguments { op: "SUB" })
        );
        let big = format!("PUB a {}\r\n", 2 * 1024 * 1024);
        assert!(matches!(
            parse(big.as_bytes()),
            Err(ProtocolError::PayloadTooLarge { .. })
        ));
        let long = vec![b'A'; 5000];
        assert!(matches!(
            parse(&long),
            Err(ProtocolError::ControlLineTooLong { .. })
        ));
    }
}
