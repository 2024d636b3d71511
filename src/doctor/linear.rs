//! Linear's lines: who the API key acts as, each configured team visible with its
//! workflow, a webhook covering each team that sends here (and its recent failures),
//! every live workflow state against the mappings both ways, and Linear's clock.

use chrono::{TimeDelta, Utc};

use super::github::{answered, delivery_fix, newer, same_url};
use super::{clock, vocabulary_line, Check, Context, Vocabulary};
use crate::domain::{CanonicalStatus, MappingTable, NativeStatus, OutboundNative, SystemId};
use crate::systems::linear::client::{pick_state, LinearClient, LinearWebhook, WorkflowState};
use crate::systems::linear::webhook::HANDLED_TYPES;

/// Failures older than this (or older than the webhook's last change) are history.
const RECENT: TimeDelta = TimeDelta::hours(24);

pub(super) async fn check(cx: &Context<'_>, client: &LinearClient) -> Vec<Check> {
    let settings = cx.settings;
    let teams = &settings.linear.teams;
    if teams.is_empty() && settings.secrets.linear_api_key.is_none() {
        return vec![Check::skip(
            "linear",
            "credentials",
            "nothing configured (linear.teams is empty, no LINEAR_API_KEY)",
        )];
    }
    let (viewer, date) = match client.viewer().await {
        Ok(found) => found,
        Err(e) => {
            let fix = match settings.secrets.linear_api_key {
                None => "set LINEAR_API_KEY (Linear: Settings, Account, Security & access, Personal API keys)",
                Some(_) => "Linear refuses the key: create a new personal API key and set LINEAR_API_KEY",
            };
            return vec![
                Check::fail("linear", "credentials", e.message, fix),
                Check::skip(
                    "linear",
                    "the rest",
                    "teams, webhooks, states and clock need a working key",
                ),
            ];
        }
    };
    let mut checks = vec![Check::ok(
        "linear",
        "credentials",
        format!("LINEAR_API_KEY acts as {} <{}>", viewer.name, viewer.email),
    )];
    checks.push(match viewer.admin {
        true => Check::ok("linear", "permissions", "a workspace admin: may manage webhooks"),
        false => Check::warn(
            "linear",
            "permissions",
            "not a workspace admin: webhooks cannot be read or created with this key",
            "run `statsync webhooks register` with an admin's key once, or create the webhooks as an admin",
        ),
    });
    let workflows = team_workflows(client, teams, &mut checks).await;
    if viewer.admin {
        checks.extend(webhooks(cx, client).await);
    }
    if let Some(table) = cx.mappings {
        for (key, states) in &workflows {
            checks.push(states_line(table, key, states));
        }
    }
    checks.push(clock(
        "Linear",
        date,
        settings.linear.webhook_tolerance_s as i64,
    ));
    checks
}

/// Each configured team's workflow states, with a line per team.
async fn team_workflows(
    client: &LinearClient,
    teams: &[String],
    checks: &mut Vec<Check>,
) -> Vec<(String, Vec<WorkflowState>)> {
    let mut workflows = Vec::new();
    for team in teams {
        let key = team.to_uppercase();
        match client.team_states(&key).await {
            Ok(states) if !states.is_empty() => {
                checks.push(Check::ok(
                    "linear",
                    format!("team {key}"),
                    format!("{} workflow states", states.len()),
                ));
                workflows.push((key, states));
            }
            Ok(_) => checks.push(Check::fail(
                "linear",
                format!("team {key}"),
                "no team with this key is visible to the key's user",
                "check linear.teams, and that the key's user is a member of the team",
            )),
            Err(e) => checks.push(Check::fail(
                "linear",
                format!("team {key}"),
                e.message,
                "check linear.teams and the key",
            )),
        }
    }
    workflows
}

/// The webhook that covers `team` and sends to `url`, if one does.
pub fn covering<'a>(
    hooks: &'a [LinearWebhook],
    team: &str,
    url: &str,
) -> Option<&'a LinearWebhook> {
    hooks
        .iter()
        .find(|h| same_url(&h.url, url) && (h.all_public_teams || h.team.as_deref() == Some(team)))
}

