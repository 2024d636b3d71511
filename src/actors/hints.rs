//! Cross-replica wake-ups over `LISTEN/NOTIFY`, as coalesced hints.
//!
//! A replica's own commits wake its own actors directly (`EventsCommitted`, `Wake`).
//! Other replicas hear of them here: this actor gathers what its replica committed and
//! sends at most one `NOTIFY` per `COALESCE` from outside any applying transaction.
//! PostgreSQL serializes every committing transaction that notifies, so a NOTIFY inside
//! the hot path (one per batch or per event) would serialize the engine's commits.
//!
//! A hint is never the only way work is found: every reader catches up from the last
//! seq or row it saw, and polls as the backstop. A listener that lost its connection
//! wakes everyone once it is back, since hints sent meanwhile were lost.

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use futures_util::StreamExt;
use prometheus::IntCounter;
use tokio_postgres::AsyncMessage;
use uuid::Uuid;

use super::messages::{EventsCommitted, Wake};
use crate::metrics::Metrics;
use crate::store::{hints, Store};

/// At most one NOTIFY per replica in this interval.
const COALESCE: Duration = Duration::from_millis(20);
/// After a NOTIFY failed (no pooled connection, PostgreSQL away), the next try.
const RETRY: Duration = Duration::from_millis(500);

pub use crate::store::hints::Hint;

/// Who is woken by other replicas' hints.
#[derive(Clone)]
pub struct Listeners {
    pub events: Vec<Recipient<EventsCommitted>>,
    pub inbound: Vec<Recipient<Wake>>,
}

impl Listeners {
    fn tell(&self, hint: &Hint) {
        if hint.last_seq.is_some() || hint.outbox {
            let msg = EventsCommitted {
                last_seq: hint.last_seq,
                outbox_rows: hint.outbox as usize,
            };
            for r in &self.events {
                r.do_send(msg.clone());
            }
        }
        if hint.inbound {
            for r in &self.inbound {
                r.do_send(Wake);
            }
        }
    }

    /// After a gap in listening (or before the first LISTEN): anything may have been
    /// missed, up to the log's `last_seq` as it stood once listening. A real seq, never a
    /// stand-in: a WebSocket manager with no subscribers takes it as delivered.
    fn wake_all(&self, last_seq: i64) {
        self.tell(&Hint {
            from: Uuid::nil(),
            last_seq: Some(last_seq),
            outbox: true,
            inbound: true,
        });
    }
}

pub struct Hints {
    store: Store,
    database_url: String,
    replica: Uuid,
    metrics: Arc<Metrics>,
    pending: Hint,
    flush_scheduled: bool,
}

/// Starts listening; until then hints are only sent.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Listen(pub Listeners);

impl Hints {
    pub fn new(store: Store, database_url: String, metrics: Arc<Metrics>) -> Self {
        let replica = Uuid::new_v4();
        Hints {
            store,
            database_url,
            replica,
            metrics,
            pending: Hint {
                from: replica,
                ..Hint::default()
            },
            flush_scheduled: false,
        }
    }

    fn schedule(&mut self, ctx: &mut Context<Self>) {
        self.schedule_in(COALESCE, ctx);
    }

    fn schedule_in(&mut self, delay: Duration, ctx: &mut Context<Self>) {
        if self.flush_scheduled || self.pending.is_empty() {
            return;
        }
        self.flush_scheduled = true;
        ctx.run_later(delay, |act, ctx| {
            let hint = std::mem::replace(
                &mut act.pending,
                Hint {
                    from: act.replica,
                    ..Hint::default()
                },
            );
            let store = act.store.clone();
            ctx.spawn(
                async move {
                    let sent = match store.client().await {
                        Ok(client) => hints::notify(&client, &hint).await,
                        Err(e) => Err(e),
                    };
                    sent.map_err(|e| (e, hint))
                }
                .into_actor(act)
                .map(|sent, act, ctx| {
                    act.flush_scheduled = false;
                    match sent {
                        Ok(()) => {
                            act.metrics.streams.hints.with_label_values(&["sent"]).inc();
                            act.schedule(ctx);
                        }
                        Err((e, hint)) => {
                            // Kept, not dropped: a replica that polls slowly (or not at
                            // all while idle) would wait its whole interval for the work.
                            act.metrics
                                .streams
                                .hints
                                .with_label_values(&["failed"])
                                .inc();
                            tracing::warn!(error = %e, "hint not sent; retrying");
                            act.pending.merge(&hint);
                            act.schedule_in(RETRY, ctx);
                        }
                    }
                }),
            );
        });
    }
}

