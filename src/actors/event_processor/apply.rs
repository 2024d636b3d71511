//! One transaction's worth of updates: find or create their entities, lock them in id
//! order, then apply each item in turn (`batch.rs`: one method per kind of update),
//! writing every effect (entity, history, conflicts, outbox, events) in the caller's
//! transaction.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use deadpool_postgres::Client;
use uuid::Uuid;

use super::batch::Batch;
use super::effects::Effects;
use super::entity_state::EntityState;
use super::item::{ApplyError, DecisionKind, Engine, ItemOutcome, Target, WorkItem};
use super::merges;
use crate::actors::status_mapper::MapInbound;
use crate::domain::{ExternalRef, InboundMapping, MappingError, UpdateAction};
use crate::store::{echoes, entities, outbox};

/// Applies `items` in order inside `tx`; the caller commits.
pub async fn apply_items(
    tx: &Client,
    engine: &Engine,
    items: &[WorkItem],
    now: DateTime<Utc>,
) -> Result<(Vec<ItemOutcome>, Effects), ApplyError> {
    let items = &*super::mentions::resolve(tx, engine, items).await?;
    let mappings = map_all(engine, items).await?;
    let (mut batch, mut entity_of) = open(tx, engine, items, now).await?;
    let mut outcomes = Vec::with_capacity(items.len());
    for ((item, mapping), entity) in items.iter().zip(&mappings).zip(entity_of.iter_mut()) {
        // An earlier item of this batch may have created the entity since.
        if entity.is_none() {
            *entity = known_entity(item, &batch.found);
        }
        outcomes.push(batch.apply(item, mapping, entity).await?);
    }
    Ok((outcomes, batch.finish()))
}

/// Finds and locks every entity the batch is about, carries out the merges its links
/// call for, and reads under those locks what statsync is writing to their objects.
/// Answers the batch and, per item, its entity when one is known.
async fn open<'a>(
    tx: &'a Client,
    engine: &'a Engine,
    items: &[WorkItem],
    now: DateTime<Utc>,
) -> Result<(Batch<'a>, Vec<Option<Uuid>>), ApplyError> {
    let mut found = find_entities(tx, items).await?;
    let (states, effects, entity_of) = lock_entities(tx, engine, items, &mut found, now).await?;
    let targets: Vec<&ExternalRef> = items
        .iter()
        .filter_map(|item| match &item.target {
            Target::Ref(r) => Some(r),
            Target::Entity(_) => None,
        })
        .collect();
    // Read under the entities' locks: a write a previous batch queued for them is
    // committed by now, whatever the dispatcher has done with it since. Unfinished
    // writes first, finished ones second: the dispatcher finishes a row and records its
    // write in one transaction, so a write that finishes between the two reads is seen
    // by the second. (The other order, or the writes read before the lock, misses a
    // write finished in between: the person's change it overwrote would stand in
    // PostgreSQL while the object shows statsync's value.)
    let unfinished = outbox::unfinished(tx, &targets).await?;
    let writes = echoes::writes_to(tx, &targets).await?;
    let batch = Batch {
        tx,
        engine,
        now,
        states,
        found,
        writes,
        unfinished,
        effects,
    };
    Ok((batch, entity_of))
}

/// Which entity each ref the batch names belongs to, as far as links already tell.
async fn find_entities(
    tx: &Client,
    items: &[WorkItem],
) -> Result<HashMap<ExternalRef, Uuid>, ApplyError> {
    let mut refs = Vec::new();
    for item in items {
        if let Target::Ref(r) = &item.target {
            refs.push(r.clone());
            refs.extend(item.update.aliases.iter().cloned());
            refs.extend(item.update.links.iter().cloned());
        }
    }
    let mut found = entities::find(tx, &refs).await?;
    // Objects no entity holds yet may be created by this batch and by another applier's
    // at the same time, each then waiting for the other's uncommitted link (a deadlock
    // that repeats on every retry of the same two batches). Creators of a ref take turns,
    // all such locks taken in one sorted statement before any row lock.
    let unknown: Vec<ExternalRef> = refs
        .iter()
        .filter(|r| !found.contains_key(*r))
        .cloned()
        .collect();
    if !unknown.is_empty() {
        entities::lock_refs(tx, &unknown).await?;
        found.extend(entities::find(tx, &unknown).await?);
    }
    Ok(found)
}

