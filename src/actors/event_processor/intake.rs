//! The EventProcessor's loops: claim stored deliveries in priority order, apply them in
//! one transaction per batch, mark them processed in that same transaction, and tell
//! listeners after the commit. Transient database failures back off and retry; a
//! delivery that fails on its own is isolated and marked failed with its error, never
//! dropped silently and never allowed to block the rest.

use std::time::Duration;

use chrono::Utc;

use super::apply::apply_items;
use super::effects::Effects;
use super::item::{ApplyError, DecisionKind, Engine, ItemOutcome, Target, WorkItem};
use crate::actors::messages::EventsCommitted;
use crate::domain::{
    EntityKind, ExternalRef, NativeStatus, Origin, StatusUpdate, SystemId, UpdateAction,
};
use crate::store::inbound::{self, Claimed, Outcome};
use crate::store::tx::Tx;
use crate::store::{pg_source, StoreError};
use crate::systems::{stored, Parsed, PayloadError};

/// Consecutive transient failures after which a loop gives up until the next wake-up.
const MAX_TRANSIENT_FAILURES: u32 = 6;

/// Runs `work` unless shutting down, counted so shutdown can wait for it.
pub async fn guarded(engine: &Engine, work: impl std::future::Future<Output = ()>) {
    use std::sync::atomic::Ordering;
    if engine.lifecycle.stopping() {
        return;
    }
    engine.lifecycle.running.fetch_add(1, Ordering::SeqCst);
    work.await;
    engine.lifecycle.running.fetch_sub(1, Ordering::SeqCst);
}

/// Applies pending deliveries until a claim comes back short of its limit, i.e. none is
/// left that it could take (or shutdown begins).
pub async fn drain(engine: &Engine) {
    let configured = engine.settings.engine.batch_size as i64;
    let mut limit = configured;
    let mut failures = 0;
    while !engine.lifecycle.stopping() {
        match run_batch(engine, limit).await {
            // A batch short of its limit took everything claimable: what commits after
            // its claim wakes the processor itself (a `Wake` after each intake commit,
            // a hint from another replica, the poll), so looking once more would only
            // find nothing — at low rates, one empty claim transaction per delivery.
            Ok(claimed) if (claimed as i64) < limit => return,
            Ok(_) => {
                failures = 0;
                limit = configured;
            }
            Err((error, _)) if error.is_transient() => {
                failures += 1;
                if failures > MAX_TRANSIENT_FAILURES {
                    tracing::warn!(error = %error, "giving up until the next poll");
                    return;
                }
                tracing::warn!(error = %error, attempt = failures, "batch failed; retrying");
                actix::clock::sleep(backoff(failures)).await;
            }
            Err((error, first)) if limit > 1 => {
                // One delivery may be to blame: go one at a time until it is found.
                tracing::warn!(error = %error, inbound_id = ?first, "batch failed; isolating");
                limit = 1;
            }
            Err((error, first)) => {
                tracing::error!(error = %error, inbound_id = ?first, "delivery cannot be applied");
                if let Some(id) = first {
                    if let Err(e) = mark_failed(engine, id, &error).await {
                        tracing::error!(error = %e, inbound_id = id, "could not record the failure");
                        return;
                    }
                }
                limit = configured;
            }
        }
    }
}

fn backoff(attempt: u32) -> Duration {
    let base = 50u64 << attempt.min(6);
    Duration::from_millis(base + rand::random::<u64>() % base)
}

