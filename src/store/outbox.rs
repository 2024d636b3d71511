//! `sync_outbox`: outbound writes waiting to reach their system. Written in the same
//! transaction as the change they carry.

use deadpool_postgres::GenericClient;
use uuid::Uuid;

use super::StoreError;
use crate::domain::{CanonicalStatus, ExternalRef};

pub struct NewOutboxRow {
    pub entity_id: Uuid,
    pub target: ExternalRef,
    pub status: CanonicalStatus,
    pub previous_status: Option<CanonicalStatus>,
    pub entity_version: i64,
    pub operation_id: Uuid,
}

const INSERT: &str = "INSERT INTO sync_outbox
    (entity_id, system, external_id, status, previous_status, entity_version, operation_id)
    SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[], $7::uuid[])";

pub async fn insert(client: &impl GenericClient, rows: &[NewOutboxRow]) -> Result<(), StoreError> {
    if rows.is_empty() {
        return Ok(());
    }
    let entity: Vec<Uuid> = rows.iter().map(|r| r.entity_id).collect();
    let system: Vec<&str> = rows.iter().map(|r| r.target.system.as_str()).collect();
    let external: Vec<&str> = rows.iter().map(|r| r.target.external_id.as_str()).collect();
    let status: Vec<&str> = rows.iter().map(|r| r.status.as_str()).collect();
    let previous: Vec<Option<&str>> = rows
        .iter()
        .map(|r| r.previous_status.map(|s| s.as_str()))
        .collect();
    let version: Vec<i64> = rows.iter().map(|r| r.entity_version).collect();
    let operation: Vec<Uuid> = rows.iter().map(|r| r.operation_id).collect();
    let stmt = client.prepare_cached(INSERT).await?;
    client
        .execute(
            &stmt,
            &[
                &entity, &system, &external, &status, &previous, &version, &operation,
            ],
        )
        .await?;
    Ok(())
}
