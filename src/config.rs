//! Layered settings, read once at start into typed values: the built-in
//! `config/default.toml`, then `--config FILE`, then `STATSYNC__SECTION__KEY`
//! environment variables. Secrets come only from the environment (or `NAME_FILE`)
//! and never reach `Debug`, logs or `check-config` output.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use crate::domain::names::{RepoName, TeamKey};
use crate::domain::{
    CanonicalStatus, EntityKind, MappingTable, Policy, Strategy, SystemId, TransitionTable,
};

const DEFAULT_TOML: &str = include_str!("../config/default.toml");

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read configuration file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid configuration: {0}")]
    Parse(String),
    #[error("invalid configuration: `{key}` {why}")]
    Invalid { key: String, why: String },
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub http: HttpSettings,
    pub server: ServerSettings,
    pub database: DatabaseSettings,
    pub engine: EngineSettings,
    pub sync: SyncSettings,
    pub dispatch: DispatchSettings,
    pub mappings: MappingSettings,
    pub github: GithubSettings,
    pub linear: LinearSettings,
    pub agentapi: AgentApiSettings,
    pub linking: LinkingSettings,
    #[serde(default)]
    pub api: ApiSettings,
    pub ws: WsSettings,
    pub events: EventSettings,
    pub intake: IntakeSettings,
    pub log: LogSettings,
    pub alerts: AlertSettings,
    /// Read from the environment only; never deserialized from a file.
    #[serde(skip)]
    pub secrets: Secrets,
    /// What the settings leave working but probably not as meant (an unknown
    /// `STATSYNC_` variable, no webhook secret): logged at start, printed by
    /// check-config.
    #[serde(skip)]
    pub warnings: Vec<String>,
}

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

/// Credentials, from the environment only. `Debug` shows nothing of their values.
#[derive(Clone, Default)]
pub struct Secrets {
    pub database_url: Option<SecretString>,
    pub github_webhook_secret: Option<SecretString>,
    pub linear_webhook_secret: Option<SecretString>,
    pub agentapi_webhook_secret: Option<SecretString>,
    pub github_token: Option<SecretString>,
    /// A GitHub App's id and private key (PEM): writes then use installation tokens.
    pub github_app_id: Option<String>,
    pub github_app_private_key: Option<SecretString>,
    pub linear_api_key: Option<SecretString>,
    pub api_tokens: Vec<SecretString>,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secrets([redacted])")
    }
}

/// Where secrets are read from; a seam so tests can give them without touching the
/// process environment.
pub trait Env {
    fn var(&self, name: &str) -> Option<String>;
}

/// The real process environment.
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

impl Secrets {
    pub const NAMES: [&'static str; 9] = [
        "DATABASE_URL",
        "GITHUB_WEBHOOK_SECRET",
        "LINEAR_WEBHOOK_SECRET",
        "AGENTAPI_WEBHOOK_SECRET",
        "GITHUB_TOKEN",
        "GITHUB_APP_ID",
        "GITHUB_APP_PRIVATE_KEY",
        "LINEAR_API_KEY",
        "STATSYNC_API_TOKENS",
    ];

