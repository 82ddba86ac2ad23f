//! Helpers shared by the storage tests: a file store that owns its
//! temporary directory (optionally reopening itself after every change),
//! and comparison of everything a store exposes.

use std::path::{Path, PathBuf};

use herald_storage::*;
use tempfile::TempDir;

/// A [`FileStore`] in its own temporary directory. With `reopen_each_change`
/// every mutating call is followed by `write_out`, drop and
/// `FileStore::open` on the same directory.
pub struct TestFileStore {
    pub dir: TempDir,
    pub store: Option<FileStore>,
    pub config: StoreConfig,
    pub reopen_each_change: bool,
    pub reopens: u64,
    /// Removals counted by the stores closed so far (each open counts anew).
    removals_before: u64,
}

impl TestFileStore {
    pub fn new(config: StoreConfig) -> TestFileStore {
        let dir = tempfile::tempdir().expect("temp dir");
        let (store, rec) = FileStore::open(dir.path(), config.clone()).expect("open new store");
        assert_eq!(rec.msgs, 0);
        TestFileStore {
            dir,
            store: Some(store),
            config,
            reopen_each_change: false,
            reopens: 0,
            removals_before: 0,
        }
    }

    pub fn reopening(config: StoreConfig) -> TestFileStore {
        TestFileStore {
            reopen_each_change: true,
            ..TestFileStore::new(config)
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn inner(&mut self) -> &mut FileStore {
        self.store.as_mut().expect("store is open")
    }

    /// Writes out, drops and reopens the store; returns the recovery report.
    pub fn reopen(&mut self) -> Recovery {
        let mut store = self.store.take().expect("store is open");
        self.removals_before += store.removals();
        store.write_out().expect("write out");
        drop(store);
        let (store, rec) = FileStore::open(self.dir.path(), self.config.clone()).expect("reopen");
        assert_eq!(rec.truncated_bytes, 0, "clean reopen truncated: {rec:?}");
        assert_eq!(rec.dropped_records, 0, "clean reopen dropped records: {rec:?}");
        self.store = Some(store);
        self.reopens += 1;
        rec
    }

    fn after_change(&mut self) {
        if self.reopen_each_change {
            self.reopen();
        }
    }
}

impl Store for TestFileStore {
    fn append(
        &mut self,
        subject: &str,
        headers: &[u8],
        payload: &[u8],
        time_ns: i64,
    ) -> Result<Appended, StoreError> {
        let r = self.inner().append(subject, headers, payload, time_ns);
        self.after_change();
        r
    }
    fn append_batch(&mut self, batch: &[BatchMessage<'_>], time_ns: i64) -> Result<Appended, StoreError> {
        let appended = self.inner().append_batch(batch, time_ns);
        self.after_change();
        appended
    }

    fn write_out(&mut self) -> Result<(), StoreError> {
        self.inner().write_out()
    }
    fn sync(&mut self) -> Result<(), StoreError> {
        self.inner().sync()
    }
    fn get(&mut self, seq: u64) -> Result<Option<StoredMessage>, StoreError> {
        self.inner().get(seq)
    }
    fn next_matching(
        &mut self,
        from_seq: u64,
        filter: &SubjectFilter,
    ) -> Result<Option<StoredMessage>, StoreError> {
        self.inner().next_matching(from_seq, filter)
    }
    fn last_matching(&mut self, filter: &SubjectFilter) -> Result<Option<StoredMessage>, StoreError> {
        self.inner().last_matching(filter)
    }
    fn last_seq_of_subject(&self, subject: &str) -> Option<u64> {
        self.store.as_ref().expect("open").last_seq_of_subject(subject)
    }
    fn seq_at_time(&mut self, time_ns: i64) -> Result<u64, StoreError> {
        self.inner().seq_at_time(time_ns)
    }
    fn scan_headers(
        &mut self,
        from_seq: u64,
        visit: &mut dyn FnMut(u64, i64, &[u8]),
    ) -> Result<(), StoreError> {
        self.inner().scan_headers(from_seq, visit)
    }

    fn count_matching(&self, from_seq: u64, filter: &SubjectFilter) -> u64 {
        self.store
            .as_ref()
            .expect("open")
            .count_matching(from_seq, filter)
    }
    fn count_matching_range(&mut self, from_seq: u64, to_seq: u64, filter: &SubjectFilter) -> u64 {
        self.inner().count_matching_range(from_seq, to_seq, filter)
    }
    fn removals(&self) -> u64 {
        self.removals_before + self.store.as_ref().expect("open").removals()
    }
    fn subject_counts(&self, filter: &SubjectFilter) -> Vec<(String, u64)> {
        self.store.as_ref().expect("open").subject_counts(filter)
    }
    fn delete(&mut self, seq: u64) -> Result<bool, StoreError> {
        let r = self.inner().delete(seq);
        self.after_change();
        r
    }
    fn purge(&mut self, purge: &Purge) -> Result<u64, StoreError> {
        let r = self.inner().purge(purge);
        self.after_change();
        r
    }
    fn expire(&mut self, now_ns: i64) -> Result<u64, StoreError> {
        let r = self.inner().expire(now_ns);
        self.after_change();
        r
    }
    fn state(&self) -> StoreState {
        self.store.as_ref().expect("open").state()
    }
    fn set_config(&mut self, config: StoreConfig) -> Result<(), StoreError> {
        self.config = config.clone();
        let r = self.inner().set_config(config);
        self.after_change();
        r
    }
    fn config(&self) -> &StoreConfig {
        &self.config
    }
}

/// A config with small segments, so that tests cross segment boundaries.
pub fn small_segments(segment_bytes_max: u64) -> StoreConfig {
    StoreConfig {
        segment_bytes_max,
        ..StoreConfig::default()
    }
}

/// Everything observable about a store's contents: state, every message
/// from sequence 0 to `last_seq + 1`, subject counts.
#[derive(Debug, PartialEq, Eq)]
pub struct Snapshot {
    pub state: StoreState,
    pub msgs: Vec<StoredMessage>,
    pub subjects: Vec<(String, u64)>,
}

pub fn snapshot(store: &mut dyn Store) -> Snapshot {
    let state = store.state();
    let msgs = (0..=state.last_seq + 1)
        .filter_map(|seq| store.get(seq).expect("get"))
        .collect();
    Snapshot {
        state,
        msgs,
        subjects: store.subject_counts(&SubjectFilter::all()),
    }
}

/// Segment files in a store directory, sorted.
pub fn files_with_ext(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("list dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .collect();
    v.sort();
    v
}

/// Copies every file of `from` into the (existing) directory `to`.
pub fn copy_dir(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).expect("list dir") {
        let entry = entry.expect("entry");
        std::fs::copy(entry.path(), to.join(entry.file_name())).expect("copy");
    }
}
