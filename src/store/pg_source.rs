//! `pg_status_changes`: status writes other applications made directly to `entities`,
//! recorded by a trigger for the engine to treat as updates from `postgresql`.

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use uuid::Uuid;

use super::StoreError;
use crate::domain::CanonicalStatus;

pub struct DirectWrite {
    pub id: i64,
    pub entity_id: Uuid,
    pub old_status: CanonicalStatus,
    pub new_status: CanonicalStatus,
    pub changed_at: DateTime<Utc>,
}

const CLAIM: &str = "SELECT id, entity_id, old_status, new_status, changed_at
    FROM pg_status_changes WHERE NOT processed ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED";

pub async fn claim(
    client: &impl GenericClient,
    limit: i64,
) -> Result<Vec<DirectWrite>, StoreError> {
    let stmt = client.prepare_cached(CLAIM).await?;
    let rows = client.query(&stmt, &[&limit]).await?;
    rows.iter()
        .map(|r| {
            let parse = |s: String| {
                s.parse::<CanonicalStatus>()
                    .map_err(|e| StoreError::Corrupt(e.to_string()))
            };
            Ok(DirectWrite {
                id: r.get(0),
                entity_id: r.get(1),
                old_status: parse(r.get(2))?,
                new_status: parse(r.get(3))?,
                changed_at: r.get(4),
            })
        })
        .collect()
}

const DONE: &str = "UPDATE pg_status_changes SET processed = true WHERE id = ANY($1)";

pub async fn done(client: &impl GenericClient, ids: &[i64]) -> Result<(), StoreError> {
    if ids.is_empty() {
        return Ok(());
    }
    let stmt = client.prepare_cached(DONE).await?;
    client.execute(&stmt, &[&ids]).await?;
    Ok(())
}
