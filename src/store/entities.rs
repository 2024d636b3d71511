//! `entities`, `entity_links`, `entity_sources`: canonical state and what it is linked
//! to. Writers set `statsync.writer` for their transaction so the PostgreSQL-source
//! trigger does not take statsync's own writes for another application's.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use serde::Serialize;
use tokio_postgres::Row;
use uuid::Uuid;

use super::StoreError;
use crate::domain::{CanonicalStatus, EntityKind, ExternalRef, SystemId};

#[derive(Debug, Clone, PartialEq)]
pub struct EntityRow {
    pub id: Uuid,
    pub kind: EntityKind,
    pub status: CanonicalStatus,
    pub version: i64,
    pub last_system: Option<SystemId>,
    pub last_source_ts: Option<DateTime<Utc>>,
    pub last_applied_at: Option<DateTime<Utc>>,
    pub project: Option<String>,
    pub title: Option<String>,
    pub manual: bool,
    pub confirmed_by: Vec<SystemId>,
    pub metadata: serde_json::Value,
    pub updated_at: DateTime<Utc>,
    /// Absorbed by a late link: the entity that took its links.
    pub merged_into: Option<Uuid>,
    pub merged_at: Option<DateTime<Utc>>,
}

fn corrupt(e: crate::domain::ParseError) -> StoreError {
    StoreError::Corrupt(e.to_string())
}

impl TryFrom<&Row> for EntityRow {
    type Error = StoreError;
    fn try_from(r: &Row) -> Result<Self, StoreError> {
        let kind: String = r.get("kind");
        let status: String = r.get("status");
        let last_system: Option<String> = r.get("last_system");
        let confirmed_by: Vec<String> = r.get("confirmed_by");
        Ok(EntityRow {
            id: r.get("id"),
            kind: kind.parse().map_err(corrupt)?,
            status: status.parse().map_err(corrupt)?,
            version: r.get("version"),
            last_system: last_system
                .map(|s| s.parse())
                .transpose()
                .map_err(corrupt)?,
            last_source_ts: r.get("last_source_ts"),
            last_applied_at: r.get("last_applied_at"),
            project: r.get("project"),
            title: r.get("title"),
            manual: r.get("manual"),
            confirmed_by: confirmed_by
                .iter()
                .map(|s| s.parse())
                .collect::<Result<_, _>>()
                .map_err(corrupt)?,
            metadata: r.get("metadata"),
            updated_at: r.get("updated_at"),
            merged_into: r.get("merged_into"),
            merged_at: r.get("merged_at"),
        })
    }
}

const COLUMNS: &str = "id, kind, status, version, last_system, last_source_ts, last_applied_at, \
                       project, title, manual, confirmed_by, metadata, updated_at, merged_into, \
                       merged_at";

/// A link as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Link {
    pub system: SystemId,
    pub external_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alias: Option<String>,
    pub role: String,
    /// A pull request driving the entity's issue: never written (its state is git's).
    #[serde(skip)]
    pub drives: bool,
}

impl Link {
    pub fn external_ref(&self) -> ExternalRef {
        ExternalRef::new(self.system, self.external_id.clone())
    }
}

// Per ref, two index lookups (its external id, its alias). Not one join with OR: an
// OR across the two keys cannot use either index. And not a plain join of the refs
// with the table either: at a few thousand links the planner hashes the whole table
// for every batch (0.6 ms a call at 2,000 links, growing with them); the lateral
// subquery, fenced by OFFSET 0 so it is not flattened into such a join, probes the
// indexes once per ref whatever the table's size. The arrays' lengths are hidden (see
// `store`), so the plan is made once per connection.
const FIND: &str = "SELECT l.system, q.external_id, l.entity_id
    FROM unnest((SELECT $1::text[]), (SELECT $2::text[])) AS q(system, external_id)
    CROSS JOIN LATERAL (
        SELECT system, entity_id FROM entity_links
        WHERE system = q.system AND external_id = q.external_id
        UNION ALL
        SELECT system, entity_id FROM entity_links
        WHERE system = q.system AND alias = q.external_id
        OFFSET 0) AS l";