    /// `NAME`, else the contents of the file named by `NAME_FILE` (Kubernetes secrets
    /// mounted as files). Empty values count as unset.
    pub fn from_env(env: &dyn Env) -> Result<Secrets, ConfigError> {
        let read = |name: &str| -> Result<Option<SecretString>, ConfigError> {
            let value = match env.var(name) {
                Some(v) => Some(v),
                None => match env.var(&format!("{name}_FILE")) {
                    Some(path) => Some(std::fs::read_to_string(&path).map_err(|source| {
                        ConfigError::Read {
                            path: PathBuf::from(path),
                            source,
                        }
                    })?),
                    None => None,
                },
            };
            Ok(value
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
                .map(SecretString::from))
        };
        let api_tokens = read("STATSYNC_API_TOKENS")?
            .map(|all| {
                all.expose_secret()
                    .split(',')
                    .map(str::trim)
                    .filter(|t| !t.is_empty())
                    .map(|t| SecretString::from(t.to_owned()))
                    .collect()
            })
            .unwrap_or_default();
        let github_app_id = read("GITHUB_APP_ID")?.map(|id| id.expose_secret().to_owned());
        let github_app_private_key = read("GITHUB_APP_PRIVATE_KEY")?;
        let invalid = |key: &str, why: &str| ConfigError::Invalid {
            key: key.to_owned(),
            why: why.to_owned(),
        };
        match (&github_app_id, &github_app_private_key) {
            (Some(id), _) if id.parse::<u64>().is_err() => {
                return Err(invalid("GITHUB_APP_ID", "must be the App's numeric id"))
            }
            (Some(_), None) => {
                return Err(invalid(
                    "GITHUB_APP_PRIVATE_KEY",
                    "is needed with GITHUB_APP_ID (the App's private key, PEM, or \
                     GITHUB_APP_PRIVATE_KEY_FILE naming it)",
                ))
            }
            (None, Some(_)) => {
                return Err(invalid(
                    "GITHUB_APP_ID",
                    "is needed with GITHUB_APP_PRIVATE_KEY",
                ))
            }
            _ => {}
        }
        Ok(Secrets {
            database_url: read("DATABASE_URL")?,
            github_webhook_secret: read("GITHUB_WEBHOOK_SECRET")?,
            linear_webhook_secret: read("LINEAR_WEBHOOK_SECRET")?,
            agentapi_webhook_secret: read("AGENTAPI_WEBHOOK_SECRET")?,
            github_token: read("GITHUB_TOKEN")?,
            github_app_id,
            github_app_private_key,
            linear_api_key: read("LINEAR_API_KEY")?,
            api_tokens,
        })
    }

    fn describe(&self) -> BTreeMap<&'static str, &'static str> {
        let state = |s: &Option<SecretString>| {
            if s.is_some() {
                "[redacted]"
            } else {
                "(not set)"
            }
        };
        BTreeMap::from([
            (
                "DATABASE_URL",
                if self.database_url.is_some() {
                    "[redacted]"
                } else {
                    "(not set: embedded PostgreSQL)"
                },
            ),
            ("GITHUB_WEBHOOK_SECRET", state(&self.github_webhook_secret)),
            ("LINEAR_WEBHOOK_SECRET", state(&self.linear_webhook_secret)),
            (
                "AGENTAPI_WEBHOOK_SECRET",
                state(&self.agentapi_webhook_secret),
            ),
            ("GITHUB_TOKEN", state(&self.github_token)),
            (
                "GITHUB_APP_ID",
                if self.github_app_id.is_some() {
                    "(set)"
                } else {
                    "(not set)"
                },
            ),
            (
                "GITHUB_APP_PRIVATE_KEY",
                state(&self.github_app_private_key),
            ),
            ("LINEAR_API_KEY", state(&self.linear_api_key)),
            (
                "STATSYNC_API_TOKENS",
                if self.api_tokens.is_empty() {
                    "(not set)"
                } else {
                    "[redacted]"
                },
            ),
        ])
    }
}

/// `github.hook_ids` from the environment: its keys (`owner/name`) cannot be spelled in
/// a `STATSYNC__…` variable name, so they travel in the value. Entries add to (and
/// override) the file's.
pub const HOOK_IDS_VAR: &str = "STATSYNC_GITHUB_HOOK_IDS";

const LOG_LEVELS: [&str; 6] = ["trace", "debug", "info", "warn", "error", "off"];

/// A level, or directives whose every part names a level (`target=level` or a bare
/// level). A bare word like `loud` parses as a filter for a target named `loud` and
/// silences everything else, so it is refused.
fn valid_log_level(level: &str) -> bool {
    let is_level = |s: &str| LOG_LEVELS.contains(&s.trim().to_ascii_lowercase().as_str());
    !level.trim().is_empty()
        && level.split(',').all(|part| match part.rsplit_once('=') {
            Some((target, l)) => !target.trim().is_empty() && is_level(l),
            None => is_level(part),
        })
}

