//! The connectors these settings configure: one client per system over one outbound
//! HTTP client, each spending its own request budget, and the `Registry` the webhook
//! door, the engine and the dispatcher reach them through. GitHub, Linear and the agent
//! API are built here from their own sections; every system in `systems::REGISTERED`
//! from its `[connectors.<system>]` section and `<SYSTEM>_…` credentials.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;

use crate::config::Settings;
use crate::systems::agentapi::{client::AgentClient, connector::AgentApi};
use crate::systems::connector::{Built, Registration, Registry, Setup};
use crate::systems::github::app::AppAuth;
use crate::systems::github::backfill as github_backfill;
use crate::systems::github::client::{Auth, GithubClient};
use crate::systems::github::connector::Github;
use crate::systems::limiter::Budget;
use crate::systems::linear::backfill as linear_backfill;
use crate::systems::linear::{client::LinearClient, connector::Linear};

/// The registry, and the clients of the calls that are not status writes: GitHub item
/// lookups, identity discovery, `mappings suggest`.
pub struct Connectors {
    pub registry: Arc<Registry>,
    pub github: Arc<GithubClient>,
    pub linear: Arc<LinearClient>,
}

pub fn connectors(settings: &Settings) -> anyhow::Result<Connectors> {
    connectors_with(settings, crate::systems::REGISTERED)
}

fn connectors_with(
    settings: &Settings,
    registered: &[&Registration],
) -> anyhow::Result<Connectors> {
    let timeout = Duration::from_millis(settings.dispatch.request_timeout_ms);
    let http = reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(5)))
        .build()
        .context("building the outbound HTTP client")?;
    let github = Arc::new(GithubClient::new(
        http.clone(),
        &settings.github.api_url,
        &settings.github.graphql_url,
        github_auth(settings, &http)?,
        Budget::new(settings.github.requests_per_second),
    ));
    let linear = Arc::new(LinearClient::new(
        http.clone(),
        &settings.linear.api_url,
        settings.secrets.linear_api_key.clone(),
        Budget::new(settings.linear.requests_per_second),
    ));
    let mut entries = built_in(settings, &http, &github, &linear);
    let secrets = &settings.secrets;
    for registration in registered {
        let system = registration.system.as_str();
        let setup = Setup {
            section: settings.connectors.get(system),
            webhook_secret: secrets.of_connector(system, registration.webhook_credential),
            api_token: secrets.of_connector(system, "API_TOKEN"),
            http: http.clone(),
        };
        entries.push((registration.build)(setup).map_err(anyhow::Error::msg)?);
    }
    Ok(Connectors {
        registry: Arc::new(Registry::new(entries)),
        github,
        linear,
    })
}

/// GitHub, Linear and the agent API, from their own sections.
fn built_in(
    settings: &Settings,
    http: &reqwest::Client,
    github: &Arc<GithubClient>,
    linear: &Arc<LinearClient>,
) -> Vec<Built> {
    let secrets = &settings.secrets;
    let agent_budget = Budget::new(settings.agentapi.requests_per_second);
    let agent = Arc::new(AgentClient::new(
        http.clone(),
        &settings.agentapi.url,
        secrets.agentapi_webhook_secret.clone(),
        agent_budget.clone(),
    ));
    vec![
        (
            Arc::new(Github {
                client: github.clone(),
                webhook_secret: secrets.github_webhook_secret.clone(),
                listing: github_backfill::ListingAccess {
                    http: http.clone(),
                    api_url: settings.github.api_url.clone(),
                    token: secrets.github_token.clone(),
                },
            }),
            github.budget().clone(),
        ),
        (
            Arc::new(Linear {
                client: linear.clone(),
                webhook_secret: secrets.linear_webhook_secret.clone(),
                listing: linear_backfill::ListingAccess {
                    http: http.clone(),
                    url: settings.linear.api_url.clone(),
                    api_key: secrets.linear_api_key.clone(),
                },
                tolerance_ms: settings.linear.webhook_tolerance_s as i64 * 1000,
            }),
            linear.budget().clone(),
        ),
        (
            Arc::new(AgentApi {
                client: agent,
                webhook_secret: secrets.agentapi_webhook_secret.clone(),
            }),
            agent_budget,
        ),
    ]
}

