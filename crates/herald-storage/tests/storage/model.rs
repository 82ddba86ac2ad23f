//! Model test: random operation sequences applied to a `FileStore` (with
//! tiny segments, reopened from disk now and then) and to the reference
//! `MemoryStore` must give identical observable results.

use std::time::Duration;

use herald_storage::*;
use proptest::prelude::*;

use super::common::{snapshot, TestFileStore};

const SUBJECTS: [&str; 5] = ["a.1", "a.2", "b.1", "c", "d.x.y"];

fn filter(i: usize) -> SubjectFilter {
    let patterns: &[&str] = match i % 7 {
        0 => &[],
        1 => &["a.*"],
        2 => &["b.1"],
        3 => &["a.1", "c"],
        4 => &["*"],
        5 => &["d.>", "b.*"],
        _ => &["nothing"],
    };
    SubjectFilter::new(patterns.iter().copied())
}

#[derive(Debug, Clone)]
enum Op {
    Append {
        subject: usize,
        headers: usize,
        payload: usize,
        dt: i64,
    },
    Delete(u64),
    Purge {
        filter: usize,
        up_to: Option<u64>,
        keep: Option<u64>,
    },
    Expire(i64),
    SetConfig(StoreConfig),
    Reopen,
    WriteOut,
    Sync,
    Query {
        from: u64,
        filter: usize,
        time: i64,
    },
}

fn config() -> impl Strategy<Value = StoreConfig> {
    (
        proptest::option::weighted(0.4, 1u64..30),
        proptest::option::weighted(0.3, 60u64..1500),
        proptest::option::weighted(0.3, 1u64..40),
        proptest::option::weighted(0.3, 0u64..6),
        any::<bool>(),
        any::<bool>(),
        64u64..1024,
    )
        .prop_map(
            |(max_msgs, max_bytes, age, per_subject, new, dnps, segment)| StoreConfig {
                max_msgs,
                max_bytes,
                max_age: age.map(Duration::from_nanos),
                max_msgs_per_subject: per_subject,
                discard: if new { Discard::New } else { Discard::Old },
                discard_new_per_subject: dnps,
                segment_bytes_max: segment,
            },
        )
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        12 => (0..SUBJECTS.len(), 0usize..3, 0usize..60, 0i64..3).prop_map(|(subject, headers, payload, dt)| {
            Op::Append { subject, headers, payload, dt }
        }),
        4 => (0u64..200).prop_map(Op::Delete),
        1 => (0usize..7, proptest::option::of(0u64..40), proptest::option::of(0u64..6))
            .prop_map(|(filter, up_to, keep)| Op::Purge { filter, up_to, keep }),
        1 => (-5i64..40).prop_map(Op::Expire),
        1 => config().prop_map(Op::SetConfig),
        2 => Just(Op::Reopen),
        1 => Just(Op::WriteOut),
        1 => Just(Op::Sync),
        3 => (0u64..60, 0usize..7, -2i64..80).prop_map(|(from, filter, time)| Op::Query { from, filter, time }),
    ]
}

fn short<T: std::fmt::Debug>(r: Result<T, StoreError>) -> Result<T, String> {
    r.map_err(|e| format!("{e:?}"))
}

fn check_same(file: &mut TestFileStore, memory: &mut MemoryStore, step: usize) {
    let a = snapshot(file);
    let b = snapshot(memory);
    assert_eq!(a, b, "diverged after step {step}");
}

