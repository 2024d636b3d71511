//! Bad input is a 400 naming the field, everywhere: every parameter and body field of
//! `/api/v1` gets U+0000, a lone surrogate and an over-long value, and nothing answers
//! 5xx (U+0000 used to reach PostgreSQL, which refused it: a 500).

use super::*;

const NUL_QUERY: &str = "a%00b";
/// `\ud800` as UTF-8 bytes (which UTF-8 forbids), percent-encoded.
const SURROGATE_QUERY: &str = "%ED%A0%80";
const LONG_QUERY_LEN: usize = 5_000;
const LONG_BODY_LEN: usize = 70_000;
const PLACEHOLDER: &str = "@@bad@@";

/// A path, its parameters with valid values, and what a 404 there says was not found.
type Endpoint = (String, Vec<(&'static str, &'static str)>, &'static str);

struct Answered {
    status: u16,
    body: String,
}

async fn send(app: &TestApp, method: &str, path: &str, body: Option<String>) -> Answered {
    let url = format!("{}{path}", app.address);
    let mut req = match method {
        "GET" => app.http.get(url),
        _ => app.http.post(url),
    }
    .bearer_auth(API_TOKEN);
    if let Some(body) = body {
        req = req.header("content-type", "application/json").body(body);
    }
    let r = req.send().await.expect("request");
    let status = r.status().as_u16();
    // A stream that opened is not an error answer: its first bytes are enough.
    let body = if r
        .headers()
        .get("content-type")
        .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"))
    {
        String::new()
    } else {
        r.text().await.unwrap_or_default()
    };
    Answered { status, body }
}

/// Asserts `a` is a 4xx naming `field` (or, for a value that is merely unknown, a 404
/// naming what was not found).
fn named(a: &Answered, what: &str, field: &str, found: &str) {
    assert!(a.status < 500, "{what}: answered {}: {}", a.status, a.body);
    assert!(
        (400..500).contains(&a.status) || a.status == 200,
        "{what}: answered {}: {}",
        a.status,
        a.body
    );
    if a.status == 400 {
        assert!(
            a.body.contains(field),
            "{what}: 400 does not name `{field}`: {}",
            a.body
        );
    }
    if a.status == 404 {
        assert!(
            a.body.contains(found),
            "{what}: 404 does not say what: {}",
            a.body
        );
    }
}

#[actix_web::test]
async fn nul_lone_surrogates_and_over_long_values_are_4xx_naming_the_field_on_every_endpoint() {
    let app = spawn_app().await;
    let entity = app
        .link_new(json!({"refs": [{"system": "linear", "externalId": "bad-input-1"}]}))
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // Query parameters: each in turn bad, the others valid.
    let queries: Vec<Endpoint> = vec![
        (
            "/api/v1/entities".into(),
            vec![("system", "linear"), ("external_id", "bad-input-1")],
            "entity",
        ),
        (
            format!("/api/v1/entities/{entity}/history"),
            vec![("limit", "10")],
            "entity",
        ),
        (
            "/api/v1/conflicts".into(),
            vec![("state", "open"), ("limit", "10")],
            "conflict",
        ),
        (
            "/api/v1/events".into(),
            vec![("after", "0"), ("rooms", "all"), ("limit", "10")],
            "event",
        ),
        (
            "/api/v1/events/stream".into(),
            vec![("rooms", "all"), ("after", "0")],
            "event",
        ),
        (
            "/api/v1/sync/outbox".into(),
            vec![("limit", "10")],
            "outbox",
        ),
        ("/api/v1/sync/history".into(), vec![("limit", "10")], "run"),
        (
            "/api/v1/deliveries".into(),
            vec![("state", "failed"), ("limit", "10")],
            "deliver",
        ),
    ];
    let long = "x".repeat(LONG_QUERY_LEN);
    for (path, params, found) in &queries {
        for (i, (name, _)) in params.iter().enumerate() {
            for (label, bad) in [
                ("NUL", NUL_QUERY),
                ("surrogate", SURROGATE_QUERY),
                ("long", long.as_str()),
            ] {
                let query: Vec<String> = params
                    .iter()
                    .enumerate()
                    .map(|(j, (n, v))| format!("{n}={}", if i == j { bad } else { v }))
                    .collect();
                let url = format!("{path}?{}", query.join("&"));
                let a = send(&app, "GET", &url, None).await;
                let what = format!("GET {path} {name}={label}");
                named(&a, &what, name, found);
                if label != "surrogate" {
                    assert_eq!(a.status, 400, "{what}: {}", a.body);
                }
            }
        }
    }

    // Path parameters: not an id of anything, whatever the bytes.
    for (method, path, found) in [
        ("GET", "/api/v1/entities/{}", "entity"),
        ("GET", "/api/v1/entities/{}/history", "entity"),
        ("POST", "/api/v1/entities/{}/rollback", "entity"),
        ("POST", "/api/v1/conflicts/{}/resolve", "conflict"),
        ("POST", "/api/v1/sync/outbox/{}/retry", "outbox"),
        ("POST", "/api/v1/deliveries/{}/retry", "deliver"),
    ] {
        for (label, bad) in [
            ("NUL", NUL_QUERY),
            ("surrogate", SURROGATE_QUERY),
            ("long", long.as_str()),
        ] {
            let body =
                (method == "POST").then(|| json!({"version": 1, "status": "done"}).to_string());
            let a = send(&app, method, &path.replace("{}", bad), body).await;
            let what = format!("{method} {path} id={label}");
            assert!(
                (400..500).contains(&a.status),
                "{what}: {} {}",
                a.status,
                a.body
            );
            named(&a, &what, "id", found);
        }
    }

    // JSON bodies: each string field in turn bad, the others valid.
    let bodies: Vec<(String, Value, Vec<&str>)> = vec![
        (
            "/api/v1/status".into(),
            json!({"ref": {"system": "linear", "externalId": "bad-input-1"}, "status": "done",
                   "source": "linear", "sourceTimestamp": "2026-01-01T00:00:00Z",
                   "kind": "issue", "metadata": {"note": "n"}}),
            vec![
                "ref.system",
                "ref.externalId",
                "status",
                "source",
                "sourceTimestamp",
                "kind",
                "metadata.note",
            ],
        ),
        (
            "/api/v1/status".into(),
            json!({"entityId": entity, "status": "done"}),
            vec!["entityId"],
        ),
        (
            format!("/api/v1/entities/{entity}/rollback"),
            json!({"version": 1}),
            vec!["version"],
        ),
        (
            "/api/v1/links".into(),
            json!({"entityId": entity, "kind": "issue", "status": "done",
                   "refs": [{"system": "github", "externalId": "acme/api#1"}]}),
            vec![
                "entityId",
                "kind",
                "status",
                "refs[0].system",
                "refs[0].externalId",
            ],
        ),
        (
            format!("/api/v1/conflicts/{}/resolve", uuid::Uuid::new_v4()),
            json!({"status": "done", "resolvedBy": "ada"}),
            vec!["status", "resolvedBy"],
        ),
        (
            "/api/v1/sync/backfill".into(),
            json!({"system": "github", "repo": "acme/api", "mode": "full"}),
            vec!["system", "repo", "mode"],
        ),
        (
            "/api/v1/sync/backfill".into(),
            json!({"system": "linear", "team": "ENG"}),
            vec!["team"],
        ),
        (
            "/api/v1/sync/pause".into(),
            json!({"system": "github"}),
            vec!["system"],
        ),
        (
            "/api/v1/sync/resume".into(),
            json!({"system": "github"}),
            vec!["system"],
        ),
    ];
    let long = "x".repeat(LONG_BODY_LEN);
    for (path, valid, fields) in &bodies {
        for field in fields {
            // Metadata is the caller's own object: the limit is on all of it.
            let name = match field.split_once('.') {
                Some(("metadata", _)) => "metadata",
                _ => field.rsplit(['.', ']']).next().unwrap_or(field),
            };
            for (label, bad) in [
                ("NUL", json!("a\u{0}b").to_string()),
                ("surrogate", "\"\\ud800\"".to_owned()),
                ("long", json!(long).to_string()),
            ] {
                let mut body = valid.clone();
                let pointer = format!("/{}", field.replace("[0]", "/0").replace('.', "/"));
                *body.pointer_mut(&pointer).expect(field) = json!(PLACEHOLDER);
                let text = body
                    .to_string()
                    .replace(&format!("\"{PLACEHOLDER}\""), &bad);
                let a = send(&app, "POST", path, Some(text)).await;
                let what = format!("POST {path} {field}={label}");
                assert!(
                    (400..500).contains(&a.status),
                    "{what}: {} {}",
                    a.status,
                    a.body
                );
                named(&a, &what, name, "conflict");
                if a.status != 404 {
                    assert!(
                        a.body.contains(name),
                        "{what}: does not name `{name}`: {}",
                        a.body
                    );
                }
            }
        }
    }
}

#[actix_web::test]
async fn github_refs_that_would_move_the_outbound_path_are_refused_where_they_enter() {
    let app = spawn_app().await;
    for bad in [
        "./x#1", "../x#1", "o/.#1", "o/..#1", "a/../b#1", "-o/r#1", "o--o/r#1", "o/r#0",
    ] {
        let r = app
            .api(
                "POST",
                "/api/v1/links",
                Some(json!({"refs": [{"system": "github", "externalId": bad}]})),
            )
            .await;
        assert_eq!(r.status, 400, "links {bad}: {}", r.body);
        assert!(
            r.body.to_string().contains("refs[0].externalId"),
            "{}",
            r.body
        );
        let r = app
            .api(
                "POST",
                "/api/v1/status",
                Some(json!({"ref": {"system": "github", "externalId": bad}, "status": "done"})),
            )
            .await;
        assert_eq!(r.status, 400, "status {bad}: {}", r.body);
        assert!(r.body.to_string().contains("ref.externalId"), "{}", r.body);
        let query = bad.replace('#', "%23");
        let r = app
            .api(
                "GET",
                &format!("/api/v1/entities?system=github&external_id={query}"),
                None,
            )
            .await;
        assert_eq!(r.status, 400, "lookup {bad}: {}", r.body);
        assert!(r.body.to_string().contains("external_id"), "{}", r.body);
    }
    // An agent naming such an issue is refused at the door, before it is stored.
    let report = serde_json::to_vec(&json!({
        "taskId": "t-1", "state": "working", "issue": "../x#1",
        "timestamp": Utc::now(),
    }))
    .unwrap();
    let r = app.agent(Some("dots-1"), &report).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.to_string().contains("issue"), "{}", r.body);
    assert_eq!(app.count("SELECT count(*) FROM entity_links").await, 0);
}
