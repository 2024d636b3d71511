//! Two replicas on one database under 20 concurrent producers sending 4,000 distinct
//! deliveries about overlapping entities: each delivery is applied exactly once, and
//! both replicas apply a share of them (neither starves), even the one that receives
//! none of the HTTP traffic: the stored deliveries are one queue that both work from.

use std::time::Duration;

use chrono::{TimeDelta, Utc};
use futures_util::StreamExt;

use super::support::*;
use super::{assert_applied_exactly_once, signed_report};

const PRODUCERS: usize = 20;
const DELIVERIES: usize = 4_000;
const ENTITIES: usize = 50;
const STATES: [&str; 4] = ["queued", "working", "input_required", "complete"];

/// Decisions this replica took, read from its own `/metrics`.
async fn decisions_taken(app: &TestApp) -> u64 {
    let text = app
        .http
        .get(format!("{}/metrics", app.address))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics text");
    text.lines()
        .filter(|l| l.starts_with(statsync::metrics::DECISIONS))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// Producer `p` sends deliveries `p, p + PRODUCERS, …` to `base`, retrying each until 2xx.
async fn produce(p: usize, base: String) -> usize {
    let http = reqwest::Client::new();
    let t0 = Utc::now() - TimeDelta::hours(1);
    let mut sent = 0;
    for n in (p..DELIVERIES).step_by(PRODUCERS) {
        let at = t0 + TimeDelta::milliseconds(n as i64);
        let task = format!("shared-{}", n % ENTITIES);
        let (headers, body) = signed_report(n, &task, STATES[n % STATES.len()], at);
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let mut req = http
                .post(format!("{base}/webhooks/agentapi"))
                .body(body.clone());
            for (k, v) in &headers {
                req = req.header(*k, v);
            }
            let status = req.send().await.map(|r| r.status().as_u16());
            if status.as_ref().is_ok_and(|s| *s == 200) {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "delivery {n} refused until the deadline: {status:?}"
            );
            actix_web::rt::time::sleep(Duration::from_millis(50)).await;
        }
        sent += 1;
    }
    sent
}

#[actix_web::test]
async fn two_replicas_apply_4000_concurrent_deliveries_exactly_once_and_both_take_part() {
    let url = cluster::fresh_database().await;
    let a = spawn_app_on(&url, &[]).await;
    let b = spawn_app_on(&url, &[]).await;
    // Every delivery reaches `a`; `b` only shares the stored queue.
    let sent: usize = futures_util::stream::iter(0..PRODUCERS)
        .map(|p| produce(p, a.address.clone()))
        .buffer_unordered(PRODUCERS)
        .fold(0, |sum, n| async move { sum + n })
        .await;
    assert_eq!(sent, DELIVERIES);

    let db = a.db().await;
    wait_drained(&db, Duration::from_secs(60)).await;
    assert_eq!(
        a.count("SELECT count(*) FROM inbound_events").await as usize,
        DELIVERIES
    );
    assert_eq!(
        a.count("SELECT count(*) FROM inbound_events WHERE state <> 'processed'")
            .await,
        0
    );
    assert_applied_exactly_once(&db).await;
    assert_eq!(
        a.count("SELECT count(*) FROM entities").await as usize,
        ENTITIES
    );

    // Appliers creating the same new entities at once take turns; before they did, two
    // batches could deadlock on each other's links on every retry.
    assert_eq!(
        a.count("SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()")
            .await,
        0,
        "no applier deadlocked"
    );

    let (by_a, by_b) = (decisions_taken(&a).await, decisions_taken(&b).await);
    assert!(
        by_a + by_b >= DELIVERIES as u64,
        "every delivery was decided by one of them: {by_a} + {by_b}"
    );
    let fair_share = DELIVERIES as u64 / 10;
    assert!(
        by_a >= fair_share && by_b >= fair_share,
        "both replicas apply deliveries (at least {fair_share} each), the one without HTTP traffic too: {by_a} and {by_b}"
    );
    a.stop().await;
    b.stop().await;
}
