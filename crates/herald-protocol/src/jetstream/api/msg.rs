//! Message get/delete bodies and the pull request (`CONSUMER.MSG.NEXT`) body.

use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::super::serde_util::{is_default, nullable};
use super::super::time::Timestamp;
use crate::{Headers, HeadersError};

/// Go's `encoding/json` writes `[]byte` as padded standard base64; the
/// `base64` crate does the same, so the fields decode in every client.
mod b64 {
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(bytes))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        match Option::<std::borrow::Cow<'de, str>>::deserialize(d)? {
            None => Ok(Vec::new()),
            Some(text) => STANDARD.decode(text.as_bytes()).map_err(serde::de::Error::custom),
        }
    }
}

/// Body of `$JS.API.STREAM.MSG.GET.<stream>`: exactly one of `seq`,
/// `last_by_subj`, `next_by_subj` (with optional `seq` as start) is used by
/// the plain form; the rest are direct-get batch options.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct MsgGetRequest {
    /// Sequence (or start sequence for `next_by_subj`).
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub seq: u64,
    /// Last message on this subject.
    #[serde(skip_serializing_if = "String::is_empty", deserialize_with = "nullable")]
    pub last_by_subj: String,
    /// First message at or after `seq` on this subject (wildcards allowed).
    #[serde(skip_serializing_if = "String::is_empty", deserialize_with = "nullable")]
    pub next_by_subj: String,
    /// Batch size (direct get).
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub batch: i64,
    /// Byte limit of a batch (direct get).
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub max_bytes: i64,
    /// Start at this time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Timestamp>,
    /// Last message of each of these subjects (direct get).
    #[serde(skip_serializing_if = "Vec::is_empty", deserialize_with = "nullable")]
    pub multi_last: Vec<String>,
    /// Only up to this sequence.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub up_to_seq: u64,
    /// Only up to this time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub up_to_time: Option<Timestamp>,
    /// Leave headers out.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub no_hdr: bool,
}

/// A stored message as `STREAM.MSG.GET` returns it (`StoredMsg`). `hdrs`
/// is the raw `NATS/1.0` block and `data` the payload, both base64 on the
/// wire and left out when empty.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct StoredMsg {
    /// Subject it was published to.
    #[serde(deserialize_with = "nullable")]
    pub subject: String,
    /// Stream sequence.
    #[serde(deserialize_with = "nullable")]
    pub seq: u64,
    /// Raw header block.
    #[serde(skip_serializing_if = "Vec::is_empty", with = "b64")]
    pub hdrs: Vec<u8>,
    /// Payload.
    #[serde(skip_serializing_if = "Vec::is_empty", with = "b64")]
    pub data: Vec<u8>,
    /// When it was stored.
    pub time: Timestamp,
}

impl StoredMsg {
    /// The parsed header block, if there is one.
    pub fn headers(&self) -> Result<Option<Headers>, HeadersError> {
        if self.hdrs.is_empty() {
            Ok(None)
        } else {
            Headers::parse(&self.hdrs).map(Some)
        }
    }
}

/// Response of `$JS.API.STREAM.MSG.GET.<stream>`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MsgGetResponse {
    /// The message.
    pub message: StoredMsg,
}

/// Body of `$JS.API.STREAM.MSG.DELETE.<stream>`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct MsgDeleteRequest {
    /// Sequence to delete.
    #[serde(deserialize_with = "nullable")]
    pub seq: u64,
    /// Remove without overwriting the stored bytes.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub no_erase: bool,
}

/// Why a pull request body was refused; the server answers with a
/// `400 Bad Request - <this text>` status message.
#[derive(Debug, Error)]
pub enum NextRequestError {
    /// The JSON form did not parse.
    #[error("{0}")]
    Json(#[from] serde_json::Error),
    /// `idle_heartbeat` is more than half of `expires`.
    #[error("heartbeat value too large")]
    HeartbeatTooLarge,
}

/// A pull request: the body of `$JS.API.CONSUMER.MSG.NEXT.<stream>.<consumer>`
/// (`JSApiConsumerGetNextRequest`). Durations are nanoseconds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct NextRequest {
    /// Expire the request after this long; `0` never.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub expires: i64,
    /// Messages wanted.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub batch: i64,
    /// Byte budget; `0` none.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub max_bytes: i64,
    /// Answer `404 No Messages`/`408` at once instead of waiting.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub no_wait: bool,
    /// Send `100 Idle Heartbeat` this often while waiting.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub idle_heartbeat: i64,
    /// Priority group.
    #[serde(skip_serializing_if = "String::is_empty", deserialize_with = "nullable")]
    pub group: String,
    /// Overflow: only when this many messages are pending.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub min_pending: i64,
    /// Overflow: only when this many acks are pending.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub min_ack_pending: i64,
    /// Pinned client id.
    #[serde(skip_serializing_if = "String::is_empty", deserialize_with = "nullable")]
    pub id: String,
    /// Priority (prioritized policy), 0 highest.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub priority: i64,
}

