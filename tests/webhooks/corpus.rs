//! The bad-input corpus: malformed deliveries to every webhook endpoint and malformed
//! API bodies, each with the answer it must get (status, error code, and a word of the
//! message naming what was wrong), and nothing stored by any of them.

use serde_json::{json, Value};
use statsync::systems::signature;

use super::support::*;
use super::{linear_body, now_ms};

/// The body limit of the corpus app: small, so that the oversized cases stay cheap.
const LIMIT: usize = 64 * 1024;

#[derive(Clone, Copy)]
enum Endpoint {
    Github,
    Linear,
    Agent,
    Api,
}

/// How a case is signed: correctly (over its own body), not at all, or with a given value.
enum Signature {
    Good,
    Absent,
    Value(String),
}

struct Case {
    name: String,
    endpoint: Endpoint,
    body: Vec<u8>,
    signature: Signature,
    /// Headers on top of the endpoint's usual ones; `None` removes a usual one.
    headers: Vec<(&'static str, Option<String>)>,
    status: u16,
    code: &'static str,
    /// Text the error message must contain: the field, header or problem it names.
    names: &'static str,
}

impl Case {
    fn new(endpoint: Endpoint, name: impl Into<String>, body: impl Into<Vec<u8>>) -> Self {
        Case {
            name: name.into(),
            endpoint,
            body: body.into(),
            signature: Signature::Good,
            headers: Vec::new(),
            status: 0,
            code: "",
            names: "",
        }
    }

    fn github(name: impl Into<String>, body: impl Into<Vec<u8>>) -> Self {
        Case::new(Endpoint::Github, name, body)
    }

    fn linear(name: impl Into<String>, body: impl Into<Vec<u8>>) -> Self {
        Case::new(Endpoint::Linear, name, body)
    }

    fn agent(name: impl Into<String>, body: impl Into<Vec<u8>>) -> Self {
        Case::new(Endpoint::Agent, name, body)
    }

    fn api(name: impl Into<String>, body: impl Into<Vec<u8>>) -> Self {
        Case::new(Endpoint::Api, name, body)
    }

    fn signed(mut self, signature: Signature) -> Self {
        self.signature = signature;
        self
    }

    fn header(mut self, name: &'static str, value: Option<&str>) -> Self {
        self.headers.push((name, value.map(str::to_owned)));
        self
    }

    fn answers(mut self, status: u16, code: &'static str, names: &'static str) -> Self {
        self.status = status;
        self.code = code;
        self.names = names;
        self
    }

    /// 400 MALFORMED_REQUEST naming `what`.
    fn malformed(self, what: &'static str) -> Self {
        self.answers(400, "MALFORMED_REQUEST", what)
    }

    /// 401 INVALID_SIGNATURE naming `what`.
    fn unsigned(self, what: &'static str) -> Self {
        self.answers(401, "INVALID_SIGNATURE", what)
    }

    fn path(&self) -> &'static str {
        match self.endpoint {
            Endpoint::Github => "/webhooks/github",
            Endpoint::Linear => "/webhooks/linear",
            Endpoint::Agent => "/webhooks/agentapi",
            Endpoint::Api => "/api/v1/status",
        }
    }

    /// The endpoint's usual headers, this case's changes applied.
    fn headers(&self) -> Vec<(&'static str, String)> {
        let good = match self.endpoint {
            Endpoint::Github | Endpoint::Agent => {
                signature::sign_prefixed(secret(self.endpoint), &self.body)
            }
            Endpoint::Linear => signature::sign_hex(LINEAR_SECRET.as_bytes(), &self.body),
            Endpoint::Api => String::new(),
        };
        let sig = match &self.signature {
            Signature::Good => Some(good),
            Signature::Absent => None,
            Signature::Value(v) => Some(v.clone()),
        };
        let mut headers: Vec<(&'static str, String)> = match self.endpoint {
            Endpoint::Github => vec![
                ("X-GitHub-Event", "pull_request".into()),
                ("X-GitHub-Delivery", format!("corpus-{}", self.name)),
            ],
            Endpoint::Linear => vec![
                ("Linear-Event", "Issue".into()),
                ("Linear-Delivery", format!("corpus-{}", self.name)),
            ],
            Endpoint::Agent => vec![("X-Statsync-Delivery", format!("corpus-{}", self.name))],
            Endpoint::Api => vec![("Authorization", format!("Bearer {API_TOKEN}"))],
        };
        headers.push(("content-type", "application/json".into()));
        if let (Some(sig), Some(name)) = (sig, signature_header(self.endpoint)) {
            headers.push((name, sig));
        }
        for (name, value) in &self.headers {
            headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
            if let Some(v) = value {
                headers.push((name, v.clone()));
            }
        }
        headers
    }
}

