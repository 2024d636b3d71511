//! Dispatcher: the outbox worker. It claims `sync_outbox` rows per system with
//! `FOR UPDATE SKIP LOCKED` under a lease (safe with several replicas; a dead replica's
//! rows are reclaimed when their lease expires), at most `dispatch.concurrency` calls in
//! flight per system, never two for one entity+system, oldest first, newer rows
//! superseding older ones for the same object. Each claimed row is delivered by
//! `deliver.rs`; retry timing lives in `retry.rs`, budgets in `systems/limiter.rs`.
//! GitHub item lookups (`lookup.rs`: reading a Projects v2 item's Status that a delivery
//! did not carry) are a queue of their own, claimed and paced the same way on GitHub's
//! budget. Either queue's outcomes are recorded by `record.rs`.
//! Woken after every commit that wrote outbox rows, and by a poll as the backstop. It
//! never holds a row lock or a pooled connection across an outbound HTTP call.
//! On a graceful stop (`StopDispatch`) it claims nothing more, hands rows whose call has
//! not started back to the queue at once (another replica or the next start takes them
//! without waiting for the lease), and lets calls already made finish within the grace.

mod deliver;
mod lookup;
mod record;
mod retry;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;

pub use retry::{Next, RetryPolicy};

use crate::actors::messages::EventsCommitted;
use crate::actors::status_mapper::StatusMapper;
use crate::config::Settings;
use crate::domain::SystemId;
use crate::metrics::Metrics;
use crate::store::lookups::LookupRow;
use crate::store::outbox::OutboxRow;
use crate::store::{echoes, events, outbox, Store, StoreError};
use crate::systems::connector::Registry;
use crate::systems::limiter::Budget;

/// A queue the dispatcher claims from: the outbox rows of one system statsync writes
/// to, or GitHub lookups.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Queue {
    Outbox(SystemId),
    Lookups,
}

impl Queue {
    /// Whose budget (and pauses) the queue's calls spend.
    fn system(self) -> SystemId {
        match self {
            Queue::Outbox(system) => system,
            Queue::Lookups => SystemId::Github,
        }
    }
}

/// One claimed piece of work.
enum Job {
    Write(OutboxRow),
    Lookup(LookupRow),
}

/// What every delivery shares.
pub struct DispatchContext {
    pub store: Store,
    pub mapper: Addr<StatusMapper>,
    pub settings: Arc<Settings>,
    pub metrics: Arc<Metrics>,
    /// Every system's connector: the outbox's writes and the lookups' reads go
    /// through it.
    pub registry: Arc<Registry>,
    pub budgets: HashMap<SystemId, Budget>,
    pub retry: RetryPolicy,
    /// Told of every commit that logged events (a write started or ended) or wrote a
    /// follow-up row: this replica's WebSocket manager, and other replicas through hints.
    pub committed: Vec<Recipient<EventsCommitted>>,
}

impl DispatchContext {
    pub fn new(
        store: Store,
        mapper: Addr<StatusMapper>,
        settings: Arc<Settings>,
        metrics: Arc<Metrics>,
        registry: Arc<Registry>,
        committed: Vec<Recipient<EventsCommitted>>,
    ) -> DispatchContext {
        let budgets: HashMap<SystemId, Budget> = registry
            .systems()
            .filter_map(|s| Some((s, registry.budget(s)?.clone())))
            .collect();
        let retry = RetryPolicy {
            max_attempts: settings.sync.max_retries.max(1),
            base: Duration::from_millis(settings.dispatch.retry_base_ms),
            cap: Duration::from_millis(settings.dispatch.retry_max_ms),
        };
        DispatchContext {
            store,
            mapper,
            settings,
            metrics,
            registry,
            budgets,
            retry,
            committed,
        }
    }

    /// After a commit: events up to `seqs`' last are logged, `outbox_rows` rows written.
    fn announce(&self, seqs: &[i64], outbox_rows: usize) {
        EventsCommitted::tell(&self.committed, seqs, outbox_rows);
    }

    fn paused(&self, system: SystemId) -> Option<Instant> {
        self.budgets.get(&system)?.lock().paused(Instant::now())
    }
}

#[derive(Default)]
struct Lane {
    running: usize,
    claiming: bool,
    /// A wake-up came during a claim: claim again when it ends.
    rewake: bool,
    /// A wake-up is already scheduled for the end of a pause.
    resume_at: Option<Instant>,
}

pub struct Dispatcher {
    ctx: Arc<DispatchContext>,
    lanes: HashMap<Queue, Lane>,
    stopping: bool,
    /// Told when the last delivery of a stopping dispatcher has been recorded.
    drained: Vec<tokio::sync::oneshot::Sender<()>>,
}

/// Graceful stop: answered once every delivery under way is recorded, or after `grace`.
#[derive(Message)]
#[rtype(result = "()")]
pub struct StopDispatch {
    pub grace: Duration,
}

impl Dispatcher {
    pub fn new(ctx: DispatchContext) -> Self {
        Dispatcher {
            ctx: Arc::new(ctx),
            lanes: HashMap::new(),
            stopping: false,
            drained: Vec::new(),
        }
    }

    fn idle(&self) -> bool {
        self.lanes.values().all(|l| l.running == 0 && !l.claiming)
    }

    fn tell_if_drained(&mut self) {
        if self.stopping && self.idle() {
            for waiter in self.drained.drain(..) {
                let _ = waiter.send(());
            }
        }
    }

    fn wake_all(&mut self, ctx: &mut Context<Self>) {
        let outboxes: Vec<Queue> = self.ctx.registry.systems().map(Queue::Outbox).collect();
        for queue in outboxes.into_iter().chain([Queue::Lookups]) {
            self.wake(queue, ctx);
        }
    }

