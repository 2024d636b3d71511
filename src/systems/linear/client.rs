//! The Linear connector: moves an issue to a workflow state with GraphQL
//! `issueUpdate(id:, input: {stateId:})`. A status names a state (by configured name, or
//! the lowest-position state of a type); each team's states are fetched with
//! `workflowStates` filtered by team, cached, and refreshed once on a miss. GraphQL
//! `errors` inside a 200 answer are failures, and `RATELIMITED` is a rate limit whatever
//! the HTTP status. It never retries by itself and never logs or returns the API key.

use std::collections::HashMap;
use std::sync::Mutex;

use chrono::Utc;
use reqwest::header::HeaderMap;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{json, Value};

mod admin;

pub use admin::{
    LinearWebhook, Viewer, WebhookFailure, VIEWER_DETAIL_QUERY, WEBHOOKS_QUERY,
    WEBHOOK_CREATE_MUTATION, WEBHOOK_UPDATE_MUTATION,
};

use crate::domain::OutboundNative;
use crate::systems::limiter::Budget;
use crate::systems::outbound::{
    classify_status, excerpt, exchange, retry_after, time_at, until, Delivered, ErrorCode,
    Exchange, OutboundError, OutboundWrite, RateInfo, Written,
};

/// Every workflow state of one team (by team key). 250 is Linear's page maximum; a team
/// with more states than that is not a workflow anyone runs.
pub const WORKFLOW_STATES_QUERY: &str = "query TeamStates($team: String!) {
  workflowStates(filter: {team: {key: {eq: $team}}}, first: 250) {
    nodes { id name type position }
  }
}";

/// The team of an issue whose entity does not know it.
pub const ISSUE_TEAM_QUERY: &str = "query IssueTeam($id: String!) {
  issue(id: $id) { id team { key } }
}";

pub const ISSUE_UPDATE_MUTATION: &str = "mutation SetState($id: String!, $stateId: String!) {
  issueUpdate(id: $id, input: {stateId: $stateId}) {
    success
    issue { id updatedAt state { id name type } }
  }
}";

/// Without a reset time, wait this long after a rate-limit answer.
const DEFAULT_LIMIT_WAIT: std::time::Duration = std::time::Duration::from_secs(60);

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct WorkflowState {
    pub id: String,
    pub name: String,
    #[serde(rename = "type")]
    pub state_type: String,
    pub position: f64,
}

pub struct LinearClient {
    /// One token per HTTP request; shared with the dispatcher.
    budget: Budget,
    http: reqwest::Client,
    url: String,
    api_key: Option<SecretString>,
    /// Team key (upper-cased) → its workflow states.
    states: Mutex<HashMap<String, Vec<WorkflowState>>>,
}

/// The state to write: the configured name, else the lowest-position state of the type.
pub fn pick_state<'s>(
    states: &'s [WorkflowState],
    name: Option<&str>,
    state_type: &str,
) -> Option<&'s WorkflowState> {
    match name {
        Some(name) => states
            .iter()
            .find(|s| s.name.trim().eq_ignore_ascii_case(name.trim())),
        None => states
            .iter()
            .filter(|s| s.state_type == state_type)
            .min_by(|a, b| a.position.total_cmp(&b.position)),
    }
}

