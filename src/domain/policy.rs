//! The conflict policy `decide` applies: system priorities, the strategy (per entity
//! kind), the conflict window, escalation, merge precedence and allowed transitions.
//! Read from the `[sync]` table of the settings (its other keys are left to the
//! settings that own them); every value is validated and errors name the key.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use chrono::TimeDelta;
use serde::{Deserialize, Serialize};

use super::{CanonicalStatus, EntityKind, ParseError, SystemId};

/// How a conflict inside the window is resolved (`sync.conflict_strategy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// The system with the lower priority number wins.
    PriorityBased,
    /// The later source timestamp wins; ties go to priority.
    TimestampBased,
    /// Nothing changes; an open conflict waits for a person.
    Manual,
    /// The status earlier in `merge_precedence` wins.
    Merge,
}

impl Strategy {
    pub const ALL: &'static [Strategy] = &[
        Strategy::PriorityBased,
        Strategy::TimestampBased,
        Strategy::Manual,
        Strategy::Merge,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::PriorityBased => "priority_based",
            Strategy::TimestampBased => "timestamp_based",
            Strategy::Manual => "manual",
            Strategy::Merge => "merge",
        }
    }
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Strategy {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, ParseError> {
        Strategy::ALL
            .iter()
            .copied()
            .find(|strategy| strategy.as_str() == s)
            .ok_or_else(|| ParseError {
                what: "conflict strategy",
                value: s.to_owned(),
                expected: Strategy::ALL
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }
}

/// Which status changes are allowed (`[sync.transitions]`: from-status → allowed
/// to-statuses). A from-status without an entry may move anywhere, so the default,
/// empty table allows everything: the one move that must never happen implicitly —
/// leaving `done` / `cancelled` — is already refused by the terminal guard, and a
/// stricter workflow is an operator's choice. Staying put is always allowed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TransitionTable {
    allowed: BTreeMap<CanonicalStatus, BTreeSet<CanonicalStatus>>,
}

impl TransitionTable {
    /// Restricts moves out of `from` to `to` (replacing an earlier restriction).
    pub fn restrict(
        mut self,
        from: CanonicalStatus,
        to: impl IntoIterator<Item = CanonicalStatus>,
    ) -> Self {
        self.allowed.insert(from, to.into_iter().collect());
        self
    }

    pub fn allows(&self, from: CanonicalStatus, to: CanonicalStatus) -> bool {
        from == to
            || self
                .allowed
                .get(&from)
                .map_or(true, |targets| targets.contains(&to))
    }

    /// `None` when moves out of `from` are unrestricted.
    pub fn allowed_from(&self, from: CanonicalStatus) -> Option<&BTreeSet<CanonicalStatus>> {
        self.allowed.get(&from)
    }
}

/// Everything `decide` needs to know about how conflicts are settled.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "PolicyConfig")]
pub struct Policy {
    /// Lower wins. A system missing here ranks below every listed one.
    pub priorities: BTreeMap<SystemId, u8>,
    pub strategy: Strategy,
    pub strategy_by_kind: BTreeMap<EntityKind, Strategy>,
    /// Two changes from different systems closer than this (by our clock) conflict.
    pub conflict_window: TimeDelta,
    /// This many conflicts on one entity inside the window escalate it to manual
    /// resolution; 0 never escalates.
    pub escalation_threshold: u32,
    /// Under `merge`, the status listed first wins; unlisted statuses rank last.
    pub merge_precedence: Vec<CanonicalStatus>,
    pub transitions: TransitionTable,
}

impl Default for Policy {
    fn default() -> Self {
        use CanonicalStatus::*;
        Policy {
            priorities: BTreeMap::from([
                (SystemId::Postgresql, 0),
                (SystemId::Linear, 1),
                (SystemId::Github, 2),
                (SystemId::Agentapi, 3),
            ]),
            strategy: Strategy::PriorityBased,
            strategy_by_kind: BTreeMap::new(),
            conflict_window: TimeDelta::milliseconds(5000),
            escalation_threshold: 3,
            // Furthest along wins, with `blocked` above the working states so that a
            // report of a blocker is never hidden by a concurrent "still working".
            merge_precedence: vec![
                Done, Cancelled, Blocked, InReview, InProgress, Todo, Backlog, Triage,
            ],
            transitions: TransitionTable::default(),
        }
    }
}

impl Policy {
    /// Reads the policy keys from a TOML table (the body of `[sync]`); absent keys keep
    /// their defaults.
    pub fn from_toml_str(text: &str) -> Result<Policy, PolicyError> {
        let config: PolicyConfig = toml::from_str(text)?;
        Policy::try_from(config)
    }

    pub fn priority(&self, system: SystemId) -> u8 {
        self.priorities.get(&system).copied().unwrap_or(u8::MAX)
    }

    pub fn strategy_for(&self, kind: EntityKind) -> Strategy {
        self.strategy_by_kind
            .get(&kind)
            .copied()
            .unwrap_or(self.strategy)
    }

    /// Position in `merge_precedence`; lower wins.
    pub fn merge_rank(&self, status: CanonicalStatus) -> usize {
        self.merge_precedence
            .iter()
            .position(|s| *s == status)
            .unwrap_or(self.merge_precedence.len() + status as usize)
    }

    /// Whether one more conflict, on top of `recent_conflicts`, reaches the threshold.
    pub fn escalates(&self, recent_conflicts: u32) -> bool {
        self.escalation_threshold > 0
            && recent_conflicts.saturating_add(1) >= self.escalation_threshold
    }
}

/// Why the policy settings were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("sync settings: {0}")]
    Syntax(#[from] toml::de::Error),
    #[error("`sync.{path}` = `{value}`: {problem}")]
    Invalid {
        path: String,
        value: String,
        problem: String,
    },
}

/// The `[sync]` keys as written.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct PolicyConfig {
    conflict_strategy: Option<String>,
    conflict_window_ms: Option<u64>,
    escalation_threshold: Option<u32>,
    priorities: BTreeMap<String, u8>,
    strategy_by_kind: BTreeMap<String, String>,
    merge_precedence: Option<Vec<String>>,
    transitions: BTreeMap<String, Vec<String>>,
}

