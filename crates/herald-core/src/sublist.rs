//! The subscription index: a trie keyed by subject tokens.
//!
//! Each [`Level`] holds the children for one token position: literal tokens
//! in a hash map, plus at most one `*` child and one `>` child. A [`Node`]
//! holds the subscriptions whose pattern ends there and, optionally, the
//! level for the next token. Nodes left empty by a removal are pruned, so the
//! trie's size follows the set of live patterns, not the history of churn.

use std::fmt;

use rustc_hash::FxHashMap;

use crate::inline_vec::InlineVec;
use crate::result::MatchResult;
use crate::subject::{validate_queue_name, validate_subject, SubjectError};
use crate::tokens::Tokens;

/// `*` branches deferred on the stack while matching before spilling to the heap.
const PENDING_INLINE_MAX: usize = 16;

/// Subscriptions whose pattern ends at this node, and the next level.
struct Node<T> {
    plain: Vec<T>,
    /// Queue subscriptions by group name; few groups per pattern, so a `Vec`.
    queues: Vec<(Box<[u8]>, Vec<T>)>,
    next: Option<Box<Level<T>>>,
}

impl<T> Node<T> {
    fn new() -> Self {
        Node {
            plain: Vec::new(),
            queues: Vec::new(),
            next: None,
        }
    }

    fn is_empty(&self) -> bool {
        self.plain.is_empty() && self.queues.is_empty() && self.next.is_none()
    }

    fn add(&mut self, queue: Option<&[u8]>, value: T) {
        match queue {
            None => self.plain.push(value),
            Some(queue) => match self.queues.iter_mut().find(|(name, _)| **name == *queue) {
                Some((_, members)) => members.push(value),
                None => self.queues.push((queue.into(), vec![value])),
            },
        }
    }

    /// Removes one entry equal to `value`; drops the group if it empties.
    fn remove(&mut self, queue: Option<&[u8]>, value: &T) -> bool
    where
        T: PartialEq,
    {
        let Some(queue) = queue else {
            return remove_one(&mut self.plain, value);
        };
        let Some(g) = self.queues.iter().position(|(name, _)| **name == *queue) else {
            return false;
        };
        let removed = remove_one(&mut self.queues[g].1, value);
        if self.queues[g].1.is_empty() {
            self.queues.swap_remove(g);
        }
        removed
    }
}

fn remove_one<T: PartialEq>(values: &mut Vec<T>, value: &T) -> bool {
    match values.iter().position(|v| v == value) {
        Some(i) => {
            values.swap_remove(i);
            true
        }
        None => false,
    }
}

/// The children for one token position.
struct Level<T> {
    literal: FxHashMap<Box<[u8]>, Node<T>>,
    /// The `*` child: exactly one token.
    star: Option<Box<Node<T>>>,
    /// The `>` child: one or more tokens.
    rest: Option<Box<Node<T>>>,
}

impl<T> Level<T> {
    fn new() -> Self {
        Level {
            literal: FxHashMap::default(),
            star: None,
            rest: None,
        }
    }

    fn is_empty(&self) -> bool {
        self.literal.is_empty() && self.star.is_none() && self.rest.is_none()
    }

    fn child_mut(&mut self, token: &[u8]) -> &mut Node<T> {
        match token {
            b"*" => self.star.get_or_insert_with(|| Box::new(Node::new())),
            b">" => self.rest.get_or_insert_with(|| Box::new(Node::new())),
            _ => {
                // Look up first so that an existing token costs no allocation.
                if !self.literal.contains_key(token) {
                    self.literal.insert(token.into(), Node::new());
                }
                self.literal.get_mut(token).expect("inserted above")
            }
        }
    }

    fn child_ref(&self, token: &[u8]) -> Option<&Node<T>> {
        match token {
            b"*" => self.star.as_deref(),
            b">" => self.rest.as_deref(),
            _ => self.literal.get(token),
        }
    }

    fn child_count(&self) -> usize {
        self.literal.len() + usize::from(self.star.is_some()) + usize::from(self.rest.is_some())
    }

    fn child(&mut self, token: &[u8]) -> Option<&mut Node<T>> {
        match token {
            b"*" => self.star.as_deref_mut(),
            b">" => self.rest.as_deref_mut(),
            _ => self.literal.get_mut(token),
        }
    }

    fn remove_child(&mut self, token: &[u8]) {
        match token {
            b"*" => self.star = None,
            b">" => self.rest = None,
            _ => {
                self.literal.remove(token);
            }
        }
    }

    fn nodes(&self) -> impl Iterator<Item = &Node<T>> {
        self.literal
            .values()
            .chain(self.star.as_deref())
            .chain(self.rest.as_deref())
    }

    /// Moves every grandchild level onto `stack`.
    fn take_next_levels(&mut self, stack: &mut Vec<Level<T>>) {
        let nodes = self
            .literal
            .values_mut()
            .chain(self.star.as_deref_mut())
            .chain(self.rest.as_deref_mut());
        stack.extend(nodes.filter_map(|node| node.next.take().map(|level| *level)));
    }
}

