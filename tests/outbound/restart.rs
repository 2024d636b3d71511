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
    wait_for(
        "every pending row is delivered",
        Duration::from_secs(30),
        || async {
            let n = app
                .count("SELECT count(*) FROM sync_outbox WHERE state NOT IN ('done', 'superseded')")
                .await;
            (n == 0).then_some(())
        },
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
