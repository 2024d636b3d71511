//! `statsync backfill`: the real binary against a fake GitHub and a test database.

use std::process::{Command, Stdio};

use super::fakes;
use super::runs::{github_item, REPO};
use super::*;

/// What one run of the binary said: exit code, stdout, stderr.
struct Ran {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Runs `statsync backfill --system github --repo REPO` on `database_url`, against
/// `fake`, within two minutes.
async fn backfill_command(database_url: &str, fake: &fakes::Fake) -> Ran {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_statsync"));
    cmd.args(["backfill", "--system", "github", "--repo", REPO])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", database_url)
        .env("GITHUB_TOKEN", "gh-token")
        .env("STATSYNC__GITHUB__API_URL", &fake.url)
        .env("STATSYNC__LOG__LEVEL", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = cmd.spawn().expect("start the statsync binary");
    let pid = child.id();
    let waiting = actix_web::rt::task::spawn_blocking(move || child.wait_with_output());
    let output = match actix_web::rt::time::timeout(Duration::from_secs(120), waiting).await {
        Ok(joined) => joined.unwrap().expect("the binary's output"),
        Err(_) => {
            // The child is ours: stop it rather than leave it running.
            let _ = Command::new("kill").arg(pid.to_string()).status();
            panic!("statsync backfill did not end within 120 s");
        }
    };
    Ran {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

#[actix_web::test]
async fn the_backfill_command_prints_progress_and_a_summary_and_exits_zero() {
    let fake = fakes::start().await;
    // Two pages: items 1..=150, none naming a known Linear team.
    fake.with(|s| s.github = (1..=150).map(github_item).collect());
    let url = cluster::fresh_database().await;

    let ran = backfill_command(&url, &fake).await;
    assert_eq!(
        ran.code,
        Some(0),
        "stdout:\n{}\nstderr:\n{}",
        ran.stdout,
        ran.stderr
    );
    let lines: Vec<&str> = ran.stdout.lines().collect();
    assert_eq!(
        lines.first().copied(),
        Some("backfill github:acme/api (full)"),
        "{lines:?}"
    );
    let progress: Vec<&str> = lines
        .iter()
        .filter(|l| l.trim_start().starts_with(|c: char| c.is_ascii_digit()))
        .map(|l| l.trim())
        .collect();
    assert_eq!(
        progress,
        ["50%  page 1  100 items", "100%  page 2  150 items"],
        "{lines:?}"
    );
    let summary = lines.last().unwrap();
    assert!(
        summary.starts_with(
            "completed: seen 150, created 150, changed 0, unchanged 0, failed 0 (operation "
        ),
        "{summary}"
    );
    let db = connect(&url).await;
    let entities: i64 = db
        .query_one("SELECT count(*) FROM entities", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(entities, 150);

    // Run again: every item is known, nothing changes.
    let again = backfill_command(&url, &fake).await;
    assert_eq!(again.code, Some(0), "{}", again.stderr);
    let summary = again.stdout.lines().last().unwrap_or_default().to_owned();
    assert!(
        summary.starts_with("completed: seen 150, created 0, changed 0, unchanged 150, failed 0"),
        "{summary}"
    );
}
