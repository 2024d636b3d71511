//! What the door read from a delivery is stored beside its body and applied from there;
//! a reading this statsync cannot use is passed over for the body, and a delivery
//! requeued by an operator is read from its body again.

use super::*;

const FORMAT: &[u8] = b"statsync.updates.v1\n";

async fn row(
    db: &tokio_postgres::Client,
    delivery: &str,
) -> (String, Option<String>, Option<Vec<u8>>) {
    let r = db
        .query_one(
            "SELECT state, outcome, parsed FROM inbound_events WHERE delivery_id = $1",
            &[&delivery],
        )
        .await
        .unwrap();
    (r.get(0), r.get(1), r.get(2))
}

async fn store_raw(
    db: &tokio_postgres::Client,
    delivery: &str,
    body: &[u8],
    parsed: &[u8],
    state: &str,
) {
    db.execute(
        "INSERT INTO inbound_events (system, delivery_id, event_type, body, parsed, state)
         VALUES ('github', $1, 'issues', $2, $3, $4)",
        &[&delivery, &body, &parsed, &state],
    )
    .await
    .unwrap();
}

async fn settled(
    db: &tokio_postgres::Client,
    delivery: &str,
) -> (String, Option<String>, Option<Vec<u8>>) {
    wait_for(
        &format!("delivery {delivery} is applied or failed"),
        Duration::from_secs(20),
        || async {
            let r = row(db, delivery).await;
            (r.0 != "pending").then_some(r)
        },
    )
    .await
}

#[actix_web::test]
async fn the_doors_reading_is_applied_and_one_it_cannot_use_gives_way_to_the_body() {
    // An intake-only replica stores; nothing is applied until a worker starts.
    let intake = spawn_app_with(&[("STATSYNC__SERVER__WORKER_ENABLED", "false")]).await;
    let db = intake.db().await;
    let reopened = fixture("github/issues.reopened.json");
    let sent = intake.github("issues", "door-1", &reopened).await;
    assert_eq!(sent.status, 200, "{}", sent.body);
    let (state, _, reading) = row(&db, "door-1").await;
    assert_eq!(state, "pending");
    let reading = reading.expect("the door's reading is stored with the body");
    assert!(
        reading.starts_with(FORMAT),
        "{}",
        String::from_utf8_lossy(&reading)
    );
    // The reading, not the body, is what is applied: beside a body that cannot be
    // parsed, a row with the door's reading is applied as the door read it.
    store_raw(&db, "reading-only", b"{}", &reading, "pending").await;
    // A reading in a format this statsync does not know (a later version's) is not
    // guessed at: the body is read, so the row is applied all the same...
    let mut later = b"statsync.updates.v9\n".to_vec();
    later.extend_from_slice(&reading[FORMAT.len()..]);
    store_raw(&db, "later-format", &reopened, &later, "pending").await;
    // ...and with a body that cannot be parsed either, it fails naming the parse.
    store_raw(&db, "later-format-bad-body", b"{}", &later, "pending").await;

    let worker = spawn_app_on(&intake.database_url, &[]).await;
    for delivery in ["door-1", "reading-only", "later-format"] {
        let (state, outcome, reading) = settled(&db, delivery).await;
        assert_eq!(state, "processed", "{delivery}: {outcome:?}");
        assert_eq!(reading, None, "{delivery}: the reading goes once applied");
    }
    let (state, outcome, _) = settled(&db, "later-format-bad-body").await;
    assert_eq!(state, "failed", "{outcome:?}");
    assert!(outcome.unwrap().contains("cannot be parsed"));

    // A requeued delivery is read from its body again (the fix that made the retry worth
    // trying may be in the reading): a good reading beside a bad body now fails.
    store_raw(&db, "requeued", b"{}", &reading, "failed").await;
    let id: i64 = db
        .query_one(
            "SELECT id FROM inbound_events WHERE delivery_id = 'requeued'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let retried = worker
        .api("POST", &format!("/api/v1/deliveries/{id}/retry"), None)
        .await;
    assert_eq!(retried.status, 202, "{}", retried.body);
    let (state, outcome, _) = settled(&db, "requeued").await;
    assert_eq!(state, "failed", "{outcome:?}");
    assert!(outcome.unwrap().contains("cannot be parsed"));
    worker.stop().await;
    intake.stop().await;
}
