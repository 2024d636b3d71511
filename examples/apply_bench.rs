//! Sustained apply benchmark: signed agent-API deliveries over HTTP at a target rate,
//! spread over N entities, against the real service; reports acknowledged deliveries,
//! applied updates per second and webhook-commit → canonical-commit latency (from the
//! rows' own timestamps) as JSON. Loopback only; bounded by `--seconds`.
//!
//! cargo run --release --example apply_bench -- --rate 5000 --seconds 20 --entities 10000
//!
//! With DATABASE_URL set it uses that server; otherwise a private durable cluster
//! (fsync on) under target/bench-pg, removed afterwards. `--replicas 2` runs two
//! replicas of the service (in this process, each with its own pool and appliers) on
//! that one database and sends the deliveries to them in turn.

#[path = "common/mod.rs"]
mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use common::{connect, drain};
use futures_util::StreamExt;
use statsync::systems::signature;

#[derive(Parser)]
struct Args {
    /// Deliveries per second to offer.
    #[arg(long, default_value_t = 5000)]
    rate: u64,
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    #[arg(long, default_value_t = 10_000)]
    entities: u64,
    /// Concurrent HTTP connections.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Measure the creation of the entities too, instead of first creating each one
    /// (one delivery per entity, applied before the measured load starts).
    #[arg(long)]
    no_warmup: bool,
    /// Replicas of the service on the one database, each applying, the deliveries sent
    /// to them in turn.
    #[arg(long, default_value_t = 1)]
    replicas: usize,
}

const SECRET: &str = "bench-secret";

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let rt = actix_web::rt::System::new();
    rt.block_on(run(args))
}

async fn run(args: Args) -> anyhow::Result<()> {
    let (url, cluster) = common::database("bench-pg", "bench").await?;
    // CPU spent by this process (generator + service) and by the cluster's processes,
    // so the cost per delivery can be compared between runs on a busy machine.
    let postmaster = cluster
        .as_ref()
        .and_then(|c| common::postmaster_pid(c.pg.data_dir()));
    let mut replicas = Vec::new();
    for _ in 0..args.replicas.max(1) {
        replicas.push(common::serve(&url, "AGENTAPI_WEBHOOK_SECRET", SECRET).await?);
    }
    let bases: Vec<String> = replicas.iter().map(|(base, _, _)| base.clone()).collect();

    let db = connect(&url).await?;
    let acked = Arc::new(AtomicU64::new(0));
    let refused = Arc::new(AtomicU64::new(0));
    if !args.no_warmup {
        let warm = Load {
            first: 0,
            count: args.entities,
            prefix: "warm",
            acked: Arc::new(AtomicU64::new(0)),
            refused: Arc::new(AtomicU64::new(0)),
        };
        run_load(&args, &bases, warm).await?;
        drain(&db, Duration::from_secs(300)).await?;
    }
    let upkeep_before = upkeep(&db).await?;
    let cpu_before = common::cpu_seconds(postmaster);
    let started = Instant::now();
    let offered = args.rate * args.seconds;
    let measured = Load {
        // after the warm-up's step 0, so every measured delivery is a change
        first: args.entities,
        count: offered,
        prefix: "bench",
        acked: acked.clone(),
        refused: refused.clone(),
    };
    run_load(&args, &bases, measured).await?;
    let send_secs = started.elapsed().as_secs_f64();
    drain(&db, Duration::from_secs(300)).await?;

    let row = db
        .query_one(
            "SELECT count(*),
                    extract(epoch FROM max(processed_at) - min(received_at))::float8,
                    percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM processed_at - received_at)),
                    percentile_cont(0.95) WITHIN GROUP (ORDER BY extract(epoch FROM processed_at - received_at)),
                    percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM processed_at - received_at)),
                    max(extract(epoch FROM processed_at - received_at))::float8
             FROM inbound_events WHERE state = 'processed' AND delivery_id LIKE 'bench-%'",
            &[],
        )
        .await?;
    let applied: i64 = db
        .query_one(
            "SELECT count(*) FROM status_transitions t JOIN inbound_events i ON i.id = t.inbound_event_id
             WHERE t.decision = 'applied' AND i.delivery_id LIKE 'bench-%'",
            &[],
        )
        .await?
        .get(0);
    let entities: i64 = db
        .query_one("SELECT count(*) FROM entities", &[])
        .await?
        .get(0);
    let cpu_after = common::cpu_seconds(postmaster);
    let upkeep_after = upkeep(&db).await?;
    // The worst second shows whether the tail is spread or one stall (autovacuum…).
    let worst_second: Option<f64> = db
        .query_one(
            "SELECT max(p99) * 1000 FROM (
                SELECT percentile_cont(0.99) WITHIN GROUP
                       (ORDER BY extract(epoch FROM processed_at - received_at)) AS p99
                FROM inbound_events WHERE state = 'processed' AND delivery_id LIKE 'bench-%'
                GROUP BY date_trunc('second', received_at)) AS s",
            &[],
        )
        .await?
        .get(0);
    let processed: i64 = row.get(0);
    let span: f64 = row.get::<_, Option<f64>>(1).unwrap_or(0.0);
    let ms = |i: usize| row.get::<_, Option<f64>>(i).unwrap_or(0.0) * 1000.0;
    let report = serde_json::json!({
        "offered": offered,
        "acknowledged": acked.load(Ordering::Relaxed),
        "refused": refused.load(Ordering::Relaxed),
        "sendSeconds": send_secs,
        "processed": processed,
        "appliedChanges": applied,
        "entities": entities,
        "processedPerSecond": if span > 0.0 { processed as f64 / span } else { 0.0 },
        "commitToCommitMs": {"p50": ms(2), "p95": ms(3), "p99": ms(4), "max": ms(5)},
        "worstSecondP99Ms": worst_second,
        // Database upkeep that ran while measuring: what a spike in the tail lines up with.
        "during": {
            "autovacuums": upkeep_after[0] - upkeep_before[0],
            "autoanalyzes": upkeep_after[1] - upkeep_before[1],
            "checkpoints": upkeep_after[2] - upkeep_before[2],
        },
        "cpuMsPerDelivery": {
            "service": (cpu_after.0 - cpu_before.0) * 1000.0 / processed.max(1) as f64,
            "postgres": (cpu_after.1 - cpu_before.1) * 1000.0 / processed.max(1) as f64,
        },
    });
    println!("{}", serde_json::to_string_pretty(&report)?);
    // The server, then the engine and the dispatcher, then the database: stopped in
    // that order, no pooled connection sees the cluster go away.
    for (_, handle, served) in replicas {
        handle.stop(true).await;
        served.await??;
    }
    if let Some(c) = cluster {
        c.stop().await?;
    }
    Ok(())
}

