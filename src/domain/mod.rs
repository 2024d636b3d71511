//! The product's language as pure types and decisions: systems, canonical statuses,
//! entities, updates. Nothing here does I/O, reads a clock or knows about actors.

pub mod decision;
pub mod echo;
pub mod ids;
pub mod linking;
pub mod mapping;
pub mod names;
pub mod policy;
pub mod update;

pub use decision::{decide, ConflictOutcome, Decision, EntitySnapshot, Incoming};
pub use ids::{CanonicalStatus, EntityKind, ExternalRef, Origin, ParseError, SystemId};
pub use mapping::{
    GithubState, GithubStateReason, InboundMapping, MappingConfigError, MappingError, MappingTable,
    OutboundNative,
};
pub use policy::{Policy, PolicyError, Strategy, TransitionTable};
pub use update::{
    AgentState, GithubIssueState, GithubPullRequestState, NativeStatus, StatusUpdate, UpdateAction,
};