impl TryFrom<PolicyConfig> for Policy {
    type Error = PolicyError;

    fn try_from(config: PolicyConfig) -> Result<Policy, PolicyError> {
        let mut policy = Policy::default();
        if let Some(name) = &config.conflict_strategy {
            policy.strategy = parse("conflict_strategy", name)?;
        }
        if let Some(ms) = config.conflict_window_ms {
            policy.conflict_window = i64::try_from(ms)
                .ok()
                .and_then(TimeDelta::try_milliseconds)
                .ok_or_else(|| invalid("conflict_window_ms", &ms.to_string(), "too large"))?;
        }
        if let Some(threshold) = config.escalation_threshold {
            policy.escalation_threshold = threshold;
        }
        for (system, priority) in &config.priorities {
            let system: SystemId = parse(&format!("priorities.{system}"), system)?;
            policy.priorities.insert(system, *priority);
        }
        for (kind, strategy) in &config.strategy_by_kind {
            let path = format!("strategy_by_kind.{kind}");
            let kind: EntityKind = parse(&path, kind)?;
            policy
                .strategy_by_kind
                .insert(kind, parse(&path, strategy)?);
        }
        if let Some(order) = &config.merge_precedence {
            let mut precedence = Vec::with_capacity(order.len());
            for (i, name) in order.iter().enumerate() {
                let path = format!("merge_precedence[{i}]");
                let status: CanonicalStatus = parse(&path, name)?;
                if precedence.contains(&status) {
                    return Err(invalid(&path, name, "listed twice"));
                }
                precedence.push(status);
            }
            policy.merge_precedence = precedence;
        }
        for (from, targets) in &config.transitions {
            let path = format!("transitions.{from}");
            let from: CanonicalStatus = parse(&path, from)?;
            let mut allowed = BTreeSet::new();
            for (i, to) in targets.iter().enumerate() {
                allowed.insert(parse::<CanonicalStatus>(&format!("{path}[{i}]"), to)?);
            }
            policy.transitions = policy.transitions.restrict(from, allowed);
        }
        Ok(policy)
    }
}

