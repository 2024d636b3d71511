//! The shape of `mappings.toml` as serde types, before any value is checked. Status
//! names stay strings here so that validation can name the key path of a bad one.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

// Not `deny_unknown_fields` (serde ignores it beside `flatten`): every other top-level
// key lands in `named`, and `named.rs` refuses those that are not a system's name.
#[derive(Deserialize)]
pub(super) struct RawFile {
    #[serde(default)]
    pub(super) linear: RawLinear,
    #[serde(default)]
    pub(super) github: RawGithub,
    #[serde(default)]
    pub(super) agentapi: RawAgent,
    /// `[<system>.states]` and `[<system>.outbound]` of systems without a built-in
    /// vocabulary.
    #[serde(flatten)]
    pub(super) named: BTreeMap<String, RawNamed>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawNamed {
    pub(super) states: BTreeMap<String, RawRule>,
    pub(super) outbound: BTreeMap<String, String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawLinear {
    pub(super) states: BTreeMap<String, RawRule>,
    pub(super) types: BTreeMap<String, RawRule>,
    pub(super) outbound: BTreeMap<String, RawLinearOut>,
    pub(super) teams: BTreeMap<String, RawLinearTeam>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawLinearTeam {
    pub(super) states: BTreeMap<String, RawRule>,
    pub(super) outbound: BTreeMap<String, RawLinearOut>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLinearOut {
    #[serde(rename = "type")]
    pub(super) state_type: String,
    pub(super) name: Option<String>,
}

/// `"in_review"`, `"noop"`, or `{ compatible = [...], default = "..." }`.
pub(super) enum RawRule {
    One(String),
    Set(RawSet),
}

impl<'de> Deserialize<'de> for RawRule {
    // By hand rather than `untagged`, whose error ("did not match any variant") does not
    // tell an operator what to write.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct RuleVisitor;

        impl<'de> Visitor<'de> for RuleVisitor {
            type Value = RawRule;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(
                    "a canonical status (\"in_review\"), \"noop\", or { compatible = [...], \
                     default = \"...\" }",
                )
            }

            fn visit_str<E: de::Error>(self, value: &str) -> Result<RawRule, E> {
                Ok(RawRule::One(value.to_owned()))
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<RawRule, A::Error> {
                RawSet::deserialize(de::value::MapAccessDeserializer::new(map)).map(RawRule::Set)
            }
        }

        deserializer.deserialize_any(RuleVisitor)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSet {
    pub(super) compatible: Vec<String>,
    pub(super) default: String,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawGithub {
    pub(super) issue: RawIssue,
    pub(super) pull_request: RawPullRequest,
    pub(super) project: RawProject,
    pub(super) repos: BTreeMap<String, RawRepo>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawRepo {
    pub(super) issue: RawIssue,
    pub(super) pull_request: RawPullRequest,
    pub(super) project: RawProject,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawIssue {
    pub(super) open: Option<RawRule>,
    pub(super) closed_completed: Option<RawRule>,
    pub(super) closed_not_planned: Option<RawRule>,
    pub(super) closed_duplicate: Option<RawRule>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawPullRequest {
    pub(super) draft: Option<RawRule>,
    pub(super) open: Option<RawRule>,
    pub(super) review_requested: Option<RawRule>,
    pub(super) merged: Option<RawRule>,
    pub(super) closed_unmerged: Option<RawRule>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawProject {
    pub(super) options: BTreeMap<String, RawRule>,
    pub(super) outbound: BTreeMap<String, String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawAgent {
    pub(super) states: RawAgentStates,
    pub(super) outbound: BTreeMap<String, String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawAgentStates {
    pub(super) queued: Option<RawRule>,
    pub(super) working: Option<RawRule>,
    pub(super) input_required: Option<RawRule>,
    pub(super) complete: Option<RawRule>,
    pub(super) failure: Option<RawRule>,
    pub(super) canceled: Option<RawRule>,
}
