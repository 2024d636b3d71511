//! `/mcp`: the MCP server over real HTTP, spoken as JSON-RPC the way any Streamable HTTP
//! client does (initialize, the initialized notification, then requests), against the
//! live application: every tool listed with its schema and called, the answers the
//! API's own, bad input a tool error naming what was wrong, the API's token required.

use super::*;

/// A Streamable HTTP client, stateless as the server is: one POST per message.
struct Mcp<'a> {
    app: &'a TestApp,
    token: Option<&'a str>,
    protocol: Option<String>,
    next_id: i64,
}

impl<'a> Mcp<'a> {
    fn new(app: &'a TestApp) -> Self {
        Mcp {
            app,
            token: Some(API_TOKEN),
            protocol: None,
            next_id: 1,
        }
    }

    async fn post(&self, message: Value) -> reqwest::Response {
        let mut req = self
            .app
            .http
            .post(format!("{}/mcp", self.app.address))
            .header("Accept", "application/json, text/event-stream")
            .json(&message);
        if let Some(t) = self.token {
            req = req.bearer_auth(t);
        }
        if let Some(v) = &self.protocol {
            req = req.header("MCP-Protocol-Version", v);
        }
        req.send().await.expect("request")
    }

    /// A request's JSON-RPC answer (a JSON body, or the one message of an SSE body).
    async fn request(&mut self, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        let message = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        let r = self.post(message).await;
        assert_eq!(r.status(), 200, "{method}");
        let sse = r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream");
        let text = r.text().await.expect("body");
        let json = if sse {
            text.lines()
                .filter_map(|l| l.strip_prefix("data:"))
                .map(str::trim)
                .find(|d| !d.is_empty())
                .expect("an SSE message")
                .to_owned()
        } else {
            text
        };
        let answer: Value = serde_json::from_str(&json).expect("JSON-RPC");
        assert_eq!(answer["id"], id, "{answer}");
        answer
    }

