//! SIGTERM in the middle of a webhook load: the real binary stops accepting, finishes
//! what is in flight, exits within `server.shutdown_grace_s`, and every delivery it
//! acknowledged is stored and ends applied exactly once.

use std::collections::HashSet;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use chrono::{TimeDelta, Utc};
use statsync::systems::signature;

use super::*;

const DELIVERIES: usize = 600;
const TASKS: usize = 60;
const GRACE_S: u64 = 10;
const STATES: [&str; 4] = ["queued", "working", "input_required", "complete"];

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Sends SIGTERM, as Kubernetes does to stop a pod.
#[allow(unsafe_code)]
fn sigterm(child: &Child) {
    let pid = libc::pid_t::try_from(child.id()).expect("a pid");
    // SAFETY: kill(2) with a pid this test spawned and has not reaped; no memory is shared.
    let sent = unsafe { libc::kill(pid, libc::SIGTERM) };
    assert_eq!(sent, 0, "SIGTERM delivered");
}

fn report(n: usize) -> (String, Vec<u8>) {
    let step = n / TASKS;
    let at = Utc::now() - TimeDelta::hours(1) + TimeDelta::seconds(step as i64);
    let body = json!({
        "taskId": format!("term-task-{}", n % TASKS),
        "state": STATES[step % STATES.len()],
        "timestamp": at.to_rfc3339(),
    });
    (format!("term-{n}"), serde_json::to_vec(&body).unwrap())
}

#[actix_web::test]
async fn sigterm_under_webhook_load_loses_no_acknowledged_delivery() {
    let url = cluster::fresh_database().await;
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let log = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("sigterm-{}.log", std::process::id()));
    let mut child = Command::new(env!("CARGO_BIN_EXE_statsync"))
        .arg("serve")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", &url)
        .env("AGENTAPI_WEBHOOK_SECRET", AGENT_SECRET)
        .env("STATSYNC__HTTP__PORT", port.to_string())
        .env("STATSYNC__HTTP__WORKERS", "2")
        .env("STATSYNC__SERVER__SHUTDOWN_GRACE_S", GRACE_S.to_string())
        .env("STATSYNC__LOG__LEVEL", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("server log"))
        .spawn()
        .expect("start the statsync binary");
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    wait_for("the server is ready", Duration::from_secs(60), || async {
        let r = http.get(format!("{base}/ready")).send().await;
        r.ok().filter(|r| r.status() == 200).map(|_| ())
    })
    .await;

    // 16 senders at once; SIGTERM once a quarter of the load is acknowledged.
    let acked_count = Arc::new(AtomicUsize::new(0));
    let mut sends = futures_util::stream::iter((0..DELIVERIES).map(|n| {
        let (http, acked_count) = (http.clone(), acked_count.clone());
        let url = format!("{base}/webhooks/agentapi");
        async move {
            let (id, body) = report(n);
            let sig = signature::sign_prefixed(AGENT_SECRET.as_bytes(), &body);
            let ok = http
                .post(url)
                .header("X-Statsync-Signature", sig)
                .header("X-Statsync-Delivery", &id)
                .body(body)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ok {
                acked_count.fetch_add(1, Ordering::SeqCst);
            }
            (id, ok)
        }
    }))
    .buffer_unordered(16);
    let mut acked = HashSet::new();
    let mut refused = 0;
    let mut term_at = None;
    while let Some((id, ok)) = sends.next().await {
        if ok {
            acked.insert(id);
        } else {
            refused += 1;
        }
        if term_at.is_none() && acked_count.load(Ordering::SeqCst) >= DELIVERIES / 4 {
            sigterm(&child);
            term_at = Some(Instant::now());
        }
    }
    let term_at = term_at.expect("SIGTERM was sent");
    assert!(refused > 0, "the load went on past the SIGTERM");

    // Exits on its own, cleanly, within the grace period.
    let deadline = term_at + Duration::from_secs(GRACE_S + 2);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the binary") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "still running {GRACE_S} s after SIGTERM; log:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    };
    let log_text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(status.success(), "exit status {status}; log:\n{log_text}");
    assert!(
        term_at.elapsed() <= Duration::from_secs(GRACE_S + 2),
        "exited within the grace period"
    );

    // Every acknowledged delivery is stored…
    let db = connect(&url).await;
    let stored: HashSet<String> = db
        .query("SELECT delivery_id FROM inbound_events", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let lost: Vec<&String> = acked.difference(&stored).collect();
    assert!(lost.is_empty(), "acknowledged but not stored: {lost:?}");

    // …and, once a replica runs again, applied exactly once.
    let app = spawn_app_on(&url, &[]).await;
    app.drained().await;
    let rows = db
        .query(
            "SELECT i.delivery_id, i.state, count(t.id) FROM inbound_events i
             LEFT JOIN status_transitions t ON t.inbound_event_id = i.id
             GROUP BY i.id, i.delivery_id, i.state",
            &[],
        )
        .await
        .unwrap();
    let wrong: Vec<(String, String, i64)> = rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .filter(|(_, state, n): &(String, String, i64)| state != "processed" || *n != 1)
        .collect();
    assert!(wrong.is_empty(), "not applied exactly once: {wrong:?}");
    assert_eq!(rows.len(), stored.len());
}

