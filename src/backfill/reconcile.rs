//! Periodic reconciliation: every `sync.reconcile_interval_s` an incremental run of
//! each configured scope (conditional requests, so an unchanged repository costs no
//! rate budget), and GitHub's failed deliveries of configured hooks redelivered. With
//! several replicas one runs it at a time, under a lease in the database.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use uuid::Uuid;

use super::{Backfill, Mode, Scope, Summary, Trigger};
use crate::store::sync_runs;
use crate::systems::github::listing::{failed_deliveries, Lister};

const LEASE: &str = "reconcile";

/// One reconciliation pass, if this replica gets the lease: the runs it made and the
/// deliveries it asked GitHub to send again.
pub async fn reconcile_all(service: &Arc<Backfill>) -> anyhow::Result<(Vec<Summary>, usize)> {
    let holder = Uuid::new_v4();
    let settings = &service.settings;
    // Long enough for a pass; renewed before every scope.
    let lease_s = (settings.sync.reconcile_interval_s.max(60) * 2) as f64;
    let take = || async {
        let client = service.store.client().await?;
        sync_runs::take_lease(&client, LEASE, holder, lease_s).await
    };
    if !take().await? {
        tracing::debug!("another replica is reconciling");
        return Ok((Vec::new(), 0));
    }
    let mut scopes = Vec::new();
    for repo in &settings.github.repos {
        scopes.push(Scope::github(repo)?);
    }
    for team in &settings.linear.teams {
        scopes.push(Scope::linear(team)?);
    }
    let mut runs = Vec::new();
    for scope in scopes {
        if service.check_not_paused(scope.system).await.is_err() || !take().await? {
            continue;
        }
        let id = Uuid::new_v4();
        match service
            .run(id, &scope, Mode::Incremental, Trigger::Reconcile, &|_| {})
            .await
        {
            Ok(summary) => runs.push(summary),
            Err(e) => tracing::warn!(scope = %scope, error = %e, "reconciliation run failed"),
        }
    }
    let redelivered = redeliver_missed(service).await;
    let client = service.store.client().await?;
    sync_runs::drop_lease(&client, LEASE, holder).await?;
    Ok((runs, redelivered))
}

/// Asks GitHub to redeliver every failed delivery of the configured hooks; a delivery
/// that arrives twice is deduplicated by its id.
async fn redeliver_missed(service: &Backfill) -> usize {
    let settings = &service.settings;
    if service
        .check_not_paused(crate::domain::SystemId::Github)
        .await
        .is_err()
    {
        return 0;
    }
    let lister = Lister {
        http: &service.http,
        token: settings.secrets.github_token.as_ref(),
    };
    let now = Utc::now();
    let since = now - crate::systems::github::listing::REDELIVERY_WINDOW;
    let mut asked = 0;
    for (repo, hook) in &settings.github.hook_ids {
        let list = match lister
            .deliveries(&settings.github.api_url, repo, *hook, since)
            .await
        {
            Ok((list, _)) => list,
            Err(e) => {
                tracing::warn!(repo, hook, error = %e, "listing hook deliveries failed");
                continue;
            }
        };
        for delivery in failed_deliveries(&list, now) {
            match lister
                .redeliver(&settings.github.api_url, repo, *hook, delivery)
                .await
            {
                Ok(()) => asked += 1,
                Err(e) => tracing::warn!(repo, delivery, error = %e, "redelivery failed"),
            }
        }
    }
    if asked > 0 {
        tracing::info!(asked, "asked GitHub to redeliver failed deliveries");
    }
    asked
}

/// Runs reconciliation every `sync.reconcile_interval_s` (0 = never).
pub fn start_reconciler(service: Arc<Backfill>) {
    let every = service.settings.sync.reconcile_interval_s;
    if every == 0 || !service.settings.server.worker_enabled {
        return;
    }
    actix_web::rt::spawn(async move {
        loop {
            let next = Utc::now() + chrono::TimeDelta::seconds(every as i64);
            if let Ok(mut n) = service.next_reconcile.lock() {
                *n = Some(next);
            }
            actix::clock::sleep(Duration::from_secs(every)).await;
            if let Err(e) = reconcile_all(&service).await {
                tracing::warn!(error = %e, "reconciliation failed");
            }
        }
    });
}
