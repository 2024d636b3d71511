//! The outbox as operators see it: counts by system and state, the age of the oldest
//! unfinished row, dead letters, and requeueing one. Never deletes a row.

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use serde::Serialize;
use uuid::Uuid;

use crate::store::StoreError;

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StateCount {
    pub system: String,
    pub state: String,
    pub count: i64,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OutboxSummary {
    pub counts: Vec<StateCount>,
    /// Seconds since the oldest pending or in-flight row was written; `None` when none.
    pub oldest_pending_age_seconds: Option<f64>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetter {
    pub id: i64,
    pub entity_id: Uuid,
    pub system: String,
    pub external_id: String,
    pub status: String,
    pub attempt_count: i32,
    pub error_code: Option<String>,
    pub last_error: Option<String>,
    pub operation_id: Uuid,
    pub updated_at: DateTime<Utc>,
}

const COUNTS: &str = "SELECT system, state, count(*) FROM sync_outbox
    GROUP BY system, state ORDER BY system, state";
const OLDEST: &str = "SELECT EXTRACT(EPOCH FROM now() - min(created_at))::float8
    FROM sync_outbox WHERE state IN ('pending', 'in_flight')";
const DEAD: &str = "SELECT id, entity_id, system, external_id, status, attempt_count,
        error_code, last_error, operation_id, updated_at
    FROM sync_outbox WHERE state = 'dead' ORDER BY updated_at DESC, id DESC LIMIT $1";

pub async fn summary(client: &impl GenericClient) -> Result<OutboxSummary, StoreError> {
    let counts = client.prepare_cached(COUNTS).await?;
    let counts = client
        .query(&counts, &[])
        .await?
        .iter()
        .map(|r| StateCount {
            system: r.get(0),
            state: r.get(1),
            count: r.get(2),
        })
        .collect();
    Ok(OutboxSummary {
        counts,
        oldest_pending_age_seconds: oldest_pending_age(client).await?,
    })
}

/// Seconds since the oldest pending or in-flight row was written; `None` when none.
pub async fn oldest_pending_age(client: &impl GenericClient) -> Result<Option<f64>, StoreError> {
    let stmt = client.prepare_cached(OLDEST).await?;
    Ok(client.query_one(&stmt, &[]).await?.get(0))
}

pub async fn dead_letters(
    client: &impl GenericClient,
    limit: i64,
) -> Result<Vec<DeadLetter>, StoreError> {
    let stmt = client.prepare_cached(DEAD).await?;
    Ok(client
        .query(&stmt, &[&limit])
        .await?
        .iter()
        .map(|r| DeadLetter {
            id: r.get(0),
            entity_id: r.get(1),
            system: r.get(2),
            external_id: r.get(3),
            status: r.get(4),
            attempt_count: r.get(5),
            error_code: r.get(6),
            last_error: r.get(7),
            operation_id: r.get(8),
            updated_at: r.get(9),
        })
        .collect())
}

/// What became of a requeue request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requeue {
    Requeued,
    NotFound,
    /// The row exists but is not a dead letter; its state is returned.
    NotDead,
}

/// A dead letter gets a fresh set of attempts; its last error stays for reference.
const REQUEUE: &str = "UPDATE sync_outbox
    SET state = 'pending', attempt_count = 0, run_at = now(), updated_at = now(),
        completed_at = NULL
    WHERE id = $1 AND state = 'dead'";
const EXISTS: &str = "SELECT state FROM sync_outbox WHERE id = $1";

pub async fn requeue_dead(client: &impl GenericClient, id: i64) -> Result<Requeue, StoreError> {
    let stmt = client.prepare_cached(REQUEUE).await?;
    if client.execute(&stmt, &[&id]).await? == 1 {
        return Ok(Requeue::Requeued);
    }
    let stmt = client.prepare_cached(EXISTS).await?;
    Ok(match client.query_opt(&stmt, &[&id]).await? {
        Some(_) => Requeue::NotDead,
        None => Requeue::NotFound,
    })
}
