//! The GitHub webhook parser against real payloads and their edge cases.

use super::*;
use crate::systems::test_support::{
    arb_json, at, edited, invalid_field, one, set, GITHUB_FIXTURES as FIXTURES,
};
use proptest::prelude::*;
use GithubPullRequestState as Pr;

const REPO: &str = "Codertocat/Hello-World";
const ISSUE: &str = "issues.opened";
const PR: &str = "pull_request.opened";
const ITEM: &str = "projects_v2_item.edited";
const OPENED_AT: &str = "2019-05-15T15:20:18Z";
const PR_OPENED_AT: &str = "2019-05-15T15:20:33Z";
const LATER: &str = "2019-05-15T15:21:18Z";
/// A pull request's `state`, `merged_at` and `draft`, and the state they mean.
const PR_STATES: [(&str, Option<&str>, bool, Pr); 4] = [
    ("open", None, false, Pr::Open),
    ("open", None, true, Pr::Draft),
    ("closed", None, false, Pr::ClosedUnmerged),
    ("closed", Some(LATER), false, Pr::Merged),
];

/// Fixture `name` with some fields replaced (`None` removes one), parsed.
fn edit(name: &str, edits: &[(&str, Option<Value>)]) -> Result<Parsed, PayloadError> {
    let (_, body) = FIXTURES.iter().find(|(n, _)| *n == name).unwrap();
    let event = name.split('.').next().unwrap();
    parse(event, &edited(serde_json::from_slice(body).unwrap(), edits))
}

fn pr(pr: Pr) -> UpdateAction {
    UpdateAction::Status {
        native: NativeStatus::GithubPullRequest { pr },
    }
}

/// What fixture `name` (issue #1 or pull request #2 of Codertocat/Hello-World) must
/// parse into.
fn expected(name: &str, action: UpdateAction, ts: &str, explicit: bool) -> StatusUpdate {
    let is_pr = name.starts_with("pull_request");
    let (number, kind, path) = match is_pr {
        true => (2u64, EntityKind::PullRequest, "pull/2"),
        false => (1, EntityKind::Issue, "issues/1"),
    };
    let title = match is_pr {
        true => "Update the README with new information.",
        false => "Spelling error in the README file",
    };
    let url = format!("https://github.com/{REPO}/{path}");
    let (_, raw) = FIXTURES.iter().find(|(n, _)| *n == name).unwrap();
    let raw: Value = serde_json::from_slice(raw).unwrap();
    let object = if is_pr { "pull_request" } else { "issue" };
    let body = raw[object]["body"].as_str().filter(|b| !b.is_empty());
    StatusUpdate {
        source: SystemId::Github,
        target: ExternalRef::new(SystemId::Github, format!("{REPO}#{number}")),
        aliases: vec![],
        links: vec![],
        kind,
        action,
        source_timestamp: at(ts),
        project: Some(REPO.into()),
        explicit,
        title: Some(title.into()),
        body: body.map(str::to_owned),
        metadata: metadata([
            ("url", Some(url.into())),
            ("sender", Some("Codertocat".into())),
            ("branch", is_pr.then(|| "changes".into())),
            ("number", Some(number.into())),
        ]),
    }
}

#[test]
fn every_fixture_in_the_shared_folder_is_covered() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/fixtures/github");
    let mut on_disk: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter_map(|n| n.strip_suffix(".json").map(str::to_owned))
        .collect();
    on_disk.sort();
    let covered: Vec<&str> = FIXTURES.iter().map(|(n, _)| *n).collect();
    assert_eq!(on_disk, covered);
}

#[test]
fn fixtures_parse_into_the_exact_updates() {
    let open = status(GithubIssueState::Open);
    let cases = [
        (ISSUE, open.clone(), OPENED_AT),
        ("issues.reopened", open, "2021-10-11T16:40:56Z"),
        (PR, pr(Pr::Open), PR_OPENED_AT),
        ("pull_request.closed", pr(Pr::ClosedUnmerged), LATER),
        ("pull_request.converted_to_draft", pr(Pr::Draft), LATER),
        ("pull_request.ready_for_review", pr(Pr::Open), LATER),
    ];
    for (name, action, ts) in cases {
        let want = expected(name, action, ts, name.ends_with("reopened"));
        assert_eq!(one(edit(name, &[])), want, "{name}");
    }
}

