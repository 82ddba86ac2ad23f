//! CloudEvents 1.0 in and out of NATS messages.
//!
//! Herald carries a CloudEvent as a NATS message in *binary mode*: every
//! context attribute is a `ce-<name>` header, `datacontenttype` is the
//! `content-type` header, and the data is the payload. This module converts
//! the HTTP forms into that (structured `application/cloudevents+json`,
//! batch `application/cloudevents-batch+json`, binary `ce-*` headers) and
//! renders any message back as structured JSON (a message published without
//! attributes gets defaults, see [`CloudEvent::from_message`]).
//!
//! ```
//! use herald_protocol::cloudevents::CloudEvent;
//!
//! let body = br#"{"specversion":"1.0","id":"1","source":"/shop","type":"order.created","data":{"n":1}}"#;
//! let event = CloudEvent::parse_structured(body).unwrap();
//! assert_eq!(event.attribute("type"), Some("order.created"));
//! assert_eq!(event.data, br#"{"n":1}"#);
//! let headers = event.to_headers();
//! assert_eq!(headers.get("ce-id"), Some("1"));
//! assert_eq!(headers.get("content-type"), Some("application/json"));
//! ```

use std::borrow::Cow;

use base64::Engine as _;
use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use thiserror::Error;

use crate::Headers;

/// The only CloudEvents version accepted.
pub const SPEC_VERSION: &str = "1.0";
/// Most events in one batch.
pub const BATCH_EVENTS_MAX: usize = 1000;
/// Longest attribute name (the specification's recommendation).
pub const ATTRIBUTE_NAME_BYTES_MAX: usize = 20;
/// Header prefix of attributes in binary mode.
const HEADER_PREFIX: &str = "ce-";
/// Attributes every event must carry.
const REQUIRED: [&str; 4] = ["specversion", "id", "source", "type"];

/// Why a body or header set is not a valid CloudEvent.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CloudEventError {
    /// The body is not JSON of the expected shape.
    #[error("invalid JSON: {0}")]
    Json(String),
    /// A required attribute is missing or empty.
    #[error("missing required attribute `{0}`")]
    Missing(&'static str),
    /// `specversion` is not 1.0.
    #[error("unsupported specversion `{0}` (only 1.0 is supported)")]
    SpecVersion(String),
    /// An attribute name breaks the naming rules.
    #[error("invalid attribute name `{0}`: lowercase letters and digits only, at most 20")]
    AttributeName(String),
    /// An attribute value has the wrong type or form.
    #[error("invalid value of attribute `{name}`: {reason}")]
    AttributeValue {
        /// The attribute.
        name: String,
        /// Why.
        reason: String,
    },
    /// Both `data` and `data_base64` are present, or `data_base64` is not base64.
    #[error("invalid data: {0}")]
    Data(String),
    /// A batch is not an array, is empty or too long.
    #[error("invalid batch: {0}")]
    Batch(String),
    /// One event of a batch is invalid.
    #[error("event {index} of the batch: {error}")]
    InBatch {
        /// Its position, from 0.
        index: usize,
        /// What is wrong with it.
        error: Box<CloudEventError>,
    },
}

/// One event: context attributes in order, the content type, the data.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CloudEvent {
    /// Every context attribute but `datacontenttype`, by name (lowercase).
    pub attributes: Vec<(String, String)>,
    /// `datacontenttype`.
    pub content_type: Option<String>,
    /// The data, as bytes.
    pub data: Vec<u8>,
}

/// What a message without CloudEvents headers is shown as.
#[derive(Debug, Clone, Copy)]
pub struct Defaults<'a> {
    /// The NATS subject it was published to.
    pub subject: &'a str,
    /// An id for it (a stream sequence, or a generated one).
    pub id: &'a str,
    /// When it was stored or received, RFC 3339.
    pub time: Option<&'a str>,
}

impl CloudEvent {
    /// The value of attribute `name`.
    pub fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Sets attribute `name`, replacing an earlier value.
    pub fn set_attribute(&mut self, name: &str, value: impl Into<String>) {
        let value = value.into();
        match self.attributes.iter_mut().find(|(n, _)| n == name) {
            Some(entry) => entry.1 = value,
            None => self.attributes.push((name.to_string(), value)),
        }
    }

    /// Parses one structured-mode event (`application/cloudevents+json`).
    pub fn parse_structured(body: &[u8]) -> Result<CloudEvent, CloudEventError> {
        let members: Members<'_> = serde_json::from_slice(body).map_err(json_error)?;
        CloudEvent::from_members(members)
    }

