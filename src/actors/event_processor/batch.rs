//! One batch's working set (its transaction, the entities it locked and what it read
//! under those locks, the effects its decisions add up to), and one method per kind of
//! update applied to it: a removal, a transfer, a link, a status.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use deadpool_postgres::Client;
use uuid::Uuid;

use super::effects::Effects;
use super::entity_state::EntityState;
use super::item::{
    describe_target, missing, ApplyError, DecisionKind, Engine, ItemOutcome, Target, WorkItem,
};
use super::links::{create_entity, ensure_links};
use crate::actors::conflict_resolver::Resolve;
use crate::domain::echo::{self, Actor, PastWrite, Verdict};
use crate::domain::{
    CanonicalStatus, Decision, EntityKind, EntitySnapshot, ExternalRef, InboundMapping, Incoming,
    MappingError, SystemId, UpdateAction,
};
use crate::store::{echoes, entities};

pub(super) struct Batch<'a> {
    pub tx: &'a Client,
    pub engine: &'a Engine,
    pub now: DateTime<Utc>,
    pub states: HashMap<Uuid, EntityState>,
    /// Which entity holds each ref, as this batch links and creates them.
    pub found: HashMap<ExternalRef, Uuid>,
    /// statsync's writes to the batch's objects, finished (for echoes and overwrites).
    pub writes: HashMap<ExternalRef, Vec<PastWrite>>,
    /// The newest write still waiting or in flight to each of the batch's objects.
    pub unfinished: HashMap<ExternalRef, CanonicalStatus>,
    pub effects: Effects,
}

