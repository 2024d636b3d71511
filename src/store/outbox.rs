//! `sync_outbox`: outbound writes waiting to reach their system. Written in the same
//! transaction as the change they carry; a lease queue (`queue.rs`): claimed with
//! `FOR UPDATE SKIP LOCKED` under a lease, finished only by the holder of the current
//! lease. Rows are never deleted: dead letters stay until a person retries them
//! (queries in `outbox/admin.rs`).

mod admin;

pub use super::queue::Finish;
pub use admin::{
    dead_letters, oldest_pending_age, requeue_dead, summary, DeadLetter, OutboxSummary, Requeue,
    StateCount,
};

use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use tokio_postgres::Row;
use uuid::Uuid;

use super::queue::{Queue, Table};
use super::StoreError;
use crate::domain::{CanonicalStatus, EntityKind, ExternalRef, SystemId};

pub struct NewOutboxRow {
    pub entity_id: Uuid,
    pub target: ExternalRef,
    pub status: CanonicalStatus,
    pub previous_status: Option<CanonicalStatus>,
    pub entity_version: i64,
    pub operation_id: Uuid,
}

// A pull request linked to a Linear issue (named by it, or attached to it) drives that
// issue; its own state is git's (merged or not), so the changes are never
// written back to it: closing an issue in Linear must not close its open pull request.
const INSERT: &str = "INSERT INTO sync_outbox
    (entity_id, system, external_id, status, previous_status, entity_version, operation_id)
    SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[], $7::uuid[])
        AS r(entity_id, system, external_id, status, previous_status, entity_version, operation_id)
    WHERE NOT (r.system = 'github' AND EXISTS (
        SELECT 1 FROM linked_pull_requests l WHERE l.pull_request = r.external_id))";

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

/// A claimed row: what the dispatcher needs to write it and to announce the outcome.
#[derive(Debug, Clone)]
pub struct OutboxRow {
    pub id: i64,
    pub entity_id: Uuid,
    pub system: SystemId,
    pub external_id: String,
    pub status: CanonicalStatus,
    pub previous_status: Option<CanonicalStatus>,
    pub entity_version: i64,
    pub operation_id: Uuid,
    /// Attempts so far, this one included; also the lease token for finishing it.
    pub attempt: i32,
    pub kind: EntityKind,
    pub project: Option<String>,
    /// When the canonical change that wrote this row committed.
    pub created_at: DateTime<Utc>,
}

fn corrupt(e: crate::domain::ParseError) -> StoreError {
    StoreError::Corrupt(e.to_string())
}

impl TryFrom<&Row> for OutboxRow {
    type Error = StoreError;
    fn try_from(r: &Row) -> Result<Self, StoreError> {
        let system: String = r.get("system");
        let status: String = r.get("status");
        let previous: Option<String> = r.get("previous_status");
        let kind: String = r.get("kind");
        Ok(OutboxRow {
            id: r.get("id"),
            entity_id: r.get("entity_id"),
            system: system.parse().map_err(corrupt)?,
            external_id: r.get("external_id"),
            status: status.parse().map_err(corrupt)?,
            previous_status: previous.map(|p| p.parse()).transpose().map_err(corrupt)?,
            entity_version: r.get("entity_version"),
            operation_id: r.get("operation_id"),
            attempt: r.get("attempt_count"),
            kind: kind.parse().map_err(corrupt)?,
            project: r.get("project"),
            created_at: r.get("created_at"),
        })
    }
}

/// Rows are claimed per system (each has its own budget), one entity+system at a time
/// (so one never has two writes in flight, and they go oldest first). A waiting row is
/// pointless once a newer row goes to the same external object (only the newest status
/// is worth sending), or once its entity has moved on to another status: a change
/// writes a row to every linked object but the one it came from, which shows it
/// already, and sending the older status there would overwrite that newer change.
static QUEUE: LazyLock<Queue> = LazyLock::new(|| {
    Queue::new(&Table {
        name: "sync_outbox",
        lane: Some("system"),
        in_order: &["entity_id", "system"],
        object: &["entity_id", "system", "external_id"],
        also_pointless: Some(
            "EXISTS (SELECT 1 FROM entities e
                      WHERE e.id = o.entity_id AND e.version > o.entity_version
                        AND e.status <> o.status)",
        ),
        superseded_note: None,
        message: "last_error",
        finish_also: None,
        joined: ("entities e", "e.id = o.entity_id"),
        returning: "o.id, o.entity_id, o.system, o.external_id, o.status, o.previous_status,
              o.entity_version, o.operation_id, o.attempt_count, e.kind, e.project,
              o.created_at",
    })
});

