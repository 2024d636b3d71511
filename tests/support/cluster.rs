//! One embedded PostgreSQL cluster per test process, and a fresh database per test.
//! Paste into `tests/support/mod.rs`. The cluster is ephemeral: its watchdog stops it and
//! removes its directory when the test process exits, however it exits.

use std::path::Path;

use statsync::store::embedded::{EmbeddedError, EmbeddedPostgres};
use tokio::sync::OnceCell;

static CLUSTER: OnceCell<EmbeddedPostgres> = OnceCell::const_new();

/// The process-wide cluster, started on first use.
///
/// Every `#[actix_web::test]` runs on its own runtime that ends with the test, so the start
/// runs on a thread with a runtime of its own: nothing the cluster needs outlives it, and a
/// test that merely waits for the start can finish without harming the others.
pub async fn cluster() -> &'static EmbeddedPostgres {
    CLUSTER
        .get_or_init(|| async {
            let (tx, rx) = tokio::sync::oneshot::channel();
            std::thread::spawn(move || {
                let root = Path::new(env!("CARGO_TARGET_TMPDIR"))
                    .join(format!("pg-{}", std::process::id()));
                let started = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(EmbeddedError::from)
                    .and_then(|rt| rt.block_on(EmbeddedPostgres::start_ephemeral(&root)));
                let _ = tx.send(started);
            });
            match rx.await {
                Ok(Ok(cluster)) => cluster,
                Ok(Err(e)) => panic!("could not start the test PostgreSQL cluster: {e}"),
                Err(_) => panic!("the thread starting the test PostgreSQL cluster died"),
            }
        })
        .await
}

/// Create an empty database `test_<uuid>` on the shared cluster and return its URL.
pub async fn fresh_database() -> String {
    let cluster = cluster().await;
    let name = format!("test_{}", uuid::Uuid::new_v4().simple());
    let (client, connection) =
        tokio_postgres::connect(&cluster.url("postgres"), tokio_postgres::NoTls)
            .await
            .expect("connect to the test cluster's postgres database");
    // Spawned on the calling test's runtime, which outlives this connection.
    let connection = tokio::spawn(connection);
    // CREATE DATABASE takes no bind parameters; the name is generated above, never input.
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .expect("create the test database");
    drop(client);
    let _ = connection.await;
    cluster.url(&name)
}

/// The cluster's administrative database, for tests that act on a database from outside.
pub async fn admin_url() -> String {
    cluster().await.url("postgres")
}
