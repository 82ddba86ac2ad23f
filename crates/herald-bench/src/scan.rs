//! Incremental scanner for the server-to-client half of the NATS protocol.
//!
//! The scanner owns one receive buffer. Callers read from the socket straight
//! into [`Scanner::spare`], report the byte count with [`Scanner::filled`] and
//! call [`Scanner::scan`], which hands every complete frame to a callback and
//! keeps an incomplete tail (a control line or a payload cut by the read) for
//! the next round. A `MSG` frame costs one search for `\n`, a split of the
//! control line and a jump over `size + 2` payload bytes; the payload is never
//! copied.

use memchr::memchr;

/// Longest control line accepted before the stream is declared garbage.
const MAX_CONTROL_LINE: usize = 64 * 1024;

/// A delivered message (`MSG` or `HMSG`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Msg<'a> {
    pub subject: &'a [u8],
    pub sid: &'a [u8],
    pub reply: Option<&'a [u8]>,
    /// Header bytes at the start of `payload` (0 for `MSG`).
    pub header_len: usize,
    /// Headers (if any) followed by the body.
    pub payload: &'a [u8],
}

impl Msg<'_> {
    /// The payload without the headers.
    pub fn body(&self) -> &[u8] {
        &self.payload[self.header_len..]
    }
}

/// One frame sent by the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame<'a> {
    Msg(Msg<'a>),
    Info(&'a [u8]),
    Ping,
    Pong,
    Ok,
    /// `-ERR` with its text (quotes kept as sent).
    Err(&'a [u8]),
}

/// A stream the scanner cannot make sense of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtocolError(pub String);

impl std::fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "protocol error: {}", self.0)
    }
}

impl std::error::Error for ProtocolError {}

/// Receive buffer plus parser state.
pub struct Scanner {
    buf: Vec<u8>,
    /// First byte not yet consumed.
    start: usize,
    /// One past the last byte received.
    end: usize,
    /// Bytes the next frame needs in total, once its control line is known.
    need: usize,
}

impl Scanner {
    /// A scanner whose reads are up to `capacity` bytes (it grows for larger frames).
    pub fn new(capacity: usize) -> Self {
        Self {
            buf: vec![0; capacity.max(16)],
            start: 0,
            end: 0,
            need: 0,
        }
    }

    /// Free space to read into; never empty.
    pub fn spare(&mut self) -> &mut [u8] {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
        let capacity = self.buf.len();
        if capacity - self.end < capacity / 4 && self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        let pending = self.end - self.start;
        if self.end == self.buf.len() || self.need > capacity {
            let wanted = (pending + 1).max(self.need).max(capacity * 2);
            self.buf.copy_within(self.start..self.end, 0);
            self.start = 0;
            self.end = pending;
            self.buf.resize(wanted, 0);
        }
        &mut self.buf[self.end..]
    }

    /// Records that `n` bytes were written at the start of [`Scanner::spare`].
    pub fn filled(&mut self, n: usize) {
        debug_assert!(self.end + n <= self.buf.len());
        self.end += n;
    }

    /// Copies `data` in (for tests and small inputs).
    pub fn push(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            let spare = self.spare();
            let n = spare.len().min(data.len());
            spare[..n].copy_from_slice(&data[..n]);
            self.filled(n);
            data = &data[n..];
        }
    }

    /// Bytes received but not yet part of a complete frame.
    pub fn pending(&self) -> usize {
        self.end - self.start
    }

    /// Hands every complete frame to `on_frame`, in order.
    pub fn scan<F>(&mut self, mut on_frame: F) -> Result<(), ProtocolError>
    where
        F: FnMut(Frame<'_>),
    {
        let buf = &self.buf[..self.end];
        let mut pos = self.start;
        let result = loop {
            let rest = &buf[pos..];
            let Some(nl) = memchr(b'\n', rest) else {
                if rest.len() > MAX_CONTROL_LINE {
                    break Err(ProtocolError("control line too long".into()));
                }
                break Ok(());
            };
            let line = trim_cr(&rest[..nl]);
            let after_line = nl + 1;
            match parse_frame(line, &rest[after_line..]) {
                Ok(Parsed::Frame(frame, payload_used)) => {
                    on_frame(frame);
                    pos += after_line + payload_used;
                    self.need = 0;
                }
                Ok(Parsed::Incomplete(total_payload)) => {
                    self.need = after_line + total_payload;
                    break Ok(());
                }
                Err(e) => break Err(e),
            }
        };
        self.start = pos;
        result
    }
}

