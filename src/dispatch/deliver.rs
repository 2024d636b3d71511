//! One claimed outbox row, one attempt: wait for the system's budget, map the status to
//! its native value, call the connector, then record the outcome (row state, echo,
//! `<system>_sync_*` event) in one short transaction. No row lock and no pooled
//! connection is held while the HTTP call is in flight: the claim committed before, the
//! outcome is written after.

use std::time::{Duration, Instant};

use chrono::Utc;
use deadpool_postgres::Transaction;
use serde_json::json;
use uuid::Uuid;

use super::record::{self, Along, Finished, Outcome};
use super::retry::Next;
use super::DispatchContext;
use crate::actors::status_mapper::MapOutbound;
use crate::domain::{ExternalRef, SystemId};
use crate::store::events::NewEvent;
use crate::store::outbox::{self, Finish, OutboxRow};
use crate::store::{echoes, entities, StoreError};
use crate::systems::outbound::{
    until, Delivered, ErrorCode, OutboundError, OutboundWrite, RateInfo, Written,
};

/// How long a row waits when the mapper is unavailable (the process is stopping).
const MAPPER_RETRY: Duration = Duration::from_secs(1);

/// Runs one attempt of `row` to its recorded end.
pub async fn deliver(ctx: &DispatchContext, row: OutboxRow) {
    let system = row.system;
    // A system paused by its API since the claim: this does not count as an attempt.
    // (The connector takes a token per HTTP request, waiting for one if need be.)
    // Likewise a row claimed as statsync began to stop: straight back to the queue.
    let budget = ctx.budgets.get(&system);
    if budget.is_some_and(|b| b.is_closed()) {
        record(ctx, &row, Finish::Release { delay_ms: 0 }, None).await;
        return;
    }
    let paused = budget.and_then(|b| b.lock().paused(Instant::now()));
    if let Some(paused) = paused {
        let delay = paused.saturating_duration_since(Instant::now());
        record(
            ctx,
            &row,
            Finish::Release {
                delay_ms: millis(delay),
            },
            None,
        )
        .await;
        return;
    }
    let result = attempt(ctx, &row).await;
    if matches!(&result, Err(e) if e.code == ErrorCode::ShuttingDown) {
        tracing::debug!(outbox_id = row.id, "released unstarted row on stop");
        record(ctx, &row, Finish::Release { delay_ms: 0 }, None).await;
        return;
    }
    let rate = match &result {
        Ok((d, _)) => d.rate.clone(),
        Err(e) => e.rate.clone(),
    };
    observe_rate(ctx, system, &rate, result.as_ref().err());
    let (finish, announce) = match result {
        Ok((delivered, echo)) => succeeded(ctx, &row, delivered, echo),
        Err(error) => failed(ctx, &row, error),
    };
    record(ctx, &row, finish, Some(announce)).await;
}

/// A write that answered: counted, its commit-to-outbound time observed.
fn succeeded(
    ctx: &DispatchContext,
    row: &OutboxRow,
    delivered: Delivered,
    echo: bool,
) -> (Finish, Announce) {
    let system = row.system.as_str();
    ctx.metrics
        .outbound
        .outbound_requests
        .with_label_values(&[system, "ok"])
        .inc();
    let took = (Utc::now() - row.created_at)
        .num_microseconds()
        .unwrap_or(0);
    ctx.metrics
        .outbound
        .commit_to_outbound
        .with_label_values(&[system])
        .observe(took.max(0) as f64 / 1e6);
    let finish = match delivered.written {
        Written::Done => Finish::Done(None),
        Written::Noop(reason) => Finish::Noop(reason),
    };
    let echo = echo.then_some(delivered.object_updated_at);
    (finish, Announce::Completed { echo })
}

/// A write that failed: retried later or dead-lettered, counted and logged.
fn failed(ctx: &DispatchContext, row: &OutboxRow, error: OutboundError) -> (Finish, Announce) {
    let system = row.system.as_str();
    let code = error.code.as_str();
    ctx.metrics
        .outbound
        .outbound_requests
        .with_label_values(&[system, code])
        .inc();
    let next = ctx
        .retry
        .next(row.attempt.max(1) as u32, &error, &mut rand::thread_rng());
    let finish = match next {
        Next::RetryAfter(wait) => {
            ctx.metrics
                .outbound
                .outbound_retries
                .with_label_values(&[system, code])
                .inc();
            Finish::Retry {
                delay_ms: millis(wait),
                code: code.to_owned(),
                error: error.message.clone(),
            }
        }
        Next::DeadLetter => {
            ctx.metrics
                .outbound
                .dead_letters
                .with_label_values(&[system, code])
                .inc();
            Finish::Dead {
                code: code.to_owned(),
                error: error.message.clone(),
            }
        }
    };
    tracing::warn!(
        outbox_id = row.id,
        system,
        external_id = %row.external_id,
        attempt = row.attempt,
        code,
        retryable = error.retryable(),
        dead = matches!(finish, Finish::Dead { .. }),
        error = %error.message,
        "outbound write failed"
    );
    (finish, Announce::Failed(error))
}

