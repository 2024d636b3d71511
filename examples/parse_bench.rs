//! What reading one delivery costs: a fixture parsed as the door and the engine parse it,
//! N times, the mean per parse printed. For instruction counts (repeatable on a noisy
//! machine) run it under `valgrind --tool=callgrind`.
//!
//! cargo run --release --example parse_bench -- issues ../shared/fixtures/github/issues.reopened.json 20000

use std::time::Instant;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let (event, path) = match (args.get(1), args.get(2)) {
        (Some(e), Some(p)) => (e.as_str(), p.as_str()),
        _ => anyhow::bail!("usage: parse_bench EVENT FILE [N]"),
    };
    let n: u32 = args
        .get(3)
        .map(|n| n.parse())
        .transpose()?
        .unwrap_or(20_000);
    let body = std::fs::read(path)?;
    let started = Instant::now();
    for _ in 0..n {
        let parsed = statsync::systems::github::parse_webhook(event, &body)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        std::hint::black_box(parsed);
    }
    let micros = started.elapsed().as_secs_f64() * 1e6 / f64::from(n);
    println!(
        "{event} {path}: {micros:.1} µs per parse ({} bytes)",
        body.len()
    );
    Ok(())
}
