//! Shared test harness: one ephemeral PostgreSQL cluster per test binary, a fresh
//! database per test, the real application on a random port.

#![allow(dead_code)]

pub mod cluster;
pub mod raw;
pub mod ws;

use std::time::{Duration, Instant};

use serde_json::Value;
use statsync::config::{Env, Settings};
use statsync::startup::Application;
use statsync::systems::signature;

pub const GITHUB_SECRET: &str = "test-github-secret";
pub const LINEAR_SECRET: &str = "test-linear-secret";
pub const AGENT_SECRET: &str = "test-agent-secret";
pub const API_TOKEN: &str = "test-api-token";

pub fn fixture(path: &str) -> Vec<u8> {
    let full = format!("{}/../shared/fixtures/{path}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&full).unwrap_or_else(|e| panic!("fixture {full}: {e}"))
}

struct MapEnv(Vec<(String, String)>);

impl Env for MapEnv {
    fn var(&self, name: &str) -> Option<String> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    }
}

/// Settings for a test app on `database_url`, with every webhook secret set.
pub fn test_settings(database_url: &str, extra: &[(&str, &str)]) -> Settings {
    let mut vars: Vec<(String, String)> = vec![
        ("DATABASE_URL".into(), database_url.into()),
        ("GITHUB_WEBHOOK_SECRET".into(), GITHUB_SECRET.into()),
        ("LINEAR_WEBHOOK_SECRET".into(), LINEAR_SECRET.into()),
        ("AGENTAPI_WEBHOOK_SECRET".into(), AGENT_SECRET.into()),
        ("STATSYNC_API_TOKENS".into(), API_TOKEN.into()),
        ("STATSYNC__HTTP__PORT".into(), "0".into()),
        ("STATSYNC__HTTP__WORKERS".into(), "2".into()),
        ("STATSYNC__DATABASE__POOL_SIZE".into(), "8".into()),
        ("STATSYNC__LOG__LEVEL".into(), "warn".into()),
        // Outbound calls never leave the machine: nothing listens on port 9 (discard).
        (
            "STATSYNC__GITHUB__API_URL".into(),
            "http://127.0.0.1:9".into(),
        ),
        (
            "STATSYNC__GITHUB__GRAPHQL_URL".into(),
            "http://127.0.0.1:9/graphql".into(),
        ),
        (
            "STATSYNC__LINEAR__API_URL".into(),
            "http://127.0.0.1:9/graphql".into(),
        ),
    ];
    for (k, v) in extra {
        vars.retain(|(key, _)| key != k);
        if !v.is_empty() {
            vars.push((k.to_string(), v.to_string()));
        }
    }
    let env = MapEnv(vars.clone());
    Settings::load_from(None, &vars, &env).expect("test settings")
}

pub struct TestApp {
    pub address: String,
    pub database_url: String,
    pub http: reqwest::Client,
    pub handle: actix_web::dev::ServerHandle,
    pub settings: Settings,
}

/// The application on a fresh database.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(&[]).await
}

/// `extra` overrides environment values (`STATSYNC__…` or secrets; "" removes one).
pub async fn spawn_app_with(extra: &[(&str, &str)]) -> TestApp {
    let url = cluster::fresh_database().await;
    spawn_app_on(&url, extra).await
}

/// The application on an existing database (restarts).
pub async fn spawn_app_on(database_url: &str, extra: &[(&str, &str)]) -> TestApp {
    statsync::telemetry::init(&statsync::config::LogSettings {
        format: statsync::config::LogFormat::Pretty,
        level: "warn".into(),
    });
    let settings = test_settings(database_url, extra);
    let app = Application::build(settings.clone())
        .await
        .expect("app builds");
    let address = format!("http://127.0.0.1:{}", app.port());
    let handle = app.handle();
    actix_web::rt::spawn(app.run_until_stopped());
    TestApp {
        address,
        database_url: database_url.to_owned(),
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .expect("http client"),
        handle,
        settings,
    }
}

pub struct Answer {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl TestApp {
    pub async fn stop(&self) {
        self.handle.stop(true).await;
    }

    pub async fn get(&self, path: &str) -> Answer {
        let r = self
            .http
            .get(format!("{}{path}", self.address))
            .send()
            .await
            .expect("request");
        answer(r).await
    }

    pub async fn post_raw(&self, path: &str, headers: &[(&str, String)], body: Vec<u8>) -> Answer {
        let mut req = self
            .http
            .post(format!("{}{path}", self.address))
            .header("content-type", "application/json")
            .body(body);
        for (k, v) in headers {
            req = req.header(*k, v);
        }
        answer(req.send().await.expect("request")).await
    }

    /// A GitHub delivery signed with the test secret.
    pub async fn github(&self, event: &str, delivery: &str, body: &[u8]) -> Answer {
        let sig = signature::sign_prefixed(GITHUB_SECRET.as_bytes(), body);
        self.post_raw(
            "/webhooks/github",
            &[
                ("X-GitHub-Event", event.to_owned()),
                ("X-GitHub-Delivery", delivery.to_owned()),
                ("X-Hub-Signature-256", sig),
            ],
            body.to_vec(),
        )
        .await
    }

    /// A Linear `Issue` delivery signed with the test secret.
    pub async fn linear(&self, delivery: &str, body: &[u8]) -> Answer {
        self.linear_event("Issue", delivery, body).await
    }

