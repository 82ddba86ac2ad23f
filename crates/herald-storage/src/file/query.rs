//! Reads by subject filter (from the subject ids in the index, never from
//! payloads) and by time (binary search over timestamps read from disk).

use super::segment::Segment;
use super::subjects::{literal_patterns, NO_SUBJECT};
use super::FileStore;
use crate::error::StoreError;
use crate::types::SubjectFilter;

/// Index of the first live slot at or after `from` in `seg`.
fn next_live(seg: &Segment, from: usize) -> Option<usize> {
    let start = from.max(seg.first_live);
    seg.slots
        .get(start..)?
        .iter()
        .position(|s| s.is_live())
        .map(|j| start + j)
}

impl FileStore {
    /// Position of the first stored message `>= from_seq` matching `filter`.
    pub(super) fn find_next(&mut self, from_seq: u64, filter: &SubjectFilter) -> Option<(usize, usize)> {
        let mut from = from_seq.max(self.first_seq());
        if from > self.last_seq {
            return None;
        }
        if let Some(patterns) = literal_patterns(filter) {
            // Bound the scan by the matching subjects' first and last.
            let mut lo = u64::MAX;
            let mut hi = 0;
            for id in patterns.iter().filter_map(|p| self.subjects.id(p)) {
                if let Some(e) = self.subjects.get(id).filter(|e| filter.matches(&e.name)) {
                    lo = lo.min(e.first);
                    hi = hi.max(e.last);
                }
            }
            if hi < from {
                return None;
            }
            from = from.max(lo);
        }
        let all = filter.is_all();
        if !all {
            self.match_cache.prepare(filter, &self.subjects);
        }
        let (mut si, mut ix) = self.scan_start(from);
        while si < self.segs.len() {
            let seg = &self.segs[si];
            if seg.live > 0 {
                for j in ix.max(seg.first_live)..seg.slots.len() {
                    let id = seg.slots[j].subject;
                    if id != NO_SUBJECT && (all || self.match_cache.matches(&self.subjects, id)) {
                        return Some((si, j));
                    }
                }
            }
            si += 1;
            ix = 0;
        }
        None
    }

    /// The last stored sequence on a subject matching `filter`.
    pub(super) fn last_seq_matching(&self, filter: &SubjectFilter) -> Option<u64> {
        if filter.is_all() {
            return (self.msgs > 0).then_some(self.last_stored_seq()).flatten();
        }
        if let Some(patterns) = literal_patterns(filter) {
            return patterns
                .iter()
                .filter_map(|p| self.subjects.id(p).and_then(|id| self.subjects.get(id)))
                .filter(|e| filter.matches(&e.name))
                .map(|e| e.last)
                .max();
        }
        self.subjects
            .iter()
            .filter(|(_, e)| filter.matches(&e.name))
            .map(|(_, e)| e.last)
            .max()
    }

    fn last_stored_seq(&self) -> Option<u64> {
        let seg = self.segs.iter().rev().find(|s| s.live > 0)?;
        let ix = seg.slots.iter().rposition(|s| s.is_live())?;
        Some(seg.base + ix as u64)
    }

    /// Stored messages `>= from_seq` matching `filter`.
    pub(super) fn count(&self, from_seq: u64, filter: &SubjectFilter) -> u64 {
        let first = self.first_seq();
        let from = from_seq.max(first);
        if self.msgs == 0 || from > self.last_seq {
            return 0;
        }
        if filter.is_all() {
            if from == first {
                return self.msgs;
            }
            return self.count_range(from, u64::MAX, None);
        }
        let mut matched = vec![false; self.subjects.id_bound()];
        let (mut total, mut lo, mut hi) = (0, u64::MAX, 0);
        let mut mark = |id: u32, e: &super::subjects::SubjectEntry| {
            matched[id as usize] = true;
            total += e.count;
            lo = lo.min(e.first);
            hi = hi.max(e.last);
        };
        match literal_patterns(filter) {
            // A consumer of one aggregate or one exact subject: look its
            // subjects up instead of matching every subject of the stream
            // (this count is taken on every consumer pump).
            Some(patterns) => {
                for id in patterns.iter().filter_map(|p| self.subjects.id(p)) {
                    if let Some(e) = self.subjects.get(id).filter(|e| filter.matches(&e.name)) {
                        mark(id, e);
                    }
                }
            }
            None => {
                for (id, e) in self.subjects.iter() {
                    if filter.matches(&e.name) {
                        mark(id, e);
                    }
                }
            }
        }
        if total == 0 || hi < from {
            return 0;
        }
        if lo >= from {
            return total;
        }
        // Every match lies in [lo, hi]: count whichever side of `from`
        // within it has fewer sequences.
        if hi - from < from - lo {
            self.count_range(from, hi + 1, Some(&matched))
        } else {
            total - self.count_range(lo, from, Some(&matched))
        }
    }

