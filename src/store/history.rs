//! `status_transitions` and `conflicts`: every decision with its reason, and the
//! conflicts that needed a strategy or a person.

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use serde::Serialize;
use uuid::Uuid;

use super::StoreError;

/// One decision on one update.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Transition {
    pub entity_id: Uuid,
    pub from_status: Option<String>,
    pub to_status: String,
    pub system: String,
    pub source_timestamp: DateTime<Utc>,
    pub decision: String,
    pub reason: String,
    pub version: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inbound_event_id: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_at: Option<DateTime<Utc>>,
}

const INSERT_TRANSITIONS: &str = "INSERT INTO status_transitions
    (entity_id, from_status, to_status, system, source_ts, decision, reason, version, inbound_event_id)
    SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::timestamptz[],
                         $6::text[], $7::text[], $8::bigint[], $9::bigint[])";

pub async fn insert_transitions(
    client: &impl GenericClient,
    rows: &[Transition],
) -> Result<(), StoreError> {
    if rows.is_empty() {
        return Ok(());
    }
    let entity: Vec<Uuid> = rows.iter().map(|r| r.entity_id).collect();
    let from: Vec<Option<&str>> = rows.iter().map(|r| r.from_status.as_deref()).collect();
    let to: Vec<&str> = rows.iter().map(|r| r.to_status.as_str()).collect();
    let system: Vec<&str> = rows.iter().map(|r| r.system.as_str()).collect();
    let ts: Vec<DateTime<Utc>> = rows.iter().map(|r| r.source_timestamp).collect();
    let decision: Vec<&str> = rows.iter().map(|r| r.decision.as_str()).collect();
    let reason: Vec<&str> = rows.iter().map(|r| r.reason.as_str()).collect();
    let version: Vec<i64> = rows.iter().map(|r| r.version).collect();
    let inbound: Vec<Option<i64>> = rows.iter().map(|r| r.inbound_event_id).collect();
    let stmt = client.prepare_cached(INSERT_TRANSITIONS).await?;
    client
        .execute(
            &stmt,
            &[
                &entity, &from, &to, &system, &ts, &decision, &reason, &version, &inbound,
            ],
        )
        .await?;
    Ok(())
}

const HISTORY: &str =
    "SELECT entity_id, from_status, to_status, system, source_ts, decision, reason,
        version, inbound_event_id, created_at
    FROM status_transitions WHERE entity_id = $1 ORDER BY id DESC LIMIT $2";

/// Newest first.
pub async fn history(
    client: &impl GenericClient,
    entity: Uuid,
    limit: i64,
) -> Result<Vec<Transition>, StoreError> {
    let stmt = client.prepare_cached(HISTORY).await?;
    let rows = client.query(&stmt, &[&entity, &limit]).await?;
    Ok(rows
        .iter()
        .map(|r| Transition {
            entity_id: r.get(0),
            from_status: r.get(1),
            to_status: r.get(2),
            system: r.get(3),
            source_timestamp: r.get(4),
            decision: r.get(5),
            reason: r.get(6),
            version: r.get(7),
            inbound_event_id: r.get(8),
            created_at: Some(r.get(9)),
        })
        .collect())
}

const STATUS_AT_VERSION: &str = "SELECT to_status FROM status_transitions
    WHERE entity_id = $1 AND version = $2 AND decision IN ('applied', 'conflict')
      AND (from_status IS DISTINCT FROM to_status OR version = 1)
    ORDER BY id DESC LIMIT 1";

/// The status an entity had right after it reached `version`, if it ever did.
pub async fn status_at_version(
    client: &impl GenericClient,
    entity: Uuid,
    version: i64,
) -> Result<Option<String>, StoreError> {
    let stmt = client.prepare_cached(STATUS_AT_VERSION).await?;
    Ok(client
        .query_opt(&stmt, &[&entity, &version])
        .await?
        .map(|r| r.get(0)))
}

/// A conflict as stored and shown by the API.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Conflict {
    pub id: Uuid,
    pub entity_id: Uuid,
    pub state: String,
    pub strategy: String,
    pub escalated: bool,
    pub current_status: String,
    pub current_system: Option<String>,
    pub incoming_status: String,
    pub incoming_system: String,
    pub incoming_timestamp: DateTime<Utc>,
    pub winner_system: Option<String>,
    pub winner_status: Option<String>,
    pub reason: String,
    pub created_at: Option<DateTime<Utc>>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub resolved_by: Option<String>,
    pub resolution_status: Option<String>,
}