enum Parsed<'a> {
    /// A frame and how many bytes after its control line it used.
    Frame(Frame<'a>, usize),
    /// The payload (plus CRLF) of this many bytes has not fully arrived.
    Incomplete(usize),
}

fn trim_cr(line: &[u8]) -> &[u8] {
    match line.split_last() {
        Some((b'\r', head)) => head,
        _ => line,
    }
}

fn parse_frame<'a>(line: &'a [u8], after: &'a [u8]) -> Result<Parsed<'a>, ProtocolError> {
    let op_len = line
        .iter()
        .position(|&b| b == b' ' || b == b'\t')
        .unwrap_or(line.len());
    let op = &line[..op_len];
    let args = &line[op_len..];
    let frame = if op.eq_ignore_ascii_case(b"MSG") {
        return parse_msg(args, after, false);
    } else if op.eq_ignore_ascii_case(b"HMSG") {
        return parse_msg(args, after, true);
    } else if op.eq_ignore_ascii_case(b"PING") {
        Frame::Ping
    } else if op.eq_ignore_ascii_case(b"PONG") {
        Frame::Pong
    } else if op.eq_ignore_ascii_case(b"+OK") {
        Frame::Ok
    } else if op.eq_ignore_ascii_case(b"-ERR") {
        Frame::Err(trim_space(args))
    } else if op.eq_ignore_ascii_case(b"INFO") {
        Frame::Info(trim_space(args))
    } else {
        let shown = String::from_utf8_lossy(&line[..line.len().min(80)]).into_owned();
        return Err(ProtocolError(format!("unexpected line {shown:?}")));
    };
    Ok(Parsed::Frame(frame, 0))
}

fn trim_space(s: &[u8]) -> &[u8] {
    let is_space = |b: &u8| *b == b' ' || *b == b'\t';
    let start = s.iter().position(|b| !is_space(b)).unwrap_or(s.len());
    let end = s.iter().rposition(|b| !is_space(b)).map_or(start, |i| i + 1);
    &s[start..end]
}

/// `MSG <subject> <sid> [reply] <size>` or
/// `HMSG <subject> <sid> [reply] <header size> <total size>`.
fn parse_msg<'a>(args: &'a [u8], after: &'a [u8], headers: bool) -> Result<Parsed<'a>, ProtocolError> {
    let mut fields = [&[][..]; 5];
    let mut count = 0;
    for field in args.split(|&b| b == b' ' || b == b'\t').filter(|f| !f.is_empty()) {
        if count == fields.len() {
            return Err(bad_msg(args));
        }
        fields[count] = field;
        count += 1;
    }
    let sizes = if headers { 2 } else { 1 };
    let (subject, sid, reply) = match count - sizes.min(count) {
        2 => (fields[0], fields[1], None),
        3 => (fields[0], fields[1], Some(fields[2])),
        _ => return Err(bad_msg(args)),
    };
    let total = parse_size(fields[count - 1]).ok_or_else(|| bad_msg(args))?;
    let header_len = if headers {
        parse_size(fields[count - 2]).ok_or_else(|| bad_msg(args))?
    } else {
        0
    };
    if header_len > total {
        return Err(bad_msg(args));
    }
    if after.len() < total + 2 {
        return Ok(Parsed::Incomplete(total + 2));
    }
    if &after[total..total + 2] != b"\r\n" {
        return Err(ProtocolError("payload not followed by CRLF".into()));
    }
    let msg = Msg {
        subject,
        sid,
        reply,
        header_len,
        payload: &after[..total],
    };
    Ok(Parsed::Frame(Frame::Msg(msg), total + 2))
}

