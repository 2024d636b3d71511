//! `POST /webhooks/{github,linear,agentapi}`: raw bytes → verified → parsed → committed
//! → answered. Never answers 2xx for a delivery that is not committed, and never
//! answers at all for a system whose secret is not configured (404, never open). A
//! GitHub event statsync does not read is answered `ignored` from its header alone.

use actix_web::http::header::HeaderMap;
use actix_web::{web, HttpRequest, HttpResponse};
use futures_util::StreamExt;
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use sha2::{Digest, Sha256};

use super::body_deadline;
use super::errors::ApiError;
use super::AppState;
use crate::actors::synchronizer::IntakeError;
use crate::config::HttpSettings;
use crate::domain::SystemId;
use crate::store::inbound::{NewDelivery, Stored};
use crate::systems::{agentapi, github, linear, signature, Parsed, PayloadError};

/// The event type of every agent API report (they carry no event header).
const AGENT_EVENT: &str = "report";
/// Delivery ids are echoed into logs and keys; anything longer is not a real one.
const MAX_DELIVERY_ID_LEN: usize = 200;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/webhooks/github", web::post().to(github_delivery))
        .route("/webhooks/linear", web::post().to(linear_delivery))
        .route("/webhooks/agentapi", web::post().to(agentapi_delivery));
}

async fn github_delivery(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let secret = configured(
        &state.settings.secrets.github_webhook_secret,
        SystemId::Github,
    )?;
    let event = header(req.headers(), "X-GitHub-Event")?
        .ok_or_else(|| ApiError::Malformed("missing header `X-GitHub-Event`".into()))?;
    if github::webhook::INTERNAL_EVENTS.contains(&event) {
        // statsync's own rows (read-backs, backfill) carry these types; GitHub never does.
        return Err(ApiError::Malformed(format!(
            "`X-GitHub-Event: {event}` is not a GitHub event; it is reserved for statsync's own use"
        )));
    }
    if !github::webhook::READ_EVENTS.contains(&event) {
        // Before the body: a `push` of thousands of commits is larger than any delivery
        // statsync reads, and GitHub would show it as failed if answered 413. Without the
        // body the signature cannot be checked, and need not be: nothing is stored or
        // done, whoever sent it.
        return Ok(ignored(
            &state,
            SystemId::Github,
            event,
            format!("GitHub event `{event}` is not handled"),
        ));
    }
    let body = read_body(&req, payload, &state.settings.http).await?;
    signature_header(req.headers(), "X-Hub-Signature-256")
        .and_then(|provided| {
            signature::verify_github(secret.expose_secret().as_bytes(), &body, provided)
        })
        .map_err(|e| bad_signature(&state, SystemId::Github, "X-Hub-Signature-256", e))?;
    let parsed = github::webhook::parse(event, &body).map_err(malformed)?;
    let delivery_id = delivery_id(req.headers(), "X-GitHub-Delivery", &body)?;
    accept(&state, SystemId::Github, &delivery_id, event, &body, parsed).await
}

async fn linear_delivery(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let secret = configured(
        &state.settings.secrets.linear_webhook_secret,
        SystemId::Linear,
    )?;
    let body = read_body(&req, payload, &state.settings.http).await?;
    signature_header(req.headers(), "Linear-Signature")
        .and_then(|provided| {
            signature::verify_linear(secret.expose_secret().as_bytes(), &body, provided)
        })
        .map_err(|e| bad_signature(&state, SystemId::Linear, "Linear-Signature", e))?;
    let delivery = linear::webhook::parse(&body).map_err(malformed)?;
    let tolerance_ms = state.settings.linear.webhook_tolerance_s as i64 * 1000;
    linear::webhook::check_timestamp(
        delivery.webhook_timestamp_ms,
        chrono::Utc::now().timestamp_millis(),
        tolerance_ms,
    )
    .map_err(|e| ApiError::StaleTimestamp(format!("webhookTimestamp: {e}")))?;
    let event = header(req.headers(), "Linear-Event")?.unwrap_or("Issue");
    let delivery_id = delivery_id(req.headers(), "Linear-Delivery", &body)?;
    accept(
        &state,
        SystemId::Linear,
        &delivery_id,
        event,
        &body,
        delivery.parsed,
    )
    .await
}

