//! Herald's router core: subjects, the subscription index and matching, as
//! plain data structures with no I/O, no locks and no clocks. The server
//! wraps them; tests drive them directly.
//!
//! The main types:
//! - [`Sublist`]: subscriptions by subject pattern (`*` matches one token,
//!   `>` one or more) and queue group, matched against literal subjects.
//! - [`MatchResult`]: what a subject matches — plain subscriptions, and the
//!   members of each queue group (a message goes to one member per group).
//! - [`MatchCache`]: a bounded per-connection cache of match results,
//!   invalidated by the index's generation number.
//! - [`validate_subject`] and friends, with [`SubjectError`].
//! - [`consumer::Consumer`]: a JetStream consumer's delivery and
//!   acknowledgement state machine (clock passed in).
//!
//! ```
//! use herald_core::{subject_matches, Sublist};
//!
//! let mut index = Sublist::new();
//! index.insert(b"orders.>", None, "audit").unwrap();
//! index.insert(b"orders.*", Some(b"billing"), "billing-1").unwrap();
//! index.insert(b"orders.*", Some(b"billing"), "billing-2").unwrap();
//!
//! let matched = index.matches(b"orders.created");
//! assert_eq!(matched.plain, vec!["audit"]);
//! assert_eq!(matched.queues[0].members.len(), 2);
//! assert!(subject_matches(b"orders.*", b"orders.created"));
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod consumer;
mod dedup;
mod inline_vec;
mod match_cache;
mod result;
mod subject;
mod sublist;
mod tokens;

pub use dedup::{DedupWindow, DEDUP_IDS_MAX};
pub use match_cache::MatchCache;
pub use result::{MatchResult, QueueGroup};
pub use subject::{
    is_literal, pattern_covers, subject_matches, validate_literal_subject, validate_queue_name,
    validate_subject, SubjectError, SUBJECT_LEN_MAX,
};
pub use sublist::Sublist;
