//! Load generator: correctly signed GitHub (`issues` closed / reopened) and Linear
//! (`Issue` update) deliveries at a target rate over N entities, M WebSocket
//! subscribers on those entities' rooms, and optionally fake GitHub and Linear APIs
//! (latency, a requests-per-second budget, real rate-limit headers) that the service
//! syncs to. Runs the service in-process and prints one JSON report: sent,
//! acknowledged, refused, applied (from the database), delivered (WebSocket), and
//! latency percentiles for the acknowledgement (client-measured), webhook → canonical
//! commit (`processed_at - received_at`) and commit → WebSocket (the event's
//! `timestamp`, stamped at its insert, to its arrival), and end to end per change
//! (sent → arrived at a subscriber, matched by entity and source time); CPU per delivery
//! (service, PostgreSQL, generator) and the primary's WAL per delivery over the same
//! window. Loopback only; bounded by `--seconds` and by the limits below.
//!
//! cargo run --release --example statsync_load -- --rate 2000 --seconds 10 \
//!     --entities 1000 --subscribers 1000 --fake-apis --api-latency-ms 50 --api-rps 100
//!
//! With DATABASE_URL set it uses that server; otherwise a private durable cluster under
//! target/load-pg, removed afterwards. Any STATSYNC__… variable tunes the service.
//! `--replicas 2` runs two replicas on the one database, each sent every other delivery
//! and serving half the subscribers.
//! `--warmup 5` first offers five seconds of the same load, waits until it is applied,
//! and only then connects the subscribers and opens the measured window: the steady
//! state, without a fresh service's first seconds (every entity's first change, cold
//! connections), which otherwise make most of the p99 (BENCHMARKS, session 16).

#[path = "common/mod.rs"]
mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use awc::ws;
use chrono::{DateTime, TimeDelta, Utc};
use clap::Parser;
use common::fake_apis::{self, Limits};
use common::WsConn;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use statsync::config::Settings;
use statsync::startup::Application;
use statsync::systems::signature;

#[derive(Parser, Clone)]
struct Args {
    /// Deliveries per second to offer (open loop), half GitHub, half Linear.
    #[arg(long, default_value_t = 500)]
    rate: u64,
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Seconds of the same load offered first and left out of the report (deliveries
    /// `warm-…`, applied before the subscribers connect and the measured window opens):
    /// the steady state, without a fresh service's first seconds.
    #[arg(long, default_value_t = 0)]
    warmup: u64,
    /// Objects changed: even ones are GitHub issues, odd ones Linear issues.
    #[arg(long, default_value_t = 100)]
    entities: u64,
    /// WebSocket subscribers, each on one entity's room (round robin).
    #[arg(long, default_value_t = 100)]
    subscribers: usize,
    /// Concurrent HTTP connections sending deliveries.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Serve fake GitHub and Linear APIs and link every entity to both systems, so each
    /// change is synced to the other one.
    #[arg(long)]
    fake_apis: bool,
    /// Latency of every fake API answer.
    #[arg(long, default_value_t = 0)]
    api_latency_ms: u64,
    /// Requests per second each fake API admits before refusing with its rate-limit
    /// answer.
    #[arg(long, default_value_t = 100)]
    api_rps: u64,
    /// Replicas of the service on the one database (in this process, each with its own
    /// pool, appliers and WebSocket manager): deliveries are sent to them in turn and the
    /// subscribers spread over them, so events cross replicas by `NOTIFY`.
    #[arg(long, default_value_t = 1)]
    replicas: usize,
    /// Where GitHub's `issues.*.json` fixtures are.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/fixtures/github"))]
    fixtures: std::path::PathBuf,
}

const GITHUB_SECRET: &str = "load-github-secret";
const LINEAR_SECRET: &str = "load-linear-secret";
const TOKEN: &str = "load-token";
const REPO: &str = "load/repo";
/// How long the service may take, after the sending ends, to process what it acknowledged.
const DRAIN: Duration = Duration::from_secs(120);

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    anyhow::ensure!(args.rate >= 1 && args.rate <= 100_000, "--rate: 1..=100000");
    anyhow::ensure!(
        args.seconds >= 1 && args.seconds <= 600,
        "--seconds: 1..=600"
    );
    anyhow::ensure!(args.warmup <= 600, "--warmup: at most 600");
    anyhow::ensure!(
        (1..=1_000_000).contains(&args.entities),
        "--entities: 1..=1000000"
    );
    anyhow::ensure!(args.subscribers <= 20_000, "--subscribers: at most 20000");
    anyhow::ensure!((1..=8).contains(&args.replicas), "--replicas: 1..=8");
    anyhow::ensure!(
        (1..=1024).contains(&args.connections),
        "--connections: 1..=1024"
    );
    let cluster = actix_web::rt::System::new().block_on(run(args))?;
    // Stopped once the service's actors are no longer polled, so none of them sees the
    // database go away.
    if let Some(c) = cluster {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
            .block_on(c.stop())?;
    }
    Ok(())
}

