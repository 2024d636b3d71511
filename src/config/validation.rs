//! What statsync refuses to start with (a clear error naming the key and the rule) and
//! what it warns about (valid, but likely not what was meant).

use std::collections::BTreeMap;

use super::{ConfigError, Secrets, Settings, GITHUB_REDELIVERY_DAYS};
use crate::domain::names::{ProjectRef, RepoName, TeamKey};
use crate::domain::{CanonicalStatus, Strategy, SystemId};

/// `github.hook_ids` from the environment: its keys (`owner/name`) cannot be spelled in
/// a `STATSYNC__…` variable name, so they travel in the value. Entries add to (and
/// override) the file's.
pub const HOOK_IDS_VAR: &str = "STATSYNC_GITHUB_HOOK_IDS";

/// The longest an applier may wait for company before its claim.
const MAX_GATHER_MS: u64 = 1000;
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
pub(super) fn explain(message: String) -> String {
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

/// An absolute http(s) address with a host, and no query or fragment (webhook paths
/// are appended to it).
fn public_url_ok(url: &str) -> bool {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"));
    matches!(rest, Some(r) if !r.is_empty() && !r.starts_with('/') && !r.contains(['?', '#', ' ']))
}

fn invalid(key: &str, why: &str) -> Result<(), ConfigError> {
    Err(ConfigError::Invalid {
        key: key.to_owned(),
        why: why.to_owned(),
    })
}

/// The canonical store and the systems with sections of their own.
const BUILT_IN: [SystemId; 4] = [
    SystemId::Postgresql,
    SystemId::Linear,
    SystemId::Github,
    SystemId::Agentapi,
];

impl Settings {
    /// Settings that are valid but likely not what was meant.
    pub(super) fn warn(&self, vars: &[(String, String)]) -> Vec<String> {
        let mut warnings = Vec::new();
        let known = |name: &str| {
            let base = name.strip_suffix("_FILE").unwrap_or(name);
            name.starts_with("STATSYNC__")
                || name == HOOK_IDS_VAR
                || Secrets::NAMES.contains(&base)
                || self.secrets.connectors.contains_key(base)
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

    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        self.check_log_and_http()?;
        self.check_engine()?;
        self.check_outbound()?;
        self.check_streams()?;
        self.check_names_and_retention()?;
        self.check_alerts()?;
        self.check_connectors()?;
        self.mappings.load()?;
        if let Err(e) = self.log.level.parse::<tracing_subscriber::EnvFilter>() {
            return invalid("log.level", &format!("is not a log filter: {e}"));
        }
        Ok(())
    }

    /// `[connectors.<name>]` is for a system with a connector and no section of its own.
    fn check_connectors(&self) -> Result<(), ConfigError> {
        use crate::systems::REGISTERED;
        for name in self.connectors.keys() {
            match name.parse::<SystemId>() {
                Ok(SystemId::Postgresql) => {
                    return invalid(
                        &format!("connectors.{name}"),
                        "is the canonical store, not a system with a connector",
                    )
                }
                Ok(system) if BUILT_IN.contains(&system) => {
                    return invalid(
                        &format!("connectors.{name}"),
                        &format!(
                            "is not needed: {system} is configured in its own [{system}] section"
                        ),
                    )
                }
                Ok(system) if REGISTERED.iter().any(|r| r.system == system) => {}
                _ => {
                    let registered: Vec<&str> =
                        REGISTERED.iter().map(|r| r.system.as_str()).collect();
                    let registered = match registered.is_empty() {
                        true => "none".to_owned(),
                        false => registered.join(", "),
                    };
                    return invalid(
                        &format!("connectors.{name}"),
                        &format!(
                            "names no registered system (registered beyond github, linear \
                             and agentapi: {registered})"
                        ),
                    );
                }
            }
        }
        Ok(())
    }

    /// The log filter, the HTTP limits and the pool.
    fn check_log_and_http(&self) -> Result<(), ConfigError> {
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
        if !self.server.api_enabled && !self.server.worker_enabled {
            return invalid(
                "server.api_enabled",
                "and server.worker_enabled are both false: the replica would take no \
                 deliveries and apply none; set at least one",
            );
        }
        Ok(())
    }

    /// The engine and the dispatcher: every count at least one.
    fn check_engine(&self) -> Result<(), ConfigError> {
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
        if self.engine.gather_ms > MAX_GATHER_MS {
            return invalid(
                "engine.gather_ms",
                &format!(
                    "must be at most {MAX_GATHER_MS} (every delivery waits this long before \
                     it is applied; a few milliseconds already fill the rounds)"
                ),
            );
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
        Ok(())
    }

    /// Rate budgets, conflict settings and the URLs statsync calls.
    fn check_outbound(&self) -> Result<(), ConfigError> {
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
        // A system registered beyond these may go unranked: it then yields to all.
        for system in BUILT_IN {
            if !self.sync.priorities.contains_key(&system) {
                return invalid(
                    &format!("sync.priorities.{system}"),
                    "is missing: each of postgresql, linear, github and agentapi needs a \
                     priority",
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
        Ok(())
    }

    /// Request bodies, WebSockets and how links are found.
    fn check_streams(&self) -> Result<(), ConfigError> {
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
        Ok(())
    }

    /// Listing pages, repositories, teams and how long things are kept.
    fn check_names_and_retention(&self) -> Result<(), ConfigError> {
        if self.sync.page_size == 0 || self.sync.page_size > 100 {
            return invalid("sync.page_size", "must be between 1 and 100");
        }
        for repo in self.github.repos.iter().chain(self.github.hook_ids.keys()) {
            if let Err(e) = RepoName::parse(repo) {
                return invalid("github.repos", &e.to_string());
            }
        }
        for project in &self.github.projects {
            if let Err(e) = ProjectRef::parse(project) {
                return invalid("github.projects", &e.to_string());
            }
        }
        let url = &self.server.public_url;
        if !url.is_empty() && !public_url_ok(url) {
            return invalid(
                "server.public_url",
                &format!(
                    "`{url}` is not an http(s) address without query or fragment \
                     (https://sync.acme.dev)"
                ),
            );
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
        Ok(())
    }

    /// Alert thresholds.
    fn check_alerts(&self) -> Result<(), ConfigError> {
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
        Ok(())
    }
}
