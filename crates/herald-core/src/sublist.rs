//! The subscription index: a trie keyed by subject tokens.

use rustc_hash::FxHashMap;

use crate::subject::{validate_queue_name, validate_subject, SubjectError};

/// Tokens held on the stack while matching; deeper subjects use the heap.
const TOKENS_INLINE_MAX: usize = 32;

/// Members of one queue group that match a subject.
#[derive(Debug, Clone)]
pub struct QueueGroup<T> {
    /// Group name.
    pub name: Box<[u8]>,
    /// Matching members; a message goes to exactly one of them.
    pub members: Vec<T>,
}

/// Everything a literal subject matches.
#[derive(Debug, Clone)]
pub struct MatchResult<T> {
    /// Plain subscriptions: each gets every message.
    pub plain: Vec<T>,
    /// Queue groups with at least one member, merged by name across patterns.
    pub queues: Vec<QueueGroup<T>>,
}

impl<T> MatchResult<T> {
    /// A result with nothing in it.
    pub fn empty() -> Self {
        MatchResult {
            plain: Vec::new(),
            queues: Vec::new(),
        }
    }

    /// Whether nothing matched.
    pub fn is_empty(&self) -> bool {
        self.plain.is_empty() && self.queues.iter().all(|g| g.members.is_empty())
    }
}

struct Node<T> {
    plain: Vec<T>,
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
}

