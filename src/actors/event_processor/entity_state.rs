//! An entity as the engine's transaction sees it: its row, the source times and
//! confirmations its decisions read, and what changed, evolving with each decision.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::domain::{CanonicalStatus, EntityKind, EntitySnapshot, StatusUpdate, SystemId};
use crate::store::entities::{EntityRow, Link};

/// An entity as the transaction sees it, evolving with each decision.
pub struct EntityState {
    pub(super) row: EntityRow,
    pub(super) per_system: BTreeMap<SystemId, DateTime<Utc>>,
    pub(super) confirmed_by: BTreeSet<SystemId>,
    pub(super) recent_conflicts: u32,
    /// Source times of this entity's conflicts near the batch's (for escalation).
    pub(super) conflict_times: Vec<DateTime<Utc>>,
    pub links: Vec<Link>,
    pub dirty: bool,
    pub(super) touched_sources: BTreeSet<SystemId>,
}

impl EntityState {
    pub fn loaded(row: EntityRow) -> Self {
        let confirmed_by = row.confirmed_by.iter().copied().collect();
        EntityState {
            row,
            per_system: BTreeMap::new(),
            confirmed_by,
            recent_conflicts: 0,
            conflict_times: Vec::new(),
            links: Vec::new(),
            dirty: false,
            touched_sources: BTreeSet::new(),
        }
    }

    /// A row inserted by this transaction at version 0: no status applied yet.
    pub fn created(id: Uuid, update: &StatusUpdate, initial: CanonicalStatus) -> Self {
        let now = Utc::now();
        Self::loaded(EntityRow {
            id,
            kind: update.kind,
            status: initial,
            version: 0,
            last_system: None,
            last_source_ts: None,
            last_applied_at: None,
            project: update.project.clone(),
            title: update.title.clone(),
            manual: false,
            confirmed_by: Vec::new(),
            metadata: update.metadata.clone(),
            updated_at: now,
            merged_into: None,
            merged_at: None,
        })
    }

    pub fn set_context(
        &mut self,
        sources: Vec<(SystemId, DateTime<Utc>)>,
        links: Vec<Link>,
        conflict_times: Vec<DateTime<Utc>>,
    ) {
        self.per_system = sources.into_iter().collect();
        self.links = links;
        self.conflict_times = conflict_times;
    }

    /// Counts the conflicts whose source times are within `window` of `source_ts`: the
    /// ones an update at that time is escalated by.
    pub fn focus_conflicts(&mut self, source_ts: DateTime<Utc>, window: chrono::TimeDelta) {
        let near = self
            .conflict_times
            .iter()
            .filter(|at| (**at - source_ts).abs() <= window)
            .count();
        self.recent_conflicts = u32::try_from(near).unwrap_or(u32::MAX);
    }

    pub fn id(&self) -> Uuid {
        self.row.id
    }
    pub fn status(&self) -> CanonicalStatus {
        self.row.status
    }
    pub fn version(&self) -> i64 {
        self.row.version
    }
    pub fn kind(&self) -> EntityKind {
        self.row.kind
    }
    pub fn merged_into(&self) -> Option<Uuid> {
        self.row.merged_into
    }

    /// Fills in the room key an update tells and the entity lacks, and takes the title
    /// of an object of the entity's own kind: a pull request driving an issue names
    /// the change, not the issue.
    pub fn adopt_details(&mut self, update: &StatusUpdate) {
        if self.row.project.is_none() && update.project.is_some() {
            self.row.project = update.project.clone();
            self.dirty = true;
        }
        if update.kind == self.row.kind && update.title.is_some() && self.row.title != update.title
        {
            self.row.title = update.title.clone();
            self.dirty = true;
        }
    }

    /// Decide against the status another application's direct write replaced.
    pub fn revert_direct_write(&mut self, previous: CanonicalStatus) {
        self.row.status = previous;
    }

    /// `None` until a first status is applied.
    pub fn snapshot(&self) -> Option<EntitySnapshot> {
        (self.row.version > 0).then(|| EntitySnapshot {
            status: self.row.status,
            version: self.row.version,
            kind: self.row.kind,
            last_system: self.row.last_system,
            last_source_ts: self.row.last_source_ts,
            last_applied_at: self.row.last_applied_at,
            per_system_last_ts: self.per_system.clone(),
            confirmed_by: self.confirmed_by.clone(),
            recent_conflicts: self.recent_conflicts,
            manual: self.row.manual,
        })
    }

    pub(super) fn take(&mut self, next: EntitySnapshot) {
        for (system, ts) in &next.per_system_last_ts {
            if self.per_system.get(system) != Some(ts) {
                self.touched_sources.insert(*system);
            }
        }
        self.row.status = next.status;
        self.row.version = next.version;
        self.row.last_system = next.last_system;
        self.row.last_source_ts = next.last_source_ts;
        self.row.last_applied_at = next.last_applied_at;
        self.row.manual = next.manual;
        self.per_system = next.per_system_last_ts;
        self.confirmed_by = next.confirmed_by;
        self.recent_conflicts = next.recent_conflicts;
        self.dirty = true;
    }

    pub(super) fn rooms(&self, source: SystemId) -> Vec<String> {
        let mut rooms = vec!["all".to_owned(), format!("entity:{}", self.row.id)];
        if let Some(p) = &self.row.project {
            rooms.push(format!("project:{p}"));
        }
        rooms.push(format!("system:{source}"));
        rooms
    }
}
