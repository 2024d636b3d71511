use super::*;
use GithubPullRequestState as Pr;

const KNOWN: &[&str] = &["ENG", "WEB", "A1"];

fn known(team: &str) -> bool {
    KNOWN.contains(&team)
}

/// (what the case shows, title, body, branch, expected references: `ENG-1` closing,
/// `~ENG-1` linking only).
const CASES: &[(&str, &str, &str, &str, &[&str])] = &[
    (
        "bare identifier in the title closes",
        "ENG-123 Fix login",
        "",
        "",
        &["ENG-123"],
    ),
    (
        "closing word in the body",
        "Login",
        "Fixes ENG-123",
        "",
        &["ENG-123"],
    ),
    ("past tense", "", "This fixed ENG-7.", "", &["ENG-7"]),
    (
        "-ing form of a verb ending in e",
        "",
        "Closing ENG-8",
        "",
        &["ENG-8"],
    ),
    ("resolves, upper case", "", "RESOLVES ENG-9", "", &["ENG-9"]),
    (
        "completes with a colon",
        "",
        "Completes: ENG-10",
        "",
        &["ENG-10"],
    ),
    ("implemented", "", "implemented WEB-11", "", &["WEB-11"]),
    (
        "a list shares its keyword",
        "",
        "Closes ENG-1, ENG-2 and WEB-3",
        "",
        &["ENG-1", "ENG-2", "WEB-3"],
    ),
    ("ref only links", "", "ref ENG-20", "", &["~ENG-20"]),
    ("part of only links", "", "Part of ENG-21", "", &["~ENG-21"]),
    (
        "relates to only links",
        "",
        "relates to ENG-22",
        "",
        &["~ENG-22"],
    ),
    (
        "contributes to only links",
        "",
        "Contributes to ENG-23",
        "",
        &["~ENG-23"],
    ),
    ("towards only links", "", "towards ENG-24", "", &["~ENG-24"]),
    (
        "bare mention in the body only links",
        "",
        "see ENG-25 for context",
        "",
        &["~ENG-25"],
    ),
    (
        "branch with a prefix",
        "",
        "",
        "alice/eng-123-fix-login",
        &["ENG-123"],
    ),
    (
        "branch as the identifier alone",
        "",
        "",
        "web-5",
        &["WEB-5"],
    ),
    ("skip prevents the link", "Skip ENG-30", "", "", &[]),
    (
        "skip wins over a closing mention elsewhere",
        "",
        "Fixes ENG-31\nskip ENG-31",
        "",
        &[],
    ),
    (
        "non-closing body overrides a bare title",
        "ENG-32 tidy",
        "Part of ENG-32",
        "",
        &["~ENG-32"],
    ),
    (
        "closing wins over non-closing",
        "",
        "ref ENG-33\nfixes ENG-33",
        "",
        &["ENG-33"],
    ),
    (
        "UTF-8 is not an issue",
        "Handle UTF-8 input",
        "Fixes UTF-8 decoding",
        "",
        &[],
    ),
    (
        "SHA-256 is not an issue",
        "",
        "resolves SHA-256 mismatch",
        "utf-8-sha-256",
        &[],
    ),
    ("unknown team is ignored", "", "Fixes FOO-1", "", &[]),
    (
        "lower case in text is not an identifier",
        "",
        "fixes eng-40",
        "",
        &[],
    ),
    (
        "leading zero is not an identifier",
        "",
        "fixes ENG-041",
        "",
        &[],
    ),
    (
        "keyword does not cross a sentence",
        "",
        "We fix things. ENG-41 is related",
        "",
        &["~ENG-41"],
    ),
    (
        "keyword must be right before",
        "",
        "fixes the bug in ENG-42",
        "",
        &["~ENG-42"],
    ),
    ("not inside a longer word", "", "fixes XENG-43x", "", &[]),
    ("digits in the team key", "", "Fixes A1-2", "", &["A1-2"]),
    (
        "Linear URL with a closing word",
        "",
        "Fixes https://linear.app/acme/issue/ENG-50/login",
        "",
        &["ENG-50"],
    ),
    (
        "branch identifier glued to letters is not one",
        "",
        "",
        "feature/eng-12abc",
        &[],
    ),
    (
        "first appearance order, no duplicates",
        "WEB-2 and ENG-1",
        "fixes ENG-1, WEB-2",
        "",
        &["WEB-2", "ENG-1"],
    ),
    (
        "prefix of a closing word is not one",
        "",
        "fixture ENG-60",
        "",
        &["~ENG-60"],
    ),
];

#[test]
fn the_linking_table_holds() {
    let rules = LinkingRules::default();
    for (what, title, body, branch, want) in CASES {
        let texts = Texts {
            title: Some(title).filter(|s| !s.is_empty()).copied(),
            body: Some(body).filter(|s| !s.is_empty()).copied(),
            branch: Some(branch).filter(|s| !s.is_empty()).copied(),
        };
        let got: Vec<String> = find_references(&rules, texts, known)
            .into_iter()
            .map(|r| match r.closing {
                true => r.identifier,
                false => format!("~{}", r.identifier),
            })
            .collect();
        assert_eq!(got, *want, "{what}");
    }
    assert!(CASES.len() >= 20);
}