/// The config crate names an enum's type, not its values: say which values are valid.
fn explain(message: String) -> String {
    let parsed = message
        .strip_prefix("enum ")
        .and_then(|rest| rest.split_once(" does not have variant constructor "))
        .and_then(|(name, rest)| {
            let (value, key) = rest.split_once(" for key ")?;
            Some((name, value, key))
        });
    let Some((name, value, key)) = parsed else {
        return message;
    };
    let names = |all: Vec<&str>| all.join(", ");
    let valid = match name {
        "Strategy" => names(Strategy::ALL.iter().map(|s| s.as_str()).collect()),
        "LogFormat" => names(vec!["pretty", "json"]),
        "SystemId" => names(SystemId::ALL.iter().map(|s| s.as_str()).collect()),
        "CanonicalStatus" => names(CanonicalStatus::ALL.iter().map(|s| s.as_str()).collect()),
        "EntityKind" => names(vec!["issue", "pull_request", "task"]),
        _ => return message,
    };
    format!("{key}: `{value}` is not one of: {valid}")
}

/// `owner/name=123,owner2/name2=456`; spaces around entries are ignored, an empty value
/// names nothing.
pub fn parse_hook_ids(value: &str) -> Result<BTreeMap<String, u64>, ConfigError> {
    let bad = |entry: &str, why: &str| ConfigError::Invalid {
        key: HOOK_IDS_VAR.to_owned(),
        why: format!("entry `{entry}` {why}; expected owner/name=HOOK_ID[,owner/name=HOOK_ID…]"),
    };
    let mut out = BTreeMap::new();
    for entry in value.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let Some((repo, id)) = entry.split_once('=') else {
            return Err(bad(entry, "has no `=`"));
        };
        let repo = repo.trim();
        if RepoName::parse(repo).is_err() {
            return Err(bad(
                entry,
                &format!("names `{repo}`, which is not owner/name"),
            ));
        }
        let id: u64 = id
            .trim()
            .parse()
            .map_err(|_| bad(entry, "has a hook id that is not a positive integer"))?;
        if out.insert(repo.to_owned(), id).is_some() {
            return Err(bad(entry, &format!("repeats `{repo}`")));
        }
    }
    Ok(out)
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

impl Settings {
    /// Reads the layers from the process environment.
    pub fn load(file: Option<&Path>) -> Result<Settings, ConfigError> {
        let vars: Vec<(String, String)> = std::env::vars().collect();
        Self::load_from(file, &vars, &ProcessEnv)
    }