impl NextRequest {
    /// A request for `batch` messages, no expiry.
    pub fn batch(batch: i64) -> NextRequest {
        NextRequest {
            batch,
            ..NextRequest::default()
        }
    }

    /// Reads a pull request body the way nats-server does: an empty body is
    /// a batch of 1, a body starting with `{` is the JSON form, a bare
    /// integer is the batch size, and anything else is a batch of 1. The
    /// JSON form is refused when it does not parse or when
    /// `idle_heartbeat * 2 > expires`.
    pub fn parse(body: &[u8]) -> Result<NextRequest, NextRequestError> {
        let body = body.trim_ascii();
        match body.first() {
            None => Ok(NextRequest::batch(1)),
            Some(b'{') => {
                let req: NextRequest = serde_json::from_slice(body)?;
                if req.idle_heartbeat > 0 && req.idle_heartbeat.saturating_mul(2) > req.expires {
                    return Err(NextRequestError::HeartbeatTooLarge);
                }
                Ok(req)
            }
            Some(_) => Ok(std::str::from_utf8(body)
                .ok()
                .and_then(|s| s.parse::<i64>().ok())
                .map_or_else(|| NextRequest::batch(1), NextRequest::batch)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn stored_msg_base64() {
        let msg = StoredMsg {
            subject: "a.b".into(),
            seq: 7,
            hdrs: b"NATS/1.0\r\nX: 1\r\n\r\n".to_vec(),
            data: b"hello".to_vec(),
            time: Timestamp::from_unix_nanos(1_700_000_000_000_000_001),
        };
        let v = serde_json::to_value(MsgGetResponse { message: msg.clone() }).unwrap();
        assert_eq!(
            v,
            json!({"message": {"subject": "a.b", "seq": 7,
                "hdrs": "TkFUUy8xLjANClg6IDENCg0K", "data": "aGVsbG8=",
                "time": "2023-11-14T22:13:20.000000001Z"}})
        );
        let back: MsgGetResponse = serde_json::from_value(v).unwrap();
        assert_eq!(back.message, msg);
        assert_eq!(msg.headers().unwrap().unwrap().get("x"), Some("1"));
        let empty = StoredMsg::default();
        let v = serde_json::to_value(&empty).unwrap();
        assert!(v.get("data").is_none() && v.get("hdrs").is_none());
        assert_eq!(empty.headers().unwrap(), None);
        assert!(serde_json::from_value::<StoredMsg>(json!({"data": "!!"})).is_err());
    }

    #[test]
    fn next_request_forms() {
        assert_eq!(NextRequest::parse(b"").unwrap(), NextRequest::batch(1));
        assert_eq!(NextRequest::parse(b" 10 ").unwrap(), NextRequest::batch(10));
        assert_eq!(NextRequest::parse(b"abc").unwrap(), NextRequest::batch(1));
        let req = NextRequest::parse(
            br#"{"batch":5,"expires":30000000000,"no_wait":true,"max_bytes":100,
                "idle_heartbeat":15000000000,"min_pending":null,"group":null,"priority":null}"#,
        )
        .unwrap();
        assert_eq!(
            (req.batch, req.expires, req.no_wait, req.max_bytes),
            (5, 30_000_000_000, true, 100)
        );
        assert!(matches!(
            NextRequest::parse(br#"{"batch":1,"idle_heartbeat":2,"expires":3}"#),
            Err(NextRequestError::HeartbeatTooLarge)
        ));
        let err = NextRequest::parse(br#"{"batch":"x"}"#).unwrap_err();
        assert!(matches!(err, NextRequestError::Json(_)));
        let text = serde_json::to_string(&NextRequest::batch(3)).unwrap();
        assert_eq!(text, r#"{"batch":3}"#);
    }

    #[test]
    fn msg_requests() {
        let req: MsgGetRequest = serde_json::from_value(json!({"last_by_subj": "a.b", "future": 1})).unwrap();
        assert_eq!(req.last_by_subj, "a.b");
        let req: MsgDeleteRequest = serde_json::from_value(json!({"seq": 4, "no_erase": true})).unwrap();
        assert_eq!((req.seq, req.no_erase), (4, true));
    }
}