fn bad_msg(args: &[u8]) -> ProtocolError {
    let shown = String::from_utf8_lossy(&args[..args.len().min(80)]).into_owned();
    ProtocolError(format!("malformed message line {shown:?}"))
}

fn parse_size(digits: &[u8]) -> Option<usize> {
    if digits.is_empty() || digits.len() > 12 {
        return None;
    }
    digits.iter().try_fold(0usize, |acc, &d| {
        d.is_ascii_digit().then(|| acc * 10 + usize::from(d - b'0'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Owned copy of a frame, to compare across scans.
    #[derive(Debug, Clone, PartialEq, Eq)]
    enum Owned {
        Msg {
            subject: Vec<u8>,
            sid: Vec<u8>,
            reply: Option<Vec<u8>>,
            header_len: usize,
            payload: Vec<u8>,
        },
        Info(Vec<u8>),
        Ping,
        Pong,
        Ok,
        Err(Vec<u8>),
    }

    fn own(frame: Frame<'_>) -> Owned {
        match frame {
            Frame::Msg(m) => Owned::Msg {
                subject: m.subject.to_vec(),
                sid: m.sid.to_vec(),
                reply: m.reply.map(<[u8]>::to_vec),
                header_len: m.header_len,
                payload: m.payload.to_vec(),
            },
            Frame::Info(s) => Owned::Info(s.to_vec()),
            Frame::Ping => Owned::Ping,
            Frame::Pong => Owned::Pong,
            Frame::Ok => Owned::Ok,
            Frame::Err(s) => Owned::Err(s.to_vec()),
        }
    }

    fn scan_chunks(chunks: &[&[u8]], capacity: usize) -> Vec<Owned> {
        let mut scanner = Scanner::new(capacity);
        let mut out = Vec::new();
        for chunk in chunks {
            scanner.push(chunk);
            scanner.scan(|f| out.push(own(f))).unwrap();
        }
        assert_eq!(scanner.pending(), 0, "bytes left over");
        out
    }

    const STREAM: &[u8] = b"INFO {\"server_id\":\"x\"}\r\n\
        MSG foo 1 5\r\nhello\r\n\
        PING\r\n\
        MSG foo.bar 22 _INBOX.abc 0\r\n\r\n\
        HMSG foo 3 26 31\r\nNATS/1.0\r\nA: b\r\nX-Y: 1\r\n\r\nhello\r\n\
        +OK\r\n\
        HMSG foo 3 _INBOX.r 12 12\r\nNATS/1.0\r\n\r\n\r\n\
        MSG big 9 13\r\nline\r\nbreak\r\n\r\n\
        PONG\r\n\
        -ERR 'Slow Consumer'\r\n";

    fn expected() -> Vec<Owned> {
        let msg = |subject: &str, sid: &str, reply: Option<&str>, header_len, payload: &[u8]| Owned::Msg {
            subject: subject.into(),
            sid: sid.into(),
            reply: reply.map(Into::into),
            header_len,
            payload: payload.to_vec(),
        };
        vec![
            Owned::Info(b"{\"server_id\":\"x\"}".to_vec()),
            msg("foo", "1", None, 0, b"hello"),
            Owned::Ping,
            msg("foo.bar", "22", Some("_INBOX.abc"), 0, b""),
            msg("foo", "3", None, 26, b"NATS/1.0\r\nA: b\r\nX-Y: 1\r\n\r\nhello"),
            Owned::Ok,
            msg("foo", "3", Some("_INBOX.r"), 12, b"NATS/1.0\r\n\r\n"),
            msg("big", "9", None, 0, b"line\r\nbreak\r\n"),
            Owned::Pong,
            Owned::Err(b"'Slow Consumer'".to_vec()),
        ]
    }

    #[test]
    fn whole_stream() {
        assert_eq!(scan_chunks(&[STREAM], 4096), expected());
    }

    #[test]
    fn split_at_every_byte_boundary() {
        for cut in 0..=STREAM.len() {
            let (a, b) = STREAM.split_at(cut);
            assert_eq!(scan_chunks(&[a, b], 4096), expected(), "cut at {cut}");
        }
    }

    #[test]
    fn split_twice_at_every_pair_of_boundaries() {
        for i in 0..=STREAM.len() {
            for j in i..=STREAM.len() {
                let chunks = [&STREAM[..i], &STREAM[i..j], &STREAM[j..]];
                assert_eq!(scan_chunks(&chunks, 4096), expected(), "cuts at {i}, {j}");
            }
        }
    }

    #[test]
    fn one_byte_at_a_time_with_a_tiny_buffer() {
        let chunks: Vec<&[u8]> = STREAM.chunks(1).collect();
        assert_eq!(scan_chunks(&chunks, 16), expected());
    }

    #[test]
    fn frames_larger_than_the_buffer_grow_it() {
        let payload = vec![b'x'; 100_000];
        let mut stream = format!("MSG s 1 {}\r\n", payload.len()).into_bytes();
        stream.extend_from_slice(&payload);
        stream.extend_from_slice(b"\r\nPING\r\n");
        let chunks: Vec<&[u8]> = stream.chunks(777).collect();
        let frames = scan_chunks(&chunks, 1024);
        assert_eq!(frames.len(), 2);
        assert!(matches!(&frames[0], Owned::Msg { payload: p, .. } if p.len() == 100_000));
        assert_eq!(frames[1], Owned::Ping);
    }

    #[test]
    fn reading_through_spare_matches_push() {
        // Simulates socket reads of uneven sizes into the spare space.
        let mut scanner = Scanner::new(64);
        let mut frames = Vec::new();
        let mut offset = 0;
        let mut step = 1;
        while offset < STREAM.len() {
            let spare = scanner.spare();
            let n = spare.len().min(step).min(STREAM.len() - offset);
            spare[..n].copy_from_slice(&STREAM[offset..offset + n]);
            scanner.filled(n);
            offset += n;
            step = step % 29 + 7;
            scanner.scan(|f| frames.push(own(f))).unwrap();
        }
        assert_eq!(frames, expected());
    }

    #[test]
    fn lowercase_ops_and_tabs() {
        let frames = scan_chunks(&[b"msg\tfoo\t1\t2\r\nhi\r\nping\r\n"], 64);
        assert_eq!(frames[1], Owned::Ping);
        assert!(matches!(&frames[0], Owned::Msg { payload, .. } if payload == b"hi"));
    }

    #[test]
    fn garbage_is_an_error() {
        let mut scanner = Scanner::new(64);
        scanner.push(b"WHAT\r\n");
        assert!(scanner.scan(|_| {}).is_err());
        for bad in [
            &b"MSG foo\r\n"[..],
            b"MSG foo 1 x\r\n",
            b"HMSG foo 1 9 3\r\n",
            b"MSG a 1 2 3 4 5\r\n",
        ] {
            let mut scanner = Scanner::new(64);
            scanner.push(bad);
            assert!(
                scanner.scan(|_| {}).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        let mut scanner = Scanner::new(64);
        scanner.push(b"MSG foo 1 2\r\nhiXX");
        assert!(scanner.scan(|_| {}).is_err());
    }

    #[test]
    fn body_skips_headers() {
        let mut scanner = Scanner::new(64);
        scanner.push(b"HMSG a 1 12 14\r\nNATS/1.0\r\n\r\nhi\r\n");
        let mut body = Vec::new();
        scanner
            .scan(|f| {
                if let Frame::Msg(m) = f {
                    body = m.body().to_vec();
                }
            })
            .unwrap();
        assert_eq!(body, b"hi");
    }
}
