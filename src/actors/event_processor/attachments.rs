//! Linear attachments of GitHub pull requests, inside the engine's transaction: an
//! attached pull request counts in the issue's multi-PR rule like a closing one naming
//! it, and one that had an entity of its own brings its state to the issue as a
//! linked-PR update (which also absorbs that entity, see `merges.rs`). Never creates an
//! entity and never takes a pull request from another issue's entity.

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use deadpool_postgres::Client;

use super::item::{ApplyError, Target, WorkItem};
use crate::domain::linking::{self, LinkedPullRequest};
use crate::domain::{
    EntityKind, ExternalRef, GithubPullRequestState, NativeStatus, StatusUpdate, SystemId,
    UpdateAction,
};
use crate::store::entities::{self, EntityRow};
use crate::store::linking as store;
use crate::store::StoreError;
use crate::systems::linear::webhook::PULL_REQUESTS;

/// The pull requests one Linear update attaches to its issue.
pub(super) struct Attached {
    pub item: usize,
    /// The issue's identifier (`ENG-1`): the key of its multi-PR rule.
    pub identifier: String,
    pub pull_requests: Vec<String>,
}

/// Linear updates that attach GitHub pull requests, with their issue's identifier (from
/// the update, else the alias kept on its link). An issue whose identifier statsync has
/// never seen is linked only: the rule is keyed by identifiers, as texts name them.
pub(super) async fn wanted(tx: &Client, items: &[WorkItem]) -> Result<Vec<Attached>, StoreError> {
    let mut out = Vec::new();
    for (idx, item) in items.iter().enumerate() {
        let (SystemId::Linear, Target::Ref(target)) = (item.update.source, &item.target) else {
            continue;
        };
        let pull_requests: Vec<String> = item
            .update
            .metadata
            .get(PULL_REQUESTS)
            .and_then(|v| v.as_array())
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect();
        if pull_requests.is_empty() {
            continue;
        }
        let identifier = match item.update.aliases.first() {
            Some(alias) => alias.external_id.clone(),
            None => match entities::alias_of(tx, target).await? {
                Some(alias) => alias,
                None => continue,
            },
        };
        out.push(Attached {
            item: idx,
            identifier,
            pull_requests,
        });
    }
    Ok(out)
}

/// Records what `item` attaches and answers the linked-PR updates of the pull requests
/// that had an entity of their own. `by_issue` holds every issue's linked pull requests
/// and is kept current.
pub(super) async fn record(
    tx: &Client,
    item: &WorkItem,
    attached: &Attached,
    by_issue: &mut HashMap<String, Vec<store::LinkedPullRequest>>,
) -> Result<Vec<WorkItem>, ApplyError> {
    let refs: Vec<ExternalRef> = attached
        .pull_requests
        .iter()
        .map(|pr| ExternalRef::new(SystemId::Github, pr.clone()))
        .collect();
    let mut owned = own_entities(tx, &refs).await?;
    let mut out = Vec::new();
    for r in refs {
        let own = owned.remove(&r);
        let siblings = by_issue.entry(attached.identifier.clone()).or_default();
        let known = siblings.iter().find(|l| l.pull_request == r.external_id);
        // A pull request never seen tells no state: open until it reports, and any
        // report of its own is newer than the epoch.
        let (state, ts) = match (known, &own) {
            (Some(k), _) => (k.state, k.last_source_ts),
            (None, Some(row)) => (
                linking::pull_request_state_of(row.status),
                row.last_source_ts.unwrap_or(item.update.source_timestamp),
            ),
            (None, None) => (GithubPullRequestState::Open, DateTime::<Utc>::UNIX_EPOCH),
        };
        let row = store::LinkedPullRequest {
            pull_request: r.external_id.clone(),
            issue: attached.identifier.clone(),
            closing: true,
            state,
            last_source_ts: ts,
            attached: true,
        };
        store::attach(tx, &row).await?;
        match siblings
            .iter_mut()
            .find(|l| l.pull_request == r.external_id)
        {
            Some(l) => {
                l.closing = true;
                l.attached = true;
            }
            None => siblings.push(row),
        }
        let (Some(own), Target::Ref(issue)) = (own, &item.target) else {
            continue;
        };
        let others: Vec<LinkedPullRequest> = siblings
            .iter()
            .filter(|l| l.pull_request != r.external_id)
            .map(|l| LinkedPullRequest {
                closing: l.closing,
                state: l.state,
            })
            .collect();
        let native = linking::issue_status_from_pull_request(
            LinkedPullRequest {
                closing: true,
                state,
            },
            &others,
        );
        let project = own.project.clone();
        out.push(pull_request_update(
            item, &r, issue, native, ts, project, attached,
        ));
    }
    Ok(out)
}

/// The update that tells an attached pull request's own entity what its state now means
/// for the issue: as old as what the pull request last reported (nothing new happened
/// to it), decided by source times and never opening a conflict window.
fn pull_request_update(
    item: &WorkItem,
    pull_request: &ExternalRef,
    issue: &ExternalRef,
    native: NativeStatus,
    ts: DateTime<Utc>,
    project: Option<String>,
    attached: &Attached,
) -> WorkItem {
    WorkItem {
        inbound_id: item.inbound_id,
        received_at: item.received_at,
        target: Target::Ref(pull_request.clone()),
        update: StatusUpdate {
            source: SystemId::Github,
            target: pull_request.clone(),
            aliases: Vec::new(),
            links: vec![issue.clone()],
            kind: EntityKind::PullRequest,
            action: UpdateAction::Status { native },
            source_timestamp: ts,
            project,
            explicit: false,
            title: None,
            body: None,
            metadata: serde_json::json!({ "attachedTo": attached.identifier }),
        },
        forced: false,
        resolves: None,
        direct_write_from: None,
        catch_up: true,
    }
}

/// The entities of pull requests that have one of their own, which no Linear issue
/// shares.
async fn own_entities(
    tx: &Client,
    refs: &[ExternalRef],
) -> Result<HashMap<ExternalRef, EntityRow>, ApplyError> {
    let found = entities::find(tx, refs).await?;
    let owners: Vec<_> = found
        .values()
        .copied()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let links = entities::links_of(tx, &owners).await?;
    let shares_an_issue = |entity| {
        links
            .get(entity)
            .is_some_and(|ls| ls.iter().any(|l| l.system == SystemId::Linear))
    };
    let mut own = HashMap::new();
    for r in refs {
        if let Some(id) = found.get(r).filter(|e| !shares_an_issue(e)) {
            if let Some(row) = entities::get(tx, *id).await? {
                own.insert(r.clone(), row);
            }
        }
    }
    Ok(own)
}
