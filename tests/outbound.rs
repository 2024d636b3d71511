//! Outbound sync end to end: the outbox dispatcher and the GitHub and Linear connectors
//! against local fakes that speak the real wire formats, on real PostgreSQL.

#[path = "outbound/a2a.rs"]
mod a2a;
#[path = "outbound/app.rs"]
mod app;
#[path = "outbound/doctor.rs"]
mod doctor;
#[path = "outbound/echoes.rs"]
mod echoes;
#[path = "outbound/failures.rs"]
mod failures;
#[path = "outbound/fake_admin.rs"]
mod fake_admin;
#[path = "outbound/fakes.rs"]
mod fakes;
#[path = "outbound/item_lookup.rs"]
mod item_lookup;
#[path = "outbound/lookup.rs"]
mod lookup;
#[path = "outbound/ordering.rs"]
mod ordering;
#[path = "outbound/outage.rs"]
mod outage;
#[path = "outbound/restart.rs"]
mod restart;
#[path = "outbound/suggest.rs"]
mod suggest;
mod support;
#[path = "outbound/sync.rs"]
mod sync;
#[path = "outbound/timing.rs"]
mod timing;

use std::process::{Command, Stdio};
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

/// Runs the statsync binary with exactly `env` (and PATH); its exit code and output.
async fn statsync(args: &[&str], env: &[(&str, String)]) -> (Option<i32>, String, String) {
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    actix_web::rt::task::spawn_blocking(move || {
        let output = Command::new(env!("CARGO_BIN_EXE_statsync"))
            .args(&args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            // An empty value stands for an unset variable.
            .envs(env.into_iter().filter(|(_, v)| !v.is_empty()))
            .stdin(Stdio::null())
            .output()
            .expect("run the statsync binary");
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    })
    .await
    .unwrap()
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

/// Waits for the count `sql` answers to become `n`.
async fn count_becomes(app: &TestApp, what: &str, sql: &str, n: i64, within: Duration) {
    wait_for(what, within, || async {
        (app.count(sql).await == n).then_some(())
    })
    .await;
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

/// A new entity linked to `LINEAR_ID` and `GITHUB_ISSUE`; answers its id.
async fn link_linear_and_github(app: &TestApp) -> String {
    let refs = json!({"refs": [
        {"system": "linear", "externalId": LINEAR_ID},
        {"system": "github", "externalId": GITHUB_ISSUE}
    ]});
    let r = app.api("POST", "/api/v1/links", Some(refs)).await;
    assert_eq!(r.status, 201, "{}", r.body);
    r.body["id"].as_str().unwrap().to_owned()
}

async fn history(app: &TestApp, id: &str) -> Vec<Value> {
    let r = app
        .api("GET", &format!("/api/v1/entities/{id}/history"), None)
        .await;
    r.body["transitions"].as_array().unwrap().clone()
}

/// Fails unless every `limit + 1` consecutive arrivals span at least one second: at most
/// `limit` calls started in any one-second window.
fn assert_within_limit(mut arrivals: Vec<std::time::Instant>, limit: usize) {
    arrivals.sort();
    for i in 0..arrivals.len().saturating_sub(limit) {
        let span = arrivals[i + limit] - arrivals[i];
        assert!(
            span >= Duration::from_secs(1),
            "{} requests arrived within {span:?} (from request {i})",
            limit + 1
        );
    }
}
