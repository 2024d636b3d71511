//! The agent API as a `Connector`: reports signed with `X-Statsync-Signature` (every
//! one the event `report`), status changes told to the agents with the entity's links.
//! Agents report only their own doings, so statsync's calls never come back as echoes.

use std::sync::Arc;

use futures_util::future::BoxFuture;
use secrecy::SecretString;

use super::client::AgentClient;
use super::webhook;
use crate::domain::{Origin, OutboundNative, SystemId};
use crate::systems::connector::{Connector, Door};
use crate::systems::outbound::{Delivered, OutboundError, OutboundWrite};
use crate::systems::signature;
use crate::systems::{Parsed, PayloadError};

/// The event of every report (they carry no event header).
const REPORT: &str = "report";

static DOOR: Door = Door {
    system: SystemId::Agentapi,
    name: "agentapi",
    verify: signature::verify_prefixed,
    signature_header: "X-Statsync-Signature",
    credential_also: &[],
    media_types: crate::systems::connector::JSON,
    delivery_header: "X-Statsync-Delivery",
    event_header: None,
    default_event: REPORT,
    events: &[REPORT],
};

pub struct AgentApi {
    pub client: Arc<AgentClient>,
    pub webhook_secret: Option<SecretString>,
}

impl Connector for AgentApi {
    fn door(&self) -> &'static Door {
        &DOOR
    }

    fn webhook_secret(&self) -> Option<&SecretString> {
        self.webhook_secret.as_ref()
    }

    fn parse(&self, _origin: Origin, _event: &str, body: &[u8]) -> Result<Parsed, PayloadError> {
        webhook::parse(body)
    }

    /// Agents are told the canonical status itself, not a native value.
    fn write<'a>(
        &'a self,
        write: &'a OutboundWrite,
        _native: &'a OutboundNative,
    ) -> BoxFuture<'a, Result<Delivered, OutboundError>> {
        Box::pin(self.client.write(write))
    }

    fn writes_come_back(&self) -> bool {
        false
    }

    fn writes_links(&self) -> bool {
        true
    }
}
