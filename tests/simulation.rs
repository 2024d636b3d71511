//! A seeded simulation of the whole sync loop (issue 15): stateful stand-ins for GitHub
//! and Linear that send the signed webhooks the real systems send — for people's changes
//! and for statsync's own writes, with the real actor — to the real `statsync` binary,
//! under a scheduler that delays, reorders, duplicates, drops and bursts them, fails API
//! calls, skews clocks and kills statsync; then an oracle checked after quiescence.
//!
//! `SIM_SEEDS=N` runs seeds 1..=N; `SIM_SEED=s` replays one and prints its trace;
//! `SIM_FIRST=k` starts the run at seed k. Without them, seeds run from 1 until the time
//! budget (`SIM_BUDGET_S`, default 75 s) is spent. A failing seed prints its seed, what
//! the oracle found and the trace of everything the scheduler, the network and statsync
//! did.

#[path = "simulation/courier.rs"]
mod courier;
#[path = "simulation/oracle.rs"]
mod oracle;
#[path = "simulation/payloads.rs"]
mod payloads;
#[path = "simulation/process.rs"]
mod process;
#[path = "simulation/scenario.rs"]
mod scenario;
#[path = "simulation/standins.rs"]
mod standins;
mod support;
#[path = "simulation/world.rs"]
mod world;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

#[actix_web::test]
async fn seeded_runs_of_the_whole_loop_keep_one_truth() {
    let first = env_u64("SIM_FIRST").unwrap_or(1);
    let replay = env_u64("SIM_SEED");
    let (seeds, budget): (Vec<u64>, Option<Duration>) = match (replay, env_u64("SIM_SEEDS")) {
        (Some(seed), _) => (vec![seed], None),
        (None, Some(n)) => ((first..first + n).collect(), None),
        (None, None) => (
            (first..first + 10_000).collect(),
            Some(Duration::from_secs(env_u64("SIM_BUDGET_S").unwrap_or(75))),
        ),
    };
    let world = Arc::new(Mutex::new(world::World::new(0, 0)));
    let stand_ins = standins::serve(world.clone()).await;
    let started = Instant::now();
    let mut ran = Vec::new();
    let mut failed = Vec::new();
    for seed in seeds {
        if budget.is_some_and(|b| started.elapsed() >= b) {
            break;
        }
        let t = Instant::now();
        let outcome = scenario::run(seed, &world, &stand_ins).await;
        ran.push(seed);
        let took = t.elapsed().as_secs_f64();
        if outcome.failures.is_empty() {
            eprintln!(
                "simulation seed {seed}: ok in {took:.1} s ({})",
                outcome.summary
            );
            if replay.is_some() {
                eprintln!("{}", outcome.trace.join("\n"));
            }
            continue;
        }
        let trace_file = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("simulation-seed-{seed}.trace"));
        let _ = std::fs::write(&trace_file, outcome.trace.join("\n"));
        eprintln!(
            "simulation seed {seed}: FAILED in {took:.1} s ({})\n  {}\n  trace: {} (replay: \
             SIM_SEED={seed} cargo test --test simulation); statsync's log: {}",
            outcome.summary,
            outcome.failures.join("\n  "),
            trace_file.display(),
            outcome.log.display(),
        );
        if replay.is_some() || failed.is_empty() {
            eprintln!(
                "--- trace of seed {seed} ---\n{}\n---",
                outcome.trace.join("\n")
            );
        }
        failed.push(seed);
    }
    eprintln!(
        "simulation: {} seeds ran ({}) in {:.0} s, {} failed{}",
        ran.len(),
        match (ran.first(), ran.last()) {
            (Some(a), Some(b)) => format!("{a}..={b}"),
            _ => "none".into(),
        },
        started.elapsed().as_secs_f64(),
        failed.len(),
        if failed.is_empty() {
            String::new()
        } else {
            format!(": {failed:?}")
        }
    );
    assert!(!ran.is_empty(), "no seed ran");
    assert!(failed.is_empty(), "failing seeds: {failed:?}");
}
