//! The database: reachable, and every shipped migration applied.

use std::time::Duration;

use super::Check;
use crate::config::Settings;
use crate::startup::Database;
use crate::store::Store;

/// The embedded cluster is started for the check when nothing runs it (and stopped
/// again when the check started it); a server that does not answer within the
/// connect timeout is reported, not waited for.
pub(super) async fn check(settings: &Settings) -> Vec<Check> {
    let source = match settings.secrets.database_url {
        Some(_) => "DATABASE_URL".to_owned(),
        None => format!(
            "the embedded PostgreSQL in {}",
            settings.database.embedded_dir.display()
        ),
    };
    let fix = match settings.secrets.database_url {
        Some(_) => "check DATABASE_URL (host, port, user, password, database) and that PostgreSQL accepts connections from here",
        None => "the embedded cluster needs the PostgreSQL 15 binaries (initdb, pg_ctl) on this machine: install postgresql",
    };
    let database = match Database::open(settings).await {
        Ok(d) => d,
        Err(e) => {
            return vec![Check::fail(
                "database",
                "reachable",
                format!("{source}: {e:#}"),
                fix,
            )]
        }
    };
    let store = match Store::connect(&database.url, settings.database.pool()) {
        Ok(s) => s,
        Err(e) => {
            return vec![Check::fail(
                "database",
                "reachable",
                format!("{source}: {e}"),
                fix,
            )]
        }
    };
    let wait = Duration::from_secs(settings.database.connect_timeout_s.max(1) + 1);
    let ready = tokio::time::timeout(wait, store.ready()).await;
    store.close();
    // Dropping `database` stops the embedded cluster only if this check started it.
    drop(database);
    match ready {
        Err(_) => vec![Check::fail(
            "database",
            "reachable",
            format!("{source} did not answer within {} s", wait.as_secs()),
            fix,
        )],
        Ok(Err(e)) => vec![Check::fail(
            "database",
            "reachable",
            format!("{source}: {e}"),
            fix,
        )],
        Ok(Ok(current)) => {
            let migrations = match current {
                true => Check::ok(
                    "database",
                    "migrations",
                    "every migration this version ships is applied",
                ),
                false => Check::fail(
                    "database",
                    "migrations",
                    "migrations this version ships are not applied",
                    "run `statsync migrate` (the service also applies them at start)",
                ),
            };
            vec![Check::ok("database", "reachable", source), migrations]
        }
    }
}
