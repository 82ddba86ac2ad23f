//! Splitting a subject into tokens without touching the heap in the common case.

use crate::inline_vec::InlineVec;

/// Tokens held inline; subjects with more tokens spill to the heap.
const TOKENS_INLINE_MAX: usize = 32;

/// The tokens of a subject, split on `.`: up to [`TOKENS_INLINE_MAX`] on the
/// stack, deeper subjects (rare) in a `Vec`.
pub(crate) struct Tokens<'a>(InlineVec<&'a [u8], TOKENS_INLINE_MAX>);

impl<'a> Tokens<'a> {
    /// Splits `subject` on `.`. Returns `None` if any token is empty, which
    /// includes the empty subject and a leading, trailing or doubled dot, so
    /// a returned list is never empty.
    #[inline]
    pub(crate) fn split(subject: &'a [u8]) -> Option<Self> {
        let mut tokens = InlineVec::new(&[][..]);
        for token in subject.split(|&b| b == b'.') {
            if token.is_empty() {
                return None;
            }
            tokens.push(token);
        }
        Some(Tokens(tokens))
    }

    /// The tokens, in order.
    #[inline]
    pub(crate) fn as_slice(&self) -> &[&'a [u8]] {
        self.0.as_slice()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(subject: &str) -> Option<Vec<String>> {
        Tokens::split(subject.as_bytes()).map(|t| {
            t.as_slice()
                .iter()
                .map(|t| String::from_utf8(t.to_vec()).unwrap())
                .collect()
        })
    }

    #[test]
    fn splits_and_rejects_empty_tokens() {
        assert_eq!(split("a"), Some(vec!["a".to_owned()]));
        assert_eq!(split("a.bc.*"), Some(vec!["a".into(), "bc".into(), "*".into()]));
        assert_eq!(split(""), None);
        assert_eq!(split(".a"), None);
        assert_eq!(split("a."), None);
        assert_eq!(split("a..b"), None);
    }

    #[test]
    fn spills_to_the_heap_past_the_inline_limit() {
        for n in [31, 32, 33, 64, 100] {
            let names: Vec<String> = (0..n).map(|i| format!("t{i}")).collect();
            assert_eq!(split(&names.join(".")), Some(names));
        }
    }
}
