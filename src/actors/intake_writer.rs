//! Group commit for webhook intake: deliveries arriving together are stored by one
//! multi-row `INSERT` and one commit, and each is answered only after that commit.
//! One commit (one WAL flush) per delivery is what capped intake before; grouping keeps
//! the promise (a 2xx means committed) at a fraction of the cost.
//!
//! A group is whatever arrived during the last commit, so nobody waits on a timer.
//! Several writers may take turns (while one commits its group, the next gathers), but
//! each commit then holds less: one writer is the default (`engine.intake_writers`).

use std::sync::Arc;

use actix::Recipient;
use tokio::sync::{mpsc, oneshot, Mutex};

use super::messages::{Backlog, Wake};
use crate::domain::{Origin, SystemId};
use crate::store::inbound::{self, NewDelivery, Stored};
use crate::store::{Store, StoreError};

/// Times a group's insert is run again after losing a deadlock or serialization race.
const RACE_RETRIES: u32 = 3;

/// A verified delivery waiting for its group's commit.
struct Pending {
    system: SystemId,
    origin: Origin,
    delivery_id: String,
    event_type: String,
    priority: i16,
    body: Vec<u8>,
    parsed: Option<Vec<u8>>,
    reply: oneshot::Sender<Result<Stored, Arc<StoreError>>>,
}

#[derive(Debug, thiserror::Error)]
pub enum GroupError {
    #[error(transparent)]
    Store(Arc<StoreError>),
    #[error("the intake writers have stopped (shutting down)")]
    Stopped,
}

/// The handle webhook handlers store deliveries through.
#[derive(Clone)]
pub struct IntakeWriter {
    queue: mpsc::Sender<Pending>,
}

impl IntakeWriter {
    /// Starts `writers` writer tasks on the current runtime; each commits at most
    /// `max_group` deliveries at once.
    pub fn start(
        store: Store,
        writers: usize,
        max_group: usize,
        backlog: Arc<Backlog>,
        wake: Vec<Recipient<Wake>>,
    ) -> Self {
        let (queue, rx) = mpsc::channel(max_group * writers.max(1) * 2);
        let rx = Arc::new(Mutex::new(rx));
        for _ in 0..writers.max(1) {
            let writer = Writer {
                store: store.clone(),
                rx: rx.clone(),
                max_group,
                backlog: backlog.clone(),
                wake: wake.clone(),
            };
            actix::spawn(writer.run());
        }
        IntakeWriter { queue }
    }

    /// Stores one delivery; `Ok` means it is committed.
    pub async fn store(&self, d: &NewDelivery<'_>) -> Result<Stored, GroupError> {
        let (reply, answer) = oneshot::channel();
        let pending = Pending {
            system: d.system,
            origin: d.origin,
            delivery_id: d.delivery_id.to_owned(),
            event_type: d.event_type.to_owned(),
            priority: d.priority,
            body: d.body.to_vec(),
            parsed: d.parsed.map(<[u8]>::to_vec),
            reply,
        };
        self.queue
            .send(pending)
            .await
            .map_err(|_| GroupError::Stopped)?;
        // A writer that dies with the group unanswered has not committed it.
        answer
            .await
            .map_err(|_| GroupError::Stopped)?
            .map_err(GroupError::Store)
    }
}

struct Writer {
    store: Store,
    rx: Arc<Mutex<mpsc::Receiver<Pending>>>,
    max_group: usize,
    backlog: Arc<Backlog>,
    wake: Vec<Recipient<Wake>>,
}

impl Writer {
    async fn run(self) {
        let mut group = Vec::with_capacity(self.max_group);
        loop {
            {
                let mut rx = self.rx.lock().await;
                let Some(first) = rx.recv().await else {
                    return;
                };
                group.push(first);
                while group.len() < self.max_group {
                    match rx.try_recv() {
                        Ok(p) => group.push(p),
                        Err(_) => break,
                    }
                }
            }
            self.commit(&mut group).await;
        }
    }

    async fn commit(&self, group: &mut Vec<Pending>) {
        let result = self.insert(group).await;
        let mut new = 0;
        match result {
            Ok(stored) => {
                for (p, s) in group.drain(..).zip(stored) {
                    new += matches!(s, Stored::New(_)) as i64;
                    let _ = p.reply.send(Ok(s));
                }
            }
            Err(e) => {
                let e = Arc::new(e);
                for p in group.drain(..) {
                    let _ = p.reply.send(Err(e.clone()));
                }
            }
        }
        if new > 0 {
            self.backlog.add(new);
            for r in &self.wake {
                r.do_send(Wake);
            }
        }
    }

    async fn insert(&self, group: &[Pending]) -> Result<Vec<Stored>, StoreError> {
        let deliveries: Vec<NewDelivery<'_>> = group
            .iter()
            .map(|p| NewDelivery {
                system: p.system,
                origin: p.origin,
                delivery_id: &p.delivery_id,
                event_type: &p.event_type,
                priority: p.priority,
                body: &p.body,
                parsed: p.parsed.as_deref(),
            })
            .collect();
        let client = self.store.client().await?;
        let mut lost = 0;
        loop {
            match inbound::insert_many(&client, &deliveries).await {
                // The insert is its own transaction and idempotent: a race lost to
                // another writer (or another statement) is retried, never answered 503.
                Err(e) if e.lost_a_race() && lost < RACE_RETRIES => lost += 1,
                answer => return answer,
            }
        }
    }
}
