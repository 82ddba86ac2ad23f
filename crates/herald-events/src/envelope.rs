//! The event envelope: CloudEvents attributes carried as message headers.
//!
//! Events are stored in CloudEvents' binary content mode of the NATS
//! binding: each attribute is a `ce-<name>` header, the data is the
//! payload, and its media type is the `content-type` header. Besides the
//! required attributes (`specversion`, `id`, `source`, `type`) Herald sets
//! `subject` (the aggregate), `time`, and three extensions:
//! `schemaversion`, `correlationid` and `causationid`. Any NATS or
//! CloudEvents consumer can read them without this crate.

use herald_client::jetstream::Timestamp;
use herald_client::Headers;

use crate::{Error, Result};

/// `ce-specversion`: always `1.0`.
pub const SPEC_VERSION: &str = "ce-specversion";
/// `ce-id`: the event's unique id (a ULID).
pub const ID: &str = "ce-id";
/// `ce-source`: who produced it.
pub const SOURCE: &str = "ce-source";
/// `ce-type`: the event type, e.g. `Deposited`.
pub const TYPE: &str = "ce-type";
/// `ce-subject`: the aggregate, `<category>.<id>`.
pub const SUBJECT: &str = "ce-subject";
/// `ce-time`: when it was created (RFC 3339).
pub const TIME: &str = "ce-time";
/// `ce-schemaversion` (extension): the version of the type's schema.
pub const SCHEMA_VERSION: &str = "ce-schemaversion";
/// `ce-correlationid` (extension): the id shared by everything one request
/// caused, across services.
pub const CORRELATION_ID: &str = "ce-correlationid";
/// `ce-causationid` (extension): the id of the command or event that
/// directly caused this one.
pub const CAUSATION_ID: &str = "ce-causationid";
/// `content-type`: the media type of the payload (CloudEvents'
/// `datacontenttype` in binary mode).
pub const CONTENT_TYPE: &str = "content-type";

/// The CloudEvents version written.
pub const CLOUDEVENTS_VERSION: &str = "1.0";

/// A new unique, time-ordered id (ULID, 26 characters).
pub fn new_id() -> String {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    // 80 random bits (from_parts keeps the low 80).
    ulid::Ulid::from_parts(now_ms, fastrand::u128(..)).to_string()
}

/// Where an event or command came from: the message being handled when it
/// was produced. Passing it on is what links a chain of commands and
/// events: the correlation id stays, the causation id is the parent's id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Causation {
    /// Shared by the whole chain; `None` starts a new chain (the first
    /// event's id becomes the correlation id).
    pub correlation_id: Option<String>,
    /// The id of the direct parent, if any.
    pub causation_id: Option<String>,
}

impl Causation {
    /// Nothing caused it: a new chain starts.
    pub fn none() -> Causation {
        Causation::default()
    }

    /// Caused by the message with this id and correlation id.
    pub fn caused_by(id: &str, correlation_id: &str) -> Causation {
        Causation {
            correlation_id: Some(correlation_id.to_string()),
            causation_id: Some(id.to_string()),
        }
    }

    /// Caused by the event in `envelope`.
    pub fn from_event(envelope: &Envelope) -> Causation {
        Causation::caused_by(&envelope.id, &envelope.correlation_id)
    }
}

/// An event's CloudEvents attributes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// `id`: unique, a ULID when written by this crate.
    pub id: String,
    /// `type`: the event type.
    pub event_type: String,
    /// `source`: the producing service, e.g. `herald://billing`.
    pub source: String,
    /// `subject`: the aggregate, `<category>.<id>`.
    pub subject: String,
    /// `time`: when the event was created.
    pub time: Timestamp,
    /// `schemaversion`: the version of the type's schema the data follows.
    pub schema_version: u32,
    /// `datacontenttype`, e.g. `application/json`.
    pub content_type: String,
    /// `correlationid`: the chain this event belongs to.
    pub correlation_id: String,
    /// `causationid`: the command or event that caused it, if any.
    pub causation_id: Option<String>,
}

/// The attributes of an event being written, borrowed: appends build
/// their headers from these without an owned [`Envelope`] per event.
pub(crate) struct Attributes<'a> {
    pub id: &'a str,
    pub event_type: &'a str,
    pub source: &'a str,
    pub subject: &'a str,
    /// RFC 3339, formatted once per append.
    pub time: &'a str,
    pub schema_version: u32,
    pub content_type: &'a str,
    pub correlation_id: &'a str,
    pub causation_id: Option<&'a str>,
}

