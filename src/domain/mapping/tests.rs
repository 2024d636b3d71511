//! Every shipped mapping, the per-team and per-repository overrides, and the round trip.

use std::collections::BTreeSet;

use super::*;
use crate::domain::CanonicalStatus::{self, *};

fn table() -> MappingTable {
    MappingTable::default()
}

fn set(statuses: &[CanonicalStatus]) -> BTreeSet<CanonicalStatus> {
    statuses.iter().copied().collect()
}

fn linear(name: Option<&str>, ty: Option<&str>) -> NativeStatus {
    NativeStatus::Linear {
        state_id: Some("0b7c".into()),
        name: name.map(Into::into),
        state_type: ty.map(Into::into),
    }
}

fn issue_closed(reason: Option<&str>) -> NativeStatus {
    NativeStatus::GithubIssue(GithubIssueState::Closed {
        state_reason: reason.map(Into::into),
    })
}

fn pr(pr: GithubPullRequestState) -> NativeStatus {
    NativeStatus::GithubPullRequest { pr }
}

fn option(name: Option<&str>) -> NativeStatus {
    NativeStatus::GithubProjectItem {
        project_node_id: "PVT_1".into(),
        field_node_id: "PVTSSF_1".into(),
        option_name: name.map(Into::into),
    }
}

fn exact(native: &NativeStatus, project: Option<&str>) -> CanonicalStatus {
    let mapping = table().inbound(native, project).unwrap();
    assert_eq!(
        mapping.compatible().len(),
        1,
        "{native:?} should map to one status"
    );
    mapping.default_status()
}

/// A complete file with `extra` appended, for override and error cases.
fn with(extra: &str) -> Result<MappingTable, MappingConfigError> {
    MappingTable::from_toml_str(&format!("{SHIPPED_MAPPINGS}\n{extra}"))
}

#[test]
fn shipped_file_is_valid() {
    MappingTable::from_toml_str(SHIPPED_MAPPINGS).unwrap();
    assert_eq!(
        MappingTable::default(),
        MappingTable::from_toml_str(SHIPPED_MAPPINGS).unwrap()
    );
}

#[test]
fn linear_maps_every_state_type() {
    let cases = [
        ("triage", Triage),
        ("backlog", Backlog),
        ("unstarted", Todo),
        ("started", InProgress),
        ("completed", Done),
        ("canceled", Cancelled),
        ("duplicate", Cancelled),
    ];
    for (ty, status) in cases {
        assert_eq!(
            exact(&linear(Some("Whatever"), Some(ty)), None),
            status,
            "{ty}"
        );
        assert_eq!(exact(&linear(None, Some(ty)), None), status, "{ty}");
    }
}

#[test]
fn linear_named_states_win_over_their_type_for_every_team() {
    assert_eq!(
        exact(&linear(Some("In Review"), Some("started")), None),
        InReview
    );
    assert_eq!(
        exact(&linear(Some("Blocked"), Some("started")), Some("OPS")),
        Blocked
    );
    // Names are matched case-insensitively: teams spell them their own way.
    assert_eq!(
        exact(&linear(Some("in review"), Some("started")), None),
        InReview
    );
    let mapping = table()
        .inbound(&linear(Some("In Review"), Some("started")), None)
        .unwrap();
    assert_eq!(mapping.native(), "In Review");
}