async fn run_batch(engine: &Engine, limit: i64) -> Result<usize, (ApplyError, Option<i64>)> {
    let fail = |first: Option<i64>| move |e: StoreError| (ApplyError::from(e), first);
    let mut tx = Tx::on(engine.store.client().await.map_err(fail(None))?);
    let mut claimed = tx
        .begin_with(|client| inbound::claim(client, limit))
        .await
        .map_err(fail(None))?;
    // An eighth-full batch (32 of 256) already means deliveries arrive about as fast as
    // one applier turns them round; a second one then halves the wait, since only the
    // event append and the commit are serialized between appliers. Measured at 5,000/s
    // in runs taken alternately: p99 25–29 ms from an eighth, 33–50 ms from half a
    // batch; from a full batch (session 3's rule) 82–132 ms. Below that rate the extra
    // appliers contend: at 2,000/s p99 is 13–16 ms with `engine.workers = 1` and
    // 51–57 ms with four. (BENCHMARKS, issue 3.)
    engine.saturated.store(
        claimed.len() as i64 * 8 >= limit,
        std::sync::atomic::Ordering::Relaxed,
    );
    let Some(first) = claimed.first().map(|c| c.id) else {
        tx.rollback().await.map_err(fail(None))?;
        return Ok(0);
    };
    let readings = read_stored(&tx, &mut claimed)
        .await
        .map_err(fail(Some(first)))?;
    let (items, mut marks) = work_items(engine, &claimed, readings);
    let now = Utc::now();
    let (outcomes, mut effects) = apply_items(&tx, engine, &items, now)
        .await
        .map_err(|e| (e, Some(first)))?;
    marks.extend(summarize(&claimed, &outcomes));
    effects.marks = marks;
    effects.commit(tx).await.map_err(fail(Some(first)))?;
    for m in &effects.marks {
        if let (Some(code), Some(c)) = (m.error_code, claimed.iter().find(|c| c.id == m.id)) {
            count_failed(engine, c.system.as_str(), code);
        }
    }

    observe(engine, &items, claimed.len());
    engine.backlog.add(-(claimed.len() as i64));
    announce(engine, &effects);
    Ok(claimed.len())
}

/// The door's stored reading of each claimed delivery, where this statsync can use it;
/// the others' bodies are read now (the claim leaves out the body of a row stored with
/// its reading).
async fn read_stored(
    tx: &Tx,
    claimed: &mut [Claimed],
) -> Result<Vec<Option<Vec<StatusUpdate>>>, StoreError> {
    let readings: Vec<Option<Vec<StatusUpdate>>> = claimed
        .iter()
        .map(|c| c.parsed.as_deref().and_then(stored::decode))
        .collect();
    let unread: Vec<i64> = claimed
        .iter()
        .zip(&readings)
        .filter(|(c, reading)| reading.is_none() && c.body.is_none())
        .map(|(c, _)| c.id)
        .collect();
    if !unread.is_empty() {
        let mut bodies = inbound::bodies(&**tx, &unread).await?;
        for c in claimed.iter_mut() {
            if let Some(body) = bodies.remove(&c.id) {
                c.body = Some(body);
            }
        }
    }
    Ok(readings)
}

/// The claimed deliveries' updates, and the outcomes of those that carry none (ignored,
/// or unparseable: failed for good, with its code).
fn work_items(
    engine: &Engine,
    claimed: &[Claimed],
    readings: Vec<Option<Vec<StatusUpdate>>>,
) -> (Vec<WorkItem>, Vec<Outcome>) {
    let mut items = Vec::new();
    let mut marks = Vec::new();
    for (c, reading) in claimed.iter().zip(readings) {
        let parsed = match reading {
            Some(updates) => Ok(Parsed::Updates(updates)),
            None => parse(engine, c),
        };
        match parsed {
            Ok(Parsed::Updates(updates)) => items.extend(updates.into_iter().map(|mut u| {
                if u.source_timestamp == StatusUpdate::UNTIMED {
                    u.source_timestamp = c.received_at;
                }
                WorkItem {
                    inbound_id: Some(c.id),
                    received_at: Some(c.received_at),
                    target: Target::Ref(u.target.clone()),
                    update: u,
                    forced: false,
                    resolves: None,
                    direct_write_from: None,
                    catch_up: c.origin == Origin::Backfill,
                }
            })),
            Ok(Parsed::Ignored { reason }) => marks.push(Outcome {
                id: c.id,
                state: "ignored",
                outcome: reason,
                error_code: None,
            }),
            Err(e) => marks.push(Outcome {
                id: c.id,
                state: "failed",
                outcome: format!("stored delivery cannot be parsed: {e}"),
                error_code: Some(UNPARSEABLE),
            }),
        }
    }
    (items, marks)
}