    fn wake(&mut self, queue: Queue, ctx: &mut Context<Self>) {
        if self.stopping {
            return;
        }
        let limit = self.ctx.settings.dispatch.concurrency;
        let paused = self.ctx.paused(queue.system());
        let lane = self.lanes.entry(queue).or_default();
        if lane.claiming {
            lane.rewake = true;
            return;
        }
        if let Some(until) = paused {
            // Paused by the API: look again when the pause ends, not before.
            if lane.resume_at != Some(until) {
                lane.resume_at = Some(until);
                ctx.run_later(
                    until.saturating_duration_since(Instant::now()),
                    move |act, ctx| act.wake(queue, ctx),
                );
            }
            return;
        }
        let free = limit.saturating_sub(lane.running);
        if free == 0 {
            return; // a finishing delivery wakes the lane again
        }
        lane.claiming = true;
        let shared = self.ctx.clone();
        ctx.spawn(
            async move { claim(&shared, queue, free).await }
                .into_actor(self)
                .map(move |result, act, ctx| {
                    let lane = act.lanes.entry(queue).or_default();
                    lane.claiming = false;
                    let again = std::mem::take(&mut lane.rewake);
                    match result {
                        Ok(rows) => {
                            let full = rows.len() == free;
                            for job in rows {
                                act.start(queue, job, ctx);
                            }
                            if full || again {
                                act.wake(queue, ctx);
                            }
                        }
                        Err(e) => {
                            tracing::warn!(queue = ?queue, error = %e, "claiming failed; the poll retries");
                        }
                    }
                    act.tell_if_drained();
                }),
        );
    }

    fn start(&mut self, queue: Queue, job: Job, ctx: &mut Context<Self>) {
        self.lanes.entry(queue).or_default().running += 1;
        let shared = self.ctx.clone();
        ctx.spawn(
            async move {
                match job {
                    Job::Write(row) => deliver::deliver(&shared, row).await,
                    Job::Lookup(row) => lookup::perform(&shared, row).await,
                }
            }
            .into_actor(self)
            .map(move |_, act, ctx| {
                let lane = act.lanes.entry(queue).or_default();
                lane.running = lane.running.saturating_sub(1);
                act.wake(queue, ctx);
                act.tell_if_drained();
            }),
        );
    }
}

async fn claim(ctx: &DispatchContext, queue: Queue, limit: usize) -> Result<Vec<Job>, StoreError> {
    Ok(match queue {
        Queue::Outbox(system) => claim_writes(ctx, system, limit)
            .await?
            .into_iter()
            .map(Job::Write)
            .collect(),
        Queue::Lookups => lookup::claim(ctx, limit)
            .await?
            .into_iter()
            .map(Job::Lookup)
            .collect(),
    })
}

/// Supersedes, claims and announces `_sync_started` in one short transaction.
async fn claim_writes(
    ctx: &DispatchContext,
    system: SystemId,
    limit: usize,
) -> Result<Vec<OutboxRow>, StoreError> {
    let mut client = ctx.store.client().await?;
    let tx = client.transaction().await?;
    let lease = ctx.settings.dispatch.lease_ms as i64;
    let (superseded, rows) = outbox::claim(&tx, system, limit as i64, lease).await?;
    if superseded > 0 {
        tracing::debug!(
            system = system.as_str(),
            superseded,
            "coalesced outbox rows"
        );
    }
    let started: Vec<_> = rows
        .iter()
        .map(|row| deliver::sync_event(row, "started", deliver::base_data(row)))
        .collect();
    let seqs = events::append(&tx, &started).await?;
    tx.commit().await?;
    ctx.announce(&seqs, 0);
    Ok(rows)
}

async fn prune_echoes(ctx: &DispatchContext) {
    let window = ctx.settings.dispatch.echo_window_s;
    match ctx.store.client().await {
        Ok(client) => {
            if let Err(e) = echoes::prune(&client, window).await {
                tracing::debug!(error = %e, "pruning echoes failed");
            }
        }
        Err(e) => tracing::debug!(error = %e, "pruning echoes failed"),
    }
}

impl Actor for Dispatcher {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        // Rows left by a previous run (of any replica) are claimed at once.
        self.wake_all(ctx);
        let poll = Duration::from_millis(self.ctx.settings.dispatch.poll_interval_ms);
        ctx.run_interval(poll, |act, ctx| act.wake_all(ctx));
        ctx.run_interval(Duration::from_secs(60), |act, ctx| {
            let shared = act.ctx.clone();
            ctx.spawn(async move { prune_echoes(&shared).await }.into_actor(act));
        });
    }
}

impl Handler<StopDispatch> for Dispatcher {
    type Result = ResponseActFuture<Self, ()>;

    fn handle(&mut self, msg: StopDispatch, _: &mut Context<Self>) -> Self::Result {
        self.stopping = true;
        // Rows claimed in a claim still running are started and then released at once
        // by `deliver`, which sees the closed budget.
        for budget in self.ctx.budgets.values() {
            budget.close();
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.drained.push(tx);
        self.tell_if_drained();
        let grace = msg.grace;
        Box::pin(
            async move {
                if actix::clock::timeout(grace, rx).await.is_err() {
                    tracing::warn!(
                        "outbound calls still running at the end of the grace period; their rows are retried when the lease expires"
                    );
                }
            }
            .into_actor(self)
            .map(|_, _, ctx| ctx.stop()),
        )
    }
}

impl Handler<EventsCommitted> for Dispatcher {
    type Result = ();

    fn handle(&mut self, msg: EventsCommitted, ctx: &mut Context<Self>) {
        if msg.outbox_rows > 0 {
            self.wake_all(ctx);
        }
    }
}
