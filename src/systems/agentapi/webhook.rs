//! Agent API status reports (`POST /webhooks/agentapi`) turned into `StatusUpdate`s:
//! `{"taskId","state","summary"?,"link"?,"issue"?,"timestamp"}`, camelCase.
//! Never panics on any input, never does I/O, never trusts a link that is not http(s).

use serde_json::Value;

use crate::domain::names;
use crate::domain::{
    AgentState, EntityKind, ExternalRef, NativeStatus, StatusUpdate, SystemId, UpdateAction,
};
use crate::systems::linear::webhook::team_key_of;
use crate::systems::{metadata, optional, parse_object, required, timestamp, Parsed, PayloadError};

/// Every `state` an agent may report, as it is spelled on the wire.
pub const STATES: [(&str, AgentState); 6] = [
    ("queued", AgentState::Queued),
    ("working", AgentState::Working),
    ("input_required", AgentState::InputRequired),
    ("complete", AgentState::Complete),
    ("failure", AgentState::Failure),
    ("canceled", AgentState::Canceled),
];

/// Parses one report. Every report is a status: nothing is ignored.
pub fn parse(body: &[u8]) -> Result<Parsed, PayloadError> {
    let root = parse_object(body)?;

    let task_id: String = required(&root, "taskId")?;
    if task_id.trim().is_empty() {
        return Err(PayloadError::invalid("taskId", "must not be empty"));
    }
    let state = agent_state(&required::<String>(&root, "state")?)?;
    let source_timestamp = timestamp(&root, "timestamp")?;
    let issue = match optional::<String>(&root, "issue")? {
        Some(issue) => Some(issue_ref(&issue)?),
        None => None,
    };
    let link: Option<String> = optional(&root, "link")?;
    if let Some(link) = &link {
        if !(link.starts_with("https://") || link.starts_with("http://")) {
            return Err(PayloadError::invalid("link", "must be an http(s) URL"));
        }
    }
    let summary: Option<String> = optional(&root, "summary")?;

    let project = issue.as_ref().and_then(project_of);
    Ok(Parsed::Updates(vec![StatusUpdate {
        source: SystemId::Agentapi,
        target: ExternalRef::new(SystemId::Agentapi, task_id),
        aliases: Vec::new(),
        links: issue.into_iter().collect(),
        kind: EntityKind::Task,
        action: UpdateAction::Status {
            native: NativeStatus::Agent { state },
        },
        source_timestamp,
        project,
        // An agent's report never reopens finished work by itself.
        explicit: false,
        title: None,
        body: None,
        metadata: metadata([
            ("summary", summary.map(Value::from)),
            ("link", link.map(Value::from)),
        ]),
    }]))
}

fn agent_state(text: &str) -> Result<AgentState, PayloadError> {
    STATES
        .iter()
        .find(|(name, _)| *name == text)
        .map(|(_, state)| *state)
        .ok_or_else(|| {
            let valid: Vec<&str> = STATES.iter().map(|(name, _)| *name).collect();
            PayloadError::invalid(
                "state",
                format!(
                    "`{text}` is not a task state; expected one of: {}",
                    valid.join(", ")
                ),
            )
        })
}

fn issue_ref(text: &str) -> Result<ExternalRef, PayloadError> {
    issue_ref_at("issue", text)
}

/// `owner/repo#12` is a GitHub issue or pull request; anything else without `/` or `#`
/// is a Linear issue (its identifier `ENG-123`, or its UUID). An error names `field`.
pub(crate) fn issue_ref_at(field: &str, text: &str) -> Result<ExternalRef, PayloadError> {
    const WHY: &str = "expected a GitHub `owner/repo#12` or a Linear identifier like `ENG-123`";
    if text.trim().is_empty() || text.contains(char::is_whitespace) {
        return Err(PayloadError::invalid(field, WHY));
    }
    if !text.contains(['/', '#']) {
        return Ok(ExternalRef::new(SystemId::Linear, text));
    }
    let github = text.rsplit_once('#').and_then(|(repo, number)| {
        let (owner, name) = repo.split_once('/')?;
        let well_formed = names::valid_owner(owner) && names::valid_repo(name);
        // Through u64 so that `#012` and `#12` name the same issue.
        let number: u64 = number
            .parse()
            .ok()
            .filter(|_| number.bytes().all(|b| b.is_ascii_digit()))?;
        well_formed.then(|| format!("{repo}#{number}"))
    });
    github
        .map(|id| ExternalRef::new(SystemId::Github, id))
        .ok_or_else(|| PayloadError::invalid(field, format!("`{text}`: {WHY}")))
}

