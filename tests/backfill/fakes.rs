//! Fakes of GitHub's issue listing (pagination by `Link`, `since`, ETags and 304s that
//! cost no rate budget, `x-ratelimit-remaining` / `-reset`), of its pull request listing
//! and single pull request (the same pull requests in their `pulls` shape, with
//! `head.ref`; newest change first with `direction=desc`), of a hook's deliveries
//! (newest first, cursor pagination by `Link`, redelivery attempts that add a delivery
//! with the same `guid` and `redelivery: true`, as GitHub does) and of Linear's `issues` GraphQL connection
//! (cursor pagination, team and `updatedAt` filters), holding whatever issues a test
//! puts in them. Any other request (outbound status writes) is answered 200.

use std::collections::HashMap;
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

#[derive(Default)]
pub struct State {
    /// GitHub issue objects (REST shape), any repo.
    pub github: Vec<Value>,
    /// Linear issue nodes (GraphQL shape).
    pub linear: Vec<Value>,
    /// GitHub's rate budget: every 200 answer spends one, a 304 none.
    pub remaining: i64,
    /// The next request for this GitHub page number answers 502.
    pub fail_page: Option<u32>,
    /// Listing requests: (path and query, status answered).
    pub listed: Vec<(String, u16)>,
    /// Head branches of pull requests by number (default `patch-<n>`).
    pub branches: HashMap<u64, String>,
    /// Pull request listing and single pull request requests: path and query.
    pub pulls_listed: Vec<String>,
    /// Pull requests the listing leaves out (changed after it was read).
    pub unlisted_pulls: Vec<u64>,
    /// GitHub's rate budget refills at this Unix time (`x-ratelimit-reset`).
    pub reset_at: i64,
    /// A hook's deliveries, newest first.
    pub deliveries: Vec<Value>,
    /// Delivery listing requests: path and query.
    pub delivery_lists: Vec<String>,
    pub redelivered: Vec<u64>,
}

#[derive(Clone)]
pub struct Fake {
    pub url: String,
    pub state: Arc<Mutex<State>>,
}

impl Fake {
    pub fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        f(&mut self.state.lock().unwrap())
    }
}

pub async fn start() -> Fake {
    let state = Arc::new(Mutex::new(State {
        remaining: 5000,
        reset_at: chrono::Utc::now().timestamp() + 3600,
        ..State::default()
    }));
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let data = web::Data::from(state.clone());
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .route("/repos/{o}/{r}/issues", web::get().to(list_issues))
            .route("/repos/{o}/{r}/pulls", web::get().to(list_pulls))
            .route("/repos/{o}/{r}/pulls/{n}", web::get().to(one_pull))
            .route(
                "/repos/{o}/{r}/hooks/{h}/deliveries",
                web::get().to(deliveries),
            )
            .route(
                "/repos/{o}/{r}/hooks/{h}/deliveries/{d}/attempts",
                web::post().to(redeliver),
            )
            .route("/graphql", web::post().to(graphql))
            .default_service(web::to(|| async { HttpResponse::Ok().json(json!({})) }))
    })
    .workers(1)
    .listen(listener)
    .unwrap()
    .run();
    actix_web::rt::spawn(server);
    Fake {
        url: format!("http://127.0.0.1:{port}"),
        state,
    }
}

fn ts(v: &Value, key: &str) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::parse_from_rfc3339(v[key].as_str().unwrap())
        .unwrap()
        .with_timezone(&chrono::Utc)
}

