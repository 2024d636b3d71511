//! The typed settings of each part of statsync, one struct per section of
//! `config/default.toml`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::ConfigError;
use crate::domain::{
    CanonicalStatus, EntityKind, MappingTable, Policy, Strategy, SystemId, TransitionTable,
};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSettings {
    pub host: String,
    pub port: u16,
    pub max_body_bytes: usize,
    /// Time to receive a whole request body; a slower sender is answered 408.
    pub body_timeout_ms: u64,
    pub workers: usize,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    pub shutdown_grace_s: u64,
    pub api_enabled: bool,
    pub worker_enabled: bool,
    /// The address GitHub and Linear reach this service at (`https://sync.acme.dev`):
    /// webhooks point at `{public_url}/webhooks/{system}`. Empty: not known, and
    /// `doctor` cannot tell whether a webhook points here.
    #[serde(default)]
    pub public_url: String,
}

impl ServerSettings {
    /// Where `system`'s webhook deliveries must be sent, when the public URL is set.
    pub fn webhook_url(&self, system: &str) -> Option<String> {
        let base = self.public_url.trim_end_matches('/');
        (!base.is_empty()).then(|| format!("{base}/webhooks/{system}"))
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSettings {
    pub embedded_dir: PathBuf,
    pub pool_size: usize,
    pub connect_timeout_s: u64,
    pub acquire_timeout_ms: u64,
}

impl DatabaseSettings {
    /// What the store's pool needs of these settings.
    pub fn pool(&self) -> crate::store::PoolSettings {
        crate::store::PoolSettings {
            size: self.pool_size,
            connect_timeout: std::time::Duration::from_secs(self.connect_timeout_s),
            acquire_timeout: std::time::Duration::from_millis(self.acquire_timeout_ms),
        }
    }
}

/// How urgent a kind of update is; lower sorts first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PriorityClass {
    Critical,
    High,
    Normal,
    Low,
}

impl PriorityClass {
    /// The `inbound_events.priority` column value.
    pub fn as_i16(self) -> i16 {
        self as i16
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct EnginePriorities {
    pub manual: PriorityClass,
    pub rollback: PriorityClass,
    pub api: PriorityClass,
    pub postgresql: PriorityClass,
    pub webhook: PriorityClass,
    pub backfill: PriorityClass,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct EngineSettings {
    pub workers: usize,
    pub batch_size: usize,
    pub queue_capacity: i64,
    /// Webhook deliveries are committed in groups by this many writers in turn.
    pub intake_writers: usize,
    /// The most deliveries one intake commit holds.
    pub intake_group_max: usize,
    pub poll_interval_ms: u64,
    /// An applier woken for new deliveries waits this long before its claim, so one
    /// round applies what arrived meanwhile (fewer, fuller rounds: less CPU at low
    /// rates, this much more latency); 0 claims at once.
    pub gather_ms: u64,
    pub retry_after_s: u64,
    pub priorities: EnginePriorities,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SyncSettings {
    pub auto_create: bool,
    pub conflict_strategy: Strategy,
    /// Two systems' changes whose source times are this close conflict.
    pub conflict_window_ms: u64,
    /// A webhook's source time further ahead of statsync's clock than this is taken as
    /// the time it was received; an API call's is refused (`FUTURE_TIMESTAMP`).
    pub max_future_skew_ms: u64,
    pub escalation_threshold: u32,
    pub max_retries: u32,
    /// Every this many seconds an incremental sync of each configured scope
    /// (`github.repos`, `linear.teams`) heals missed webhooks; 0 = off.
    pub reconcile_interval_s: u64,
    /// Items per page when a backfill lists a system (GitHub allows at most 100).
    pub page_size: u32,
    /// A backfill or reconciliation stops early (resuming later from its cursor) when
    /// the API's remaining rate budget falls below this.
    pub min_rate_remaining: i64,
    #[serde(default)]
    pub strategy_by_kind: BTreeMap<EntityKind, Strategy>,
    pub priorities: BTreeMap<SystemId, u8>,
    /// Under `merge`, the status listed first wins.
    pub merge_precedence: Vec<CanonicalStatus>,
    /// Allowed moves out of a status; a status not listed may move anywhere.
    #[serde(default)]
    pub transitions: BTreeMap<CanonicalStatus, Vec<CanonicalStatus>>,
}

impl SyncSettings {
    /// The conflict-resolution policy these settings describe.
    pub fn policy(&self) -> Policy {
        let mut transitions = TransitionTable::default();
        for (from, to) in &self.transitions {
            transitions = transitions.restrict(*from, to.iter().copied());
        }
        Policy {
            priorities: self.priorities.clone(),
            strategy: self.conflict_strategy,
            strategy_by_kind: self.strategy_by_kind.clone(),
            conflict_window: chrono::TimeDelta::milliseconds(self.conflict_window_ms as i64),
            escalation_threshold: self.escalation_threshold,
            merge_precedence: self.merge_precedence.clone(),
            transitions,
        }
    }
}

/// The outbox dispatcher: how outbound writes are claimed, limited and retried.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DispatchSettings {
    /// Backstop poll when no wake-up arrives (other replicas' commits, lost hints).
    pub poll_interval_ms: u64,
    /// How long a claimed row belongs to its replica; an expired lease is reclaimed.
    pub lease_ms: u64,
    /// Whole-request deadline for one outbound call.
    pub request_timeout_ms: u64,
    /// Outbound calls in flight at once, per system.
    pub concurrency: usize,
    /// Full-jitter backoff: a retry waits a random time up to base * 2^attempt, capped.
    pub retry_base_ms: u64,
    pub retry_max_ms: u64,
    /// How long each write statsync made is remembered: its echo is recognised, and a
    /// change it overwrote is written back, within this window.
    pub echo_window_s: u64,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MappingSettings {
    pub file: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct GithubSettings {
    pub api_url: String,
    pub graphql_url: String,
    pub requests_per_second: u32,
    /// The login GITHUB_TOKEN acts as: a delivery whose `sender` is this login is
    /// statsync's own write coming back, whatever status it carries.
    #[serde(default)]
    pub actor_login: Option<String>,
    /// Repositories (`owner/name`) reconciliation keeps in step.
    #[serde(default)]
    pub repos: Vec<String>,
    /// Projects v2 boards (`owner/number`) whose Status options `doctor` checks and
    /// whose organisation `webhooks register` sends `projects_v2_item` events from.
    #[serde(default)]
    pub projects: Vec<String>,
    /// Repository (`owner/name`) → id of its webhook: its failed deliveries are
    /// redelivered during reconciliation.
    #[serde(default)]
    pub hook_ids: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LinearSettings {
    pub api_url: String,
    pub webhook_tolerance_s: u64,
    pub requests_per_second: u32,
    /// The user id LINEAR_API_KEY acts as (`viewer { id }`): a delivery whose
    /// `actor.id` is this id is statsync's own write coming back.
    #[serde(default)]
    pub actor_id: Option<String>,
    /// Team keys reconciliation keeps in step; also accepted as known teams when
    /// GitHub texts name issues (next to every team seen in Linear deliveries).
    #[serde(default)]
    pub teams: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AgentApiSettings {
    pub url: String,
    pub requests_per_second: u32,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ApiSettings {}

/// Automatic linking of GitHub pull requests and issues to the Linear issues they name.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LinkingSettings {
    pub enabled: bool,
    pub closing_words: Vec<String>,
    pub non_closing_words: Vec<String>,
    pub skip_words: Vec<String>,
    pub branch_pattern: String,
}

impl LinkingSettings {
    pub fn rules(&self) -> crate::domain::linking::LinkingRules {
        crate::domain::linking::LinkingRules {
            closing_words: self.closing_words.clone(),
            non_closing_words: self.non_closing_words.clone(),
            skip_words: self.skip_words.clone(),
            branch_pattern: self.branch_pattern.clone(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WsSettings {
    pub allowed_origins: Vec<String>,
    /// Authenticated WebSocket connections and SSE streams together.
    pub max_connections: usize,
    /// WebSockets not yet authenticated, in all and from one source address: they have
    /// their own budget, so silent sockets cannot take the authenticated clients' slots.
    pub max_unauthenticated: usize,
    pub max_unauthenticated_per_address: usize,
    /// How long a WebSocket may stay unauthenticated.
    pub auth_timeout_ms: u64,
    pub messages_per_second: u32,
    pub max_rooms_per_connection: usize,
    /// Backstop read of the event log for commits made by other replicas.
    pub poll_interval_ms: u64,
    /// Messages queued per subscriber before it counts as too slow and is dropped.
    pub send_buffer: usize,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct EventSettings {
    pub retention_days: u32,
}

/// Raw deliveries (`inbound_events`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct IntakeSettings {
    /// Days an applied or ignored delivery's body is kept; its row (and id) stays.
    pub retention_days: u32,
}

/// GitHub redelivers a delivery for up to this many days.
pub const GITHUB_REDELIVERY_DAYS: u32 = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    Pretty,
    Json,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    pub format: LogFormat,
    pub level: String,
}

/// The SyncMonitor's alerts: each fires while its value is at or above its threshold;
/// a threshold of 0 turns that alert off.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AlertSettings {
    /// How often database-derived gauges are refreshed and alerts evaluated.
    pub evaluation_interval_ms: u64,
    /// How far back the rates and the average sync time look.
    pub window_s: u64,
    /// A rate is judged only over at least this many outbound writes or decisions.
    pub min_samples: u64,
    /// Failed / attempted outbound writes in the window.
    pub sync_failure_rate: f64,
    /// Mean seconds from canonical commit to outbound success in the window.
    pub average_sync_time_s: f64,
    /// Pending and in-flight outbound writes.
    pub outbox_depth: u64,
    /// Age of the oldest pending or in-flight outbound write.
    pub oldest_pending_age_s: f64,
    /// Conflicts / decisions in the window.
    pub conflict_rate: f64,
    /// Dead letters not yet requeued.
    pub dead_letters: u64,
    /// Accepted deliveries that could not be applied, not yet requeued.
    pub deliveries_failed: u64,
}

impl MappingSettings {
    /// The shipped table, or the file named by `mappings.file` (which replaces it).
    pub fn load(&self) -> Result<MappingTable, ConfigError> {
        if self.file.is_empty() {
            return Ok(MappingTable::default());
        }
        let text = std::fs::read_to_string(&self.file).map_err(|source| ConfigError::Read {
            path: PathBuf::from(&self.file),
            source,
        })?;
        MappingTable::from_toml_str(&text).map_err(|e| ConfigError::Invalid {
            key: format!("mappings.file ({})", self.file),
            why: e.to_string(),
        })
    }
}
