//! Loads `mappings.toml` into a [`MappingTable`]: the file's shape (`config/file.rs`),
//! then validation of every value. Each error names the key path and the bad value; a table
//! that is only partly valid is never returned. Per-team and per-repository overrides are
//! resolved here into complete contexts.

use std::collections::{BTreeMap, BTreeSet};

use super::{
    agent_state_name, github_issue, github_issue_outbound, normalize, project_option, AgentRules,
    GithubContext, GithubState, GithubStateReason, IssueRules, LinearContext, LinearOut,
    MappingTable, NameTable, OutboundNative, PerStatus, PullRequestRules, Rule,
};
use crate::domain::{AgentState, CanonicalStatus, GithubIssueState};

mod file;
mod named;
#[cfg(test)]
mod tests;

use file::{RawAgent, RawFile, RawIssue, RawLinearOut, RawProject, RawPullRequest, RawRule};

/// Why a mappings file was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MappingConfigError {
    /// Not TOML, or keys / value types that do not fit the file's shape.
    #[error("mappings.toml: {0}")]
    Syntax(#[from] toml::de::Error),
    #[error("mappings.toml: `{path}` is missing")]
    Missing { path: String },
    #[error("mappings.toml: `{path}` = `{value}`: {problem}")]
    Invalid {
        path: String,
        value: String,
        problem: String,
    },
}

type Result<T> = std::result::Result<T, MappingConfigError>;

const AGENT_STATES: [AgentState; 6] = [
    AgentState::Queued,
    AgentState::Working,
    AgentState::InputRequired,
    AgentState::Complete,
    AgentState::Failure,
    AgentState::Canceled,
];

pub(super) fn load(text: &str) -> Result<MappingTable> {
    load_with(text, &named::known_system)
}

/// `load`, with `known` telling which other top-level sections name a system.
pub(super) fn load_with(text: &str, known: &dyn Fn(&str) -> bool) -> Result<MappingTable> {
    let raw: RawFile = toml::from_str(text)?;

    let linear_types = names("linear.types", &raw.linear.types)?;
    let linear = LinearContext {
        states: names("linear.states", &raw.linear.states)?,
        outbound: per_status("linear.outbound", &raw.linear.outbound, None, linear_out)?,
    };
    let mut linear_teams = BTreeMap::new();
    for (team, raw_team) in &raw.linear.teams {
        let path = key("linear.teams", team);
        let mut states = linear.states.clone();
        states.extend(names(&format!("{path}.states"), &raw_team.states)?);
        let outbound = per_status(
            &format!("{path}.outbound"),
            &raw_team.outbound,
            Some(&linear.outbound),
            linear_out,
        )?;
        let ctx = LinearContext { states, outbound };
        if linear_teams.insert(normalize(team), ctx).is_some() {
            return Err(duplicate(&path, team));
        }
    }

    let github = github_context(
        "github",
        &raw.github.issue,
        &raw.github.pull_request,
        &raw.github.project,
        None,
    )?;
    let mut github_repos = BTreeMap::new();
    for (repo, raw_repo) in &raw.github.repos {
        let path = key("github.repos", repo);
        let ctx = github_context(
            &path,
            &raw_repo.issue,
            &raw_repo.pull_request,
            &raw_repo.project,
            Some(&github),
        )?;
        if github_repos.insert(normalize(repo), ctx).is_some() {
            return Err(duplicate(&path, repo));
        }
    }

    let agent = agent_rules(&raw.agentapi)?;
    let named = named::load(&raw.named, known)?;

    let table = MappingTable {
        linear_types,
        linear,
        linear_teams,
        github,
        github_repos,
        agent,
        named,
    };
    check_round_trips(&table, &raw)?;
    named::check_round_trips(&table)?;
    Ok(table)
}

