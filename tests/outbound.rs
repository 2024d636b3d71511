//! Outbound sync end to end: the outbox dispatcher and the GitHub and Linear connectors
//! against local fakes that speak the real wire formats, on real PostgreSQL.

#[path = "outbound/fakes.rs"]
mod fakes;
mod support;

use std::time::Duration;

use chrono::{TimeDelta, Utc};
use fakes::{github_error, Fake, Reply};
use serde_json::{json, Value};
use support::*;

const LINEAR_ID: &str = "9f0a0c3e-1111-4222-8333-444455556666";
const GITHUB_ISSUE: &str = "Codertocat/Hello-World#1";
const GITHUB_TOKEN: &str = "gh-test-token";
const LINEAR_KEY: &str = "lin-test-key";

/// Settings pointing every connector at the fakes, with short test timings.
fn outbound_env(
    github: &Fake,
    linear: &Fake,
    extra: &[(&'static str, String)],
) -> Vec<(&'static str, String)> {
    let mut env: Vec<(&'static str, String)> = vec![
        ("STATSYNC__GITHUB__API_URL", github.url.clone()),
        (
            "STATSYNC__GITHUB__GRAPHQL_URL",
            format!("{}/graphql", github.url),
        ),
        (
            "STATSYNC__LINEAR__API_URL",
            format!("{}/graphql", linear.url),
        ),
        ("GITHUB_TOKEN", GITHUB_TOKEN.into()),
        ("LINEAR_API_KEY", LINEAR_KEY.into()),
        ("STATSYNC__DISPATCH__POLL_INTERVAL_MS", "100".into()),
        ("STATSYNC__DISPATCH__RETRY_BASE_MS", "50".into()),
        ("STATSYNC__DISPATCH__RETRY_MAX_MS", "200".into()),
        ("STATSYNC__DISPATCH__REQUEST_TIMEOUT_MS", "700".into()),
        ("STATSYNC__DISPATCH__LEASE_MS", "3000".into()),
        ("STATSYNC__GITHUB__REQUESTS_PER_SECOND", "200".into()),
        ("STATSYNC__LINEAR__REQUESTS_PER_SECOND", "200".into()),
    ];
    for (k, v) in extra {
        env.retain(|(key, _)| key != k);
        env.push((k, v.clone()));
    }
    env
}

async fn spawn_outbound(github: &Fake, linear: &Fake, extra: &[(&'static str, String)]) -> TestApp {
    let env = outbound_env(github, linear, extra);
    let pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    spawn_app_with(&pairs).await
}

/// An authenticated API call to a statsync at `address` (in-process or the binary).
async fn call(address: &str, method: &str, path: &str, body: Value) -> (u16, Value) {
    let http = reqwest::Client::new();
    let url = format!("{address}{path}");
    let req = match method {
        "POST" => http.post(url),
        _ => http.get(url),
    };
    let r = req
        .bearer_auth(API_TOKEN)
        .json(&body)
        .send()
        .await
        .expect("request");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// A new entity linked to GitHub issue `repo#n` whose first status is set through the
/// API, so one outbox row for GitHub is written.
async fn entity_on_github(address: &str, issue: &str, status: &str) -> String {
    let body = json!({"refs": [{"system": "github", "externalId": issue}], "status": status});
    let (code, body) = call(address, "POST", "/api/v1/links", body).await;
    assert_eq!(code, 201, "{body}");
    body["id"].as_str().unwrap().to_owned()
}

async fn outbox_rows(app: &TestApp, external_id: &str) -> Vec<(String, i32, Option<String>)> {
    app.db()
        .await
        .query(
            "SELECT state, attempt_count, error_code FROM sync_outbox WHERE external_id = $1 ORDER BY id",
            &[&external_id],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect()
}

/// Waits for the last outbox row of `external_id` to reach `state`.
async fn row_reaches(
    app: &TestApp,
    external_id: &str,
    state: &str,
) -> (String, i32, Option<String>) {
    wait_for(
        &format!("the outbox row for {external_id} becomes {state}"),
        Duration::from_secs(20),
        || async {
            let rows = outbox_rows(app, external_id).await;
            rows.last().filter(|r| r.0 == state).cloned()
        },
    )
    .await
}

async fn events(app: &TestApp, id: &str) -> Vec<Value> {
    let r = app
        .api(
            "GET",
            &format!("/api/v1/events?after=0&rooms=entity:{id}&limit=5000"),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body["events"].as_array().unwrap().clone()
}

async fn history(app: &TestApp, id: &str) -> Vec<Value> {
    let r = app
        .api("GET", &format!("/api/v1/entities/{id}/history"), None)
        .await;
    r.body["transitions"].as_array().unwrap().clone()
}

#[actix_web::test]
async fn a_linear_change_reaches_github_its_echo_goes_nowhere_and_a_later_github_change_reaches_linear(
) {
    let (gh, lin) = (fakes::github().await, fakes::linear().await);
    // A short conflict window: this test is about echoes, not about conflicts.
    let app = spawn_outbound(
        &gh,
        &lin,
        &[("STATSYNC__SYNC__CONFLICT_WINDOW_MS", "1".into())],
    )
    .await;
    let r = app
        .api(
            "POST",
            "/api/v1/links",
            Some(json!({"refs": [
                {"system": "linear", "externalId": LINEAR_ID},
                {"system": "github", "externalId": GITHUB_ISSUE}
            ]})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let id = r.body["id"].as_str().unwrap().to_owned();

    // Linear: the issue is done.
    let done = linear_issue_update(
        LINEAR_ID,
        "ENG-123",
        "Done",
        "completed",
        Utc::now() - TimeDelta::seconds(5),
    );
    assert_eq!(app.linear("lin-done", &done).await.status, 200);
    row_reaches(&app, GITHUB_ISSUE, "done").await;
    let patches = gh.requests_for("/issues/1");
    assert_eq!(patches.len(), 1, "exactly one PATCH");
    let patch = &patches[0];
    assert_eq!(patch.method, "PATCH");
    assert_eq!(patch.path, "/repos/Codertocat/Hello-World/issues/1");
    assert_eq!(
        patch.body,
        json!({"state": "closed", "state_reason": "completed"})
    );
    assert_eq!(
        patch.headers["authorization"],
        format!("Bearer {GITHUB_TOKEN}")
    );
    assert_eq!(patch.headers["x-github-api-version"], "2022-11-28");
    assert!(patch.headers["user-agent"].starts_with("statsync/"));
    let types: Vec<String> = events(&app, &id)
        .await
        .iter()
        .map(|e| e["type"].as_str().unwrap().to_owned())
        .collect();
    for t in ["github_sync_started", "github_sync_completed"] {
        assert!(types.contains(&t.to_owned()), "{t} in {types:?}");
    }

    // Linear moves on before GitHub's webhook about the close arrives: GitHub is
    // reopened (a second write, whose echo is on its way too).
    let doing = linear_issue_update(LINEAR_ID, "ENG-123", "In Progress", "started", Utc::now());
    assert_eq!(app.linear("lin-doing", &doing).await.status, 200);
    wait_for(
        "the reopen reaches GitHub",
        Duration::from_secs(20),
        || async { (gh.requests_for("/issues/1").len() == 2).then_some(()) },
    )
    .await;
    row_reaches(&app, GITHUB_ISSUE, "done").await;
    assert_eq!(
        gh.requests_for("/issues/1")[1].body,
        json!({"state": "open", "state_reason": "reopened"})
    );

    // Now GitHub's webhooks about both writes arrive, late. Taken for changes, the
    // `closed` one would drag the entity back to done and write that to Linear.
    // GitHub stamps them with the time it applied each write, after Linear's last
    // change (dispatch takes time), so timestamps alone cannot tell them from changes.
    let rows_before = app.count("SELECT count(*) FROM sync_outbox").await;
    let at = Utc::now() + TimeDelta::seconds(2);
    let closed_echo = github_fixture_at("issues.reopened.json", at, |v| {
        v["action"] = json!("closed");
        v["issue"]["state"] = json!("closed");
        v["issue"]["state_reason"] = json!("completed");
    });
    assert_eq!(
        app.github("issues", "gh-echo-1", &closed_echo).await.status,
        200
    );
    app.drained().await;
    let reopened_echo =
        github_fixture_at("issues.reopened.json", at + TimeDelta::seconds(1), |_| {});
    assert_eq!(
        app.github("issues", "gh-echo-2", &reopened_echo)
            .await
            .status,
        200
    );
    app.drained().await;
    assert_eq!(
        app.count("SELECT count(*) FROM sync_outbox").await,
        rows_before,
        "no further write"
    );
    let h = history(&app, &id).await;
    for t in &h[..2] {
        assert_eq!(t["decision"], "noop", "{h:?}");
        assert!(
            t["reason"]
                .as_str()
                .unwrap()
                .contains("echo of statsync's own write"),
            "{t}"
        );
    }
    assert_eq!(
        app.count("SELECT count(*) FROM sync_echoes").await,
        0,
        "both echoes consumed"
    );
    let e = app
        .api("GET", &format!("/api/v1/entities/{id}"), None)
        .await
        .body;
    assert_eq!(e["status"], "in_progress");
    assert!(lin.requests().is_empty(), "nothing was written to Linear");

    // A person closes the issue on GitHub as not planned: a genuine change, which
    // reaches Linear.
    let close = github_fixture_at("issues.reopened.json", at + TimeDelta::seconds(5), |v| {
        v["action"] = json!("closed");
        v["issue"]["state"] = json!("closed");
        v["issue"]["state_reason"] = json!("not_planned");
    });
    assert_eq!(app.github("issues", "gh-close", &close).await.status, 200);
    row_reaches(&app, LINEAR_ID, "done").await;
    let updates: Vec<_> = lin
        .requests()
        .into_iter()
        .filter(|r| {
            r.body["query"]
                .as_str()
                .unwrap_or("")
                .contains("issueUpdate")
        })
        .collect();
    assert_eq!(updates.len(), 1);
    assert_eq!(
        updates[0].body["variables"],
        json!({"id": LINEAR_ID, "stateId": "st-cancel"})
    );
    assert_eq!(updates[0].headers["authorization"], LINEAR_KEY);
    assert_eq!(lin.object(LINEAR_ID).unwrap().0, "st-cancel");
    let e = app
        .api("GET", &format!("/api/v1/entities/{id}"), None)
        .await
        .body;
    assert_eq!(e["status"], "cancelled");
}

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
    wait_for(
        "every change is delivered",
        Duration::from_secs(45),
        || async {
            let n = app
                .count("SELECT count(*) FROM sync_outbox WHERE state = 'done'")
                .await;
            (n == CHANGES as i64).then_some(())
        },
    )
    .await;
    let mut arrivals: Vec<_> = gh.requests().iter().map(|r| r.at).collect();
    assert_eq!(
        arrivals.len(),
        CHANGES,
        "one PATCH per change, none repeated"
    );
    arrivals.sort();
    for i in 0..arrivals.len().saturating_sub(LIMIT) {
        let span = arrivals[i + LIMIT] - arrivals[i];
        assert!(
            span >= Duration::from_secs(1),
            "{} requests arrived within {span:?} (from request {i})",
            LIMIT + 1
        );
    }
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
        linear[1].at - linear[0].at >= Duration::from_millis(1300),
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

/// A free loopback port for a child process (bound, read, released).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The real `statsync serve` binary on `database_url`, killed with SIGKILL on drop.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn_binary(database_url: &str, port: u16, env: &[(&'static str, String)]) -> Child {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_statsync"));
    cmd.arg("serve")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", database_url)
        .env("STATSYNC_API_TOKENS", API_TOKEN)
        .env("STATSYNC__HTTP__PORT", port.to_string())
        .env("STATSYNC__HTTP__WORKERS", "1")
        .env("STATSYNC__LOG__LEVEL", "error")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    Child(cmd.spawn().expect("start the statsync binary"))
}

#[actix_web::test]
async fn a_server_killed_during_dispatch_delivers_every_pending_row_after_restart() {
    let (gh, lin) = (fakes::github().await, fakes::linear().await);
    // Slow answers, so the kill lands while calls are in flight.
    gh.set_latency(Duration::from_millis(300));
    let env = outbound_env(
        &gh,
        &lin,
        &[
            ("STATSYNC__DISPATCH__LEASE_MS", "1500".into()),
            ("STATSYNC__DISPATCH__REQUEST_TIMEOUT_MS", "1000".into()),
            ("STATSYNC__GITHUB__REQUESTS_PER_SECOND", "20".into()),
        ],
    );
    let url = cluster::fresh_database().await;
    let port = free_port();
    let mut child = spawn_binary(&url, port, &env);
    let address = format!("http://127.0.0.1:{port}");
    wait_for(
        "the binary answers /health",
        Duration::from_secs(20),
        || async {
            let r = reqwest::get(format!("{address}/health")).await;
            r.ok().filter(|r| r.status() == 200).map(|_| ())
        },
    )
    .await;

    // 30 entities in progress, then 15 of them done: 45 changes, each entity's newest
    // status must win in GitHub whatever the kill interrupts.
    let mut ids = Vec::new();
    for n in 1..=30 {
        ids.push(entity_on_github(&address, &format!("acme/crash#{n}"), "in_progress").await);
    }
    for id in ids.iter().take(15) {
        let (code, body) = call(
            &address,
            "POST",
            "/api/v1/status",
            json!({"entityId": id, "status": "done"}),
        )
        .await;
        assert_eq!(code, 200, "{body}");
    }
    wait_for(
        "some calls are under way",
        Duration::from_secs(20),
        || async { (gh.requests().len() >= 5).then_some(()) },
    )
    .await;
    // SIGKILL: no shutdown, no cleanup; leases and rows stay as they are.
    child.0.kill().expect("kill the binary");
    child.0.wait().expect("reap the binary");
    let unfinished: i64 = connect(&url)
        .await
        .query_one(
            "SELECT count(*) FROM sync_outbox WHERE state IN ('pending', 'in_flight')",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(unfinished > 0, "the kill interrupted the dispatch");

    gh.set_latency(Duration::ZERO);
    let pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let app = spawn_app_on(&url, &pairs).await;
    wait_for(
        "every pending row is delivered",
        Duration::from_secs(30),
        || async {
            let n = app
                .count("SELECT count(*) FROM sync_outbox WHERE state NOT IN ('done', 'superseded')")
                .await;
            (n == 0).then_some(())
        },
    )
    .await;
    // Every entity shows in GitHub what PostgreSQL holds.
    let db = app.db().await;
    for row in db
        .query(
            "SELECT e.status, l.external_id FROM entities e JOIN entity_links l ON l.entity_id = e.id",
            &[],
        )
        .await
        .unwrap()
    {
        let (status, issue): (String, String) = (row.get(0), row.get(1));
        let expected = if status == "done" { "closed" } else { "open" };
        let (state, _) = gh.object(&issue).unwrap_or_else(|| panic!("{issue} never written"));
        assert_eq!(state, expected, "{issue} is {state} in GitHub but {status} in PostgreSQL");
    }
}
