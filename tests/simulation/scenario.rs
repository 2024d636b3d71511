//! One seeded run: the world is laid out, statsync started on a fresh database, then the
//! scheduler plays people changing work on both sides (quick reversals, simultaneous
//! edits), the network delaying, reordering, duplicating and dropping webhooks, backlogs
//! released in one burst, API faults, clock skew and a SIGKILL with restart; then waits
//! for quiescence and hands over to the oracle. Every choice comes from the seed; the
//! virtual clock moves only when the scheduler says so.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

use super::courier;
use super::oracle;
use super::process::Statsync;
use super::standins::Shared;
use super::support::{cluster, connect, API_TOKEN};
use super::world::{
    Actor, Fault, GhIssue, Item, LinearIssue, Pull, Sys, Unit, World, GITHUB_PEOPLE, LINEAR_PEOPLE,
    LINEAR_STATES, OPTIONS, REPO,
};

/// Bounds of each system's clock skew a seed picks from (all well under
/// `sync.max_future_skew_ms`; the largest is beyond the conflict window).
const SKEW_BOUNDS_MS: [i64; 4] = [0, 2_000, 2_000, 15_000];
/// How long quiescence may take before the run counts as a livelock.
const QUIESCENCE: Duration = Duration::from_secs(60);

pub struct Outcome {
    pub failures: Vec<String>,
    pub trace: Vec<String>,
    pub summary: String,
    pub log: std::path::PathBuf,
}

/// What one seed will do, decided up front.
struct Plan {
    units: usize,
    steps: u64,
    kill: Option<(u64, u64)>,
    fault_rate: f64,
    identity_configured: bool,
}

fn lock(world: &Shared) -> std::sync::MutexGuard<'_, World> {
    world.lock().unwrap_or_else(|p| p.into_inner())
}

