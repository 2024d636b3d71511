//! Linear as a `Connector`: deliveries signed with `Linear-Signature` and refused when
//! their `webhookTimestamp` is outside the replay tolerance, writes through GraphQL.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures_util::future::BoxFuture;
use secrecy::SecretString;

use super::backfill::{ListingAccess, TeamListing};
use super::client::LinearClient;
use super::webhook::{self, HANDLED_TYPES};
use crate::domain::{Origin, OutboundNative, SystemId};
use crate::systems::connector::{Connector, Door, Listing, Refusal};
use crate::systems::outbound::{Delivered, OutboundError, OutboundWrite};
use crate::systems::signature;
use crate::systems::{Parsed, PayloadError};

static DOOR: Door = Door {
    system: SystemId::Linear,
    name: "linear",
    verify: signature::verify_linear,
    signature_header: "Linear-Signature",
    credential_also: &[],
    media_types: crate::systems::connector::JSON,
    delivery_header: "Linear-Delivery",
    event_header: Some(("Linear-Event", false)),
    default_event: "Issue",
    events: &HANDLED_TYPES,
};

pub struct Linear {
    pub client: Arc<LinearClient>,
    pub webhook_secret: Option<SecretString>,
    /// What backfill lists the system's objects with.
    pub listing: ListingAccess,
    /// `linear.webhook_tolerance_s`, in milliseconds.
    pub tolerance_ms: i64,
}

impl Connector for Linear {
    fn door(&self) -> &'static Door {
        &DOOR
    }

    fn webhook_secret(&self) -> Option<&SecretString> {
        self.webhook_secret.as_ref()
    }

    fn admit(&self, _event: &str, body: &[u8], now: DateTime<Utc>) -> Result<Parsed, Refusal> {
        let delivery = webhook::parse(body)?;
        webhook::check_timestamp(
            delivery.webhook_timestamp_ms,
            now.timestamp_millis(),
            self.tolerance_ms,
        )
        .map_err(|e| Refusal::Stale(format!("webhookTimestamp: {e}")))?;
        Ok(delivery.parsed)
    }

    /// A backfilled issue is stored as the `create` delivery Linear would have sent.
    fn parse(&self, _origin: Origin, _event: &str, body: &[u8]) -> Result<Parsed, PayloadError> {
        webhook::parse(body).map(|d| d.parsed)
    }

    fn write<'a>(
        &'a self,
        write: &'a OutboundWrite,
        native: &'a OutboundNative,
    ) -> BoxFuture<'a, Result<Delivered, OutboundError>> {
        Box::pin(self.client.write(write, native))
    }

    fn listing(&self) -> Option<Box<dyn Listing + '_>> {
        Some(Box::new(TeamListing {
            access: &self.listing,
        }))
    }
}