const INSERT_CONFLICT: &str = "INSERT INTO conflicts
    (id, entity_id, state, strategy, escalated, current_status, current_system,
     incoming_status, incoming_system, incoming_ts, winner_system, winner_status, reason,
     resolved_at)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13,
            CASE WHEN $3 = 'resolved' THEN now() END)";

pub async fn insert_conflict(client: &impl GenericClient, c: &Conflict) -> Result<(), StoreError> {
    let stmt = client.prepare_cached(INSERT_CONFLICT).await?;
    client
        .execute(
            &stmt,
            &[
                &c.id,
                &c.entity_id,
                &c.state,
                &c.strategy,
                &c.escalated,
                &c.current_status,
                &c.current_system,
                &c.incoming_status,
                &c.incoming_system,
                &c.incoming_timestamp,
                &c.winner_system,
                &c.winner_status,
                &c.reason,
            ],
        )
        .await?;
    Ok(())
}

const CONFLICT_COLUMNS: &str =
    "id, entity_id, state, strategy, escalated, current_status, current_system,
    incoming_status, incoming_system, incoming_ts, winner_system, winner_status, reason,
    created_at, resolved_at, resolved_by, resolution_status";

fn conflict_from(r: &tokio_postgres::Row) -> Conflict {
    Conflict {
        id: r.get(0),
        entity_id: r.get(1),
        state: r.get(2),
        strategy: r.get(3),
        escalated: r.get(4),
        current_status: r.get(5),
        current_system: r.get(6),
        incoming_status: r.get(7),
        incoming_system: r.get(8),
        incoming_timestamp: r.get(9),
        winner_system: r.get(10),
        winner_status: r.get(11),
        reason: r.get(12),
        created_at: r.get(13),
        resolved_at: r.get(14),
        resolved_by: r.get(15),
        resolution_status: r.get(16),
    }
}

pub async fn list_conflicts(
    client: &impl GenericClient,
    state: Option<&str>,
    limit: i64,
) -> Result<Vec<Conflict>, StoreError> {
    let sql = format!(
        "SELECT {CONFLICT_COLUMNS} FROM conflicts WHERE ($1::text IS NULL OR state = $1)
         ORDER BY created_at DESC LIMIT $2"
    );
    let stmt = client.prepare_cached(&sql).await?;
    let rows = client.query(&stmt, &[&state, &limit]).await?;
    Ok(rows.iter().map(conflict_from).collect())
}

pub async fn get_conflict(
    client: &impl GenericClient,
    id: Uuid,
) -> Result<Option<Conflict>, StoreError> {
    let sql = format!("SELECT {CONFLICT_COLUMNS} FROM conflicts WHERE id = $1");
    let stmt = client.prepare_cached(&sql).await?;
    Ok(client
        .query_opt(&stmt, &[&id])
        .await?
        .as_ref()
        .map(conflict_from))
}

const RESOLVE_OPEN: &str = "UPDATE conflicts SET state = 'resolved', resolved_at = now(),
    resolved_by = $2, resolution_status = $3
    WHERE entity_id = $1 AND state = 'open'";

/// Closes every open conflict of the entity with one resolution.
pub async fn resolve_open(
    client: &impl GenericClient,
    entity: Uuid,
    by: &str,
    status: &str,
) -> Result<u64, StoreError> {
    let stmt = client.prepare_cached(RESOLVE_OPEN).await?;
    Ok(client.execute(&stmt, &[&entity, &by, &status]).await?)
}

/// The source times of the conflicts on each entity since `$2` (in source time: the
/// escalation window is measured as the conflict window is).
pub(super) const RECENT_CONFLICTS: &str = "SELECT entity_id, incoming_ts FROM conflicts
    WHERE entity_id = ANY((SELECT $1::uuid[])::uuid[]) AND incoming_ts >= $2";

pub async fn recent_conflicts(
    client: &impl GenericClient,
    ids: &[Uuid],
    since: DateTime<Utc>,
) -> Result<std::collections::HashMap<Uuid, Vec<DateTime<Utc>>>, StoreError> {
    let stmt = client.prepare_cached(RECENT_CONFLICTS).await?;
    Ok(conflict_times(client.query(&stmt, &[&ids, &since]).await?))
}

pub(super) fn conflict_times(
    rows: Vec<tokio_postgres::Row>,
) -> std::collections::HashMap<Uuid, Vec<DateTime<Utc>>> {
    let mut out: std::collections::HashMap<Uuid, Vec<DateTime<Utc>>> = Default::default();
    for r in rows {
        out.entry(r.get(0)).or_default().push(r.get(1));
    }
    out
}
