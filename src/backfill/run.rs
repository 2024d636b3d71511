//! One run over one scope: list it page by page, store each item as a low-priority
//! delivery, move the scope's cursor after every page, announce throttled progress,
//! and once the engine has applied what was stored, record the summary.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{json, Value};
use uuid::Uuid;

use super::branches::Branches;
use super::{Backfill, BackfillError, Mode, Progress, Scope, Trigger};
use crate::domain::{ExternalRef, SystemId};
use crate::store::sync_runs::{self, Counts, Cursor, ListedItem};
use crate::store::{entities, StoreError};
use crate::systems::github::listing::{first_page_url, Lister};
use crate::systems::github::webhook::LISTED_EVENT;
use crate::systems::linear::listing as linear_listing;
use crate::systems::outbound::RateInfo;

/// How long a run waits for the engine to apply what it stored before it counts.
const APPLY_DEADLINE: Duration = Duration::from_secs(300);

/// How a run ended.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    pub operation_id: Uuid,
    /// completed | stopped | failed
    pub state: String,
    #[serde(flatten)]
    pub counts: Counts,
    pub error: Option<String>,
}

enum Ended {
    Completed,
    /// Stopped early (rate budget low, paused); the cursor holds where to resume.
    Stopped(String),
}

/// One listed item: what to store and what it is about.
struct Listed {
    item: ListedItem,
    target: ExternalRef,
    updated_at: Option<DateTime<Utc>>,
}

/// One run over one scope: what it has counted and stored so far.
struct Run<'a> {
    id: Uuid,
    scope: &'a Scope,
    mode: Mode,
    counts: Counts,
    /// Objects a stored item linked for the first time.
    created: HashSet<String>,
    tracker: Tracker,
    /// The newest change listed: what the scope is synced up to once the last page is in.
    high_water: Option<DateTime<Utc>>,
}

/// What fetching carries from page to page.
struct Fetcher {
    first: bool,
    /// An incremental run from the start may ask GitHub for its first page with the
    /// ETag it saw last time (a 304 costs no rate budget).
    conditional: bool,
    since: Option<DateTime<Utc>>,
    branches: Branches,
}

/// One page of a listing, whichever system answered it.
struct Page {
    items: Vec<Listed>,
    next: Option<String>,
    rate: RateInfo,
    /// Known from GitHub's last-page link.
    percent: Option<u8>,
}

/// Progress events: monotonic, at most one per +5 % or per second.
struct Tracker {
    percent: u8,
    announced: u8,
    at: Instant,
}

impl Backfill {
    /// Runs `scope` to its end (or an early stop) and answers the summary; `progress`
    /// hears of every page.
    pub async fn run(
        &self,
        id: Uuid,
        scope: &Scope,
        mode: Mode,
        trigger: Trigger,
        progress: &(dyn Fn(Progress) + Sync),
    ) -> Result<Summary, BackfillError> {
        {
            let client = self.store.client().await?;
            sync_runs::start(
                &client,
                id,
                scope.system,
                &scope.key,
                mode.as_str(),
                trigger.as_str(),
            )
            .await?;
        }
        self.announce(
            scope,
            id,
            "started",
            json!({ "mode": mode.as_str(), "trigger": trigger.as_str() }),
        )
        .await?;
        let mut run = Run {
            id,
            scope,
            mode,
            counts: Counts::default(),
            created: HashSet::new(),
            tracker: Tracker {
                percent: 0,
                announced: 0,
                at: Instant::now(),
            },
            high_water: None,
        };
        let listed = self.list(&mut run, progress).await;
        let Run {
            mut counts,
            created,
            ..
        } = run;
        let tally = self.tally(id, &created, &mut counts).await;
        let (state, error) = match (&listed, &tally) {
            (Ok(Ended::Completed), Ok(())) => ("completed", None),
            (Ok(Ended::Stopped(why)), Ok(())) => ("stopped", Some(why.clone())),
            (Err(e), _) => ("failed", Some(e.to_string())),
            (_, Err(e)) => ("failed", Some(e.to_string())),
        };
        {
            let client = self.store.client().await?;
            sync_runs::record(&client, id, &counts, Some(state), error.as_deref()).await?;
        }
        let summary = Summary {
            operation_id: id,
            state: state.to_owned(),
            counts,
            error,
        };
        self.announce_end(scope, id, &listed, &summary).await?;
        Ok(summary)
    }

