//! A2A both ways against a fake A2A agent that speaks JSON-RPC 2.0 as the A2A 1.0
//! binding defines it (`CancelTask`, or `tasks/cancel` as a 0.3 agent; error objects
//! -32001 TaskNotFoundError, -32002 TaskNotCancelableError, -32601): a cancelled issue
//! cancels its agent's task and the agent's notice of it is recognised as the echo;
//! JSON-RPC errors and outages are classified; an A2A status update moves its Linear
//! issue through the fake Linear and is streamed on the WebSocket.

use std::collections::HashMap;
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use awc::ws;
use futures_util::SinkExt;

use super::*;
use crate::support::ws::next;

const NOTIFICATION_TOKEN: &str = "test-a2a-notification-token";
const AGENT_TOKEN: &str = "test-a2a-api-token";
const TASK: &str = "43667960-d455-4453-b0cf-1bae4955270d";

#[derive(Default)]
struct AgentState {
    /// Task id → (state, status time).
    tasks: HashMap<String, (String, String)>,
    /// Every call: its headers (lower-case names) and JSON body.
    calls: Vec<(HashMap<String, String>, Value)>,
    /// Task id → calls about it still to answer 503 (an outage) before handling one.
    outage: HashMap<String, usize>,
    /// The method this agent's A2A version calls a cancel.
    cancel_method: &'static str,
}

#[derive(Clone)]
struct FakeAgent {
    url: String,
    state: Arc<Mutex<AgentState>>,
}

impl FakeAgent {
    async fn start(cancel_method: &'static str) -> FakeAgent {
        let state = Arc::new(Mutex::new(AgentState {
            cancel_method,
            ..AgentState::default()
        }));
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the fake agent");
        let port = listener.local_addr().unwrap().port();
        let data = web::Data::from(state.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .route("/a2a", web::post().to(json_rpc))
        })
        .workers(1)
        .listen(listener)
        .expect("listen")
        .run();
        actix_web::rt::spawn(server);
        FakeAgent {
            url: format!("http://127.0.0.1:{port}/a2a"),
            state,
        }
    }

    fn task(&self, id: &str, state: &str) {
        let at = Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let mut s = self.state.lock().unwrap();
        s.tasks.insert(id.to_owned(), (state.to_owned(), at));
    }

    fn state_of(&self, id: &str) -> Option<(String, String)> {
        self.state.lock().unwrap().tasks.get(id).cloned()
    }

    fn calls(&self) -> Vec<(HashMap<String, String>, Value)> {
        self.state.lock().unwrap().calls.clone()
    }
}

fn rpc_error(id: &Value, code: i64, message: &str) -> HttpResponse {
    HttpResponse::Ok()
        .json(json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}}))
}

/// The agent's JSON-RPC endpoint: a cancel of a running task cancels it.
async fn json_rpc(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<Mutex<AgentState>>,
) -> HttpResponse {
    let headers = req
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
        .collect();
    let Ok(call) = serde_json::from_slice::<Value>(&body) else {
        return rpc_error(&Value::Null, -32700, "Invalid JSON payload");
    };
    let mut s = state.lock().unwrap();
    s.calls.push((headers, call.clone()));
    let task = call["params"]["id"].as_str().unwrap_or("").to_owned();
    if let Some(left @ 1..) = s.outage.get_mut(&task) {
        *left -= 1;
        return HttpResponse::ServiceUnavailable()
            .insert_header(("Retry-After", "0"))
            .body("upstream unavailable");
    }
    let id = &call["id"];
    if call["jsonrpc"] != "2.0" {
        return rpc_error(id, -32600, "Request payload validation error");
    }
    if call["method"] != s.cancel_method {
        return rpc_error(id, -32601, "Method not found");
    }
    let Some((current, _)) = s.tasks.get(&task).cloned() else {
        return rpc_error(id, -32001, "Task not found");
    };
    if ["completed", "failed", "canceled", "rejected"].contains(&current.as_str()) {
        return rpc_error(id, -32002, "Task cannot be canceled");
    }
    let at = Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    s.tasks
        .insert(task.clone(), ("canceled".into(), at.clone()));
    HttpResponse::Ok().json(json!({"jsonrpc": "2.0", "id": id, "result": {
        "id": task, "contextId": "ctx-1",
        "status": {"state": "TASK_STATE_CANCELED", "timestamp": at}
    }}))
}

