//! The consumer state machine driven by random sequences of deliveries,
//! acknowledgements of every kind and the passing of time, checked against
//! the invariants a consumer promises: nothing acknowledged or terminated
//! comes back, no message is delivered more than `max_deliver` times,
//! `max_ack_pending` holds, the ack floor only moves forward and stays
//! below every pending message, and every message is accounted for.

use std::collections::BTreeSet;

use herald_core::consumer::{AckKind, AckOutcome, AckPolicy, Consumer, ConsumerPolicy, Next};
use proptest::prelude::*;

const ACK_WAIT: u64 = 100;
const STREAM_LAST_SEQ: u64 = 40;

#[derive(Debug, Clone)]
enum Op {
    Deliver,
    Ack(u64),
    Nak(u64, Option<u64>),
    Progress(u64),
    Term(u64),
    Wait(u64),
}

fn op() -> impl Strategy<Value = Op> {
    let seq = 1..=STREAM_LAST_SEQ;
    prop_oneof![
        4 => Just(Op::Deliver),
        3 => seq.clone().prop_map(Op::Ack),
        1 => (seq.clone(), proptest::option::of(0..300u64)).prop_map(|(s, d)| Op::Nak(s, d)),
        1 => seq.clone().prop_map(Op::Progress),
        1 => seq.prop_map(Op::Term),
        2 => (0..250u64).prop_map(Op::Wait),
    ]
}

proptest! {
    #[test]
    fn consumer_keeps_its_promises(
        ops in proptest::collection::vec(op(), 1..200),
        max_deliver in proptest::option::of(1..4u64),
        max_ack_pending in proptest::option::of(1..6u64),
        ack_all in any::<bool>(),
    ) {
        let policy = ConsumerPolicy {
            ack: if ack_all { AckPolicy::All } else { AckPolicy::Explicit },
            ack_wait_ns: ACK_WAIT,
            max_deliver,
            backoff_ns: Vec::new(),
            max_ack_pending,
        };
        let mut c = Consumer::new(policy, 1);
        let mut now = 0;
        // Messages that must never be delivered again.
        let mut done: BTreeSet<u64> = BTreeSet::new();
        let mut deliveries = std::collections::BTreeMap::<u64, u64>::new();
        let mut floor = 0;
        for op in ops {
            match op {
                Op::Deliver => {
                    for gone in c.expire(now) {
                        prop_assert!(max_deliver.is_some_and(|m| gone.deliveries >= m));
                        done.insert(gone.stream_seq);
                    }
                    match c.next() {
                        Some(Next::Redeliver { stream_seq }) => {
                            prop_assert!(!done.contains(&stream_seq), "{stream_seq} came back");
                            c.delivered_msg(stream_seq, now);
                            *deliveries.entry(stream_seq).or_default() += 1;
                        }
                        Some(Next::New { from_stream_seq }) if from_stream_seq <= STREAM_LAST_SEQ => {
                            prop_assert!(!deliveries.contains_key(&from_stream_seq));
                            c.delivered_msg(from_stream_seq, now);
                            deliveries.insert(from_stream_seq, 1);
                        }
                        Some(Next::New { .. }) => c.skip_to(STREAM_LAST_SEQ + 1),
                        None => prop_assert!(c.is_blocked()),
                    }
                }
                Op::Ack(seq) => {
                    if let AckOutcome::Applied { .. } = c.ack(seq, AckKind::Ack, now) {
                        if ack_all {
                            done.extend(deliveries.keys().filter(|&&s| s <= seq));
                        } else {
                            done.insert(seq);
                        }
                    }
                }
                Op::Term(seq) => {
                    if let AckOutcome::Terminated { .. } = c.ack(seq, AckKind::Term, now) {
                        done.insert(seq);
                    }
                }
                Op::Nak(seq, delay) => {
                    c.ack(seq, AckKind::Nak { delay_ns: delay }, now);
                }
                Op::Progress(seq) => {
                    c.ack(seq, AckKind::Progress, now);
                }
                Op::Wait(ns) => now += ns,
            }
            for (&seq, &n) in &deliveries {
                prop_assert!(max_deliver.is_none_or(|m| n <= m), "{seq} delivered {n} times");
            }
            if let Some(max) = max_ack_pending {
                prop_assert!(c.ack_pending() <= max);
            }
            let f = c.ack_floor().stream_seq;
            prop_assert!(f >= floor, "ack floor went back from {floor} to {f}");
            floor = f;
            for seq in c.save().pending.iter().map(|p| p.0) {
                prop_assert!(seq > f, "pending {seq} at or below the floor {f}");
                prop_assert!(!done.contains(&seq), "{seq} is done but pending");
            }
            // Everything delivered is pending, done, or past its last delivery.
            for &seq in deliveries.keys() {
                let pending = c.pending(seq).is_some();
                prop_assert!(pending || done.contains(&seq), "{seq} lost track of");
            }
        }
    }
}
