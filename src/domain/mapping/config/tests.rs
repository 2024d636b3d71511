//! Configuration errors: every one names the key path and the bad value.

use super::MappingConfigError;
use crate::domain::mapping::{MappingTable, SHIPPED_MAPPINGS};

/// The shipped file with `extra` appended.
fn with(extra: &str) -> Result<MappingTable, MappingConfigError> {
    MappingTable::from_toml_str(&format!("{SHIPPED_MAPPINGS}\n{extra}"))
}

fn invalid(result: Result<MappingTable, MappingConfigError>) -> (String, String, String) {
    match result {
        Err(MappingConfigError::Invalid {
            path,
            value,
            problem,
        }) => (path, value, problem),
        other => panic!("expected an Invalid error, got {other:?}"),
    }
}

#[test]
fn unknown_status_names_are_refused_with_their_key_path() {
    let (path, value, problem) = invalid(with(
        "[linear.teams.ENG.states]\n\"With QA\" = \"reviewing\"\n",
    ));
    assert_eq!(
        (path.as_str(), value.as_str()),
        ("linear.teams.ENG.states.\"With QA\"", "reviewing")
    );
    assert!(problem.contains("in_review"), "{problem}");

    let text = SHIPPED_MAPPINGS.replace("default = \"todo\"", "default = \"to_do\"");
    let (path, value, _) = invalid(MappingTable::from_toml_str(&text));
    assert_eq!(
        (path.as_str(), value.as_str()),
        ("github.issue.open.default", "to_do")
    );

    let text = SHIPPED_MAPPINGS.replace("working = \"in_progress\"", "working = \"doing\"");
    let err = MappingTable::from_toml_str(&text).unwrap_err();
    assert_eq!(
        err.to_string(),
        "mappings.toml: `agentapi.states.working` = `doing`: not a canonical status; expected \
         one of: triage, backlog, todo, in_progress, in_review, blocked, done, cancelled"
    );

    let (path, value, _) = invalid(with(
        "[github.repos.\"a/b\".project.outbound]\nreviewing = \"QA\"\n",
    ));
    assert_eq!(
        (path.as_str(), value.as_str()),
        (
            "github.repos.\"a/b\".project.outbound.reviewing",
            "reviewing"
        )
    );
}

#[test]
fn noop_is_refused_in_name_tables() {
    let (path, value, _) = invalid(with("[linear.teams.ENG.states]\n\"Parked\" = \"noop\"\n"));
    assert_eq!(
        (path.as_str(), value.as_str()),
        ("linear.teams.ENG.states.Parked", "noop")
    );
}

#[test]
fn a_default_outside_its_set_is_refused() {
    let text = SHIPPED_MAPPINGS.replace(
        "open = { compatible = [\"in_progress\", \"in_review\"], default = \"in_progress\" }",
        "open = { compatible = [\"in_progress\", \"in_review\"], default = \"todo\" }",
    );
    let (path, value, _) = invalid(MappingTable::from_toml_str(&text));
    assert_eq!(
        (path.as_str(), value.as_str()),
        ("github.pull_request.open.default", "todo")
    );
}

#[test]
fn an_outbound_value_that_would_echo_back_as_a_change_is_refused() {
    // Writing "QA" for in_review, without mapping "QA" inbound, would come back as
    // in_progress (its type) and undo the change.
    let (path, _, problem) = invalid(with(
        "[linear.teams.ENG.outbound]\nin_review = { type = \"started\", name = \"QA\" }\n",
    ));
    assert_eq!(path, "linear.teams.ENG.outbound.in_review");
    assert!(problem.contains("in_progress"), "{problem}");

    let (path, _, problem) = invalid(with(
        "[github.repos.\"acme/api\".project.outbound]\nin_review = \"QA\"\n",
    ));
    assert_eq!(path, "github.repos.\"acme/api\".project.outbound.in_review");
    assert!(problem.contains("`QA`"), "{problem}");
}

#[test]
fn missing_and_unknown_keys_are_refused() {
    let text = SHIPPED_MAPPINGS.replace("merged = \"done\"\n", "");
    assert_eq!(
        MappingTable::from_toml_str(&text).unwrap_err(),
        MappingConfigError::Missing {
            path: "github.pull_request.merged".into()
        }
    );
    let text = SHIPPED_MAPPINGS.replace("blocked = \"input_required\"\n", "");
    assert_eq!(
        MappingTable::from_toml_str(&text).unwrap_err(),
        MappingConfigError::Missing {
            path: "agentapi.outbound.blocked".into()
        }
    );
    let text = SHIPPED_MAPPINGS.replace("closed_unmerged = ", "closed_unmergd = ");
    let err = MappingTable::from_toml_str(&text).unwrap_err();
    assert!(err.to_string().contains("closed_unmergd"), "{err}");
    assert!(matches!(err, MappingConfigError::Syntax(_)), "{err}");
    let err = MappingTable::from_toml_str(
        &SHIPPED_MAPPINGS.replace("[agentapi.outbound]", "[agentapi.outbund]"),
    )
    .unwrap_err();
    assert!(err.to_string().contains("outbund"), "{err}");
}