/// Runs the load and prints the report; answers the embedded cluster to stop, if any.
async fn run(args: Args) -> anyhow::Result<Option<common::Cluster>> {
    let templates = Templates::load(&args.fixtures)?;
    let (url, cluster) = common::database("load-pg", "load").await?;
    let postmaster = cluster
        .as_ref()
        .and_then(|c| common::postmaster_pid(c.pg.data_dir()));
    let fakes = if args.fake_apis {
        let limits = || Limits {
            latency: Duration::from_millis(args.api_latency_ms),
            rps: args.api_rps,
        };
        Some((fake_apis::github(limits())?, fake_apis::linear(limits())?))
    } else {
        None
    };
    // Loopback only: without fakes the API URLs lead nowhere (port 9, discard).
    let (github_url, linear_url) = match &fakes {
        Some((gh, lin)) => (gh.url.clone(), format!("{}/graphql", lin.url)),
        None => (
            "http://127.0.0.1:9".into(),
            "http://127.0.0.1:9/graphql".into(),
        ),
    };
    for (k, v) in [
        ("DATABASE_URL", url.clone()),
        ("GITHUB_WEBHOOK_SECRET", GITHUB_SECRET.into()),
        ("LINEAR_WEBHOOK_SECRET", LINEAR_SECRET.into()),
        ("STATSYNC_API_TOKENS", TOKEN.into()),
        ("GITHUB_TOKEN", "load-github-token".into()),
        ("LINEAR_API_KEY", "load-linear-key".into()),
        ("STATSYNC__GITHUB__API_URL", github_url.clone()),
        (
            "STATSYNC__GITHUB__GRAPHQL_URL",
            format!("{github_url}/graphql"),
        ),
        ("STATSYNC__LINEAR__API_URL", linear_url),
        ("STATSYNC__HTTP__PORT", "0".into()),
        ("STATSYNC__ENGINE__QUEUE_CAPACITY", "10000000".into()),
        (
            "STATSYNC__WS__MAX_CONNECTIONS",
            (args.subscribers + 100).to_string(),
        ),
    ] {
        std::env::set_var(k, v);
    }
    if std::env::var_os("STATSYNC__LOG__LEVEL").is_none() {
        std::env::set_var("STATSYNC__LOG__LEVEL", "warn");
    }
    let settings = Settings::load(None)?;
    statsync::telemetry::init(&settings.log);
    let (mut ports, mut replicas) = (Vec::new(), Vec::new());
    for _ in 0..args.replicas {
        let app = Application::build(settings.clone()).await?;
        ports.push(app.port());
        replicas.push((app.handle(), actix_web::rt::spawn(app.run_until_stopped())));
    }
    let bases: Vec<String> = ports
        .iter()
        .map(|port| format!("http://127.0.0.1:{port}"))
        .collect();
    let db = common::connect(&url).await?;

    let entities = create_entities(&bases[0], args.entities, args.fake_apis).await?;
    let epoch = Utc::now() - TimeDelta::hours(1);
    let warmup = Window {
        first: 0,
        count: args.rate * args.warmup,
        prefix: "warm",
    };
    // What the warm-up's sending met, reported beside the window's.
    let mut warmed = json!(null);
    if warmup.count > 0 {
        let w = run_senders(&args, &bases, templates.clone(), epoch, warmup).await?;
        common::drain(&db, DRAIN).await?;
        warmed = json!({
            "seconds": args.warmup,
            "sent": w.sent,
            "acknowledged": w.acked,
            "refused": w.refused,
        });
    }
    let rooms: Vec<String> = (0..args.subscribers)
        .map(|i| format!("entity:{}", entities[i % entities.len()]))
        .collect();
    let subscribers = Subscribers::start(ports, rooms.clone()).await?;
    let first_seq: i64 = db
        .query_one("SELECT coalesce(max(seq), 0) FROM events", &[])
        .await?
        .get(0);

    let (cpu_before, busy_before) = (common::cpu_seconds(postmaster), common::machine_jiffies());
    // The primary's WAL over the same window: what a standby, an archive and the disk carry.
    let wal_before: String = db
        .query_one("SELECT pg_current_wal_lsn()::text", &[])
        .await?
        .get(0);
    let window = Window {
        first: warmup.count,
        count: args.rate * args.seconds,
        prefix: "load",
    };
    let sent = run_senders(&args, &bases, templates, epoch, window).await?;
    common::drain(&db, DRAIN).await?;
    if args.fake_apis {
        common::count_reaches_zero(
            &db,
            "SELECT count(*) FROM sync_outbox WHERE state IN ('pending', 'in_flight')",
            "outbound writes",
            DRAIN,
        )
        .await?;
    }
    // Every event in a subscribed room after the subscriptions, once per subscriber.
    let mut per_room: HashMap<String, i64> = HashMap::new();
    for room in &rooms {
        *per_room.entry(room.clone()).or_default() += 1;
    }
    let mut expected = 0i64;
    for row in db
        .query(
            "SELECT 'entity:' || entity_id::text, count(*) FROM events
             WHERE seq > $1 AND entity_id IS NOT NULL GROUP BY entity_id",
            &[&first_seq],
        )
        .await?
    {
        let room: String = row.get(0);
        expected += row.get::<_, i64>(1) * per_room.get(&room).copied().unwrap_or(0);
    }
    let got = subscribers.finish(expected as u64).await;
    let (cpu_after, busy_after) = (common::cpu_seconds(postmaster), common::machine_jiffies());
    let wal_bytes: f64 = db
        .query_one(
            "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), $1::text::pg_lsn)::float8",
            &[&wal_before],
        )
        .await?
        .get(0);
    // End to end, per change: sent (just before the request) → arrived at a subscriber.
    let index: HashMap<&str, u64> = entities
        .iter()
        .enumerate()
        .map(|(i, id)| (id.as_str(), i as u64))
        .collect();
    let end_to_end: Vec<f64> = got
        .arrivals
        .iter()
        .filter_map(|(id, ts, arrived)| {
            let e = *index.get(id.as_str())?;
            let source = DateTime::parse_from_rfc3339(ts).ok()?.timestamp();
            let sent = sent.sent_at.get(&(e, source))?;
            Some((*arrived - *sent).num_microseconds()? as f64 / 1000.0)
        })
        .collect();

    let commit = db
        .query(
            "SELECT extract(epoch FROM processed_at - received_at)::float8 * 1000
             FROM inbound_events WHERE state = 'processed' AND delivery_id LIKE 'load-%'",
            &[],
        )
        .await?
        .iter()
        .map(|r| r.get::<_, f64>(0))
        .collect();
    let mut decisions = serde_json::Map::new();
    for row in db
        .query(
            "SELECT t.decision, count(*) FROM status_transitions t
             JOIN inbound_events i ON i.id = t.inbound_event_id
             WHERE i.delivery_id LIKE 'load-%' GROUP BY t.decision",
            &[],
        )
        .await?
    {
        decisions.insert(row.get(0), json!(row.get::<_, i64>(1)));
    }
    let per_delivery = 1000.0 / sent.sent.max(1) as f64;
    let mut report = json!({
        "replicas": args.replicas,
        "rate": args.rate,
        "seconds": args.seconds,
        "warmup": warmed,
        "entities": args.entities,
        "subscribers": args.subscribers,
        "sent": sent.sent,
        "acknowledged": sent.acked,
        "refused": sent.refused,
        "sendSeconds": sent.seconds,
        "applied": decisions.get("applied").cloned().unwrap_or(json!(0)),
        "decisions": decisions,
        "delivered": got.events,
        "deliveriesExpected": expected,
        "subscribersClosed": got.closed,
        // From the first send until the last event reached its subscribers. The
        // generator is this process's sending and subscribing threads; the service is
        // the rest of it.
        "cpuMsPerDelivery": {
            "generator": (sent.cpu_seconds + got.cpu_seconds) * per_delivery,
            "service": (cpu_after.0 - cpu_before.0 - sent.cpu_seconds - got.cpu_seconds) * per_delivery,
            "postgres": (cpu_after.1 - cpu_before.1) * per_delivery,
        },
        "walKbPerDelivery": wal_bytes / 1024.0 / sent.sent.max(1) as f64,
        "machineBusy": (busy_after.0 - busy_before.0) as f64
            / (busy_after.1 - busy_before.1).max(1) as f64,
        "latencyMs": {
            "ack": common::percentiles(sent.ack_ms),
            "webhookToCommit": common::percentiles(commit),
            "commitToWebSocket": common::percentiles(got.latency_ms),
            "webhookToWebSocket": common::percentiles(end_to_end),
        },
    });
    if let Some((gh, lin)) = &fakes {
        let mut outbox = serde_json::Map::new();
        for row in db
            .query(
                "SELECT state, count(*) FROM sync_outbox GROUP BY state",
                &[],
            )
            .await?
        {
            outbox.insert(row.get(0), json!(row.get::<_, i64>(1)));
        }
        report["outbound"] = json!({
            "github": gh.stats.report(),
            "linear": lin.stats.report(),
            "outbox": outbox,
        });
    }
    println!("{}", serde_json::to_string_pretty(&report)?);
    // The servers, then the engines and the dispatchers, then the database.
    for (handle, served) in replicas {
        handle.stop(true).await;
        served.await??;
    }
    Ok(cluster)
}

