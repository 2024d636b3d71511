//! GitHub's lines: whose the credentials are and what they may do in each configured
//! repository, the webhooks that must send here (repository and organisation hooks
//! with a token, the App's own webhook with an App) and their last deliveries, each
//! configured board's Status options against the mappings, and GitHub's clock.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};

use super::{clock, vocabulary_line, Check, Context, Vocabulary};
use crate::domain::names::ProjectRef;
use crate::domain::{CanonicalStatus, MappingTable, NativeStatus};
use crate::systems::github::client::{GithubClient, Hook, HookOwner, Identity};
use crate::systems::outbound::{ErrorCode, OutboundError};

/// The events statsync reads from a repository hook, and from a board's organisation.
pub const REPO_EVENTS: [&str; 2] = ["issues", "pull_request"];
pub const PROJECT_EVENTS: [&str; 1] = ["projects_v2_item"];

pub(super) async fn check(cx: &Context<'_>, client: &GithubClient) -> Vec<Check> {
    let settings = cx.settings;
    let secrets = &settings.secrets;
    let configured = !settings.github.repos.is_empty() || !settings.github.projects.is_empty();
    let credentials = secrets.github_token.is_some() || secrets.github_app_id.is_some();
    if !configured && !credentials {
        return vec![Check::skip(
            "github",
            "credentials",
            "nothing configured (github.repos and github.projects are empty, no credentials)",
        )];
    }
    let (identity, date) = match client.identity().await {
        Ok(found) => found,
        Err(e) => {
            return vec![
                Check::fail(
                    "github",
                    "credentials",
                    e.message.clone(),
                    credential_fix(&e),
                ),
                Check::skip(
                    "github",
                    "the rest",
                    "permissions, webhooks, boards and clock need working credentials",
                ),
            ];
        }
    };
    let mut checks = vec![identity_line(&identity)];
    checks.extend(scope_lines(&identity, settings.github.projects.is_empty()));
    for repo in &settings.github.repos {
        checks.push(repo_permissions(client, &identity, repo).await);
    }
    checks.extend(webhooks(cx, client, &identity).await);
    if let Some(table) = cx.mappings {
        for project in &settings.github.projects {
            checks.push(board(client, table, project).await);
        }
    }
    let tolerance = (settings.sync.max_future_skew_ms / 1000) as i64;
    checks.push(clock("GitHub", date, tolerance));
    checks
}

fn credential_fix(e: &OutboundError) -> &'static str {
    match e.code {
        ErrorCode::Unauthorized => "GitHub refuses the credentials: create a new token (or App key) and set GITHUB_TOKEN, or GITHUB_APP_ID and GITHUB_APP_PRIVATE_KEY",
        ErrorCode::Timeout | ErrorCode::Network => "GitHub did not answer: check github.api_url and this machine's outbound network",
        _ => "check github.api_url and the credentials (GITHUB_TOKEN, or GITHUB_APP_ID and GITHUB_APP_PRIVATE_KEY)",
    }
}

fn identity_line(identity: &Identity) -> Check {
    let detail = match identity {
        Identity::User { login, .. } => format!("GITHUB_TOKEN acts as {login}"),
        Identity::App {
            slug,
            installations,
            ..
        } => format!(
            "the GitHub App {slug} ({slug}[bot]), installed on {}",
            match installations.is_empty() {
                true => "no account".to_owned(),
                false => installations.join(", "),
            }
        ),
    };
    Check::ok("github", "credentials", detail)
}

/// A classic token's scopes (a fine-grained token and an App report their
/// permissions per repository instead).
fn scope_lines(identity: &Identity, no_projects: bool) -> Vec<Check> {
    let Identity::User {
        scopes: Some(scopes),
        ..
    } = identity
    else {
        return Vec::new();
    };
    let has = |s: &str| scopes.iter().any(|x| x == s);
    let mut missing = Vec::new();
    if !has("repo") && !has("public_repo") {
        missing.push("repo (write issue state, read pull requests)");
    }
    if !no_projects && !has("project") {
        missing.push("project (write Projects v2 fields)");
    }
    if !has("admin:repo_hook") && !has("write:repo_hook") && !has("read:repo_hook") {
        missing.push("admin:repo_hook (read and create repository webhooks)");
    }
    let listed = scopes.join(", ");
    match missing.is_empty() {
        true => vec![Check::ok("github", "token scopes", listed)],
        false => vec![Check::fail(
            "github",
            "token scopes",
            format!("the token has [{listed}] and lacks {}", missing.join(", ")),
            "create the token again with those scopes (or use a GitHub App: README, Connect your team)",
        )],
    }
}