/// Locks every row the batch touches, merges' included, in one statement in id order
/// (so that two appliers never deadlock), carries out the merges, and loads each
/// entity with its context.
async fn lock_entities(
    tx: &Client,
    engine: &Engine,
    items: &[WorkItem],
    found: &mut HashMap<ExternalRef, Uuid>,
    now: DateTime<Utc>,
) -> Result<(HashMap<Uuid, EntityState>, Effects, Vec<Option<Uuid>>), ApplyError> {
    let mut entity_of: Vec<Option<Uuid>> = items.iter().map(|i| known_entity(i, found)).collect();
    // An entity absorbed by an earlier merge answers for its survivor.
    let by_id: Vec<Uuid> = items
        .iter()
        .filter_map(|i| match i.target {
            Target::Entity(id) => Some(id),
            Target::Ref(_) => None,
        })
        .collect();
    let redirects = entities::redirects(tx, &by_id).await?;
    let merges = merges::plan(items, found);
    let mut ids: Vec<Uuid> = entity_of
        .iter()
        .flatten()
        .map(|id| redirects.get(id).copied().unwrap_or(*id))
        .collect();
    ids.extend(merges.iter().flat_map(|m| [m.absorbed, m.survivor]));
    // Conflicts count towards escalation by source time, as windows do: read those
    // near the batch's earliest source time.
    let window = chrono::TimeDelta::milliseconds(engine.settings.sync.conflict_window_ms as i64);
    let since = items
        .iter()
        .map(|i| i.update.source_timestamp.min(i.received_at.unwrap_or(now)))
        .min()
        .unwrap_or(now)
        - window;
    // A merge moves links, so the context is read after it; otherwise with the lock.
    let (rows, context) = if merges.is_empty() {
        let (rows, context) = entities::lock_with_context(tx, &ids, since).await?;
        (rows, Some(context))
    } else {
        (entities::lock(tx, &ids).await?, None)
    };
    let mut states: HashMap<Uuid, EntityState> = rows
        .into_iter()
        .map(|(id, row)| (id, EntityState::loaded(row)))
        .collect();
    let mut effects = Effects::default();
    let merged = merges::execute(tx, &merges, items, &mut states, found, &mut effects, now).await?;
    for (item, entity) in items.iter().zip(entity_of.iter_mut()) {
        *entity = match item.target {
            Target::Entity(id) => Some(redirects.get(&id).copied().unwrap_or(id)),
            Target::Ref(_) => known_entity(item, found),
        }
        .map(|id| merged.get(&id).copied().unwrap_or(id));
    }
    let context = match context {
        Some(context) => context,
        None => {
            let ids: Vec<Uuid> = states.keys().copied().collect();
            entities::context(tx, &ids, since).await?
        }
    };
    set_context(&mut states, context);
    Ok((states, effects, entity_of))
}

pub(super) fn known_entity(item: &WorkItem, found: &HashMap<ExternalRef, Uuid>) -> Option<Uuid> {
    match &item.target {
        Target::Entity(id) => Some(*id),
        Target::Ref(r) => std::iter::once(r)
            .chain(&item.update.aliases)
            .chain(&item.update.links)
            .find_map(|r| found.get(r).copied()),
    }
}

async fn map_all(
    engine: &Engine,
    items: &[WorkItem],
) -> Result<Vec<Option<Result<InboundMapping, MappingError>>>, ApplyError> {
    let natives: Vec<_> = items
        .iter()
        .filter_map(|i| match &i.update.action {
            UpdateAction::Status { native } => Some((native.clone(), i.update.project.clone())),
            _ => None,
        })
        .collect();
    let mut mapped = engine.mapper.send(MapInbound(natives)).await?.into_iter();
    Ok(items
        .iter()
        .map(|i| match i.update.action {
            UpdateAction::Status { .. } => mapped.next(),
            _ => None,
        })
        .collect())
}

fn set_context(states: &mut HashMap<Uuid, EntityState>, mut context: entities::Context) {
    for (id, state) in states.iter_mut() {
        state.set_context(
            context.sources.remove(id).unwrap_or_default(),
            context.links.remove(id).unwrap_or_default(),
            context.recent_conflicts.remove(id).unwrap_or_default(),
        );
    }
}

impl ItemOutcome {
    pub(super) fn of(
        item: &WorkItem,
        decision: DecisionKind,
        state: &EntityState,
        reason: String,
    ) -> Self {
        ItemOutcome {
            decision,
            entity_id: Some(state.id()),
            status: Some(state.status()),
            version: Some(state.version()),
            reason,
            inbound_id: item.inbound_id,
        }
    }

    pub(super) fn ignored(item: &WorkItem, reason: &str) -> Self {
        Self::ignored_with(item, DecisionKind::Noop, reason)
    }

    pub(super) fn ignored_with(item: &WorkItem, decision: DecisionKind, reason: &str) -> Self {
        ItemOutcome {
            decision,
            entity_id: None,
            status: None,
            version: None,
            reason: reason.to_owned(),
            inbound_id: item.inbound_id,
        }
    }
}
