//! JetStream wire types: the JSON bodies of the `$JS.API` request/response
//! API, the `$JS.ACK` reply subject and ack bodies, JetStream headers and
//! status messages. Pure data with parsers and encoders; no I/O.
//!
//! What nats-server writes is the reference: JSON field names, `omitempty`
//! rules, enum spellings, error codes and descriptions, status lines. Where
//! a client (async-nats 0.51) needs more than nats-server writes, the
//! difference is noted on the field (e.g. `success` is always written).
//!
//! - [`config`]: [`StreamConfig`], [`ConsumerConfig`] and their defaults.
//! - [`api`]: request and response bodies ([`StreamInfo`], [`ConsumerInfo`],
//!   [`PubAck`], [`AccountInfo`], names/list, purge, msg get/delete,
//!   [`NextRequest`]) and [`encode_response`] which adds the `type`.
//! - [`error`]: [`ApiError`] and the [`ApiErrorCode`] table.
//! - [`ack`]: [`AckMetadata`] (reply subject) and [`AckBody`].
//! - [`headers`]: header names, status blocks, [`PublishHeaders`].
//! - [`time`]: [`Timestamp`] (RFC 3339 with nanoseconds) and Go durations.
//!
//! ```
//! use herald_protocol::jetstream::{
//!     encode_response, ApiError, ApiErrorCode, ResponseType, StreamConfig,
//! };
//!
//! let req: StreamConfig =
//!     serde_json::from_slice(br#"{"name":"ORDERS","subjects":["orders.>"]}"#).unwrap();
//! let stored = req.with_defaults();
//! assert_eq!(stored.max_msgs, -1);
//!
//! let err = ApiError::new(ApiErrorCode::StreamNotFound);
//! assert_eq!(
//!     err.to_response(ResponseType::StreamInfo),
//!     br#"{"type":"io.nats.jetstream.api.v1.stream_info_response","error":{"code":404,"err_code":10059,"description":"stream not found"}}"#
//! );
//! # let _ = encode_response(ResponseType::StreamInfo, &stored);
//! ```

pub mod ack;
pub mod api;
pub mod config;
pub mod error;
pub mod headers;
mod serde_util;
pub mod time;

pub use ack::{AckBody, AckError, AckMetadata};
pub use api::{
    encode_response, AccountInfo, ConsumerInfo, CreateConsumerRequest, DeleteResponse, NextRequest, PubAck,
    ResponseType, StreamInfo, StreamState,
};
pub use config::{ConsumerConfig, StreamConfig};
pub use error::{ApiError, ApiErrorCode};
pub use headers::PublishHeaders;
pub use time::Timestamp;