/// Delivery-to-commit times and the batch's size.
fn observe(engine: &Engine, items: &[WorkItem], claimed: usize) {
    let done = Utc::now();
    for item in items {
        if let Some(at) = item.received_at {
            let secs = (done - at).num_microseconds().unwrap_or(0) as f64 / 1e6;
            engine
                .metrics
                .inbound
                .webhook_to_commit
                .with_label_values(&[item.update.source.as_str()])
                .observe(secs.max(0.0));
        }
    }
    engine
        .metrics
        .inbound
        .batch_size
        .with_label_values(&["inbound"])
        .observe(claimed as f64);
}

/// One line per delivery: what each of its updates came to.
fn summarize(claimed: &[Claimed], outcomes: &[ItemOutcome]) -> Vec<Outcome> {
    claimed
        .iter()
        .filter_map(|c| {
            let mine: Vec<String> = outcomes
                .iter()
                .filter(|o| o.inbound_id == Some(c.id))
                .map(|o| format!("{}: {}", o.decision, o.reason))
                .collect();
            (!mine.is_empty()).then(|| Outcome {
                id: c.id,
                state: "processed",
                outcome: mine.join("; "),
                error_code: None,
            })
        })
        .collect()
}

fn parse(engine: &Engine, c: &Claimed) -> Result<Parsed, PayloadError> {
    let Some(body) = &c.body else {
        return Err(PayloadError::Missing("body".into()));
    };
    match engine.connectors.get(c.system) {
        Some(connector) => connector.parse(c.origin, &c.event_type, body),
        None => Ok(Parsed::Ignored {
            reason: format!("no connector reads {} deliveries", c.system),
        }),
    }
}

/// Why an accepted delivery could not be applied: the closed set of `error_code`s, and of
/// the `code` label of `statsync_deliveries_failed_total`.
const UNPARSEABLE: &str = "UNPARSEABLE";
const REJECTED_BY_DATABASE: &str = "REJECTED_BY_DATABASE";
const NOT_FOUND_CODE: &str = "NOT_FOUND";
const APPLY_FAILED: &str = "APPLY_FAILED";

fn failure_code(e: &ApplyError) -> &'static str {
    match e {
        ApplyError::Store(StoreError::Db(db)) if db.code().is_some() => REJECTED_BY_DATABASE,
        ApplyError::NotFound(_) => NOT_FOUND_CODE,
        _ => APPLY_FAILED,
    }
}

fn count_failed(engine: &Engine, system: &str, code: &str) {
    engine
        .metrics
        .inbound
        .deliveries_failed
        .with_label_values(&[system, code])
        .inc();
}

async fn mark_failed(engine: &Engine, id: i64, error: &ApplyError) -> Result<(), StoreError> {
    let client = engine.store.client().await?;
    let code = failure_code(error);
    let outcome = format!("cannot be applied: {error}");
    if let Some(system) = inbound::fail(&client, id, &outcome, code).await? {
        count_failed(engine, &system, code);
    }
    engine.backlog.add(-1);
    Ok(())
}

/// Applies one update in its own transaction and answers what became of it.
pub async fn apply_now(
    engine: &Engine,
    item: WorkItem,
    now: chrono::DateTime<Utc>,
) -> Result<ItemOutcome, ApplyError> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        match apply_once(engine, &item, now).await {
            Err(e) if e.is_transient() && attempt < 4 => {
                actix::clock::sleep(backoff(attempt)).await
            }
            other => return other,
        }
    }
}

