//! The `Store` contract, checked with the same scenarios against
//! `MemoryStore`, `FileStore`, and a `FileStore` reopened from disk after
//! every change. Segments are small so that the file store crosses segment
//! boundaries, removes segment files and compacts.

use std::time::Duration;

use bytes::Bytes;
use herald_storage::*;

use super::common::TestFileStore;

type Mk = dyn Fn(StoreConfig) -> Box<dyn Store>;

fn memory(c: StoreConfig) -> Box<dyn Store> {
    Box::new(MemoryStore::new(c))
}

fn file(c: StoreConfig) -> Box<dyn Store> {
    Box::new(TestFileStore::new(c))
}

fn file_reopening(c: StoreConfig) -> Box<dyn Store> {
    Box::new(TestFileStore::reopening(c))
}

macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod memory_store {
            $(#[test] fn $name() { super::$name(&super::memory) })*
        }
        mod file_store {
            $(#[test] fn $name() { super::$name(&super::file) })*
        }
        mod file_store_reopening {
            $(#[test] fn $name() { super::$name(&super::file_reopening) })*
        }
    };
}

conformance!(
    append_and_get,
    gaps_and_delete,
    max_msgs_discard_old,
    max_bytes_discard_old,
    discard_new_refuses,
    per_subject_limits,
    purge_variants,
    expire_by_age,
    seq_at_time,
    next_matching_filters,
    count_matching,
    last_matching_and_last_seq_of_subject,
    subject_counts,
    set_config_enforces_limits,
    state_counters,
    many_messages_across_segments,
    scan_headers_visits_live_messages_with_headers,
    batch_append_is_all_or_nothing,
);

fn base() -> StoreConfig {
    StoreConfig {
        segment_bytes_max: 256,
        ..StoreConfig::default()
    }
}

fn put(s: &mut dyn Store, subject: &str, payload: &[u8], t: i64) -> u64 {
    s.append(subject, b"", payload, t).expect("append").seq
}

fn seqs(s: &mut dyn Store) -> Vec<u64> {
    let last = s.state().last_seq;
    (0..=last + 1).filter(|&q| s.get(q).unwrap().is_some()).collect()
}

fn next_seq(s: &mut dyn Store, from: u64, filter: &SubjectFilter) -> Option<u64> {
    s.next_matching(from, filter).unwrap().map(|m| m.seq)
}

fn append_and_get(mk: &Mk) {
    let mut s = mk(base());
    assert_eq!(
        s.state(),
        StoreState {
            first_seq: 1,
            ..StoreState::default()
        }
    );
    let hdr = b"NATS/1.0\r\nA: 1\r\n\r\n";
    assert_eq!(
        s.append("orders.new", hdr, b"one", 10).unwrap(),
        Appended { seq: 1, removed: 0 }
    );
    assert_eq!(put(&mut *s, "orders.old", b"two", 20), 2);
    assert_eq!(put(&mut *s, "x", b"", 30), 3);
    assert_eq!(
        s.get(1).unwrap().unwrap(),
        StoredMessage {
            seq: 1,
            time_ns: 10,
            subject: "orders.new".into(),
            headers: Bytes::from_static(hdr),
            payload: Bytes::from_static(b"one"),
        }
    );
    assert_eq!(s.get(3).unwrap().unwrap().payload.len(), 0);
    assert_eq!(s.get(0).unwrap(), None);
    assert_eq!(s.get(4).unwrap(), None);
    let bytes = stored_size(10, hdr.len(), 3) + stored_size(10, 0, 3) + stored_size(1, 0, 0);
    assert_eq!(
        s.state(),
        StoreState {
            msgs: 3,
            bytes,
            first_seq: 1,
            first_time_ns: 10,
            last_seq: 3,
            last_time_ns: 30,
            num_subjects: 3,
            num_deleted: 0,
        }
    );
}

fn gaps_and_delete(mk: &Mk) {
    let mut s = mk(base());
    for (i, subject) in ["a", "b", "a", "b", "a"].iter().enumerate() {
        put(&mut *s, subject, b"payload", i as i64 + 1);
    }
    assert!(s.delete(3).unwrap());
    assert!(!s.delete(3).unwrap());
    assert!(!s.delete(99).unwrap());
    assert!(!s.delete(0).unwrap());
    assert_eq!(s.get(3).unwrap(), None);
    let st = s.state();
    assert_eq!((st.msgs, st.first_seq, st.num_deleted), (4, 1, 1));
    assert!(s.delete(1).unwrap());
    let st = s.state();
    assert_eq!(
        (st.msgs, st.first_seq, st.first_time_ns, st.num_deleted),
        (3, 2, 2, 1)
    );
    assert!(s.delete(5).unwrap());
    let st = s.state();
    assert_eq!(
        (st.msgs, st.last_seq, st.last_time_ns, st.num_deleted),
        (2, 5, 5, 2)
    );
    assert_eq!(put(&mut *s, "a", b"again", 6), 6);
    assert_eq!(seqs(&mut *s), vec![2, 4, 6]);
    assert_eq!(s.last_seq_of_subject("a"), Some(6));
    assert_eq!(s.last_seq_of_subject("b"), Some(4));
    assert!(s.delete(4).unwrap());
    assert_eq!(s.last_seq_of_subject("b"), Some(2));
    assert!(s.delete(2).unwrap());
    assert_eq!(s.last_seq_of_subject("b"), None);
    assert_eq!(s.state().num_subjects, 1);
    assert!(s.delete(6).unwrap());
    let st = s.state();
    assert_eq!(
        (st.msgs, st.first_seq, st.last_seq, st.num_deleted, st.bytes),
        (0, 7, 6, 0, 0)
    );
}

fn max_msgs_discard_old(mk: &Mk) {
    let mut s = mk(StoreConfig {
        max_msgs: Some(3),
        ..base()
    });
    let removed: Vec<u64> = (0..6)
        .map(|i| s.append("s", b"", b"0123456789", i).unwrap().removed)
        .collect();
    assert_eq!(removed, vec![0, 0, 0, 1, 1, 1]);
    assert_eq!(seqs(&mut *s), vec![4, 5, 6]);
    let st = s.state();
    assert_eq!(
        (st.msgs, st.first_seq, st.first_time_ns, st.num_deleted),
        (3, 4, 3, 0)
    );
}

fn max_bytes_discard_old(mk: &Mk) {
    let size = stored_size(1, 0, 9);
    let mut s = mk(StoreConfig {
        max_bytes: Some(2 * size + 5),
        ..base()
    });
    let removed: Vec<u64> = (0..4)
        .map(|i| s.append("s", b"", b"123456789", i).unwrap().removed)
        .collect();
    assert_eq!(removed, vec![0, 0, 1, 1]);
    assert_eq!(s.state().bytes, 2 * size);
    assert_eq!(s.state().first_seq, 3);
    // A message larger than the limit removes everything, itself included.
    let big = s.append("s", b"", &[7; 100], 9).unwrap();
    assert_eq!(big, Appended { seq: 5, removed: 3 });
    let st = s.state();
    assert_eq!((st.msgs, st.bytes, st.first_seq, st.last_seq), (0, 0, 6, 5));
    assert_eq!(put(&mut *s, "s", b"x", 10), 6);
}

fn discard_new_refuses(mk: &Mk) {
    let mut s = mk(StoreConfig {
        max_msgs: Some(2),
        discard: Discard::New,
        ..base()
    });
    put(&mut *s, "a", b"1", 1);
    put(&mut *s, "a", b"2", 2);
    let before = s.state();
    assert!(matches!(
        s.append("a", b"", b"3", 3),
        Err(StoreError::LimitReached(Limit::Msgs))
    ));
    assert_eq!(s.state(), before);

    let size = stored_size(1, 0, 9);
    let mut s = mk(StoreConfig {
        max_bytes: Some(2 * size + stored_size(1, 0, 0)),
        discard: Discard::New,
        ..base()
    });
    put(&mut *s, "a", b"123456789", 1);
    put(&mut *s, "b", b"123456789", 2);
    assert!(matches!(
        s.append("c", b"", b"123456789", 3),
        Err(StoreError::LimitReached(Limit::Bytes))
    ));
    assert_eq!(put(&mut *s, "c", b"", 4), 3, "a smaller message still fits");
    assert_eq!(s.state().last_seq, 3);
}

fn per_subject_limits(mk: &Mk) {
    let mut s = mk(StoreConfig {
        max_msgs_per_subject: Some(2),
        ..base()
    });
    let removed: Vec<u64> = ["a", "a", "a", "b", "a"]
        .iter()
        .enumerate()
        .map(|(i, sub)| s.append(sub, b"", b"p", i as i64).unwrap().removed)
        .collect();
    assert_eq!(removed, vec![0, 0, 1, 0, 1]);
    assert_eq!(seqs(&mut *s), vec![3, 4, 5]);
    assert_eq!(
        s.subject_counts(&SubjectFilter::all()),
        vec![("a".to_string(), 2), ("b".to_string(), 1)]
    );

    let mut s = mk(StoreConfig {
        max_msgs_per_subject: Some(1),
        discard: Discard::New,
        discard_new_per_subject: true,
        ..base()
    });
    put(&mut *s, "a", b"1", 1);
    assert!(matches!(
        s.append("a", b"", b"2", 2),
        Err(StoreError::LimitReached(Limit::MsgsPerSubject))
    ));
    assert_eq!(put(&mut *s, "b", b"3", 3), 2);

    // Discard new without the per-subject flag still replaces the oldest.
    let mut s = mk(StoreConfig {
        max_msgs_per_subject: Some(1),
        discard: Discard::New,
        ..base()
    });
    put(&mut *s, "a", b"1", 1);
    assert_eq!(
        s.append("a", b"", b"2", 2).unwrap(),
        Appended { seq: 2, removed: 1 }
    );
    assert_eq!(seqs(&mut *s), vec![2]);
}

fn ten_cycling(s: &mut dyn Store) {
    for i in 1..=10 {
        put(
            s,
            ["a.1", "a.2", "b.1"][(i - 1) % 3],
            b"0123456789abcdef",
            i as i64,
        );
    }
}

fn purge_variants(mk: &Mk) {
    let mut s = mk(base());
    ten_cycling(&mut *s);
    let p = |patterns: &[&str], up_to_seq, keep| Purge {
        filter: SubjectFilter::new(patterns.iter().copied()),
        up_to_seq,
        keep,
    };
    assert_eq!(s.purge(&p(&["a.*"], None, Some(1))).unwrap(), 6);
    assert_eq!(seqs(&mut *s), vec![3, 6, 9, 10]);
    assert_eq!(s.purge(&p(&[], Some(6), None)).unwrap(), 1);
    assert_eq!(seqs(&mut *s), vec![6, 9, 10]);
    assert_eq!(s.purge(&p(&["b.1"], Some(9), None)).unwrap(), 1);
    assert_eq!(seqs(&mut *s), vec![9, 10]);
    assert_eq!(s.purge(&p(&["nothing"], None, None)).unwrap(), 0);
    assert_eq!(s.purge(&Purge::default()).unwrap(), 2);
    let st = s.state();
    assert_eq!(
        (st.msgs, st.bytes, st.first_seq, st.last_seq, st.num_deleted),
        (0, 0, 11, 10, 0)
    );
    assert_eq!(st.last_time_ns, 10);
    assert_eq!(s.purge(&Purge::default()).unwrap(), 0);
    assert_eq!(put(&mut *s, "c", b"x", 11), 11);
    assert_eq!(s.purge(&p(&[], None, Some(5))).unwrap(), 0);
    for t in 12..=15 {
        put(&mut *s, "c", b"x", t);
    }
    assert_eq!(s.purge(&p(&[], None, Some(2))).unwrap(), 3);
    assert_eq!(seqs(&mut *s), vec![14, 15]);
    assert_eq!(s.purge(&p(&[], None, Some(0))).unwrap(), 2);
    assert_eq!(s.state().first_seq, 16);
    // Filtered purge that empties the store.
    ten_cycling(&mut *s);
    assert_eq!(s.purge(&p(&["a.*", "b.*"], None, None)).unwrap(), 10);
    assert_eq!(s.state().msgs, 0);
    assert_eq!(s.state().last_seq, 25);
    assert_eq!(put(&mut *s, "z", b"", 30), 26);
}

fn expire_by_age(mk: &Mk) {
    let mut s = mk(base());
    for t in [0, 5, 10, 15, 20] {
        put(&mut *s, "s", b"v", t);
    }
    assert_eq!(s.expire(100).unwrap(), 0, "no max_age: nothing expires");
    let mut c = base();
    c.max_age = Some(Duration::from_nanos(10));
    s.set_config(c).unwrap();
    assert_eq!(s.expire(14).unwrap(), 1);
    assert_eq!(s.state().first_seq, 2);
    assert_eq!(s.expire(25).unwrap(), 3);
    assert_eq!(seqs(&mut *s), vec![5]);
    assert_eq!(s.state().first_time_ns, 20);
    assert_eq!(s.expire(100).unwrap(), 1);
    assert_eq!(s.state().msgs, 0);
    assert_eq!(s.state().last_seq, 5);
}

fn seq_at_time(mk: &Mk) {
    let mut s = mk(base());
    assert_eq!(s.seq_at_time(0).unwrap(), 1);
    for t in [10, 20, 20, 30] {
        put(&mut *s, "s", b"v", t);
    }
    let at = |s: &mut Box<dyn Store>, t| s.seq_at_time(t).unwrap();
    assert_eq!(
        [5, 10, 11, 20, 21, 30, 31].map(|t| at(&mut s, t)),
        [1, 1, 2, 2, 4, 4, 5]
    );
    s.delete(2).unwrap();
    assert_eq!(at(&mut s, 11), 3);
    s.delete(3).unwrap();
    assert_eq!(at(&mut s, 11), 4);
    s.delete(1).unwrap();
    assert_eq!(at(&mut s, 0), 4);
    s.delete(4).unwrap();
    assert_eq!(at(&mut s, 0), 5);
}

fn five_subjects(s: &mut dyn Store) {
    for (i, sub) in [
        "orders.us.new",
        "orders.eu.new",
        "billing.us",
        "orders.us.paid",
        "x",
    ]
    .iter()
    .enumerate()
    {
        put(s, sub, b"data", i as i64);
    }
}

fn next_matching_filters(mk: &Mk) {
    let mut s = mk(base());
    five_subjects(&mut *s);
    let f = |p: &[&str]| SubjectFilter::new(p.iter().copied());
    assert_eq!(next_seq(&mut *s, 1, &f(&["orders.*.new"])), Some(1));
    assert_eq!(next_seq(&mut *s, 2, &f(&["orders.*.new"])), Some(2));
    assert_eq!(next_seq(&mut *s, 3, &f(&["orders.*.new"])), None);
    assert_eq!(next_seq(&mut *s, 3, &f(&["orders.>"])), Some(4));
    assert_eq!(next_seq(&mut *s, 1, &f(&["billing.*", "x"])), Some(3));
    assert_eq!(next_seq(&mut *s, 4, &f(&["billing.*", "x"])), Some(5));
    assert_eq!(next_seq(&mut *s, 0, &SubjectFilter::all()), Some(1));
    assert_eq!(next_seq(&mut *s, 6, &SubjectFilter::all()), None);
    assert_eq!(next_seq(&mut *s, 1, &f(&["orders.us.paid"])), Some(4));
    assert_eq!(next_seq(&mut *s, 1, &f(&["x", "orders.us.new"])), Some(1));
    assert_eq!(next_seq(&mut *s, 2, &f(&["x", "orders.us.new"])), Some(5));
    assert_eq!(next_seq(&mut *s, 1, &f(&["nothing"])), None);
    assert_eq!(next_seq(&mut *s, 1, &f(&["*"])), Some(5));
    assert_eq!(next_seq(&mut *s, 1, &f(&["x", ">"])), Some(1));
    assert_eq!(next_seq(&mut *s, 1, &SubjectFilter::one("")), Some(1));
    let m = s.next_matching(2, &f(&["*.us.*"])).unwrap().unwrap();
    assert_eq!(
        (m.seq, m.subject.as_str(), m.payload.as_ref()),
        (4, "orders.us.paid", &b"data"[..])
    );
    s.delete(4).unwrap();
    assert_eq!(next_seq(&mut *s, 3, &f(&["orders.>"])), None);
    s.delete(1).unwrap();
    assert_eq!(next_seq(&mut *s, 0, &f(&["orders.*.new"])), Some(2));
}

fn count_matching(mk: &Mk) {
    let mut s = mk(base());
    five_subjects(&mut *s);
    let f = |p: &[&str]| SubjectFilter::new(p.iter().copied());
    assert_eq!(s.count_matching(1, &f(&["orders.>"])), 3);
    assert_eq!(s.count_matching(2, &f(&["orders.>"])), 2);
    assert_eq!(s.count_matching(5, &f(&["orders.>"])), 0);
    assert_eq!(s.count_matching(0, &SubjectFilter::all()), 5);
    assert_eq!(s.count_matching(4, &SubjectFilter::all()), 2);
    assert_eq!(s.count_matching(9, &SubjectFilter::all()), 0);
    assert_eq!(s.count_matching(1, &f(&["x", "billing.us"])), 2);
    assert_eq!(s.count_matching(4, &f(&["x", "billing.us"])), 1);
    assert_eq!(s.count_matching(1, &f(&["nothing"])), 0);
    s.delete(2).unwrap();
    assert_eq!(s.count_matching(1, &f(&["orders.*.new"])), 1);
    assert_eq!(s.count_matching(2, &f(&["*.*.*"])), 1);
}

fn last_matching_and_last_seq_of_subject(mk: &Mk) {
    let mut s = mk(base());
    five_subjects(&mut *s);
    let f = |p: &[&str]| SubjectFilter::new(p.iter().copied());
    let last = |s: &mut Box<dyn Store>, f: &SubjectFilter| s.last_matching(f).unwrap().map(|m| m.seq);
    assert_eq!(last(&mut s, &f(&["orders.*.new"])), Some(2));
    assert_eq!(last(&mut s, &SubjectFilter::all()), Some(5));
    assert_eq!(last(&mut s, &f(&["billing.>"])), Some(3));
    assert_eq!(last(&mut s, &f(&["orders.us.new"])), Some(1));
    assert_eq!(last(&mut s, &f(&["zzz"])), None);
    assert_eq!(s.last_seq_of_subject("orders.us.new"), Some(1));
    assert_eq!(s.last_seq_of_subject("orders.*.new"), None);
    assert_eq!(s.last_seq_of_subject("nope"), None);
    s.delete(2).unwrap();
    assert_eq!(last(&mut s, &f(&["orders.*.new"])), Some(1));
    s.delete(5).unwrap();
    assert_eq!(last(&mut s, &SubjectFilter::all()), Some(4));
    let m = s.last_matching(&f(&["billing.us"])).unwrap().unwrap();
    assert_eq!((m.seq, m.time_ns), (3, 2));
}

fn subject_counts(mk: &Mk) {
    let mut s = mk(base());
    five_subjects(&mut *s);
    put(&mut *s, "orders.us.new", b"", 9);
    let f = |p: &[&str]| SubjectFilter::new(p.iter().copied());
    let owned = |v: &[(&str, u64)]| v.iter().map(|(s, n)| (s.to_string(), *n)).collect::<Vec<_>>();
    assert_eq!(
        s.subject_counts(&f(&["orders.>"])),
        owned(&[("orders.eu.new", 1), ("orders.us.new", 2), ("orders.us.paid", 1)])
    );
    assert_eq!(s.subject_counts(&SubjectFilter::all()).len(), 5);
    assert_eq!(
        s.subject_counts(&f(&["x", "billing.*"])),
        owned(&[("billing.us", 1), ("x", 1)])
    );
    s.delete(1).unwrap();
    assert_eq!(
        s.subject_counts(&f(&["orders.us.new"])),
        owned(&[("orders.us.new", 1)])
    );
    s.delete(6).unwrap();
    assert_eq!(s.subject_counts(&f(&["orders.us.new"])), owned(&[]));
}

fn set_config_enforces_limits(mk: &Mk) {
    let mut s = mk(base());
    for i in 0..10 {
        put(&mut *s, ["a", "b"][i % 2], b"0123456789", i as i64);
    }
    s.set_config(StoreConfig {
        max_msgs_per_subject: Some(2),
        ..base()
    })
    .unwrap();
    assert_eq!(seqs(&mut *s), vec![7, 8, 9, 10]);
    s.set_config(StoreConfig {
        max_msgs: Some(3),
        ..base()
    })
    .unwrap();
    assert_eq!(seqs(&mut *s), vec![8, 9, 10]);
    s.set_config(StoreConfig {
        max_bytes: Some(stored_size(1, 0, 10)),
        ..base()
    })
    .unwrap();
    assert_eq!(seqs(&mut *s), vec![10]);
    assert_eq!(s.config().max_bytes, Some(stored_size(1, 0, 10)));
    s.set_config(StoreConfig {
        max_msgs_per_subject: Some(0),
        ..base()
    })
    .unwrap();
    assert_eq!(s.state().msgs, 0);
    assert_eq!(s.state().first_seq, 11);
}

fn state_counters(mk: &Mk) {
    let mut s = mk(base());
    ten_cycling(&mut *s);
    s.delete(2).unwrap();
    s.delete(5).unwrap();
    s.delete(1).unwrap();
    let size = stored_size(3, 0, 16);
    assert_eq!(
        s.state(),
        StoreState {
            msgs: 7,
            bytes: 7 * size,
            first_seq: 3,
            first_time_ns: 3,
            last_seq: 10,
            last_time_ns: 10,
            num_subjects: 3,
            num_deleted: 1,
        }
    );
    s.purge(&Purge {
        filter: SubjectFilter::one("b.1"),
        ..Purge::default()
    })
    .unwrap();
    let st = s.state();
    assert_eq!(
        (st.msgs, st.first_seq, st.num_subjects, st.num_deleted),
        (4, 4, 2, 3)
    );
}

fn many_messages_across_segments(mk: &Mk) {
    let mut s = mk(StoreConfig {
        max_msgs: Some(150),
        ..base()
    });
    for i in 0..400u64 {
        let subject = format!("k.{}", i % 7);
        let payload = vec![i as u8; (i % 50) as usize];
        s.append(&subject, b"", &payload, i as i64).unwrap();
        if i % 9 == 0 {
            s.delete(i.saturating_sub(20)).unwrap();
        }
    }
    let st = s.state();
    assert_eq!(st.last_seq, 400);
    assert!(st.msgs <= 150);
    let m = s.get(400).unwrap().unwrap();
    assert_eq!(
        (m.subject.as_str(), m.payload.len()),
        ("k.0", (399 % 50) as usize)
    );
    assert_eq!(s.count_matching(0, &SubjectFilter::one("k.3")), {
        let c = s.subject_counts(&SubjectFilter::one("k.3"));
        c.first().map_or(0, |x| x.1)
    });
    assert_eq!(s.seq_at_time(300).unwrap(), 301);
}

fn scan_headers_visits_live_messages_with_headers(mk: &Mk) {
    let mut s = mk(base());
    let mut expected = Vec::new();
    for i in 1..=300u64 {
        let headers = if i % 3 == 0 {
            format!("NATS/1.0\r\nNats-Msg-Id: m{i}\r\n\r\n").into_bytes()
        } else {
            Vec::new()
        };
        let payload = vec![b'x'; (i * 37 % 500) as usize];
        s.append(&format!("s.{}", i % 4), &headers, &payload, i as i64)
            .unwrap();
        if i % 10 == 0 {
            s.delete(i - 3).unwrap();
        }
    }
    s.write_out().unwrap();
    for i in 1..=300u64 {
        if i % 3 == 0 && i >= 50 && s.get(i).unwrap().is_some() {
            expected.push((
                i,
                i as i64,
                format!("NATS/1.0\r\nNats-Msg-Id: m{i}\r\n\r\n").into_bytes(),
            ));
        }
    }
    let mut seen = Vec::new();
    s.scan_headers(50, &mut |seq, time_ns, headers| {
        seen.push((seq, time_ns, headers.to_vec()))
    })
    .unwrap();
    assert_eq!(seen, expected);
}

fn batch_append_is_all_or_nothing(mk: &Mk) {
    let mut s = mk(StoreConfig {
        max_msgs: Some(5),
        max_msgs_per_subject: Some(3),
        discard: Discard::New,
        discard_new_per_subject: true,
        ..base()
    });
    for i in 0..3 {
        s.append("a", b"", &[i], 1).unwrap();
    }
    let msg = |subject| BatchMessage {
        subject,
        headers: b"",
        payload: b"p",
    };
    // Too many for max_msgs: refused whole.
    assert!(matches!(
        s.append_batch(&[msg("b"), msg("b"), msg("b")], 2),
        Err(StoreError::LimitReached(Limit::Msgs))
    ));
    // One subject over its limit: refused whole.
    assert!(matches!(
        s.append_batch(&[msg("b"), msg("a")], 2),
        Err(StoreError::LimitReached(Limit::MsgsPerSubject))
    ));
    assert_eq!(
        (s.state().msgs, s.state().last_seq),
        (3, 3),
        "nothing of a refused batch"
    );
    let appended = s.append_batch(&[msg("b"), msg("c")], 2).unwrap();
    assert_eq!(appended.seq, 5);
    assert_eq!(s.get(4).unwrap().unwrap().subject, "b");
    assert_eq!(s.get(5).unwrap().unwrap().subject, "c");
    assert_eq!(
        s.append_batch(&[], 3).unwrap().seq,
        5,
        "an empty batch stores nothing"
    );
}
