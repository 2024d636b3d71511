//! The real `statsync` binary as a child process, pointed at the stand-ins, on a fresh
//! database of the per-binary cluster: started, killed with SIGKILL, restarted.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::support::{API_TOKEN, GITHUB_SECRET, LINEAR_SECRET};
use super::world::{BOT_LOGIN, LINEAR_SELF};

pub struct Statsync {
    child: Option<Child>,
    pub port: u16,
    pub base: String,
    pub database_url: String,
    stand_ins: String,
    /// `github.actor_login` / `linear.actor_id` set; otherwise statsync discovers them.
    identity_configured: bool,
    log: std::path::PathBuf,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl Statsync {
    pub async fn start(
        database_url: String,
        stand_ins: &str,
        seed: u64,
        identity_configured: bool,
    ) -> Statsync {
        let log = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("simulation-{}-seed-{seed}.log", std::process::id()));
        let _ = std::fs::remove_file(&log);
        let port = free_port();
        let mut s = Statsync {
            child: None,
            port,
            base: format!("http://127.0.0.1:{port}"),
            database_url,
            stand_ins: stand_ins.to_owned(),
            identity_configured,
            log,
        };
        s.spawn().await;
        s
    }

    fn env(&self) -> Vec<(&'static str, String)> {
        let s = &self.stand_ins;
        let mut env = vec![
            ("DATABASE_URL", self.database_url.clone()),
            ("GITHUB_WEBHOOK_SECRET", GITHUB_SECRET.into()),
            ("LINEAR_WEBHOOK_SECRET", LINEAR_SECRET.into()),
            ("STATSYNC_API_TOKENS", API_TOKEN.into()),
            ("GITHUB_TOKEN", "ghp_simulated_token".into()),
            ("LINEAR_API_KEY", "lin_api_simulated_key".into()),
            ("STATSYNC__HTTP__PORT", self.port.to_string()),
            ("STATSYNC__HTTP__WORKERS", "2".into()),
            ("STATSYNC__DATABASE__POOL_SIZE", "8".into()),
            ("STATSYNC__LOG__LEVEL", "warn".into()),
            ("STATSYNC__GITHUB__API_URL", format!("{s}/gh")),
            ("STATSYNC__GITHUB__GRAPHQL_URL", format!("{s}/gh/graphql")),
            ("STATSYNC__LINEAR__API_URL", format!("{s}/linear/graphql")),
            ("STATSYNC__LINEAR__TEAMS", "ENG".into()),
            ("STATSYNC__GITHUB__REQUESTS_PER_SECOND", "200".into()),
            ("STATSYNC__LINEAR__REQUESTS_PER_SECOND", "200".into()),
            ("STATSYNC__ENGINE__POLL_INTERVAL_MS", "100".into()),
            ("STATSYNC__DISPATCH__POLL_INTERVAL_MS", "100".into()),
            ("STATSYNC__DISPATCH__RETRY_BASE_MS", "50".into()),
            ("STATSYNC__DISPATCH__RETRY_MAX_MS", "400".into()),
            ("STATSYNC__DISPATCH__REQUEST_TIMEOUT_MS", "2000".into()),
            ("STATSYNC__DISPATCH__LEASE_MS", "3000".into()),
            ("STATSYNC__SERVER__SHUTDOWN_GRACE_S", "1".into()),
        ];
        if self.identity_configured {
            env.push(("STATSYNC__GITHUB__ACTOR_LOGIN", BOT_LOGIN.into()));
            env.push(("STATSYNC__LINEAR__ACTOR_ID", LINEAR_SELF.into()));
        }
        env
    }

    async fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("the statsync log");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_statsync"));
        cmd.arg("serve")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        for (k, v) in self.env() {
            cmd.env(k, v);
        }
        self.child = Some(cmd.spawn().expect("start the statsync binary"));
        self.until_ready().await;
    }

    async fn until_ready(&mut self) {
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(r) = http.get(format!("{}/ready", self.base)).send().await {
                if r.status() == 200 {
                    return;
                }
            }
            if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                panic!(
                    "statsync exited before it was ready ({status}); log {}",
                    self.log.display()
                );
            }
            assert!(
                Instant::now() < deadline,
                "statsync not ready in 60 s; log {}",
                self.log.display()
            );
            actix_web::rt::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// SIGKILL: no shutdown, no flush; whatever was in flight is lost or half done.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub async fn restart(&mut self) {
        self.kill();
        self.spawn().await;
    }

    pub fn running(&self) -> bool {
        self.child.is_some()
    }

    pub fn log_path(&self) -> &std::path::Path {
        &self.log
    }
}

impl Drop for Statsync {
    fn drop(&mut self) {
        self.kill();
    }
}
