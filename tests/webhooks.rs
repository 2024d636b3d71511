//! Durable webhook intake over real HTTP against real PostgreSQL: every answer code of
//! DESIGN.md, signatures, duplicates, restarts.

#[path = "webhooks/a2a.rs"]
mod a2a;
#[path = "webhooks/corpus.rs"]
mod corpus;
#[path = "webhooks/redeliveries.rs"]
mod redeliveries;
#[path = "webhooks/retention.rs"]
mod retention;
#[path = "webhooks/stored_reading.rs"]
mod stored_reading;
mod support;

use std::time::Duration;

use serde_json::{json, Value};
use statsync::systems::signature;
use support::*;

fn linear_body(timestamp_ms: Option<i64>) -> Vec<u8> {
    let mut body = json!({
        "action": "update",
        "type": "Issue",
        "createdAt": "2026-11-23T09:00:00.000Z",
        "organizationId": "org-1",
        "webhookId": "hook-1",
        "url": "https://linear.app/acme/issue/ENG-123",
        "actor": {"id": "user-1", "name": "Ada", "type": "user"},
        "data": {
            "id": "9f0a0c3e-1111-4222-8333-444455556666",
            "identifier": "ENG-123",
            "title": "Fix login",
            "stateId": "state-started",
            "state": {"id": "state-started", "name": "In Progress", "type": "started", "color": "#f2c94c"},
            "team": {"id": "team-1", "key": "ENG", "name": "Engineering"},
            "teamId": "team-1",
            "updatedAt": "2026-11-23T09:00:00.000Z"
        },
        "updatedFrom": {"stateId": "state-todo", "updatedAt": "2026-11-23T08:00:00.000Z"}
    });
    if let Some(ts) = timestamp_ms {
        body["webhookTimestamp"] = json!(ts);
    }
    serde_json::to_vec(&body).unwrap()
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

#[actix_web::test]
async fn health_and_ready_answer_200_once_migrated() {
    let app = spawn_app().await;
    assert_eq!(app.get("/health").await.status, 200);
    let ready = app.get("/ready").await;
    assert_eq!(ready.status, 200, "{}", ready.body);
    let shipped = statsync::store::migrations::MIGRATIONS.len() as i64;
    assert_eq!(
        app.count("SELECT count(*) FROM schema_migrations").await,
        shipped
    );
}

#[actix_web::test]
async fn a_signed_github_delivery_is_committed_raw_then_acknowledged() {
    let app = spawn_app_with(&[("STATSYNC__SERVER__WORKER_ENABLED", "false")]).await;
    let body = fixture("github/issues.opened.json");
    let r = app.github("issues", "d-1", &body).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body, json!({"status": "accepted"}));
    let row = app
        .db()
        .await
        .query_one(
            "SELECT system, delivery_id, event_type, body, state FROM inbound_events",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "github");
    assert_eq!(row.get::<_, String>(1), "d-1");
    assert_eq!(row.get::<_, String>(2), "issues");
    assert_eq!(
        row.get::<_, Vec<u8>>(3),
        body,
        "the raw bytes are stored unchanged"
    );
    assert_eq!(row.get::<_, String>(4), "pending");
}

#[actix_web::test]
async fn a_repeated_delivery_id_is_acknowledged_once_and_stored_once() {
    let app = spawn_app_with(&[("STATSYNC__SERVER__WORKER_ENABLED", "false")]).await;
    let body = fixture("github/issues.opened.json");
    assert_eq!(
        app.github("issues", "same", &body).await.body["status"],
        "accepted"
    );
    let again = app.github("issues", "same", &body).await;
    assert_eq!(again.status, 200);
    assert_eq!(again.body, json!({"status": "duplicate"}));
    assert_eq!(app.count("SELECT count(*) FROM inbound_events").await, 1);

    // No delivery header: the body's digest is the id, so a resend is still recognised.
    let agent = br#"{"taskId":"t-1","state":"working","timestamp":"2026-11-23T09:00:00Z"}"#;
    assert_eq!(app.agent(None, agent).await.body["status"], "accepted");
    assert_eq!(app.agent(None, agent).await.body["status"], "duplicate");
}