fn secret(endpoint: Endpoint) -> &'static [u8] {
    match endpoint {
        Endpoint::Github => GITHUB_SECRET.as_bytes(),
        Endpoint::Linear => LINEAR_SECRET.as_bytes(),
        Endpoint::Agent | Endpoint::Api => AGENT_SECRET.as_bytes(),
    }
}

fn signature_header(endpoint: Endpoint) -> Option<&'static str> {
    match endpoint {
        Endpoint::Github => Some("X-Hub-Signature-256"),
        Endpoint::Linear => Some("Linear-Signature"),
        Endpoint::Agent => Some("X-Statsync-Signature"),
        Endpoint::Api => None,
    }
}

fn pr_fixture() -> Value {
    serde_json::from_slice(&fixture("github/pull_request.opened.json")).unwrap()
}

fn linear_fixture() -> Value {
    serde_json::from_slice(&linear_body(Some(now_ms()))).unwrap()
}

fn agent_report() -> Value {
    json!({"taskId": "task-1", "state": "working", "timestamp": "2026-11-23T09:00:00Z"})
}

/// `base` with the value at a dotted path replaced, or removed for `None`.
fn with(mut base: Value, path: &str, value: Option<Value>) -> Vec<u8> {
    let (parent, last) = match path.rsplit_once('.') {
        Some((parent, last)) => (Some(parent), last),
        None => (None, path),
    };
    let mut target = &mut base;
    for segment in parent.into_iter().flat_map(|p| p.split('.')) {
        target = &mut target[segment];
    }
    let map = target.as_object_mut().expect("an object on the path");
    match value {
        Some(v) => map.insert(last.to_owned(), v),
        None => map.remove(last),
    };
    serde_json::to_vec(&base).unwrap()
}

/// `{"action": [[[…]]]}`, `depth` levels deep, in a field every parser reads (GitHub's
/// skips what it does not read without building it, however deep).
fn deeply_nested(depth: usize) -> Vec<u8> {
    format!("{{\"action\":{}{}}}", "[".repeat(depth), "]".repeat(depth)).into_bytes()
}