/// Autovacuum and autoanalyze runs over the tables, and checkpoints, so far.
async fn upkeep(db: &tokio_postgres::Client) -> anyhow::Result<[i64; 3]> {
    let row = db
        .query_one(
            "SELECT (SELECT coalesce(sum(autovacuum_count), 0)::int8 FROM pg_stat_user_tables),
                    (SELECT coalesce(sum(autoanalyze_count), 0)::int8 FROM pg_stat_user_tables),
                    (SELECT checkpoints_timed + checkpoints_req FROM pg_stat_bgwriter)",
            &[],
        )
        .await?;
    Ok([row.get(0), row.get(1), row.get(2)])
}

/// One phase of load: deliveries `first..first + count`, named `<prefix>-<n>`.
struct Load {
    first: u64,
    count: u64,
    prefix: &'static str,
    acked: Arc<AtomicU64>,
    refused: Arc<AtomicU64>,
}

/// Offers `load` from its own thread and runtime, like a separate client process, and
/// never blocks this thread (the service's actors and pooled connections run on it).
async fn run_load(args: &Args, bases: &[String], load: Load) -> anyhow::Result<()> {
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    let (rate, entities, connections) = (args.rate, args.entities, args.connections);
    let urls: Vec<String> = bases
        .iter()
        .map(|base| format!("{base}/webhooks/agentapi"))
        .collect();
    std::thread::spawn(move || {
        let result = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(anyhow::Error::from)
            .and_then(|rt| rt.block_on(offer(rate, entities, connections, urls, load)));
        let _ = done_tx.send(result);
    });
    done_rx
        .await
        .map_err(|_| anyhow::anyhow!("load thread panicked"))?
}

async fn offer(
    rate: u64,
    entities: u64,
    connections: usize,
    urls: Vec<String>,
    load: Load,
) -> anyhow::Result<()> {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(connections)
        .timeout(Duration::from_secs(10))
        .build()?;
    let start = Instant::now();
    let epoch = chrono::Utc::now() - chrono::TimeDelta::hours(1);
    let Load {
        first,
        count,
        prefix,
        acked,
        refused,
    } = load;
    futures_util::stream::iter(first..first + count)
        .map(|n| {
            let http = http.clone();
            let url = urls[n as usize % urls.len()].clone();
            let (acked, refused) = (acked.clone(), refused.clone());
            async move {
                // open-loop pacing: delivery n is due at (n - first) / rate seconds
                let due = start + Duration::from_secs_f64((n - first) as f64 / rate as f64);
                tokio::time::sleep_until(due.into()).await;
                let step = n / entities;
                let body = serde_json::to_vec(&serde_json::json!({
                    "taskId": format!("task-{}", n % entities),
                    "state": if step % 2 == 0 { "working" } else { "input_required" },
                    "timestamp": (epoch + chrono::TimeDelta::seconds(step as i64)).to_rfc3339(),
                }))
                .unwrap_or_default();
                let sig = signature::sign_prefixed(SECRET.as_bytes(), &body);
                let ok = http
                    .post(&url)
                    .header("X-Statsync-Signature", sig)
                    .header("X-Statsync-Delivery", format!("{prefix}-{n}"))
                    .body(body)
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success());
                if ok {
                    acked.fetch_add(1, Ordering::Relaxed)
                } else {
                    refused.fetch_add(1, Ordering::Relaxed)
                };
            }
        })
        .buffer_unordered(connections)
        .collect::<()>()
        .await;
    Ok(())
}
