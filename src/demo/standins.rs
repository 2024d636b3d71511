//! Stand-ins for GitHub (REST under `/gh`) and Linear (GraphQL at `/linear/graphql`)
//! answering the calls statsync makes, in the real wire formats: the object's
//! updated-at in every write's answer, the rate-limit headers, GitHub's `Not Found` and
//! Linear's `INPUT_ERROR`. A write that changes an object owes statsync the webhook the
//! real system would send, as the token's own user.

use std::net::TcpListener;
use std::sync::{Arc, Mutex, MutexGuard};

use actix_web::{web, App, HttpResponse, HttpServer};
use serde_json::{json, Value};
use tokio::sync::Notify;

use super::world::{
    iso_ms, iso_s, linear_state, workflow_state_nodes, World, BOT_LOGIN, LINEAR_SELF,
    LINEAR_STATES, REPO, TEAM,
};

/// The world and the bell the courier waits on.
pub struct Shared {
    world: Mutex<World>,
    pub mail: Notify,
}

impl Shared {
    pub fn new(world: World) -> Arc<Shared> {
        Arc::new(Shared {
            world: Mutex::new(world),
            mail: Notify::new(),
        })
    }

    pub fn lock(&self) -> MutexGuard<'_, World> {
        self.world.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs a change and rings the courier.
    pub fn change<T>(&self, f: impl FnOnce(&mut World) -> T) -> T {
        let out = f(&mut self.lock());
        self.mail.notify_one();
        out
    }
}

/// Serves both stand-ins on one loopback port; answers their base URL and the server.
pub fn serve(shared: Arc<Shared>) -> std::io::Result<(String, actix_web::dev::Server)> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    let data = web::Data::from(shared);
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .route("/gh/user", web::get().to(github_user))
            .route(
                "/gh/repos/{owner}/{repo}/issues/{number}",
                web::patch().to(github_patch),
            )
            .route("/gh/graphql", web::post().to(github_graphql))
            .route("/linear/graphql", web::post().to(linear_graphql))
    })
    .workers(1)
    .disable_signals()
    .listen(listener)?
    .run();
    Ok((format!("http://127.0.0.1:{port}"), server))
}

fn github_ok(body: Value) -> HttpResponse {
    let reset = chrono::Utc::now().timestamp() + 3600;
    HttpResponse::Ok()
        .insert_header(("x-ratelimit-limit", "5000"))
        .insert_header(("x-ratelimit-remaining", "4990"))
        .insert_header(("x-ratelimit-reset", reset.to_string()))
        .insert_header(("x-ratelimit-resource", "core"))
        .json(body)
}

fn github_not_found() -> HttpResponse {
    HttpResponse::NotFound().json(json!({"message": "Not Found",
        "documentation_url": "https://docs.github.com/rest/issues/issues#update-an-issue"}))
}

async fn github_user() -> HttpResponse {
    github_ok(json!({"login": BOT_LOGIN, "id": 90_001, "type": "User"}))
}

async fn github_patch(
    path: web::Path<(String, String, u64)>,
    body: web::Bytes,
    shared: web::Data<Shared>,
) -> HttpResponse {
    let (owner, repo, number) = path.into_inner();
    let Ok(v) = serde_json::from_slice::<Value>(&body) else {
        return HttpResponse::BadRequest().json(json!({"message": "Problems parsing JSON"}));
    };
    if format!("{owner}/{repo}") != REPO {
        return github_not_found();
    }
    let answer = shared.change(|w| {
        if w.pulls.contains_key(&number) {
            return Err(Refused::PullRequest);
        }
        let before = w.issues.get(&number).cloned().ok_or(Refused::NotFound)?;
        let open = match v["state"].as_str() {
            Some("open") => true,
            Some("closed") => false,
            _ => before.open,
        };
        w.set_issue(number, open, v["state_reason"].as_str(), None);
        Ok(w.issues.get(&number).cloned().unwrap_or(before))
    });
    match answer {
        Ok(issue) => github_ok(json!({
            "number": number,
            "node_id": format!("I_demo_{number}"),
            "title": issue.title,
            "html_url": format!("https://github.com/{REPO}/issues/{number}"),
            "state": if issue.open { "open" } else { "closed" },
            "state_reason": issue.reason,
            "updated_at": iso_s(issue.updated_s),
        })),
        // A pull request's state is git's: GitHub refuses to reopen a merged one.
        Err(Refused::PullRequest) => HttpResponse::UnprocessableEntity().json(json!({
            "message": "Validation Failed",
            "errors": [{"resource": "Issue", "code": "invalid", "field": "state"}]})),
        Err(Refused::NotFound) => github_not_found(),
    }
}