    /// The layers with an explicit environment (`vars` for `STATSYNC__…`, `env` for
    /// secrets), for tests.
    pub fn load_from(
        file: Option<&Path>,
        vars: &[(String, String)],
        env: &dyn Env,
    ) -> Result<Settings, ConfigError> {
        let mut builder = config::Config::builder().add_source(config::File::from_str(
            DEFAULT_TOML,
            config::FileFormat::Toml,
        ));
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.to_owned(),
                source,
            })?;
            builder = builder.add_source(config::File::from_str(&text, config::FileFormat::Toml));
        }
        let overrides: std::collections::HashMap<String, String> = vars
            .iter()
            .filter(|(k, _)| k.starts_with("STATSYNC__"))
            .cloned()
            .collect();
        builder = builder.add_source(
            config::Environment::with_prefix("STATSYNC")
                .prefix_separator("__")
                .separator("__")
                .try_parsing(true)
                .list_separator(",")
                .with_list_parse_key("ws.allowed_origins")
                .with_list_parse_key("github.repos")
                .with_list_parse_key("linear.teams")
                .source(Some(overrides)),
        );
        let raw = builder
            .build()
            .map_err(|e| ConfigError::Parse(explain(e.to_string())))?;
        let mut settings: Settings = raw
            .try_deserialize()
            .map_err(|e| ConfigError::Parse(explain(e.to_string())))?;
        if let Some((_, value)) = vars.iter().find(|(k, _)| k == HOOK_IDS_VAR) {
            settings.github.hook_ids.extend(parse_hook_ids(value)?);
        }
        settings.secrets = Secrets::from_env(env)?;
        settings.validate()?;
        settings.warnings = settings.warn(vars);
        Ok(settings)
    }

    /// Settings that are valid but likely not what was meant.
    fn warn(&self, vars: &[(String, String)]) -> Vec<String> {
        let mut warnings = Vec::new();
        let known = |name: &str| {
            let base = name.strip_suffix("_FILE").unwrap_or(name);
            name.starts_with("STATSYNC__") || name == HOOK_IDS_VAR || Secrets::NAMES.contains(&base)
        };
        let mut unknown: Vec<&str> = vars
            .iter()
            .map(|(k, _)| k.as_str())
            .filter(|k| k.starts_with("STATSYNC_") && !known(k))
            .collect();
        unknown.sort_unstable();
        for name in unknown {
            warnings.push(format!(
                "{name} is not a statsync variable and is ignored: settings are \
                 STATSYNC__SECTION__KEY with double underscores (e.g. STATSYNC__HTTP__PORT)"
            ));
        }
        let s = &self.secrets;
        if [
            &s.github_webhook_secret,
            &s.linear_webhook_secret,
            &s.agentapi_webhook_secret,
        ]
        .iter()
        .all(|secret| secret.is_none())
        {
            warnings.push(
                "no webhook secret is set (GITHUB_WEBHOOK_SECRET, LINEAR_WEBHOOK_SECRET, \
                 AGENTAPI_WEBHOOK_SECRET): every webhook endpoint answers 404"
                    .to_owned(),
            );
        }
        if s.api_tokens.is_empty() {
            warnings.push(
                "STATSYNC_API_TOKENS is not set: /api/* and /ws refuse every request".to_owned(),
            );
        }
        warnings
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key: &str, why: &str| {
            Err(ConfigError::Invalid {
                key: key.to_owned(),
                why: why.to_owned(),
            })
        };
        if !valid_log_level(&self.log.level) {
            return invalid(
                "log.level",
                &format!(
                    "`{}` is not a level: one of {} (or filter directives such as \
                     `info,statsync=debug`)",
                    self.log.level,
                    LOG_LEVELS.join(", ")
                ),
            );
        }
        if self.http.max_body_bytes < 1024 {
            return invalid("http.max_body_bytes", "must be at least 1024 bytes");
        }
        if self.database.pool_size == 0 {
            return invalid("database.pool_size", "must be at least 1");
        }
        if self.engine.workers == 0 {
            return invalid("engine.workers", "must be at least 1");
        }
        if self.engine.batch_size == 0 {
            return invalid("engine.batch_size", "must be at least 1");
        }
        if self.engine.intake_writers == 0 {
            return invalid("engine.intake_writers", "must be at least 1");
        }
        if self.engine.intake_group_max == 0 {
            return invalid("engine.intake_group_max", "must be at least 1");
        }
        if self.engine.queue_capacity < 1 {
            return invalid("engine.queue_capacity", "must be at least 1");
        }
        if self.engine.poll_interval_ms == 0 {
            return invalid("engine.poll_interval_ms", "must be above 0");
        }
        if self.dispatch.concurrency == 0 {
            return invalid("dispatch.concurrency", "must be at least 1");
        }
        if self.dispatch.poll_interval_ms == 0 {
            return invalid("dispatch.poll_interval_ms", "must be above 0");
        }
        if self.dispatch.lease_ms <= self.dispatch.request_timeout_ms {
            return invalid(
                "dispatch.lease_ms",
                "must be longer than dispatch.request_timeout_ms, or a slow call loses its row",
            );
        }
        for (key, rps) in [
            (
                "github.requests_per_second",
                self.github.requests_per_second,
            ),
            (
                "linear.requests_per_second",
                self.linear.requests_per_second,
            ),
            (
                "agentapi.requests_per_second",
                self.agentapi.requests_per_second,
            ),
        ] {
            if rps == 0 {
                return invalid(key, "must be at least 1");
            }
        }
        if self.sync.escalation_threshold == 0 {
            return invalid("sync.escalation_threshold", "must be at least 1");
        }
        for system in SystemId::ALL {
            if !self.sync.priorities.contains_key(system) {
                return invalid(
                    &format!("sync.priorities.{system}"),
                    "is missing: every system needs a priority",
                );
            }
        }
        for (key, url, optional) in [
            ("github.api_url", &self.github.api_url, false),
            ("github.graphql_url", &self.github.graphql_url, false),
            ("linear.api_url", &self.linear.api_url, false),
            ("agentapi.url", &self.agentapi.url, true),
        ] {
            if optional && url.is_empty() {
                continue;
            }
            match reqwest::Url::parse(url) {
                Ok(u) if matches!(u.scheme(), "http" | "https") => {}
                Ok(_) => return invalid(key, "must be an http or https URL"),
                Err(e) => return invalid(key, &format!("is not a URL ({e}): `{url}`")),
            }
        }
        if self.http.body_timeout_ms == 0 {
            return invalid("http.body_timeout_ms", "must be above 0");
        }
        if self.ws.poll_interval_ms == 0 {
            return invalid("ws.poll_interval_ms", "must be at least 1");
        }
        if self.ws.auth_timeout_ms == 0 {
            return invalid("ws.auth_timeout_ms", "must be above 0");
        }
        if self.ws.max_rooms_per_connection == 0 {
            return invalid("ws.max_rooms_per_connection", "must be at least 1");
        }
        if self.ws.send_buffer < crate::store::events::PAGE as usize {
            return invalid(
                "ws.send_buffer",
                "must be at least 1000: events are fanned out a page of 1000 at a time",
            );
        }
        if !self.linking.branch_pattern.contains("{identifier}") {
            return invalid(
                "linking.branch_pattern",
                "must contain `{identifier}` where the issue identifier stands",
            );
        }
        if self.sync.page_size == 0 || self.sync.page_size > 100 {
            return invalid("sync.page_size", "must be between 1 and 100");
        }
        for repo in self.github.repos.iter().chain(self.github.hook_ids.keys()) {
            if let Err(e) = RepoName::parse(repo) {
                return invalid("github.repos", &e.to_string());
            }
        }
        for team in &self.linear.teams {
            if let Err(e) = TeamKey::parse(team) {
                return invalid("linear.teams", &e.to_string());
            }
        }
        if self.events.retention_days == 0 {
            return invalid("events.retention_days", "must be at least 1");
        }
        if self.intake.retention_days < GITHUB_REDELIVERY_DAYS {
            return invalid(
                "intake.retention_days",
                &format!(
                    "must be at least {GITHUB_REDELIVERY_DAYS}: GitHub redelivers a delivery for \
                     up to {GITHUB_REDELIVERY_DAYS} days, and a delivery is kept whole at least \
                     that long"
                ),
            );
        }
        if self.alerts.evaluation_interval_ms < 10 {
            return invalid("alerts.evaluation_interval_ms", "must be at least 10");
        }
        if self.alerts.window_s == 0 {
            return invalid("alerts.window_s", "must be at least 1");
        }
        for (key, rate) in [
            ("alerts.sync_failure_rate", self.alerts.sync_failure_rate),
            ("alerts.conflict_rate", self.alerts.conflict_rate),
        ] {
            if !(0.0..=1.0).contains(&rate) {
                return invalid(key, "must be a fraction between 0 and 1 (0 turns it off)");
            }
        }
        for (key, secs) in [
            (
                "alerts.average_sync_time_s",
                self.alerts.average_sync_time_s,
            ),
            (
                "alerts.oldest_pending_age_s",
                self.alerts.oldest_pending_age_s,
            ),
        ] {
            if !secs.is_finite() || secs < 0.0 {
                return invalid(
                    key,
                    "must be a number of seconds, 0 or more (0 turns it off)",
                );
            }
        }
        self.mappings.load()?;
        if let Err(e) = self.log.level.parse::<tracing_subscriber::EnvFilter>() {
            return invalid("log.level", &format!("is not a log filter: {e}"));
        }
        Ok(())
    }

    /// The effective settings as TOML, secrets reduced to whether they are set.
    pub fn redacted_toml(&self) -> String {
        let body = toml::to_string_pretty(self)
            .unwrap_or_else(|e| format!("# could not render settings: {e}\n"));
        let mut out = body;
        out.push_str("\n# secrets (from the environment)\n[secrets]\n");
        for (name, state) in self.secrets.describe() {
            out.push_str(&format!("{name} = \"{state}\"\n"));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    struct MapEnv(HashMap<String, String>);
    impl Env for MapEnv {
        fn var(&self, name: &str) -> Option<String> {
            self.0.get(name).cloned()
        }
    }

    fn load(file: Option<&str>, vars: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let dir = std::env::temp_dir().join(format!("statsync-config-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = file.map(|text| {
            let p = dir.join("extra.toml");
            std::fs::write(&p, text).unwrap();
            p
        });
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let env = MapEnv(vars.iter().cloned().collect());
        let result = Settings::load_from(path.as_deref(), &vars, &env);
        let _ = std::fs::remove_dir_all(dir);
        result
    }

    #[test]
    fn defaults_load_and_validate() {
        let s = load(None, &[]).unwrap();
        assert_eq!(s.http.port, 8080);
        assert_eq!(s.http.max_body_bytes, 1024 * 1024);
        assert_eq!(s.sync.conflict_window_ms, 5000);
        assert_eq!(s.sync.max_future_skew_ms, 60000);
        assert_eq!(s.sync.priorities[&SystemId::Linear], 1);
        assert!(s.secrets.database_url.is_none());
    }

    #[test]
    fn file_then_environment_override_in_that_order() {
        let s = load(
            Some("[http]\nport = 9000\nhost = \"0.0.0.0\"\n"),
            &[
                ("STATSYNC__HTTP__PORT", "9100"),
                (
                    "STATSYNC__WS__ALLOWED_ORIGINS",
                    "https://a.example,https://b.example",
                ),
            ],
        )
        .unwrap();
        assert_eq!(s.http.port, 9100);
        assert_eq!(s.http.host, "0.0.0.0");
        assert_eq!(
            s.ws.allowed_origins,
            vec!["https://a.example", "https://b.example"]
        );
    }

    #[test]
    fn a_bad_value_names_its_key() {
        let err = load(None, &[("STATSYNC__HTTP__PORT", "eighty")]).unwrap_err();
        assert!(err.to_string().contains("http.port"), "{err}");
        let err = load(Some("[sync]\nconflict_strategy = \"coin_flip\"\n"), &[]).unwrap_err();
        assert!(err.to_string().contains("coin_flip"), "{err}");
        let err = load(Some("[http]\nprot = 1\n"), &[]).unwrap_err();
        assert!(err.to_string().contains("prot"), "{err}");
        let err = load(Some("[linear]\napi_url = \"not a url\"\n"), &[]).unwrap_err();
        assert!(err.to_string().contains("linear.api_url"), "{err}");
    }

    #[test]
    fn secrets_come_from_the_environment_and_are_never_printed() {
        let s = load(
            None,
            &[
                ("GITHUB_WEBHOOK_SECRET", "hunter2"),
                ("STATSYNC_API_TOKENS", "t1, t2"),
            ],
        )
        .unwrap();
        assert_eq!(s.secrets.api_tokens.len(), 2);
        let printed = s.redacted_toml();
        assert!(!printed.contains("hunter2"));
        assert!(printed.contains("GITHUB_WEBHOOK_SECRET = \"[redacted]\""));
        assert!(!format!("{s:?}").contains("hunter2"));
    }

    #[test]
    fn hook_ids_come_from_their_own_environment_variable_over_the_file() {
        let s = load(
            Some("[github.hook_ids]\n\"a/one\" = 1\n\"b/two\" = 2\n"),
            &[(HOOK_IDS_VAR, " b/two=22, octo-org/hello.world=456 ,")],
        )
        .unwrap();
        let want: BTreeMap<String, u64> =
            [("a/one", 1), ("b/two", 22), ("octo-org/hello.world", 456)]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .collect();
        assert_eq!(s.github.hook_ids, want);
        assert!(load(None, &[(HOOK_IDS_VAR, "")])
            .unwrap()
            .github
            .hook_ids
            .is_empty());
    }

    #[test]
    fn a_bad_hook_ids_entry_is_named() {
        for (value, entry, why) in [
            ("a/b=1,c/d", "c/d", "has no `=`"),
            ("a/b=1,nope=2", "nope=2", "not owner/name"),
            ("a/b=x", "a/b=x", "not a positive integer"),
            ("a/b=-3", "a/b=-3", "not a positive integer"),
            ("a/b=1,a/b=2", "a/b=2", "repeats `a/b`"),
        ] {
            let err = load(None, &[(HOOK_IDS_VAR, value)])
                .unwrap_err()
                .to_string();
            assert!(err.contains(HOOK_IDS_VAR), "{value}: {err}");
            assert!(err.contains(&format!("`{entry}`")), "{value}: {err}");
            assert!(err.contains(why), "{value}: {err}");
        }
    }

    #[test]
    fn an_invalid_enum_value_is_refused_with_the_valid_ones_listed() {
        let err = load(None, &[("STATSYNC__SYNC__CONFLICT_STRATEGY", "random")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("sync.conflict_strategy"), "{err}");
        assert!(err.contains("`random`"), "{err}");
        assert!(
            err.contains("priority_based, timestamp_based, manual, merge"),
            "{err}"
        );
        let err = load(None, &[("STATSYNC__LOG__FORMAT", "xml")])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("log.format") && err.contains("pretty, json"),
            "{err}"
        );
    }

    #[test]
    fn a_log_level_that_would_silence_everything_is_refused() {
        let err = load(None, &[("STATSYNC__LOG__LEVEL", "loud")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("log.level") && err.contains("`loud`"), "{err}");
        assert!(
            err.contains("trace, debug, info, warn, error, off"),
            "{err}"
        );
        for ok in [
            "debug",
            "WARN",
            "info,statsync=debug",
            "statsync::dispatch=trace",
        ] {
            let s = load(None, &[("STATSYNC__LOG__LEVEL", ok)]).unwrap();
            assert_eq!(s.log.level, ok);
        }
    }

    #[test]
    fn an_unknown_statsync_variable_and_missing_secrets_are_warned_about() {
        let s = load(None, &[("STATSYNC_HTTP_PORT", "9000")]).unwrap();
        assert_eq!(s.http.port, 8080);
        let warnings = s.warnings.join("\n");
        assert!(
            warnings.contains("STATSYNC_HTTP_PORT is not a statsync variable"),
            "{warnings}"
        );
        assert!(warnings.contains("no webhook secret is set"), "{warnings}");
        assert!(
            warnings.contains("STATSYNC_API_TOKENS is not set"),
            "{warnings}"
        );

        let s = load(
            None,
            &[
                ("GITHUB_WEBHOOK_SECRET", "s"),
                ("STATSYNC_API_TOKENS", "t"),
                ("STATSYNC_API_TOKENS_FILE", "/dev/null"),
                (HOOK_IDS_VAR, "a/b=1"),
                ("STATSYNC__HTTP__PORT", "9000"),
            ],
        )
        .unwrap();
        assert!(s.warnings.is_empty(), "{:?}", s.warnings);
    }
}
