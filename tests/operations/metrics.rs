//! `/metrics` after real traffic: signed webhooks, a conflict, outbound writes that
//! succeed and writes that die, a WebSocket subscriber. Parsed with a real exposition
//! format parser, and checked by `promtool check metrics` when it is installed.

use std::io::Write;
use std::process::{Command, Stdio};

use chrono::{TimeDelta, Utc};
use prometheus_parse::{Sample, Scrape, Value as Prom};
use statsync::metrics as m;
use statsync::systems::signature;

use super::*;

const LINEAR_ID: &str = "0d6f2f8e-5a4b-4c3d-9e2f-1a2b3c4d5e6f";

async fn scrape(app: &TestApp) -> (String, Scrape) {
    let r = app
        .http
        .get(format!("{}/metrics", app.address))
        .send()
        .await
        .expect("scrape");
    assert_eq!(r.status(), 200);
    let ctype = r.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(ctype.starts_with("text/plain; version=0.0.4"), "{ctype}");
    let text = r.text().await.expect("body");
    let parsed = Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).expect("parses");
    (text, parsed)
}

fn matching<'a>(
    s: &'a Scrape,
    name: &'a str,
    labels: &'a [(&str, &str)],
) -> impl Iterator<Item = &'a Sample> {
    s.samples.iter().filter(move |x| {
        x.metric == name && labels.iter().all(|(k, v)| x.labels.get(k) == Some(*v))
    })
}

/// The sum of the counter, gauge or untyped samples of `name` carrying `labels`.
fn total(s: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    matching(s, name, labels)
        .map(|x| match x.value {
            Prom::Counter(v) | Prom::Gauge(v) | Prom::Untyped(v) => v,
            _ => 0.0,
        })
        .sum()
}

/// Observations of histogram `name` with `labels` (its `_count` series).
fn observations(s: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    total(s, &format!("{name}_count"), labels)
}

