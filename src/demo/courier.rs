//! Delivers the world's webhooks to statsync's own endpoints, signed as GitHub, Linear
//! and the agent API sign them. A delivery not answered 200 is sent again with the
//! same delivery id, as both senders retry.

use std::sync::Arc;
use std::time::Duration;

use crate::systems::signature;

use super::standins::Shared;
use super::world::{Mail, Sys};

/// The webhook secrets the demo's statsync is configured with.
pub struct Secrets {
    pub github: String,
    pub linear: String,
    pub agent: String,
}

async fn send(http: &reqwest::Client, base: &str, secrets: &Secrets, mail: &Mail) -> bool {
    let mut body = mail.body.clone();
    if mail.sys == Sys::Linear {
        // Each attempt is stamped when it leaves; statsync refuses stale ones.
        body["webhookTimestamp"] = chrono::Utc::now().timestamp_millis().into();
    }
    let bytes = serde_json::to_vec(&body).unwrap_or_default();
    let req = match mail.sys {
        Sys::Github => http
            .post(format!("{base}/webhooks/github"))
            .header("X-GitHub-Event", &mail.event)
            .header("X-GitHub-Delivery", &mail.delivery)
            .header(
                "X-Hub-Signature-256",
                signature::sign_prefixed(secrets.github.as_bytes(), &bytes),
            )
            .header("User-Agent", "GitHub-Hookshot/demo"),
        Sys::Linear => http
            .post(format!("{base}/webhooks/linear"))
            .header("Linear-Event", &mail.event)
            .header("Linear-Delivery", &mail.delivery)
            .header(
                "Linear-Signature",
                signature::sign_hex(secrets.linear.as_bytes(), &bytes),
            )
            .header("User-Agent", "Linear-Webhook"),
        Sys::Agent => http
            .post(format!("{base}/webhooks/agentapi"))
            .header("X-Statsync-Delivery", &mail.delivery)
            .header(
                "X-Statsync-Signature",
                signature::sign_prefixed(secrets.agent.as_bytes(), &bytes),
            ),
    };
    let sent = req
        .header("content-type", "application/json")
        .timeout(Duration::from_secs(10))
        .body(bytes)
        .send()
        .await;
    match sent {
        Ok(r) if r.status().is_success() => true,
        Ok(r) => {
            let status = r.status();
            let text = r.text().await.unwrap_or_default();
            tracing::warn!(%status, event = %mail.event, answer = %text, "demo: a webhook was not accepted; sending it again");
            false
        }
        Err(e) => {
            tracing::warn!(error = %e, "demo: a webhook was not delivered; sending it again");
            false
        }
    }
}

/// Runs until the task is dropped: each ring of the bell sends what is waiting, in
/// the order it happened.
pub async fn run(shared: Arc<Shared>, base: String, secrets: Secrets) {
    let http = reqwest::Client::new();
    loop {
        let waiting: Vec<Mail> = std::mem::take(&mut shared.lock().mail);
        let mut failed = Vec::new();
        for mail in waiting {
            if !failed.is_empty() || !send(&http, &base, &secrets, &mail).await {
                failed.push(mail);
            }
        }
        if failed.is_empty() {
            shared.mail.notified().await;
        } else {
            // What failed goes first next time, before anything newer.
            {
                let mut w = shared.lock();
                failed.append(&mut w.mail);
                w.mail = failed;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}
