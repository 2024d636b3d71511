//! The engine's transactions, with as few round trips as the work allows.
//!
//! On a loaded two-core machine a round trip to PostgreSQL costs ~0.8 ms of waiting for
//! the two sides to be scheduled, whatever the statement; an applying batch made ~16 of
//! them and spent two thirds of its time so. So `BEGIN` travels with the batch's first
//! statement and `COMMIT` right behind its last one, and the statements in between that
//! do not depend on each other go out together (tokio-postgres pipelines futures polled
//! at once; PostgreSQL runs them one after another, in the order they were sent).
//! Sending `COMMIT` behind the event append also means the event log's seq lock is no
//! longer held across a round trip.

use std::future::Future;

use deadpool_postgres::{Client, Object};
use tokio_postgres::types::ToSql;
use tokio_postgres::{Row, Statement};

use super::StoreError;

/// Every engine transaction is statsync's own writer: the direct-write trigger
/// (migration 0006) skips its status writes.
const BEGIN_WRITER: &str = "BEGIN; SET LOCAL statsync.writer = 'on'";

/// An open transaction on a pooled connection. Dropped without `commit` (an error, a
/// cancelled future), it is rolled back before the connection goes back to the pool.
pub struct Tx {
    client: Option<Object>,
    open: bool,
}

impl Tx {
    /// Begins a writer transaction and runs `first` in the same round trip.
    pub async fn begin_with<'a, T, F>(
        &'a mut self,
        first: impl FnOnce(&'a Client) -> F,
    ) -> Result<T, StoreError>
    where
        F: Future<Output = Result<T, StoreError>> + 'a,
    {
        self.open = true;
        let client: &Client = self;
        // `BEGIN` is polled first, so it is sent first: batch_execute sends on its
        // first poll, before anything `first` does.
        let (begun, value) =
            futures_util::future::join(client.batch_execute(BEGIN_WRITER), first(client)).await;
        begun?;
        value
    }

    /// Holds a pooled connection; nothing is sent until `begin_with`.
    pub fn on(client: Object) -> Tx {
        Tx {
            client: Some(client),
            open: false,
        }
    }

    /// Begins a writer transaction on its own.
    pub async fn begin(client: Object) -> Result<Tx, StoreError> {
        let mut tx = Tx::on(client);
        tx.begin_with(|_| async { Ok(()) }).await?;
        Ok(tx)
    }

    /// Runs `statements` (already prepared), in order, and commits, all in one round
    /// trip; answers the rows of the last. If one fails, PostgreSQL ends the failed
    /// transaction at the `COMMIT` with a rollback, and the first error is the answer.
    pub async fn commit_after(
        mut self,
        statements: &[Pipelined<'_>],
    ) -> Result<Vec<Row>, StoreError> {
        let client: &Client = &self;
        // With their statements prepared, queries send on their first poll, and join_all
        // and join poll in the order written: `COMMIT` cannot overtake any of them.
        let queries =
            futures_util::future::join_all(statements.iter().map(|(s, p)| client.query(*s, p)));
        let (answers, committed) =
            futures_util::future::join(queries, client.batch_execute("COMMIT")).await;
        // Either way the transaction block is over now.
        self.open = false;
        let mut last = Vec::new();
        for answer in answers {
            last = answer?;
        }
        committed?;
        Ok(last)
    }

    pub async fn commit(self) -> Result<(), StoreError> {
        self.commit_after(&[]).await.map(|_| ())
    }

    /// Ends a transaction that found nothing to do.
    pub async fn rollback(mut self) -> Result<(), StoreError> {
        let ended = self.batch_execute("ROLLBACK").await;
        self.open = false;
        Ok(ended?)
    }
}

/// A prepared statement and its parameters, sent in a pipeline.
pub type Pipelined<'a> = (&'a Statement, &'a [&'a (dyn ToSql + Sync)]);

impl std::ops::Deref for Tx {
    type Target = Client;

    fn deref(&self) -> &Client {
        self.client.as_ref().expect("connection held until drop")
    }
}

impl Drop for Tx {
    fn drop(&mut self) {
        let Some(client) = self.client.take() else {
            return;
        };
        if !self.open {
            return;
        }
        // The connection returns to the pool only after its rollback; with no runtime
        // to run that on, it is closed instead, which rolls back too.
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(async move {
                    if let Err(e) = client.batch_execute("ROLLBACK").await {
                        tracing::debug!(error = %e, "rollback failed; closing the connection");
                        drop(Object::take(client));
                    }
                });
            }
            Err(_) => drop(Object::take(client)),
        }
    }
}