pub async fn run(seed: u64, world: &Shared, stand_ins: &str) -> Outcome {
    let mut rng = StdRng::seed_from_u64(seed);
    let plan = Plan {
        units: rng.gen_range(1..=3),
        steps: rng.gen_range(25..55),
        kill: None,
        fault_rate: [0.0, 0.05, 0.12][rng.gen_range(0..3)],
        identity_configured: match std::env::var("SIM_IDENTITY").as_deref() {
            Ok("configured") => true,
            Ok("discovered") => false,
            _ => rng.gen_bool(0.5),
        },
    };
    let plan = Plan {
        kill: rng
            .gen_bool(0.15)
            .then(|| (rng.gen_range(5..plan.steps - 5), rng.gen_range(2..6))),
        ..plan
    };
    // An hour before now, so that no source time is ever in statsync's future.
    let start_ms = (chrono::Utc::now() - chrono::TimeDelta::hours(1)).timestamp_millis();
    {
        let mut w = lock(world);
        *w = World::new(seed, start_ms);
        lay_out(&mut w, &mut rng, &plan);
    }
    let database_url = cluster::fresh_database().await;
    let mut app = Statsync::start(
        database_url.clone(),
        stand_ins,
        seed,
        plan.identity_configured,
    )
    .await;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .expect("http client");
    let db = connect(&database_url).await;
    let mut failures = Vec::new();

    link_units(world, &http, &app.base, &mut failures).await;
    // The Linear issues exist before anything else happens to them.
    let creates: Vec<(String, String)> = {
        let w = lock(world);
        w.units
            .iter()
            .map(|u| {
                let person = LINEAR_PEOPLE[rng.gen_range(0..LINEAR_PEOPLE.len())].0;
                (u.linear.clone(), person.to_owned())
            })
            .collect()
    };
    for (id, person) in creates {
        let mut w = lock(world);
        w.create_linear(&id, &person);
        // The setup is not what is under test: delivered at once, exactly once.
        for m in w.mail.iter_mut() {
            m.due = 0;
            m.copies = 0;
            m.dropped = false;
        }
    }
    courier::deliver(world, &http, &app.base, &mut rng, true, false).await;
    if let Err(e) = quiesce(world, &http, &app, &db, &mut rng).await {
        failures.push(format!("setup: {e}"));
    }

    let mut backlog_until: Option<u64> = None;
    let mut down_until: Option<u64> = None;
    let mut reversal: Option<Reversal> = None;
    let first = lock(world).step + 1;
    for step in first..first + plan.steps {
        let advance = if reversal.is_some() {
            rng.gen_range(200..1500)
        } else {
            match rng.gen_range(0..100) {
                0..=74 => rng.gen_range(100..3000),
                75..=94 => rng.gen_range(3000..8000),
                _ => rng.gen_range(10_000..40_000),
            }
        };
        {
            let mut w = lock(world);
            w.step = step;
            w.clock_ms += advance;
        }
        if let Some((at, down)) = plan.kill {
            if step == first + at {
                lock(world).log("KILL -9 statsync");
                app.kill();
                down_until = Some(step + down);
            }
        }
        if down_until == Some(step) {
            down_until = None;
            {
                let mut w = lock(world);
                w.incarnation += 1;
                w.log("RESTART statsync");
            }
            app.restart().await;
        }
        match reversal.take() {
            Some(r) => r.play(world),
            None => {
                if rng.gen_bool(0.7) {
                    reversal = person_change(world, &mut rng);
                    if rng.gen_bool(0.12) {
                        // Someone else edits the same work elsewhere at the same moment.
                        let unit = lock(world).changes.last().map(|c| c.unit);
                        if let Some(unit) = unit {
                            simultaneous(world, &mut rng, unit);
                        }
                    }
                }
            }
        }
        if backlog_until.is_none() && rng.gen_bool(0.05) {
            let until = step + rng.gen_range(4..12);
            lock(world).log(format!("BACKLOG: webhooks held until step {until}"));
            backlog_until = Some(until);
        }
        match backlog_until {
            Some(until) if until > step => {}
            Some(_) => {
                backlog_until = None;
                lock(world).log("BACKLOG released in one burst");
                courier::deliver(world, &http, &app.base, &mut rng, true, true).await;
            }
            None => {
                courier::deliver(world, &http, &app.base, &mut rng, false, false).await;
            }
        }
        let pause = rng.gen_range(0..40);
        actix_web::rt::time::sleep(Duration::from_millis(pause)).await;
    }
    if !app.running() {
        {
            let mut w = lock(world);
            w.incarnation += 1;
            w.log("RESTART statsync");
        }
        app.restart().await;
    }
    lock(world).log("QUIESCE");
    if let Err(e) = quiesce(world, &http, &app, &db, &mut rng).await {
        failures.push(e);
    }
    if failures.is_empty() {
        if let Err(e) = resolve_open_conflicts(world, &http, &app.base).await {
            failures.push(e);
        } else if let Err(e) = quiesce(world, &http, &app, &db, &mut rng).await {
            failures.push(format!("after resolving conflicts: {e}"));
        }
    }
    let mut decided = String::new();
    if failures.is_empty() {
        let (found, tally) = oracle::check(world, &db).await;
        failures.extend(found);
        decided = tally;
    }
    app.kill();
    let w = lock(world);
    failures.extend(w.violations.iter().cloned());
    let summary = format!(
        "{} units, {} steps, {} changes by people, {} writes by statsync, {} calls, {} webhooks sent{}{}{}",
        w.units.len(),
        plan.steps,
        w.changes
            .iter()
            .filter(|c| matches!(c.actor, Actor::Person(_)))
            .count(),
        w.changes
            .iter()
            .filter(|c| c.actor == Actor::Statsync)
            .count(),
        w.calls.len(),
        w.trace.iter().filter(|l| l.contains("] SEND ")).count(),
        if plan.kill.is_some() { ", killed once" } else { "" },
        if plan.identity_configured { ", identity configured" } else { "" },
        if plan.fault_rate > 0.0 {
            format!(", API faults {}%", (plan.fault_rate * 100.0) as u32)
        } else {
            String::new()
        }
    ) + &format!("; decisions: {decided}");
    Outcome {
        failures,
        trace: w.trace.clone(),
        summary,
        log: app.log_path().to_owned(),
    }
}

