//! `engine.gather_ms`: an applier woken for fresh work waits for company before it
//! claims, so what is stored meanwhile is applied in the same round, and nothing is
//! left behind by the wake-ups it makes redundant.

use super::*;

const GATHER_MS: i64 = 1000;

/// A Linear issue of its own (unlinked: `sync.auto_create` makes its entity).
fn delivery(n: usize) -> Vec<u8> {
    let id = format!("9f0a0c3e-2222-4222-8333-{n:012}");
    linear_issue_update(&id, &format!("GAT-{n}"), "Todo", "unstarted", Utc::now())
}

/// Waits until none of `deliveries` is pending; answers their transactions' start
/// times (one per applying round that took them).
async fn applied(app: &TestApp, deliveries: &[String]) -> Vec<chrono::DateTime<Utc>> {
    let db = app.db().await;
    wait_for(
        &format!("{} deliveries applied", deliveries.len()),
        Duration::from_secs(30),
        || async {
            let pending: i64 = db
                .query_one(
                    "SELECT count(*) FROM inbound_events \
                     WHERE delivery_id = ANY($1) AND state = 'pending'",
                    &[&deliveries],
                )
                .await
                .unwrap()
                .get(0);
            (pending == 0).then_some(())
        },
    )
    .await;
    // A transition's created_at is its transaction's start: one value per round.
    db.query(
        "SELECT DISTINCT t.created_at FROM status_transitions t \
         JOIN inbound_events i ON i.id = t.inbound_event_id WHERE i.delivery_id = ANY($1)",
        &[&deliveries],
    )
    .await
    .unwrap()
    .iter()
    .map(|r| r.get(0))
    .collect()
}

#[actix_web::test]
async fn what_arrives_while_an_applier_waits_for_company_is_applied_in_its_round() {
    // The poll is pushed out of reach: only the intake's wake-ups can apply anything,
    // so a delivery stranded by a wake-up taken as redundant would never be applied.
    let app = spawn_app_with(&[
        ("STATSYNC__ENGINE__GATHER_MS", &GATHER_MS.to_string()),
        ("STATSYNC__ENGINE__POLL_INTERVAL_MS", "600000"),
    ])
    .await;

    // Many at once, each answered after its own commit: all applied.
    let burst: Vec<String> = (0..12).map(|n| format!("gather-burst-{n}")).collect();
    let bodies: Vec<Vec<u8>> = (0..burst.len()).map(delivery).collect();
    let answers = futures_util::future::join_all(
        burst
            .iter()
            .zip(&bodies)
            .map(|(d, body)| app.linear(d, body)),
    )
    .await;
    let answers: Vec<u16> = answers.iter().map(|a| a.status).collect();
    assert!(answers.iter().all(|s| *s == 200), "{answers:?}");
    let rounds = applied(&app, &burst).await;
    assert!(
        !rounds.is_empty() && rounds.len() <= burst.len(),
        "{rounds:?}"
    );

    // Two deliveries, the second stored well within the first's wait: one round. The
    // first's applier started after its commit and claims no sooner than GATHER_MS
    // later. (A wake-up left over from the burst may still start one applier early,
    // so three pairs are tried; a pair too slow to store is not evidence either way.)
    let mut seen = Vec::new();
    for pair in 0..3 {
        let (a, b) = (format!("gather-a-{pair}"), format!("gather-b-{pair}"));
        let sent = std::time::Instant::now();
        assert_eq!(app.linear(&a, &delivery(100 + pair)).await.status, 200);
        assert_eq!(app.linear(&b, &delivery(200 + pair)).await.status, 200);
        let stored_within = sent.elapsed().as_millis() as i64;
        let rounds = applied(&app, &[a, b]).await;
        if stored_within < GATHER_MS && rounds.len() == 1 {
            return;
        }
        seen.push((stored_within, rounds.len()));
    }
    panic!("no pair was applied in one round: (ms to store both, rounds) = {seen:?}");
}
