//! `inbound_events`: raw deliveries, committed before they are acknowledged.

pub mod admin;

use deadpool_postgres::GenericClient;

use super::StoreError;
use crate::domain::{Origin, SystemId};

/// A verified delivery (or a value statsync read back) about to be stored.
pub struct NewDelivery<'a> {
    pub system: SystemId,
    pub origin: Origin,
    pub delivery_id: &'a str,
    pub event_type: &'a str,
    pub priority: i16,
    pub body: &'a [u8],
    /// What the door read from `body` (`systems::stored`), when it read it.
    pub parsed: Option<&'a [u8]>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    /// Committed now, with its row id.
    New(i64),
    /// A delivery with that id was stored before; nothing new was written.
    Duplicate,
}

/// Stores one delivery in its own (auto-committed) statement.
pub async fn insert(
    client: &impl GenericClient,
    d: &NewDelivery<'_>,
) -> Result<Stored, StoreError> {
    let mut stored = insert_many(client, std::slice::from_ref(d)).await?;
    stored
        .pop()
        .ok_or_else(|| StoreError::Corrupt("an insert answered nothing".into()))
}

const INSERT_MANY: &str =
    "INSERT INTO inbound_events (system, delivery_id, event_type, priority, body, origin, parsed)
    SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::int2[], $5::bytea[],
                         $6::text[], $7::bytea[])
    ON CONFLICT (system, delivery_id) DO NOTHING
    RETURNING id, system, delivery_id";

/// Stores several deliveries in one statement (the caller's transaction, or its own);
/// answers for each, in order. The first of two with the same id in one call is the
/// one stored; the second is its duplicate.
pub async fn insert_many(
    client: &impl GenericClient,
    deliveries: &[NewDelivery<'_>],
) -> Result<Vec<Stored>, StoreError> {
    // Rows go in in key order: an insert waits on the uncommitted row of another that
    // holds the same key, so two groups sharing redelivered ids in different orders
    // would each wait for the other (a deadlock, answered 503). In one order, the
    // first shared key decides who waits, and nobody waits in a circle.
    let mut order: Vec<&NewDelivery<'_>> = deliveries.iter().collect();
    order.sort_by_key(|d| (d.system.as_str(), d.delivery_id));
    let systems: Vec<&str> = order.iter().map(|d| d.system.as_str()).collect();
    let ids: Vec<&str> = order.iter().map(|d| d.delivery_id).collect();
    let types: Vec<&str> = order.iter().map(|d| d.event_type).collect();
    let priorities: Vec<i16> = order.iter().map(|d| d.priority).collect();
    let bodies: Vec<&[u8]> = order.iter().map(|d| d.body).collect();
    let origins: Vec<&str> = order.iter().map(|d| d.origin.as_str()).collect();
    let parsed: Vec<Option<&[u8]>> = order.iter().map(|d| d.parsed).collect();
    let stmt = client.prepare_cached(INSERT_MANY).await?;
    let rows = client
        .query(
            &stmt,
            &[
                &systems,
                &ids,
                &types,
                &priorities,
                &bodies,
                &origins,
                &parsed,
            ],
        )
        .await?;
    let mut stored: std::collections::HashMap<(String, String), i64> = rows
        .iter()
        .map(|r| ((r.get(1), r.get(2)), r.get(0)))
        .collect();
    Ok(deliveries
        .iter()
        .map(
            |d| match stored.remove(&(d.system.as_str().to_owned(), d.delivery_id.to_owned())) {
                Some(id) => Stored::New(id),
                None => Stored::Duplicate,
            },
        )
        .collect())
}

const COUNT_PENDING: &str = "SELECT count(*) FROM inbound_events WHERE state = 'pending'";

pub async fn count_pending(client: &impl GenericClient) -> Result<i64, StoreError> {
    let stmt = client.prepare_cached(COUNT_PENDING).await?;
    Ok(client.query_one(&stmt, &[]).await?.get(0))
}

/// A stored delivery claimed for processing.
pub struct Claimed {
    pub id: i64,
    pub delivery_id: String,
    pub system: SystemId,
    pub origin: Origin,
    pub event_type: String,
    /// The body, read only when the door's reading was not stored with it.
    pub body: Option<Vec<u8>>,
    /// What the door read from the body (`systems::stored`), if it was stored.
    pub parsed: Option<Vec<u8>>,
    pub received_at: chrono::DateTime<chrono::Utc>,
}

// The row locks are held until the claiming transaction ends, so every replica can
// claim and no delivery is processed twice; a crash releases them with the rollback.
// The body is fetched (and decompressed) only for a row the door's reading is not stored
// with: it is most of a row's bytes, and read then for nothing.
const CLAIM: &str = "SELECT id, system, event_type, CASE WHEN parsed IS NULL THEN body END,
        received_at, delivery_id, origin, parsed
    FROM inbound_events
    WHERE state = 'pending' AND run_at <= now()
    ORDER BY priority, id
    LIMIT $1
    FOR UPDATE SKIP LOCKED";

pub async fn claim(client: &impl GenericClient, limit: i64) -> Result<Vec<Claimed>, StoreError> {
    let stmt = client.prepare_cached(CLAIM).await?;
    let rows = client.query(&stmt, &[&limit]).await?;
    rows.iter()
        .map(|r| {
            let corrupt = |e: crate::domain::ParseError| StoreError::Corrupt(e.to_string());
            Ok(Claimed {
                id: r.get(0),
                system: r.get::<_, &str>(1).parse().map_err(corrupt)?,
                origin: r.get::<_, &str>(6).parse().map_err(corrupt)?,
                event_type: r.get(2),
                body: r.get(3),
                received_at: r.get(4),
                delivery_id: r.get(5),
                parsed: r.get(7),
            })
        })
        .collect()
}

const BODIES: &str = "SELECT id, body FROM inbound_events WHERE id = ANY($1) AND body IS NOT NULL";

/// The bodies of claimed rows whose stored reading could not be used after all (written
/// by a statsync of another version), read in the claim's transaction.
pub async fn bodies(
    client: &impl GenericClient,
    ids: &[i64],
) -> Result<std::collections::HashMap<i64, Vec<u8>>, StoreError> {
    let stmt = client.prepare_cached(BODIES).await?;
    let rows = client.query(&stmt, &[&ids]).await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

// clock_timestamp(), not now(): now() is when the transaction began, and the latency
// that matters ends at the commit that follows this statement. The door's reading is
// done with once the delivery is: the row version the mark writes (a whole new one, as
// `state` is indexed) goes without it, so its WAL and its space on disk do too.
const MARK: &str = "UPDATE inbound_events AS i
    SET state = m.state, outcome = m.outcome, error_code = m.code,
        processed_at = clock_timestamp(), attempts = i.attempts + 1, parsed = NULL
    FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[]) AS m(id, state, outcome, code)
    WHERE i.id = m.id";

/// How one claimed delivery ended.
pub struct Outcome {
    pub id: i64,
    /// processed | ignored | failed
    pub state: &'static str,
    pub outcome: String,
    /// Why a failed one failed, as a stable UPPER_SNAKE_CASE code.
    pub error_code: Option<&'static str>,
}

pub async fn mark(client: &impl GenericClient, outcomes: &[Outcome]) -> Result<(), StoreError> {
    if outcomes.is_empty() {
        return Ok(());
    }
    let marks = Marks::of(outcomes);
    let stmt = prepare_mark(client).await?;
    client.execute(&stmt, &marks.params()).await?;
    Ok(())
}

/// The mark's statement, for a caller that sends it itself (in its commit's round trip).
pub async fn prepare_mark(
    client: &impl GenericClient,
) -> Result<tokio_postgres::Statement, StoreError> {
    Ok(client.prepare_cached(MARK).await?)
}

/// The mark's parameters.
pub struct Marks<'a> {
    ids: Vec<i64>,
    states: Vec<&'a str>,
    texts: Vec<&'a str>,
    codes: Vec<Option<&'a str>>,
}

