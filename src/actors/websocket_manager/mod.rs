//! WebSocketManager: rooms and subscribers (WebSocket sessions and SSE streams). It tails
//! the `events` log after the last seq it delivered, so an event committed by any replica
//! reaches every subscriber here, in seq order, without gaps; local commits wake it at
//! once and polling is the backstop for other replicas' commits. It never blocks on a
//! subscriber: one too slow to drain its bounded buffer is dropped (and may resume).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use tokio::sync::mpsc;

mod protocol;

pub use protocol::{
    Connect, Disconnect, Outgoing, SharedEvent, Shutdown, Subscribe, SubscriberId, Unsubscribe,
};

use super::messages::EventsCommitted;
use crate::config::Settings;
use crate::metrics::Metrics;
use crate::store::events::{self, Event, PAGE};
use crate::store::{Store, StoreError};

/// A subscriber that cannot make room for a page within this time is too slow: it is
/// dropped rather than holding back delivery to everyone else.
const SLOW_AFTER: Duration = Duration::from_secs(2);
/// How often a waiting page checks again for room.
const ROOM_CHECK: Duration = Duration::from_millis(10);
/// Retention runs this often (and once at start).
const PRUNE_INTERVAL: Duration = Duration::from_secs(3600);

struct Subscriber {
    sink: mpsc::Sender<Outgoing>,
    /// Rooms joined: live events of these are sent.
    rooms: HashSet<String>,
    /// Rooms joined or on their way (catching up): what `ws.max_rooms_per_connection`
    /// counts, so that subscribes arriving during a catch-up cannot pass it.
    claimed: HashSet<String>,
}

pub struct WebSocketManager {
    store: Store,
    settings: Arc<Settings>,
    metrics: Arc<Metrics>,
    subscribers: HashMap<SubscriberId, Subscriber>,
    rooms: HashMap<String, HashSet<SubscriberId>>,
    next_id: SubscriberId,
    /// Every event up to here has been handed to the subscribers of its rooms.
    delivered: i64,
    /// A read of the log is in flight or waiting for room: other wake-ups can skip.
    tailing: bool,
    /// Since when some subscriber lacks room for the next page.
    short_since: Option<Instant>,
}

impl WebSocketManager {
    /// Starts after `delivered` (the log's current end): new subscribers see what comes
    /// next, and older events only by asking to resume.
    pub fn new(
        store: Store,
        settings: Arc<Settings>,
        delivered: i64,
        metrics: Arc<Metrics>,
    ) -> Self {
        WebSocketManager {
            store,
            settings,
            metrics,
            subscribers: HashMap::new(),
            rooms: HashMap::new(),
            next_id: 1,
            delivered,
            tailing: false,
            short_since: None,
        }
    }

    /// Reads the log past `delivered` and fans it out, a page at a time.
    fn tail(&mut self, ctx: &mut Context<Self>) {
        if !self.tailing {
            self.tailing = true;
            self.next_page(ctx);
        }
    }

    /// A page is read only when every subscriber has room for a whole one, so a burst
    /// never overflows a client that keeps up; one still short of room after
    /// `SLOW_AFTER` is dropped. `ctx.wait` holds every other message during the read, so
    /// a catch-up never interleaves with live delivery.
    fn next_page(&mut self, ctx: &mut Context<Self>) {
        // Only subscribers in rooms take live events; one still catching up fills its
        // buffer with backlog pages and is judged by `catch_up`, not here.
        let short: Vec<SubscriberId> = self
            .subscribers
            .iter()
            .filter(|(_, s)| !s.rooms.is_empty() && s.sink.capacity() < PAGE as usize)
            .map(|(id, _)| *id)
            .collect();
        if !short.is_empty() {
            let since = *self.short_since.get_or_insert_with(Instant::now);
            if since.elapsed() < SLOW_AFTER {
                ctx.run_later(ROOM_CHECK, |act, ctx| act.next_page(ctx));
                return;
            }
            for id in short {
                self.drop_slow(id, "subscriber too slow; dropped");
            }
        }
        self.short_since = None;
        let store = self.store.clone();
        let after = self.delivered;
        ctx.wait(
            async move {
                let client = store.client().await?;
                events::after(&client, after, None, PAGE).await
            }
            .into_actor(self)
            .map(|read: Result<Vec<Event>, StoreError>, act, ctx| match read {
                Ok(events) => {
                    let full = events.len() as i64 == PAGE;
                    act.fan_out(events);
                    if full {
                        act.next_page(ctx);
                    } else {
                        act.tailing = false;
                    }
                }
                Err(e) => {
                    act.tailing = false;
                    tracing::warn!(error = %e, "reading the event log failed; retrying at the next poll");
                }
            }),
        );
    }

