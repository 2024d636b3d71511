//! Reading a project item's Status back. A `projects_v2_item.edited` delivery names the
//! field that changed but not its new value; this read supplies it. It is an ordinary
//! GraphQL call through the same budget as every other GitHub call, so it must be made
//! outside any transaction, like the writes.

use serde_json::json;

use super::GithubClient;
use crate::systems::outbound::{ErrorCode, OutboundError, RateInfo};

pub const ITEM_STATUS_QUERY: &str = "query($item: ID!) {
  node(id: $item) {
    ... on ProjectV2Item {
      id
      fieldValueByName(name: \"Status\") {
        ... on ProjectV2ItemFieldSingleSelectValue { name optionId }
      }
    }
  }
}";

/// The Status option a project item shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemStatus {
    pub name: String,
    pub option_id: String,
}

/// A successful read: the option (`None` when the item has no Status value set), and
/// what the API said about its limits.
#[derive(Debug, Clone)]
pub struct ItemRead {
    pub status: Option<ItemStatus>,
    pub rate: RateInfo,
}

impl GithubClient {
    /// The item's Status option. An item that does not exist (deleted, or not a project
    /// item) is `NOT_FOUND`.
    pub async fn item_status(&self, item: &str) -> Result<ItemRead, OutboundError> {
        let (data, rate) = self
            .graphql(ITEM_STATUS_QUERY, json!({ "item": item }))
            .await?;
        let status = status_of(item, &data)?;
        Ok(ItemRead { status, rate })
    }
}

fn status_of(item: &str, data: &serde_json::Value) -> Result<Option<ItemStatus>, OutboundError> {
    let node = &data["node"];
    if node["id"].as_str().is_none() {
        return Err(OutboundError::new(
            ErrorCode::NotFound,
            format!("{item} is not a project item"),
        ));
    }
    let value = &node["fieldValueByName"];
    if value.is_null() {
        return Ok(None);
    }
    match (value["name"].as_str(), value["optionId"].as_str()) {
        (Some(name), Some(option_id)) => Ok(Some(ItemStatus {
            name: name.to_owned(),
            option_id: option_id.to_owned(),
        })),
        _ => Err(OutboundError::new(
            ErrorCode::ValidationFailed,
            format!("the Status field of {item} is not a single-select field"),
        )),
    }
}