#[actix_web::test]
async fn bad_missing_empty_bare_prefix_and_truncated_signatures_answer_401() {
    let app = spawn_app().await;
    let body = fixture("github/issues.opened.json");
    let good = signature::sign_prefixed(GITHUB_SECRET.as_bytes(), &body);
    let wrong_secret = signature::sign_prefixed(b"not the secret", &body);
    let cases: Vec<(&str, Option<String>)> = vec![
        ("missing", None),
        ("empty", Some(String::new())),
        ("bare prefix", Some("sha256=".into())),
        ("truncated", Some(good[..good.len() - 1].to_owned())),
        ("no prefix", Some(good["sha256=".len()..].to_owned())),
        ("wrong secret", Some(wrong_secret)),
        ("sha1", Some(good.replacen("sha256=", "sha1=", 1))),
    ];
    for (what, sig) in cases {
        let mut headers = vec![
            ("X-GitHub-Event", "issues".to_owned()),
            ("X-GitHub-Delivery", format!("sig-{what}")),
        ];
        if let Some(sig) = sig {
            headers.push(("X-Hub-Signature-256", sig));
        }
        let r = app
            .post_raw("/webhooks/github", &headers, body.clone())
            .await;
        assert_eq!(r.status, 401, "{what}: {}", r.body);
        assert_eq!(r.body["error"]["code"], "INVALID_SIGNATURE", "{what}");
    }
    // A body changed after signing does not verify either.
    let mut tampered = body.clone();
    tampered[10] ^= 1;
    let r = app
        .post_raw(
            "/webhooks/github",
            &[
                ("X-GitHub-Event", "issues".into()),
                ("X-Hub-Signature-256", good),
            ],
            tampered,
        )
        .await;
    assert_eq!(r.status, 401);
    assert_eq!(app.count("SELECT count(*) FROM inbound_events").await, 0);

    let agent = br#"{"taskId":"t-1","state":"working","timestamp":"2026-11-23T09:00:00Z"}"#;
    let r = app
        .post_raw(
            "/webhooks/agentapi",
            &[("X-Statsync-Signature", "sha256=".into())],
            agent.to_vec(),
        )
        .await;
    assert_eq!(r.status, 401);
    let r = app
        .post_raw(
            "/webhooks/linear",
            &[("Linear-Signature", String::new())],
            linear_body(Some(now_ms())),
        )
        .await;
    assert_eq!(r.status, 401);
}

#[actix_web::test]
async fn githubs_documented_signature_vector_verifies_over_http() {
    // GitHub's docs: secret "It's a Secret to Everybody", body "Hello, World!".
    let app = spawn_app_with(&[("GITHUB_WEBHOOK_SECRET", "It's a Secret to Everybody")]).await;
    let documented = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
    let r = app
        .post_raw(
            "/webhooks/github",
            &[
                ("X-GitHub-Event", "issues".into()),
                ("X-Hub-Signature-256", documented.into()),
            ],
            b"Hello, World!".to_vec(),
        )
        .await;
    // The signature is accepted; the body is then refused as what it is: not JSON.
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(r.body["error"]["code"], "MALFORMED_REQUEST");
    let r = app
        .post_raw(
            "/webhooks/github",
            &[
                ("X-GitHub-Event", "issues".into()),
                ("X-Hub-Signature-256", documented.into()),
            ],
            b"Hello, World?".to_vec(),
        )
        .await;
    assert_eq!(r.status, 401);
}

#[actix_web::test]
async fn malformed_bodies_answer_400_naming_what_was_wrong() {
    let app = spawn_app().await;
    let r = app
        .github("issues", "m-1", b"{\"action\": \"opened\", \"issue\": ")
        .await;
    assert_eq!(r.status, 400);
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("JSON"),
        "{}",
        r.body
    );

    let mut v: serde_json::Value =
        serde_json::from_slice(&fixture("github/issues.opened.json")).unwrap();
    v.as_object_mut().unwrap().remove("repository");
    let r = app
        .github("issues", "m-2", &serde_json::to_vec(&v).unwrap())
        .await;
    assert_eq!(r.status, 400);
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("repository"),
        "{}",
        r.body
    );

    // statsync's own stored event types mean nothing from a sender: a row's origin says
    // what statsync stored itself, so a signed delivery naming one is not read at all.
    for (n, internal) in ["statsync_listed_issue", "projects_v2_item.status_read"]
        .iter()
        .enumerate()
    {
        let body = fixture("github/issues.opened.json");
        let id = format!("m-internal-{n}");
        let r = app.github(internal, &id, &body).await;
        assert_eq!(r.status, 200, "{internal}: {}", r.body);
        assert_eq!(r.body["status"], "ignored", "{internal}: {}", r.body);
        let stored = format!("SELECT count(*) FROM inbound_events WHERE delivery_id = '{id}'");
        assert_eq!(app.count(&stored).await, 0, "{internal}");
    }

    let mut v: serde_json::Value =
        serde_json::from_slice(&fixture("github/pull_request.opened.json")).unwrap();
    v["pull_request"]["number"] = json!("seven");
    let r = app
        .github("pull_request", "m-3", &serde_json::to_vec(&v).unwrap())
        .await;
    assert_eq!(r.status, 400);
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("number"),
        "{}",
        r.body
    );

    let body = fixture("github/issues.opened.json");
    let sig = signature::sign_prefixed(GITHUB_SECRET.as_bytes(), &body);
    let r = app
        .post_raw("/webhooks/github", &[("X-Hub-Signature-256", sig)], body)
        .await;
    assert_eq!(r.status, 400);
    assert!(r.body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("X-GitHub-Event"));

    let r = app
        .agent(
            Some("a-bad"),
            br#"{"taskId":"t","state":"sleeping","timestamp":"2026-11-23T09:00:00Z"}"#,
        )
        .await;
    assert_eq!(r.status, 400);
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("state"),
        "{}",
        r.body
    );
    assert_eq!(app.count("SELECT count(*) FROM inbound_events").await, 0);
}