    fn fan_out(&mut self, events: Vec<Event>) {
        for event in events {
            self.delivered = self.delivered.max(event.seq);
            let mut targets: HashSet<SubscriberId> = HashSet::new();
            for room in &event.rooms {
                if let Some(ids) = self.rooms.get(room) {
                    targets.extend(ids);
                }
            }
            if targets.is_empty() {
                continue;
            }
            let age = (chrono::Utc::now() - event.timestamp).num_microseconds();
            self.metrics
                .streams
                .commit_to_websocket
                .observe(age.unwrap_or(0).max(0) as f64 / 1e6);
            let event = SharedEvent::new(event);
            for id in targets {
                self.send(id, Outgoing::Event(event.clone()));
            }
        }
    }

    /// Never waits: a full buffer means the subscriber cannot keep up, so it is dropped
    /// (its session closes with 1008 and the client resumes from its last seq).
    /// A subscriber that cannot keep up goes (it may resume), and is counted.
    fn drop_slow(&mut self, id: SubscriberId, why: &str) {
        tracing::info!(subscriber = id, "{why}");
        self.metrics
            .streams
            .ws_dropped
            .with_label_values(&["slow"])
            .inc();
        self.remove(id);
    }

    fn send(&mut self, id: SubscriberId, msg: Outgoing) {
        let Some(sub) = self.subscribers.get(&id) else {
            return;
        };
        match sub.sink.try_send(msg) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.drop_slow(id, "subscriber too slow; dropped")
            }
            Err(mpsc::error::TrySendError::Closed(_)) => self.remove(id),
        }
    }

    fn remove(&mut self, id: SubscriberId) {
        if let Some(sub) = self.subscribers.remove(&id) {
            for room in sub.rooms {
                self.leave(id, &room);
            }
            // A map keeps its capacity when emptied: after a burst of subscribers or
            // rooms, give the memory back once most of it is unused.
            shrink(&mut self.subscribers);
            shrink(&mut self.rooms);
        }
    }

    fn leave(&mut self, id: SubscriberId, room: &str) {
        if let Some(ids) = self.rooms.get_mut(room) {
            if ids.remove(&id) {
                self.metrics.streams.ws_subscriptions.dec();
            }
            if ids.is_empty() {
                self.rooms.remove(room);
            }
        }
    }

    fn join(&mut self, id: SubscriberId, rooms: &[String]) {
        let Some(sub) = self.subscribers.get_mut(&id) else {
            return;
        };
        for room in rooms {
            sub.rooms.insert(room.clone());
            if self.rooms.entry(room.clone()).or_default().insert(id) {
                self.metrics.streams.ws_subscriptions.inc();
            }
        }
    }

    /// SSE streams have no disconnect message: their sink closes when the client goes.
    fn sweep_closed(&mut self) {
        let closed: Vec<SubscriberId> = self
            .subscribers
            .iter()
            .filter(|(_, s)| s.sink.is_closed())
            .map(|(id, _)| *id)
            .collect();
        for id in closed {
            self.remove(id);
        }
    }

    fn prune(&mut self, ctx: &mut Context<Self>) {
        let store = self.store.clone();
        let days = i32::try_from(self.settings.events.retention_days).unwrap_or(i32::MAX);
        ctx.spawn(
            async move {
                let client = store.client().await?;
                events::prune(&client, days).await
            }
            .into_actor(self)
            .map(|pruned: Result<u64, StoreError>, _, _| match pruned {
                Ok(0) => {}
                Ok(n) => tracing::info!(pruned = n, "events past retention removed"),
                Err(e) => tracing::warn!(error = %e, "pruning the event log failed"),
            }),
        );
    }
}