impl Batch<'_> {
    /// The effects of every item applied, with the entity rows they changed.
    pub fn finish(mut self) -> Effects {
        self.effects.stage(&self.states);
        self.effects
    }

    /// Applies one item; `entity` is its entity when known, and set when it creates one.
    pub async fn apply(
        &mut self,
        item: &WorkItem,
        mapping: &Option<Result<InboundMapping, MappingError>>,
        entity: &mut Option<Uuid>,
    ) -> Result<ItemOutcome, ApplyError> {
        if let (Target::Entity(_), Some(id)) = (&item.target, *entity) {
            if !self.states.contains_key(&id) {
                let reason = format!("no entity {id}");
                return Ok(ItemOutcome::ignored_with(
                    item,
                    DecisionKind::NotFound,
                    &reason,
                ));
            }
        }
        let staged = self.effects.staged();
        let outcome = match &item.update.action {
            UpdateAction::Removed => self.removed(item, *entity).await,
            UpdateAction::Transferred { to } => self.transferred(item, to, *entity).await,
            UpdateAction::Linked => self.linked(item, *entity).await,
            UpdateAction::Status { .. } => self.status(item, mapping, entity).await,
        }?;
        // A write this item staged is the newest on its way to its object, for the
        // batch's later items as for the next batch: a later change from that object
        // is written back over it (else, decided in the same pass, the two would race,
        // and the older rows that `unfinished` named may be superseded by this one).
        for (target, status) in self.effects.staged_writes(staged) {
            self.unfinished.insert(target.clone(), status);
        }
        Ok(outcome)
    }

    /// The object was deleted in its system: unlinked.
    async fn removed(
        &mut self,
        item: &WorkItem,
        entity: Option<Uuid>,
    ) -> Result<ItemOutcome, ApplyError> {
        let Target::Ref(r) = &item.target else {
            return Ok(ItemOutcome::ignored(item, "removal needs an external ref"));
        };
        entities::unlink(self.tx, r).await?;
        self.found.remove(r);
        let Some(id) = entity else {
            return Ok(ItemOutcome::ignored(item, &format!("{r} was not linked")));
        };
        let state = self.states.get_mut(&id).ok_or_else(|| missing(id))?;
        state.links.retain(|l| l.external_ref() != *r);
        let reason = format!("{r} was removed in {}; unlinked", r.system);
        self.effects.record_noop(state, item, &reason);
        Ok(ItemOutcome::of(item, DecisionKind::Noop, state, reason))
    }

    /// The object moved (a GitHub issue transferred to another repository): its link
    /// follows it.
    async fn transferred(
        &mut self,
        item: &WorkItem,
        to: &ExternalRef,
        entity: Option<Uuid>,
    ) -> Result<ItemOutcome, ApplyError> {
        let Target::Ref(r) = &item.target else {
            return Ok(ItemOutcome::ignored(item, "transfer needs an external ref"));
        };
        let Some(id) = entity else {
            return Ok(ItemOutcome::ignored(item, &format!("{r} was not linked")));
        };
        entities::relink(self.tx, r, &to.external_id).await?;
        self.found.remove(r);
        self.found.insert(to.clone(), id);
        let state = self.states.get_mut(&id).ok_or_else(|| missing(id))?;
        for l in state.links.iter_mut().filter(|l| l.external_ref() == *r) {
            l.external_id = to.external_id.clone();
        }
        let reason = format!("{r} was transferred to {to}; link moved");
        self.effects.record_noop(state, item, &reason);
        Ok(ItemOutcome::of(item, DecisionKind::Noop, state, reason))
    }

    /// The update names objects to link to its entity, and no status.
    async fn linked(
        &mut self,
        item: &WorkItem,
        entity: Option<Uuid>,
    ) -> Result<ItemOutcome, ApplyError> {
        let Some(id) = entity else {
            let reason = format!(
                "neither {} nor what it names is linked to an entity yet",
                describe_target(item)
            );
            return Ok(ItemOutcome::ignored(item, &reason));
        };
        ensure_links(self.tx, item, id, &mut self.states, &mut self.found).await?;
        let state = self.states.get_mut(&id).ok_or_else(|| missing(id))?;
        let (ours, elsewhere): (Vec<&ExternalRef>, Vec<&ExternalRef>) = item
            .update
            .links
            .iter()
            .partition(|r| self.found.get(*r) == Some(&id));
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
        self.effects.record_noop(state, item, &reason);
        Ok(ItemOutcome::of(item, DecisionKind::Noop, state, reason))
    }

    /// A status: mapped, its entity found or created, told from statsync's own echoes,
    /// and decided.
    async fn status(
        &mut self,
        item: &WorkItem,
        mapping: &Option<Result<InboundMapping, MappingError>>,
        entity: &mut Option<Uuid>,
    ) -> Result<ItemOutcome, ApplyError> {
        let mapping = match mapping {
            Some(Ok(m)) => m,
            Some(Err(e)) => return Ok(self.unmapped(item, e, *entity)),
            None => return Ok(ItemOutcome::ignored(item, "no status in this update")),
        };
        if entity.is_none() {
            if !self.engine.settings.sync.auto_create {
                let reason = format!(
                    "{} is not linked to any entity and sync.auto_create is off",
                    describe_target(item)
                );
                return Ok(ItemOutcome::ignored(item, &reason));
            }
            let default = mapping.default_status();
            let id =
                create_entity(self.tx, item, default, &mut self.states, &mut self.found).await?;
            *entity = Some(id);
        }
        let id = entity.ok_or_else(|| ApplyError::NotFound(describe_target(item)))?;
        ensure_links(self.tx, item, id, &mut self.states, &mut self.found).await?;
        if let Some(echo) = self.echo(item, mapping, id).await? {
            return Ok(echo);
        }
        self.decide(item, mapping, id).await
    }

    /// A status with no mapping, or one the delivery did not carry.
    fn unmapped(&mut self, item: &WorkItem, e: &MappingError, entity: Option<Uuid>) -> ItemOutcome {
        let reason = e.to_string();
        let state = entity.and_then(|id| self.states.get(&id));
        if let MappingError::NeedsLookup { .. } = e {
            // Not a bad value: the delivery did not carry it. A lookup reads it back
            // after this commit; until then nothing changes. statsync's own edits and
            // objects that would not be created need no reading back.
            let own = matches!(
                self.engine.identities.actor_of(&item.update),
                Actor::Statsync(_)
            );
            let wanted = !own && (entity.is_some() || self.engine.settings.sync.auto_create);
            self.effects.record_lookup(item, wanted);
            return match state {
                Some(state) => {
                    self.effects.record_noop(state, item, &reason);
                    ItemOutcome::of(item, DecisionKind::Noop, state, reason)
                }
                None => ItemOutcome::ignored(item, &reason),
            };
        }
        match state {
            Some(state) => {
                self.effects.record_unmapped(state, item, e);
                ItemOutcome::of(item, DecisionKind::Rejected, state, reason)
            }
            None => {
                self.effects.record_unmapped_unlinked(item, e);
                ItemOutcome::ignored_with(item, DecisionKind::Rejected, &reason)
            }
        }
    }

    /// Echo suppression: the webhook about statsync's own write must not be decided
    /// again (it could open a conflict or fan out further writes). Recognised exactly,
    /// by its actor and by the write's answer (`domain::echo`), never by status alone.
    async fn echo(
        &mut self,
        item: &WorkItem,
        mapping: &InboundMapping,
        id: Uuid,
    ) -> Result<Option<ItemOutcome>, ApplyError> {
        let (Target::Ref(r), false) = (&item.target, item.forced) else {
            return Ok(None);
        };
        let actor = self.engine.identities.actor_of(&item.update);
        let past = self
            .writes
            .get_mut(r)
            .map(Vec::as_mut_slice)
            .unwrap_or_default();
        let compatible: Vec<CanonicalStatus> = mapping.compatible().iter().copied().collect();
        let Verdict::Echo { consumes, why } =
            echo::judge(&actor, past, item.update.source_timestamp, &compatible)
        else {
            return Ok(None);
        };
        if let Some(write) = consumes {
            echoes::consume(self.tx, write).await?;
            past.iter_mut()
                .filter(|w| w.id == write)
                .for_each(|w| w.echoed = true);
        }
        let state = self.states.get_mut(&id).ok_or_else(|| missing(id))?;
        let reason = format!("echo of statsync's own write ({why} on {r})");
        self.effects.record_noop(state, item, &reason);
        Ok(Some(ItemOutcome::of(
            item,
            DecisionKind::Noop,
            state,
            reason,
        )))
    }

    /// A genuine change, decided by the ConflictResolver against the entity.
    async fn decide(
        &mut self,
        item: &WorkItem,
        mapping: &InboundMapping,
        id: Uuid,
    ) -> Result<ItemOutcome, ApplyError> {
        let (engine, now) = (self.engine, self.now);
        let update = &item.update;
        let target_ref = match &item.target {
            Target::Ref(r) => Some(r),
            Target::Entity(_) => None,
        };
        // A write that landed after this change, or one waiting or in flight that may
        // land after it, leaves the object showing statsync's value.
        let overwritten = match (target_ref, item.forced) {
            (Some(r), false) => echo::shown_after(
                self.writes.get(r).map(Vec::as_slice).unwrap_or_default(),
                self.unfinished.get(r).copied(),
                update.source_timestamp,
            ),
            _ => None,
        };
        let state = self.states.get_mut(&id).ok_or_else(|| missing(id))?;
        state.adopt_details(update);
        if let Some(previous) = item.direct_write_from {
            state.revert_direct_write(previous);
        }
        let (source_ts, clock_note) = source_time(engine, item, now);
        let incoming = incoming(item, mapping, state, source_ts);
        let window =
            chrono::TimeDelta::milliseconds(engine.settings.sync.conflict_window_ms as i64);
        state.focus_conflicts(source_ts, window);
        let current = state.snapshot();
        let resolve = Resolve {
            current: current.clone(),
            incoming: incoming.clone(),
        };
        let mut decision = engine.resolver.send(resolve).await?;
        if let Some(note) = clock_note {
            decision.annotate(&note);
        }
        let next = EntitySnapshot::after(current.as_ref(), state.kind(), &incoming, &decision, now);
        count(engine, update.source, &decision);
        self.effects
            .record_decision(state, item, &incoming, &decision, next, now);
        let landed_over = overwritten.filter(|written| *written != state.status());
        if let (Some(written), Some(r), Some(_)) =
            (landed_over, target_ref, decision.applied_status())
        {
            // statsync's own write reaches the same object after the change was made
            // there, so the object shows (or will show) what statsync wrote: put the
            // change back there too.
            self.effects.write_back(state, r, written);
        }
        if let Some((conflict, by)) = &item.resolves {
            self.effects.resolve_conflicts(state, *conflict, by, now);
        }
        if item.direct_write_from.is_some() {
            // The row holds what the other application wrote: make it agree with the
            // decision either way.
            state.dirty = true;
        }
        Ok(ItemOutcome::of(
            item,
            DecisionKind::of(&decision),
            state,
            decision.reason().to_owned(),
        ))
    }
}

