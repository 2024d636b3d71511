//! `events`: the log subscribers resume from. Every seq is taken from `event_seq`
//! inside the writing transaction, so seqs have no gaps and follow commit order.

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use serde::Serialize;
use uuid::Uuid;

use super::tx::{Pipelined, Tx};
use super::StoreError;

/// Events read from the log per query by those who stream it; a longer backlog is read
/// in several. A page is offered to WebSocket subscribers at once, so `ws.send_buffer`
/// must hold one.
pub const PAGE: i64 = 1000;

/// An event about to be logged.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub id: Uuid,
    pub event_type: String,
    pub entity_id: Option<Uuid>,
    pub rooms: Vec<String>,
    pub data: serde_json::Value,
}

/// An event as logged and sent to subscribers (DESIGN.md, Events).
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    pub seq: i64,
    pub id: Uuid,
    #[serde(rename = "type")]
    pub event_type: String,
    pub entity_id: Option<Uuid>,
    pub rooms: Vec<String>,
    pub timestamp: DateTime<Utc>,
    pub data: serde_json::Value,
}

// The seq is taken and the events written in one statement (one round trip) while the
// `event_seq` row lock is held; the lock lasts until commit, so seqs follow commit order.
// rooms travel as one comma-joined text per event: unnest would flatten a 2-D array.
// clock_timestamp(), not now(): this is the transaction's last statement, so the
// event's time is (to within the commit itself) when it became visible, not when the
// transaction began; commit → delivery latency is measured from it.
const APPEND: &str = "WITH taken AS (
        UPDATE event_seq SET last_seq = last_seq + cardinality($1::uuid[]) RETURNING last_seq)
    INSERT INTO events (seq, id, type, entity_id, rooms, data, created_at)
    SELECT taken.last_seq - cardinality($1::uuid[]) + x.n, x.i, x.t, x.e,
           string_to_array(x.r, ','), x.d, clock_timestamp()
    FROM taken, unnest($1::uuid[], $2::text[], $3::uuid[], $4::text[], $5::jsonb[])
         WITH ORDINALITY AS x(i, t, e, r, d, n)
    RETURNING seq";

struct Columns<'a> {
    ids: Vec<Uuid>,
    types: Vec<&'a str>,
    entities: Vec<Option<Uuid>>,
    rooms: Vec<String>,
    data: Vec<&'a serde_json::Value>,
}

impl<'a> Columns<'a> {
    fn of(events: &'a [NewEvent]) -> Self {
        Columns {
            ids: events.iter().map(|e| e.id).collect(),
            types: events.iter().map(|e| e.event_type.as_str()).collect(),
            entities: events.iter().map(|e| e.entity_id).collect(),
            rooms: events.iter().map(|e| e.rooms.join(",")).collect(),
            data: events.iter().map(|e| &e.data).collect(),
        }
    }

    fn params(&self) -> [&(dyn tokio_postgres::types::ToSql + Sync); 5] {
        [
            &self.ids,
            &self.types,
            &self.entities,
            &self.rooms,
            &self.data,
        ]
    }
}

fn seqs_of(rows: Vec<tokio_postgres::Row>) -> Vec<i64> {
    let mut seqs: Vec<i64> = rows.iter().map(|r| r.get(0)).collect();
    seqs.sort_unstable();
    seqs
}

/// Appends `events` in order. Call it last in the transaction: the `event_seq` row lock
/// it takes is held until commit, and every event-writing transaction waits for it.
pub async fn append(
    client: &impl GenericClient,
    events: &[NewEvent],
) -> Result<Vec<i64>, StoreError> {
    if events.is_empty() {
        return Ok(Vec::new());
    }
    let stmt = client.prepare_cached(APPEND).await?;
    let columns = Columns::of(events);
    Ok(seqs_of(client.query(&stmt, &columns.params()).await?))
}

