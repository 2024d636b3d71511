//! Crash safety: the real binary killed with SIGKILL mid-dispatch, then restarted.

use super::*;

/// A free loopback port for a child process (bound, read, released).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The real `statsync serve` binary on `database_url`, killed with SIGKILL on drop.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn_binary(database_url: &str, port: u16, env: &[(&'static str, String)]) -> Child {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_statsync"));
    cmd.arg("serve")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", database_url)
        .env("STATSYNC_API_TOKENS", API_TOKEN)
        .env("STATSYNC__HTTP__PORT", port.to_string())
        .env("STATSYNC__HTTP__WORKERS", "1")
        .env("STATSYNC__LOG__LEVEL", "error")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    Child(cmd.spawn().expect("start the statsync binary"))
}

#[actix_web::test]
async fn a_server_killed_during_dispatch_delivers_every_pending_row_after_restart() {
    let (gh, lin) = (fakes::github().await, fakes::linear().await);
    // Slow answers, so the kill lands while calls are in flight.
    gh.set_latency(Duration::from_millis(300));
    let env = outbound_env(
        &gh,
        &lin,
        &[
            ("STATSYNC__DISPATCH__LEASE_MS", "1500".into()),
            ("STATSYNC__DISPATCH__REQUEST_TIMEOUT_MS", "1000".into()),
            ("STATSYNC__GITHUB__REQUESTS_PER_SECOND", "20".into()),
        ],
    );
    let url = cluster::fresh_database().await;
    let port = free_port();
    let mut child = spawn_binary(&url, port, &env);
    let address = format!("http://127.0.0.1:{port}");
    wait_for(
        "the binary answers /health",
        Duration::from_secs(20),
        || async {
            let r = reqwest::get(format!("{address}/health")).await;
            r.ok().filter(|r| r.status() == 200).map(|_| ())
        },
    )
    .await;

    // 30 entities in progress, then 15 of them done: 45 changes, each entity's newest
    // status must win in GitHub whatever the kill interrupts.
    let mut ids = Vec::new();
    for n in 1..=30 {
        ids.push(entity_on_github(&address, &format!("acme/crash#{n}"), "in_progress").await);
    }
    for id in ids.iter().take(15) {
        let (code, body) = call(
            &address,
            "POST",
            "/api/v1/status",
            json!({"entityId": id, "status": "done"}),
        )
        .await;
        assert_eq!(code, 200, "{body}");
    }
    wait_for(
        "some calls are under way",
        Duration::from_secs(20),
        || async { (gh.requests().len() >= 5).then_some(()) },
    )
    .await;
    // SIGKILL: no shutdown, no cleanup; leases and rows stay as they are.
    child.0.kill().expect("kill the binary");
    child.0.wait().expect("reap the binary");
    let unfinished: i64 = connect(&url)
        .await
        .query_one(
            "SELECT count(*) FROM sync_outbox WHERE state IN ('pending', 'in_flight')",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(unfinished > 0, "the kill interrupted the dispatch");

    gh.set_latency(Duration::ZERO);
    let pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let app = spawn_app_on(&url, &pairs).await;
    count_becomes(
        &app,
        "every pending row is delivered",
        "SELECT count(*) FROM sync_outbox WHERE state NOT IN ('done', 'superseded')",
        0,
        Duration::from_secs(30),
    )
    .await;
    // Every entity shows in GitHub what PostgreSQL holds.
    let db = app.db().await;
    for row in db
        .query(
            "SELECT e.status, l.external_id FROM entities e JOIN entity_links l ON l.entity_id = e.id",
            &[],
        )
        .await
        .unwrap()
    {
        let (status, issue): (String, String) = (row.get(0), row.get(1));
        let expected = if status == "done" { "closed" } else { "open" };
        let (state, _) = gh.object(&issue).unwrap_or_else(|| panic!("{issue} never written"));
        assert_eq!(state, expected, "{issue} is {state} in GitHub but {status} in PostgreSQL");
    }
}

#[actix_web::test]
async fn a_gracefully_stopped_app_hands_back_unstarted_rows_at_once_and_finishes_calls_in_flight() {
    let (gh, lin) = (fakes::github().await, fakes::linear().await);
    // One call a second and slow answers: the first call is in flight while the other
    // claimed rows wait for a token when the stop comes.
    gh.set_latency(Duration::from_millis(1500));
    let slow = [
        // Far longer than the test: only a release makes the rows claimable again.
        ("STATSYNC__DISPATCH__LEASE_MS", "600000".to_owned()),
        ("STATSYNC__DISPATCH__REQUEST_TIMEOUT_MS", "5000".into()),
        ("STATSYNC__GITHUB__REQUESTS_PER_SECOND", "1".into()),
    ];
    let app = spawn_outbound(&gh, &lin, &slow).await;
    let issues: Vec<String> = (1..=4).map(|n| format!("acme/stop#{n}")).collect();
    for issue in &issues {
        entity_on_github(&app.address, issue, "in_progress").await;
    }
    wait_for(
        "a call is in flight and the other rows are claimed",
        Duration::from_secs(20),
        || async {
            let claimed = app
                .count("SELECT count(*) FROM sync_outbox WHERE state = 'in_flight'")
                .await;
            (claimed == 4 && !gh.requests().is_empty()).then_some(())
        },
    )
    .await;
    app.stop().await;
    count_becomes(
        &app,
        "the stopped app holds no lease",
        "SELECT count(*) FROM sync_outbox WHERE state = 'in_flight'",
        0,
        Duration::from_secs(15),
    )
    .await;
    // Every call that reached GitHub was finished and recorded; the rest went back
    // untouched: pending, runnable now, no attempt counted.
    let started = gh.requests().len() as i64;
    let done = app
        .count("SELECT count(*) FROM sync_outbox WHERE state = 'done'")
        .await;
    assert_eq!(done, started, "each call in flight at the stop finished");
    let released = app
        .count(
            "SELECT count(*) FROM sync_outbox WHERE state = 'pending' AND attempt_count = 0
               AND lease_expires_at IS NULL AND run_at <= now() AND error_code IS NULL",
        )
        .await;
    assert!(released > 0, "some claimed rows had not started");
    assert_eq!(released + done, 4, "every row is done or handed back");

    // A restarted app takes them at once, long before the old lease would end.
    gh.set_latency(Duration::ZERO);
    let env = outbound_env(
        &gh,
        &lin,
        &[("STATSYNC__DISPATCH__LEASE_MS", "600000".into())],
    );
    let pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let restarted = spawn_app_on(&app.database_url, &pairs).await;
    count_becomes(
        &restarted,
        "the handed-back rows are delivered by the restarted app",
        "SELECT count(*) FROM sync_outbox WHERE state <> 'done'",
        0,
        Duration::from_secs(10),
    )
    .await;
    for issue in &issues {
        let (state, _) = gh
            .object(issue)
            .unwrap_or_else(|| panic!("{issue} never written"));
        assert_eq!(state, "open", "{issue}");
    }
    restarted.stop().await;
}
