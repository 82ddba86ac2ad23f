//! Domain events: typed events in and out of the store, and upcasting of
//! old schema versions.

use std::collections::HashMap;
use std::fmt;

use bytes::Bytes;
use herald_client::jetstream::Timestamp;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::codec::Codec;
use crate::envelope::{check_type_name, Envelope};
use crate::naming::AggregateId;
use crate::{Error, Result};

/// A type of domain events, usually an enum with one variant per event
/// type, serialized **adjacently tagged**:
///
/// ```
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Debug, Clone, Serialize, Deserialize)]
/// #[serde(tag = "type", content = "data")]
/// enum AccountEvent {
///     Opened { owner: String },
///     Deposited { amount: u64 },
///     Closed,
/// }
///
/// impl herald_events::DomainEvent for AccountEvent {
///     fn schema_version(event_type: &str) -> u32 {
///         match event_type {
///             "Deposited" => 2, // v1 had `amount` as a string; see Upcasters
///             _ => 1,
///         }
///     }
/// }
/// ```
///
/// The variant name becomes the event type (`ce-type`), its fields the
/// event data; [`DomainEvent::schema_version`] is stored with each event so
/// that [`Upcasters`] can bring old events up to date when read.
pub trait DomainEvent: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// The schema version this code writes (and reads) for `event_type`.
    fn schema_version(_event_type: &str) -> u32 {
        1
    }
}

/// An event ready to be appended: type, schema version and encoded data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEvent {
    /// Its id (`ce-id`); `None` makes a new ULID. Giving the id makes a
    /// retried single-event append idempotent: the stream's duplicate
    /// window answers the retry as a duplicate instead of storing it again.
    pub id: Option<String>,
    /// The event type (`ce-type`).
    pub event_type: String,
    /// The schema version of its data.
    pub schema_version: u32,
    /// The media type of `data`.
    pub content_type: String,
    /// The encoded data.
    pub data: Bytes,
}

impl NewEvent {
    /// An event of `event_type` with JSON `data` as given, schema version 1.
    pub fn json(event_type: impl Into<String>, data: impl Into<Bytes>) -> NewEvent {
        NewEvent {
            id: None,
            event_type: event_type.into(),
            schema_version: 1,
            content_type: crate::codec::JSON.to_string(),
            data: data.into(),
        }
    }

    /// Encodes a typed event with `codec`.
    pub fn from_event<E: DomainEvent>(event: &E, codec: Codec) -> Result<NewEvent> {
        let (event_type, data) = split_tagged(serde_json::to_value(event)?)?;
        check_type_name(&event_type)?;
        Ok(NewEvent {
            id: None,
            schema_version: E::schema_version(&event_type),
            content_type: codec.content_type().to_string(),
            data: Bytes::from(codec.encode(&data)?),
            event_type,
        })
    }
}

/// An event as stored: where, when, its envelope and its encoded data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedEvent {
    /// The aggregate it belongs to.
    pub aggregate: AggregateId,
    /// Its stream sequence in the category's stream: the aggregate's
    /// version right after this event.
    pub position: u64,
    /// When the stream stored it.
    pub stored_at: Timestamp,
    /// Its CloudEvents attributes.
    pub envelope: Envelope,
    /// The encoded data.
    pub data: Bytes,
}

impl RecordedEvent {
    /// A message delivered from `stream` at `position`: its subject names
    /// the aggregate, its headers carry the envelope.
    pub(crate) fn from_delivery(
        stream: &str,
        subject: &str,
        headers: Option<&herald_client::Headers>,
        data: Bytes,
        position: u64,
        stored_at: Timestamp,
    ) -> Result<RecordedEvent> {
        let bad = |detail: String| Error::BadEnvelope {
            stream: stream.to_string(),
            position,
            detail,
        };
        let envelope = Envelope::read(headers).map_err(bad)?;
        let aggregate = AggregateId::parse_subject(subject).map_err(|e| bad(e.to_string()))?;
        Ok(RecordedEvent {
            aggregate,
            position,
            stored_at,
            envelope,
            data,
        })
    }

    /// The data as a value tree, upcast to the schema version `E` reads.
    pub fn to_value<E: DomainEvent>(&self, upcasters: &Upcasters) -> Result<Value> {
        let envelope = &self.envelope;
        let value = Codec::decode(&envelope.content_type, &self.data)?;
        let target = E::schema_version(&envelope.event_type);
        upcasters.upcast(&envelope.event_type, envelope.schema_version, target, value)
    }