/// Runs `before` (prepared statements), appends `events` and commits, all in one round
/// trip, so the seq lock is held only while PostgreSQL writes and flushes; answers the
/// seqs logged.
pub async fn append_and_commit(
    tx: Tx,
    before: &[Pipelined<'_>],
    events: &[NewEvent],
) -> Result<Vec<i64>, StoreError> {
    if events.is_empty() {
        tx.commit_after(before).await?;
        return Ok(Vec::new());
    }
    let stmt = tx.prepare_cached(APPEND).await?;
    let columns = Columns::of(events);
    let params = columns.params();
    let mut statements = before.to_vec();
    statements.push((&stmt, &params));
    Ok(seqs_of(tx.commit_after(&statements).await?))
}

const AFTER: &str = "SELECT seq, id, type, entity_id, rooms, created_at, data FROM events
    WHERE seq > $1 AND ($2::text[] IS NULL OR rooms && $2::text[])
    ORDER BY seq LIMIT $3";

/// Logged events after `seq`, in seq order, optionally only those in any of `rooms`.
pub async fn after(
    client: &impl GenericClient,
    seq: i64,
    rooms: Option<&[String]>,
    limit: i64,
) -> Result<Vec<Event>, StoreError> {
    let stmt = client.prepare_cached(AFTER).await?;
    let rooms: Option<Vec<String>> = rooms.map(|r| r.to_vec());
    let rows = client.query(&stmt, &[&seq, &rooms, &limit]).await?;
    Ok(rows.iter().map(event_of).collect())
}

const LAST_SEQ: &str = "SELECT last_seq FROM event_seq";

pub async fn last_seq(client: &impl GenericClient) -> Result<i64, StoreError> {
    let stmt = client.prepare_cached(LAST_SEQ).await?;
    Ok(client.query_one(&stmt, &[]).await?.get(0))
}

/// `last_seq` on a plain connection outside the pool (the hints listener's own).
pub async fn last_seq_on(client: &tokio_postgres::Client) -> Result<i64, tokio_postgres::Error> {
    Ok(client.query_one(LAST_SEQ, &[]).await?.get(0))
}

const BETWEEN: &str = "SELECT seq, id, type, entity_id, rooms, created_at, data FROM events
    WHERE seq > $1 AND seq <= $2 AND rooms && $3::text[]
    ORDER BY seq LIMIT $4";

/// Logged events in `(after, upto]` in any of `rooms`, in seq order: a subscriber's
/// catch-up, bounded above by what live delivery has already reached.
pub async fn between(
    client: &impl GenericClient,
    after: i64,
    upto: i64,
    rooms: &[String],
    limit: i64,
) -> Result<Vec<Event>, StoreError> {
    let stmt = client.prepare_cached(BETWEEN).await?;
    let rows = client
        .query(&stmt, &[&after, &upto, &rooms, &limit])
        .await?;
    Ok(rows.iter().map(event_of).collect())
}

fn event_of(r: &tokio_postgres::Row) -> Event {
    Event {
        seq: r.get(0),
        id: r.get(1),
        event_type: r.get(2),
        entity_id: r.get(3),
        rooms: r.get(4),
        timestamp: r.get(5),
        data: r.get(6),
    }
}

const OLDEST_SEQ: &str = "SELECT min(seq) FROM events";

/// The oldest seq still held, `None` when retention (or a fresh database) left none.
pub async fn oldest_seq(client: &impl GenericClient) -> Result<Option<i64>, StoreError> {
    let stmt = client.prepare_cached(OLDEST_SEQ).await?;
    Ok(client.query_one(&stmt, &[]).await?.get(0))
}

const PRUNE: &str = "DELETE FROM events WHERE created_at < now() - make_interval(days => $1)";

/// Drops events older than `days`; returns how many.
pub async fn prune(client: &impl GenericClient, days: i32) -> Result<u64, StoreError> {
    let stmt = client.prepare_cached(PRUNE).await?;
    Ok(client.execute(&stmt, &[&days]).await?)
}
