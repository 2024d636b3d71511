//! Credentials, from the environment only (or `NAME_FILE`): never in a file, `Debug`,
//! a log line or `check-config` output.

use std::collections::BTreeMap;
use std::path::PathBuf;

use secrecy::{ExposeSecret, SecretString};

use super::ConfigError;

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
    /// The credentials of the systems configured in `[connectors.<name>]`, by variable
    /// name: `<NAME>_WEBHOOK_SECRET` (or the name of its registration's
    /// `webhook_credential`) and `<NAME>_API_TOKEN`.
    pub connectors: BTreeMap<String, SecretString>,
}

/// `<NAME>_<what>`: the variable holding one of a connector's credentials.
pub fn connector_var(system: &str, what: &str) -> String {
    format!("{}_{what}", system.to_uppercase())
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
    /// `connector_vars`: the variables of the registered connectors' credentials.
    pub fn from_env(env: &dyn Env, connector_vars: &[String]) -> Result<Secrets, ConfigError> {
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
            connectors: connector_vars
                .iter()
                .filter_map(|var| read(var).map(|v| v.map(|v| (var.clone(), v))).transpose())
                .collect::<Result<_, _>>()?,
        })
    }

    /// A `[connectors.<name>]` system's credential (`what`: `API_TOKEN`, or its
    /// registration's `webhook_credential`).
    pub fn of_connector(&self, system: &str, what: &str) -> Option<SecretString> {
        self.connectors.get(&connector_var(system, what)).cloned()
    }

    pub(super) fn describe(&self, connector_vars: &[String]) -> BTreeMap<String, &'static str> {
        let state = |s: &Option<SecretString>| {
            if s.is_some() {
                "[redacted]"
            } else {
                "(not set)"
            }
        };
        let named = connector_vars.iter().map(|var| {
            let set = self.connectors.contains_key(var);
            (var.clone(), if set { "[redacted]" } else { "(not set)" })
        });
        let built_in = BTreeMap::from([
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
        ]);
        built_in
            .into_iter()
            .map(|(name, state)| (name.to_owned(), state))
            .chain(named)
            .collect()
    }
}
