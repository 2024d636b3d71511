//! `POST /webhooks/{system}` (`github`, `linear`, `agentapi`: each a connector's door):
//! raw bytes → verified → parsed → committed → answered. Never answers 2xx for a
//! delivery that is not committed, and never answers at all for a system whose secret
//! is not configured (404, never open). An event a connector does not read (GitHub's
//! `push`) is answered `ignored` from its header alone.

use actix_web::http::header::HeaderMap;
use actix_web::{web, HttpRequest, HttpResponse};
use futures_util::StreamExt;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

use super::body_deadline;
use super::errors::ApiError;
use super::AppState;
use crate::actors::synchronizer::IntakeError;
use crate::config::HttpSettings;
use crate::domain::{Origin, SystemId};
use crate::store::inbound::{NewDelivery, Stored};
use crate::systems::connector::{Connector, CredentialSource, Door, Refusal};
use crate::systems::{signature, Parsed};

/// Delivery ids are echoed into logs and keys; anything longer is not a real one.
const MAX_DELIVERY_ID_LEN: usize = 200;

/// The built-in doors, routed by name: actix matches a literal path by comparing
/// strings, a `{system}` pattern with a regex on every request (measured: ~10 % more
/// service CPU per delivery). Systems registered beyond them take the pattern.
const BUILT_IN_DOORS: [&str; 3] = ["/webhooks/github", "/webhooks/linear", "/webhooks/agentapi"];

pub fn routes(cfg: &mut web::ServiceConfig) {
    for path in BUILT_IN_DOORS {
        cfg.route(path, web::post().to(delivery));
    }
    cfg.route("/webhooks/{system}", web::post().to(delivery));
}

/// One door for every system: its connector names the headers, checks the signature
/// and says what the body means; what follows is the same for all.
async fn delivery(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let name = req.path().trim_start_matches("/webhooks/");
    let connector = state.connectors.by_door(name).ok_or_else(|| {
        ApiError::NotFound(format!("no system named `{name}` takes webhooks here"))
    })?;
    let (system, door) = (connector.system(), connector.door());
    let secret = configured(connector.webhook_secret(), system)?;
    let event = match door.event_header {
        Some((header_name, required)) => match header(req.headers(), header_name)? {
            Some(event) => event,
            None if required => {
                return Err(ApiError::Malformed(format!(
                    "missing header `{header_name}`"
                )))
            }
            None => door.default_event,
        },
        None => door.default_event,
    };
    if let Some(reason) = connector.ignored_unread(event) {
        return Ok(ignored(&state, connector, event, reason));
    }
    let body = read_body(&req, payload, &state.settings.http).await?;
    verify(
        req.headers(),
        door,
        secret.expose_secret().as_bytes(),
        &body,
    )
    .map_err(|(header, e)| bad_signature(&state, system, &header, e))?;
    let parsed =
        connector
            .admit(event, &body, chrono::Utc::now())
            .map_err(|refusal| match refusal {
                Refusal::Malformed(e) => ApiError::Malformed(e.to_string()),
                Refusal::Stale(why) => ApiError::StaleTimestamp(why),
            })?;
    let delivery_id = delivery_id(req.headers(), door.delivery_header, &body)?;
    accept(&state, connector, &delivery_id, event, &body, parsed).await
}

/// A webhook's 200: `accepted` (committed), `duplicate` (that delivery id was already
/// committed) or `ignored` (nothing to do; `reason` says why).
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct WebhookAnswer {
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
}

impl WebhookAnswer {
    fn new(status: &'static str, reason: Option<String>) -> Self {
        WebhookAnswer { status, reason }
    }
}

static REFUSED_LOG: crate::telemetry::Throttle = crate::telemetry::Throttle::new();
static UNSTORED_LOG: crate::telemetry::Throttle = crate::telemetry::Throttle::new();