/// What a webhook gets wrong for statsync (disabled, resource types missing).
pub fn wrong_with(hook: &LinearWebhook) -> Vec<String> {
    let mut wrong = Vec::new();
    if !hook.enabled {
        wrong.push("it is disabled".to_owned());
    }
    let missing: Vec<&str> = HANDLED_TYPES
        .iter()
        .filter(|t| !hook.resource_types.iter().any(|r| r == *t))
        .copied()
        .collect();
    if !missing.is_empty() {
        wrong.push(format!("it does not send {}", missing.join(", ")));
    }
    wrong
}

async fn webhooks(cx: &Context<'_>, client: &LinearClient) -> Vec<Check> {
    let Some(url) = cx.settings.server.webhook_url("linear") else {
        return vec![Check::skip(
            "webhooks",
            "linear",
            "server.public_url is not set",
        )];
    };
    let hooks = match client.webhooks().await {
        Ok(h) => h,
        Err(e) => {
            return vec![Check::fail(
                "webhooks",
                "linear",
                e.message,
                "check that the key's user is a workspace admin",
            )]
        }
    };
    let mut checks = Vec::new();
    for team in &cx.settings.linear.teams {
        let key = team.to_uppercase();
        let name = format!("linear team {key}");
        let Some(hook) = covering(&hooks, &key, &url) else {
            checks.push(Check::fail(
                "webhooks",
                name,
                format!(
                    "no webhook sends {} of team {key} to {url}",
                    HANDLED_TYPES.join(", ")
                ),
                "statsync webhooks register",
            ));
            continue;
        };
        let wrong = wrong_with(hook);
        if !wrong.is_empty() {
            checks.push(Check::fail(
                "webhooks",
                name,
                format!("the webhook to {url}: {}", wrong.join("; ")),
                "statsync webhooks register (it mends the webhook)",
            ));
            continue;
        }
        let since = hook.updated_at.max(Some(Utc::now() - RECENT));
        let recent: Vec<_> = hook
            .failures
            .iter()
            .filter(|f| newer(f.at, since))
            .collect();
        checks.push(match recent.first() {
            None => Check::ok("webhooks", name, format!("webhook to {url}; no failed deliveries in the last 24 h")),
            Some(last) => {
                let status = last.http_status.unwrap_or(0);
                Check::fail(
                    "webhooks",
                    name,
                    format!("webhook to {url}: {} failed deliveries in the last 24 h, the last answered {}", recent.len(), answered(status)),
                    delivery_fix(status),
                )
            }
        });
    }
    checks
}

/// Every live state of the team maps to a status, and every status statsync writes
/// names a state the team has.
fn states_line(table: &MappingTable, team: &str, states: &[WorkflowState]) -> Check {
    let name = format!("team {team} states");
    let unmapped: Vec<String> = states
        .iter()
        .filter(|s| {
            let native = NativeStatus::Linear {
                state_id: Some(s.id.clone()),
                name: Some(s.name.clone()),
                state_type: Some(s.state_type.clone()),
            };
            table.inbound(&native, Some(team)).is_err()
        })
        .map(|s| format!("\"{}\" ({})", s.name, s.state_type))
        .collect();
    let unwritable: Vec<String> = CanonicalStatus::ALL
        .iter()
        .filter_map(
            |status| match table.outbound_for(SystemId::Linear, *status, Some(team)) {
                OutboundNative::LinearState { name, state_type }
                    if pick_state(states, name.as_deref(), &state_type).is_none() =>
                {
                    Some(format!(
                        "{} as {}",
                        status.as_str(),
                        match name {
                            Some(n) => format!("\"{n}\""),
                            None => format!("a {state_type} state"),
                        }
                    ))
                }
                _ => None,
            },
        )
        .collect();
    vocabulary_line(Vocabulary {
        name,
        what: "state",
        whose: "the team",
        prefix: String::new(),
        count: states.len(),
        unmapped,
        unwritable,
        fix: format!(
            "statsync mappings suggest --team {team}, and paste its section into the mappings file"
        ),
    })
}
