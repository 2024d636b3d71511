//! The agent API connector: POSTs a status change as JSON to `agentapi.url`, signed
//! `X-Statsync-Signature: sha256=<hex HMAC of the body>` with the same secret as the
//! inbound agent webhook. It never retries by itself and never logs the signature.

use chrono::Utc;
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use uuid::Uuid;

use crate::domain::{CanonicalStatus, ExternalRef};
use crate::systems::limiter::Budget;
use crate::systems::outbound::{
    classify_status, excerpt, retry_after, Delivered, ErrorCode, OutboundError, OutboundWrite,
    RateInfo, Written,
};
use crate::systems::signature::sign_prefixed;

/// The body of DESIGN.md: `{"entityId","status","previousStatus","version","links",
/// "timestamp"}`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentNotice<'a> {
    pub entity_id: Uuid,
    pub status: CanonicalStatus,
    pub previous_status: Option<CanonicalStatus>,
    pub version: i64,
    pub links: &'a [ExternalRef],
    pub timestamp: chrono::DateTime<Utc>,
}

pub struct AgentClient {
    /// One token per HTTP request; shared with the dispatcher.
    budget: Budget,
    http: reqwest::Client,
    url: String,
    secret: Option<SecretString>,
}

impl AgentClient {
    pub fn new(
        http: reqwest::Client,
        url: &str,
        secret: Option<SecretString>,
        budget: Budget,
    ) -> Self {
        AgentClient {
            http,
            url: url.to_owned(),
            secret,
            budget,
        }
    }

    pub async fn write(&self, w: &OutboundWrite) -> Result<Delivered, OutboundError> {
        if self.url.is_empty() {
            return Ok(Delivered {
                written: Written::Noop("agentapi.url is not set: agents are not told".into()),
                rate: RateInfo::default(),
                object_updated_at: None,
            });
        }
        let secret = self.secret.as_ref().ok_or_else(|| {
            OutboundError::new(
                ErrorCode::Unauthorized,
                "AGENTAPI_WEBHOOK_SECRET is not set",
            )
        })?;
        let notice = AgentNotice {
            entity_id: w.entity_id,
            status: w.status,
            previous_status: w.previous_status,
            version: w.version,
            links: &w.links,
            timestamp: Utc::now(),
        };
        let body = serde_json::to_vec(&notice).map_err(|e| {
            OutboundError::new(ErrorCode::ValidationFailed, format!("cannot encode: {e}"))
        })?;
        let signature = sign_prefixed(secret.expose_secret().as_bytes(), &body);
        self.budget.acquire().await?;
        let response = self
            .http
            .post(&self.url)
            .header("Content-Type", "application/json")
            .header("X-Statsync-Signature", signature)
            .header(
                "X-Statsync-Delivery",
                format!("{}-{}", w.operation_id, w.outbox_id),
            )
            .body(body)
            .send()
            .await
            .map_err(|e| OutboundError::from_reqwest(&e))?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let rate = RateInfo::github(&headers);
        let Some(code) = classify_status(status) else {
            return Ok(Delivered {
                written: Written::Done,
                rate,
                object_updated_at: None,
            });
        };
        let bytes = response.bytes().await.unwrap_or_default();
        Err(OutboundError {
            code,
            message: format!("agent API answered {status}: {}", excerpt(&bytes)),
            retry_after: retry_after(&headers, Utc::now()),
            rate,
        })
    }
}
