//! The parts of GitHub's REST API and Linear's GraphQL API that `statsync doctor` and
//! `statsync webhooks register` use, on the fakes, as the public docs describe them:
//! `GET /user` (with `X-OAuth-Scopes`, 401 "Bad credentials" for any other token),
//! `GET /repos/{o}/{r}` (`permissions`), repository and organisation hooks (list,
//! create — 422 "Hook already exists" for a second hook to one URL — update, and each
//! hook's deliveries); Linear's `viewer`, `webhooks` (with `failures`), `webhookCreate`
//! and `webhookUpdate`, and each team's workflow states.

use std::collections::HashMap;
use std::sync::Mutex;

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Value};

use super::fakes::{app_jwt_ok, arrive, FakeState};

/// What the admin endpoints know.
#[derive(Default)]
pub struct AdminState {
    /// The one token GitHub accepts here.
    pub token: String,
    pub scopes: String,
    /// `repos/owner/name` or `orgs/org` → its hooks, as GitHub lists them.
    pub hooks: HashMap<String, Vec<Value>>,
    /// Hook id → its deliveries, newest first.
    pub deliveries: HashMap<u64, Vec<Value>>,
    pub next_id: u64,
    /// The App's webhook configuration and its deliveries.
    pub app_hook: Value,
    pub app_deliveries: Vec<Value>,
    /// Linear: the workspace's webhooks (with their `failures`).
    pub linear_hooks: Vec<Value>,
    /// Linear: team key → workflow states, replacing the default ENG workflow.
    pub teams: HashMap<String, Value>,
}

pub fn github_routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/user", web::get().to(user))
        .route("/repos/{owner}/{repo}", web::get().to(repository))
        .route("/repos/{owner}/{repo}/hooks", web::get().to(list_hooks))
        .route("/repos/{owner}/{repo}/hooks", web::post().to(create_hook))
        .route(
            "/repos/{owner}/{repo}/hooks/{id}",
            web::patch().to(update_hook),
        )
        .route(
            "/repos/{owner}/{repo}/hooks/{id}/deliveries",
            web::get().to(deliveries),
        )
        .route("/app/hook/config", web::get().to(app_hook))
        .route("/app/hook/config", web::patch().to(app_hook))
        .route("/app/hook/deliveries", web::get().to(app_hook))
        .route("/orgs/{org}/hooks", web::get().to(list_hooks))
        .route("/orgs/{org}/hooks", web::post().to(create_hook))
        .route("/orgs/{org}/hooks/{id}", web::patch().to(update_hook))
        .route(
            "/orgs/{org}/hooks/{id}/deliveries",
            web::get().to(deliveries),
        );
}

/// `repos/owner/name` or `orgs/org`, from the request's path.
fn owner_key(req: &HttpRequest) -> String {
    let parts: Vec<&str> = req.path().trim_start_matches('/').split('/').collect();
    match parts.first() {
        Some(&"orgs") => format!("orgs/{}", parts[1]),
        _ => format!("repos/{}/{}", parts[1], parts[2]),
    }
}

/// Records the request; GitHub's 401 unless its token is the one accepted.
fn refused(req: &HttpRequest, body: &[u8], state: &Mutex<FakeState>) -> Option<HttpResponse> {
    arrive(state, req, body, "admin");
    let bearer = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    match bearer == state.lock().unwrap().admin.token {
        true => None,
        false => Some(HttpResponse::Unauthorized().json(json!({
            "message": "Bad credentials",
            "documentation_url": "https://docs.github.com/rest",
            "status": "401"
        }))),
    }
}

/// The request's JSON body once its token is accepted, else the answer to give.
fn admitted(
    req: &HttpRequest,
    raw: &[u8],
    state: &Mutex<FakeState>,
) -> Result<Value, Box<HttpResponse>> {
    if let Some(answer) = refused(req, raw, state) {
        return Err(Box::new(answer));
    }
    serde_json::from_slice(raw).map_err(|_| {
        Box::new(
            HttpResponse::BadRequest()
                .json(json!({"message": "Problems parsing JSON", "status": "400"})),
        )
    })
}

async fn user(req: HttpRequest, state: web::Data<Mutex<FakeState>>) -> HttpResponse {
    if let Some(r) = refused(&req, b"", &state) {
        return r;
    }
    let scopes = state.lock().unwrap().admin.scopes.clone();
    HttpResponse::Ok()
        .insert_header(("x-oauth-scopes", scopes))
        .insert_header(("x-ratelimit-remaining", "4999"))
        .json(json!({"login": "statsync-bot", "id": 1, "type": "User"}))
}

