//! A team's listing for backfill (`Connector::listing`): its issues page by page through
//! GraphQL, each stored as the `Issue` `create` delivery Linear would have sent (not a
//! person's change).

use chrono::Utc;
use futures_util::future::BoxFuture;
use secrecy::SecretString;
use serde_json::{json, Value};

use super::listing;
use crate::domain::{ExternalRef, SystemId};
use crate::systems::connector::{ListFrom, ListedObject, ListedPage, Listing};
use crate::systems::outbound::OutboundError;
use crate::systems::rfc3339;

/// What a team listing reads with: the GraphQL endpoint and the API key.
pub struct ListingAccess {
    pub http: reqwest::Client,
    pub url: String,
    pub api_key: Option<SecretString>,
}

pub struct TeamListing<'a> {
    pub access: &'a ListingAccess,
}

impl Listing for TeamListing<'_> {
    fn page<'a>(
        &'a mut self,
        from: ListFrom<'a>,
    ) -> BoxFuture<'a, Result<Option<ListedPage>, OutboundError>> {
        Box::pin(self.read(from))
    }
}

impl TeamListing<'_> {
    async fn read(&self, from: ListFrom<'_>) -> Result<Option<ListedPage>, OutboundError> {
        let access = self.access;
        let team = from.scope;
        let page = listing::page(
            &access.http,
            &access.url,
            access.api_key.as_ref(),
            &listing::filter(team, from.since),
            from.page_size,
            from.position,
        )
        .await?;
        Ok(Some(ListedPage {
            items: page.items.iter().filter_map(|i| listed(team, i)).collect(),
            next: page.has_next.then_some(page.end_cursor).flatten(),
            rate: page.rate,
            percent: None,
            first_page: None,
        }))
    }
}

/// A Linear issue node as a stored `Issue` `create` delivery:
/// `backfill:linear:<team>:<id>:<updatedAt>`.
fn listed(team: &str, node: &Value) -> Option<ListedObject> {
    let id = node["id"].as_str()?;
    let stamp = node["updatedAt"].as_str()?;
    let mut data = node.clone();
    data["stateId"] = node["state"]["id"].clone();
    let body = json!({
        "type": "Issue",
        "action": "create",
        "webhookTimestamp": Utc::now().timestamp_millis(),
        "url": node["url"],
        "data": data,
    });
    Some(ListedObject {
        delivery_id: format!("backfill:linear:{team}:{id}:{stamp}"),
        event_type: "Issue",
        body: serde_json::to_vec(&body).ok()?,
        target: ExternalRef::new(SystemId::Linear, id),
        updated_at: rfc3339(&node["updatedAt"]),
    })
}