/// Entity `e`'s Linear issue id.
fn linear_id(e: u64) -> String {
    format!("00000000-0000-4000-8000-{e:012}")
}

/// One entity per object, linked to its system (and, with fake APIs, to the other
/// system too, so its changes are synced there); answers their ids by index.
async fn create_entities(base: &str, n: u64, both: bool) -> anyhow::Result<Vec<String>> {
    let http = reqwest::Client::new();
    futures_util::stream::iter(0..n)
        .map(|e| {
            let http = http.clone();
            let github = json!({"system": "github", "externalId": format!("{REPO}#{}", e + 1)});
            let linear = json!({"system": "linear", "externalId": linear_id(e)});
            let refs = match (both, e % 2) {
                (true, _) => vec![github, linear],
                (false, 0) => vec![github],
                (false, _) => vec![linear],
            };
            async move {
                let r = http
                    .post(format!("{base}/api/v1/links"))
                    .bearer_auth(TOKEN)
                    .json(&json!({"kind": "issue", "refs": refs}))
                    .send()
                    .await?;
                anyhow::ensure!(r.status().as_u16() == 201, "linking: {}", r.status());
                let v: Value = r.json().await?;
                Ok(v["id"].as_str().unwrap_or_default().to_owned())
            }
        })
        .buffered(16)
        .collect::<Vec<anyhow::Result<String>>>()
        .await
        .into_iter()
        .collect()
}

