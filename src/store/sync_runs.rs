//! `sync_cursors`, `sync_runs`, `sync_pauses` and the listed items a run stores in
//! `inbound_events`: where each scope's listing got to, what every backfill and
//! reconciliation did, and which systems an operator paused.

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use serde::Serialize;
use tokio_postgres::Row;
use uuid::Uuid;

use super::StoreError;
use crate::domain::SystemId;

/// Where a scope's listing got to.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Cursor {
    pub synced_until: Option<DateTime<Utc>>,
    pub resume_page: Option<String>,
    pub resume_since: Option<DateTime<Utc>>,
    pub etag_url: Option<String>,
    pub etag: Option<String>,
}

const CURSOR: &str = "SELECT synced_until, resume_page, resume_since, etag_url, etag
    FROM sync_cursors WHERE system = $1 AND scope = $2";

pub async fn cursor(
    client: &impl GenericClient,
    system: SystemId,
    scope: &str,
) -> Result<Cursor, StoreError> {
    let stmt = client.prepare_cached(CURSOR).await?;
    Ok(client
        .query_opt(&stmt, &[&system.as_str(), &scope])
        .await?
        .map(|r| Cursor {
            synced_until: r.get(0),
            resume_page: r.get(1),
            resume_since: r.get(2),
            etag_url: r.get(3),
            etag: r.get(4),
        })
        .unwrap_or_default())
}

const SAVE_CURSOR: &str = "INSERT INTO sync_cursors
        (system, scope, synced_until, resume_page, resume_since, resume_run, etag_url, etag)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
    ON CONFLICT (system, scope) DO UPDATE SET synced_until = excluded.synced_until,
        resume_page = excluded.resume_page, resume_since = excluded.resume_since,
        resume_run = excluded.resume_run, etag_url = excluded.etag_url,
        etag = excluded.etag, updated_at = now()";

pub async fn save_cursor(
    client: &impl GenericClient,
    system: SystemId,
    scope: &str,
    run: Uuid,
    c: &Cursor,
) -> Result<(), StoreError> {
    let stmt = client.prepare_cached(SAVE_CURSOR).await?;
    client
        .execute(
            &stmt,
            &[
                &system.as_str(),
                &scope,
                &c.synced_until,
                &c.resume_page,
                &c.resume_since,
                &run,
                &c.etag_url,
                &c.etag,
            ],
        )
        .await?;
    Ok(())
}

/// One backfill or reconciliation, as the history shows it.
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Run {
    pub operation_id: Uuid,
    pub system: String,
    pub scope: String,
    pub mode: String,
    pub trigger: String,
    pub state: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub duration_ms: Option<i64>,
    #[serde(flatten)]
    pub counts: Counts,
    pub error: Option<String>,
}

impl From<&Row> for Run {
    fn from(r: &Row) -> Run {
        let started_at: DateTime<Utc> = r.get("started_at");
        let finished_at: Option<DateTime<Utc>> = r.get("finished_at");
        Run {
            operation_id: r.get("id"),
            system: r.get("system"),
            scope: r.get("scope"),
            mode: r.get("mode"),
            trigger: r.get("trigger"),
            state: r.get("state"),
            started_at,
            finished_at,
            duration_ms: finished_at.map(|f| (f - started_at).num_milliseconds()),
            counts: Counts {
                pages: r.get("pages"),
                not_modified: r.get("not_modified"),
                seen: r.get("seen"),
                created: r.get("created"),
                changed: r.get("changed"),
                unchanged: r.get("unchanged"),
                failed: r.get("failed"),
            },
            error: r.get("error"),
        }
    }
}

const RUN_COLUMNS: &str = "id, system, scope, mode, trigger, state, started_at, finished_at,
    pages, not_modified, seen, created, changed, unchanged, failed, error";

// A run of the same scope still marked running was cut short (a crash, a stop): its
// cursor is where the new run resumes.
const START: &str = "WITH interrupted AS (
        UPDATE sync_runs SET state = 'stopped', finished_at = now(),
            error = coalesce(error, 'interrupted')
        WHERE system = $2 AND scope = $3 AND state = 'running')
    INSERT INTO sync_runs (id, system, scope, mode, trigger) VALUES ($1, $2, $3, $4, $5)";

pub async fn start(
    client: &impl GenericClient,
    id: Uuid,
    system: SystemId,
    scope: &str,
    mode: &str,
    trigger: &str,
) -> Result<(), StoreError> {
    let stmt = client.prepare_cached(START).await?;
    client
        .execute(&stmt, &[&id, &system.as_str(), &scope, &mode, &trigger])
        .await?;
    Ok(())
}

/// What a run has done so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Counts {
    pub pages: i32,
    pub not_modified: i32,
    pub seen: i32,
    pub created: i32,
    pub changed: i32,
    pub unchanged: i32,
    pub failed: i32,
}

const PROGRESS: &str = "UPDATE sync_runs SET pages = $2, not_modified = $3, seen = $4,
    created = $5, changed = $6, unchanged = $7, failed = $8, heartbeat_at = now(),
    state = coalesce($9, state), error = coalesce($10, error),
    finished_at = CASE WHEN $9 IS NULL THEN finished_at ELSE now() END
    WHERE id = $1";

/// Records the counts; with `state`, the run ends in it.
pub async fn record(
    client: &impl GenericClient,
    id: Uuid,
    c: &Counts,
    state: Option<&str>,
    error: Option<&str>,
) -> Result<(), StoreError> {
    let stmt = client.prepare_cached(PROGRESS).await?;
    client
        .execute(
            &stmt,
            &[
                &id,
                &c.pages,
                &c.not_modified,
                &c.seen,
                &c.created,
                &c.changed,
                &c.unchanged,
                &c.failed,
                &state,
                &error,
            ],
        )
        .await?;
    Ok(())
}

