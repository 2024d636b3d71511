//! Acknowledged means applied: text PostgreSQL cannot hold is made storable, and a
//! delivery that still cannot be applied is counted, alerted on, listed and retried.

use super::*;

/// Reads `statsync_deliveries_failed_total{system,code}` from `/metrics`.
async fn failed_metric(app: &TestApp, system: &str, code: &str) -> Option<f64> {
    let text = app.get("/metrics").await.body;
    let text = text.as_str().unwrap_or_default();
    let needle_code = format!("code=\"{code}\"");
    let needle_system = format!("system=\"{system}\"");
    text.lines()
        .filter(|l| l.starts_with("statsync_deliveries_failed_total{"))
        .filter(|l| l.contains(&needle_code) && l.contains(&needle_system))
        .find_map(|l| l.rsplit(' ').next()?.parse().ok())
}

#[actix_web::test]
async fn a_nul_in_a_title_or_summary_is_accepted_stored_raw_and_applied_on_every_webhook() {
    let app = spawn_app().await;
    let now = Utc::now();
    let github = github_fixture_at("issues.opened.json", now, |v| {
        v["issue"]["title"] = json!("broken\u{0}title");
    });
    let mut linear: Value = serde_json::from_slice(&linear_issue_update(
        LINEAR_ID,
        "ENG-123",
        "In Progress",
        "started",
        now,
    ))
    .unwrap();
    linear["data"]["title"] = json!("broken\u{0}title");
    linear["data"]["team"]["name"] = json!("Eng\u{0}ineering");
    let linear = serde_json::to_vec(&linear).unwrap();
    let agent = serde_json::to_vec(&json!({
        "taskId": "nul-task",
        "state": "working",
        "summary": "half\u{0}done",
        "timestamp": now,
    }))
    .unwrap();
    // serde_json writes U+0000 as the escape JSON requires.
    assert!(String::from_utf8_lossy(&agent).contains("\\u0000"));

    for (answer, what) in [
        (app.github("issues", "nul-gh", &github).await, "github"),
        (app.linear("nul-lin", &linear).await, "linear"),
        (app.agent(Some("nul-agent"), &agent).await, "agentapi"),
    ] {
        assert_eq!(answer.status, 200, "{what}: {}", answer.body);
        assert_eq!(answer.body["status"], "accepted", "{what}");
    }
    app.drained().await;
    let db = app.db().await;
    let rows = db
        .query(
            "SELECT delivery_id, state, outcome, position('\\x5c7530303030'::bytea in body) > 0
             FROM inbound_events ORDER BY id",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), 3);
    for row in &rows {
        let (id, state, outcome, raw): (String, String, Option<String>, bool) =
            (row.get(0), row.get(1), row.get(2), row.get(3));
        assert_eq!(state, "processed", "{id}: {outcome:?}");
        assert!(raw, "{id}: the body is kept as received");
    }
    for (system, external_id) in [
        ("github", GITHUB_ISSUE),
        ("linear", LINEAR_ID),
        ("agentapi", "nul-task"),
    ] {
        let r = app
            .api(
                "GET",
                &format!(
                    "/api/v1/entities?system={system}&external_id={}",
                    external_id.replace('#', "%23")
                ),
                None,
            )
            .await;
        assert_eq!(r.status, 200, "{system}: {}", r.body);
    }
    let title: Option<String> = db
        .query_one(
            "SELECT e.title FROM entities e JOIN entity_links l ON l.entity_id = e.id
             WHERE l.system = 'github' AND l.external_id = $1",
            &[&GITHUB_ISSUE],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(title.as_deref(), Some("broken\u{FFFD}title"));
}

#[actix_web::test]
async fn a_delivery_that_cannot_be_applied_is_counted_alerted_listed_and_retried() {
    let app = spawn_app_with(&[("STATSYNC__ALERTS__EVALUATION_INTERVAL_MS", "100")]).await;
    let db = app.db().await;
    // A delivery accepted by an earlier version whose body this one cannot read.
    let id: i64 = db
        .query_one(
            "INSERT INTO inbound_events (system, delivery_id, event_type, body)
             VALUES ('github', 'unreadable-1', 'issues', '{\"action\":\"opened\"}')
             RETURNING id",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    wait_for(
        "the delivery is marked failed",
        Duration::from_secs(20),
        || async {
            let state: String = db
                .query_one("SELECT state FROM inbound_events WHERE id = $1", &[&id])
                .await
                .unwrap()
                .get(0);
            (state == "failed").then_some(())
        },
    )
    .await;
    assert_eq!(
        failed_metric(&app, "github", "UNPARSEABLE").await,
        Some(1.0)
    );

    let listed = app
        .api("GET", "/api/v1/deliveries?state=failed", None)
        .await;
    assert_eq!(listed.status, 200, "{}", listed.body);
    assert_eq!(listed.body["total"], 1);
    let row = &listed.body["deliveries"][0];
    assert_eq!(row["id"], id);
    assert_eq!(row["deliveryId"], "unreadable-1");
    assert_eq!(row["origin"], "webhook");
    assert_eq!(row["errorCode"], "UNPARSEABLE");
    assert!(
        row["error"].as_str().unwrap().contains("repository"),
        "{row}"
    );

    wait_for("the alert fires", Duration::from_secs(20), || async {
        let alerts = app.get("/alerts").await.body;
        alerts["alerts"]
            .as_array()?
            .iter()
            .any(|a| a["name"] == "deliveries_failed" && a["value"] == 1.0)
            .then_some(())
    })
    .await;

    // Only failed deliveries are retried; unknown ids are 404.
    let unknown = app
        .api("POST", "/api/v1/deliveries/999999/retry", None)
        .await;
    assert_eq!(unknown.status, 404, "{}", unknown.body);
    let bad_state = app
        .api("GET", "/api/v1/deliveries?state=pending", None)
        .await;
    assert_eq!(bad_state.status, 400, "{}", bad_state.body);

    // The cause fixed (here: the body replaced by what the sender meant), a retry
    // applies it.
    let fixed = github_fixture_at("issues.opened.json", Utc::now(), |_| {});
    db.execute(
        "UPDATE inbound_events SET body = $2 WHERE id = $1",
        &[&id, &fixed],
    )
    .await
    .unwrap();
    let retried = app
        .api("POST", &format!("/api/v1/deliveries/{id}/retry"), None)
        .await;
    assert_eq!(retried.status, 202, "{}", retried.body);
    app.drained().await;
    let row = db
        .query_one(
            "SELECT state, last_error FROM inbound_events WHERE id = $1",
            &[&id],
        )
        .await
        .unwrap();
    let (state, last_error): (String, Option<String>) = (row.get(0), row.get(1));
    assert_eq!(state, "processed");
    assert!(
        last_error.is_some_and(|e| e.starts_with("UNPARSEABLE")),
        "the failure stays for reference"
    );
    let again = app
        .api("POST", &format!("/api/v1/deliveries/{id}/retry"), None)
        .await;
    assert_eq!(again.status, 409, "{}", again.body);
    let r = app
        .api(
            "GET",
            "/api/v1/entities?system=github&external_id=Codertocat/Hello-World%231",
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    wait_for("the alert resolves", Duration::from_secs(20), || async {
        let alerts = app.get("/alerts").await.body;
        (!alerts["alerts"]
            .as_array()?
            .iter()
            .any(|a| a["name"] == "deliveries_failed"))
        .then_some(())
    })
    .await;
}