struct Level<T> {
    literal: FxHashMap<Box<[u8]>, Node<T>>,
    /// The `*` child: any one token.
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
                if !self.literal.contains_key(token) {
                    self.literal.insert(token.into(), Node::new());
                }
                self.literal.get_mut(token).expect("inserted above")
            }
        }
    }

    fn node_count(&self) -> usize {
        let count = |n: &Node<T>| 1 + n.next.as_ref().map_or(0, |l| l.node_count());
        self.literal.values().map(count).sum::<usize>()
            + self.star.as_deref().map_or(0, count)
            + self.rest.as_deref().map_or(0, count)
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

impl<T: Clone + PartialEq> Sublist<T> {
    /// An empty index.
    pub fn new() -> Self {
        Sublist {
            root: Level::new(),
            count: 0,
            generation: 0,
        }
    }

    /// Adds a subscription.
    pub fn insert(&mut self, subject: &[u8], queue: Option<&[u8]>, value: T) -> Result<(), SubjectError> {
        validate_subject(subject)?;
        if let Some(queue) = queue {
            validate_queue_name(queue)?;
        }
        let mut tokens = subject.split(|&b| b == b'.').peekable();
        let mut level = &mut self.root;
        loop {
            let token = tokens.next().expect("validated subjects have a token");
            let node = level.child_mut(token);
            if tokens.peek().is_none() {
                match queue {
                    None => node.plain.push(value),
                    Some(queue) => match node.queues.iter_mut().find(|(name, _)| &**name == queue) {
                        Some((_, members)) => members.push(value),
                        None => node.queues.push((queue.into(), vec![value])),
                    },
                }
                break;
            }
            level = node.next.get_or_insert_with(|| Box::new(Level::new()));
        }
        self.count += 1;
        self.generation += 1;
        Ok(())
    }

    /// Removes one subscription equal to `value` stored under exactly this
    /// subject and queue, pruning nodes left empty. Returns whether it was found.
    pub fn remove(&mut self, subject: &[u8], queue: Option<&[u8]>, value: &T) -> bool {
        if validate_subject(subject).is_err() {
            return false;
        }
        let tokens: Vec<&[u8]> = subject.split(|&b| b == b'.').collect();
        let removed = remove_in(&mut self.root, &tokens, queue, value);
        if removed {
            self.count -= 1;
            self.generation += 1;
        }
        removed
    }

    /// Every subscription matching the literal subject `subject`.
    pub fn matches(&self, subject: &[u8]) -> MatchResult<T> {
        let mut result = MatchResult::empty();
        let mut inline: [&[u8]; TOKENS_INLINE_MAX] = [&[]; TOKENS_INLINE_MAX];
        let mut heap = Vec::new();
        let mut n = 0;
        for token in subject.split(|&b| b == b'.') {
            if n < TOKENS_INLINE_MAX {
                inline[n] = token;
            } else {
                if heap.is_empty() {
                    heap.extend_from_slice(&inline);
                }
                heap.push(token);
            }
            n += 1;
        }
        let tokens = if n <= TOKENS_INLINE_MAX {
            &inline[..n]
        } else {
            &heap[..]
        };
        collect(&self.root, tokens, &mut result);
        result
    }

    /// Number of subscriptions stored.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether no subscription is stored.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Changes with every successful insert or remove.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Trie nodes allocated (for tests of pruning).
    #[doc(hidden)]
    pub fn node_count(&self) -> usize {
        self.root.node_count()
    }
}

fn remove_in<T: PartialEq>(level: &mut Level<T>, tokens: &[&[u8]], queue: Option<&[u8]>, value: &T) -> bool {
    let Some((&token, rest)) = tokens.split_first() else {
        return false;
    };
    let node = match token {
        b"*" => level.star.as_deref_mut(),
        b">" => level.rest.as_deref_mut(),
        _ => level.literal.get_mut(token),
    };
    let Some(node) = node else {
        return false;
    };
    let removed = if rest.is_empty() {
        remove_from_node(node, queue, value)
    } else {
        match node.next.as_deref_mut() {
            Some(next) => {
                let removed = remove_in(next, rest, queue, value);
                if next.is_empty() {
                    node.next = None;
                }
                removed
            }
            None => false,
        }
    };
    if node.is_empty() {
        match token {
            b"*" => level.star = None,
            b">" => level.rest = None,
            _ => {
                level.literal.remove(token);
            }
        }
    }
    removed
}

fn remove_from_node<T: PartialEq>(node: &mut Node<T>, queue: Option<&[u8]>, value: &T) -> bool {
    match queue {
        None => match node.plain.iter().position(|v| v == value) {
            Some(i) => {
                node.plain.swap_remove(i);
                true
            }
            None => false,
        },
        Some(queue) => {
            let Some(g) = node.queues.iter().position(|(name, _)| &**name == queue) else {
                return false;
            };
            let members = &mut node.queues[g].1;
            let Some(i) = members.iter().position(|v| v == value) else {
                return false;
            };
            members.swap_remove(i);
            if members.is_empty() {
                node.queues.swap_remove(g);
            }
            true
        }
    }
}

fn collect<T: Clone>(level: &Level<T>, tokens: &[&[u8]], out: &mut MatchResult<T>) {
    let Some((&token, rest)) = tokens.split_first() else {
        return;
    };
    if let Some(node) = &level.rest {
        add(node, out);
    }
    if let Some(node) = &level.star {
        visit(node, rest, out);
    }
    if let Some(node) = level.literal.get(token) {
        visit(node, rest, out);
    }
}

fn visit<T: Clone>(node: &Node<T>, rest: &[&[u8]], out: &mut MatchResult<T>) {
    if rest.is_empty() {
        add(node, out);
    } else if let Some(next) = &node.next {
        collect(next, rest, out);
    }
}

fn add<T: Clone>(node: &Node<T>, out: &mut MatchResult<T>) {
    out.plain.extend_from_slice(&node.plain);
    for (name, members) in &node.queues {
        match out.queues.iter_mut().find(|g| g.name == *name) {
            Some(group) => group.members.extend_from_slice(members),
            None => out.queues.push(QueueGroup {
                name: name.clone(),
                members: members.clone(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_groups_merge_across_patterns() {
        let mut s = Sublist::new();
        s.insert(b"a.*", Some(b"q"), 1).unwrap();
        s.insert(b"a.b", Some(b"q"), 2).unwrap();
        s.insert(b"a.>", Some(b"other"), 3).unwrap();
        let r = s.matches(b"a.b");
        assert!(r.plain.is_empty());
        let mut q: Vec<_> = r
            .queues
            .iter()
            .find(|g| &*g.name == b"q")
            .unwrap()
            .members
            .clone();
        q.sort();
        assert_eq!(q, vec![1, 2]);
        assert_eq!(r.queues.len(), 2);
    }

    #[test]
    fn remove_prunes_every_node() {
        let mut s = Sublist::new();
        let subjects: [&[u8]; 5] = [b"a.b.c", b"a.*.c", b"a.>", b">", b"x.y"];
        for (i, subject) in subjects.iter().enumerate() {
            s.insert(subject, None, i).unwrap();
            s.insert(subject, Some(b"q"), i + 100).unwrap();
        }
        assert_eq!(s.len(), 10);
        let before = s.generation();
        for (i, subject) in subjects.iter().enumerate() {
            assert!(s.remove(subject, None, &i));
            assert!(s.remove(subject, Some(b"q"), &(i + 100)));
            assert!(!s.remove(subject, None, &i));
        }
        assert_eq!(s.len(), 0);
        assert_eq!(s.node_count(), 0);
        assert_eq!(s.generation(), before + 10);
    }

    #[test]
    fn deep_subjects_match() {
        let mut s = Sublist::new();
        let deep: Vec<u8> = (0..40).map(|_| "t").collect::<Vec<_>>().join(".").into_bytes();
        s.insert(&deep, None, 1).unwrap();
        s.insert(b"t.>", None, 2).unwrap();
        let mut r = s.matches(&deep).plain;
        r.sort();
        assert_eq!(r, vec![1, 2]);
    }
}
