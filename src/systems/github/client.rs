//! The GitHub connector: writes an issue's or pull request's state through REST
//! (`PATCH /repos/{owner}/{repo}/issues/{number}`) and a Projects v2 item's Status
//! through GraphQL (`updateProjectV2ItemFieldValue`), with the project, field and option
//! ids resolved once and cached. It answers every failure as a classified
//! [`OutboundError`]; it never retries by itself (the dispatcher owns retries and rate
//! limits) and never logs or returns the token.

mod item_status;

pub use item_status::{ItemRead, ItemStatus, ITEM_STATUS_QUERY};

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use chrono::Utc;
use reqwest::header::HeaderMap;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Value};

use crate::domain::{CanonicalStatus, EntityKind, GithubState, GithubStateReason, OutboundNative};
use crate::systems::limiter::Budget;
use crate::systems::outbound::{
    classify_status, excerpt, exchange, retry_after, time_at, until, Delivered, ErrorCode,
    Exchange, OutboundError, OutboundWrite, RateInfo, Written,
};

/// The REST API version statsync is written against.
pub const API_VERSION: &str = "2022-11-28";
/// GitHub's advice when a secondary limit names no wait: at least a minute.
const SECONDARY_LIMIT_DEFAULT: Duration = Duration::from_secs(60);

/// Reads a Projects v2 item's project and its single-select "Status" field.
pub const ITEM_FIELDS_QUERY: &str = "query($item: ID!) {
  node(id: $item) {
    ... on ProjectV2Item {
      id
      project {
        id
        field(name: \"Status\") {
          ... on ProjectV2SingleSelectField { id options { id name } }
        }
      }
    }
  }
}";

pub const SET_OPTION_MUTATION: &str = "mutation($project: ID!, $item: ID!, $field: ID!, $option: String!) {
  updateProjectV2ItemFieldValue(input: {projectId: $project, itemId: $item, fieldId: $field, value: {singleSelectOptionId: $option}}) {
    projectV2Item { id updatedAt }
  }
}";

/// A board's Status options, by its owner (user or organization) and number.
pub const PROJECT_OPTIONS_QUERY: &str = "query($owner: String!, $number: Int!) {
  repositoryOwner(login: $owner) {
    ... on ProjectV2Owner {
      projectV2(number: $number) {
        title
        field(name: \"Status\") {
          ... on ProjectV2SingleSelectField { options { name } }
        }
      }
    }
  }
}";

/// A project item's Status field, as resolved through the API.
#[derive(Debug, Clone)]
struct StatusField {
    project_id: String,
    field_id: String,
    /// Option name (lower-cased) → option id.
    options: HashMap<String, String>,
}

pub struct GithubClient {
    /// One token per HTTP request; shared with the dispatcher.
    budget: Budget,
    http: reqwest::Client,
    api_url: String,
    graphql_url: String,
    token: Option<SecretString>,
    fields: Mutex<HashMap<String, StatusField>>,
}

/// `owner/repo#123`, parsed.
#[derive(Debug, PartialEq)]
pub struct IssueRef<'a> {
    pub owner: &'a str,
    pub repo: &'a str,
    pub number: u64,
}

pub fn parse_issue_ref(external_id: &str) -> Option<IssueRef<'_>> {
    let (repo_path, number) = external_id.rsplit_once('#')?;
    let (owner, repo) = repo_path.split_once('/')?;
    let valid = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    };
    if !valid(owner) || !valid(repo) {
        return None;
    }
    Some(IssueRef {
        owner,
        repo,
        number: number.parse().ok().filter(|n| *n > 0)?,
    })
}

impl GithubClient {
    pub fn new(
        http: reqwest::Client,
        api_url: &str,
        graphql_url: &str,
        token: Option<SecretString>,
        budget: Budget,
    ) -> Self {
        GithubClient {
            http,
            api_url: api_url.trim_end_matches('/').to_owned(),
            graphql_url: graphql_url.to_owned(),
            token,
            budget,
            fields: Mutex::new(HashMap::new()),
        }
    }

    pub async fn write(
        &self,
        w: &OutboundWrite,
        native: &OutboundNative,
    ) -> Result<Delivered, OutboundError> {
        match native {
            OutboundNative::GithubIssue {
                state,
                state_reason,
            } => self.patch_state(w, *state, *state_reason).await,
            OutboundNative::GithubProjectOption { name } => self.set_option(w, name).await,
            other => Err(OutboundError::new(
                ErrorCode::ValidationFailed,
                format!("{other:?} is not a GitHub value"),
            )),
        }
    }

