//! What `statsync doctor` and `statsync webhooks register` ask of Linear: who the API key
//! acts as (and Linear's clock), the workspace's webhooks with their recent failures,
//! and creating or mending one (`webhookCreate`, `webhookUpdate`).

use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Value};

use super::{interpret, LinearClient};
use crate::systems::outbound::{date_of, time_at, ErrorCode, OutboundError};

pub const VIEWER_DETAIL_QUERY: &str = "query Viewer { viewer { id name email admin } }";

/// Every webhook of the workspace (the first 100; a workspace with more is not one a
/// team connects by hand), with its last failures.
pub const WEBHOOKS_QUERY: &str = "query Webhooks {
  webhooks(first: 100) {
    nodes {
      id url enabled allPublicTeams resourceTypes updatedAt
      team { key }
      failures { httpStatus createdAt responseOrError }
    }
  }
}";

pub const WEBHOOK_CREATE_MUTATION: &str = "mutation CreateWebhook($input: WebhookCreateInput!) {
  webhookCreate(input: $input) { success webhook { id } }
}";

pub const WEBHOOK_UPDATE_MUTATION: &str =
    "mutation UpdateWebhook($id: String!, $input: WebhookUpdateInput!) {
  webhookUpdate(id: $id, input: $input) { success webhook { id } }
}";

/// The user the API key acts as.
#[derive(Debug, Clone, PartialEq)]
pub struct Viewer {
    pub id: String,
    pub name: String,
    pub email: String,
    /// A workspace admin: only admins manage webhooks.
    pub admin: bool,
}

/// A webhook as Linear lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct LinearWebhook {
    pub id: String,
    pub url: String,
    pub enabled: bool,
    pub all_public_teams: bool,
    /// The team it is scoped to (its key), if one.
    pub team: Option<String>,
    pub resource_types: Vec<String>,
    pub updated_at: Option<DateTime<Utc>>,
    /// Its failed deliveries, newest first.
    pub failures: Vec<WebhookFailure>,
}

/// One failed delivery: the status the receiver answered (None: no answer at all).
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookFailure {
    pub http_status: Option<u16>,
    pub at: Option<DateTime<Utc>>,
    pub response: String,
}

fn webhook_of(v: &Value) -> LinearWebhook {
    let mut failures: Vec<WebhookFailure> = v["failures"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|f| WebhookFailure {
                    http_status: f["httpStatus"].as_f64().map(|s| s as u16),
                    at: time_at(f, "/createdAt"),
                    response: f["responseOrError"].as_str().unwrap_or_default().to_owned(),
                })
                .collect()
        })
        .unwrap_or_default();
    failures.sort_by_key(|f| std::cmp::Reverse(f.at));
    LinearWebhook {
        id: v["id"].as_str().unwrap_or_default().to_owned(),
        url: v["url"].as_str().unwrap_or_default().to_owned(),
        enabled: v["enabled"].as_bool().unwrap_or(false),
        all_public_teams: v["allPublicTeams"].as_bool().unwrap_or(false),
        team: v["team"]["key"].as_str().map(str::to_uppercase),
        resource_types: v["resourceTypes"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default(),
        updated_at: time_at(v, "/updatedAt"),
        failures,
    }
}

impl LinearClient {
    /// Who the API key acts as, and Linear's clock (its `Date` header).
    pub async fn viewer(&self) -> Result<(Viewer, Option<DateTime<Utc>>), OutboundError> {
        let answer = self.post(VIEWER_DETAIL_QUERY, json!({})).await?;
        let date = date_of(&answer.headers);
        let (data, _) = interpret(answer.status, &answer.headers, &answer.body)?;
        let v = &data["viewer"];
        let Some(id) = v["id"].as_str() else {
            return Err(OutboundError::new(
                ErrorCode::ValidationFailed,
                "query { viewer } answered without an id",
            ));
        };
        let viewer = Viewer {
            id: id.to_owned(),
            name: v["name"].as_str().unwrap_or_default().to_owned(),
            email: v["email"].as_str().unwrap_or_default().to_owned(),
            admin: v["admin"].as_bool().unwrap_or(false),
        };
        Ok((viewer, date))
    }

    pub async fn webhooks(&self) -> Result<Vec<LinearWebhook>, OutboundError> {
        let (data, _) = self.graphql(WEBHOOKS_QUERY, json!({})).await?;
        Ok(data["webhooks"]["nodes"]
            .as_array()
            .map(|a| a.iter().map(webhook_of).collect())
            .unwrap_or_default())
    }

    /// Creates a webhook for team `team` (its key), or, with `Some(id)`, makes that
    /// webhook so: `url`, `resource_types`, signed with `secret`, enabled.
    pub async fn put_webhook(
        &self,
        existing: Option<&str>,
        team: &str,
        url: &str,
        resource_types: &[&str],
        secret: &SecretString,
    ) -> Result<(), OutboundError> {
        let mut input = json!({
            "url": url,
            "resourceTypes": resource_types,
            "secret": secret.expose_secret(),
            "enabled": true,
            "label": "statsync",
        });
        let (document, variables, field) = match existing {
            Some(id) => (
                WEBHOOK_UPDATE_MUTATION,
                json!({ "id": id, "input": input }),
                "webhookUpdate",
            ),
            None => {
                input["teamId"] = json!(team);
                (
                    WEBHOOK_CREATE_MUTATION,
                    json!({ "input": input }),
                    "webhookCreate",
                )
            }
        };
        let (data, _) = self.graphql(document, variables).await?;
        if data[field]["success"] != json!(true) {
            return Err(OutboundError::new(
                ErrorCode::ValidationFailed,
                format!("{field} answered without success"),
            ));
        }
        Ok(())
    }
}