enum Announce {
    /// `echo`: the native value changed, so the system will send a webhook about it,
    /// stamped with the object's updated-at the write answered (when it did).
    Completed {
        echo: Option<Option<chrono::DateTime<Utc>>>,
    },
    Failed(OutboundError),
}

/// What the API said about its budget: a spent budget or a rate-limit answer pauses
/// the whole system's queue until the reset.
pub(super) fn observe_rate(
    ctx: &DispatchContext,
    system: SystemId,
    rate: &RateInfo,
    error: Option<&OutboundError>,
) {
    let now = Utc::now();
    let pause = match error {
        Some(e) if e.code == ErrorCode::RateLimit => e.retry_after,
        _ => None,
    }
    .or_else(|| rate.exhausted_until().map(|at| until(at, now)));
    let Some(budget) = ctx.budgets.get(&system) else {
        return;
    };
    let mut l = budget.lock();
    if let Some(wait) = pause {
        tracing::warn!(
            system = system.as_str(),
            wait_ms = millis(wait),
            "rate limit reached: pausing this system's queue"
        );
        l.pause_until(Instant::now() + wait);
    }
    let remaining = rate
        .remaining
        .unwrap_or_else(|| l.remaining(Instant::now()));
    ctx.metrics
        .outbound
        .rate_limit_remaining
        .with_label_values(&[system.as_str()])
        .set(remaining);
}

/// The call itself; answers whether the write changes the system's native value.
async fn attempt(
    ctx: &DispatchContext,
    row: &OutboxRow,
) -> Result<(Delivered, bool), OutboundError> {
    let project_item = row.system == SystemId::Github && row.external_id.starts_with("PVTI_");
    let map = |status| MapOutbound {
        system: row.system,
        status,
        project: row.project.clone(),
        project_item,
    };
    let native = ctx.mapper.send(map(row.status)).await.map_err(|e| {
        let mut err = OutboundError::new(ErrorCode::Network, format!("status mapper: {e}"));
        err.retry_after = Some(MAPPER_RETRY);
        err
    })?;
    let Some(connector) = ctx.registry.get(row.system) else {
        // The canonical store itself is never a row's system; no other is unregistered.
        let written = Written::Noop(format!("no connector writes to {}", row.system));
        let delivered = Delivered {
            written,
            rate: RateInfo::default(),
            object_updated_at: None,
        };
        return Ok((delivered, false));
    };
    let links = if connector.writes_links() {
        links_of(ctx, row).await?
    } else {
        Vec::new()
    };
    let write = OutboundWrite {
        outbox_id: row.id,
        entity_id: row.entity_id,
        kind: row.kind,
        project: row.project.clone(),
        external_id: row.external_id.clone(),
        status: row.status,
        previous_status: row.previous_status,
        version: row.entity_version,
        operation_id: row.operation_id,
        links,
    };
    let delivered = connector.write(&write, &native).await?;
    // Every write is remembered, even one that sets the value statsync believes the
    // object had: the object may have been changed meanwhile, and the write then
    // overwrote that change (which is written back when its delivery is decided).
    let echo = delivered.written == Written::Done && connector.writes_come_back();
    Ok((delivered, echo))
}

async fn links_of(
    ctx: &DispatchContext,
    row: &OutboxRow,
) -> Result<Vec<ExternalRef>, OutboundError> {
    let store_failed = |e: StoreError| {
        let mut err = OutboundError::new(ErrorCode::Network, format!("reading links: {e}"));
        err.retry_after = Some(MAPPER_RETRY);
        err
    };
    // The pooled connection is released before the call: this scope ends first.
    let client = ctx.store.client().await.map_err(store_failed)?;
    let mut links = entities::links_of(&client, &[row.entity_id])
        .await
        .map_err(store_failed)?;
    Ok(links
        .remove(&row.entity_id)
        .unwrap_or_default()
        .iter()
        .map(|l| l.external_ref())
        .collect())
}