impl<'a> Marks<'a> {
    pub fn of(outcomes: &'a [Outcome]) -> Self {
        Marks {
            ids: outcomes.iter().map(|o| o.id).collect(),
            states: outcomes.iter().map(|o| o.state).collect(),
            texts: outcomes.iter().map(|o| o.outcome.as_str()).collect(),
            codes: outcomes.iter().map(|o| o.error_code).collect(),
        }
    }

    pub fn params(&self) -> [&(dyn tokio_postgres::types::ToSql + Sync); 4] {
        [&self.ids, &self.states, &self.texts, &self.codes]
    }
}

const FAIL: &str = "UPDATE inbound_events
    SET state = 'failed', outcome = $2, error_code = $3, processed_at = clock_timestamp(),
        attempts = attempts + 1, parsed = NULL
    WHERE id = $1 RETURNING system";

/// Marks one delivery failed on its own (it could not be applied with any batch);
/// answers its system, `None` if the row is gone.
pub async fn fail(
    client: &impl GenericClient,
    id: i64,
    error: &str,
    code: &str,
) -> Result<Option<String>, StoreError> {
    let stmt = client.prepare_cached(FAIL).await?;
    Ok(client
        .query_opt(&stmt, &[&id, &error, &code])
        .await?
        .map(|r| r.get(0)))
}

// Received in [now - $1 - $2, now - $1) days, applied or ignored, and not still needed
// by a GitHub item lookup (which reads the body of the delivery it completes).
const PRUNE: &str = "WITH old AS (
        SELECT id FROM inbound_events
        WHERE received_at < now() - make_interval(days => $1)
          AND received_at >= now() - make_interval(days => $1 + $2)
          AND state IN ('processed', 'ignored') AND body IS NOT NULL
          AND id NOT IN (SELECT inbound_event_id FROM github_item_lookups
                         WHERE state IN ('pending', 'in_flight'))
        LIMIT $3)
    UPDATE inbound_events i SET body = NULL, parsed = NULL FROM old WHERE i.id = old.id";

/// Rows pruned per statement, so no one transaction holds many row locks for long.
const PRUNE_BATCH: i64 = 1000;

/// Drops the bodies of applied or ignored deliveries received more than `days` ago (and
/// at most `days + lookback` ago: rows already pruned are not read again); the rows stay,
/// so their ids still tell a redelivery from a new delivery. Answers how many.
pub async fn prune_bodies(
    client: &impl GenericClient,
    days: i32,
    lookback_days: i32,
) -> Result<u64, StoreError> {
    let stmt = client.prepare_cached(PRUNE).await?;
    let mut pruned = 0;
    loop {
        let n = client
            .execute(&stmt, &[&days, &lookback_days, &PRUNE_BATCH])
            .await?;
        pruned += n;
        if (n as i64) < PRUNE_BATCH {
            return Ok(pruned);
        }
    }
}

const DEFER: &str = "UPDATE inbound_events SET attempts = attempts + 1, last_error = $2,
    run_at = now() + make_interval(secs => $3)
    WHERE id = $1";

/// A delivery that failed for a reason that may pass: try it again later.
pub async fn defer(
    client: &impl GenericClient,
    id: i64,
    error: &str,
    delay_s: f64,
) -> Result<(), StoreError> {
    let stmt = client.prepare_cached(DEFER).await?;
    client.execute(&stmt, &[&id, &error, &delay_s]).await?;
    Ok(())
}
