//! The deduplication window of a stream: message ids (`Nats-Msg-Id`) seen
//! recently, with the sequence each was stored at.

use std::collections::VecDeque;

use rustc_hash::FxHashMap;

/// Message ids remembered for `window_ns` after they were stored, and at
/// most `ids_max` of them (the oldest go first), so memory stays bounded
/// whatever the publish rate.
#[derive(Debug, Clone)]
pub struct DedupWindow {
    window_ns: u64,
    ids_max: usize,
    seqs: FxHashMap<Box<str>, u64>,
    /// (time stored, id) in the order stored.
    order: VecDeque<(i64, Box<str>)>,
}

/// Default bound on remembered ids per stream.
pub const DEDUP_IDS_MAX: usize = 1 << 20;

impl DedupWindow {
    /// An empty window of `window_ns` nanoseconds.
    pub fn new(window_ns: u64, ids_max: usize) -> DedupWindow {
        DedupWindow {
            window_ns,
            ids_max: ids_max.max(1),
            seqs: FxHashMap::default(),
            order: VecDeque::new(),
        }
    }

    /// Changes the window length; ids older than it are forgotten at the
    /// next [`DedupWindow::expire`].
    pub fn set_window(&mut self, window_ns: u64) {
        self.window_ns = window_ns;
    }

    /// The window length.
    pub fn window_ns(&self) -> u64 {
        self.window_ns
    }

    /// The sequence `id` was stored at, if it is within the window.
    pub fn get(&self, id: &str) -> Option<u64> {
        self.seqs.get(id).copied()
    }

    /// Remembers that `id` was stored at `seq` at `time_ns` (Unix nanos).
    pub fn insert(&mut self, id: &str, seq: u64, time_ns: i64) {
        if self.window_ns == 0 {
            return;
        }
        if self.seqs.insert(id.into(), seq).is_none() {
            self.order.push_back((time_ns, id.into()));
        }
        while self.order.len() > self.ids_max {
            if let Some((_, old)) = self.order.pop_front() {
                self.seqs.remove(&old);
            }
        }
    }

    /// Forgets ids stored at or before `now_ns - window`.
    pub fn expire(&mut self, now_ns: i64) {
        let cutoff = now_ns.saturating_sub(self.window_ns.min(i64::MAX as u64) as i64);
        while let Some((time_ns, _)) = self.order.front() {
            if *time_ns > cutoff {
                break;
            }
            if let Some((_, id)) = self.order.pop_front() {
                self.seqs.remove(&id);
            }
        }
    }

    /// Forgets everything.
    pub fn clear(&mut self) {
        self.seqs.clear();
        self.order.clear();
    }

    /// Ids remembered.
    pub fn len(&self) -> usize {
        self.seqs.len()
    }

    /// Whether no id is remembered.
    pub fn is_empty(&self) -> bool {
        self.seqs.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_remembered_within_the_window_only() {
        let mut w = DedupWindow::new(100, 10);
        w.insert("a", 1, 1000);
        w.insert("b", 2, 1050);
        w.expire(1099);
        assert_eq!(w.get("a"), Some(1));
        w.expire(1100);
        assert_eq!(w.get("a"), None);
        assert_eq!(w.get("b"), Some(2));
    }

    #[test]
    fn the_oldest_ids_go_first_beyond_the_bound() {
        let mut w = DedupWindow::new(u64::MAX, 2);
        w.insert("a", 1, 0);
        w.insert("b", 2, 0);
        w.insert("c", 3, 0);
        assert_eq!((w.get("a"), w.get("b"), w.get("c")), (None, Some(2), Some(3)));
    }

    #[test]
    fn a_zero_window_remembers_nothing() {
        let mut w = DedupWindow::new(0, 2);
        w.insert("a", 1, 0);
        assert!(w.is_empty());
    }
}
