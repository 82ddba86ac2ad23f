//! RFC 9457 problem details: the body of every 4xx and 5xx answer of the
//! `/v1` API.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use herald_protocol::jetstream::ApiError;
use serde::Serialize;

use crate::local::LocalError;

/// Base of the `type` URIs; the last segment names the problem.
const TYPE_BASE: &str = "https://herald.dev/problems/";

/// One problem: what went wrong, for people (`title`, `detail`) and for
/// programs (`type`, `status`, and the JetStream `err_code` when one applies).
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Problem {
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// The JetStream error code (e.g. 10059 stream not found).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub err_code: Option<u16>,
}

impl Problem {
    /// A problem of type `slug` with HTTP `status`.
    pub fn new(status: StatusCode, slug: &str, detail: impl Into<String>) -> Problem {
        Problem {
            kind: format!("{TYPE_BASE}{slug}"),
            title: status.canonical_reason().unwrap_or("Error").to_string(),
            status: status.as_u16(),
            detail: detail.into(),
            err_code: None,
        }
    }

    /// 400: the request is malformed.
    pub fn bad_request(slug: &str, detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::BAD_REQUEST, slug, detail)
    }

    /// 404: the named resource does not exist.
    pub fn not_found(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::NOT_FOUND, "not-found", detail)
    }

    /// 413: the body is larger than allowed.
    pub fn too_large(limit: usize) -> Problem {
        Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload-too-large",
            format!("the body is larger than the maximum of {limit} bytes"),
        )
    }

    /// A JetStream API error, with its HTTP-like code as the status.
    pub fn from_api(error: &ApiError) -> Problem {
        let status = StatusCode::from_u16(error.code)
            .ok()
            .filter(|s| s.is_client_error() || s.is_server_error())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        Problem {
            err_code: Some(error.err_code),
            ..Problem::new(status, "jetstream", error.description.clone())
        }
    }
}

impl From<LocalError> for Problem {
    fn from(e: LocalError) -> Problem {
        match e {
            LocalError::Timeout(_) => Problem::new(StatusCode::GATEWAY_TIMEOUT, "timeout", e.to_string()),
            LocalError::NoResponders(_) => {
                Problem::new(StatusCode::SERVICE_UNAVAILABLE, "no-responders", e.to_string())
            }
            LocalError::InvalidSubject(_) => Problem::bad_request("invalid-subject", e.to_string()),
        }
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&self).unwrap_or_default();
        (status, [(header::CONTENT_TYPE, "application/problem+json")], body).into_response()
    }
}
