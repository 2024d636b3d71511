//! Automatic linking inside the engine's transaction, before entities are looked up:
//! remembers the Linear teams that updates come from, links a GitHub pull request or
//! issue to the Linear issue its title, body or branch names (known teams only), and
//! turns a linked pull request's state into what it means for that issue given the
//! other pull requests linked to it. A pull request naming several issues joins one
//! (`linking::issues_of`) and its state reaches each other one's entity as an update of
//! its own. Never links to an unknown team; never lets a non-closing pull request move
//! an issue or reopen it.

use std::borrow::Cow;
use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use deadpool_postgres::Client;
use uuid::Uuid;

use super::attachments;
use super::item::{ApplyError, Engine, Target, WorkItem};
use crate::domain::linking::{self, LinkedPullRequest, Recorded, Reference, Texts};
use crate::domain::{
    EntityKind, ExternalRef, GithubPullRequestState, NativeStatus, StatusUpdate, SystemId,
    UpdateAction,
};
use crate::store::entities;
use crate::store::linking as store;

/// `items` with the links their texts name and their pull request states resolved.
pub(super) async fn resolve<'a>(
    tx: &Client,
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
    let named = named_issues(tx, engine, items).await?;
    let attached = attachments::wanted(tx, items).await?;
    let recorded = RecordedLinks::read(tx, items, &attached).await?;
    let linked_somehow = items
        .iter()
        .zip(&named)
        .any(|(i, n)| github_object(i).is_some() && (!n.is_empty() || !recorded.of(i).is_empty()));
    if !linked_somehow && attached.is_empty() {
        return Ok(Cow::Borrowed(items));
    }
    let (found, chosen) = choose_issues(tx, items, &named, &recorded).await?;

    let mut issues: Vec<String> = chosen
        .iter()
        .flatten()
        .map(|r| r.identifier.clone())
        .collect();
    issues.extend(attached.iter().map(|a| a.identifier.clone()));
    store::lock_issues(tx, &issues).await?;
    let mut by_issue: HashMap<String, Vec<store::LinkedPullRequest>> = HashMap::new();
    for l in store::of_issues(tx, &issues).await? {
        by_issue.entry(l.issue.clone()).or_default().push(l);
    }

    let mut out = Vec::with_capacity(items.len());
    for (idx, (original, issues)) in items.iter().zip(&chosen).enumerate() {
        let mut related = Vec::new();
        if let Some(a) = attached.iter().find(|a| a.item == idx) {
            related.extend(attachments::record(tx, original, a, &mut by_issue).await?);
        }
        let item = rewrite(tx, original, issues, &found, &mut by_issue, &mut related).await?;
        out.push(item);
        out.extend(related);
    }
    Ok(Cow::Owned(out))
}

/// The issues each GitHub item's texts name, of known teams only (seen in a delivery,
/// or configured in `linear.teams`).
async fn named_issues(
    tx: &Client,
    engine: &Engine,
    items: &[WorkItem],
) -> Result<Vec<Vec<Reference>>, ApplyError> {
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
        .filter_map(|r| team_of(r).map(str::to_owned))
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
    Ok(named
        .into_iter()
        .map(|refs| {
            refs.into_iter()
                .filter(|r| team_of(r).is_some_and(|team| known.contains(team)))
                .collect()
        })
        .collect())
}

fn team_of(r: &Reference) -> Option<&str> {
    r.identifier.split_once('-').map(|(team, _)| team)
}

/// The issues each pull request was linked to before (an earlier text, a Linear
/// attachment).
struct RecordedLinks(HashMap<String, Vec<store::LinkedPullRequest>>);

impl RecordedLinks {
    async fn read(
        tx: &Client,
        items: &[WorkItem],
        attached: &[attachments::Attached],
    ) -> Result<Self, ApplyError> {
        let mut pull_requests: Vec<String> = items
            .iter()
            .filter(|i| github_object(i).is_some())
            .filter_map(|i| target_of(i).map(|r| r.external_id.clone()))
            .collect();
        pull_requests.extend(attached.iter().flat_map(|a| a.pull_requests.clone()));
        Ok(RecordedLinks(
            store::of_pull_requests(tx, &pull_requests).await?,
        ))
    }

    fn of(&self, item: &WorkItem) -> Vec<Recorded> {
        let rows = target_of(item).and_then(|t| self.0.get(&t.external_id));
        rows.into_iter()
            .flatten()
            .map(|l| Recorded {
                identifier: l.issue.clone(),
                closing: l.closing,
                attached: l.attached,
            })
            .collect()
    }
}

