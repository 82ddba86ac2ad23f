//! A stack-allocated vector that spills to the heap past a fixed capacity.

/// Up to `N` `Copy` values in an inline array; more move everything to a
/// `Vec`. Used for the per-match token list and pending-branch stack so that
/// matching ordinary subjects allocates nothing beyond its result.
pub(crate) struct InlineVec<T: Copy, const N: usize> {
    inline: [T; N],
    /// Values in `inline`; unused once spilled.
    len: usize,
    /// Every value, once more than `N` have been pushed.
    heap: Vec<T>,
    spilled: bool,
}

impl<T: Copy, const N: usize> InlineVec<T, N> {
    /// An empty vector; `fill` initialises the unused inline slots.
    #[inline]
    pub(crate) fn new(fill: T) -> Self {
        InlineVec {
            inline: [fill; N],
            len: 0,
            heap: Vec::new(),
            spilled: false,
        }
    }

    #[inline]
    pub(crate) fn push(&mut self, value: T) {
        if self.spilled {
            self.heap.push(value);
        } else if self.len < N {
            self.inline[self.len] = value;
            self.len += 1;
        } else {
            self.heap.reserve(N * 2);
            self.heap.extend_from_slice(&self.inline);
            self.heap.push(value);
            self.spilled = true;
        }
    }

    #[inline]
    pub(crate) fn pop(&mut self) -> Option<T> {
        if self.spilled {
            self.heap.pop()
        } else if self.len > 0 {
            self.len -= 1;
            Some(self.inline[self.len])
        } else {
            None
        }
    }

    #[inline]
    pub(crate) fn as_slice(&self) -> &[T] {
        if self.spilled {
            &self.heap
        } else {
            &self.inline[..self.len]
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn behaves_like_a_vec_across_the_spill() {
        let mut v = InlineVec::<u32, 4>::new(0);
        let mut model = Vec::new();
        for round in 0..3 {
            for i in 0..(3 + round * 3) {
                v.push(i);
                model.push(i);
                assert_eq!(v.as_slice(), &model[..]);
            }
            for _ in 0..(2 + round) {
                assert_eq!(v.pop(), model.pop());
                assert_eq!(v.as_slice(), &model[..]);
            }
        }
        while let Some(x) = model.pop() {
            assert_eq!(v.pop(), Some(x));
        }
        assert_eq!(v.pop(), None);
        assert!(v.as_slice().is_empty());
    }
}
