//! The interned subject table: subject id -> name, with per-subject counts
//! and bounds, plus a per-filter cache of which ids match.

use rustc_hash::FxHashMap;

use crate::types::SubjectFilter;

/// Subject id of a slot that holds no stored message (deleted or absent).
pub(super) const NO_SUBJECT: u32 = u32::MAX;

/// Most distinct subject ids alive at once (ids are `u32`, one value is the
/// sentinel).
pub(super) const SUBJECT_IDS_MAX: u32 = u32::MAX - 1;

/// What the table knows about one subject.
#[derive(Debug, Clone)]
pub(super) struct SubjectEntry {
    pub name: Box<str>,
    /// Stored messages on the subject.
    pub count: u64,
    /// A lower bound of the subject's first stored sequence (exact after a
    /// lookup moves it forward).
    pub first: u64,
    /// The subject's last stored sequence (exact).
    pub last: u64,
}

/// Subject id -> entry; ids of subjects with no stored message are reused.
#[derive(Debug, Default)]
pub(super) struct Subjects {
    ids: FxHashMap<Box<str>, u32>,
    entries: Vec<Option<SubjectEntry>>,
    free: Vec<u32>,
    /// Bumped whenever an id is released (and so may name another subject
    /// later): match caches keyed on ids are stale after that.
    epoch: u64,
}

impl Subjects {
    pub fn id(&self, name: &str) -> Option<u32> {
        self.ids.get(name).copied()
    }

    /// The id of `name`, creating an entry with count 0 if needed. `None`
    /// if the table is full.
    pub fn intern(&mut self, name: &str) -> Option<u32> {
        if let Some(&id) = self.ids.get(name) {
            return Some(id);
        }
        let entry = SubjectEntry {
            name: name.into(),
            count: 0,
            first: 0,
            last: 0,
        };
        let id = match self.free.pop() {
            Some(id) => {
                self.entries[id as usize] = Some(entry);
                id
            }
            None => {
                if self.entries.len() as u64 >= SUBJECT_IDS_MAX as u64 {
                    return None;
                }
                self.entries.push(Some(entry));
                (self.entries.len() - 1) as u32
            }
        };
        self.ids.insert(name.into(), id);
        Some(id)
    }

    pub fn get(&self, id: u32) -> Option<&SubjectEntry> {
        self.entries.get(id as usize).and_then(Option::as_ref)
    }

    pub fn get_mut(&mut self, id: u32) -> Option<&mut SubjectEntry> {
        self.entries.get_mut(id as usize).and_then(Option::as_mut)
    }

    pub fn name(&self, id: u32) -> Option<&str> {
        self.get(id).map(|e| &*e.name)
    }

    /// Records one more stored message `seq` on `id` (appends: `seq` is the
    /// newest).
    pub fn add(&mut self, id: u32, seq: u64) {
        if let Some(e) = self.get_mut(id) {
            if e.count == 0 {
                e.first = seq;
            }
            e.count += 1;
            e.last = seq;
        }
    }

    /// Frees the id of a subject with no stored messages.
    pub fn release(&mut self, id: u32) {
        if let Some(e) = self.entries.get_mut(id as usize).and_then(Option::take) {
            debug_assert_eq!(e.count, 0, "released a subject with stored messages");
            self.ids.remove(&e.name);
            self.free.push(id);
            self.epoch += 1;
        }
    }

    pub fn clear(&mut self) {
        self.ids.clear();
        self.entries.clear();
        self.free.clear();
        self.epoch += 1;
    }

    /// Subjects with stored messages.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Size of the id space (for per-id vectors).
    pub fn id_bound(&self) -> usize {
        self.entries.len()
    }

    pub fn iter(&self) -> impl Iterator<Item = (u32, &SubjectEntry)> {
        self.entries
            .iter()
            .enumerate()
            .filter_map(|(id, e)| e.as_ref().map(|e| (id as u32, e)))
    }

    pub fn epoch(&self) -> u64 {
        self.epoch
    }
}

/// Whether `filter` has only literal patterns (no `*` / `>` tokens), so that
/// matching subjects can be looked up by name.
pub(super) fn literal_patterns(filter: &SubjectFilter) -> Option<&[String]> {
    if filter.is_all() {
        return None;
    }
    let literal = filter
        .patterns()
        .iter()
        .all(|p| herald_core::is_literal(p.as_bytes()));
    literal.then(|| filter.patterns())
}

const UNKNOWN: u8 = 0;
const YES: u8 = 1;
const NO: u8 = 2;

/// Which subject ids match one filter, filled in lazily. Valid while the
/// subject table's epoch is unchanged.
#[derive(Debug, Default)]
pub(super) struct MatchCache {
    filter: SubjectFilter,
    epoch: u64,
    results: Vec<u8>,
}

impl MatchCache {
    /// Prepares the cache for `filter` (keeps earlier results if the filter
    /// and the table's id assignment are unchanged).
    pub fn prepare(&mut self, filter: &SubjectFilter, subjects: &Subjects) {
        if self.filter != *filter || self.epoch != subjects.epoch() {
            self.filter = filter.clone();
            self.epoch = subjects.epoch();
            self.results.clear();
        }
    }

    /// Whether subject `id` (a live id) matches the prepared filter.
    pub fn matches(&mut self, subjects: &Subjects, id: u32) -> bool {
        if self.filter.is_all() {
            return true;
        }
        let i = id as usize;
        if i >= self.results.len() {
            self.results.resize(subjects.id_bound().max(i + 1), UNKNOWN);
        }
        match self.results[i] {
            YES => true,
            NO => false,
            _ => {
                let yes = subjects.name(id).is_some_and(|n| self.filter.matches(n));
                self.results[i] = if yes { YES } else { NO };
                yes
            }
        }
    }
}
