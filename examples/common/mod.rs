//! Helpers the load generator and the benchmarks share: the database they run against,
//! waiting for the intake to drain, latency percentiles. Included with `#[path]`; each
//! example uses what it needs.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use statsync::startup::ensure_database;
use statsync::store::embedded::EmbeddedPostgres;

pub mod fake_apis;

/// A private durable cluster under `target/<dir>`, removed when stopped.
pub struct Cluster {
    pub pg: EmbeddedPostgres,
    root: PathBuf,
}

impl Cluster {
    pub async fn stop(self) -> anyhow::Result<()> {
        self.pg.stop().await?;
        let _ = std::fs::remove_dir_all(&self.root);
        Ok(())
    }
}

/// DATABASE_URL when set; otherwise a fresh embedded cluster (fsync on) under
/// `target/<dir>` with a database named `name`.
pub async fn database(dir: &str, name: &str) -> anyhow::Result<(String, Option<Cluster>)> {
    if let Ok(url) = std::env::var("DATABASE_URL") {
        return Ok((url, None));
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target")
        .join(dir);
    let _ = std::fs::remove_dir_all(&root);
    let pg = EmbeddedPostgres::start(&root).await?;
    ensure_database(&pg.url("postgres"), name).await?;
    Ok((pg.url(name), Some(Cluster { pg, root })))
}

/// The service in this process on `database_url`, on a free loopback port, logging
/// warnings only, its queue unbounded (a benchmark measures, it is not refused), with
/// the webhook secret `variable` = `secret`. Its base URL, its handle, its task.
pub async fn serve(
    database_url: &str,
    variable: &str,
    secret: &str,
) -> anyhow::Result<(
    String,
    actix_web::dev::ServerHandle,
    actix_web::rt::task::JoinHandle<anyhow::Result<()>>,
)> {
    std::env::set_var("DATABASE_URL", database_url);
    std::env::set_var(variable, secret);
    std::env::set_var("STATSYNC__HTTP__PORT", "0");
    std::env::set_var("STATSYNC__LOG__LEVEL", "warn");
    std::env::set_var("STATSYNC__ENGINE__QUEUE_CAPACITY", "10000000");
    let settings = statsync::config::Settings::load(None)?;
    statsync::telemetry::init(&settings.log);
    let app = statsync::startup::Application::build(settings).await?;
    let url = format!("http://127.0.0.1:{}", app.port());
    let handle = app.handle();
    let served = actix_web::rt::spawn(app.run_until_stopped());
    Ok((url, handle, served))
}

pub async fn connect(url: &str) -> anyhow::Result<tokio_postgres::Client> {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
    actix_web::rt::spawn(async move {
        let _ = conn.await;
    });
    Ok(client)
}

/// Waits until no stored delivery is pending, failing after `timeout`.
pub async fn drain(db: &tokio_postgres::Client, timeout: Duration) -> anyhow::Result<()> {
    count_reaches_zero(
        db,
        "SELECT count(*) FROM inbound_events WHERE state = 'pending'",
        "deliveries",
        timeout,
    )
    .await
}

/// `{"count","p50","p95","p99","max"}` of `samples` (milliseconds).
pub fn percentiles(mut samples: Vec<f64>) -> Value {
    samples.sort_by(f64::total_cmp);
    let at = |p: f64| {
        let i = ((samples.len() as f64 * p) as usize).min(samples.len().saturating_sub(1));
        samples.get(i).copied().unwrap_or(0.0)
    };
    json!({
        "count": samples.len(),
        "p50": at(0.5),
        "p95": at(0.95),
        "p99": at(0.99),
        "max": samples.last().copied().unwrap_or(0.0),
    })
}

/// Waits until `sql` (a count) answers 0, failing with `what` after `timeout`.
pub async fn count_reaches_zero(
    db: &tokio_postgres::Client,
    sql: &str,
    what: &str,
    timeout: Duration,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        let left: i64 = db.query_one(sql, &[]).await?.get(0);
        if left == 0 {
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "{left} {what} still open after {timeout:?}"
        );
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }
}

pub type WsConn = actix_codec::Framed<awc::BoxedSocket, awc::ws::Codec>;

/// A WebSocket to `url` authenticated with `token`, subscribed (request sent) to `room`.
pub async fn subscribe(url: &str, token: &str, room: &str) -> anyhow::Result<WsConn> {
    use futures_util::SinkExt;
    let (_, mut conn) = awc::Client::new()
        .ws(url)
        .bearer_auth(token)
        .connect()
        .await
        .map_err(|e| anyhow::anyhow!("connect: {e}"))?;
    let request = json!({"type": "subscribe", "rooms": [room]});
    conn.send(awc::ws::Message::Text(request.to_string().into()))
        .await?;
    Ok(conn)
}

/// For an `event` frame: milliseconds from its event's `timestamp` to now.
pub fn event_age_ms(frame: &[u8]) -> Option<f64> {
    let v: Value = serde_json::from_slice(frame).ok()?;
    let ts = chrono::DateTime::parse_from_rfc3339(v["event"]["timestamp"].as_str()?).ok()?;
    let us = (chrono::Utc::now() - ts.to_utc()).num_microseconds()?;
    Some(us as f64 / 1000.0)
}

/// The cluster's postmaster, whose children are its backends.
pub fn postmaster_pid(data_dir: &std::path::Path) -> Option<i32> {
    std::fs::read_to_string(data_dir.join("postmaster.pid"))
        .ok()?
        .lines()
        .next()?
        .trim()
        .parse()
        .ok()
}

/// (this process, the cluster) CPU seconds, user + system; the cluster's count includes
/// its exited backends (postmaster's reaped children) and its live ones.
pub fn cpu_seconds(postmaster: Option<i32>) -> (f64, f64) {
    let fields = |pid: &str| stat_fields(&format!("/proc/{pid}/stat"));
    let own = fields("self").map_or(0, |f| f[10] + f[11]) as f64 / TICK;
    let Some(pm) = postmaster else {
        return (own, 0.0);
    };
    let mut cluster = fields(&pm.to_string()).map_or(0, |f| f[10] + f[11] + f[12] + f[13]);
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for entry in dir.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(f) = name.parse::<i32>().ok().and_then(|_| fields(&name)) {
                if f[0] == pm as i64 {
                    cluster += f[10] + f[11];
                }
            }
        }
    }
    (own, cluster as f64 / TICK)
}

const TICK: f64 = 100.0; // USER_HZ on Linux

/// A `/proc/…/stat` line's fields after the command name (which may contain spaces).
/// proc(5) numbers the fields from 1; after skipping pid, comm and state, field N is at
/// N - 4: ppid 0, utime 10, stime 11, cutime 12, cstime 13.
fn stat_fields(path: &str) -> Option<Vec<i64>> {
    let stat = std::fs::read_to_string(path).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    Some(
        rest.split(' ')
            .skip(1)
            .map(|f| f.parse().unwrap_or(0))
            .collect(),
    )
}

/// CPU seconds (user + system) of the calling thread.
pub fn thread_cpu_seconds() -> f64 {
    stat_fields("/proc/thread-self/stat").map_or(0, |f| f[10] + f[11]) as f64 / TICK
}

/// (busy, total) jiffies of the whole machine, from `/proc/stat`.
pub fn machine_jiffies() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let cpu: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    let total: u64 = cpu.iter().sum();
    // idle and iowait
    let idle = cpu.get(3).copied().unwrap_or(0) + cpu.get(4).copied().unwrap_or(0);
    (total - idle, total)
}