// ------------------------------------------------------------------ deliveries

/// The fixture bodies each delivery is rewritten from.
#[derive(Clone)]
struct Templates {
    github: Value,
}

impl Templates {
    fn load(dir: &std::path::Path) -> anyhow::Result<Templates> {
        let path = dir.join("issues.reopened.json");
        let bytes = std::fs::read(&path)
            .map_err(|e| anyhow::anyhow!("{}: {e} (see --fixtures)", path.display()))?;
        Ok(Templates {
            github: serde_json::from_slice(&bytes)?,
        })
    }

    /// Delivery `n`: its path, headers and signed body. Entity `n % entities` moves one
    /// step, one second of source time after its previous one.
    fn delivery(&self, n: u64, entities: u64, epoch: DateTime<Utc>, prefix: &str) -> Delivery {
        let e = n % entities;
        let step = 1 + n / entities;
        let at = epoch + TimeDelta::seconds(step as i64);
        let id = format!("{prefix}-{n}");
        if e % 2 == 0 {
            self.github(e, step, at, id)
        } else {
            linear(e, step, at, id)
        }
    }

    /// `issues` closed (completed) on odd steps, reopened on even ones.
    fn github(&self, e: u64, step: u64, at: DateTime<Utc>, id: String) -> Delivery {
        let mut v = self.github.clone();
        let closed = step % 2 == 1;
        let ts = at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        v["action"] = json!(if closed { "closed" } else { "reopened" });
        let issue = &mut v["issue"];
        issue["number"] = json!(e + 1);
        issue["state"] = json!(if closed { "closed" } else { "open" });
        issue["state_reason"] = json!(if closed { "completed" } else { "reopened" });
        issue["updated_at"] = json!(ts);
        issue["closed_at"] = if closed { json!(ts) } else { Value::Null };
        v["repository"]["full_name"] = json!(REPO);
        v["repository"]["name"] = json!("repo");
        let body = serde_json::to_vec(&v).unwrap_or_default();
        Delivery {
            path: "/webhooks/github",
            headers: [
                ("X-GitHub-Event", "issues".to_owned()),
                ("X-GitHub-Delivery", id),
                (
                    "X-Hub-Signature-256",
                    signature::sign_prefixed(GITHUB_SECRET.as_bytes(), &body),
                ),
            ],
            body,
        }
    }
}

