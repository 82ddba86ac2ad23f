//! Checking the configurations clients send and turning them into the
//! settings the server enforces.

use std::time::Duration;

use herald_core::{pattern_covers, validate_subject};
use herald_protocol::jetstream::config::{DiscardPolicy, RetentionPolicy, StorageType, StreamConfig};
use herald_protocol::jetstream::ApiErrorCode as Code;
use herald_storage::{Discard, StoreConfig, SEGMENT_BYTES_DEFAULT};

use super::settings::{Retention, StreamSettings, SyncPolicy};
use super::{err, err_arg, JsError};

/// Metadata key of the Herald extension that sets a stream's sync policy.
pub(crate) const SYNC_METADATA_KEY: &str = "herald.sync";
/// Longest stream or consumer name (a path component on disk).
pub(crate) const NAME_LEN_MAX: usize = 255;

/// Whether `name` may name a stream or consumer: it becomes a subject token
/// and a directory name.
pub(crate) fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= NAME_LEN_MAX
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b > b' ' && b < 0x7f && !matches!(b, b'.' | b'*' | b'>' | b'/' | b'\\'))
}

/// Checks a stream configuration (defaults already applied) and derives
/// its settings.
pub(crate) fn stream_settings(
    config: &StreamConfig,
    server_sync: SyncPolicy,
) -> Result<StreamSettings, JsError> {
    let invalid = |why: &str| -> JsError { err_arg(Code::StreamInvalidConfig, why) };
    if config.name.contains(['/', '\\']) {
        return Err(err(Code::StreamNameContainsPathSeparators));
    }
    if !valid_name(&config.name) {
        return Err(err_arg(Code::StreamInvalidConfig, "invalid stream name"));
    }
    if config.is_derived() {
        return Err(invalid("mirrors and sources are not supported yet"));
    }
    if config.subjects.is_empty() {
        return Err(invalid("stream needs at least one subject"));
    }
    for (i, subject) in config.subjects.iter().enumerate() {
        if validate_subject(subject.as_bytes()).is_err() {
            return Err(invalid(&format!("invalid subject {subject:?}")));
        }
        if let Some(why) = acking_capture_refusal(subject, config.no_ack) {
            return Err(invalid(why));
        }
        if config.subjects[..i]
            .iter()
            .any(|other| subjects_overlap(other, subject))
        {
            return Err(invalid("subjects overlap"));
        }
    }
    if config.max_age < 0 || config.duplicate_window < 0 {
        return Err(invalid("negative duration"));
    }
    if config.max_age > 0 && config.duplicate_window > config.max_age {
        return Err(invalid("duplicates window can not be larger then max age"));
    }
    if config.num_replicas > 1 {
        return Err(invalid("replicas > 1 not supported in non-clustered mode"));
    }
    let sync = match config.metadata.get(SYNC_METADATA_KEY) {
        None => server_sync,
        Some(text) => SyncPolicy::parse(text)
            .ok_or_else(|| invalid(&format!("{SYNC_METADATA_KEY} must be always, interval or never")))?,
    };
    let positive = |n: i64| (n > 0).then_some(n as u64);
    Ok(StreamSettings {
        subjects: config.subjects.clone(),
        store: StoreConfig {
            max_msgs: positive(config.max_msgs),
            max_bytes: positive(config.max_bytes),
            max_age: (config.max_age > 0).then(|| Duration::from_nanos(config.max_age as u64)),
            max_msgs_per_subject: positive(config.max_msgs_per_subject),
            discard: match config.discard {
                DiscardPolicy::Old => Discard::Old,
                DiscardPolicy::New => Discard::New,
            },
            discard_new_per_subject: config.discard_new_per_subject,
            segment_bytes_max: SEGMENT_BYTES_DEFAULT,
        },
        retention: match config.retention {
            RetentionPolicy::Limits => Retention::Limits,
            RetentionPolicy::Interest => Retention::Interest,
            RetentionPolicy::WorkQueue => Retention::WorkQueue,
        },
        max_msg_size: (config.max_msg_size > 0).then_some(config.max_msg_size as u32),
        duplicate_window_ns: config.duplicate_window.max(0) as u64,
        allow_rollup: config.allow_rollup_hdrs,
        deny_delete: config.deny_delete,
        deny_purge: config.deny_purge,
        allow_direct: config.allow_direct,
        sync,
        no_ack: config.no_ack,
        max_consumers: positive(config.max_consumers),
        memory: config.storage == StorageType::Memory,
        allow_msg_ttl: config.allow_msg_ttl,
        sealed: config.sealed,
        allow_atomic: config.allow_atomic,
    })
}

