//! Status mapping between each system's native vocabulary and the canonical statuses,
//! as configured in `config/mappings.toml` (parsed and validated in `mapping/config.rs`).
//!
//! Inbound, a native status maps to a set of compatible canonical statuses plus a
//! default ([`InboundMapping`]); a value it does not understand is an error naming that
//! value, never a guess. Outbound, every canonical status maps to exactly one native
//! value ([`OutboundNative`]). Pure lookups: nothing here does I/O.
//!
//! Round trip: for every system, project and status `s`, mapping `outbound(s)` back
//! inbound gives a set containing `s`, so statsync's own writes never come back as
//! changes. Loading a table checks this for Linear, GitHub issues and Projects v2
//! options. Exceptions, where the vocabulary is smaller than the canonical one:
//! - GitHub issues: every non-terminal status is written as `open`, which maps back to
//!   all of them (default `todo`); the set contains `s`, the default does not follow it.
//! - Agent API: triage and backlog are sent as `queued` (back: `todo`), done as
//!   `complete` (back: `in_review` unless configured to `done`).
//! - Linear without a configured name: the connector picks the lowest-position state of
//!   the type; if a team has mapped that state's *name* elsewhere, the state comes back
//!   as that status. The connector should skip states whose name is mapped.

mod config;
pub mod suggest;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::LazyLock;

use serde::{Deserialize, Serialize};

pub use config::MappingConfigError;

use super::{AgentState, CanonicalStatus, GithubIssueState, GithubPullRequestState};
use super::{NativeStatus, SystemId};

/// The shipped defaults, compiled in.
pub const SHIPPED_MAPPINGS: &str = include_str!("../../config/mappings.toml");

/// What a native status means canonically: the statuses it is compatible with and the
/// one an entity moves to when its current status is not among them. The default is
/// always in the set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InboundMapping {
    native: String,
    compatible: BTreeSet<CanonicalStatus>,
    default: CanonicalStatus,
}

impl InboundMapping {
    /// `native` names the value as received, for decision reasons (`open`, `In Review`).
    pub fn new(
        native: impl Into<String>,
        compatible: impl IntoIterator<Item = CanonicalStatus>,
        default: CanonicalStatus,
    ) -> Self {
        let mut compatible: BTreeSet<_> = compatible.into_iter().collect();
        compatible.insert(default);
        InboundMapping {
            native: native.into(),
            compatible,
            default,
        }
    }

    /// A native value that means exactly one status.
    pub fn exact(native: impl Into<String>, status: CanonicalStatus) -> Self {
        Self::new(native, [status], status)
    }

    /// The native value as received.
    pub fn native(&self) -> &str {
        &self.native
    }

    pub fn compatible(&self) -> &BTreeSet<CanonicalStatus> {
        &self.compatible
    }

    /// The status an entity moves to (or is created with) when not already compatible.
    pub fn default_status(&self) -> CanonicalStatus {
        self.default
    }

    pub fn contains(&self, status: CanonicalStatus) -> bool {
        self.compatible.contains(&status)
    }

    /// Compatible with every status: never changes an existing entity.
    pub fn is_noop(&self) -> bool {
        self.compatible.len() == CanonicalStatus::ALL.len()
    }
}

/// A native status that cannot be mapped (yet).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MappingError {
    /// A value no table maps; the update is recorded and not applied.
    #[error("{system} status `{value}` has no canonical mapping (see mappings.toml)")]
    Unmapped { system: SystemId, value: String },
    /// The delivery named the field but not its value: read it from the API, then map.
    #[error("{system} update needs a lookup first: {what}")]
    NeedsLookup { system: SystemId, what: String },
}

/// GitHub issue (and pull request) open/closed state, outbound.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GithubState {
    Open,
    Closed,
}

/// GitHub `state_reason`, outbound.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GithubStateReason {
    Completed,
    NotPlanned,
    Reopened,
}

/// The one native value a canonical status is written as.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "native")]
pub enum OutboundNative {
    /// Non-terminal statuses are `open` without a reason; sending `reopened` when the
    /// object leaves a closed state is the connector's concern.
    GithubIssue {
        state: GithubState,
        state_reason: Option<GithubStateReason>,
    },
    GithubProjectOption {
        name: String,
    },
    /// `name` when one is configured for the team, else `None`: the connector picks the
    /// lowest-position state of `state_type`, resolved to an id through the API.
    LinearState {
        name: Option<String>,
        state_type: String,
    },
    Agent {
        state: AgentState,
    },
    /// A system's status by name (`[<system>.outbound]`).
    Named {
        name: String,
    },
    /// PostgreSQL and the API speak canonical statuses.
    Canonical {
        status: CanonicalStatus,
    },
}