#[actix_web::test]
async fn metrics_after_real_traffic_parse_with_their_types_and_the_counters_moved() {
    let agent = accepting_server();
    let app = spawn_app_with(&[
        ("STATSYNC__AGENTAPI__URL", &agent),
        // A token, so GitHub calls are made (and fail retryably: nothing listens).
        ("GITHUB_TOKEN", "test-github-token"),
        ("STATSYNC__ALERTS__EVALUATION_INTERVAL_MS", "100"),
        ("STATSYNC__SYNC__MAX_RETRIES", "2"),
        ("STATSYNC__DISPATCH__RETRY_BASE_MS", "10"),
        ("STATSYNC__DISPATCH__RETRY_MAX_MS", "20"),
    ])
    .await;
    let mut conn = subscribed(&app, &["all"]).await;

    // Linked in Linear, GitHub and the agent API: a Linear change goes out to both
    // others. The agent API accepts; GitHub (nothing listens on port 9) fails until
    // the row is a dead letter.
    app.link_new(json!({"refs": [
        {"system": "linear", "externalId": LINEAR_ID},
        {"system": "github", "externalId": "Codertocat/Hello-World#1"},
        {"system": "agentapi", "externalId": "task-ops-1"}
    ]}))
    .await;
    let t = Utc::now() - TimeDelta::seconds(2);
    let started = linear_issue_update(LINEAR_ID, "ENG-7", "In Progress", "started", t);
    assert_eq!(app.linear("ops-lin-1", &started).await.status, 200);
    let change = next_event(&mut conn, "status_changed").await;
    assert_eq!(change["data"]["to"], "in_progress", "{change}");
    // GitHub closes it a second later: inside the conflict window, and GitHub ranks
    // below Linear, so it loses.
    let closed = github_fixture_at("issues.opened.json", t + TimeDelta::seconds(1), |v| {
        v["action"] = json!("closed");
        v["issue"]["state"] = json!("closed");
        v["issue"]["state_reason"] = json!("completed");
    });
    assert_eq!(app.github("issues", "ops-gh-1", &closed).await.status, 200);
    let bad = app
        .post_raw(
            "/webhooks/github",
            &[
                ("X-GitHub-Event", "issues".into()),
                ("X-GitHub-Delivery", "ops-gh-bad".into()),
                (
                    "X-Hub-Signature-256",
                    signature::sign_prefixed(b"wrong", b"{}"),
                ),
            ],
            b"{}".to_vec(),
        )
        .await;
    assert_eq!(bad.status, 401);
    let report = json!({"taskId": "task-ops-2", "state": "working", "timestamp": Utc::now()});
    let report = serde_json::to_vec(&report).unwrap();
    assert_eq!(app.agent(Some("ops-ag-1"), &report).await.status, 200);
    app.drained().await;

    // The dead letter's gauge is read from the database at the monitor's interval.
    let (text, s) = wait_for(
        "the dead letter shows in the outbox gauges",
        WAIT,
        || async {
            let (text, s) = scrape(&app).await;
            let dead = [("system", "github"), ("state", "dead")];
            let done = total(&s, m::OUTBOX_DEPTH, &dead) >= 1.0
                && observations(&s, m::COMMIT_TO_OUTBOUND, &[("system", "agentapi")]) >= 1.0;
            done.then_some((text, s))
        },
    )
    .await;

    // Every family is statsync's and typed as its name promises.
    assert!(s.samples.iter().all(|x| x.metric.starts_with("statsync_")));
    let kind = |name: &str| {
        let x = s
            .samples
            .iter()
            .find(|x| x.metric == name)
            .unwrap_or_else(|| panic!("{name} is not exported:\n{text}"));
        match x.value {
            Prom::Counter(_) => "counter",
            Prom::Gauge(_) => "gauge",
            Prom::Histogram(_) => "histogram",
            Prom::Summary(_) => "summary",
            Prom::Untyped(_) => "untyped",
        }
    };
    for counter in [
        m::WEBHOOKS_RECEIVED,
        m::SIGNATURE_FAILURES,
        m::DECISIONS,
        m::CONFLICTS,
        m::OUTBOUND_REQUESTS,
        m::OUTBOUND_RETRIES,
        m::OUTBOX_DEAD_LETTERS,
    ] {
        assert!(counter.ends_with("_total"), "{counter}");
        assert_eq!(kind(counter), "counter", "{counter}");
    }
    for gauge in [
        m::INBOUND_BACKLOG,
        m::BUILD_INFO,
        m::RATE_LIMIT_REMAINING,
        m::OUTBOX_DEPTH,
        m::OUTBOX_OLDEST_PENDING_AGE,
        m::WS_CONNECTIONS,
        m::WS_SUBSCRIPTIONS,
        m::DB_POOL_MAX,
        m::DB_POOL_CONNECTIONS,
        m::DB_POOL_IDLE,
        m::DB_POOL_WAITERS,
    ] {
        assert_eq!(kind(gauge), "gauge", "{gauge}");
    }
    for histogram in [
        m::WEBHOOK_TO_COMMIT,
        m::COMMIT_TO_OUTBOUND,
        m::COMMIT_TO_WEBSOCKET,
        m::BATCH_SIZE,
    ] {
        assert_eq!(kind(histogram), "histogram", "{histogram}");
    }

    // The counters moved with the traffic.
    let accepted = |system| {
        total(
            &s,
            m::WEBHOOKS_RECEIVED,
            &[("system", system), ("result", "accepted")],
        )
    };
    assert_eq!(accepted("linear"), 1.0);
    assert_eq!(accepted("github"), 1.0);
    assert_eq!(accepted("agentapi"), 1.0);
    assert_eq!(
        total(&s, m::SIGNATURE_FAILURES, &[("system", "github")]),
        1.0
    );
    assert!(total(&s, m::DECISIONS, &[("decision", "applied")]) >= 2.0);
    let lost = [("strategy", "priority_based"), ("outcome", "lost")];
    assert_eq!(total(&s, m::CONFLICTS, &lost), 1.0, "{text}");
    assert!(total(&s, m::OUTBOUND_REQUESTS, &[("result", "ok")]) >= 1.0);
    assert!(total(&s, m::OUTBOUND_RETRIES, &[("system", "github")]) >= 1.0);
    assert!(total(&s, m::OUTBOX_DEAD_LETTERS, &[("system", "github")]) >= 1.0);
    assert!(observations(&s, m::WEBHOOK_TO_COMMIT, &[("system", "linear")]) >= 1.0);
    assert!(observations(&s, m::COMMIT_TO_WEBSOCKET, &[]) >= 1.0);
    assert_eq!(total(&s, m::WS_CONNECTIONS, &[]), 1.0);
    assert_eq!(total(&s, m::WS_SUBSCRIPTIONS, &[]), 1.0);
    let pool_max = app.settings.database.pool_size as f64;
    assert_eq!(total(&s, m::DB_POOL_MAX, &[]), pool_max);
    let version = [("version", env!("CARGO_PKG_VERSION"))];
    assert_eq!(total(&s, m::BUILD_INFO, &version), 1.0);
    // The dead letter fires its alert too.
    let firing = [("alert", "dead_letters")];
    wait_for("the dead-letter alert fires", WAIT, || async {
        let (_, s) = scrape(&app).await;
        (total(&s, m::ALERTS_FIRING, &firing) == 1.0).then_some(())
    })
    .await;

    promtool_accepts(&text);
}

