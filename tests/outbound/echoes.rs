//! Echoes recognised by who made them: a delivery whose actor is the identity
//! statsync's own credentials act as is statsync's write coming back, whatever status it
//! carries; a delivery by anyone else is a genuine change, even when its status matches
//! a write statsync is still expecting the echo of.

use super::*;

const BOT: &str = "statsync-bot";
const LINEAR_SELF: &str = "0b7c1a4e-5d2f-4e8a-9c3b-statsync0001";

/// A GitHub `issues` delivery made by `sender`, stamped `at`: reopened, or closed.
fn github_by(sender: &str, at: chrono::DateTime<Utc>, closed: bool) -> Vec<u8> {
    github_fixture_at("issues.reopened.json", at, |v| {
        v["sender"]["login"] = json!(sender);
        if closed {
            v["action"] = json!("closed");
            v["issue"]["state"] = json!("closed");
            v["issue"]["state_reason"] = json!("completed");
        }
    })
}

/// The Linear issue update delivery made by the user `actor`.
fn linear_by(actor: &str, state: (&str, &str), at: chrono::DateTime<Utc>) -> Vec<u8> {
    let body = linear_issue_update(LINEAR_ID, "ENG-123", state.0, state.1, at);
    let mut v: Value = serde_json::from_slice(&body).unwrap();
    v["actor"]["id"] = json!(actor);
    serde_json::to_vec(&v).unwrap()
}

async fn entity_status(app: &TestApp, id: &str) -> Value {
    let r = app
        .api("GET", &format!("/api/v1/entities/{id}"), None)
        .await;
    r.body["status"].clone()
}

async fn linear_writes(lin: &Fake) -> usize {
    lin.requests_for("issueUpdate").len()
}

#[actix_web::test]
async fn a_github_delivery_sent_by_statsyncs_login_is_an_echo_and_a_persons_is_a_change() {
    let (gh, lin) = (fakes::github().await, fakes::linear().await);
    let app = spawn_outbound(
        &gh,
        &lin,
        &[
            ("STATSYNC__SYNC__CONFLICT_WINDOW_MS", "1".into()),
            ("STATSYNC__GITHUB__ACTOR_LOGIN", "StatSync-Bot".into()),
        ],
    )
    .await;
    let refs = json!({"refs": [
        {"system": "linear", "externalId": LINEAR_ID},
        {"system": "github", "externalId": GITHUB_ISSUE}
    ]});
    let r = app.api("POST", "/api/v1/links", Some(refs)).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let id = r.body["id"].as_str().unwrap().to_owned();
    let done = linear_issue_update(LINEAR_ID, "ENG-123", "Done", "completed", Utc::now());
    assert_eq!(app.linear("lin-done", &done).await.status, 200);
    row_reaches(&app, GITHUB_ISSUE, "done").await;
    let github_echoes =
        "SELECT count(*) FROM sync_writes WHERE system = 'github' AND echoed_at IS NULL";
    assert_eq!(
        app.count(github_echoes).await,
        1,
        "the close awaits its echo"
    );

    // statsync's login reports the issue open: not the status written, still an echo.
    let rows_before = app.count("SELECT count(*) FROM sync_outbox").await;
    let at = Utc::now() + TimeDelta::seconds(2);
    let own = github_by(BOT, at, false);
    assert_eq!(app.github("issues", "gh-own", &own).await.status, 200);
    app.drained().await;
    let h = history(&app, &id).await;
    assert_eq!(h[0]["decision"], "noop", "{h:?}");
    let reason = h[0]["reason"].as_str().unwrap();
    assert!(reason.contains("echo of statsync's own write"), "{reason}");
    assert!(reason.contains("made by StatSync-Bot"), "{reason}");
    assert_eq!(entity_status(&app, &id).await, "done");
    assert_eq!(
        app.count("SELECT count(*) FROM sync_outbox").await,
        rows_before,
        "no further write"
    );

    // A person reopens it, then closes it again while statsync's close still awaits
    // its echo: both are genuine, and both reach Linear.
    let reopen = github_by("Codertocat", at + TimeDelta::seconds(1), false);
    assert_eq!(app.github("issues", "gh-reopen", &reopen).await.status, 200);
    row_reaches(&app, LINEAR_ID, "done").await;
    assert_eq!(entity_status(&app, &id).await, "todo");
    let close = github_by("Codertocat", at + TimeDelta::seconds(2), true);
    assert_eq!(app.github("issues", "gh-close", &close).await.status, 200);
    wait_for(
        "the person's close reaches Linear",
        Duration::from_secs(20),
        || async { (linear_writes(&lin).await == 2).then_some(()) },
    )
    .await;
    assert_eq!(entity_status(&app, &id).await, "done");
    assert_eq!(lin.object(LINEAR_ID).unwrap().0, "st-done");
    assert_eq!(
        app.count(github_echoes).await,
        1,
        "a person's delivery never consumes statsync's echo"
    );
}

#[actix_web::test]
async fn a_linear_delivery_whose_actor_is_statsyncs_viewer_is_an_echo_and_a_persons_is_a_change() {
    let (gh, lin) = (fakes::github().await, fakes::linear().await);
    let app = spawn_outbound(
        &gh,
        &lin,
        &[
            ("STATSYNC__SYNC__CONFLICT_WINDOW_MS", "1".into()),
            ("STATSYNC__LINEAR__ACTOR_ID", LINEAR_SELF.into()),
        ],
    )
    .await;
    let refs =
        json!({"refs": [{"system": "linear", "externalId": LINEAR_ID}], "status": "in_review"});
    let r = app.api("POST", "/api/v1/links", Some(refs)).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let id = r.body["id"].as_str().unwrap().to_owned();
    row_reaches(&app, LINEAR_ID, "done").await;
    let rows_before = app.count("SELECT count(*) FROM sync_outbox").await;

    // statsync's own key reports a state other than the one written: an echo.
    let at = Utc::now() + TimeDelta::seconds(2);
    let own = linear_by(LINEAR_SELF, ("Todo", "unstarted"), at);
    assert_eq!(app.linear("lin-own", &own).await.status, 200);
    app.drained().await;
    let h = history(&app, &id).await;
    assert_eq!(h[0]["decision"], "noop", "{h:?}");
    assert!(
        h[0]["reason"].as_str().unwrap().contains(LINEAR_SELF),
        "{h:?}"
    );
    assert_eq!(entity_status(&app, &id).await, "in_review");
    assert_eq!(
        app.count("SELECT count(*) FROM sync_outbox").await,
        rows_before
    );

    // The same change by a person is decided.
    let person = linear_by("user-1", ("Todo", "unstarted"), at + TimeDelta::seconds(1));
    assert_eq!(app.linear("lin-person", &person).await.status, 200);
    app.drained().await;
    assert_eq!(entity_status(&app, &id).await, "todo");
}
