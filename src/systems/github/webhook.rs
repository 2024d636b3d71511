//! GitHub webhook deliveries (`issues`, `pull_request`, `projects_v2_item`, anything else
//! ignored) turned into `StatusUpdate`s, from a body whose signature is already checked.
//! Reads only the fields it needs; never panics on any input, never does I/O. Rows
//! statsync stored itself are parsed by their origin (`parse_stored`): a backfilled
//! issue as listed, a value read back as `read_back.rs` wrote it.

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use crate::domain::{
    EntityKind, ExternalRef, GithubIssueState, GithubPullRequestState, NativeStatus, Origin,
    StatusUpdate, SystemId, UpdateAction,
};
use crate::systems::pruned::Keep;
use crate::systems::{
    lookup, metadata, optional, parse_object, parse_object_keeping, required, timestamp, Parsed,
    PayloadError,
};

/// The event type of an issue or pull request read through the REST API by a backfill
/// (`{"repository":{"full_name":…},"issue":<a GET /repos/{o}/{r}/issues item>}`),
/// stored and applied like a delivery.
pub const LISTED_EVENT: &str = "statsync_listed_issue";

/// The deliveries `parse` reads: the events it acts on, and `ping` (verifying it tells
/// whoever creates the hook that the secret is right). Every other event is answered
/// `ignored` from its `X-GitHub-Event` header, its body unread, however large.
pub const READ_EVENTS: [&str; 4] = ["issues", "pull_request", "projects_v2_item", "ping"];

/// Every path `issues`, `pull_request` and `project_item::parse` read of a delivery:
/// the rest of it (repository, users, URLs: most of its bytes) is scanned, not kept.
/// A path read but not listed here reads as absent: the fixtures' test holds the two
/// parses equal.
pub const READS: &[&str] = &[
    "action",
    "changes",
    "repository.full_name",
    "sender.login",
    "sender.type",
    "issue.number",
    "issue.title",
    "issue.body",
    "issue.html_url",
    "issue.updated_at",
    "issue.state_reason",
    "issue.pull_request",
    "pull_request.number",
    "pull_request.title",
    "pull_request.body",
    "pull_request.html_url",
    "pull_request.updated_at",
    "pull_request.draft",
    "pull_request.merged",
    "pull_request.merged_at",
    "pull_request.state",
    "pull_request.head.ref",
    "projects_v2_item",
];

static KEEP: std::sync::LazyLock<Keep> = std::sync::LazyLock::new(|| Keep::paths(READS));

/// Parses one delivery; `event` is the `X-GitHub-Event` header.
pub fn parse(event: &str, body: &[u8]) -> Result<Parsed, PayloadError> {
    if body.starts_with(b"payload=") {
        return Err(PayloadError::invalid(
            "payload",
            "form-encoded delivery; set the webhook's content type to application/json",
        ));
    }
    parse_root(event, &parse_object_keeping(body, &KEEP)?)
}

/// A delivery's reading from its parsed body.
fn parse_root(event: &str, root: &Value) -> Result<Parsed, PayloadError> {
    match event {
        "issues" => issues(root),
        "pull_request" => pull_request(root),
        "projects_v2_item" => super::project_item::parse(root),
        other => Ok(ignored(format!("GitHub event `{other}` is not handled"))),
    }
}

/// Parses a stored row by where it came from; `event` is its stored event type.
pub fn parse_stored(origin: Origin, event: &str, body: &[u8]) -> Result<Parsed, PayloadError> {
    match origin {
        Origin::Webhook => parse(event, body),
        Origin::Backfill => listed_issue(&parse_object(body)?),
        Origin::Lookup => super::read_back::parse(&parse_object(body)?),
    }
}

fn issues(root: &Value) -> Result<Parsed, PayloadError> {
    let action: String = required(root, "action")?;
    let (action, explicit) = match action.as_str() {
        "opened" => (status(GithubIssueState::Open), false),
        "reopened" => (status(GithubIssueState::Open), true),
        "closed" => {
            let state_reason = optional(root, "issue.state_reason")?;
            (status(GithubIssueState::Closed { state_reason }), false)
        }
        "deleted" => (UpdateAction::Removed, false),
        "transferred" => {
            let repo = repository_name(root, "changes.new_repository.full_name")?;
            let number: u64 = required(root, "changes.new_issue.number")?;
            let to = ExternalRef::new(SystemId::Github, format!("{repo}#{number}"));
            (UpdateAction::Transferred { to }, false)
        }
        other => return Ok(not_a_status_change("issues", other)),
    };
    // An issue object that carries `pull_request` is the issue side of a pull request.
    let kind = match lookup(root, "issue.pull_request")? {
        Some(_) => EntityKind::PullRequest,
        None => EntityKind::Issue,
    };
    let item = Item::read(root, "issue")?;
    Ok(item.update(kind, action, explicit, None))
}

