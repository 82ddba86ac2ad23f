//! Property tests: the subscription index agrees with a naive reference
//! matcher over random patterns, subjects, queue groups and removals.

use std::collections::BTreeMap;

use herald_core::{subject_matches, MatchCache, Sublist};
use proptest::prelude::*;

fn literal_token() -> impl Strategy<Value = String> {
    prop_oneof![Just("a"), Just("b"), Just("c")].prop_map(str::to_string)
}

fn pattern() -> impl Strategy<Value = String> {
    let token = prop_oneof![4 => literal_token(), 1 => Just("*".to_string())];
    (proptest::collection::vec(token, 1..5), any::<bool>()).prop_map(|(mut tokens, tail)| {
        if tail {
            tokens.push(">".to_string());
        }
        tokens.join(".")
    })
}

fn subject() -> impl Strategy<Value = String> {
    proptest::collection::vec(literal_token(), 1..6).prop_map(|t| t.join("."))
}

#[derive(Debug, Clone)]
struct Entry {
    pattern: String,
    queue: Option<String>,
    id: u32,
}

fn entries() -> impl Strategy<Value = Vec<Entry>> {
    let queue = prop_oneof![3 => Just(None), 1 => Just(Some("q1".to_string())), 1 => Just(Some("q2".to_string()))];
    proptest::collection::vec((pattern(), queue), 0..40).prop_map(|v| {
        v.into_iter()
            .enumerate()
            .map(|(id, (pattern, queue))| Entry { pattern, queue, id: id as u32 })
            .collect()
    })
}

/// What the naive matcher says: plain ids, and members per queue group.
fn reference(live: &[Entry], subject: &str) -> (Vec<u32>, BTreeMap<String, Vec<u32>>) {
    let mut plain = Vec::new();
    let mut queues: BTreeMap<String, Vec<u32>> = BTreeMap::new();
    for e in live.iter().filter(|e| subject_matches(e.pattern.as_bytes(), subject.as_bytes())) {
        match &e.queue {
            None => plain.push(e.id),
            Some(q) => queues.entry(q.clone()).or_default().push(e.id),
        }
    }
    plain.sort_unstable();
    queues.values_mut().for_each(|m| m.sort_unstable());
    (plain, queues)
}

fn actual(index: &Sublist<u32>, subject: &str) -> (Vec<u32>, BTreeMap<String, Vec<u32>>) {
    let result = index.matches(subject.as_bytes());
    let mut plain = result.plain.clone();
    plain.sort_unstable();
    let mut queues = BTreeMap::new();
    for group in &result.queues {
        let name = String::from_utf8(group.name.to_vec()).unwrap();
        let mut members = group.members.clone();
        members.sort_unstable();
        assert!(queues.insert(name, members).is_none(), "each group appears once");
    }
    (plain, queues)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    #[test]
    fn sublist_matches_like_the_reference(
        entries in entries(),
        removals in proptest::collection::vec(any::<prop::sample::Index>(), 0..20),
        subjects in proptest::collection::vec(subject(), 1..20),
    ) {
        let mut index = Sublist::new();
        for e in &entries {
            index.insert(e.pattern.as_bytes(), e.queue.as_deref().map(str::as_bytes), e.id).unwrap();
        }
        let mut live = entries.clone();
        for r in removals {
            if live.is_empty() {
                break;
            }
            let e = live.remove(r.index(live.len()));
            prop_assert!(index.remove(e.pattern.as_bytes(), e.queue.as_deref().map(str::as_bytes), &e.id));
        }
        prop_assert_eq!(index.len(), live.len());
        for subject in &subjects {
            prop_assert_eq!(actual(&index, subject), reference(&live, subject), "subject {}", subject);
        }
        // Removing everything leaves no nodes behind.
        for e in &live {
            prop_assert!(index.remove(e.pattern.as_bytes(), e.queue.as_deref().map(str::as_bytes), &e.id));
        }
        prop_assert!(index.is_empty());
        prop_assert_eq!(index.node_count(), 0);
    }

    #[test]
    fn reference_matcher_agrees_with_token_semantics(p in pattern(), s in subject()) {
        // Independent formulation: '>' consumes the remaining (at least one)
        // tokens, '*' exactly one, literals must be equal.
        let pt: Vec<&str> = p.split('.').collect();
        let st: Vec<&str> = s.split('.').collect();
        let expected = match pt.iter().position(|t| *t == ">") {
            Some(i) => st.len() > i && pt[..i].iter().zip(&st).all(|(a, b)| *a == "*" || a == b),
            None => pt.len() == st.len() && pt.iter().zip(&st).all(|(a, b)| *a == "*" || a == b),
        };
        prop_assert_eq!(subject_matches(p.as_bytes(), s.as_bytes()), expected);
    }
}

#[test]
fn match_cache_serves_only_current_generation() {
    let mut index = Sublist::new();
    let mut cache = MatchCache::new(16);
    index.insert(b"a.*", None, 1u32).unwrap();
    let generation = index.generation();
    cache.insert(b"a.b", generation, std::sync::Arc::new(index.matches(b"a.b")));
    assert_eq!(cache.get(b"a.b", index.generation()).unwrap().plain, vec![1]);
    index.insert(b"a.b", None, 2).unwrap();
    assert!(cache.get(b"a.b", index.generation()).is_none(), "stale after a change");
}