    /// The run's last event: `completed` with its counts, or `failed` with what failed
    /// and whether retrying may help.
    async fn announce_end(
        &self,
        scope: &Scope,
        id: Uuid,
        listed: &Result<Ended, BackfillError>,
        summary: &Summary,
    ) -> Result<(), BackfillError> {
        let mut data = serde_json::to_value(summary).unwrap_or_else(|_| json!({}));
        match listed {
            Err(BackfillError::Upstream(e)) => {
                data["error_code"] = json!(e.code.to_string());
                data["retryable"] = json!(e.code.retryable());
                data["retryAfter"] = json!(e.retry_after.map(|d| d.as_secs()));
                self.announce(scope, id, "failed", data).await?;
            }
            Err(_) => {
                data["error_code"] = json!("INTERNAL");
                data["retryable"] = json!(true);
                data["retryAfter"] = Value::Null;
                self.announce(scope, id, "failed", data).await?;
            }
            Ok(_) => {
                data["percent"] = json!(100);
                self.announce(scope, id, "completed", data).await?;
            }
        }
        Ok(())
    }

    /// Lists the scope from its cursor, a page at a time, until the end or an early stop.
    async fn list(
        &self,
        run: &mut Run<'_>,
        progress: &(dyn Fn(Progress) + Sync),
    ) -> Result<Ended, BackfillError> {
        let (system, key) = (run.scope.system, run.scope.key.as_str());
        let mut cursor: Cursor = {
            let client = self.store.client().await?;
            sync_runs::cursor(&client, system, key).await?
        };
        let resuming = cursor.resume_page.is_some();
        let since = match (resuming, run.mode) {
            (true, _) => cursor.resume_since,
            (false, Mode::Incremental) => cursor.synced_until,
            (false, Mode::Full) => None,
        };
        let mut position = cursor.resume_page.clone();
        run.high_water = cursor.synced_until;
        let mut fetcher = Fetcher {
            first: true,
            conditional: !resuming && run.mode == Mode::Incremental,
            since,
            branches: Branches::default(),
        };
        loop {
            if let Some(why) = self.must_stop(system).await {
                return Ok(Ended::Stopped(why));
            }
            let page = match system {
                SystemId::Github => {
                    let Some(page) = self
                        .github_page(key, &mut fetcher, &mut cursor, position.as_deref())
                        .await?
                    else {
                        run.counts.not_modified += 1;
                        return Ok(Ended::Completed);
                    };
                    page
                }
                _ => self.linear_page(key, since, position.as_deref()).await?,
            };
            fetcher.first = false;
            let next = page.next.clone();
            cursor.resume_page = next.clone();
            cursor.resume_since = next.as_ref().and(since);
            self.record_page(run, &mut cursor, &page, progress).await?;
            let min = self.settings.sync.min_rate_remaining;
            let low = page.rate.remaining.filter(|r| *r < min);
            if let (Some(_), Some(at)) = (low, page.rate.reset_at) {
                self.budget_low_until(system, at);
            }
            let Some(next) = next else {
                return Ok(Ended::Completed);
            };
            if let Some(left) = low {
                return Ok(Ended::Stopped(format!(
                    "{system} rate budget is low ({left} left, under sync.min_rate_remaining = \
                     {min}); resumes from the cursor"
                )));
            }
            position = Some(next);
        }
    }

    /// Why the run must stop before its next page: its system paused, or its rate
    /// budget low until a refill.
    async fn must_stop(&self, system: SystemId) -> Option<String> {
        if self.check_not_paused(system).await.is_err() {
            return Some(format!("{system} sync was paused"));
        }
        self.budget_refills_at(system, Utc::now()).map(|at| {
            format!(
                "{system} rate budget is low until {}; resumes from the cursor",
                at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            )
        })
    }