fn run(initial: StoreConfig, ops: Vec<Op>, check_every: usize) {
    let mut file = TestFileStore::new(initial.clone());
    let mut memory = MemoryStore::new(initial);
    let mut now = 0i64;
    // Removals so far, to compare what each step removed.
    let mut removals = (file.removals(), memory.removals());
    for (step, op) in ops.into_iter().enumerate() {
        let op_kind = if matches!(op, Op::Reopen) { "reopen" } else { "" };
        match op {
            Op::Append {
                subject,
                headers,
                payload,
                dt,
            } => {
                now += dt;
                let h = vec![b'h'; headers * 7];
                let p: Vec<u8> = (0..payload).map(|i| (i + step) as u8).collect();
                let s = SUBJECTS[subject];
                assert_eq!(
                    short(file.append(s, &h, &p, now)),
                    short(memory.append(s, &h, &p, now)),
                    "append at step {step}"
                );
            }
            Op::Delete(k) => {
                let seq = k % (memory.state().last_seq + 3);
                assert_eq!(short(file.delete(seq)), short(memory.delete(seq)), "delete {seq}");
            }
            Op::Purge {
                filter: f,
                up_to,
                keep,
            } => {
                let first = memory.state().first_seq;
                let purge = Purge {
                    filter: filter(f),
                    up_to_seq: up_to.map(|u| first + u),
                    keep,
                };
                assert_eq!(
                    short(file.purge(&purge)),
                    short(memory.purge(&purge)),
                    "{purge:?}"
                );
            }
            Op::Expire(delta) => {
                assert_eq!(short(file.expire(now + delta)), short(memory.expire(now + delta)));
            }
            Op::SetConfig(c) => {
                assert_eq!(short(file.set_config(c.clone())), short(memory.set_config(c)));
            }
            Op::Reopen => {
                file.reopen();
            }
            Op::WriteOut => file.write_out().expect("write out"),
            Op::Sync => file.sync().expect("sync"),
            Op::Query {
                from,
                filter: f,
                time,
            } => {
                let f = filter(f);
                let seq = |m: Option<StoredMessage>| m.map(|m| m.seq);
                assert_eq!(
                    seq(file.next_matching(from, &f).unwrap()),
                    seq(memory.next_matching(from, &f).unwrap()),
                    "next_matching({from}, {f:?})"
                );
                assert_eq!(file.count_matching(from, &f), memory.count_matching(from, &f));
                for to in [from, from + 1, from + 7, memory.state().last_seq + 1, u64::MAX] {
                    assert_eq!(
                        file.count_matching_range(from, to, &f),
                        memory.count_matching_range(from, to, &f),
                        "count_matching_range({from}, {to}, {f:?})"
                    );
                }
                assert_eq!(file.last_matching(&f).unwrap(), memory.last_matching(&f).unwrap());
                assert_eq!(file.seq_at_time(time).unwrap(), memory.seq_at_time(time).unwrap());
                for s in SUBJECTS {
                    assert_eq!(file.last_seq_of_subject(s), memory.last_seq_of_subject(s));
                }
            }
        }
        let now_removals = (file.removals(), memory.removals());
        assert_eq!(
            now_removals.0 - removals.0,
            now_removals.1 - removals.1,
            "messages removed by step {step}"
        );
        removals = now_removals;
        if step % check_every == 0 || matches!(op_kind, "reopen") {
            check_same(&mut file, &mut memory, step);
        } else {
            assert_eq!(file.state(), memory.state(), "state after step {step}");
        }
    }
    file.reopen();
    check_same(&mut file, &mut memory, usize::MAX);
}

proptest! {
    // 96 cases by default; `PROPTEST_CASES=5000` for a longer hunt.
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(96),
        ..ProptestConfig::default()
    })]

    #[test]
    fn file_store_matches_memory_store(initial in config(), ops in proptest::collection::vec(op(), 1..120)) {
        run(initial, ops, 1);
    }
}

/// The same model with limits off, so that more messages accumulate and
/// more segments, tombstones and compactions happen.
#[test]
fn long_run_without_limits() {
    let mut ops = Vec::new();
    for i in 0..3000u64 {
        ops.push(Op::Append {
            subject: (i % 5) as usize,
            headers: (i % 3) as usize,
            payload: (i * 7 % 60) as usize,
            dt: (i % 2) as i64,
        });
        if i % 3 == 0 {
            ops.push(Op::Delete(i * 13 % 3000));
        }
        if i % 500 == 499 {
            ops.push(Op::Reopen);
            ops.push(Op::Query {
                from: i / 2,
                filter: (i % 7) as usize,
                time: (i / 3) as i64,
            });
        }
    }
    run(
        StoreConfig {
            segment_bytes_max: 2048,
            ..StoreConfig::default()
        },
        ops,
        97,
    );
}
