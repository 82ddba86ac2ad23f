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
    let queue =
        prop_oneof![3 => Just(None), 1 => Just(Some("q1".to_string())), 1 => Just(Some("q2".to_string()))];
    proptest::collection::vec((pattern(), queue), 0..40).prop_map(|v| {
        v.into_iter()
            .enumerate()
            .map(|(id, (pattern, queue))| Entry {
                pattern,
                queue,
                id: id as u32,
            })
            .collect()
    })
}

/// What the naive matcher says: plain ids, and members per queue group.
fn reference(live: &[Entry], subject: &str) -> (Vec<u32>, BTreeMap<String, Vec<u32>>) {
    let mut plain = Vec::new();
    let mut queues: BTreeMap<String, Vec<u32>> = BTreeMap::new();
    for e in live
        .iter()
        .filter(|e| subject_matches(e.pattern.as_bytes(), subject.as_bytes()))
    {
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
    assert!(
        cache.get(b"a.b", index.generation()).is_none(),
        "stale after a change"
    );
}

/// Arbitrary bytes from a small alphabet that exercises every rule.
fn raw_subject() -> impl Strategy<Value = Vec<u8>> {
    let byte = prop_oneof![6 => Just(b'a'), 2 => Just(b'b'), 4 => Just(b'.'), 1 => Just(b'*'), 1 => Just(b'>'), 1 => Just(b' ')];
    proptest::collection::vec(byte, 0..10)
}

/// Independent formulation of the subscription subject rules.
fn valid_by_spec(s: &[u8], wildcards: bool) -> bool {
    let text = String::from_utf8(s.to_vec()).unwrap();
    let tokens: Vec<&str> = text.split('.').collect();
    !text.is_empty()
        && !text.contains(' ')
        && tokens.iter().all(|t| !t.is_empty())
        && tokens.iter().enumerate().all(|(i, t)| match *t {
            "*" => wildcards,
            ">" => wildcards && i + 1 == tokens.len(),
            _ => true,
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn validation_agrees_with_spec(s in raw_subject()) {
        prop_assert_eq!(herald_core::validate_subject(&s).is_ok(), valid_by_spec(&s, true));
        prop_assert_eq!(herald_core::validate_literal_subject(&s).is_ok(), valid_by_spec(&s, false));
        if herald_core::validate_subject(&s).is_ok() {
            let wildcard_free = s.split(|&b| b == b'.').all(|t| t != b"*" && t != b">");
            prop_assert_eq!(herald_core::is_literal(&s), wildcard_free);
        }
    }

    /// Unvalidated publish subjects (empty tokens, wildcard tokens, spaces)
    /// never panic and still agree with the reference matcher.
    #[test]
    fn raw_subjects_match_like_the_reference(
        patterns in proptest::collection::vec(raw_subject(), 0..30),
        subjects in proptest::collection::vec(raw_subject(), 1..20),
    ) {
        let mut index = Sublist::new();
        let mut live = Vec::new();
        for (id, p) in patterns.iter().enumerate() {
            let pattern = String::from_utf8(p.clone()).unwrap();
            if index.insert(p, None, id as u32).is_ok() {
                live.push(Entry { pattern, queue: None, id: id as u32 });
            } else {
                prop_assert!(herald_core::validate_subject(p).is_err());
            }
        }
        for s in &subjects {
            let subject = String::from_utf8(s.clone()).unwrap();
            prop_assert_eq!(actual(&index, &subject), reference(&live, &subject), "subject {:?}", subject);
        }
    }
}

#[derive(Debug, Clone)]
enum Op {
    Insert(String, Option<String>),
    /// Removes the live entry at this index, if any.
    Remove(prop::sample::Index),
    /// Removes something that was never inserted.
    RemoveMissing(String, Option<String>),
    Match(String),
}

fn ops() -> impl Strategy<Value = Vec<Op>> {
    let queue =
        || prop_oneof![2 => Just(None), 1 => Just(Some("q1".to_string())), 1 => Just(Some("q2".to_string()))];
    let op = prop_oneof![
        4 => (pattern(), queue()).prop_map(|(p, q)| Op::Insert(p, q)),
        3 => any::<prop::sample::Index>().prop_map(Op::Remove),
        1 => (pattern(), queue()).prop_map(|(p, q)| Op::RemoveMissing(p, q)),
        3 => subject().prop_map(Op::Match),
    ];
    proptest::collection::vec(op, 0..80)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    /// Interleaved inserts, removals and matches; after every step the
    /// index agrees with the reference, counts add up, and the generation
    /// moved exactly when the index changed.
    #[test]
    fn interleaved_operations_match_the_reference(ops in ops()) {
        let mut index = Sublist::new();
        let mut live: Vec<Entry> = Vec::new();
        let mut next_id = 0u32;
        for op in ops {
            let generation = index.generation();
            match op {
                Op::Insert(pattern, queue) => {
                    index.insert(pattern.as_bytes(), queue.as_deref().map(str::as_bytes), next_id).unwrap();
                    live.push(Entry { pattern, queue, id: next_id });
                    next_id += 1;
                    prop_assert_eq!(index.generation(), generation + 1);
                }
                Op::Remove(i) => {
                    if live.is_empty() {
                        continue;
                    }
                    let e = live.swap_remove(i.index(live.len()));
                    prop_assert!(index.remove(e.pattern.as_bytes(), e.queue.as_deref().map(str::as_bytes), &e.id));
                    prop_assert!(!index.remove(e.pattern.as_bytes(), e.queue.as_deref().map(str::as_bytes), &e.id));
                    prop_assert_eq!(index.generation(), generation + 1);
                }
                Op::RemoveMissing(pattern, queue) => {
                    prop_assert!(!index.remove(pattern.as_bytes(), queue.as_deref().map(str::as_bytes), &u32::MAX));
                    prop_assert_eq!(index.generation(), generation);
                }
                Op::Match(subject) => {
                    prop_assert_eq!(actual(&index, &subject), reference(&live, &subject), "subject {}", subject);
                }
            }
            prop_assert_eq!(index.len(), live.len());
            // In debug builds this also asserts that no empty node survives.
            let nodes = index.node_count();
            prop_assert_eq!(nodes == 0, live.is_empty());
        }
    }
}

#[path = "core/consumer.rs"]
mod consumer;

mod validation {
    use herald_core::{
        is_literal, validate_literal_subject, validate_queue_name, validate_subject, SubjectError,
        SUBJECT_LEN_MAX,
    };

    #[test]
    fn subscription_subjects() {
        let cases: &[(&str, Result<(), SubjectError>)] = &[
            ("", Err(SubjectError::Empty)),
            (".", Err(SubjectError::EmptyToken)),
            (".a", Err(SubjectError::EmptyToken)),
            ("a.", Err(SubjectError::EmptyToken)),
            ("a..b", Err(SubjectError::EmptyToken)),
            ("a.>.b", Err(SubjectError::WildcardNotLast)),
            (">.a", Err(SubjectError::WildcardNotLast)),
            ("a b", Err(SubjectError::InvalidCharacter)),
            ("a\tb", Err(SubjectError::InvalidCharacter)),
            ("a\r\n", Err(SubjectError::InvalidCharacter)),
            ("a\0", Err(SubjectError::InvalidCharacter)),
            (">", Ok(())),
            ("*", Ok(())),
            ("*.*", Ok(())),
            ("a.*.>", Ok(())),
            ("a.*.b", Ok(())),
            ("a*", Ok(())),
            ("foo>.b", Ok(())),
            ("a.*b.>c", Ok(())),
            ("orders.eu-west.created_at", Ok(())),
        ];
        for (subject, expected) in cases {
            assert_eq!(validate_subject(subject.as_bytes()), *expected, "{subject:?}");
        }
    }

    #[test]
    fn publish_subjects() {
        assert_eq!(
            validate_literal_subject(b"a.*"),
            Err(SubjectError::WildcardInLiteral)
        );
        assert_eq!(
            validate_literal_subject(b">"),
            Err(SubjectError::WildcardInLiteral)
        );
        assert_eq!(
            validate_literal_subject(b"a.>"),
            Err(SubjectError::WildcardInLiteral)
        );
        assert_eq!(validate_literal_subject(b"a..b"), Err(SubjectError::EmptyToken));
        assert_eq!(validate_literal_subject(b""), Err(SubjectError::Empty));
        assert!(validate_literal_subject(b"a*.b>.c").is_ok());
        assert!(is_literal(b"a*.b>.c"));
        assert!(!is_literal(b"a.*"));
        assert!(!is_literal(b">"));
    }

    #[test]
    fn length_limit() {
        let longest = vec![b'a'; SUBJECT_LEN_MAX];
        assert!(validate_subject(&longest).is_ok());
        assert!(validate_literal_subject(&longest).is_ok());
        let too_long = vec![b'a'; SUBJECT_LEN_MAX + 1];
        assert_eq!(validate_subject(&too_long), Err(SubjectError::TooLong));
        assert_eq!(validate_literal_subject(&too_long), Err(SubjectError::TooLong));
    }

    #[test]
    fn queue_names() {
        assert!(validate_queue_name(b"workers").is_ok());
        assert!(validate_queue_name(b"workers.eu*>").is_ok());
        assert_eq!(validate_queue_name(b""), Err(SubjectError::Empty));
        assert_eq!(validate_queue_name(b"a b"), Err(SubjectError::InvalidCharacter));
        assert_eq!(validate_queue_name(b"a\0"), Err(SubjectError::InvalidCharacter));
    }
}

mod index {
    use herald_core::{subject_matches, QueueGroup, SubjectError, Sublist, SUBJECT_LEN_MAX};

    fn sorted(mut v: Vec<u32>) -> Vec<u32> {
        v.sort_unstable();
        v
    }

    fn group<'a>(groups: &'a [QueueGroup<u32>], name: &[u8]) -> &'a QueueGroup<u32> {
        groups.iter().find(|g| &*g.name == name).expect("group present")
    }

    #[test]
    fn queue_groups_merge_across_patterns() {
        let mut s = Sublist::new();
        s.insert(b"a.*", Some(b"q"), 1).unwrap();
        s.insert(b"a.b", Some(b"q"), 2).unwrap();
        s.insert(b">", Some(b"q"), 3).unwrap();
        s.insert(b"a.>", Some(b"other"), 4).unwrap();
        s.insert(b"a.b", None, 5).unwrap();
        s.insert(b"a.c", Some(b"q"), 6).unwrap();
        let r = s.matches(b"a.b");
        assert_eq!(r.plain, vec![5]);
        assert_eq!(r.queues.len(), 2);
        assert_eq!(sorted(group(&r.queues, b"q").members.clone()), vec![1, 2, 3]);
        assert_eq!(group(&r.queues, b"other").members, vec![4]);
        assert!(!r.is_empty());
        assert!(s.matches(b"x.y.z").queues.iter().all(|g| &*g.name == b"q"));
    }

    #[test]
    fn queue_and_plain_entries_are_separate() {
        let mut s = Sublist::new();
        s.insert(b"a", None, 1).unwrap();
        s.insert(b"a", Some(b"q"), 1).unwrap();
        assert!(!s.remove(b"a", Some(b"p"), &1), "wrong group");
        assert!(!s.remove(b"b", None, &1), "wrong subject");
        assert!(!s.remove(b"*", None, &1), "removal does not match wildcards");
        assert!(s.remove(b"a", Some(b"q"), &1));
        assert_eq!(s.matches(b"a").plain, vec![1]);
        assert!(s.matches(b"a").queues.is_empty(), "emptied groups disappear");
    }

    #[test]
    fn duplicates_are_separate_entries() {
        let mut s = Sublist::new();
        s.insert(b"a", None, 7).unwrap();
        s.insert(b"a", None, 7).unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s.matches(b"a").plain, vec![7, 7]);
        assert!(s.remove(b"a", None, &7));
        assert_eq!(s.matches(b"a").plain, vec![7]);
    }

    #[test]
    fn literal_tokens_containing_wildcard_characters() {
        let mut s = Sublist::new();
        s.insert(b"a*", None, 1).unwrap();
        s.insert(b"b.c>", None, 2).unwrap();
        assert_eq!(s.matches(b"a*").plain, vec![1]);
        assert!(s.matches(b"ab").is_empty());
        assert_eq!(s.matches(b"b.c>").plain, vec![2]);
        assert!(s.matches(b"b.c.d").is_empty());
        assert!(!subject_matches(b"b.c>", b"b.c.d"));
    }

    #[test]
    fn wildcard_semantics() {
        let mut s = Sublist::new();
        s.insert(b"a.*", None, 1).unwrap();
        s.insert(b"a.>", None, 2).unwrap();
        s.insert(b">", None, 3).unwrap();
        s.insert(b"*", None, 4).unwrap();
        s.insert(b"*.*.c", None, 5).unwrap();
        assert_eq!(sorted(s.matches(b"a").plain), vec![3, 4]);
        assert_eq!(sorted(s.matches(b"a.b").plain), vec![1, 2, 3]);
        assert_eq!(sorted(s.matches(b"a.b.c").plain), vec![2, 3, 5]);
        assert_eq!(sorted(s.matches(b"x.b.c").plain), vec![3, 5]);
    }

    #[test]
    fn malformed_publish_subjects_match_nothing() {
        let mut s = Sublist::new();
        s.insert(b">", None, 1).unwrap();
        s.insert(b"a.>", None, 2).unwrap();
        for subject in [&b""[..], b".", b"a.", b".a", b"a..b"] {
            assert!(s.matches(subject).is_empty(), "{subject:?}");
        }
        // A wildcard token in a publish subject is compared literally.
        s.insert(b"a.b", None, 3).unwrap();
        assert_eq!(sorted(s.matches(b"a.*").plain), vec![1, 2]);
    }

    #[test]
    fn invalid_inserts_change_nothing() {
        let mut s = Sublist::new();
        assert_eq!(s.insert(b"a.>.b", None, 1), Err(SubjectError::WildcardNotLast));
        assert_eq!(
            s.insert(b"a", Some(b"q q"), 1),
            Err(SubjectError::InvalidCharacter)
        );
        assert_eq!(s.insert(b"a", Some(b""), 1), Err(SubjectError::Empty));
        assert_eq!((s.len(), s.generation(), s.node_count()), (0, 0, 0));
    }

    #[test]
    fn churn_prunes_back_to_nothing() {
        let mut s = Sublist::default();
        let patterns: Vec<String> = (0..500)
            .map(|i| match i % 4 {
                0 => format!("svc.{i}.req"),
                1 => format!("svc.*.ev{}", i % 7),
                2 => format!("svc.{}.>", i % 13),
                _ => format!("inbox.{i}"),
            })
            .collect();
        for round in 0..3u32 {
            for (i, p) in patterns.iter().enumerate() {
                let queue = (i % 3 == 0).then_some(&b"workers"[..]);
                s.insert(p.as_bytes(), queue, i as u32 + round).unwrap();
            }
            assert_eq!(s.len(), patterns.len());
            assert!(s.node_count() > 0);
            for (i, p) in patterns.iter().enumerate().rev() {
                let queue = (i % 3 == 0).then_some(&b"workers"[..]);
                assert!(s.remove(p.as_bytes(), queue, &(i as u32 + round)));
            }
            assert!(s.is_empty());
            assert_eq!(s.node_count(), 0);
        }
        assert_eq!(s.generation(), 3 * 2 * patterns.len() as u64);
    }

    #[test]
    fn deep_subjects_match() {
        let mut s = Sublist::new();
        for depth in [31, 32, 33, 40] {
            let deep = vec!["t"; depth].join(".");
            s.insert(deep.as_bytes(), None, depth as u32).unwrap();
        }
        s.insert(b"t.>", None, 1).unwrap();
        let subject = vec!["t"; 33].join(".");
        assert_eq!(sorted(s.matches(subject.as_bytes()).plain), vec![1, 33]);
        let subject = vec!["t"; 40].join(".");
        assert_eq!(sorted(s.matches(subject.as_bytes()).plain), vec![1, 40]);
    }

    /// The deepest possible subject (2,048 one-byte tokens) must not blow a
    /// thread's stack in insert, match, remove or drop.
    #[test]
    fn deepest_subject_is_stack_safe() {
        std::thread::Builder::new()
            .stack_size(64 * 1024)
            .spawn(|| {
                let deepest = vec!["t"; SUBJECT_LEN_MAX.div_ceil(2)].join(".");
                assert_eq!(deepest.len(), SUBJECT_LEN_MAX - 1);
                let wild = format!("{}.>", vec!["*"; SUBJECT_LEN_MAX / 2 - 2].join("."));
                let mut s = Sublist::new();
                s.insert(deepest.as_bytes(), None, 1u32).unwrap();
                s.insert(wild.as_bytes(), Some(b"q"), 2).unwrap();
                let r = s.matches(deepest.as_bytes());
                assert_eq!(r.plain, vec![1]);
                assert_eq!(r.queues[0].members, vec![2]);
                assert!(s.remove(deepest.as_bytes(), None, &1));
                assert_eq!(s.node_count(), SUBJECT_LEN_MAX / 2 - 1);
                drop(s);

                // A `*` beside every literal on the path: the most branches
                // a match can have pending at once.
                let mut s = Sublist::new();
                let depth = SUBJECT_LEN_MAX / 4;
                for k in 1..depth {
                    let pattern = format!("{}.t", vec!["*"; k].join("."));
                    s.insert(pattern.as_bytes(), None, k as u32).unwrap();
                    s.insert(vec!["t"; k + 1].join(".").as_bytes(), None, 0).unwrap();
                }
                let subject = vec!["t"; depth].join(".");
                let mut plain = s.matches(subject.as_bytes()).plain;
                plain.sort_unstable();
                assert_eq!(plain, vec![0, depth as u32 - 1]);
                drop(s);
            })
            .unwrap()
            .join()
            .unwrap();
    }
}