/// The same malformations for every endpoint whose body is signed JSON.
fn common(make: fn(String, Vec<u8>) -> Case, valid: &[u8]) -> Vec<Case> {
    let truncated = valid[..valid.len() / 2].to_vec();
    let mut invalid_utf8 = br#"{"action":"opened","x":""#.to_vec();
    invalid_utf8.extend_from_slice(&[0xff, 0xfe, 0xc3, 0x28]);
    invalid_utf8.extend_from_slice(br#""}"#);
    let good = signature::sign_hex(b"any", valid);
    vec![
        make("empty body".into(), Vec::new()).malformed("EOF"),
        make("truncated JSON".into(), truncated).malformed("JSON"),
        make("invalid UTF-8".into(), invalid_utf8).malformed("JSON"),
        make("10,000 levels deep".into(), deeply_nested(10_000)).malformed("recursion limit"),
        make("a JSON array".into(), b"[1,2,3]".to_vec()).malformed("expected a JSON object"),
        make("a bare string".into(), b"\"hello\"".to_vec()).malformed("expected a JSON object"),
        make(
            "a number too large for any type".into(),
            b"{\"action\":1e400}".to_vec(),
        )
        .malformed("number out of range"),
        make("trailing bytes".into(), [valid, b"}"].concat()).malformed("trailing characters"),
        make("missing signature".into(), valid.to_vec())
            .signed(Signature::Absent)
            .unsigned("missing"),
        make("non-hex signature".into(), valid.to_vec())
            .signed(Signature::Value(format!("sha256={}", "zz".repeat(32))))
            .unsigned("hexadecimal"),
        make("65-digit signature".into(), valid.to_vec())
            .signed(Signature::Value(format!("sha256={good}0")))
            .unsigned("64 hex digits"),
        make("wrong-secret signature".into(), valid.to_vec())
            .signed(Signature::Value(format!("sha256={good}")))
            .unsigned("does not match"),
        make(
            "oversized body".into(),
            [b"{\"a\":\"".as_slice(), &vec![b'x'; LIMIT], b"\"}"].concat(),
        )
        .answers(413, "PAYLOAD_TOO_LARGE", "max_body_bytes"),
    ]
}

fn webhook_cases() -> Vec<Case> {
    let mut cases = Vec::new();

    // GitHub: `X-Hub-Signature-256: sha256=<hex>`.
    let pr = serde_json::to_vec(&pr_fixture()).unwrap();
    cases.extend(common(|n, b| Case::github(format!("github {n}"), b), &pr));
    let good = signature::sign_prefixed(GITHUB_SECRET.as_bytes(), &pr);
    cases.extend([
        Case::github("github signature without its prefix", pr.clone())
            .signed(Signature::Value(good["sha256=".len()..].to_owned()))
            .unsigned("sha256="),
        Case::github("github signature with an upper-case prefix", pr.clone())
            .signed(Signature::Value(good.replacen("sha256=", "SHA256=", 1)))
            .unsigned("sha256="),
        Case::github("github signature of 32 digits", pr.clone())
            .signed(Signature::Value(good[..7 + 32].to_owned()))
            .unsigned("64 hex digits"),
        Case::github("github missing event header", pr.clone())
            .header("X-GitHub-Event", None)
            .malformed("X-GitHub-Event"),
        Case::github("github empty delivery id", pr.clone())
            .header("X-GitHub-Delivery", Some(" "))
            .malformed("X-GitHub-Delivery"),
        Case::github("github delivery id of 201 characters", pr.clone())
            .header("X-GitHub-Delivery", Some(&"d".repeat(201)))
            .malformed("X-GitHub-Delivery"),
        Case::github(
            "github form-encoded delivery",
            format!("payload={}", "%7B%7D").into_bytes(),
        )
        .header("content-type", Some("application/x-www-form-urlencoded"))
        .malformed("application/json"),
        Case::github(
            "github number as a string",
            with(pr_fixture(), "pull_request.number", Some(json!("7"))),
        )
        .malformed("pull_request.number"),
        Case::github(
            "github number beyond u64",
            // Parsed as a float by serde_json, which no issue number can be.
            with(
                pr_fixture(),
                "pull_request.number",
                Some(serde_json::from_str("123456789012345678901234567890").unwrap()),
            ),
        )
        .malformed("pull_request.number"),
        Case::github(
            "github negative number",
            with(pr_fixture(), "pull_request.number", Some(json!(-1))),
        )
        .malformed("pull_request.number"),
        Case::github(
            "github repository as a string",
            with(pr_fixture(), "repository", Some(json!("octo/repo"))),
        )
        .malformed("repository"),
        Case::github("github missing action", with(pr_fixture(), "action", None))
            .malformed("action"),
        Case::github(
            "github draft as a string",
            with(pr_fixture(), "pull_request.draft", Some(json!("yes"))),
        )
        .malformed("pull_request.draft"),
    ]);

    // Linear: `Linear-Signature: <hex>`, `webhookTimestamp` in the body.
    let issue = linear_body(Some(now_ms()));
    cases.extend(
        common(|n, b| Case::linear(format!("linear {n}"), b), &issue)
            .into_iter()
            .map(|c| match &c.signature {
                // Linear's header is the bare hex.
                Signature::Value(v) => {
                    let bare = v.trim_start_matches("sha256=").to_owned();
                    c.signed(Signature::Value(bare))
                }
                _ => c,
            }),
    );
    let good = signature::sign_hex(LINEAR_SECRET.as_bytes(), &issue);
    cases.extend([
        Case::linear("linear signature with a prefix", issue.clone())
            .signed(Signature::Value(format!("sha256={good}")))
            .unsigned("64 hex digits"),
        Case::linear("linear empty signature", issue.clone())
            .signed(Signature::Value(String::new()))
            .unsigned("64 hex digits"),
        Case::linear(
            "linear webhookTimestamp as text",
            with(linear_fixture(), "webhookTimestamp", Some(json!("now"))),
        )
        .malformed("webhookTimestamp"),
        Case::linear(
            "linear webhookTimestamp beyond i64",
            with(
                linear_fixture(),
                "webhookTimestamp",
                Some(serde_json::from_str("99999999999999999999999").unwrap()),
            ),
        )
        .malformed("webhookTimestamp"),
        Case::linear(
            "linear missing data.id",
            with(linear_fixture(), "data.id", None),
        )
        .malformed("data.id"),
        Case::linear(
            "linear state type as a number",
            with(linear_fixture(), "data.state.type", Some(json!(3))),
        )
        .malformed("data.state.type"),
        Case::linear(
            "linear data as an array",
            with(linear_fixture(), "data", Some(json!([1]))),
        )
        .malformed("data"),
        Case::linear(
            "linear updatedAt not a timestamp",
            with(linear_fixture(), "data.updatedAt", Some(json!("yesterday"))),
        )
        .malformed("data.updatedAt"),
        Case::linear(
            "linear empty delivery id",
            linear_fixture().to_string().into_bytes(),
        )
        .header("Linear-Delivery", Some(""))
        .malformed("Linear-Delivery"),
    ]);

    // Agent API: `X-Statsync-Signature: sha256=<hex>`.
    let report = serde_json::to_vec(&agent_report()).unwrap();
    cases.extend(common(|n, b| Case::agent(format!("agent {n}"), b), &report));
    let good = signature::sign_prefixed(AGENT_SECRET.as_bytes(), &report);
    cases.extend([
        Case::agent("agent signature without its prefix", report.clone())
            .signed(Signature::Value(good["sha256=".len()..].to_owned()))
            .unsigned("sha256="),
        Case::agent(
            "agent taskId as a number",
            with(agent_report(), "taskId", Some(json!(12))),
        )
        .malformed("taskId"),
        Case::agent(
            "agent blank taskId",
            with(agent_report(), "taskId", Some(json!("  "))),
        )
        .malformed("taskId"),
        Case::agent(
            "agent unknown state",
            with(agent_report(), "state", Some(json!("sleeping"))),
        )
        // The message lists the valid ones.
        .malformed("input_required"),
        Case::agent(
            "agent missing timestamp",
            with(agent_report(), "timestamp", None),
        )
        .malformed("timestamp"),
        Case::agent(
            "agent timestamp out of range",
            with(
                agent_report(),
                "timestamp",
                Some(json!("99999-01-01T00:00:00Z")),
            ),
        )
        .malformed("timestamp"),
        Case::agent(
            "agent link not http",
            with(agent_report(), "link", Some(json!("javascript:alert(1)"))),
        )
        .malformed("link"),
        Case::agent(
            "agent issue that names nothing",
            with(agent_report(), "issue", Some(json!("o/r#x"))),
        )
        .malformed("issue"),
        Case::agent(
            "agent summary as an object",
            with(agent_report(), "summary", Some(json!({"a": 1}))),
        )
        .malformed("summary"),
    ]);
    cases
}

fn api_cases() -> Vec<Case> {
    let status = |body: Value| serde_json::to_vec(&body).unwrap();
    let ref_body = json!({"ref": {"system": "linear", "externalId": "ENG-1"}, "status": "done"});
    vec![
        Case::api("api empty body", Vec::new()).malformed("EOF"),
        Case::api("api truncated JSON", b"{\"status\":\"do".to_vec()).malformed("EOF"),
        Case::api("api invalid UTF-8", b"{\"status\":\"\xff\"}".to_vec()).malformed("JSON"),
        Case::api("api not JSON content", status(ref_body.clone()))
            .header("content-type", Some("text/plain"))
            .malformed("Content type"),
        Case::api("api status as a number", status(json!({"entityId": uuid::Uuid::new_v4(), "status": 5})))
            .malformed("`status`: invalid type: integer `5`"),
        Case::api("api nested field of the wrong type", status(json!({"ref": {"system": "linear", "externalId": 7}, "status": "done"})))
            .malformed("`ref.externalId`: invalid type"),
        Case::api("api trailing bytes after the object", [status(json!({"entityId": uuid::Uuid::new_v4(), "status": "done"})), b" x".to_vec()].concat())
            .malformed("trailing characters"),
        Case::api("api entityId not a UUID", status(json!({"entityId": "seven", "status": "done"})))
            .malformed("UUID"),
        Case::api(
            "api unknown source system",
            status(json!({"ref": {"system": "nosuch", "externalId": "X-1"}, "status": "done"})),
        )
        .malformed("nosuch"),
        Case::api(
            "api sourceTimestamp not RFC 3339",
            status(json!({"ref": {"system": "linear", "externalId": "ENG-1"}, "status": "done", "sourceTimestamp": "noon"})),
        )
        .malformed("sourceTimestamp"),
        Case::api(
            "api metadata 10,000 levels deep",
            format!(
                "{{\"ref\":{{\"system\":\"linear\",\"externalId\":\"ENG-1\"}},\"status\":\"done\",\"metadata\":{}{}}}",
                "[".repeat(10_000),
                "]".repeat(10_000)
            )
            .into_bytes(),
        )
        .malformed("recursion limit"),
        Case::api(
            "api unknown status on a new ref",
            status(json!({"ref": {"system": "linear", "externalId": "ENG-1"}, "status": "doing"})),
        )
        // Every canonical status is listed.
        .answers(422, "INVALID_STATUS", "triage, backlog, todo, in_progress, in_review, blocked, done, cancelled"),
        Case::api(
            "api oversized body",
            status(json!({"ref": {"system": "linear", "externalId": "ENG-1"}, "status": "done", "metadata": {"x": "y".repeat(LIMIT)}})),
        )
        .answers(413, "PAYLOAD_TOO_LARGE", "max_body_bytes"),
        Case::api("api without a token", status(ref_body))
            .header("Authorization", None)
            .answers(401, "UNAUTHORIZED", "Bearer"),
    ]
}

#[actix_web::test]
async fn every_malformed_delivery_and_api_body_gets_its_answer_and_stores_nothing() {
    let limit = LIMIT.to_string();
    let app = spawn_app_with(&[
        ("STATSYNC__SERVER__WORKER_ENABLED", "false"),
        ("STATSYNC__HTTP__MAX_BODY_BYTES", &limit),
    ])
    .await;
    let cases: Vec<Case> = webhook_cases().into_iter().chain(api_cases()).collect();
    let mut failures = Vec::new();
    for case in &cases {
        let mut req = app.http.post(format!("{}{}", app.address, case.path()));
        for (name, value) in case.headers() {
            req = req.header(name, value);
        }
        let r = req.body(case.body.clone()).send().await.expect("request");
        let status = r.status().as_u16();
        let body: Value = r.json().await.unwrap_or(Value::Null);
        let message = body["error"]["message"].as_str().unwrap_or_default();
        if status != case.status
            || body["error"]["code"] != case.code
            || !message.contains(case.names)
        {
            failures.push(format!(
                "{}: expected {} {} naming `{}`, got {status} {body}",
                case.name, case.status, case.code, case.names
            ));
        }
        if body["error"]["retryable"] != false {
            failures.push(format!(
                "{}: a bad request is not retryable: {body}",
                case.name
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases answered wrongly:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    for table in ["inbound_events", "entities", "status_transitions", "events"] {
        assert_eq!(
            app.count(&format!("SELECT count(*) FROM {table}")).await,
            0,
            "nothing is stored from a refused request ({table})"
        );
    }
}