#[test]
fn linear_team_overrides_apply_to_that_team_only() {
    let table = with(
        r#"
[linear.teams.ENG.states]
"QA" = "in_review"
[linear.teams.ENG.outbound]
in_review = { type = "started", name = "QA" }
"#,
    )
    .unwrap();
    let qa = linear(Some("QA"), Some("started"));
    assert_eq!(
        table.inbound(&qa, Some("ENG")).unwrap().default_status(),
        InReview
    );
    assert_eq!(
        table.inbound(&qa, Some("eng")).unwrap().default_status(),
        InReview
    );
    assert_eq!(
        table.inbound(&qa, Some("OPS")).unwrap().default_status(),
        InProgress
    );
    assert_eq!(
        table.inbound(&qa, None).unwrap().default_status(),
        InProgress
    );
    // The shared names still hold inside the team.
    let blocked = linear(Some("Blocked"), Some("started"));
    assert_eq!(
        table
            .inbound(&blocked, Some("ENG"))
            .unwrap()
            .default_status(),
        Blocked
    );

    let qa_out = OutboundNative::LinearState {
        name: Some("QA".into()),
        state_type: "started".into(),
    };
    assert_eq!(
        table.outbound_for(SystemId::Linear, InReview, Some("ENG")),
        qa_out
    );
    let shared = OutboundNative::LinearState {
        name: Some("In Review".into()),
        state_type: "started".into(),
    };
    assert_eq!(
        table.outbound_for(SystemId::Linear, InReview, Some("OPS")),
        shared
    );
}

#[test]
fn linear_values_not_understood_are_named() {
    let err = table()
        .inbound(&linear(Some("Parked"), Some("paused")), None)
        .unwrap_err();
    assert_eq!(
        err,
        MappingError::Unmapped {
            system: SystemId::Linear,
            value: "paused".into()
        }
    );
    assert!(err.to_string().contains("`paused`"));
    let err = table()
        .inbound(&linear(Some("Parked"), None), None)
        .unwrap_err();
    assert_eq!(
        err,
        MappingError::Unmapped {
            system: SystemId::Linear,
            value: "Parked".into()
        }
    );
    let err = table().inbound(&linear(None, None), None).unwrap_err();
    assert!(matches!(
        err,
        MappingError::NeedsLookup {
            system: SystemId::Linear,
            ..
        }
    ));
}

#[test]
fn github_issue_states() {
    let open = table()
        .inbound(&NativeStatus::GithubIssue(GithubIssueState::Open), None)
        .unwrap();
    assert_eq!(open.default_status(), Todo);
    assert_eq!(
        *open.compatible(),
        set(&[Triage, Backlog, Todo, InProgress, InReview, Blocked])
    );
    assert_eq!(exact(&issue_closed(Some("completed")), None), Done);
    assert_eq!(exact(&issue_closed(None), None), Done);
    assert_eq!(exact(&issue_closed(Some("not_planned")), None), Cancelled);
    assert_eq!(exact(&issue_closed(Some("duplicate")), None), Cancelled);
    let err = table()
        .inbound(&issue_closed(Some("spam")), None)
        .unwrap_err();
    assert_eq!(
        err,
        MappingError::Unmapped {
            system: SystemId::Github,
            value: "closed/spam".into()
        }
    );
}

#[test]
fn github_pull_request_states() {
    use GithubPullRequestState as Pr;
    assert_eq!(exact(&pr(Pr::Draft), None), InProgress);
    let open = table().inbound(&pr(Pr::Open), None).unwrap();
    assert_eq!(
        (open.default_status(), open.compatible().clone()),
        (InProgress, set(&[InProgress, InReview]))
    );
    assert_eq!(exact(&pr(Pr::ReviewRequested), None), InReview);
    assert_eq!(exact(&pr(Pr::Merged), None), Done);
    assert_eq!(exact(&pr(Pr::ClosedUnmerged), None), Cancelled);
}

#[test]
fn a_repository_can_make_closing_unmerged_a_noop() {
    let table = with(
        r#"
[github.repos."Acme/API".pull_request]
closed_unmerged = "noop"
"#,
    )
    .unwrap();
    let closed = pr(GithubPullRequestState::ClosedUnmerged);
    let noop = table.inbound(&closed, Some("acme/api")).unwrap();
    assert!(noop.is_noop());
    assert_eq!(*noop.compatible(), set(CanonicalStatus::ALL));
    // A pull request first seen closed still becomes an entity in a sensible state.
    assert_eq!(noop.default_status(), Cancelled);
    // Other repositories keep the shared rule, and the repository keeps the rest.
    assert_eq!(
        table
            .inbound(&closed, Some("acme/web"))
            .unwrap()
            .default_status(),
        Cancelled
    );
    assert!(!table.inbound(&closed, Some("acme/web")).unwrap().is_noop());
    let merged = pr(GithubPullRequestState::Merged);
    assert_eq!(
        table
            .inbound(&merged, Some("acme/api"))
            .unwrap()
            .default_status(),
        Done
    );
}