#[test]
fn a_project_item_status_edit_targets_the_item() {
    let native = NativeStatus::GithubProjectItem {
        project_node_id: "PVT_kwDOAWcTxs07Gw".into(),
        field_node_id: "PVTF_lADOAWcTxs07G84AAali".into(),
        option_name: None,
    };
    let want = StatusUpdate {
        source: SystemId::Github,
        target: ExternalRef::new(SystemId::Github, "PVTI_lADOAWcTxs07G84AVqWu"),
        aliases: vec![],
        links: vec![],
        kind: EntityKind::Issue,
        action: UpdateAction::Status { native },
        source_timestamp: at("2022-06-08T20:34:26Z"),
        project: None,
        explicit: true,
        title: None,
        body: None,
        metadata: json!({"sender": "wolfy1339", "contentNodeId": "DI_lADOAWcTxs07G84AIjOy"}),
    };
    assert_eq!(one(edit(ITEM, &[])), want);
}

#[test]
fn a_project_item_edit_reads_the_new_option_when_present() {
    let to = json!({"id": "98236657", "name": "In Progress"});
    let got = one(edit(ITEM, &[set("changes.field_value.to", to)]));
    let want = NativeStatus::GithubProjectItem {
        project_node_id: "PVT_kwDOAWcTxs07Gw".into(),
        field_node_id: "PVTF_lADOAWcTxs07G84AAali".into(),
        option_name: Some("In Progress".into()),
    };
    assert_eq!(got.action, UpdateAction::Status { native: want });
    let bot = set("sender.type", json!("Bot"));
    assert!(!one(edit(ITEM, &[bot])).explicit);
}

#[test]
fn other_project_item_edits_are_ignored() {
    let date = [set("changes.field_value.field_type", json!("date"))];
    let body = [("changes.field_value", None), set("changes.body", json!(1))];
    let archived = [set("action", json!("archived"))];
    for edits in [&date[..], &body[..], &archived[..]] {
        let got = edit(ITEM, edits);
        assert!(matches!(got, Ok(Parsed::Ignored { .. })), "{got:?}");
    }
}

