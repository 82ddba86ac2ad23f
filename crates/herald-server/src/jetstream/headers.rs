//! Finding the JetStream headers of a published message without parsing
//! the whole header block into owned strings: publishes are the hot path.

/// The `Nats-*` headers a stream acts on, borrowed from the header block.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct MsgHeaders<'a> {
    pub msg_id: Option<&'a [u8]>,
    pub expected_stream: Option<&'a [u8]>,
    pub expected_last_seq: Option<&'a [u8]>,
    pub expected_last_msg_id: Option<&'a [u8]>,
    pub expected_last_subject_seq: Option<&'a [u8]>,
    pub expected_last_subject_seq_subject: Option<&'a [u8]>,
    pub rollup: Option<&'a [u8]>,
    pub ttl: Option<&'a [u8]>,
    pub batch_id: Option<&'a [u8]>,
    pub batch_seq: Option<&'a [u8]>,
    pub batch_commit: Option<&'a [u8]>,
}

impl<'a> MsgHeaders<'a> {
    /// Scans a `NATS/1.0` block once. An empty or malformed block yields no
    /// headers (the router already accepted the frame).
    pub fn scan(block: &'a [u8]) -> MsgHeaders<'a> {
        let mut found = MsgHeaders::default();
        if block.is_empty() {
            return found;
        }
        for line in block_lines(block) {
            // Every header of interest starts with "Nats-": skip the rest
            // before looking for the colon (events carry a dozen `ce-`
            // headers, and every publish is scanned).
            let start = trim(line);
            if start.len() < 6 || !start[..5].eq_ignore_ascii_case(b"nats-") {
                continue;
            }
            let Some((name, value)) = split_header(line) else {
                continue;
            };
            let rest = &name[5..];
            let slot = if rest.eq_ignore_ascii_case(b"Msg-Id") {
                &mut found.msg_id
            } else if rest.eq_ignore_ascii_case(b"Expected-Stream") {
                &mut found.expected_stream
            } else if rest.eq_ignore_ascii_case(b"Expected-Last-Sequence") {
                &mut found.expected_last_seq
            } else if rest.eq_ignore_ascii_case(b"Expected-Last-Msg-Id") {
                &mut found.expected_last_msg_id
            } else if rest.eq_ignore_ascii_case(b"Expected-Last-Subject-Sequence") {
                &mut found.expected_last_subject_seq
            } else if rest.eq_ignore_ascii_case(b"Expected-Last-Subject-Sequence-Subject") {
                &mut found.expected_last_subject_seq_subject
            } else if rest.eq_ignore_ascii_case(b"Rollup") {
                &mut found.rollup
            } else if rest.eq_ignore_ascii_case(b"TTL") {
                &mut found.ttl
            } else if rest.eq_ignore_ascii_case(b"Batch-Id") {
                &mut found.batch_id
            } else if rest.eq_ignore_ascii_case(b"Batch-Sequence") {
                &mut found.batch_seq
            } else if rest.eq_ignore_ascii_case(b"Batch-Commit") {
                &mut found.batch_commit
            } else {
                continue;
            };
            if slot.is_none() {
                *slot = Some(value);
            }
        }
        found
    }
}

impl MsgHeaders<'_> {
    /// Checks `Nats-Expected-Last-Sequence` against `last_seq` and
    /// `Nats-Expected-Last-Subject-Sequence` against `last_of(subject)` (the
    /// subject is the message's, or the one named by
    /// `…-Subject`). `Err` carries the actual sequence, for error 10071.
    pub fn check_expected_sequences(
        &self,
        subject: &str,
        last_seq: u64,
        last_of: impl Fn(&str) -> u64,
    ) -> Result<(), u64> {
        if let Some(expected) = self.expected_last_seq {
            if parse_u64(expected) != Some(last_seq) {
                return Err(last_seq);
            }
        }
        if let Some(expected) = self.expected_last_subject_seq {
            let on = match self.expected_last_subject_seq_subject.map(std::str::from_utf8) {
                Some(Ok(s)) if !s.is_empty() => s,
                _ => subject,
            };
            let last = last_of(on);
            if parse_u64(expected) != Some(last) {
                return Err(last);
            }
        }
        Ok(())
    }
}

/// A header value as a sequence number.
fn parse_u64(bytes: &[u8]) -> Option<u64> {
    std::str::from_utf8(bytes).ok()?.trim().parse().ok()
}

/// `Name: value` pairs after the version line, values trimmed.
/// The lines after the version line, without their line ends.
fn block_lines(block: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = match memchr::memchr(b'\n', block) {
        Some(end) => &block[end + 1..],
        None => &block[block.len()..],
    };
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let (line, next) = match memchr::memchr(b'\n', rest) {
            Some(end) => (&rest[..end], &rest[end + 1..]),
            None => (rest, &rest[rest.len()..]),
        };
        rest = next;
        Some(line.strip_suffix(b"\r").unwrap_or(line))
    })
}

/// `name: value` of one line, both trimmed; `None` without a colon.
fn split_header(line: &[u8]) -> Option<(&[u8], &[u8])> {
    let colon = memchr::memchr(b':', line)?;
    Some((trim(&line[..colon]), trim(&line[colon + 1..])))
}

fn trim(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_jetstream_headers_in_any_case() {
        let block = b"NATS/1.0\r\nnats-msg-id: a1\r\nX-Other: y\r\nNats-Expected-Last-Subject-Sequence: 7\r\nNats-Rollup:sub\r\n\r\n";
        let h = MsgHeaders::scan(block);
        assert_eq!(h.msg_id, Some(&b"a1"[..]));
        assert_eq!(h.expected_last_subject_seq, Some(&b"7"[..]));
        assert_eq!(h.rollup, Some(&b"sub"[..]));
        assert_eq!(h.expected_stream, None);
    }

    #[test]
    fn empty_or_odd_blocks_yield_nothing() {
        assert_eq!(MsgHeaders::scan(b""), MsgHeaders::default());
        assert_eq!(
            MsgHeaders::scan(b"NATS/1.0\r\nno colon\r\n\r\n"),
            MsgHeaders::default()
        );
    }
}
