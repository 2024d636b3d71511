//! The demo's small world, which both stand-ins share: a Linear team's issues, a GitHub
//! repository's issues and pull requests, and the webhooks each change owes statsync.
//! A change by a person and a change statsync writes through the API land here alike;
//! the webhook about statsync's own write names statsync's identity, as the real
//! systems' do. Nothing here does I/O.

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Value};

pub const OWNER: &str = "acme";
pub const REPO: &str = "acme/app";
pub const TEAM: &str = "ENG";
/// The login the demo's `GITHUB_TOKEN` acts as.
pub const BOT_LOGIN: &str = "statsync-bot";
/// The user the demo's `LINEAR_API_KEY` acts as.
pub const LINEAR_SELF: &str = "5f6a1d9e-0c8e-4a51-9f0b-7d0f2b0d7e11";
const TEAM_ID: &str = "6b1f0c2e-0000-4000-8000-00000000e1e1";
const ORGANIZATION_ID: &str = "7c1e4a52-0000-4000-8000-00000000a11c";

/// Team ENG's workflow: (id, name, type, position). The simulation tests' team too.
pub const LINEAR_STATES: [(&str, &str, &str, f64); 9] = [
    ("st-triage", "Triage", "triage", 0.0),
    ("st-backlog", "Backlog", "backlog", 1.0),
    ("st-todo", "Todo", "unstarted", 2.0),
    ("st-doing", "In Progress", "started", 3.0),
    ("st-review", "In Review", "started", 4.0),
    ("st-blocked", "Blocked", "started", 5.0),
    ("st-done", "Done", "completed", 6.0),
    ("st-canceled", "Canceled", "canceled", 7.0),
    ("st-duplicate", "Duplicate", "duplicate", 8.0),
];

/// A Linear person: (user id, name).
pub type LinearPerson = (&'static str, &'static str);
pub const ADA: LinearPerson = ("8a1c3f20-5b7e-4d0a-9e2f-0c1d2e3f4a5b", "Ada");
pub const GRACE: LinearPerson = ("9b2d4e31-6c8f-4e1b-8f30-1d2e3f4a5b6c", "Grace");
const STATSYNC_IN_LINEAR: LinearPerson = (LINEAR_SELF, "statsync");

pub fn linear_state(id: &str) -> Option<(&'static str, &'static str, &'static str, f64)> {
    LINEAR_STATES.iter().find(|s| s.0 == id).copied()
}

/// The `workflowStates` query's nodes for team ENG, as Linear answers them.
pub fn workflow_state_nodes() -> Vec<Value> {
    LINEAR_STATES
        .iter()
        .map(|(id, name, ty, position)| json!({"id": id, "name": name, "type": ty, "position": position}))
        .collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sys {
    Github,
    Linear,
    Agent,
}

/// A webhook the demo owes statsync.
#[derive(Debug, Clone)]
pub struct Mail {
    pub sys: Sys,
    pub event: String,
    pub delivery: String,
    pub body: Value,
}

#[derive(Debug, Clone)]
pub struct LinearIssue {
    pub id: String,
    pub identifier: String,
    pub title: String,
    pub state: &'static str,
    pub updated_ms: i64,
}

#[derive(Debug, Clone)]
pub struct GithubIssue {
    pub number: u64,
    pub title: String,
    pub body: String,
    pub open: bool,
    pub reason: Option<String>,
    pub updated_s: i64,
}

#[derive(Debug, Clone)]
pub struct Pull {
    pub number: u64,
    pub title: String,
    pub body: String,
    pub branch: String,
    pub draft: bool,
    pub open: bool,
    pub merged: bool,
    pub updated_s: i64,
}

#[derive(Default)]
pub struct World {
    pub linear: BTreeMap<String, LinearIssue>,
    pub issues: BTreeMap<u64, GithubIssue>,
    pub pulls: BTreeMap<u64, Pull>,
    pub mail: Vec<Mail>,
    /// GitHub numbers issues and pull requests from one sequence; Linear per team.
    next_number: u64,
    next_identifier: u64,
    deliveries: u64,
    /// A run's ids differ from the last run's, so a redelivery is never mistaken.
    run: u32,
}

pub fn iso_ms(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Millis, true)
}