/// The cluster directory of a test, removed with wherever the cluster had to live.
struct ClusterDir(std::path::PathBuf);

impl Drop for ClusterDir {
    fn drop(&mut self) {
        if let Ok(elsewhere) = std::fs::read_to_string(self.0.join("location")) {
            let _ = std::fs::remove_dir_all(elsewhere.trim());
        }
        let _ = std::fs::remove_dir_all(&self.0);
        let _ = std::fs::remove_file(self.0.with_extension("log"));
    }
}

#[actix_web::test]
async fn sigterm_on_the_embedded_database_stops_quietly_and_says_so_last() {
    let dir = ClusterDir(
        Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("quiet-stop-{}", uuid::Uuid::new_v4().simple())),
    );
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let log = dir.0.with_extension("log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_statsync"))
        .arg("serve")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", std::env::var("HOME").unwrap_or_default())
        .env("STATSYNC__DATABASE__EMBEDDED_DIR", &dir.0)
        .env("AGENTAPI_WEBHOOK_SECRET", AGENT_SECRET)
        .env("STATSYNC_API_TOKENS", API_TOKEN)
        .env("STATSYNC__HTTP__PORT", port.to_string())
        .env("STATSYNC__HTTP__WORKERS", "2")
        .env("STATSYNC__LOG__LEVEL", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("server log"))
        .spawn()
        .expect("start the statsync binary");
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    wait_for("the server is ready", Duration::from_secs(90), || async {
        let r = http.get(format!("{base}/ready")).send().await;
        r.ok().filter(|r| r.status() == 200).map(|_| ())
    })
    .await;

    // Work on every thread, so the pool holds connections opened by HTTP workers and
    // by the engine when the database stops.
    let sends = (0..40).map(|n| {
        let http = http.clone();
        let url = format!("{base}/webhooks/agentapi");
        async move {
            let (id, body) = report(n);
            let sig = signature::sign_prefixed(AGENT_SECRET.as_bytes(), &body);
            let r = http
                .post(url)
                .header("X-Statsync-Signature", sig)
                .header("X-Statsync-Delivery", &id)
                .body(body)
                .send()
                .await
                .expect("a delivery");
            assert_eq!(r.status(), 200, "{id}");
        }
    });
    futures_util::future::join_all(sends).await;
    wait_for("the deliveries are applied", WAIT, || async {
        let r = http
            .get(format!(
                "{base}/api/v1/entities?system=agentapi&external_id=term-task-39"
            ))
            .bearer_auth(API_TOKEN)
            .send()
            .await
            .ok()?;
        (r.status() == 200).then_some(())
    })
    .await;

    sigterm(&child);
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the binary") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("still running 30 s after SIGTERM");
        }
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    };
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(status.success(), "exit status {status}; log:\n{text}");
    let stopping = text
        .find("stopping")
        .unwrap_or_else(|| panic!("no line says the stop began; log:\n{text}"));
    let noise: Vec<&str> = text[stopping..]
        .lines()
        .filter(|l| l.contains(" WARN ") || l.contains(" ERROR "))
        .collect();
    assert!(
        noise.is_empty(),
        "warnings while stopping: {noise:#?}\nlog:\n{text}"
    );
    let last = text
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("");
    assert!(
        last.contains("statsync stopped"),
        "the last line says it stopped: {last}\nlog:\n{text}"
    );
}