async fn repository(req: HttpRequest, state: web::Data<Mutex<FakeState>>) -> HttpResponse {
    if let Some(r) = refused(&req, b"", &state) {
        return r;
    }
    let key = owner_key(&req);
    let name = key.trim_start_matches("repos/");
    HttpResponse::Ok().json(json!({
        "full_name": name,
        "private": true,
        "permissions": {"admin": true, "maintain": true, "push": true, "triage": true, "pull": true}
    }))
}

async fn list_hooks(req: HttpRequest, state: web::Data<Mutex<FakeState>>) -> HttpResponse {
    if let Some(r) = refused(&req, b"", &state) {
        return r;
    }
    let key = owner_key(&req);
    let hooks = state
        .lock()
        .unwrap()
        .admin
        .hooks
        .get(&key)
        .cloned()
        .unwrap_or_default();
    HttpResponse::Ok().json(hooks)
}

/// The App's webhook (`GET`/`PATCH /app/hook/config`, `GET /app/hook/deliveries`),
/// with the App's JWT.
async fn app_hook(
    req: HttpRequest,
    raw: web::Bytes,
    state: web::Data<Mutex<FakeState>>,
) -> HttpResponse {
    arrive(&state, &req, &raw, "admin");
    if !app_jwt_ok(&req, &state) {
        return HttpResponse::Unauthorized()
            .json(json!({"message": "Bad credentials", "status": "401"}));
    }
    let mut s = state.lock().unwrap();
    if req.path().ends_with("/deliveries") {
        return HttpResponse::Ok().json(s.admin.app_deliveries.clone());
    }
    if req.method() == actix_web::http::Method::PATCH {
        let body: Value = serde_json::from_slice(&raw).unwrap_or(Value::Null);
        for k in ["url", "content_type", "insecure_ssl"] {
            if !body[k].is_null() {
                s.admin.app_hook[k] = body[k].clone();
            }
        }
        if body["secret"].is_string() {
            s.admin.app_hook["secret"] = json!("********");
        }
    }
    let mut config = s.admin.app_hook.clone();
    if config.is_null() {
        config = json!({"content_type": "form", "insecure_ssl": "0", "url": ""});
    }
    HttpResponse::Ok().json(config)
}

/// A hook as GitHub answers it.
pub fn hook_json(id: u64, url: &str, events: &[&str], updated_at: &str) -> Value {
    json!({
        "type": "Repository",
        "id": id,
        "name": "web",
        "active": true,
        "events": events,
        "config": {"content_type": "json", "insecure_ssl": "0", "url": url, "secret": "********"},
        "updated_at": updated_at,
        "created_at": updated_at,
        "last_response": {"code": null, "status": "unused", "message": null}
    })
}

/// GitHub's 422 with one error.
fn unprocessable(message: &str) -> HttpResponse {
    HttpResponse::UnprocessableEntity().json(json!({
        "message": "Validation Failed",
        "errors": [{"resource": "Hook", "code": "custom", "message": message}],
        "documentation_url": "https://docs.github.com/rest/repos/webhooks#create-a-repository-webhook",
        "status": "422"
    }))
}

