//! One run over one scope: list it page by page, store each item as a low-priority
//! delivery, move the scope's cursor after every page, announce throttled progress,
//! and once the engine has applied what was stored, record the summary.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{json, Value};
use uuid::Uuid;

use super::{Backfill, BackfillError, Mode, Progress, Scope, Trigger};
use crate::domain::{ExternalRef, SystemId};
use crate::store::sync_runs::{self, Counts, Cursor, ListedItem};
use crate::store::{entities, StoreError};
use crate::systems::connector::{ListFrom, ListedObject, ListedPage};

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
        let connector = self.connectors.get(system);
        let Some(mut listing) = connector.and_then(|c| c.listing()) else {
            return Err(BackfillError::BadScope(format!(
                "{system} cannot be listed"
            )));
        };
        // An incremental run from the start may ask for its first page with the
        // validator seen last time (for GitHub, a 304 costs no rate budget).
        let conditional = !resuming && run.mode == Mode::Incremental;
        loop {
            if let Some(why) = self.must_stop(system).await {
                return Ok(Ended::Stopped(why));
            }
            let seen = match (conditional, &cursor.etag_url, &cursor.etag) {
                (true, Some(url), Some(etag)) => Some((url.as_str(), etag.as_str())),
                _ => None,
            };
            let from = ListFrom {
                scope: key,
                since,
                page_size: self.settings.sync.page_size,
                position: position.as_deref(),
                unchanged_since: seen.filter(|_| position.is_none()),
            };
            let Some(page) = listing.page(from).await? else {
                run.counts.not_modified += 1;
                return Ok(Ended::Completed);
            };
            if let Some((url, etag)) = &page.first_page {
                cursor.etag_url = Some(url.clone());
                cursor.etag = etag.clone();
            }
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

    /// Stores a page, moves the cursor past it (the listing is synced up to its newest
    /// item once the last page is in) and announces the progress.
    async fn record_page(
        &self,
        run: &mut Run<'_>,
        cursor: &mut Cursor,
        page: &ListedPage,
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
        items: &[ListedObject],
        created: &mut HashSet<String>,
    ) -> Result<usize, StoreError> {
        let client = self.store.client().await?;
        let targets: Vec<ExternalRef> = items.iter().map(|i| i.target.clone()).collect();
        let known = entities::find(&client, &targets).await?;
        for i in items {
            if !known.contains_key(&i.target) {
                created.insert(i.delivery_id.clone());
            }
        }
        let listed: Vec<ListedItem> = items
            .iter()
            .map(|i| ListedItem {
                delivery_id: i.delivery_id.clone(),
                event_type: i.event_type,
                body: i.body.clone(),
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