fn shrink<K: std::hash::Hash + Eq, V>(map: &mut HashMap<K, V>) {
    if map.capacity() > 64 && map.len() < map.capacity() / 4 {
        map.shrink_to_fit();
    }
}

/// Why a resume from `after` cannot be served, if it cannot.
async fn resume_gap(store: &Store, after: i64, upto: i64) -> Result<Option<Outgoing>, StoreError> {
    if after >= upto {
        return Ok(None);
    }
    let client = store.client().await?;
    // Seqs are gap-free, so anything below the oldest held one was pruned.
    let oldest = events::oldest_seq(&client).await?.unwrap_or(upto + 1);
    Ok((after + 1 < oldest).then(|| Outgoing::Error {
        code: "RESUME_GAP",
        message: format!(
            "events after seq {after} are no longer held (retention); the oldest \
             available seq is {oldest}: resume from {} or reload",
            oldest - 1
        ),
    }))
}

/// A resuming subscriber on its way to live delivery.
struct CatchUp {
    id: SubscriberId,
    rooms: Vec<String>,
    /// Sent up to here.
    from: i64,
    /// Since when the subscriber has lacked room for a page, and how much room it had
    /// at the last look: a resuming client that is reading, however slowly on a busy
    /// machine, is not the stuck one the drop is for.
    short_since: Option<(Instant, usize)>,
}

impl Actor for WebSocketManager {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let poll = Duration::from_millis(self.settings.ws.poll_interval_ms);
        ctx.run_interval(poll, |act, ctx| {
            act.sweep_closed();
            act.tail(ctx);
        });
        if self.settings.server.worker_enabled {
            self.prune(ctx);
            ctx.run_interval(PRUNE_INTERVAL, |act, ctx| act.prune(ctx));
        }
    }
}

impl Handler<Connect> for WebSocketManager {
    type Result = SubscriberId;

    fn handle(&mut self, msg: Connect, _: &mut Context<Self>) -> SubscriberId {
        let id = self.next_id;
        self.next_id += 1;
        self.subscribers.insert(
            id,
            Subscriber {
                sink: msg.sink,
                rooms: HashSet::new(),
                claimed: HashSet::new(),
            },
        );
        id
    }
}

impl Handler<Disconnect> for WebSocketManager {
    type Result = ();

    fn handle(&mut self, msg: Disconnect, _: &mut Context<Self>) {
        self.remove(msg.id);
    }
}

impl Handler<Unsubscribe> for WebSocketManager {
    type Result = ();

    fn handle(&mut self, msg: Unsubscribe, _: &mut Context<Self>) {
        if let Some(sub) = self.subscribers.get_mut(&msg.id) {
            for room in &msg.rooms {
                sub.rooms.remove(room);
                sub.claimed.remove(room);
            }
        }
        for room in &msg.rooms {
            self.leave(msg.id, room);
        }
    }
}

impl Handler<Subscribe> for WebSocketManager {
    type Result = ();

    fn handle(&mut self, msg: Subscribe, ctx: &mut Context<Self>) {
        let Some(sub) = self.subscribers.get_mut(&msg.id) else {
            return;
        };
        let max = self.settings.ws.max_rooms_per_connection;
        let new: Vec<&String> = msg
            .rooms
            .iter()
            .filter(|r| !sub.claimed.contains(*r))
            .collect();
        if sub.claimed.len() + new.len() > max {
            let message = format!(
                "a connection may be in at most {max} rooms (ws.max_rooms_per_connection); \
                 it is in {}: unsubscribe some first",
                sub.claimed.len()
            );
            return self.send(
                msg.id,
                Outgoing::Error {
                    code: "TOO_MANY_ROOMS",
                    message,
                },
            );
        }
        let new: Vec<String> = new.into_iter().cloned().collect();
        sub.claimed.extend(new.iter().cloned());
        let upto = self.delivered;
        let after = msg.resume_from.unwrap_or(upto);
        let store = self.store.clone();
        ctx.wait(
            async move { resume_gap(&store, after, upto).await }
                .into_actor(self)
                .map(move |gap, act, ctx| match gap {
                    Ok(Some(refusal)) => {
                        // Only what this subscribe claimed is given back.
                        if let Some(sub) = act.subscribers.get_mut(&msg.id) {
                            for room in &new {
                                if !sub.rooms.contains(room) {
                                    sub.claimed.remove(room);
                                }
                            }
                        }
                        act.send(msg.id, refusal)
                    }
                    Ok(None) => {
                        act.send(
                            msg.id,
                            Outgoing::Subscribed {
                                rooms: msg.rooms.clone(),
                                seq: upto,
                            },
                        );
                        // Without a resume (or one already level) this joins at once.
                        act.catch_up(
                            ctx,
                            CatchUp {
                                id: msg.id,
                                rooms: msg.rooms,
                                from: after,
                                short_since: None,
                            },
                        );
                    }
                    Err(e) => act.unavailable(msg.id, e),
                }),
        );
    }
}

