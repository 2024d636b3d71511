//! GitHub as a `Connector`: deliveries signed with `X-Hub-Signature-256`, events named
//! by `X-GitHub-Event` (those statsync does not read are answered unread), writes
//! through the REST and GraphQL client.

use std::sync::Arc;

use futures_util::future::BoxFuture;
use secrecy::SecretString;

use super::backfill::{ListingAccess, RepoListing};
use super::client::GithubClient;
use super::read_back;
use super::webhook::{self, READ_EVENTS};
use crate::domain::{Origin, OutboundNative, SystemId};
use crate::systems::connector::{Connector, Door, Listing, ReadBack, ReadBackRequest};
use crate::systems::outbound::{Delivered, OutboundError, OutboundWrite};
use crate::systems::signature;
use crate::systems::{Parsed, PayloadError};

static DOOR: Door = Door {
    system: SystemId::Github,
    name: "github",
    verify: signature::verify_github,
    signature_header: "X-Hub-Signature-256",
    credential_also: &[],
    media_types: crate::systems::connector::JSON,
    delivery_header: "X-GitHub-Delivery",
    event_header: Some(("X-GitHub-Event", true)),
    default_event: "",
    events: &READ_EVENTS,
};

pub struct Github {
    pub client: Arc<GithubClient>,
    pub webhook_secret: Option<SecretString>,
    /// What backfill lists the system's objects with.
    pub listing: ListingAccess,
}

impl Connector for Github {
    fn door(&self) -> &'static Door {
        &DOOR
    }

    fn webhook_secret(&self) -> Option<&SecretString> {
        self.webhook_secret.as_ref()
    }

    fn ignored_unread(&self, event: &str) -> Option<String> {
        // A `push` of thousands of commits is larger than any delivery statsync reads,
        // and GitHub would show it as failed if answered 413. Unread, its signature is
        // not checked, and need not be: nothing is stored or done, whoever sent it.
        (!READ_EVENTS.contains(&event)).then(|| format!("GitHub event `{event}` is not handled"))
    }

    fn parse(&self, origin: Origin, event: &str, body: &[u8]) -> Result<Parsed, PayloadError> {
        webhook::parse_stored(origin, event, body)
    }

    fn write<'a>(
        &'a self,
        write: &'a OutboundWrite,
        native: &'a OutboundNative,
    ) -> BoxFuture<'a, Result<Delivered, OutboundError>> {
        Box::pin(self.client.write(write, native))
    }

    fn read_back<'a>(
        &'a self,
        request: ReadBackRequest<'a>,
    ) -> Option<BoxFuture<'a, Result<ReadBack, OutboundError>>> {
        Some(Box::pin(async move {
            let read = self.client.item_status(request.object).await?;
            Ok(ReadBack {
                value: read_back::value(&request, read.status),
                rate: read.rate,
            })
        }))
    }

    fn listing(&self) -> Option<Box<dyn Listing + '_>> {
        Some(Box::new(RepoListing::new(&self.listing)))
    }
}
