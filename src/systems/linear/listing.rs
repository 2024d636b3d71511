//! Reading a team's issues page by page through GraphQL (`issues` with a team and
//! `updatedAt` filter, cursor pagination), each with its state, team and attachments.
//! Never retries by itself and never logs the API key.

use chrono::{DateTime, SecondsFormat, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Value};

use super::client::interpret;
use crate::systems::outbound::{exchange, ErrorCode, OutboundError, RateInfo};

/// One page of a team's issues, archived ones included, changed after a time.
pub const ISSUES_PAGE_QUERY: &str =
    "query TeamIssues($filter: IssueFilter, $first: Int, $after: String) {
  issues(filter: $filter, first: $first, after: $after, includeArchived: true) {
    nodes {
      id identifier title description url updatedAt
      team { key }
      state { id name type }
      attachments { nodes { url } }
    }
    pageInfo { hasNextPage endCursor }
  }
}";

#[derive(Debug, Clone, Default)]
pub struct Page {
    pub items: Vec<Value>,
    pub end_cursor: Option<String>,
    pub has_next: bool,
    pub rate: RateInfo,
}

/// The `IssueFilter` of a team's issues updated after `since`.
pub fn filter(team: &str, since: Option<DateTime<Utc>>) -> Value {
    let mut f = json!({ "team": { "key": { "eq": team } } });
    if let Some(since) = since {
        f["updatedAt"] = json!({ "gt": since.to_rfc3339_opts(SecondsFormat::Millis, true) });
    }
    f
}

pub async fn page(
    http: &reqwest::Client,
    url: &str,
    api_key: Option<&SecretString>,
    filter: &Value,
    first: u32,
    after: Option<&str>,
) -> Result<Page, OutboundError> {
    let key = api_key
        .ok_or_else(|| OutboundError::new(ErrorCode::Unauthorized, "LINEAR_API_KEY is not set"))?;
    let variables = json!({ "filter": filter, "first": first, "after": after });
    let answer = exchange(
        http.post(url)
            .header("Authorization", key.expose_secret())
            .header(
                "User-Agent",
                concat!("statsync/", env!("CARGO_PKG_VERSION")),
            )
            .json(&json!({ "query": ISSUES_PAGE_QUERY, "variables": variables })),
    )
    .await?;
    let (data, rate) = interpret(answer.status, &answer.headers, &answer.body)?;
    let issues = &data["issues"];
    let Some(items) = issues["nodes"].as_array() else {
        return Err(OutboundError::new(
            ErrorCode::Upstream5xx,
            "Linear's answer has no issues.nodes",
        ));
    };
    Ok(Page {
        items: items.clone(),
        end_cursor: issues["pageInfo"]["endCursor"].as_str().map(str::to_owned),
        has_next: issues["pageInfo"]["hasNextPage"].as_bool().unwrap_or(false),
        rate,
    })
}