#[test]
fn project_options() {
    let cases = [
        ("Todo", Todo),
        ("In Progress", InProgress),
        ("In Review", InReview),
        ("Done", Done),
        ("Backlog", Backlog),
        ("Blocked", Blocked),
    ];
    for (name, status) in cases {
        let mapping = table().inbound(&option(Some(name)), None).unwrap();
        assert_eq!(mapping.default_status(), status, "{name}");
    }
    // The board's stand-ins for columns it lacks accept what they stand for.
    let done = table().inbound(&option(Some("Done")), None).unwrap();
    assert_eq!(*done.compatible(), set(&[Done, Cancelled]));
    let backlog = table().inbound(&option(Some("backlog")), None).unwrap();
    assert_eq!(*backlog.compatible(), set(&[Backlog, Triage]));

    let err = table().inbound(&option(None), None).unwrap_err();
    assert!(matches!(
        err,
        MappingError::NeedsLookup {
            system: SystemId::Github,
            ..
        }
    ));
    assert!(err.to_string().contains("PVTSSF_1"));
    let err = table().inbound(&option(Some("Shipped")), None).unwrap_err();
    assert_eq!(
        err,
        MappingError::Unmapped {
            system: SystemId::Github,
            value: "Shipped".into()
        }
    );
}

#[test]
fn a_repository_can_add_project_options() {
    let table = with(
        r#"
[github.repos."acme/api".project.options]
"QA" = "in_review"
[github.repos."acme/api".project.outbound]
in_review = "QA"
"#,
    )
    .unwrap();
    let qa = option(Some("QA"));
    assert_eq!(
        table
            .inbound(&qa, Some("acme/api"))
            .unwrap()
            .default_status(),
        InReview
    );
    assert!(table.inbound(&qa, None).is_err());
    // The shared options still work in that repository.
    assert_eq!(
        table
            .inbound(&option(Some("Done")), Some("acme/api"))
            .unwrap()
            .default_status(),
        Done
    );
    let out = table.project_option_for(InReview, Some("acme/api"));
    assert_eq!(
        out,
        OutboundNative::GithubProjectOption { name: "QA".into() }
    );
}

#[test]
fn agent_states() {
    let cases = [
        (AgentState::Queued, Todo),
        (AgentState::Working, InProgress),
        (AgentState::InputRequired, Blocked),
        (AgentState::Complete, InReview),
        (AgentState::Failure, Blocked),
        (AgentState::Canceled, Cancelled),
    ];
    for (state, status) in cases {
        assert_eq!(
            exact(&NativeStatus::Agent { state }, None),
            status,
            "{state:?}"
        );
    }
}

#[test]
fn agent_complete_can_mean_done() {
    let text = SHIPPED_MAPPINGS.replace("complete = \"in_review\"", "complete = \"done\"");
    let table = MappingTable::from_toml_str(&text).unwrap();
    let complete = NativeStatus::Agent {
        state: AgentState::Complete,
    };
    assert_eq!(
        table.inbound(&complete, None).unwrap().default_status(),
        Done
    );
}

#[test]
fn canonical_statuses_map_to_themselves() {
    for &status in CanonicalStatus::ALL {
        assert_eq!(exact(&NativeStatus::Canonical { status }, None), status);
    }
}