/// The change as the ConflictResolver weighs it.
fn incoming(
    item: &WorkItem,
    mapping: &InboundMapping,
    state: &EntityState,
    source_ts: DateTime<Utc>,
) -> Incoming {
    let update = &item.update;
    let target_ref = match &item.target {
        Target::Ref(r) => Some(r),
        Target::Entity(_) => None,
    };
    Incoming {
        source: update.source,
        mapping: mapping.clone(),
        source_ts,
        explicit: update.explicit,
        forced: item.forced,
        catch_up: item.catch_up,
        // A pull request driving an issue is git's; an API call has no object.
        correctable: target_ref.is_some()
            && update.source != SystemId::Postgresql
            && !(update.kind == EntityKind::PullRequest && state.kind() != EntityKind::PullRequest),
        reach: state
            .links
            .iter()
            .filter(|l| !l.drives && l.system != SystemId::Postgresql)
            .filter(|l| target_ref != Some(&l.external_ref()))
            .map(|l| l.system)
            .collect(),
    }
}

/// Decisions by source and kind, and conflicts by strategy and outcome.
fn count(engine: &Engine, source: SystemId, decision: &Decision) {
    engine
        .metrics
        .inbound
        .decisions
        .with_label_values(&[source.as_str(), decision.kind()])
        .inc();
    if let Decision::Conflict {
        strategy, outcome, ..
    } = decision
    {
        engine
            .metrics
            .inbound
            .conflicts
            .with_label_values(&[strategy.as_str(), outcome.kind()])
            .inc();
    }
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