    fn token(&self) -> Result<&str, OutboundError> {
        self.token
            .as_ref()
            .map(|t| t.expose_secret())
            .ok_or_else(|| OutboundError::new(ErrorCode::Unauthorized, "GITHUB_TOKEN is not set"))
    }

    fn request(
        &self,
        method: reqwest::Method,
        url: &str,
    ) -> Result<reqwest::RequestBuilder, OutboundError> {
        Ok(self
            .http
            .request(method, url)
            .bearer_auth(self.token()?)
            .header("Accept", "application/vnd.github+json")
            .header("X-GitHub-Api-Version", API_VERSION)
            .header(
                "User-Agent",
                concat!("statsync/", env!("CARGO_PKG_VERSION")),
            ))
    }

    async fn patch_state(
        &self,
        w: &OutboundWrite,
        state: GithubState,
        reason: Option<GithubStateReason>,
    ) -> Result<Delivered, OutboundError> {
        let Some(issue) = parse_issue_ref(&w.external_id) else {
            return Err(OutboundError::new(
                ErrorCode::ValidationFailed,
                format!("`{}` is not an owner/repo#number reference", w.external_id),
            ));
        };
        let Some(body) = patch_body(w.kind, w.status, w.previous_status, state, reason) else {
            return Ok(Delivered {
                written: Written::Noop(
                    "a pull request is merged on GitHub, not by a status change: nothing written"
                        .into(),
                ),
                rate: RateInfo::default(),
                object_updated_at: None,
            });
        };
        let url = format!(
            "{}/repos/{}/{}/issues/{}",
            self.api_url, issue.owner, issue.repo, issue.number
        );
        self.budget.acquire().await?;
        let Exchange {
            status,
            headers,
            body: bytes,
        } = exchange(self.request(reqwest::Method::PATCH, &url)?.json(&body)).await?;
        let rate = RateInfo::github(&headers);
        if classify_status(status).is_none() {
            // The answer is the issue as the write left it.
            return Ok(Delivered {
                written: Written::Done,
                rate,
                object_updated_at: serde_json::from_slice::<Value>(&bytes)
                    .ok()
                    .and_then(|v| time_at(&v, "/updated_at")),
            });
        }
        Err(classify(status, &headers, &bytes))
    }

    /// The title and Status options of board `number` of `owner`.
    pub async fn project_status_options(
        &self,
        owner: &str,
        number: u64,
    ) -> Result<(String, Vec<String>), OutboundError> {
        let (data, _) = self
            .graphql(
                PROJECT_OPTIONS_QUERY,
                json!({ "owner": owner, "number": number }),
            )
            .await?;
        let project = &data["repositoryOwner"]["projectV2"];
        let Some(options) = project["field"]["options"].as_array() else {
            return Err(OutboundError::new(
                ErrorCode::NotFound,
                format!("{owner} has no project {number} with a single-select Status field"),
            ));
        };
        let names = options
            .iter()
            .filter_map(|o| o["name"].as_str().map(str::to_owned))
            .collect();
        let title = project["title"].as_str().unwrap_or_default().to_owned();
        Ok((title, names))
    }

    /// The login this token acts as (`GET /user`): statsync's identity on GitHub.
    pub async fn whoami(&self) -> Result<String, OutboundError> {
        let url = format!("{}/user", self.api_url);
        self.budget.acquire().await?;
        let Exchange {
            status,
            headers,
            body,
        } = exchange(self.request(reqwest::Method::GET, &url)?).await?;
        if classify_status(status).is_some() {
            return Err(classify(status, &headers, &body));
        }
        serde_json::from_slice::<Value>(&body)
            .ok()
            .and_then(|v| v["login"].as_str().map(str::to_owned))
            .ok_or_else(|| {
                OutboundError::new(
                    ErrorCode::ValidationFailed,
                    format!("GET /user answered without a login: {}", excerpt(&body)),
                )
            })
    }