/// Which of `refs` are linked, and to which entity (by external id or alias).
pub async fn find(
    client: &impl GenericClient,
    refs: &[ExternalRef],
) -> Result<HashMap<ExternalRef, Uuid>, StoreError> {
    if refs.is_empty() {
        return Ok(HashMap::new());
    }
    let systems: Vec<&str> = refs.iter().map(|r| r.system.as_str()).collect();
    let ids: Vec<&str> = refs.iter().map(|r| r.external_id.as_str()).collect();
    let stmt = client.prepare_cached(FIND).await?;
    let rows = client.query(&stmt, &[&systems, &ids]).await?;
    let mut found = HashMap::new();
    for r in rows {
        let system: String = r.get(0);
        let external_id: String = r.get(1);
        found.insert(
            ExternalRef::new(system.parse().map_err(corrupt)?, external_id),
            r.get(2),
        );
    }
    Ok(found)
}

/// Serializes, until the transaction ends, whoever may create an entity for these refs
/// (none holds them yet): two appliers creating the same object at once would each wait
/// for the other's uncommitted link. Take it before any entity row lock, then look the
/// refs up again: one may have been created meanwhile.
pub async fn lock_refs(
    client: &impl GenericClient,
    refs: &[ExternalRef],
) -> Result<(), StoreError> {
    let keys: Vec<String> = refs
        .iter()
        .map(|r| format!("{}:{}", r.system.as_str(), r.external_id))
        .collect();
    super::advisory_locks(client, "entity-ref", &keys).await
}

/// Locks the rows (in id order, so concurrent appliers never deadlock on each other)
/// and answers their current state.
pub async fn lock(
    client: &impl GenericClient,
    ids: &[Uuid],
) -> Result<HashMap<Uuid, EntityRow>, StoreError> {
    let stmt = client.prepare_cached(&lock_sql()).await?;
    rows_by_id(client.query(&stmt, &[&sorted(ids)]).await?)
}

fn lock_sql() -> String {
    format!(
        "SELECT {COLUMNS} FROM entities
        WHERE id = ANY((SELECT $1::uuid[])::uuid[]) ORDER BY id FOR UPDATE"
    )
}

fn sorted(ids: &[Uuid]) -> Vec<Uuid> {
    let mut sorted = ids.to_vec();
    sorted.sort();
    sorted.dedup();
    sorted
}

fn rows_by_id(rows: Vec<Row>) -> Result<HashMap<Uuid, EntityRow>, StoreError> {
    rows.iter()
        .map(|r| EntityRow::try_from(r).map(|e| (e.id, e)))
        .collect()
}

/// The newest source timestamp seen from each system, per entity.
pub type SourcesSeen = HashMap<Uuid, Vec<(SystemId, DateTime<Utc>)>>;

/// What deciding about a locked entity needs besides its row.
#[derive(Default)]
pub struct Context {
    pub sources: SourcesSeen,
    pub links: HashMap<Uuid, Vec<Link>>,
    /// The source times of the conflicts near the batch's source times.
    pub recent_conflicts: HashMap<Uuid, Vec<DateTime<Utc>>>,
}

/// Locks `ids` like `lock` and reads their context, in one round trip. The reads are
/// sent after the lock and PostgreSQL runs pipelined statements in the order sent, so
/// they see everything committed before the lock was granted.
pub async fn lock_with_context(
    client: &impl GenericClient,
    ids: &[Uuid],
    conflicts_since: DateTime<Utc>,
) -> Result<(HashMap<Uuid, EntityRow>, Context), StoreError> {
    if ids.is_empty() {
        return Ok(Default::default());
    }
    let ids = sorted(ids);
    // Prepared first (no round trip once cached), so that each query below sends on
    // its first poll and try_join polls them in the order written.
    let lock = client.prepare_cached(&lock_sql()).await?;
    let (sources, links, conflicts) = futures_util::future::try_join3(
        client.prepare_cached(SOURCES),
        client.prepare_cached(LINKS_OF),
        client.prepare_cached(super::history::RECENT_CONFLICTS),
    )
    .await?;
    let (rows, sources, links, conflicts) = futures_util::future::try_join4(
        client.query(&lock, &[&ids]),
        client.query(&sources, &[&ids]),
        client.query(&links, &[&ids]),
        client.query(&conflicts, &[&ids, &conflicts_since]),
    )
    .await?;
    Ok((
        rows_by_id(rows)?,
        Context {
            sources: sources_by_entity(sources)?,
            links: links_by_entity(links)?,
            recent_conflicts: super::history::conflict_times(conflicts),
        },
    ))
}

