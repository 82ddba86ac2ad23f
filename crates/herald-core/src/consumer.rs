//! A JetStream consumer's delivery and acknowledgement state, as a plain
//! state machine: which stream sequence to deliver next, what is waiting
//! for an acknowledgement and until when, what must be redelivered, and
//! where the acknowledgement floor is.
//!
//! It knows nothing of storage or sockets. The server asks [`Consumer::next`]
//! what to deliver, looks the message up in the stream, and reports back with
//! [`Consumer::delivered`] (or [`Consumer::skip`] if the message is gone).
//! Time is passed in as `now_ns`: nanoseconds on any monotonic clock.

use std::collections::{BTreeMap, BTreeSet};

/// How a consumer expects acknowledgements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckPolicy {
    /// Delivered means done.
    None,
    /// Acknowledging a message acknowledges every earlier one.
    All,
    /// Every message is acknowledged on its own.
    Explicit,
}

/// Redelivery rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerPolicy {
    /// Acknowledgement policy.
    pub ack: AckPolicy,
    /// How long a delivery waits for its acknowledgement.
    pub ack_wait_ns: u64,
    /// Deliveries per message at most; `None` for unlimited.
    pub max_deliver: Option<u64>,
    /// Waits before the 1st, 2nd, … redelivery (the last repeats); replaces
    /// `ack_wait` when not empty.
    pub backoff_ns: Vec<u64>,
    /// Unacknowledged deliveries at most; `None` for unlimited.
    pub max_ack_pending: Option<u64>,
}

/// A consumer sequence with the stream sequence it corresponds to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SeqPair {
    /// Consumer sequence: counts deliveries, including redeliveries.
    pub consumer_seq: u64,
    /// Stream sequence.
    pub stream_seq: u64,
}

/// A delivery waiting for its acknowledgement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pending {
    /// Consumer sequence of the latest delivery.
    pub consumer_seq: u64,
    /// Deliveries so far.
    pub deliveries: u64,
    /// When it is redelivered if not acknowledged.
    pub deadline_ns: u64,
}

/// What to deliver next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Deliver this stream sequence again.
    Redeliver {
        /// The stream sequence.
        stream_seq: u64,
    },
    /// Deliver the first message matching the filter at or after this
    /// stream sequence.
    New {
        /// Where to look from.
        from_stream_seq: u64,
    },
}

/// The kinds of acknowledgement a client sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckKind {
    /// Processed (`+ACK`).
    Ack,
    /// Redeliver, now or after a delay (`-NAK`).
    Nak {
        /// Delay before redelivery.
        delay_ns: Option<u64>,
    },
    /// Still working on it: restart the ack wait (`+WPI`).
    Progress,
    /// Never deliver again (`+TERM`).
    Term,
}

/// What an acknowledgement did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckOutcome {
    /// It applied; `freed` deliveries no longer count against
    /// `max_ack_pending`.
    Applied {
        /// Acknowledged (or terminated) deliveries.
        freed: u64,
    },
    /// The message was terminated after this many deliveries.
    Terminated {
        /// Deliveries the message had.
        deliveries: u64,
    },
    /// The message was not pending (already acknowledged, or unknown).
    NotPending,
}

/// A message whose last allowed delivery went unacknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exhausted {
    /// Its stream sequence.
    pub stream_seq: u64,
    /// Deliveries it had.
    pub deliveries: u64,
}

/// Delivery state of one consumer. See the module documentation.
#[derive(Debug, Clone)]
pub struct Consumer {
    policy: ConsumerPolicy,
    delivered: SeqPair,
    ack_floor: SeqPair,
    /// Where the search for new messages resumes.
    next_stream_seq: u64,
    pending: BTreeMap<u64, Pending>,
    /// Pending stream sequences whose deadline passed (or were nak'ed).
    redeliver: BTreeSet<u64>,
}

impl Consumer {
    /// A consumer that starts delivering at `start_stream_seq`.
    pub fn new(policy: ConsumerPolicy, start_stream_seq: u64) -> Consumer {
        let start = start_stream_seq.max(1);
        let floor = SeqPair {
            consumer_seq: 0,
            stream_seq: start - 1,
        };
        Consumer {
            policy,
            delivered: floor,
            ack_floor: floor,
            next_stream_seq: start,
            pending: BTreeMap::new(),
            redeliver: BTreeSet::new(),
        }
    }

