//! An external API down for 30 s while changes keep coming, then back: the backlog
//! drains under the configured budget, nothing is written twice, nothing is lost.

use std::collections::HashMap;

use super::*;

/// How long GitHub is down: 502s for the first half, 503s for the second.
const OUTAGE: Duration = Duration::from_secs(30);
const LIMIT: usize = 20;
const ENTITIES: usize = 60;
/// Of those, this many are then closed: ENTITIES + CLOSED changes during the outage.
const CLOSED: usize = 30;

#[actix_web::test]
async fn github_down_for_thirty_seconds_drains_its_backlog_once_under_the_limit() {
    let (gh, lin) = (fakes::github().await, fakes::linear().await);
    gh.set_down(Some(github_error(502, "Bad Gateway")));
    let outage_started = std::time::Instant::now();
    let app = spawn_outbound(
        &gh,
        &lin,
        &[
            ("STATSYNC__GITHUB__REQUESTS_PER_SECOND", LIMIT.to_string()),
            // Enough attempts to outlive the outage; waits capped at 2 s so the
            // backlog is due again soon after the recovery.
            ("STATSYNC__SYNC__MAX_RETRIES", "200".into()),
            ("STATSYNC__DISPATCH__RETRY_BASE_MS", "100".into()),
            ("STATSYNC__DISPATCH__RETRY_MAX_MS", "2000".into()),
        ],
    )
    .await;

    // 90 changes while GitHub is down: 60 issues in progress, then 30 of them closed.
    let issue = |n: usize| format!("acme/outage#{n}");
    let mut ids = Vec::new();
    for n in 1..=ENTITIES {
        ids.push(entity_on_github(&app.address, &issue(n), "in_progress").await);
    }
    for id in ids.iter().take(CLOSED) {
        app.set_status(json!({"entityId": id, "status": "done"}))
            .await;
    }
    wait_for(
        "the dispatcher meets the outage",
        Duration::from_secs(20),
        || async {
            let failed = app
                .count("SELECT count(*) FROM sync_outbox WHERE error_code = 'UPSTREAM_5XX'")
                .await;
            (failed > 0).then_some(())
        },
    )
    .await;
    // The outage is the scenario itself: it lasts its full length whatever happens.
    actix_web::rt::time::sleep_until((outage_started + OUTAGE / 2).into()).await;
    gh.set_down(Some(github_error(503, "Service Unavailable")));
    actix_web::rt::time::sleep_until((outage_started + OUTAGE).into()).await;
    let during = app
        .count("SELECT count(*) FROM sync_outbox WHERE state IN ('done', 'dead')")
        .await;
    assert_eq!(during, 0, "nothing was written nor given up while down");
    assert!(
        gh.requests().iter().all(|r| r.scripted),
        "every call during the outage failed"
    );
    let recovered = std::time::Instant::now();
    gh.set_down(None);

    count_becomes(
        &app,
        "the backlog drains",
        "SELECT count(*) FROM sync_outbox WHERE state NOT IN ('done', 'superseded')",
        0,
        Duration::from_secs(30),
    )
    .await;
    let retried = app
        .count("SELECT count(*) FROM sync_outbox WHERE state = 'done' AND attempt_count > 1")
        .await;
    assert!(retried > 0, "rows were retried through the outage");

    // Every issue shows in GitHub what PostgreSQL holds.
    let db = app.db().await;
    let rows = db
        .query(
            "SELECT e.status, l.external_id FROM entities e JOIN entity_links l ON l.entity_id = e.id",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), ENTITIES);
    for row in rows {
        let (status, issue): (String, String) = (row.get(0), row.get(1));
        let expected = match status.as_str() {
            "done" => ("closed", Some("completed")),
            "in_progress" => ("open", None),
            other => panic!("{issue} is {other} in PostgreSQL"),
        };
        let (state, reason) = gh
            .object(&issue)
            .unwrap_or_else(|| panic!("{issue} never written"));
        assert_eq!(
            (state.as_str(), reason.as_deref()),
            expected,
            "{issue} in GitHub vs {status} in PostgreSQL"
        );
    }

    // Nothing written twice: each (issue, body) succeeded once, one per done row, all
    // after the recovery.
    let all = gh.requests();
    let written: Vec<_> = all.iter().filter(|r| !r.scripted).collect();
    let mut writes: HashMap<(String, String), usize> = HashMap::new();
    for r in &written {
        assert!(r.at >= recovered, "a write succeeded during the outage");
        *writes
            .entry((r.path.clone(), r.body.to_string()))
            .or_default() += 1;
    }
    let twice: Vec<_> = writes.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "written more than once: {twice:?}");
    let done = app
        .count("SELECT count(*) FROM sync_outbox WHERE state = 'done'")
        .await;
    assert_eq!(
        written.len() as i64,
        done,
        "one successful call per done row"
    );
    assert!(
        written.len() >= ENTITIES,
        "every issue was written at least once"
    );

    // The budget held in every one-second window, the outage's and the drain's.
    let arrivals: Vec<_> = all.iter().map(|r| r.at).collect();
    let after = arrivals.iter().filter(|at| **at >= recovered).count();
    assert!(
        after > LIMIT,
        "the drain was long enough to test the limit ({after} calls)"
    );
    assert_within_limit(arrivals, LIMIT);
}