impl<T> Drop for Level<T> {
    /// Dismantles the trie below this level iteratively: a subject can have
    /// about 2,000 tokens, and recursive drop glue that deep could overflow
    /// a thread's stack.
    fn drop(&mut self) {
        let mut stack = Vec::new();
        self.take_next_levels(&mut stack);
        while let Some(mut level) = stack.pop() {
            level.take_next_levels(&mut stack);
        }
    }
}

/// The subscription index: subscriptions by subject pattern and queue group,
/// matched against literal subjects.
///
/// ```
/// use herald_core::Sublist;
///
/// let mut subs = Sublist::new();
/// subs.insert(b"orders.*", None, 1).unwrap();
/// subs.insert(b"orders.>", Some(b"workers"), 2).unwrap();
/// let result = subs.matches(b"orders.created");
/// assert_eq!(result.plain, vec![1]);
/// assert_eq!(result.queues[0].members, vec![2]);
/// assert!(subs.remove(b"orders.*", None, &1));
/// assert_eq!(subs.len(), 1);
/// ```
pub struct Sublist<T> {
    root: Level<T>,
    count: usize,
    generation: u64,
}

impl<T: Clone + PartialEq> Default for Sublist<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> fmt::Debug for Sublist<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sublist")
            .field("len", &self.count)
            .field("generation", &self.generation)
            .finish_non_exhaustive()
    }
}

impl<T: Clone + PartialEq> Sublist<T> {
    /// An empty index.
    pub fn new() -> Self {
        Sublist {
            root: Level::new(),
            count: 0,
            generation: 0,
        }
    }

    /// Adds a subscription to `subject` (wildcards allowed), in the queue
    /// group `queue` if given. Equal values may be added more than once;
    /// each is a separate entry.
    ///
    /// Fails, changing nothing, if [`validate_subject`] rejects the subject
    /// or [`validate_queue_name`] rejects the queue name.
    pub fn insert(&mut self, subject: &[u8], queue: Option<&[u8]>, value: T) -> Result<(), SubjectError> {
        validate_subject(subject)?;
        if let Some(queue) = queue {
            validate_queue_name(queue)?;
        }
        let mut tokens = subject.split(|&b| b == b'.');
        let mut node = self
            .root
            .child_mut(tokens.next().expect("a valid subject has a token"));
        for token in tokens {
            node = node
                .next
                .get_or_insert_with(|| Box::new(Level::new()))
                .child_mut(token);
        }
        node.add(queue, value);
        self.count += 1;
        self.generation += 1;
        Ok(())
    }

    /// Removes one entry equal to `value` stored under exactly this subject
    /// pattern and queue group (no wildcard matching: `a.*` removes only
    /// what was inserted as `a.*`). Prunes the nodes this leaves empty.
    /// Returns whether an entry was removed.
    pub fn remove(&mut self, subject: &[u8], queue: Option<&[u8]>, value: &T) -> bool {
        let Some(tokens) = Tokens::split(subject) else {
            return false;
        };
        let tokens = tokens.as_slice();
        let Some(node) = node_mut(&mut self.root, tokens) else {
            return false;
        };
        if !node.remove(queue, value) {
            return false;
        }
        prune(&mut self.root, tokens);
        self.count -= 1;
        self.generation += 1;
        true
    }

    /// Every subscription whose pattern matches the literal subject
    /// `subject`: plain ones in [`MatchResult::plain`], and for each queue
    /// group name with a matching member, one [`QueueGroup`] holding all its
    /// matching members, whichever patterns they came from.
    ///
    /// `subject` is not validated. A subject with an empty token (including
    /// the empty subject) matches nothing; a `*` or `>` token in it is
    /// compared as a literal token.
    ///
    /// [`QueueGroup`]: crate::QueueGroup
    pub fn matches(&self, subject: &[u8]) -> MatchResult<T> {
        let mut result = MatchResult::empty();
        if let Some(tokens) = Tokens::split(subject) {
            collect(&self.root, tokens.as_slice(), &mut result);
        }
        result
    }

    /// Like [`Sublist::matches`], but into `result` (cleared first), reusing
    /// its buffers: for subjects matched once, where caching the result
    /// would only cost allocations.
    pub fn matches_into(&self, subject: &[u8], result: &mut MatchResult<T>) {
        result.plain.clear();
        result.queues.clear();
        if let Some(tokens) = Tokens::split(subject) {
            collect(&self.root, tokens.as_slice(), result);
        }
    }

