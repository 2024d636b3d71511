//! Faults: the real `statsync` binary killed (SIGKILL) in the middle of a stream of
//! deliveries and restarted on the same database loses nothing and applies nothing
//! twice; duplicate, reordered and replayed deliveries; PostgreSQL stopped under load;
//! two replicas under 20 concurrent producers.

#[path = "faults/postgres_down.rs"]
mod postgres_down;
#[path = "faults/replay.rs"]
mod replay;
#[path = "faults/replicas.rs"]
mod replicas;
mod support;

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeDelta, Utc};
use futures_util::StreamExt;
use statsync::systems::signature;
use support::*;

const TASKS: usize = 100;
const REPORTS_PER_TASK: usize = 10;
const STATES: [&str; 6] = [
    "queued",
    "working",
    "input_required",
    "working",
    "complete",
    "failure",
];

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

struct Server {
    child: Child,
    base: String,
}

fn start_server(database_url: &str, port: u16, log: &std::path::Path) -> Server {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .expect("server log");
    let child = Command::new(env!("CARGO_BIN_EXE_statsync"))
        .arg("serve")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", database_url)
        .env("AGENTAPI_WEBHOOK_SECRET", AGENT_SECRET)
        .env("STATSYNC__HTTP__PORT", port.to_string())
        .env("STATSYNC__HTTP__WORKERS", "2")
        .env("STATSYNC__LOG__LEVEL", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start the statsync binary");
    Server {
        child,
        base: format!("http://127.0.0.1:{port}"),
    }
}

async fn until_ready(http: &reqwest::Client, base: &str) {
    wait_for("the server is ready", Duration::from_secs(60), || async {
        match http.get(format!("{base}/ready")).send().await {
            Ok(r) if r.status() == 200 => Some(()),
            _ => None,
        }
    })
    .await;
}

/// Agent report `n` (delivery id `delivery-{n}`) moving `task` to `state` at `at`, and
/// the headers that sign it.
fn signed_report(
    n: usize,
    task: &str,
    state: &str,
    at: chrono::DateTime<Utc>,
) -> (Vec<(&'static str, String)>, Vec<u8>) {
    let body = serde_json::to_vec(&serde_json::json!({
        "taskId": task,
        "state": state,
        "timestamp": at.to_rfc3339(),
    }))
    .unwrap();
    let headers = vec![
        (
            "X-Statsync-Signature",
            signature::sign_prefixed(AGENT_SECRET.as_bytes(), &body),
        ),
        ("X-Statsync-Delivery", format!("delivery-{n}")),
    ];
    (headers, body)
}

fn delivery(n: usize) -> (Vec<(&'static str, String)>, Vec<u8>) {
    let task = n % TASKS;
    let step = n / TASKS;
    let at = Utc::now() - TimeDelta::hours(1) + TimeDelta::seconds(step as i64);
    signed_report(n, &format!("task-{task}"), STATES[step % STATES.len()], at)
}

/// Every stored delivery produced exactly one decision, and every entity's version
/// counts exactly its applied changes.
async fn assert_applied_exactly_once(db: &tokio_postgres::Client) {
    let per_delivery = db
        .query(
            "SELECT i.delivery_id, count(t.id) FROM inbound_events i
             LEFT JOIN status_transitions t ON t.inbound_event_id = i.id
             GROUP BY i.delivery_id HAVING count(t.id) <> 1",
            &[],
        )
        .await
        .unwrap();
    let wrong: Vec<(String, i64)> = per_delivery.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert!(
        wrong.is_empty(),
        "deliveries applied other than once: {wrong:?}"
    );
    let off: i64 = db
        .query_one(
            "SELECT count(*) FROM entities e WHERE e.version <> (
                SELECT count(*) FROM status_transitions t
                WHERE t.entity_id = e.id AND t.decision = 'applied')",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        off, 0,
        "entities whose version is not their applied changes"
    );
}

/// Sends every delivery in `ids` (8 at a time) and answers those acknowledged with 2xx.
async fn send_all(
    http: &reqwest::Client,
    base: &str,
    ids: Vec<usize>,
    kill_after: Option<(usize, &mut Option<Child>)>,
) -> Vec<usize> {
    let acked = Arc::new(AtomicUsize::new(0));
    let (limit, mut victim) = match kill_after {
        Some((n, child)) => (n, child.take()),
        None => (usize::MAX, None),
    };
    let mut stream = futures_util::stream::iter(ids.into_iter().map(|n| {
        let http = http.clone();
        let acked = acked.clone();
        let url = format!("{base}/webhooks/agentapi");
        async move {
            let (headers, body) = delivery(n);
            let mut req = http.post(url).body(body);
            for (k, v) in headers {
                req = req.header(k, v);
            }
            let ok = req
                .send()
                .await
                .map(|r| r.status().is_success())
                .unwrap_or(false);
            if ok {
                acked.fetch_add(1, Ordering::SeqCst);
            }
            (n, ok)
        }
    }))
    .buffer_unordered(8);
    let mut ok_ids = Vec::new();
    while let Some((n, ok)) = stream.next().await {
        if ok {
            ok_ids.push(n);
        }
        if acked.load(Ordering::SeqCst) >= limit {
            if let Some(mut child) = victim.take() {
                child.kill().expect("SIGKILL the server");
                let _ = child.wait();
            }
        }
    }
    ok_ids
}

#[actix_web::test]
async fn a_killed_server_applies_every_acknowledged_delivery_exactly_once_after_restart() {
    let url = cluster::fresh_database().await;
    let log = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("faults-{}.log", std::process::id()));
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let port = free_port();
    let first = start_server(&url, port, &log);
    until_ready(&http, &first.base).await;

    let total = TASKS * REPORTS_PER_TASK;
    let mut child = Some(first.child);
    let acked_before = send_all(
        &http,
        &first.base,
        (0..total).collect(),
        Some((total * 2 / 5, &mut child)),
    )
    .await;
    assert!(child.is_none(), "the server was killed mid-stream");
    assert!(
        acked_before.len() < total,
        "some deliveries were refused while it was down"
    );
    assert!(acked_before.len() >= total * 2 / 5);

    // Restart on the same database; the senders retry what was not acknowledged.
    let second = start_server(&url, port, &log);
    until_ready(&http, &second.base).await;
    let missing: Vec<usize> = (0..total).filter(|n| !acked_before.contains(n)).collect();
    let acked_after = send_all(&http, &second.base, missing.clone(), None).await;
    assert_eq!(
        acked_after.len(),
        missing.len(),
        "every retried delivery is acknowledged"
    );
    // A retry of something already acknowledged is a duplicate, not a second application.
    let again = send_all(&http, &second.base, acked_before[..50].to_vec(), None).await;
    assert_eq!(again.len(), 50);

    let db = connect(&url).await;
    wait_drained(&db, Duration::from_secs(60)).await;
    let stored: i64 = db
        .query_one("SELECT count(*) FROM inbound_events", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        stored as usize, total,
        "one row per delivery id, duplicates included"
    );
    assert_applied_exactly_once(&db).await;
    let entities: i64 = db
        .query_one("SELECT count(*) FROM entities", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(entities as usize, TASKS);

    let mut second = second.child;
    second.kill().ok();
    let _ = second.wait();
}
