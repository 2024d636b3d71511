//! A repository's listing for backfill (`Connector::listing`): its issues and pull
//! requests page by page, oldest change first, each stored as a `LISTED_EVENT` delivery
//! (`{"repository":{"full_name":…},"issue":<issue>,"head":{"ref":<branch>}}`) with the
//! pull request's branch from the pull request listing (`branches.rs`); the first page
//! asked conditionally when it was read before.

use std::collections::HashMap;

use futures_util::future::BoxFuture;
use secrecy::SecretString;
use serde_json::{json, Value};

use super::branches::Branches;
use super::listing::{first_page_url, Lister};
use super::webhook::LISTED_EVENT;
use crate::domain::{ExternalRef, SystemId};
use crate::systems::connector::{ListFrom, ListedObject, ListedPage, Listing};
use crate::systems::outbound::OutboundError;
use crate::systems::rfc3339;

/// What a repository listing reads with: the REST API and its token.
pub struct ListingAccess {
    pub http: reqwest::Client,
    pub api_url: String,
    pub token: Option<SecretString>,
}

pub struct RepoListing<'a> {
    access: &'a ListingAccess,
    /// Pull requests' branches, read once per run.
    branches: Branches,
}

impl<'a> RepoListing<'a> {
    pub fn new(access: &'a ListingAccess) -> Self {
        RepoListing {
            access,
            branches: Branches::default(),
        }
    }
}

impl Listing for RepoListing<'_> {
    fn page<'a>(
        &'a mut self,
        from: ListFrom<'a>,
    ) -> BoxFuture<'a, Result<Option<ListedPage>, OutboundError>> {
        Box::pin(self.read(from))
    }
}

impl RepoListing<'_> {
    async fn read(&mut self, from: ListFrom<'_>) -> Result<Option<ListedPage>, OutboundError> {
        let access = self.access;
        let repo = from.scope;
        let url = match from.position {
            Some(p) => p.to_owned(),
            None => first_page_url(&access.api_url, repo, from.page_size, from.since),
        };
        let etag = from
            .unchanged_since
            .filter(|(seen, _)| *seen == url)
            .map(|(_, etag)| etag);
        let lister = Lister {
            http: &access.http,
            token: access.token.as_ref(),
        };
        let page = lister.page(&url, etag).await?;
        if page.not_modified {
            return Ok(None);
        }
        let first_page = from
            .position
            .is_none()
            .then(|| (url.clone(), page.etag.clone()));
        let number = page_number(&url);
        let percent = page
            .last_page
            .map(|last| (number * 100 / last.max(1)) as u8);
        let (heads, rate) = self
            .branches
            .of(
                &lister,
                &access.api_url,
                repo,
                from.page_size,
                from.since,
                &page.items,
            )
            .await?;
        let items = page
            .items
            .iter()
            .filter_map(|i| listed(repo, i, &heads))
            .collect();
        Ok(Some(ListedPage {
            items,
            next: page.next,
            rate: rate.unwrap_or(page.rate),
            percent,
            first_page,
        }))
    }
}

fn page_number(url: &str) -> u32 {
    url.split(['?', '&'])
        .find_map(|kv| kv.strip_prefix("page="))
        .and_then(|n| n.parse().ok())
        .unwrap_or(1)
}

/// A REST issue as a stored delivery: `backfill:github:<repo>:<number>:<updated_at>`,
/// with a pull request's branch (from `heads`, by number) as `head.ref`.
fn listed(repo: &str, issue: &Value, heads: &HashMap<u64, String>) -> Option<ListedObject> {
    let number = issue["number"].as_u64()?;
    let stamp = issue["updated_at"].as_str()?;
    let mut body = json!({ "repository": { "full_name": repo }, "issue": issue });
    if let Some(branch) = heads.get(&number) {
        body["head"] = json!({ "ref": branch });
    }
    Some(ListedObject {
        delivery_id: format!("backfill:github:{repo}:{number}:{stamp}"),
        event_type: LISTED_EVENT,
        body: serde_json::to_vec(&body).ok()?,
        target: ExternalRef::new(SystemId::Github, format!("{repo}#{number}")),
        updated_at: rfc3339(&issue["updated_at"]),
    })
}
