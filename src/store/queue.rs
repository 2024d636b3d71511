//! The lease queue under `sync_outbox` and `github_item_lookups`: rows claimed with
//! `FOR UPDATE SKIP LOCKED` under a lease (an expired lease makes its row claimable
//! again: its replica died mid-call), at most one unfinished row in flight per key,
//! oldest first, waiting rows superseded when a newer row makes them pointless, and
//! finished only by the holder of the current lease (the attempt count is the lease
//! token). Each queue's module describes its table here and keeps its own rows, inserts
//! and rules; this module never deletes a row.

use deadpool_postgres::GenericClient;
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;

use super::StoreError;

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Finish {
    /// Done, with what it came to where the queue keeps that (the value a lookup read).
    Done(Option<String>),
    /// Nothing to do, with the reason.
    Noop(String),
    /// What the row acts on no longer exists (a deleted GitHub item): never retried.
    Gone {
        code: String,
        reason: String,
    },
    /// Try again after `delay_ms`.
    Retry {
        delay_ms: i64,
        code: String,
        error: String,
    },
    Dead {
        code: String,
        error: String,
    },
    /// Not attempted (its system is paused, or statsync is stopping): back to pending,
    /// the attempt not counted.
    Release {
        delay_ms: i64,
    },
}

/// The columns a finish writes: state, delay before the next attempt, error code,
/// message, and 1 when the attempt is not counted.
type Columns<'a> = (&'a str, f64, Option<&'a str>, Option<&'a str>, i32);

impl Finish {
    fn columns(&self) -> Columns<'_> {
        match self {
            Finish::Done(note) => ("done", 0.0, None, note.as_deref(), 0),
            Finish::Noop(reason) => ("noop", 0.0, None, Some(reason), 0),
            Finish::Gone { code, reason } => ("gone", 0.0, Some(code), Some(reason), 0),
            Finish::Retry {
                delay_ms,
                code,
                error,
            } => ("pending", *delay_ms as f64, Some(code), Some(error), 0),
            Finish::Dead { code, error } => ("dead", 0.0, Some(code), Some(error), 0),
            Finish::Release { delay_ms } => ("pending", *delay_ms as f64, None, None, 1),
        }
    }
}

/// A queue's table and the rules that are its own. Columns are named bare; conditions
/// name the row they judge `o`.
pub struct Table {
    pub name: &'static str,
    /// Rows are claimed and superseded one value of this column at a time (the
    /// outbox's system, each with its own budget), passed as the lane.
    pub lane: Option<&'static str>,
    /// What rows act on: one unfinished row per value in flight, the oldest first.
    pub in_order: &'static [&'static str],
    /// What a row writes to or reads: a newer unfinished row for the same one makes a
    /// waiting row pointless.
    pub object: &'static [&'static str],
    /// Another reason a waiting row is pointless.
    pub also_pointless: Option<&'static str>,
    /// Written to `message` when a row is superseded.
    pub superseded_note: Option<&'static str>,
    /// Where a finish's error message, or note, goes.
    pub message: &'static str,
    /// Columns a finish also sets, from parameters `$8` on.
    pub finish_also: Option<&'static str>,
    /// Joined to each claimed row `o` (`name alias`, and the condition), for what the
    /// claim returns.
    pub joined: (&'static str, &'static str),
    pub returning: &'static str,
}

/// A queue's statements, built once (each queue holds its `Queue` in a `LazyLock`).
pub struct Queue {
    supersede: String,
    claim: String,
    finish: String,
}

fn same(columns: &[&str], a: char, b: char) -> String {
    columns
        .iter()
        .map(|c| format!("{a}.{c} = {b}.{c}"))
        .collect::<Vec<_>>()
        .join(" AND ")
}

/// Pending, or in flight under a lease that expired.
fn waiting(alias: char, ready: &str) -> String {
    format!(
        "(({alias}.state = 'pending'{ready}) \
         OR ({alias}.state = 'in_flight' AND {alias}.lease_expires_at < now()))"
    )
}

const UNFINISHED: &str = "state IN ('pending', 'in_flight')";

impl Queue {
    pub fn new(t: &Table) -> Queue {
        Queue {
            supersede: supersede(t),
            claim: claim(t),
            finish: finish(t),
        }
    }

    /// Supersedes the pointless waiting rows, then claims up to `limit` rows for
    /// `lease_ms`: the number superseded, and the rows claimed by id. `lane` is the
    /// lane's value when the table has lanes. Run in a short transaction of its own:
    /// the row locks end at its commit, long before any call the rows ask for.
    pub async fn claim(
        &self,
        client: &impl GenericClient,
        lane: Option<&str>,
        limit: i64,
        lease_ms: i64,
    ) -> Result<(u64, Vec<Row>), StoreError> {
        let lane: Vec<&(dyn ToSql + Sync)> = lane.iter().map(|l| l as _).collect();
        let stmt = client.prepare_cached(&self.supersede).await?;
        let superseded = client.execute(&stmt, &lane).await?;
        let lease = lease_ms as f64;
        let mut params: Vec<&(dyn ToSql + Sync)> = vec![&limit, &lease];
        params.extend(lane);
        let stmt = client.prepare_cached(&self.claim).await?;
        let mut rows = client.query(&stmt, &params).await?;
        rows.sort_by_key(|r| r.get::<_, i64>("id"));
        Ok((superseded, rows))
    }