    /// A Linear delivery of type `event` signed with the test secret.
    pub async fn linear_event(&self, event: &str, delivery: &str, body: &[u8]) -> Answer {
        let sig = signature::sign_hex(LINEAR_SECRET.as_bytes(), body);
        self.post_raw(
            "/webhooks/linear",
            &[
                ("Linear-Delivery", delivery.to_owned()),
                ("Linear-Event", event.to_owned()),
                ("Linear-Signature", sig),
            ],
            body.to_vec(),
        )
        .await
    }

    /// An agent report signed with the test secret.
    pub async fn agent(&self, delivery: Option<&str>, body: &[u8]) -> Answer {
        let mut headers = vec![(
            "X-Statsync-Signature",
            signature::sign_prefixed(AGENT_SECRET.as_bytes(), body),
        )];
        if let Some(d) = delivery {
            headers.push(("X-Statsync-Delivery", d.to_owned()));
        }
        self.post_raw("/webhooks/agentapi", &headers, body.to_vec())
            .await
    }

    /// `POST /api/v1/links`, expecting a new entity (201); answers it.
    pub async fn link_new(&self, body: Value) -> Value {
        let r = self.api("POST", "/api/v1/links", Some(body)).await;
        assert_eq!(r.status, 201, "{}", r.body);
        r.body
    }

    /// An authenticated API call.
    pub async fn api(&self, method: &str, path: &str, body: Option<Value>) -> Answer {
        let url = format!("{}{path}", self.address);
        let mut req = match method {
            "GET" => self.http.get(url),
            "POST" => self.http.post(url),
            other => panic!("method {other}"),
        }
        .bearer_auth(API_TOKEN);
        if let Some(b) = body {
            req = req.json(&b);
        }
        answer(req.send().await.expect("request")).await
    }

    /// `POST /api/v1/status`, expecting 200.
    pub async fn set_status(&self, body: Value) -> Value {
        let r = self.api("POST", "/api/v1/status", Some(body)).await;
        assert_eq!(r.status, 200, "{}", r.body);
        r.body
    }

    /// Waits until every stored delivery is processed.
    pub async fn drained(&self) {
        wait_drained(&self.db().await, Duration::from_secs(30)).await;
    }

    pub async fn db(&self) -> tokio_postgres::Client {
        connect(&self.database_url).await
    }

    pub async fn count(&self, sql: &str) -> i64 {
        self.db().await.query_one(sql, &[]).await.expect(sql).get(0)
    }
}

pub async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connect to test database");
    actix_web::rt::spawn(async move {
        let _ = connection.await;
    });
    client
}

async fn answer(r: reqwest::Response) -> Answer {
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let bytes = r.bytes().await.expect("body");
    let body = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    Answer {
        status,
        headers,
        body,
    }
}

/// Waits for `check` to hold, failing the test with `what` after `timeout`.
pub async fn eventually<F, Fut>(what: &str, timeout: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if check().await {
            return;
        }
        if Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for: {what}");
        }
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A Linear `Issue` update delivery moving `id` to a state.
pub fn linear_issue_update(
    id: &str,
    identifier: &str,
    state_name: &str,
    state_type: &str,
    updated_at: chrono::DateTime<chrono::Utc>,
) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "action": "update",
        "type": "Issue",
        "createdAt": updated_at,
        "organizationId": "org-1",
        "webhookId": "hook-1",
        "webhookTimestamp": chrono::Utc::now().timestamp_millis(),
        "url": format!("https://linear.app/acme/issue/{identifier}"),
        "actor": {"id": "user-1", "name": "Ada", "type": "user"},
        "data": {
            "id": id,
            "identifier": identifier,
            "title": "Fix login",
            "stateId": format!("state-{state_type}"),
            "state": {"id": format!("state-{state_type}"), "name": state_name, "type": state_type, "color": "#f2c94c"},
            "team": {"id": "team-1", "key": identifier.split('-').next().unwrap_or("ENG"), "name": "Engineering"},
            "teamId": "team-1",
            "updatedAt": updated_at
        },
        "updatedFrom": {"stateId": "state-previous", "updatedAt": updated_at - chrono::TimeDelta::seconds(60)}
    }))
    .unwrap()
}

/// A GitHub fixture with its object's `updated_at` (and `closed_at`) moved to `at`.
pub fn github_fixture_at(
    file: &str,
    at: chrono::DateTime<chrono::Utc>,
    edit: impl FnOnce(&mut Value),
) -> Vec<u8> {
    let mut v: Value = serde_json::from_slice(&fixture(&format!("github/{file}"))).unwrap();
    for key in ["issue", "pull_request"] {
        if let Some(o) = v.get_mut(key) {
            o["updated_at"] =
                serde_json::json!(at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
        }
    }
    edit(&mut v);
    serde_json::to_vec(&v).unwrap()
}

/// Polls `probe` until it yields a value, failing the test with `what` after `timeout`.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        if Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for: {what}");
        }
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until `count` (a `SELECT count(*) …`) answers `want` on `db`.
pub async fn wait_count(
    db: &tokio_postgres::Client,
    what: &str,
    timeout: Duration,
    count: &str,
    want: i64,
) {
    wait_for(what, timeout, || async {
        let n: i64 = db.query_one(count, &[]).await.expect(count).get(0);
        (n == want).then_some(())
    })
    .await;
}

/// Waits until no stored delivery is pending on `db`.
pub async fn wait_drained(db: &tokio_postgres::Client, timeout: Duration) {
    wait_count(
        db,
        "every stored delivery is processed",
        timeout,
        "SELECT count(*) FROM inbound_events WHERE state = 'pending'",
        0,
    )
    .await;
}
