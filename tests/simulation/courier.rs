//! Delivers the world's webhooks to statsync's real endpoints, signed as GitHub and
//! Linear sign them: whatever is due, in the order the scheduler shuffled it. A delivery
//! that is not answered 200 (statsync down, 503) stays queued and is sent again with
//! the same delivery id, as both senders retry; duplicates and redeliveries after a
//! drop carry the same id too.

use std::time::Duration;

use futures_util::future::join_all;
use rand::seq::SliceRandom;
use rand::Rng;
use statsync::systems::signature;

use super::standins::Shared;
use super::support::{GITHUB_SECRET, LINEAR_SECRET};
use super::world::{Mail, Sys};

/// Sends one delivery; answers the HTTP status (0 when nothing answered).
async fn send(http: &reqwest::Client, base: &str, mail: &Mail) -> (u16, String) {
    let mut body = mail.body.clone();
    let req = match mail.sys {
        Sys::Github => {
            let bytes = serde_json::to_vec(&body).expect("JSON");
            let sig = signature::sign_prefixed(GITHUB_SECRET.as_bytes(), &bytes);
            http.post(format!("{base}/webhooks/github"))
                .header("content-type", "application/json")
                .header("X-GitHub-Event", &mail.event)
                .header("X-GitHub-Delivery", &mail.id)
                .header("X-Hub-Signature-256", sig)
                .header("User-Agent", "GitHub-Hookshot/sim")
                .body(bytes)
        }
        Sys::Linear => {
            // Each attempt is sent afresh, stamped when it leaves.
            body["webhookTimestamp"] = chrono::Utc::now().timestamp_millis().into();
            let bytes = serde_json::to_vec(&body).expect("JSON");
            let sig = signature::sign_hex(LINEAR_SECRET.as_bytes(), &bytes);
            http.post(format!("{base}/webhooks/linear"))
                .header("content-type", "application/json")
                .header("Linear-Event", &mail.event)
                .header("Linear-Delivery", &mail.id)
                .header("Linear-Signature", sig)
                .header("User-Agent", "Linear-Webhook")
                .body(bytes)
        }
    };
    match req.timeout(Duration::from_secs(10)).send().await {
        Ok(r) => {
            let status = r.status().as_u16();
            let text = r.text().await.unwrap_or_default();
            (status, text)
        }
        Err(e) => (0, e.to_string()),
    }
}

/// Delivers every mail due by the world's current step (all of it with `all`), shuffled
/// by `rng`; `burst` sends them at once, else one after another. Answers how many went.
pub async fn deliver(
    world: &Shared,
    http: &reqwest::Client,
    base: &str,
    rng: &mut impl Rng,
    all: bool,
    burst: bool,
) -> usize {
    let mut due: Vec<Mail> = {
        let mut w = world.lock().unwrap_or_else(|p| p.into_inner());
        let step = w.step;
        let (due, later): (Vec<Mail>, Vec<Mail>) =
            w.mail.drain(..).partition(|m| all || m.due <= step);
        w.mail = later;
        due
    };
    if due.is_empty() {
        return 0;
    }
    // Sorted first so that the shuffle alone decides the order for this seed.
    due.sort_by(|a, b| a.id.cmp(&b.id));
    due.shuffle(rng);
    let mut outcomes = Vec::new();
    let mut sent = Vec::new();
    let mut dropped = Vec::new();
    for mut m in due {
        if m.dropped {
            // Lost on the way; the sender redelivers it later with the same id.
            m.dropped = false;
            dropped.push(m);
        } else {
            sent.push(m);
        }
    }
    if burst {
        outcomes.extend(join_all(sent.iter().map(|m| send(http, base, m))).await);
    } else {
        for m in &sent {
            outcomes.push(send(http, base, m).await);
        }
    }
    let mut w = world.lock().unwrap_or_else(|p| p.into_inner());
    let step = w.step;
    let n = sent.len();
    for m in dropped {
        let later = rng.gen_range(3..12);
        w.log(format!(
            "DROP {} {} {} (redelivered from step {})",
            m.sys.name(),
            m.event,
            m.id,
            step + later
        ));
        w.mail.push(Mail {
            due: step + later,
            ..m
        });
    }
    for (mut m, (status, text)) in sent.into_iter().zip(outcomes) {
        m.attempts += 1;
        w.log(format!(
            "SEND {} {} {} attempt {} → {status} {}",
            m.sys.name(),
            m.event,
            m.id,
            m.attempts,
            text.chars().take(120).collect::<String>()
        ));
        if status != 200 {
            m.due = step + rng.gen_range(1..4);
            w.mail.push(m);
        } else if m.copies > 0 {
            m.copies -= 1;
            m.due = step + rng.gen_range(0..6);
            w.mail.push(m);
        }
    }
    n
}
