//! Identifiers and closed vocabularies shared by every module.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A value from outside that is not one of a closed vocabulary.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{value}` is not a valid {what}; expected one of: {expected}")]
pub struct ParseError {
    pub what: &'static str,
    pub value: String,
    pub expected: String,
}

macro_rules! closed_vocabulary {
    ($(#[$meta:meta])* $name:ident, $what:literal, { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        // ToSchema: the API's OpenAPI description lists the vocabulary (a derive, no I/O).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = ParseError;
            fn from_str(s: &str) -> Result<Self, ParseError> {
                match s {
                    $($text => Ok($name::$variant),)+
                    _ => Err(ParseError {
                        what: $what,
                        value: s.to_owned(),
                        expected: [$($text),+].join(", "),
                    }),
                }
            }
        }
    };
}

closed_vocabulary!(
    /// A system statsync keeps in step. `Postgresql` is the canonical store itself and
    /// every write made directly through the API.
    SystemId, "system", {
        Postgresql => "postgresql",
        Linear => "linear",
        Github => "github",
        Agentapi => "agentapi",
        A2a => "a2a",
    }
);

closed_vocabulary!(
    /// Where a stored delivery came from: a sender's webhook, an item a backfill listed,
    /// or a value statsync read back (a GitHub Projects item's Status). The engine
    /// parses each by its origin, and decides backfilled ones as catch-up reports.
    Origin, "origin", {
        Webhook => "webhook",
        Backfill => "backfill",
        Lookup => "lookup",
    }
);

closed_vocabulary!(
    /// The one status vocabulary every native status is mapped onto.
    CanonicalStatus, "status", {
        Triage => "triage",
        Backlog => "backlog",
        Todo => "todo",
        InProgress => "in_progress",
        InReview => "in_review",
        Blocked => "blocked",
        Done => "done",
        Cancelled => "cancelled",
    }
);

closed_vocabulary!(
    /// What kind of work an entity is.
    EntityKind, "entity kind", {
        Issue => "issue",
        PullRequest => "pull_request",
        Task => "task",
    }
);

impl CanonicalStatus {
    /// `done` and `cancelled` are left only through an explicit reopen.
    pub fn is_terminal(self) -> bool {
        matches!(self, CanonicalStatus::Done | CanonicalStatus::Cancelled)
    }
}

/// An object in an external system: `github` + `owner/repo#12`, `linear` + issue UUID
/// (or its identifier `ENG-123`), `agentapi` + task id, `a2a` + task id (`agent/id`
/// for a task of an agent other than the default one).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExternalRef {
    pub system: SystemId,
    pub external_id: String,
}

impl ExternalRef {
    pub fn new(system: SystemId, external_id: impl Into<String>) -> Self {
        ExternalRef {
            system,
            external_id: external_id.into(),
        }
    }
}

impl fmt::Display for ExternalRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.system, self.external_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vocabularies_round_trip_through_text_and_json() {
        for s in CanonicalStatus::ALL {
            assert_eq!(s.as_str().parse::<CanonicalStatus>().unwrap(), *s);
            assert_eq!(serde_json::to_string(s).unwrap(), format!("\"{s}\""));
        }
        for s in SystemId::ALL {
            assert_eq!(s.as_str().parse::<SystemId>().unwrap(), *s);
        }
    }

    #[test]
    fn unknown_status_names_every_valid_one() {
        let err = "doing".parse::<CanonicalStatus>().unwrap_err();
        assert!(err.to_string().contains("`doing`"));
        assert!(err.to_string().contains("in_progress"));
    }
}
