//! Stateful stand-ins for GitHub (REST under `/gh`, GraphQL at `/gh/graphql`) and
//! Linear (GraphQL at `/linear/graphql`) answering the calls statsync makes, with the
//! real wire formats: the object's updated-at in every write's answer, rate-limit
//! headers, GitHub's 403/429 limits and Linear's `RATELIMITED`. A write that changes an
//! object emits the webhook the real system would send, as the token's own user.

use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use serde_json::{json, Value};

use super::world::{
    iso_ms, iso_s, linear_state, option_id, Actor, Call, Fault, Sys, World, BOT_LOGIN, LINEAR_SELF,
    LINEAR_STATES, OPTIONS, PROJECT, REPO, STATUS_FIELD, TEAM,
};

pub type Shared = Arc<Mutex<World>>;

/// Starts both stand-ins on one port; answers their base URL.
pub async fn serve(world: Shared) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind the stand-ins");
    let port = listener.local_addr().expect("local address").port();
    let data = web::Data::from(world);
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .app_data(web::PayloadConfig::new(1 << 20))
            .route("/gh/user", web::get().to(github_user))
            .route(
                "/gh/repos/{owner}/{repo}/issues/{number}",
                web::patch().to(github_patch),
            )
            .route("/gh/graphql", web::post().to(github_graphql))
            .route("/linear/graphql", web::post().to(linear_graphql))
    })
    .workers(1)
    .listen(listener)
    .expect("listen")
    .run();
    actix_web::rt::spawn(server);
    format!("http://127.0.0.1:{port}")
}

fn now_s() -> i64 {
    chrono::Utc::now().timestamp()
}

fn lock(world: &Mutex<World>) -> std::sync::MutexGuard<'_, World> {
    world.lock().unwrap_or_else(|p| p.into_inner())
}

fn call(w: &mut World, sys: Sys, what: String, fault: Option<Fault>) {
    let fault = fault.map(|f| format!("{f:?}"));
    w.log(format!(
        "CALL {} {what}{}",
        sys.name(),
        fault
            .as_deref()
            .map(|f| format!(" → fault {f}"))
            .unwrap_or_default()
    ));
    let incarnation = w.incarnation;
    w.calls.push(Call {
        incarnation,
        write: None,
    });
}

fn wrote(w: &mut World, object: String, changed: bool) {
    if let Some(last) = w.calls.last_mut() {
        last.write = Some((object, changed));
    }
}

fn github_ok(body: Value) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header(("x-ratelimit-limit", "5000"))
        .insert_header(("x-ratelimit-remaining", "4000"))
        .insert_header(("x-ratelimit-reset", (now_s() + 3600).to_string()))
        .insert_header(("x-ratelimit-resource", "core"))
        .json(body)
}

fn github_fault(fault: Fault, graphql: bool) -> HttpResponse {
    let docs = "https://docs.github.com/rest";
    match fault {
        Fault::ServerError => HttpResponse::BadGateway().json(json!({"message": "Server Error"})),
        Fault::TooMany => HttpResponse::TooManyRequests()
            .insert_header(("retry-after", "1"))
            .json(json!({"message": "You have exceeded a secondary rate limit.", "documentation_url": docs})),
        Fault::Exhausted if graphql => HttpResponse::Ok()
            .insert_header(("x-ratelimit-limit", "5000"))
            .insert_header(("x-ratelimit-remaining", "0"))
            .insert_header(("x-ratelimit-reset", (now_s() + 1).to_string()))
            .json(json!({"errors": [{"type": "RATE_LIMITED", "message": "API rate limit exceeded for user."}]})),
        Fault::Exhausted => HttpResponse::Forbidden()
            .insert_header(("x-ratelimit-limit", "5000"))
            .insert_header(("x-ratelimit-remaining", "0"))
            .insert_header(("x-ratelimit-reset", (now_s() + 1).to_string()))
            .json(json!({"message": "API rate limit exceeded for user ID 1.", "documentation_url": docs})),
        Fault::Secondary => HttpResponse::Forbidden()
            .insert_header(("retry-after", "1"))
            .json(json!({"message": "You have exceeded a secondary rate limit. Please wait a few minutes before you try again.", "documentation_url": docs})),
    }
}

async fn github_user(world: web::Data<Mutex<World>>) -> HttpResponse {
    let mut w = lock(&world);
    call(&mut w, Sys::Github, "GET /user".into(), None);
    github_ok(json!({"login": BOT_LOGIN, "id": 90_001, "type": "User"}))
}