fn pull_request(root: &Value) -> Result<Parsed, PayloadError> {
    let action: String = required(root, "action")?;
    // Opened and reopened pull requests may be drafts.
    let open_or_draft = || match optional::<bool>(root, "pull_request.draft") {
        Ok(Some(true)) => Ok(GithubPullRequestState::Draft),
        Ok(_) => Ok(GithubPullRequestState::Open),
        Err(e) => Err(e),
    };
    let (pr, explicit) = match action.as_str() {
        "opened" => (open_or_draft()?, false),
        "reopened" => (open_or_draft()?, true),
        "closed" => {
            let merged: Option<bool> = optional(root, "pull_request.merged")?;
            let merged_at: Option<String> = optional(root, "pull_request.merged_at")?;
            if merged.unwrap_or(false) || merged_at.is_some() {
                (GithubPullRequestState::Merged, false)
            } else {
                (GithubPullRequestState::ClosedUnmerged, false)
            }
        }
        // A title, body or base edit changes no state, but it may name a Linear issue
        // (late linking): the pull request reports the state it is in.
        "edited" => {
            let state: Option<String> = optional(root, "pull_request.state")?;
            let merged_at: Option<String> = optional(root, "pull_request.merged_at")?;
            match (state.as_deref(), merged_at) {
                (_, Some(_)) => (GithubPullRequestState::Merged, false),
                (Some("closed"), None) => (GithubPullRequestState::ClosedUnmerged, false),
                _ => (open_or_draft()?, false),
            }
        }
        "converted_to_draft" => (GithubPullRequestState::Draft, false),
        "ready_for_review" => (GithubPullRequestState::Open, false),
        "review_requested" => (GithubPullRequestState::ReviewRequested, false),
        other => return Ok(not_a_status_change("pull_request", other)),
    };
    let item = Item::read(root, "pull_request")?;
    let branch: Option<String> = optional(root, "pull_request.head.ref")?;
    let action = UpdateAction::Status {
        native: NativeStatus::GithubPullRequest { pr },
    };
    Ok(item.update(EntityKind::PullRequest, action, explicit, branch))
}

/// An item of `GET /repos/{owner}/{repo}/issues`: an issue, or the issue side of a pull
/// request (`pull_request.merged_at`, `draft`), whose branch the issue listing lacks: a
/// backfill adds it from the pull request listing as `head.ref` next to `issue`. Never
/// an explicit reopen.
fn listed_issue(root: &Value) -> Result<Parsed, PayloadError> {
    let state: String = required(root, "issue.state")?;
    let (kind, native) = match lookup(root, "issue.pull_request")? {
        Some(_) => {
            let merged_at: Option<String> = optional(root, "issue.pull_request.merged_at")?;
            let draft: Option<bool> = optional(root, "issue.draft")?;
            let pr = match (state.as_str(), merged_at.is_some(), draft == Some(true)) {
                (_, true, _) => GithubPullRequestState::Merged,
                ("closed", false, _) => GithubPullRequestState::ClosedUnmerged,
                (_, false, true) => GithubPullRequestState::Draft,
                _ => GithubPullRequestState::Open,
            };
            (
                EntityKind::PullRequest,
                NativeStatus::GithubPullRequest { pr },
            )
        }
        None => {
            let issue = match state.as_str() {
                "open" => GithubIssueState::Open,
                "closed" => GithubIssueState::Closed {
                    state_reason: optional(root, "issue.state_reason")?,
                },
                other => {
                    return Err(PayloadError::invalid(
                        "issue.state",
                        format!("`{other}` is neither open nor closed"),
                    ))
                }
            };
            (EntityKind::Issue, NativeStatus::GithubIssue(issue))
        }
    };
    let item = Item::read(root, "issue")?;
    let branch: Option<String> = optional(root, "head.ref")?;
    Ok(item.update(kind, UpdateAction::Status { native }, false, branch))
}

/// The fields an issue and a pull request share.
struct Item {
    repo: String,
    number: u64,
    title: Option<String>,
    body: Option<String>,
    html_url: Option<String>,
    updated_at: DateTime<Utc>,
    sender: Option<String>,
}

impl Item {
    /// `object` is `issue` or `pull_request`.
    fn read(root: &Value, object: &str) -> Result<Self, PayloadError> {
        let field = |name: &str| format!("{object}.{name}");
        Ok(Item {
            repo: repository_name(root, "repository.full_name")?,
            number: required(root, &field("number"))?,
            title: optional(root, &field("title"))?,
            body: optional::<String>(root, &field("body"))?.filter(|b| !b.is_empty()),
            html_url: optional(root, &field("html_url"))?,
            updated_at: timestamp(root, &field("updated_at"))?,
            sender: optional(root, "sender.login")?,
        })
    }

    fn update(
        self,
        kind: EntityKind,
        action: UpdateAction,
        explicit: bool,
        branch: Option<String>,
    ) -> Parsed {
        Parsed::Updates(vec![StatusUpdate {
            source: SystemId::Github,
            target: ExternalRef::new(SystemId::Github, format!("{}#{}", self.repo, self.number)),
            aliases: Vec::new(),
            links: Vec::new(),
            kind,
            action,
            source_timestamp: self.updated_at,
            project: Some(self.repo),
            explicit,
            title: self.title,
            body: self.body,
            metadata: metadata([
                ("url", self.html_url.map(Value::from)),
                ("sender", self.sender.map(Value::from)),
                ("branch", branch.map(Value::from)),
                ("number", Some(json!(self.number))),
            ]),
        }])
    }
}

/// `owner/repo`, checked so that it can be part of an `owner/repo#12` ref.
fn repository_name(root: &Value, path: &str) -> Result<String, PayloadError> {
    let name: String = required(root, path)?;
    match name.split_once('/') {
        Some((owner, repo))
            if !owner.is_empty()
                && !repo.is_empty()
                && !repo.contains('/')
                && !name.contains(['#', ' ']) =>
        {
            Ok(name)
        }
        _ => Err(PayloadError::invalid(
            path,
            format!("`{name}` is not of the form owner/repo"),
        )),
    }
}

fn status(state: GithubIssueState) -> UpdateAction {
    UpdateAction::Status {
        native: NativeStatus::GithubIssue(state),
    }
}

fn not_a_status_change(event: &str, action: &str) -> Parsed {
    ignored(format!("{event} action `{action}` is not a status change"))
}

fn ignored(reason: impl Into<String>) -> Parsed {
    Parsed::Ignored {
        reason: reason.into(),
    }
}

#[cfg(test)]
mod tests;