/// An attempt's outcome, written with its echo and its event.
struct Write<'a> {
    row: &'a OutboxRow,
    finish: Finish,
    announce: Option<Announce>,
}

async fn record(
    ctx: &DispatchContext,
    row: &OutboxRow,
    finish: Finish,
    announce: Option<Announce>,
) {
    let write = Write {
        row,
        finish,
        announce,
    };
    record::record(ctx, write).await;
}

impl Outcome for Write<'_> {
    async fn finish(
        &self,
        _: &DispatchContext,
        tx: &Transaction<'_>,
    ) -> Result<Finished, StoreError> {
        let row = self.row;
        let held = outbox::finish(tx, row.id, row.attempt, &self.finish).await?;
        Ok(Finished::held(held))
    }

    async fn along(&self, tx: &Transaction<'_>) -> Result<Along, StoreError> {
        let (row, finish) = (self.row, &self.finish);
        let mut along = Along::default();
        match &self.announce {
            Some(Announce::Completed { echo }) => {
                if let Some(updated_at) = echo {
                    let target = ExternalRef::new(row.system, row.external_id.clone());
                    echoes::record(tx, &target, row.status, *updated_at).await?;
                }
                if matches!(finish, Finish::Done(_)) && outbox::follow_up(tx, row).await? {
                    along.outbox_rows = 1;
                    tracing::debug!(
                        outbox_id = row.id,
                        "the entity moved on while this write was on its way: its status follows"
                    );
                }
                along.events.push(completed_event(row, finish));
            }
            Some(Announce::Failed(error)) => along.events.push(failed_event(row, finish, error)),
            None => {}
        }
        Ok(along)
    }

    fn lease_lost(&self) {
        tracing::warn!(
            outbox_id = self.row.id,
            "lease lost before the outcome was recorded"
        );
    }

    fn not_recorded(&self, e: &StoreError) {
        tracing::error!(outbox_id = self.row.id, error = %e, "could not record an outbound outcome");
    }
}

fn completed_event(row: &OutboxRow, finish: &Finish) -> NewEvent {
    let mut data = base_data(row);
    if let Finish::Noop(reason) = finish {
        data["noop"] = json!(true);
        data["reason"] = json!(reason);
    }
    sync_event(row, "completed", data)
}

fn failed_event(row: &OutboxRow, finish: &Finish, error: &OutboundError) -> NewEvent {
    let mut data = base_data(row);
    let (retrying, next_ms) = match finish {
        Finish::Retry { delay_ms, .. } => (true, Some(*delay_ms)),
        _ => (false, None),
    };
    data["error_code"] = json!(error.code);
    data["retryable"] = json!(error.retryable());
    data["retryAfter"] = json!(error.retry_after.map(|d| d.as_secs_f64()));
    data["message"] = json!(error.message);
    data["willRetry"] = json!(retrying);
    data["nextAttemptInMs"] = json!(next_ms);
    data["deadLetter"] = json!(matches!(finish, Finish::Dead { .. }));
    data["recoveryUrl"] = json!(format!("/api/v1/sync/outbox/{}/retry", row.id));
    let kind = if error.code == ErrorCode::Conflict {
        "conflict"
    } else {
        "failed"
    };
    sync_event(row, kind, data)
}

/// What every `<system>_sync_*` event carries.
pub fn base_data(row: &OutboxRow) -> serde_json::Value {
    json!({
        "operationId": row.operation_id,
        "projectId": row.project,
        "timestamp": Utc::now(),
        "outboxId": row.id,
        "system": row.system,
        "externalId": row.external_id,
        "status": row.status,
        "version": row.entity_version,
        "attempt": row.attempt,
    })
}

pub fn sync_event(row: &OutboxRow, what: &str, data: serde_json::Value) -> NewEvent {
    let mut rooms = vec!["all".to_owned(), format!("entity:{}", row.entity_id)];
    if let Some(p) = &row.project {
        rooms.push(format!("project:{p}"));
    }
    rooms.push(format!("system:{}", row.system));
    NewEvent {
        id: Uuid::new_v4(),
        event_type: format!("{}_sync_{what}", row.system),
        entity_id: Some(row.entity_id),
        rooms,
        data,
    }
}

pub(super) fn millis(d: Duration) -> i64 {
    d.as_millis().min(i64::MAX as u128) as i64
}