async fn accept(
    state: &AppState,
    connector: &dyn Connector,
    delivery_id: &str,
    event: &str,
    body: &[u8],
    parsed: Parsed,
) -> Result<HttpResponse, ApiError> {
    let updates = match parsed {
        Parsed::Ignored { reason } => return Ok(ignored(state, connector, event, reason)),
        Parsed::Updates(updates) => updates,
    };
    let stored = crate::systems::stored::encode(&updates);
    let system = connector.system();
    let label = event_label(connector, event);
    let delivery = NewDelivery {
        system,
        origin: Origin::Webhook,
        delivery_id,
        event_type: event,
        priority: state.settings.engine.priorities.webhook.as_i16(),
        body,
        parsed: stored.as_deref(),
    };
    match state.sync.intake(&delivery).await {
        Ok(Stored::New(id)) => {
            state.sync.monitor_webhook(system, label, "accepted");
            tracing::info!(%system, delivery_id, inbound_id = id, event, "delivery committed");
            Ok(HttpResponse::Ok().json(WebhookAnswer::new("accepted", None)))
        }
        Ok(Stored::Duplicate) => {
            state.sync.monitor_webhook(system, label, "duplicate");
            tracing::info!(%system, delivery_id, "duplicate delivery");
            Ok(HttpResponse::Ok().json(WebhookAnswer::new("duplicate", None)))
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
fn ignored(
    state: &AppState,
    connector: &dyn Connector,
    event: &str,
    reason: String,
) -> HttpResponse {
    let system = connector.system();
    state
        .sync
        .monitor_webhook(system, event_label(connector, event), "ignored");
    tracing::debug!(%system, %reason, "delivery ignored");
    HttpResponse::Ok().json(WebhookAnswer::new("ignored", Some(reason)))
}

/// The `event` label of a delivery: its event header names it, but the header is not
/// signed, so only the names statsync reads are labels; any other is `other`.
fn event_label(connector: &dyn Connector, event: &str) -> &'static str {
    connector
        .door()
        .events
        .iter()
        .find(|k| **k == event)
        .copied()
        .unwrap_or("other")
}

fn configured(secret: Option<&SecretString>, system: SystemId) -> Result<&SecretString, ApiError> {
    secret.ok_or_else(|| {
        ApiError::NotFound(format!(
            "the {system} webhook is not enabled on this server (its webhook credential is not configured)"
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

/// Checks every credential the delivery presents where its door looks for one
/// (`signature_header`, then `credential_also`): the first that verifies admits it.
/// Refused: the first one's error, named by where it came; none presented: `Missing`,
/// naming every place one may come.
fn verify(
    headers: &HeaderMap,
    door: &Door,
    secret: &[u8],
    body: &[u8],
) -> Result<(), (String, signature::SignatureError)> {
    let sources = std::iter::once(CredentialSource::Header(door.signature_header))
        .chain(door.credential_also.iter().copied());
    let mut refused = None;
    let mut places = Vec::new();
    for source in sources {
        let (place, presented) = match source {
            CredentialSource::Header(name) => (name.to_owned(), signature_header(headers, name)),
            CredentialSource::Bearer => ("Authorization: Bearer".to_owned(), bearer(headers)),
        };
        let outcome = match presented {
            Ok(None) => {
                places.push(place);
                continue;
            }
            Ok(Some(value)) => (door.verify)(secret, body, Some(value)),
            Err(e) => Err(e),
        };
        match outcome {
            Ok(()) => return Ok(()),
            Err(e) => {
                refused.get_or_insert((place, e));
            }
        }
    }
    match refused {
        Some(first) => Err(first),
        None => Err((
            places.join(" or "),
            (door.verify)(secret, body, None)
                .err()
                .unwrap_or(signature::SignatureError::Missing),
        )),
    }
}

/// The credential of an `Authorization: Bearer <credential>` header (the scheme is
/// case-insensitive); any other scheme presents none.
fn bearer(headers: &HeaderMap) -> Result<Option<&str>, signature::SignatureError> {
    let Some(value) = signature_header(headers, "authorization")? else {
        return Ok(None);
    };
    let (scheme, credential) = value.split_once(' ').unwrap_or((value, ""));
    Ok(scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| credential.trim()))
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
pub(super) async fn read_body(
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
