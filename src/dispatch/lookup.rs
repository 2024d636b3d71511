//! One claimed GitHub item lookup, one attempt: read the Projects v2 item's Status
//! through GitHub's connector (`Connector::read_back`: the same client, budget, pauses,
//! retry policy and error codes as every GitHub write), then, in one short transaction, store the value as a new
//! inbound update built from the original delivery and finish the lookup. An item that
//! no longer exists ends the lookup as `gone` with its reason; it is never retried. No
//! row lock and no pooled connection is held while the call is in flight.

use deadpool_postgres::{Object, Transaction};

use super::deliver::{millis, observe_rate};
use super::record::{self, Finished, Outcome};
use super::retry::Next;
use super::DispatchContext;
use crate::domain::{Origin, SystemId};
use crate::store::hints;
use crate::store::hints::Hint;
use crate::store::inbound::{self, NewDelivery, Stored};
use crate::store::lookups::{self, Finish, LookupRow};
use crate::store::StoreError;
use crate::systems::connector::{ReadBackRequest, ReadValue};
use crate::systems::outbound::{ErrorCode, OutboundError};

const GITHUB: SystemId = SystemId::Github;

/// Supersedes and claims lookups in one short transaction.
pub async fn claim(ctx: &DispatchContext, limit: usize) -> Result<Vec<LookupRow>, StoreError> {
    let mut client = ctx.store.client().await?;
    let tx = client.transaction().await?;
    let lease = ctx.settings.dispatch.lease_ms as i64;
    let (superseded, rows) = lookups::claim(&tx, limit as i64, lease).await?;
    tx.commit().await?;
    if superseded > 0 {
        tracing::debug!(superseded, "coalesced lookups of the same item");
    }
    Ok(rows)
}

/// Runs one attempt of `row` to its recorded end.
pub async fn perform(ctx: &DispatchContext, row: LookupRow) {
    let budget = ctx.budgets.get(&GITHUB);
    // As for writes: a paused GitHub, or a stop, hands the row back uncounted.
    let release = |delay_ms| Attempted::Ended(Finish::Release { delay_ms });
    if budget.is_some_and(|b| b.is_closed()) {
        return record(ctx, &row, release(0)).await;
    }
    if let Some(until) = ctx.paused(GITHUB) {
        let delay = until.saturating_duration_since(std::time::Instant::now());
        return record(ctx, &row, release(millis(delay))).await;
    }
    let request = ReadBackRequest {
        object: &row.item_id,
        delivery: &row.body,
        delivery_id: &row.delivery_id,
        lookup: row.id,
    };
    let Some(read) = ctx.registry.get(GITHUB).and_then(|c| c.read_back(request)) else {
        let end = Finish::Dead {
            code: ErrorCode::ValidationFailed.as_str().to_owned(),
            error: "no connector reads back GitHub values".into(),
        };
        return record(ctx, &row, Attempted::Ended(end)).await;
    };
    let result = read.await;
    if matches!(&result, Err(e) if e.code == ErrorCode::ShuttingDown) {
        return record(ctx, &row, release(0)).await;
    }
    let rate = match &result {
        Ok(read) => read.rate.clone(),
        Err(e) => e.rate.clone(),
    };
    observe_rate(ctx, GITHUB, &rate, result.as_ref().err());
    let code = result.as_ref().err().map_or("ok", |e| e.code.as_str());
    ctx.metrics
        .outbound
        .outbound_requests
        .with_label_values(&[GITHUB.as_str(), code])
        .inc();
    let attempted = match result {
        Ok(read) => outcome_of(read.value),
        Err(error) => Attempted::Ended(failed(ctx, &row, &error)),
    };
    record(ctx, &row, attempted).await;
}

/// What an attempt came to, before it is recorded.
enum Attempted {
    /// A value was read: `body` is the update to store.
    Read {
        body: Vec<u8>,
        event_type: &'static str,
        outcome: String,
    },
    Ended(Finish),
}