async fn repo_permissions(client: &GithubClient, identity: &Identity, repo: &str) -> Check {
    let name = format!("permissions {repo}");
    let permissions = match client.repo_permissions(repo).await {
        Ok(p) => p,
        Err(e) if e.code == ErrorCode::NotFound => {
            let fix = match identity {
                Identity::App { .. } => "install the App on this repository (its settings, Install App)",
                Identity::User { .. } => "check the name in github.repos, and that the token's user can see the repository",
            };
            return Check::fail("github", name, e.message, fix);
        }
        Err(e) => {
            return Check::fail(
                "github",
                name,
                e.message,
                "check the credentials' access to this repository",
            )
        }
    };
    let level = |k: &str| permissions.get(k).map(String::as_str).unwrap_or("none");
    let lacking: Vec<&str> = match identity {
        Identity::App { .. } => {
            let mut lacking = Vec::new();
            if level("issues") != "write" {
                lacking.push("issues: write");
            }
            if !matches!(level("pull_requests"), "read" | "write") {
                lacking.push("pull_requests: read");
            }
            lacking
        }
        Identity::User { .. } => match level("push") {
            "yes" => Vec::new(),
            _ => vec!["push (write access: closing and reopening issues)"],
        },
    };
    match lacking.is_empty() {
        true => Check::ok("github", name, "enough to write issue state and read pull requests"),
        false => Check::fail(
            "github",
            name,
            format!("lacks {}", lacking.join(", ")),
            match identity {
                Identity::App { .. } => "grant the App these permissions in its settings, then accept them on the installation",
                Identity::User { .. } => "give the token's user write access to the repository",
            },
        ),
    }
}

/// One webhook statsync needs: where, which events, and what GitHub has there now.
pub struct HookNeed {
    pub owner: HookOwner,
    pub events: Vec<&'static str>,
    /// The hook sending to statsync's URL, if one does.
    pub found: Option<Hook>,
    /// What the found hook gets wrong (inactive, not JSON, events missing).
    pub wrong: Vec<String>,
}

/// The webhooks these settings need, as GitHub has them (`url` is statsync's GitHub
/// webhook address).
pub async fn hook_needs(
    client: &GithubClient,
    app: bool,
    repos: &[String],
    projects: &[String],
    url: &str,
) -> Vec<Result<HookNeed, (HookOwner, OutboundError)>> {
    let mut wanted: Vec<(HookOwner, Vec<&'static str>)> = Vec::new();
    if app {
        let mut events = REPO_EVENTS.to_vec();
        if !projects.is_empty() {
            events.extend(PROJECT_EVENTS);
        }
        wanted.push((HookOwner::App, events));
    } else {
        for repo in repos {
            wanted.push((HookOwner::Repo(repo.clone()), REPO_EVENTS.to_vec()));
        }
        let orgs: BTreeSet<String> = projects
            .iter()
            .filter_map(|p| ProjectRef::parse(p).ok().map(|p| p.owner))
            .collect();
        for org in orgs {
            wanted.push((HookOwner::Org(org), PROJECT_EVENTS.to_vec()));
        }
    }
    let mut needs = Vec::new();
    for (owner, events) in wanted {
        match client.hooks(&owner).await {
            Ok(hooks) => {
                let found = hooks.into_iter().find(|h| same_url(&h.url, url));
                let wrong = found
                    .as_ref()
                    .map(|h| wrong_with(h, &events))
                    .unwrap_or_default();
                needs.push(Ok(HookNeed {
                    owner,
                    events,
                    found,
                    wrong,
                }));
            }
            Err(e) => needs.push(Err((owner, e))),
        }
    }
    needs
}

pub fn same_url(a: &str, b: &str) -> bool {
    a.trim_end_matches('/')
        .eq_ignore_ascii_case(b.trim_end_matches('/'))
}

fn wrong_with(hook: &Hook, events: &[&str]) -> Vec<String> {
    let mut wrong = Vec::new();
    if !hook.active {
        wrong.push("it is inactive".to_owned());
    }
    if !hook.json {
        wrong.push("it sends form data, not JSON".to_owned());
    }
    let missing: Vec<&str> = events
        .iter()
        .filter(|e| !hook.events.iter().any(|h| h == *e || h == "*"))
        .copied()
        .collect();
    if !missing.is_empty() {
        wrong.push(format!("it does not send {}", missing.join(", ")));
    }
    wrong
}

async fn webhooks(cx: &Context<'_>, client: &GithubClient, identity: &Identity) -> Vec<Check> {
    let Some(url) = cx.settings.server.webhook_url("github") else {
        return vec![Check::skip(
            "webhooks",
            "github",
            "server.public_url is not set",
        )];
    };
    let app = matches!(identity, Identity::App { .. });
    let github = &cx.settings.github;
    let mut checks = Vec::new();
    for need in hook_needs(client, app, &github.repos, &github.projects, &url).await {
        let need = match need {
            Ok(n) => n,
            Err((owner, e)) => {
                checks.push(Check::warn(
                    "webhooks",
                    owner.to_string(),
                    format!("cannot read its webhooks: {}", e.message),
                    "reading hooks needs admin on the repository or organisation (token scope admin:repo_hook / admin:org_hook)",
                ));
                continue;
            }
        };
        checks.push(hook_line(client, &need, &url).await);
    }
    checks
}

async fn hook_line(client: &GithubClient, need: &HookNeed, url: &str) -> Check {
    let name = need.owner.to_string();
    let Some(hook) = &need.found else {
        return Check::fail(
            "webhooks",
            name,
            format!("no webhook sends {} to {url}", need.events.join(", ")),
            "statsync webhooks register",
        );
    };
    if !need.wrong.is_empty() {
        let fix = match need.owner {
            HookOwner::App => "in the App's settings: subscribe it to these events (GitHub has no API for an App's events), JSON content type",
            _ => "statsync webhooks register (it mends the hook)",
        };
        return Check::fail(
            "webhooks",
            name,
            format!("the webhook to {url}: {}", need.wrong.join("; ")),
            fix,
        );
    }
    let deliveries = match client.hook_deliveries(&need.owner, hook).await {
        Ok(d) => d,
        Err(e) => {
            return Check::warn(
                "webhooks",
                name,
                format!(
                    "webhook found; its deliveries cannot be read: {}",
                    e.message
                ),
                "reading deliveries needs the same access as reading hooks",
            );
        }
    };
    let since = hook.updated_at;
    let recent: Vec<_> = deliveries
        .iter()
        .filter(|d| newer(d.delivered_at, since))
        .collect();
    match recent.first() {
        None => Check::ok(
            "webhooks",
            name,
            format!("webhook to {url}; no deliveries yet"),
        ),
        Some(last) if (200..300).contains(&last.status_code) => Check::ok(
            "webhooks",
            name,
            format!(
                "webhook to {url}; last delivery answered {}",
                last.status_code
            ),
        ),
        Some(last) => {
            let failed = recent
                .iter()
                .filter(|d| !(200..300).contains(&d.status_code))
                .count();
            Check::fail(
                "webhooks",
                name,
                format!(
                    "webhook to {url}: its last delivery ({}) answered {}; {failed} of the last {} failed",
                    last.event,
                    answered(last.status_code),
                    recent.len()
                ),
                delivery_fix(last.status_code),
            )
        }
    }
}

/// Whether a delivery at `at` came after the hook was last changed.
pub fn newer(at: Option<DateTime<Utc>>, since: Option<DateTime<Utc>>) -> bool {
    match (at, since) {
        (Some(at), Some(since)) => at >= since,
        _ => true,
    }
}

pub fn answered(status: u16) -> String {
    match status {
        0 => "nothing (no connection)".to_owned(),
        s => s.to_string(),
    }
}

/// What a failed delivery's status says to do.
pub fn delivery_fix(status: u16) -> &'static str {
    match status {
        401 => "the webhook's secret differs from statsync's (GITHUB_WEBHOOK_SECRET / LINEAR_WEBHOOK_SECRET): statsync webhooks register sets it",
        0 | 502..=504 => "statsync was not reachable at that address: check server.public_url, DNS, TLS and the ingress",
        404 | 405 => "the address is not statsync's webhook path: statsync webhooks register points it at <public_url>/webhooks/<system>",
        400 | 413 => "statsync refused the body: see its log for the delivery id (GET /api/v1/deliveries?state=failed)",
        _ => "see statsync's log and GET /api/v1/deliveries for that delivery",
    }
}