impl Attributes<'_> {
    /// The attributes as headers, in the order [`Envelope::write`] uses.
    pub fn headers(&self) -> Headers {
        let mut headers = Headers::new();
        headers.append(SPEC_VERSION, CLOUDEVENTS_VERSION);
        headers.append(ID, self.id);
        headers.append(SOURCE, self.source);
        headers.append(TYPE, self.event_type);
        headers.append(SUBJECT, self.subject);
        headers.append(TIME, self.time);
        let mut version = itoa::Buffer::new();
        headers.append(SCHEMA_VERSION, version.format(self.schema_version));
        headers.append(CONTENT_TYPE, self.content_type);
        headers.append(CORRELATION_ID, self.correlation_id);
        if let Some(causation) = self.causation_id {
            headers.append(CAUSATION_ID, causation);
        }
        headers
    }
}

impl Envelope {
    /// Writes the attributes as headers.
    pub fn write(&self, headers: &mut Headers) {
        let time = self.time.to_rfc3339();
        let attributes = Attributes {
            id: &self.id,
            event_type: &self.event_type,
            source: &self.source,
            subject: &self.subject,
            time: &time,
            schema_version: self.schema_version,
            content_type: &self.content_type,
            correlation_id: &self.correlation_id,
            causation_id: self.causation_id.as_deref(),
        };
        for (name, value) in attributes.headers().iter() {
            headers.append(name, value);
        }
    }

    /// Reads the attributes from headers. `id` and `type` are required;
    /// the others default (schema version 1, JSON, the id as correlation
    /// id) so that events published by plain NATS clients can be read.
    pub fn read(headers: Option<&Headers>) -> std::result::Result<Envelope, String> {
        // One pass over the headers (a delivered event has a dozen), taking
        // the first value of each attribute.
        let mut found: [Option<&str>; 8] = [None; 8];
        const NAMES: [&str; 8] = [
            ID,
            TYPE,
            SCHEMA_VERSION,
            TIME,
            CORRELATION_ID,
            CAUSATION_ID,
            SOURCE,
            SUBJECT,
        ];
        for (name, value) in headers.into_iter().flat_map(Headers::iter) {
            if let Some(slot) = NAMES.iter().position(|n| n.eq_ignore_ascii_case(name)) {
                found[slot].get_or_insert(value);
            }
        }
        let [id, event_type, schema_version, time, correlation, causation, source, subject] = found;
        let id = id.ok_or("no ce-id header")?.to_string();
        let event_type = event_type.ok_or("no ce-type header")?.to_string();
        let schema_version = match schema_version {
            None => 1,
            Some(text) => text
                .parse()
                .map_err(|_| format!("ce-schemaversion {text:?} is not a number"))?,
        };
        let time = match time {
            None => Timestamp::default(),
            Some(text) => Timestamp::parse_rfc3339(text).map_err(|e| format!("ce-time {text:?}: {e}"))?,
        };
        let content_type = headers
            .and_then(|h| h.get(CONTENT_TYPE))
            .unwrap_or(crate::codec::JSON);
        Ok(Envelope {
            correlation_id: correlation.unwrap_or(&id).to_string(),
            causation_id: causation.map(str::to_string),
            source: source.unwrap_or_default().to_string(),
            subject: subject.unwrap_or_default().to_string(),
            content_type: content_type.to_string(),
            id,
            event_type,
            time,
            schema_version,
        })
    }
}

/// Checks an event or command type name: not empty, at most 256 bytes, no
/// whitespace or control characters (it travels in a header).
pub fn check_type_name(name: &str) -> Result<()> {
    if name.is_empty() || name.len() > 256 || name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(Error::invalid(
            "type name",
            format!("{name:?}: 1 to 256 bytes without spaces or control characters"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_survives_headers() {
        let envelope = Envelope {
            id: new_id(),
            event_type: "Deposited".into(),
            source: "herald://bank".into(),
            subject: "accounts.a-1".into(),
            time: Timestamp::from_unix(1_700_000_000, 5),
            schema_version: 3,
            content_type: "application/json".into(),
            correlation_id: "c-1".into(),
            causation_id: Some("cmd-9".into()),
        };
        let mut headers = Headers::new();
        envelope.write(&mut headers);
        assert_eq!(headers.get(SPEC_VERSION), Some("1.0"));
        assert_eq!(Envelope::read(Some(&headers)).unwrap(), envelope);
    }

    #[test]
    fn envelope_of_a_plain_message_is_an_error_or_defaults() {
        assert!(Envelope::read(None).unwrap_err().contains("ce-id"));
        let mut headers = Headers::new();
        headers.append(ID, "x");
        headers.append(TYPE, "T");
        let envelope = Envelope::read(Some(&headers)).unwrap();
        assert_eq!(
            (envelope.schema_version, envelope.correlation_id.as_str()),
            (1, "x")
        );
        headers.append(SCHEMA_VERSION, "two");
        assert!(Envelope::read(Some(&headers)).is_err());
    }

    #[test]
    fn ids_are_unique_and_sortable() {
        let a = new_id();
        let b = new_id();
        assert_eq!(a.len(), 26);
        assert_ne!(a, b);
    }
}