/// `promtool check metrics` on a scrape, when promtool is installed (CI installs it).
fn promtool_accepts(text: &str) {
    let Ok(mut child) = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    else {
        println!("promtool is not installed: skipping `promtool check metrics`");
        return;
    };
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write the scrape to promtool");
    let out = child.wait_with_output().expect("promtool runs");
    assert!(
        out.status.success(),
        "promtool check metrics failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[actix_web::test]
async fn a_worker_only_replica_serves_health_and_metrics_and_nothing_public() {
    let app = spawn_app_with(&[("STATSYNC__SERVER__API_ENABLED", "false")]).await;
    for path in ["/health", "/ready", "/metrics"] {
        assert_eq!(app.get(path).await.status, 200, "{path}");
    }
    let body = linear_issue_update(LINEAR_ID, "ENG-7", "Done", "completed", Utc::now());
    assert_eq!(app.linear("worker-only-1", &body).await.status, 404);
    let r = app.api("GET", "/api/v1/entities", None).await;
    assert_eq!(r.status, 404, "{}", r.body);
    assert_eq!(app.get("/").await.status, 404);
    assert_eq!(
        app.count("SELECT count(*) FROM inbound_events").await,
        0,
        "nothing was stored"
    );
}

#[actix_web::test]
async fn event_labels_come_from_a_closed_set_whatever_the_headers_say() {
    let app = spawn_app_with(&[("STATSYNC__SERVER__WORKER_ENABLED", "false")]).await;
    let (before, _) = scrape(&app).await;
    // Event headers are not signed: anyone can send any name, as often as they like.
    for i in 0..200 {
        let r = app
            .github(&format!("made-up-{i}"), &format!("label-{i}"), b"{}")
            .await;
        assert_eq!(r.body["status"], "ignored", "{}", r.body);
    }
    let body = linear_issue_update(LINEAR_ID, "ENG-7", "Done", "completed", Utc::now());
    let r = app.linear_event("Made-Up", "linear-1", &body).await;
    assert_eq!(r.body["status"], "accepted", "{}", r.body);
    assert_eq!(
        app.linear("linear-2", &body).await.body["status"],
        "accepted"
    );

    let (text, s) = scrape(&app).await;
    let known = [
        "issues",
        "pull_request",
        "projects_v2_item",
        "ping",
        "Issue",
        "Attachment",
        "report",
        "other",
    ];
    for sample in matching(&s, m::WEBHOOKS_RECEIVED, &[]) {
        let event = sample.labels.get("event").unwrap_or_default();
        assert!(known.contains(&event), "event label `{event}`");
    }
    let github_other = [
        ("system", "github"),
        ("event", "other"),
        ("result", "ignored"),
    ];
    assert_eq!(total(&s, m::WEBHOOKS_RECEIVED, &github_other), 200.0);
    let linear = |event| {
        [
            ("system", "linear"),
            ("event", event),
            ("result", "accepted"),
        ]
    };
    assert_eq!(total(&s, m::WEBHOOKS_RECEIVED, &linear("other")), 1.0);
    assert_eq!(total(&s, m::WEBHOOKS_RECEIVED, &linear("Issue")), 1.0);
    // 202 deliveries added a few series (and the intake's histogram), not hundreds.
    assert!(
        text.len() < before.len() + 4096,
        "/metrics grew from {} to {} bytes",
        before.len(),
        text.len()
    );
}
