//! How every call to GitHub's REST API is made and how its failures are read: the
//! headers each request carries, and a non-2xx answer as a classified
//! [`OutboundError`]. Shared by the writer, the App's token exchange and the listing.

use std::time::Duration;

use chrono::Utc;
use reqwest::header::HeaderMap;
use serde_json::Value;

use crate::systems::outbound::{
    classify_status, excerpt, retry_after, until, ErrorCode, OutboundError, RateInfo,
};

/// The REST API version statsync is written against.
pub const API_VERSION: &str = "2022-11-28";
/// GitHub's advice when a secondary limit names no wait: at least a minute.
pub const SECONDARY_LIMIT_DEFAULT: Duration = Duration::from_secs(60);

/// A call to GitHub's API as every one is made: the bearer credential, the media type,
/// the API version statsync is written against, and who is calling.
pub fn as_github(request: reqwest::RequestBuilder, bearer: &str) -> reqwest::RequestBuilder {
    request
        .bearer_auth(bearer)
        .header("Accept", "application/vnd.github+json")
        .header("X-GitHub-Api-Version", API_VERSION)
        .header(
            "User-Agent",
            concat!("statsync/", env!("CARGO_PKG_VERSION")),
        )
}

/// A non-2xx REST answer as a stable code. GitHub answers both 403 and 429 for rate
/// limits (primary: `x-ratelimit-remaining: 0`; secondary: `retry-after`, or a message
/// saying so), and 403 for writes to archived repositories.
pub fn classify(status: u16, headers: &HeaderMap, body: &[u8]) -> OutboundError {
    let now = Utc::now();
    let rate = RateInfo::github(headers);
    let message = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v["message"].as_str().map(str::to_owned))
        .unwrap_or_else(|| excerpt(body));
    let lower = message.to_lowercase();
    let told = retry_after(headers, now);
    let limited = told.is_some() || rate.remaining == Some(0) || lower.contains("rate limit");
    let code = match status {
        403 | 429 if limited => ErrorCode::RateLimit,
        403 if lower.contains("archived") => ErrorCode::RepoArchived,
        s => classify_status(s).unwrap_or(ErrorCode::Upstream5xx),
    };
    let retry_after = match code {
        ErrorCode::RateLimit => Some(
            told.or_else(|| rate.exhausted_until().map(|at| until(at, now)))
                .unwrap_or(SECONDARY_LIMIT_DEFAULT),
        ),
        _ => told,
    };
    OutboundError {
        code,
        message: format!("GitHub answered {status}: {message}"),
        retry_after,
        rate,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn secondary_limits_archived_repos_and_permissions_are_told_apart() {
        let mut h = HeaderMap::new();
        h.insert("retry-after", HeaderValue::from_static("3"));
        let e = classify(
            403,
            &h,
            br#"{"message":"You have exceeded a secondary rate limit."}"#,
        );
        assert_eq!(e.code, ErrorCode::RateLimit);
        assert_eq!(e.retry_after, Some(Duration::from_secs(3)));

        let e = classify(
            403,
            &HeaderMap::new(),
            br#"{"message":"Repository was archived so is read-only."}"#,
        );
        assert_eq!(e.code, ErrorCode::RepoArchived);
        let e = classify(
            403,
            &HeaderMap::new(),
            br#"{"message":"Resource not accessible by integration"}"#,
        );
        assert_eq!(e.code, ErrorCode::InsufficientPermissions);
        let e = classify(401, &HeaderMap::new(), br#"{"message":"Bad credentials"}"#);
        assert_eq!(e.code, ErrorCode::Unauthorized);
        assert!(e.message.contains("Bad credentials"));
        let e = classify(502, &HeaderMap::new(), b"<html>bad gateway</html>");
        assert_eq!(e.code, ErrorCode::Upstream5xx);
    }
}
