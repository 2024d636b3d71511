//! PostgreSQL access: the pool, migrations, and the queries of each table grouped in
//! the module named for it. SQL lives here and in `sql/`, nowhere else.
//!
//! An array parameter written `(SELECT $1::T[])` instead of `$1` hides its length from
//! the planner. PostgreSQL plans a prepared statement afresh on every call while a plan
//! for the actual values costs less than its generic plan, and a generic plan must
//! guess an array's length (10). The per-batch lookups by id, whose plan is index
//! probes whatever the length, were therefore planned on every call, at 0.1–0.2 ms
//! each (at 100/s, planning was 5.0 s of the 11.3 s spent in statements; BENCHMARKS,
//! session 14). Hidden, the length is guessed in both plans, so after five calls the
//! generic plan is kept.

pub mod alerts;
pub mod board;
mod connections;
pub mod echoes;
pub mod embedded;
pub mod entities;
pub mod events;
pub mod hints;
pub mod history;
pub mod inbound;
pub mod linking;
pub mod lookups;
pub mod migrations;
pub mod outbox;
pub mod pg_source;
pub mod queue;
pub mod sync_runs;
pub mod tx;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("no database connection available: {}", describe_pool(.0))]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error("database error: {}", describe(.0))]
    Db(#[from] tokio_postgres::Error),
    #[error("invalid DATABASE_URL: {0}")]
    Url(String),
    #[error("migration {version} failed: {}", describe(.source))]
    Migration {
        version: String,
        source: tokio_postgres::Error,
    },
    #[error("migration {0} was changed after it was applied; migrations are forward-only: add a new one")]
    MigrationChanged(String),
    #[error("unexpected data in the database: {0}")]
    Corrupt(String),
}

impl StoreError {
    /// Whether trying again later may succeed (connection lost, server restarting,
    /// serialization failure, deadlock) as opposed to a bug or bad data.
    pub fn is_transient(&self) -> bool {
        match self {
            StoreError::Pool(_) => true,
            StoreError::Db(e) | StoreError::Migration { source: e, .. } => is_transient_db(e),
            _ => false,
        }
    }
}

impl StoreError {
    /// A deadlock or serialization failure: the statement lost a race and was rolled
    /// back whole, so running it again at once is safe and usually succeeds.
    pub fn lost_a_race(&self) -> bool {
        use tokio_postgres::error::SqlState;
        match self {
            StoreError::Db(e) => e.code().is_some_and(|c| {
                *c == SqlState::T_R_DEADLOCK_DETECTED || *c == SqlState::T_R_SERIALIZATION_FAILURE
            }),
            _ => false,
        }
    }
}

fn describe_pool(e: &deadpool_postgres::PoolError) -> String {
    match e {
        deadpool_postgres::PoolError::Backend(db) => describe(db),
        other => other.to_string(),
    }
}

/// tokio-postgres says only "db error" at the top; the server's message is the source.
fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        // The detail names what was involved (for a deadlock: who waited for which lock).
        Some(db) => match db.detail() {
            Some(detail) => format!(
                "{} ({}): {}",
                db.message(),
                db.code().code(),
                detail.replace('\n', " ")
            ),
            None => format!("{} ({})", db.message(), db.code().code()),
        },
        None => match std::error::Error::source(e) {
            Some(cause) => format!("{e}: {cause}"),
            None => e.to_string(),
        },
    }
}

pub fn is_transient_db(e: &tokio_postgres::Error) -> bool {
    use tokio_postgres::error::SqlState;
    match e.code() {
        // No SQL state: a lost connection is transient; a client-side error (wrong
        // parameters, a type that does not convert) is a bug and retrying cannot help.
        None => {
            e.is_closed() || std::error::Error::source(e).is_some_and(|s| s.is::<std::io::Error>())
        }
        Some(code) => {
            *code == SqlState::T_R_SERIALIZATION_FAILURE
                || *code == SqlState::T_R_DEADLOCK_DETECTED
                || *code == SqlState::ADMIN_SHUTDOWN
                || *code == SqlState::CRASH_SHUTDOWN
                || *code == SqlState::CANNOT_CONNECT_NOW
                || *code == SqlState::TOO_MANY_CONNECTIONS
                || code.code().starts_with("08")
        }
    }
}

/// How the pool connects and waits: plain values, read from `database.*` by the caller.
#[derive(Debug, Clone, Copy)]
pub struct PoolSettings {
    pub size: usize,
    pub connect_timeout: Duration,
    /// How long a caller waits for a connection (and a recycle check) before failing.
    pub acquire_timeout: Duration,
}

/// The connection pool every part of statsync shares.
#[derive(Clone)]
pub struct Store {
    pool: Pool,
    /// Set by `close`: connection errors from then on are the database stopping.
    closing: Arc<AtomicBool>,
}

impl Store {
    pub fn connect(url: &str, settings: PoolSettings) -> Result<Store, StoreError> {
        let mut pg: tokio_postgres::Config = url
            .parse()
            .map_err(|e: tokio_postgres::Error| StoreError::Url(e.to_string()))?;
        pg.connect_timeout(settings.connect_timeout);
        if pg.get_application_name().is_none() {
            pg.application_name("statsync");
        }
        let closing = Arc::new(AtomicBool::new(false));
        let connect = connections::OnOwnRuntime::new(closing.clone())
            .map_err(|e| StoreError::Url(format!("cannot start the connection threads: {e}")))?;
        let manager = Manager::from_connect(
            pg,
            connect,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let timeout = settings.acquire_timeout;
        let pool = Pool::builder(manager)
            .max_size(settings.size)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(timeout))
            .create_timeout(Some(settings.connect_timeout))
            .recycle_timeout(Some(timeout))
            .build()
            .map_err(|e| StoreError::Url(e.to_string()))?;
        Ok(Store { pool, closing })
    }

    /// Closes the pool before the database stops: idle connections end now, the ones
    /// in use when they come back, and an error on one still open is no longer news.
    pub fn close(&self) {
        self.closing.store(true, Ordering::Relaxed);
        self.pool.close();
    }

    pub async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        Ok(self.pool.get().await?)
    }

    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// Readiness: the database answers and every migration shipped is applied.
    pub async fn ready(&self) -> Result<bool, StoreError> {
        let client = self.client().await?;
        migrations::is_current(&client).await
    }
}

// The subquery fixes the order the locks are taken in, so two transactions locking
// overlapping sets never deadlock.
const ADVISORY_LOCKS: &str = "SELECT pg_advisory_xact_lock(hashtextextended($1 || ':' || k, 0))
    FROM (SELECT DISTINCT k FROM unnest($2::text[]) AS k ORDER BY k) AS s";

/// Takes a transaction-scoped advisory lock on each of `keys` (in `namespace`), in sorted
/// order, in one statement; held until the transaction ends.
pub async fn advisory_locks(
    client: &impl deadpool_postgres::GenericClient,
    namespace: &str,
    keys: &[String],
) -> Result<(), StoreError> {
    if keys.is_empty() {
        return Ok(());
    }
    let stmt = client.prepare_cached(ADVISORY_LOCKS).await?;
    client.query(&stmt, &[&namespace, &keys]).await?;
    Ok(())
}
