//! Automatic linking inside the engine's transaction, before entities are looked up:
//! remembers the Linear teams that updates come from, links a GitHub pull request or
//! issue to the Linear issue its title, body or branch names (known teams only), and
//! turns a linked pull request's state into what it means for that issue given the
//! other pull requests linked to it. Never links to an unknown team; never lets a
//! non-closing pull request move the issue or reopen it.

use std::borrow::Cow;
use std::collections::{BTreeSet, HashMap};

use deadpool_postgres::Transaction;

use super::apply::{ApplyError, Engine, Target, WorkItem};
use crate::domain::linking::{self, LinkedPullRequest, Reference, Texts};
use crate::domain::{ExternalRef, NativeStatus, StatusUpdate, SystemId, UpdateAction};
use crate::store::linking as store;

/// `items` with the links their texts name and their pull request states resolved.
pub(super) async fn resolve<'a>(
    tx: &Transaction<'_>,
    engine: &Engine,
    items: &'a [WorkItem],
) -> Result<Cow<'a, [WorkItem]>, ApplyError> {
    let teams: Vec<String> = items
        .iter()
        .filter(|i| i.update.source == SystemId::Linear)
        .filter_map(|i| i.update.project.clone())
        .collect();
    store::remember_teams(tx, &teams).await?;
    if !engine.settings.linking.enabled {
        return Ok(Cow::Borrowed(items));
    }

    // What each GitHub item names, before the team check.
    let rules = engine.settings.linking.rules();
    let named: Vec<Vec<Reference>> = items
        .iter()
        .map(|i| match github_object(i) {
            Some(update) => linking::find_references(&rules, texts(update), |_| true),
            None => Vec::new(),
        })
        .collect();
    let candidates: Vec<String> = named
        .iter()
        .flatten()
        .filter_map(|r| r.identifier.split_once('-').map(|(t, _)| t.to_owned()))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut known = store::known_teams(tx, &candidates).await?;
    known.extend(
        engine
            .settings
            .linear
            .teams
            .iter()
            .map(|t| t.to_uppercase()),
    );

    // The issue each item links to: the first closing reference, else the first one,
    // else (a pull request whose text no longer names it) the one recorded before.
    let pull_requests: Vec<String> = items
        .iter()
        .filter(|i| is_pull_request(i))
        .filter_map(|i| target_of(i).map(|r| r.external_id.clone()))
        .collect();
    let recorded = store::of_pull_requests(tx, &pull_requests).await?;
    let mut chosen: Vec<Option<(String, bool)>> = Vec::with_capacity(items.len());
    for (item, refs) in items.iter().zip(&named) {
        let known_refs: Vec<&Reference> = refs
            .iter()
            .filter(|r| {
                r.identifier
                    .split_once('-')
                    .is_some_and(|(team, _)| known.contains(team))
            })
            .collect();
        let pick = known_refs
            .iter()
            .find(|r| r.closing)
            .or(known_refs.first())
            .map(|r| (r.identifier.clone(), r.closing));
        let before = target_of(item)
            .and_then(|t| recorded.get(&t.external_id))
            .map(|l| (l.issue.clone(), l.closing));
        chosen.push(pick.or(before));
    }
    if chosen.iter().all(Option::is_none) {
        return Ok(Cow::Borrowed(items));
    }

    let issues: Vec<String> = chosen.iter().flatten().map(|(i, _)| i.clone()).collect();
    store::lock_issues(tx, &issues).await?;
    let mut by_issue: HashMap<String, Vec<store::LinkedPullRequest>> = HashMap::new();
    for l in store::of_issues(tx, &issues).await? {
        by_issue.entry(l.issue.clone()).or_default().push(l);
    }

    let mut out = items.to_vec();
    for (item, choice) in out.iter_mut().zip(chosen) {
        let Some((issue, closing)) = choice else {
            continue;
        };
        let linear = ExternalRef::new(SystemId::Linear, issue.clone());
        if !item.update.links.contains(&linear) {
            item.update.links.push(linear);
        }
        let Some(pr) = pull_request_state(&item.update) else {
            continue;
        };
        let Some(target) = target_of(item).map(|t| t.external_id.clone()) else {
            continue;
        };
        let siblings = by_issue.entry(issue.clone()).or_default();
        // Only a report at least as new as the one recorded counts for the others.
        let newest = siblings
            .iter()
            .find(|l| l.pull_request == target)
            .map_or(true, |l| l.last_source_ts <= item.update.source_timestamp);
        if newest {
            let record = store::LinkedPullRequest {
                pull_request: target.clone(),
                issue: issue.clone(),
                closing,
                state: pr,
                last_source_ts: item.update.source_timestamp,
            };
            store::upsert(tx, &record).await?;
            siblings.retain(|l| l.pull_request != target);
            siblings.push(record);
        }
        let others: Vec<LinkedPullRequest> = siblings
            .iter()
            .filter(|l| l.pull_request != target)
            .map(|l| LinkedPullRequest {
                closing: l.closing,
                state: l.state,
            })
            .collect();
        let native = linking::issue_status_from_pull_request(
            LinkedPullRequest { closing, state: pr },
            &others,
        );
        item.update.action = UpdateAction::Status { native };
        if !closing {
            // Merely mentioning an issue never reopens it.
            item.update.explicit = false;
        }
    }
    Ok(Cow::Owned(out))
}

fn target_of(item: &WorkItem) -> Option<&ExternalRef> {
    match &item.target {
        Target::Ref(r) if r.system == SystemId::Github && !r.external_id.starts_with("PVTI_") => {
            Some(r)
        }
        _ => None,
    }
}

/// A GitHub pull request or issue update that may name Linear issues.
fn github_object(item: &WorkItem) -> Option<&StatusUpdate> {
    target_of(item)?;
    matches!(item.update.action, UpdateAction::Status { .. }).then_some(&item.update)
}

fn is_pull_request(item: &WorkItem) -> bool {
    github_object(item).is_some_and(|u| pull_request_state(u).is_some())
}

fn pull_request_state(update: &StatusUpdate) -> Option<crate::domain::GithubPullRequestState> {
    match &update.action {
        UpdateAction::Status {
            native: NativeStatus::GithubPullRequest { pr },
        } => Some(*pr),
        _ => None,
    }
}

fn texts(update: &StatusUpdate) -> Texts<'_> {
    Texts {
        title: update.title.as_deref(),
        body: update.body.as_deref(),
        branch: update.metadata.get("branch").and_then(|b| b.as_str()),
    }
}