pub fn iso_s(s: i64) -> String {
    DateTime::<Utc>::from_timestamp(s, 0)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// A stable UUID-shaped id from a kind tag and a number.
fn uuid_like(run: u32, tag: u16, n: u64) -> String {
    format!("{run:08x}-{tag:04x}-4000-8000-{n:012x}")
}

impl World {
    pub fn new(run: u32) -> World {
        World {
            run,
            ..World::default()
        }
    }

    fn delivery(&mut self) -> String {
        self.deliveries += 1;
        uuid_like(self.run, 0xd, self.deliveries)
    }

    fn post(&mut self, sys: Sys, event: &str, body: Value) {
        let delivery = self.delivery();
        self.mail.push(Mail {
            sys,
            event: event.to_owned(),
            delivery,
            body,
        });
    }

    /// The issue with this id or identifier (Linear takes either).
    pub fn linear_id(&self, id_or_identifier: &str) -> Option<String> {
        self.linear
            .values()
            .find(|i| {
                i.id == id_or_identifier || i.identifier.eq_ignore_ascii_case(id_or_identifier)
            })
            .map(|i| i.id.clone())
    }

    /// A person creates an issue in Todo; answers its identifier.
    pub fn create_linear(&mut self, title: &str, by: LinearPerson) -> String {
        self.next_identifier += 1;
        let n = self.next_identifier;
        let issue = LinearIssue {
            id: uuid_like(self.run, 0x11, n),
            identifier: format!("{TEAM}-{n}"),
            title: title.to_owned(),
            state: "st-todo",
            updated_ms: Utc::now().timestamp_millis(),
        };
        let body = linear_payload(delivery_of("create", &issue, None, by));
        self.linear.insert(issue.id.clone(), issue.clone());
        self.post(Sys::Linear, "Issue", body);
        issue.identifier
    }

    /// Moves an issue to `state` (a person, or statsync when `by` is None); answers
    /// whether anything changed.
    pub fn set_linear(&mut self, id: &str, state: &'static str, by: Option<LinearPerson>) -> bool {
        let Some(issue) = self.linear.get_mut(id) else {
            return false;
        };
        if issue.state == state {
            return false;
        }
        let from = (issue.state, issue.updated_ms);
        issue.state = state;
        issue.updated_ms = Utc::now().timestamp_millis().max(from.1 + 1);
        let issue = issue.clone();
        let body = linear_payload(delivery_of(
            "update",
            &issue,
            Some(from),
            by.unwrap_or(STATSYNC_IN_LINEAR),
        ));
        self.post(Sys::Linear, "Issue", body);
        true
    }

    fn number(&mut self) -> u64 {
        self.next_number += 1;
        self.next_number
    }

    fn github_now(last: i64) -> i64 {
        // GitHub stamps whole seconds; a later change never reads as older.
        Utc::now().timestamp().max(last)
    }

    pub fn open_issue(&mut self, title: &str, body: &str, by: &str) -> u64 {
        let number = self.number();
        let issue = GithubIssue {
            number,
            title: title.to_owned(),
            body: body.to_owned(),
            open: true,
            reason: None,
            updated_s: Self::github_now(0),
        };
        self.issues.insert(number, issue.clone());
        self.post(Sys::Github, "issues", issue_payload("opened", &issue, by));
        number
    }

    /// Opens or closes an issue (a person, or statsync when `by` is None); answers
    /// whether anything changed.
    pub fn set_issue(
        &mut self,
        number: u64,
        open: bool,
        reason: Option<&str>,
        by: Option<&str>,
    ) -> bool {
        let Some(issue) = self.issues.get_mut(&number) else {
            return false;
        };
        let reason = if open {
            None
        } else {
            reason.map(str::to_owned)
        };
        if issue.open == open && issue.reason == reason {
            return false;
        }
        let action = match (issue.open, open) {
            (true, false) => "closed",
            (false, true) => "reopened",
            _ => "edited",
        };
        issue.open = open;
        issue.reason = reason;
        issue.updated_s = Self::github_now(issue.updated_s);
        let issue = issue.clone();
        let body = issue_payload(action, &issue, by.unwrap_or(BOT_LOGIN));
        self.post(Sys::Github, "issues", body);
        true
    }

    /// A person opens a draft pull request naming `identifier`.
    pub fn open_pull(&mut self, identifier: &str, title: &str, by: &str) -> u64 {
        let number = self.number();
        let slug: String = title
            .to_lowercase()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        let pull = Pull {
            number,
            title: format!("{identifier}: {title}"),
            body: format!("Fixes {identifier}"),
            branch: format!("{}-{slug}", identifier.to_lowercase()),
            draft: true,
            open: true,
            merged: false,
            updated_s: Self::github_now(0),
        };
        self.pulls.insert(number, pull.clone());
        self.post(
            Sys::Github,
            "pull_request",
            pull_payload("opened", &pull, by),
        );
        number
    }

    /// A pull request moves on: `ready_for_review`, `review_requested` or `closed`
    /// (merged).
    pub fn pull_moves(&mut self, number: u64, action: &str, by: &str) {
        let Some(pull) = self.pulls.get_mut(&number) else {
            return;
        };
        match action {
            "ready_for_review" | "review_requested" => pull.draft = false,
            "closed" => {
                pull.open = false;
                pull.merged = true;
            }
            _ => {}
        }
        pull.updated_s = Self::github_now(pull.updated_s);
        let pull = pull.clone();
        self.post(Sys::Github, "pull_request", pull_payload(action, &pull, by));
    }

    /// An agent reports on its task for `identifier`.
    pub fn agent_reports(&mut self, task: &str, state: &str, identifier: &str, summary: &str) {
        let body = json!({
            "taskId": task,
            "state": state,
            "summary": summary,
            "issue": identifier,
            "timestamp": iso_ms(Utc::now().timestamp_millis()),
        });
        self.post(Sys::Agent, "status", body);
    }
}

/// What a Linear `Issue` delivery says of its issue.
pub struct LinearDelivery<'a> {
    pub action: &'a str,
    pub id: &'a str,
    pub identifier: &'a str,
    pub title: &'a str,
    pub state: &'a str,
    pub updated_ms: i64,
    /// The state and updated-at an update replaced.
    pub from: Option<(&'a str, i64)>,
    /// (user id, name)
    pub actor: (&'a str, &'a str),
}

/// A Linear `Issue` delivery, as its `IssueWebhookPayload` schema has it;
/// `webhookTimestamp` is stamped when it is sent.
pub fn linear_payload(d: LinearDelivery<'_>) -> Value {
    let (state_id, name, ty, _) = linear_state(d.state).unwrap_or(LINEAR_STATES[2]);
    let number = d
        .identifier
        .split('-')
        .nth(1)
        .and_then(|n| n.parse::<u64>().ok());
    let mut v = json!({
        "action": d.action,
        "type": "Issue",
        "createdAt": iso_ms(d.updated_ms),
        "organizationId": ORGANIZATION_ID,
        "webhookId": "3d0b7a0e-0000-4000-8000-0000000000e1",
        "webhookTimestamp": 0,
        "url": format!("https://linear.app/acme/issue/{}", d.identifier),
        "actor": {"id": d.actor.0, "name": d.actor.1, "type": "user"},
        "data": {
            "id": d.id,
            "identifier": d.identifier,
            "number": number,
            "title": d.title,
            "priority": 0,
            "stateId": state_id,
            "state": {"id": state_id, "name": name, "type": ty, "color": "#f2c94c"},
            "team": {"id": TEAM_ID, "key": TEAM, "name": "Engineering"},
            "teamId": TEAM_ID,
            "createdAt": iso_ms(d.updated_ms),
            "updatedAt": iso_ms(d.updated_ms),
        },
    });
    if let Some((state, updated)) = d.from {
        v["updatedFrom"] = json!({"stateId": state, "updatedAt": iso_ms(updated)});
    }
    v
}

fn delivery_of<'a>(
    action: &'a str,
    issue: &'a LinearIssue,
    from: Option<(&'a str, i64)>,
    actor: LinearPerson,
) -> LinearDelivery<'a> {
    LinearDelivery {
        action,
        id: &issue.id,
        identifier: &issue.identifier,
        title: &issue.title,
        state: issue.state,
        updated_ms: issue.updated_ms,
        from,
        actor,
    }
}

