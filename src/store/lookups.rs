//! `github_item_lookups`: reads of a Projects v2 item's Status that a delivery naming
//! only the field needs. Written in the transaction that recorded that delivery; a
//! lease queue (`queue.rs`) like `sync_outbox`. Two edits of one item waiting together
//! need one read: the older is superseded at claim time. Rows are never deleted.

use std::sync::LazyLock;

use deadpool_postgres::GenericClient;
use tokio_postgres::Row;

use super::queue::{Queue, Table};
use super::StoreError;

pub use super::queue::Finish;

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

/// One read per item at a time, the oldest first. A waiting read is pointless once a
/// newer one of the same item waits: the newer read sees at least as late a value.
static QUEUE: LazyLock<Queue> = LazyLock::new(|| {
    Queue::new(&Table {
        name: "github_item_lookups",
        lane: None,
        in_order: &["item_id"],
        object: &["item_id"],
        also_pointless: None,
        superseded_note: Some("superseded by a newer lookup of the same item"),
        message: "outcome",
        finish_also: Some("fed_event_id = $8"),
        joined: ("inbound_events i", "i.id = o.inbound_event_id"),
        returning: "o.id, o.item_id, o.inbound_event_id, o.attempt_count, i.delivery_id, i.body",
    })
});

/// Supersedes, then claims up to `limit` reads for `lease_ms`. Run in a short
/// transaction of its own, committed before any HTTP call.
pub async fn claim(
    client: &impl GenericClient,
    limit: i64,
    lease_ms: i64,
) -> Result<(u64, Vec<LookupRow>), StoreError> {
    let (superseded, rows) = QUEUE.claim(client, None, limit, lease_ms).await?;
    Ok((superseded, rows.iter().map(LookupRow::from).collect()))
}

/// Records the end of attempt `attempt` of lookup `id`, with the inbound event that
/// stores the value read when there is one (its note is the lookup's outcome); `false`
/// when the lease was lost (another replica took the row over): its outcome stands.
pub async fn finish(
    client: &impl GenericClient,
    id: i64,
    attempt: i32,
    how: &Finish,
    fed_event_id: Option<i64>,
) -> Result<bool, StoreError> {
    QUEUE
        .finish(client, id, attempt, how, &[&fed_event_id])
        .await
}
