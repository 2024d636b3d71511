//! `statsync webhooks register`: creates the webhooks doctor finds missing and mends the
//! ones it finds wrong — GitHub repository hooks (issues, pull_request), organisation
//! hooks for configured boards (projects_v2_item) or the App's webhook, and a Linear
//! webhook per team (Issue, Attachment) — all sending JSON to `server.public_url`,
//! signed with the secrets statsync verifies. Idempotent: what is in place is left
//! alone; a hook whose last delivery answered 401 gets statsync's secret again (GitHub
//! and Linear never show a secret, so a refused signature is how a wrong one shows).

use chrono::Utc;

use super::github::{hook_needs, newer, HookNeed};
use super::linear::{covering, wrong_with};
use crate::config::Settings;
use crate::startup::Connectors;
use crate::systems::github::client::{Hook, HookOwner};
use crate::systems::linear::webhook::HANDLED_TYPES;

/// One change `register` makes (or, with --dry-run, would make).
pub struct Step {
    /// What it does, for people: `create GitHub webhook on repository acme/web → …`.
    pub describe: String,
    change: Change,
}

enum Change {
    Github {
        owner: HookOwner,
        existing: Option<Hook>,
        events: Vec<&'static str>,
    },
    Linear {
        existing: Option<String>,
        team: String,
    },
}

/// What `register` found: the steps, and what it cannot do itself.
pub struct Plan {
    pub steps: Vec<Step>,
    /// Things only a person can do (with why), and what could not be read.
    pub blocked: Vec<String>,
}

/// Reads what the APIs have and decides the steps.
pub async fn plan(settings: &Settings, connectors: &Connectors) -> anyhow::Result<Plan> {
    let (Some(github_url), Some(linear_url)) = (
        settings.server.webhook_url("github"),
        settings.server.webhook_url("linear"),
    ) else {
        anyhow::bail!("server.public_url is not set: the address GitHub and Linear reach statsync at is needed (STATSYNC__SERVER__PUBLIC_URL=https://sync.acme.dev)");
    };
    let mut plan = Plan {
        steps: Vec::new(),
        blocked: Vec::new(),
    };
    let github = &settings.github;
    if !github.repos.is_empty() || !github.projects.is_empty() {
        let client = &connectors.github;
        let needs = hook_needs(
            client,
            client.is_app(),
            &github.repos,
            &github.projects,
            &github_url,
        )
        .await;
        for need in needs {
            match need {
                Ok(need) => github_step(client, need, &github_url, &mut plan).await,
                Err((owner, e)) => plan
                    .blocked
                    .push(format!("{owner}: cannot read its webhooks: {}", e.message)),
            }
        }
    }
    if !settings.linear.teams.is_empty() {
        linear_steps(settings, connectors, &linear_url, &mut plan).await;
    }
    Ok(plan)
}

async fn github_step(
    client: &crate::systems::github::client::GithubClient,
    need: HookNeed,
    url: &str,
    plan: &mut Plan,
) {
    let HookNeed {
        owner,
        events,
        found,
        wrong,
    } = need;
    let app = owner == HookOwner::App;
    let refused = match &found {
        Some(hook) => client
            .hook_deliveries(&owner, hook)
            .await
            .ok()
            .and_then(|d| {
                d.into_iter()
                    .find(|d| newer(d.delivered_at, hook.updated_at))
            })
            .is_some_and(|last| last.status_code == 401),
        None => false,
    };
    // An App's events are its own settings: no API changes them.
    let events_missing = found
        .as_ref()
        .is_some_and(|h| events.iter().any(|e| !h.events.iter().any(|x| x == e)));
    if app && (found.is_none() || events_missing) {
        plan.blocked.push(format!(
            "subscribe the GitHub App to {} in its settings (GitHub has no API for an App's events)",
            events.join(", ")
        ));
    }
    // What the API can mend: for an App only its URL, content type and secret.
    let mendable: Vec<&String> = wrong
        .iter()
        .filter(|w| !app || !w.starts_with("it does not send"))
        .collect();
    let describe = match &found {
        None if app => format!("point the GitHub App's webhook at {url} (JSON, GITHUB_WEBHOOK_SECRET)"),
        None => format!("create a GitHub webhook on {owner} sending {} to {url}", events.join(", ")),
        Some(_) if !mendable.is_empty() => {
            let what: Vec<&str> = mendable.iter().map(|w| w.as_str()).collect();
            format!("mend the webhook of {owner} to {url}: {}", what.join("; "))
        }
        Some(_) if refused => format!("give the webhook of {owner} to {url} statsync's secret (its last delivery answered 401)"),
        Some(_) => return,
    };
    plan.steps.push(Step {
        describe,
        change: Change::Github {
            owner,
            existing: found,
            events,
        },
    });
}

