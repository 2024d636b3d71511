//! A request id on every HTTP log line. Each request runs inside a tracing span that
//! carries its id (the caller's `X-Request-Id` when it is a short plain token, else a new
//! UUID), method and path; the answer echoes the id, and one line per request records
//! status and duration. The query string, headers and bodies are never logged: they
//! carry signatures and tokens.

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use tracing::Instrument;

pub const HEADER: &str = "x-request-id";
/// Probes and scrapes come every few seconds: their lines are debug, not info.
const QUIET_PATHS: [&str; 3] = ["/health", "/ready", "/metrics"];

pub async fn request_id(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let id = req
        .headers()
        .get(HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| acceptable(v))
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let quiet = QUIET_PATHS.contains(&req.path());
    let span = tracing::info_span!(
        "http",
        request_id = %id,
        method = %req.method(),
        path = %req.path()
    );
    let started = Instant::now();
    let mut result = next.call(req).instrument(span.clone()).await;
    let ms = started.elapsed().as_secs_f64() * 1e3;
    span.in_scope(|| match &mut result {
        Ok(res) => {
            if let Ok(value) = HeaderValue::from_str(&id) {
                res.headers_mut()
                    .insert(HeaderName::from_static(HEADER), value);
            }
            let status = res.status().as_u16();
            if quiet {
                tracing::debug!(status, ms, "request");
            } else {
                tracing::info!(status, ms, "request");
            }
        }
        Err(e) => tracing::warn!(error = %e, ms, "request failed"),
    });
    result
}

/// A caller's id is kept only when it cannot smuggle anything into a log line.
fn acceptable(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_plain_short_ids_are_taken_from_the_caller() {
        assert!(super::acceptable("4bf92f35-77b3-4da6-a3ce-929d0e0e4736"));
        assert!(!super::acceptable(""));
        assert!(!super::acceptable("a b"));
        assert!(!super::acceptable("x\nlevel=error"));
        assert!(!super::acceptable(&"a".repeat(65)));
    }
}
