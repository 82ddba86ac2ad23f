//! Subjects: validation and wildcard matching.

use thiserror::Error;

/// Longest subject accepted, in bytes.
pub const SUBJECT_LEN_MAX: usize = 4096;

/// Why a subject or queue name is not valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum SubjectError {
    /// Empty subject or queue name.
    #[error("subject is empty")]
    Empty,
    /// Two dots in a row, or a dot at either end.
    #[error("subject has an empty token")]
    EmptyToken,
    /// Whitespace or NUL.
    #[error("subject contains whitespace or NUL")]
    InvalidCharacter,
    /// `>` is not the last token.
    #[error("'>' must be the last token")]
    WildcardNotLast,
    /// Reserved for strict checking of tokens like `a*`. Never returned:
    /// NATS accepts such tokens as literals, and so does Herald.
    #[error("wildcard inside a token")]
    WildcardInPartialToken,
    /// A wildcard token where a literal subject is required.
    #[error("wildcards are not allowed here")]
    WildcardInLiteral,
    /// Longer than [`SUBJECT_LEN_MAX`].
    #[error("subject longer than 4096 bytes")]
    TooLong,
}

/// Whitespace and NUL may appear nowhere in a subject or queue name.
fn is_forbidden(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n' | 0)
}

fn check(subject: &[u8], wildcards_allowed: bool) -> Result<(), SubjectError> {
    if subject.is_empty() {
        return Err(SubjectError::Empty);
    }
    if subject.len() > SUBJECT_LEN_MAX {
        return Err(SubjectError::TooLong);
    }
    let mut tokens = subject.split(|&b| b == b'.').peekable();
    while let Some(token) = tokens.next() {
        if token.is_empty() {
            return Err(SubjectError::EmptyToken);
        }
        if token.iter().copied().any(is_forbidden) {
            return Err(SubjectError::InvalidCharacter);
        }
        match token {
            b"*" | b">" if !wildcards_allowed => return Err(SubjectError::WildcardInLiteral),
            b">" if tokens.peek().is_some() => return Err(SubjectError::WildcardNotLast),
            _ => {}
        }
    }
    Ok(())
}

/// Validates a subscription subject: at most [`SUBJECT_LEN_MAX`] bytes of
/// non-empty tokens separated by `.`, with no whitespace or NUL. A token
/// that is exactly `*` matches one token; one that is exactly `>` matches
/// one or more and must be last. Tokens that merely contain `*` or `>`
/// (`a*`, `foo>`) are literal, as in NATS.
///
/// ```
/// use herald_core::{validate_subject, SubjectError};
///
/// assert!(validate_subject(b"orders.*.eu.>").is_ok());
/// assert!(validate_subject(b"rates.a*").is_ok());
/// assert_eq!(validate_subject(b"a..b"), Err(SubjectError::EmptyToken));
/// assert_eq!(validate_subject(b"a.>.b"), Err(SubjectError::WildcardNotLast));
/// ```
pub fn validate_subject(subject: &[u8]) -> Result<(), SubjectError> {
    check(subject, true)
}

/// Validates a publish subject: as [`validate_subject`], but no token may
/// be exactly `*` or `>` ([`SubjectError::WildcardInLiteral`]).
pub fn validate_literal_subject(subject: &[u8]) -> Result<(), SubjectError> {
    check(subject, false)
}

/// Validates a queue group name: non-empty ([`SubjectError::Empty`]), no
/// whitespace or NUL ([`SubjectError::InvalidCharacter`]).
pub fn validate_queue_name(queue: &[u8]) -> Result<(), SubjectError> {
    if queue.is_empty() {
        return Err(SubjectError::Empty);
    }
    if queue.iter().copied().any(is_forbidden) {
        return Err(SubjectError::InvalidCharacter);
    }
    Ok(())
}

/// Whether no token is exactly `*` or `>` (tokens that merely contain them
/// are literal).
pub fn is_literal(subject: &[u8]) -> bool {
    subject.split(|&b| b == b'.').all(|t| t != b"*" && t != b">")
}