    /// Number of subscriptions stored.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether no subscription is stored.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Incremented by every successful insert or remove, so that caches of
    /// match results can tell when they are stale.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Trie nodes allocated; 0 when empty. For tests of pruning: in debug
    /// builds it also asserts that no node is empty (pruning missed nothing).
    #[doc(hidden)]
    pub fn node_count(&self) -> usize {
        let mut count = 0;
        let mut stack = vec![&self.root];
        while let Some(level) = stack.pop() {
            for node in level.nodes() {
                debug_assert!(!node.is_empty(), "an empty node survived pruning");
                debug_assert!(
                    node.next.as_deref().is_none_or(|l| !l.is_empty()),
                    "an empty level survived"
                );
                count += 1;
                stack.extend(node.next.as_deref());
            }
        }
        count
    }
}

/// The node for the pattern `tokens` (at least one) below `level`, if any.
fn node_mut<'a, T>(mut level: &'a mut Level<T>, tokens: &[&[u8]]) -> Option<&'a mut Node<T>> {
    let (last, path) = tokens.split_last()?;
    for token in path {
        level = level.child(token)?.next.as_deref_mut()?;
    }
    level.child(last)
}

/// After a removal under the pattern `tokens`, drops the nodes on that path
/// left with nothing in or below them, restoring the invariant that no node
/// is empty. Iterative, so the depth of a subject cannot exhaust the stack.
fn prune<T>(root: &mut Level<T>, tokens: &[&[u8]]) {
    // The shallowest depth from which the path holds nothing but itself: no
    // subscriptions, and no children besides the path's next node.
    let mut cut = None;
    let mut level = &*root;
    for (depth, &token) in tokens.iter().enumerate() {
        let Some(node) = level.child_ref(token) else {
            return;
        };
        let last = depth + 1 == tokens.len();
        let only_path_below = match node.next.as_deref() {
            None => last,
            Some(next) => !last && next.child_count() == 1,
        };
        if node.plain.is_empty() && node.queues.is_empty() && only_path_below {
            cut.get_or_insert(depth);
        } else {
            cut = None;
        }
        match node.next.as_deref() {
            Some(next) if !last => level = next,
            _ => break,
        }
    }
    let Some(cut) = cut else {
        return;
    };
    let token = tokens[cut];
    if cut == 0 {
        root.remove_child(token);
        return;
    }
    // The parent keeps subscriptions or other children; if it was only the
    // removed child that made its next level non-empty, drop that level too.
    let Some(parent) = node_mut(root, &tokens[..cut]) else {
        return;
    };
    if let Some(level) = parent.next.as_deref_mut() {
        level.remove_child(token);
        if level.is_empty() {
            parent.next = None;
        }
    }
}

/// Adds everything below `root` that matches `tokens` (at least one).
///
/// Walks one path at a time, following literal children and deferring `*`
/// branches on an explicit stack, so the depth of a subject cannot exhaust
/// the thread's stack; ordinary subjects need no heap for the deferrals.
fn collect<T: Clone>(root: &Level<T>, tokens: &[&[u8]], out: &mut MatchResult<T>) {
    let mut pending: InlineVec<(&Level<T>, usize), PENDING_INLINE_MAX> = InlineVec::new((root, 0));
    pending.push((root, 0));
    while let Some((mut level, mut i)) = pending.pop() {
        loop {
            let last = i + 1 == tokens.len();
            if let Some(node) = level.rest.as_deref() {
                out.extend(&node.plain, &node.queues);
            }
            if let Some(node) = level.star.as_deref() {
                if last {
                    out.extend(&node.plain, &node.queues);
                } else if let Some(next) = node.next.as_deref() {
                    pending.push((next, i + 1));
                }
            }
            let Some(node) = level.literal.get(tokens[i]) else {
                break;
            };
            if last {
                out.extend(&node.plain, &node.queues);
                break;
            }
            let Some(next) = node.next.as_deref() else {
                break;
            };
            level = next;
            i += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remove_prunes_every_node() {
        let mut s = Sublist::new();
        let subjects: [&[u8]; 5] = [b"a.b.c", b"a.*.c", b"a.>", b">", b"x.y"];
        for (i, subject) in subjects.iter().enumerate() {
            s.insert(subject, None, i).unwrap();
            s.insert(subject, Some(b"q"), i + 100).unwrap();
        }
        assert_eq!(s.len(), 10);
        // a, a.b, a.b.c, a.*, a.*.c, a.>, >, x, x.y
        assert_eq!(s.node_count(), 9);
        let before = s.generation();
        for (i, subject) in subjects.iter().enumerate() {
            assert!(s.remove(subject, None, &i));
            assert!(s.remove(subject, Some(b"q"), &(i + 100)));
            assert!(!s.remove(subject, None, &i));
        }
        assert_eq!(s.len(), 0);
        assert_eq!(s.node_count(), 0);
        assert!(s.root.is_empty());
        assert_eq!(s.generation(), before + 10);
    }

    #[test]
    fn failed_operations_leave_generation_alone() {
        let mut s = Sublist::new();
        assert!(s.insert(b"a..b", None, 1).is_err());
        assert!(s.insert(b"a", Some(b""), 1).is_err());
        assert!(!s.remove(b"a", None, &1));
        assert_eq!(s.generation(), 0);
        assert_eq!(s.node_count(), 0);
    }
}