#[actix_web::test]
async fn a_body_over_the_limit_answers_413_before_anything_is_stored() {
    let app = spawn_app_with(&[("STATSYNC__HTTP__MAX_BODY_BYTES", "4096")]).await;
    let mut v: serde_json::Value =
        serde_json::from_slice(&fixture("github/issues.opened.json")).unwrap();
    v["issue"]["body"] = json!("x".repeat(8192));
    let r = app
        .github("issues", "big", &serde_json::to_vec(&v).unwrap())
        .await;
    assert_eq!(r.status, 413, "{}", r.body);
    assert_eq!(r.body["error"]["code"], "PAYLOAD_TOO_LARGE");
    assert_eq!(app.count("SELECT count(*) FROM inbound_events").await, 0);

    // The default limit (1 MiB) takes real deliveries well above actix-web's 256 kB default.
    let app = spawn_app_with(&[("STATSYNC__SERVER__WORKER_ENABLED", "false")]).await;
    v["issue"]["body"] = json!("y".repeat(600 * 1024));
    let r = app
        .github("issues", "large-but-fine", &serde_json::to_vec(&v).unwrap())
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
}

#[actix_web::test]
async fn events_statsync_does_not_act_on_are_acknowledged_and_ignored() {
    let app = spawn_app().await;
    for (event, file) in [
        ("ping", "github/ping.json"),
        ("issues", "github/issues.labeled.json"),
        ("issues", "github/issues.edited.json"),
    ] {
        let r = app
            .github(event, &format!("ign-{file}"), &fixture(file))
            .await;
        assert_eq!(r.status, 200, "{file}: {}", r.body);
        assert_eq!(r.body["status"], "ignored", "{file}");
    }
    let r = app
        .github("star", "ign-star", br#"{"action":"created"}"#)
        .await;
    assert_eq!(r.body["status"], "ignored");
    assert_eq!(app.count("SELECT count(*) FROM inbound_events").await, 0);
}

#[actix_web::test]
async fn every_github_fixture_is_accepted_or_deliberately_ignored() {
    let app = spawn_app_with(&[("STATSYNC__SERVER__WORKER_ENABLED", "false")]).await;
    let expected = [
        ("issues", "issues.opened.json", "accepted"),
        ("issues", "issues.reopened.json", "accepted"),
        ("issues", "issues.edited.json", "ignored"),
        ("issues", "issues.labeled.json", "ignored"),
        ("ping", "ping.json", "ignored"),
        (
            "projects_v2_item",
            "projects_v2_item.edited.json",
            "accepted",
        ),
        ("pull_request", "pull_request.closed.json", "accepted"),
        (
            "pull_request",
            "pull_request.converted_to_draft.json",
            "accepted",
        ),
        ("pull_request", "pull_request.opened.json", "accepted"),
        (
            "pull_request",
            "pull_request.ready_for_review.json",
            "accepted",
        ),
    ];
    let dir = format!("{}/../shared/fixtures/github", env!("CARGO_MANIFEST_DIR"));
    let on_disk = std::fs::read_dir(&dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "json")
        })
        .count();
    assert_eq!(
        on_disk,
        expected.len(),
        "a fixture was added: give it an expectation here"
    );
    for (event, file, outcome) in expected {
        let r = app
            .github(event, file, &fixture(&format!("github/{file}")))
            .await;
        assert_eq!(r.status, 200, "{file}: {}", r.body);
        assert_eq!(r.body["status"], outcome, "{file}");
    }
}

