//! A bounded per-connection cache of subject matches.

use std::sync::Arc;

use rustc_hash::FxHashMap;

use crate::sublist::MatchResult;

/// Match results by literal subject, valid for one generation of the index.
///
/// A publisher keeps one of these so that, while subscriptions do not change,
/// routing a message needs neither the index's lock nor a trie walk. When the
/// generation moves on, every entry is stale and the map is cleared on the
/// next insert. When it is full, it is cleared too: simple, bounded, and a
/// working set that fits refills at once.
pub struct MatchCache<T> {
    entries: FxHashMap<Box<[u8]>, Arc<MatchResult<T>>>,
    generation: u64,
    entries_max: usize,
}

impl<T> MatchCache<T> {
    /// A cache of at most `entries_max` subjects.
    pub fn new(entries_max: usize) -> Self {
        MatchCache {
            entries: FxHashMap::default(),
            generation: 0,
            entries_max: entries_max.max(1),
        }
    }

    /// The cached result for `subject`, if it belongs to `generation`.
    #[inline]
    pub fn get(&self, subject: &[u8], generation: u64) -> Option<&Arc<MatchResult<T>>> {
        if generation != self.generation {
            return None;
        }
        self.entries.get(subject)
    }

    /// Stores a result computed at `generation`.
    pub fn insert(&mut self, subject: &[u8], generation: u64, result: Arc<MatchResult<T>>) {
        if generation < self.generation {
            return;
        }
        if generation > self.generation {
            self.entries.clear();
            self.generation = generation;
        }
        if self.entries.len() >= self.entries_max {
            self.entries.clear();
        }
        self.entries.insert(subject.into(), result);
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no entry is held.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generation_change_invalidates_and_size_is_bounded() {
        let mut cache = MatchCache::<u32>::new(2);
        let r = Arc::new(MatchResult::empty());
        cache.insert(b"a", 1, r.clone());
        assert!(cache.get(b"a", 1).is_some());
        assert!(cache.get(b"a", 2).is_none());
        cache.insert(b"b", 2, r.clone());
        assert_eq!(cache.len(), 1);
        cache.insert(b"c", 2, r.clone());
        cache.insert(b"d", 2, r.clone());
        assert!(cache.len() <= 2);
        cache.insert(b"old", 1, r);
        assert!(cache.get(b"old", 1).is_none());
    }
}