impl WebSocketManager {
    /// Sends the backlog a page at a time (each when the subscriber has room for it),
    /// chasing live delivery; once level with it, the subscriber joins its rooms. Every
    /// read is held with `wait`, so no live event slips between backlog and live.
    fn catch_up(&mut self, ctx: &mut Context<Self>, mut c: CatchUp) {
        let Some(sub) = self.subscribers.get(&c.id) else {
            return;
        };
        let upto = self.delivered;
        if c.from >= upto {
            return self.join(c.id, &c.rooms);
        }
        let room = sub.sink.capacity();
        if room < PAGE as usize {
            let since = match c.short_since {
                Some((since, seen)) if room <= seen => since,
                // first short look, or it has read since the last one
                _ => Instant::now(),
            };
            c.short_since = Some((since, room));
            if since.elapsed() >= SLOW_AFTER {
                return self.drop_slow(c.id, "subscriber too slow to catch up; dropped");
            }
            ctx.run_later(ROOM_CHECK, move |act, ctx| act.catch_up(ctx, c));
            return;
        }
        c.short_since = None;
        let store = self.store.clone();
        let (from, rooms) = (c.from, c.rooms.clone());
        ctx.wait(
            async move {
                let client = store.client().await?;
                events::between(&client, from, upto, &rooms, PAGE).await
            }
            .into_actor(self)
            .map(
                move |page: Result<Vec<Event>, StoreError>, act, ctx| match page {
                    Ok(page) => {
                        c.from = if (page.len() as i64) < PAGE {
                            upto
                        } else {
                            page.last().map_or(upto, |e| e.seq)
                        };
                        for event in page {
                            act.send(c.id, Outgoing::Event(SharedEvent::new(event)));
                        }
                        act.catch_up(ctx, c);
                    }
                    Err(e) => act.unavailable(c.id, e),
                },
            ),
        );
    }

    fn unavailable(&mut self, id: SubscriberId, e: StoreError) {
        tracing::warn!(error = %e, "resuming a subscriber failed");
        self.send(
            id,
            Outgoing::Error {
                code: "SERVICE_UNAVAILABLE",
                message: "the event log could not be read; subscribe again".into(),
            },
        );
    }
}

impl Handler<Shutdown> for WebSocketManager {
    type Result = ();

    fn handle(&mut self, _: Shutdown, ctx: &mut Context<Self>) {
        for (_, sub) in self.subscribers.drain() {
            // A full buffer ends the stream anyway; the client resumes either way.
            let _ = sub.sink.try_send(Outgoing::Shutdown);
        }
        self.rooms.clear();
        self.metrics.streams.ws_subscriptions.set(0);
        // No more reads of a database that is about to close; late upgrades are refused.
        ctx.stop();
    }
}

impl Handler<EventsCommitted> for WebSocketManager {
    type Result = ();

    fn handle(&mut self, msg: EventsCommitted, ctx: &mut Context<Self>) {
        let Some(last) = msg.last_seq.filter(|s| *s > self.delivered) else {
            return;
        };
        // With nobody in any room, every event up to `last` is delivered already (seqs
        // are taken in commit order, so all before it are committed too): reading and
        // parsing the log would hand them to no one.
        if self.rooms.is_empty() && !self.tailing {
            self.delivered = last;
            return;
        }
        // Hints arrive once per commit; one read covers every hint up to its end.
        self.tail(ctx);
    }
}