/// One value per canonical status; total, so lookups cannot miss.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PerStatus<T>([T; 8]);

impl<T> PerStatus<T> {
    pub(crate) fn get(&self, status: CanonicalStatus) -> &T {
        // The closed vocabulary declares exactly eight variants in `ALL` order, so the
        // discriminant is always a valid index.
        &self.0[status as usize]
    }

    pub(crate) fn set(&mut self, status: CanonicalStatus, value: T) {
        self.0[status as usize] = value;
    }
}

/// A validated inbound rule from the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Rule {
    pub(crate) compatible: BTreeSet<CanonicalStatus>,
    pub(crate) default: CanonicalStatus,
}

impl Rule {
    fn mapping(&self, native: impl Into<String>) -> InboundMapping {
        InboundMapping::new(native, self.compatible.iter().copied(), self.default)
    }
}

/// Names matched case-insensitively: key = normalized name.
pub(crate) type NameTable = BTreeMap<String, Rule>;

pub(crate) fn normalize(name: &str) -> String {
    name.trim().to_lowercase()
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LinearOut {
    pub(crate) name: Option<String>,
    pub(crate) state_type: String,
}

/// Linear lookups for one team (or the shared tables when no team is configured).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LinearContext {
    pub(crate) states: NameTable,
    pub(crate) outbound: PerStatus<LinearOut>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct IssueRules {
    pub(crate) open: Rule,
    pub(crate) closed_completed: Rule,
    pub(crate) closed_not_planned: Rule,
    pub(crate) closed_duplicate: Rule,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PullRequestRules {
    pub(crate) draft: Rule,
    pub(crate) open: Rule,
    pub(crate) review_requested: Rule,
    pub(crate) merged: Rule,
    pub(crate) closed_unmerged: Rule,
}

/// GitHub lookups for one repository (or the shared tables).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GithubContext {
    pub(crate) issue: IssueRules,
    pub(crate) pull_request: PullRequestRules,
    pub(crate) options: NameTable,
    pub(crate) option_out: PerStatus<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AgentRules {
    pub(crate) queued: Rule,
    pub(crate) working: Rule,
    pub(crate) input_required: Rule,
    pub(crate) complete: Rule,
    pub(crate) failure: Rule,
    pub(crate) canceled: Rule,
    pub(crate) outbound: PerStatus<AgentState>,
}

/// The vocabulary of a system without a built-in one: status names both ways.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NamedRules {
    pub(crate) states: NameTable,
    pub(crate) outbound: PerStatus<String>,
}

/// Every system's vocabulary, validated. Per-team and per-repository overrides are
/// resolved at load time into complete contexts, so a lookup is one map access.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MappingTable {
    pub(crate) linear_types: BTreeMap<String, Rule>,
    pub(crate) linear: LinearContext,
    /// Keyed by normalized team key.
    pub(crate) linear_teams: BTreeMap<String, LinearContext>,
    pub(crate) github: GithubContext,
    /// Keyed by normalized `owner/repo`.
    pub(crate) github_repos: BTreeMap<String, GithubContext>,
    pub(crate) agent: AgentRules,
    /// Keyed by system name: the systems without a built-in vocabulary.
    pub(crate) named: BTreeMap<String, NamedRules>,
}

static SHIPPED: LazyLock<Result<MappingTable, MappingConfigError>> =
    LazyLock::new(|| MappingTable::from_toml_str(SHIPPED_MAPPINGS));

impl Default for MappingTable {
    /// The shipped `config/mappings.toml`.
    fn default() -> Self {
        match MappingTable::shipped() {
            Ok(table) => table,
            // The compiled-in file is fixed at build time and `shipped_file_is_valid`
            // proves it loads; reaching this is a build that skipped its tests.
            Err(e) => panic!("the shipped mappings.toml is invalid: {e}"),
        }
    }
}

impl MappingTable {
    /// The shipped `config/mappings.toml`, parsed once.
    pub fn shipped() -> Result<MappingTable, MappingConfigError> {
        SHIPPED.clone()
    }

    /// Parses and validates a complete mappings file (it replaces the shipped one).
    pub fn from_toml_str(text: &str) -> Result<MappingTable, MappingConfigError> {
        config::load(text)
    }