/// The newest runs first; only running ones with `running`.
pub async fn history(
    client: &impl GenericClient,
    limit: i64,
    running: bool,
) -> Result<Vec<Run>, StoreError> {
    let sql = format!(
        "SELECT {RUN_COLUMNS} FROM sync_runs WHERE (NOT $2 OR state = 'running')
         ORDER BY started_at DESC, id LIMIT $1"
    );
    let stmt = client.prepare_cached(&sql).await?;
    let rows = client.query(&stmt, &[&limit, &running]).await?;
    Ok(rows.iter().map(Run::from).collect())
}

/// The last run of every scope.
pub async fn last_per_scope(client: &impl GenericClient) -> Result<Vec<Run>, StoreError> {
    let sql = format!(
        "SELECT DISTINCT ON (system, scope) {RUN_COLUMNS} FROM sync_runs
         ORDER BY system, scope, started_at DESC"
    );
    let stmt = client.prepare_cached(&sql).await?;
    let rows = client.query(&stmt, &[]).await?;
    Ok(rows.iter().map(Run::from).collect())
}

pub async fn get(client: &impl GenericClient, id: Uuid) -> Result<Option<Run>, StoreError> {
    let sql = format!("SELECT {RUN_COLUMNS} FROM sync_runs WHERE id = $1");
    let stmt = client.prepare_cached(&sql).await?;
    Ok(client
        .query_opt(&stmt, &[&id])
        .await?
        .as_ref()
        .map(Run::from))
}

const STORE_ITEM: &str = "INSERT INTO inbound_events
        (system, delivery_id, event_type, priority, body, sync_run, origin)
    VALUES ($1, $2, $3, $4, $5, $6, 'backfill')
    ON CONFLICT (system, delivery_id) DO NOTHING";

/// A listed item, stored like a delivery.
pub struct ListedItem {
    pub delivery_id: String,
    pub event_type: &'static str,
    pub body: Vec<u8>,
}

/// Stores the items of one page; answers how many were new (the others were stored
/// by an earlier run with the same updated-at, so nothing changed).
pub async fn store_items(
    client: &impl GenericClient,
    system: SystemId,
    priority: i16,
    run: Uuid,
    items: &[ListedItem],
) -> Result<usize, StoreError> {
    let stmt = client.prepare_cached(STORE_ITEM).await?;
    let mut new = 0;
    for i in items {
        new += client
            .execute(
                &stmt,
                &[
                    &system.as_str(),
                    &i.delivery_id,
                    &i.event_type,
                    &priority,
                    &i.body,
                    &run,
                ],
            )
            .await? as usize;
    }
    Ok(new)
}

const PENDING_OF_RUN: &str =
    "SELECT count(*) FROM inbound_events WHERE sync_run = $1 AND state = 'pending'";

pub async fn pending_of_run(client: &impl GenericClient, run: Uuid) -> Result<i64, StoreError> {
    let stmt = client.prepare_cached(PENDING_OF_RUN).await?;
    Ok(client.query_one(&stmt, &[&run]).await?.get(0))
}

const OUTCOMES_OF_RUN: &str =
    "SELECT delivery_id, state, coalesce(outcome, '') FROM inbound_events WHERE sync_run = $1";

/// (delivery id, state, outcome) of every item the run stored.
pub async fn outcomes_of_run(
    client: &impl GenericClient,
    run: Uuid,
) -> Result<Vec<(String, String, String)>, StoreError> {
    let stmt = client.prepare_cached(OUTCOMES_OF_RUN).await?;
    let rows = client.query(&stmt, &[&run]).await?;
    Ok(rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect())
}

const PAUSED: &str = "SELECT system FROM sync_pauses ORDER BY system";
const PAUSE: &str = "INSERT INTO sync_pauses (system) VALUES ($1) ON CONFLICT DO NOTHING";
const RESUME: &str = "DELETE FROM sync_pauses WHERE system = $1";

pub async fn paused(client: &impl GenericClient) -> Result<Vec<String>, StoreError> {
    let stmt = client.prepare_cached(PAUSED).await?;
    Ok(client
        .query(&stmt, &[])
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect())
}

pub async fn set_paused(
    client: &impl GenericClient,
    system: SystemId,
    paused: bool,
) -> Result<(), StoreError> {
    let stmt = client
        .prepare_cached(if paused { PAUSE } else { RESUME })
        .await?;
    client.execute(&stmt, &[&system.as_str()]).await?;
    Ok(())
}

const TAKE_LEASE: &str = "INSERT INTO sync_leases (name, holder, expires_at)
    VALUES ($1, $2, now() + make_interval(secs => $3))
    ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
    WHERE sync_leases.expires_at < now() OR sync_leases.holder = excluded.holder
    RETURNING holder";
const DROP_LEASE: &str = "DELETE FROM sync_leases WHERE name = $1 AND holder = $2";

/// Takes (or renews) the lease `name` for `secs`; false when another holder has it.
pub async fn take_lease(
    client: &impl GenericClient,
    name: &str,
    holder: Uuid,
    secs: f64,
) -> Result<bool, StoreError> {
    let stmt = client.prepare_cached(TAKE_LEASE).await?;
    Ok(client
        .query_opt(&stmt, &[&name, &holder, &secs])
        .await?
        .is_some())
}

pub async fn drop_lease(
    client: &impl GenericClient,
    name: &str,
    holder: Uuid,
) -> Result<(), StoreError> {
    let stmt = client.prepare_cached(DROP_LEASE).await?;
    client.execute(&stmt, &[&name, &holder]).await?;
    Ok(())
}
