//! Retention of raw deliveries: bodies of applied deliveries past
//! `intake.retention_days` are dropped, their ids still answer a redelivery, and a
//! retention shorter than GitHub's redelivery window is refused.

use futures_util::StreamExt;

use super::*;

/// Real fixtures statsync stores (not ignored), with their event names.
const STORED: [(&str, &str); 7] = [
    ("issues", "issues.opened.json"),
    ("issues", "issues.reopened.json"),
    ("pull_request", "pull_request.opened.json"),
    ("pull_request", "pull_request.closed.json"),
    ("pull_request", "pull_request.ready_for_review.json"),
    ("pull_request", "pull_request.converted_to_draft.json"),
    ("projects_v2_item", "projects_v2_item.edited.json"),
];
const DELIVERIES: usize = 700;

/// The table's size on disk, its rows, and the bytes of the bodies it holds.
async fn size(db: &tokio_postgres::Client) -> (i64, i64, i64) {
    let r = db
        .query_one(
            "SELECT pg_total_relation_size('inbound_events'), count(*),
                    coalesce(sum(octet_length(body)), 0)::int8
             FROM inbound_events",
            &[],
        )
        .await
        .unwrap();
    (r.get(0), r.get(1), r.get(2))
}

#[test]
fn a_retention_shorter_than_githubs_redelivery_window_is_refused() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_statsync"))
        .arg("check-config")
        .env_clear()
        .env("STATSYNC__INTAKE__RETENTION_DAYS", "2")
        .output()
        .expect("run check-config");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("intake.retention_days"), "{err}");
    assert!(err.contains("at least 3"), "{err}");
}

#[actix_web::test]
async fn bodies_of_applied_deliveries_past_retention_are_dropped_and_their_ids_still_answer_duplicate(
) {
    let app = spawn_app().await;
    let db = app.db().await;
    let (empty, _, _) = size(&db).await;
    let fixtures: Vec<(&str, Vec<u8>)> = STORED
        .iter()
        .map(|(event, file)| (*event, fixture(&format!("github/{file}"))))
        .collect();
    let sent: Vec<u16> = futures_util::stream::iter(0..DELIVERIES)
        .map(|n| {
            let (app, (event, body)) = (&app, &fixtures[n % fixtures.len()]);
            async move { app.github(event, &format!("keep-{n}"), body).await.status }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    assert!(sent.iter().all(|s| *s == 200), "{sent:?}");
    app.drained().await;
    let (total, rows, bodies) = size(&db).await;
    assert_eq!(rows, DELIVERIES as i64);
    // The figure README's limits section quotes: what a day of deliveries costs on disk.
    eprintln!(
        "inbound_events: {rows} real-fixture deliveries take {} bytes on disk \
         ({} per delivery, table + TOAST + indexes; raw bodies {} bytes each on average)",
        total - empty,
        (total - empty) / rows,
        bodies / rows
    );

    // All but the last delivery, and one that failed, are older than the retention.
    db.execute(
        "INSERT INTO inbound_events (system, delivery_id, event_type, body)
         VALUES ('github', 'unreadable', 'issues', '{}')",
        &[],
    )
    .await
    .unwrap();
    wait_count(
        &db,
        "the unreadable delivery failed",
        Duration::from_secs(20),
        "SELECT count(*) FROM inbound_events WHERE state = 'failed'",
        1,
    )
    .await;
    // The Projects item deliveries carry no value, so each asked for a lookup, which
    // keeps its delivery's body until it ends; the restarted replica's one prune at
    // start would otherwise race the lookups still waiting (pruned an hour later).
    wait_count(
        &db,
        "every lookup the deliveries asked for has ended",
        Duration::from_secs(20),
        "SELECT count(*) FROM github_item_lookups WHERE state IN ('pending', 'in_flight')",
        0,
    )
    .await;
    db.execute(
        "UPDATE inbound_events SET received_at = now() - interval '8 days'
         WHERE delivery_id <> $1",
        &[&format!("keep-{}", DELIVERIES - 1)],
    )
    .await
    .unwrap();

    // A (re)started replica prunes at once, then hourly.
    app.stop().await;
    let app = spawn_app_on(&app.database_url, &[]).await;
    wait_count(
        &db,
        "old bodies are dropped",
        Duration::from_secs(20),
        "SELECT count(*) FROM inbound_events WHERE body IS NULL",
        DELIVERIES as i64 - 1,
    )
    .await;
    let kept: Vec<String> = db
        .query(
            "SELECT delivery_id FROM inbound_events WHERE body IS NOT NULL ORDER BY id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        kept,
        [format!("keep-{}", DELIVERIES - 1), "unreadable".to_owned()],
        "the recent delivery and the failed one keep their bodies"
    );
    let readings_left = app
        .count("SELECT count(*) FROM inbound_events WHERE body IS NULL AND parsed IS NOT NULL")
        .await;
    assert_eq!(readings_left, 0, "what the door read goes with the body");
    // What a pruned delivery still takes, once the space is given back.
    db.batch_execute("VACUUM FULL inbound_events")
        .await
        .unwrap();
    let (pruned_total, rows, _) = size(&db).await;
    eprintln!(
        "inbound_events after pruning: {} bytes per delivery kept as a row",
        pruned_total / rows
    );
    // A redelivery of a pruned delivery is still known.
    let (event, body) = &fixtures[0];
    let again = app.github(event, "keep-0", body).await;
    assert_eq!(again.status, 200, "{}", again.body);
    assert_eq!(again.body["status"], "duplicate");
    app.stop().await;
}