/// Subject spaces of the server's own APIs: a stream that answered what it
/// captures there with PubAcks would answer API requests and replies in the
/// server's place.
const API_SPACES: [&str; 3] = ["$JS.>", "$JSC.>", "$NRG.>"];

/// Why a stream may not capture `subject` unless it is `no_ack`, if it may
/// not. The rules and messages are nats-server's, so a configuration one
/// server refuses the other refuses too.
pub(crate) fn acking_capture_refusal(subject: &str, no_ack: bool) -> Option<&'static str> {
    if no_ack {
        return None;
    }
    if subject == ">" {
        return Some("capturing all subjects requires no-ack to be true");
    }
    // Advisories under $JS.EVENT are events like any other.
    if API_SPACES.iter().any(|space| subjects_overlap(subject, space))
        && !pattern_covers("$JS.EVENT.>", subject)
    {
        return Some("subjects that overlap with jetstream api require no-ack to be true");
    }
    if subjects_overlap(subject, "$SYS.>") && !pattern_covers("$SYS.ACCOUNT.>", subject) {
        return Some("subjects that overlap with system api require no-ack to be true");
    }
    None
}

/// Whether some subject matches both patterns.
pub(crate) fn subjects_overlap(a: &str, b: &str) -> bool {
    let mut a = a.split('.');
    let mut b = b.split('.');
    loop {
        match (a.next(), b.next()) {
            (Some(">"), Some(_)) | (Some(_), Some(">")) => return true,
            (Some(x), Some(y)) => {
                if x != y && x != "*" && y != "*" {
                    return false;
                }
            }
            (None, None) => return true,
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlap_follows_wildcards() {
        assert!(subjects_overlap("orders.*", "orders.new"));
        assert!(subjects_overlap("orders.>", "orders.*.x"));
        assert!(subjects_overlap("*.new", "orders.*"));
        assert!(!subjects_overlap("orders.*", "orders.new.x"));
        assert!(!subjects_overlap("orders.new", "orders.old"));
        assert!(!subjects_overlap("a.>", "a"));
    }

    #[test]
    fn acking_streams_may_not_capture_the_server_api_spaces() {
        let refused = |subject| acking_capture_refusal(subject, false);
        assert_eq!(
            refused(">"),
            Some("capturing all subjects requires no-ack to be true")
        );
        for subject in [
            "$JS.API.>",
            "*.API.STREAM.INFO.X",
            "*.*",
            "$JSC.R.x",
            "$NRG.>",
            "*.>",
        ] {
            assert!(
                refused(subject).is_some_and(|why| why.contains("jetstream api")),
                "{subject}"
            );
        }
        assert!(refused("$SYS.REQ.>").is_some_and(|why| why.contains("system api")));
        for subject in [
            "orders.>",
            "*",
            "$JS.EVENT.ADVISORY.>",
            "$SYS.ACCOUNT.x.CONNECT",
            "_INBOX.>",
        ] {
            assert_eq!(refused(subject), None, "{subject}");
        }
        for subject in [">", "$JS.API.>", "$SYS.>"] {
            assert_eq!(
                acking_capture_refusal(subject, true),
                None,
                "{subject} with no_ack"
            );
        }
    }

    #[test]
    fn names_that_cannot_be_tokens_or_directories_are_refused() {
        assert!(valid_name("ORDERS_1-x"));
        for bad in ["", "a.b", "a*", "a>", "a b", "../x", ".hidden", "a/b"] {
            assert!(!valid_name(bad), "{bad:?}");
        }
    }
}