/// A Linear `Issue` update (the `IssueWebhookPayload` of Linear's schema): Todo on odd
/// steps, In Progress on even ones.
fn linear(e: u64, step: u64, at: DateTime<Utc>, id: String) -> Delivery {
    let (state_id, name, kind) = if step % 2 == 1 {
        ("st-todo", "Todo", "unstarted")
    } else {
        ("st-doing", "In Progress", "started")
    };
    let identifier = format!("ENG-{}", e + 1);
    let body = serde_json::to_vec(&json!({
        "action": "update",
        "type": "Issue",
        "createdAt": at,
        "organizationId": "org-load",
        "webhookId": "hook-load",
        "webhookTimestamp": Utc::now().timestamp_millis(),
        "url": format!("https://linear.app/load/issue/{identifier}"),
        "actor": {"id": "user-load", "name": "Load", "type": "user"},
        "data": {
            "id": linear_id(e),
            "identifier": identifier,
            "title": "Load",
            "stateId": state_id,
            "state": {"id": state_id, "name": name, "type": kind, "color": "#f2c94c"},
            "team": {"id": "team-eng", "key": "ENG", "name": "Engineering"},
            "teamId": "team-eng",
            "updatedAt": at,
        },
        "updatedFrom": {"stateId": "st-previous", "updatedAt": at - TimeDelta::seconds(1)},
    }))
    .unwrap_or_default();
    Delivery {
        path: "/webhooks/linear",
        headers: [
            ("Linear-Event", "Issue".to_owned()),
            ("Linear-Delivery", id),
            (
                "Linear-Signature",
                signature::sign_hex(LINEAR_SECRET.as_bytes(), &body),
            ),
        ],
        body,
    }
}

