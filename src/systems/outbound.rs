//! What every outbound connector shares: the write it is asked to make, the stable
//! error codes a failure is classified into (DESIGN.md: UPPER_SNAKE_CASE everywhere),
//! and the rate-limit facts an answer carried. Connectors turn HTTP answers into these;
//! nothing here does I/O, and nothing here may ever hold a token or a signature.

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::header::HeaderMap;
use serde::Serialize;
use uuid::Uuid;

use crate::domain::{CanonicalStatus, EntityKind, ExternalRef};

/// One outbound write, as the dispatcher hands it to a connector.
#[derive(Debug, Clone)]
pub struct OutboundWrite {
    pub outbox_id: i64,
    pub entity_id: Uuid,
    pub kind: EntityKind,
    /// Linear team key or GitHub `owner/repo`, when known.
    pub project: Option<String>,
    pub external_id: String,
    pub status: CanonicalStatus,
    pub previous_status: Option<CanonicalStatus>,
    pub version: i64,
    pub operation_id: Uuid,
    /// Every external object the entity is linked to (the agent API is told them).
    pub links: Vec<ExternalRef>,
}

/// What a connector did.
#[derive(Debug, Clone, PartialEq)]
pub enum Written {
    /// The system now shows the status.
    Done,
    /// Nothing could or needed to be written; the reason is recorded on the row.
    Noop(String),
}

/// A successful call: what was done, and what the API said about its limits.
#[derive(Debug, Clone)]
pub struct Delivered {
    pub written: Written,
    pub rate: RateInfo,
    /// The object's updated-at after the write, as the API answered it: the source
    /// time the webhook about this write will carry (its echo).
    pub object_updated_at: Option<DateTime<Utc>>,
}

/// The stable error codes of outbound failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    RateLimit,
    Unauthorized,
    InsufficientPermissions,
    NotFound,
    ValidationFailed,
    RepoArchived,
    Conflict,
    Network,
    Timeout,
    Upstream5xx,
    /// Never sent: statsync stopped before the call started. The row goes back to the
    /// queue without counting an attempt.
    ShuttingDown,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::RateLimit => "RATE_LIMIT",
            ErrorCode::Unauthorized => "UNAUTHORIZED",
            ErrorCode::InsufficientPermissions => "INSUFFICIENT_PERMISSIONS",
            ErrorCode::NotFound => "NOT_FOUND",
            ErrorCode::ValidationFailed => "VALIDATION_FAILED",
            ErrorCode::RepoArchived => "REPO_ARCHIVED",
            ErrorCode::Conflict => "CONFLICT",
            ErrorCode::Network => "NETWORK",
            ErrorCode::Timeout => "TIMEOUT",
            ErrorCode::Upstream5xx => "UPSTREAM_5XX",
            ErrorCode::ShuttingDown => "SHUTTING_DOWN",
        }
    }

    /// Whether the same write may succeed later. Credentials, permissions, missing or
    /// archived objects and rejected input do not fix themselves: they dead-letter at
    /// once and wait for a person (and `POST /api/v1/sync/outbox/{id}/retry`).
    pub fn retryable(self) -> bool {
        matches!(
            self,
            ErrorCode::RateLimit
                | ErrorCode::Network
                | ErrorCode::Timeout
                | ErrorCode::Upstream5xx
                | ErrorCode::ShuttingDown
        )
    }
}

impl Serialize for ErrorCode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failed outbound call, classified.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{code}: {message}")]
pub struct OutboundError {
    pub code: ErrorCode,
    pub message: String,
    /// What the API asked us to wait (Retry-After, a rate-limit reset).
    pub retry_after: Option<Duration>,
    pub rate: RateInfo,
}

impl OutboundError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        OutboundError {
            code,
            message: message.into(),
            retry_after: None,
            rate: RateInfo::default(),
        }
    }

    pub fn retryable(&self) -> bool {
        self.code.retryable()
    }

    /// A transport failure: no answer, or no complete one.
    pub fn from_reqwest(e: &reqwest::Error) -> Self {
        // reqwest's Display never includes request headers, so no token can leak here.
        let code = if e.is_timeout() {
            ErrorCode::Timeout
        } else {
            ErrorCode::Network
        };
        let mut message = e.to_string();
        if let Some(cause) = std::error::Error::source(e) {
            message = format!("{message}: {cause}");
        }
        OutboundError::new(code, message)
    }
}

/// What an answer's headers said about the caller's budget.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RateInfo {
    pub remaining: Option<i64>,
    /// When the budget refills.
    pub reset_at: Option<DateTime<Utc>>,
}

impl RateInfo {
    /// GitHub-style `x-ratelimit-remaining` / `x-ratelimit-reset` (epoch seconds).
    pub fn github(headers: &HeaderMap) -> RateInfo {
        RateInfo {
            remaining: header_i64(headers, "x-ratelimit-remaining"),
            reset_at: header_i64(headers, "x-ratelimit-reset")
                .and_then(|s| DateTime::from_timestamp(s, 0)),
        }
    }

    /// Linear's `x-ratelimit-requests-remaining` / `-reset` (epoch milliseconds); the
    /// complexity budget is honoured too when it is the one exhausted.
    pub fn linear(headers: &HeaderMap) -> RateInfo {
        let requests = (
            header_i64(headers, "x-ratelimit-requests-remaining"),
            header_i64(headers, "x-ratelimit-requests-reset"),
        );
        let complexity = (
            header_i64(headers, "x-ratelimit-complexity-remaining"),
            header_i64(headers, "x-ratelimit-complexity-reset"),
        );
        let pick = match (requests.0, complexity.0) {
            (_, Some(c)) if c <= 0 => complexity,
            (Some(_), _) => requests,
            _ => complexity,
        };
        RateInfo {
            remaining: pick.0,
            reset_at: pick.1.and_then(DateTime::from_timestamp_millis),
        }
    }