    /// Maps a native status. `project` is the update's `project`: a Linear team key or a
    /// GitHub `owner/repo`, selecting that team's or repository's overrides.
    pub fn inbound(
        &self,
        native: &NativeStatus,
        project: Option<&str>,
    ) -> Result<InboundMapping, MappingError> {
        match native {
            NativeStatus::Canonical { status } => {
                Ok(InboundMapping::exact(status.as_str(), *status))
            }
            NativeStatus::GithubIssue(state) => {
                Ok(github_issue(self.github_context(project), state)?)
            }
            NativeStatus::GithubPullRequest { pr } => {
                Ok(github_pull_request(self.github_context(project), *pr))
            }
            NativeStatus::GithubProjectItem {
                project_node_id,
                field_node_id,
                option_name,
            } => match option_name {
                None => Err(MappingError::NeedsLookup {
                    system: SystemId::Github,
                    what: format!(
                        "the value of field {field_node_id} in project {project_node_id}"
                    ),
                }),
                Some(name) => project_option(self.github_context(project), name),
            },
            NativeStatus::Linear {
                state_id,
                name,
                state_type,
            } => self.linear_state(
                self.linear_context(project),
                state_id.as_deref(),
                name.as_deref(),
                state_type.as_deref(),
            ),
            NativeStatus::Agent { state } => Ok(agent(&self.agent, *state)),
            NativeStatus::Named { system, name } => self
                .named_state(system.as_str(), name)
                .ok_or_else(|| MappingError::Unmapped {
                    system: *system,
                    value: name.clone(),
                }),
        }
    }

    /// A status name of a system with a named vocabulary, if it is mapped.
    pub(crate) fn named_state(&self, system: &str, name: &str) -> Option<InboundMapping> {
        let rule = self.named.get(system)?.states.get(&normalize(name))?;
        Some(rule.mapping(name))
    }

    /// The native value `status` is written as in `system`. For GitHub this is the
    /// issue / pull request state; see [`MappingTable::project_option_for`] for boards.
    pub fn outbound_for(
        &self,
        system: SystemId,
        status: CanonicalStatus,
        project: Option<&str>,
    ) -> OutboundNative {
        match system {
            SystemId::Postgresql => OutboundNative::Canonical { status },
            SystemId::Github => github_issue_outbound(status),
            SystemId::Linear => {
                let out = self.linear_context(project).outbound.get(status);
                OutboundNative::LinearState {
                    name: out.name.clone(),
                    state_type: out.state_type.clone(),
                }
            }
            SystemId::Agentapi => OutboundNative::Agent {
                state: *self.agent.outbound.get(status),
            },
            // A system registered after these four is written by name (its own table),
            // or told the canonical status when it has none.
            #[allow(unreachable_patterns)]
            other => match self.named.get(other.as_str()) {
                Some(rules) => OutboundNative::Named {
                    name: rules.outbound.get(status).clone(),
                },
                None => OutboundNative::Canonical { status },
            },
        }
    }

    /// The Projects v2 Status option `status` is written as.
    pub fn project_option_for(
        &self,
        status: CanonicalStatus,
        project: Option<&str>,
    ) -> OutboundNative {
        OutboundNative::GithubProjectOption {
            name: self.github_context(project).option_out.get(status).clone(),
        }
    }

    fn linear_context(&self, team: Option<&str>) -> &LinearContext {
        team.and_then(|t| self.linear_teams.get(&normalize(t)))
            .unwrap_or(&self.linear)
    }

    fn github_context(&self, repo: Option<&str>) -> &GithubContext {
        repo.and_then(|r| self.github_repos.get(&normalize(r)))
            .unwrap_or(&self.github)
    }

    pub(crate) fn linear_state(
        &self,
        ctx: &LinearContext,
        state_id: Option<&str>,
        name: Option<&str>,
        state_type: Option<&str>,
    ) -> Result<InboundMapping, MappingError> {
        if let Some(name) = name {
            if let Some(rule) = ctx.states.get(&normalize(name)) {
                return Ok(rule.mapping(name));
            }
        }
        match (name, state_type) {
            (_, Some(ty)) => match self.linear_types.get(&normalize(ty)) {
                Some(rule) => Ok(rule.mapping(match name {
                    Some(name) => format!("{name} ({ty})"),
                    None => ty.to_owned(),
                })),
                None => Err(MappingError::Unmapped {
                    system: SystemId::Linear,
                    value: ty.to_owned(),
                }),
            },
            (Some(name), None) => Err(MappingError::Unmapped {
                system: SystemId::Linear,
                value: name.to_owned(),
            }),
            (None, None) => match state_id {
                Some(id) => Err(MappingError::NeedsLookup {
                    system: SystemId::Linear,
                    what: format!("the name and type of workflow state {id}"),
                }),
                None => Err(MappingError::Unmapped {
                    system: SystemId::Linear,
                    value: "(no state)".to_owned(),
                }),
            },
        }
    }
}