struct Delivery {
    path: &'static str,
    headers: [(&'static str, String); 3],
    body: Vec<u8>,
}

struct Sent {
    sent: u64,
    acked: u64,
    refused: u64,
    seconds: f64,
    ack_ms: Vec<f64>,
    /// CPU seconds the sending thread spent (signing, HTTP client).
    cpu_seconds: f64,
    /// When each (entity, source second) delivery was sent, by the wall clock the
    /// subscribers' arrivals are stamped with.
    sent_at: HashMap<(u64, i64), DateTime<Utc>>,
}

/// Deliveries `first..first + count`, their ids `{prefix}-{n}`: source times go on
/// rising from the warm-up into the measured window.
#[derive(Clone, Copy)]
struct Window {
    first: u64,
    count: u64,
    prefix: &'static str,
}

/// Offers a window's deliveries at `--rate` from a thread and runtime of its own, like a
/// separate client process, never blocking the service's thread.
async fn run_senders(
    args: &Args,
    bases: &[String],
    templates: Templates,
    epoch: DateTime<Utc>,
    window: Window,
) -> anyhow::Result<Sent> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let (args, bases) = (args.clone(), bases.to_vec());
    std::thread::spawn(move || {
        let result = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(anyhow::Error::from)
            .and_then(|rt| rt.block_on(offer(args, bases, templates, epoch, window)))
            .map(|sent| Sent {
                cpu_seconds: common::thread_cpu_seconds(),
                ..sent
            });
        let _ = tx.send(result);
    });
    rx.await
        .map_err(|_| anyhow::anyhow!("the sending thread panicked"))?
}

async fn offer(
    args: Args,
    bases: Vec<String>,
    templates: Templates,
    epoch: DateTime<Utc>,
    window: Window,
) -> anyhow::Result<Sent> {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(args.connections)
        .timeout(Duration::from_secs(10))
        .build()?;
    let total = window.count;
    let (acked, refused) = (AtomicU64::new(0), AtomicU64::new(0));
    let ack_ms = Mutex::new(Vec::with_capacity(total as usize));
    let sent_at = Mutex::new(HashMap::with_capacity(total as usize));
    let start = Instant::now();
    futures_util::stream::iter(window.first..window.first + total)
        .map(|n| {
            let (http, base, templates) = (&http, &bases[n as usize % bases.len()], &templates);
            let (acked, refused, ack_ms, sent_at) = (&acked, &refused, &ack_ms, &sent_at);
            async move {
                // open loop: delivery n is due at n / rate seconds
                let due =
                    start + Duration::from_secs_f64((n - window.first) as f64 / args.rate as f64);
                tokio::time::sleep_until(due.into()).await;
                let d = templates.delivery(n, args.entities, epoch, window.prefix);
                let mut req = http
                    .post(format!("{base}{}", d.path))
                    .header("content-type", "application/json");
                for (k, v) in d.headers {
                    req = req.header(k, v);
                }
                // the same entity and source second as `Templates::delivery`
                let key = (
                    n % args.entities,
                    (epoch + TimeDelta::seconds((1 + n / args.entities) as i64)).timestamp(),
                );
                // unwrap: the lock is never held across a panic
                sent_at.lock().unwrap().insert(key, Utc::now());
                let sent_at = Instant::now();
                let ok = req
                    .body(d.body)
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success());
                if ok {
                    acked.fetch_add(1, Ordering::Relaxed);
                    let ms = sent_at.elapsed().as_secs_f64() * 1000.0;
                    // unwrap: the lock is never held across a panic
                    ack_ms.lock().unwrap().push(ms);
                } else {
                    refused.fetch_add(1, Ordering::Relaxed);
                }
            }
        })
        .buffer_unordered(args.connections)
        .collect::<()>()
        .await;
    Ok(Sent {
        sent: total,
        acked: acked.into_inner(),
        refused: refused.into_inner(),
        seconds: start.elapsed().as_secs_f64(),
        // unwrap: no other holder is left
        ack_ms: ack_ms.into_inner().unwrap(),
        sent_at: sent_at.into_inner().unwrap(),
        cpu_seconds: 0.0,
    })
}

// ------------------------------------------------------------------ subscribers

/// What the subscribers' thread shares with the main one.
#[derive(Default)]
struct Received {
    events: AtomicU64,
    closed: AtomicU64,
    latency_ms: Mutex<Vec<f64>>,
    /// (entity id, the change's source timestamp, arrival) of each `status_changed`.
    arrivals: Mutex<Vec<(String, String, DateTime<Utc>)>>,
}

/// What the subscribers received, once they are closed.
struct Got {
    events: u64,
    /// Commit → arrival, per event.
    latency_ms: Vec<f64>,
    /// Connections the server closed.
    closed: u64,
    /// (entity id, source timestamp, arrived at) per event.
    arrivals: Vec<(String, String, DateTime<Utc>)>,
    cpu_seconds: f64,
}

struct Subscribers {
    received: Arc<Received>,
    stop: tokio::sync::oneshot::Sender<()>,
    /// Answers the CPU seconds the subscribers' thread spent after connecting.
    done: tokio::sync::oneshot::Receiver<f64>,
}