    /// Decodes the event as `E`, upcasting old schema versions first.
    pub fn decode<E: DomainEvent>(&self, upcasters: &Upcasters) -> Result<E> {
        let envelope = &self.envelope;
        let current = E::schema_version(&envelope.event_type) == envelope.schema_version;
        if current && crate::codec::is_json(&envelope.content_type) {
            return self.decode_json_directly();
        }
        let data = self.to_value::<E>(upcasters)?;
        let mut tagged = Map::with_capacity(2);
        tagged.insert("type".into(), Value::String(self.envelope.event_type.clone()));
        if !data.is_null() {
            tagged.insert("data".into(), data);
        }
        serde_json::from_value(Value::Object(tagged)).map_err(|e| self.decode_error(&e))
    }
}

impl RecordedEvent {
    /// The common case, without a value tree: JSON data already at the
    /// current schema version is wrapped as `{"type": T, "data": D}` and
    /// parsed once (loading aggregates is mostly this).
    fn decode_json_directly<E: DomainEvent>(&self) -> Result<E> {
        let data = self.data.as_ref();
        // Exactly one JSON value, or the wrapping could be fooled.
        serde_json::from_slice::<serde::de::IgnoredAny>(data).map_err(|e| self.decode_error(&e))?;
        let mut tagged = Vec::with_capacity(data.len() + self.envelope.event_type.len() + 24);
        tagged.extend_from_slice(b"{\"type\":");
        serde_json::to_writer(&mut tagged, &self.envelope.event_type)?;
        if data.trim_ascii() != b"null" {
            tagged.extend_from_slice(b",\"data\":");
            tagged.extend_from_slice(data);
        }
        tagged.push(b'}');
        serde_json::from_slice(&tagged).map_err(|e| self.decode_error(&e))
    }

    fn decode_error(&self, e: &dyn std::fmt::Display) -> Error {
        Error::Codec(format!(
            "event {} ({} v{}) at position {}: {e}",
            self.envelope.id, self.envelope.event_type, self.envelope.schema_version, self.position
        ))
    }
}

/// Splits `{"type": T, "data": D}` into `(T, D)` (`D` null when absent).
fn split_tagged(value: Value) -> Result<(String, Value)> {
    let shape_error = || {
        Error::Codec(
            "domain events must serialize adjacently tagged: #[serde(tag = \"type\", content = \"data\")]"
                .into(),
        )
    };
    let Value::Object(mut object) = value else {
        return Err(shape_error());
    };
    let Some(Value::String(event_type)) = object.remove("type") else {
        return Err(shape_error());
    };
    let data = object.remove("data").unwrap_or(Value::Null);
    if !object.is_empty() {
        return Err(shape_error());
    }
    Ok((event_type, data))
}

type UpcastFn = Box<dyn Fn(Value) -> std::result::Result<Value, String> + Send + Sync>;

/// Functions that turn an event type's data from one schema version into
/// the next, applied in steps on read until the version the code reads.
/// Old events stay as they were written; only readers change.
///
/// ```
/// use herald_events::Upcasters;
/// // v1 stored the amount as a string, v2 as a number of cents.
/// let upcasters = Upcasters::new().register("Deposited", 1, |mut data| {
///     let amount = data["amount"].as_str().ok_or("amount is not a string")?;
///     let amount: f64 = amount.parse().map_err(|_| "amount is not a number")?;
///     data["amount"] = serde_json::json!((amount * 100.0).round() as u64);
///     Ok(data)
/// });
/// ```
#[derive(Default)]
pub struct Upcasters {
    steps: HashMap<(String, u32), UpcastFn>,
}

impl fmt::Debug for Upcasters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut steps: Vec<_> = self.steps.keys().collect();
        steps.sort();
        f.debug_struct("Upcasters").field("steps", &steps).finish()
    }
}

impl Upcasters {
    /// No upcasters.
    pub fn new() -> Upcasters {
        Upcasters::default()
    }

    /// Registers the step of `event_type` from `from_version` to
    /// `from_version + 1`.
    pub fn register<F>(mut self, event_type: &str, from_version: u32, step: F) -> Upcasters
    where
        F: Fn(Value) -> std::result::Result<Value, String> + Send + Sync + 'static,
    {
        self.steps
            .insert((event_type.to_string(), from_version), Box::new(step));
        self
    }