#[test]
fn edits_labels_pings_and_other_events_are_deliberately_ignored() {
    let cases = [("issues.edited", "edited"), ("issues.labeled", "labeled")];
    for (name, word) in cases.into_iter().chain([("ping", "ping")]) {
        match edit(name, &[]) {
            Ok(Parsed::Ignored { reason }) => assert!(reason.contains(word), "{reason}"),
            other => panic!("{name}: {other:?}"),
        }
    }
    let star = parse("star", br#"{"action":"created"}"#);
    let want = ignored("GitHub event `star` is not handled");
    assert_eq!(star, Ok(want));
}

#[test]
fn closed_issues_carry_their_state_reason() {
    for reason in ["completed", "not_planned", "duplicate"]
        .map(Some)
        .into_iter()
        .chain([None])
    {
        let edits = [
            set("action", json!("closed")),
            set("issue.state", json!("closed")),
            ("issue.state_reason", reason.map(Value::from)),
        ];
        let got = one(edit(ISSUE, &edits));
        let state_reason = reason.map(str::to_owned);
        let want = status(GithubIssueState::Closed { state_reason });
        assert_eq!((got.action, got.explicit), (want, false));
    }
}

#[test]
fn a_closed_pull_request_is_merged_or_not() {
    let merged = [
        set("pull_request.merged", json!(true)),
        set("pull_request.merged_at", json!(LATER)),
    ];
    let got = one(edit("pull_request.closed", &merged));
    assert_eq!(got.action, pr(Pr::Merged));
    let unmerged = [set("pull_request.merged", Value::Null)];
    let got = one(edit("pull_request.closed", &unmerged));
    assert_eq!(got.action, pr(Pr::ClosedUnmerged));
}

#[test]
fn pull_request_actions_map_to_their_stages() {
    let cases = [
        ("review_requested", false, Pr::ReviewRequested, false),
        ("opened", true, Pr::Draft, false),
        ("reopened", false, Pr::Open, true),
        ("reopened", true, Pr::Draft, true),
    ];
    for (action, draft, want, explicit) in cases {
        let edits = [
            set("action", json!(action)),
            set("pull_request.draft", json!(draft)),
        ];
        let got = one(edit(PR, &edits));
        assert_eq!((got.action, got.explicit), (pr(want), explicit), "{action}");
    }
    let sync = edit(PR, &[set("action", json!("synchronize"))]);
    assert!(matches!(sync, Ok(Parsed::Ignored { reason }) if reason.contains("synchronize")));
}

#[test]
fn an_edited_pull_request_reports_the_state_it_is_in() {
    for (state, merged_at, draft, want) in PR_STATES {
        let got = one(edit(
            PR,
            &[
                set("action", json!("edited")),
                set("pull_request.state", json!(state)),
                set("pull_request.merged_at", json!(merged_at)),
                set("pull_request.draft", json!(draft)),
            ],
        ));
        assert_eq!(got.action, pr(want), "{state} {merged_at:?} {draft}");
        assert!(!got.explicit);
    }
}

#[test]
fn a_pull_request_with_a_null_body_parses() {
    let got = one(edit(PR, &[set("pull_request.body", Value::Null)]));
    let want = expected(PR, pr(Pr::Open), PR_OPENED_AT, false);
    assert_eq!(got, StatusUpdate { body: None, ..want });
}

#[test]
fn an_issue_carrying_pull_request_is_a_pull_request() {
    let link = json!({"url": "https://api.github.com/repos/o/r/pulls/1"});
    let got = one(edit(ISSUE, &[set("issue.pull_request", link)]));
    assert_eq!(got.kind, EntityKind::PullRequest);
}

#[test]
fn deleted_and_transferred_issues_change_the_link() {
    let got = one(edit(ISSUE, &[set("action", json!("deleted"))]));
    assert_eq!(got.action, UpdateAction::Removed);
    assert_eq!(got.target.external_id, "Codertocat/Hello-World#1");
    let new_repo = json!({"full_name": "Octocoders/Elsewhere"});
    let edits = [
        set("action", json!("transferred")),
        set("changes.new_issue", json!({"number": 7, "title": "moved"})),
        set("changes.new_repository", new_repo),
    ];
    let got = one(edit(ISSUE, &edits));
    let to = ExternalRef::new(SystemId::Github, "Octocoders/Elsewhere#7");
    assert_eq!(got.action, UpdateAction::Transferred { to });
    assert_eq!(got.target.external_id, "Codertocat/Hello-World#1");
    let missing = edit(ISSUE, &[set("action", json!("transferred"))]);
    let want = PayloadError::Missing("changes.new_repository.full_name".into());
    assert_eq!(missing, Err(want));
}

#[test]
fn malformed_deliveries_name_what_was_wrong() {
    let (_, body) = FIXTURES[8];
    let err = parse("pull_request", &body[..body.len() / 2]).unwrap_err();
    assert!(matches!(&err, PayloadError::Json(m) if m.contains("line")));

    let err = edit(PR, &[set("pull_request.number", json!("2"))]).unwrap_err();
    let want = "field `pull_request.number` is invalid: invalid type: string";
    assert!(err.to_string().starts_with(want), "{err}");

    let err = edit(ISSUE, &[("repository", None)]).unwrap_err();
    assert_eq!(err, PayloadError::Missing("repository.full_name".into()));

    let err = edit(ISSUE, &[set("issue.updated_at", json!("last tuesday"))]);
    assert_eq!(invalid_field(err.unwrap_err()), "issue.updated_at");
    let err = edit(ISSUE, &[set("repository.full_name", json!("no-slash"))]);
    assert_eq!(invalid_field(err.unwrap_err()), "repository.full_name");

    let err = parse("ping", b"payload=%7B%7D").unwrap_err();
    assert!(err.to_string().contains("application/json"), "{err}");
    let not_utf8 = parse("ping", b"\xff\xfe");
    assert!(matches!(not_utf8, Err(PayloadError::Json(_))));
    let huge = br#"{"action":"opened","issue":{"number":1e400}}"#;
    assert!(matches!(parse("issues", huge), Err(PayloadError::Json(_))));
}

#[test]
fn issues_listed_through_rest_parse_with_their_state_and_body() {
    let base = json!({"repository": {"full_name": REPO}, "issue": {
        "number": 7, "title": "t", "body": "Fixes ENG-1", "state": "open",
        "updated_at": LATER, "html_url": "https://github.com/x/y/pull/7",
    }});
    let with = |edits: &[(&str, Option<Value>)]| {
        one(parse_stored(
            Origin::Backfill,
            LISTED_EVENT,
            &edited(base.clone(), edits),
        ))
    };
    let got = with(&[]);
    assert_eq!(got.kind, EntityKind::Issue);
    assert_eq!(got.action, status(GithubIssueState::Open));
    assert_eq!(got.body.as_deref(), Some("Fixes ENG-1"));
    assert_eq!(got.source_timestamp, at(LATER));
    assert!(!got.explicit);
    let closed = with(&[
        set("issue.state", json!("closed")),
        set("issue.state_reason", json!("not_planned")),
    ]);
    let reason = Some("not_planned".to_owned());
    assert_eq!(
        closed.action,
        status(GithubIssueState::Closed {
            state_reason: reason
        })
    );
    for (state, merged_at, draft, want) in PR_STATES {
        let got = with(&[
            set("issue.state", json!(state)),
            set("issue.draft", json!(draft)),
            set("issue.pull_request", json!({"merged_at": merged_at})),
        ]);
        assert_eq!((got.kind, got.action), (EntityKind::PullRequest, pr(want)));
    }
    // The branch a backfill added from the pull request listing.
    assert_eq!(got.metadata.get("branch"), None);
    let branched = with(&[
        set("issue.pull_request", json!({"merged_at": null})),
        set("head", json!({"ref": "eng-1-fix"})),
    ]);
    assert_eq!(branched.metadata["branch"], "eng-1-fix");
    let err = parse_stored(
        Origin::Backfill,
        LISTED_EVENT,
        br#"{"repository":{"full_name":"a/b"},"issue":{"number":1,"state":"open","updated_at":"2019-05-15T15:20:18Z"},"head":{"ref":7}}"#,
    );
    assert_eq!(invalid_field(err.unwrap_err()), "head.ref");
    let err = parse_stored(
        Origin::Backfill,
        LISTED_EVENT,
        br#"{"repository":{"full_name":"a/b"},"issue":{"state":"gone"}}"#,
    );
    assert_eq!(invalid_field(err.unwrap_err()), "issue.state");
}

proptest! {
    #[test]
    fn any_value_in_any_read_field_never_panics(
        which in 0usize..FIXTURES.len(),
        path in prop::sample::select(vec![
            "action", "issue", "issue.number", "issue.updated_at", "issue.state_reason",
            "issue.pull_request", "pull_request", "pull_request.number", "pull_request.merged",
            "pull_request.draft", "pull_request.head", "repository", "repository.full_name",
            "sender", "changes", "changes.field_value", "changes.field_value.to",
            "projects_v2_item", "projects_v2_item.updated_at",
        ]),
        replacement in prop::option::of(arb_json()),
    ) {
        let _ = edit(FIXTURES[which].0, &[(path, replacement)]);
    }
}

/// A delivery read from the whole tree, as before `READS`.
fn parse_whole(event: &str, body: &[u8]) -> Result<Parsed, PayloadError> {
    parse_root(event, &parse_object(body)?)
}

#[test]
fn keeping_only_what_is_read_parses_every_fixture_as_the_whole_tree_does() {
    for (name, body) in FIXTURES {
        for event in READ_EVENTS {
            assert_eq!(
                parse(event, body),
                parse_whole(event, body),
                "{name} as {event}"
            );
        }
    }
    // What is skipped is still checked: a body that is not UTF-8 is refused.
    let mut body = FIXTURES[0].1.to_vec();
    let at = body.windows(4).position(|w| w == b"http").unwrap();
    body[at] = 0xff;
    assert!(parse("issues", &body).is_err());
    assert!(parse_whole("issues", &body).is_err());
}

proptest! {
    #[test]
    fn keeping_only_what_is_read_parses_any_edit_as_the_whole_tree_does(
        which in 0usize..FIXTURES.len(),
        event in prop::sample::select(READ_EVENTS.to_vec()),
        path in prop::sample::select(vec![
            "action", "issue", "issue.number", "issue.updated_at", "issue.state_reason",
            "issue.pull_request", "issue.title", "issue.body", "pull_request",
            "pull_request.number", "pull_request.merged", "pull_request.merged_at",
            "pull_request.state", "pull_request.draft", "pull_request.head",
            "pull_request.head.ref", "repository", "repository.full_name", "sender",
            "sender.login", "changes", "changes.field_value", "changes.field_value.to",
            "changes.new_issue", "projects_v2_item", "projects_v2_item.updated_at",
        ]),
        replacement in prop::option::of(arb_json()),
    ) {
        let (_, body) = FIXTURES[which];
        let body = serde_json::to_vec(&edited(serde_json::from_slice(body).unwrap(), &[(path, replacement)])).unwrap();
        let parsed = parse(event, &body);
        prop_assert_eq!(&parsed, &parse_whole(event, &body));
        if let Ok(Parsed::Updates(updates)) = parsed {
            prop_assert_eq!(crate::systems::stored::round_trip(&updates), Some(updates));
        }
    }
}

#[test]
fn what_the_door_stores_of_every_fixture_reads_back_as_the_body_parses() {
    let mut read = 0;
    for (name, body) in FIXTURES {
        for event in READ_EVENTS {
            if let Ok(Parsed::Updates(updates)) = parse(event, body) {
                let back = crate::systems::stored::round_trip(&updates);
                assert_eq!(back.as_ref(), Some(&updates), "{name} as {event}");
                read += 1;
            }
        }
    }
    // All but ping and the issue edit and label, which are ignored.
    assert_eq!(read, FIXTURES.len() - 3, "fixtures that carried updates");
}
