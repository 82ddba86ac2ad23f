//! A webhook's definition: the create request, its validation, and the
//! form persisted in `<data_dir>/webhooks/<name>.json`.
//!
//! Validation is a pure function of the request body, so every rule has a
//! unit test and every refusal names the field and the rule it broke.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::signature::Secret;

/// Longest webhook name.
pub(crate) const NAME_BYTES_MAX: usize = 64;
/// Longest subject filter or dead-letter subject.
pub(crate) const SUBJECT_BYTES_MAX: usize = 255;
/// Longest target URL.
pub(crate) const URL_BYTES_MAX: usize = 2048;
/// Longest stream name (JetStream's limit).
pub(crate) const STREAM_NAME_BYTES_MAX: usize = 255;
/// Most attempts per message.
pub(crate) const MAX_ATTEMPTS_MAX: u64 = 100;
/// Longest a message is retried: 30 days.
pub(crate) const MAX_AGE_MS_MAX: u64 = 30 * 24 * 3_600_000;
/// Longest wait between two attempts: 1 day.
pub(crate) const BACKOFF_MS_MAX: u64 = 24 * 3_600_000;
/// Longest attempt: 5 minutes.
pub(crate) const TIMEOUT_MS_MAX: u64 = 300_000;
/// Most requests in flight per webhook.
pub(crate) const CONCURRENCY_MAX: u64 = 256;

const DEFAULT_MAX_ATTEMPTS: u32 = 10;
const DEFAULT_MAX_AGE_MS: u64 = 86_400_000;
const DEFAULT_BACKOFF_INITIAL_MS: u64 = 1000;
const DEFAULT_BACKOFF_MAX_MS: u64 = 3_600_000;
const DEFAULT_TIMEOUT_MS: u64 = 10_000;
const DEFAULT_CONCURRENCY: u32 = 4;

/// Fields a create request may have.
const FIELDS: [&str; 13] = [
    "name",
    "subject",
    "url",
    "stream",
    "secret",
    "max_attempts",
    "max_age_ms",
    "backoff_initial_ms",
    "backoff_max_ms",
    "timeout_ms",
    "concurrency",
    "ordered",
    "dead_letter_subject",
];

/// A webhook as defined (and persisted). `stream` is the stream it reads,
/// resolved at creation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct WebhookConfig {
    pub name: String,
    pub subject: String,
    pub url: String,
    pub stream: String,
    /// Herald created `stream` for this webhook (and deletes it with it).
    pub stream_created: bool,
    pub secret: String,
    pub max_attempts: u32,
    pub max_age_ms: u64,
    pub backoff_initial_ms: u64,
    pub backoff_max_ms: u64,
    pub timeout_ms: u64,
    pub concurrency: u32,
    pub ordered: bool,
    pub dead_letter_subject: String,
    /// RFC 3339 creation time.
    pub created: String,
}

impl WebhookConfig {
    /// The durable consumer (and, when Herald makes one, stream) name.
    pub fn consumer_name(&self) -> String {
        jetstream_name(&self.name)
    }

    /// Requests in flight at most: 1 when ordered.
    pub fn effective_concurrency(&self) -> u32 {
        if self.ordered {
            1
        } else {
            self.concurrency
        }
    }

    /// How long a delivery may stay unacknowledged before JetStream hands
    /// it out again: well above one attempt (the request's timeout, plus the
    /// dead-letter publish and scheduling on a loaded machine).
    pub fn ack_wait_ms(&self) -> u64 {
        self.timeout_ms.saturating_mul(2).saturating_add(2000)
    }

    /// Checks a configuration read back from disk.
    pub fn check(&self) -> Result<(), String> {
        check_name(&self.name)?;
        check_subject("subject", &self.subject, true)?;
        check_subject("dead_letter_subject", &self.dead_letter_subject, false)?;
        Secret::parse(&self.secret).map_err(|e| format!("`secret` {e}"))?;
        Ok(())
    }
}

/// `WEBHOOK_<name>`.
pub(crate) fn jetstream_name(name: &str) -> String {
    format!("WEBHOOK_{name}")
}