    /// Brings `data` of `event_type` from schema version `from` to `to`.
    /// Newer data than the code knows is an error, not silently misread.
    pub fn upcast(&self, event_type: &str, from: u32, to: u32, mut data: Value) -> Result<Value> {
        if from > to {
            return Err(Error::Codec(format!(
                "event type {event_type} has schema version {from}, newer than the {to} this code reads"
            )));
        }
        for version in from..to {
            let step = self
                .steps
                .get(&(event_type.to_string(), version))
                .ok_or_else(|| Error::MissingUpcaster {
                    event_type: event_type.to_string(),
                    from: version,
                })?;
            data = step(data).map_err(|detail| Error::Upcast {
                event_type: event_type.to_string(),
                from: version,
                detail,
            })?;
        }
        Ok(data)
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;
    use serde_json::json;

    use super::*;

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(tag = "type", content = "data")]
    enum Event {
        Deposited { cents: u64 },
        Closed,
    }

    impl DomainEvent for Event {
        fn schema_version(event_type: &str) -> u32 {
            if event_type == "Deposited" {
                3
            } else {
                1
            }
        }
    }

    fn recorded(new: NewEvent) -> RecordedEvent {
        RecordedEvent {
            aggregate: AggregateId::new("accounts", "a").unwrap(),
            position: 1,
            stored_at: Timestamp::default(),
            envelope: Envelope {
                id: "id".into(),
                event_type: new.event_type,
                source: String::new(),
                subject: "accounts.a".into(),
                time: Timestamp::default(),
                schema_version: new.schema_version,
                content_type: new.content_type,
                correlation_id: "id".into(),
                causation_id: None,
            },
            data: new.data,
        }
    }

    #[test]
    fn typed_events_round_trip_with_both_codecs() {
        for codec in [Codec::Json, Codec::Cbor] {
            for event in [Event::Deposited { cents: 5 }, Event::Closed] {
                let new = NewEvent::from_event(&event, codec).unwrap();
                let back: Event = recorded(new).decode(&Upcasters::new()).unwrap();
                assert_eq!(back, event);
            }
        }
        let new = NewEvent::from_event(&Event::Deposited { cents: 5 }, Codec::Json).unwrap();
        assert_eq!((new.event_type.as_str(), new.schema_version), ("Deposited", 3));
        assert_eq!(&new.data[..], br#"{"cents":5}"#);
    }

    #[test]
    fn old_events_are_upcast_step_by_step() {
        let upcasters = Upcasters::new()
            .register("Deposited", 1, |data| {
                // v1: {"amount": "1.25"} (a string of units)
                let text = data["amount"].as_str().ok_or("no amount")?;
                let units: f64 = text.parse().map_err(|_| "bad amount")?;
                Ok(json!({ "amount_cents": (units * 100.0).round() as u64 }))
            })
            .register("Deposited", 2, |data| {
                Ok(json!({ "cents": data["amount_cents"] }))
            });
        let v1 = NewEvent {
            schema_version: 1,
            ..NewEvent::json("Deposited", r#"{"amount":"1.25"}"#)
        };
        let event: Event = recorded(v1.clone()).decode(&upcasters).unwrap();
        assert_eq!(event, Event::Deposited { cents: 125 });

        let missing = recorded(v1).decode::<Event>(&Upcasters::new()).unwrap_err();
        assert!(
            matches!(missing, Error::MissingUpcaster { from: 1, .. }),
            "{missing}"
        );
        let future = NewEvent {
            schema_version: 9,
            ..NewEvent::json("Deposited", r#"{"cents":1}"#)
        };
        assert!(recorded(future).decode::<Event>(&upcasters).is_err());
        let refused = NewEvent {
            schema_version: 1,
            ..NewEvent::json("Deposited", r#"{"amount":"x"}"#)
        };
        let err = recorded(refused).decode::<Event>(&upcasters).unwrap_err();
        assert!(matches!(err, Error::Upcast { .. }), "{err}");
    }

    #[test]
    fn json_data_that_is_not_one_value_is_refused_not_spliced() {
        let current = |data: &'static str| NewEvent {
            schema_version: 3,
            ..NewEvent::json("Deposited", data)
        };
        let ok: Event = recorded(current(r#" {"cents":7} "#))
            .decode(&Upcasters::new())
            .unwrap();
        assert_eq!(ok, Event::Deposited { cents: 7 });
        for bad in [r#"{"cents":7},"extra":1"#, r#"{"cents":7}}"#, "", "{"] {
            assert!(
                recorded(current(bad)).decode::<Event>(&Upcasters::new()).is_err(),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn events_that_are_not_adjacently_tagged_are_refused() {
        #[derive(Serialize, Deserialize)]
        struct Plain {
            x: u8,
        }
        impl DomainEvent for Plain {}
        assert!(NewEvent::from_event(&Plain { x: 1 }, Codec::Json).is_err());
    }
}
