//! Reading API replies: telling an `error` reply from a success, and helpers
//! to classify [`Error::JetStream`].

use herald_protocol::jetstream::error::ErrorResponse;
use herald_protocol::jetstream::{ApiError, ApiErrorCode};
use serde::de::DeserializeOwned;

use crate::{Error, Result};

/// Whether `payload` may be an error reply (has an `"error"` key somewhere).
fn may_be_error(payload: &[u8]) -> bool {
    payload.windows(7).any(|w| w == b"\"error\"")
}

/// The reply's `error`, if it is an error reply.
fn error_of(payload: &[u8]) -> Option<ApiError> {
    if !may_be_error(payload) {
        return None;
    }
    serde_json::from_slice::<ErrorResponse>(payload)
        .ok()
        .map(|response| response.error)
}

/// Fails with [`Error::JetStream`] if `payload` is an error reply, or with
/// [`Error::InvalidResponse`] if it is not JSON.
pub(crate) fn check_response(payload: &[u8]) -> Result<()> {
    if let Some(error) = error_of(payload) {
        return Err(Error::JetStream(error));
    }
    serde_json::from_slice::<serde::de::IgnoredAny>(payload)
        .map(|_| ())
        .map_err(|e| invalid(payload, e))
}

/// Parses an API reply: an `error` member is [`Error::JetStream`], anything
/// else must parse as `T`.
pub(crate) fn parse_response<T: DeserializeOwned>(payload: &[u8]) -> Result<T> {
    if let Some(error) = error_of(payload) {
        return Err(Error::JetStream(error));
    }
    serde_json::from_slice(payload).map_err(|e| invalid(payload, e))
}

fn invalid(payload: &[u8], error: serde_json::Error) -> Error {
    const SHOWN: usize = 200;
    let text = String::from_utf8_lossy(&payload[..payload.len().min(SHOWN)]);
    let more = if payload.len() > SHOWN { "…" } else { "" };
    Error::InvalidResponse(format!("{error} in reply {text:?}{more}"))
}

impl Error {
    /// The server's [`ApiError`] of an [`Error::JetStream`].
    pub fn api_error(&self) -> Option<&ApiError> {
        match self {
            Error::JetStream(error) => Some(error),
            _ => None,
        }
    }

    /// The known [`ApiErrorCode`] of an [`Error::JetStream`].
    pub fn api_error_code(&self) -> Option<ApiErrorCode> {
        self.api_error().and_then(ApiError::kind)
    }

    fn has_err_code(&self, codes: &[ApiErrorCode]) -> bool {
        self.api_error()
            .is_some_and(|e| codes.iter().any(|c| c.err_code() == e.err_code))
    }

    /// A publish's expected last (subject) sequence did not match (10071,
    /// 10164): someone else wrote first, or a KV key already exists.
    pub fn is_wrong_last_sequence(&self) -> bool {
        self.has_err_code(&[
            ApiErrorCode::StreamWrongLastSequence,
            ApiErrorCode::StreamWrongLastSequenceConstant,
        ])
    }

    /// A publish's expected last message id did not match (10070).
    pub fn is_wrong_last_msg_id(&self) -> bool {
        self.has_err_code(&[ApiErrorCode::StreamWrongLastMsgId])
    }

    /// The stream does not exist (10059).
    pub fn is_stream_not_found(&self) -> bool {
        self.has_err_code(&[ApiErrorCode::StreamNotFound])
    }

    /// The consumer does not exist (10014).
    pub fn is_consumer_not_found(&self) -> bool {
        self.has_err_code(&[ApiErrorCode::ConsumerNotFound])
    }

    /// No message matched a get (10037) or the sequence is gone (10043).
    pub fn is_no_message_found(&self) -> bool {
        self.has_err_code(&[ApiErrorCode::NoMessageFound, ApiErrorCode::SequenceNotFound])
    }

    /// Any of the not-found errors above.
    pub fn is_not_found(&self) -> bool {
        self.is_stream_not_found() || self.is_consumer_not_found() || self.is_no_message_found()
    }
}
