//! Minimal fakes of GitHub's REST API (issue PATCH) and Linear's GraphQL API
//! (`workflowStates`, `issue`, `issueUpdate`) on 127.0.0.1:0, for load runs: a fixed
//! answer latency and a requests-per-second budget, answered with each API's real
//! rate-limit headers, and its real refusal when the budget is spent (GitHub: 403 with
//! `x-ratelimit-remaining: 0`; Linear: 400 `RATELIMITED`). Ported from the test fakes
//! in `tests/outbound/fakes.rs`, without their recording and scripting.

use std::net::TcpListener;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{web, App, HttpResponse, HttpServer};
use serde_json::{json, Value};

pub struct Limits {
    pub latency: Duration,
    pub rps: u64,
}

#[derive(Default)]
pub struct Stats {
    pub calls: AtomicU64,
    pub limited: AtomicU64,
    pub writes: AtomicU64,
    /// (epoch second, calls admitted in it)
    window: Mutex<(i64, u64)>,
}

impl Stats {
    pub fn report(&self) -> Value {
        json!({
            "calls": self.calls.load(Ordering::Relaxed),
            "limited": self.limited.load(Ordering::Relaxed),
            "writes": self.writes.load(Ordering::Relaxed),
        })
    }
}

struct Api {
    limits: Limits,
    stats: Arc<Stats>,
}

/// What the budget says about one call.
struct Budget {
    limit: u64,
    remaining: u64,
    /// Epoch milliseconds at which the window resets.
    reset_ms: i64,
    admitted: bool,
}

impl Api {
    fn take(&self) -> Budget {
        self.stats.calls.fetch_add(1, Ordering::Relaxed);
        let now = chrono::Utc::now().timestamp_millis();
        let second = now.div_euclid(1000);
        // unwrap: the lock is never held across a panic
        let mut w = self.stats.window.lock().unwrap();
        if w.0 != second {
            *w = (second, 0);
        }
        let admitted = w.1 < self.limits.rps;
        if admitted {
            w.1 += 1;
        } else {
            self.stats.limited.fetch_add(1, Ordering::Relaxed);
        }
        Budget {
            limit: self.limits.rps,
            remaining: self.limits.rps - w.1,
            reset_ms: (second + 1) * 1000,
            admitted,
        }
    }
}

pub struct FakeApi {
    pub url: String,
    pub stats: Arc<Stats>,
}

fn start(limits: Limits, routes: fn(&mut web::ServiceConfig)) -> anyhow::Result<FakeApi> {
    let stats = Arc::new(Stats::default());
    let api = web::Data::new(Api {
        limits,
        stats: stats.clone(),
    });
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    let server = HttpServer::new(move || App::new().app_data(api.clone()).configure(routes))
        .workers(1)
        .listen(listener)?
        .run();
    actix_web::rt::spawn(server);
    Ok(FakeApi {
        url: format!("http://127.0.0.1:{port}"),
        stats,
    })
}

// ------------------------------------------------------------------------ GitHub

pub fn github(limits: Limits) -> anyhow::Result<FakeApi> {
    start(limits, |cfg| {
        cfg.route(
            "/repos/{owner}/{repo}/issues/{number}",
            web::patch().to(github_patch),
        );
    })
}

async fn github_patch(
    path: web::Path<(String, String, u64)>,
    body: web::Json<Value>,
    api: web::Data<Api>,
) -> HttpResponse {
    let budget = api.take();
    actix_web::rt::time::sleep(api.limits.latency).await;
    let reset = (budget.reset_ms / 1000).to_string();
    let mut r = if budget.admitted {
        api.stats.writes.fetch_add(1, Ordering::Relaxed);
        HttpResponse::Ok()
    } else {
        HttpResponse::Forbidden()
    };
    r.insert_header(("x-ratelimit-limit", budget.limit.to_string()))
        .insert_header(("x-ratelimit-remaining", budget.remaining.to_string()))
        .insert_header((
            "x-ratelimit-used",
            (budget.limit - budget.remaining).to_string(),
        ))
        .insert_header(("x-ratelimit-reset", reset))
        .insert_header(("x-ratelimit-resource", "core"));
    if !budget.admitted {
        return r.json(json!({
            "message": "API rate limit exceeded for user ID 1.",
            "documentation_url": "https://docs.github.com/rest/overview/resources-in-the-rest-api#rate-limiting",
        }));
    }
    let (owner, repo, number) = path.into_inner();
    r.json(json!({
        "number": number,
        "state": body["state"].as_str().unwrap_or("open"),
        "state_reason": body["state_reason"],
        "html_url": format!("https://github.com/{owner}/{repo}/issues/{number}"),
    }))
}

// ------------------------------------------------------------------------ Linear

pub fn linear(limits: Limits) -> anyhow::Result<FakeApi> {
    start(limits, |cfg| {
        cfg.route("/graphql", web::post().to(linear_graphql));
    })
}

async fn linear_graphql(body: web::Json<Value>, api: web::Data<Api>) -> HttpResponse {
    let budget = api.take();
    actix_web::rt::time::sleep(api.limits.latency).await;
    let mut r = if budget.admitted {
        HttpResponse::Ok()
    } else {
        HttpResponse::BadRequest()
    };
    r.insert_header(("x-ratelimit-requests-limit", budget.limit.to_string()))
        .insert_header((
            "x-ratelimit-requests-remaining",
            budget.remaining.to_string(),
        ))
        .insert_header(("x-ratelimit-requests-reset", budget.reset_ms.to_string()));
    if !budget.admitted {
        return r.json(json!({"errors": [{
            "message": "Rate limit exceeded",
            "extensions": {"code": "RATELIMITED"},
        }]}));
    }
    let query = body["query"].as_str().unwrap_or("");
    let vars = &body["variables"];
    let id = vars["id"].clone();
    let data = if query.contains("workflowStates") {
        json!({"workflowStates": {"nodes": [
            {"id": "st-backlog", "name": "Backlog", "type": "backlog", "position": 0.0},
            {"id": "st-todo", "name": "Todo", "type": "unstarted", "position": 1.0},
            {"id": "st-doing", "name": "In Progress", "type": "started", "position": 2.0},
            {"id": "st-review", "name": "In Review", "type": "started", "position": 3.0},
            {"id": "st-blocked", "name": "Blocked", "type": "started", "position": 4.0},
            {"id": "st-done", "name": "Done", "type": "completed", "position": 5.0},
            {"id": "st-cancel", "name": "Canceled", "type": "canceled", "position": 6.0},
        ]}})
    } else if query.contains("issueUpdate") {
        api.stats.writes.fetch_add(1, Ordering::Relaxed);
        json!({"issueUpdate": {"success": true, "issue": {"id": id, "state": {"id": vars["stateId"]}}}})
    } else if query.contains("issue(") {
        json!({"issue": {"id": id, "team": {"key": "ENG"}}})
    } else {
        return HttpResponse::BadRequest().json(json!({"errors": [{
            "message": "Unknown operation",
            "extensions": {"code": "GRAPHQL_VALIDATION_FAILED"},
        }]}));
    };
    r.json(json!({ "data": data }))
}
