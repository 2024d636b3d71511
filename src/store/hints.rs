//! The `statsync_hints` channel: coalesced wake-ups between replicas (see
//! `actors::hints`). Never the only way work is found.

use deadpool_postgres::GenericClient;

use super::StoreError;
use crate::actors::hints::Hint;

const NOTIFY: &str = "SELECT pg_notify('statsync_hints', $1)";

/// Sends `hint` in its own transaction; never call it inside an applying one.
pub async fn notify(client: &impl GenericClient, hint: &Hint) -> Result<(), StoreError> {
    let payload = serde_json::to_string(hint)
        .map_err(|e| StoreError::Corrupt(format!("hint not serializable: {e}")))?;
    let stmt = client.prepare_cached(NOTIFY).await?;
    client.execute(&stmt, &[&payload]).await?;
    Ok(())
}

pub async fn listen(client: &tokio_postgres::Client) -> Result<(), tokio_postgres::Error> {
    client.batch_execute("LISTEN statsync_hints").await
}
