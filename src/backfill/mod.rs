//! Backfill and reconciliation: list a scope (a GitHub repository, a Linear team) page
//! by page, store every item as a low-priority delivery with its real updated-at (the
//! engine applies it like a webhook, so it never overrides a newer change, and a
//! deterministic delivery id makes re-runs no-ops), keep a cursor per scope so an
//! incremental or interrupted run resumes, announce progress, and record a summary.
//! Never holds a database connection across an HTTP call.

mod reconcile;
mod run;

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use actix::Recipient;
use chrono::{DateTime, Utc};
use uuid::Uuid;

pub use reconcile::{reconcile_all, start_reconciler};
pub use run::Summary;

use crate::actors::messages::EventsCommitted;
use crate::config::Settings;
use crate::domain::names::{RepoName, TeamKey};
use crate::domain::SystemId;
use crate::store::{events, Store, StoreError};
use crate::systems::connector::Registry;
use crate::systems::outbound::OutboundError;

/// What a run lists: a GitHub repository or a Linear team.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Scope {
    pub system: SystemId,
    /// `owner/name` or a team key.
    pub key: String,
}

impl Scope {
    pub fn github(repo: &str) -> Result<Scope, BackfillError> {
        let repo = RepoName::parse(repo).map_err(|e| BackfillError::BadScope(e.to_string()))?;
        Ok(Scope {
            system: SystemId::Github,
            key: repo.to_string(),
        })
    }

    pub fn linear(team: &str) -> Result<Scope, BackfillError> {
        let team = TeamKey::parse(team).map_err(|e| BackfillError::BadScope(e.to_string()))?;
        Ok(Scope {
            system: SystemId::Linear,
            key: team.to_string(),
        })
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.system, self.key)
    }
}

/// Full: list everything (resuming an interrupted run); incremental: only what changed
/// since the last completed run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Full,
    Incremental,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Full => "full",
            Mode::Incremental => "incremental",
        }
    }
}

impl FromStr for Mode {
    type Err = BackfillError;
    fn from_str(s: &str) -> Result<Mode, BackfillError> {
        match s {
            "full" => Ok(Mode::Full),
            "incremental" => Ok(Mode::Incremental),
            other => Err(BackfillError::BadScope(format!(
                "mode `{other}` is neither full nor incremental"
            ))),
        }
    }
}

/// Who started a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    Cli,
    Api,
    Reconcile,
}

impl Trigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Cli => "cli",
            Trigger::Api => "api",
            Trigger::Reconcile => "reconcile",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BackfillError {
    #[error("{0}")]
    BadScope(String),
    #[error("{0} sync is paused; POST /api/v1/sync/resume to resume it")]
    Paused(SystemId),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{}: {}", .0.code, .0.message)]
    Upstream(#[from] OutboundError),
}

/// Progress of a run, as the CLI prints it.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    pub percent: u8,
    pub pages: i32,
    pub seen: i32,
}

/// What backfills and reconciliations share.
pub struct Backfill {
    pub store: Store,
    pub settings: Arc<Settings>,
    pub http: reqwest::Client,
    /// Every system's connector: a scope is listed through its system's.
    pub connectors: Arc<Registry>,
    /// Told after progress events are logged (WebSocket fan-out).
    pub committed: Vec<Recipient<EventsCommitted>>,
    /// When the next reconciliation is due (status API).
    pub next_reconcile: std::sync::Mutex<Option<DateTime<Utc>>>,
    /// A system whose rate budget fell below `sync.min_rate_remaining`, until the
    /// budget refills: runs started meanwhile stop before their first request.
    low_budget: std::sync::Mutex<std::collections::HashMap<SystemId, DateTime<Utc>>>,
}

impl Backfill {
    pub fn new(
        store: Store,
        settings: Arc<Settings>,
        connectors: Arc<Registry>,
        committed: Vec<Recipient<EventsCommitted>>,
    ) -> anyhow::Result<Backfill> {
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_millis(
                settings.dispatch.request_timeout_ms,
            ))
            .build()?;
        Ok(Backfill {
            store,
            settings,
            http,
            connectors,
            committed,
            next_reconcile: std::sync::Mutex::new(None),
            low_budget: std::sync::Mutex::default(),
        })
    }

    /// Starts a run in the background; answers its operation id at once.
    pub async fn start(
        self: &Arc<Self>,
        scope: Scope,
        mode: Mode,
        trigger: Trigger,
    ) -> Result<Uuid, BackfillError> {
        self.check_not_paused(scope.system).await?;
        let id = Uuid::new_v4();
        let service = self.clone();
        actix_web::rt::spawn(async move {
            if let Err(e) = service.run(id, &scope, mode, trigger, &|_| {}).await {
                tracing::warn!(operation_id = %id, scope = %scope, error = %e, "sync run failed");
            }
        });
        Ok(id)
    }

    pub async fn check_not_paused(&self, system: SystemId) -> Result<(), BackfillError> {
        let client = self.store.client().await?;
        let paused = crate::store::sync_runs::paused(&client).await?;
        if paused.iter().any(|s| s == system.as_str()) {
            return Err(BackfillError::Paused(system));
        }
        Ok(())
    }

    /// Remembers that `system`'s budget is low until `reset_at`.
    fn budget_low_until(&self, system: SystemId, reset_at: DateTime<Utc>) {
        if let Ok(mut low) = self.low_budget.lock() {
            low.insert(system, reset_at);
        }
    }

    /// When `system`'s budget refills, if it was low and has not refilled yet.
    fn budget_refills_at(&self, system: SystemId, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let low = self.low_budget.lock().ok()?;
        low.get(&system).copied().filter(|at| *at > now)
    }

    /// Logs a `<system>_sync_<what>` event in its own transaction and wakes listeners.
    async fn announce(
        &self,
        scope: &Scope,
        operation: Uuid,
        what: &str,
        mut data: serde_json::Value,
    ) -> Result<(), StoreError> {
        data["operationId"] = serde_json::json!(operation);
        data["projectId"] = serde_json::json!(scope.key);
        data["timestamp"] = serde_json::json!(Utc::now());
        let event = events::NewEvent {
            id: Uuid::new_v4(),
            event_type: format!("{}_sync_{what}", scope.system),
            entity_id: None,
            rooms: vec![
                "all".into(),
                format!("project:{}", scope.key),
                format!("system:{}", scope.system),
            ],
            data,
        };
        let mut client = self.store.client().await?;
        let tx = client.transaction().await?;
        let seqs = events::append(&tx, &[event]).await?;
        tx.commit().await?;
        let msg = EventsCommitted {
            last_seq: seqs.last().copied(),
            outbox_rows: 0,
        };
        for r in &self.committed {
            r.do_send(msg.clone());
        }
        Ok(())
    }
}