/// A validated create request. `stream` is the one asked for, if any; the
/// registry resolves it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CreateRequest {
    pub name: String,
    pub subject: String,
    pub url: String,
    pub stream: Option<String>,
    pub secret: Secret,
    pub max_attempts: u32,
    pub max_age_ms: u64,
    pub backoff_initial_ms: u64,
    pub backoff_max_ms: u64,
    pub timeout_ms: u64,
    pub concurrency: u32,
    pub ordered: bool,
    pub dead_letter_subject: String,
}

impl CreateRequest {
    /// Reads and checks a `POST /v1/webhooks` body. The error is a message
    /// for people that names the field.
    pub fn parse(body: &[u8]) -> Result<CreateRequest, String> {
        let value: Value =
            serde_json::from_slice(body).map_err(|e| format!("the body is not valid JSON: {e}"))?;
        let Value::Object(map) = value else {
            return Err("the body must be a JSON object".into());
        };
        CreateRequest::from_map(&map)
    }

    fn from_map(map: &Map<String, Value>) -> Result<CreateRequest, String> {
        if let Some(unknown) = map.keys().find(|k| !FIELDS.contains(&k.as_str())) {
            return Err(format!(
                "unknown field `{unknown}`; the fields are {}",
                FIELDS.join(", ")
            ));
        }
        let name = match string(map, "name")? {
            Some(name) => {
                check_name(&name)?;
                name
            }
            None => generated_name(),
        };
        let subject = string(map, "subject")?.ok_or("`subject` is required")?;
        check_subject("subject", &subject, true)?;
        let url = string(map, "url")?.ok_or("`url` is required")?;
        check_url(&url)?;
        let stream = string(map, "stream")?;
        match &stream {
            Some(stream) => check_stream_name(stream)?,
            // The webhook's own stream acks what it captures, which a stream
            // may not do where it would also capture the server's API.
            None => {
                if let Some(why) = crate::jetstream::acking_capture_refusal(&subject, false) {
                    return Err(format!(
                        "`subject` {subject:?} would also match the server's API subjects ({why}): \
                         give a narrower subject, or a `stream` of yours that captures it"
                    ));
                }
            }
        }
        let secret = match string(map, "secret")? {
            Some(text) => Secret::parse(&text).map_err(|e| format!("`secret` {e}"))?,
            None => Secret::generate().map_err(|e| e.to_string())?,
        };
        let max_attempts =
            int(map, "max_attempts", 1, MAX_ATTEMPTS_MAX)?.map_or(DEFAULT_MAX_ATTEMPTS, |n| n as u32);
        let max_age_ms = int(map, "max_age_ms", 1, MAX_AGE_MS_MAX)?.unwrap_or(DEFAULT_MAX_AGE_MS);
        let backoff_initial_ms =
            int(map, "backoff_initial_ms", 1, BACKOFF_MS_MAX)?.unwrap_or(DEFAULT_BACKOFF_INITIAL_MS);
        let backoff_max_ms = int(map, "backoff_max_ms", 1, BACKOFF_MS_MAX)?.unwrap_or(DEFAULT_BACKOFF_MAX_MS);
        if backoff_initial_ms > backoff_max_ms {
            return Err(format!(
                "`backoff_initial_ms` ({backoff_initial_ms}) must not exceed `backoff_max_ms` ({backoff_max_ms})"
            ));
        }
        let timeout_ms = int(map, "timeout_ms", 1, TIMEOUT_MS_MAX)?.unwrap_or(DEFAULT_TIMEOUT_MS);
        let concurrency =
            int(map, "concurrency", 1, CONCURRENCY_MAX)?.map_or(DEFAULT_CONCURRENCY, |n| n as u32);
        let ordered = match map.get("ordered") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => return Err("`ordered` must be true or false".into()),
        };
        let dead_letter_subject = match string(map, "dead_letter_subject")? {
            Some(subject) => {
                check_subject("dead_letter_subject", &subject, false)?;
                subject
            }
            None => format!("herald.webhooks.{name}.dead"),
        };
        if herald_core::subject_matches(subject.as_bytes(), dead_letter_subject.as_bytes()) {
            return Err(format!(
                "`dead_letter_subject` {dead_letter_subject} matches the webhook's own `subject` {subject}: dead letters would be delivered to it again"
            ));
        }
        Ok(CreateRequest {
            name,
            subject,
            url,
            stream,
            secret,
            max_attempts,
            max_age_ms,
            backoff_initial_ms,
            backoff_max_ms,
            timeout_ms,
            concurrency,
            ordered,
            dead_letter_subject,
        })
    }

    /// The definition, once the stream is known.
    pub fn into_config(self, stream: String, stream_created: bool, created: String) -> WebhookConfig {
        WebhookConfig {
            name: self.name,
            subject: self.subject,
            url: self.url,
            stream,
            stream_created,
            secret: self.secret.text().to_string(),
            max_attempts: self.max_attempts,
            max_age_ms: self.max_age_ms,
            backoff_initial_ms: self.backoff_initial_ms,
            backoff_max_ms: self.backoff_max_ms,
            timeout_ms: self.timeout_ms,
            concurrency: self.concurrency,
            ordered: self.ordered,
            dead_letter_subject: self.dead_letter_subject,
            created,
        }
    }
}