async fn create_hook(
    req: HttpRequest,
    raw: web::Bytes,
    state: web::Data<Mutex<FakeState>>,
) -> HttpResponse {
    let body = match admitted(&req, &raw, &state) {
        Ok(body) => body,
        Err(answer) => return *answer,
    };
    let key = owner_key(&req);
    let url = body["config"]["url"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    if url.is_empty() || body["name"].as_str().is_some_and(|n| n != "web") {
        return unprocessable("Config must contain url");
    }
    let events: Vec<&str> = body["events"]
        .as_array()
        .map(|a| a.iter().filter_map(|e| e.as_str()).collect())
        .unwrap_or_else(|| vec!["push"]);
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let mut s = state.lock().unwrap();
    if s.admin
        .hooks
        .get(&key)
        .is_some_and(|hooks| hooks.iter().any(|h| h["config"]["url"] == json!(url)))
    {
        return unprocessable("Hook already exists on this repository");
    }
    s.admin.next_id += 1;
    let mut hook = hook_json(9_000_000 + s.admin.next_id, &url, &events, &now);
    hook["config"]["content_type"] = body["config"]["content_type"].clone();
    hook["active"] = json!(body["active"].as_bool().unwrap_or(true));
    if !matches!(body["config"]["secret"].as_str(), Some(secret) if !secret.is_empty()) {
        hook["config"].as_object_mut().unwrap().remove("secret");
    }
    s.admin.hooks.entry(key).or_default().push(hook.clone());
    HttpResponse::Created().json(hook)
}

async fn update_hook(
    req: HttpRequest,
    raw: web::Bytes,
    state: web::Data<Mutex<FakeState>>,
) -> HttpResponse {
    let body = match admitted(&req, &raw, &state) {
        Ok(body) => body,
        Err(answer) => return *answer,
    };
    let id: u64 = req
        .match_info()
        .get("id")
        .and_then(|i| i.parse().ok())
        .unwrap_or(0);
    let key = owner_key(&req);
    let mut s = state.lock().unwrap();
    let Some(hook) = s
        .admin
        .hooks
        .get_mut(&key)
        .and_then(|h| h.iter_mut().find(|h| h["id"] == json!(id)))
    else {
        return HttpResponse::NotFound().json(json!({"message": "Not Found", "status": "404"}));
    };
    if let Some(config) = body["config"].as_object() {
        for (k, v) in config {
            hook["config"][k] = if k == "secret" {
                json!("********")
            } else {
                v.clone()
            };
        }
    }
    for k in ["events", "active"] {
        if !body[k].is_null() {
            hook[k] = body[k].clone();
        }
    }
    hook["updated_at"] =
        json!(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
    HttpResponse::Ok().json(hook.clone())
}

async fn deliveries(req: HttpRequest, state: web::Data<Mutex<FakeState>>) -> HttpResponse {
    if let Some(r) = refused(&req, b"", &state) {
        return r;
    }
    let id: u64 = req
        .match_info()
        .get("id")
        .and_then(|i| i.parse().ok())
        .unwrap_or(0);
    let s = state.lock().unwrap();
    let known = s
        .admin
        .hooks
        .values()
        .flatten()
        .any(|h| h["id"] == json!(id));
    if !known {
        return HttpResponse::NotFound().json(json!({"message": "Not Found", "status": "404"}));
    }
    HttpResponse::Ok().json(s.admin.deliveries.get(&id).cloned().unwrap_or_default())
}

/// A delivery as the hook deliveries API lists it.
pub fn delivery_json(id: u64, event: &str, status_code: u16, delivered_at: &str) -> Value {
    json!({
        "id": id,
        "guid": format!("0b989ba4-242f-11e5-81e1-{id:012}"),
        "delivered_at": delivered_at,
        "redelivery": false,
        "duration": 0.27,
        "status": if status_code < 300 { "OK" } else { "Invalid HTTP Response" },
        "status_code": status_code,
        "event": event,
        "action": "opened",
        "installation_id": null,
        "repository_id": 1296269
    })
}

// ------------------------------------------------------------------------ Linear

/// Linear's whole answer to the admin documents (and to a team whose workflow a test
/// set), or None for the others.
pub fn linear(query: &str, vars: &Value, state: &Mutex<FakeState>) -> Option<Value> {
    let mut s = state.lock().unwrap();
    if query.contains("webhookCreate") {
        let input = &vars["input"];
        let team = input["teamId"].as_str().unwrap_or_default().to_uppercase();
        s.admin.next_id += 1;
        let id = format!("wh-{}", s.admin.next_id);
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        s.admin.linear_hooks.push(json!({
            "id": id, "url": input["url"], "enabled": input["enabled"].as_bool().unwrap_or(true),
            "allPublicTeams": input["allPublicTeams"].as_bool().unwrap_or(false),
            "resourceTypes": input["resourceTypes"], "updatedAt": now,
            "team": {"key": team}, "failures": [], "secretSet": input["secret"].is_string()
        }));
        return Some(json!({"data": {"webhookCreate": {"success": true, "webhook": {"id": id}}}}));
    }
    if query.contains("webhookUpdate") {
        let id = vars["id"].clone();
        let Some(hook) = s.admin.linear_hooks.iter_mut().find(|h| h["id"] == id) else {
            return Some(
                json!({"data": null, "errors": [{"message": "Entity not found: Webhook",
                "extensions": {"code": "INPUT_ERROR", "type": "invalid input"}}]}),
            );
        };
        for k in ["url", "enabled", "resourceTypes"] {
            if !vars["input"][k].is_null() {
                hook[k] = vars["input"][k].clone();
            }
        }
        hook["updatedAt"] =
            json!(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
        return Some(json!({"data": {"webhookUpdate": {"success": true, "webhook": {"id": id}}}}));
    }
    if query.contains("webhooks(") {
        return Some(json!({"data": {"webhooks": {"nodes": s.admin.linear_hooks}}}));
    }
    if query.contains("workflowStates") {
        let team = vars["team"].as_str().unwrap_or_default();
        return s
            .admin
            .teams
            .get(team)
            .map(|nodes| json!({"data": {"workflowStates": {"nodes": nodes}}}));
    }
    None
}
