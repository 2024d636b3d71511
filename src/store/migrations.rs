//! Forward-only schema migrations from `sql/`, built into the binary, applied in order
//! under an advisory lock so replicas starting together apply each exactly once.

use sha2::{Digest, Sha256};
use tokio_postgres::Client;

use super::StoreError;

/// Every migration, in order. Add new files at the end; never edit an applied one.
pub const MIGRATIONS: &[(&str, &str)] = &[
    ("0001_entities", include_str!("../../sql/0001_entities.sql")),
    (
        "0002_inbound_events",
        include_str!("../../sql/0002_inbound_events.sql"),
    ),
    (
        "0003_history_and_events",
        include_str!("../../sql/0003_history_and_events.sql"),
    ),
    (
        "0004_sync_outbox",
        include_str!("../../sql/0004_sync_outbox.sql"),
    ),
    (
        "0005_postgresql_source",
        include_str!("../../sql/0005_postgresql_source.sql"),
    ),
    ("0006_hot_path", include_str!("../../sql/0006_hot_path.sql")),
    (
        "0008_github_item_lookups",
        include_str!("../../sql/0008_github_item_lookups.sql"),
    ),
    ("0009_alerts", include_str!("../../sql/0009_alerts.sql")),
    ("0010_linking", include_str!("../../sql/0010_linking.sql")),
    (
        "0011_sync_runs",
        include_str!("../../sql/0011_sync_runs.sql"),
    ),
    (
        "0012_entity_merges",
        include_str!("../../sql/0012_entity_merges.sql"),
    ),
    (
        "0013_write_costs",
        include_str!("../../sql/0013_write_costs.sql"),
    ),
    (
        "0014_log_upkeep",
        include_str!("../../sql/0014_log_upkeep.sql"),
    ),
    (
        "0015_exact_echoes",
        include_str!("../../sql/0015_exact_echoes.sql"),
    ),
    (
        "0016_failed_deliveries",
        include_str!("../../sql/0016_failed_deliveries.sql"),
    ),
    (
        "0017_delivery_retention",
        include_str!("../../sql/0017_delivery_retention.sql"),
    ),
    (
        "0018_origin_and_system_names",
        include_str!("../../sql/0018_origin_and_system_names.sql"),
    ),
    (
        "0019_parsed_updates",
        include_str!("../../sql/0019_parsed_updates.sql"),
    ),
];

/// Arbitrary but fixed: the advisory lock key that serializes migrators.
const LOCK_KEY: i64 = 0x5354_4154_5359_4e43; // "STATSYNC"

const CREATE_TABLE: &str = "CREATE TABLE IF NOT EXISTS schema_migrations (
    version    text PRIMARY KEY,
    checksum   text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now())";
const SELECT_APPLIED: &str = "SELECT version, checksum FROM schema_migrations";
const INSERT_APPLIED: &str = "INSERT INTO schema_migrations (version, checksum) VALUES ($1, $2)";
const TABLE_EXISTS: &str = "SELECT to_regclass('schema_migrations') IS NOT NULL";

fn checksum(sql: &str) -> String {
    hex::encode(Sha256::digest(sql.as_bytes()))
}

/// Applies what is missing; answers the versions applied by this call.
pub async fn migrate(client: &mut Client) -> Result<Vec<String>, StoreError> {
    client
        .execute("SELECT pg_advisory_lock($1)", &[&LOCK_KEY])
        .await?;
    let result = apply_missing(client).await;
    // Unlock even on failure; the session ends anyway if this fails too.
    let unlock = client
        .execute("SELECT pg_advisory_unlock($1)", &[&LOCK_KEY])
        .await;
    let applied = result?;
    unlock?;
    Ok(applied)
}

async fn apply_missing(client: &mut Client) -> Result<Vec<String>, StoreError> {
    // Looked up first: `IF NOT EXISTS` alone makes PostgreSQL send a NOTICE on every
    // start, which the client logs. Under the lock, no other migrator can race.
    let exists: bool = client.query_one(TABLE_EXISTS, &[]).await?.get(0);
    if !exists {
        client.batch_execute(CREATE_TABLE).await?;
    }
    let rows = client.query(SELECT_APPLIED, &[]).await?;
    let done: std::collections::HashMap<String, String> = rows
        .iter()
        .map(|r| (r.get::<_, String>(0), r.get::<_, String>(1)))
        .collect();
    let mut applied = Vec::new();
    for (version, sql) in MIGRATIONS {
        let sum = checksum(sql);
        match done.get(*version) {
            Some(existing) if *existing == sum => continue,
            Some(_) => return Err(StoreError::MigrationChanged((*version).to_owned())),
            None => {}
        }
        let tx = client.transaction().await?;
        tx.batch_execute(sql)
            .await
            .map_err(|source| StoreError::Migration {
                version: (*version).to_owned(),
                source,
            })?;
        tx.execute(INSERT_APPLIED, &[version, &sum]).await?;
        tx.commit().await?;
        tracing::info!(version = *version, "migration applied");
        applied.push((*version).to_owned());
    }
    Ok(applied)
}

/// Whether every shipped migration is applied (readiness).
pub async fn is_current(client: &Client) -> Result<bool, StoreError> {
    let exists: bool = client.query_one(TABLE_EXISTS, &[]).await?.get(0);
    if !exists {
        return Ok(false);
    }
    let rows = client.query(SELECT_APPLIED, &[]).await?;
    let done: std::collections::HashSet<String> = rows.iter().map(|r| r.get(0)).collect();
    Ok(MIGRATIONS.iter().all(|(v, _)| done.contains(*v)))
}
