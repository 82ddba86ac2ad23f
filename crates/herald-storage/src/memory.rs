//! The store kept in memory: stream storage `memory`, and the reference
//! implementation the file store is checked against.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use rustc_hash::FxHashMap;

use crate::error::{Limit, StoreError};
use crate::types::*;
use crate::Store;

/// Messages in a `BTreeMap` by sequence plus the sequences of each subject.
#[derive(Debug, Default)]
pub struct MemoryStore {
    config: StoreConfig,
    msgs: BTreeMap<u64, StoredMessage>,
    by_subject: FxHashMap<String, BTreeSet<u64>>,
    bytes: u64,
    last_seq: u64,
    last_time_ns: i64,
    /// Messages removed since creation ([`Store::removals`]).
    removals: u64,
}

impl MemoryStore {
    /// An empty store with these limits.
    pub fn new(config: StoreConfig) -> MemoryStore {
        MemoryStore {
            config,
            ..Default::default()
        }
    }

    fn remove(&mut self, seq: u64) -> bool {
        let Some(msg) = self.msgs.remove(&seq) else {
            return false;
        };
        self.bytes -= msg.stored_size();
        self.removals += 1;
        if let Some(seqs) = self.by_subject.get_mut(&msg.subject) {
            seqs.remove(&seq);
            if seqs.is_empty() {
                self.by_subject.remove(&msg.subject);
            }
        }
        true
    }

    fn first_seq(&self) -> u64 {
        self.msgs
            .first_key_value()
            .map_or(self.last_seq + 1, |(seq, _)| *seq)
    }

    /// Removes oldest messages until the store-wide limits hold.
    fn enforce_limits(&mut self) -> u64 {
        let mut removed = 0;
        while self
            .config
            .max_msgs
            .is_some_and(|max| self.msgs.len() as u64 > max)
            || self.config.max_bytes.is_some_and(|max| self.bytes > max)
        {
            let seq = self.first_seq();
            if !self.remove(seq) {
                break;
            }
            removed += 1;
        }
        removed
    }

    fn enforce_subject_limit(&mut self, subject: &str) -> u64 {
        let Some(max) = self.config.max_msgs_per_subject else {
            return 0;
        };
        let mut removed = 0;
        while let Some(seqs) = self.by_subject.get(subject) {
            if seqs.len() as u64 <= max {
                break;
            }
            let oldest = *seqs.first().expect("non-empty subject set");
            self.remove(oldest);
            removed += 1;
        }
        removed
    }
}

impl Store for MemoryStore {
    fn append(
        &mut self,
        subject: &str,
        headers: &[u8],
        payload: &[u8],
        time_ns: i64,
    ) -> Result<Appended, StoreError> {
        let size = stored_size(subject.len(), headers.len(), payload.len());
        if self.config.discard == Discard::New {
            if self
                .config
                .max_msgs
                .is_some_and(|max| self.msgs.len() as u64 + 1 > max)
            {
                return Err(StoreError::LimitReached(Limit::Msgs));
            }
            if self.config.max_bytes.is_some_and(|max| self.bytes + size > max) {
                return Err(StoreError::LimitReached(Limit::Bytes));
            }
            if self.config.discard_new_per_subject {
                if let Some(max) = self.config.max_msgs_per_subject {
                    let count = self.by_subject.get(subject).map_or(0, |s| s.len() as u64);
                    if count + 1 > max {
                        return Err(StoreError::LimitReached(Limit::MsgsPerSubject));
                    }
                }
            }
        }
        self.last_seq += 1;
        self.last_time_ns = time_ns;
        let seq = self.last_seq;
        let msg = StoredMessage {
            seq,
            time_ns,
            subject: subject.to_owned(),
            headers: Bytes::copy_from_slice(headers),
            payload: Bytes::copy_from_slice(payload),
        };
        self.bytes += size;
        self.by_subject
            .entry(msg.subject.clone())
            .or_default()
            .insert(seq);
        self.msgs.insert(seq, msg);
        let removed = self.enforce_subject_limit(subject) + self.enforce_limits();
        Ok(Appended { seq, removed })
    }