/// `wh-<12 hex digits>`.
fn generated_name() -> String {
    format!("wh-{:012x}", fastrand::u64(..) & 0xffff_ffff_ffff)
}

/// An optional string field (`null` counts as absent).
fn string(map: &Map<String, Value>, field: &str) -> Result<Option<String>, String> {
    match map.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(format!("`{field}` must be a string")),
    }
}

/// An optional integer field within `min..=max`.
fn int(map: &Map<String, Value>, field: &str, min: u64, max: u64) -> Result<Option<u64>, String> {
    let out_of_range = || format!("`{field}` must be an integer from {min} to {max}");
    match map.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => match n.as_u64() {
            Some(v) if (min..=max).contains(&v) => Ok(Some(v)),
            _ => Err(out_of_range()),
        },
        Some(_) => Err(out_of_range()),
    }
}

/// `[A-Za-z0-9_-]{1,64}`.
pub(crate) fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= NAME_BYTES_MAX
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`name` {name:?} is invalid: use 1 to {NAME_BYTES_MAX} letters, digits, `_` or `-`"
        ))
    }
}

fn check_subject(field: &str, subject: &str, wildcards: bool) -> Result<(), String> {
    if subject.len() > SUBJECT_BYTES_MAX {
        return Err(format!("`{field}` is longer than {SUBJECT_BYTES_MAX} bytes"));
    }
    let checked = if wildcards {
        herald_core::validate_subject(subject.as_bytes())
    } else {
        herald_core::validate_literal_subject(subject.as_bytes())
    };
    if checked.is_err() {
        let rule = if wildcards {
            "dot-separated non-empty tokens without spaces; `*` and `>` as whole tokens"
        } else {
            "dot-separated non-empty tokens without spaces or wildcards"
        };
        return Err(format!("`{field}` {subject:?} is not a valid subject: {rule}"));
    }
    if subject.starts_with('$') || subject.starts_with("_HERALD.") || subject.starts_with("_INBOX.") {
        return Err(format!(
            "`{field}` {subject:?} is reserved for the server (`$…`, `_HERALD.…`, `_INBOX.…`)"
        ));
    }
    Ok(())
}

fn check_url(url: &str) -> Result<(), String> {
    if url.len() > URL_BYTES_MAX {
        return Err(format!("`url` is longer than {URL_BYTES_MAX} bytes"));
    }
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("`url` {url:?} is not a URL: {e}"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(format!("`url` must be http or https, not {}", parsed.scheme()));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(format!("`url` {url:?} has no host"));
    }
    Ok(())
}

fn check_stream_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= STREAM_NAME_BYTES_MAX
        && name
            .bytes()
            .all(|b| b > b' ' && b < 0x7f && !matches!(b, b'.' | b'*' | b'>' | b'/' | b'\\'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`stream` {name:?} is not a valid stream name: 1 to {STREAM_NAME_BYTES_MAX} printable characters without spaces, `.`, `*`, `>`, `/` or `\\`"
        ))
    }
}

