//! Side by side with the architecture a team would write instead: the Node baseline in
//! `../shared/bench/node-baseline` (Express + pg: verify the signature, insert, answer)
//! and statsync (verify, commit, answer, then apply everything) on one fresh
//! PostgreSQL, the same `wrk` load against each in turn — the same signed GitHub body
//! with a fresh delivery id per request — alternating which goes first each round, as
//! this VM drifts by tens of percent within minutes. statsync's pending deliveries are
//! drained before its round is reported. Prints a line per run and a JSON summary with
//! the ranges and the ratio.
//!
//! cargo run --release --example side_by_side -- --rounds 3 --seconds 10
//!
//! Needs `wrk` (apt-get install wrk) and Node.js with npm: the baseline is copied to
//! target/side-by-side/ and `npm ci` installs its locked dependencies there once.

#[path = "common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Parser;
use serde_json::{json, Value};
use statsync::startup::ensure_database;

#[derive(Parser)]
struct Args {
    #[arg(long, default_value_t = 3)]
    rounds: u32,
    /// Seconds of load against each server per round.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    #[arg(long, default_value_t = 2)]
    threads: u32,
    #[arg(long, default_value_t = 64)]
    connections: u32,
    /// The delivery sent (an `issues` event).
    #[arg(long, default_value = "../shared/fixtures/github/issues.reopened.json")]
    fixture: PathBuf,
}

const SECRET: &str = "bench-secret";

/// One wrk run, as wrk printed it.
#[derive(Debug, Clone, Copy)]
struct Run {
    requests_per_s: f64,
    p50_ms: f64,
    p99_ms: f64,
    non_2xx: u64,
    requests: u64,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    actix_web::rt::System::new().block_on(run(args))
}

async fn run(args: Args) -> anyhow::Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let fixture = root.join(&args.fixture);
    let body = std::fs::read(&fixture).with_context(|| format!("reading {}", fixture.display()))?;
    let signature = statsync::systems::signature::sign_prefixed(SECRET.as_bytes(), &body);
    let script = root.join("../shared/bench/node-baseline/wrk-github.lua");
    which("wrk", "apt-get install -y wrk")?;

    let (statsync_url, cluster) = common::database("side-pg", "statsync").await?;
    let node_url = on_database(&statsync_url, "nodebase");
    let admin = on_database(&statsync_url, "postgres");
    ensure_database(&admin, "nodebase").await?;

    let mut node = start_node(root, &node_url).await?;
    let (statsync, handle, served) =
        common::serve(&statsync_url, "GITHUB_WEBHOOK_SECRET", SECRET).await?;
    let db = common::connect(&statsync_url).await?;
    let wrk = Wrk {
        script: &script,
        fixture: &fixture,
        signature: &signature,
        args: &args,
    };

    let mut node_runs = Vec::new();
    let mut statsync_runs = Vec::new();
    for round in 0..args.rounds {
        // Alternate who goes first: the machine's speed drifts between the two runs.
        let order: [&str; 2] = match round % 2 {
            0 => ["node", "statsync"],
            _ => ["statsync", "node"],
        };
        for who in order {
            let run_id = format!("{who}{round}-{}", uuid::Uuid::new_v4().simple());
            match who {
                "node" => {
                    let r = wrk.run(&node.1, &run_id).await?;
                    println!("round {round} node:     {}", line(&r, None));
                    node_runs.push(r);
                }
                _ => {
                    let r = wrk.run(&statsync, &run_id).await?;
                    // Reported only once everything accepted is applied.
                    let began = Instant::now();
                    common::drain(&db, Duration::from_secs(300)).await?;
                    let drained = began.elapsed();
                    println!("round {round} statsync: {}", line(&r, Some(drained)));
                    statsync_runs.push(r);
                }
            }
        }
    }
    let summary = summary(&node_runs, &statsync_runs, &args);
    println!("{}", serde_json::to_string_pretty(&summary)?);

    let _ = node.0.kill();
    let _ = node.0.wait();
    handle.stop(true).await;
    let _ = served.await;
    if let Some(c) = cluster {
        c.stop().await?;
    }
    Ok(())
}

/// The same server's database `name`.
fn on_database(url: &str, name: &str) -> String {
    let cut = url.rfind('/').map(|i| i + 1).unwrap_or(url.len());
    format!("{}{name}", &url[..cut])
}

fn which(program: &str, install: &str) -> anyhow::Result<()> {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .stdout(Stdio::null())
        .status()?
        .success();
    anyhow::ensure!(found, "`{program}` is not installed ({install})");
    Ok(())
}

