//! The local API's one error type, [`ApiError`], and the only place where `/api/v1` maps a
//! refusal or a failure to a status code.
//!
//! Every error answers `{"error": {"status", "field"?, "message"}}`. 400: a query or path
//! parameter does not parse or is out of range; 401: no valid bearer token; 404: no such record;
//! 409: the request does not fit the current state; 410: the change-log entries asked for are
//! past the retention (with `earliest`, the first kept); 413: the body is too large; 422: a field
//! of the body is refused; 503: the store failed, with an opaque message and the cause logged.

use axum::Json;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::store::StoreError;
use crate::sync::local::LocalError;

/// Why a request to the local API did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A query or path parameter does not parse or is out of range: 400 naming it.
    #[error("{field}: {message}")]
    BadRequest {
        /// The parameter at fault.
        field: String,
        /// What is wrong with it.
        message: String,
    },
    /// The bearer token is missing or wrong: 401.
    #[error("missing or invalid bearer token")]
    Unauthorized,
    /// No such record, entry, conflict, import or org: 404.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The request does not fit the current state: 409.
    #[error("{0}")]
    Conflict(String),
    /// A field of the body (or the body itself) is refused: 422 naming it.
    #[error("{field}: {message}")]
    Invalid {
        /// The field at fault (`body` when the JSON itself is broken).
        field: String,
        /// What is wrong with it.
        message: String,
    },
    /// The body is over the size limit: 413.
    #[error("the body is too large")]
    TooLarge,
    /// The store failed: 503; the cause is logged, never sent.
    #[error("service unavailable")]
    Unavailable(#[source] StoreError),
    /// The change-log entries asked for are past the retention: 410 with the earliest kept.
    #[error(
        "the changes after that number are past the retention; the earliest kept is {earliest}"
    )]
    Gone {
        /// The first sequence number still in the log.
        earliest: u64,
    },
    /// Salesforce refused or failed a call the request needed: 502 with its reason.
    #[error("{0}")]
    Upstream(String),
}

impl ApiError {
    /// A refused body field (422).
    pub(crate) fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }

    /// An unreadable query or path parameter (400).
    pub(crate) fn bad_request(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::BadRequest {
            field: field.into(),
            message: message.into(),
        }
    }

    fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest { .. } => StatusCode::BAD_REQUEST,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::Invalid { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Self::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Gone { .. } => StatusCode::GONE,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Upstream(_) => StatusCode::BAD_GATEWAY,
        }
    }
}

impl From<LocalError> for ApiError {
    fn from(e: LocalError) -> Self {
        match e {
            LocalError::Invalid { field, message } => Self::invalid(field, message),
            LocalError::NotFound(what) => Self::NotFound(what),
            LocalError::WrongState(why) => Self::Conflict(why.into()),
            LocalError::NotConnected(_) => Self::Conflict(e.to_string()),
            LocalError::Gone { earliest } => Self::Gone { earliest },
            LocalError::Store(s) => Self::Unavailable(s),
            LocalError::Salesforce(sf) => Self::Upstream(format!("salesforce: {sf}")),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        Self::Unavailable(e)
    }
}

/// The body of every error answer.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ErrorBody {
    /// The error.
    pub(crate) error: ErrorDetail,
}

/// What went wrong, and with which field or parameter when one is at fault.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ErrorDetail {
    /// The HTTP status.
    pub(crate) status: u16,
    /// The field or parameter at fault, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) field: Option<String>,
    /// What is wrong.
    pub(crate) message: String,
    /// On 410 from the change feed: the first sequence number still kept.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) earliest: Option<u64>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let earliest = match self {
            Self::Gone { earliest } => Some(earliest),
            _ => None,
        };
        let (field, message) = match self {
            Self::BadRequest { field, message } | Self::Invalid { field, message } => {
                (Some(field), message)
            }
            Self::Unavailable(ref cause) => {
                tracing::error!(error = %cause, "local api: store failed");
                (None, self.to_string())
            }
            other => (None, other.to_string()),
        };
        let body = ErrorBody {
            error: ErrorDetail {
                status: status.as_u16(),
                field,
                message,
                earliest,
            },
        };
        let mut resp = (status, Json(body)).into_response();
        if status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
        }
        resp
    }
}
