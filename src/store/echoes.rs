//! `sync_writes`: every write statsync made to an external object, with the object's
//! updated-at the write answered, so the webhook a system sends back about statsync's
//! own write is recognised exactly (`domain::echo`) and goes no further. A write's echo
//! is consumed once; writes older than `dispatch.echo_window_s` are pruned.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;

use super::StoreError;
use crate::domain::echo::PastWrite;
use crate::domain::{CanonicalStatus, ExternalRef};

const RECORD: &str = "INSERT INTO sync_writes (system, external_id, status, object_updated_at)
    VALUES ($1, $2, $3, $4)";

/// Remembers that `status` was just written to `target`, which then showed
/// `object_updated_at` (the write's answer, when it said).
pub async fn record(
    client: &impl GenericClient,
    target: &ExternalRef,
    status: CanonicalStatus,
    object_updated_at: Option<DateTime<Utc>>,
) -> Result<(), StoreError> {
    let stmt = client.prepare_cached(RECORD).await?;
    client
        .execute(
            &stmt,
            &[
                &target.system.as_str(),
                &target.external_id,
                &status.as_str(),
                &object_updated_at,
            ],
        )
        .await?;
    Ok(())
}

const OF: &str = "SELECT w.system, w.external_id, w.id, w.status, w.object_updated_at,
        w.written_at, w.echoed_at IS NOT NULL
    FROM unnest((SELECT $1::text[]), (SELECT $2::text[])) AS q(system, external_id)
    JOIN sync_writes w ON w.system = q.system AND w.external_id = q.external_id
    ORDER BY w.id";

/// The writes statsync made to each of `targets`, oldest first: one query for a whole
/// batch (almost always empty).
pub async fn writes_to(
    client: &impl GenericClient,
    targets: &[&ExternalRef],
) -> Result<HashMap<ExternalRef, Vec<PastWrite>>, StoreError> {
    let mut out: HashMap<ExternalRef, Vec<PastWrite>> = HashMap::new();
    if targets.is_empty() {
        return Ok(out);
    }
    let systems: Vec<&str> = targets.iter().map(|r| r.system.as_str()).collect();
    let ids: Vec<&str> = targets.iter().map(|r| r.external_id.as_str()).collect();
    let stmt = client.prepare_cached(OF).await?;
    for r in client.query(&stmt, &[&systems, &ids]).await? {
        let corrupt = |e: crate::domain::ParseError| StoreError::Corrupt(e.to_string());
        let system: String = r.get(0);
        let status: String = r.get(3);
        let target = ExternalRef::new(system.parse().map_err(corrupt)?, r.get::<_, String>(1));
        out.entry(target).or_default().push(PastWrite {
            id: r.get(2),
            status: status.parse().map_err(corrupt)?,
            object_updated_at: r.get(4),
            written_at: r.get(5),
            echoed: r.get(6),
        });
    }
    Ok(out)
}

const CONSUME: &str = "UPDATE sync_writes SET echoed_at = now() WHERE id = $1";

/// The echo of write `id` has come.
pub async fn consume(client: &impl GenericClient, id: i64) -> Result<(), StoreError> {
    let stmt = client.prepare_cached(CONSUME).await?;
    client.execute(&stmt, &[&id]).await?;
    Ok(())
}

const PRUNE: &str = "DELETE FROM sync_writes
    WHERE written_at < now() - make_interval(secs => $1::float8)";

/// Forgets writes older than the window: their webhook never came (or came already).
pub async fn prune(client: &impl GenericClient, window_s: u64) -> Result<u64, StoreError> {
    let stmt = client.prepare_cached(PRUNE).await?;
    let window = window_s as f64;
    Ok(client.execute(&stmt, &[&window]).await?)
}