    /// Parses a batch (`application/cloudevents-batch+json`): a JSON array
    /// of 1 to [`BATCH_EVENTS_MAX`] structured events.
    pub fn parse_batch(body: &[u8]) -> Result<Vec<CloudEvent>, CloudEventError> {
        let items: Vec<&RawValue> = match serde_json::from_slice(body) {
            Ok(items) => items,
            Err(e) if e.is_data() => {
                return Err(CloudEventError::Batch(
                    "the body must be a JSON array of events".into(),
                ))
            }
            Err(e) => return Err(json_error(e)),
        };
        if items.is_empty() {
            return Err(CloudEventError::Batch("the batch is empty".into()));
        }
        if items.len() > BATCH_EVENTS_MAX {
            return Err(CloudEventError::Batch(format!(
                "{} events, more than the maximum of {BATCH_EVENTS_MAX}",
                items.len()
            )));
        }
        items
            .into_iter()
            .enumerate()
            .map(|(index, item)| {
                CloudEvent::parse_structured(item.get().as_bytes()).map_err(|error| {
                    CloudEventError::InBatch {
                        index,
                        error: Box::new(error),
                    }
                })
            })
            .collect()
    }

    /// An event from the members of a structured-mode JSON object, values
    /// still as their JSON text.
    fn from_members(members: Members<'_>) -> Result<CloudEvent, CloudEventError> {
        let mut event = CloudEvent {
            attributes: Vec::with_capacity(members.0.len()),
            ..CloudEvent::default()
        };
        let mut data = None;
        let mut data_base64 = None;
        for (name, value) in members.0 {
            match name.as_ref() {
                "data" => data = Some(value),
                "data_base64" => data_base64 = Some(value),
                "datacontenttype" => event.content_type = Some(string_attribute(&name, value)?),
                _ => {
                    check_name(&name)?;
                    if event.attribute(&name).is_some() {
                        return Err(CloudEventError::AttributeValue {
                            name: name.into_owned(),
                            reason: "the attribute appears twice".into(),
                        });
                    }
                    let value = string_attribute(&name, value)?;
                    event.attributes.push((name.into_owned(), value));
                }
            }
        }
        event.data = match (data, data_base64) {
            (Some(_), Some(_)) => {
                return Err(CloudEventError::Data(
                    "both `data` and `data_base64` are present".into(),
                ))
            }
            (None, Some(encoded)) => {
                let encoded = json_string(encoded.get())
                    .map_err(|_| CloudEventError::Data("`data_base64` must be a string".into()))?;
                base64::engine::general_purpose::STANDARD
                    .decode(encoded.as_bytes())
                    .map_err(|e| CloudEventError::Data(format!("`data_base64` is not base64: {e}")))?
            }
            (Some(raw), None) => {
                let text = raw.get();
                let json = event.content_type.as_deref().is_none_or(is_json);
                if !json && text.starts_with('"') {
                    // Text data of a non-JSON type travels as a JSON string.
                    let text = json_string(text).map_err(|e| CloudEventError::Json(e.to_string()))?;
                    text.into_owned().into_bytes()
                } else {
                    if event.content_type.is_none() {
                        event.content_type = Some("application/json".into());
                    }
                    text.as_bytes().to_vec()
                }
            }
            (None, None) => Vec::new(),
        };
        event.validate()?;
        Ok(event)
    }

    /// An event in binary mode: `ce-*` headers (names in any case), the
    /// `Content-Type`, and the body as data.
    pub fn from_binary<'a>(
        headers: impl IntoIterator<Item = (&'a str, &'a str)>,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> Result<CloudEvent, CloudEventError> {
        let mut event = CloudEvent {
            content_type: content_type.map(str::to_string),
            data: body,
            ..CloudEvent::default()
        };
        for (name, value) in headers {
            let Some(name) = strip_prefix_ignore_case(name, HEADER_PREFIX) else {
                continue;
            };
            let name = name.to_ascii_lowercase();
            check_name(&name)?;
            let value = percent_decode(value).ok_or_else(|| CloudEventError::AttributeValue {
                name: name.clone(),
                reason: "bad percent-encoding or not UTF-8".into(),
            })?;
            event.attributes.push((name, value));
        }
        event.validate()?;
        Ok(event)
    }

