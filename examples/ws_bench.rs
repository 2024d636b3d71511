//! WebSocket fan-out benchmark against the real release binary (a child process with its
//! embedded, durable PostgreSQL): N subscribers spread over the rooms of E entities, the
//! server's memory per idle connection (RSS from /proc), then signed agent-API webhooks
//! at a fixed rate changing those entities; reports, as JSON, how many events reached
//! subscribers and the latency from each event's log timestamp (`clock_timestamp()` at
//! the event's insert, the applying transaction's last statement: its commit) to its
//! arrival at every subscriber of its room. Loopback only; bounded by `--seconds`.
//!
//! cargo build --release && cargo run --release --example ws_bench -- \
//!     --subscribers 10000 --entities 1000 --rate 1000 --seconds 10

#[path = "common/mod.rs"]
mod common;

use std::cell::RefCell;
use std::process::{Child, Command, Stdio};
use std::rc::Rc;
use std::time::{Duration, Instant};

use awc::ws;
use clap::Parser;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use statsync::systems::signature;

#[derive(Parser)]
struct Args {
    #[arg(long, default_value_t = 10_000)]
    subscribers: usize,
    #[arg(long, default_value_t = 1_000)]
    entities: usize,
    /// Status changes per second (each is one event in one entity room).
    #[arg(long, default_value_t = 1_000)]
    rate: u64,
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    #[arg(long, default_value_t = 18_090)]
    port: u16,
}

const SECRET: &str = "bench-secret";
const TOKEN: &str = "bench-token";

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        // SIGTERM: let it stop its embedded PostgreSQL.
        let _ = Command::new("kill").arg(self.0.id().to_string()).status();
        let _ = self.0.wait();
    }
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    actix_web::rt::System::new().block_on(run(args))
}

