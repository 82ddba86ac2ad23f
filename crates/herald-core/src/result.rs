//! What a subject matches: plain subscriptions and queue groups.

/// Members of one queue group that match a subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueGroup<T> {
    /// Group name.
    pub name: Box<[u8]>,
    /// Matching members; a message goes to exactly one of them.
    pub members: Vec<T>,
}

/// Everything a literal subject matches.
///
/// Each plain subscription gets every message. Each queue group appears at
/// most once, holding every member that matched through any pattern, so a
/// message goes to exactly one member per group name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MatchResult<T> {
    /// Plain subscriptions: each gets every message.
    pub plain: Vec<T>,
    /// Queue groups with at least one member, merged by name across patterns.
    pub queues: Vec<QueueGroup<T>>,
}

impl<T> MatchResult<T> {
    /// A result with nothing in it. Does not allocate.
    pub fn empty() -> Self {
        MatchResult {
            plain: Vec::new(),
            queues: Vec::new(),
        }
    }

    /// Whether nothing matched: no plain subscription and no queue member.
    pub fn is_empty(&self) -> bool {
        self.plain.is_empty() && self.queues.iter().all(|g| g.members.is_empty())
    }
}

impl<T: Clone> MatchResult<T> {
    /// Adds the subscriptions stored at one trie node, merging queue members
    /// into groups already present under the same name.
    pub(crate) fn extend(&mut self, plain: &[T], queues: &[(Box<[u8]>, Vec<T>)]) {
        self.plain.extend_from_slice(plain);
        for (name, members) in queues {
            // Linear search: the number of distinct groups matching one
            // subject is small in practice, and this keeps results compact.
            match self.queues.iter_mut().find(|g| g.name == *name) {
                Some(group) => group.members.extend_from_slice(members),
                None => self.queues.push(QueueGroup {
                    name: name.clone(),
                    members: members.clone(),
                }),
            }
        }
    }
}

impl<T> Default for MatchResult<T> {
    fn default() -> Self {
        Self::empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extend_merges_groups_by_name() {
        let mut r = MatchResult::empty();
        assert!(r.is_empty());
        r.extend(&[1], &[(b"q".as_slice().into(), vec![2])]);
        r.extend(
            &[3],
            &[
                (b"q".as_slice().into(), vec![4]),
                (b"p".as_slice().into(), vec![5]),
            ],
        );
        assert!(!r.is_empty());
        assert_eq!(r.plain, vec![1, 3]);
        assert_eq!(r.queues.len(), 2);
        assert_eq!(&*r.queues[0].name, b"q");
        assert_eq!(r.queues[0].members, vec![2, 4]);
        assert_eq!(r.queues[1].members, vec![5]);
    }

    #[test]
    fn groups_without_members_count_as_empty() {
        let r = MatchResult::<u8> {
            plain: Vec::new(),
            queues: vec![QueueGroup {
                name: b"q".as_slice().into(),
                members: Vec::new(),
            }],
        };
        assert!(r.is_empty());
    }
}