/// A board's Status options against the mappings, both ways: every option maps to a
/// status, and every status statsync writes names an option the board has.
async fn board(client: &GithubClient, table: &MappingTable, project: &str) -> Check {
    let name = format!("board {project}");
    let Ok(p) = ProjectRef::parse(project) else {
        return Check::skip("mappings", name, "not OWNER/NUMBER");
    };
    let (title, options) = match client.project_status_options(&p.owner, p.number).await {
        Ok(found) => found,
        Err(e) => return Check::fail("mappings", name, e.message, "check github.projects, and that the credentials may read the board (token scope project; App permission organization_projects)"),
    };
    let unmapped: Vec<String> = options
        .iter()
        .filter(|o| {
            let native = NativeStatus::GithubProjectItem {
                project_node_id: String::new(),
                field_node_id: String::new(),
                option_name: Some((*o).clone()),
            };
            table.inbound(&native, None).is_err()
        })
        .map(|o| format!("\"{o}\""))
        .collect();
    let unwritable: Vec<String> = CanonicalStatus::ALL
        .iter()
        .filter_map(|s| match table.project_option_for(*s, None) {
            crate::domain::OutboundNative::GithubProjectOption { name }
                if !options.iter().any(|o| o.eq_ignore_ascii_case(&name)) =>
            {
                Some(format!("{} as \"{name}\"", s.as_str()))
            }
            _ => None,
        })
        .collect();
    vocabulary_line(Vocabulary {
        name,
        what: "Status option",
        whose: "the board",
        prefix: format!("\"{title}\": "),
        count: options.len(),
        unmapped,
        unwritable,
        fix: format!("statsync mappings suggest --project {project}, and paste its section into the mappings file"),
    })
}