    /// One page of a repository's issues and pull requests (with the branches of the
    /// pull requests); `None` when an incremental run's first page is unchanged (304).
    async fn github_page(
        &self,
        repo: &str,
        fetcher: &mut Fetcher,
        cursor: &mut Cursor,
        position: Option<&str>,
    ) -> Result<Option<Page>, BackfillError> {
        let settings = &self.settings;
        let page_size = settings.sync.page_size;
        let url = match position {
            Some(p) => p.to_owned(),
            None => first_page_url(&settings.github.api_url, repo, page_size, fetcher.since),
        };
        let conditional = fetcher.first && fetcher.conditional;
        let etag = match conditional && cursor.etag_url.as_deref() == Some(&url) {
            true => cursor.etag.clone(),
            false => None,
        };
        let lister = Lister {
            http: &self.http,
            token: settings.secrets.github_token.as_ref(),
        };
        let page = lister.page(&url, etag.as_deref()).await?;
        if page.not_modified {
            return Ok(None);
        }
        if fetcher.first && position.is_none() {
            cursor.etag_url = Some(url.clone());
            cursor.etag = page.etag.clone();
        }
        let number = page_number(&url);
        let percent = page
            .last_page
            .map(|last| (number * 100 / last.max(1)) as u8);
        let api_url = &settings.github.api_url;
        let (heads, rate) = fetcher
            .branches
            .of(
                &lister,
                api_url,
                repo,
                page_size,
                fetcher.since,
                &page.items,
            )
            .await?;
        let items = page
            .items
            .iter()
            .filter_map(|i| github_item(repo, i, &heads))
            .collect();
        Ok(Some(Page {
            items,
            next: page.next,
            rate: rate.unwrap_or(page.rate),
            percent,
        }))
    }

    /// One page of a Linear team's issues.
    async fn linear_page(
        &self,
        team: &str,
        since: Option<DateTime<Utc>>,
        position: Option<&str>,
    ) -> Result<Page, BackfillError> {
        let settings = &self.settings;
        let page = linear_listing::page(
            &self.http,
            &settings.linear.api_url,
            settings.secrets.linear_api_key.as_ref(),
            &linear_listing::filter(team, since),
            settings.sync.page_size,
            position,
        )
        .await?;
        let items = page
            .items
            .iter()
            .filter_map(|i| linear_item(team, i))
            .collect();
        Ok(Page {
            items,
            next: page.has_next.then_some(page.end_cursor).flatten(),
            rate: page.rate,
            percent: None,
        })
    }

    /// Stores a page, moves the cursor past it (the listing is synced up to its newest
    /// item once the last page is in) and announces the progress.
    async fn record_page(
        &self,
        run: &mut Run<'_>,
        cursor: &mut Cursor,
        page: &Page,
        progress: &(dyn Fn(Progress) + Sync),
    ) -> Result<(), BackfillError> {
        let (scope, id) = (run.scope, run.id);
        let counts = &mut run.counts;
        counts.pages += 1;
        counts.seen += page.items.len() as i32;
        let new = self
            .store_page(scope, id, &page.items, &mut run.created)
            .await?;
        counts.unchanged += (page.items.len() - new) as i32;
        for i in &page.items {
            run.high_water = run.high_water.max(i.updated_at);
        }
        if page.next.is_none() {
            cursor.synced_until = run.high_water;
        }
        {
            let client = self.store.client().await?;
            sync_runs::save_cursor(&client, scope.system, &scope.key, id, cursor).await?;
            sync_runs::record(&client, id, counts, None, None).await?;
        }
        let percent = match (&page.next, page.percent) {
            (None, _) => 100,
            (Some(_), Some(p)) => p.min(99),
            (Some(_), None) => (counts.pages * 100 / (counts.pages + 1)).min(99) as u8,
        };
        self.track(scope, id, &mut run.tracker, percent, &run.counts)
            .await?;
        progress(Progress {
            percent: run.tracker.percent,
            pages: run.counts.pages,
            seen: run.counts.seen,
        });
        Ok(())
    }

    /// Stores one page; answers how many items were new. Items whose object was not
    /// linked before are remembered as created.
    async fn store_page(
        &self,
        scope: &Scope,
        id: Uuid,
        items: &[Listed],
        created: &mut HashSet<String>,
    ) -> Result<usize, StoreError> {
        let client = self.store.client().await?;
        let targets: Vec<ExternalRef> = items.iter().map(|i| i.target.clone()).collect();
        let known = entities::find(&client, &targets).await?;
        for i in items {
            if !known.contains_key(&i.target) {
                created.insert(i.item.delivery_id.clone());
            }
        }
        let listed: Vec<ListedItem> = items
            .iter()
            .map(|i| ListedItem {
                delivery_id: i.item.delivery_id.clone(),
                event_type: i.item.event_type,
                body: i.item.body.clone(),
            })
            .collect();
        let priority = self.settings.engine.priorities.backfill.as_i16();
        sync_runs::store_items(&client, scope.system, priority, id, &listed).await
    }