fn lay_out(w: &mut World, rng: &mut StdRng, plan: &Plan) {
    w.max_skew_ms = SKEW_BOUNDS_MS[rng.gen_range(0..SKEW_BOUNDS_MS.len())];
    for sys in [Sys::Github, Sys::Linear] {
        let skew = rng.gen_range(-w.max_skew_ms..=w.max_skew_ms);
        w.skew_ms.insert(sys, skew);
        let faults: VecDeque<Option<Fault>> = (0..400)
            .map(|_| {
                rng.gen_bool(plan.fault_rate).then(|| {
                    [
                        Fault::ServerError,
                        Fault::ServerError,
                        Fault::TooMany,
                        Fault::Exhausted,
                        Fault::Secondary,
                    ][rng.gen_range(0..5)]
                })
            })
            .collect();
        w.faults.insert(sys, faults);
    }
    w.item_value_omitted = if rng.gen_bool(0.3) { 0.3 } else { 0.0 };
    for i in 0..plan.units {
        let n = i as u64 + 1;
        let linear = format!("{:08x}-{:04x}-4000-8000-{:012x}", w.seed as u32, n, n);
        let identifier = format!("ENG-{n}");
        let issue = 10 + n;
        let item = format!("PVTI_sim_{n}");
        let state = LINEAR_STATES[rng.gen_range(0..4)].0;
        w.linear.insert(
            linear.clone(),
            LinearIssue {
                id: linear.clone(),
                identifier: identifier.clone(),
                state,
                updated_ms: w.clock_ms,
            },
        );
        w.issues.insert(
            issue,
            GhIssue {
                number: issue,
                open: true,
                reason: None,
                updated_s: w.clock_ms / 1000,
            },
        );
        w.items.insert(
            item.clone(),
            Item {
                node_id: item.clone(),
                issue,
                option: None,
                updated_s: w.clock_ms / 1000,
            },
        );
        let pull = rng.gen_bool(0.6).then(|| 100 + n);
        if let Some(number) = pull {
            w.pulls.insert(
                number,
                Pull {
                    number,
                    identifier: identifier.clone(),
                    opened: false,
                    open: false,
                    draft: false,
                    merged: false,
                    updated_s: w.clock_ms / 1000,
                },
            );
        }
        w.units.push(Unit {
            linear,
            identifier,
            issue,
            item,
            pull,
            entity: None,
        });
    }
    let skews = format!("{:?}", w.skew_ms);
    w.log(format!(
        "SEED {} : {} units, {} steps, kill {:?}, API fault rate {}, skew {skews}, item values \
         omitted {}, identity {}",
        w.seed,
        plan.units,
        plan.steps,
        plan.kill,
        plan.fault_rate,
        w.item_value_omitted,
        if plan.identity_configured {
            "configured"
        } else {
            "discovered"
        }
    ));
}

/// Each unit's Linear issue, GitHub issue and board item on one entity, through the API.
async fn link_units(
    world: &Shared,
    http: &reqwest::Client,
    base: &str,
    failures: &mut Vec<String>,
) {
    let units = lock(world).units.clone();
    for (i, u) in units.iter().enumerate() {
        let body = json!({"kind": "issue", "refs": [
            {"system": "linear", "externalId": u.linear},
            {"system": "github", "externalId": format!("{REPO}#{}", u.issue)},
            {"system": "github", "externalId": u.item},
        ]});
        let r = http
            .post(format!("{base}/api/v1/links"))
            .bearer_auth(API_TOKEN)
            .json(&body)
            .send()
            .await;
        let answer = match r {
            Ok(r) => (
                r.status().as_u16(),
                r.json::<Value>().await.unwrap_or_default(),
            ),
            Err(e) => (0, json!(e.to_string())),
        };
        let mut w = lock(world);
        match answer {
            (201, body) => {
                let id = body["id"].as_str().unwrap_or_default().to_owned();
                w.log(format!(
                    "LINK {} {} {} → entity {id}",
                    u.identifier, u.issue, u.item
                ));
                w.units[i].entity = Some(id);
            }
            (status, body) => failures.push(format!("linking {}: {status} {body}", u.identifier)),
        }
    }
}

/// A change a person will undo on the next step.
struct Reversal {
    object: Target,
    person: String,
}

