//! Order, coalescing and the outbound budget under load.

use super::*;

#[actix_web::test]
async fn a_thousand_changes_under_a_limit_never_exceed_it_in_any_second_and_all_arrive() {
    const LIMIT: usize = 100;
    const CHANGES: usize = 1000;
    let (gh, lin) = (fakes::github().await, fakes::linear().await);
    let app = spawn_outbound(
        &gh,
        &lin,
        &[
            ("STATSYNC__GITHUB__REQUESTS_PER_SECOND", LIMIT.to_string()),
            ("STATSYNC__DISPATCH__CONCURRENCY", "16".into()),
        ],
    )
    .await;
    // 1,000 entities, each linked to its GitHub issue with a first status: one change
    // and one outbox row each, created 8 at a time while the dispatcher already runs.
    let mut next = 0;
    while next < CHANGES {
        let batch: Vec<_> = (next..(next + 8).min(CHANGES))
            .map(|n| {
                let address = app.address.clone();
                async move {
                    entity_on_github(&address, &format!("acme/load#{}", n + 1), "in_progress").await
                }
            })
            .collect();
        futures_util::future::join_all(batch).await;
        next += 8;
    }
    count_becomes(
        &app,
        "every change is delivered",
        "SELECT count(*) FROM sync_outbox WHERE state = 'done'",
        CHANGES as i64,
        Duration::from_secs(45),
    )
    .await;
    let arrivals: Vec<_> = gh.requests().iter().map(|r| r.at).collect();
    assert_eq!(
        arrivals.len(),
        CHANGES,
        "one PATCH per change, none repeated"
    );
    assert_within_limit(arrivals, LIMIT);
    let objects = gh.state.lock().unwrap().objects.len();
    assert_eq!(objects, CHANGES, "every issue was written");
}

#[actix_web::test]
async fn newer_changes_supersede_older_ones_and_an_entity_never_has_two_calls_in_flight() {
    let (gh, lin) = (fakes::github().await, fakes::linear().await);
    let app = spawn_outbound(&gh, &lin, &[]).await;
    let issue = "acme/order#1";
    // The first write is slow to answer, so the next changes queue up behind it.
    gh.script(issue, vec![Reply::Slow(Duration::from_millis(500))]);
    let id = entity_on_github(&app.address, issue, "in_progress").await;
    wait_for(
        "the first write is in flight",
        Duration::from_secs(10),
        || async { (!gh.requests().is_empty()).then_some(()) },
    )
    .await;
    for status in ["done", "in_progress", "cancelled"] {
        app.set_status(json!({"entityId": id, "status": status}))
            .await;
    }
    row_reaches(&app, issue, "done").await;
    let states: Vec<String> = outbox_rows(&app, issue)
        .await
        .into_iter()
        .map(|r| r.0)
        .collect();
    assert_eq!(states, ["done", "superseded", "superseded", "done"]);
    let r = gh.requests_for("/issues/1");
    assert_eq!(r.len(), 2, "only the newest status is sent after the first");
    assert_eq!(
        r[1].body,
        json!({"state": "closed", "state_reason": "not_planned"})
    );
    assert!(
        r[1].at - r[0].at >= Duration::from_millis(450),
        "the second call waited for the first to finish"
    );
}
