//! What the engine's workers share and what they pass between them: the engine, one
//! update to apply (`WorkItem`) and what became of it (`ItemOutcome`). Every part of the
//! event processor imports these from here; none imports them back from `apply`.

use std::sync::Arc;

use actix::prelude::*;
use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use crate::actors::conflict_resolver::ConflictResolver;
use crate::actors::messages::{Backlog, EventsCommitted};
use crate::actors::status_mapper::StatusMapper;
use crate::config::Settings;
use crate::domain::decision::Decision;
use crate::domain::{CanonicalStatus, ExternalRef, StatusUpdate};
use crate::metrics::Metrics;
use crate::store::{Store, StoreError};
use crate::systems::identity::Identities;

/// What the engine's workers share.
pub struct Engine {
    pub store: Store,
    pub mapper: Addr<StatusMapper>,
    pub resolver: Addr<ConflictResolver>,
    pub settings: Arc<Settings>,
    /// statsync's own identity in each system, for recognising its echoes.
    pub identities: Arc<Identities>,
    /// Every system's connector: stored deliveries are parsed by their system's.
    pub connectors: Arc<crate::systems::connector::Registry>,
    pub metrics: Arc<Metrics>,
    pub backlog: Arc<Backlog>,
    /// Told after every commit that logged events (WebSocket fan-out, dispatcher).
    pub committed: Vec<Recipient<EventsCommitted>>,
    pub lifecycle: Lifecycle,
    /// The last batch claimed was full: more is waiting than one applier takes at once.
    pub saturated: std::sync::atomic::AtomicBool,
    /// Appliers still waiting for company before their first claim
    /// (`engine.gather_ms`): work stored meanwhile needs no other look, their claim will
    /// see it.
    pub gathering: std::sync::atomic::AtomicUsize,
}

/// Shutdown coordination: no new work once `stopping`, and the application waits for
/// `running` loops to commit what they hold before the database goes away.
#[derive(Default)]
pub struct Lifecycle {
    pub stopping: std::sync::atomic::AtomicBool,
    pub running: std::sync::atomic::AtomicUsize,
}

impl Lifecycle {
    pub fn stopping(&self) -> bool {
        self.stopping.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Stops new work and waits up to `grace` for loops in flight to finish.
    pub async fn stop(&self, grace: std::time::Duration) {
        use std::sync::atomic::Ordering;
        self.stopping.store(true, Ordering::SeqCst);
        let deadline = std::time::Instant::now() + grace;
        while self.running.load(Ordering::SeqCst) > 0 && std::time::Instant::now() < deadline {
            actix::clock::sleep(std::time::Duration::from_millis(10)).await;
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    NotFound(String),
    #[error("the engine is not running: {0}")]
    Mailbox(#[from] MailboxError),
}

impl ApplyError {
    pub fn is_transient(&self) -> bool {
        match self {
            ApplyError::Store(e) => e.is_transient(),
            ApplyError::NotFound(_) => false,
            ApplyError::Mailbox(_) => true,
        }
    }
}

/// Which entity an update is about.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    /// An external object, linked (or created and linked) on sight.
    Ref(ExternalRef),
    /// A known entity (the API by id, PostgreSQL as a source, rollbacks).
    Entity(Uuid),
}

/// One update to apply.
#[derive(Debug, Clone)]
pub struct WorkItem {
    pub inbound_id: Option<i64>,
    /// When the delivery was committed, for the webhook → canonical latency metric.
    pub received_at: Option<DateTime<Utc>>,
    pub target: Target,
    pub update: StatusUpdate,
    /// A manual resolution or rollback: applied past conflicts and guards.
    pub forced: bool,
    /// A conflict this update settles (closed in the same transaction).
    pub resolves: Option<(Uuid, String)>,
    /// Another application already wrote this status into the row directly; the
    /// decision is taken against the status it replaced.
    pub direct_write_from: Option<CanonicalStatus>,
    /// Read back by a backfill or reconciliation (see `Incoming::catch_up`).
    pub catch_up: bool,
}

impl WorkItem {
    /// The external id of the object the update came from, when it came from one
    /// (events name it, so a page can tell a system's issue from its pull request).
    pub fn source_external_id(&self) -> Option<&str> {
        match &self.target {
            Target::Ref(r) => Some(&r.external_id),
            Target::Entity(_) => None,
        }
    }
}

/// What became of one item, by the name the API and the delivery's outcome give it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DecisionKind {
    Applied,
    Noop,
    Stale,
    Rejected,
    Conflict,
    /// Its entity does not exist (the API answers 404).
    NotFound,
}

impl DecisionKind {
    pub fn of(decision: &Decision) -> DecisionKind {
        match decision {
            Decision::Applied { .. } => DecisionKind::Applied,
            Decision::Noop { .. } => DecisionKind::Noop,
            Decision::Stale { .. } => DecisionKind::Stale,
            Decision::Rejected { .. } => DecisionKind::Rejected,
            Decision::Conflict { .. } => DecisionKind::Conflict,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            DecisionKind::Applied => "applied",
            DecisionKind::Noop => "noop",
            DecisionKind::Stale => "stale",
            DecisionKind::Rejected => "rejected",
            DecisionKind::Conflict => "conflict",
            DecisionKind::NotFound => "not_found",
        }
    }
}

impl std::fmt::Display for DecisionKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What became of one item: the API's answer.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ItemOutcome {
    pub decision: DecisionKind,
    pub entity_id: Option<Uuid>,
    pub status: Option<CanonicalStatus>,
    pub version: Option<i64>,
    pub reason: String,
    #[serde(skip)]
    pub inbound_id: Option<i64>,
}

pub fn missing(id: Uuid) -> ApplyError {
    ApplyError::NotFound(format!("entity {id} vanished during the transaction"))
}

pub fn describe_target(item: &WorkItem) -> String {
    match &item.target {
        Target::Ref(r) => r.to_string(),
        Target::Entity(id) => format!("entity {id}"),
    }
}
