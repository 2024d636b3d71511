//! The sync engine end to end: signed webhooks and the API against real PostgreSQL,
//! through the EventProcessor, StatusMapper and ConflictResolver actors.

#[path = "engine/bad_input.rs"]
mod bad_input;
#[path = "engine/failed_deliveries.rs"]
mod failed_deliveries;
#[path = "engine/gather.rs"]
mod gather;
#[path = "engine/mcp.rs"]
mod mcp;
#[path = "engine/openapi.rs"]
mod openapi;
mod support;

use std::time::Duration;

use chrono::{TimeDelta, Utc};
use serde_json::{json, Value};
use support::*;

const LINEAR_ID: &str = "9f0a0c3e-1111-4222-8333-444455556666";
const GITHUB_ISSUE: &str = "Codertocat/Hello-World#1";

/// An entity linked to a Linear issue and a GitHub issue, its status set by Linear
/// (so later Linear changes are not conflicts with the creator).
async fn linked_entity(app: &TestApp, linear_state: (&str, &str), expect: &str) -> String {
    let r = app
        .api(
            "POST",
            "/api/v1/links",
            Some(json!({
                "refs": [
                    {"system": "linear", "externalId": LINEAR_ID},
                    {"system": "github", "externalId": GITHUB_ISSUE}
                ]
            })),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["version"], 0, "linked, no status applied yet");
    let id = r.body["id"].as_str().unwrap().to_owned();
    let (name, kind) = linear_state;
    let body = linear_issue_update(
        LINEAR_ID,
        "ENG-123",
        name,
        kind,
        Utc::now() - TimeDelta::seconds(30),
    );
    assert_eq!(app.linear("initial", &body).await.status, 200);
    wait_for(
        "Linear's first status is applied",
        Duration::from_secs(15),
        || async {
            let e = entity(app, &id).await;
            (e["version"] == 1).then_some(())
        },
    )
    .await;
    assert_eq!(entity(app, &id).await["status"], expect);
    id
}

/// Linear moves the entity to In Progress at `t` (waited for); answers `t`.
async fn linear_starts(app: &TestApp, id: &str, delivery: &str) -> chrono::DateTime<Utc> {
    let t = Utc::now();
    app.linear(
        delivery,
        &linear_issue_update(LINEAR_ID, "ENG-123", "In Progress", "started", t),
    )
    .await;
    wait_for_status(app, id, "in_progress").await;
    t
}

/// GitHub's `issues.closed` for the linked issue, changed at `at`.
fn github_closed(at: chrono::DateTime<Utc>, reason: &str) -> Vec<u8> {
    github_fixture_at("issues.opened.json", at, |v| {
        v["action"] = json!("closed");
        v["issue"]["state"] = json!("closed");
        v["issue"]["state_reason"] = json!(reason);
    })
}

async fn entity(app: &TestApp, id: &str) -> Value {
    let r = app
        .api("GET", &format!("/api/v1/entities/{id}"), None)
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body
}

async fn wait_for_status(app: &TestApp, id: &str, status: &str) -> Value {
    wait_for(
        &format!("entity {id} reaches {status}"),
        Duration::from_secs(15),
        || async {
            let e = entity(app, id).await;
            (e["status"] == status).then_some(e)
        },
    )
    .await
}

async fn history(app: &TestApp, id: &str) -> Vec<Value> {
    let r = app
        .api("GET", &format!("/api/v1/entities/{id}/history"), None)
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body["transitions"].as_array().unwrap().clone()
}