async fn github_patch(
    path: web::Path<(String, String, u64)>,
    body: web::Bytes,
    world: web::Data<Mutex<World>>,
) -> HttpResponse {
    let (owner, repo, number) = path.into_inner();
    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let mut w = lock(&world);
    let fault = w.fault(Sys::Github);
    let what = format!("PATCH /repos/{owner}/{repo}/issues/{number} {v}");
    call(&mut w, Sys::Github, what, fault);
    if let Some(f) = fault {
        return github_fault(f, false);
    }
    if format!("{owner}/{repo}") != REPO {
        return HttpResponse::NotFound().json(json!({"message": "Not Found"}));
    }
    if w.pulls.contains_key(&number) {
        w.violations.push(format!(
            "statsync wrote pull request {REPO}#{number}: {v} (a pull request's state is git's)"
        ));
        return HttpResponse::UnprocessableEntity().json(json!({"message": "Validation Failed"}));
    }
    let Some(before) = w.issues.get(&number).cloned() else {
        return HttpResponse::NotFound().json(json!({"message": "Not Found"}));
    };
    let open = match v["state"].as_str() {
        Some("open") => true,
        Some("closed") => false,
        _ => before.open,
    };
    let reason = v["state_reason"].as_str();
    let changed = w.set_issue(number, open, reason, Actor::Statsync).is_some();
    let after = w.issues.get(&number).cloned().unwrap_or(before.clone());
    let changed = changed || after.reason != before.reason;
    wrote(&mut w, format!("github:{REPO}#{number}"), changed);
    github_ok(json!({
        "number": number,
        "node_id": format!("I_sim_{number}"),
        "html_url": format!("https://github.com/{REPO}/issues/{number}"),
        "state": if after.open { "open" } else { "closed" },
        "state_reason": after.reason,
        "updated_at": iso_s(after.updated_s),
    }))
}

async fn github_graphql(body: web::Bytes, world: web::Data<Mutex<World>>) -> HttpResponse {
    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let query = v["query"].as_str().unwrap_or("").to_owned();
    let vars = v["variables"].clone();
    let item = vars["item"].as_str().unwrap_or("").to_owned();
    let mut w = lock(&world);
    let fault = w.fault(Sys::Github);
    let op = if query.contains("updateProjectV2ItemFieldValue") {
        "updateProjectV2ItemFieldValue"
    } else if query.contains("fieldValueByName") {
        "item status"
    } else if query.contains("field(name:") {
        "item fields"
    } else {
        "unknown document"
    };
    call(&mut w, Sys::Github, format!("GraphQL {op} {vars}"), fault);
    if let Some(f) = fault {
        return github_fault(f, true);
    }
    let options: Vec<Value> = OPTIONS
        .iter()
        .map(|o| json!({"id": option_id(o), "name": o}))
        .collect();
    let data = match op {
        "updateProjectV2ItemFieldValue" => {
            let wanted = vars["option"].as_str().unwrap_or("");
            let option = OPTIONS.iter().find(|o| option_id(o) == wanted);
            let valid = vars["project"] == PROJECT && vars["field"] == STATUS_FIELD;
            let (Some(option), true, true) = (option, valid, w.items.contains_key(&item)) else {
                return github_ok(json!({"data": null, "errors": [{"type": "NOT_FOUND",
                    "message": format!("Could not resolve to a node with the global id of '{item}'")}]}));
            };
            let changed = w.set_item(&item, option, Actor::Statsync).is_some();
            wrote(&mut w, format!("github:{item}"), changed);
            let updated = w.items.get(&item).map(|i| i.updated_s).unwrap_or(0);
            json!({"updateProjectV2ItemFieldValue": {"projectV2Item": {"id": item, "updatedAt": iso_s(updated)}}})
        }
        "item status" => {
            let node = w.items.get(&item).map(|i| {
                let value = i
                    .option
                    .map(|o| json!({"name": o, "optionId": option_id(o)}));
                json!({"id": i.node_id, "fieldValueByName": value})
            });
            json!({"node": node})
        }
        "item fields" => match w.items.contains_key(&item) {
            true => json!({"node": {"id": item, "project": {"id": PROJECT, "field": {
                "id": STATUS_FIELD, "options": options}}}}),
            false => json!({"node": null}),
        },
        _ => {
            return github_ok(
                json!({"errors": [{"type": "INVALID_QUERY", "message": "unexpected document"}]}),
            )
        }
    };
    github_ok(json!({ "data": data }))
}

