//! Time, echoes and loops (DESIGN): the cases that lost a person's genuine change.
//! A reopen taken for the echo of an older, superseded write; a conflict window
//! measured on arrival; a source time in the future poisoning the entity.

use super::*;

/// A pull request delivery naming ENG-123, stamped `at`.
fn pull_request(action: &str, merged: bool, at: chrono::DateTime<Utc>) -> Vec<u8> {
    github_fixture_at("pull_request.opened.json", at, |v| {
        v["action"] = json!(action);
        let pr = &mut v["pull_request"];
        pr["title"] = json!("Fix login");
        pr["body"] = json!("Fixes ENG-123");
        pr["draft"] = json!(false);
        pr["merged"] = json!(merged);
        if merged {
            pr["state"] = json!("closed");
            pr["merged_at"] = json!(at.to_rfc3339());
        }
    })
}

/// The Linear delivery about ENG-123 made by `actor`, in `state`, stamped `at`.
fn linear_by(actor: &str, state: (&str, &str), at: chrono::DateTime<Utc>) -> Vec<u8> {
    let body = linear_issue_update(LINEAR_ID, "ENG-123", state.0, state.1, at);
    let mut v: Value = serde_json::from_slice(&body).unwrap();
    v["actor"]["id"] = json!(actor);
    serde_json::to_vec(&v).unwrap()
}

async fn linear_writes(lin: &Fake) -> usize {
    lin.requests_for("issueUpdate").len()
}