    /// The budget is spent: wait until this instant (when the API said).
    pub fn exhausted_until(&self) -> Option<DateTime<Utc>> {
        match self.remaining {
            Some(r) if r <= 0 => self.reset_at,
            _ => None,
        }
    }
}

fn header_i64(headers: &HeaderMap, name: &str) -> Option<i64> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map(|v| v as i64)
}

/// An answer read whole: status, headers and body.
pub struct Exchange {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

/// Sends `request` and reads the whole answer; transport failures (refused, reset,
/// timed out) become their error codes here, once, for every connector.
pub async fn exchange(request: reqwest::RequestBuilder) -> Result<Exchange, OutboundError> {
    let response = request
        .send()
        .await
        .map_err(|e| OutboundError::from_reqwest(&e))?;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response
        .bytes()
        .await
        .map_err(|e| OutboundError::from_reqwest(&e))?
        .to_vec();
    Ok(Exchange {
        status,
        headers,
        body,
    })
}

/// The answer's `Date` header: the API's clock (`doctor` compares it with this one).
pub fn date_of(headers: &HeaderMap) -> Option<DateTime<Utc>> {
    let value = headers.get("date")?.to_str().ok()?;
    DateTime::parse_from_rfc2822(value)
        .ok()
        .map(|d| d.with_timezone(&Utc))
}

/// `Retry-After` in seconds (the HTTP-date form is turned into seconds from `now`).
pub fn retry_after(headers: &HeaderMap, now: DateTime<Utc>) -> Option<Duration> {
    let value = headers.get("retry-after")?.to_str().ok()?.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = DateTime::parse_from_rfc2822(value).ok()?;
    let secs = (at.with_timezone(&Utc) - now).num_seconds().max(0);
    Some(Duration::from_secs(secs as u64))
}

/// Time until `at`, at least zero.
pub fn until(at: DateTime<Utc>, now: DateTime<Utc>) -> Duration {
    (at - now).to_std().unwrap_or(Duration::ZERO)
}

/// The part of an error body worth keeping: bounded, so a huge HTML error page from a
/// proxy does not end up in the outbox row.
pub fn excerpt(body: &[u8]) -> String {
    const MAX: usize = 500;
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    match text.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

/// The classification every REST-ish API shares; connectors refine 403 and 422.
pub fn classify_status(status: u16) -> Option<ErrorCode> {
    Some(match status {
        200..=299 => return None,
        401 => ErrorCode::Unauthorized,
        403 => ErrorCode::InsufficientPermissions,
        404 | 410 => ErrorCode::NotFound,
        408 => ErrorCode::Timeout,
        409 => ErrorCode::Conflict,
        429 => ErrorCode::RateLimit,
        500..=599 => ErrorCode::Upstream5xx,
        _ => ErrorCode::ValidationFailed,
    })
}

/// The RFC 3339 time a JSON answer holds at `pointer`, if it holds one there.
pub fn time_at(answer: &serde_json::Value, pointer: &str) -> Option<DateTime<Utc>> {
    let at = answer.pointer(pointer)?.as_str()?;
    DateTime::parse_from_rfc3339(at)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn only_transient_codes_are_retryable() {
        assert!(ErrorCode::RateLimit.retryable());
        assert!(ErrorCode::Timeout.retryable());
        assert!(ErrorCode::Upstream5xx.retryable());
        assert!(!ErrorCode::Unauthorized.retryable());
        assert!(!ErrorCode::RepoArchived.retryable());
        assert_eq!(
            serde_json::to_string(&ErrorCode::Upstream5xx).unwrap(),
            "\"UPSTREAM_5XX\""
        );
        assert_eq!(
            serde_json::to_string(&ErrorCode::InsufficientPermissions).unwrap(),
            format!("\"{}\"", ErrorCode::InsufficientPermissions.as_str())
        );
    }

    #[test]
    fn rate_headers_are_read_in_each_apis_units() {
        let mut h = HeaderMap::new();
        h.insert("x-ratelimit-remaining", HeaderValue::from_static("0"));
        h.insert("x-ratelimit-reset", HeaderValue::from_static("1700000000"));
        let r = RateInfo::github(&h);
        assert_eq!(r.exhausted_until().unwrap().timestamp(), 1_700_000_000);

        let mut h = HeaderMap::new();
        h.insert(
            "x-ratelimit-requests-remaining",
            HeaderValue::from_static("12"),
        );
        h.insert(
            "x-ratelimit-requests-reset",
            HeaderValue::from_static("1700000000123"),
        );
        let r = RateInfo::linear(&h);
        assert_eq!(r.remaining, Some(12));
        assert_eq!(r.reset_at.unwrap().timestamp_millis(), 1_700_000_000_123);
        assert!(r.exhausted_until().is_none());
    }

    #[test]
    fn retry_after_takes_seconds_or_a_date() {
        let now = Utc::now();
        let mut h = HeaderMap::new();
        h.insert("retry-after", HeaderValue::from_static("7"));
        assert_eq!(retry_after(&h, now), Some(Duration::from_secs(7)));
        let later = (now + chrono::TimeDelta::seconds(30)).to_rfc2822();
        h.insert("retry-after", HeaderValue::from_str(&later).unwrap());
        let got = retry_after(&h, now).unwrap().as_secs();
        assert!((29..=30).contains(&got), "{got}");
    }

    #[test]
    fn excerpts_are_bounded() {
        let long = "x".repeat(2000);
        assert!(excerpt(long.as_bytes()).chars().count() <= 501);
    }
}