fn github_issue(
    ctx: &GithubContext,
    state: &GithubIssueState,
) -> Result<InboundMapping, MappingError> {
    let rules = &ctx.issue;
    match state {
        GithubIssueState::Open => Ok(rules.open.mapping("open")),
        GithubIssueState::Closed { state_reason } => match state_reason.as_deref() {
            None => Ok(rules.closed_completed.mapping("closed")),
            Some("completed") => Ok(rules.closed_completed.mapping("closed/completed")),
            Some("not_planned") => Ok(rules.closed_not_planned.mapping("closed/not_planned")),
            Some("duplicate") => Ok(rules.closed_duplicate.mapping("closed/duplicate")),
            Some(other) => Err(MappingError::Unmapped {
                system: SystemId::Github,
                value: format!("closed/{other}"),
            }),
        },
    }
}

fn github_pull_request(ctx: &GithubContext, pr: GithubPullRequestState) -> InboundMapping {
    let rules = &ctx.pull_request;
    let (rule, native) = match pr {
        GithubPullRequestState::Draft => (&rules.draft, "pull request draft"),
        GithubPullRequestState::Open => (&rules.open, "pull request open"),
        GithubPullRequestState::ReviewRequested => {
            (&rules.review_requested, "pull request review_requested")
        }
        GithubPullRequestState::Merged => (&rules.merged, "pull request merged"),
        GithubPullRequestState::ClosedUnmerged => {
            (&rules.closed_unmerged, "pull request closed_unmerged")
        }
    };
    rule.mapping(native)
}

fn project_option(ctx: &GithubContext, name: &str) -> Result<InboundMapping, MappingError> {
    match ctx.options.get(&normalize(name)) {
        Some(rule) => Ok(rule.mapping(name)),
        None => Err(MappingError::Unmapped {
            system: SystemId::Github,
            value: name.to_owned(),
        }),
    }
}

fn agent(rules: &AgentRules, state: AgentState) -> InboundMapping {
    let rule = match state {
        AgentState::Queued => &rules.queued,
        AgentState::Working => &rules.working,
        AgentState::InputRequired => &rules.input_required,
        AgentState::Complete => &rules.complete,
        AgentState::Failure => &rules.failure,
        AgentState::Canceled => &rules.canceled,
    };
    rule.mapping(agent_state_name(state))
}

/// The wire name of an agent task state (as in `mappings.toml` and webhook bodies).
pub(crate) fn agent_state_name(state: AgentState) -> &'static str {
    match state {
        AgentState::Queued => "queued",
        AgentState::Working => "working",
        AgentState::InputRequired => "input_required",
        AgentState::Complete => "complete",
        AgentState::Failure => "failure",
        AgentState::Canceled => "canceled",
    }
}

fn github_issue_outbound(status: CanonicalStatus) -> OutboundNative {
    let (state, state_reason) = match status {
        CanonicalStatus::Done => (GithubState::Closed, Some(GithubStateReason::Completed)),
        CanonicalStatus::Cancelled => (GithubState::Closed, Some(GithubStateReason::NotPlanned)),
        _ => (GithubState::Open, None),
    };
    OutboundNative::GithubIssue {
        state,
        state_reason,
    }
}

impl fmt::Display for OutboundNative {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OutboundNative::GithubIssue {
                state,
                state_reason,
            } => {
                let state = match state {
                    GithubState::Open => "open",
                    GithubState::Closed => "closed",
                };
                match state_reason {
                    None => f.write_str(state),
                    Some(GithubStateReason::Completed) => write!(f, "{state}/completed"),
                    Some(GithubStateReason::NotPlanned) => write!(f, "{state}/not_planned"),
                    Some(GithubStateReason::Reopened) => write!(f, "{state}/reopened"),
                }
            }
            OutboundNative::GithubProjectOption { name } => write!(f, "option \"{name}\""),
            OutboundNative::LinearState { name, state_type } => match name {
                Some(name) => write!(f, "state \"{name}\" ({state_type})"),
                None => write!(f, "first state of type {state_type}"),
            },
            OutboundNative::Agent { state } => f.write_str(agent_state_name(*state)),
            OutboundNative::Named { name } => write!(f, "\"{name}\""),
            OutboundNative::Canonical { status } => write!(f, "{status}"),
        }
    }
}