    async fn set_option(&self, w: &OutboundWrite, name: &str) -> Result<Delivered, OutboundError> {
        let item = w.external_id.as_str();
        let mut refreshed = false;
        let (field, option) = loop {
            let cached = self.cached_field(item);
            let field = match cached {
                Some(f) if !refreshed => f,
                _ => {
                    refreshed = true;
                    self.resolve_field(item).await?
                }
            };
            match field.options.get(&name.trim().to_lowercase()) {
                Some(id) => break (field.clone(), id.clone()),
                // The board's options may have changed since they were cached.
                None if !refreshed => refreshed = true,
                None => {
                    return Err(OutboundError::new(
                        ErrorCode::ValidationFailed,
                        format!("project of item {item} has no Status option `{name}`"),
                    ))
                }
            }
        };
        let variables = json!({
            "project": field.project_id,
            "item": item,
            "field": field.field_id,
            "option": option,
        });
        let (data, rate) = self.graphql(SET_OPTION_MUTATION, variables).await?;
        Ok(Delivered {
            written: Written::Done,
            rate,
            object_updated_at: time_at(
                &data,
                "/updateProjectV2ItemFieldValue/projectV2Item/updatedAt",
            ),
        })
    }

    fn cached_field(&self, item: &str) -> Option<StatusField> {
        // A poisoned cache only loses cached ids: start it afresh.
        let cache = self.fields.lock().unwrap_or_else(|p| p.into_inner());
        cache.get(item).cloned()
    }

    async fn resolve_field(&self, item: &str) -> Result<StatusField, OutboundError> {
        let (data, _) = self
            .graphql(ITEM_FIELDS_QUERY, json!({ "item": item }))
            .await?;
        let node = &data["node"];
        let field = &node["project"]["field"];
        let (Some(project_id), Some(field_id), Some(options)) = (
            node["project"]["id"].as_str(),
            field["id"].as_str(),
            field["options"].as_array(),
        ) else {
            return Err(OutboundError::new(
                ErrorCode::NotFound,
                format!("{item} is not a project item with a single-select Status field"),
            ));
        };
        let resolved = StatusField {
            project_id: project_id.to_owned(),
            field_id: field_id.to_owned(),
            options: options
                .iter()
                .filter_map(|o| {
                    Some((
                        o["name"].as_str()?.trim().to_lowercase(),
                        o["id"].as_str()?.to_owned(),
                    ))
                })
                .collect(),
        };
        let mut cache = self.fields.lock().unwrap_or_else(|p| p.into_inner());
        cache.insert(item.to_owned(), resolved.clone());
        Ok(resolved)
    }

    /// One GraphQL call; `errors` in a 200 answer are failures too.
    async fn graphql(
        &self,
        query: &str,
        variables: Value,
    ) -> Result<(Value, RateInfo), OutboundError> {
        self.budget.acquire().await?;
        let Exchange {
            status,
            headers,
            body: bytes,
        } = exchange(
            self.request(reqwest::Method::POST, &self.graphql_url)?
                .json(&json!({ "query": query, "variables": variables })),
        )
        .await?;
        if classify_status(status).is_some() {
            return Err(classify(status, &headers, &bytes));
        }
        let rate = RateInfo::github(&headers);
        let body: Value = serde_json::from_slice(&bytes).map_err(|e| {
            OutboundError::new(
                ErrorCode::Upstream5xx,
                format!("GraphQL answer is not JSON: {e}"),
            )
        })?;
        if let Some(first) = body["errors"].as_array().and_then(|e| e.first()) {
            let kind = first["type"].as_str().unwrap_or("");
            let message = first["message"]
                .as_str()
                .unwrap_or("GraphQL error")
                .to_owned();
            let code = match kind {
                "RATE_LIMITED" => ErrorCode::RateLimit,
                "NOT_FOUND" => ErrorCode::NotFound,
                "FORBIDDEN" | "INSUFFICIENT_SCOPES" => ErrorCode::InsufficientPermissions,
                "INTERNAL" => ErrorCode::Upstream5xx,
                _ => ErrorCode::ValidationFailed,
            };
            let mut e = OutboundError::new(code, format!("GraphQL error: {message}"));
            if code == ErrorCode::RateLimit {
                e.retry_after = Some(
                    rate.reset_at
                        .map(|at| until(at, Utc::now()))
                        .unwrap_or(SECONDARY_LIMIT_DEFAULT),
                );
            }
            e.rate = rate;
            return Err(e);
        }
        Ok((body["data"].clone(), rate))
    }
}

