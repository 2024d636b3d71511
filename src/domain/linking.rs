//! Automatic linking, as Linear's own GitHub integration does it: which Linear issues a
//! GitHub pull request or issue names in its title, body or branch, whether its merge
//! is meant to finish them (closing words) or only to link (non-closing words), and
//! what a linked pull request's state means for an issue that several pull requests
//! name. Pure: no I/O, no clock, and never takes `UTF-8` or `SHA-256` for an issue
//! unless the caller says `UTF` or `SHA` is a known team.

use super::{CanonicalStatus, GithubIssueState, GithubPullRequestState, NativeStatus};

/// The configurable vocabulary (config `[linking]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkingRules {
    /// Verbs in their base form; every tense is accepted (`fix`, `fixes`, `fixed`,
    /// `fixing`).
    pub closing_words: Vec<String>,
    /// Words or phrases taken literally (`ref`, `part of`, `relates to`).
    pub non_closing_words: Vec<String>,
    /// Words that prevent the link (`skip ENG-123`).
    pub skip_words: Vec<String>,
    /// A glob over the branch name: `*` is any run of characters, `{identifier}` the
    /// issue identifier (matched case-insensitively, bounded by non-alphanumerics).
    pub branch_pattern: String,
}

impl Default for LinkingRules {
    fn default() -> Self {
        let words = |w: &[&str]| w.iter().map(|s| s.to_string()).collect();
        LinkingRules {
            closing_words: words(&["close", "fix", "resolve", "complete", "implement"]),
            non_closing_words: words(&[
                "ref",
                "refs",
                "references",
                "part of",
                "relates to",
                "related to",
                "contributes to",
                "towards",
                "toward",
            ]),
            skip_words: words(&["skip"]),
            branch_pattern: "*{identifier}*".into(),
        }
    }
}

/// The texts of a GitHub pull request or issue that may name Linear issues.
#[derive(Debug, Clone, Copy, Default)]
pub struct Texts<'a> {
    pub title: Option<&'a str>,
    pub body: Option<&'a str>,
    pub branch: Option<&'a str>,
}

/// A Linear issue named by a pull request or issue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// Upper-cased: `ENG-123`.
    pub identifier: String,
    /// The pull request's merge finishes the issue.
    pub closing: bool,
}

/// How strongly one occurrence says what it means; the strongest wins per identifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Intent {
    /// A bare identifier in the body: linked, not closing.
    BareBody,
    /// A bare identifier in the title or branch: Linear treats it as closing.
    BareTitle,
    NonClosing,
    Closing,
    Skip,
}

/// Every Linear issue the texts name, in order of first appearance, whose team
/// `is_known_team` accepts; skipped ones left out.
pub fn find_references(
    rules: &LinkingRules,
    texts: Texts<'_>,
    is_known_team: impl Fn(&str) -> bool,
) -> Vec<Reference> {
    let mut found: Vec<(String, Intent)> = Vec::new();
    let mut note = |identifier: String, intent: Intent| {
        let (team, _) = identifier.split_once('-').unwrap_or((&identifier, ""));
        if !is_known_team(team) {
            return;
        }
        match found.iter_mut().find(|(i, _)| *i == identifier) {
            Some((_, seen)) => *seen = (*seen).max(intent),
            None => found.push((identifier, intent)),
        }
    };
    if let Some(title) = texts.title {
        for (id, intent) in scan_text(rules, title) {
            note(id, intent.unwrap_or(Intent::BareTitle));
        }
    }
    if let Some(branch) = texts.branch {
        for id in branch_identifiers(&rules.branch_pattern, branch) {
            note(id, Intent::BareTitle);
        }
    }
    if let Some(body) = texts.body {
        for (id, intent) in scan_text(rules, body) {
            note(id, intent.unwrap_or(Intent::BareBody));
        }
    }
    found
        .into_iter()
        .filter(|(_, intent)| *intent != Intent::Skip)
        .map(|(identifier, intent)| Reference {
            identifier,
            closing: matches!(intent, Intent::Closing | Intent::BareTitle),
        })
        .collect()
}

/// A link recorded before for the same object (`linked_pull_requests`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    pub identifier: String,
    pub closing: bool,
    /// Attached in Linear: closing whatever the texts say (Linear's own automation
    /// finishes an issue when an attached pull request is merged).
    pub attached: bool,
}