    async fn track(
        &self,
        scope: &Scope,
        id: Uuid,
        t: &mut Tracker,
        percent: u8,
        counts: &Counts,
    ) -> Result<(), StoreError> {
        t.percent = t.percent.max(percent);
        let due =
            t.percent >= t.announced.saturating_add(5) || t.at.elapsed() >= Duration::from_secs(1);
        if t.percent > t.announced && due && t.percent < 100 {
            t.announced = t.percent;
            t.at = Instant::now();
            let data = json!({ "percent": t.percent, "pages": counts.pages, "seen": counts.seen });
            self.announce(scope, id, "progress", data).await?;
        }
        Ok(())
    }

    /// Waits for the engine to apply the run's items, then counts what became of them.
    async fn tally(
        &self,
        id: Uuid,
        created: &HashSet<String>,
        counts: &mut Counts,
    ) -> Result<(), StoreError> {
        let deadline = Instant::now() + APPLY_DEADLINE;
        loop {
            let pending = {
                let client = self.store.client().await?;
                sync_runs::pending_of_run(&client, id).await?
            };
            if pending == 0 {
                break;
            }
            if Instant::now() > deadline {
                return Err(StoreError::Corrupt(format!(
                    "{pending} listed items still unapplied after {APPLY_DEADLINE:?}; is a worker running?"
                )));
            }
            actix::clock::sleep(Duration::from_millis(50)).await;
        }
        let client = self.store.client().await?;
        for (delivery, state, outcome) in sync_runs::outcomes_of_run(&client, id).await? {
            let decision = outcome.split(':').next().unwrap_or("");
            if state == "failed" || decision == "rejected" {
                counts.failed += 1;
            } else if decision == "applied" || decision == "conflict" {
                match created.contains(&delivery) {
                    true => counts.created += 1,
                    false => counts.changed += 1,
                }
            } else {
                counts.unchanged += 1;
            }
        }
        Ok(())
    }
}

fn page_number(url: &str) -> u32 {
    url.split(['?', '&'])
        .find_map(|kv| kv.strip_prefix("page="))
        .and_then(|n| n.parse().ok())
        .unwrap_or(1)
}

fn updated_at(v: &Value) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(v.as_str()?)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// A REST issue as a stored delivery: `backfill:github:<repo>:<number>:<updated_at>`,
/// with a pull request's branch (from `heads`, by number) as `head.ref`.
fn github_item(repo: &str, issue: &Value, heads: &HashMap<u64, String>) -> Option<Listed> {
    let number = issue["number"].as_u64()?;
    let stamp = issue["updated_at"].as_str()?;
    let mut body = json!({ "repository": { "full_name": repo }, "issue": issue });
    if let Some(branch) = heads.get(&number) {
        body["head"] = json!({ "ref": branch });
    }
    Some(Listed {
        item: ListedItem {
            delivery_id: format!("backfill:github:{repo}:{number}:{stamp}"),
            event_type: LISTED_EVENT,
            body: serde_json::to_vec(&body).ok()?,
        },
        target: ExternalRef::new(SystemId::Github, format!("{repo}#{number}")),
        updated_at: updated_at(&issue["updated_at"]),
    })
}

/// A Linear issue node as a stored `Issue` `create` delivery (not a person's change):
/// `backfill:linear:<team>:<id>:<updatedAt>`.
fn linear_item(team: &str, node: &Value) -> Option<Listed> {
    let id = node["id"].as_str()?;
    let stamp = node["updatedAt"].as_str()?;
    let mut data = node.clone();
    data["stateId"] = node["state"]["id"].clone();
    let body = json!({
        "type": "Issue",
        "action": "create",
        "webhookTimestamp": Utc::now().timestamp_millis(),
        "url": node["url"],
        "data": data,
    });
    Some(Listed {
        item: ListedItem {
            delivery_id: format!("backfill:linear:{team}:{id}:{stamp}"),
            event_type: "Issue",
            body: serde_json::to_vec(&body).ok()?,
        },
        target: ExternalRef::new(SystemId::Linear, id),
        updated_at: updated_at(&node["updatedAt"]),
    })
}