fn linear_ok(body: Value) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header(("x-ratelimit-requests-limit", "1500"))
        .insert_header(("x-ratelimit-requests-remaining", "1400"))
        .insert_header((
            "x-ratelimit-requests-reset",
            (chrono::Utc::now().timestamp_millis() + 3_600_000).to_string(),
        ))
        .json(body)
}

fn linear_fault(fault: Fault) -> HttpResponse {
    match fault {
        Fault::ServerError => HttpResponse::ServiceUnavailable().json(json!({"errors": [{
            "message": "Service unavailable", "extensions": {"code": "INTERNAL_SERVER_ERROR"}}]})),
        _ => HttpResponse::BadRequest()
            .insert_header(("x-ratelimit-requests-limit", "1500"))
            .insert_header(("x-ratelimit-requests-remaining", "0"))
            .insert_header((
                "x-ratelimit-requests-reset",
                (chrono::Utc::now().timestamp_millis() + 1000).to_string(),
            ))
            .json(json!({"errors": [{"message": "Rate limit exceeded",
                "extensions": {"code": "RATELIMITED", "type": "ratelimited"}}]})),
    }
}

/// Linear takes an issue's identifier (`ENG-123`) wherever it takes its id.
fn issue_id(w: &World, id_or_identifier: &str) -> String {
    w.linear
        .values()
        .find(|i| i.identifier.eq_ignore_ascii_case(id_or_identifier))
        .map(|i| i.id.clone())
        .unwrap_or_else(|| id_or_identifier.to_owned())
}

async fn linear_graphql(
    req: HttpRequest,
    body: web::Bytes,
    world: web::Data<Mutex<World>>,
) -> HttpResponse {
    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let query = v["query"].as_str().unwrap_or("").to_owned();
    let vars = v["variables"].clone();
    let mut w = lock(&world);
    if req.headers().get("authorization").is_none() {
        w.violations
            .push("a Linear call without the API key".to_owned());
    }
    let op = if query.contains("issueUpdate") {
        "issueUpdate"
    } else if query.contains("workflowStates") {
        "workflowStates"
    } else if query.contains("viewer") {
        "viewer"
    } else if query.contains("issue(") {
        "issue team"
    } else {
        "unknown document"
    };
    let fault = match op {
        "viewer" => None,
        _ => w.fault(Sys::Linear),
    };
    call(&mut w, Sys::Linear, format!("GraphQL {op} {vars}"), fault);
    if let Some(f) = fault {
        return linear_fault(f);
    }
    let data = match op {
        "viewer" => json!({"viewer": {"id": LINEAR_SELF, "name": "statsync"}}),
        "workflowStates" => {
            let nodes = match vars["team"].as_str() {
                Some(TEAM) => statsync::demo::world::workflow_state_nodes(),
                _ => Vec::new(),
            };
            json!({"workflowStates": {"nodes": nodes}})
        }
        "issue team" => {
            let id = issue_id(&w, vars["id"].as_str().unwrap_or(""));
            match w.linear.contains_key(&id) {
                true => json!({"issue": {"id": id, "team": {"key": TEAM}}}),
                false => {
                    return linear_ok(
                        json!({"data": null, "errors": [{"message": "Entity not found: Issue",
                        "extensions": {"type": "invalid input", "code": "INPUT_ERROR"}}]}),
                    )
                }
            }
        }
        "issueUpdate" => {
            let id = issue_id(&w, vars["id"].as_str().unwrap_or(""));
            let wanted = vars["stateId"].as_str().unwrap_or("");
            let state = LINEAR_STATES.iter().find(|s| s.0 == wanted).map(|s| s.0);
            let (Some(state), true) = (state, w.linear.contains_key(&id)) else {
                return linear_ok(
                    json!({"data": null, "errors": [{"message": "Entity not found",
                    "extensions": {"type": "invalid input", "code": "INPUT_ERROR"}}]}),
                );
            };
            let changed = w.set_linear(&id, state, Actor::Statsync).is_some();
            wrote(&mut w, format!("linear:{id}"), changed);
            let issue = w.linear.get(&id).cloned().expect("the issue exists");
            let (sid, name, ty, _) = linear_state(issue.state);
            json!({"issueUpdate": {"success": true, "issue": {"id": id,
                "updatedAt": iso_ms(issue.updated_ms),
                "state": {"id": sid, "name": name, "type": ty}}}})
        }
        _ => {
            return HttpResponse::BadRequest()
                .json(json!({"errors": [{"message": "Unknown operation",
                "extensions": {"code": "GRAPHQL_VALIDATION_FAILED"}}]}))
        }
    };
    linear_ok(json!({ "data": data }))
}