/// Every Linear issue a GitHub object is linked to, the one whose entity takes the
/// object's own ref first. A ref belongs to one entity, so the object joins one issue
/// (its *primary*): the issue whose entity holds it already, else the first closing
/// one, else the first; it is a related pull request of the others. Issues recorded
/// before stay linked when the texts stop naming them (Linear keeps such links too).
pub fn issues_of(
    named: &[Reference],
    recorded: &[Recorded],
    holding: Option<&str>,
) -> Vec<Reference> {
    let mut all: Vec<Reference> = named.to_vec();
    for r in recorded {
        match all.iter_mut().find(|n| n.identifier == r.identifier) {
            Some(n) => n.closing |= r.attached,
            None => all.push(Reference {
                identifier: r.identifier.clone(),
                closing: r.closing || r.attached,
            }),
        }
    }
    let primary = holding
        .and_then(|h| all.iter().position(|r| r.identifier == h))
        .or_else(|| all.iter().position(|r| r.closing));
    if let Some(i) = primary {
        let first = all.remove(i);
        all.insert(0, first);
    }
    all
}

/// A pull request linked to an issue, as far as the issue is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkedPullRequest {
    pub closing: bool,
    pub state: GithubPullRequestState,
}

fn is_open(state: GithubPullRequestState) -> bool {
    matches!(
        state,
        GithubPullRequestState::Draft
            | GithubPullRequestState::Open
            | GithubPullRequestState::ReviewRequested
    )
}

/// What a pull request's new state means for the issue it names, given the other
/// pull requests linked to that issue: the issue is done only when every closing pull
/// request is merged and stays in review while any of them is open; a non-closing pull
/// request never moves it (its update maps like an open GitHub issue: compatible with
/// every non-terminal status, so a no-op on a known issue).
pub fn issue_status_from_pull_request(
    this: LinkedPullRequest,
    others: &[LinkedPullRequest],
) -> NativeStatus {
    use GithubPullRequestState as Pr;
    if !this.closing {
        return NativeStatus::GithubIssue(GithubIssueState::Open);
    }
    let closing: Vec<Pr> = others
        .iter()
        .filter(|o| o.closing)
        .map(|o| o.state)
        .collect();
    let another_open = closing.iter().any(|s| is_open(*s));
    let another_merged = closing.contains(&Pr::Merged);
    let pr = match this.state {
        Pr::Merged | Pr::ClosedUnmerged if another_open => Pr::ReviewRequested,
        Pr::ClosedUnmerged if another_merged => Pr::Merged,
        state => state,
    };
    NativeStatus::GithubPullRequest { pr }
}

/// A pull request's state as far as an entity of its own tells it (its status was
/// mapped from the pull request's state): what a Linear attachment of that pull request
/// brings to the issue's multi-PR rule.
pub fn pull_request_state_of(status: CanonicalStatus) -> GithubPullRequestState {
    use CanonicalStatus as C;
    match status {
        C::InReview => GithubPullRequestState::ReviewRequested,
        C::Done => GithubPullRequestState::Merged,
        C::Cancelled => GithubPullRequestState::ClosedUnmerged,
        C::Triage | C::Backlog | C::Todo | C::InProgress | C::Blocked => {
            GithubPullRequestState::Open
        }
    }
}

/// Identifiers in free text with the intent of the words right before them (`None`:
/// bare). A list shares its keyword: `Fixes ENG-1, ENG-2 and ENG-3`.
fn scan_text(rules: &LinkingRules, text: &str) -> Vec<(String, Option<Intent>)> {
    let tokens = tokenize(text);
    let mut out = Vec::new();
    for (i, token) in tokens.iter().enumerate() {
        let Token::Word(word) = token else { continue };
        let Some(identifier) = as_identifier(word) else {
            continue;
        };
        // Walk back over the list this identifier is part of.
        let mut start = i;
        while start > 0 {
            match &tokens[start - 1] {
                Token::Word(w) if as_identifier(w).is_some() || w.eq_ignore_ascii_case("and") => {
                    start -= 1
                }
                _ => break,
            }
        }
        let before: Vec<&str> = tokens[..start]
            .iter()
            .rev()
            .take(3)
            .map_while(|t| match t {
                Token::Word(w) => Some(w.as_str()),
                Token::Break => None,
            })
            .collect();
        out.push((identifier, intent_of(rules, &before)));
    }
    out
}

/// `before` holds up to three words preceding the identifier, nearest first.
fn intent_of(rules: &LinkingRules, before: &[&str]) -> Option<Intent> {
    let nearest = before.first()?;
    if rules
        .skip_words
        .iter()
        .any(|w| w.eq_ignore_ascii_case(nearest))
    {
        return Some(Intent::Skip);
    }
    if rules
        .closing_words
        .iter()
        .any(|w| is_inflection(w, nearest))
    {
        return Some(Intent::Closing);
    }
    for phrase in &rules.non_closing_words {
        let words: Vec<&str> = phrase.split_whitespace().collect();
        if words.is_empty() || words.len() > before.len() {
            continue;
        }
        let matches = words
            .iter()
            .rev()
            .zip(before)
            .all(|(want, got)| want.eq_ignore_ascii_case(got));
        if matches {
            return Some(Intent::NonClosing);
        }
    }
    None
}