/// The app with the fakes, A2A's credentials, and `agents` (name, url, protocol).
async fn spawn_with_agents(gh: &Fake, lin: &Fake, agents: &[(&str, &str, &str)]) -> TestApp {
    let base: Vec<(&'static str, String)> = vec![
        ("A2A_NOTIFICATION_TOKEN", NOTIFICATION_TOKEN.into()),
        ("A2A_API_TOKEN", AGENT_TOKEN.into()),
        (
            "STATSYNC__CONNECTORS__A2A__REQUESTS_PER_SECOND",
            "200".into(),
        ),
    ];
    let mut env: Vec<(String, String)> = outbound_env(gh, lin, &base)
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
    for (name, url, protocol) in agents {
        // As an operator writes it: upper case, the settings' keys are lower case.
        let agent = name.to_uppercase();
        let var = |key: &str| format!("STATSYNC__CONNECTORS__A2A__AGENTS__{agent}__{key}");
        env.push((var("URL"), (*url).to_owned()));
        env.push((var("PROTOCOL"), (*protocol).to_owned()));
    }
    let pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    spawn_app_with(&pairs).await
}

async fn notify(app: &TestApp, body: &Value) {
    let r = app
        .http
        .post(format!("{}/webhooks/a2a", app.address))
        .header("content-type", "application/a2a+json")
        .header("A2A-Notification-Token", NOTIFICATION_TOKEN)
        .json(body)
        .send()
        .await
        .expect("request");
    assert_eq!(r.status().as_u16(), 200, "{:?}", r.text().await);
}

fn status_update(task: &str, state: &str, at: &str, metadata: Value) -> Value {
    json!({"statusUpdate": {
        "taskId": task, "contextId": "ctx-1",
        "status": {"state": state, "timestamp": at},
        "metadata": metadata
    }})
}

/// Linear's delivery moving the issue ENG-123 (`LINEAR_ID`) to a state, `ago` seconds
/// in the past.
async fn linear_moves(app: &TestApp, delivery: &str, state: (&str, &str), ago: i64) {
    let at = Utc::now() - TimeDelta::seconds(ago);
    let body = linear_issue_update(LINEAR_ID, "ENG-123", state.0, state.1, at);
    assert_eq!(app.linear(delivery, &body).await.status, 200);
}

