//! StatusSynchronizer: the one entry point the HTTP layer calls. It owns the actors'
//! addresses; it never acknowledges a delivery that is not committed.

use std::sync::Arc;

use actix::prelude::*;
use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

pub use super::event_processor::Target;
use super::event_processor::{ApplyError, ApplyNow, EventProcessor, ItemOutcome, WorkItem};
use super::intake_writer::{GroupError, IntakeWriter};
use super::messages::{Backlog, Wake};
use super::sync_monitor::{ListAlerts, Scrape, StopMonitor, SyncMonitor};
use crate::domain::{
    CanonicalStatus, EntityKind, ExternalRef, NativeStatus, StatusUpdate, SystemId, UpdateAction,
};
use crate::metrics::Metrics;
use crate::store::alerts::ActiveAlert;
use crate::store::entities::{self, EntityRow, Link};
use crate::store::events::{self, Event};
use crate::store::history::{self, Conflict, Transition};
use crate::store::inbound::{NewDelivery, Stored};
use crate::store::tx::Tx;
use crate::store::{Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    #[error("the processing queue is full ({backlog} deliveries waiting); retry later")]
    QueueFull { backlog: i64 },
    #[error("the delivery could not be stored: {0}")]
    Store(#[from] GroupError),
}

/// Why an API call did not go through.
#[derive(Debug, thiserror::Error)]
pub enum BackfillError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Unavailable(String),
    #[error(transparent)]
    Unexpected(anyhow::Error),
}

impl From<StoreError> for BackfillError {
    fn from(e: StoreError) -> Self {
        if e.is_transient() {
            BackfillError::Unavailable(e.to_string())
        } else {
            BackfillError::Unexpected(e.into())
        }
    }
}

impl From<ApplyError> for BackfillError {
    fn from(e: ApplyError) -> Self {
        match e {
            ApplyError::NotFound(m) => BackfillError::NotFound(m),
            ApplyError::Store(s) => s.into(),
            ApplyError::Mailbox(m) => {
                BackfillError::Unavailable(format!("the engine is not running: {m}"))
            }
        }
    }
}

impl From<tokio_postgres::Error> for BackfillError {
    fn from(e: tokio_postgres::Error) -> Self {
        StoreError::from(e).into()
    }
}

/// `POST /api/v1/status`.
pub struct SubmitStatus {
    pub target: Target,
    pub status: CanonicalStatus,
    pub source: SystemId,
    pub source_timestamp: DateTime<Utc>,
    pub kind: Option<EntityKind>,
    pub metadata: serde_json::Value,
}

/// `POST /api/v1/links`.
pub struct LinkRequest {
    pub entity_id: Option<Uuid>,
    pub kind: Option<EntityKind>,
    pub status: Option<CanonicalStatus>,
    pub refs: Vec<ExternalRef>,
}

/// An entity as the API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EntityView {
    pub id: Uuid,
    pub kind: EntityKind,
    pub status: CanonicalStatus,
    pub version: i64,
    pub updated_at: DateTime<Utc>,
    pub last_system: Option<SystemId>,
    pub project: Option<String>,
    pub title: Option<String>,
    pub manual: bool,
    pub links: Vec<Link>,
    pub metadata: serde_json::Value,
    /// Absorbed by a late link into this entity (whose links it gave up).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub merged_into: Option<Uuid>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub merged_at: Option<DateTime<Utc>>,
    /// Entities absorbed into this one.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub merged_from: Vec<Uuid>,
}

impl EntityView {
    fn new(row: EntityRow, links: Vec<Link>) -> Self {
        EntityView {
            id: row.id,
            kind: row.kind,
            status: row.status,
            version: row.version,
            updated_at: row.updated_at,
            last_system: row.last_system,
            project: row.project,
            title: row.title,
            manual: row.manual,
            links,
            metadata: row.metadata,
            merged_into: row.merged_into,
            merged_at: row.merged_at,
            merged_from: Vec::new(),
        }
    }
}

#[derive(Clone)]
pub struct StatusSynchronizer {
    store: Store,
    metrics: Arc<Metrics>,
    backlog: Arc<Backlog>,
    capacity: i64,
    processor: Addr<EventProcessor>,
    monitor: Addr<SyncMonitor>,
    writer: IntakeWriter,
}

/// The actors and shared state the StatusSynchronizer fronts.
pub struct Parts {
    pub store: Store,
    pub metrics: Arc<Metrics>,
    pub backlog: Arc<Backlog>,
    pub capacity: i64,
    pub processor: Addr<EventProcessor>,
    pub monitor: Addr<SyncMonitor>,
    /// Webhook deliveries are committed through it (see `actors::intake_writer`).
    pub writer: IntakeWriter,
}