async fn list_issues(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    q: web::Query<HashMap<String, String>>,
    state: web::Data<Mutex<State>>,
) -> HttpResponse {
    let mut s = state.lock().unwrap();
    let repo = format!("{}/{}", path.0, path.1);
    let target = req.uri().to_string();
    let page: u32 = q.get("page").and_then(|p| p.parse().ok()).unwrap_or(1);
    if s.fail_page == Some(page) {
        s.fail_page = None;
        s.listed.push((target, 502));
        return HttpResponse::BadGateway().json(json!({"message": "Server Error"}));
    }
    assert_eq!(q.get("state").map(String::as_str), Some("all"));
    assert_eq!(q.get("sort").map(String::as_str), Some("updated"));
    let per_page: usize = q["per_page"].parse().unwrap();
    let since = q
        .get("since")
        .map(|t| chrono::DateTime::parse_from_rfc3339(t).unwrap());
    let mut all: Vec<Value> = s
        .github
        .iter()
        .filter(|i| i["repository_url"].as_str().unwrap().ends_with(&repo))
        .filter(|i| since.map_or(true, |t| ts(i, "updated_at") >= t))
        .cloned()
        .collect();
    all.sort_by_key(|i| (ts(i, "updated_at"), i["number"].as_u64()));
    let last = all.len().div_ceil(per_page).max(1) as u32;
    let items: Vec<Value> = all
        .into_iter()
        .skip((page as usize - 1) * per_page)
        .take(per_page)
        .collect();
    let body = serde_json::to_vec(&items).unwrap();
    let etag = format!("W/\"{}\"", hex::encode(Sha256::digest(&body)));
    let told = req
        .headers()
        .get("if-none-match")
        .and_then(|v| v.to_str().ok());
    if told == Some(etag.as_str()) {
        s.listed.push((target, 304));
        return HttpResponse::NotModified()
            .insert_header(("etag", etag))
            .insert_header(("x-ratelimit-remaining", s.remaining.to_string()))
            .finish();
    }
    s.remaining -= 1;
    s.listed.push((target, 200));
    let base = format!("{}{}", req.connection_info().host(), req.path());
    let mut links = Vec::new();
    let page_url = |n: u32| {
        let query: String = q
            .iter()
            .filter(|(k, _)| k.as_str() != "page")
            .map(|(k, v)| format!("&{k}={v}"))
            .collect();
        format!("<http://{base}?page={n}{query}>")
    };
    if page < last {
        links.push(format!("{}; rel=\"next\"", page_url(page + 1)));
    }
    links.push(format!("{}; rel=\"last\"", page_url(last)));
    HttpResponse::Ok()
        .insert_header(("etag", etag))
        .insert_header(("link", links.join(", ")))
        .insert_header(("x-ratelimit-remaining", s.remaining.to_string()))
        .insert_header(("x-ratelimit-reset", s.reset_at.to_string()))
        .insert_header(("content-type", "application/json"))
        .body(body)
}

/// An issue listing item that is a pull request, as `GET …/pulls` shows it.
fn as_pull(s: &State, issue: &Value) -> Value {
    let n = issue["number"].as_u64().unwrap();
    let branch = s.branches.get(&n).cloned().unwrap_or(format!("patch-{n}"));
    json!({
        "number": n,
        "state": issue["state"],
        "title": issue["title"],
        "body": issue["body"],
        "draft": issue["draft"],
        "merged_at": issue["pull_request"]["merged_at"],
        "updated_at": issue["updated_at"],
        "html_url": issue["html_url"].as_str().unwrap().replace("/issues/", "/pull/"),
        "head": {"ref": branch, "sha": "6dcb09b5b57875f334f61aebed695e2e4193db5e"},
        "base": {"ref": "main"},
    })
}

fn pulls_of(s: &State, repo: &str) -> Vec<Value> {
    s.github
        .iter()
        .filter(|i| i["repository_url"].as_str().unwrap().ends_with(repo))
        .filter(|i| i.get("pull_request").is_some())
        .map(|i| as_pull(s, i))
        .collect()
}

/// `GET /repos/{o}/{r}/pulls?state=all&sort=updated&direction=…`: one page, `Link`
/// pagination by page number, one unit of rate budget.
async fn list_pulls(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    q: web::Query<HashMap<String, String>>,
    state: web::Data<Mutex<State>>,
) -> HttpResponse {
    let mut s = state.lock().unwrap();
    s.pulls_listed.push(req.uri().to_string());
    assert_eq!(q.get("state").map(String::as_str), Some("all"));
    assert_eq!(q.get("sort").map(String::as_str), Some("updated"));
    let per_page: usize = q.get("per_page").map_or(30, |p| p.parse().unwrap());
    let page: usize = q.get("page").map_or(1, |p| p.parse().unwrap());
    let mut all = pulls_of(&s, &format!("{}/{}", path.0, path.1));
    all.retain(|p| !s.unlisted_pulls.contains(&p["number"].as_u64().unwrap()));
    all.sort_by_key(|p| (ts(p, "updated_at"), p["number"].as_u64()));
    if q.get("direction").map(String::as_str) != Some("asc") {
        all.reverse();
    }
    let last = all.len().div_ceil(per_page).max(1);
    let items: Vec<Value> = all
        .into_iter()
        .skip((page - 1) * per_page)
        .take(per_page)
        .collect();
    s.remaining -= 1;
    let base = format!("http://{}{}", req.connection_info().host(), req.path());
    let query: String = q
        .iter()
        .filter(|(k, _)| k.as_str() != "page")
        .map(|(k, v)| format!("&{k}={v}"))
        .collect();
    let mut links = Vec::new();
    if page < last {
        links.push(format!("<{base}?page={}{query}>; rel=\"next\"", page + 1));
    }
    links.push(format!("<{base}?page={last}{query}>; rel=\"last\""));
    HttpResponse::Ok()
        .insert_header(("link", links.join(", ")))
        .insert_header(("x-ratelimit-remaining", s.remaining.to_string()))
        .insert_header(("x-ratelimit-reset", s.reset_at.to_string()))
        .json(items)
}

