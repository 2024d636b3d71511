//! Local fakes of GitHub's REST API and Linear's GraphQL API on 127.0.0.1:0, speaking
//! their wire formats: status codes, JSON error bodies, GraphQL `errors`, rate-limit
//! headers. Each records every request (with its arrival time) and can be scripted to
//! answer a given object's next requests with failures or delays.

use std::collections::{HashMap, VecDeque};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use serde_json::{json, Value};

#[derive(Debug, Clone)]
pub struct Recorded {
    pub at: Instant,
    pub method: String,
    pub path: String,
    pub headers: HashMap<String, String>,
    pub body: Value,
    pub raw: Vec<u8>,
    /// Answered with a scripted status (a failure, an outage) instead of being handled.
    pub scripted: bool,
}

/// A scripted answer for one request.
#[derive(Debug, Clone)]
pub enum Reply {
    Status {
        status: u16,
        body: Value,
        headers: Vec<(&'static str, String)>,
    },
    /// Answer normally, but only after this long.
    Slow(Duration),
}

impl Reply {
    pub fn status(status: u16, body: Value) -> Reply {
        Reply::Status {
            status,
            body,
            headers: Vec::new(),
        }
    }
    pub fn with_header(self, name: &'static str, value: &str) -> Reply {
        match self {
            Reply::Status {
                status,
                body,
                mut headers,
            } => {
                headers.push((name, value.to_owned()));
                Reply::Status {
                    status,
                    body,
                    headers,
                }
            }
            other => other,
        }
    }
}

#[derive(Default)]
pub struct FakeState {
    pub requests: Vec<Recorded>,
    /// Object key (GitHub `owner/repo#n`, Linear issue id) → answers for its next
    /// requests, in order.
    pub script: HashMap<String, VecDeque<Reply>>,
    /// Answered to every request of an object until removed.
    pub always: HashMap<String, Reply>,
    /// Every request waits this long before it is answered (applied on arrival).
    pub latency: Duration,
    /// While set, the whole API is down: every request gets this answer, before any
    /// script or `always` (which stay untouched for after the outage).
    pub down: Option<Reply>,
    /// GitHub: `owner/repo#n` → (state, state_reason). Linear: issue id → state id.
    pub objects: HashMap<String, (String, Option<String>)>,
    /// Object key → the updated-at each successful write answered, in order: the
    /// source time the real system's webhook about that write would carry.
    pub updated: HashMap<String, Vec<chrono::DateTime<chrono::Utc>>>,
    /// GitHub as a GitHub App's API: the App's public key (PEM) and id. While set,
    /// writes need an installation token this fake issued.
    pub app: Option<(String, String)>,
    /// Installation tokens issued and not revoked, and how many were ever issued.
    pub installation_tokens: Vec<String>,
    pub tokens_issued: usize,
    /// App JWTs this fake verified (and accepted).
    pub jwts_verified: usize,
    /// What the endpoints of `doctor` and `webhooks register` know.
    pub admin: super::fake_admin::AdminState,
}

/// The user id the fake Linear's `viewer` query answers: statsync's identity there.
pub const LINEAR_VIEWER: &str = "5f6a1d9e-0c8e-4a51-9f0b-statsyncview";

#[derive(Clone)]
pub struct Fake {
    pub url: String,
    pub state: Arc<Mutex<FakeState>>,
}

impl Fake {
    pub fn requests(&self) -> Vec<Recorded> {
        self.state.lock().unwrap().requests.clone()
    }
    pub fn requests_for(&self, needle: &str) -> Vec<Recorded> {
        self.requests()
            .into_iter()
            .filter(|r| r.path.contains(needle) || r.body.to_string().contains(needle))
            .collect()
    }
    pub fn script(&self, key: &str, replies: Vec<Reply>) {
        self.state
            .lock()
            .unwrap()
            .script
            .insert(key.to_owned(), replies.into());
    }
    pub fn always(&self, key: &str, reply: Option<Reply>) {
        let mut s = self.state.lock().unwrap();
        match reply {
            Some(r) => s.always.insert(key.to_owned(), r),
            None => s.always.remove(key),
        };
    }
    /// Takes the whole API down (every request answered `reply`) or, with `None`, back up.
    pub fn set_down(&self, reply: Option<Reply>) {
        self.state.lock().unwrap().down = reply;
    }
    pub fn set_latency(&self, d: Duration) {
        self.state.lock().unwrap().latency = d;
    }
    pub fn object(&self, key: &str) -> Option<(String, Option<String>)> {
        self.state.lock().unwrap().objects.get(key).cloned()
    }
    /// Serves as GitHub App `app_id` whose public key is `public_pem`.
    pub fn be_app(&self, public_pem: &str, app_id: &str) {
        self.state.lock().unwrap().app = Some((public_pem.to_owned(), app_id.to_owned()));
    }
    /// Revokes every installation token issued so far.
    pub fn revoke_tokens(&self) {
        self.state.lock().unwrap().installation_tokens.clear();
    }
    /// The updated-at the `n`th successful write to `key` answered.
    pub fn updated_at(&self, key: &str, n: usize) -> chrono::DateTime<chrono::Utc> {
        let s = self.state.lock().unwrap();
        s.updated
            .get(key)
            .and_then(|w| w.get(n))
            .copied()
            .unwrap_or_else(|| panic!("no write {n} to {key}"))
    }
}

/// Stamps a write to `key` as the real APIs do: GitHub in whole seconds, Linear in
/// milliseconds.
fn stamp(state: &Mutex<FakeState>, key: &str, whole_seconds: bool) -> String {
    let now = chrono::Utc::now();
    let at = match whole_seconds {
        true => chrono::DateTime::from_timestamp(now.timestamp(), 0).unwrap_or(now),
        false => chrono::DateTime::from_timestamp_millis(now.timestamp_millis()).unwrap_or(now),
    };
    let mut s = state.lock().unwrap();
    s.updated.entry(key.to_owned()).or_default().push(at);
    let format = match whole_seconds {
        true => chrono::SecondsFormat::Secs,
        false => chrono::SecondsFormat::Millis,
    };
    at.to_rfc3339_opts(format, true)
}

async fn start(routes: fn(&mut web::ServiceConfig)) -> Fake {
    let state = Arc::new(Mutex::new(FakeState::default()));
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a fake");
    let port = listener.local_addr().unwrap().port();
    let data = web::Data::from(state.clone());
    let server = HttpServer::new(move || App::new().app_data(data.clone()).configure(routes))
        .workers(2)
        .listen(listener)
        .expect("listen")
        .run();
    actix_web::rt::spawn(server);
    Fake {
        url: format!("http://127.0.0.1:{port}"),
        state,
    }
}

/// Records the request and picks its scripted answer, if any.
pub fn arrive(
    state: &Mutex<FakeState>,
    req: &HttpRequest,
    body: &[u8],
    key: &str,
) -> (Option<Reply>, Duration) {
    let mut s = state.lock().unwrap();
    s.requests.push(Recorded {
        at: Instant::now(),
        method: req.method().to_string(),
        path: req.path().to_owned(),
        headers: req
            .headers()
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
            .collect(),
        body: serde_json::from_slice(body).unwrap_or(Value::Null),
        raw: body.to_vec(),
        scripted: false,
    });
    let reply = match s.down.clone() {
        Some(outage) => Some(outage),
        None => {
            let scripted = s.script.get_mut(key).and_then(|q| q.pop_front());
            scripted.or_else(|| s.always.get(key).cloned())
        }
    };
    if let Some(last) = s.requests.last_mut() {
        last.scripted = matches!(reply, Some(Reply::Status { .. }));
    }
    (reply, s.latency)
}

fn scripted(reply: &Reply) -> Option<HttpResponse> {
    match reply {
        Reply::Status {
            status,
            body,
            headers,
        } => {
            let mut r =
                HttpResponse::build(actix_web::http::StatusCode::from_u16(*status).unwrap());
            for (k, v) in headers {
                r.insert_header((*k, v.as_str()));
            }
            Some(r.json(body))
        }
        Reply::Slow(_) => None,
    }
}

async fn wait(reply: &Option<Reply>, latency: Duration) {
    let extra = match reply {
        Some(Reply::Slow(d)) => *d,
        _ => Duration::ZERO,
    };
    if !(latency + extra).is_zero() {
        actix_web::rt::time::sleep(latency + extra).await;
    }
}

// ------------------------------------------------------------------------ GitHub

pub async fn github() -> Fake {
    start(github_routes).await
}

/// GitHub with the endpoints `doctor` and `webhooks register` use, accepting `token`.
pub async fn github_admin(token: &str) -> Fake {
    let fake = start(|cfg| {
        github_routes(cfg);
        super::fake_admin::github_routes(cfg);
    })
    .await;
    let mut s = fake.state.lock().unwrap();
    s.admin.token = token.to_owned();
    s.admin.scopes = "repo, project, admin:repo_hook, admin:org_hook".to_owned();
    drop(s);
    fake
}

fn github_routes(cfg: &mut web::ServiceConfig) {
    cfg.route(
        "/repos/{owner}/{repo}/issues/{number}",
        web::patch().to(github_patch),
    )
    .route("/graphql", web::post().to(github_graphql))
    .route("/app", web::get().to(github_app))
    .route("/app/installations", web::get().to(github_app))
    .route(
        "/repos/{owner}/{repo}/installation",
        web::get().to(github_app),
    )
    .route(
        "/app/installations/{id}/access_tokens",
        web::post().to(github_app),
    );
}

/// GitHub's answer to a bad credential.
fn bad_credentials() -> HttpResponse {
    HttpResponse::Unauthorized().json(json!({
        "message": "Bad credentials",
        "documentation_url": "https://docs.github.com/rest"
    }))
}

/// Whether `req` carries a JWT of the App, signed with its key, unexpired, issued at
/// most ten minutes before it expires (as GitHub checks them).
pub fn app_jwt_ok(req: &HttpRequest, state: &Mutex<FakeState>) -> bool {
    let Some((public, app_id)) = state.lock().unwrap().app.clone() else {
        return false;
    };
    let jwt = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    let Ok(key) = jsonwebtoken::DecodingKey::from_rsa_pem(public.as_bytes()) else {
        return false;
    };
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.leeway = 0;
    validation.set_issuer(&[app_id]);
    validation.set_required_spec_claims(&["exp", "iat", "iss"]);
    let Ok(data) = jsonwebtoken::decode::<Value>(jwt, &key, &validation) else {
        return false;
    };
    let (iat, exp) = (data.claims["iat"].as_i64(), data.claims["exp"].as_i64());
    let ok = matches!((iat, exp), (Some(i), Some(e)) if e - i <= 660 && i <= chrono::Utc::now().timestamp());
    if ok {
        state.lock().unwrap().jwts_verified += 1;
    }
    ok
}

/// The App endpoints: `GET /app`, `GET /app/installations`,
/// `GET /repos/{o}/{r}/installation`, `POST /app/installations/{id}/access_tokens`.
async fn github_app(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<Mutex<FakeState>>,
) -> HttpResponse {
    arrive(&state, &req, &body, "app");
    if !app_jwt_ok(&req, &state) {
        return bad_credentials();
    }
    let path = req.path().to_owned();
    if path == "/app" {
        return HttpResponse::Ok().json(json!({
            "id": 12345, "slug": "statsync-test", "name": "statsync test",
            "permissions": {"issues": "write", "pull_requests": "read", "metadata": "read"},
            "events": ["issues", "pull_request"]
        }));
    }
    if path == "/app/installations" {
        return HttpResponse::Ok().json(json!([{"id": 42, "account": {"login": "Codertocat"}}]));
    }
    if path.ends_with("/installation") {
        return HttpResponse::Ok().json(json!({"id": 42, "app_id": 12345,
            "permissions": {"issues": "write", "pull_requests": "read", "metadata": "read"}}));
    }
    if path != "/app/installations/42/access_tokens" {
        return HttpResponse::NotFound().json(json!({"message": "Not Found"}));
    }
    let mut s = state.lock().unwrap();
    s.tokens_issued += 1;
    let token = format!("ghs_test{}", s.tokens_issued);
    s.installation_tokens.push(token.clone());
    HttpResponse::Created().json(json!({
        "token": token,
        "expires_at": (chrono::Utc::now() + chrono::TimeDelta::hours(1)).to_rfc3339(),
        "permissions": {"issues": "write", "pull_requests": "read"}
    }))
}

async fn github_patch(
    req: HttpRequest,
    path: web::Path<(String, String, u64)>,
    body: web::Bytes,
    state: web::Data<Mutex<FakeState>>,
) -> HttpResponse {
    let (owner, repo, number) = path.into_inner();
    let key = format!("{owner}/{repo}#{number}");
    let (reply, latency) = arrive(&state, &req, &body, &key);
    {
        // As an App's API: only an installation token issued here writes.
        let s = state.lock().unwrap();
        let bearer = req
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        if s.app.is_some() && !s.installation_tokens.iter().any(|t| t == bearer) {
            return bad_credentials();
        }
    }
    let scripted_failure = reply.as_ref().and_then(scripted);
    let mut updated_at = None;
    if scripted_failure.is_none() {
        updated_at = Some(stamp(&state, &key, true));
        // Applied on arrival, so the order of writes is the order they reached us.
        let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let st = v["state"].as_str().unwrap_or("open").to_owned();
        let reason = v["state_reason"].as_str().map(str::to_owned);
        state
            .lock()
            .unwrap()
            .objects
            .insert(key.clone(), (st, reason));
    }
    wait(&reply, latency).await;
    if let Some(r) = scripted_failure {
        return r;
    }
    let (st, reason) = state
        .lock()
        .unwrap()
        .objects
        .get(&key)
        .cloned()
        .unwrap_or_default();
    HttpResponse::Ok()
        .insert_header(("x-ratelimit-limit", "5000"))
        .insert_header(("x-ratelimit-remaining", "4999"))
        .insert_header((
            "x-ratelimit-reset",
            (chrono::Utc::now().timestamp() + 3600).to_string(),
        ))
        .json(json!({
            "number": number,
            "state": st,
            "state_reason": reason,
            "updated_at": updated_at,
            "html_url": format!("https://github.com/{owner}/{repo}/issues/{number}"),
        }))
}

/// Projects v2: one board whose Status field has the shipped option names.
async fn github_graphql(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<Mutex<FakeState>>,
) -> HttpResponse {
    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let query = v["query"].as_str().unwrap_or("").to_owned();
    let vars = v["variables"].clone();
    let item = vars["item"].as_str().unwrap_or("").to_owned();
    let (reply, latency) = arrive(&state, &req, &body, &item);
    wait(&reply, latency).await;
    if let Some(r) = reply.as_ref().and_then(scripted) {
        return r;
    }
    let options = [
        "Backlog",
        "Todo",
        "In Progress",
        "In Review",
        "Blocked",
        "Done",
    ];
    let data = if query.contains("updateProjectV2ItemFieldValue") {
        if vars["project"] != "PVT_board" || vars["field"] != "PVTSSF_status" {
            return HttpResponse::Ok().json(json!({
                "data": null,
                "errors": [{"type": "NOT_FOUND", "message": "Could not resolve to a node"}]
            }));
        }
        let option = vars["option"].as_str().unwrap_or("").to_owned();
        state
            .lock()
            .unwrap()
            .objects
            .insert(item.clone(), (option, None));
        let at = stamp(&state, &item, true);
        json!({"updateProjectV2ItemFieldValue": {"projectV2Item": {"id": item, "updatedAt": at}}})
    } else if query.contains("repositoryOwner") {
        // Board `acme/7`: the shipped option names, and one no guess can place.
        if vars["owner"] != "acme" || vars["number"] != 7 {
            return HttpResponse::Ok().json(json!({"data": {"repositoryOwner": null}}));
        }
        let names: Vec<Value> = options
            .iter()
            .chain(&["Parking lot"])
            .map(|n| json!({ "name": n }))
            .collect();
        json!({"repositoryOwner": {"projectV2": {"title": "Roadmap",
            "field": {"options": names}}}})
    } else if query.contains("fieldValueByName") {
        // The item's Status as set (by statsync or a test), or none.
        let set = state.lock().unwrap().objects.get(&item).cloned();
        let value = set.and_then(|(option, _)| {
            let name = options
                .iter()
                .find(|o| format!("opt-{}", o.to_lowercase().replace(' ', "-")) == option)?;
            Some(json!({"name": name, "optionId": option}))
        });
        let node =
            (item.starts_with("PVTI_")).then(|| json!({"id": item, "fieldValueByName": value}));
        json!({ "node": node })
    } else if query.contains("node(id:") {
        json!({"node": {"id": item, "project": {"id": "PVT_board", "field": {
            "id": "PVTSSF_status",
            "options": options.iter().map(|o| json!({"id": format!("opt-{}", o.to_lowercase().replace(' ', "-")), "name": o})).collect::<Vec<_>>()
        }}}})
    } else {
        return HttpResponse::Ok().json(json!({
            "errors": [{"type": "INVALID_QUERY", "message": "unexpected document"}]
        }));
    };
    HttpResponse::Ok()
        .insert_header(("x-ratelimit-remaining", "4990"))
        .insert_header((
            "x-ratelimit-reset",
            (chrono::Utc::now().timestamp() + 3600).to_string(),
        ))
        .json(json!({ "data": data }))
}

pub fn github_error(status: u16, message: &str) -> Reply {
    Reply::status(
        status,
        json!({
            "message": message,
            "documentation_url": "https://docs.github.com/rest",
            "status": status.to_string(),
        }),
    )
}

/// GitHub GraphQL's answer for a node id that resolves to nothing (a deleted item):
/// 200, `node: null` and a `NOT_FOUND` error.
pub fn github_node_not_found(id: &str) -> Reply {
    Reply::status(
        200,
        json!({
            "data": {"node": null},
            "errors": [{
                "type": "NOT_FOUND",
                "path": ["node"],
                "locations": [{"line": 2, "column": 3}],
                "message": format!("Could not resolve to a node with the global id of '{id}'"),
            }],
        }),
    )
}

// ------------------------------------------------------------------------ Linear

/// Team ENG's workflow, as `workflowStates` answers it.
pub fn linear_states() -> Value {
    json!([
        {"id": "st-backlog", "name": "Backlog", "type": "backlog", "position": 0.0},
        {"id": "st-todo", "name": "Todo", "type": "unstarted", "position": 1.0},
        {"id": "st-doing", "name": "In Progress", "type": "started", "position": 2.0},
        {"id": "st-review", "name": "In Review", "type": "started", "position": 3.0},
        {"id": "st-done", "name": "Done", "type": "completed", "position": 4.0},
        {"id": "st-cancel", "name": "Canceled", "type": "canceled", "position": 5.0},
    ])
}

pub async fn linear() -> Fake {
    start(|cfg| {
        cfg.route("/graphql", web::post().to(linear_graphql));
    })
    .await
}

async fn linear_graphql(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<Mutex<FakeState>>,
) -> HttpResponse {
    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let query = v["query"].as_str().unwrap_or("").to_owned();
    let vars = v["variables"].clone();
    let key = vars["id"].as_str().unwrap_or("").to_owned();
    if query.contains("viewer") {
        // statsync asks once at start who its API key is; not one of the calls tests
        // count.
        let mut viewer = json!({"id": LINEAR_VIEWER});
        if query.contains("admin") {
            viewer = json!({"id": LINEAR_VIEWER, "name": "statsync", "email": "statsync@acme.dev", "admin": true});
        }
        return HttpResponse::Ok().json(json!({"data": { "viewer": viewer }}));
    }
    if let Some(answer) = super::fake_admin::linear(&query, &vars, &state) {
        arrive(&state, &req, &body, "admin");
        return HttpResponse::Ok().json(answer);
    }
    let (reply, latency) = arrive(&state, &req, &body, &key);
    wait(&reply, latency).await;
    if let Some(r) = reply.as_ref().and_then(scripted) {
        return r;
    }
    let data = if query.contains("workflowStates") {
        let nodes = if vars["team"] == "ENG" {
            linear_states()
        } else {
            json!([])
        };
        json!({"workflowStates": {"nodes": nodes}})
    } else if query.contains("issueUpdate") {
        let state_id = vars["stateId"].as_str().unwrap_or("").to_owned();
        state
            .lock()
            .unwrap()
            .objects
            .insert(key.clone(), (state_id.clone(), None));
        let at = stamp(&state, &key, false);
        json!({"issueUpdate": {"success": true,
            "issue": {"id": key, "updatedAt": at, "state": {"id": state_id}}}})
    } else if query.contains("issue(") {
        json!({"issue": {"id": key, "team": {"key": "ENG"}}})
    } else {
        return HttpResponse::BadRequest().json(json!({
            "errors": [{"message": "Unknown operation", "extensions": {"code": "GRAPHQL_VALIDATION_FAILED"}}]
        }));
    };
    HttpResponse::Ok()
        .insert_header(("x-ratelimit-requests-limit", "1500"))
        .insert_header(("x-ratelimit-requests-remaining", "1499"))
        .insert_header((
            "x-ratelimit-requests-reset",
            (chrono::Utc::now().timestamp_millis() + 3_600_000).to_string(),
        ))
        .json(json!({ "data": data }))
}

// ------------------------------------------------------------------------ Agent API

pub async fn agent() -> Fake {
    start(|cfg| {
        cfg.route("/agent", web::post().to(agent_notice));
    })
    .await
}

async fn agent_notice(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<Mutex<FakeState>>,
) -> HttpResponse {
    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let key = v["entityId"].as_str().unwrap_or("").to_owned();
    let (reply, latency) = arrive(&state, &req, &body, &key);
    wait(&reply, latency).await;
    match reply.as_ref().and_then(scripted) {
        Some(r) => r,
        None => HttpResponse::Accepted().json(json!({"status": "received"})),
    }
}