#[test]
fn word_lists_and_branch_pattern_are_configurable() {
    let rules = LinkingRules {
        closing_words: vec!["ship".into()],
        non_closing_words: vec!["see also".into()],
        skip_words: vec!["ignore".into()],
        branch_pattern: "feature/{identifier}-*".into(),
    };
    let refs = |body: &str, branch: &str| {
        find_references(
            &rules,
            Texts {
                title: None,
                body: Some(body),
                branch: Some(branch),
            },
            known,
        )
    };
    assert_eq!(
        refs(
            "ships ENG-1; see also ENG-2; ignore ENG-3; fixes ENG-4",
            "x"
        ),
        vec![
            Reference {
                identifier: "ENG-1".into(),
                closing: true
            },
            Reference {
                identifier: "ENG-2".into(),
                closing: false
            },
            Reference {
                identifier: "ENG-4".into(),
                closing: false
            },
        ]
    );
    assert_eq!(refs("", "feature/eng-9-x")[0].identifier, "ENG-9");
    assert!(refs("", "bugfix/eng-9-x").is_empty());
    assert!(refs("", "feature/eng-9").is_empty());
}

fn linked(closing: bool, state: Pr) -> LinkedPullRequest {
    LinkedPullRequest { closing, state }
}

fn pr(state: Pr) -> NativeStatus {
    NativeStatus::GithubPullRequest { pr: state }
}

#[test]
fn an_issue_is_done_only_when_every_closing_pull_request_is_merged() {
    let merged = linked(true, Pr::Merged);
    // Alone, or with the others merged: done.
    assert_eq!(issue_status_from_pull_request(merged, &[]), pr(Pr::Merged));
    assert_eq!(
        issue_status_from_pull_request(merged, &[linked(true, Pr::Merged)]),
        pr(Pr::Merged)
    );
    // Another closing one still open (draft or not): in review.
    for open in [Pr::Draft, Pr::Open, Pr::ReviewRequested] {
        assert_eq!(
            issue_status_from_pull_request(merged, &[linked(true, open)]),
            pr(Pr::ReviewRequested)
        );
    }
    // An open non-closing one does not hold it back.
    assert_eq!(
        issue_status_from_pull_request(merged, &[linked(false, Pr::Open)]),
        pr(Pr::Merged)
    );
    // Closing one abandoned while another was merged: done; while one is open: review.
    let abandoned = linked(true, Pr::ClosedUnmerged);
    assert_eq!(
        issue_status_from_pull_request(abandoned, &[linked(true, Pr::Merged)]),
        pr(Pr::Merged)
    );
    assert_eq!(
        issue_status_from_pull_request(abandoned, &[linked(true, Pr::Open)]),
        pr(Pr::ReviewRequested)
    );
    assert_eq!(
        issue_status_from_pull_request(abandoned, &[]),
        pr(Pr::ClosedUnmerged)
    );
    // An open one drives as itself.
    assert_eq!(
        issue_status_from_pull_request(linked(true, Pr::Draft), &[linked(true, Pr::Merged)]),
        pr(Pr::Draft)
    );
}

#[test]
fn a_non_closing_pull_request_never_moves_the_issue() {
    for state in [
        Pr::Draft,
        Pr::Open,
        Pr::ReviewRequested,
        Pr::Merged,
        Pr::ClosedUnmerged,
    ] {
        assert_eq!(
            issue_status_from_pull_request(linked(false, state), &[]),
            NativeStatus::GithubIssue(GithubIssueState::Open)
        );
    }
}

fn reference(identifier: &str, closing: bool) -> Reference {
    Reference {
        identifier: identifier.into(),
        closing,
    }
}

fn recorded(identifier: &str, closing: bool, attached: bool) -> Recorded {
    Recorded {
        identifier: identifier.into(),
        closing,
        attached,
    }
}

#[test]
fn an_object_joins_one_issue_and_is_related_to_the_others() {
    let named = [reference("ENG-1", false), reference("ENG-2", true)];
    // The first closing one takes the object's ref; the others follow in text order.
    assert_eq!(
        issues_of(&named, &[], None),
        vec![reference("ENG-2", true), reference("ENG-1", false)]
    );
    // An issue whose entity already holds the object keeps it.
    assert_eq!(
        issues_of(&named, &[], Some("ENG-1")),
        vec![reference("ENG-1", false), reference("ENG-2", true)]
    );
    // Links recorded before stay when the texts stop naming them; an attachment is
    // closing even where the texts only mention the issue.
    let before = [
        recorded("ENG-3", false, false),
        recorded("ENG-1", false, true),
    ];
    assert_eq!(
        issues_of(&named, &before, Some("ENG-3")),
        vec![
            reference("ENG-3", false),
            reference("ENG-1", true),
            reference("ENG-2", true),
        ]
    );
    // Nothing named, nothing recorded: no issue. Only non-closing ones: the first.
    assert_eq!(issues_of(&[], &[], Some("ENG-9")), vec![]);
    assert_eq!(
        issues_of(
            &[reference("ENG-5", false), reference("ENG-4", false)],
            &[],
            None
        ),
        vec![reference("ENG-5", false), reference("ENG-4", false)]
    );
}

#[test]
fn an_attached_pull_request_brings_the_state_its_own_entity_had() {
    use crate::domain::CanonicalStatus as C;
    assert_eq!(pull_request_state_of(C::InProgress), Pr::Open);
    assert_eq!(pull_request_state_of(C::InReview), Pr::ReviewRequested);
    assert_eq!(pull_request_state_of(C::Done), Pr::Merged);
    assert_eq!(pull_request_state_of(C::Cancelled), Pr::ClosedUnmerged);
}