mod cache {
    use std::sync::Arc;

    use herald_core::{MatchCache, MatchResult};

    fn result(id: u32) -> Arc<MatchResult<u32>> {
        Arc::new(MatchResult {
            plain: vec![id],
            queues: Vec::new(),
        })
    }

    #[test]
    fn stays_bounded_under_many_subjects() {
        let mut cache = MatchCache::new(8);
        for i in 0..1000u32 {
            let subject = format!("s.{i}");
            cache.insert(subject.as_bytes(), 0, result(i));
            assert!(cache.len() <= 8);
            assert_eq!(
                cache.get(subject.as_bytes(), 0).unwrap().plain,
                vec![i],
                "just inserted"
            );
        }
    }

    #[test]
    fn generation_change_clears_on_next_insert() {
        let mut cache = MatchCache::new(8);
        cache.insert(b"a", 3, result(1));
        cache.insert(b"b", 3, result(2));
        assert_eq!(cache.len(), 2);
        assert!(cache.get(b"a", 4).is_none(), "newer generation misses");
        assert!(cache.get(b"a", 2).is_none(), "older generation misses");
        assert_eq!(cache.len(), 2, "get does not scan or clear");
        cache.insert(b"c", 4, result(3));
        assert_eq!(cache.len(), 1);
        assert!(cache.get(b"a", 4).is_none());
        assert_eq!(cache.get(b"c", 4).unwrap().plain, vec![3]);
        cache.insert(b"late", 3, result(4));
        assert!(
            cache.get(b"late", 3).is_none() && cache.get(b"late", 4).is_none(),
            "stale result ignored"
        );
        assert!(!cache.is_empty());
    }

    #[test]
    fn zero_capacity_still_holds_one() {
        let mut cache = MatchCache::new(0);
        cache.insert(b"a", 0, result(1));
        cache.insert(b"b", 0, result(2));
        assert_eq!(cache.len(), 1);
        assert!(cache.get(b"b", 0).is_some());
    }
}
