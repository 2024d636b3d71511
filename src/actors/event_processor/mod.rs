//! EventProcessor: applies stored deliveries and API updates to the canonical store,
//! exactly once and in order per entity. Work is claimed from PostgreSQL (never held
//! only in memory), so a crash or restart loses nothing: what was not committed is
//! claimed again by whichever replica looks next.

mod apply;
mod attachments;
mod batch;
mod effects;
mod entity_state;
mod intake;
mod item;
mod links;
mod mentions;
mod merges;

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use chrono::Utc;

pub use item::{ApplyError, Engine, ItemOutcome, Lifecycle, Target, WorkItem};

use super::messages::Wake;

/// Apply one update now, in its own transaction (API calls, rollbacks, resolutions).
#[derive(Message)]
#[rtype(result = "Result<ItemOutcome, ApplyError>")]
pub struct ApplyNow(pub WorkItem);

pub struct EventProcessor {
    engine: Arc<Engine>,
    running: usize,
    /// A wake-up for fresh work came while every worker was busy: look again when one
    /// finishes.
    rewake: bool,
    /// The same for the start-up catch-up or the poll: look again at once.
    repoll: bool,
}

impl EventProcessor {
    pub fn new(engine: Arc<Engine>) -> Self {
        EventProcessor {
            engine,
            running: 0,
            rewake: false,
            repoll: false,
        }
    }

    /// Starts an applier if one may start. `fresh`: woken for work just stored (this
    /// replica's intake, another's hint), which may wait for company
    /// (`engine.gather_ms`); the start-up catch-up and the backstop poll claim at once.
    fn wake(&mut self, ctx: &mut Context<Self>, fresh: bool) {
        use std::sync::atomic::Ordering;
        if !self.engine.settings.server.worker_enabled || self.engine.lifecycle.stopping() {
            return;
        }
        if fresh && self.engine.gathering.load(Ordering::SeqCst) > 0 {
            // An applier has yet to claim: it will take this work with the rest.
            return;
        }
        // Appliers serialize on the event log's seq from their events to their commit,
        // so extra ones only pay when there is more than one can take: a second starts
        // only while batches come back full.
        let saturated = self.engine.saturated.load(Ordering::Relaxed);
        if self.running >= self.engine.settings.engine.workers || (self.running > 0 && !saturated) {
            self.rewake |= fresh;
            self.repoll |= !fresh;
            return;
        }
        self.running += 1;
        let gather = fresh && self.engine.settings.engine.gather_ms > 0;
        if gather {
            self.engine.gathering.fetch_add(1, Ordering::SeqCst);
        }
        let engine = self.engine.clone();
        ctx.spawn(
            async move {
                // Waiting for company before the first claim only: the drain goes on at
                // once while its batches come back full, and those need none.
                if gather {
                    let wait = Duration::from_millis(engine.settings.engine.gather_ms);
                    actix::clock::sleep(wait).await;
                    engine.gathering.fetch_sub(1, Ordering::SeqCst);
                }
                intake::guarded(&engine, intake::drain(&engine)).await
            }
            .into_actor(self)
            .map(|_, act, ctx| {
                act.running -= 1;
                let (fresh, poll) = (
                    std::mem::take(&mut act.rewake),
                    std::mem::take(&mut act.repoll),
                );
                if fresh || poll {
                    act.wake(ctx, fresh);
                }
            }),
        );
    }
}

/// How often delivery bodies past retention are dropped, and how far past it each run
/// looks (more than the interval, so a missed run or a slow replica misses nothing).
const PRUNE_INTERVAL: Duration = Duration::from_secs(3600);
const PRUNE_LOOKBACK_DAYS: i32 = 2;
/// Back to any delivery ever stored (a timestamp cannot go much further back).
const PRUNE_ALL_DAYS: i32 = 36_500;

impl EventProcessor {
    fn prune(&mut self, ctx: &mut Context<Self>, lookback_days: i32) {
        let engine = self.engine.clone();
        ctx.spawn(
            async move { intake::guarded(&engine, intake::prune_bodies(&engine, lookback_days)).await }
                .into_actor(self)
                .map(|_, _, _| ()),
        );
    }
}

impl Actor for EventProcessor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        if !self.engine.settings.server.worker_enabled {
            // API-only replica: applies API updates, leaves stored deliveries to workers.
            return;
        }
        // Re-queue whatever a previous run (of any replica) left unprocessed.
        self.wake(ctx, false);
        let poll = Duration::from_millis(self.engine.settings.engine.poll_interval_ms);
        ctx.run_interval(poll, |act, ctx| act.wake(ctx, false));
        ctx.run_interval(Duration::from_secs(1), |act, ctx| {
            let engine = act.engine.clone();
            ctx.spawn(
                async move { intake::refresh_backlog(&engine).await }
                    .into_actor(act)
                    .map(|_, _, _| ()),
            );
        });
        // Retention: once over everything at start, then hourly over the last days.
        self.prune(ctx, PRUNE_ALL_DAYS);
        ctx.run_interval(PRUNE_INTERVAL, |act, ctx| {
            act.prune(ctx, PRUNE_LOOKBACK_DAYS)
        });
        ctx.run_interval(poll, |act, ctx| {
            let engine = act.engine.clone();
            ctx.spawn(
                async move {
                    intake::guarded(&engine, intake::drain_postgresql_changes(&engine)).await
                }
                    .into_actor(act)
                    .map(|_, _, _| ()),
            );
        });
    }
}

impl Handler<Wake> for EventProcessor {
    type Result = ();

    fn handle(&mut self, _: Wake, ctx: &mut Context<Self>) {
        self.wake(ctx, true);
    }
}

impl Handler<ApplyNow> for EventProcessor {
    type Result = ResponseFuture<Result<ItemOutcome, ApplyError>>;

    fn handle(&mut self, msg: ApplyNow, _: &mut Context<Self>) -> Self::Result {
        let engine = self.engine.clone();
        Box::pin(async move { intake::apply_now(&engine, msg.0, Utc::now()).await })
    }
}