async fn events_of(app: &TestApp, id: &str) -> Vec<Value> {
    let r = app
        .api(
            "GET",
            &format!("/api/v1/events?after=0&rooms=entity:{id}"),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body["events"].as_array().unwrap().clone()
}

#[actix_web::test]
async fn a_linear_state_change_becomes_a_canonical_change_with_history_events_and_outbox() {
    let app = spawn_app().await;
    let id = linked_entity(&app, ("Todo", "unstarted"), "todo").await;
    let body = linear_issue_update(LINEAR_ID, "ENG-123", "In Progress", "started", Utc::now());
    assert_eq!(app.linear("lin-1", &body).await.status, 200);

    let e = wait_for_status(&app, &id, "in_progress").await;
    assert_eq!(e["version"], 2);
    assert_eq!(e["lastSystem"], "linear");

    let h = history(&app, &id).await;
    assert_eq!(h[0]["decision"], "applied");
    assert_eq!(h[0]["fromStatus"], "todo");
    assert_eq!(h[0]["toStatus"], "in_progress");
    assert_eq!(h[0]["system"], "linear");

    let events = events_of(&app, &id).await;
    let changed: Vec<&Value> = events
        .iter()
        .filter(|e| e["type"] == "status_changed")
        .collect();
    assert_eq!(changed.last().unwrap()["data"]["to"], "in_progress");
    let rooms = changed.last().unwrap()["rooms"].as_array().unwrap();
    assert!(rooms.contains(&json!("project:ENG")), "{rooms:?}");
    assert!(rooms.contains(&json!(format!("entity:{id}"))));
    // seqs are gap-free and increasing
    let all = app.api("GET", "/api/v1/events?after=0", None).await.body["events"].clone();
    let seqs: Vec<i64> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_i64().unwrap())
        .collect();
    assert_eq!(seqs, (1..=seqs.len() as i64).collect::<Vec<_>>());

    // One outbox row, for GitHub only (never back to Linear, the source).
    let db = app.db().await;
    let rows = db
        .query(
            "SELECT system, external_id, status FROM sync_outbox WHERE entity_version = 2",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].get::<_, String>(0), "github");
    assert_eq!(rows[0].get::<_, String>(1), GITHUB_ISSUE);
    assert_eq!(rows[0].get::<_, String>(2), "in_progress");
    let state: String = db
        .query_one(
            "SELECT state FROM inbound_events WHERE delivery_id = 'lin-1'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(state, "processed");
}

#[actix_web::test]
async fn a_github_open_on_an_in_review_entity_is_a_recorded_noop() {
    let app = spawn_app().await;
    let id = linked_entity(&app, ("In Review", "started"), "in_review").await;
    let body = github_fixture_at("issues.opened.json", Utc::now(), |_| {});
    assert_eq!(app.github("issues", "gh-open", &body).await.status, 200);
    app.drained().await;
    let e = entity(&app, &id).await;
    assert_eq!(e["status"], "in_review");
    assert_eq!(e["version"], 1, "a no-op does not count as a change");
    let h = history(&app, &id).await;
    assert_eq!(h[0]["decision"], "noop");
    assert_eq!(h[0]["system"], "github");
    assert!(
        h[0]["reason"].as_str().unwrap().contains("in_review"),
        "{}",
        h[0]
    );
}

#[actix_web::test]
async fn an_unlinked_object_creates_its_entity_and_an_agent_report_joins_the_issue_it_names() {
    // No conflict window: this test is about linking, not about who wins.
    let app = spawn_app_with(&[("STATSYNC__SYNC__CONFLICT_WINDOW_MS", "0")]).await;
    let body = github_fixture_at("issues.opened.json", Utc::now(), |_| {});
    assert_eq!(app.github("issues", "gh-new", &body).await.status, 200);
    app.drained().await;
    let r = app
        .api(
            "GET",
            &format!(
                "/api/v1/entities?system=github&external_id={}",
                urlencode(GITHUB_ISSUE)
            ),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["status"], "todo");
    assert_eq!(r.body["project"], "Codertocat/Hello-World");
    let id = r.body["id"].as_str().unwrap().to_owned();

    let report = json!({"taskId": "task-9", "state": "working", "issue": GITHUB_ISSUE,
                        "timestamp": Utc::now().to_rfc3339()});
    assert_eq!(
        app.agent(Some("ag-1"), report.to_string().as_bytes())
            .await
            .status,
        200
    );
    let e = wait_for_status(&app, &id, "in_progress").await;
    let links = e["links"].as_array().unwrap();
    assert!(
        links
            .iter()
            .any(|l| l["system"] == "agentapi" && l["externalId"] == "task-9"),
        "{e}"
    );
}

