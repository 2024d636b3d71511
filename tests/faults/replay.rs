//! Duplicate, reordered and replayed deliveries change nothing twice: the same delivery id
//! resent, an older source timestamp arriving after a newer one, the same change under a
//! new delivery id.

use chrono::{TimeDelta, Utc};
use serde_json::Value;

use super::support::*;

const ISSUE: &str = "5b1f3c9e-aaaa-4bbb-8ccc-000000000001";

/// Every decision taken for the entity linked to `(system, external_id)`, oldest first,
/// with the delivery each came from; and the entity's version and status.
async fn decisions(
    app: &TestApp,
    system: &str,
    external_id: &str,
) -> (Vec<(String, String)>, i64, String) {
    let db = app.db().await;
    let rows = db
        .query(
            "SELECT i.delivery_id, t.decision FROM status_transitions t
             JOIN inbound_events i ON i.id = t.inbound_event_id
             JOIN entity_links l ON l.entity_id = t.entity_id
             WHERE l.system = $1 AND l.external_id = $2 ORDER BY t.id",
            &[&system, &external_id],
        )
        .await
        .unwrap();
    let entity = db
        .query_one(
            "SELECT e.version, e.status FROM entities e JOIN entity_links l ON l.entity_id = e.id
             WHERE l.system = $1 AND l.external_id = $2",
            &[&system, &external_id],
        )
        .await
        .unwrap();
    (
        rows.iter().map(|r| (r.get(0), r.get(1))).collect(),
        entity.get(0),
        entity.get(1),
    )
}

/// Sends one delivery and waits until it, and everything before it, is processed.
async fn settled(app: &TestApp, answer: Answer, expected: &str) {
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.body["status"], expected, "{}", answer.body);
    app.drained().await;
}

fn pairs(expected: &[(&str, &str)]) -> Vec<(String, String)> {
    expected
        .iter()
        .map(|(d, k)| (d.to_string(), k.to_string()))
        .collect()
}

#[actix_web::test]
async fn duplicate_reordered_and_replayed_linear_deliveries_change_nothing_twice() {
    let app = spawn_app().await;
    let t0 = Utc::now() - TimeDelta::hours(1);
    let started = linear_issue_update(ISSUE, "ENG-7", "In Progress", "started", t0);
    let review = linear_issue_update(
        ISSUE,
        "ENG-7",
        "In Review",
        "started",
        t0 + TimeDelta::seconds(20),
    );
    let done = linear_issue_update(
        ISSUE,
        "ENG-7",
        "Done",
        "completed",
        t0 + TimeDelta::seconds(30),
    );

    settled(&app, app.linear("l-1", &started).await, "accepted").await;
    // The same delivery id again: acknowledged, not stored.
    settled(&app, app.linear("l-1", &started).await, "duplicate").await;
    // The same change under a new delivery id (a replay): stored, decided, changes nothing.
    settled(&app, app.linear("l-2", &started).await, "accepted").await;
    settled(&app, app.linear("l-3", &done).await, "accepted").await;
    // Older than what was applied from Linear: stale, even though its status differs.
    settled(&app, app.linear("l-4", &review).await, "accepted").await;
    // The newest change replayed under yet another id.
    settled(&app, app.linear("l-5", &done).await, "accepted").await;
    settled(&app, app.linear("l-3", &done).await, "duplicate").await;

    let (decided, version, status) = decisions(&app, "linear", ISSUE).await;
    assert_eq!(
        decided,
        pairs(&[
            ("l-1", "applied"),
            ("l-2", "noop"),
            ("l-3", "applied"),
            ("l-4", "stale"),
            ("l-5", "noop"),
        ])
    );
    assert_eq!((version, status.as_str()), (2, "done"));
    assert_eq!(app.count("SELECT count(*) FROM inbound_events").await, 5);
    assert_eq!(
        app.count("SELECT count(*) FROM events WHERE type = 'status_changed'")
            .await,
        2,
        "one event per applied change"
    );
    let entity = app
        .api(
            "GET",
            &format!("/api/v1/entities?system=linear&external_id={ISSUE}"),
            None,
        )
        .await;
    let id = entity.body["id"].as_str().unwrap().to_owned();
    let history = app
        .api("GET", &format!("/api/v1/entities/{id}/history"), None)
        .await;
    let to: Vec<&Value> = history.body["transitions"]
        .as_array()
        .expect("a list of transitions")
        .iter()
        .filter(|t| t["decision"] == "applied")
        .map(|t| &t["toStatus"])
        .collect();
    assert_eq!(to, ["done", "in_progress"], "{}", history.body);
}

#[actix_web::test]
async fn agent_reports_replayed_or_out_of_order_apply_once_each() {
    let app = spawn_app().await;
    let t0 = Utc::now() - TimeDelta::hours(1);
    let report = |state: &str, at: chrono::DateTime<Utc>| {
        serde_json::to_vec(&serde_json::json!({
            "taskId": "task-replay", "state": state, "timestamp": at.to_rfc3339(),
        }))
        .unwrap()
    };
    let working = report("working", t0);
    let blocked = report("input_required", t0 + TimeDelta::seconds(5));
    let queued_late = report("queued", t0 - TimeDelta::seconds(5));

    settled(&app, app.agent(Some("a-1"), &working).await, "accepted").await;
    settled(&app, app.agent(Some("a-2"), &blocked).await, "accepted").await;
    // Sent before `working`, delivered after `input_required`.
    settled(&app, app.agent(Some("a-3"), &queued_late).await, "accepted").await;
    // A replay without a delivery id is recognised by its body digest.
    settled(&app, app.agent(None, &blocked).await, "accepted").await;
    settled(&app, app.agent(None, &blocked).await, "duplicate").await;
    settled(&app, app.agent(Some("a-2"), &working).await, "duplicate").await;

    let (decided, version, status) = decisions(&app, "agentapi", "task-replay").await;
    let kinds: Vec<&str> = decided.iter().map(|(_, k)| k.as_str()).collect();
    assert_eq!(
        kinds,
        ["applied", "applied", "stale", "noop"],
        "{decided:?}"
    );
    assert_eq!((version, status.as_str()), (2, "blocked"));
    assert_eq!(app.count("SELECT count(*) FROM inbound_events").await, 4);
}
