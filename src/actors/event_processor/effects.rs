//! What a transaction's decisions do, gathered in memory and written at the end in a
//! few set-based statements: entity rows, source timestamps, history, conflicts, outbox
//! rows, the deliveries' outcomes, and last the events (whose seq lock is held until
//! commit).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use deadpool_postgres::Client;
use serde_json::json;
use uuid::Uuid;

use super::entity_state::EntityState;
use super::item::{Target, WorkItem};
use crate::domain::{
    CanonicalStatus, ConflictOutcome, Decision, EntitySnapshot, ExternalRef, Incoming,
    MappingError, SystemId,
};
use crate::store::entities::{self, StatusWrite};
use crate::store::events::{self, NewEvent};
use crate::store::history::{self, Conflict, Transition};
use crate::store::inbound::{self, Outcome};
use crate::store::lookups::{self, NewLookup};
use crate::store::outbox::{self, NewOutboxRow};
use crate::store::tx::{Pipelined, Tx};
use crate::store::{pg_source, StoreError};

/// Everything the batch's decisions will write.
#[derive(Default)]
pub struct Effects {
    transitions: Vec<Transition>,
    conflicts: Vec<Conflict>,
    resolutions: Vec<(Uuid, String, CanonicalStatus)>,
    outbox: Vec<NewOutboxRow>,
    lookups: Vec<NewLookup>,
    events: Vec<NewEvent>,
    writes: Vec<StatusWrite>,
    sources: Vec<(Uuid, SystemId, DateTime<Utc>, CanonicalStatus)>,
    /// What became of each stored delivery applied.
    pub marks: Vec<Outcome>,
    /// Direct writes (PostgreSQL as a source) applied.
    pub postgresql_writes: Vec<i64>,
    /// Filled by `commit`: the seqs logged, for the post-commit wake-ups.
    pub seqs: Vec<i64>,
}

impl Effects {
    pub fn record_noop(&mut self, state: &EntityState, item: &WorkItem, reason: &str) {
        self.transition(state, None, item, state.status(), "noop", reason);
    }

    /// A GitHub delivery that named a project item's field but not its value: the
    /// dispatcher reads the value back after the commit (never inside this transaction)
    /// and stores it as a new update. `wanted`: someone may act on the value read.
    pub fn record_lookup(&mut self, item: &WorkItem, wanted: bool) {
        if let (true, Target::Ref(r), Some(inbound)) = (wanted, &item.target, item.inbound_id) {
            if r.system == SystemId::Github {
                self.lookups.push(NewLookup {
                    item_id: r.external_id.clone(),
                    inbound_event_id: inbound,
                });
            }
        }
    }

    /// A native value with no mapping: recorded on the entity and announced, never
    /// guessed.
    pub fn record_unmapped(&mut self, state: &EntityState, item: &WorkItem, e: &MappingError) {
        self.transition(
            state,
            None,
            item,
            state.status(),
            "rejected",
            &e.to_string(),
        );
        self.event(
            "mapping_failed",
            Some(state.id()),
            state.rooms(item.update.source),
            unmapped_data(item, e),
        );
    }

    pub fn record_unmapped_unlinked(&mut self, item: &WorkItem, e: &MappingError) {
        let source = item.update.source;
        self.event(
            "mapping_failed",
            None,
            vec!["all".to_owned(), format!("system:{source}")],
            unmapped_data(item, e),
        );
    }

    pub fn record_decision(
        &mut self,
        state: &mut EntityState,
        item: &WorkItem,
        incoming: &Incoming,
        decision: &Decision,
        next: Option<EntitySnapshot>,
        now: DateTime<Utc>,
    ) {
        let current = state.snapshot();
        let seen = Seen {
            status: current.as_ref().map(|s| s.status),
            system: state.row.last_system,
            proposed: incoming.mapping.default_status(),
            source: incoming.source,
            source_ts: incoming.source_ts,
            now,
        };
        if let Some(next) = next {
            if Some(&next) != current.as_ref() {
                state.take(next);
            }
        }
        if incoming.forced {
            state.conflict_times.clear();
        } else if matches!(decision, Decision::Conflict { .. })
            && current.as_ref().is_some_and(|c| !c.manual)
        {
            state.conflict_times.push(incoming.source_ts);
        }
        let to = decision.applied_status().unwrap_or(seen.proposed);
        self.transition(
            state,
            seen.status,
            item,
            to,
            decision.kind(),
            decision.reason(),
        );
        if let Some(status) = decision.applied_status() {
            self.record_applied(state, item, decision, status, &seen);
        }
        if let Decision::Conflict {
            outcome,
            strategy,
            rivals,
            reason,
        } = decision
        {
            let conflict = conflict_row(state, &seen, outcome, strategy.as_str(), reason);
            let data = json!({
                "conflictId": conflict.id,
                "strategy": strategy.as_str(),
                "current": {"status": seen.status.unwrap_or(seen.proposed), "system": seen.system},
                "incoming": {"status": seen.proposed, "system": seen.source, "externalId": item.source_external_id(), "sourceTimestamp": seen.source_ts},
                "rivals": rivals,
                "outcome": outcome,
                "reason": reason,
                "projectId": state.row.project,
                "timestamp": now,
            });
            self.record_conflict(state, item, &seen, outcome, conflict, data);
        }
    }

