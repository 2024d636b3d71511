//! SyncMonitor: owns the metrics registry and the alerts. On its interval it refreshes
//! the gauges read from the database; the one replica holding the evaluator's advisory
//! lock also judges the alerts and, in the same transaction, records what fired or
//! resolved in `active_alerts` and the event log. It never writes outside that lock.

pub mod rules;

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use chrono::{DateTime, SubsecRound, Utc};
use serde_json::json;
use uuid::Uuid;

use crate::actors::messages::EventsCommitted;
use crate::config::AlertSettings;
use crate::metrics::Metrics;
use crate::store::alerts::{self, ActiveAlert, Figures};
use crate::store::events::{self, NewEvent};
use crate::store::{Store, StoreError};
use rules::Change;

/// Rooms every alert event is logged in: everyone's feed, and a room for operators.
pub const ALERT_ROOMS: [&str; 2] = ["all", "alerts"];
/// The systems statsync writes to, whose outbox gauges always exist (0 when empty).
const OUTBOUND_SYSTEMS: [&str; 3] = ["github", "linear", "agentapi"];
const OUTBOX_STATES: [&str; 3] = ["pending", "in_flight", "dead"];

/// The text exposition of every metric, the pool gauges read now.
#[derive(Message)]
#[rtype(result = "String")]
pub struct Scrape;

/// The active alerts (GET /alerts).
#[derive(Message)]
#[rtype(result = "Result<Vec<ActiveAlert>, StoreError>")]
pub struct ListAlerts;

/// The replica is stopping: no more reads or evaluations (the database may go away).
#[derive(Message)]
#[rtype(result = "()")]
pub struct StopMonitor;

pub struct SyncMonitor {
    store: Store,
    settings: AlertSettings,
    metrics: Arc<Metrics>,
    /// Told after an evaluation logged events (WebSocket fan-out).
    committed: Vec<Recipient<EventsCommitted>>,
    /// A refresh is under way: the next tick skips rather than piling up.
    busy: bool,
}

impl SyncMonitor {
    pub fn new(
        store: Store,
        settings: AlertSettings,
        metrics: Arc<Metrics>,
        committed: Vec<Recipient<EventsCommitted>>,
    ) -> Self {
        SyncMonitor {
            store,
            settings,
            metrics,
            committed,
            busy: false,
        }
    }

    fn tick(&mut self, ctx: &mut Context<Self>) {
        if self.busy {
            return;
        }
        self.busy = true;
        let (store, settings, metrics) = (
            self.store.clone(),
            self.settings.clone(),
            self.metrics.clone(),
        );
        ctx.spawn(
            async move { refresh(&store, &settings, &metrics).await }
                .into_actor(self)
                .map(|done, act, _| {
                    act.busy = false;
                    match done {
                        Ok(Some(last_seq)) => {
                            let msg = EventsCommitted {
                                last_seq: Some(last_seq),
                                outbox_rows: 0,
                            };
                            for r in &act.committed {
                                r.do_send(msg.clone());
                            }
                        }
                        Ok(None) => {}
                        Err(e) => tracing::warn!(error = %e, "monitor refresh failed"),
                    }
                }),
        );
    }
}

impl Actor for SyncMonitor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.tick(ctx);
        let every = Duration::from_millis(self.settings.evaluation_interval_ms);
        ctx.run_interval(every, |act, ctx| act.tick(ctx));
    }
}

impl Handler<Scrape> for SyncMonitor {
    type Result = String;

    fn handle(&mut self, _: Scrape, _: &mut Context<Self>) -> String {
        let pool = self.store.pool().status();
        let m = &self.metrics;
        m.pool.db_pool_max.set(pool.max_size as i64);
        m.pool.db_pool_connections.set(pool.size as i64);
        m.pool.db_pool_idle.set(pool.available as i64);
        m.pool.db_pool_waiters.set(pool.waiting as i64);
        m.render()
    }
}

impl Handler<StopMonitor> for SyncMonitor {
    type Result = ();

    fn handle(&mut self, _: StopMonitor, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}

impl Handler<ListAlerts> for SyncMonitor {
    type Result = ResponseFuture<Result<Vec<ActiveAlert>, StoreError>>;