#[actix_web::test]
async fn linear_deliveries_need_a_recent_webhook_timestamp() {
    let app = spawn_app_with(&[("STATSYNC__SERVER__WORKER_ENABLED", "false")]).await;
    let r = app.linear("l-ok", &linear_body(Some(now_ms()))).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.body,
        json!({"status": "accepted"}),
        "Linear counts anything but 200 as failed"
    );

    let r = app
        .linear("l-old", &linear_body(Some(now_ms() - 120_000)))
        .await;
    assert_eq!(r.status, 401, "{}", r.body);
    assert_eq!(r.body["error"]["code"], "STALE_TIMESTAMP");

    let r = app
        .linear("l-future", &linear_body(Some(now_ms() + 120_000)))
        .await;
    assert_eq!(r.status, 401);

    let r = app.linear("l-missing", &linear_body(None)).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("webhookTimestamp"));
    assert_eq!(app.count("SELECT count(*) FROM inbound_events").await, 1);
}

#[actix_web::test]
async fn a_system_without_a_secret_has_no_open_endpoint() {
    let app = spawn_app_with(&[
        ("LINEAR_WEBHOOK_SECRET", ""),
        ("AGENTAPI_WEBHOOK_SECRET", ""),
    ])
    .await;
    let r = app.linear("x", &linear_body(Some(now_ms()))).await;
    assert_eq!(r.status, 404, "{}", r.body);
    let r = app
        .agent(
            None,
            br#"{"taskId":"t","state":"working","timestamp":"2026-11-23T09:00:00Z"}"#,
        )
        .await;
    assert_eq!(r.status, 404);
    assert_eq!(app.count("SELECT count(*) FROM inbound_events").await, 0);
}

#[actix_web::test]
async fn a_database_that_cannot_commit_answers_503_with_retry_after() {
    let app = spawn_app_with(&[
        ("STATSYNC__SERVER__WORKER_ENABLED", "false"),
        ("STATSYNC__DATABASE__ACQUIRE_TIMEOUT_MS", "500"),
        ("STATSYNC__DATABASE__CONNECT_TIMEOUT_S", "1"),
    ])
    .await;
    let admin = connect(&cluster::admin_url().await).await;
    let db = app.database_url.rsplit('/').next().unwrap().to_owned();
    admin
        .batch_execute(&format!("ALTER DATABASE \"{db}\" ALLOW_CONNECTIONS false"))
        .await
        .unwrap();
    admin
        .execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1",
            &[&db],
        )
        .await
        .unwrap();
    let body = fixture("github/issues.opened.json");
    let r = app.github("issues", "while-down", &body).await;
    assert_eq!(r.status, 503, "{}", r.body);
    assert!(r.headers.get("retry-after").is_some());
    assert_eq!(r.body["error"]["retryable"], true);
    assert_eq!(app.get("/ready").await.status, 503);

    admin
        .batch_execute(&format!("ALTER DATABASE \"{db}\" ALLOW_CONNECTIONS true"))
        .await
        .unwrap();
    eventually(
        "the service recovers by itself",
        Duration::from_secs(10),
        || async { app.github("issues", "while-down", &body).await.status == 200 },
    )
    .await;
    assert_eq!(app.count("SELECT count(*) FROM inbound_events").await, 1);
}

#[actix_web::test]
async fn a_full_queue_answers_503_instead_of_growing() {
    let app = spawn_app_with(&[
        ("STATSYNC__SERVER__WORKER_ENABLED", "false"),
        ("STATSYNC__ENGINE__QUEUE_CAPACITY", "2"),
    ])
    .await;
    let body = fixture("github/issues.opened.json");
    assert_eq!(app.github("issues", "q-1", &body).await.status, 200);
    assert_eq!(app.github("issues", "q-2", &body).await.status, 200);
    let r = app.github("issues", "q-3", &body).await;
    assert_eq!(r.status, 503, "{}", r.body);
    assert_eq!(r.headers.get("retry-after").unwrap(), "5");
    assert_eq!(app.count("SELECT count(*) FROM inbound_events").await, 2);
}

#[actix_web::test]
async fn a_restarted_server_keeps_every_stored_delivery() {
    let app = spawn_app_with(&[("STATSYNC__SERVER__WORKER_ENABLED", "false")]).await;
    let body = fixture("github/pull_request.opened.json");
    for i in 0..20 {
        assert_eq!(
            app.github("pull_request", &format!("r-{i}"), &body)
                .await
                .status,
            200
        );
    }
    app.stop().await;
    let again = spawn_app_on(
        &app.database_url,
        &[("STATSYNC__SERVER__WORKER_ENABLED", "false")],
    )
    .await;
    assert_eq!(again.get("/ready").await.status, 200);
    assert_eq!(again.count("SELECT count(*) FROM inbound_events").await, 20);
    // ids stored before the restart are still recognised
    assert_eq!(
        again.github("pull_request", "r-7", &body).await.body["status"],
        "duplicate"
    );
}