/// A read: the update to store, or why there is nothing to store.
fn outcome_of(value: ReadValue) -> Attempted {
    match value {
        ReadValue::Delivery {
            body,
            event_type,
            outcome,
        } => Attempted::Read {
            body,
            event_type,
            outcome,
        },
        ReadValue::Nothing(reason) => Attempted::Ended(Finish::Noop(reason)),
        ReadValue::Unusable(error) => Attempted::Ended(Finish::Dead {
            code: ErrorCode::ValidationFailed.as_str().to_owned(),
            error,
        }),
    }
}

fn failed(ctx: &DispatchContext, row: &LookupRow, error: &OutboundError) -> Finish {
    let code = error.code.as_str().to_owned();
    let end = if error.code == ErrorCode::NotFound {
        // Deleted (or moved off the board) since the delivery: nothing left to read.
        Finish::Gone {
            code,
            reason: format!(
                "{} no longer exists on GitHub: {}",
                row.item_id, error.message
            ),
        }
    } else {
        match ctx
            .retry
            .next(row.attempt.max(1) as u32, error, &mut rand::thread_rng())
        {
            Next::RetryAfter(wait) => Finish::Retry {
                delay_ms: millis(wait),
                code,
                error: error.message.clone(),
            },
            Next::DeadLetter => Finish::Dead {
                code,
                error: error.message.clone(),
            },
        }
    };
    tracing::warn!(
        lookup_id = row.id,
        item = %row.item_id,
        attempt = row.attempt,
        code = error.code.as_str(),
        outcome = ?end,
        "reading a project item's Status failed"
    );
    end
}

/// An attempt's outcome: the value read is stored as a new inbound update with it.
struct Looked<'a> {
    row: &'a LookupRow,
    attempted: Attempted,
}

async fn record(ctx: &DispatchContext, row: &LookupRow, attempted: Attempted) {
    record::record(ctx, Looked { row, attempted }).await;
}

impl Outcome for Looked<'_> {
    async fn finish(
        &self,
        ctx: &DispatchContext,
        tx: &Transaction<'_>,
    ) -> Result<Finished, StoreError> {
        let row = self.row;
        let (end, fed) = match &self.attempted {
            Attempted::Ended(end) => (end.clone(), None),
            Attempted::Read {
                body,
                event_type,
                outcome,
            } => {
                let delivery_id = format!("lookup-{}", row.id);
                let delivery = NewDelivery {
                    system: GITHUB,
                    origin: Origin::Lookup,
                    delivery_id: &delivery_id,
                    event_type,
                    priority: ctx.settings.engine.priorities.webhook.as_i16(),
                    body,
                    parsed: None,
                };
                match inbound::insert(tx, &delivery).await? {
                    Stored::New(fed_event_id) => {
                        (Finish::Done(Some(outcome.clone())), Some(fed_event_id))
                    }
                    // Stored and finished together: this lookup was recorded already.
                    Stored::Duplicate => return Ok(Finished::Recorded),
                }
            }
        };
        // Lost, the transaction rolls back: the update is not stored twice.
        let held = lookups::finish(tx, row.id, row.attempt, &end, fed).await?;
        Ok(Finished::held(held))
    }

    async fn committed(&self, client: &Object) {
        if !matches!(self.attempted, Attempted::Read { .. }) {
            return;
        }
        // The engine (on whichever replica) applies it now rather than at its next poll.
        let hint = Hint {
            inbound: true,
            ..Hint::default()
        };
        if let Err(e) = hints::notify(client, &hint).await {
            tracing::debug!(error = %e, "hint not sent; the engine's poll finds the row");
        }
    }

    fn lease_lost(&self) {
        tracing::warn!(
            lookup_id = self.row.id,
            "lease lost before the lookup's outcome was recorded"
        );
    }

    fn not_recorded(&self, e: &StoreError) {
        tracing::error!(lookup_id = self.row.id, error = %e, "could not record a lookup's outcome");
    }
}