#[actix_web::test]
async fn two_systems_disagreeing_inside_the_window_resolve_by_priority() {
    let app = spawn_app().await;
    let id = linked_entity(&app, ("Todo", "unstarted"), "todo").await;
    let t = linear_starts(&app, &id, "w-1").await;
    // GitHub (priority 2) closes it a moment later, inside the 5 s window: Linear (1) wins.
    let closed = github_closed(t + TimeDelta::seconds(1), "completed");
    assert_eq!(app.github("issues", "w-2", &closed).await.status, 200);
    app.drained().await;
    let e = entity(&app, &id).await;
    assert_eq!(e["status"], "in_progress");
    let h = history(&app, &id).await;
    assert_eq!(h[0]["decision"], "conflict", "{}", h[0]);
    let conflicts = app.api("GET", "/api/v1/conflicts", None).await.body["conflicts"].clone();
    assert_eq!(conflicts[0]["winnerSystem"], "linear");
    assert_eq!(conflicts[0]["state"], "resolved");
    // The loser is corrected outward.
    let n = app
        .count(
            "SELECT count(*) FROM sync_outbox WHERE system = 'github' AND status = 'in_progress'",
        )
        .await;
    assert!(
        n >= 2,
        "the github issue is told in_progress again (got {n} rows)"
    );
    let types: Vec<Value> = events_of(&app, &id)
        .await
        .iter()
        .map(|e| e["type"].clone())
        .collect();
    assert!(
        types.contains(&json!("conflict_detected")) && types.contains(&json!("conflict_resolved"))
    );
}

#[actix_web::test]
async fn under_timestamp_based_the_later_change_wins_the_conflict() {
    let app = spawn_app_with(&[("STATSYNC__SYNC__CONFLICT_STRATEGY", "timestamp_based")]).await;
    let id = linked_entity(&app, ("Todo", "unstarted"), "todo").await;
    let t = linear_starts(&app, &id, "t-1").await;
    let closed = github_closed(t + TimeDelta::seconds(1), "completed");
    app.github("issues", "t-2", &closed).await;
    let e = wait_for_status(&app, &id, "done").await;
    assert_eq!(e["lastSystem"], "github");
    let conflicts = app.api("GET", "/api/v1/conflicts", None).await.body["conflicts"].clone();
    assert_eq!(conflicts[0]["winnerSystem"], "github");
}

#[actix_web::test]
async fn conflicts_a_minute_apart_in_source_time_do_not_escalate_when_delivered_in_a_burst() {
    let app = spawn_app_with(&[("STATSYNC__SYNC__ESCALATION_THRESHOLD", "2")]).await;
    let id = linked_entity(&app, ("Todo", "unstarted"), "todo").await;
    // After linked_entity's Todo (30 s ago); the last change lands 36 s ahead, inside
    // sync.max_future_skew_ms.
    let t0 = Utc::now() - TimeDelta::seconds(25);
    let at = |s: i64| t0 + TimeDelta::seconds(s);
    // A backlog released at once: two disagreements, each inside its own window, a
    // minute apart. Live they would never have escalated; drained, they must not.
    let linear =
        |state: (&str, &str), s| linear_issue_update(LINEAR_ID, "ENG-123", state.0, state.1, at(s));
    app.linear("b-l-1", &linear(("In Progress", "started"), 0))
        .await;
    app.github("issues", "b-g-1", &github_closed(at(1), "completed"))
        .await;
    app.linear("b-l-2", &linear(("In Review", "started"), 60))
        .await;
    app.github("issues", "b-g-2", &github_closed(at(61), "not_planned"))
        .await;
    app.drained().await;
    let e = entity(&app, &id).await;
    assert_eq!(e["manual"], false, "{e}");
    assert_eq!(e["status"], "in_review", "{e}");
    assert_eq!(app.count("SELECT count(*) FROM conflicts").await, 2);
    assert_eq!(
        app.count("SELECT count(*) FROM conflicts WHERE escalated")
            .await,
        0
    );
}