/// The context of entities already locked, in one round trip.
pub async fn context(
    client: &impl GenericClient,
    ids: &[Uuid],
    conflicts_since: DateTime<Utc>,
) -> Result<Context, StoreError> {
    if ids.is_empty() {
        return Ok(Context::default());
    }
    let (sources, links, conflicts) = futures_util::future::try_join3(
        sources(client, ids),
        links_of(client, ids),
        super::history::recent_conflicts(client, ids, conflicts_since),
    )
    .await?;
    Ok(Context {
        sources,
        links,
        recent_conflicts: conflicts,
    })
}

pub async fn get(client: &impl GenericClient, id: Uuid) -> Result<Option<EntityRow>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM entities WHERE id = $1");
    let stmt = client.prepare_cached(&sql).await?;
    client
        .query_opt(&stmt, &[&id])
        .await?
        .as_ref()
        .map(EntityRow::try_from)
        .transpose()
}

const REDIRECTS: &str =
    "SELECT id, merged_into FROM entities WHERE id = ANY($1) AND merged_into IS NOT NULL";

/// Which of `ids` were absorbed by a merge, and into which entity.
pub async fn redirects(
    client: &impl GenericClient,
    ids: &[Uuid],
) -> Result<HashMap<Uuid, Uuid>, StoreError> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let stmt = client.prepare_cached(REDIRECTS).await?;
    let rows = client.query(&stmt, &[&ids]).await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

const MOVE_LINKS: &str = "UPDATE entity_links SET entity_id = $2 WHERE entity_id = $1
    RETURNING system, external_id";
const MARK_MERGED: &str =
    "UPDATE entities SET merged_into = $2, merged_at = now(), updated_at = now()
    WHERE id = $1";

/// Moves every link of `absorbed` to `survivor` and marks `absorbed` as merged into it;
/// answers the refs moved. Both rows must be locked by the caller.
pub async fn merge(
    client: &impl GenericClient,
    absorbed: Uuid,
    survivor: Uuid,
) -> Result<Vec<ExternalRef>, StoreError> {
    let stmt = client.prepare_cached(MOVE_LINKS).await?;
    let rows = client.query(&stmt, &[&absorbed, &survivor]).await?;
    let stmt = client.prepare_cached(MARK_MERGED).await?;
    client.execute(&stmt, &[&absorbed, &survivor]).await?;
    rows.iter()
        .map(|r| {
            let system: String = r.get(0);
            Ok(ExternalRef::new(
                system.parse().map_err(corrupt)?,
                r.get::<_, String>(1),
            ))
        })
        .collect()
}

const MERGED_FROM: &str = "SELECT id FROM entities WHERE merged_into = $1 ORDER BY merged_at, id";

/// The entities absorbed into `id`.
pub async fn merged_from(client: &impl GenericClient, id: Uuid) -> Result<Vec<Uuid>, StoreError> {
    let stmt = client.prepare_cached(MERGED_FROM).await?;
    let rows = client.query(&stmt, &[&id]).await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

const INSERT: &str = "INSERT INTO entities (id, kind, status, version, project, title, metadata)
    VALUES ($1, $2, $3, 0, $4, $5, $6)";

/// A new entity at version 0; its first applied status makes it version 1.
pub struct NewEntity<'a> {
    pub id: Uuid,
    pub kind: EntityKind,
    pub status: CanonicalStatus,
    pub project: Option<&'a str>,
    pub title: Option<&'a str>,
    pub metadata: &'a serde_json::Value,
}

pub async fn insert(client: &impl GenericClient, e: &NewEntity<'_>) -> Result<(), StoreError> {
    let stmt = client.prepare_cached(INSERT).await?;
    client
        .execute(
            &stmt,
            &[
                &e.id,
                &e.kind.as_str(),
                &e.status.as_str(),
                &e.project,
                &e.title,
                e.metadata,
            ],
        )
        .await?;
    Ok(())
}

const DELETE: &str = "DELETE FROM entities WHERE id = $1";

pub async fn delete(client: &impl GenericClient, id: Uuid) -> Result<(), StoreError> {
    let stmt = client.prepare_cached(DELETE).await?;
    client.execute(&stmt, &[&id]).await?;
    Ok(())
}

const LINK: &str = "INSERT INTO entity_links (system, external_id, entity_id, alias, role)
    VALUES ($1, $2, $3, $4, $5)
    ON CONFLICT (system, external_id) DO NOTHING";
const LINKED_TO: &str = "SELECT entity_id FROM entity_links WHERE system = $1 AND external_id = $2";
const SET_ALIAS: &str = "UPDATE entity_links SET alias = $3
    WHERE system = $1 AND external_id = $2 AND alias IS DISTINCT FROM $3
      AND NOT EXISTS (SELECT 1 FROM entity_links WHERE system = $1 AND alias = $3)";

