//! Splitting and reading the arguments of a control line.

/// Most arguments any operation takes (`HMSG subject sid reply hdr total`).
pub(crate) const ARGS_MAX: usize = 5;

/// Splits `line` on runs of spaces and tabs into at most `ARGS_MAX` words.
/// Returns `None` if there are more.
#[inline]
pub(crate) fn split_args(line: &[u8]) -> Option<([&[u8]; ARGS_MAX], usize)> {
    let mut out: [&[u8]; ARGS_MAX] = [&[]; ARGS_MAX];
    let mut count = 0;
    let mut i = 0;
    let n = line.len();
    while i < n {
        while i < n && is_space(line[i]) {
            i += 1;
        }
        if i == n {
            break;
        }
        let start = i;
        while i < n && !is_space(line[i]) {
            i += 1;
        }
        if count == ARGS_MAX {
            return None;
        }
        out[count] = &line[start..i];
        count += 1;
    }
    Some((out, count))
}

#[inline]
pub(crate) fn is_space(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// Parses a non-empty run of ASCII digits as a `usize`, rejecting overflow.
#[inline]
pub(crate) fn parse_size(digits: &[u8]) -> Option<usize> {
    if digits.is_empty() || digits.len() > 19 {
        return None;
    }
    let mut value: usize = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        value = value.checked_mul(10)?.checked_add((d - b'0') as usize)?;
    }
    Some(value)
}

/// Finds the end of the control line at the start of `buf`.
///
/// Returns `(line_without_terminator, bytes_including_terminator)`. A bare
/// `\n` is accepted as a terminator, as people typing into telnet send it.
#[inline]
pub(crate) fn control_line(buf: &[u8], max: usize) -> Result<Option<(&[u8], usize)>, ()> {
    let window = &buf[..buf.len().min(max.saturating_add(2))];
    match memchr::memchr(b'\n', window) {
        Some(nl) => {
            let line = if nl > 0 && buf[nl - 1] == b'\r' {
                &buf[..nl - 1]
            } else {
                &buf[..nl]
            };
            if line.len() > max {
                return Err(());
            }
            Ok(Some((line, nl + 1)))
        }
        None if window.len() > max.saturating_add(1) => Err(()),
        None => Ok(None),
    }
}

/// Reads the size arguments of `PUB`/`MSG` (`total`) or `HPUB`/`HMSG`
/// (`hdr total`), returning `(header_len, total_len)`.
#[inline]
pub(crate) fn sizes(
    op: &'static str,
    hdr: Option<&[u8]>,
    total: &[u8],
) -> Result<(Option<usize>, usize), crate::ProtocolError> {
    use crate::ProtocolError;
    let total = parse_size(total).ok_or(ProtocolError::InvalidNumber { op })?;
    let Some(hdr) = hdr else {
        return Ok((None, total));
    };
    let hdr = parse_size(hdr).ok_or(ProtocolError::InvalidNumber { op })?;
    if hdr > total {
        return Err(ProtocolError::HeaderSizeTooLarge);
    }
    Ok((Some(hdr), total))
}

/// The `total` bytes after a control line of `line_len` bytes, once they and
/// their CRLF have arrived: `(data, bytes used including the control line)`.
#[inline]
pub(crate) fn payload<'a>(
    buf: &'a [u8],
    line_len: usize,
    total: usize,
    limits: &crate::Limits,
) -> Result<Option<(&'a [u8], usize)>, crate::ProtocolError> {
    use crate::ProtocolError;
    if total > limits.max_payload {
        return Err(ProtocolError::PayloadTooLarge {
            size: total,
            max: limits.max_payload,
        });
    }
    let end = line_len + total;
    if buf.len() < end + 2 {
        return Ok(None);
    }
    if &buf[end..end + 2] != b"\r\n" {
        return Err(ProtocolError::MissingPayloadTerminator);
    }
    Ok(Some((&buf[line_len..end], end + 2)))
}

/// Splits a line into its verb and the rest, trimming leading blanks of the rest.
#[inline]
pub(crate) fn split_verb(line: &[u8]) -> (&[u8], &[u8]) {
    let mut start = 0;
    while start < line.len() && is_space(line[start]) {
        start += 1;
    }
    let line = &line[start..];
    let end = line.iter().position(|&b| is_space(b)).unwrap_or(line.len());
    let mut rest = &line[end..];
    while let [first, tail @ ..] = rest {
        if is_space(*first) {
            rest = tail;
        } else {
            break;
        }
    }
    (&line[..end], rest)
}

/// Trims trailing blanks.
#[inline]
pub(crate) fn trim_end(mut s: &[u8]) -> &[u8] {
    while let [head @ .., last] = s {
        if is_space(*last) {
            s = head;
        } else {
            break;
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_args_handles_runs_of_blanks() {
        let (args, n) = split_args(b"  foo \t bar  12 ").unwrap();
        assert_eq!(n, 3);
        assert_eq!(&args[..n], &[&b"foo"[..], b"bar", b"12"]);
    }

    #[test]
    fn split_args_rejects_too_many() {
        assert!(split_args(b"a b c d e f").is_none());
    }

    #[test]
    fn parse_size_rejects_overflow_and_signs() {
        assert_eq!(parse_size(b"0"), Some(0));
        assert_eq!(parse_size(b"1048576"), Some(1048576));
        assert_eq!(parse_size(b"-1"), None);
        assert_eq!(parse_size(b"99999999999999999999"), None);
        assert_eq!(parse_size(b""), None);
    }

    #[test]
    fn control_line_limits() {
        assert_eq!(control_line(b"PING\r\n", 10), Ok(Some((&b"PING"[..], 6))));
        assert_eq!(control_line(b"PING\n", 10), Ok(Some((&b"PING"[..], 5))));
        assert_eq!(control_line(b"PIN", 10), Ok(None));
        assert_eq!(control_line(b"0123456789ABC", 10), Err(()));
        assert_eq!(control_line(b"0123456789A\r\n", 10), Err(()));
    }
}