/// The `project:` room of the linked issue: `owner/repo`, or a Linear team key.
pub(crate) fn project_of(issue: &ExternalRef) -> Option<String> {
    match issue.system {
        SystemId::Github => issue
            .external_id
            .split_once('#')
            .map(|(repo, _)| repo.to_owned()),
        _ => team_key_of(&issue.external_id),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::systems::test_support::{
        agent_report as report, arb_json, at, edited, invalid_field, one, set,
    };
    use proptest::prelude::*;
    use serde_json::json;

    /// `report()` with some fields replaced (`None` removes one), parsed.
    fn parse_with(edits: &[(&str, Option<Value>)]) -> Result<Parsed, PayloadError> {
        parse(&edited(report(), edits))
    }

    fn update_of(edits: &[(&str, Option<Value>)]) -> StatusUpdate {
        one(parse_with(edits))
    }

    fn agent(state: AgentState) -> UpdateAction {
        UpdateAction::Status {
            native: NativeStatus::Agent { state },
        }
    }

    #[test]
    fn a_report_is_a_task_status_linked_to_its_issue() {
        let want = StatusUpdate {
            source: SystemId::Agentapi,
            target: ExternalRef::new(SystemId::Agentapi, "task_01HXYZ"),
            aliases: vec![],
            links: vec![ExternalRef::new(SystemId::Linear, "ENG-123")],
            kind: EntityKind::Task,
            action: agent(AgentState::Working),
            source_timestamp: at("2024-05-01T12:00:00Z"),
            project: Some("ENG".into()),
            explicit: false,
            title: None,
            body: None,
            metadata: json!({
                "summary": "Reproduced the bug; writing a fix",
                "link": "https://agents.example.com/tasks/task_01HXYZ"
            }),
        };
        assert_eq!(update_of(&[]), want);
    }

    #[test]
    fn every_documented_state_parses() {
        for (name, state) in STATES {
            assert_eq!(update_of(&[set("state", json!(name))]).action, agent(state));
            // The wire names are the domain type's own serde names.
            assert_eq!(serde_json::to_value(state).unwrap(), json!(name));
        }
    }

    #[test]
    fn an_unknown_state_names_the_valid_ones() {
        let err = parse_with(&[set("state", json!("done"))]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "field `state` is invalid: `done` is not a task state; expected one of: \
             queued, working, input_required, complete, failure, canceled"
        );
    }

    #[test]
    fn a_github_issue_is_linked_as_a_github_ref() {
        let got = update_of(&[set("issue", json!("octo-org/octo-repo#012"))]);
        let want = ExternalRef::new(SystemId::Github, "octo-org/octo-repo#12");
        assert_eq!(got.links, vec![want]);
        assert_eq!(got.project.as_deref(), Some("octo-org/octo-repo"));
    }

    #[test]
    fn a_linear_uuid_is_linked_without_a_project() {
        let uuid = "2f2a8f5e-3c6b-4c1e-9a7d-000000000001";
        let got = update_of(&[set("issue", json!(uuid))]);
        let want = vec![ExternalRef::new(SystemId::Linear, uuid)];
        assert_eq!((got.links, got.project), (want, None));
    }

    #[test]
    fn optional_fields_may_be_absent_or_null() {
        let got = update_of(&[("summary", None), set("link", Value::Null), ("issue", None)]);
        assert_eq!((got.links, got.project), (vec![], None));
        assert_eq!(got.metadata, json!({}));
    }

    #[test]
    fn bad_reports_name_what_was_wrong() {
        let missing = |field: &str| PayloadError::Missing(field.into());
        let cases = [
            (("taskId", None), missing("taskId")),
            (
                set("taskId", json!(" ")),
                PayloadError::invalid("taskId", "must not be empty"),
            ),
            (("timestamp", None), missing("timestamp")),
            (("state", None), missing("state")),
        ];
        for (edit, want) in cases {
            assert_eq!(parse_with(&[edit]), Err(want));
        }
        let link = parse_with(&[set("link", json!("javascript:alert(1)"))]);
        assert_eq!(
            link,
            Err(PayloadError::invalid("link", "must be an http(s) URL"))
        );
        let state = parse_with(&[set("state", json!(3))]).unwrap_err();
        assert_eq!(
            state.to_string(),
            "field `state` is invalid: invalid type: integer `3`, expected a string"
        );
        let bad_issues = [
            "",
            "owner/repo#x",
            "owner/repo",
            "a/b/c#1",
            "/repo#1",
            "ENG 123",
            "o/r#-1",
        ];
        for issue in bad_issues {
            let err = parse_with(&[set("issue", json!(issue))]).unwrap_err();
            assert_eq!(invalid_field(err), "issue", "{issue}");
        }
        let err = parse_with(&[set("timestamp", json!("2024-05-01 12:00"))]).unwrap_err();
        assert_eq!(invalid_field(err), "timestamp");
        assert!(matches!(parse(b"{\"taskId\":"), Err(PayloadError::Json(_))));
    }

    proptest! {
        #[test]
        fn any_value_in_any_field_never_panics(
            path in prop::sample::select(vec![
                "taskId", "state", "summary", "link", "issue", "timestamp",
            ]),
            replacement in prop::option::of(arb_json()),
        ) {
            let _ = parse_with(&[(path, replacement)]);
        }

        #[test]
        fn any_issue_text_never_panics(issue in ".{0,40}") {
            let _ = parse_with(&[("issue", Some(Value::String(issue)))]);
        }
    }
}