/// Links `r` to `entity`; answers the entity it is linked to afterwards, which is
/// another one when it was linked before (or by a concurrent writer).
pub async fn link(
    client: &impl GenericClient,
    entity: Uuid,
    r: &ExternalRef,
    alias: Option<&str>,
    role: &str,
) -> Result<Uuid, StoreError> {
    let stmt = client.prepare_cached(LINK).await?;
    let inserted = client
        .execute(
            &stmt,
            &[&r.system.as_str(), &r.external_id, &entity, &alias, &role],
        )
        .await?;
    if inserted == 1 {
        return Ok(entity);
    }
    let stmt = client.prepare_cached(LINKED_TO).await?;
    let owner: Uuid = client
        .query_one(&stmt, &[&r.system.as_str(), &r.external_id])
        .await?
        .get(0);
    if let (Some(alias), true) = (alias, owner == entity) {
        let stmt = client.prepare_cached(SET_ALIAS).await?;
        client
            .execute(&stmt, &[&r.system.as_str(), &r.external_id, &alias])
            .await?;
    }
    Ok(owner)
}

const ALIAS_OF: &str =
    "SELECT alias FROM entity_links WHERE system = $1 AND external_id = $2 AND alias IS NOT NULL";

/// The alias kept next to a linked ref (a Linear issue's identifier).
pub async fn alias_of(
    client: &impl GenericClient,
    r: &ExternalRef,
) -> Result<Option<String>, StoreError> {
    let stmt = client.prepare_cached(ALIAS_OF).await?;
    let row = client
        .query_opt(&stmt, &[&r.system.as_str(), &r.external_id])
        .await?;
    Ok(row.map(|r| r.get(0)))
}

const UNLINK: &str =
    "DELETE FROM entity_links WHERE system = $1 AND (external_id = $2 OR alias = $2)";

pub async fn unlink(client: &impl GenericClient, r: &ExternalRef) -> Result<u64, StoreError> {
    let stmt = client.prepare_cached(UNLINK).await?;
    Ok(client
        .execute(&stmt, &[&r.system.as_str(), &r.external_id])
        .await?)
}

const RELINK: &str =
    "UPDATE entity_links SET external_id = $3 WHERE system = $1 AND external_id = $2";

pub async fn relink(
    client: &impl GenericClient,
    from: &ExternalRef,
    to: &str,
) -> Result<u64, StoreError> {
    let stmt = client.prepare_cached(RELINK).await?;
    Ok(client
        .execute(&stmt, &[&from.system.as_str(), &from.external_id, &to])
        .await?)
}

const LINKS_OF: &str = "SELECT l.entity_id, l.system, l.external_id, l.alias, l.role,
        l.system = 'github' AND EXISTS (
            SELECT 1 FROM linked_pull_requests p WHERE p.pull_request = l.external_id)
    FROM entity_links l
    WHERE l.entity_id = ANY((SELECT $1::uuid[])::uuid[])
    ORDER BY l.entity_id, l.system, l.external_id";

pub async fn links_of(
    client: &impl GenericClient,
    ids: &[Uuid],
) -> Result<HashMap<Uuid, Vec<Link>>, StoreError> {
    let stmt = client.prepare_cached(LINKS_OF).await?;
    links_by_entity(client.query(&stmt, &[&ids]).await?)
}

fn links_by_entity(rows: Vec<Row>) -> Result<HashMap<Uuid, Vec<Link>>, StoreError> {
    let mut out: HashMap<Uuid, Vec<Link>> = HashMap::new();
    for r in rows {
        let system: String = r.get(1);
        out.entry(r.get(0)).or_default().push(Link {
            system: system.parse().map_err(corrupt)?,
            external_id: r.get(2),
            alias: r.get(3),
            role: r.get(4),
            drives: r.get(5),
        });
    }
    Ok(out)
}

/// A change to write back to a locked entity row.
pub struct StatusWrite {
    pub id: Uuid,
    pub status: CanonicalStatus,
    pub version: i64,
    pub last_system: Option<SystemId>,
    pub last_source_ts: Option<DateTime<Utc>>,
    pub last_applied_at: Option<DateTime<Utc>>,
    pub manual: bool,
    pub confirmed_by: Vec<SystemId>,
    pub project: Option<String>,
    pub title: Option<String>,
}

