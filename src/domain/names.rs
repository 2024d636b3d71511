//! The names a team configures and backfills by: a GitHub repository `owner/name` and a
//! Linear team key, each checked by its system's own rules once, wherever it enters
//! (settings, the backfill API and command, a link in an agent's report).

use std::fmt;

/// Why a name was refused, in words that name the rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("repo `{0}` is not of the form owner/name (owner: 1-39 letters, digits or single hyphens; name: 1-100 of letters, digits, `.`, `_`, `-`, not `.` or `..`)")]
    Repo(String),
    #[error("team `{0}` is not a Linear team key (1-10 letters or digits)")]
    Team(String),
    #[error(
        "project `{0}` is not of the form OWNER/NUMBER (acme/7: the board's owner and its number)"
    )]
    Project(String),
}

/// A GitHub user or organization login: 1 to 39 alphanumerics or single hyphens,
/// neither first nor last.
pub fn valid_owner(owner: &str) -> bool {
    (1..=39).contains(&owner.len())
        && owner
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !owner.starts_with('-')
        && !owner.ends_with('-')
        && !owner.contains("--")
}

/// A GitHub repository name: 1 to 100 of `A-Z a-z 0-9 . _ -`, and not `.` or `..`.
pub fn valid_repo(repo: &str) -> bool {
    (1..=100).contains(&repo.len())
        && repo
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        && repo != "."
        && repo != ".."
}

/// A GitHub repository, `owner/name`, as GitHub spells it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RepoName(String);

impl RepoName {
    pub fn parse(text: &str) -> Result<RepoName, NameError> {
        match text.split_once('/') {
            Some((owner, name)) if valid_owner(owner) && valid_repo(name) => {
                Ok(RepoName(text.to_owned()))
            }
            _ => Err(NameError::Repo(text.to_owned())),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RepoName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A Linear team key (`ENG`), upper-cased as Linear shows it in identifiers.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TeamKey(String);

impl TeamKey {
    pub fn parse(text: &str) -> Result<TeamKey, NameError> {
        if text.is_empty() || text.len() > 10 || !text.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(NameError::Team(text.to_owned()));
        }
        Ok(TeamKey(text.to_ascii_uppercase()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TeamKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A Projects v2 board, `owner/number`, as its address shows it
/// (`github.com/orgs/acme/projects/7` is `acme/7`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProjectRef {
    pub owner: String,
    pub number: u64,
}

impl ProjectRef {
    pub fn parse(text: &str) -> Result<ProjectRef, NameError> {
        let parsed = text.split_once('/').and_then(|(owner, n)| {
            let number = n.parse::<u64>().ok().filter(|n| *n > 0)?;
            valid_owner(owner).then(|| ProjectRef {
                owner: owner.to_owned(),
                number,
            })
        });
        parsed.ok_or_else(|| NameError::Project(text.to_owned()))
    }
}

impl fmt::Display for ProjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.owner, self.number)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repositories_are_owner_slash_name_by_githubs_rules() {
        assert_eq!(
            RepoName::parse("octo-org/hello.world_2").map(|r| r.to_string()),
            Ok("octo-org/hello.world_2".to_owned())
        );
        for bad in [
            "",
            "octo",
            "octo/",
            "/x",
            "-octo/x",
            "octo--org/x",
            "octo/..",
            "a/b/c",
            "o/x y",
        ] {
            assert_eq!(
                RepoName::parse(bad),
                Err(NameError::Repo(bad.to_owned())),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn projects_are_owner_slash_number() {
        let p = ProjectRef::parse("acme/7").unwrap();
        assert_eq!(
            (p.owner.as_str(), p.number, p.to_string()),
            ("acme", 7, "acme/7".into())
        );
        for bad in ["acme", "acme/", "acme/0", "acme/x", "/7", "-a/7", "a/b/7"] {
            assert_eq!(
                ProjectRef::parse(bad),
                Err(NameError::Project(bad.into())),
                "{bad}"
            );
        }
    }

    #[test]
    fn team_keys_are_short_alphanumerics_upper_cased() {
        assert_eq!(
            TeamKey::parse("eng").map(|t| t.to_string()),
            Ok("ENG".to_owned())
        );
        for bad in ["", "EN-G", "ÉNG", "ABCDEFGHIJK"] {
            assert!(TeamKey::parse(bad).is_err(), "{bad:?}");
        }
    }
}