impl Subscribers {
    /// One WebSocket per room, authenticated with the token and subscribed, on a thread
    /// and actix system of their own; answers once every subscription is acknowledged.
    async fn start(ports: Vec<u16>, rooms: Vec<String>) -> anyhow::Result<Subscribers> {
        let received = Arc::new(Received::default());
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let (done_tx, done) = tokio::sync::oneshot::channel();
        let shared = received.clone();
        std::thread::spawn(move || {
            let cpu = actix_web::rt::System::new().block_on(async move {
                match connect_all(&ports, rooms).await {
                    Ok(conns) => {
                        let connected_cpu = common::thread_cpu_seconds();
                        let _ = ready_tx.send(Ok(()));
                        let readers: Vec<_> = conns
                            .into_iter()
                            .map(|c| actix_web::rt::spawn(read(c, shared.clone())))
                            .collect();
                        let _ = stop_rx.await;
                        for r in readers {
                            r.abort();
                        }
                        common::thread_cpu_seconds() - connected_cpu
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        0.0
                    }
                }
            });
            let _ = done_tx.send(cpu);
        });
        ready_rx
            .await
            .map_err(|_| anyhow::anyhow!("the subscribers' thread panicked"))??;
        Ok(Subscribers {
            received,
            stop,
            done,
        })
    }

    /// Waits (at most 30 s) for `expected` events, then closes every connection;
    /// answers what they received.
    async fn finish(self, expected: u64) -> Got {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.received.events.load(Ordering::Relaxed) < expected && Instant::now() < deadline {
            actix_web::rt::time::sleep(Duration::from_millis(50)).await;
        }
        let _ = self.stop.send(());
        let cpu_seconds = self.done.await.unwrap_or(0.0);
        Got {
            events: self.received.events.load(Ordering::Relaxed),
            latency_ms: std::mem::take(&mut *self.received.latency_ms.lock().unwrap()),
            closed: self.received.closed.load(Ordering::Relaxed),
            arrivals: std::mem::take(&mut *self.received.arrivals.lock().unwrap()),
            cpu_seconds,
        }
    }
}

/// Subscriber `i` connects to replica `i % ports.len()`.
async fn connect_all(ports: &[u16], rooms: Vec<String>) -> anyhow::Result<Vec<WsConn>> {
    futures_util::stream::iter(rooms.into_iter().enumerate())
        .map(|(i, room)| {
            let url = format!("ws://127.0.0.1:{}/ws", ports[i % ports.len()]);
            async move {
                let mut conn = common::subscribe(&url, TOKEN, &room).await?;
                let deadline = Instant::now() + Duration::from_secs(10);
                loop {
                    let frame = tokio::time::timeout_at(deadline.into(), conn.next())
                        .await
                        .map_err(|_| anyhow::anyhow!("no `subscribed` within 10 s"))?;
                    match frame {
                        Some(Ok(ws::Frame::Text(t)))
                            if serde_json::from_slice::<Value>(&t)
                                .is_ok_and(|v| v["type"] == "subscribed") =>
                        {
                            return anyhow::Ok(conn);
                        }
                        Some(Ok(_)) => {}
                        other => anyhow::bail!("subscribing: {other:?}"),
                    }
                }
            }
        })
        .buffer_unordered(200)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect()
}

async fn read(mut conn: WsConn, received: Arc<Received>) {
    while let Some(Ok(frame)) = conn.next().await {
        match frame {
            ws::Frame::Text(t) => {
                let arrived = Utc::now();
                if let Some(ms) = common::event_age_ms(&t) {
                    received.events.fetch_add(1, Ordering::Relaxed);
                    // unwrap: the lock is never held across a panic
                    received.latency_ms.lock().unwrap().push(ms);
                }
                if let Ok(v) = serde_json::from_slice::<Value>(&t) {
                    let e = &v["event"];
                    if let (Some("status_changed"), Some(id), Some(ts)) = (
                        e["type"].as_str(),
                        e["entityId"].as_str(),
                        e["data"]["sourceTimestamp"].as_str(),
                    ) {
                        received.arrivals.lock().unwrap().push((
                            id.to_owned(),
                            ts.to_owned(),
                            arrived,
                        ));
                    }
                }
            }
            ws::Frame::Ping(p) => {
                let _ = conn.send(ws::Message::Pong(p)).await;
            }
            ws::Frame::Close(_) => break,
            _ => {}
        }
    }
    received.closed.fetch_add(1, Ordering::Relaxed);
}