    async fn initialize(&mut self) -> Value {
        let answer = self
            .request(
                "initialize",
                json!({
                    "protocolVersion": "2025-06-18",
                    "capabilities": {},
                    "clientInfo": {"name": "statsync-tests", "version": "1"}
                }),
            )
            .await;
        let result = answer["result"].clone();
        self.protocol = Some(result["protocolVersion"].as_str().expect("version").into());
        let r = self
            .post(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
            .await;
        assert_eq!(r.status(), 202);
        result
    }

    /// `tools/call`: the result, whose `isError` tells a tool error.
    async fn call(&mut self, tool: &str, arguments: Value) -> Value {
        let answer = self
            .request("tools/call", json!({"name": tool, "arguments": arguments}))
            .await;
        assert!(answer.get("error").is_none(), "{tool}: {answer}");
        answer["result"].clone()
    }

    /// A tool's answer, which must not be an error.
    async fn ok(&mut self, tool: &str, arguments: Value) -> Value {
        let result = self.call(tool, arguments).await;
        assert_eq!(result["isError"], false, "{tool}: {result}");
        let text = result["content"][0]["text"].as_str().expect("text");
        let structured = result["structuredContent"].clone();
        assert_eq!(serde_json::from_str::<Value>(text).unwrap(), structured);
        structured
    }

    /// A tool error: its code and message.
    async fn refused(&mut self, tool: &str, arguments: Value) -> (String, String) {
        let result = self.call(tool, arguments).await;
        assert_eq!(result["isError"], true, "{tool}: {result}");
        let error = &result["structuredContent"]["error"];
        let text = result["content"][0]["text"].as_str().expect("text");
        let (code, message) = (
            error["code"].as_str().unwrap(),
            error["message"].as_str().unwrap(),
        );
        assert_eq!(text, format!("{code}: {message}"));
        (code.to_owned(), message.to_owned())
    }
}

#[actix_web::test]
async fn an_agent_lists_the_tools_and_calls_each_over_mcp() {
    let app = spawn_app_with(&[("STATSYNC__SYNC__CONFLICT_STRATEGY", "manual")]).await;
    let id = linked_entity(&app, ("Todo", "unstarted"), "todo").await;
    let mut mcp = Mcp::new(&app);
    let info = mcp.initialize().await;
    assert_eq!(info["serverInfo"]["name"], "statsync", "{info}");
    assert!(info["capabilities"]["tools"].is_object(), "{info}");

    let listed = mcp.request("tools/list", json!({})).await;
    let tools = listed["result"]["tools"].as_array().expect("tools").clone();
    let names: Vec<&str> = tools.iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(names.len(), 6, "{names:?}");
    for name in statsync::http::mcp::TOOL_NAMES {
        let tool = tools.iter().find(|t| t["name"] == name).expect(name);
        assert!(!tool["description"].as_str().unwrap().is_empty(), "{name}");
        assert_eq!(tool["inputSchema"]["type"], "object", "{name}: {tool}");
    }
    let set = tools.iter().find(|t| t["name"] == "set_status").unwrap();
    assert_eq!(
        set["inputSchema"]["required"],
        json!(["ref", "status"]),
        "{set}"
    );
    let statuses = &set["inputSchema"]["properties"]["status"]["enum"];
    assert!(
        statuses.as_array().unwrap().contains(&json!("in_review")),
        "{set}"
    );

    // An agent on ENG-123 reports progress: the decision, with its reason.
    let decision = mcp
        .ok(
            "set_status",
            json!({"ref": "ENG-123", "status": "in_progress", "reason": "started on it"}),
        )
        .await;
    assert_eq!(decision["decision"], "applied", "{decision}");
    assert_eq!(decision["entityId"], id.as_str());
    assert_eq!(decision["status"], "in_progress");
    assert_eq!(decision["version"], 2);
    assert!(
        !decision["reason"].as_str().unwrap().is_empty(),
        "{decision}"
    );
    // The REST API's answer for the same entity is the same entity.
    let rest = app
        .api("GET", &format!("/api/v1/entities/{id}"), None)
        .await;

    let status = mcp.ok("get_status", json!({"ref": GITHUB_ISSUE})).await;
    assert_eq!(status["entity"], rest.body, "{status}");
    let systems = status["systems"].as_array().expect("systems");
    let linear = systems.iter().find(|s| s["system"] == "linear").unwrap();
    assert_eq!(linear["externalId"], LINEAR_ID);
    assert_eq!(linear["status"], "todo", "what Linear said last: {status}");
    let by_object = json!({"ref": {"system": "linear", "externalId": LINEAR_ID}});
    assert_eq!(
        mcp.ok("get_status", by_object).await["entity"]["id"],
        id.as_str()
    );

    let history = mcp.ok("history", json!({"ref": id, "limit": 1})).await;
    let transitions = history["transitions"].as_array().unwrap();
    assert_eq!(transitions.len(), 1, "{history}");
    assert_eq!(transitions[0]["toStatus"], "in_progress", "{history}");

    // Linear disagrees inside the window: under `manual` a conflict waits.
    let done = linear_issue_update(LINEAR_ID, "ENG-123", "Done", "completed", Utc::now());
    assert_eq!(app.linear("mcp-conflict", &done).await.status, 200);
    app.drained().await;
    let open = mcp.ok("list_conflicts", json!({})).await;
    let conflict = open["conflicts"][0]["id"]
        .as_str()
        .expect("an open conflict");
    let resolved = mcp
        .ok(
            "resolve_conflict",
            json!({"id": conflict, "status": "done"}),
        )
        .await;
    assert_eq!(resolved["status"], "done", "{resolved}");
    assert_eq!(
        mcp.ok("list_conflicts", json!({})).await["conflicts"],
        json!([])
    );
    let closed = mcp.ok("list_conflicts", json!({"state": "resolved"})).await;
    assert_eq!(closed["conflicts"][0]["resolvedBy"], "mcp", "{closed}");

    let room = format!("entity:{id}");
    let events = mcp.ok("recent_events", json!({"rooms": [room]})).await;
    let types: Vec<&str> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert!(types.contains(&"status_changed"), "{types:?}");
    assert!(types.contains(&"conflict_resolved"), "{types:?}");
    // Reading on from `lastSeq` gives only later events (the outbox may still add some).
    let last = events["lastSeq"].as_i64().expect("lastSeq");
    let after = mcp.ok("recent_events", json!({"after": last})).await;
    for e in after["events"].as_array().unwrap() {
        assert!(e["seq"].as_i64().unwrap() > last, "{after}");
    }
}

#[actix_web::test]
async fn mcp_answers_bad_input_as_tool_errors_and_wants_the_api_token() {
    let app = spawn_app().await;
    let mut anonymous = Mcp::new(&app);
    anonymous.token = None;
    let r = anonymous
        .post(json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}))
        .await;
    assert_eq!(r.status(), 401);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "UNAUTHORIZED", "{body}");
    anonymous.token = Some("not-the-token");
    let r = anonymous
        .post(json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}))
        .await;
    assert_eq!(r.status(), 401);
    let r = app
        .http
        .get(format!("{}/mcp", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405, "no server stream: stateless");
    assert_eq!(r.headers()["allow"], "POST");

    let mut mcp = Mcp::new(&app);
    mcp.initialize().await;
    let (code, message) = mcp
        .refused("set_status", json!({"ref": "ENG-1", "status": "doing"}))
        .await;
    assert_eq!(code, "INVALID_STATUS");
    assert!(
        message.contains("`doing`") && message.contains("in_review"),
        "{message}"
    );
    let (code, message) = mcp.refused("get_status", json!({"ref": "ENG-999"})).await;
    assert_eq!(code, "NOT_FOUND");
    assert!(message.contains("ENG-999"), "{message}");
    let (code, message) = mcp.refused("get_status", json!({"ref": "a b"})).await;
    assert_eq!(code, "MALFORMED_REQUEST");
    assert!(
        message.contains("`ref`") && message.contains("ENG-123"),
        "{message}"
    );
    let (_, message) = mcp.refused("get_status", json!({"ref": 12})).await;
    assert!(message.contains("`ref` must be"), "{message}");
    let (_, message) = mcp
        .refused(
            "history",
            json!({"ref": {"system": "jira", "externalId": "X-1"}}),
        )
        .await;
    assert!(
        message.contains("`ref.system`") && message.contains("jira"),
        "{message}"
    );
    let (_, message) = mcp.refused("set_status", json!({"status": "done"})).await;
    assert!(message.contains("missing field `ref`"), "{message}");
    let (_, message) = mcp
        .refused("recent_events", json!({"after": "yesterday"}))
        .await;
    assert!(message.contains("`after`"), "{message}");
    let (code, _) = mcp
        .refused(
            "resolve_conflict",
            json!({"id": "0b7d5c2e-6f1a-4c3b-9a51-2f0e7d9c1a44", "status": "done"}),
        )
        .await;
    assert_eq!(code, "NOT_FOUND");
    let (_, message) = mcp.refused("list_conflicts", json!({"state": "all"})).await;
    assert!(message.contains("`state`"), "{message}");
}
