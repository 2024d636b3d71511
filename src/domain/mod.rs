//! The product's language as pure types and decisions: systems, canonical statuses,
//! entities, updates. Nothing here does I/O, reads a clock or knows about actors.

pub mod ids;
pub mod update;

pub use ids::{CanonicalStatus, EntityKind, ExternalRef, ParseError, SystemId};
pub use update::{
    AgentState, GithubIssueState, GithubPullRequestState, NativeStatus, StatusUpdate, UpdateAction,
};