    /// Records the end of attempt `attempt` of row `id`, with the values of the table's
    /// `finish_also` columns. A row that succeeds after failures keeps the code and
    /// message of its last failure, for the record, and a release keeps them too.
    /// `false` when the lease was lost (the row expired and another replica took it):
    /// that replica's outcome stands.
    pub async fn finish(
        &self,
        client: &impl GenericClient,
        id: i64,
        attempt: i32,
        how: &Finish,
        also: &[&(dyn ToSql + Sync)],
    ) -> Result<bool, StoreError> {
        let (state, delay, code, message, uncount) = how.columns();
        let mut params: Vec<&(dyn ToSql + Sync)> =
            vec![&id, &attempt, &state, &delay, &code, &message, &uncount];
        params.extend_from_slice(also);
        let stmt = client.prepare_cached(&self.finish).await?;
        Ok(client.execute(&stmt, &params).await? == 1)
    }
}

/// Rows in flight under a live lease are left alone: they may have started before the
/// newer row was written.
fn supersede(t: &Table) -> String {
    let name = t.name;
    let note = t
        .superseded_note
        .map(|n| format!(", {} = '{n}'", t.message))
        .unwrap_or_default();
    let lane = t
        .lane
        .map(|l| format!("o.{l} = $1 AND "))
        .unwrap_or_default();
    let also = t
        .also_pointless
        .map(|a| format!(" OR {a}"))
        .unwrap_or_default();
    format!(
        "UPDATE {name} o
    SET state = 'superseded', lease_expires_at = NULL, updated_at = now(), completed_at = now(){note}
    WHERE {lane}{waiting}
      AND (EXISTS (SELECT 1 FROM {name} n
                   WHERE {same} AND n.id > o.id AND n.{UNFINISHED}){also})",
        waiting = waiting('o', ""),
        same = same(t.object, 'n', 'o'),
    )
}

/// The oldest runnable rows whose key has no older unfinished row, including rows whose
/// lease expired.
fn claim(t: &Table) -> String {
    let name = t.name;
    let lane = t
        .lane
        .map(|l| format!("c.{l} = $3 AND "))
        .unwrap_or_default();
    let (joined, on) = t.joined;
    format!(
        "WITH picked AS (
        SELECT c.id FROM {name} c
        WHERE {lane}{waiting}
          AND NOT EXISTS (SELECT 1 FROM {name} b
                          WHERE {same} AND b.id < c.id AND b.{UNFINISHED})
        ORDER BY c.id
        LIMIT $1
        FOR UPDATE OF c SKIP LOCKED)
    UPDATE {name} o
    SET state = 'in_flight', attempt_count = o.attempt_count + 1, updated_at = now(),
        lease_expires_at = now() + make_interval(secs => $2::float8 / 1000)
    FROM picked, {joined}
    WHERE o.id = picked.id AND {on}
    RETURNING {returning}",
        waiting = waiting('c', " AND c.run_at <= now()"),
        same = same(t.in_order, 'b', 'c'),
        returning = t.returning,
    )
}

/// Only the holder of the current lease finishes: the attempt count is its token. A
/// release passes no code or message, so the last failure's stay.
fn finish(t: &Table) -> String {
    let also = t
        .finish_also
        .map(|a| format!("\n        {a},"))
        .unwrap_or_default();
    format!(
        "UPDATE {name}
    SET state = $3,
        attempt_count = attempt_count - $7,
        run_at = CASE WHEN $3 = 'pending' THEN now() + make_interval(secs => $4::float8 / 1000) ELSE run_at END,
        error_code = COALESCE($5, error_code),
        {message} = COALESCE($6, {message}),{also}
        lease_expires_at = NULL,
        updated_at = now(),
        completed_at = CASE WHEN $3 = 'pending' THEN NULL ELSE now() END
    WHERE id = $1 AND state = 'in_flight' AND attempt_count = $2",
        name = t.name,
        message = t.message,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE: Table = Table {
        name: "things",
        lane: Some("system"),
        in_order: &["entity_id", "system"],
        object: &["entity_id", "system", "external_id"],
        also_pointless: None,
        superseded_note: Some("superseded"),
        message: "last_error",
        finish_also: Some("fed = $8"),
        joined: ("entities e", "e.id = o.entity_id"),
        returning: "o.id",
    };

    #[test]
    fn the_lane_is_the_last_claim_parameter_and_the_only_supersede_one() {
        let q = Queue::new(&TABLE);
        assert!(q
            .claim
            .contains("WHERE c.system = $3 AND ((c.state = 'pending'"));
        assert!(q.supersede.contains("WHERE o.system = $1 AND ((o.state"));
        assert!(q
            .claim
            .contains("b.entity_id = c.entity_id AND b.system = c.system AND b.id < c.id"));
        assert!(q.supersede.contains("last_error = 'superseded'"));
        assert!(q.finish.contains("fed = $8,\n"));
    }

    #[test]
    fn a_release_leaves_the_last_failure_and_is_not_counted() {
        let (state, _, code, message, uncount) = Finish::Release { delay_ms: 5 }.columns();
        assert_eq!((state, code, message, uncount), ("pending", None, None, 1));
    }
}