#[test]
fn names_differing_only_in_case_are_refused() {
    let (path, value, _) = invalid(with(
        "[linear.teams.ENG.states]\n\"QA\" = \"in_review\"\n\"qa\" = \"blocked\"\n",
    ));
    assert_eq!(value, "qa");
    assert!(path.starts_with("linear.teams.ENG.states"), "{path}");
}

#[test]
fn a_value_of_the_wrong_shape_says_what_to_write() {
    let err = with("[linear.teams.ENG.states]\nQA = 1\n").unwrap_err();
    assert!(matches!(err, MappingConfigError::Syntax(_)));
    assert!(err.to_string().contains("compatible = [...]"), "{err}");
    let err = with("[linear.teams.ENG.states]\nQA = { compatible = [\"todo\"] }\n").unwrap_err();
    assert!(err.to_string().contains("missing field `default`"), "{err}");
}

/// A fifth system's vocabulary, as its section of the mappings file would give it.
const EXAMPLE: &str = r#"
[example.states]
"To Do" = "todo"
"In Progress" = "in_progress"
"In Review" = "in_review"
"Blocked" = "blocked"
"Done" = { compatible = ["done", "cancelled"], default = "done" }
"Won't Do" = "cancelled"
"Backlog" = { compatible = ["backlog", "triage"], default = "backlog" }

[example.outbound]
triage = "Backlog"
backlog = "Backlog"
todo = "To Do"
in_progress = "In Progress"
in_review = "In Review"
blocked = "Blocked"
done = "Done"
cancelled = "Won't Do"
"#;

fn with_example(text: &str) -> Result<MappingTable, MappingConfigError> {
    // Beside the systems the shipped file names.
    let known = |s: &str| s == "example" || super::named::known_system(s);
    super::load_with(&format!("{SHIPPED_MAPPINGS}\n{text}"), &known)
}

#[test]
fn a_section_for_a_system_statsync_has_no_connector_for_is_refused() {
    let (path, value, problem) = invalid(with(EXAMPLE));
    assert_eq!((path.as_str(), value.as_str()), ("example", "example"));
    assert!(
        problem.contains("github, linear") || problem.contains("linear, github"),
        "{problem}"
    );
    // A misspelt built-in section is not taken for a new system either.
    let (path, _, _) = invalid(with("[lineer.states]\n\"Todo\" = \"todo\"\n"));
    assert_eq!(path, "lineer");
}

#[test]
fn a_registered_system_maps_its_status_names_both_ways() {
    use crate::domain::{CanonicalStatus, SystemId};
    let table = with_example(EXAMPLE).expect("a complete named vocabulary loads");
    let back = table
        .named_state("example", "in progress")
        .expect("case-insensitive");
    assert_eq!(back.default_status(), CanonicalStatus::InProgress);
    let done = table.named_state("example", "Done").unwrap();
    assert!(done.contains(CanonicalStatus::Cancelled), "{done:?}");
    assert!(table.named_state("example", "Someday").is_none());
    assert!(table.named_state("gitlab", "Done").is_none());
    // The built-in systems are untouched by it.
    assert_eq!(
        table.outbound_for(SystemId::Agentapi, CanonicalStatus::Done, None),
        MappingTable::default().outbound_for(SystemId::Agentapi, CanonicalStatus::Done, None)
    );
}

#[test]
fn a_named_outbound_value_that_would_not_come_back_as_its_status_is_refused() {
    let text = EXAMPLE.replace("blocked = \"Blocked\"", "blocked = \"On Hold\"");
    let (path, value, problem) = invalid(with_example(&text));
    assert_eq!(
        (path.as_str(), value.as_str()),
        ("example.outbound.blocked", "On Hold")
    );
    assert!(problem.contains("does not map"), "{problem}");

    let text = EXAMPLE.replace("backlog = \"Backlog\"", "backlog = \"To Do\"");
    let (path, _, problem) = invalid(with_example(&text));
    assert_eq!(path, "example.outbound.backlog");
    assert!(problem.contains("maps back to todo"), "{problem}");

    let text = EXAMPLE.replace("cancelled = \"Won't Do\"\n", "");
    assert!(matches!(
        with_example(&text),
        Err(MappingConfigError::Missing { path }) if path == "example.outbound.cancelled"
    ));
}

#[test]
fn the_shipped_a2a_vocabulary_maps_every_state() {
    use crate::domain::{CanonicalStatus as S, NativeStatus, SystemId};
    let table = super::load(SHIPPED_MAPPINGS).expect("shipped mappings load");
    let status = |name: &str| {
        let native = NativeStatus::Named {
            system: SystemId::A2a,
            name: name.into(),
        };
        table.inbound(&native, None).expect(name).default_status()
    };
    let cases = [
        ("submitted", S::Todo),
        ("working", S::InProgress),
        ("input-required", S::Blocked),
        ("auth-required", S::Blocked),
        ("completed", S::InReview),
        ("failed", S::Blocked),
        ("canceled", S::Cancelled),
        ("rejected", S::Cancelled),
    ];
    for (name, want) in cases {
        assert_eq!(status(name), want, "{name}");
    }
}