async fn agentapi_delivery(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let secret = configured(
        &state.settings.secrets.agentapi_webhook_secret,
        SystemId::Agentapi,
    )?;
    let body = read_body(&req, payload, &state.settings.http).await?;
    signature_header(req.headers(), "X-Statsync-Signature")
        .and_then(|provided| {
            signature::verify_prefixed(secret.expose_secret().as_bytes(), &body, provided)
        })
        .map_err(|e| bad_signature(&state, SystemId::Agentapi, "X-Statsync-Signature", e))?;
    let parsed = agentapi::webhook::parse(&body).map_err(malformed)?;
    let delivery_id = delivery_id(req.headers(), "X-Statsync-Delivery", &body)?;
    accept(
        &state,
        SystemId::Agentapi,
        &delivery_id,
        AGENT_EVENT,
        &body,
        parsed,
    )
    .await
}

static REFUSED_LOG: crate::telemetry::Throttle = crate::telemetry::Throttle::new();
static UNSTORED_LOG: crate::telemetry::Throttle = crate::telemetry::Throttle::new();

async fn accept(
    state: &AppState,
    system: SystemId,
    delivery_id: &str,
    event: &str,
    body: &[u8],
    parsed: Parsed,
) -> Result<HttpResponse, ApiError> {
    if let Parsed::Ignored { reason } = parsed {
        return Ok(ignored(state, system, event, reason));
    }
    let label = event_label(system, event);
    let delivery = NewDelivery {
        system,
        delivery_id,
        event_type: event,
        priority: state.settings.engine.priorities.webhook.as_i16(),
        body,
    };
    match state.sync.intake(&delivery).await {
        Ok(Stored::New(id)) => {
            state.sync.monitor_webhook(system, label, "accepted");
            tracing::info!(%system, delivery_id, inbound_id = id, event, "delivery committed");
            Ok(HttpResponse::Ok().json(json!({ "status": "accepted" })))
        }
        Ok(Stored::Duplicate) => {
            state.sync.monitor_webhook(system, label, "duplicate");
            tracing::info!(%system, delivery_id, "duplicate delivery");
            Ok(HttpResponse::Ok().json(json!({ "status": "duplicate" })))
        }
        Err(e) => {
            state.sync.monitor_webhook(system, label, "unavailable");
            let retry_after_s = state.settings.engine.retry_after_s;
            match &e {
                // Every delivery fails alike while it lasts: one line a second.
                IntakeError::QueueFull { .. } => {
                    if let Some(held_back) = REFUSED_LOG.allow(chrono::Utc::now().timestamp()) {
                        tracing::warn!(%system, error = %e, held_back, "delivery refused")
                    }
                }
                IntakeError::Store(cause) => {
                    if let Some(held_back) = UNSTORED_LOG.allow(chrono::Utc::now().timestamp()) {
                        tracing::error!(%system, delivery_id, error = %cause, held_back, "delivery not committed (503)")
                    }
                }
            }
            Err(ApiError::Unavailable {
                message: e.to_string(),
                retry_after_s,
            })
        }
    }
}

/// 200 `ignored`: nothing stored, nothing done.
fn ignored(state: &AppState, system: SystemId, event: &str, reason: String) -> HttpResponse {
    state
        .sync
        .monitor_webhook(system, event_label(system, event), "ignored");
    tracing::debug!(%system, %reason, "delivery ignored");
    HttpResponse::Ok().json(json!({ "status": "ignored", "reason": reason }))
}

/// The `event` label of a delivery: its event header names it, but the header is not
/// signed, so only the names statsync reads are labels; any other is `other`.
fn event_label(system: SystemId, event: &str) -> &'static str {
    let known: &[&'static str] = match system {
        SystemId::Github => &github::webhook::READ_EVENTS,
        SystemId::Linear => &linear::webhook::HANDLED_TYPES,
        SystemId::Agentapi => &[AGENT_EVENT],
        SystemId::Postgresql => &[],
    };
    known
        .iter()
        .find(|k| **k == event)
        .copied()
        .unwrap_or("other")
}

