//! Recording how an attempt of a claimed row ended, whichever queue it came from: in
//! one short transaction the row is finished under its lease, with what its queue
//! writes along (events, echoes, follow-up rows, a lookup's value read); then the commit
//! is announced. A lost lease writes nothing: the new holder's outcome stands. An
//! outcome that cannot be recorded is logged and left to the lease, which expires and
//! lets the row be claimed again: at least once, never lost.

use deadpool_postgres::{Object, Transaction};

use super::DispatchContext;
use crate::store::events::{self, NewEvent};
use crate::store::StoreError;

/// How finishing a claimed row went.
pub(super) enum Finished {
    /// Under its lease: what goes with it is written and committed.
    Held,
    /// The row expired and another replica took it.
    Lost,
    /// An earlier transaction recorded this outcome already: nothing to write.
    Recorded,
}

impl Finished {
    /// From whether the row was finished under its lease.
    pub(super) fn held(held: bool) -> Finished {
        if held {
            Finished::Held
        } else {
            Finished::Lost
        }
    }
}

/// What goes with a finished row in its transaction, besides the rows its queue writes
/// itself: events to log, and how many outbox rows were written.
#[derive(Default)]
pub(super) struct Along {
    pub events: Vec<NewEvent>,
    pub outbox_rows: usize,
}

/// One queue's part in recording an outcome.
pub(super) trait Outcome {
    /// Finishes the row under its lease, writing first whatever the finish refers to.
    async fn finish(
        &self,
        ctx: &DispatchContext,
        tx: &Transaction<'_>,
    ) -> Result<Finished, StoreError>;

    /// Writes what goes with a row finished under its lease.
    async fn along(&self, _tx: &Transaction<'_>) -> Result<Along, StoreError> {
        Ok(Along::default())
    }

    /// After the commit, on the same connection.
    async fn committed(&self, _client: &Object) {}

    fn lease_lost(&self);

    fn not_recorded(&self, error: &StoreError);
}

pub(super) async fn record(ctx: &DispatchContext, outcome: impl Outcome) {
    if let Err(e) = try_record(ctx, &outcome).await {
        outcome.not_recorded(&e);
    }
}

async fn try_record(ctx: &DispatchContext, outcome: &impl Outcome) -> Result<(), StoreError> {
    let mut client = ctx.store.client().await?;
    let tx = client.transaction().await?;
    match outcome.finish(ctx, &tx).await? {
        Finished::Held => {}
        Finished::Lost => {
            outcome.lease_lost();
            return Ok(()); // rolled back: nothing written by this attempt is stored
        }
        Finished::Recorded => return Ok(()),
    }
    let along = outcome.along(&tx).await?;
    let seqs = if along.events.is_empty() {
        Vec::new()
    } else {
        // Last before commit: it takes the event_seq lock held until commit.
        events::append(&tx, &along.events).await?
    };
    tx.commit().await?;
    ctx.announce(&seqs, along.outbox_rows);
    outcome.committed(&client).await;
    Ok(())
}