#[test]
fn outbound_values() {
    use GithubState::*;
    use GithubStateReason::*;
    let t = table();
    for &status in CanonicalStatus::ALL {
        let expected = match status {
            Done => (Closed, Some(Completed)),
            Cancelled => (Closed, Some(NotPlanned)),
            _ => (Open, None),
        };
        let github = OutboundNative::GithubIssue {
            state: expected.0,
            state_reason: expected.1,
        };
        assert_eq!(t.outbound_for(SystemId::Github, status, None), github);
        assert_eq!(
            t.outbound_for(SystemId::Postgresql, status, None),
            OutboundNative::Canonical { status }
        );
    }
    let linear = |status| t.outbound_for(SystemId::Linear, status, Some("ENG"));
    let state = |name: Option<&str>, ty: &str| OutboundNative::LinearState {
        name: name.map(Into::into),
        state_type: ty.into(),
    };
    assert_eq!(linear(Triage), state(None, "triage"));
    assert_eq!(linear(Backlog), state(None, "backlog"));
    assert_eq!(linear(Todo), state(None, "unstarted"));
    assert_eq!(linear(InProgress), state(None, "started"));
    assert_eq!(linear(InReview), state(Some("In Review"), "started"));
    assert_eq!(linear(Blocked), state(Some("Blocked"), "started"));
    assert_eq!(linear(Done), state(None, "completed"));
    assert_eq!(linear(Cancelled), state(None, "canceled"));

    let agent = |status| t.outbound_for(SystemId::Agentapi, status, None);
    assert_eq!(
        agent(InProgress),
        OutboundNative::Agent {
            state: AgentState::Working
        }
    );
    assert_eq!(
        agent(Blocked),
        OutboundNative::Agent {
            state: AgentState::InputRequired
        }
    );
    assert_eq!(
        agent(Cancelled),
        OutboundNative::Agent {
            state: AgentState::Canceled
        }
    );

    let board = |status| t.project_option_for(status, None);
    assert_eq!(
        board(InProgress),
        OutboundNative::GithubProjectOption {
            name: "In Progress".into()
        }
    );
    assert_eq!(
        board(Cancelled),
        OutboundNative::GithubProjectOption {
            name: "Done".into()
        }
    );
}

/// What a write of `out` to `system` reads back as, in that system's vocabulary.
fn read_back(system: SystemId, out: &OutboundNative) -> NativeStatus {
    match out.clone() {
        OutboundNative::GithubIssue {
            state: GithubState::Open,
            ..
        } => NativeStatus::GithubIssue(GithubIssueState::Open),
        OutboundNative::GithubIssue { state_reason, .. } => issue_closed(match state_reason {
            Some(GithubStateReason::NotPlanned) => Some("not_planned"),
            _ => Some("completed"),
        }),
        OutboundNative::GithubProjectOption { name } => option(Some(&name)),
        OutboundNative::LinearState { name, state_type } => NativeStatus::Linear {
            state_id: None,
            name,
            state_type: Some(state_type),
        },
        OutboundNative::Agent { state } => NativeStatus::Agent { state },
        OutboundNative::Canonical { status } => NativeStatus::Canonical { status },
        OutboundNative::Named { name } => NativeStatus::Named { system, name },
    }
}

#[test]
fn outbound_values_map_back_to_the_status_written() {
    let t = with(
        r#"
[linear.teams.ENG.states]
"QA" = "in_review"
[linear.teams.ENG.outbound]
in_review = { type = "started", name = "QA" }
"#,
    )
    .unwrap();
    // The agent vocabulary has no triage, backlog or done of its own (module doc).
    let exceptions = [
        (SystemId::Agentapi, Triage),
        (SystemId::Agentapi, Backlog),
        (SystemId::Agentapi, Done),
    ];
    for project in [None, Some("ENG"), Some("acme/api")] {
        for &system in SystemId::ALL {
            for &status in CanonicalStatus::ALL {
                let out = t.outbound_for(system, status, project);
                let back = t.inbound(&read_back(system, &out), project).unwrap();
                let expected = !exceptions.contains(&(system, status));
                assert_eq!(
                    back.contains(status),
                    expected,
                    "{system} {status} via {out}"
                );
            }
        }
        for &status in CanonicalStatus::ALL {
            let out = t.project_option_for(status, project);
            assert!(
                t.inbound(&read_back(SystemId::Github, &out), project)
                    .unwrap()
                    .contains(status),
                "{out}"
            );
        }
    }
}
