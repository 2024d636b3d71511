//! `active_alerts`, and the figures the SyncMonitor judges alerts on (read from
//! `sync_outbox` and `status_transitions`). Evaluation is serialized across replicas by a
//! transaction-scoped advisory lock; whoever does not get it only reads.

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use serde::Serialize;

use super::StoreError;

/// Arbitrary but fixed, distinct from the migrations' key: the alert evaluator's lock.
const EVALUATOR_LOCK: i64 = 0x5354_4154_414c_5254; // "STATALRT"

/// An alert that fires (GET /alerts).
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ActiveAlert {
    pub name: String,
    pub severity: String,
    pub value: f64,
    pub threshold: f64,
    pub since: DateTime<Utc>,
    pub message: String,
}

/// Outbox rows by system and state; only the states that drain or need a person.
#[derive(Debug, Clone, PartialEq)]
pub struct DepthCount {
    pub system: String,
    pub state: String,
    pub count: i64,
}

/// What the alerts are judged on, as of one read.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Figures {
    pub depth: Vec<DepthCount>,
    /// Seconds since the oldest pending or in-flight row was committed.
    pub oldest_pending_age_s: Option<f64>,
    /// Outbound writes attempted in the window, and how many of those failed.
    pub attempted: i64,
    pub failed: i64,
    /// Mean commit → success of the writes that succeeded in the window.
    pub average_sync_time_s: Option<f64>,
    /// Decisions taken in the window, and how many were conflicts.
    pub decisions: i64,
    pub conflicts: i64,
    /// Accepted deliveries that could not be applied and are not requeued.
    pub failed_deliveries: i64,
}

impl Figures {
    pub fn count(&self, states: &[&str]) -> i64 {
        self.depth
            .iter()
            .filter(|d| states.contains(&d.state.as_str()))
            .map(|d| d.count)
            .sum()
    }
}

const TRY_LOCK: &str = "SELECT pg_try_advisory_xact_lock($1)";
const DEPTH: &str = "SELECT system, state, count(*) FROM sync_outbox
    WHERE state IN ('pending', 'in_flight', 'dead') GROUP BY system, state";
// A write failed when its last attempt did: dead, or waiting to retry after an error.
const OUTBOUND: &str = "SELECT count(*),
        count(*) FILTER (WHERE state = 'dead'
                         OR (state = 'pending' AND error_code IS NOT NULL)),
        avg(EXTRACT(EPOCH FROM completed_at - created_at))
            FILTER (WHERE state IN ('done', 'noop'))::float8
    FROM sync_outbox
    WHERE updated_at >= now() - make_interval(secs => $1::float8)
      AND attempt_count > 0 AND state <> 'superseded'";
const DECISIONS: &str = "SELECT count(*), count(*) FILTER (WHERE decision = 'conflict')
    FROM status_transitions WHERE created_at >= now() - make_interval(secs => $1::float8)";

/// Takes the evaluator's lock until the end of the caller's transaction, if free.
pub async fn try_lock_evaluator(client: &impl GenericClient) -> Result<bool, StoreError> {
    let stmt = client.prepare_cached(TRY_LOCK).await?;
    Ok(client.query_one(&stmt, &[&EVALUATOR_LOCK]).await?.get(0))
}

pub async fn figures(client: &impl GenericClient, window_s: f64) -> Result<Figures, StoreError> {
    let stmt = client.prepare_cached(DEPTH).await?;
    let depth = client
        .query(&stmt, &[])
        .await?
        .iter()
        .map(|r| DepthCount {
            system: r.get(0),
            state: r.get(1),
            count: r.get(2),
        })
        .collect();
    let oldest_pending_age_s = super::outbox::oldest_pending_age(client).await?;
    let stmt = client.prepare_cached(OUTBOUND).await?;
    let out = client.query_one(&stmt, &[&window_s]).await?;
    let stmt = client.prepare_cached(DECISIONS).await?;
    let dec = client.query_one(&stmt, &[&window_s]).await?;
    Ok(Figures {
        depth,
        oldest_pending_age_s,
        attempted: out.get(0),
        failed: out.get(1),
        average_sync_time_s: out.get(2),
        decisions: dec.get(0),
        conflicts: dec.get(1),
        failed_deliveries: super::inbound::admin::count_failed(client).await?,
    })
}

const LIST: &str = "SELECT name, severity, value, threshold, since, message
    FROM active_alerts ORDER BY since, name";
const UPSERT: &str = "INSERT INTO active_alerts (name, severity, value, threshold, since, message)
    VALUES ($1, $2, $3, $4, $5, $6)
    ON CONFLICT (name) DO UPDATE SET severity = $2, value = $3, threshold = $4,
        message = $6, updated_at = now()";
const DELETE: &str = "DELETE FROM active_alerts WHERE name = $1";

pub async fn active(client: &impl GenericClient) -> Result<Vec<ActiveAlert>, StoreError> {
    let stmt = client.prepare_cached(LIST).await?;
    Ok(client
        .query(&stmt, &[])
        .await?
        .iter()
        .map(|r| ActiveAlert {
            name: r.get(0),
            severity: r.get(1),
            value: r.get(2),
            threshold: r.get(3),
            since: r.get(4),
            message: r.get(5),
        })
        .collect())
}

/// Records a firing alert (its `since` stays what it was when first fired).
pub async fn upsert(client: &impl GenericClient, a: &ActiveAlert) -> Result<(), StoreError> {
    let stmt = client.prepare_cached(UPSERT).await?;
    client
        .execute(
            &stmt,
            &[
                &a.name,
                &a.severity,
                &a.value,
                &a.threshold,
                &a.since,
                &a.message,
            ],
        )
        .await?;
    Ok(())
}

pub async fn remove(client: &impl GenericClient, name: &str) -> Result<(), StoreError> {
    let stmt = client.prepare_cached(DELETE).await?;
    client.execute(&stmt, &[&name]).await?;
    Ok(())
}