/// Which entities hold the objects and their issues, and the issues each object is
/// linked to, the one it joins first: an object stays on the issue whose entity holds
/// it, and the others are reached through their own entities.
async fn choose_issues(
    tx: &Client,
    items: &[WorkItem],
    named: &[Vec<Reference>],
    recorded: &RecordedLinks,
) -> Result<(HashMap<ExternalRef, Uuid>, Vec<Vec<Reference>>), ApplyError> {
    let mut refs: Vec<ExternalRef> = Vec::new();
    for (item, names) in items.iter().zip(named) {
        if let (Some(_), Some(t)) = (github_object(item), target_of(item)) {
            refs.push(t.clone());
            refs.extend(names.iter().map(|n| linear(&n.identifier)));
            refs.extend(recorded.of(item).iter().map(|r| linear(&r.identifier)));
        }
    }
    let found = entities::find(tx, &refs).await?;
    let chosen = items
        .iter()
        .zip(named)
        .map(|(item, names)| {
            let Some(target) = github_object(item).and(target_of(item)) else {
                return Vec::new();
            };
            let recorded = recorded.of(item);
            let holder = found.get(target);
            let holding = names
                .iter()
                .map(|n| &n.identifier)
                .chain(recorded.iter().map(|r| &r.identifier))
                .find(|i| holder.is_some() && found.get(&linear(i)) == holder);
            linking::issues_of(names, &recorded, holding.map(String::as_str))
        })
        .collect();
    Ok((found, chosen))
}

/// `original` linked to its first issue, with its pull request's state turned into what
/// it means there; the state reaches each further issue's entity as an update pushed
/// onto `related`.
async fn rewrite(
    tx: &Client,
    original: &WorkItem,
    issues: &[Reference],
    found: &HashMap<ExternalRef, Uuid>,
    by_issue: &mut HashMap<String, Vec<store::LinkedPullRequest>>,
    related: &mut Vec<WorkItem>,
) -> Result<WorkItem, ApplyError> {
    let mut item = original.clone();
    let Some(primary) = issues.first() else {
        return Ok(item);
    };
    let issue_ref = linear(&primary.identifier);
    if !item.update.links.contains(&issue_ref) {
        item.update.links.push(issue_ref.clone());
    }
    let (Some(pr), Some(target)) = (
        pull_request_state(&original.update),
        target_of(original).cloned(),
    ) else {
        return Ok(item);
    };
    // Entities the pull request's own update reaches already.
    let mut reached: BTreeSet<Uuid> = [found.get(&target), found.get(&issue_ref)]
        .into_iter()
        .flatten()
        .copied()
        .collect();
    let ts = original.update.source_timestamp;
    for (n, issue) in issues.iter().enumerate() {
        let siblings = by_issue.entry(issue.identifier.clone()).or_default();
        let native = decide(tx, siblings, &target.external_id, issue, pr, ts).await?;
        if n == 0 {
            item.update.action = UpdateAction::Status { native };
            if !issue.closing {
                // Merely mentioning an issue never reopens it.
                item.update.explicit = false;
            }
            continue;
        }
        // An issue never seen is recorded only; its own delivery tells its status.
        let Some(entity) = found.get(&linear(&issue.identifier)) else {
            continue;
        };
        if reached.insert(*entity) {
            related.push(related_update(original, *entity, native, issue.closing));
        }
    }
    Ok(item)
}

/// Records the pull request's state for `issue` (unless an older report) and answers
/// what it means for that issue given its other pull requests.
async fn decide(
    tx: &Client,
    siblings: &mut Vec<store::LinkedPullRequest>,
    pull_request: &str,
    issue: &Reference,
    state: GithubPullRequestState,
    ts: DateTime<Utc>,
) -> Result<NativeStatus, ApplyError> {
    let before = siblings.iter().find(|l| l.pull_request == pull_request);
    // Only a report at least as new as the one recorded counts for the others.
    if before.map_or(true, |l| l.last_source_ts <= ts) {
        let record = store::LinkedPullRequest {
            pull_request: pull_request.to_owned(),
            issue: issue.identifier.clone(),
            closing: issue.closing,
            state,
            last_source_ts: ts,
            attached: before.is_some_and(|l| l.attached),
        };
        store::upsert(tx, &record).await?;
        siblings.retain(|l| l.pull_request != pull_request);
        siblings.push(record);
    }
    let others: Vec<LinkedPullRequest> = siblings
        .iter()
        .filter(|l| l.pull_request != pull_request)
        .map(|l| LinkedPullRequest {
            closing: l.closing,
            state: l.state,
        })
        .collect();
    Ok(linking::issue_status_from_pull_request(
        LinkedPullRequest {
            closing: issue.closing,
            state,
        },
        &others,
    ))
}

/// The pull request's state as an update of another issue it names (its ref stays on
/// the entity of the first): status only, never the pull request's title or links.
fn related_update(item: &WorkItem, entity: Uuid, native: NativeStatus, closing: bool) -> WorkItem {
    let mut update = item.update.clone();
    update.action = UpdateAction::Status { native };
    update.kind = EntityKind::Issue;
    update.explicit = update.explicit && closing;
    update.aliases = Vec::new();
    update.links = Vec::new();
    update.project = None;
    update.title = None;
    update.body = None;
    update.metadata = serde_json::json!({ "pullRequest": update.target.external_id });
    WorkItem {
        target: Target::Entity(entity),
        update,
        forced: false,
        resolves: None,
        direct_write_from: None,
        ..item.clone()
    }
}

fn linear(identifier: &str) -> ExternalRef {
    ExternalRef::new(SystemId::Linear, identifier)
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

fn pull_request_state(update: &StatusUpdate) -> Option<GithubPullRequestState> {
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