#[actix_web::test]
async fn repeated_conflicts_escalate_to_manual_with_an_alert_and_a_person_resolves_them() {
    let app = spawn_app_with(&[("STATSYNC__SYNC__ESCALATION_THRESHOLD", "2")]).await;
    let id = linked_entity(&app, ("Todo", "unstarted"), "todo").await;
    let t = linear_starts(&app, &id, "e-1").await;
    for (i, reason) in ["completed", "not_planned"].iter().enumerate() {
        let body = github_closed(t + TimeDelta::seconds(1 + i as i64), reason);
        app.github("issues", &format!("e-gh-{i}"), &body).await;
        app.drained().await;
    }
    let e = entity(&app, &id).await;
    assert_eq!(e["manual"], true, "{e}");
    assert_eq!(e["status"], "in_progress");
    let types: Vec<Value> = events_of(&app, &id)
        .await
        .iter()
        .map(|e| e["type"].clone())
        .collect();
    assert!(types.contains(&json!("alert_fired")), "{types:?}");

    let open = app.api("GET", "/api/v1/conflicts?state=open", None).await;
    let conflict = open.body["conflicts"][0]["id"].as_str().unwrap().to_owned();
    let r = app
        .api(
            "POST",
            &format!("/api/v1/conflicts/{conflict}/resolve"),
            Some(json!({"status": "done", "resolvedBy": "ada"})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["status"], "done");
    let e = entity(&app, &id).await;
    assert_eq!(e["manual"], false);
    let open = app.api("GET", "/api/v1/conflicts?state=open", None).await;
    assert_eq!(open.body["conflicts"], json!([]));
    let again = app
        .api(
            "POST",
            &format!("/api/v1/conflicts/{conflict}/resolve"),
            Some(json!({"status": "done"})),
        )
        .await;
    assert_eq!(again.status, 409);
}

#[actix_web::test]
async fn the_status_api_answers_decisions_and_refuses_what_is_wrong() {
    let app = spawn_app().await;
    let id = linked_entity(&app, ("Todo", "unstarted"), "todo").await;

    let r = app
        .http
        .post(format!("{}/api/v1/status", app.address))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = app
        .http
        .get(format!("{}/api/v1/entities/{id}", app.address))
        .bearer_auth("wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    // The API (postgresql, priority 0) overrides Linear's value (set 30 s ago) even
    // inside the window, which is measured in source time.
    let inside = Utc::now() - TimeDelta::seconds(29);
    let body = app
        .set_status(
            json!({"entityId": id, "status": "in_progress", "sourceTimestamp": inside.to_rfc3339()}),
        )
        .await;
    assert_eq!(body["decision"], "conflict", "{body}");
    assert_eq!(body["status"], "in_progress");
    assert_eq!(body["version"], 2);
    let body = app
        .set_status(json!({"entityId": id, "status": "in_progress"}))
        .await;
    assert_eq!(body["decision"], "noop");
    assert_eq!(body["version"], 2);

    let r = app
        .api(
            "POST",
            "/api/v1/status",
            Some(json!({"entityId": id, "status": "doing"})),
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(r.body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("in_progress"));
    let r = app
        .api(
            "POST",
            "/api/v1/status",
            Some(json!({"entityId": uuid::Uuid::new_v4(), "status": "done"})),
        )
        .await;
    assert_eq!(r.status, 404, "{}", r.body);
    let r = app
        .api(
            "GET",
            &format!("/api/v1/entities/{}", uuid::Uuid::new_v4()),
            None,
        )
        .await;
    assert_eq!(r.status, 404);
    let r = app
        .api("POST", "/api/v1/status", Some(json!({"status": "done"})))
        .await;
    assert_eq!(r.status, 400);
    let r = app
        .api(
            "POST",
            "/api/v1/status",
            Some(json!({"entityId": id, "status": "done", "colour": 1})),
        )
        .await;
    assert_eq!(
        r.status, 400,
        "unknown fields are named, not ignored: {}",
        r.body
    );

    // rollback to version 1 (todo) is a new change; a version that never existed is 409
    let r = app
        .api(
            "POST",
            &format!("/api/v1/entities/{id}/rollback"),
            Some(json!({"version": 1})),
        )
        .await;
    let h = history(&app, &id).await;
    assert_eq!(h[0]["toStatus"], "todo", "{h:?}");
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["status"], "todo");
    assert_eq!(r.body["version"], 3);
    let r = app
        .api(
            "POST",
            &format!("/api/v1/entities/{id}/rollback"),
            Some(json!({"version": 99})),
        )
        .await;
    assert_eq!(r.status, 409, "{}", r.body);

    // a ref already linked elsewhere cannot be linked again
    let r = app
        .api("POST", "/api/v1/links", Some(json!({"refs": [{"system": "github", "externalId": GITHUB_ISSUE}, {"system": "github", "externalId": "o/other#5"}]})))
        .await;
    assert_eq!(
        r.status, 200,
        "joining an existing entity is not a creation: {}",
        r.body
    );
    let r = app
        .api("POST", "/api/v1/links", Some(json!({"entityId": uuid::Uuid::new_v4(), "refs": [{"system": "github", "externalId": "o/x#1"}]})))
        .await;
    assert_eq!(r.status, 404);
    let other = app
        .api(
            "POST",
            "/api/v1/links",
            Some(json!({"refs": [{"system": "github", "externalId": "o/y#1"}]})),
        )
        .await;
    assert_eq!(other.status, 201);
    let r = app
        .api("POST", "/api/v1/links", Some(json!({"entityId": other.body["id"], "refs": [{"system": "github", "externalId": GITHUB_ISSUE}]})))
        .await;
    assert_eq!(r.status, 409, "{}", r.body);
}

#[actix_web::test]
async fn an_unmapped_native_status_is_recorded_as_an_error_event_not_guessed() {
    let app = spawn_app().await;
    let id = linked_entity(&app, ("Todo", "unstarted"), "todo").await;
    let body = linear_issue_update(LINEAR_ID, "ENG-123", "Limbo", "purgatory", Utc::now());
    assert_eq!(app.linear("unmapped", &body).await.status, 200);
    app.drained().await;
    let e = entity(&app, &id).await;
    assert_eq!(e["status"], "todo");
    let events = events_of(&app, &id).await;
    let failed = events
        .iter()
        .find(|e| e["type"] == "mapping_failed")
        .expect("mapping_failed event");
    assert!(
        failed["data"]["value"]
            .as_str()
            .unwrap()
            .contains("purgatory"),
        "{failed}"
    );
    assert_eq!(history(&app, &id).await[0]["decision"], "rejected");
}

#[actix_web::test]
async fn a_direct_postgresql_write_is_synced_like_any_other_source() {
    let app = spawn_app().await;
    let id = linked_entity(&app, ("Todo", "unstarted"), "todo").await;
    let db = app.db().await;
    let uuid: uuid::Uuid = id.parse().unwrap();
    db.execute(
        "UPDATE entities SET status = 'blocked' WHERE id = $1",
        &[&uuid],
    )
    .await
    .unwrap();
    let e = wait_for(
        "the direct write is recorded as a change",
        Duration::from_secs(10),
        || async {
            let e = entity(&app, &id).await;
            (e["version"] == 2).then_some(e)
        },
    )
    .await;
    assert_eq!(e["status"], "blocked");
    assert_eq!(e["lastSystem"], "postgresql");
    let h = history(&app, &id).await;
    assert_eq!(h[0]["system"], "postgresql");
    assert_eq!(h[0]["fromStatus"], "todo");
    let outbox = app
        .count("SELECT count(*) FROM sync_outbox WHERE status = 'blocked'")
        .await;
    assert_eq!(outbox, 2, "both linked systems are told");
    // statsync's own write did not trigger another round
    actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(app.count("SELECT count(*) FROM pg_status_changes").await, 1);
}

fn urlencode(s: &str) -> String {
    s.replace('/', "%2F").replace('#', "%23")
}

async fn insert(tx: &statsync::store::tx::Tx, n: i32) {
    tx.execute("INSERT INTO tx_probe VALUES ($1)", &[&n])
        .await
        .expect("insert");
}

/// The prepared insert a pipeline sends.
async fn inserting(tx: &statsync::store::tx::Tx) -> tokio_postgres::Statement {
    tx.prepare_cached("INSERT INTO tx_probe VALUES ($1) RETURNING n")
        .await
        .expect("prepare")
}

/// A writer transaction that has inserted `n`.
async fn begin_inserting(store: &statsync::store::Store, n: i32) -> statsync::store::tx::Tx {
    let client = store.client().await.expect("client");
    let tx = statsync::store::tx::Tx::begin(client).await.expect("begin");
    insert(&tx, n).await;
    tx
}

/// The engine's transactions send `BEGIN` with their first statement and `COMMIT` with
/// their last; what pipelining must never do is let a statement escape its transaction.
#[actix_web::test]
async fn a_pipelined_transaction_keeps_its_statements_inside_and_rolls_back_what_fails() {
    use statsync::store::tx::Tx;
    use statsync::store::Store;

    let app = spawn_app().await;
    let store = Store::connect(&app.database_url, app.settings.database.pool()).expect("store");
    let db = app.db().await;
    db.batch_execute("CREATE TABLE tx_probe (n int PRIMARY KEY)")
        .await
        .expect("probe table");
    let count = |n: i32| {
        let db = &db;
        async move {
            db.query_one("SELECT count(*) FROM tx_probe WHERE n = $1", &[&n])
                .await
                .expect("count")
                .get::<_, i64>(0)
        }
    };

    // The first statement already runs inside the writer transaction (`SET LOCAL`
    // outside a transaction block would have had no effect).
    let mut tx = Tx::on(store.client().await.expect("client"));
    let writer: Option<String> = tx
        .begin_with(|c| async move {
            let row = c
                .query_one("SELECT current_setting('statsync.writer', true)", &[])
                .await?;
            Ok(row.get(0))
        })
        .await
        .expect("begin");
    assert_eq!(writer.as_deref(), Some("on"));
    insert(&tx, 1).await;
    let last = inserting(&tx).await;
    let rows = tx.commit_after(&[(&last, &[&2i32])]).await.expect("commit");
    assert_eq!(rows[0].get::<_, i32>(0), 2);
    assert_eq!((count(1).await, count(2).await), (1, 1));

    // A last statement that fails takes the whole transaction with it.
    let tx = begin_inserting(&store, 3).await;
    let failing = inserting(&tx).await;
    let err = tx
        .commit_after(&[(&failing, &[&5i32]), (&failing, &[&1i32])])
        .await
        .expect_err("a duplicate key fails");
    assert!(err.to_string().contains("tx_probe_pkey"), "{err}");
    assert_eq!(
        count(3).await,
        0,
        "nothing of the failed transaction is committed"
    );

    // Dropped without a commit: rolled back, and the connection comes back clean.
    let tx = begin_inserting(&store, 4).await;
    drop(tx);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let open = "SELECT count(*) FROM pg_stat_activity
        WHERE datname = current_database() AND state LIKE 'idle in transaction%'";
    while db
        .query_one(open, &[])
        .await
        .expect("activity")
        .get::<_, i64>(0)
        > 0
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the dropped transaction was never ended"
        );
        actix_web::rt::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(count(4).await, 0, "the dropped transaction was rolled back");
    // Had it still held its row, this insert would wait for it.
    db.batch_execute("SET statement_timeout = '5s'; INSERT INTO tx_probe VALUES (4)")
        .await
        .expect("the rolled-back row is free");
}

/// The simulation's seeds 194 and 196: statsync's write landed on an object after its
/// entity had moved on to another status (decided in the same pass as the write, so no
/// applier saw it waiting). The write's own record then sends the entity's status after
/// it, once, and never when something newer is already on its way there.
#[actix_web::test]
async fn a_write_that_lands_after_its_entity_moved_on_is_followed_by_the_current_status() {
    use statsync::domain::{CanonicalStatus, EntityKind, SystemId};
    use statsync::store::outbox::{self, OutboxRow};
    use statsync::store::Store;

    let app = spawn_app().await;
    let id = linked_entity(&app, ("Todo", "unstarted"), "todo").await;
    let entity: uuid::Uuid = id.parse().unwrap();
    let db = app.db().await;
    let all_landed = || async {
        db.execute(
            "UPDATE sync_outbox SET state = 'done' WHERE entity_id = $1",
            &[&entity],
        )
        .await
        .unwrap();
    };
    all_landed().await;
    let body = app
        .set_status(json!({"entityId": id, "status": "in_progress"}))
        .await;
    assert_eq!(body["version"], 2, "{body}");
    let written: i64 = db
        .query_one(
            "SELECT id FROM sync_outbox
             WHERE entity_id = $1 AND system = 'github' AND entity_version = 2",
            &[&entity],
        )
        .await
        .unwrap()
        .get(0);
    all_landed().await;
    let body = app
        .set_status(json!({"entityId": id, "status": "blocked"}))
        .await;
    assert_eq!(body["version"], 3, "{body}");

    let row = OutboxRow {
        id: written,
        entity_id: entity,
        system: SystemId::Github,
        external_id: GITHUB_ISSUE.to_owned(),
        status: CanonicalStatus::InProgress,
        previous_status: None,
        entity_version: 2,
        operation_id: uuid::Uuid::new_v4(),
        attempt: 1,
        kind: EntityKind::Issue,
        project: None,
        created_at: Utc::now(),
    };
    // The blocked write waits behind the one in flight (the test's dispatcher, with no
    // GitHub to call, would otherwise end it at once).
    db.execute(
        "UPDATE sync_outbox SET state = 'pending', run_at = now() + interval '1 hour'
         WHERE entity_id = $1 AND entity_version = 3",
        &[&entity],
    )
    .await
    .unwrap();
    let store = Store::connect(&app.database_url, app.settings.database.pool()).unwrap();
    let client = store.client().await.unwrap();
    assert!(
        !outbox::follow_up(&client, &row).await.unwrap(),
        "the blocked write is already on its way"
    );
    all_landed().await;
    assert!(outbox::follow_up(&client, &row).await.unwrap());
    let follow: Vec<(String, Option<String>, i64)> = db
        .query(
            "SELECT status, previous_status, entity_version FROM sync_outbox
             WHERE entity_id = $1 AND system = 'github' AND state <> 'done'",
            &[&entity],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(
        follow,
        [("blocked".to_owned(), Some("in_progress".to_owned()), 3)]
    );
    assert!(
        !outbox::follow_up(&client, &row).await.unwrap(),
        "followed once"
    );
    let current = OutboxRow {
        status: CanonicalStatus::Blocked,
        entity_version: 3,
        ..row
    };
    all_landed().await;
    assert!(
        !outbox::follow_up(&client, &current).await.unwrap(),
        "a write of the current status needs nothing after it"
    );
}
