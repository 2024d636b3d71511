//! What the actors tell each other and share, in one place, so that no actor imports
//! another's module for a message type.

use std::sync::atomic::{AtomicI64, Ordering};

use actix::prelude::*;

/// New work is stored: look for it now rather than at the next poll.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "()")]
pub struct Wake;

/// A transaction committed: events up to `last_seq` are logged, outbox rows written.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct EventsCommitted {
    pub last_seq: Option<i64>,
    pub outbox_rows: usize,
}

impl EventsCommitted {
    /// Tells `to` of a commit that logged events up to the last of `seqs` and wrote
    /// `outbox_rows` rows; a commit that did neither tells no one.
    pub fn tell(to: &[Recipient<EventsCommitted>], seqs: &[i64], outbox_rows: usize) {
        if seqs.is_empty() && outbox_rows == 0 {
            return;
        }
        let msg = EventsCommitted {
            last_seq: seqs.last().copied(),
            outbox_rows,
        };
        for r in to {
            r.do_send(msg.clone());
        }
    }
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
        let _ = self
            .0
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
                Some((v + n).max(0))
            });
    }
}