/// Reference matcher: does the subscription `pattern` match the literal
/// `subject`?
///
/// `*` in `pattern` matches exactly one token and `>` one or more; any other
/// token must be equal. A subject with an empty token (including the empty
/// subject) matches nothing, as in [`Sublist::matches`]. Simple and
/// obviously correct rather than fast: the index does the real work.
///
/// [`Sublist::matches`]: crate::Sublist::matches
pub fn subject_matches(pattern: &[u8], subject: &[u8]) -> bool {
    if subject.split(|&b| b == b'.').any(<[u8]>::is_empty) {
        return false;
    }
    let mut pattern = pattern.split(|&b| b == b'.');
    let mut subject = subject.split(|&b| b == b'.');
    loop {
        match (pattern.next(), subject.next()) {
            (Some(b">"), Some(_)) => return true,
            (Some(p), Some(s)) if p == b"*" || p == s => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

/// Whether every subject `filter` matches is also matched by `pattern`
/// (both may hold wildcards): `orders.>` covers `orders.*.eu`, `orders.*`
/// does not cover `orders.>`.
///
/// ```
/// use herald_core::pattern_covers;
///
/// assert!(pattern_covers("orders.>", "orders.*.eu"));
/// assert!(pattern_covers("orders.*", "orders.new"));
/// assert!(!pattern_covers("orders.*", "orders.>"));
/// ```
pub fn pattern_covers(pattern: &str, filter: &str) -> bool {
    let mut pattern = pattern.split('.');
    let mut filter = filter.split('.');
    loop {
        match (pattern.next(), filter.next()) {
            (Some(">"), Some(_)) => return true,
            (Some(_), Some(">")) => return false,
            (Some("*"), Some(_)) => {}
            (Some(p), Some(f)) if p == f && f != "*" => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn covers_agrees_with_matching() {
        let subjects = ["a", "a.b", "a.b.c", "a.c", "b.b", "a.b.c.d"];
        let patterns = ["a", "a.*", "a.>", "*.b", "a.b", "a.*.c", ">", "*", "a.b.>"];
        for pattern in patterns {
            for filter in patterns {
                if pattern_covers(pattern, filter) {
                    for subject in subjects {
                        if subject_matches(filter.as_bytes(), subject.as_bytes()) {
                            assert!(
                                subject_matches(pattern.as_bytes(), subject.as_bytes()),
                                "{pattern} claims to cover {filter}, but misses {subject}"
                            );
                        }
                    }
                }
            }
        }
        assert!(pattern_covers(">", "a.*"));
        assert!(!pattern_covers("a.*", "*.b"));
    }

    #[test]
    fn validation() {
        assert_eq!(validate_subject(b""), Err(SubjectError::Empty));
        assert_eq!(validate_subject(b".a"), Err(SubjectError::EmptyToken));
        assert_eq!(validate_subject(b"a."), Err(SubjectError::EmptyToken));
        assert_eq!(validate_subject(b"a..b"), Err(SubjectError::EmptyToken));
        assert_eq!(validate_subject(b"a.>.b"), Err(SubjectError::WildcardNotLast));
        assert_eq!(validate_subject(b"a b"), Err(SubjectError::InvalidCharacter));
        assert!(validate_subject(b">").is_ok());
        assert!(validate_subject(b"*").is_ok());
        assert!(validate_subject(b"a.*.>").is_ok());
        assert!(validate_subject(b"a*.b>").is_ok());
        assert_eq!(
            validate_literal_subject(b"a.*"),
            Err(SubjectError::WildcardInLiteral)
        );
        assert!(validate_literal_subject(b"a*.b").is_ok());
        assert!(validate_queue_name(b"workers").is_ok());
        assert!(validate_queue_name(b"").is_err());
    }

    #[test]
    fn matching() {
        assert!(subject_matches(b"a.*", b"a.b"));
        assert!(!subject_matches(b"a.*", b"a.b.c"));
        assert!(!subject_matches(b"a.*", b"a"));
        assert!(subject_matches(b"a.>", b"a.b.c"));
        assert!(!subject_matches(b"a.>", b"a"));
        assert!(subject_matches(b">", b"a"));
        assert!(subject_matches(b"*.b", b"a.b"));
        assert!(!subject_matches(b"a.b", b"a.c"));
    }
}
