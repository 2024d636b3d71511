//! StatusSynchronizer: the one entry point the HTTP layer calls. It owns the actors'
//! addresses; it never acknowledges a delivery that is not committed.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use actix::prelude::*;

use crate::domain::SystemId;
use crate::metrics::Metrics;
use crate::store::inbound::{self, NewDelivery, Stored};
use crate::store::{Store, StoreError};

/// New work is stored: look for it now rather than at the next poll.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "()")]
pub struct Wake;

#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    #[error("the processing queue is full ({backlog} deliveries waiting); retry later")]
    QueueFull { backlog: i64 },
    #[error("the delivery could not be stored: {0}")]
    Store(#[from] StoreError),
}

/// Pending inbound work as this replica last saw it; webhooks refuse new deliveries
/// (503) above the capacity instead of letting the backlog grow without bound.
#[derive(Debug, Default)]
pub struct Backlog(AtomicI64);

impl Backlog {
    pub fn get(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
    pub fn set(&self, n: i64) {
        self.0.store(n.max(0), Ordering::Relaxed)
    }
    pub fn add(&self, n: i64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
}

#[derive(Clone)]
pub struct StatusSynchronizer {
    store: Store,
    metrics: Arc<Metrics>,
    backlog: Arc<Backlog>,
    capacity: i64,
    processor: Option<Recipient<Wake>>,
}

impl StatusSynchronizer {
    pub fn new(
        store: Store,
        metrics: Arc<Metrics>,
        backlog: Arc<Backlog>,
        capacity: i64,
        processor: Option<Recipient<Wake>>,
    ) -> Self {
        StatusSynchronizer {
            store,
            metrics,
            backlog,
            capacity,
            processor,
        }
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Commits a verified delivery; `Ok` means it is durably stored.
    pub async fn intake(&self, delivery: &NewDelivery<'_>) -> Result<Stored, IntakeError> {
        let backlog = self.backlog.get();
        if backlog >= self.capacity {
            return Err(IntakeError::QueueFull { backlog });
        }
        let client = self.store.client().await?;
        let stored = inbound::insert(&client, delivery).await?;
        if let Stored::New(_) = stored {
            self.backlog.add(1);
            if let Some(processor) = &self.processor {
                processor.do_send(Wake);
            }
        }
        Ok(stored)
    }

    pub fn monitor_webhook(&self, system: SystemId, event: &str, result: &str) {
        self.metrics
            .webhooks_received
            .with_label_values(&[system.as_str(), event, result])
            .inc();
    }
}