    fn append_batch(&mut self, batch: &[BatchMessage<'_>], time_ns: i64) -> Result<Appended, StoreError> {
        let by_subject = &self.by_subject;
        check_batch_limits(
            &self.config,
            self.msgs.len() as u64,
            self.bytes,
            batch,
            |subject| by_subject.get(subject).map_or(0, |s| s.len() as u64),
        )?;
        let mut appended = Appended {
            seq: self.last_seq,
            removed: 0,
        };
        for m in batch {
            let one = self.append(m.subject, m.headers, m.payload, time_ns)?;
            appended = Appended {
                seq: one.seq,
                removed: appended.removed + one.removed,
            };
        }
        Ok(appended)
    }

    fn write_out(&mut self) -> Result<(), StoreError> {
        Ok(())
    }

    fn sync(&mut self) -> Result<(), StoreError> {
        Ok(())
    }

    fn get(&mut self, seq: u64) -> Result<Option<StoredMessage>, StoreError> {
        Ok(self.msgs.get(&seq).cloned())
    }

    fn next_matching(
        &mut self,
        from_seq: u64,
        filter: &SubjectFilter,
    ) -> Result<Option<StoredMessage>, StoreError> {
        Ok(self
            .msgs
            .range(from_seq..)
            .map(|(_, msg)| msg)
            .find(|msg| filter.matches(&msg.subject))
            .cloned())
    }

    fn last_matching(&mut self, filter: &SubjectFilter) -> Result<Option<StoredMessage>, StoreError> {
        let last = self
            .by_subject
            .iter()
            .filter(|(subject, _)| filter.matches(subject))
            .filter_map(|(_, seqs)| seqs.last().copied())
            .max();
        Ok(last.and_then(|seq| self.msgs.get(&seq).cloned()))
    }

    fn last_seq_of_subject(&self, subject: &str) -> Option<u64> {
        self.by_subject.get(subject).and_then(|seqs| seqs.last().copied())
    }

    fn seq_at_time(&mut self, time_ns: i64) -> Result<u64, StoreError> {
        Ok(self
            .msgs
            .values()
            .find(|msg| msg.time_ns >= time_ns)
            .map_or(self.last_seq + 1, |msg| msg.seq))
    }

    fn count_matching(&self, from_seq: u64, filter: &SubjectFilter) -> u64 {
        if filter.is_all() {
            return self.msgs.range(from_seq..).count() as u64;
        }
        let literal = filter
            .patterns()
            .iter()
            .all(|p| herald_core::is_literal(p.as_bytes()));
        if literal {
            // Exact subjects: looked up, not matched against every subject.
            let mut subjects: Vec<&String> = filter.patterns().iter().collect();
            subjects.sort();
            subjects.dedup();
            return subjects
                .into_iter()
                .filter_map(|subject| self.by_subject.get(subject.as_str()))
                .map(|seqs| seqs.range(from_seq..).count() as u64)
                .sum();
        }
        self.by_subject
            .iter()
            .filter(|(subject, _)| filter.matches(subject))
            .map(|(_, seqs)| seqs.range(from_seq..).count() as u64)
            .sum()
    }

    fn count_matching_range(&mut self, from_seq: u64, to_seq: u64, filter: &SubjectFilter) -> u64 {
        if from_seq >= to_seq {
            return 0;
        }
        self.msgs
            .range(from_seq..to_seq)
            .filter(|(_, msg)| filter.matches(&msg.subject))
            .count() as u64
    }

    fn removals(&self) -> u64 {
        self.removals
    }

    fn subject_counts(&self, filter: &SubjectFilter) -> Vec<(String, u64)> {
        let mut counts: Vec<(String, u64)> = self
            .by_subject
            .iter()
            .filter(|(subject, _)| filter.matches(subject))
            .map(|(subject, seqs)| (subject.clone(), seqs.len() as u64))
            .collect();
        counts.sort();
        counts
    }

    fn delete(&mut self, seq: u64) -> Result<bool, StoreError> {
        Ok(self.remove(seq))
    }

    fn purge(&mut self, purge: &Purge) -> Result<u64, StoreError> {
        let mut matching: Vec<u64> = self
            .msgs
            .values()
            .filter(|msg| purge.filter.matches(&msg.subject))
            .map(|msg| msg.seq)
            .collect();
        if let Some(up_to) = purge.up_to_seq {
            matching.retain(|&seq| seq < up_to);
        } else if let Some(keep) = purge.keep {
            let keep = keep.min(matching.len() as u64) as usize;
            matching.truncate(matching.len() - keep);
        }
        let removed = matching.len() as u64;
        for seq in matching {
            self.remove(seq);
        }
        Ok(removed)
    }

    fn expire(&mut self, now_ns: i64) -> Result<u64, StoreError> {
        let Some(max_age) = self.config.max_age else {
            return Ok(0);
        };
        let cutoff = now_ns.saturating_sub(max_age.as_nanos().min(i64::MAX as u128) as i64);
        let old: Vec<u64> = self
            .msgs
            .values()
            .take_while(|msg| msg.time_ns <= cutoff)
            .map(|msg| msg.seq)
            .collect();
        for &seq in &old {
            self.remove(seq);
        }
        Ok(old.len() as u64)
    }

    fn state(&self) -> StoreState {
        let first_seq = self.first_seq();
        let msgs = self.msgs.len() as u64;
        StoreState {
            msgs,
            bytes: self.bytes,
            first_seq,
            first_time_ns: self.msgs.first_key_value().map_or(0, |(_, m)| m.time_ns),
            last_seq: self.last_seq,
            last_time_ns: self.last_time_ns,
            num_subjects: self.by_subject.len() as u64,
            num_deleted: if msgs == 0 {
                0
            } else {
                self.last_seq + 1 - first_seq - msgs
            },
        }
    }

    fn set_config(&mut self, config: StoreConfig) -> Result<(), StoreError> {
        self.config = config;
        let subjects: Vec<String> = self.by_subject.keys().cloned().collect();
        for subject in subjects {
            self.enforce_subject_limit(&subject);
        }
        self.enforce_limits();
        Ok(())
    }

    fn config(&self) -> &StoreConfig {
        &self.config
    }
}