#[derive(Clone)]
enum Target {
    Linear(String, &'static str),
    Issue(u64, bool, Option<String>),
    Item(String, &'static str),
}

impl Reversal {
    fn play(self, world: &Shared) {
        let mut w = lock(world);
        w.log(format!("REVERSAL by {}", self.person));
        let actor = Actor::Person(self.person);
        match self.object {
            Target::Linear(id, state) => w.set_linear(&id, state, actor),
            Target::Issue(n, open, reason) => w.set_issue(n, open, reason.as_deref(), actor),
            Target::Item(node, option) => w.set_item(&node, option, actor),
        };
    }
}

fn github_person(rng: &mut StdRng) -> String {
    GITHUB_PEOPLE[rng.gen_range(0..GITHUB_PEOPLE.len())].to_owned()
}

fn linear_person(rng: &mut StdRng) -> String {
    LINEAR_PEOPLE[rng.gen_range(0..LINEAR_PEOPLE.len())]
        .0
        .to_owned()
}

/// A person changes something; answers the reversal to play next when they will undo it.
fn person_change(world: &Shared, rng: &mut StdRng) -> Option<Reversal> {
    let units = lock(world).units.len();
    let unit = rng.gen_range(0..units);
    let kind = rng.gen_range(0..4);
    change_on(world, rng, unit, kind)
}

/// A second person changes the same unit in another place at the same moment.
fn simultaneous(world: &Shared, rng: &mut StdRng, unit: usize) {
    let last = lock(world).changes.last().map(|c| c.object.clone());
    let kind = match last.as_deref() {
        Some(o) if o.starts_with("linear:") => rng.gen_range(1..4),
        _ => 0,
    };
    lock(world).log("(a simultaneous edit follows)");
    let _ = change_on(world, rng, unit, kind);
}

/// `kind`: 0 Linear, 1 GitHub issue, 2 board item, 3 pull request (else Linear).
fn change_on(world: &Shared, rng: &mut StdRng, unit: usize, kind: u32) -> Option<Reversal> {
    let mut w = lock(world);
    let u = w.units[unit].clone();
    let undo = rng.gen_bool(0.12);
    let pull = u.pull.and_then(|p| w.pulls.get(&p).cloned());
    let kind = match (kind, &pull) {
        (3, Some(p)) if !p.merged => 3,
        (3, _) => 0,
        (k, _) => k,
    };
    match kind {
        1 => {
            let person = github_person(rng);
            let issue = w.issues.get(&u.issue).cloned()?;
            let before = Target::Issue(u.issue, issue.open, issue.reason.clone());
            if issue.open {
                let reason = if rng.gen_bool(0.6) {
                    "completed"
                } else {
                    "not_planned"
                };
                w.set_issue(u.issue, false, Some(reason), Actor::Person(person.clone()));
            } else {
                w.set_issue(u.issue, true, None, Actor::Person(person.clone()));
            }
            undo.then_some(Reversal {
                object: before,
                person,
            })
        }
        2 => {
            let person = github_person(rng);
            let item = w.items.get(&u.item).cloned()?;
            let choices: Vec<&'static str> = OPTIONS
                .iter()
                .copied()
                .filter(|o| Some(*o) != item.option)
                .collect();
            let option = choices[rng.gen_range(0..choices.len())];
            w.set_item(&u.item, option, Actor::Person(person.clone()));
            let before = item.option.map(|o| Target::Item(u.item.clone(), o));
            before
                .filter(|_| undo)
                .map(|object| Reversal { object, person })
        }
        3 => {
            let person = github_person(rng);
            let p = pull?;
            let action = if !p.opened {
                if rng.gen_bool(0.3) {
                    "opened_draft"
                } else {
                    "opened"
                }
            } else if !p.open {
                "reopened"
            } else if p.draft {
                ["ready_for_review", "ready_for_review", "closed"][rng.gen_range(0..3)]
            } else {
                [
                    "review_requested",
                    "converted_to_draft",
                    "merged",
                    "merged",
                    "closed",
                ][rng.gen_range(0..5)]
            };
            w.pull_action(p.number, action, &person);
            None
        }
        _ => {
            let person = linear_person(rng);
            let issue = w.linear.get(&u.linear).cloned()?;
            let choices: Vec<&'static str> = LINEAR_STATES
                .iter()
                .map(|s| s.0)
                .filter(|s| *s != issue.state)
                .collect();
            let state = choices[rng.gen_range(0..choices.len())];
            w.set_linear(&u.linear, state, Actor::Person(person.clone()));
            undo.then_some(Reversal {
                object: Target::Linear(u.linear.clone(), issue.state),
                person,
            })
        }
    }
}

async fn count(db: &tokio_postgres::Client, sql: &str) -> i64 {
    match db.query_one(sql, &[]).await {
        Ok(row) => row.get(0),
        Err(_) => -1,
    }
}

/// Delivers everything and waits until nothing moves: no webhook left to deliver, no
/// pending delivery, lookup or outbound write, and no new call for a while.
async fn quiesce(
    world: &Shared,
    http: &reqwest::Client,
    app: &Statsync,
    db: &tokio_postgres::Client,
    rng: &mut StdRng,
) -> Result<(), String> {
    let deadline = Instant::now() + QUIESCENCE;
    let mut stable = 0;
    let mut calls = usize::MAX;
    loop {
        {
            let mut w = lock(world);
            w.step += 1;
            w.clock_ms += 1000;
        }
        courier::deliver(world, http, &app.base, rng, true, false).await;
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
        let pending = count(
            db,
            "SELECT count(*) FROM inbound_events WHERE state = 'pending'",
        )
        .await;
        let outbound = count(
            db,
            "SELECT count(*) FROM sync_outbox WHERE state IN ('pending', 'in_flight')",
        )
        .await;
        let lookups = count(
            db,
            "SELECT count(*) FROM github_item_lookups WHERE state IN ('pending', 'in_flight')",
        )
        .await;
        let (mail, now_calls) = {
            let w = lock(world);
            (w.mail.len(), w.calls.len())
        };
        let quiet = pending == 0 && outbound == 0 && lookups == 0 && mail == 0;
        stable = if quiet && now_calls == calls {
            stable + 1
        } else {
            0
        };
        calls = now_calls;
        if stable >= 3 {
            let outbox = http
                .get(format!("{}/api/v1/sync/outbox", app.base))
                .bearer_auth(API_TOKEN)
                .send()
                .await
                .map_err(|e| e.to_string())?;
            let outbox: Value = outbox.json().await.map_err(|e| e.to_string())?;
            lock(world).log(format!("QUIET: outbox {outbox}"));
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!(
                "no quiescence after {QUIESCENCE:?}: {pending} deliveries pending, {outbound} \
                 outbound writes pending, {lookups} lookups pending, {mail} webhooks undelivered, \
                 {now_calls} calls so far (a loop?)"
            ));
        }
    }
}

/// A person settles every open conflict with the status of the latest person's change.
async fn resolve_open_conflicts(
    world: &Shared,
    http: &reqwest::Client,
    base: &str,
) -> Result<(), String> {
    let r = http
        .get(format!("{base}/api/v1/conflicts?state=open"))
        .bearer_auth(API_TOKEN)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let body: Value = r.json().await.map_err(|e| e.to_string())?;
    let open = body["conflicts"].as_array().cloned().unwrap_or_default();
    let mut settled = std::collections::BTreeSet::new();
    for c in open {
        let entity = c["entityId"].as_str().unwrap_or_default().to_owned();
        if !settled.insert(entity.clone()) {
            continue;
        }
        let status = oracle::latest_person_status(world, &entity)
            .unwrap_or_else(|| c["currentStatus"].as_str().unwrap_or("todo").to_owned());
        let id = c["id"].as_str().unwrap_or_default();
        let r = http
            .post(format!("{base}/api/v1/conflicts/{id}/resolve"))
            .bearer_auth(API_TOKEN)
            .json(&json!({"status": status, "resolvedBy": "sim-operator"}))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let code = r.status().as_u16();
        let answer: Value = r.json().await.unwrap_or_default();
        let mut w = lock(world);
        w.log(format!(
            "RESOLVE conflict {id} of {entity} as {status} → {code} {answer}"
        ));
        w.resolutions.push((entity, status));
        if code != 200 {
            return Err(format!("resolving conflict {id}: {code} {answer}"));
        }
    }
    Ok(())
}