    /// Stored messages in `[from, to)` matching `filter`, deciding each
    /// subject id once through the match cache.
    pub(super) fn count_in(&mut self, from: u64, to: u64, filter: &SubjectFilter) -> u64 {
        let from = from.max(self.first_seq());
        let to = to.min(self.last_seq.saturating_add(1));
        if from >= to {
            return 0;
        }
        if filter.is_all() {
            return self.count_range(from, to, None);
        }
        self.match_cache.prepare(filter, &self.subjects);
        let (mut si, mut ix) = self.scan_start(from);
        let mut n = 0;
        while si < self.segs.len() && self.segs[si].base < to {
            let seg = &self.segs[si];
            if seg.live > 0 {
                let end = (to - seg.base).min(seg.slots.len() as u64) as usize;
                for j in ix.max(seg.first_live)..end {
                    let id = seg.slots[j].subject;
                    if id != NO_SUBJECT && self.match_cache.matches(&self.subjects, id) {
                        n += 1;
                    }
                }
            }
            si += 1;
            ix = 0;
        }
        n
    }

    /// Stored messages in `[from, to)` whose subject id is marked in
    /// `matched` (all of them for `None`).
    fn count_range(&self, from: u64, to: u64, matched: Option<&[bool]>) -> u64 {
        let (mut si, mut ix) = self.scan_start(from);
        let mut n = 0;
        while si < self.segs.len() {
            let seg = &self.segs[si];
            if seg.base >= to {
                break;
            }
            if seg.live > 0 {
                let end = to.saturating_sub(seg.base).min(seg.slots.len() as u64) as usize;
                let start = ix.max(seg.first_live);
                if matched.is_none() && start == seg.first_live && end == seg.slots.len() {
                    n += seg.live;
                } else if start < end {
                    n += seg.slots[start..end]
                        .iter()
                        .filter(|s| {
                            s.is_live()
                                && matched.is_none_or(|m| m.get(s.subject as usize).copied().unwrap_or(false))
                        })
                        .count() as u64;
                }
            }
            si += 1;
            ix = 0;
        }
        n
    }

    /// The first stored sequence whose time is `>= time_ns` (times are
    /// assumed not to decrease with the sequence, as appends give them).
    pub(super) fn find_seq_at_time(&mut self, time_ns: i64) -> Result<u64, StoreError> {
        for si in 0..self.segs.len() {
            let seg = &self.segs[si];
            if seg.live == 0 || seg.times.is_none_or(|t| t.max < time_ns) {
                continue;
            }
            // Lower bound over g(i) = time of the first live slot >= i.
            let (mut lo, mut hi) = (seg.first_live, seg.slots.len());
            while lo < hi {
                let mid = lo + (hi - lo) / 2;
                match next_live(&self.segs[si], mid) {
                    None => hi = mid,
                    Some(j) => {
                        if self.record_time(si, j)? >= time_ns {
                            hi = mid;
                        } else {
                            lo = j + 1;
                        }
                    }
                }
            }
            if let Some(j) = next_live(&self.segs[si], lo) {
                return Ok(self.segs[si].base + j as u64);
            }
        }
        Ok(self.last_seq + 1)
    }
}