    /// A status applied: a write to every linked object but the one it came from (and
    /// those that drive the entity), and the `status_changed` event.
    fn record_applied(
        &mut self,
        state: &EntityState,
        item: &WorkItem,
        decision: &Decision,
        status: CanonicalStatus,
        seen: &Seen,
    ) {
        let operation = Uuid::new_v4();
        let exclude = match &item.target {
            Target::Ref(r) => Some(r.clone()),
            Target::Entity(_) => None,
        };
        for link in &state.links {
            let r = link.external_ref();
            if r.system == SystemId::Postgresql || link.drives || Some(&r) == exclude.as_ref() {
                continue;
            }
            self.outbox.push(NewOutboxRow {
                entity_id: state.id(),
                target: r,
                status,
                previous_status: seen.status,
                entity_version: state.version(),
                operation_id: operation,
            });
        }
        self.event(
            "status_changed",
            Some(state.id()),
            state.rooms(seen.source),
            json!({
                "from": seen.status,
                "to": status,
                "version": state.version(),
                "source": seen.source,
                "sourceExternalId": item.source_external_id(),
                "sourceTimestamp": seen.source_ts,
                "decision": decision.kind(),
                "reason": decision.reason(),
                "operationId": operation,
                "projectId": state.row.project,
                "timestamp": seen.now,
            }),
        );
    }

    /// A conflict: its row, its events (an escalation is an alert too), and for a
    /// losing system a write that corrects it outward, since it still shows its value.
    fn record_conflict(
        &mut self,
        state: &EntityState,
        item: &WorkItem,
        seen: &Seen,
        outcome: &ConflictOutcome,
        conflict: Conflict,
        data: serde_json::Value,
    ) {
        let rooms = state.rooms(seen.source);
        self.event(
            "conflict_detected",
            Some(state.id()),
            rooms.clone(),
            data.clone(),
        );
        if conflict.state == "resolved" {
            self.event("conflict_resolved", Some(state.id()), rooms.clone(), data);
        }
        if conflict.escalated {
            let mut rooms = rooms;
            rooms.push("alerts".to_owned());
            self.event(
                "alert_fired",
                Some(state.id()),
                rooms,
                json!({
                    "alert": "conflict_escalated",
                    "severity": "warning",
                    "message": format!(
                        "entity {} escalated to manual resolution after repeated conflicts",
                        state.id()
                    ),
                    "conflictId": conflict.id,
                    "projectId": state.row.project,
                    "timestamp": seen.now,
                }),
            );
        }
        if let (ConflictOutcome::Lost { keep }, Target::Ref(r)) = (outcome, &item.target) {
            self.outbox.push(NewOutboxRow {
                entity_id: state.id(),
                target: r.clone(),
                status: *keep,
                previous_status: Some(seen.proposed),
                entity_version: state.version(),
                operation_id: Uuid::new_v4(),
            });
        }
        self.conflicts.push(conflict);
    }

    /// The writes staged since the batch had staged `since` of them: each is now the
    /// newest write on its way to its object.
    pub fn staged_writes(
        &self,
        since: usize,
    ) -> impl Iterator<Item = (&ExternalRef, CanonicalStatus)> {
        self.outbox[since.min(self.outbox.len())..]
            .iter()
            .map(|r| (&r.target, r.status))
    }

    /// How many writes the batch has staged so far.
    pub fn staged(&self) -> usize {
        self.outbox.len()
    }

    /// statsync's own write to `target` landed after the change just applied from it,
    /// so the object shows that write's status, not the change: write the change back.
    pub fn write_back(
        &mut self,
        state: &EntityState,
        target: &ExternalRef,
        previous: CanonicalStatus,
    ) {
        self.outbox.push(NewOutboxRow {
            entity_id: state.id(),
            target: target.clone(),
            status: state.status(),
            previous_status: Some(previous),
            entity_version: state.version(),
            operation_id: Uuid::new_v4(),
        });
    }