/// The PATCH body, or `None` when the status cannot be produced by a write.
pub fn patch_body(
    kind: EntityKind,
    status: CanonicalStatus,
    previous: Option<CanonicalStatus>,
    state: GithubState,
    reason: Option<GithubStateReason>,
) -> Option<Value> {
    let pull_request = kind == EntityKind::PullRequest;
    if pull_request && status == CanonicalStatus::Done {
        return None;
    }
    // Pull requests have no state_reason; an issue leaving a closed state says why.
    let reason = match (pull_request, state) {
        (true, _) => None,
        (false, GithubState::Open) if previous.is_some_and(CanonicalStatus::is_terminal) => {
            Some(GithubStateReason::Reopened)
        }
        (false, _) => reason,
    };
    let mut body = json!({ "state": state });
    if let Some(r) = reason {
        body["state_reason"] = json!(r);
    }
    Some(body)
}

/// A non-2xx REST answer as a stable code. GitHub answers both 403 and 429 for rate
/// limits (primary: `x-ratelimit-remaining: 0`; secondary: `retry-after`, or a message
/// saying so), and 403 for writes to archived repositories.
pub fn classify(status: u16, headers: &HeaderMap, body: &[u8]) -> OutboundError {
    let now = Utc::now();
    let rate = RateInfo::github(headers);
    let message = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v["message"].as_str().map(str::to_owned))
        .unwrap_or_else(|| excerpt(body));
    let lower = message.to_lowercase();
    let told = retry_after(headers, now);
    let limited = told.is_some() || rate.remaining == Some(0) || lower.contains("rate limit");
    let code = match status {
        403 | 429 if limited => ErrorCode::RateLimit,
        403 if lower.contains("archived") => ErrorCode::RepoArchived,
        s => classify_status(s).unwrap_or(ErrorCode::Upstream5xx),
    };
    let retry_after = match code {
        ErrorCode::RateLimit => Some(
            told.or_else(|| rate.exhausted_until().map(|at| until(at, now)))
                .unwrap_or(SECONDARY_LIMIT_DEFAULT),
        ),
        _ => told,
    };
    OutboundError {
        code,
        message: format!("GitHub answered {status}: {message}"),
        retry_after,
        rate,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn issue_refs_parse_strictly() {
        assert_eq!(
            parse_issue_ref("Codertocat/Hello-World#12"),
            Some(IssueRef {
                owner: "Codertocat",
                repo: "Hello-World",
                number: 12
            })
        );
        for bad in ["Hello-World#1", "a/b#0", "a/b#x", "a/../b#1", "a/b"] {
            assert_eq!(parse_issue_ref(bad), None, "{bad}");
        }
    }

    #[test]
    fn reopening_a_closed_issue_says_reopened_and_pull_requests_are_never_merged() {
        let open = patch_body(
            EntityKind::Issue,
            CanonicalStatus::InProgress,
            Some(CanonicalStatus::Done),
            GithubState::Open,
            None,
        );
        assert_eq!(
            open,
            Some(json!({"state": "open", "state_reason": "reopened"}))
        );
        let closed = patch_body(
            EntityKind::Issue,
            CanonicalStatus::Cancelled,
            Some(CanonicalStatus::Todo),
            GithubState::Closed,
            Some(GithubStateReason::NotPlanned),
        );
        assert_eq!(
            closed,
            Some(json!({"state": "closed", "state_reason": "not_planned"}))
        );
        let merged = patch_body(
            EntityKind::PullRequest,
            CanonicalStatus::Done,
            None,
            GithubState::Closed,
            Some(GithubStateReason::Completed),
        );
        assert_eq!(merged, None);
    }

    #[test]
    fn secondary_limits_archived_repos_and_permissions_are_told_apart() {
        let mut h = HeaderMap::new();
        h.insert("retry-after", HeaderValue::from_static("3"));
        let e = classify(
            403,
            &h,
            br#"{"message":"You have exceeded a secondary rate limit."}"#,
        );
        assert_eq!(e.code, ErrorCode::RateLimit);
        assert_eq!(e.retry_after, Some(Duration::from_secs(3)));

        let e = classify(
            403,
            &HeaderMap::new(),
            br#"{"message":"Repository was archived so is read-only."}"#,
        );
        assert_eq!(e.code, ErrorCode::RepoArchived);
        let e = classify(
            403,
            &HeaderMap::new(),
            br#"{"message":"Resource not accessible by integration"}"#,
        );
        assert_eq!(e.code, ErrorCode::InsufficientPermissions);
        let e = classify(401, &HeaderMap::new(), br#"{"message":"Bad credentials"}"#);
        assert_eq!(e.code, ErrorCode::Unauthorized);
        assert!(e.message.contains("Bad credentials"));
        let e = classify(502, &HeaderMap::new(), b"<html>bad gateway</html>");
        assert_eq!(e.code, ErrorCode::Upstream5xx);
    }
}