/// `GET /repos/{o}/{r}/pulls/{n}`: 404 with GitHub's body for a number that is not a
/// pull request.
async fn one_pull(
    req: HttpRequest,
    path: web::Path<(String, String, u64)>,
    state: web::Data<Mutex<State>>,
) -> HttpResponse {
    let mut s = state.lock().unwrap();
    s.pulls_listed.push(req.uri().to_string());
    s.remaining -= 1;
    let found = pulls_of(&s, &format!("{}/{}", path.0, path.1))
        .into_iter()
        .find(|p| p["number"] == path.2);
    let mut answer = match found {
        Some(_) => HttpResponse::Ok(),
        None => HttpResponse::NotFound(),
    };
    answer
        .insert_header(("x-ratelimit-remaining", s.remaining.to_string()))
        .insert_header(("x-ratelimit-reset", s.reset_at.to_string()));
    match found {
        Some(pr) => answer.json(pr),
        None => answer.json(json!({
            "message": "Not Found",
            "documentation_url": "https://docs.github.com/rest/pulls/pulls#get-a-pull-request",
        })),
    }
}

/// One page of deliveries after the `cursor` (an index), `Link: <…>; rel="next"` when
/// more remain.
async fn deliveries(
    req: HttpRequest,
    q: web::Query<HashMap<String, String>>,
    state: web::Data<Mutex<State>>,
) -> HttpResponse {
    let mut s = state.lock().unwrap();
    s.delivery_lists.push(req.uri().to_string());
    let per_page: usize = q.get("per_page").map_or(30, |p| p.parse().unwrap());
    let start: usize = q.get("cursor").map_or(0, |c| c.parse().unwrap());
    let page: Vec<Value> = s
        .deliveries
        .iter()
        .skip(start)
        .take(per_page)
        .cloned()
        .collect();
    let mut answer = HttpResponse::Ok();
    if start + per_page < s.deliveries.len() {
        let next = format!(
            "<http://{}{}?per_page={per_page}&cursor={}>; rel=\"next\"",
            req.connection_info().host(),
            req.path(),
            start + per_page
        );
        answer.insert_header(("link", next));
    }
    answer.json(page)
}

/// Redelivers a known delivery: a new one, newest, with the same guid.
async fn redeliver(
    path: web::Path<(String, String, u64, u64)>,
    state: web::Data<Mutex<State>>,
) -> HttpResponse {
    let mut s = state.lock().unwrap();
    let Some(original) = s.deliveries.iter().find(|d| d["id"] == path.3).cloned() else {
        return HttpResponse::NotFound().json(json!({"message": "Not Found"}));
    };
    s.redelivered.push(path.3);
    let id = s
        .deliveries
        .iter()
        .filter_map(|d| d["id"].as_u64())
        .max()
        .unwrap_or(0)
        + 1;
    let mut again = original;
    again["id"] = json!(id);
    again["redelivery"] = json!(true);
    again["status"] = json!("OK");
    again["status_code"] = json!(200);
    again["delivered_at"] = json!(chrono::Utc::now().to_rfc3339());
    s.deliveries.insert(0, again);
    HttpResponse::Accepted().json(json!({}))
}

async fn graphql(body: web::Json<Value>, state: web::Data<Mutex<State>>) -> HttpResponse {
    let query = body["query"].as_str().unwrap_or("");
    if !query.contains("TeamIssues") {
        return HttpResponse::Ok().json(json!({"data": {}}));
    }
    let s = state.lock().unwrap();
    let vars = &body["variables"];
    let team = vars["filter"]["team"]["key"]["eq"]
        .as_str()
        .unwrap()
        .to_owned();
    let after_time = vars["filter"]["updatedAt"]["gt"]
        .as_str()
        .map(|t| chrono::DateTime::parse_from_rfc3339(t).unwrap());
    let first = vars["first"].as_u64().unwrap() as usize;
    let start: usize = vars["after"].as_str().map_or(0, |c| c.parse().unwrap());
    let mut all: Vec<Value> = s
        .linear
        .iter()
        .filter(|i| i["team"]["key"] == team)
        .filter(|i| after_time.map_or(true, |t| ts(i, "updatedAt") > t))
        .cloned()
        .collect();
    all.sort_by_key(|i| (ts(i, "updatedAt"), i["id"].as_str().unwrap().to_owned()));
    let nodes: Vec<Value> = all.iter().skip(start).take(first).cloned().collect();
    let end = start + nodes.len();
    HttpResponse::Ok()
        .insert_header(("x-ratelimit-requests-remaining", "1000"))
        .json(json!({"data": {"issues": {
            "nodes": nodes,
            "pageInfo": {"hasNextPage": end < all.len(), "endCursor": end.to_string()}
        }}}))
}