fn repository() -> Value {
    json!({"id": 1_296_269, "name": "app", "full_name": REPO, "private": false,
        "owner": {"login": OWNER, "id": 1, "type": "Organization"},
        "html_url": format!("https://github.com/{REPO}")})
}

fn user(login: &str) -> Value {
    json!({"login": login, "id": 583_231, "type": "User"})
}

fn issue_payload(action: &str, issue: &GithubIssue, by: &str) -> Value {
    let n = issue.number;
    let at = iso_s(issue.updated_s);
    json!({
        "action": action,
        "issue": {
            "number": n,
            "node_id": format!("I_demo_{n}"),
            "title": issue.title,
            "body": issue.body,
            "state": if issue.open { "open" } else { "closed" },
            "state_reason": issue.reason,
            "created_at": at,
            "updated_at": at,
            "closed_at": if issue.open { Value::Null } else { json!(at) },
            "html_url": format!("https://github.com/{REPO}/issues/{n}"),
            "url": format!("https://api.github.com/repos/{REPO}/issues/{n}"),
            "user": user(by),
        },
        "repository": repository(),
        "sender": user(by),
    })
}

fn pull_payload(action: &str, pull: &Pull, by: &str) -> Value {
    let n = pull.number;
    let at = iso_s(pull.updated_s);
    let mut v = json!({
        "action": action,
        "number": n,
        "pull_request": {
            "number": n,
            "node_id": format!("PR_demo_{n}"),
            "title": pull.title,
            "body": pull.body,
            "state": if pull.open { "open" } else { "closed" },
            "draft": pull.draft,
            "merged": pull.merged,
            "merged_at": if pull.merged { json!(at) } else { Value::Null },
            "closed_at": if pull.open { Value::Null } else { json!(at) },
            "created_at": at,
            "updated_at": at,
            "head": {"ref": pull.branch},
            "base": {"ref": "main"},
            "html_url": format!("https://github.com/{REPO}/pull/{n}"),
            "url": format!("https://api.github.com/repos/{REPO}/pulls/{n}"),
            "user": user(by),
        },
        "repository": repository(),
        "sender": user(by),
    });
    if action == "review_requested" {
        v["requested_reviewer"] = user("monalisa");
    }
    v
}