fn configured(secret: &Option<SecretString>, system: SystemId) -> Result<&SecretString, ApiError> {
    secret.as_ref().ok_or_else(|| {
        ApiError::NotFound(format!(
            "the {system} webhook is not enabled on this server (no webhook secret configured)"
        ))
    })
}

fn bad_signature(
    state: &AppState,
    system: SystemId,
    header: &str,
    e: signature::SignatureError,
) -> ApiError {
    state
        .sync
        .metrics()
        .inbound
        .signature_failures
        .with_label_values(&[system.as_str()])
        .inc();
    ApiError::BadSignature(format!("{header}: {e}"))
}

fn malformed(e: PayloadError) -> ApiError {
    ApiError::Malformed(e.to_string())
}

/// A header's value. HTTP allows other bytes in a value, but none of these senders uses
/// them: a value that is not visible ASCII is named as such, never taken for absent.
fn visible<'a>(headers: &'a HeaderMap, name: &str) -> Result<Option<&'a str>, String> {
    match headers.get(name) {
        None => Ok(None),
        Some(v) => v
            .to_str()
            .map(Some)
            .map_err(|_| format!("header `{name}` holds bytes that are not visible ASCII")),
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Result<Option<&'a str>, ApiError> {
    visible(headers, name).map_err(ApiError::Malformed)
}

/// The signature header, for the verifier: unreadable is malformed, not missing.
fn signature_header<'a>(
    headers: &'a HeaderMap,
    name: &str,
) -> Result<Option<&'a str>, signature::SignatureError> {
    visible(headers, name).map_err(signature::SignatureError::Malformed)
}

/// The sender's delivery id, else a digest of the body, so a resend of the same bytes
/// is recognised either way.
fn delivery_id(headers: &HeaderMap, name: &str, body: &[u8]) -> Result<String, ApiError> {
    match header(headers, name)?.map(str::trim) {
        Some(id) if id.is_empty() || id.len() > MAX_DELIVERY_ID_LEN => Err(ApiError::Malformed(
            format!("header `{name}` must be 1 to {MAX_DELIVERY_ID_LEN} characters"),
        )),
        Some(id) => Ok(id.to_owned()),
        None => Ok(format!("sha256:{}", hex::encode(Sha256::digest(body)))),
    }
}

/// Reads the whole body, refusing (413) as soon as it passes the limit, so an oversized
/// request never sits in memory; a body slower than `http.body_timeout_ms` is 408.
async fn read_body(
    req: &HttpRequest,
    mut payload: web::Payload,
    http: &HttpSettings,
) -> Result<web::Bytes, ApiError> {
    let limit = http.max_body_bytes;
    let declared = header(req.headers(), "content-length")?.and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(ApiError::TooLarge { limit });
    }
    let mut body = web::BytesMut::with_capacity(declared.unwrap_or(8 * 1024).min(limit));
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| {
            if body_deadline::is_timeout(&e) {
                ApiError::BodyTimeout {
                    ms: http.body_timeout_ms,
                }
            } else {
                ApiError::Malformed(format!("could not read the body: {e}"))
            }
        })?;
        if body.len() + chunk.len() > limit {
            return Err(ApiError::TooLarge { limit });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

#[cfg(test)]
mod tests {
    use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};

    use super::signature_header;

    #[test]
    fn a_signature_that_is_not_visible_ascii_is_named_not_taken_for_missing() {
        let name = "X-Hub-Signature-256";
        let mut headers = HeaderMap::new();
        assert!(matches!(signature_header(&headers, name), Ok(None)));
        headers.insert(
            HeaderName::from_static("x-hub-signature-256"),
            HeaderValue::from_bytes(b"sha256=\xffab").unwrap(),
        );
        let err = signature_header(&headers, name).unwrap_err().to_string();
        assert!(
            err.contains("`X-Hub-Signature-256`") && err.contains("not visible ASCII"),
            "{err}"
        );
        assert!(!err.contains("missing"), "{err}");
    }
}