async fn entity_of(app: &TestApp) -> Value {
    let r = app
        .api(
            "GET",
            &format!("/api/v1/entities?system=linear&external_id={LINEAR_ID}"),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body
}

#[actix_web::test]
async fn a_persons_reopen_after_statsyncs_writes_is_applied_not_taken_for_an_echo() {
    let (gh, lin) = (fakes::github().await, fakes::linear().await);
    // No linear.actor_id: statsync learns its identity from the fake's `viewer`. (No
    // conflict window: this test is about echoes alone.)
    let app = spawn_outbound(
        &gh,
        &lin,
        &[("STATSYNC__SYNC__CONFLICT_WINDOW_MS", "0".into())],
    )
    .await;
    let t0 = Utc::now() - TimeDelta::minutes(2);
    let create = linear_by("user-1", ("Todo", "unstarted"), t0);
    assert_eq!(app.linear("l-create", &create).await.status, 200);
    app.drained().await;

    // The pull request opens, then merges: statsync writes In Progress, then Done.
    let opened = pull_request("opened", false, t0 + TimeDelta::seconds(10));
    assert_eq!(
        app.github("pull_request", "g-open", &opened).await.status,
        200
    );
    wait_for(
        "In Progress is written",
        Duration::from_secs(20),
        || async {
            (linear_writes(&lin).await == 1 && lin.object(LINEAR_ID)?.0 == "st-doing").then_some(())
        },
    )
    .await;
    let merged = pull_request("closed", true, t0 + TimeDelta::seconds(20));
    assert_eq!(
        app.github("pull_request", "g-merge", &merged).await.status,
        200
    );
    wait_for("Done is written", Duration::from_secs(20), || async {
        (linear_writes(&lin).await == 2 && lin.object(LINEAR_ID)?.0 == "st-done").then_some(())
    })
    .await;
    // Both writes recorded with the updated-at Linear answered.
    let recorded = "SELECT count(*) FROM sync_writes WHERE object_updated_at IS NOT NULL";
    count_becomes(
        &app,
        "both writes recorded",
        recorded,
        2,
        Duration::from_secs(20),
    )
    .await;
    let (doing_at, done_at) = (lin.updated_at(LINEAR_ID, 0), lin.updated_at(LINEAR_ID, 1));

    // Linear's webhook about the Done write comes back: an echo.
    let done_echo = linear_by(fakes::LINEAR_VIEWER, ("Done", "completed"), done_at);
    assert_eq!(app.linear("l-echo-done", &done_echo).await.status, 200);
    app.drained().await;

    // 20 s later a person moves it back to In Progress: the status of statsync's older,
    // superseded write, whose echo has not come yet. A genuine change.
    let reopen = linear_by(
        "user-1",
        ("In Progress", "started"),
        done_at + TimeDelta::seconds(20),
    );
    assert_eq!(app.linear("l-reopen", &reopen).await.status, 200);
    app.drained().await;
    let e = entity_of(&app).await;
    assert_eq!(e["status"], "in_progress", "{e}");
    let id = e["id"].as_str().unwrap().to_owned();
    let h = history(&app, &id).await;
    assert_eq!(h[0]["decision"], "applied", "{h:#?}");
    assert!(
        !h[0]["reason"].as_str().unwrap().contains("echo"),
        "{:?}",
        h[0]
    );
    assert!(
        h[1]["reason"]
            .as_str()
            .unwrap()
            .contains("echo of statsync's own write"),
        "the Done echo: {:?}",
        h[1]
    );

    // The In Progress write's echo arrives last: consumed, and it changes nothing.
    let late_echo = linear_by(fakes::LINEAR_VIEWER, ("In Progress", "started"), doing_at);
    assert_eq!(app.linear("l-echo-doing", &late_echo).await.status, 200);
    app.drained().await;
    let h = history(&app, &id).await;
    assert_eq!(h[0]["decision"], "noop", "{:?}", h[0]);
    assert!(h[0]["reason"].as_str().unwrap().contains("echo"));
    assert_eq!(entity_of(&app).await["status"], "in_progress");
    assert_eq!(
        app.count("SELECT count(*) FROM sync_writes WHERE echoed_at IS NULL")
            .await,
        0,
        "each write's echo consumed once"
    );
    assert_eq!(
        linear_writes(&lin).await,
        2,
        "nothing written back to Linear"
    );
}

#[actix_web::test]
async fn the_conflict_window_is_measured_in_source_time_not_on_arrival() {
    let (gh, lin) = (fakes::github().await, fakes::linear().await);
    let app = spawn_outbound(&gh, &lin, &[]).await;
    let t0 = Utc::now() - TimeDelta::minutes(10);
    let create = linear_by("user-1", ("Todo", "unstarted"), t0);
    assert_eq!(app.linear("l-create", &create).await.status, 200);
    // A backlog: the pull request opened 20 s after the create reaches statsync right
    // behind it. Decided as if live: 20 s apart is no conflict.
    let opened = pull_request("opened", false, t0 + TimeDelta::seconds(20));
    assert_eq!(
        app.github("pull_request", "g-open", &opened).await.status,
        200
    );
    app.drained().await;
    let e = entity_of(&app).await;
    assert_eq!(e["status"], "in_progress", "{e}");
    let h = history(&app, e["id"].as_str().unwrap()).await;
    assert_eq!(h[0]["decision"], "applied", "{h:#?}");
    assert_eq!(app.count("SELECT count(*) FROM conflicts").await, 0);
}

#[actix_web::test]
async fn a_pull_request_losing_a_conflict_is_never_claimed_corrected() {
    let (gh, lin) = (fakes::github().await, fakes::linear().await);
    let app = spawn_outbound(&gh, &lin, &[]).await;
    let t0 = Utc::now() - TimeDelta::minutes(10);
    let create = linear_by("user-1", ("In Review", "started"), t0);
    assert_eq!(app.linear("l-create", &create).await.status, 200);
    app.drained().await;
    // Within the window in source time: Linear (priority 1) keeps in_review; the pull
    // request's draft is not written (a pull request's state is git's).
    let draft = github_fixture_at(
        "pull_request.opened.json",
        t0 + TimeDelta::seconds(2),
        |v| {
            v["pull_request"]["body"] = json!("Fixes ENG-123");
            v["pull_request"]["draft"] = json!(true);
        },
    );
    assert_eq!(
        app.github("pull_request", "g-draft", &draft).await.status,
        200
    );
    app.drained().await;
    let e = entity_of(&app).await;
    assert_eq!(e["status"], "in_review", "{e}");
    let h = history(&app, e["id"].as_str().unwrap()).await;
    assert_eq!(h[0]["decision"], "conflict", "{h:#?}");
    let reason = h[0]["reason"].as_str().unwrap();
    assert!(!reason.contains("corrected"), "{reason}");
    assert!(
        reason.contains("nothing is written back to github"),
        "{reason}"
    );
    assert_eq!(
        app.count("SELECT count(*) FROM sync_outbox WHERE system = 'github'")
            .await,
        0,
        "no write to the pull request"
    );
}

#[actix_web::test]
async fn a_future_source_time_is_taken_as_received_for_webhooks_and_refused_from_the_api() {
    let (gh, lin) = (fakes::github().await, fakes::linear().await);
    let app = spawn_outbound(&gh, &lin, &[]).await;
    let far = chrono::DateTime::parse_from_rfc3339("9999-01-01T00:00:00Z")
        .unwrap()
        .with_timezone(&Utc);
    let poisoned = linear_by("user-1", ("In Progress", "started"), far);
    assert_eq!(app.linear("l-future", &poisoned).await.status, 200);
    app.drained().await;
    let e = entity_of(&app).await;
    let id = e["id"].as_str().unwrap().to_owned();
    let h = history(&app, &id).await;
    let reason = h[0]["reason"].as_str().unwrap();
    assert!(reason.contains("taken as the time received"), "{reason}");

    // A genuine later change from another system is decided, not stale.
    let later = Utc::now() + TimeDelta::seconds(30);
    let r = app
        .api(
            "POST",
            "/api/v1/status",
            Some(
                json!({"entityId": id, "status": "blocked", "source": "agentapi",
                        "sourceTimestamp": later.to_rfc3339()}),
            ),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["decision"], "applied", "{}", r.body);

    let r = app
        .api(
            "POST",
            "/api/v1/status",
            Some(json!({"entityId": id, "status": "done",
                        "sourceTimestamp": "9999-01-01T00:00:00Z"})),
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.body);
    assert_eq!(r.body["error"]["code"], "FUTURE_TIMESTAMP", "{}", r.body);
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("max_future_skew_ms"),
        "{}",
        r.body
    );
}
