//! Webhook bodies as GitHub and Linear send them: GitHub's are the shared real fixtures
//! (octokit/webhooks examples) with the simulated object's fields written in; Linear's
//! follow its `IssueWebhookPayload` schema, built as the demo's stand-in builds them.

use std::sync::LazyLock;

use serde_json::{json, Value};

use statsync::demo::world::{linear_payload, LinearDelivery};

use super::support::fixture;
use super::world::{
    iso_s, option_id, GhIssue, Item, LinearIssue, Pull, OWNER, PROJECT, REPO, REPO_NAME,
    STATUS_FIELD,
};

fn template(name: &str) -> Value {
    serde_json::from_slice(&fixture(&format!("github/{name}.json"))).expect("a JSON fixture")
}

static ISSUE: LazyLock<Value> = LazyLock::new(|| template("issues.reopened"));
static PULL: LazyLock<Value> = LazyLock::new(|| template("pull_request.opened"));
static ITEM: LazyLock<Value> = LazyLock::new(|| template("projects_v2_item.edited"));

fn repository(v: &mut Value) {
    let r = &mut v["repository"];
    r["full_name"] = json!(REPO);
    r["name"] = json!(REPO_NAME);
    r["owner"]["login"] = json!(OWNER);
}

fn sender(v: &mut Value, login: &str) {
    v["sender"]["login"] = json!(login);
    v["sender"]["type"] = json!("User");
}

pub fn github_issue(action: &str, issue: &GhIssue, login: &str) -> Value {
    let mut v = ISSUE.clone();
    v["action"] = json!(action);
    let n = issue.number;
    let at = iso_s(issue.updated_s);
    let i = &mut v["issue"];
    i["number"] = json!(n);
    i["node_id"] = json!(format!("I_sim_{n}"));
    i["title"] = json!(format!("Simulated issue {n}"));
    i["body"] = json!("Tracked on the board.");
    i["state"] = json!(if issue.open { "open" } else { "closed" });
    i["state_reason"] = json!(issue.reason);
    i["updated_at"] = json!(at);
    i["closed_at"] = if issue.open { Value::Null } else { json!(at) };
    i["html_url"] = json!(format!("https://github.com/{REPO}/issues/{n}"));
    i["url"] = json!(format!("https://api.github.com/repos/{REPO}/issues/{n}"));
    repository(&mut v);
    sender(&mut v, login);
    v
}

pub fn pull_request(action: &str, pr: &Pull, login: &str) -> Value {
    let mut v = PULL.clone();
    v["action"] = json!(action);
    let n = pr.number;
    let at = iso_s(pr.updated_s);
    v["number"] = json!(n);
    let p = &mut v["pull_request"];
    p["number"] = json!(n);
    p["node_id"] = json!(format!("PR_sim_{n}"));
    p["title"] = json!(format!("{}: make it work", pr.identifier));
    p["body"] = json!(format!("Fixes {}", pr.identifier));
    p["head"]["ref"] = json!(format!("{}-make-it-work", pr.identifier.to_lowercase()));
    p["state"] = json!(if pr.open { "open" } else { "closed" });
    p["draft"] = json!(pr.draft);
    p["merged"] = json!(pr.merged);
    p["merged_at"] = if pr.merged { json!(at) } else { Value::Null };
    p["closed_at"] = if pr.open { Value::Null } else { json!(at) };
    p["updated_at"] = json!(at);
    p["html_url"] = json!(format!("https://github.com/{REPO}/pull/{n}"));
    p["url"] = json!(format!("https://api.github.com/repos/{REPO}/pulls/{n}"));
    if action == "review_requested" {
        v["requested_reviewer"] = json!({"login": "monalisa", "type": "User"});
    }
    repository(&mut v);
    sender(&mut v, login);
    v
}

/// `with_value`: newer deliveries carry the new option (`changes.field_value.to`);
/// older ones only name the field, and statsync reads the value back.
pub fn project_item(item: &Item, from: Option<&str>, with_value: bool, login: &str) -> Value {
    let mut v = ITEM.clone();
    let at = iso_s(item.updated_s);
    let i = &mut v["projects_v2_item"];
    i["node_id"] = json!(item.node_id);
    i["project_node_id"] = json!(PROJECT);
    i["content_node_id"] = json!(format!("I_sim_{}", item.issue));
    i["content_type"] = json!("Issue");
    i["updated_at"] = json!(at);
    let option = |name: Option<&str>| match name {
        Some(n) => json!({"id": option_id(n), "name": n, "color": "GRAY", "description": ""}),
        None => Value::Null,
    };
    let mut field = json!({"field_node_id": STATUS_FIELD, "field_type": "single_select"});
    if with_value {
        field["from"] = option(from);
        field["to"] = option(item.option);
    }
    v["changes"]["field_value"] = field;
    sender(&mut v, login);
    v
}

/// A Linear `Issue` delivery (`create` or `update`); `from` is the state and updated-at
/// an update replaced. `webhookTimestamp` is set when it is sent.
pub fn linear_issue(
    action: &str,
    issue: &LinearIssue,
    from: Option<(&str, i64)>,
    actor: &(String, String),
) -> Value {
    let title = format!("Simulated work {}", issue.identifier);
    linear_payload(LinearDelivery {
        action,
        id: &issue.id,
        identifier: &issue.identifier,
        title: &title,
        state: issue.state,
        updated_ms: issue.updated_ms,
        from,
        actor: (&actor.0, &actor.1),
    })
}
