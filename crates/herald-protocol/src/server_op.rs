//! Operations a server sends to a client.

use crate::args::{control_line, payload, sizes, split_args, split_verb, trim_end};
use crate::{Limits, ProtocolError};

/// One operation sent by a server, borrowing from the input buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerOp<'a> {
    /// `INFO {json}`: the raw JSON body.
    Info(&'a [u8]),
    /// `MSG` or `HMSG`: a delivered message.
    Msg {
        /// Subject the message was published to.
        subject: &'a [u8],
        /// Subscription id it is delivered for.
        sid: &'a [u8],
        /// Reply subject, if any.
        reply: Option<&'a [u8]>,
        /// For `HMSG`, the length of the header block at the start of `data`.
        header_len: Option<usize>,
        /// Header block (for `HMSG`) followed by the payload.
        data: &'a [u8],
    },
    /// `PING`.
    Ping,
    /// `PONG`.
    Pong,
    /// `+OK`.
    Ok,
    /// `-ERR 'text'`: the text without quotes.
    Err(&'a [u8]),
}

/// Parses one server operation from the start of `buf`.
///
/// Returns `Ok(None)` when `buf` holds only part of an operation, or the
/// operation and the number of bytes it used.
pub fn parse_server_op<'a>(
    buf: &'a [u8],
    limits: &Limits,
) -> Result<Option<(ServerOp<'a>, usize)>, ProtocolError> {
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
        3 if verb.eq_ignore_ascii_case(b"MSG") => return parse_msg(buf, rest, line_len, limits, false),
        4 if verb.eq_ignore_ascii_case(b"HMSG") => return parse_msg(buf, rest, line_len, limits, true),
        4 if verb.eq_ignore_ascii_case(b"PING") => ServerOp::Ping,
        4 if verb.eq_ignore_ascii_case(b"PONG") => ServerOp::Pong,
        4 if verb.eq_ignore_ascii_case(b"INFO") => ServerOp::Info(trim_end(rest)),
        3 if verb.eq_ignore_ascii_case(b"+OK") => ServerOp::Ok,
        4 if verb.eq_ignore_ascii_case(b"-ERR") => {
            let text = trim_end(rest);
            let text = text
                .strip_prefix(b"'")
                .and_then(|t| t.strip_suffix(b"'"))
                .unwrap_or(text);
            ServerOp::Err(text)
        }
        _ => return Err(ProtocolError::UnknownOperation),
    };
    Ok(Some((op, line_len)))
}

fn parse_msg<'a>(
    buf: &'a [u8],
    rest: &'a [u8],
    line_len: usize,
    limits: &Limits,
    with_headers: bool,
) -> Result<Option<(ServerOp<'a>, usize)>, ProtocolError> {
    let op: &'static str = if with_headers { "HMSG" } else { "MSG" };
    let (args, n) = split_args(rest).ok_or(ProtocolError::InvalidArguments { op })?;
    let (subject, sid, reply, hdr, total) = match (with_headers, n) {
        (false, 3) => (args[0], args[1], None, None, args[2]),
        (false, 4) => (args[0], args[1], Some(args[2]), None, args[3]),
        (true, 4) => (args[0], args[1], None, Some(args[2]), args[3]),
        (true, 5) => (args[0], args[1], Some(args[2]), Some(args[3]), args[4]),
        _ => return Err(ProtocolError::InvalidArguments { op }),
    };
    let (header_len, total) = sizes(op, hdr, total)?;
    let Some((data, used)) = payload(buf, line_len, total, limits)? else {
        return Ok(None);
    };
    let op = ServerOp::Msg {
        subject,
        sid,
        reply,
        header_len,
        data,
    };
    Ok(Some((op, used)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(buf: &[u8]) -> Result<Option<(ServerOp<'_>, usize)>, ProtocolError> {
        parse_server_op(buf, &Limits::default())
    }

    #[test]
    fn msg_and_hmsg() {
        let (op, n) = parse(b"MSG a.b 1 r 2\r\nhi\r\n").unwrap().unwrap();
        assert_eq!(n, 19);
        assert_eq!(
            op,
            ServerOp::Msg {
                subject: b"a.b",
                sid: b"1",
                reply: Some(b"r"),
                header_len: None,
                data: b"hi"
            }
        );
        let (op, _) = parse(b"HMSG a 9 16 16\r\nNATS/1.0 503\r\n\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(matches!(
            op,
            ServerOp::Msg {
                header_len: Some(16),
                ..
            }
        ));
    }

    #[test]
    fn err_strips_quotes() {
        let (op, _) = parse(b"-ERR 'Slow Consumer'\r\n").unwrap().unwrap();
        assert_eq!(op, ServerOp::Err(b"Slow Consumer"));
    }
}
