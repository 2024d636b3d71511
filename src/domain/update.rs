//! A status update as it arrives from a system, before mapping and resolution.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{CanonicalStatus, EntityKind, ExternalRef, SystemId};

/// GitHub issue state as a webhook or the REST API reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum GithubIssueState {
    Open,
    /// `state_reason`: `completed`, `not_planned`, `duplicate`, or absent.
    Closed {
        state_reason: Option<String>,
    },
}

/// The stages of a pull request that map to a status (after Linear's own automations).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GithubPullRequestState {
    Draft,
    Open,
    ReviewRequested,
    Merged,
    ClosedUnmerged,
}

/// Task states reported by coding agents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentState {
    Queued,
    Working,
    InputRequired,
    Complete,
    Failure,
    Canceled,
}

/// A status in a system's own vocabulary, exactly as far as the delivery told it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "native")]
pub enum NativeStatus {
    GithubIssue(GithubIssueState),
    GithubPullRequest {
        pr: GithubPullRequestState,
    },
    /// A Projects v2 single-select Status value. `option_name` is `None` when the
    /// delivery named only the field and the value must be read back from the API.
    GithubProjectItem {
        project_node_id: String,
        field_node_id: String,
        option_name: Option<String>,
    },
    Linear {
        state_id: Option<String>,
        name: Option<String>,
        /// triage, backlog, unstarted, started, completed, canceled, duplicate
        state_type: Option<String>,
    },
    Agent {
        state: AgentState,
    },
    /// A status by name, from a system without a built-in vocabulary: looked up in its
    /// `[<system>.states]` table of the mappings file (case-insensitively).
    Named {
        system: SystemId,
        name: String,
    },
    /// Already canonical: the API, PostgreSQL writes, rollbacks, manual resolutions.
    Canonical {
        status: CanonicalStatus,
    },
}

/// What happened to the external object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "action")]
pub enum UpdateAction {
    /// Its status is (now) this.
    Status { native: NativeStatus },
    /// It was deleted or removed in its system; the link goes, the entity stays.
    Removed,
    /// It moved (GitHub issue transferred); the old ref is replaced by the new one.
    Transferred { to: ExternalRef },
    /// Only its `links` join its entity (a Linear attachment naming a pull request);
    /// the status is untouched, and nothing is created for objects never seen.
    Linked,
}

impl StatusUpdate {
    /// The source time of an update whose system did not say when the change happened
    /// (an A2A status without its optional timestamp): the engine takes the time the
    /// delivery was received instead, which parsing (no clock) cannot know.
    pub const UNTIMED: DateTime<Utc> = DateTime::<Utc>::MIN_UTC;
}

/// One update from one system about one external object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusUpdate {
    pub source: SystemId,
    /// The object the update is about.
    pub target: ExternalRef,
    /// Other names of the same object (a Linear identifier `ENG-123` next to its UUID).
    pub aliases: Vec<ExternalRef>,
    /// Objects to link to the same entity on sight (an agent task's `issue`).
    pub links: Vec<ExternalRef>,
    pub kind: EntityKind,
    pub action: UpdateAction,
    /// When the change happened in its system (not when it reached us).
    pub source_timestamp: DateTime<Utc>,
    /// `project:` room key: a Linear team key or `owner/repo`.
    pub project: Option<String>,
    /// An explicit reopen (GitHub `reopened`, a person's Linear state change, an API call):
    /// the only way out of `done` / `cancelled`.
    pub explicit: bool,
    pub title: Option<String>,
    /// The object's description (a pull request's body), read for links to other
    /// objects; never stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// Free-form facts worth keeping (URLs, actor, summary).
    pub metadata: serde_json::Value,
}
