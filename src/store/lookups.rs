//! `github_item_lookups`: reads of a Projects v2 item's Status that a delivery naming
//! only the field needs. Written in the transaction that recorded that delivery;
//! claimed with `FOR UPDATE SKIP LOCKED` under a lease and finished only by the holder
//! of the current lease, like `sync_outbox`. Two edits of one item waiting together
//! need one read: the older is superseded at claim time. Rows are never deleted.

use deadpool_postgres::GenericClient;
use tokio_postgres::Row;

use super::StoreError;

/// A read to make: the item, and the delivery whose value it supplies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewLookup {
    pub item_id: String,
    pub inbound_event_id: i64,
}

const INSERT: &str = "INSERT INTO github_item_lookups (item_id, inbound_event_id)
    SELECT * FROM unnest($1::text[], $2::bigint[])";

pub async fn insert(client: &impl GenericClient, rows: &[NewLookup]) -> Result<(), StoreError> {
    if rows.is_empty() {
        return Ok(());
    }
    let items: Vec<&str> = rows.iter().map(|r| r.item_id.as_str()).collect();
    let inbound: Vec<i64> = rows.iter().map(|r| r.inbound_event_id).collect();
    let stmt = client.prepare_cached(INSERT).await?;
    client.execute(&stmt, &[&items, &inbound]).await?;
    Ok(())
}

/// A claimed lookup, with the delivery it completes.
#[derive(Debug, Clone)]
pub struct LookupRow {
    pub id: i64,
    pub item_id: String,
    pub inbound_event_id: i64,
    /// Attempts so far, this one included; also the lease token for finishing it.
    pub attempt: i32,
    /// The original delivery's id and raw body.
    pub delivery_id: String,
    pub body: Vec<u8>,
}

impl From<&Row> for LookupRow {
    fn from(r: &Row) -> Self {
        LookupRow {
            id: r.get("id"),
            item_id: r.get("item_id"),
            inbound_event_id: r.get("inbound_event_id"),
            attempt: r.get("attempt_count"),
            delivery_id: r.get("delivery_id"),
            body: r.get("body"),
        }
    }
}

/// A waiting read made pointless by a newer one of the same item: the newer read sees
/// at least as late a value. Reads in flight under a live lease are left alone (they
/// may have read before the newer edit).
const SUPERSEDE: &str = "UPDATE github_item_lookups o
    SET state = 'superseded', lease_expires_at = NULL, updated_at = now(), completed_at = now(),
        outcome = 'superseded by a newer lookup of the same item'
    WHERE (o.state = 'pending' OR (o.state = 'in_flight' AND o.lease_expires_at < now()))
      AND EXISTS (SELECT 1 FROM github_item_lookups n
                  WHERE n.item_id = o.item_id AND n.id > o.id
                    AND n.state IN ('pending', 'in_flight'))";

/// The oldest runnable reads whose item has no older unfinished read (one read per item
/// at a time), including reads whose lease expired.
const CLAIM: &str = "WITH picked AS (
        SELECT c.id FROM github_item_lookups c
        WHERE ((c.state = 'pending' AND c.run_at <= now())
               OR (c.state = 'in_flight' AND c.lease_expires_at < now()))
          AND NOT EXISTS (SELECT 1 FROM github_item_lookups b
                          WHERE b.item_id = c.item_id AND b.id < c.id
                            AND b.state IN ('pending', 'in_flight'))
        ORDER BY c.id
        LIMIT $1
        FOR UPDATE OF c SKIP LOCKED)
    UPDATE github_item_lookups o
    SET state = 'in_flight', attempt_count = o.attempt_count + 1, updated_at = now(),
        lease_expires_at = now() + make_interval(secs => $2::float8 / 1000)
    FROM picked, inbound_events i
    WHERE o.id = picked.id AND i.id = o.inbound_event_id
    RETURNING o.id, o.item_id, o.inbound_event_id, o.attempt_count, i.delivery_id, i.body";

/// Supersedes, then claims up to `limit` reads for `lease_ms`. Run in a short
/// transaction of its own, committed before any HTTP call.
pub async fn claim(
    client: &impl GenericClient,
    limit: i64,
    lease_ms: i64,
) -> Result<(u64, Vec<LookupRow>), StoreError> {
    let supersede = client.prepare_cached(SUPERSEDE).await?;
    let superseded = client.execute(&supersede, &[]).await?;
    let stmt = client.prepare_cached(CLAIM).await?;
    let rows = client.query(&stmt, &[&limit, &(lease_ms as f64)]).await?;
    let mut claimed: Vec<LookupRow> = rows.iter().map(LookupRow::from).collect();
    claimed.sort_by_key(|r| r.id);
    Ok((superseded, claimed))
}

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq)]
pub enum LookupEnd {
    /// The value read is stored as inbound event `fed_event_id`.
    Fed {
        fed_event_id: i64,
        outcome: String,
    },
    /// Nothing to feed back (the item shows no Status value).
    Noop(String),
    /// The item no longer exists: nothing will ever be read.
    Gone {
        code: String,
        reason: String,
    },
    Retry {
        delay_ms: i64,
        code: String,
        error: String,
    },
    Dead {
        code: String,
        error: String,
    },
    /// Not attempted (GitHub is paused, or statsync is stopping): the attempt not counted.
    Release {
        delay_ms: i64,
    },
}

const FINISH: &str = "UPDATE github_item_lookups
    SET state = $3,
        attempt_count = attempt_count - $7,
        run_at = CASE WHEN $3 = 'pending' THEN now() + make_interval(secs => $4::float8 / 1000) ELSE run_at END,
        error_code = COALESCE($5, error_code),
        outcome = COALESCE($6, outcome),
        fed_event_id = $8,
        lease_expires_at = NULL,
        updated_at = now(),
        completed_at = CASE WHEN $3 = 'pending' THEN NULL ELSE now() END
    WHERE id = $1 AND state = 'in_flight' AND attempt_count = $2";

/// Records the end of attempt `attempt` of lookup `id`; `false` when the lease was lost
/// (another replica took the row over): its outcome stands.
pub async fn finish(
    client: &impl GenericClient,
    id: i64,
    attempt: i32,
    end: &LookupEnd,
) -> Result<bool, StoreError> {
    type Columns<'a> = (
        &'a str,
        f64,
        Option<&'a str>,
        Option<&'a str>,
        i32,
        Option<i64>,
    );
    let (state, delay, code, outcome, uncount, fed): Columns = match end {
        LookupEnd::Fed {
            fed_event_id,
            outcome,
        } => ("done", 0.0, None, Some(outcome), 0, Some(*fed_event_id)),
        LookupEnd::Noop(reason) => ("noop", 0.0, None, Some(reason), 0, None),
        LookupEnd::Gone { code, reason } => ("gone", 0.0, Some(code), Some(reason), 0, None),
        LookupEnd::Retry {
            delay_ms,
            code,
            error,
        } => (
            "pending",
            *delay_ms as f64,
            Some(code),
            Some(error),
            0,
            None,
        ),
        LookupEnd::Dead { code, error } => ("dead", 0.0, Some(code), Some(error), 0, None),
        LookupEnd::Release { delay_ms } => ("pending", *delay_ms as f64, None, None, 1, None),
    };
    let stmt = client.prepare_cached(FINISH).await?;
    let n = client
        .execute(
            &stmt,
            &[
                &id, &attempt, &state, &delay, &code, &outcome, &uncount, &fed,
            ],
        )
        .await?;
    Ok(n == 1)
}
