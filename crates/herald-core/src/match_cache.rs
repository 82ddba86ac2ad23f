//! A bounded per-connection cache of subject matches.

use std::fmt;
use std::sync::Arc;

use rustc_hash::FxHashMap;

use crate::result::MatchResult;

/// Match results by literal subject, valid for one generation of the index.
///
/// A publisher keeps one of these so that, while subscriptions do not change,
/// routing a message needs neither the index's lock nor a trie walk.
///
/// Invalidation: the cache remembers the generation its entries belong to.
/// [`get`](Self::get) with another generation misses without scanning;
/// the first [`insert`](Self::insert) at a newer generation clears the map.
///
/// Eviction: when the cache holds `entries_max` entries and a new subject
/// arrives, it clears everything. That is O(1) amortized (a clear follows at
/// least `entries_max` inserts), keeps memory bounded, needs no bookkeeping
/// on hits, and a working set that fits refills at once. A working set larger
/// than the cache degrades to plain index lookups, never to unbounded growth.
///
/// ```
/// use std::sync::Arc;
/// use herald_core::{MatchCache, Sublist};
///
/// let mut index = Sublist::new();
/// index.insert(b"a.*", None, 1).unwrap();
/// let mut cache = MatchCache::new(1024);
/// let generation = index.generation();
/// cache.insert(b"a.b", generation, Arc::new(index.matches(b"a.b")));
/// assert_eq!(cache.get(b"a.b", generation).unwrap().plain, vec![1]);
///
/// index.insert(b"a.b", None, 2).unwrap();
/// assert!(cache.get(b"a.b", index.generation()).is_none());
/// ```
pub struct MatchCache<T> {
    entries: FxHashMap<Box<[u8]>, Arc<MatchResult<T>>>,
    generation: u64,
    entries_max: usize,
}

impl<T> MatchCache<T> {
    /// A cache of at most `entries_max` subjects (at least 1).
    pub fn new(entries_max: usize) -> Self {
        MatchCache {
            entries: FxHashMap::default(),
            generation: 0,
            entries_max: entries_max.max(1),
        }
    }

    /// The cached result for `subject`, if present and stored at
    /// `generation`. Does not allocate.
    #[inline]
    pub fn get(&self, subject: &[u8], generation: u64) -> Option<&Arc<MatchResult<T>>> {
        if generation != self.generation {
            return None;
        }
        self.entries.get(subject)
    }

    /// Stores `result`, computed at `generation`. A newer generation than the
    /// cache's drops every entry first; an older one (a result computed
    /// before a change the cache has already seen) is ignored.
    pub fn insert(&mut self, subject: &[u8], generation: u64, result: Arc<MatchResult<T>>) {
        if generation < self.generation {
            return;
        }
        if generation > self.generation {
            self.entries.clear();
            self.generation = generation;
        }
        if let Some(entry) = self.entries.get_mut(subject) {
            *entry = result;
            return;
        }
        if self.entries.len() >= self.entries_max {
            self.entries.clear();
        }
        self.entries.insert(subject.into(), result);
    }

    /// Entries held (some may be stale until the next insert).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no entry is held.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The most entries ever held at once.
    pub fn entries_max(&self) -> usize {
        self.entries_max
    }
}

impl<T> fmt::Debug for MatchCache<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MatchCache")
            .field("len", &self.entries.len())
            .field("entries_max", &self.entries_max)
            .field("generation", &self.generation)
            .finish_non_exhaustive()
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

    #[test]
    fn replacing_a_present_subject_does_not_evict() {
        let mut cache = MatchCache::<u32>::new(2);
        let r = Arc::new(MatchResult::empty());
        cache.insert(b"a", 0, r.clone());
        cache.insert(b"b", 0, r.clone());
        cache.insert(b"b", 0, r);
        assert_eq!(cache.len(), 2);
        assert!(cache.get(b"a", 0).is_some());
    }
}