// confirmed_by travels comma-joined: unnest would flatten a 2-D array
const WRITE: &str = "UPDATE entities AS e
    SET status = w.status, version = w.version, last_system = w.last_system,
        last_source_ts = w.last_source_ts, last_applied_at = w.last_applied_at,
        manual = w.manual, confirmed_by = string_to_array(w.confirmed_by, ','),
        project = COALESCE(e.project, w.project), title = COALESCE(w.title, e.title),
        updated_at = now()
    FROM unnest($1::uuid[], $2::text[], $3::bigint[], $4::text[], $5::timestamptz[],
                $6::timestamptz[], $7::bool[], $8::text[], $9::text[], $10::text[])
         AS w(id, status, version, last_system, last_source_ts, last_applied_at, manual,
              confirmed_by, project, title)
    WHERE e.id = w.id";

pub async fn write(client: &impl GenericClient, writes: &[StatusWrite]) -> Result<(), StoreError> {
    if writes.is_empty() {
        return Ok(());
    }
    let ids: Vec<Uuid> = writes.iter().map(|w| w.id).collect();
    let statuses: Vec<&str> = writes.iter().map(|w| w.status.as_str()).collect();
    let versions: Vec<i64> = writes.iter().map(|w| w.version).collect();
    let systems: Vec<Option<&str>> = writes
        .iter()
        .map(|w| w.last_system.map(|s| s.as_str()))
        .collect();
    let ts: Vec<Option<DateTime<Utc>>> = writes.iter().map(|w| w.last_source_ts).collect();
    let applied: Vec<Option<DateTime<Utc>>> = writes.iter().map(|w| w.last_applied_at).collect();
    let manual: Vec<bool> = writes.iter().map(|w| w.manual).collect();
    let confirmed: Vec<String> = writes
        .iter()
        .map(|w| {
            w.confirmed_by
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(",")
        })
        .collect();
    let projects: Vec<Option<&str>> = writes.iter().map(|w| w.project.as_deref()).collect();
    let titles: Vec<Option<&str>> = writes.iter().map(|w| w.title.as_deref()).collect();
    let stmt = client.prepare_cached(WRITE).await?;
    client
        .execute(
            &stmt,
            &[
                &ids, &statuses, &versions, &systems, &ts, &applied, &manual, &confirmed,
                &projects, &titles,
            ],
        )
        .await?;
    Ok(())
}

const SOURCES: &str = "SELECT entity_id, system, last_source_ts FROM entity_sources
    WHERE entity_id = ANY((SELECT $1::uuid[])::uuid[])";

/// The newest source timestamp seen from each system, per entity.
pub async fn sources(client: &impl GenericClient, ids: &[Uuid]) -> Result<SourcesSeen, StoreError> {
    let stmt = client.prepare_cached(SOURCES).await?;
    sources_by_entity(client.query(&stmt, &[&ids]).await?)
}

fn sources_by_entity(rows: Vec<Row>) -> Result<SourcesSeen, StoreError> {
    let mut out = SourcesSeen::new();
    for r in rows {
        let system: String = r.get(1);
        out.entry(r.get(0))
            .or_default()
            .push((system.parse().map_err(corrupt)?, r.get(2)));
    }
    Ok(out)
}

const UPSERT_SOURCES: &str =
    "INSERT INTO entity_sources (entity_id, system, last_source_ts, last_status)
    SELECT * FROM unnest($1::uuid[], $2::text[], $3::timestamptz[], $4::text[])
    ON CONFLICT (entity_id, system) DO UPDATE
    SET last_source_ts = GREATEST(entity_sources.last_source_ts, EXCLUDED.last_source_ts),
        last_status = EXCLUDED.last_status";

pub async fn upsert_sources(
    client: &impl GenericClient,
    rows: &[(Uuid, SystemId, DateTime<Utc>, CanonicalStatus)],
) -> Result<(), StoreError> {
    if rows.is_empty() {
        return Ok(());
    }
    let ids: Vec<Uuid> = rows.iter().map(|r| r.0).collect();
    let systems: Vec<&str> = rows.iter().map(|r| r.1.as_str()).collect();
    let ts: Vec<DateTime<Utc>> = rows.iter().map(|r| r.2).collect();
    let statuses: Vec<&str> = rows.iter().map(|r| r.3.as_str()).collect();
    let stmt = client.prepare_cached(UPSERT_SOURCES).await?;
    client
        .execute(&stmt, &[&ids, &systems, &ts, &statuses])
        .await?;
    Ok(())
}
