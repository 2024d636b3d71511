//! A2A agents as a `Connector`: push notifications in, authenticated by a shared token
//! (`A2A_NOTIFICATION_TOKEN`) the way A2A senders present one; `CancelTask` out when
//! linked work is cancelled or done. Built from `[connectors.a2a]`.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures_util::future::BoxFuture;
use secrecy::SecretString;

use super::client::{A2aClient, Agent};
use super::notification::{self, Reading};
use crate::domain::{CanonicalStatus, Origin, OutboundNative, SystemId};
use crate::systems::connector::{Built, Connector, CredentialSource, Door, Registration, Setup};
use crate::systems::limiter::Budget;
use crate::systems::outbound::{Delivered, OutboundError, OutboundWrite};
use crate::systems::signature;
use crate::systems::{Parsed, PayloadError};

/// The event of every notification (A2A sends no event header).
const NOTIFICATION: &str = "notification";

static DOOR: Door = Door {
    system: SystemId::A2a,
    name: "a2a",
    // A2A 1.0 senders present the push config's `token` in this header (0.3 SDKs in
    // `X-A2A-Notification-Token`), or its `authentication` as `Authorization: Bearer`.
    signature_header: "A2A-Notification-Token",
    credential_also: &[
        CredentialSource::Header("X-A2A-Notification-Token"),
        CredentialSource::Bearer,
    ],
    verify: signature::verify_token,
    media_types: &["application/a2a+json", "application/json"],
    // A2A notifications carry no delivery id: a digest of the body stands in (a
    // redelivered notification is the same bytes), unless a sender sets statsync's own.
    delivery_header: "X-Statsync-Delivery",
    event_header: None,
    default_event: NOTIFICATION,
    events: &[NOTIFICATION],
};

/// `[connectors.a2a]`.
#[derive(Debug, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct A2aSettings {
    /// Agents statsync may call, by name: `{ url, protocol }`.
    pub agents: BTreeMap<String, Agent>,
    /// The agent of tasks whose notifications name none (`statsync.agent`); empty: the
    /// only agent when exactly one is configured.
    pub default_agent: String,
    /// The statuses that cancel a linked task.
    pub cancel_on: Vec<CanonicalStatus>,
    /// Linear team keys whose identifiers (`ENG-123`) in a task's messages link it;
    /// empty: only `statsync.ref` links.
    pub teams: Vec<String>,
    pub requests_per_second: u32,
}

impl Default for A2aSettings {
    fn default() -> Self {
        A2aSettings {
            agents: BTreeMap::new(),
            default_agent: String::new(),
            cancel_on: vec![CanonicalStatus::Cancelled, CanonicalStatus::Done],
            teams: Vec::new(),
            requests_per_second: 10,
        }
    }
}

pub struct A2a {
    client: A2aClient,
    reading: Reading,
    token: Option<SecretString>,
}

impl Connector for A2a {
    fn door(&self) -> &'static Door {
        &DOOR
    }

    fn webhook_secret(&self) -> Option<&SecretString> {
        self.token.as_ref()
    }

    fn parse(&self, _origin: Origin, _event: &str, body: &[u8]) -> Result<Parsed, PayloadError> {
        notification::parse(body, &self.reading)
    }

    /// Only a cancel can be told; the native name is not needed for it.
    fn write<'a>(
        &'a self,
        write: &'a OutboundWrite,
        _native: &'a OutboundNative,
    ) -> BoxFuture<'a, Result<Delivered, OutboundError>> {
        Box::pin(self.client.write(write))
    }

    /// The agent notifies the cancel it made, with the status time its answer carried.
    fn writes_come_back(&self) -> bool {
        true
    }
}

pub static REGISTRATION: Registration = Registration {
    system: SystemId::A2a,
    webhook_credential: "NOTIFICATION_TOKEN",
    build,
};

fn build(setup: Setup<'_>) -> Result<Built, String> {
    let settings: A2aSettings = setup.settings(SystemId::A2a)?;
    let default_agent = default_agent(&settings)?;
    for (name, agent) in &settings.agents {
        if !notification::valid_agent_name(name) {
            return Err(format!(
                "`connectors.a2a.agents.{name}`: an agent name is 1 to 64 letters, digits, \
                 `_`, `-` or `.`"
            ));
        }
        if !(agent.url.starts_with("https://") || agent.url.starts_with("http://")) {
            return Err(format!(
                "`connectors.a2a.agents.{name}.url` must be an http(s) URL, not `{}`",
                agent.url
            ));
        }
    }
    let budget = Budget::new(settings.requests_per_second);
    let reading = Reading {
        default_agent: default_agent.clone(),
        teams: settings.teams.iter().map(|t| t.to_uppercase()).collect(),
    };
    let client = A2aClient {
        http: setup.http,
        budget: budget.clone(),
        agents: settings.agents,
        default_agent,
        cancel_on: settings.cancel_on,
        token: setup.api_token,
    };
    let connector = A2a {
        client,
        reading,
        token: setup.webhook_secret,
    };
    Ok((Arc::new(connector), budget))
}

/// `default_agent` when set (it must be configured), else the only agent.
fn default_agent(settings: &A2aSettings) -> Result<Option<String>, String> {
    let named = settings.default_agent.trim();
    if named.is_empty() {
        return Ok(match settings.agents.len() {
            1 => settings.agents.keys().next().cloned(),
            _ => None,
        });
    }
    match settings.agents.contains_key(named) {
        true => Ok(Some(named.to_owned())),
        false => Err(format!(
            "`connectors.a2a.default_agent` names `{named}`, which is not in \
             connectors.a2a.agents"
        )),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn setup(section: &serde_json::Value) -> Setup<'_> {
        Setup {
            section: Some(section),
            webhook_secret: None,
            api_token: None,
            http: reqwest::Client::new(),
        }
    }

    #[test]
    fn agents_are_checked_when_the_connector_is_built() {
        let one = json!({"agents": {"coder": {"url": "https://coder.example/a2a"}}});
        assert!(build(setup(&one)).is_ok());
        let settings: A2aSettings = setup(&one).settings(SystemId::A2a).unwrap();
        // From the environment, a version arrives as a number.
        let numbers = json!({"agents": {"a": {"url": "https://a", "protocol": 0.3},
                                        "b": {"url": "https://b", "protocol": 1.0}}});
        let parsed: A2aSettings = setup(&numbers).settings(SystemId::A2a).unwrap();
        assert_eq!(
            parsed.agents["a"].protocol,
            super::super::client::Protocol::V03
        );
        assert_eq!(
            parsed.agents["b"].protocol,
            super::super::client::Protocol::V1
        );
        assert_eq!(default_agent(&settings).unwrap().as_deref(), Some("coder"));
        assert_eq!(
            settings.cancel_on,
            vec![CanonicalStatus::Cancelled, CanonicalStatus::Done]
        );
        let cases = [
            (
                json!({"agents": {"coder": {"url": "ftp://x"}}}),
                "connectors.a2a.agents.coder.url",
            ),
            (
                json!({"agents": {"co der": {"url": "https://x"}}}),
                "connectors.a2a.agents.co der",
            ),
            (
                json!({"default_agent": "reviewer", "agents": {"coder": {"url": "https://x"}}}),
                "connectors.a2a.default_agent",
            ),
            (
                json!({"agents": {"coder": {"url": "https://x", "protocol": "2"}}}),
                "connectors.a2a",
            ),
            (json!({"agent": {}}), "connectors.a2a"),
        ];
        for (section, named) in cases {
            let err = build(setup(&section)).err().expect("refused");
            assert!(err.contains(named), "{err}");
        }
    }
}
