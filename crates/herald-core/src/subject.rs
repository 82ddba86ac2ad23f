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
    /// Reserved for strict checking of tokens like `a*`; NATS accepts them as literals.
    #[error("wildcard inside a token")]
    WildcardInPartialToken,
    /// A wildcard token where a literal subject is required.
    #[error("wildcards are not allowed here")]
    WildcardInLiteral,
    /// Longer than [`SUBJECT_LEN_MAX`].
    #[error("subject longer than 4096 bytes")]
    TooLong,
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
        if token
            .iter()
            .any(|&b| matches!(b, b' ' | b'\t' | b'\r' | b'\n' | 0))
        {
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

/// Validates a subscription subject, where `*` and `>` tokens are wildcards.
pub fn validate_subject(subject: &[u8]) -> Result<(), SubjectError> {
    check(subject, true)
}

/// Validates a publish subject: no wildcard tokens.
pub fn validate_literal_subject(subject: &[u8]) -> Result<(), SubjectError> {
    check(subject, false)
}

/// Validates a queue group name.
pub fn validate_queue_name(queue: &[u8]) -> Result<(), SubjectError> {
    if queue.is_empty() {
        return Err(SubjectError::Empty);
    }
    if queue
        .iter()
        .any(|&b| matches!(b, b' ' | b'\t' | b'\r' | b'\n' | 0))
    {
        return Err(SubjectError::InvalidCharacter);
    }
    Ok(())
}

/// Whether no token is a wildcard.
pub fn is_literal(subject: &[u8]) -> bool {
    subject.split(|&b| b == b'.').all(|t| t != b"*" && t != b">")
}

/// Reference matcher: does the subscription `pattern` match the literal `subject`?
pub fn subject_matches(pattern: &[u8], subject: &[u8]) -> bool {
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

#[cfg(test)]
mod tests {
    use super::*;

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