#[actix_web::test]
async fn a_cancelled_issue_cancels_its_agents_task_and_the_agents_notice_is_its_echo() {
    let (gh, lin) = (fakes::github().await, fakes::linear().await);
    let agent = FakeAgent::start("CancelTask").await;
    agent.task(TASK, "working");
    let app = spawn_with_agents(&gh, &lin, &[("coder", &agent.url, "1.0")]).await;

    linear_moves(&app, "l-doing", ("In Progress", "started"), 120).await;
    // statsync knows the issue before the agent names it, as when a person hands it over.
    app.drained().await;
    let at = (Utc::now() - TimeDelta::seconds(60)).to_rfc3339();
    let working = status_update(
        TASK,
        "TASK_STATE_WORKING",
        &at,
        json!({"statsync.ref": "ENG-123"}),
    );
    notify(&app, &working).await;
    app.drained().await;
    let r = app
        .api(
            "GET",
            &format!("/api/v1/entities?system=a2a&external_id={TASK}"),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let id = r.body["id"].as_str().unwrap().to_owned();
    assert!(
        r.body["links"].to_string().contains(LINEAR_ID),
        "{}",
        r.body
    );
    assert!(agent.calls().is_empty(), "working is nothing to tell");

    linear_moves(&app, "l-cancel", ("Canceled", "canceled"), 0).await;
    row_reaches(&app, TASK, "done").await;
    let calls = agent.calls();
    assert_eq!(calls.len(), 1, "{calls:?}");
    let (headers, call) = &calls[0];
    assert_eq!(call["jsonrpc"], "2.0");
    assert_eq!(call["method"], "CancelTask");
    assert_eq!(call["params"], json!({"id": TASK}));
    assert_eq!(headers["authorization"], format!("Bearer {AGENT_TOKEN}"));
    assert_eq!(headers["a2a-version"], "1.0");
    let (state, canceled_at) = agent.state_of(TASK).unwrap();
    assert_eq!(state, "canceled");

    // The agent notifies the cancel statsync made: its echo, which writes nothing.
    let rows = app.count("SELECT count(*) FROM sync_outbox").await;
    let notice = status_update(TASK, "TASK_STATE_CANCELED", &canceled_at, json!({}));
    notify(&app, &notice).await;
    app.drained().await;
    let h = history(&app, &id).await;
    let reason = h[0]["reason"].as_str().unwrap();
    assert!(reason.contains("echo of statsync's own write"), "{reason}");
    assert_eq!(app.count("SELECT count(*) FROM sync_outbox").await, rows);
}

#[actix_web::test]
async fn an_agents_json_rpc_errors_and_outages_are_classified() {
    let (gh, lin) = (fakes::github().await, fakes::linear().await);
    let (coder, legacy) = (
        FakeAgent::start("CancelTask").await,
        FakeAgent::start("tasks/cancel").await,
    );
    coder.task("t-finished", "completed");
    coder.task("t-flaky", "working");
    legacy.task("t-old", "working");
    coder
        .state
        .lock()
        .unwrap()
        .outage
        .insert("t-flaky".into(), 1);
    let app = spawn_with_agents(
        &gh,
        &lin,
        &[("coder", &coder.url, "1.0"), ("legacy", &legacy.url, "0.3")],
    )
    .await;
    // Two agents and no default one: a task of either is named by both.
    let tasks = [
        "coder/t-unknown",
        "coder/t-finished",
        "coder/t-flaky",
        "legacy/t-old",
    ];
    for task in tasks {
        let body = json!({"refs": [{"system": "a2a", "externalId": task}]});
        let entity = app.link_new(body).await;
        let status = json!({"entityId": entity["id"], "status": "cancelled"});
        app.set_status(status).await;
    }

    let (_, _, code) = row_reaches(&app, "coder/t-unknown", "dead").await;
    assert_eq!(
        code.as_deref(),
        Some("NOT_FOUND"),
        "TaskNotFoundError is not retried"
    );
    // Already over: what the cancel was for holds, and nothing is left to do.
    let (_, attempts, _) = row_reaches(&app, "coder/t-finished", "noop").await;
    assert_eq!(attempts, 1);
    let (_, attempts, _) = row_reaches(&app, "coder/t-flaky", "done").await;
    assert_eq!(attempts, 2, "the 503 was retried");
    assert_eq!(coder.state_of("t-flaky").unwrap().0, "canceled");
    row_reaches(&app, "legacy/t-old", "done").await;
    let legacy_calls = legacy.calls();
    assert_eq!(legacy_calls.len(), 1);
    assert_eq!(legacy_calls[0].1["method"], "tasks/cancel");
    assert_eq!(legacy_calls[0].1["params"], json!({"id": "t-old"}));
    assert!(!legacy_calls[0].0.contains_key("a2a-version"));
}

#[actix_web::test]
async fn an_a2a_status_update_moves_its_linear_issue_and_is_streamed() {
    let (gh, lin) = (fakes::github().await, fakes::linear().await);
    let app = spawn_with_agents(&gh, &lin, &[]).await;
    linear_moves(&app, "l-todo", ("Todo", "unstarted"), 120).await;
    app.drained().await;

    let url = format!("{}/ws", app.address.replace("http://", "ws://"));
    let (_, mut conn) = awc::Client::new()
        .ws(url)
        .bearer_auth(API_TOKEN)
        .connect()
        .await
        .expect("a WebSocket");
    let subscribe = json!({"type": "subscribe", "rooms": ["system:a2a"]});
    conn.send(ws::Message::Text(subscribe.to_string().into()))
        .await
        .expect("subscribe");
    assert_eq!(next(&mut conn).await["type"], "subscribed");

    let at = Utc::now().to_rfc3339();
    let working = status_update(
        TASK,
        "TASK_STATE_WORKING",
        &at,
        json!({"statsync.ref": "ENG-123"}),
    );
    notify(&app, &working).await;

    wait_for(
        "the fake Linear shows the issue In Progress",
        Duration::from_secs(20),
        || async {
            lin.object(LINEAR_ID)
                .filter(|(state, _)| state == "st-doing")
        },
    )
    .await;
    let event = loop {
        let m = next(&mut conn).await;
        assert_eq!(m["type"], "event", "{m}");
        if m["event"]["type"] == "status_changed" {
            break m["event"].clone();
        }
    };
    assert_eq!(event["data"]["to"], "in_progress", "{event}");
    assert_eq!(event["data"]["source"], "a2a", "{event}");
    assert_eq!(event["data"]["sourceExternalId"], TASK, "{event}");
}