#[actix_web::test]
async fn metrics_count_deliveries_in_the_prometheus_text_format() {
    let app = spawn_app_with(&[("STATSYNC__SERVER__WORKER_ENABLED", "false")]).await;
    app.github("issues", "m-1", &fixture("github/issues.opened.json"))
        .await;
    app.post_raw(
        "/webhooks/github",
        &[("X-GitHub-Event", "issues".into())],
        b"{}".to_vec(),
    )
    .await;
    let r = app
        .http
        .get(format!("{}/metrics", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    assert!(
        text.contains(r#"statsync_webhooks_received_total{event="issues",result="accepted",system="github"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"statsync_webhook_signature_failures_total{system="github"} 1"#),
        "{text}"
    );
}

#[actix_web::test]
async fn a_large_event_statsync_does_not_read_is_ignored_from_its_header_unread() {
    let app = spawn_app().await;
    // A push of 2,048 commits, as the adversarial pass sent: larger than any delivery
    // statsync reads.
    let commits: Vec<serde_json::Value> = (0..2048)
        .map(|i| {
            json!({
                "id": format!("{i:040x}"),
                "message": "m".repeat(500),
                "author": {"name": "Ada", "email": "ada@example.com"},
                "added": [], "removed": [], "modified": ["src/lib.rs"]
            })
        })
        .collect();
    let push = serde_json::to_vec(&json!({"ref": "refs/heads/main", "commits": commits})).unwrap();
    assert!(push.len() > app.settings.http.max_body_bytes);
    let r = app.github("push", "push-1", &push).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["status"], "ignored");
    // Unread, its signature is not checked: nothing is stored or done either way.
    let r = app
        .post_raw(
            "/webhooks/github",
            &[("X-GitHub-Event", "push".into())],
            push.clone(),
        )
        .await;
    assert_eq!(r.body["status"], "ignored", "{}", r.body);

    // What statsync reads is verified and bounded as before, ping included.
    let r = app
        .post_raw(
            "/webhooks/github",
            &[
                ("X-GitHub-Event", "ping".into()),
                ("X-Hub-Signature-256", "sha256=00".into()),
            ],
            fixture("github/ping.json"),
        )
        .await;
    assert_eq!(r.status, 401, "{}", r.body);
    assert_eq!(app.github("issues", "big-issue", &push).await.status, 413);
    assert_eq!(app.count("SELECT count(*) FROM inbound_events").await, 0);
}

#[actix_web::test]
async fn a_body_dribbled_slower_than_the_deadline_is_answered_408_and_its_connection_closed() {
    use tokio::io::AsyncWriteExt;

    let app = spawn_app_with(&[("STATSYNC__HTTP__BODY_TIMEOUT_MS", "1000")]).await;
    let webhook = "POST /webhooks/github HTTP/1.1\r\nX-GitHub-Event: issues\r\n\
                   X-Hub-Signature-256: sha256=00\r\n";
    let api = format!("POST /api/v1/status HTTP/1.1\r\nAuthorization: Bearer {API_TOKEN}\r\n");
    for head in [webhook.to_owned(), api] {
        let conn = support::raw::connect_from(&app, [127, 0, 0, 1].into()).await;
        let (mut rd, mut wr) = conn.into_split();
        let head = format!(
            "{head}Host: localhost\r\nContent-Type: application/json\r\n\
             Content-Length: 100000\r\n\r\n{{"
        );
        wr.write_all(head.as_bytes()).await.unwrap();
        let started = std::time::Instant::now();
        let dribbling = support::raw::dribble(wr, Duration::from_millis(100));
        let said = support::raw::read_until_closed(&mut rd, Duration::from_secs(10)).await;
        assert!(said.starts_with("HTTP/1.1 408"), "{head}: {said}");
        assert!(said.contains(r#""code":"REQUEST_TIMEOUT""#), "{said}");
        assert!(started.elapsed() >= Duration::from_millis(1000));
        dribbling.await.unwrap();
    }
    // A body that arrives in time is read as before.
    let r = app
        .github("issues", "in-time", &fixture("github/issues.opened.json"))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
}