async fn run(args: Args) -> anyhow::Result<()> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let pg = root.join("target/bench-ws-pg");
    let _ = std::fs::remove_dir_all(&pg);
    let server = Server(
        Command::new(root.join("target/release/statsync"))
            .arg("serve")
            .env_remove("DATABASE_URL")
            .env("STATSYNC__DATABASE__EMBEDDED_DIR", &pg)
            .env("STATSYNC__HTTP__PORT", args.port.to_string())
            .env(
                "STATSYNC__WS__MAX_CONNECTIONS",
                (args.subscribers + 100).to_string(),
            )
            .env("STATSYNC__LOG__LEVEL", "warn")
            .env("AGENTAPI_WEBHOOK_SECRET", SECRET)
            .env("STATSYNC_API_TOKENS", TOKEN)
            .stdout(Stdio::null())
            .spawn()?,
    );
    let pid = server.0.id();
    let base = format!("http://127.0.0.1:{}", args.port);
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !http
        .get(format!("{base}/ready"))
        .send()
        .await
        .is_ok_and(|r| r.status().is_success())
    {
        anyhow::ensure!(Instant::now() < deadline, "the server did not get ready");
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }

    // One change per task creates the entities; their ids name the rooms.
    let epoch = chrono::Utc::now() - chrono::TimeDelta::hours(1);
    for e in 0..args.entities {
        deliver(&http, &base, e, 0, epoch).await?;
    }
    let mut rooms = Vec::with_capacity(args.entities);
    for e in 0..args.entities {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let r = http
                .get(format!(
                    "{base}/api/v1/entities?system=agentapi&external_id=task-{e}"
                ))
                .bearer_auth(TOKEN)
                .send()
                .await?;
            if r.status().is_success() {
                let v: Value = r.json().await?;
                rooms.push(format!("entity:{}", v["id"].as_str().unwrap_or_default()));
                break;
            }
            anyhow::ensure!(Instant::now() < deadline, "entity task-{e} never appeared");
            actix_web::rt::time::sleep(Duration::from_millis(20)).await;
        }
    }

    let rss_before = rss_kib(pid);
    let latencies: Rc<RefCell<Vec<f64>>> = Rc::default();
    let connected = Instant::now();
    let url = format!("ws://127.0.0.1:{}/ws", args.port);
    let conns: Vec<_> = futures_util::stream::iter(0..args.subscribers)
        .map(|i| {
            let url = url.clone();
            let room = rooms[i % rooms.len()].clone();
            async move {
                let conn = common::subscribe(&url, TOKEN, &room).await?;
                anyhow::Ok(conn)
            }
        })
        .buffer_unordered(200)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_, _>>()?;
    let connect_secs = connected.elapsed().as_secs_f64();
    let mut readers = Vec::new();
    for mut conn in conns {
        let latencies = latencies.clone();
        readers.push(actix_web::rt::spawn(async move {
            while let Some(Ok(frame)) = conn.next().await {
                match frame {
                    ws::Frame::Text(t) => {
                        if let Some(ms) = common::event_age_ms(&t) {
                            latencies.borrow_mut().push(ms);
                        }
                    }
                    ws::Frame::Ping(p) => {
                        let _ = conn.send(ws::Message::Pong(p)).await;
                    }
                    ws::Frame::Close(_) => break,
                    _ => {}
                }
            }
        }));
    }
    // Idle: every subscription acknowledged, nothing flowing.
    actix_web::rt::time::sleep(Duration::from_secs(2)).await;
    let rss_idle = rss_kib(pid);
    latencies.borrow_mut().clear();

    let total = args.rate * args.seconds;
    let started = Instant::now();
    let mut acked = 0u64;
    let sends = futures_util::stream::iter(0..total)
        .map(|n| {
            let http = http.clone();
            let base = base.clone();
            let due = started + Duration::from_secs_f64(n as f64 / args.rate as f64);
            async move {
                actix_web::rt::time::sleep_until(due.into()).await;
                let e = n as usize % args.entities;
                let step = 1 + n / args.entities as u64;
                deliver(&http, &base, e, step, epoch).await.is_ok()
            }
        })
        .buffer_unordered(64);
    futures_util::pin_mut!(sends);
    while let Some(ok) = sends.next().await {
        acked += u64::from(ok);
    }
    let send_secs = started.elapsed().as_secs_f64();
    // Let the tail of the run arrive (bounded).
    let expected = acked as usize * args.subscribers / args.entities;
    let deadline = Instant::now() + Duration::from_secs(30);
    while latencies.borrow().len() < expected && Instant::now() < deadline {
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }
    let rss_load = rss_kib(pid);
    let l = latencies.borrow().clone();
    let received = l.len();
    let report = json!({
        "subscribers": args.subscribers,
        "entities": args.entities,
        "connectSeconds": connect_secs,
        "serverRssKiB": {"beforeSubscribers": rss_before, "idle": rss_idle, "underLoad": rss_load},
        "serverKiBPerIdleConnection": (rss_idle.saturating_sub(rss_before)) as f64 / args.subscribers as f64,
        "changesOffered": total,
        "changesAcknowledged": acked,
        "sendSeconds": send_secs,
        "deliveriesExpected": expected,
        "deliveriesReceived": received,
        "eventToSubscriberMs": common::percentiles(l),
    });
    println!("{}", serde_json::to_string_pretty(&report)?);
    for r in readers {
        r.abort();
    }
    drop(server);
    let _ = std::fs::remove_dir_all(&pg);
    Ok(())
}

/// A signed agent report: task `e` alternates working / input_required, one step a time.
async fn deliver(
    http: &reqwest::Client,
    base: &str,
    e: usize,
    step: u64,
    epoch: chrono::DateTime<chrono::Utc>,
) -> anyhow::Result<()> {
    let body = serde_json::to_vec(&json!({
        "taskId": format!("task-{e}"),
        "state": if step % 2 == 0 { "working" } else { "input_required" },
        "timestamp": (epoch + chrono::TimeDelta::seconds(step as i64)).to_rfc3339(),
    }))?;
    let r = http
        .post(format!("{base}/webhooks/agentapi"))
        .header(
            "X-Statsync-Signature",
            signature::sign_prefixed(SECRET.as_bytes(), &body),
        )
        .header("X-Statsync-Delivery", format!("ws-bench-{e}-{step}"))
        .body(body)
        .send()
        .await?;
    anyhow::ensure!(r.status().is_success(), "webhook answered {}", r.status());
    Ok(())
}