async fn linear_steps(settings: &Settings, connectors: &Connectors, url: &str, plan: &mut Plan) {
    let hooks = match connectors.linear.webhooks().await {
        Ok(h) => h,
        Err(e) => {
            plan.blocked.push(format!(
                "Linear: cannot read the workspace's webhooks (needs an admin's key): {}",
                e.message
            ));
            return;
        }
    };
    let since = Utc::now() - chrono::TimeDelta::hours(24);
    let mut mended: Vec<String> = Vec::new();
    for team in &settings.linear.teams {
        let key = team.to_uppercase();
        let (describe, existing) = match covering(&hooks, &key, url) {
            None => (
                format!(
                    "create a Linear webhook for team {key} sending {} to {url}",
                    HANDLED_TYPES.join(", ")
                ),
                None,
            ),
            Some(hook) => {
                let wrong = wrong_with(hook);
                let refused = hook
                    .failures
                    .iter()
                    .find(|f| newer(f.at, hook.updated_at.max(Some(since))))
                    .is_some_and(|f| f.http_status == Some(401));
                // One webhook may cover several teams: mend it once.
                if mended.contains(&hook.id) || (wrong.is_empty() && !refused) {
                    continue;
                }
                mended.push(hook.id.clone());
                let why = match wrong.is_empty() {
                    true => "its last delivery answered 401".to_owned(),
                    false => wrong.join("; "),
                };
                (
                    format!("mend the Linear webhook covering team {key} to {url}: {why}"),
                    Some(hook.id.clone()),
                )
            }
        };
        plan.steps.push(Step {
            describe,
            change: Change::Linear {
                existing,
                team: key,
            },
        });
    }
}

/// Makes each step; every step is tried, and the failures are returned.
pub async fn apply(
    plan: &Plan,
    settings: &Settings,
    connectors: &Connectors,
) -> Vec<(String, String)> {
    let mut failed = Vec::new();
    for step in &plan.steps {
        if let Err(why) = make(step, settings, connectors).await {
            failed.push((step.describe.clone(), why));
        }
    }
    failed
}

/// One step, sending to the system's webhook address, signed with its secret.
async fn make(step: &Step, settings: &Settings, connectors: &Connectors) -> Result<(), String> {
    let secrets = &settings.secrets;
    let (system, variable, secret) = match step.change {
        Change::Github { .. } => (
            "github",
            "GITHUB_WEBHOOK_SECRET",
            &secrets.github_webhook_secret,
        ),
        Change::Linear { .. } => (
            "linear",
            "LINEAR_WEBHOOK_SECRET",
            &secrets.linear_webhook_secret,
        ),
    };
    let Some(secret) = secret else {
        return Err(format!("{variable} is not set: statsync verifies every delivery with it, so a webhook without it would be refused"));
    };
    let url = settings
        .server
        .webhook_url(system)
        .ok_or("server.public_url is not set")?;
    let made = match &step.change {
        Change::Github {
            owner,
            existing,
            events,
        } => {
            connectors
                .github
                .put_hook(owner, existing.as_ref(), &url, secret, events)
                .await
        }
        Change::Linear { existing, team } => {
            connectors
                .linear
                .put_webhook(existing.as_deref(), team, &url, &HANDLED_TYPES, secret)
                .await
        }
    };
    made.map_err(|e| e.message)
}
