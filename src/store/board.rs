//! The board: the most recently changed entities as a person scans them (title, the
//! identifiers of every linked object, the canonical status and what each linked system
//! shows now), with the event log's last seq read in the same snapshot, so a client that
//! then subscribes from that seq misses nothing and sees nothing twice out of order.

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use serde::Serialize;
use uuid::Uuid;

use crate::store::StoreError;

/// What the link `l` shows: the later of the last status statsync wrote to it and the
/// last status its system asserted for the entity (a system's pull request and issue
/// share that assertion). A macro, so that the board and `shown` read it alike.
macro_rules! shows {
    () => {
        "(SELECT s.status FROM (
                SELECT w.status, w.written_at AS at FROM sync_writes w
                WHERE w.system = l.system AND w.external_id = l.external_id
                UNION ALL
                SELECT es.last_status, es.last_source_ts FROM entity_sources es
                WHERE es.entity_id = l.entity_id AND es.system = l.system
            ) s ORDER BY s.at DESC LIMIT 1)"
    };
}

/// One statement, one snapshot.
const ROWS: &str = concat!(
    "WITH recent AS (
        SELECT id, kind, status, version, title, project, metadata, manual, updated_at
        FROM entities ORDER BY updated_at DESC, id LIMIT $1)
    SELECT (SELECT last_seq FROM event_seq), r.id, r.kind, r.status, r.version, r.title,
        r.project, r.metadata, r.manual, r.updated_at,
        COALESCE((SELECT json_agg(json_build_object(
                'system', l.system, 'externalId', l.external_id, 'alias', l.alias,
                'role', l.role,
                'shows', ",
    shows!(),
    ")
                ORDER BY l.system, l.external_id)
            FROM entity_links l WHERE l.entity_id = r.id), '[]'::json)
    FROM recent r ORDER BY r.updated_at DESC, r.id"
);

/// The event log's end alone, for an empty board.
const SEQ: &str = "SELECT last_seq FROM event_seq";

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Row {
    pub id: Uuid,
    pub kind: String,
    pub status: String,
    pub version: i64,
    pub title: Option<String>,
    pub project: Option<String>,
    pub metadata: serde_json::Value,
    /// Escalated: every further update waits for a person.
    pub manual: bool,
    pub updated_at: DateTime<Utc>,
    /// `[{system, externalId, alias, role, shows}]`
    pub links: serde_json::Value,
}

/// The `limit` most recently changed entities and the log's last seq they reflect.
pub async fn rows(client: &impl GenericClient, limit: i64) -> Result<(i64, Vec<Row>), StoreError> {
    let stmt = client.prepare_cached(ROWS).await?;
    let found = client.query(&stmt, &[&limit]).await?;
    let seq = match found.first() {
        Some(r) => r.get(0),
        None => {
            let stmt = client.prepare_cached(SEQ).await?;
            client.query_one(&stmt, &[]).await?.get(0)
        }
    };
    let rows = found
        .iter()
        .map(|r| Row {
            id: r.get(1),
            kind: r.get(2),
            status: r.get(3),
            version: r.get(4),
            title: r.get(5),
            project: r.get(6),
            metadata: r.get(7),
            manual: r.get(8),
            updated_at: r.get(9),
            links: r.get(10),
        })
        .collect();
    Ok((seq, rows))
}

const SHOWN: &str = concat!(
    "SELECT l.system, l.external_id, ",
    shows!(),
    " FROM entity_links l WHERE l.entity_id = $1 ORDER BY l.system, l.external_id"
);

/// One linked object and the canonical status it shows (none yet: never written to
/// nor heard from).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Shown {
    pub system: String,
    pub external_id: String,
    pub status: Option<String>,
}

/// What each object linked to entity `id` shows now.
pub async fn shown(client: &impl GenericClient, id: Uuid) -> Result<Vec<Shown>, StoreError> {
    let stmt = client.prepare_cached(SHOWN).await?;
    let rows = client.query(&stmt, &[&id]).await?;
    Ok(rows
        .iter()
        .map(|r| Shown {
            system: r.get(0),
            external_id: r.get(1),
            status: r.get(2),
        })
        .collect())
}
