//! Failed calls: each answer's error code, retries honouring the API's wait, dead
//! letters and their requeue; a system paused by its limit while others flow.

use super::*;

#[actix_web::test]
async fn each_failure_gets_its_code_and_is_retried_or_dead_lettered() {
    let (gh, lin) = (fakes::github().await, fakes::linear().await);
    let app = spawn_outbound(&gh, &lin, &[("STATSYNC__SYNC__MAX_RETRIES", "3".into())]).await;
    let issue = |n: u32| format!("acme/api#{n}");
    gh.always(&issue(10), Some(github_error(401, "Bad credentials")));
    gh.script(
        &issue(11),
        vec![github_error(403, "You have exceeded a secondary rate limit. Please wait a few minutes before you try again.")
            .with_header("retry-after", "1")],
    );
    gh.script(
        &issue(12),
        vec![github_error(429, "Too many requests").with_header("retry-after", "1")],
    );
    gh.script(&issue(13), vec![github_error(500, "Server Error")]);
    gh.script(&issue(14), vec![Reply::Slow(Duration::from_millis(1500))]);
    gh.always(&issue(15), Some(github_error(502, "Bad Gateway")));
    let mut ids = Vec::new();
    for n in 10..=15 {
        ids.push(entity_on_github(&app.address, &issue(n), "in_progress").await);
    }

    // 401: not retryable, dead at once, after one attempt.
    let (_, attempts, code) = row_reaches(&app, &issue(10), "dead").await;
    assert_eq!((attempts, code.as_deref()), (1, Some("UNAUTHORIZED")));
    // 403 secondary limit and 429, both with retry-after: retried no sooner than told.
    for n in [11, 12] {
        let (_, attempts, code) = row_reaches(&app, &issue(n), "done").await;
        assert_eq!((attempts, code.as_deref()), (2, Some("RATE_LIMIT")), "#{n}");
        let r = gh.requests_for(&format!("/issues/{n}"));
        assert_eq!(r.len(), 2);
        let waited = r[1].at - r[0].at;
        assert!(
            waited >= Duration::from_millis(950),
            "#{n} retried after {waited:?}"
        );
    }
    // 500, then success.
    let (_, attempts, code) = row_reaches(&app, &issue(13), "done").await;
    assert_eq!((attempts, code.as_deref()), (2, Some("UPSTREAM_5XX")));
    // An answer slower than dispatch.request_timeout_ms is a TIMEOUT, then retried.
    let (_, attempts, code) = row_reaches(&app, &issue(14), "done").await;
    assert_eq!((attempts, code.as_deref()), (2, Some("TIMEOUT")));
    // A 5xx that never ends: dead after sync.max_retries attempts.
    let (_, attempts, code) = row_reaches(&app, &issue(15), "dead").await;
    assert_eq!((attempts, code.as_deref()), (3, Some("UPSTREAM_5XX")));
    assert_eq!(gh.requests_for("/issues/15").len(), 3);

    // The failures are announced with their code.
    let failed: Vec<Value> = events(&app, &ids[0])
        .await
        .into_iter()
        .filter(|e| e["type"] == "github_sync_failed")
        .collect();
    assert_eq!(failed.len(), 1);
    let data = &failed[0]["data"];
    assert_eq!(data["error_code"], "UNAUTHORIZED");
    assert_eq!(data["retryable"], false);
    assert!(data["operationId"].is_string() && data["timestamp"].is_string());
    assert_eq!(data["projectId"], Value::Null);
    let limited: Vec<Value> = events(&app, &ids[1])
        .await
        .into_iter()
        .filter(|e| e["type"] == "github_sync_failed")
        .collect();
    assert_eq!(limited[0]["data"]["error_code"], "RATE_LIMIT");
    assert_eq!(limited[0]["data"]["retryable"], true);
    assert_eq!(limited[0]["data"]["retryAfter"], 1.0);

    // Operators see the dead letters and can retry one once the cause is fixed.
    let r = app.api("GET", "/api/v1/sync/outbox", None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["bySystem"]["github"]["dead"], 2, "{}", r.body);
    assert_eq!(r.body["bySystem"]["github"]["done"], 4, "{}", r.body);
    let dead = r.body["deadLetters"].as_array().unwrap();
    let letter = dead.iter().find(|d| d["externalId"] == issue(10)).unwrap();
    assert_eq!(letter["errorCode"], "UNAUTHORIZED");
    assert!(letter["lastError"]
        .as_str()
        .unwrap()
        .contains("Bad credentials"));
    let dead_id = letter["id"].as_i64().unwrap();
    gh.always(&issue(10), None);
    let r = app
        .api(
            "POST",
            &format!("/api/v1/sync/outbox/{dead_id}/retry"),
            None,
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    row_reaches(&app, &issue(10), "done").await;
    assert_eq!(gh.object(&issue(10)).unwrap().0, "open");
    let r = app
        .api(
            "POST",
            &format!("/api/v1/sync/outbox/{dead_id}/retry"),
            None,
        )
        .await;
    assert_eq!(r.status, 409, "only dead letters are retried: {}", r.body);
    let r = app
        .api("POST", "/api/v1/sync/outbox/999999/retry", None)
        .await;
    assert_eq!(r.status, 404);
    let r = app.get("/api/v1/sync/outbox").await;
    assert_eq!(r.status, 401, "the outbox API needs a token");
}

#[actix_web::test]
async fn a_linear_rate_limit_pauses_linear_while_github_flows_and_agents_get_signed_notices() {
    let (gh, lin, agent) = (
        fakes::github().await,
        fakes::linear().await,
        fakes::agent().await,
    );
    let app = spawn_outbound(
        &gh,
        &lin,
        &[("STATSYNC__AGENTAPI__URL", format!("{}/agent", agent.url))],
    )
    .await;
    // Linear says: budget spent, back in 1.5 s (a 400 carrying RATELIMITED, as Linear does).
    let reset = (Utc::now() + TimeDelta::milliseconds(1500)).timestamp_millis();
    // The reset is a point in time: the first request may arrive well after this line
    // on a loaded machine, so the retry is measured against the reset, not against it.
    let reset_at = std::time::Instant::now() + Duration::from_millis(1500);
    lin.script(
        LINEAR_ID,
        vec![Reply::status(
            400,
            json!({"errors": [{"message": "Rate limit exceeded", "extensions": {"code": "RATELIMITED"}}]}),
        )
        .with_header("x-ratelimit-requests-remaining", "0")
        .with_header("x-ratelimit-requests-reset", &reset.to_string())],
    );
    let body =
        json!({"refs": [{"system": "linear", "externalId": LINEAR_ID}], "status": "in_review"});
    let (code, _) = call(&app.address, "POST", "/api/v1/links", body).await;
    assert_eq!(code, 201);
    wait_for(
        "Linear answered RATELIMITED",
        Duration::from_secs(10),
        || async { (!lin.requests().is_empty()).then_some(()) },
    )
    .await;
    // GitHub and the agent API keep flowing while Linear waits.
    let body = json!({"refs": [
        {"system": "github", "externalId": GITHUB_ISSUE},
        {"system": "agentapi", "externalId": "task-7"}
    ], "status": "in_progress"});
    let (code, created) = call(&app.address, "POST", "/api/v1/links", body).await;
    assert_eq!(code, 201);
    row_reaches(&app, GITHUB_ISSUE, "done").await;
    row_reaches(&app, "task-7", "done").await;
    let (_, attempts, code) = row_reaches(&app, LINEAR_ID, "done").await;
    assert_eq!((attempts, code.as_deref()), (2, Some("RATE_LIMIT")));
    let linear = lin.requests();
    let github = gh.requests();
    assert!(
        github[0].at < linear[1].at,
        "GitHub was not held up by Linear's limit"
    );
    assert!(
        linear[1].at + Duration::from_millis(200) >= reset_at,
        "Linear was paused until its reset, not retried in a loop"
    );
    let update = linear
        .iter()
        .find(|r| {
            r.body["query"]
                .as_str()
                .unwrap_or("")
                .contains("issueUpdate")
        })
        .unwrap();
    assert_eq!(
        update.body["variables"]["stateId"], "st-review",
        "the configured name `In Review`"
    );

    // The agent notice: DESIGN.md's body, signed like the inbound agent webhook.
    let notices = agent.requests();
    assert_eq!(notices.len(), 1);
    let n = &notices[0];
    statsync::systems::signature::verify_agentapi(
        AGENT_SECRET.as_bytes(),
        &n.raw,
        n.headers.get("x-statsync-signature").map(String::as_str),
    )
    .expect("a valid signature");
    assert_eq!(n.body["entityId"], created["id"]);
    assert_eq!(n.body["status"], "in_progress");
    assert_eq!(n.body["version"], 1);
    assert!(n.body["timestamp"].is_string());
    let links = n.body["links"].as_array().unwrap();
    assert!(
        links.contains(&json!({"system": "github", "externalId": GITHUB_ISSUE})),
        "{links:?}"
    );
}