    /// `absorbed`'s links moved to `survivor` (`moved`) because of `item`: both
    /// histories say so, and subscribers of either entity hear it.
    pub fn record_merge(
        &mut self,
        survivor: &EntityState,
        absorbed: &EntityState,
        moved: &[crate::domain::ExternalRef],
        item: &WorkItem,
        now: DateTime<Utc>,
    ) {
        let refs: Vec<String> = moved.iter().map(|r| r.to_string()).collect();
        let why = match &item.target {
            Target::Ref(r) => format!("{r} linked {}", describe_links(item)),
            Target::Entity(id) => format!("entity {id}"),
        };
        let into = format!(
            "merged into entity {} ({} moved there): {why}",
            survivor.id(),
            refs.join(", ")
        );
        let from = format!(
            "entity {} merged into this one ({} moved here): {why}",
            absorbed.id(),
            refs.join(", ")
        );
        self.transition(absorbed, None, item, absorbed.status(), "noop", &into);
        self.transition(survivor, None, item, survivor.status(), "noop", &from);
        let source = item.update.source;
        let mut rooms = survivor.rooms(source);
        for room in absorbed.rooms(source) {
            if !rooms.contains(&room) {
                rooms.push(room);
            }
        }
        self.event(
            "entities_merged",
            Some(survivor.id()),
            rooms,
            json!({
                "survivorId": survivor.id(),
                "absorbedId": absorbed.id(),
                "refs": refs,
                "status": survivor.status(),
                "absorbedStatus": absorbed.status(),
                "reason": from,
                "projectId": survivor.row.project,
                "timestamp": now,
            }),
        );
    }

    /// Closes the entity's open conflicts after a person's resolution was applied.
    pub fn resolve_conflicts(
        &mut self,
        state: &mut EntityState,
        conflict: Uuid,
        by: &str,
        now: DateTime<Utc>,
    ) {
        self.resolutions
            .push((state.id(), by.to_owned(), state.status()));
        // While the conflict was open, systems kept whatever their people set. A settling
        // that changed the status is already on its way to every link; one that kept it
        // writes it out too, or those systems would disagree forever.
        let written = self
            .outbox
            .iter()
            .any(|r| r.entity_id == state.id() && r.entity_version == state.version());
        if !written {
            let operation = Uuid::new_v4();
            for link in &state.links {
                let target = link.external_ref();
                if target.system == SystemId::Postgresql {
                    continue;
                }
                self.outbox.push(NewOutboxRow {
                    entity_id: state.id(),
                    target,
                    status: state.status(),
                    previous_status: None,
                    entity_version: state.version(),
                    operation_id: operation,
                });
            }
        }
        state.row.manual = false;
        state.dirty = true;
        self.event(
            "conflict_resolved",
            Some(state.id()),
            state.rooms(SystemId::Postgresql),
            json!({
                "conflictId": conflict,
                "resolvedBy": by,
                "status": state.status(),
                "manual": true,
                "projectId": state.row.project,
                "timestamp": now,
            }),
        );
    }

    fn transition(
        &mut self,
        state: &EntityState,
        from: Option<CanonicalStatus>,
        item: &WorkItem,
        to: CanonicalStatus,
        decision: &str,
        reason: &str,
    ) {
        // A value statsync read back itself says so in the history.
        let reason = match item.update.metadata.get("lookup").and_then(|v| v.as_str()) {
            Some(how) => format!("{reason} ({how})"),
            None => reason.to_owned(),
        };
        self.transitions.push(Transition {
            entity_id: state.id(),
            from_status: from.map(|s| s.as_str().to_owned()),
            to_status: to.as_str().to_owned(),
            system: item.update.source.as_str().to_owned(),
            source_timestamp: item.update.source_timestamp,
            decision: decision.to_owned(),
            reason,
            version: state.version(),
            inbound_event_id: item.inbound_id,
            created_at: None,
        });
    }

    fn event(
        &mut self,
        kind: &str,
        entity: Option<Uuid>,
        rooms: Vec<String>,
        data: serde_json::Value,
    ) {
        self.events.push(NewEvent {
            id: Uuid::new_v4(),
            event_type: kind.to_owned(),
            entity_id: entity,
            rooms,
            data,
        });
    }

    /// Takes the entity rows and source timestamps the decisions changed.
    pub fn stage(&mut self, states: &HashMap<Uuid, EntityState>) {
        for state in states.values() {
            if state.dirty {
                self.writes.push(StatusWrite {
                    id: state.id(),
                    status: state.status(),
                    version: state.version(),
                    last_system: state.row.last_system,
                    last_source_ts: state.row.last_source_ts,
                    last_applied_at: state.row.last_applied_at,
                    manual: state.row.manual,
                    confirmed_by: state.confirmed_by.iter().copied().collect(),
                    project: state.row.project.clone(),
                    title: state.row.title.clone(),
                });
            }
            for system in &state.touched_sources {
                if let Some(ts) = state.per_system.get(system) {
                    self.sources
                        .push((state.id(), *system, *ts, state.status()));
                }
            }
        }
    }

