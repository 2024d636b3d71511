//! One run over one scope: list it page by page, store each item as a low-priority
//! delivery, move the scope's cursor after every page, announce throttled progress,
//! and once the engine has applied what was stored, record the summary.

use crate::store::inbound::BACKFILL_DELIVERY_PREFIX;
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
        let mut counts = Counts::default();
        let mut created = HashSet::new();
        let mut tracker = Tracker {
            percent: 0,
            announced: 0,
            at: Instant::now(),
        };
        let listed = self
            .list(
                id,
                scope,
                mode,
                &mut counts,
                &mut created,
                &mut tracker,
                progress,
            )
            .await;
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
        let mut data = serde_json::to_value(&summary).unwrap_or_else(|_| json!({}));
        match &listed {
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
        Ok(summary)
    }

    #[allow(clippy::too_many_arguments)]
    async fn list(
        &self,
        id: Uuid,
        scope: &Scope,
        mode: Mode,
        counts: &mut Counts,
        created: &mut HashSet<String>,
        tracker: &mut Tracker,
        progress: &(dyn Fn(Progress) + Sync),
    ) -> Result<Ended, BackfillError> {
        let settings = &self.settings;
        let mut cursor: Cursor = {
            let client = self.store.client().await?;
            sync_runs::cursor(&client, scope.system, &scope.key).await?
        };
        let resuming = cursor.resume_page.is_some();
        let since = match (resuming, mode) {
            (true, _) => cursor.resume_since,
            (false, Mode::Incremental) => cursor.synced_until,
            (false, Mode::Full) => None,
        };
        let mut position = cursor.resume_page.clone();
        let mut high_water = cursor.synced_until;
        let page_size = settings.sync.page_size;
        let first_url = first_page_url(&settings.github.api_url, &scope.key, page_size, since);
        let filter = linear_listing::filter(&scope.key, since);
        let mut first = true;
        let mut branches = Branches::default();
        loop {
            if self.check_not_paused(scope.system).await.is_err() {
                return Ok(Ended::Stopped(format!("{} sync was paused", scope.system)));
            }
            if let Some(at) = self.budget_refills_at(scope.system, Utc::now()) {
                return Ok(Ended::Stopped(format!(
                    "{} rate budget is low until {}; resumes from the cursor",
                    scope.system,
                    at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                )));
            }
            let (items, next, rate, percent) = match scope.system {
                SystemId::Github => {
                    let url = position.clone().unwrap_or_else(|| first_url.clone());
                    let conditional = first && !resuming && mode == Mode::Incremental;
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
                        counts.not_modified += 1;
                        return Ok(Ended::Completed);
                    }
                    if first && !resuming {
                        cursor.etag_url = Some(url.clone());
                        cursor.etag = page.etag.clone();
                    }
                    let number = page_number(&url);
                    let percent = page
                        .last_page
                        .map(|last| (number * 100 / last.max(1)) as u8);
                    let (heads, rate) = branches
                        .of(
                            &lister,
                            &settings.github.api_url,
                            &scope.key,
                            page_size,
                            since,
                            &page.items,
                        )
                        .await?;
                    let items = page
                        .items
                        .iter()
                        .filter_map(|i| github_item(&scope.key, i, &heads))
                        .collect();
                    (items, page.next, rate.unwrap_or(page.rate), percent)
                }
                _ => {
                    let page = linear_listing::page(
                        &self.http,
                        &settings.linear.api_url,
                        settings.secrets.linear_api_key.as_ref(),
                        &filter,
                        page_size,
                        position.as_deref(),
                    )
                    .await?;
                    let items = page
                        .items
                        .iter()
                        .filter_map(|i| linear_item(&scope.key, i))
                        .collect();
                    let next = page.has_next.then_some(page.end_cursor).flatten();
                    (items, next, page.rate, None)
                }
            };
            let items: Vec<Listed> = items;
            first = false;
            counts.pages += 1;
            counts.seen += items.len() as i32;
            let new = self.store_page(scope, id, &items, created).await?;
            counts.unchanged += (items.len() - new) as i32;
            for i in &items {
                high_water = high_water.max(i.updated_at);
            }
            cursor.resume_page = next.clone();
            cursor.resume_since = next.as_ref().and(since);
            if next.is_none() {
                cursor.synced_until = high_water;
            }
            {
                let client = self.store.client().await?;
                sync_runs::save_cursor(&client, scope.system, &scope.key, id, &cursor).await?;
                sync_runs::record(&client, id, counts, None, None).await?;
            }
            let percent = match (&next, percent) {
                (None, _) => 100,
                (Some(_), Some(p)) => p.min(99),
                (Some(_), None) => (counts.pages * 100 / (counts.pages + 1)).min(99) as u8,
            };
            self.track(scope, id, tracker, percent, counts).await?;
            progress(Progress {
                percent: tracker.percent,
                pages: counts.pages,
                seen: counts.seen,
            });
            let low = rate
                .remaining
                .filter(|r| *r < settings.sync.min_rate_remaining);
            if let (Some(_), Some(at)) = (low, rate.reset_at) {
                self.budget_low_until(scope.system, at);
            }
            let Some(next) = next else {
                return Ok(Ended::Completed);
            };
            if let Some(left) = low {
                return Ok(Ended::Stopped(format!(
                    "{} rate budget is low ({left} left, under sync.min_rate_remaining = {}); \
                     resumes from the cursor",
                    scope.system, settings.sync.min_rate_remaining
                )));
            }
            position = Some(next);
        }
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
            delivery_id: format!("{BACKFILL_DELIVERY_PREFIX}github:{repo}:{number}:{stamp}"),
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
            delivery_id: format!("{BACKFILL_DELIVERY_PREFIX}linear:{team}:{id}:{stamp}"),
            event_type: "Issue",
            body: serde_json::to_vec(&body).ok()?,
        },
        target: ExternalRef::new(SystemId::Linear, id),
        updated_at: updated_at(&node["updatedAt"]),
    })
}