    fn handle(&mut self, _: ListAlerts, _: &mut Context<Self>) -> Self::Result {
        let store = self.store.clone();
        Box::pin(async move { alerts::active(&store.client().await?).await })
    }
}

/// One interval's work in one transaction: read the figures, export them, and when this
/// replica holds the evaluator's lock, judge the alerts and record the changes. Answers
/// the last seq logged, if any.
async fn refresh(
    store: &Store,
    settings: &AlertSettings,
    metrics: &Metrics,
) -> Result<Option<i64>, StoreError> {
    let mut client = store.client().await?;
    let tx = client.transaction().await?;
    let evaluator = alerts::try_lock_evaluator(&tx).await?;
    let figures = alerts::figures(&tx, settings.window_s as f64).await?;
    export(metrics, &figures);
    let mut active = alerts::active(&tx).await?;
    let mut last_seq = None;
    if evaluator {
        // As PostgreSQL keeps it, so the event and GET /alerts tell the same `since`.
        let now = Utc::now().trunc_subsecs(6);
        let changes = rules::evaluate(&rules::readings(&figures, settings), &active, now);
        let mut logged = Vec::new();
        for change in &changes {
            match change {
                Change::Fired(a) | Change::Updated(a) => alerts::upsert(&tx, a).await?,
                Change::Resolved { alert, .. } => alerts::remove(&tx, &alert.name).await?,
            }
            logged.extend(event(change, now));
        }
        // Last, as the engine does: the seq lock is held from here to the commit.
        last_seq = events::append(&tx, &logged).await?.last().copied();
        if !changes.is_empty() {
            active = alerts::active(&tx).await?;
        }
        tx.commit().await?;
        for change in &changes {
            log(change);
        }
    } else {
        tx.commit().await?;
    }
    metrics.alerts_firing.reset();
    for a in &active {
        metrics
            .alerts_firing
            .with_label_values(&[&a.name, &a.severity])
            .set(1);
    }
    Ok(last_seq)
}

fn export(m: &Metrics, f: &Figures) {
    for system in OUTBOUND_SYSTEMS {
        for state in OUTBOX_STATES {
            let n = f
                .depth
                .iter()
                .find(|d| d.system == system && d.state == state)
                .map_or(0, |d| d.count);
            m.outbound
                .outbox_depth
                .with_label_values(&[system, state])
                .set(n);
        }
    }
    m.outbound
        .outbox_oldest_pending_age
        .set(f.oldest_pending_age_s.unwrap_or(0.0));
}

/// The `alert_fired` / `alert_resolved` event of a change (none for a refresh).
fn event(change: &Change, now: DateTime<Utc>) -> Option<NewEvent> {
    let (kind, data) = match change {
        Change::Updated(_) => return None,
        Change::Fired(a) => (
            "alert_fired",
            json!({
                "alert": a.name,
                "severity": a.severity,
                "value": a.value,
                "threshold": a.threshold,
                "message": a.message,
                "since": a.since,
                "timestamp": now,
            }),
        ),
        Change::Resolved { alert: a, value } => (
            "alert_resolved",
            json!({
                "alert": a.name,
                "severity": a.severity,
                "value": value,
                "threshold": a.threshold,
                "message": format!("{} is back under its threshold of {}", a.name, a.threshold),
                "since": a.since,
                "timestamp": now,
            }),
        ),
    };
    Some(NewEvent {
        id: Uuid::new_v4(),
        event_type: kind.to_owned(),
        entity_id: None,
        rooms: ALERT_ROOMS.iter().map(|r| r.to_string()).collect(),
        data,
    })
}

fn log(change: &Change) {
    match change {
        Change::Fired(a) => tracing::warn!(
            alert = %a.name,
            severity = %a.severity,
            value = a.value,
            threshold = a.threshold,
            "alert fired: {}",
            a.message
        ),
        Change::Resolved { alert: a, value } => tracing::info!(
            alert = %a.name,
            value = ?value,
            threshold = a.threshold,
            "alert resolved"
        ),
        Change::Updated(_) => {}
    }
}
