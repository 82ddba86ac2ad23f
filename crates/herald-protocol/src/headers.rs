//! The `NATS/1.0` header block of `HPUB` and `HMSG`.

use thiserror::Error;

/// Why a header block could not be read.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum HeadersError {
    /// The block does not start with `NATS/1.0`.
    #[error("header block does not start with NATS/1.0")]
    MissingVersion,
    /// The block is not terminated by an empty line.
    #[error("header block is not terminated by an empty line")]
    Unterminated,
    /// A line is not `Name: value`.
    #[error("malformed header line")]
    MalformedLine,
    /// The status code is not three digits.
    #[error("malformed status code")]
    MalformedStatus,
}

/// A parsed header block: an optional status line and ordered name/value
/// pairs. Names keep their case; look-ups ignore it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers {
    /// Status code of the version line (e.g. 503 for no responders).
    pub status: Option<u16>,
    /// Description after the status code.
    pub description: Option<String>,
    /// Every name and value, back to back: two allocations per block,
    /// not two per header (clients parse a block per delivered message).
    text: String,
    /// Byte ranges in `text`: name start, name end (= value start), value end.
    entries: Vec<(u32, u32, u32)>,
}

impl Headers {
    /// An empty header block.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a header (names may repeat).
    pub fn append(&mut self, name: impl AsRef<str>, value: impl AsRef<str>) {
        let start = self.text.len();
        self.text.push_str(name.as_ref());
        let middle = self.text.len();
        self.text.push_str(value.as_ref());
        let end = self.text.len();
        // A header block is bounded by the max payload (far below 4 GiB).
        let offset = |n: usize| u32::try_from(n).expect("header block under 4 GiB");
        self.entries.push((offset(start), offset(middle), offset(end)));
    }

    /// The first value of `name`, ignoring case.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    /// All name/value pairs in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.entries.iter().map(|&(start, middle, end)| {
            (
                &self.text[start as usize..middle as usize],
                &self.text[middle as usize..end as usize],
            )
        })
    }

    /// Whether there is neither a status nor any header.
    pub fn is_empty(&self) -> bool {
        self.status.is_none() && self.entries.is_empty()
    }

    /// Parses a header block as carried at the start of `HMSG` data.
    pub fn parse(block: &[u8]) -> Result<Headers, HeadersError> {
        let text = match std::str::from_utf8(block) {
            Ok(text) => std::borrow::Cow::Borrowed(text),
            Err(_) => String::from_utf8_lossy(block),
        };
        // A block ends with the empty line; a version-only block is "NATS/1.0\r\n\r\n".
        if !text.ends_with("\r\n\r\n") {
            return Err(HeadersError::Unterminated);
        }
        // Every line but the empty last one, each ending in "\r\n".
        let lines = &text[..text.len() - 2];
        let mut lines = CrlfLines { rest: lines };
        let first = lines.next().ok_or(HeadersError::MissingVersion)??;
        let rest = first
            .strip_prefix("NATS/1.0")
            .ok_or(HeadersError::MissingVersion)?;
        let mut headers = Headers {
            text: String::with_capacity(text.len()),
            ..Headers::default()
        };
        let rest = rest.trim();
        if !rest.is_empty() {
            let (code, description) = rest.split_once(' ').unwrap_or((rest, ""));
            if code.len() != 3 {
                return Err(HeadersError::MalformedStatus);
            }
            headers.status = Some(code.parse().map_err(|_| HeadersError::MalformedStatus)?);
            let description = description.trim();
            if !description.is_empty() {
                headers.description = Some(description.to_string());
            }
        }
        for line in lines {
            let line = line?;
            let colon = memchr::memchr(b':', line.as_bytes()).ok_or(HeadersError::MalformedLine)?;
            let (name, value) = (&line[..colon], &line[colon + 1..]);
            if name.is_empty() || name.contains(char::is_whitespace) {
                return Err(HeadersError::MalformedLine);
            }
            headers.append(name, value.trim());
        }
        Ok(headers)
    }

    /// Appends the encoded block (version line, headers, empty line) to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"NATS/1.0");
        if let Some(status) = self.status {
            out.push(b' ');
            out.extend_from_slice(status.to_string().as_bytes());
            if let Some(description) = &self.description {
                out.push(b' ');
                out.extend_from_slice(description.as_bytes());
            }
        }
        out.extend_from_slice(b"\r\n");
        for (name, value) in self.iter() {
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");
    }

    /// Bytes [`Headers::encode`] writes (exactly, without a status line).
    pub fn encoded_len(&self) -> usize {
        let status = self
            .status
            .map_or(0, |_| 4 + self.description.as_ref().map_or(0, |d| d.len() + 1));
        // "NATS/1.0" CRLF, per header ": " CRLF, final CRLF.
        8 + status + 2 + self.text.len() + 4 * self.entries.len() + 2
    }

    /// The encoded block as a new vector.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len());
        self.encode(&mut out);
        out
    }
}

/// The lines of a header block, each of which must end in "\r\n"
/// (found with memchr: clients parse one block per delivered message).
struct CrlfLines<'a> {
    rest: &'a str,
}

impl<'a> Iterator for CrlfLines<'a> {
    type Item = Result<&'a str, HeadersError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let bytes = self.rest.as_bytes();
        let Some(cr) = memchr::memchr2(b'\r', b'\n', bytes) else {
            self.rest = "";
            return Some(Err(HeadersError::MalformedLine));
        };
        if bytes[cr] != b'\r' || bytes.get(cr + 1) != Some(&b'\n') {
            self.rest = "";
            return Some(Err(HeadersError::MalformedLine));
        }
        let line = &self.rest[..cr];
        self.rest = &self.rest[cr + 2..];
        Some(Ok(line))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let mut h = Headers::new();
        h.append("Trace-Id", "abc");
        h.append("X", "1 2");
        let bytes = h.to_bytes();
        assert_eq!(bytes, b"NATS/1.0\r\nTrace-Id: abc\r\nX: 1 2\r\n\r\n");
        assert_eq!(h.encoded_len(), bytes.len());
        assert_eq!(Headers::parse(&bytes).unwrap(), h);
        assert_eq!(h.get("trace-id"), Some("abc"));
    }

    #[test]
    fn status_line() {
        let h = Headers::parse(b"NATS/1.0 503\r\n\r\n").unwrap();
        assert_eq!(h.status, Some(503));
        let h = Headers::parse(b"NATS/1.0 408 Request Timeout\r\n\r\n").unwrap();
        assert_eq!(h.description.as_deref(), Some("Request Timeout"));
    }

    #[test]
    fn malformed() {
        assert_eq!(
            Headers::parse(b"HTTP/1.1\r\n\r\n"),
            Err(HeadersError::MissingVersion)
        );
        assert_eq!(
            Headers::parse(b"NATS/1.0\r\nfoo\r\n\r\n"),
            Err(HeadersError::MalformedLine)
        );
        assert_eq!(
            Headers::parse(b"NATS/1.0\r\nA: b\r\n"),
            Err(HeadersError::Unterminated)
        );
        // A bare line feed inside the block is not a line end.
        assert_eq!(
            Headers::parse(b"NATS/1.0\r\nA: b\nC: d\r\n\r\n"),
            Err(HeadersError::MalformedLine)
        );
        assert_eq!(
            Headers::parse(b"NATS/1.0\r\n: b\r\n\r\n"),
            Err(HeadersError::MalformedLine)
        );
    }
}
