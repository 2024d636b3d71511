//! The `statsync_hints` channel: coalesced wake-ups between replicas (see
//! `actors::hints`). Never the only way work is found.

use deadpool_postgres::GenericClient;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::StoreError;

/// What a replica committed since its last hint: the payload of one NOTIFY.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Hint {
    /// The replica that sent it; a replica ignores its own hints.
    pub from: Uuid,
    pub last_seq: Option<i64>,
    pub outbox: bool,
    pub inbound: bool,
}

impl Hint {
    pub fn is_empty(&self) -> bool {
        self.last_seq.is_none() && !self.outbox && !self.inbound
    }

    /// Folds `other` in: one hint that says everything both said.
    pub fn merge(&mut self, other: &Hint) {
        self.last_seq = self.last_seq.max(other.last_seq);
        self.outbox |= other.outbox;
        self.inbound |= other.inbound;
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_merged_hint_says_everything_both_said() {
        let mut kept = Hint {
            last_seq: Some(7),
            inbound: true,
            ..Hint::default()
        };
        kept.merge(&Hint {
            last_seq: Some(5),
            outbox: true,
            ..Hint::default()
        });
        assert_eq!(
            (kept.last_seq, kept.outbox, kept.inbound),
            (Some(7), true, true)
        );
        kept.merge(&Hint {
            last_seq: Some(9),
            ..Hint::default()
        });
        assert_eq!(kept.last_seq, Some(9));
        let mut empty = Hint::default();
        empty.merge(&Hint::default());
        assert!(empty.is_empty());
    }
}