/// The baseline copied beside the build (../shared is read-only), its locked
/// dependencies installed once, listening on a free port. Returns the process and URL.
async fn start_node(root: &Path, database_url: &str) -> anyhow::Result<(Child, String)> {
    which("npm", "install Node.js and npm")?;
    let source = root.join("../shared/bench/node-baseline");
    let dir = root.join("target/side-by-side/node-baseline");
    std::fs::create_dir_all(&dir)?;
    for file in ["server.js", "package.json", "package-lock.json"] {
        std::fs::copy(source.join(file), dir.join(file))
            .with_context(|| format!("copying {file}"))?;
    }
    if !dir.join("node_modules").is_dir() {
        let ok = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
            .current_dir(&dir)
            .status()?
            .success();
        anyhow::ensure!(ok, "npm ci failed in {}", dir.display());
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let child = Command::new("node")
        .arg("server.js")
        .current_dir(&dir)
        .env("DATABASE_URL", database_url)
        .env("PORT", port.to_string())
        .env("GITHUB_WEBHOOK_SECRET", SECRET)
        .stdout(Stdio::null())
        .spawn()?;
    let url = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        anyhow::ensure!(
            Instant::now() < deadline,
            "the Node baseline did not listen on {url}"
        );
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }
    Ok((child, url))
}

struct Wrk<'a> {
    script: &'a Path,
    fixture: &'a Path,
    signature: &'a str,
    args: &'a Args,
}

impl Wrk<'_> {
    /// Awaited, not blocked on: the service under test runs its actors on this thread.
    async fn run(&self, url: &str, run_id: &str) -> anyhow::Result<Run> {
        let out = tokio::process::Command::new("wrk")
            .arg(format!("-t{}", self.args.threads))
            .arg(format!("-c{}", self.args.connections))
            .arg(format!("-d{}s", self.args.seconds))
            .arg("-s")
            .arg(self.script)
            .arg("--latency")
            .arg(url)
            .env("BODY_FILE", self.fixture)
            .env("BODY_SIG", self.signature)
            .env("RUN_ID", run_id)
            .output()
            .await?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        anyhow::ensure!(
            out.status.success(),
            "wrk failed: {}{}",
            text,
            String::from_utf8_lossy(&out.stderr)
        );
        parse_wrk(&text).with_context(|| format!("reading wrk's report:\n{text}"))
    }
}

/// Requests/sec, the 50% and 99% latencies, the non-2xx count and the requests made.
fn parse_wrk(text: &str) -> anyhow::Result<Run> {
    let field = |prefix: &str| {
        text.lines()
            .map(str::trim)
            .find_map(|l| l.strip_prefix(prefix).map(|v| v.trim().to_owned()))
    };
    let latency = |pct: &str| -> anyhow::Result<f64> {
        let value = field(pct).context(format!("no {pct} latency"))?;
        let (number, unit) = value.split_at(
            value
                .find(|c: char| c.is_alphabetic())
                .unwrap_or(value.len()),
        );
        let n: f64 = number.parse()?;
        Ok(match unit {
            "us" => n / 1000.0,
            "s" => n * 1000.0,
            "m" => n * 60_000.0,
            _ => n,
        })
    };
    let requests = text
        .lines()
        .find(|l| l.contains("requests in"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .context("no request count")?;
    Ok(Run {
        requests_per_s: field("Requests/sec:").context("no Requests/sec")?.parse()?,
        p50_ms: latency("50%")?,
        p99_ms: latency("99%")?,
        non_2xx: field("Non-2xx or 3xx responses:")
            .map(|v| v.parse())
            .transpose()?
            .unwrap_or(0),
        requests,
    })
}

fn line(r: &Run, drained: Option<Duration>) -> String {
    let mut text = format!(
        "{:>8.0} req/s  p50 {:>6.2} ms  p99 {:>7.2} ms  non-2xx {}  ({} requests)",
        r.requests_per_s, r.p50_ms, r.p99_ms, r.non_2xx, r.requests
    );
    if let Some(d) = drained {
        text.push_str(&format!(
            "  queue drained {:.1} s after the load",
            d.as_secs_f64()
        ));
    }
    text
}

fn range(values: impl Iterator<Item = f64>) -> Value {
    let v: Vec<f64> = values.collect();
    let min = v.iter().cloned().fold(f64::INFINITY, f64::min);
    let max = v.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    json!([(min * 10.0).round() / 10.0, (max * 10.0).round() / 10.0])
}

fn summary(node: &[Run], statsync: &[Run], args: &Args) -> Value {
    // Each round's ratio is taken within the round: the two runs ran minutes apart at most.
    let ratios = node
        .iter()
        .zip(statsync)
        .map(|(n, s)| s.requests_per_s / n.requests_per_s);
    let side = |runs: &[Run]| {
        json!({
            "requests_per_s": range(runs.iter().map(|r| r.requests_per_s)),
            "p99_ms": range(runs.iter().map(|r| r.p99_ms)),
            "non_2xx": runs.iter().map(|r| r.non_2xx).sum::<u64>(),
        })
    };
    json!({
        "load": format!("wrk -t{} -c{} -d{}s, {}", args.threads, args.connections, args.seconds, args.fixture.display()),
        "rounds": args.rounds,
        "node": side(node),
        "statsync": side(statsync),
        "ratio": range(ratios),
    })
}