/// Supersedes stale rows, then claims up to `limit` rows of `system` for `lease_ms`.
/// Run in a short transaction of its own: the row locks end at its commit, long before
/// any HTTP call.
pub async fn claim(
    client: &impl GenericClient,
    system: SystemId,
    limit: i64,
    lease_ms: i64,
) -> Result<(u64, Vec<OutboxRow>), StoreError> {
    let (superseded, rows) = QUEUE
        .claim(client, Some(system.as_str()), limit, lease_ms)
        .await?;
    let claimed = rows
        .iter()
        .map(OutboxRow::try_from)
        .collect::<Result<Vec<_>, _>>()?;
    Ok((superseded, claimed))
}

const ENTITY_NOW: &str = "SELECT status, version FROM entities WHERE id = $1 FOR SHARE";

const FOLLOW_UP: &str = "INSERT INTO sync_outbox
    (entity_id, system, external_id, status, previous_status, entity_version, operation_id)
    SELECT $1, $2, $3, $4, $5, $6, $7
    WHERE NOT EXISTS (SELECT 1 FROM sync_outbox n
                      WHERE n.entity_id = $1 AND n.system = $2 AND n.external_id = $3
                        AND n.id > $8 AND n.state IN ('pending', 'in_flight'))
      AND NOT ($2 = 'github' AND EXISTS (
          SELECT 1 FROM linked_pull_requests l WHERE l.pull_request = $3))";

/// After `row`'s write landed: when its entity has meanwhile moved on to another status
/// and nothing newer is on its way to that object, the object now shows a status the
/// entity left, so the current one follows it (a new row; `true` when one was written).
///
/// The entity is read under a share lock, which waits for an applier holding it: either
/// that applier committed first (its change is seen here), or it reads this write as
/// finished once the lock is released and writes its change back itself. Without this,
/// a change decided in the same pass as the write it races (or while the write was
/// being claimed) would leave the object showing statsync's older value.
pub async fn follow_up(client: &impl GenericClient, row: &OutboxRow) -> Result<bool, StoreError> {
    let stmt = client.prepare_cached(ENTITY_NOW).await?;
    let Some(now) = client.query_opt(&stmt, &[&row.entity_id]).await? else {
        return Ok(false);
    };
    let status: String = now.get(0);
    let version: i64 = now.get(1);
    if version <= row.entity_version || status == row.status.as_str() {
        return Ok(false);
    }
    // A separate statement: its snapshot is taken after the lock was granted, so it sees
    // the write-back rows of the applier that held it.
    let stmt = client.prepare_cached(FOLLOW_UP).await?;
    let written = client
        .execute(
            &stmt,
            &[
                &row.entity_id,
                &row.system.as_str(),
                &row.external_id,
                &status,
                &row.status.as_str(),
                &version,
                &Uuid::new_v4(),
                &row.id,
            ],
        )
        .await?;
    Ok(written > 0)
}

/// Records the end of attempt `attempt` of row `id`; `false` when the lease was lost.
pub async fn finish(
    client: &impl GenericClient,
    id: i64,
    attempt: i32,
    how: &Finish,
) -> Result<bool, StoreError> {
    QUEUE.finish(client, id, attempt, how, &[]).await
}

const UNFINISHED: &str =
    "SELECT DISTINCT ON (o.system, o.external_id) o.system, o.external_id, o.status
    FROM unnest($1::text[], $2::text[]) AS q(system, external_id)
    JOIN sync_outbox o ON o.system = q.system AND o.external_id = q.external_id
    WHERE o.state IN ('pending', 'in_flight')
    ORDER BY o.system, o.external_id, o.id DESC";

/// The status of the newest write waiting or in flight to each of `targets`: it may
/// land after a change the batch applies from that same object. (A waiting row is
/// usually superseded at its claim once the entity has moved past it, but it may be
/// claimed between this read and the batch's commit.)
pub async fn unfinished(
    client: &impl GenericClient,
    targets: &[&ExternalRef],
) -> Result<std::collections::HashMap<ExternalRef, CanonicalStatus>, StoreError> {
    let mut out = std::collections::HashMap::new();
    if targets.is_empty() {
        return Ok(out);
    }
    let systems: Vec<&str> = targets.iter().map(|r| r.system.as_str()).collect();
    let ids: Vec<&str> = targets.iter().map(|r| r.external_id.as_str()).collect();
    let stmt = client.prepare_cached(UNFINISHED).await?;
    for r in client.query(&stmt, &[&systems, &ids]).await? {
        let corrupt = |e: crate::domain::ParseError| StoreError::Corrupt(e.to_string());
        let system: String = r.get(0);
        let status: String = r.get(2);
        out.insert(
            ExternalRef::new(system.parse().map_err(corrupt)?, r.get::<_, String>(1)),
            status.parse().map_err(corrupt)?,
        );
    }
    Ok(out)
}