    /// Writes everything and commits, in two round trips. The writes, which depend on
    /// none of each other, go out together; then the deliveries' outcomes, the events
    /// and `COMMIT`, so a delivery's `processed_at` is stamped in its commit's round
    /// trip. The event log's seq lock is held from the append until the commit is
    /// flushed, and every event-writing transaction of every replica waits for it, so
    /// nothing is written after the append.
    pub async fn commit(&mut self, tx: Tx) -> Result<(), StoreError> {
        let client: &Client = &tx;
        // Conflicts before resolutions: a resolution closes every open conflict of
        // its entity, including one opened by this batch.
        let conflicts = async {
            for c in &self.conflicts {
                history::insert_conflict(client, c).await?;
            }
            for (entity, by, status) in &self.resolutions {
                history::resolve_open(client, *entity, by, status.as_str()).await?;
            }
            Ok::<_, StoreError>(())
        };
        let (_, _, _, mark) = futures_util::future::try_join4(
            futures_util::future::try_join3(
                entities::write(client, &self.writes),
                entities::upsert_sources(client, &self.sources),
                history::insert_transitions(client, &self.transitions),
            ),
            futures_util::future::try_join3(
                conflicts,
                outbox::insert(client, &self.outbox),
                lookups::insert(client, &self.lookups),
            ),
            pg_source::done(client, &self.postgresql_writes),
            inbound::prepare_mark(client),
        )
        .await?;
        let marks = inbound::Marks::of(&self.marks);
        let params = marks.params();
        let before: &[Pipelined<'_>] = match self.marks.is_empty() {
            true => &[],
            false => &[(&mark, &params)],
        };
        self.seqs = events::append_and_commit(tx, before, &self.events).await?;
        Ok(())
    }

    /// Outbound work written (outbox rows and lookups): the dispatcher is woken for it.
    pub fn outbox_rows(&self) -> usize {
        self.outbox.len() + self.lookups.len()
    }
}

/// The entity as a decision found it, and the update that met it.
struct Seen {
    status: Option<CanonicalStatus>,
    system: Option<SystemId>,
    /// What the update proposed (its mapping's default status).
    proposed: CanonicalStatus,
    source: SystemId,
    source_ts: DateTime<Utc>,
    now: DateTime<Utc>,
}

/// The `conflicts` row of a conflict: resolved with its winner, or open (manual,
/// escalated).
fn conflict_row(
    state: &EntityState,
    seen: &Seen,
    outcome: &ConflictOutcome,
    strategy: &str,
    reason: &str,
) -> Conflict {
    let (state_name, winner) = match outcome {
        ConflictOutcome::Won { to } => ("resolved", Some((seen.source, *to))),
        ConflictOutcome::Lost { keep } => ("resolved", seen.system.map(|s| (s, *keep))),
        ConflictOutcome::Manual { .. } | ConflictOutcome::Escalated { .. } => ("open", None),
    };
    Conflict {
        id: Uuid::new_v4(),
        entity_id: state.id(),
        state: state_name.to_owned(),
        strategy: strategy.to_owned(),
        escalated: matches!(outcome, ConflictOutcome::Escalated { .. }),
        current_status: seen.status.unwrap_or(seen.proposed).as_str().to_owned(),
        current_system: seen.system.map(|s| s.as_str().to_owned()),
        incoming_status: seen.proposed.as_str().to_owned(),
        incoming_system: seen.source.as_str().to_owned(),
        incoming_timestamp: seen.source_ts,
        winner_system: winner.map(|(s, _)| s.as_str().to_owned()),
        winner_status: winner.map(|(_, st)| st.as_str().to_owned()),
        reason: reason.to_owned(),
        created_at: None,
        resolved_at: None,
        resolved_by: None,
        resolution_status: None,
    }
}

fn describe_links(item: &WorkItem) -> String {
    let links: Vec<String> = item.update.links.iter().map(|r| r.to_string()).collect();
    links.join(", ")
}

fn unmapped_data(item: &WorkItem, e: &MappingError) -> serde_json::Value {
    let value = match e {
        MappingError::Unmapped { value, .. } => value.clone(),
        MappingError::NeedsLookup { what, .. } => what.clone(),
    };
    json!({
        "system": item.update.source,
        "value": value,
        "error": e.to_string(),
        "target": match &item.target {
            Target::Ref(r) => json!(r),
            Target::Entity(id) => json!({"entityId": id}),
        },
        "projectId": item.update.project,
        "timestamp": Utc::now(),
    })
}