impl Actor for Hints {
    type Context = Context<Self>;
}

impl Handler<EventsCommitted> for Hints {
    type Result = ();

    fn handle(&mut self, msg: EventsCommitted, ctx: &mut Context<Self>) {
        if let Some(seq) = msg.last_seq {
            self.pending.last_seq = Some(self.pending.last_seq.map_or(seq, |s| s.max(seq)));
        }
        self.pending.outbox |= msg.outbox_rows > 0;
        self.schedule(ctx);
    }
}

impl Handler<Wake> for Hints {
    type Result = ();

    fn handle(&mut self, _: Wake, ctx: &mut Context<Self>) {
        self.pending.inbound = true;
        self.schedule(ctx);
    }
}

/// Stops listening and sending: the database is about to close.
#[derive(Message)]
#[rtype(result = "()")]
pub struct StopHints;

impl Handler<StopHints> for Hints {
    type Result = ();

    fn handle(&mut self, _: StopHints, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}

impl Handler<Listen> for Hints {
    type Result = ();

    fn handle(&mut self, msg: Listen, ctx: &mut Context<Self>) {
        let url = self.database_url.clone();
        let own = self.replica;
        let received = self.metrics.streams.hints.with_label_values(&["received"]);
        ctx.spawn(listen(url, own, msg.0, received).into_actor(self));
    }
}

/// Listens until the actor stops, reconnecting with backoff.
async fn listen(url: String, own: Uuid, listeners: Listeners, received: IntCounter) {
    let mut attempt: u32 = 0;
    loop {
        let listened = listen_once(&url, own, &listeners, &received).await;
        match listened {
            Ok(()) => attempt = 0,
            Err(e) => {
                attempt += 1;
                tracing::warn!(error = %e, attempt, "listening for hints failed; polling meanwhile");
            }
        }
        let delay = Duration::from_millis(100u64 << attempt.min(6));
        actix::clock::sleep(delay).await;
    }
}

async fn listen_once(
    url: &str,
    own: Uuid,
    listeners: &Listeners,
    received: &IntCounter,
) -> Result<(), tokio_postgres::Error> {
    let (client, mut connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
    let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    // The connection must be polled for LISTEN's answer to arrive.
    let pump = actix::spawn(async move {
        while let Some(m) = messages.next().await {
            if tx.send(m).is_err() {
                break;
            }
        }
    });
    let listened = hints::listen(&client).await;
    if let Err(e) = listened {
        pump.abort();
        return Err(e);
    }
    // A hint sent before LISTEN took effect (at start, as after a gap) never comes:
    // whatever was committed meanwhile is read by one poll now. (At start, a replica
    // whose polls are slow would otherwise miss the first change another replica makes
    // until its next poll.)
    match crate::store::events::last_seq_on(&client).await {
        Ok(last_seq) => listeners.wake_all(last_seq),
        Err(e) => {
            pump.abort();
            return Err(e);
        }
    }
    while let Some(message) = rx.recv().await {
        match message {
            Ok(AsyncMessage::Notification(n)) => match serde_json::from_str::<Hint>(n.payload()) {
                Ok(hint) if hint.from != own => {
                    received.inc();
                    listeners.tell(&hint);
                }
                Ok(_) => {}
                Err(e) => tracing::debug!(error = %e, payload = n.payload(), "unreadable hint"),
            },
            Ok(_) => {}
            Err(e) => {
                pump.abort();
                drop(client);
                return Err(e);
            }
        }
    }
    // The connection ended (server restart): whatever was hinted meanwhile is lost.
    drop(client);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hint_travels_as_json_and_back() {
        let hint = Hint {
            from: Uuid::new_v4(),
            last_seq: Some(42),
            outbox: true,
            inbound: false,
        };
        let text = serde_json::to_string(&hint).unwrap();
        assert!(text.contains("\"lastSeq\":42"), "{text}");
        assert_eq!(serde_json::from_str::<Hint>(&text).unwrap(), hint);
    }

    #[test]
    fn an_empty_hint_is_not_sent() {
        assert!(Hint::default().is_empty());
        assert!(!Hint {
            inbound: true,
            ..Hint::default()
        }
        .is_empty());
    }
}