    /// Rebuilds a consumer from saved state. Pending deliveries get a fresh
    /// deadline of `now_ns + ack_wait`.
    pub fn restore(policy: ConsumerPolicy, saved: &SavedState, now_ns: u64) -> Consumer {
        let mut consumer = Consumer {
            policy,
            delivered: saved.delivered,
            ack_floor: saved.ack_floor,
            next_stream_seq: saved.next_stream_seq.max(1),
            pending: BTreeMap::new(),
            redeliver: BTreeSet::new(),
        };
        for &(stream_seq, consumer_seq, deliveries) in &saved.pending {
            let deadline_ns = now_ns.saturating_add(consumer.wait_after(deliveries));
            consumer.pending.insert(
                stream_seq,
                Pending {
                    consumer_seq,
                    deliveries,
                    deadline_ns,
                },
            );
        }
        consumer
    }

    /// What to save so that [`Consumer::restore`] resumes here.
    pub fn save(&self) -> SavedState {
        SavedState {
            delivered: self.delivered,
            ack_floor: self.ack_floor,
            next_stream_seq: self.next_stream_seq,
            pending: self
                .pending
                .iter()
                .map(|(&seq, p)| (seq, p.consumer_seq, p.deliveries))
                .collect(),
        }
    }

    /// The policy in force.
    pub fn policy(&self) -> &ConsumerPolicy {
        &self.policy
    }

    /// Replaces the policy (consumer update). Existing deadlines stay.
    pub fn set_policy(&mut self, policy: ConsumerPolicy) {
        self.policy = policy;
    }

    /// Last delivery.
    pub fn delivered(&self) -> SeqPair {
        self.delivered
    }

    /// Everything up to here is acknowledged.
    pub fn ack_floor(&self) -> SeqPair {
        self.ack_floor
    }

    /// Where the search for new messages resumes.
    pub fn next_stream_seq(&self) -> u64 {
        self.next_stream_seq
    }

    /// Deliveries waiting for an acknowledgement.
    pub fn ack_pending(&self) -> u64 {
        self.pending.len() as u64
    }

    /// Pending messages delivered more than once.
    pub fn redelivered(&self) -> u64 {
        self.pending.values().filter(|p| p.deliveries > 1).count() as u64
    }

    /// The pending delivery of `stream_seq`, if any.
    pub fn pending(&self, stream_seq: u64) -> Option<&Pending> {
        self.pending.get(&stream_seq)
    }

    /// Whether `max_ack_pending` stops new deliveries.
    pub fn is_blocked(&self) -> bool {
        self.policy.ack != AckPolicy::None
            && self
                .policy
                .max_ack_pending
                .is_some_and(|max| self.pending.len() as u64 >= max)
    }

    /// What to deliver next: redeliveries first, in stream order; then new
    /// messages unless `max_ack_pending` is reached.
    pub fn next(&self) -> Option<Next> {
        if let Some(&stream_seq) = self.redeliver.first() {
            return Some(Next::Redeliver { stream_seq });
        }
        if self.is_blocked() {
            return None;
        }
        Some(Next::New {
            from_stream_seq: self.next_stream_seq,
        })
    }

    /// Records a delivery of `stream_seq` at `now_ns` (a new message or a
    /// redelivery). Returns the consumer sequence and delivery count to put
    /// in the acknowledgement subject.
    pub fn delivered_msg(&mut self, stream_seq: u64, now_ns: u64) -> (u64, u64) {
        self.delivered.consumer_seq += 1;
        let consumer_seq = self.delivered.consumer_seq;
        if stream_seq >= self.next_stream_seq {
            self.next_stream_seq = stream_seq + 1;
            self.delivered.stream_seq = stream_seq;
        }
        self.redeliver.remove(&stream_seq);
        if self.policy.ack == AckPolicy::None {
            self.ack_floor = self.delivered;
            return (consumer_seq, 1);
        }
        let deliveries = self.pending.get(&stream_seq).map_or(0, |p| p.deliveries) + 1;
        let deadline_ns = now_ns.saturating_add(self.wait_after(deliveries));
        self.pending.insert(
            stream_seq,
            Pending {
                consumer_seq,
                deliveries,
                deadline_ns,
            },
        );
        (consumer_seq, deliveries)
    }