/// The GitHub App when its credentials are set (it takes precedence), else the token.
fn github_auth(settings: &Settings, http: &reqwest::Client) -> anyhow::Result<Auth> {
    let secrets = &settings.secrets;
    Ok(
        match (&secrets.github_app_id, &secrets.github_app_private_key) {
            (Some(id), Some(key)) => Auth::App(
                AppAuth::new(id, key, http.clone(), &settings.github.api_url)
                    .map_err(anyhow::Error::msg)?,
            ),
            _ => match &secrets.github_token {
                Some(token) => Auth::Token(token.clone()),
                None => Auth::None,
            },
        },
    )
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use futures_util::future::BoxFuture;
    use secrecy::{ExposeSecret, SecretString};

    use super::connectors_with;
    use crate::config::{Env, Settings};
    use crate::domain::{Origin, OutboundNative, SystemId};
    use crate::systems::connector::{Built, Connector, Door, Registration, Setup};
    use crate::systems::limiter::Budget;
    use crate::systems::outbound::{Delivered, ErrorCode, OutboundError, OutboundWrite};
    use crate::systems::{signature, Parsed, PayloadError};

    struct NoEnv;
    impl Env for NoEnv {
        fn var(&self, _: &str) -> Option<String> {
            None
        }
    }

    // A stand-in fifth system: the canonical store's id is the only one free of a
    // built-in connector.
    static DOOR: Door = Door {
        system: SystemId::Postgresql,
        name: "example",
        verify: signature::verify_prefixed,
        signature_header: "X-Example-Signature",
        credential_also: &[],
        media_types: crate::systems::connector::JSON,
        delivery_header: "X-Example-Delivery",
        event_header: None,
        default_event: "report",
        events: &["report"],
    };

    #[derive(serde::Deserialize, Default)]
    #[serde(default, deny_unknown_fields)]
    struct ExampleSettings {
        url: String,
        requests_per_second: u32,
    }

    struct Example {
        url: String,
        webhook_secret: Option<SecretString>,
    }

    impl Connector for Example {
        fn door(&self) -> &'static Door {
            &DOOR
        }
        fn webhook_secret(&self) -> Option<&SecretString> {
            self.webhook_secret.as_ref()
        }
        fn parse(&self, _: Origin, _: &str, _: &[u8]) -> Result<Parsed, PayloadError> {
            Ok(Parsed::Ignored {
                reason: self.url.clone(),
            })
        }
        fn write<'a>(
            &'a self,
            _: &'a OutboundWrite,
            _: &'a OutboundNative,
        ) -> BoxFuture<'a, Result<Delivered, OutboundError>> {
            // The registration test never writes; a write would be refused, not panic.
            Box::pin(async {
                Err(OutboundError::new(
                    ErrorCode::ValidationFailed,
                    "the example connector writes nowhere",
                ))
            })
        }
    }

    fn build(setup: Setup<'_>) -> Result<Built, String> {
        let settings: ExampleSettings = setup.settings(SystemId::Postgresql)?;
        let connector = Example {
            url: settings.url,
            webhook_secret: setup.webhook_secret,
        };
        Ok((
            Arc::new(connector),
            Budget::new(settings.requests_per_second),
        ))
    }

    static EXAMPLE: Registration = Registration {
        system: SystemId::Postgresql,
        webhook_credential: crate::systems::connector::WEBHOOK_SECRET,
        build,
    };

    #[test]
    fn a_registered_connector_is_built_from_its_section_and_credentials() {
        let mut settings = Settings::load_from(None, &[], &NoEnv).unwrap();
        settings.connectors.insert(
            "postgresql".into(),
            serde_json::json!({ "url": "https://example.test", "requests_per_second": 3 }),
        );
        settings.secrets.connectors.insert(
            "POSTGRESQL_WEBHOOK_SECRET".into(),
            SecretString::from("hook"),
        );
        let built = connectors_with(&settings, &[&EXAMPLE]).unwrap();
        let example = built.registry.by_door("example").expect("registered");
        assert_eq!(example.system(), SystemId::Postgresql);
        assert_eq!(
            example
                .webhook_secret()
                .map(|s| s.expose_secret().to_owned()),
            Some("hook".into())
        );
        let parsed = example.parse(Origin::Webhook, "report", b"{}").unwrap();
        assert_eq!(
            parsed,
            Parsed::Ignored {
                reason: "https://example.test".into()
            }
        );
        assert!(built.registry.budget(SystemId::Postgresql).is_some());
        // The built-in three are there beside it.
        for name in ["github", "linear", "agentapi"] {
            assert!(built.registry.by_door(name).is_some(), "{name}");
        }

        settings.connectors.insert(
            "postgresql".into(),
            serde_json::json!({ "urll": "https://example.test" }),
        );
        let err = connectors_with(&settings, &[&EXAMPLE])
            .err()
            .expect("refused")
            .to_string();
        assert!(
            err.contains("`connectors.postgresql`") && err.contains("urll"),
            "{err}"
        );
    }
}