    /// Whether a header set carries a binary-mode event (`ce-specversion`).
    pub fn is_binary<'a>(mut headers: impl Iterator<Item = &'a str>) -> bool {
        headers.any(|name| name.eq_ignore_ascii_case("ce-specversion"))
    }

    /// Checks the required attributes and the forms of the known ones.
    pub fn validate(&self) -> Result<(), CloudEventError> {
        for name in REQUIRED {
            if self.attribute(name).is_none_or(str::is_empty) {
                return Err(CloudEventError::Missing(name));
            }
        }
        let version = self.attribute("specversion").unwrap_or_default();
        if version != SPEC_VERSION {
            return Err(CloudEventError::SpecVersion(version.to_string()));
        }
        if let Some(time) = self.attribute("time") {
            if !is_rfc3339(time) {
                return Err(CloudEventError::AttributeValue {
                    name: "time".into(),
                    reason: format!("`{time}` is not an RFC 3339 timestamp"),
                });
            }
        }
        for (name, value) in &self.attributes {
            if value.contains(['\r', '\n']) {
                return Err(CloudEventError::AttributeValue {
                    name: name.clone(),
                    reason: "line breaks are not allowed".into(),
                });
            }
        }
        Ok(())
    }

    /// The NATS header block of this event: `ce-<name>` per attribute and
    /// `content-type`.
    pub fn to_headers(&self) -> Headers {
        let mut headers = Headers::new();
        for (name, value) in &self.attributes {
            headers.append(format!("{HEADER_PREFIX}{name}"), value);
        }
        if let Some(content_type) = &self.content_type {
            headers.append("content-type", content_type);
        }
        headers
    }

    /// Appends the encoded NATS header block of [`CloudEvent::to_headers`]
    /// to `out`, plus `Nats-Msg-Id` ([`CloudEvent::dedup_id`]) when `msg_id`
    /// (the dedup id of a capturing stream). Values were validated free of
    /// line breaks.
    pub fn write_headers(&self, msg_id: bool, out: &mut Vec<u8>) {
        out.extend_from_slice(b"NATS/1.0\r\n");
        for (name, value) in &self.attributes {
            out.extend_from_slice(HEADER_PREFIX.as_bytes());
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        if let Some(content_type) = &self.content_type {
            out.extend_from_slice(b"content-type: ");
            out.extend_from_slice(content_type.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        if msg_id && self.write_dedup_id(out) {
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");
    }

    /// Appends `Nats-Msg-Id: <dedup id>` (no line end) when there is an id;
    /// written in place, as this runs for every event published over HTTP.
    fn write_dedup_id(&self, out: &mut Vec<u8>) -> bool {
        let Some(id) = self.attribute("id") else {
            return false;
        };
        let source = self.attribute("source").unwrap_or("");
        out.extend_from_slice(b"Nats-Msg-Id: ce:");
        out.extend_from_slice(itoa::Buffer::new().format(source.len()).as_bytes());
        out.push(b':');
        out.extend_from_slice(source.as_bytes());
        out.push(b':');
        out.extend_from_slice(id.as_bytes());
        true
    }

    /// What identifies this event among retries: CloudEvents makes `source`
    /// and `id` unique together (two producers may both number their events
    /// from 1), so both are in it: `ce:<length of source>:<source>:<id>`.
    /// The length keeps it unambiguous whatever the two contain. `None`
    /// without an `id`.
    pub fn dedup_id(&self) -> Option<String> {
        let mut line = Vec::new();
        self.write_dedup_id(&mut line)
            .then(|| String::from_utf8_lossy(&line[b"Nats-Msg-Id: ".len()..]).into_owned())
    }

    /// The event a NATS message carries. Attributes come from its `ce-*`
    /// headers; missing required ones get defaults: `specversion` 1.0, `id`
    /// from `Nats-Msg-Id` or `defaults.id`, `source` `nats:<subject>`, `type`
    /// `io.herald.message`, and `subject` the NATS subject.
    pub fn from_message(headers: Option<&Headers>, payload: &[u8], defaults: Defaults<'_>) -> CloudEvent {
        let mut event = CloudEvent {
            data: payload.to_vec(),
            ..CloudEvent::default()
        };
        let mut msg_id = None;
        for (name, value) in headers.into_iter().flat_map(Headers::iter) {
            if let Some(attribute) = strip_prefix_ignore_case(name, HEADER_PREFIX) {
                let attribute = attribute.to_ascii_lowercase();
                if check_name(&attribute).is_ok() {
                    event.attributes.push((attribute, value.to_string()));
                }
            } else if name.eq_ignore_ascii_case("content-type") {
                event.content_type = Some(value.to_string());
            } else if name.eq_ignore_ascii_case("Nats-Msg-Id") {
                msg_id = Some(value);
            }
        }
        let mut fill = |name: &str, value: &str| {
            if event.attribute(name).is_none() {
                event.attributes.push((name.to_string(), value.to_string()));
            }
        };
        fill("specversion", SPEC_VERSION);
        fill("id", msg_id.unwrap_or(defaults.id));
        fill("source", &format!("nats:{}", defaults.subject));
        fill("type", "io.herald.message");
        fill("subject", defaults.subject);
        if let Some(time) = defaults.time {
            fill("time", time);
        }
        event
    }

    /// The structured-mode JSON object. JSON data (by content type, or
    /// without one when it parses) is embedded as `data`, other UTF-8 text
    /// as a string, anything else as `data_base64`.
    pub fn to_json(&self) -> Value {
        let mut object = Map::new();
        for (name, value) in &self.attributes {
            object.insert(name.clone(), Value::String(value.clone()));
        }
        if let Some(content_type) = &self.content_type {
            object.insert("datacontenttype".into(), Value::String(content_type.clone()));
        }
        if !self.data.is_empty() {
            let json_like = self.content_type.as_deref().is_none_or(is_json);
            let parsed = json_like
                .then(|| serde_json::from_slice::<Value>(&self.data).ok())
                .flatten();
            match (parsed, std::str::from_utf8(&self.data)) {
                (Some(value), _) => {
                    object.insert("data".into(), value);
                }
                (None, Ok(text)) if self.content_type.is_some() => {
                    object.insert("data".into(), Value::String(text.to_string()));
                }
                _ => {
                    let encoded = base64::engine::general_purpose::STANDARD.encode(&self.data);
                    object.insert("data_base64".into(), Value::String(encoded));
                }
            }
        }
        Value::Object(object)
    }
}

/// Whether a media type is JSON (`application/json`, `text/json`, `…+json`).
pub fn is_json(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or("").trim();
    essence.eq_ignore_ascii_case("application/json")
        || essence.eq_ignore_ascii_case("text/json")
        || essence.to_ascii_lowercase().ends_with("+json")
}

fn check_name(name: &str) -> Result<(), CloudEventError> {
    let valid = !name.is_empty()
        && name.len() <= ATTRIBUTE_NAME_BYTES_MAX
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if valid {
        Ok(())
    } else {
        Err(CloudEventError::AttributeName(name.to_string()))
    }
}

/// Attribute values are strings; extensions may also be JSON numbers or
/// booleans (kept in their JSON text form).
fn string_attribute(name: &str, value: &RawValue) -> Result<String, CloudEventError> {
    let text = value.get();
    let kind = match text.as_bytes().first() {
        Some(b'"') => {
            let value = json_string(text).map_err(|e| CloudEventError::Json(e.to_string()))?;
            return Ok(value.into_owned());
        }
        Some(b't' | b'f') => return Ok(text.to_string()),
        Some(b'-' | b'0'..=b'9') if !REQUIRED.contains(&name) => return Ok(text.to_string()),
        Some(b'-' | b'0'..=b'9') => "a number",
        Some(b'n') => "null",
        Some(b'[') => "an array",
        Some(b'{') => "an object",
        _ => "something else",
    };
    Err(CloudEventError::AttributeValue {
        name: name.to_string(),
        reason: format!("expected a string, got {kind}"),
    })
}

fn json_error(e: serde_json::Error) -> CloudEventError {
    if e.is_data() {
        CloudEventError::Json(format!("an event must be a JSON object ({e})"))
    } else {
        CloudEventError::Json(e.to_string())
    }
}

/// The members of a JSON object in order, names borrowed when they have
/// no escapes, values as their JSON text.
struct Members<'a>(Vec<(Cow<'a, str>, &'a RawValue)>);

impl<'de> Deserialize<'de> for Members<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MembersVisitor;
        impl<'de> Visitor<'de> for MembersVisitor {
            type Value = Members<'de>;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Members<'de>, A::Error> {
                let mut members = Vec::with_capacity(map.size_hint().unwrap_or(8).min(64));
                while let Some((name, value)) = map.next_entry::<Text<'de>, &'de RawValue>()? {
                    members.push((name.0, value));
                }
                Ok(Members(members))
            }
        }
        deserializer.deserialize_map(MembersVisitor)
    }
}

/// A JSON string, borrowed from the input unless it has escapes (serde's
/// own `Cow<str>` always allocates).
struct Text<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Text<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TextVisitor;
        impl<'de> Visitor<'de> for TextVisitor {
            type Value = Text<'de>;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string")
            }

            fn visit_borrowed_str<E: serde::de::Error>(self, v: &'de str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Borrowed(v)))
            }

            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(v.to_string())))
            }

            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(v)))
            }
        }
        deserializer.deserialize_str(TextVisitor)
    }
}