    /// Nothing matching exists below `stream_seq`: new deliveries resume
    /// there.
    pub fn skip_to(&mut self, stream_seq: u64) {
        if stream_seq > self.next_stream_seq {
            self.next_stream_seq = stream_seq;
            if self.pending.is_empty() && self.policy.ack != AckPolicy::None {
                self.ack_floor.stream_seq = self.ack_floor.stream_seq.max(stream_seq - 1);
            }
        }
    }

    /// A pending message no longer exists in the stream: forget it.
    pub fn skip(&mut self, stream_seq: u64) {
        self.redeliver.remove(&stream_seq);
        if self.pending.remove(&stream_seq).is_some() {
            self.update_floor();
        }
    }

    /// Applies an acknowledgement of `stream_seq`.
    pub fn ack(&mut self, stream_seq: u64, kind: AckKind, now_ns: u64) -> AckOutcome {
        if self.policy.ack == AckPolicy::None {
            return AckOutcome::NotPending;
        }
        match kind {
            AckKind::Ack if self.policy.ack == AckPolicy::All => {
                let acked: Vec<u64> = self.pending.range(..=stream_seq).map(|(&s, _)| s).collect();
                for seq in &acked {
                    self.pending.remove(seq);
                    self.redeliver.remove(seq);
                }
                if acked.is_empty() {
                    return AckOutcome::NotPending;
                }
                self.update_floor();
                AckOutcome::Applied {
                    freed: acked.len() as u64,
                }
            }
            AckKind::Ack => {
                if self.pending.remove(&stream_seq).is_none() {
                    return AckOutcome::NotPending;
                }
                self.redeliver.remove(&stream_seq);
                self.update_floor();
                AckOutcome::Applied { freed: 1 }
            }
            AckKind::Term => match self.pending.remove(&stream_seq) {
                Some(p) => {
                    self.redeliver.remove(&stream_seq);
                    self.update_floor();
                    AckOutcome::Terminated {
                        deliveries: p.deliveries,
                    }
                }
                None => AckOutcome::NotPending,
            },
            AckKind::Progress => match self.pending.get_mut(&stream_seq) {
                Some(p) if !self.redeliver.contains(&stream_seq) => {
                    p.deadline_ns = now_ns.saturating_add(self.policy.ack_wait_ns);
                    AckOutcome::Applied { freed: 0 }
                }
                _ => AckOutcome::NotPending,
            },
            AckKind::Nak { delay_ns } => match self.pending.get_mut(&stream_seq) {
                Some(p) => {
                    // Due now (or after the delay); `expire` then queues it
                    // for redelivery or, past max_deliver, gives it up.
                    p.deadline_ns = now_ns.saturating_add(delay_ns.unwrap_or(0));
                    AckOutcome::Applied { freed: 0 }
                }
                None => AckOutcome::NotPending,
            },
        }
    }

    /// Moves deliveries whose deadline passed to the redelivery queue, and
    /// removes (returning them) those that had their last allowed delivery.
    pub fn expire(&mut self, now_ns: u64) -> Vec<Exhausted> {
        let mut exhausted = Vec::new();
        let due: Vec<(u64, u64)> = self
            .pending
            .iter()
            .filter(|(seq, p)| p.deadline_ns <= now_ns && !self.redeliver.contains(seq))
            .map(|(&seq, p)| (seq, p.deliveries))
            .collect();
        for (stream_seq, deliveries) in due {
            if self.policy.max_deliver.is_some_and(|max| deliveries >= max) {
                self.pending.remove(&stream_seq);
                exhausted.push(Exhausted {
                    stream_seq,
                    deliveries,
                });
            } else {
                self.redeliver.insert(stream_seq);
            }
        }
        if !exhausted.is_empty() {
            self.update_floor();
        }
        exhausted
    }

    /// The earliest deadline among deliveries not yet queued for redelivery.
    pub fn next_deadline(&self) -> Option<u64> {
        self.pending
            .iter()
            .filter(|(seq, _)| !self.redeliver.contains(seq))
            .map(|(_, p)| p.deadline_ns)
            .min()
    }

