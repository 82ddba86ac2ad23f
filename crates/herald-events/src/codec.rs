//! How event data is encoded: JSON by default, CBOR as a compact binary
//! option. Both are self-describing, so upcasters can work on a value tree
//! whatever the codec, and each stored event names its own media type, so
//! a store can switch codecs without rewriting old events.

use serde_json::Value;

use crate::{Error, Result};

/// Media type of JSON data.
pub const JSON: &str = "application/json";
/// Media type of CBOR data.
pub const CBOR: &str = "application/cbor";

/// Whether `content_type` is JSON (or unset, which means JSON).
pub(crate) fn is_json(content_type: &str) -> bool {
    matches!(
        content_type.split(';').next().unwrap_or("").trim(),
        JSON | "" | "text/json"
    )
}

/// The encoding of new events' data.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Codec {
    /// JSON (`application/json`): readable by every tool.
    #[default]
    Json,
    /// CBOR (`application/cbor`, RFC 8949): smaller and faster to parse.
    Cbor,
}

impl Codec {
    /// The media type this codec writes.
    pub fn content_type(self) -> &'static str {
        match self {
            Codec::Json => JSON,
            Codec::Cbor => CBOR,
        }
    }

    /// Encodes a value tree.
    pub fn encode(self, value: &Value) -> Result<Vec<u8>> {
        match self {
            Codec::Json => Ok(serde_json::to_vec(value)?),
            Codec::Cbor => {
                let mut out = Vec::with_capacity(64);
                ciborium::into_writer(value, &mut out).map_err(|e| Error::Codec(e.to_string()))?;
                Ok(out)
            }
        }
    }

    /// Decodes data of media type `content_type` (JSON when empty).
    pub fn decode(content_type: &str, data: &[u8]) -> Result<Value> {
        let media = content_type.split(';').next().unwrap_or("").trim();
        match media {
            JSON | "" | "text/json" => Ok(serde_json::from_slice(data)?),
            CBOR => ciborium::from_reader(data).map_err(|e| Error::Codec(format!("CBOR: {e}"))),
            other => Err(Error::Codec(format!("unsupported content type {other:?}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_codecs_round_trip_a_value() {
        let value = serde_json::json!({"amount": 5, "memo": "rent", "tags": [1, 2.5, null, true]});
        for codec in [Codec::Json, Codec::Cbor] {
            let bytes = codec.encode(&value).unwrap();
            assert_eq!(Codec::decode(codec.content_type(), &bytes).unwrap(), value);
        }
        assert!(Codec::decode("text/plain", b"x").is_err());
        assert!(Codec::decode(CBOR, b"\xff\xff").is_err());
    }
}