fn github_context(
    path: &str,
    issue: &RawIssue,
    pr: &RawPullRequest,
    project: &RawProject,
    base: Option<&GithubContext>,
) -> Result<GithubContext> {
    use CanonicalStatus::*;
    // Each fixed key either comes from this table or, for a repository, from the shared
    // one; `fallback` is what "noop" creates a new entity with.
    let slot = |name: &str, raw: &Option<RawRule>, inherited: Option<&Rule>, fallback| {
        let path = format!("{path}.{name}");
        match (raw, inherited) {
            (Some(raw), _) => rule(&path, raw, Some(fallback)),
            (None, Some(rule)) => Ok(rule.clone()),
            (None, None) => Err(missing(path)),
        }
    };
    let issue = IssueRules {
        open: slot("issue.open", &issue.open, base.map(|b| &b.issue.open), Todo)?,
        closed_completed: slot(
            "issue.closed_completed",
            &issue.closed_completed,
            base.map(|b| &b.issue.closed_completed),
            Done,
        )?,
        closed_not_planned: slot(
            "issue.closed_not_planned",
            &issue.closed_not_planned,
            base.map(|b| &b.issue.closed_not_planned),
            Cancelled,
        )?,
        closed_duplicate: slot(
            "issue.closed_duplicate",
            &issue.closed_duplicate,
            base.map(|b| &b.issue.closed_duplicate),
            Cancelled,
        )?,
    };
    let pull_request = PullRequestRules {
        draft: slot(
            "pull_request.draft",
            &pr.draft,
            base.map(|b| &b.pull_request.draft),
            InProgress,
        )?,
        open: slot(
            "pull_request.open",
            &pr.open,
            base.map(|b| &b.pull_request.open),
            InProgress,
        )?,
        review_requested: slot(
            "pull_request.review_requested",
            &pr.review_requested,
            base.map(|b| &b.pull_request.review_requested),
            InReview,
        )?,
        merged: slot(
            "pull_request.merged",
            &pr.merged,
            base.map(|b| &b.pull_request.merged),
            Done,
        )?,
        closed_unmerged: slot(
            "pull_request.closed_unmerged",
            &pr.closed_unmerged,
            base.map(|b| &b.pull_request.closed_unmerged),
            Cancelled,
        )?,
    };
    let mut options = base.map(|b| b.options.clone()).unwrap_or_default();
    options.extend(names(&format!("{path}.project.options"), &project.options)?);
    let option_out = per_status(
        &format!("{path}.project.outbound"),
        &project.outbound,
        base.map(|b| &b.option_out),
        |path, name: &String| {
            if name.trim().is_empty() {
                return Err(invalid(path, name, "an option name cannot be empty"));
            }
            Ok(name.clone())
        },
    )?;
    Ok(GithubContext {
        issue,
        pull_request,
        options,
        option_out,
    })
}

fn agent_rules(raw: &RawAgent) -> Result<AgentRules> {
    use CanonicalStatus::*;
    let slot = |name: &str, raw: &Option<RawRule>, fallback| {
        let path = format!("agentapi.states.{name}");
        match raw {
            Some(raw) => rule(&path, raw, Some(fallback)),
            None => Err(missing(path)),
        }
    };
    let states = &raw.states;
    Ok(AgentRules {
        queued: slot("queued", &states.queued, Todo)?,
        working: slot("working", &states.working, InProgress)?,
        input_required: slot("input_required", &states.input_required, Blocked)?,
        complete: slot("complete", &states.complete, InReview)?,
        failure: slot("failure", &states.failure, Blocked)?,
        canceled: slot("canceled", &states.canceled, Cancelled)?,
        outbound: per_status(
            "agentapi.outbound",
            &raw.outbound,
            None,
            |path, name: &String| {
                AGENT_STATES
                    .iter()
                    .copied()
                    .find(|s| agent_state_name(*s) == name)
                    .ok_or_else(|| {
                        let expected: Vec<_> =
                            AGENT_STATES.iter().map(|s| agent_state_name(*s)).collect();
                        invalid(
                            path,
                            name,
                            &format!(
                                "not an agent task state; expected one of: {}",
                                expected.join(", ")
                            ),
                        )
                    })
            },
        )?,
    })
}