    /// Whether anything waits for redelivery now.
    pub fn has_redeliveries(&self) -> bool {
        !self.redeliver.is_empty()
    }

    fn wait_after(&self, deliveries: u64) -> u64 {
        if self.policy.backoff_ns.is_empty() {
            return self.policy.ack_wait_ns;
        }
        let i = (deliveries.max(1) - 1) as usize;
        self.policy.backoff_ns[i.min(self.policy.backoff_ns.len() - 1)]
    }

    fn update_floor(&mut self) {
        let floor = match self.pending.iter().next() {
            None => self.delivered,
            Some((&stream_seq, p)) => SeqPair {
                consumer_seq: p.consumer_seq.saturating_sub(1).min(self.delivered.consumer_seq),
                stream_seq: stream_seq - 1,
            },
        };
        if floor.stream_seq >= self.ack_floor.stream_seq {
            self.ack_floor.stream_seq = floor.stream_seq;
            self.ack_floor.consumer_seq = self.ack_floor.consumer_seq.max(floor.consumer_seq);
        }
    }
}

/// A consumer's durable state: what [`Consumer::save`] returns.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SavedState {
    /// Last delivery.
    pub delivered: SeqPair,
    /// Acknowledgement floor.
    pub ack_floor: SeqPair,
    /// Where the search for new messages resumes.
    pub next_stream_seq: u64,
    /// Pending deliveries: (stream seq, consumer seq, deliveries).
    pub pending: Vec<(u64, u64, u64)>,
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: u64 = 1_000_000_000;

    fn explicit(max_deliver: Option<u64>) -> ConsumerPolicy {
        ConsumerPolicy {
            ack: AckPolicy::Explicit,
            ack_wait_ns: 30 * SEC,
            max_deliver,
            backoff_ns: Vec::new(),
            max_ack_pending: Some(2),
        }
    }

    fn deliver_new(c: &mut Consumer, stream_seq: u64, now: u64) -> (u64, u64) {
        assert_eq!(
            c.next(),
            Some(Next::New {
                from_stream_seq: c.next_stream_seq()
            })
        );
        c.delivered_msg(stream_seq, now)
    }

    #[test]
    fn ack_moves_the_floor_past_contiguous_acks_only() {
        let mut c = Consumer::new(explicit(None), 1);
        deliver_new(&mut c, 1, 0);
        deliver_new(&mut c, 2, 0);
        assert!(c.is_blocked());
        assert_eq!(c.ack(2, AckKind::Ack, 0), AckOutcome::Applied { freed: 1 });
        assert_eq!(c.ack_floor().stream_seq, 0);
        assert_eq!(c.ack(1, AckKind::Ack, 0), AckOutcome::Applied { freed: 1 });
        assert_eq!(
            c.ack_floor(),
            SeqPair {
                consumer_seq: 2,
                stream_seq: 2
            }
        );
        assert_eq!(c.ack(1, AckKind::Ack, 0), AckOutcome::NotPending);
    }

    #[test]
    fn unacknowledged_message_is_redelivered_after_ack_wait_then_exhausted() {
        let mut c = Consumer::new(explicit(Some(2)), 5);
        assert_eq!(deliver_new(&mut c, 7, 0), (1, 1));
        assert!(c.expire(30 * SEC - 1).is_empty());
        assert!(c.expire(30 * SEC).is_empty());
        assert_eq!(c.next(), Some(Next::Redeliver { stream_seq: 7 }));
        assert_eq!(c.delivered_msg(7, 30 * SEC), (2, 2));
        assert_eq!(
            c.expire(60 * SEC),
            vec![Exhausted {
                stream_seq: 7,
                deliveries: 2
            }]
        );
        assert_eq!(c.ack_pending(), 0);
        assert_eq!(c.ack_floor().stream_seq, 7);
    }

    #[test]
    fn nak_redelivers_now_or_after_the_delay_and_progress_extends() {
        let mut c = Consumer::new(explicit(None), 1);
        deliver_new(&mut c, 1, 0);
        deliver_new(&mut c, 2, 0);
        c.ack(1, AckKind::Nak { delay_ns: None }, 1);
        assert!(c.expire(1).is_empty());
        assert_eq!(c.next(), Some(Next::Redeliver { stream_seq: 1 }));
        c.ack(
            2,
            AckKind::Nak {
                delay_ns: Some(5 * SEC),
            },
            1,
        );
        c.delivered_msg(1, 2);
        assert!(c.expire(4 * SEC).is_empty());
        assert!(!c.has_redeliveries());
        c.expire(5 * SEC + 1);
        assert_eq!(c.next(), Some(Next::Redeliver { stream_seq: 2 }));
        c.delivered_msg(2, 6 * SEC);
        c.ack(2, AckKind::Progress, 35 * SEC);
        c.expire(36 * SEC);
        assert_eq!(c.next(), Some(Next::Redeliver { stream_seq: 1 }));
        assert_eq!(c.pending(2).map(|p| p.deadline_ns), Some(65 * SEC));
    }

    #[test]
    fn nak_of_the_last_allowed_delivery_exhausts_the_message() {
        let mut c = Consumer::new(explicit(Some(2)), 1);
        deliver_new(&mut c, 1, 0);
        c.ack(1, AckKind::Nak { delay_ns: None }, 1);
        assert!(c.expire(1).is_empty());
        c.delivered_msg(1, 2);
        c.ack(1, AckKind::Nak { delay_ns: None }, 3);
        assert_eq!(
            c.expire(3),
            vec![Exhausted {
                stream_seq: 1,
                deliveries: 2
            }]
        );
        assert_eq!(c.next(), Some(Next::New { from_stream_seq: 2 }));
    }

    #[test]
    fn term_reports_deliveries_and_never_redelivers() {
        let mut c = Consumer::new(explicit(None), 1);
        deliver_new(&mut c, 3, 0);
        assert_eq!(
            c.ack(3, AckKind::Term, 0),
            AckOutcome::Terminated { deliveries: 1 }
        );
        assert!(c.expire(u64::MAX).is_empty());
        assert_eq!(c.next(), Some(Next::New { from_stream_seq: 4 }));
    }

    #[test]
    fn ack_all_acknowledges_everything_up_to() {
        let mut policy = explicit(None);
        policy.ack = AckPolicy::All;
        policy.max_ack_pending = None;
        let mut c = Consumer::new(policy, 1);
        for seq in 1..=5 {
            deliver_new(&mut c, seq, 0);
        }
        assert_eq!(c.ack(3, AckKind::Ack, 0), AckOutcome::Applied { freed: 3 });
        assert_eq!(c.ack_pending(), 2);
        assert_eq!(c.ack_floor().stream_seq, 3);
    }

    #[test]
    fn backoff_sets_the_wait_per_delivery() {
        let mut policy = explicit(None);
        policy.backoff_ns = vec![SEC, 5 * SEC];
        let mut c = Consumer::new(policy, 1);
        deliver_new(&mut c, 1, 0);
        assert_eq!(c.next_deadline(), Some(SEC));
        c.expire(SEC);
        c.delivered_msg(1, SEC);
        assert_eq!(c.next_deadline(), Some(6 * SEC));
        c.expire(6 * SEC);
        c.delivered_msg(1, 6 * SEC);
        assert_eq!(c.next_deadline(), Some(11 * SEC));
    }

    #[test]
    fn ack_none_needs_no_acknowledgement() {
        let mut policy = explicit(None);
        policy.ack = AckPolicy::None;
        let mut c = Consumer::new(policy, 1);
        for seq in 1..=10 {
            deliver_new(&mut c, seq, 0);
        }
        assert_eq!(c.ack_pending(), 0);
        assert_eq!(c.ack_floor().stream_seq, 10);
    }

    #[test]
    fn saved_state_restores_pending_and_floors() {
        let mut c = Consumer::new(explicit(None), 1);
        deliver_new(&mut c, 1, 0);
        deliver_new(&mut c, 2, 0);
        c.ack(1, AckKind::Ack, 0);
        let saved = c.save();
        let restored = Consumer::restore(explicit(None), &saved, 100);
        assert_eq!(restored.save(), saved);
        assert_eq!(restored.pending(2).map(|p| p.deadline_ns), Some(100 + 30 * SEC));
        assert_eq!(restored.next(), Some(Next::New { from_stream_seq: 3 }));
    }
}