enum Refused {
    PullRequest,
    NotFound,
}

/// The demo has no Projects v2 board: every node is unknown, as GitHub answers one.
async fn github_graphql(body: web::Bytes) -> HttpResponse {
    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let item = v["variables"]["item"].as_str().unwrap_or("").to_owned();
    github_ok(json!({"data": null, "errors": [{"type": "NOT_FOUND",
        "message": format!("Could not resolve to a node with the global id of '{item}'")}]}))
}

fn linear_ok(body: Value) -> HttpResponse {
    let reset = chrono::Utc::now().timestamp_millis() + 3_600_000;
    HttpResponse::Ok()
        .insert_header(("x-ratelimit-requests-limit", "1500"))
        .insert_header(("x-ratelimit-requests-remaining", "1490"))
        .insert_header(("x-ratelimit-requests-reset", reset.to_string()))
        .json(body)
}

fn linear_input_error(message: &str) -> HttpResponse {
    linear_ok(json!({"data": null, "errors": [{"message": message,
        "extensions": {"type": "invalid input", "code": "INPUT_ERROR"}}]}))
}

async fn linear_graphql(body: web::Bytes, shared: web::Data<Shared>) -> HttpResponse {
    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let query = v["query"].as_str().unwrap_or("");
    let vars = &v["variables"];
    let data = if query.contains("issueUpdate") {
        return linear_issue_update(vars, &shared);
    } else if query.contains("workflowStates") {
        let nodes = match vars["team"].as_str() {
            Some(TEAM) => workflow_state_nodes(),
            _ => Vec::new(),
        };
        json!({"workflowStates": {"nodes": nodes}})
    } else if query.contains("viewer") {
        json!({"viewer": {"id": LINEAR_SELF, "name": "statsync"}})
    } else if query.contains("issue(") {
        match shared.lock().linear_id(vars["id"].as_str().unwrap_or("")) {
            Some(id) => json!({"issue": {"id": id, "team": {"key": TEAM}}}),
            None => return linear_input_error("Entity not found: Issue"),
        }
    } else {
        return HttpResponse::BadRequest().json(json!({"errors": [{
            "message": "Unknown operation", "extensions": {"code": "GRAPHQL_VALIDATION_FAILED"}}]}));
    };
    linear_ok(json!({ "data": data }))
}

fn linear_issue_update(vars: &Value, shared: &Shared) -> HttpResponse {
    let wanted = vars["stateId"].as_str().unwrap_or("");
    let Some((state, ..)) = linear_state(wanted) else {
        return linear_input_error("Entity not found: WorkflowState");
    };
    let updated = shared.change(|w| {
        let id = w.linear_id(vars["id"].as_str().unwrap_or(""))?;
        w.set_linear(&id, state, None);
        w.linear.get(&id).cloned()
    });
    let Some(issue) = updated else {
        return linear_input_error("Entity not found: Issue");
    };
    let (sid, name, ty, _) = linear_state(issue.state).unwrap_or(LINEAR_STATES[1]);
    linear_ok(
        json!({"data": {"issueUpdate": {"success": true, "issue": {"id": issue.id,
        "updatedAt": iso_ms(issue.updated_ms),
        "state": {"id": sid, "name": name, "type": ty}}}}}),
    )
}