/// Outbound values must map back to their status, or every write would come back as a
/// change (an echo loop between statsync and the system).
fn check_round_trips(table: &MappingTable, raw: &RawFile) -> Result<()> {
    let mut linear = vec![("linear".to_owned(), &table.linear)];
    for team in raw.linear.teams.keys() {
        if let Some(ctx) = table.linear_teams.get(&normalize(team)) {
            linear.push((key("linear.teams", team), ctx));
        }
    }
    for (path, ctx) in linear {
        for &status in CanonicalStatus::ALL {
            let out = ctx.outbound.get(status);
            let back = table.linear_state(ctx, None, out.name.as_deref(), Some(&out.state_type));
            let written = OutboundNative::LinearState {
                name: out.name.clone(),
                state_type: out.state_type.clone(),
            };
            round_trip(&format!("{path}.outbound.{status}"), status, &written, back)?;
        }
    }

    let mut github = vec![("github".to_owned(), &table.github)];
    for repo in raw.github.repos.keys() {
        if let Some(ctx) = table.github_repos.get(&normalize(repo)) {
            github.push((key("github.repos", repo), ctx));
        }
    }
    for (path, ctx) in github {
        for &status in CanonicalStatus::ALL {
            let written = github_issue_outbound(status);
            let back = match &written {
                OutboundNative::GithubIssue {
                    state: GithubState::Closed,
                    state_reason,
                } => GithubIssueState::Closed {
                    state_reason: Some(
                        match state_reason {
                            Some(GithubStateReason::NotPlanned) => "not_planned",
                            _ => "completed",
                        }
                        .to_owned(),
                    ),
                },
                _ => GithubIssueState::Open,
            };
            round_trip(
                &format!("{path}.issue"),
                status,
                &written,
                github_issue(ctx, &back),
            )?;

            let name = ctx.option_out.get(status);
            let written = OutboundNative::GithubProjectOption { name: name.clone() };
            let back = project_option(ctx, name);
            round_trip(
                &format!("{path}.project.outbound.{status}"),
                status,
                &written,
                back,
            )?;
        }
    }
    Ok(())
}

fn round_trip(
    path: &str,
    status: CanonicalStatus,
    written: &OutboundNative,
    back: std::result::Result<super::InboundMapping, super::MappingError>,
) -> Result<()> {
    match back {
        Ok(mapping) if mapping.contains(status) => Ok(()),
        Ok(mapping) => Err(invalid(
            path,
            &written.to_string(),
            &format!(
                "{status} is written as this, which maps back to {} (compatible: {}); map it \
                 inbound to a set containing {status}",
                mapping.default_status(),
                list(mapping.compatible().iter()),
            ),
        )),
        Err(e) => Err(invalid(
            path,
            &written.to_string(),
            &format!("{status} is written as this, which does not map back: {e}"),
        )),
    }
}

/// A table keyed by native names, matched case-insensitively.
fn names(path: &str, raw: &BTreeMap<String, RawRule>) -> Result<NameTable> {
    let mut table = NameTable::new();
    for (name, raw_rule) in raw {
        let path = key(path, name);
        if normalize(name).is_empty() {
            return Err(invalid(&path, name, "a name cannot be empty"));
        }
        let parsed = rule(&path, raw_rule, None)?;
        if table.insert(normalize(name), parsed).is_some() {
            return Err(duplicate(&path, name));
        }
    }
    Ok(table)
}

/// A value for every canonical status: from `raw`, else from `base`, else an error.
fn per_status<R, T: Clone>(
    path: &str,
    raw: &BTreeMap<String, R>,
    base: Option<&PerStatus<T>>,
    convert: impl Fn(&str, &R) -> Result<T>,
) -> Result<PerStatus<T>> {
    let mut given = BTreeMap::new();
    for (name, value) in raw {
        let path = key(path, name);
        let status = status_key(&path, name)?;
        given.insert(status, convert(&path, value)?);
    }
    match base {
        Some(base) => {
            let mut merged = base.clone();
            for (status, value) in given {
                merged.set(status, value);
            }
            Ok(merged)
        }
        None => {
            let mut values = Vec::with_capacity(CanonicalStatus::ALL.len());
            for &status in CanonicalStatus::ALL {
                match given.remove(&status) {
                    Some(value) => values.push(value),
                    None => return Err(missing(format!("{path}.{status}"))),
                }
            }
            // One value was pushed per status, so the length always fits.
            values
                .try_into()
                .map(PerStatus)
                .map_err(|_| missing(path.to_owned()))
        }
    }
}