/// Whether a stream with subject `pattern` captures everything `filter`
/// selects.
pub(crate) fn covers(pattern: &str, filter: &str) -> bool {
    herald_core::pattern_covers(pattern, filter)
}

/// Whether some subject matches both patterns.
pub(crate) fn overlaps(a: &str, b: &str) -> bool {
    let mut a = a.split('.');
    let mut b = b.split('.');
    loop {
        match (a.next(), b.next()) {
            (Some(">"), Some(_)) | (Some(_), Some(">")) => return true,
            (Some(x), Some(y)) if x == y || x == "*" || y == "*" => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(value: Value) -> Result<CreateRequest, String> {
        CreateRequest::parse(value.to_string().as_bytes())
    }

    fn minimal() -> Value {
        json!({"subject": "orders.>", "url": "http://127.0.0.1:9/hook"})
    }

    fn with(field: &str, value: Value) -> Result<CreateRequest, String> {
        let mut body = minimal();
        body[field] = value;
        parse(body)
    }

    #[test]
    fn defaults_are_filled_in() {
        let r = parse(minimal()).unwrap();
        assert!(
            r.name.starts_with("wh-") && check_name(&r.name).is_ok(),
            "{}",
            r.name
        );
        assert_eq!(r.stream, None);
        assert!(r.secret.text().starts_with("whsec_"));
        assert_eq!(
            (
                r.max_attempts,
                r.max_age_ms,
                r.backoff_initial_ms,
                r.backoff_max_ms
            ),
            (10, 86_400_000, 1000, 3_600_000)
        );
        assert_eq!((r.timeout_ms, r.concurrency, r.ordered), (10_000, 4, false));
        assert_eq!(r.dead_letter_subject, format!("herald.webhooks.{}.dead", r.name));
    }

    #[test]
    fn a_subject_reaching_the_api_needs_a_stream_of_the_users() {
        let broad = json!({"subject": "*.created", "url": "https://example.test/x"});
        assert!(parse(broad.clone())
            .unwrap_err()
            .contains("the server's API subjects"));
        let mut with_stream = broad;
        with_stream["stream"] = json!("EVENTS");
        assert_eq!(parse(with_stream).unwrap().stream.as_deref(), Some("EVENTS"));
    }

    #[test]
    fn every_field_is_read() {
        let secret = format!("whsec_{}", "A".repeat(32));
        let r = parse(json!({
            "name": "billing_1", "subject": "orders.*", "url": "https://example.test/x",
            "stream": "ORDERS", "secret": secret, "max_attempts": 3, "max_age_ms": 5000,
            "backoff_initial_ms": 10, "backoff_max_ms": 20, "timeout_ms": 500,
            "concurrency": 256, "ordered": true, "dead_letter_subject": "dead.orders"
        }))
        .unwrap();
        assert_eq!(r.name, "billing_1");
        assert_eq!(r.stream.as_deref(), Some("ORDERS"));
        assert_eq!(r.secret.text(), secret);
        assert_eq!(
            (r.max_attempts, r.max_age_ms, r.timeout_ms, r.concurrency),
            (3, 5000, 500, 256)
        );
        assert_eq!(
            (r.backoff_initial_ms, r.backoff_max_ms, r.ordered),
            (10, 20, true)
        );
        assert_eq!(r.dead_letter_subject, "dead.orders");
        let config = r.into_config("ORDERS".into(), false, "now".into());
        assert_eq!(config.effective_concurrency(), 1);
        assert_eq!(config.consumer_name(), "WEBHOOK_billing_1");
        assert!(config.ack_wait_ms() > 2 * config.timeout_ms);
        assert_eq!(config.check(), Ok(()));
    }

    #[test]
    fn invalid_fields_are_named_in_the_error() {
        let cases: Vec<(Result<CreateRequest, String>, &str)> = vec![
            (CreateRequest::parse(b"{"), "not valid JSON"),
            (CreateRequest::parse(b"[]"), "must be a JSON object"),
            (with("colour", json!("red")), "unknown field `colour`"),
            (with("metadata", json!({})), "unknown field `metadata`"),
            (parse(json!({"url": "http://a/"})), "`subject` is required"),
            (parse(json!({"subject": "a"})), "`url` is required"),
            (with("name", json!("a.b")), "`name`"),
            (with("name", json!("")), "`name`"),
            (with("name", json!("x".repeat(65))), "`name`"),
            (with("name", json!(7)), "`name` must be a string"),
            (with("subject", json!("a..b")), "`subject`"),
            (with("subject", json!("$JS.API.>")), "reserved"),
            (with("subject", json!("*.Zn.*")), "the server's API subjects"),
            (with("subject", json!(">")), "the server's API subjects"),
            (with("url", json!("ftp://host/x")), "http or https"),
            (with("url", json!("not a url")), "`url`"),
            (with("stream", json!("A.B")), "`stream`"),
            (with("secret", json!("abc")), "`secret` must start with `whsec_`"),
            (with("secret", json!("whsec_AAAA")), "`secret` the key must be"),
            (
                with("max_attempts", json!(0)),
                "`max_attempts` must be an integer from 1 to 100",
            ),
            (with("max_attempts", json!(101)), "`max_attempts`"),
            (with("max_attempts", json!("3")), "`max_attempts`"),
            (with("max_attempts", json!(1.5)), "`max_attempts`"),
            (with("max_age_ms", json!(-1)), "`max_age_ms`"),
            (with("backoff_initial_ms", json!(0)), "`backoff_initial_ms`"),
            (
                with("backoff_max_ms", json!(BACKOFF_MS_MAX + 1)),
                "`backoff_max_ms`",
            ),
            (
                with("backoff_initial_ms", json!(4_000_000)),
                "must not exceed `backoff_max_ms`",
            ),
            (with("timeout_ms", json!(0)), "`timeout_ms`"),
            (
                with("concurrency", json!(257)),
                "`concurrency` must be an integer from 1 to 256",
            ),
            (with("ordered", json!("yes")), "`ordered` must be true or false"),
            (
                with("dead_letter_subject", json!("dead.*")),
                "`dead_letter_subject`",
            ),
            (
                with("dead_letter_subject", json!("orders.dead")),
                "matches the webhook's own",
            ),
        ];
        for (i, (result, needle)) in cases.into_iter().enumerate() {
            let err = result.expect_err(&format!("case {i} ({needle}) was accepted"));
            assert!(err.contains(needle), "case {i}: {err:?} lacks {needle:?}");
        }
    }

    #[test]
    fn nulls_count_as_absent() {
        let mut body = minimal();
        body["max_attempts"] = Value::Null;
        body["stream"] = Value::Null;
        let r = parse(body).unwrap();
        assert_eq!((r.max_attempts, r.stream), (10, None));
    }

    #[test]
    fn covers_is_subset_of_matches() {
        assert!(covers(">", "a.b"));
        assert!(covers("orders.>", "orders.*"));
        assert!(covers("orders.>", "orders.eu.>"));
        assert!(covers("orders.*", "orders.eu"));
        assert!(covers("orders.*", "orders.*"));
        assert!(covers("orders.eu", "orders.eu"));
        assert!(!covers("orders.eu", "orders.*"));
        assert!(!covers("orders.*", "orders.>"));
        assert!(!covers("orders.>", "orders"));
        assert!(!covers("orders.*", "orders.eu.x"));
        assert!(!covers("orders.eu", "orders.us"));
        assert!(!covers("a.b", "a"));
    }

    #[test]
    fn overlaps_when_some_subject_matches_both() {
        assert!(overlaps("orders.*", "orders.eu"));
        assert!(overlaps("orders.eu", "*.eu"));
        assert!(overlaps("orders.>", "*.eu.x"));
        assert!(!overlaps("orders.*", "orders"));
        assert!(!overlaps("orders.eu", "orders.us"));
        assert!(!overlaps("a.b.c", "a.*"));
    }
}
