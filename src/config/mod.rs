//! Layered settings, read once at start into typed values: the built-in
//! `config/default.toml`, then `--config FILE`, then `STATSYNC__SECTION__KEY`
//! environment variables. Secrets come only from the environment (or `NAME_FILE`)
//! and never reach `Debug`, logs or `check-config` output.
//!
//! `sections` holds the typed settings of each part, `secrets` the credentials read from
//! the environment, `validation` what is refused or warned about before anything starts.

mod secrets;
mod sections;
mod validation;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use secrets::{Env, ProcessEnv, Secrets};
pub use sections::*;
use validation::explain;
pub use validation::{parse_hook_ids, HOOK_IDS_VAR};

const DEFAULT_TOML: &str = include_str!("../../config/default.toml");

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
    /// `[connectors.<system>]`: the settings of each system registered beyond GitHub,
    /// Linear and the agent API, read by its connector into its own settings type.
    #[serde(default)]
    pub connectors: BTreeMap<String, serde_json::Value>,
    /// Read from the environment only; never deserialized from a file.
    #[serde(skip)]
    pub secrets: Secrets,
    /// What the settings leave working but probably not as meant (an unknown
    /// `STATSYNC_` variable, no webhook secret): logged at start, printed by
    /// check-config.
    #[serde(skip)]
    pub warnings: Vec<String>,
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
                .with_list_parse_key("github.projects")
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
        settings.secrets = Secrets::from_env(env, &Settings::connector_vars())?;
        settings.validate()?;
        settings.warnings = settings.warn(vars);
        Ok(settings)
    }

    /// The credential variables of the systems registered beyond the built-in three
    /// (each may also have a `[connectors.<name>]` section): `<NAME>_WEBHOOK_SECRET` (or
    /// its registration's own name for it) and `<NAME>_API_TOKEN`.
    pub fn connector_vars() -> Vec<String> {
        crate::systems::REGISTERED
            .iter()
            .flat_map(|r| {
                let system = r.system.as_str();
                [r.webhook_credential, "API_TOKEN"].map(|what| secrets::connector_var(system, what))
            })
            .collect()
    }

    /// The effective settings as TOML, secrets reduced to whether they are set.
    pub fn redacted_toml(&self) -> String {
        let body = toml::to_string_pretty(self)
            .unwrap_or_else(|e| format!("# could not render settings: {e}\n"));
        let mut out = body;
        out.push_str("\n# secrets (from the environment)\n[secrets]\n");
        for (name, state) in self.secrets.describe(&Settings::connector_vars()) {
            out.push_str(&format!("{name} = \"{state}\"\n"));
        }
        out
    }
}

#[cfg(test)]
mod tests;