fn parse<T: FromStr<Err = ParseError>>(path: &str, value: &str) -> Result<T, PolicyError> {
    value.parse().map_err(|e: ParseError| {
        invalid(
            path,
            value,
            &format!("not a valid {}; expected one of: {}", e.what, e.expected),
        )
    })
}

fn invalid(path: &str, value: &str, problem: &str) -> PolicyError {
    PolicyError::Invalid {
        path: path.to_owned(),
        value: value.to_owned(),
        problem: problem.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use CanonicalStatus::*;

    #[test]
    fn the_sync_table_of_the_default_settings_gives_the_default_policy() {
        let sync = r#"
auto_create = true
conflict_strategy = "priority_based"
conflict_window_ms = 5000
escalation_threshold = 3
max_retries = 8
[strategy_by_kind]
[priorities]
postgresql = 0
linear = 1
github = 2
agentapi = 3
"#;
        assert_eq!(Policy::from_toml_str(sync).unwrap(), Policy::default());
        assert_eq!(Policy::from_toml_str("").unwrap(), Policy::default());
    }

    #[test]
    fn every_key_is_read() {
        let policy = Policy::from_toml_str(
            r#"
conflict_strategy = "timestamp_based"
conflict_window_ms = 250
escalation_threshold = 0
merge_precedence = ["blocked", "done"]
[priorities]
github = 0
[strategy_by_kind]
pull_request = "merge"
[transitions]
done = ["todo"]
cancelled = []
"#,
        )
        .unwrap();
        assert_eq!(
            policy.strategy_for(EntityKind::Issue),
            Strategy::TimestampBased
        );
        assert_eq!(
            policy.strategy_for(EntityKind::PullRequest),
            Strategy::Merge
        );
        assert_eq!(policy.conflict_window, TimeDelta::milliseconds(250));
        assert!(!policy.escalates(1000));
        assert_eq!(
            (
                policy.priority(SystemId::Github),
                policy.priority(SystemId::Linear)
            ),
            (0, 1)
        );
        assert!(policy.merge_rank(Blocked) < policy.merge_rank(Done));
        assert!(policy.merge_rank(Done) < policy.merge_rank(Triage));
        assert!(policy.transitions.allows(Done, Todo));
        assert!(!policy.transitions.allows(Done, InProgress));
        assert!(!policy.transitions.allows(Cancelled, Todo));
        assert!(policy.transitions.allows(Todo, Done));
    }

    #[test]
    fn the_threshold_counts_the_conflict_being_decided() {
        let policy = Policy::default();
        assert!(!policy.escalates(0));
        assert!(!policy.escalates(1));
        assert!(policy.escalates(2));
    }

    #[test]
    fn bad_values_are_refused_with_their_key() {
        let cases = [
            (
                "conflict_strategy = \"newest\"",
                "conflict_strategy",
                "newest",
            ),
            ("[priorities]\ngitlab = 4", "priorities.gitlab", "gitlab"),
            (
                "[strategy_by_kind]\nepic = \"merge\"",
                "strategy_by_kind.epic",
                "epic",
            ),
            (
                "[strategy_by_kind]\ntask = \"latest\"",
                "strategy_by_kind.task",
                "latest",
            ),
            (
                "merge_precedence = [\"done\", \"shipped\"]",
                "merge_precedence[1]",
                "shipped",
            ),
            (
                "merge_precedence = [\"done\", \"done\"]",
                "merge_precedence[1]",
                "done",
            ),
            (
                "[transitions]\nfinished = []",
                "transitions.finished",
                "finished",
            ),
            (
                "[transitions]\ndone = [\"reopened\"]",
                "transitions.done[0]",
                "reopened",
            ),
        ];
        for (text, path, value) in cases {
            match Policy::from_toml_str(text) {
                Err(PolicyError::Invalid {
                    path: p, value: v, ..
                }) => {
                    assert_eq!((p.as_str(), v.as_str()), (path, value), "{text}");
                }
                other => panic!("{text}: expected an Invalid error, got {other:?}"),
            }
        }
        let err = Policy::from_toml_str("conflict_strategy = \"newest\"").unwrap_err();
        assert!(err.to_string().contains("timestamp_based"), "{err}");
        assert!(matches!(
            Policy::from_toml_str("conflict_window_ms = -1"),
            Err(PolicyError::Syntax(_))
        ));
    }
}