/// `word` is `base` in some tense: fix/fixes/fixed/fixing, close/closes/closed/closing.
fn is_inflection(base: &str, word: &str) -> bool {
    let base = base.to_ascii_lowercase();
    let word = word.to_ascii_lowercase();
    if word == base {
        return true;
    }
    let stem = base.strip_suffix('e').unwrap_or(&base);
    ["s", "es", "d", "ed", "ing"]
        .iter()
        .any(|suffix| word == format!("{base}{suffix}") || word == format!("{stem}{suffix}"))
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Word(String),
    /// The end of a sentence or line: a keyword never reaches across it.
    Break,
}

fn tokenize(text: &str) -> Vec<Token> {
    let mut tokens = Vec::new();
    for line in text.lines() {
        for chunk in line.split_whitespace() {
            // A Linear issue URL names its issue: https://linear.app/acme/issue/ENG-1/title
            if chunk.contains("linear.app/") {
                if let Some((_, rest)) = chunk.split_once("/issue/") {
                    let id: String = rest
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
                        .collect();
                    tokens.push(Token::Word(id));
                    continue;
                }
            }
            let mut word = String::new();
            for c in chunk.chars() {
                if c.is_alphanumeric() || c == '-' || c == '_' {
                    word.push(c);
                    continue;
                }
                if !word.is_empty() {
                    tokens.push(Token::Word(std::mem::take(&mut word)));
                }
                if matches!(c, '.' | ';' | '!' | '?') {
                    tokens.push(Token::Break);
                }
            }
            if !word.is_empty() {
                tokens.push(Token::Word(word));
            }
        }
        tokens.push(Token::Break);
    }
    tokens
}

/// `ENG-123` exactly: an upper-case team key (a letter, then letters or digits, at most
/// ten) and a number without a leading zero.
fn as_identifier(word: &str) -> Option<String> {
    let (team, number) = word.split_once('-')?;
    let team_ok = (1..=10).contains(&team.len())
        && team.starts_with(|c: char| c.is_ascii_uppercase())
        && team
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit());
    let number_ok = (1..=9).contains(&number.len())
        && !number.starts_with('0')
        && number.chars().all(|c| c.is_ascii_digit());
    (team_ok && number_ok).then(|| word.to_owned())
}

/// Identifiers in a branch name that the pattern places, upper-cased.
fn branch_identifiers(pattern: &str, branch: &str) -> Vec<String> {
    let Some((prefix, suffix)) = pattern.split_once("{identifier}") else {
        return Vec::new();
    };
    let chars: Vec<char> = branch.chars().collect();
    let mut out = Vec::new();
    for start in 0..chars.len() {
        if start > 0 && chars[start - 1].is_ascii_alphanumeric() {
            continue;
        }
        let Some(end) = identifier_at(&chars, start) else {
            continue;
        };
        let head: String = chars[..start].iter().collect();
        let tail: String = chars[end..].iter().collect();
        if glob(prefix, &head) && glob(suffix, &tail) {
            let id: String = chars[start..end].iter().collect();
            out.push(id.to_ascii_uppercase());
        }
    }
    out
}

/// The end of a case-insensitive `team-number` starting at `start`, bounded on the right
/// by a non-alphanumeric or the end.
fn identifier_at(chars: &[char], start: usize) -> Option<usize> {
    let mut i = start;
    if !chars.get(i)?.is_ascii_alphabetic() {
        return None;
    }
    while chars.get(i).is_some_and(|c| c.is_ascii_alphanumeric()) {
        i += 1;
    }
    if i - start > 10 || chars.get(i) != Some(&'-') {
        return None;
    }
    i += 1;
    let digits = i;
    while chars.get(i).is_some_and(|c| c.is_ascii_digit()) {
        i += 1;
    }
    let number_len = i - digits;
    if number_len == 0 || number_len > 9 || chars[digits] == '0' {
        return None;
    }
    if chars.get(i).is_some_and(|c| c.is_ascii_alphanumeric()) {
        return None;
    }
    Some(i)
}

/// `*` matches any run; everything else matches itself, ignoring ASCII case.
fn glob(pattern: &str, text: &str) -> bool {
    fn go(p: &[char], t: &[char]) -> bool {
        match p.split_first() {
            None => t.is_empty(),
            Some(('*', rest)) => (0..=t.len()).any(|skip| go(rest, &t[skip..])),
            Some((c, rest)) => t
                .split_first()
                .is_some_and(|(d, more)| c.eq_ignore_ascii_case(d) && go(rest, more)),
        }
    }
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    go(&p, &t)
}

#[cfg(test)]
mod tests;