async fn apply_once(
    engine: &Engine,
    item: &WorkItem,
    now: chrono::DateTime<Utc>,
) -> Result<ItemOutcome, ApplyError> {
    let tx = Tx::begin(engine.store.client().await?).await?;
    let (mut outcomes, mut effects) =
        apply_items(&tx, engine, std::slice::from_ref(item), now).await?;
    effects.commit(tx).await?;
    announce(engine, &effects);
    match outcomes.pop() {
        Some(o) if o.decision == DecisionKind::NotFound => Err(ApplyError::NotFound(o.reason)),
        Some(o) => Ok(o),
        None => Err(ApplyError::NotFound(
            "the update produced no outcome".into(),
        )),
    }
}

fn announce(engine: &Engine, effects: &Effects) {
    EventsCommitted::tell(&engine.committed, &effects.seqs, effects.outbox_rows());
}

/// Drops the bodies of deliveries past `intake.retention_days` that were applied or
/// ignored, looking `lookback_days` further back.
pub async fn prune_bodies(engine: &Engine, lookback_days: i32) {
    let days = i32::try_from(engine.settings.intake.retention_days).unwrap_or(i32::MAX);
    let pruned = match engine.store.client().await {
        Ok(client) => inbound::prune_bodies(&client, days, lookback_days).await,
        Err(e) => Err(e),
    };
    match pruned {
        Ok(0) => {}
        Ok(n) => tracing::info!(pruned = n, "delivery bodies past retention dropped"),
        Err(e) => tracing::warn!(error = %e, "pruning delivery bodies failed"),
    }
}

/// Keeps the intake limit honest: the real number of pending deliveries, which other
/// replicas change too.
pub async fn refresh_backlog(engine: &Engine) {
    match engine.store.client().await {
        Ok(client) => match inbound::count_pending(&client).await {
            Ok(n) => {
                engine.backlog.set(n);
                engine.metrics.inbound.inbound_backlog.set(n);
            }
            Err(e) => tracing::debug!(error = %e, "backlog refresh failed"),
        },
        Err(e) => tracing::debug!(error = %e, "backlog refresh failed"),
    }
}

/// Treats status writes other applications made directly in PostgreSQL as updates.
pub async fn drain_postgresql_changes(engine: &Engine) {
    while !engine.lifecycle.stopping() {
        match postgresql_batch(engine).await {
            Ok(0) => return,
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "applying direct PostgreSQL writes failed");
                return;
            }
        }
    }
}

async fn postgresql_batch(engine: &Engine) -> Result<usize, ApplyError> {
    let mut tx = Tx::on(engine.store.client().await?);
    let limit = engine.settings.engine.batch_size as i64;
    let writes = tx
        .begin_with(|client| pg_source::claim(client, limit))
        .await?;
    if writes.is_empty() {
        tx.rollback().await?;
        return Ok(0);
    }
    let items: Vec<WorkItem> = writes
        .iter()
        .map(|w| WorkItem {
            inbound_id: None,
            received_at: None,
            target: Target::Entity(w.entity_id),
            update: StatusUpdate {
                source: SystemId::Postgresql,
                target: ExternalRef::new(SystemId::Postgresql, w.entity_id.to_string()),
                aliases: Vec::new(),
                links: Vec::new(),
                kind: EntityKind::Issue,
                action: UpdateAction::Status {
                    native: NativeStatus::Canonical {
                        status: w.new_status,
                    },
                },
                source_timestamp: w.changed_at,
                project: None,
                // A deliberate write to the canonical store is an explicit change.
                explicit: true,
                title: None,
                body: None,
                metadata: serde_json::json!({ "via": "direct UPDATE of entities.status" }),
            },
            forced: false,
            resolves: None,
            direct_write_from: Some(w.old_status),
            catch_up: false,
        })
        .collect();
    let (_, mut effects) = apply_items(&tx, engine, &items, Utc::now()).await?;
    effects.postgresql_writes = writes.iter().map(|w| w.id).collect();
    effects.commit(tx).await?;
    announce(engine, &effects);
    Ok(writes.len())
}
