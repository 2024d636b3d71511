//! `sync_echoes`: statuses statsync recently wrote to external objects, so the webhook a
//! system sends back about statsync's own write is recognised and goes no further. An
//! echo is consumed by the first matching delivery; stale ones are pruned.

use deadpool_postgres::GenericClient;

use super::StoreError;
use crate::domain::{CanonicalStatus, ExternalRef};

const RECORD: &str = "INSERT INTO sync_echoes (system, external_id, status, written_at)
    VALUES ($1, $2, $3, now())
    ON CONFLICT (system, external_id, status) DO UPDATE SET written_at = now()";

/// Remembers that `status` was just written to `target`.
pub async fn record(
    client: &impl GenericClient,
    target: &ExternalRef,
    status: CanonicalStatus,
) -> Result<(), StoreError> {
    let stmt = client.prepare_cached(RECORD).await?;
    client
        .execute(
            &stmt,
            &[
                &target.system.as_str(),
                &target.external_id,
                &status.as_str(),
            ],
        )
        .await?;
    Ok(())
}

/// The newest fresh echo for `target` whose status is one of `statuses` (the canonical
/// statuses the incoming native value is compatible with), deleted as it is read.
const CONSUME: &str = "DELETE FROM sync_echoes e
    USING (SELECT system, external_id, status FROM sync_echoes
           WHERE system = $1 AND external_id = $2 AND status = ANY($3)
             AND written_at > now() - make_interval(secs => $4::float8)
           ORDER BY written_at DESC LIMIT 1) m
    WHERE e.system = m.system AND e.external_id = m.external_id AND e.status = m.status
    RETURNING e.status";

pub async fn consume(
    client: &impl GenericClient,
    target: &ExternalRef,
    statuses: &[CanonicalStatus],
    window_s: u64,
) -> Result<Option<String>, StoreError> {
    let statuses: Vec<&str> = statuses.iter().map(|s| s.as_str()).collect();
    let stmt = client.prepare_cached(CONSUME).await?;
    let window = window_s as f64;
    let row = client
        .query_opt(
            &stmt,
            &[
                &target.system.as_str(),
                &target.external_id,
                &statuses,
                &window,
            ],
        )
        .await?;
    Ok(row.map(|r| r.get(0)))
}

const PRESENT: &str = "SELECT DISTINCT e.system, e.external_id
    FROM unnest($1::text[], $2::text[]) AS q(system, external_id)
    JOIN sync_echoes e ON e.system = q.system AND e.external_id = q.external_id";

/// Which of `targets` have any echo waiting: one query for a whole batch, so only those
/// pay for `consume`.
pub async fn present(
    client: &impl GenericClient,
    targets: &[&ExternalRef],
) -> Result<std::collections::HashSet<ExternalRef>, StoreError> {
    if targets.is_empty() {
        return Ok(Default::default());
    }
    let systems: Vec<&str> = targets.iter().map(|r| r.system.as_str()).collect();
    let ids: Vec<&str> = targets.iter().map(|r| r.external_id.as_str()).collect();
    let stmt = client.prepare_cached(PRESENT).await?;
    let rows = client.query(&stmt, &[&systems, &ids]).await?;
    rows.iter()
        .map(|r| {
            let system: String = r.get(0);
            let system = system
                .parse()
                .map_err(|e: crate::domain::ParseError| StoreError::Corrupt(e.to_string()))?;
            Ok(ExternalRef::new(system, r.get::<_, String>(1)))
        })
        .collect()
}

const PRUNE: &str = "DELETE FROM sync_echoes
    WHERE written_at < now() - make_interval(secs => $1::float8)";

/// Forgets echoes older than the window: their webhook never came (or came already).
pub async fn prune(client: &impl GenericClient, window_s: u64) -> Result<u64, StoreError> {
    let stmt = client.prepare_cached(PRUNE).await?;
    let window = window_s as f64;
    Ok(client.execute(&stmt, &[&window]).await?)
}
