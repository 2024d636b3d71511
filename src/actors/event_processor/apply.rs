//! One transaction's worth of updates: find or create their entities, lock them in id
//! order, ask the StatusMapper and the ConflictResolver, and write every effect
//! (entity, history, conflicts, outbox, events) in the caller's transaction.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use deadpool_postgres::Client;
use uuid::Uuid;

use super::effects::{Effects, EntityState};
use super::item::{
    describe_target, missing, ApplyError, Engine, ItemOutcome, Target, WorkItem, NOT_FOUND,
};
use super::links::{create_entity, ensure_links};
use super::merges;
use crate::actors::conflict_resolver::Resolve;
use crate::actors::status_mapper::MapInbound;
use crate::domain::echo::{self, Actor, PastWrite, Verdict};
use crate::domain::{
    CanonicalStatus, EntitySnapshot, ExternalRef, InboundMapping, Incoming, MappingError,
    UpdateAction,
};
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

    // Which entity each item is about, as far as links already tell.
    let mut refs = Vec::new();
    let mut targets: Vec<&ExternalRef> = Vec::new();
    for item in items {
        if let Target::Ref(r) = &item.target {
            targets.push(r);
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
    let mut entity_of: Vec<Option<Uuid>> = items.iter().map(|i| known_entity(i, &found)).collect();
    // An entity absorbed by an earlier merge answers for its survivor.
    let by_id: Vec<Uuid> = items
        .iter()
        .filter_map(|i| match i.target {
            Target::Entity(id) => Some(id),
            Target::Ref(_) => None,
        })
        .collect();
    let redirects = entities::redirects(tx, &by_id).await?;
    let merges = merges::plan(items, &found);

    // Every row the batch touches, merges' included, locked in one statement in id
    // order, so that two appliers never deadlock.
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
    let (rows, mut context) = if merges.is_empty() {
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
    let merged = merges::execute(
        tx,
        &merges,
        items,
        &mut states,
        &mut found,
        &mut effects,
        now,
    )
    .await?;
    for (item, entity) in items.iter().zip(entity_of.iter_mut()) {
        *entity = match item.target {
            Target::Entity(id) => Some(redirects.get(&id).copied().unwrap_or(id)),
            Target::Ref(_) => known_entity(item, &found),
        }
        .map(|id| merged.get(&id).copied().unwrap_or(id));
    }
    let context = match context.take() {
        Some(context) => context,
        None => {
            let ids: Vec<Uuid> = states.keys().copied().collect();
            entities::context(tx, &ids, since).await?
        }
    };
    set_context(&mut states, context);
    // Read under the entities' locks: a write a previous batch queued for them is
    // committed by now, whatever the dispatcher has done with it since. Unfinished
    // writes first, finished ones second: the dispatcher finishes a row and records its
    // write in one transaction, so a write that finishes between the two reads is seen
    // by the second. (The other order, or the writes read before the lock, misses a
    // write finished in between: the person's change it overwrote would stand in
    // PostgreSQL while the object shows statsync's value.)
    let unfinished = outbox::unfinished(tx, &targets).await?;
    let mut writes = echoes::writes_to(tx, &targets).await?;

    let mut outcomes = Vec::with_capacity(items.len());
    for (idx, item) in items.iter().enumerate() {
        // An earlier item of this batch may have created the entity since.
        if entity_of[idx].is_none() {
            entity_of[idx] = known_entity(item, &found);
        }
        let outcome = apply_one(
            tx,
            engine,
            item,
            &mappings[idx],
            &mut entity_of[idx],
            &mut states,
            &mut found,
            &mut writes,
            &unfinished,
            &mut effects,
            now,
        )
        .await?;
        outcomes.push(outcome);
    }
    effects.stage(&states);
    Ok((outcomes, effects))
}

fn known_entity(item: &WorkItem, found: &HashMap<ExternalRef, Uuid>) -> Option<Uuid> {
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

#[allow(clippy::too_many_arguments)]
async fn apply_one(
    tx: &Client,
    engine: &Engine,
    item: &WorkItem,
    mapping: &Option<Result<InboundMapping, MappingError>>,
    entity: &mut Option<Uuid>,
    states: &mut HashMap<Uuid, EntityState>,
    found: &mut HashMap<ExternalRef, Uuid>,
    writes: &mut HashMap<ExternalRef, Vec<PastWrite>>,
    unfinished: &HashMap<ExternalRef, CanonicalStatus>,
    effects: &mut Effects,
    now: DateTime<Utc>,
) -> Result<ItemOutcome, ApplyError> {
    let update = &item.update;
    if let (Target::Entity(_), Some(id)) = (&item.target, *entity) {
        if !states.contains_key(&id) {
            return Ok(ItemOutcome::ignored_with(
                item,
                NOT_FOUND,
                &format!("no entity {id}"),
            ));
        }
    }
    match &update.action {
        UpdateAction::Removed => {
            let Target::Ref(r) = &item.target else {
                return Ok(ItemOutcome::ignored(item, "removal needs an external ref"));
            };
            entities::unlink(tx, r).await?;
            found.remove(r);
            let Some(id) = *entity else {
                return Ok(ItemOutcome::ignored(item, &format!("{r} was not linked")));
            };
            let state = states.get_mut(&id).ok_or_else(|| missing(id))?;
            state.links.retain(|l| l.external_ref() != *r);
            let reason = format!("{r} was removed in {}; unlinked", r.system);
            effects.record_noop(state, item, &reason);
            return Ok(ItemOutcome::of(item, "noop", state, reason));
        }
        UpdateAction::Transferred { to } => {
            let Target::Ref(r) = &item.target else {
                return Ok(ItemOutcome::ignored(item, "transfer needs an external ref"));
            };
            let Some(id) = *entity else {
                return Ok(ItemOutcome::ignored(item, &format!("{r} was not linked")));
            };
            entities::relink(tx, r, &to.external_id).await?;
            found.remove(r);
            found.insert(to.clone(), id);
            let state = states.get_mut(&id).ok_or_else(|| missing(id))?;
            for l in state.links.iter_mut().filter(|l| l.external_ref() == *r) {
                l.external_id = to.external_id.clone();
            }
            let reason = format!("{r} was transferred to {to}; link moved");
            effects.record_noop(state, item, &reason);
            return Ok(ItemOutcome::of(item, "noop", state, reason));
        }
        UpdateAction::Linked => {
            let Some(id) = *entity else {
                let reason = format!(
                    "neither {} nor what it names is linked to an entity yet",
                    describe_target(item)
                );
                return Ok(ItemOutcome::ignored(item, &reason));
            };
            ensure_links(tx, item, id, states, found).await?;
            let state = states.get_mut(&id).ok_or_else(|| missing(id))?;
            let (ours, elsewhere): (Vec<&ExternalRef>, Vec<&ExternalRef>) = update
                .links
                .iter()
                .partition(|r| found.get(*r) == Some(&id));
            let names = |refs: Vec<&ExternalRef>| {
                refs.iter()
                    .map(|r| r.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let reason = match elsewhere.is_empty() {
                true => format!("linked {}", names(ours)),
                false => format!("{} belongs to another entity; not linked", names(elsewhere)),
            };
            effects.record_noop(state, item, &reason);
            return Ok(ItemOutcome::of(item, "noop", state, reason));
        }
        UpdateAction::Status { .. } => {}
    }

    let mapping = match mapping {
        Some(Ok(m)) => m,
        Some(Err(e @ MappingError::NeedsLookup { .. })) => {
            // Not a bad value: the delivery did not carry it. A lookup reads it back
            // after this commit; until then nothing changes. statsync's own edits and
            // objects that would not be created need no reading back.
            let own = matches!(engine.identities.actor_of(update), Actor::Statsync(_));
            effects.record_lookup(
                item,
                !own && (entity.is_some() || engine.settings.sync.auto_create),
            );
            let reason = e.to_string();
            if let Some(state) = entity.and_then(|id| states.get(&id)) {
                effects.record_noop(state, item, &reason);
                return Ok(ItemOutcome::of(item, "noop", state, reason));
            }
            return Ok(ItemOutcome::ignored(item, &reason));
        }
        Some(Err(e)) => {
            let reason = e.to_string();
            if let Some(state) = entity.and_then(|id| states.get(&id)) {
                effects.record_unmapped(state, item, e);
                return Ok(ItemOutcome::of(item, "rejected", state, reason));
            }
            effects.record_unmapped_unlinked(item, e);
            return Ok(ItemOutcome::ignored_with(item, "rejected", &reason));
        }
        None => return Ok(ItemOutcome::ignored(item, "no status in this update")),
    };

    if entity.is_none() {
        if !engine.settings.sync.auto_create {
            let reason = format!(
                "{} is not linked to any entity and sync.auto_create is off",
                describe_target(item)
            );
            return Ok(ItemOutcome::ignored(item, &reason));
        }
        let id = create_entity(tx, item, mapping.default_status(), states, found).await?;
        *entity = Some(id);
    }
    let id = entity.ok_or_else(|| ApplyError::NotFound(describe_target(item)))?;
    ensure_links(tx, item, id, states, found).await?;

    let state = states.get_mut(&id).ok_or_else(|| missing(id))?;
    // Echo suppression: the webhook about statsync's own write must not be decided
    // again (it could open a conflict or fan out further writes). Recognised exactly,
    // by its actor and by the write's answer (`domain::echo`), never by status alone.
    let mut overwritten = None;
    if let (Target::Ref(r), false) = (&item.target, item.forced) {
        let actor = engine.identities.actor_of(update);
        let past = writes.get_mut(r).map(Vec::as_mut_slice).unwrap_or_default();
        let compatible: Vec<CanonicalStatus> = mapping.compatible().iter().copied().collect();
        match echo::judge(&actor, past, update.source_timestamp, &compatible) {
            Verdict::Echo { consumes, why } => {
                if let Some(write) = consumes {
                    echoes::consume(tx, write).await?;
                    past.iter_mut()
                        .filter(|w| w.id == write)
                        .for_each(|w| w.echoed = true);
                }
                let reason = format!("echo of statsync's own write ({why} on {r})");
                effects.record_noop(state, item, &reason);
                return Ok(ItemOutcome::of(item, "noop", state, reason));
            }
            Verdict::Change => {
                // A write that landed after this change, or one waiting or in flight
                // that may land after it, leaves the object showing statsync's value.
                overwritten =
                    echo::shown_after(past, unfinished.get(r).copied(), update.source_timestamp);
            }
        }
    }
    state.adopt_details(update);
    if let Some(previous) = item.direct_write_from {
        state.revert_direct_write(previous);
    }
    let (source_ts, clock_note) = source_time(engine, item, now);
    let target_ref = match &item.target {
        Target::Ref(r) => Some(r),
        Target::Entity(_) => None,
    };
    let incoming = Incoming {
        source: update.source,
        mapping: mapping.clone(),
        source_ts,
        explicit: update.explicit,
        forced: item.forced,
        catch_up: item.catch_up,
        // A pull request driving an issue is git's; an API call has no object.
        correctable: target_ref.is_some()
            && update.source != crate::domain::SystemId::Postgresql
            && !(update.kind == crate::domain::EntityKind::PullRequest
                && state.kind() != crate::domain::EntityKind::PullRequest),
        reach: state
            .links
            .iter()
            .filter(|l| !l.drives && l.system != crate::domain::SystemId::Postgresql)
            .filter(|l| target_ref != Some(&l.external_ref()))
            .map(|l| l.system)
            .collect(),
    };
    let window = chrono::TimeDelta::milliseconds(engine.settings.sync.conflict_window_ms as i64);
    state.focus_conflicts(source_ts, window);
    let current = state.snapshot();
    let mut decision = engine
        .resolver
        .send(Resolve {
            current: current.clone(),
            incoming: incoming.clone(),
        })
        .await?;
    if let Some(note) = clock_note {
        decision.annotate(&note);
    }
    let next = EntitySnapshot::after(current.as_ref(), state.kind(), &incoming, &decision, now);
    engine
        .metrics
        .decisions
        .with_label_values(&[update.source.as_str(), decision.kind()])
        .inc();
    if let crate::domain::Decision::Conflict {
        strategy, outcome, ..
    } = &decision
    {
        let conflicts = &engine.metrics.conflicts;
        conflicts
            .with_label_values(&[strategy.as_str(), outcome.kind()])
            .inc();
    }
    effects.record_decision(state, item, &incoming, &decision, next, now);
    let landed_over = overwritten.filter(|written| *written != state.status());
    if let (Some(written), Some(r), Some(_)) = (landed_over, target_ref, decision.applied_status())
    {
        // statsync's own write reaches the same object after the change was made there,
        // so the object shows (or will show) what statsync wrote: put the change back
        // there too.
        effects.write_back(state, r, written);
    }
    if let Some((conflict, by)) = &item.resolves {
        effects.resolve_conflicts(state, *conflict, by, now);
    }
    if item.direct_write_from.is_some() {
        // The row holds what the other application wrote: make it agree with the
        // decision either way.
        state.dirty = true;
    }
    Ok(ItemOutcome::of(
        item,
        decision.kind(),
        state,
        decision.reason().to_owned(),
    ))
}

/// The update's source time, unless it is further ahead of statsync's clock than
/// `sync.max_future_skew_ms`: then the time it was received, and a note saying so.
fn source_time(
    engine: &Engine,
    item: &WorkItem,
    now: DateTime<Utc>,
) -> (DateTime<Utc>, Option<String>) {
    let claimed = item.update.source_timestamp;
    let received = item.received_at.unwrap_or(now);
    let skew = chrono::TimeDelta::milliseconds(engine.settings.sync.max_future_skew_ms as i64);
    if item.forced || claimed <= received + skew {
        return (claimed, None);
    }
    let note = format!(
        "source time {} is more than {} ms ahead of statsync's clock: taken as the time \
         received, {}",
        claimed.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        skew.num_milliseconds(),
        received.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    );
    (received, Some(note))
}

impl ItemOutcome {
    fn of(item: &WorkItem, decision: &str, state: &EntityState, reason: String) -> Self {
        ItemOutcome {
            decision: decision.to_owned(),
            entity_id: Some(state.id()),
            status: Some(state.status()),
            version: Some(state.version()),
            reason,
            inbound_id: item.inbound_id,
        }
    }

    fn ignored(item: &WorkItem, reason: &str) -> Self {
        Self::ignored_with(item, "noop", reason)
    }

    fn ignored_with(item: &WorkItem, decision: &str, reason: &str) -> Self {
        ItemOutcome {
            decision: decision.to_owned(),
            entity_id: None,
            status: None,
            version: None,
            reason: reason.to_owned(),
            inbound_id: item.inbound_id,
        }
    }
}
