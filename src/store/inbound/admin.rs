//! Deliveries as operators see them: the ones accepted but never applied (`failed`),
//! and requeueing one. Never deletes a row; the raw body stays as it was received.

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use serde::Serialize;

use crate::store::StoreError;

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FailedDelivery {
    pub id: i64,
    pub system: String,
    /// `webhook`, `backfill` or `lookup`: who stored it.
    pub origin: String,
    pub delivery_id: String,
    pub event_type: String,
    pub received_at: DateTime<Utc>,
    pub failed_at: Option<DateTime<Utc>>,
    pub attempts: i32,
    pub error_code: Option<String>,
    pub error: Option<String>,
}

const FAILED: &str = "SELECT id, system, delivery_id, event_type, received_at, processed_at,
        attempts, error_code, outcome, origin
    FROM inbound_events WHERE state = 'failed' ORDER BY id DESC LIMIT $1";
const COUNT_FAILED: &str = "SELECT count(*) FROM inbound_events WHERE state = 'failed'";

pub async fn failed(
    client: &impl GenericClient,
    limit: i64,
) -> Result<Vec<FailedDelivery>, StoreError> {
    let stmt = client.prepare_cached(FAILED).await?;
    Ok(client
        .query(&stmt, &[&limit])
        .await?
        .iter()
        .map(|r| FailedDelivery {
            id: r.get(0),
            system: r.get(1),
            delivery_id: r.get(2),
            event_type: r.get(3),
            received_at: r.get(4),
            failed_at: r.get(5),
            attempts: r.get(6),
            error_code: r.get(7),
            error: r.get(8),
            origin: r.get(9),
        })
        .collect())
}

/// Failed deliveries not yet requeued (the `deliveries_failed` alert's value).
pub async fn count_failed(client: &impl GenericClient) -> Result<i64, StoreError> {
    let stmt = client.prepare_cached(COUNT_FAILED).await?;
    Ok(client.query_one(&stmt, &[]).await?.get(0))
}

/// What became of a requeue request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requeue {
    Requeued,
    NotFound,
    NotFailed,
}

/// The failure moves to `last_error` for reference; the engine claims the row again and
/// reads its body anew (not the door's stored reading: the fix that made a requeue worth
/// trying may be in the reading).
const REQUEUE: &str = "UPDATE inbound_events
    SET state = 'pending', run_at = now(), processed_at = NULL,
        last_error = coalesce(error_code || ': ', '') || coalesce(outcome, ''),
        outcome = NULL, error_code = NULL, parsed = NULL
    WHERE id = $1 AND state = 'failed'";
const EXISTS: &str = "SELECT 1 FROM inbound_events WHERE id = $1";

pub async fn requeue_failed(client: &impl GenericClient, id: i64) -> Result<Requeue, StoreError> {
    let stmt = client.prepare_cached(REQUEUE).await?;
    if client.execute(&stmt, &[&id]).await? == 1 {
        return Ok(Requeue::Requeued);
    }
    let stmt = client.prepare_cached(EXISTS).await?;
    Ok(match client.query_opt(&stmt, &[&id]).await? {
        Some(_) => Requeue::NotFailed,
        None => Requeue::NotFound,
    })
}
