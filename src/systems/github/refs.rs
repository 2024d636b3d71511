//! GitHub's names, by GitHub's own rules, wherever a reference enters statsync; and
//! path segments percent-encoded wherever a GitHub URL is built. A name that is `.` or
//! `..` would otherwise move the request to another path with statsync's token
//! (`PATCH /repos/../x/issues/1` is `PATCH /repos/issues/1` to the server).

use std::fmt::Write as _;

/// `owner/repo#123`, parsed.
#[derive(Debug, PartialEq)]
pub struct IssueRef<'a> {
    pub owner: &'a str,
    pub repo: &'a str,
    pub number: u64,
}

pub use crate::domain::names::{valid_owner, valid_repo};

pub fn parse_issue_ref(external_id: &str) -> Option<IssueRef<'_>> {
    let (repo_path, number) = external_id.rsplit_once('#')?;
    let (owner, repo) = repo_path.split_once('/')?;
    if !valid_owner(owner) || !valid_repo(repo) || !number.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(IssueRef {
        owner,
        repo,
        number: number.parse().ok().filter(|n| *n > 0)?,
    })
}

/// Why `external_id` is not a GitHub reference statsync can act on, if it is not: an
/// issue or pull request `owner/repo#12`, or a node id (`PVTI_…`, a project item).
pub fn check(external_id: &str) -> Result<(), String> {
    if external_id.contains(['/', '#']) {
        return match parse_issue_ref(external_id) {
            Some(_) => Ok(()),
            None => Err(format!(
                "`{external_id}` is not a GitHub `owner/repo#number` (owner: 1-39 letters, \
                 digits or single hyphens; repo: 1-100 of letters, digits, `.`, `_`, `-`, \
                 not `.` or `..`; number: positive)"
            )),
        };
    }
    let node_id = (1..=100).contains(&external_id.len())
        && external_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'='));
    match node_id {
        true => Ok(()),
        false => Err(format!(
            "`{external_id}` is neither a GitHub `owner/repo#number` nor a node id"
        )),
    }
}

/// One URL path segment, percent-encoded: only unreserved characters pass as they are,
/// and a segment of dots alone is encoded whole, so no segment can be resolved away,
/// split or end the path.
pub fn segment(text: &str) -> String {
    let dots_only = !text.is_empty() && text.bytes().all(|b| b == b'.');
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        let unreserved = b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'~' | b'.');
        if unreserved && !(dots_only && b == b'.') {
            out.push(b as char);
        } else {
            // unwrap: writing to a String cannot fail
            write!(out, "%{b:02X}").unwrap();
        }
    }
    out
}

/// `owner/name` as two encoded segments, for `/repos/{owner}/{name}/…`.
pub fn repo_path(repo: &str) -> String {
    match repo.split_once('/') {
        Some((owner, name)) => format!("{}/{}", segment(owner), segment(name)),
        None => segment(repo),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issue_refs_follow_githubs_naming_rules() {
        assert_eq!(
            parse_issue_ref("Codertocat/Hello-World#12"),
            Some(IssueRef {
                owner: "Codertocat",
                repo: "Hello-World",
                number: 12
            })
        );
        for good in ["a/b#1", "o-o/.github#2", "x/re.po_-#3", "a/..x#1"] {
            assert!(parse_issue_ref(good).is_some(), "{good}");
        }
        let long_owner = format!("{}/r#1", "a".repeat(40));
        let long_repo = format!("o/{}#1", "r".repeat(101));
        for bad in [
            "./x#1",
            "../x#1",
            "o/.#1",
            "o/..#1",
            "a/../b#1",
            "-o/r#1",
            "o-/r#1",
            "o--o/r#1",
            "o_o/r#1",
            "o/r r#1",
            "o/r%2F..#1",
            "o/r#0",
            "o/r#-1",
            "o/r#+1",
            "o/r#x",
            "o/r",
            "o/r#1\0",
            &long_owner,
            &long_repo,
        ] {
            assert_eq!(parse_issue_ref(bad), None, "{bad:?}");
            assert!(check(bad).is_err(), "{bad:?}");
        }
        assert!(check("PVTI_lADOAWcTxs07G84AVqWu").is_ok());
        assert!(check("..").is_err());
    }

    #[test]
    fn segments_cannot_move_the_path() {
        assert_eq!(segment(".."), "%2E%2E");
        assert_eq!(segment("a/b?c#d"), "a%2Fb%3Fc%23d");
        assert_eq!(segment("Hello-World_1"), "Hello-World_1");
        assert_eq!(segment("."), "%2E");
        assert_eq!(repo_path("acme/api.js"), "acme/api.js");
        assert_eq!(repo_path("../x"), "%2E%2E/x");
    }
}