/// The string a JSON string literal stands for.
fn json_string(literal: &str) -> Result<Cow<'_, str>, serde_json::Error> {
    serde_json::from_str::<Text<'_>>(literal).map(|t| t.0)
}

fn strip_prefix_ignore_case<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix).then(|| &text[prefix.len()..])
}

/// Decodes `%XX` escapes (the HTTP binding's encoding of header values).
fn percent_decode(value: &str) -> Option<String> {
    if !value.contains('%') {
        return Some(value.to_string());
    }
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`, `t`/`z` accepted too.
pub fn is_rfc3339(text: &str) -> bool {
    let b = text.as_bytes();
    let digits =
        |range: std::ops::Range<usize>| b.get(range).is_some_and(|d| d.iter().all(u8::is_ascii_digit));
    let fixed = b.len() >= 20
        && digits(0..4)
        && b[4] == b'-'
        && digits(5..7)
        && b[7] == b'-'
        && digits(8..10)
        && matches!(b[10], b'T' | b't' | b' ')
        && digits(11..13)
        && b[13] == b':'
        && digits(14..16)
        && b[16] == b':'
        && digits(17..19);
    if !fixed {
        return false;
    }
    let mut rest = &b[19..];
    if rest.first() == Some(&b'.') {
        let fraction = rest[1..].iter().take_while(|c| c.is_ascii_digit()).count();
        if fraction == 0 {
            return false;
        }
        rest = &rest[1 + fraction..];
    }
    match rest {
        [b'Z' | b'z'] => true,
        [b'+' | b'-', h1, h2, b':', m1, m2] => [h1, h2, m1, m2].iter().all(|c| c.is_ascii_digit()),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn structured(json: &str) -> Result<CloudEvent, CloudEventError> {
        CloudEvent::parse_structured(json.as_bytes())
    }

    #[test]
    fn required_attributes_are_checked() {
        let err = structured(r#"{"specversion":"1.0","id":"1","type":"t"}"#).unwrap_err();
        assert_eq!(err, CloudEventError::Missing("source"));
        let err = structured(r#"{"specversion":"0.3","id":"1","source":"s","type":"t"}"#).unwrap_err();
        assert_eq!(err, CloudEventError::SpecVersion("0.3".into()));
        let err = structured(r#"{"specversion":"1.0","id":"","source":"s","type":"t"}"#).unwrap_err();
        assert_eq!(err, CloudEventError::Missing("id"));
    }

    #[test]
    fn attribute_names_and_values_are_checked() {
        let err = structured(r#"{"specversion":"1.0","id":"1","source":"s","type":"t","Bad-Name":"x"}"#);
        assert!(matches!(err, Err(CloudEventError::AttributeName(_))));
        let err = structured(r#"{"specversion":"1.0","id":1,"source":"s","type":"t"}"#);
        assert!(matches!(err, Err(CloudEventError::AttributeValue { .. })));
        let err = structured(r#"{"specversion":"1.0","id":"1","source":"s","type":"t","time":"yesterday"}"#);
        assert!(matches!(err, Err(CloudEventError::AttributeValue { .. })));
        let ok =
            structured(r#"{"specversion":"1.0","id":"1","source":"s","type":"t","retries":3,"flag":true}"#);
        assert_eq!(ok.unwrap().attribute("retries"), Some("3"));
    }

    #[test]
    fn escaped_names_and_values_and_duplicates() {
        let event = structured(
            r#"{"specversion":"1.0","\u0069d":"a\"b","source":"s","type":"t","data":{"k": [1, 2]}}"#,
        )
        .unwrap();
        assert_eq!(event.attribute("id"), Some("a\"b"));
        assert_eq!(event.data, br#"{"k": [1, 2]}"#, "data passes through as sent");
        let twice = structured(r#"{"specversion":"1.0","id":"1","id":"2","source":"s","type":"t"}"#);
        assert!(
            matches!(twice, Err(CloudEventError::AttributeValue { .. })),
            "{twice:?}"
        );
    }

    #[test]
    fn data_forms() {
        let text = structured(r#"{"specversion":"1.0","id":"1","source":"s","type":"t","datacontenttype":"text/plain","data":"hi"}"#).unwrap();
        assert_eq!(text.data, b"hi");
        let binary =
            structured(r#"{"specversion":"1.0","id":"1","source":"s","type":"t","data_base64":"AAEC"}"#)
                .unwrap();
        assert_eq!(binary.data, [0, 1, 2]);
        let both = structured(
            r#"{"specversion":"1.0","id":"1","source":"s","type":"t","data":1,"data_base64":"AA=="}"#,
        );
        assert!(matches!(both, Err(CloudEventError::Data(_))));
    }

    #[test]
    fn dedup_ids_scope_the_id_by_its_source_unambiguously() {
        let event = |source: &str, id: &str| {
            let json = format!(r#"{{"specversion":"1.0","id":"{id}","source":"{source}","type":"t"}}"#);
            structured(&json).unwrap()
        };
        assert_eq!(event("/shop", "1").dedup_id().as_deref(), Some("ce:5:/shop:1"));
        assert_ne!(event("/a", "1").dedup_id(), event("/b", "1").dedup_id());
        // Separators inside either part cannot make two events collide.
        assert_ne!(event("a:b", "c").dedup_id(), event("a", "b:c").dedup_id());
        let mut block = Vec::new();
        event("/shop", "1").write_headers(true, &mut block);
        assert!(String::from_utf8(block)
            .unwrap()
            .contains("Nats-Msg-Id: ce:5:/shop:1\r\n"));
    }

    #[test]
    fn batches_name_the_bad_event() {
        let err = CloudEvent::parse_batch(
            br#"[{"specversion":"1.0","id":"1","source":"s","type":"t"},{"id":"2"}]"#,
        )
        .unwrap_err();
        assert!(err.to_string().starts_with("event 1 of the batch"), "{err}");
        assert!(matches!(
            CloudEvent::parse_batch(b"[]"),
            Err(CloudEventError::Batch(_))
        ));
        assert!(matches!(
            CloudEvent::parse_batch(b"{}"),
            Err(CloudEventError::Batch(_))
        ));
    }

    #[test]
    fn binary_mode_round_trips_through_headers() {
        let headers = [
            ("Ce-Specversion", "1.0"),
            ("ce-id", "42"),
            ("ce-source", "%2Fshop"),
            ("ce-type", "order.created"),
            ("x-other", "ignored"),
        ];
        let event = CloudEvent::from_binary(headers, Some("application/json"), b"{}".to_vec()).unwrap();
        assert_eq!(event.attribute("source"), Some("/shop"));
        let block = event.to_headers().to_bytes();
        let mut written = Vec::new();
        event.write_headers(false, &mut written);
        assert_eq!(written, block, "both encodings agree");
        let parsed = Headers::parse(&block).unwrap();
        let back = CloudEvent::from_message(
            Some(&parsed),
            &event.data,
            Defaults {
                subject: "orders",
                id: "9",
                time: None,
            },
        );
        assert_eq!(back.attribute("id"), Some("42"));
        assert_eq!(back.attribute("type"), Some("order.created"));
        assert_eq!(back.attribute("subject"), Some("orders"));
        assert_eq!(back.to_json()["data"], serde_json::json!({}));
    }

    #[test]
    fn plain_messages_get_defaults() {
        let event = CloudEvent::from_message(
            None,
            &[0xff, 0],
            Defaults {
                subject: "a.b",
                id: "7",
                time: None,
            },
        );
        let json = event.to_json();
        assert_eq!(json["id"], "7");
        assert_eq!(json["source"], "nats:a.b");
        assert_eq!(json["type"], "io.herald.message");
        assert_eq!(json["data_base64"], "/wA=");
    }

    #[test]
    fn rfc3339() {
        assert!(is_rfc3339("2026-11-27T05:00:00Z"));
        assert!(is_rfc3339("2026-11-27T05:00:00.123456+01:00"));
        assert!(!is_rfc3339("2026-11-27"));
        assert!(!is_rfc3339("2026-11-27T05:00:00."));
        assert!(!is_rfc3339("2026-11-27T05:00:00+0100"));
    }
}
