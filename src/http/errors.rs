//! The one mapping from what went wrong to an HTTP answer:
//! `{"error":{"code","message","retryable","retryAfter"?}}`. Internal causes are logged
//! with their chain and answered as an opaque 500.

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    BadSignature(String),
    #[error("{0}")]
    StaleTimestamp(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    Malformed(String),
    #[error("{0}")]
    NotFound(String),
    #[error("request body is larger than the {limit} bytes allowed (http.max_body_bytes)")]
    TooLarge { limit: usize },
    #[error("the request body did not arrive within {ms} ms (http.body_timeout_ms)")]
    BodyTimeout { ms: u64 },
    #[error("{method} is not allowed here; allowed: {allow}")]
    MethodNotAllowed { method: String, allow: String },
    #[error("{0}")]
    Conflict(String),
    #[error("{message}")]
    Unprocessable { code: &'static str, message: String },
    #[error("{message}")]
    Unavailable { message: String, retry_after_s: u64 },
    #[error("internal error")]
    Unexpected(#[from] anyhow::Error),
}

impl ApiError {
    /// A 400 for input that did not deserialize, naming the field at fault when there
    /// is one: `invalid <what>: `<path>`: <why>`.
    pub fn malformed_at<E: std::fmt::Display>(
        what: &str,
        e: serde_path_to_error::Error<E>,
    ) -> Self {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path == "." {
            ApiError::Malformed(format!("invalid {what}: {inner}"))
        } else {
            ApiError::Malformed(format!("invalid {what}: `{path}`: {inner}"))
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Unauthorized(_) => "UNAUTHORIZED",
            ApiError::BadSignature(_) => "INVALID_SIGNATURE",
            ApiError::StaleTimestamp(_) => "STALE_TIMESTAMP",
            ApiError::Forbidden(_) => "FORBIDDEN",
            ApiError::Malformed(_) => "MALFORMED_REQUEST",
            ApiError::NotFound(_) => "NOT_FOUND",
            ApiError::TooLarge { .. } => "PAYLOAD_TOO_LARGE",
            ApiError::BodyTimeout { .. } => "REQUEST_TIMEOUT",
            ApiError::MethodNotAllowed { .. } => "METHOD_NOT_ALLOWED",
            ApiError::Conflict(_) => "CONFLICT",
            ApiError::Unprocessable { code, .. } => code,
            ApiError::Unavailable { .. } => "SERVICE_UNAVAILABLE",
            ApiError::Unexpected(_) => "INTERNAL_ERROR",
        }
    }

    /// The one error body; also what an MCP tool answers as its error.
    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            error: ErrorDetail {
                code: self.code().to_owned(),
                message: self.to_string(),
                retryable: matches!(
                    self,
                    ApiError::Unavailable { .. } | ApiError::BodyTimeout { .. }
                ),
                retry_after: self.retry_after(),
            },
        }
    }

    fn retry_after(&self) -> Option<u64> {
        match self {
            ApiError::Unavailable { retry_after_s, .. } => Some(*retry_after_s),
            _ => None,
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::Unauthorized(_) | ApiError::BadSignature(_) | ApiError::StaleTimestamp(_) => {
                StatusCode::UNAUTHORIZED
            }
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::Malformed(_) => StatusCode::BAD_REQUEST,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::BodyTimeout { .. } => StatusCode::REQUEST_TIMEOUT,
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::Unprocessable { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Unexpected(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        if let ApiError::Unexpected(cause) = self {
            tracing::error!(error = ?cause, "request failed");
        }
        let body = self.body();
        let mut response = HttpResponse::build(self.status_code());
        if let Some(secs) = body.error.retry_after {
            response.insert_header((header::RETRY_AFTER, secs.to_string()));
        }
        if let ApiError::MethodNotAllowed { allow, .. } = self {
            response.insert_header((header::ALLOW, allow.clone()));
        }
        response.json(body)
    }
}

/// Every error's body.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ErrorDetail {
    /// `UNAUTHORIZED`, `MALFORMED_REQUEST`, `NOT_FOUND`, `INVALID_STATUS`, …
    pub code: String,
    /// What was wrong, naming the field or key.
    pub message: String,
    /// Whether the same request may succeed later.
    pub retryable: bool,
    /// Seconds to wait before retrying (also the `Retry-After` header).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u64>,
}