fn linear_out(path: &str, raw: &RawLinearOut) -> Result<LinearOut> {
    if raw.state_type.trim().is_empty() {
        return Err(invalid(
            &format!("{path}.type"),
            &raw.state_type,
            "a state type cannot be empty",
        ));
    }
    if let Some(name) = &raw.name {
        if name.trim().is_empty() {
            return Err(invalid(
                &format!("{path}.name"),
                name,
                "a state name cannot be empty",
            ));
        }
    }
    Ok(LinearOut {
        name: raw.name.clone(),
        state_type: raw.state_type.trim().to_lowercase(),
    })
}

/// `noop_default`: what "noop" creates a new entity with; `None` where "noop" is refused.
fn rule(path: &str, raw: &RawRule, noop_default: Option<CanonicalStatus>) -> Result<Rule> {
    match raw {
        RawRule::One(value) if value == "noop" => match noop_default {
            Some(default) => Ok(Rule {
                compatible: CanonicalStatus::ALL.iter().copied().collect(),
                default,
            }),
            None => Err(invalid(
                path,
                value,
                "\"noop\" is accepted only for the fixed keys of [github.issue], \
                 [github.pull_request] and [agentapi.states]",
            )),
        },
        RawRule::One(value) => {
            let status = status_value(path, value)?;
            Ok(Rule {
                compatible: BTreeSet::from([status]),
                default: status,
            })
        }
        RawRule::Set(set) => {
            let mut compatible = BTreeSet::new();
            for (i, value) in set.compatible.iter().enumerate() {
                compatible.insert(status_value(&format!("{path}.compatible[{i}]"), value)?);
            }
            let default_path = format!("{path}.default");
            let default = status_value(&default_path, &set.default)?;
            if !compatible.contains(&default) {
                return Err(invalid(
                    &default_path,
                    &set.default,
                    &format!(
                        "the default must be one of `compatible` ({})",
                        list(compatible.iter())
                    ),
                ));
            }
            Ok(Rule {
                compatible,
                default,
            })
        }
    }
}

fn status_value(path: &str, value: &str) -> Result<CanonicalStatus> {
    value.parse().map_err(|_| {
        invalid(
            path,
            value,
            &format!(
                "not a canonical status; expected one of: {}",
                list(CanonicalStatus::ALL.iter())
            ),
        )
    })
}

fn status_key(path: &str, name: &str) -> Result<CanonicalStatus> {
    name.parse().map_err(|_| {
        invalid(
            path,
            name,
            &format!(
                "this key must be a canonical status: {}",
                list(CanonicalStatus::ALL.iter())
            ),
        )
    })
}

fn list<'a>(statuses: impl Iterator<Item = &'a CanonicalStatus>) -> String {
    statuses.map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
}

/// `parent.name`, quoted the way TOML needs it.
fn key(parent: &str, name: &str) -> String {
    let bare = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if bare {
        format!("{parent}.{name}")
    } else {
        format!("{parent}.\"{name}\"")
    }
}

fn invalid(path: &str, value: &str, problem: &str) -> MappingConfigError {
    MappingConfigError::Invalid {
        path: path.to_owned(),
        value: value.to_owned(),
        problem: problem.to_owned(),
    }
}

fn duplicate(path: &str, name: &str) -> MappingConfigError {
    invalid(
        path,
        name,
        "another key differs from this one only in case or surrounding spaces; names match \
         case-insensitively",
    )
}

fn missing(path: String) -> MappingConfigError {
    MappingConfigError::Missing { path }
}
