//! The GitHub connector: writes an issue's or pull request's state through REST
//! (`PATCH /repos/{owner}/{repo}/issues/{number}`) and a Projects v2 item's Status
//! through GraphQL (`updateProjectV2ItemFieldValue`), with the project, field and option
//! ids resolved once and cached. It answers every failure as a classified
//! [`OutboundError`]; it never retries by itself (the dispatcher owns retries and rate
//! limits) and never logs or returns the token.

mod admin;
mod item_status;

pub use admin::{Hook, HookDelivery, HookOwner, Identity};

pub use item_status::{ItemRead, ItemStatus, ITEM_STATUS_QUERY};

use std::collections::HashMap;
use std::sync::Mutex;

use chrono::Utc;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Value};

use super::app::Scope;
use super::refs::segment;
use super::rest::SECONDARY_LIMIT_DEFAULT;
pub use super::rest::{as_github, classify, API_VERSION};
use crate::domain::{CanonicalStatus, EntityKind, GithubState, GithubStateReason, OutboundNative};
use crate::systems::limiter::Budget;
use crate::systems::outbound::{
    classify_status, exchange, time_at, until, Delivered, ErrorCode, Exchange, OutboundError,
    OutboundWrite, RateInfo, Written,
};

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
    auth: Auth,
    fields: Mutex<HashMap<String, StatusField>>,
}

/// How calls are authenticated.
pub enum Auth {
    /// No credentials: every write is refused as unauthorized.
    None,
    /// A personal access token (`GITHUB_TOKEN`).
    Token(SecretString),
    /// The team's GitHub App: installation tokens, obtained and renewed as needed.
    App(super::app::AppAuth),
}

pub use super::refs::{parse_issue_ref, IssueRef};

impl GithubClient {
    pub fn new(
        http: reqwest::Client,
        api_url: &str,
        graphql_url: &str,
        auth: Auth,
        budget: Budget,
    ) -> Self {
        GithubClient {
            http,
            api_url: api_url.trim_end_matches('/').to_owned(),
            graphql_url: graphql_url.to_owned(),
            auth,
            budget,
            fields: Mutex::new(HashMap::new()),
        }
    }

    /// The request budget its calls spend.
    pub fn budget(&self) -> &Budget {
        &self.budget
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

    async fn bearer(&self, scope: Scope<'_>) -> Result<SecretString, OutboundError> {
        match &self.auth {
            Auth::None => Err(OutboundError::new(
                ErrorCode::Unauthorized,
                "neither GITHUB_TOKEN nor GITHUB_APP_ID is set",
            )),
            Auth::Token(token) => Ok(token.clone()),
            Auth::App(app) => app.token(scope).await,
        }
    }

    /// One call; with App credentials a refused (401) installation token is replaced
    /// once, as it may have been revoked before its expiry.
    async fn send(
        &self,
        method: reqwest::Method,
        url: &str,
        scope: Scope<'_>,
        body: Option<&Value>,
    ) -> Result<Exchange, OutboundError> {
        let mut renewed = false;
        loop {
            let token = self.bearer(scope).await?;
            let mut request = as_github(
                self.http.request(method.clone(), url),
                token.expose_secret(),
            );
            if let Some(body) = body {
                request = request.json(body);
            }
            let answer = exchange(request).await?;
            match &self.auth {
                Auth::App(app) if answer.status == 401 && !renewed => {
                    app.forget(scope);
                    renewed = true;
                }
                _ => return Ok(answer),
            }
        }
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
            self.api_url,
            segment(issue.owner),
            segment(issue.repo),
            issue.number
        );
        self.budget.acquire().await?;
        let Exchange {
            status,
            headers,
            body: bytes,
        } = self
            .send(
                reqwest::Method::PATCH,
                &url,
                Scope::Repo {
                    owner: issue.owner,
                    repo: issue.repo,
                },
                Some(&body),
            )
            .await?;
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

    /// Who statsync's writes come from: the App's bot (`<slug>[bot]`), or the login the
    /// token acts as (`GET /user`).
    pub async fn whoami(&self) -> Result<String, OutboundError> {
        if let Auth::App(app) = &self.auth {
            return app.bot_login().await;
        }
        match self.identity().await?.0 {
            Identity::User { login, .. } if !login.is_empty() => Ok(login),
            _ => Err(OutboundError::new(
                ErrorCode::ValidationFailed,
                "GET /user answered without a login",
            )),
        }
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
        } = self
            .send(
                reqwest::Method::POST,
                &self.graphql_url,
                Scope::Any,
                Some(&json!({ "query": query, "variables": variables })),
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