impl StatusSynchronizer {
    pub fn new(p: Parts) -> Self {
        StatusSynchronizer {
            store: p.store,
            metrics: p.metrics,
            backlog: p.backlog,
            capacity: p.capacity,
            processor: p.processor,
            monitor: p.monitor,
            writer: p.writer,
        }
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Stored deliveries were made pending again (a retry): count them and look now.
    pub fn requeued(&self, n: i64) {
        self.backlog.add(n);
        self.processor.do_send(Wake);
    }

    /// `GET /metrics`: every metric, rendered by the SyncMonitor.
    pub async fn scrape(&self) -> Result<String, BackfillError> {
        self.monitor
            .send(Scrape)
            .await
            .map_err(|e| BackfillError::Unavailable(format!("the monitor is not running: {e}")))
    }

    /// Shutdown: the monitor stops reading before the database goes away.
    pub async fn stop_monitor(&self) {
        let _ = self.monitor.send(StopMonitor).await;
    }

    /// `GET /alerts`: what fires now, across replicas.
    pub async fn alerts(&self) -> Result<Vec<ActiveAlert>, BackfillError> {
        Ok(self.monitor.send(ListAlerts).await.map_err(|e| {
            BackfillError::Unavailable(format!("the monitor is not running: {e}"))
        })??)
    }

    /// Commits a verified delivery; `Ok` means it is durably stored.
    pub async fn intake(&self, delivery: &NewDelivery<'_>) -> Result<Stored, IntakeError> {
        let backlog = self.backlog.get();
        if backlog >= self.capacity {
            return Err(IntakeError::QueueFull { backlog });
        }
        Ok(self.writer.store(delivery).await?)
    }

    /// `event` is a label of a closed set (never a header as received): every distinct
    /// value is a series kept for the process's life.
    pub fn monitor_webhook(&self, system: SystemId, event: &'static str, result: &'static str) {
        self.metrics
            .inbound
            .webhooks_received
            .with_label_values(&[system.as_str(), event, result])
            .inc();
    }

    async fn apply(&self, item: WorkItem) -> Result<ItemOutcome, BackfillError> {
        Ok(self
            .processor
            .send(ApplyNow(item))
            .await
            .map_err(|e| BackfillError::Unavailable(format!("the engine is not running: {e}")))??)
    }

    /// Synchronizes one status from any source and answers the decision.
    pub async fn submit(&self, req: SubmitStatus) -> Result<ItemOutcome, BackfillError> {
        let item = api_item(
            req.target,
            req.status,
            req.source,
            req.source_timestamp,
            req.kind,
            req.metadata,
        );
        self.apply(item).await
    }

    pub async fn entity(&self, id: Uuid) -> Result<Option<EntityView>, BackfillError> {
        let client = self.store.client().await?;
        let Some(row) = entities::get(&client, id).await? else {
            return Ok(None);
        };
        let links = entities::links_of(&client, &[id])
            .await?
            .remove(&id)
            .unwrap_or_default();
        let mut view = EntityView::new(row, links);
        view.merged_from = entities::merged_from(&client, id).await?;
        Ok(Some(view))
    }

    pub async fn lookup(&self, r: &ExternalRef) -> Result<Option<EntityView>, BackfillError> {
        let client = self.store.client().await?;
        let found = entities::find(&client, std::slice::from_ref(r)).await?;
        drop(client);
        match found.get(r) {
            Some(id) => self.entity(*id).await,
            None => Ok(None),
        }
    }

    pub async fn history(&self, id: Uuid, limit: i64) -> Result<Vec<Transition>, BackfillError> {
        let client = self.store.client().await?;
        if entities::get(&client, id).await?.is_none() {
            return Err(BackfillError::NotFound(format!("no entity {id}")));
        }
        Ok(history::history(&client, id, limit).await?)
    }

    /// Restores the status the entity had at `version`, as a new change.
    pub async fn rollback(&self, id: Uuid, version: i64) -> Result<ItemOutcome, BackfillError> {
        let client = self.store.client().await?;
        let entity = entities::get(&client, id)
            .await?
            .ok_or_else(|| BackfillError::NotFound(format!("no entity {id}")))?;
        let status = history::status_at_version(&client, id, version)
            .await?
            .ok_or_else(|| {
                BackfillError::Conflict(format!(
                    "entity {id} never had version {version} (it is at version {})",
                    entity.version
                ))
            })?;
        drop(client);
        let status: CanonicalStatus = status
            .parse()
            .map_err(|e: crate::domain::ParseError| BackfillError::Unexpected(e.into()))?;
        let mut item = api_item(
            Target::Entity(id),
            status,
            SystemId::Postgresql,
            Utc::now(),
            None,
            serde_json::json!({ "rollbackTo": version }),
        );
        item.forced = true;
        self.apply(item).await
    }

    /// Links external refs to an entity, creating it when none is named or linked.
    pub async fn link(&self, req: LinkRequest) -> Result<(EntityView, bool), BackfillError> {
        let tx = Tx::begin(self.store.client().await?).await?;
        let found = entities::find(&*tx, &req.refs).await?;
        let mut owners: Vec<Uuid> = found.values().copied().collect();
        owners.sort();
        owners.dedup();
        let (id, created) = link_target(&tx, &req, &owners).await?;
        for r in &req.refs {
            match found.get(r) {
                Some(owner) if *owner == id => continue,
                Some(owner) => {
                    return Err(BackfillError::Conflict(format!(
                        "{r} is already linked to entity {owner}"
                    )))
                }
                None => {}
            }
            let role = if r.system == SystemId::Github && r.external_id.starts_with("PVTI_") {
                "project_item"
            } else {
                "primary"
            };
            let owner = entities::link(&*tx, id, r, None, role).await?;
            if owner != id {
                return Err(BackfillError::Conflict(format!(
                    "{r} is already linked to entity {owner}"
                )));
            }
        }
        tx.commit().await?;
        if created {
            if let Some(status) = req.status {
                // The first status goes through the engine: version 1, history, events.
                self.submit(SubmitStatus {
                    target: Target::Entity(id),
                    status,
                    source: SystemId::Postgresql,
                    source_timestamp: Utc::now(),
                    kind: None,
                    metadata: serde_json::json!({}),
                })
                .await?;
            }
        }
        let view = self
            .entity(id)
            .await?
            .ok_or_else(|| BackfillError::NotFound(format!("no entity {id}")))?;
        Ok((view, created))
    }

    pub async fn conflicts(
        &self,
        state: Option<&str>,
        limit: i64,
    ) -> Result<Vec<Conflict>, BackfillError> {
        let client = self.store.client().await?;
        Ok(history::list_conflicts(&client, state, limit).await?)
    }

    /// A person's decision: applies `status` (forced) and closes the entity's conflicts.
    pub async fn resolve_conflict(
        &self,
        id: Uuid,
        status: CanonicalStatus,
        by: &str,
    ) -> Result<ItemOutcome, BackfillError> {
        let client = self.store.client().await?;
        let conflict = history::get_conflict(&client, id)
            .await?
            .ok_or_else(|| BackfillError::NotFound(format!("no conflict {id}")))?;
        drop(client);
        if conflict.state != "open" {
            return Err(BackfillError::Conflict(format!(
                "conflict {id} is already {}",
                conflict.state
            )));
        }
        let mut item = api_item(
            Target::Entity(conflict.entity_id),
            status,
            SystemId::Postgresql,
            Utc::now(),
            None,
            serde_json::json!({ "resolvedConflict": id, "resolvedBy": by }),
        );
        item.forced = true;
        item.resolves = Some((id, by.to_owned()));
        self.apply(item).await
    }

    pub async fn events(
        &self,
        after: i64,
        rooms: Option<&[String]>,
        limit: i64,
    ) -> Result<Vec<Event>, BackfillError> {
        let client = self.store.client().await?;
        Ok(events::after(&client, after, rooms, limit).await?)
    }
}

/// An update made through the API: canonical, explicit, applied at high priority.
fn api_item(
    target: Target,
    status: CanonicalStatus,
    source: SystemId,
    source_timestamp: DateTime<Utc>,
    kind: Option<EntityKind>,
    metadata: serde_json::Value,
) -> WorkItem {
    let reference = match &target {
        Target::Ref(r) => r.clone(),
        Target::Entity(id) => ExternalRef::new(SystemId::Postgresql, id.to_string()),
    };
    let kind = kind.unwrap_or(match reference.system {
        SystemId::Agentapi => EntityKind::Task,
        _ => EntityKind::Issue,
    });
    WorkItem {
        inbound_id: None,
        received_at: None,
        target,
        update: StatusUpdate {
            source,
            target: reference,
            aliases: Vec::new(),
            links: Vec::new(),
            kind,
            action: UpdateAction::Status {
                native: NativeStatus::Canonical { status },
            },
            source_timestamp,
            project: None,
            explicit: true,
            title: None,
            body: None,
            metadata,
        },
        forced: false,
        resolves: None,
        direct_write_from: None,
        catch_up: false,
    }
}

/// The entity refs are linked to: the one named, the one they share, or a new one
/// (`true`). Refs of different entities are a conflict: merging is never implicit.
async fn link_target(
    tx: &Tx,
    req: &LinkRequest,
    owners: &[Uuid],
) -> Result<(Uuid, bool), BackfillError> {
    Ok(match (req.entity_id, owners) {
        (Some(id), _) => {
            let Some(row) = entities::lock(&**tx, &[id]).await?.remove(&id) else {
                return Err(BackfillError::NotFound(format!("no entity {id}")));
            };
            if let Some(survivor) = row.merged_into {
                return Err(BackfillError::Conflict(format!(
                    "entity {id} was merged into entity {survivor}; link to that one"
                )));
            }
            (id, false)
        }
        (None, [one]) => (*one, false),
        (None, []) => {
            let id = Uuid::new_v4();
            let kind = req.kind.unwrap_or(match req.refs[0].system {
                SystemId::Agentapi => EntityKind::Task,
                _ => EntityKind::Issue,
            });
            entities::insert(
                &**tx,
                &entities::NewEntity {
                    id,
                    kind,
                    status: req.status.unwrap_or(CanonicalStatus::Todo),
                    project: None,
                    title: None,
                    metadata: &serde_json::json!({}),
                },
            )
            .await?;
            (id, true)
        }
        (None, many) => {
            return Err(BackfillError::Conflict(format!(
                "these refs are linked to different entities: {}",
                many.iter()
                    .map(Uuid::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            )))
        }
    })
}
