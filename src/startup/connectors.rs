//! The connectors these settings configure: one client per system over one outbound
//! HTTP client, each spending its own request budget, and the `Registry` the webhook
//! door, the engine and the dispatcher reach them through. A system is registered here,
//! with one entry in `connectors`.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;

use crate::config::Settings;
use crate::systems::agentapi::{client::AgentClient, connector::AgentApi};
use crate::systems::connector::{Connector, Registry};
use crate::systems::github::app::AppAuth;
use crate::systems::github::client::{Auth, GithubClient};
use crate::systems::github::connector::Github;
use crate::systems::limiter::Budget;
use crate::systems::linear::{client::LinearClient, connector::Linear};

/// The registry, and the clients of the calls that are not status writes: GitHub item
/// lookups, identity discovery, `mappings suggest`.
pub struct Connectors {
    pub registry: Arc<Registry>,
    pub github: Arc<GithubClient>,
    pub linear: Arc<LinearClient>,
}

pub fn connectors(settings: &Settings) -> anyhow::Result<Connectors> {
    let timeout = Duration::from_millis(settings.dispatch.request_timeout_ms);
    let http = reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(5)))
        .build()
        .context("building the outbound HTTP client")?;
    let secrets = &settings.secrets;
    let budgets = (
        Budget::new(settings.github.requests_per_second),
        Budget::new(settings.linear.requests_per_second),
        Budget::new(settings.agentapi.requests_per_second),
    );
    let github = Arc::new(GithubClient::new(
        http.clone(),
        &settings.github.api_url,
        &settings.github.graphql_url,
        github_auth(settings, &http)?,
        budgets.0.clone(),
    ));
    let linear = Arc::new(LinearClient::new(
        http.clone(),
        &settings.linear.api_url,
        secrets.linear_api_key.clone(),
        budgets.1.clone(),
    ));
    let agent = Arc::new(AgentClient::new(
        http,
        &settings.agentapi.url,
        secrets.agentapi_webhook_secret.clone(),
        budgets.2.clone(),
    ));
    let entries: Vec<(Arc<dyn Connector>, Budget)> = vec![
        (
            Arc::new(Github {
                client: github.clone(),
                webhook_secret: secrets.github_webhook_secret.clone(),
            }),
            budgets.0,
        ),
        (
            Arc::new(Linear {
                client: linear.clone(),
                webhook_secret: secrets.linear_webhook_secret.clone(),
                tolerance_ms: settings.linear.webhook_tolerance_s as i64 * 1000,
            }),
            budgets.1,
        ),
        (
            Arc::new(AgentApi {
                client: agent,
                webhook_secret: secrets.agentapi_webhook_secret.clone(),
            }),
            budgets.2,
        ),
    ];
    Ok(Connectors {
        registry: Arc::new(Registry::new(entries)),
        github,
        linear,
    })
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