impl LinearClient {
    pub fn new(
        http: reqwest::Client,
        url: &str,
        api_key: Option<SecretString>,
        budget: Budget,
    ) -> Self {
        LinearClient {
            http,
            url: url.to_owned(),
            api_key,
            budget,
            states: Mutex::new(HashMap::new()),
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
        let OutboundNative::LinearState { name, state_type } = native else {
            return Err(OutboundError::new(
                ErrorCode::ValidationFailed,
                format!("{native:?} is not a Linear value"),
            ));
        };
        let team = match &w.project {
            Some(team) => team.to_uppercase(),
            None => self.team_of(&w.external_id).await?,
        };
        let wanted = || match name {
            Some(n) => format!("state `{n}`"),
            None => format!("a state of type `{state_type}`"),
        };
        let mut state = match self.cached(&team) {
            Some(states) => pick_state(&states, name.as_deref(), state_type).cloned(),
            None => None,
        };
        if state.is_none() {
            // Not cached, or the team's workflow changed since: fetch it again once.
            let states = self.fetch_states(&team).await?;
            state = pick_state(&states, name.as_deref(), state_type).cloned();
        }
        let Some(state) = state else {
            return Err(OutboundError::new(
                ErrorCode::ValidationFailed,
                format!("Linear team {team} has no {}", wanted()),
            ));
        };
        let (data, rate) = self
            .graphql(
                ISSUE_UPDATE_MUTATION,
                json!({ "id": w.external_id, "stateId": state.id }),
            )
            .await?;
        if data["issueUpdate"]["success"] != json!(true) {
            return Err(OutboundError::new(
                ErrorCode::ValidationFailed,
                format!("issueUpdate answered without success for {}", w.external_id),
            ));
        }
        Ok(Delivered {
            written: Written::Done,
            rate,
            object_updated_at: time_at(&data, "/issueUpdate/issue/updatedAt"),
        })
    }

    fn cached(&self, team: &str) -> Option<Vec<WorkflowState>> {
        // A poisoned cache only loses cached states: start it afresh.
        let cache = self.states.lock().unwrap_or_else(|p| p.into_inner());
        cache.get(team).cloned()
    }

    /// Every workflow state of team `team` (its key), in position order.
    pub async fn team_states(&self, team: &str) -> Result<Vec<WorkflowState>, OutboundError> {
        let mut states = self.fetch_states(&team.to_uppercase()).await?;
        states.sort_by(|a, b| a.position.total_cmp(&b.position));
        Ok(states)
    }

    async fn fetch_states(&self, team: &str) -> Result<Vec<WorkflowState>, OutboundError> {
        let (data, _) = self
            .graphql(WORKFLOW_STATES_QUERY, json!({ "team": team }))
            .await?;
        let states: Vec<WorkflowState> =
            serde_json::from_value(data["workflowStates"]["nodes"].clone()).map_err(|e| {
                OutboundError::new(
                    ErrorCode::Upstream5xx,
                    format!("workflowStates answer is not understood: {e}"),
                )
            })?;
        let mut cache = self.states.lock().unwrap_or_else(|p| p.into_inner());
        cache.insert(team.to_owned(), states.clone());
        Ok(states)
    }

    /// The user this API key acts as: statsync's identity in Linear.
    pub async fn viewer_id(&self) -> Result<String, OutboundError> {
        Ok(self.viewer().await?.0.id)
    }

    async fn team_of(&self, issue: &str) -> Result<String, OutboundError> {
        let (data, _) = self
            .graphql(ISSUE_TEAM_QUERY, json!({ "id": issue }))
            .await?;
        data["issue"]["team"]["key"]
            .as_str()
            .map(str::to_uppercase)
            .ok_or_else(|| {
                OutboundError::new(
                    ErrorCode::NotFound,
                    format!("Linear issue {issue} not found"),
                )
            })
    }

    async fn graphql(
        &self,
        query: &str,
        variables: Value,
    ) -> Result<(Value, RateInfo), OutboundError> {
        let answer = self.post(query, variables).await?;
        interpret(answer.status, &answer.headers, &answer.body)
    }

    /// One GraphQL request, answered as it came.
    async fn post(&self, query: &str, variables: Value) -> Result<Exchange, OutboundError> {
        let key = self.api_key.as_ref().ok_or_else(|| {
            OutboundError::new(ErrorCode::Unauthorized, "LINEAR_API_KEY is not set")
        })?;
        self.budget.acquire().await?;
        exchange(
            self.http
                .post(&self.url)
                // Linear takes a personal API key as the bare header value (no `Bearer`).
                .header("Authorization", key.expose_secret())
                .header(
                    "User-Agent",
                    concat!("statsync/", env!("CARGO_PKG_VERSION")),
                )
                .json(&json!({ "query": query, "variables": variables })),
        )
        .await
    }
}

/// An answer as data, or as a classified failure: transport status first, then any
/// GraphQL `errors` (which Linear sends with 200 as well as with 400).
pub fn interpret(
    status: u16,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(Value, RateInfo), OutboundError> {
    let now = Utc::now();
    let rate = RateInfo::linear(headers);
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let first_error = parsed
        .as_ref()
        .and_then(|v| v["errors"].as_array())
        .and_then(|e| e.first())
        .cloned();
    let code = match &first_error {
        Some(e) => Some(graphql_code(e, status)),
        None => classify_status(status),
    };
    let Some(code) = code else {
        let Some(body) = parsed else {
            return Err(OutboundError::new(
                ErrorCode::Upstream5xx,
                format!("Linear answered {status} with a body that is not JSON"),
            ));
        };
        return Ok((body["data"].clone(), rate));
    };
    let message = match &first_error {
        Some(e) => e["message"].as_str().unwrap_or("GraphQL error").to_owned(),
        None => excerpt(body),
    };
    let told = retry_after(headers, now);
    let retry_after = match code {
        ErrorCode::RateLimit => Some(
            told.or_else(|| rate.reset_at.map(|at| until(at, now)))
                .unwrap_or(DEFAULT_LIMIT_WAIT),
        ),
        _ => told,
    };
    Err(OutboundError {
        code,
        message: format!("Linear answered {status}: {message}"),
        retry_after,
        rate,
    })
}

fn graphql_code(error: &Value, status: u16) -> ErrorCode {
    let ext = &error["extensions"];
    let code = ext["code"].as_str().unwrap_or("");
    let kind = ext["type"].as_str().unwrap_or("").to_lowercase();
    let message = error["message"].as_str().unwrap_or("").to_lowercase();
    match code {
        "RATELIMITED" => ErrorCode::RateLimit,
        "AUTHENTICATION_ERROR" => ErrorCode::Unauthorized,
        "FORBIDDEN" => ErrorCode::InsufficientPermissions,
        "INTERNAL_SERVER_ERROR" => ErrorCode::Upstream5xx,
        _ if kind.contains("authentication") => ErrorCode::Unauthorized,
        _ if kind.contains("forbidden") => ErrorCode::InsufficientPermissions,
        _ if message.contains("not found") => ErrorCode::NotFound,
        _ if status >= 500 => ErrorCode::Upstream5xx,
        _ if status == 401 => ErrorCode::Unauthorized,
        _ if status == 403 => ErrorCode::InsufficientPermissions,
        // A document or input Linear refuses: sending it again cannot help.
        _ => ErrorCode::ValidationFailed,
    }
}

#[cfg(test)]
mod schema_check;

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn state(id: &str, name: &str, ty: &str, position: f64) -> WorkflowState {
        WorkflowState {
            id: id.into(),
            name: name.into(),
            state_type: ty.into(),
            position,
        }
    }

    #[test]
    fn a_configured_name_wins_else_the_lowest_position_of_the_type() {
        let states = vec![
            state("s1", "In Progress", "started", 2.0),
            state("s2", "In Review", "started", 3.0),
            state("s0", "Doing", "started", 1.0),
        ];
        assert_eq!(
            pick_state(&states, Some("in review"), "started")
                .unwrap()
                .id,
            "s2"
        );
        assert_eq!(pick_state(&states, None, "started").unwrap().id, "s0");
        assert!(pick_state(&states, None, "completed").is_none());
        assert!(pick_state(&states, Some("QA"), "started").is_none());
    }

    #[test]
    fn graphql_errors_in_a_200_are_failures_and_ratelimited_is_a_limit() {
        let body = br#"{"data":null,"errors":[{"message":"Entity not found: Issue","extensions":{"type":"invalid input","code":"INPUT_ERROR"}}]}"#;
        let e = interpret(200, &HeaderMap::new(), body).unwrap_err();
        assert_eq!(e.code, ErrorCode::NotFound);

        let mut h = HeaderMap::new();
        let reset = (Utc::now() + chrono::TimeDelta::seconds(20)).timestamp_millis();
        h.insert(
            "x-ratelimit-requests-remaining",
            HeaderValue::from_static("0"),
        );
        h.insert(
            "x-ratelimit-requests-reset",
            HeaderValue::from_str(&reset.to_string()).unwrap(),
        );
        let body = br#"{"errors":[{"message":"Rate limit exceeded","extensions":{"code":"RATELIMITED"}}]}"#;
        let e = interpret(400, &h, body).unwrap_err();
        assert_eq!(e.code, ErrorCode::RateLimit);
        let wait = e.retry_after.unwrap().as_secs();
        assert!((18..=20).contains(&wait), "{wait}");

        let body = br#"{"errors":[{"message":"Authentication required","extensions":{"type":"authentication error","code":"AUTHENTICATION_ERROR"}}]}"#;
        assert_eq!(
            interpret(400, &HeaderMap::new(), body).unwrap_err().code,
            ErrorCode::Unauthorized
        );
        let ok = br#"{"data":{"issueUpdate":{"success":true}}}"#;
        let (data, _) = interpret(200, &HeaderMap::new(), ok).unwrap();
        assert_eq!(data["issueUpdate"]["success"], true);
    }
}
