//! The reconciliation pass driven by hand (`reconcile_all`) on the application's
//! database: redelivery of a hook's failed deliveries, and an early stop when GitHub's
//! rate budget runs low.

use std::sync::Arc;

use chrono::{TimeDelta, Utc};
use serde_json::{json, Value};
use statsync::backfill::{reconcile_all, Backfill};
use statsync::config::Settings;
use statsync::store::Store;

use super::fakes::Fake;
use super::runs::{assert_synced, backfill, fake_with_items, spawn, REPO};
use super::*;

/// A second sync service on the application's database (whose engine applies what it
/// stores), with `edit` applied to the application's settings.
fn service(app: &TestApp, edit: impl FnOnce(&mut Settings)) -> Arc<Backfill> {
    let mut settings = app.settings.clone();
    edit(&mut settings);
    let store = Store::connect(&app.database_url, settings.database.pool()).unwrap();
    let connectors = statsync::startup::connectors(&settings).unwrap().registry;
    Arc::new(Backfill::new(store, Arc::new(settings), connectors, Vec::new()).unwrap())
}

/// Delivery `id` of the hook, `minutes` ago, answered `status_code`.
fn delivery(id: u64, guid: &str, status_code: u64, redelivery: bool, minutes: i64) -> Value {
    let status = match status_code {
        200..=299 => "OK".to_owned(),
        0 => "timed out".to_owned(),
        code => format!("Invalid HTTP Response: {code}"),
    };
    json!({
        "id": id,
        "guid": guid,
        "delivered_at": (Utc::now() - TimeDelta::minutes(minutes)).to_rfc3339(),
        "redelivery": redelivery,
        "duration": 0.27,
        "status": status,
        "status_code": status_code,
        "event": "issues",
        "action": "edited",
        "installation_id": null,
        "repository_id": 1296269,
        "throttled_at": null,
    })
}

/// 140 deliveries over two pages, newest first: failed are 5 (a 500) and 120 (timed
/// out, on the second page); 7 failed but was redelivered with success, 9 failed and
/// its redelivery failed too, 139 failed four days ago (past GitHub's window).
fn hook_deliveries() -> Vec<Value> {
    let mut list = vec![
        delivery(1001, "g7", 200, true, 0),
        delivery(1002, "g9", 502, true, 0),
    ];
    for id in 1..=140u64 {
        let (code, minutes) = match id {
            5 | 7 | 9 => (500, id as i64),
            120 => (0, id as i64),
            139 => (503, 4 * 24 * 60),
            _ => (200, id as i64),
        };
        let minutes = if id == 140 { 5 * 24 * 60 } else { minutes };
        list.push(delivery(id, &format!("g{id}"), code, false, minutes));
    }
    list
}

#[actix_web::test]
async fn failed_deliveries_are_redelivered_exactly_once_and_no_hook_id_does_nothing() {
    let fake = super::fakes::start().await;
    fake.with(|s| s.deliveries = hook_deliveries());
    let app = spawn(&fake, &[]).await;

    // No hook id configured: not one request.
    let none = service(&app, |_| {});
    assert_eq!(reconcile_all(&none).await.unwrap(), (Vec::new(), 0));
    assert_eq!(fake.with(|s| s.delivery_lists.len()), 0);

    let hooked = service(&app, |s| {
        s.github.hook_ids.insert(REPO.into(), 42);
    });
    let (runs, asked) = reconcile_all(&hooked).await.unwrap();
    assert!(runs.is_empty());
    assert_eq!(asked, 2);
    let redelivered = |f: &Fake| {
        let mut ids = f.with(|s| s.redelivered.clone());
        ids.sort();
        ids
    };
    assert_eq!(redelivered(&fake), vec![5, 120]);
    let lists = fake.with(|s| s.delivery_lists.clone());
    assert_eq!(lists.len(), 2, "both pages were read: {lists:?}");
    assert!(lists[0].starts_with(&format!("/repos/{REPO}/hooks/42/deliveries?per_page=100")));
    assert!(lists[1].contains("cursor=100"), "{lists:?}");

    // The next pass sees the redeliveries (same guids, `redelivery: true`): nothing more.
    assert_eq!(reconcile_all(&hooked).await.unwrap().1, 0);
    assert_eq!(redelivered(&fake), vec![5, 120]);
    app.stop().await;
}

#[actix_web::test]
async fn reconciliation_stops_early_on_a_low_rate_budget_and_a_later_pass_resumes() {
    let fake = fake_with_items().await;
    // Page 1 leaves 151, the pull request listing read for branches 150 (enough), page
    // 2 leaves 149: below the minimum of 150.
    fake.with(|s| s.remaining = 152);
    let app = spawn(&fake, &[]).await;
    backfill(&app, json!({"system": "linear", "team": "ENG"})).await;
    let reconciler = service(&app, |s| {
        s.github.repos = vec![REPO.into()];
        s.sync.min_rate_remaining = 150;
    });
    let history = || async {
        let h = app.api("GET", "/api/v1/sync/history?limit=10", None).await;
        assert_eq!(h.status, 200, "{}", h.body);
        h.body["runs"].as_array().unwrap().clone()
    };

    let (runs, _) = reconcile_all(&reconciler).await.unwrap();
    assert_eq!(runs.len(), 1);
    let run = &runs[0];
    assert_eq!(run.state, "stopped", "{run:?}");
    assert_eq!((run.counts.pages, run.counts.seen), (2, 200));
    let why = run.error.clone().unwrap();
    assert!(why.contains("rate budget is low (149 left"), "{why}");
    let listed = fake.with(|s| s.listed.len());
    assert_eq!(listed, 2);
    let recorded = history().await;
    let stopped = recorded
        .iter()
        .find(|r| r["operationId"] == json!(run.operation_id))
        .unwrap();
    assert_eq!(
        (&stopped["state"], &stopped["trigger"], &stopped["error"]),
        (&json!("stopped"), &json!("reconcile"), &json!(why))
    );

    // Until the budget refills (`x-ratelimit-reset`, an hour away), a pass stops
    // before asking anything.
    let (runs, _) = reconcile_all(&reconciler).await.unwrap();
    let why = runs[0].error.clone().unwrap();
    assert_eq!(runs[0].state, "stopped");
    assert!(why.contains("rate budget is low until"), "{why}");
    assert_eq!(fake.with(|s| s.listed.len()), listed, "no request was made");

    // With budget again (a replica that has not seen it run low), the pass resumes from
    // the cursor: page 3 only, and everything is there.
    fake.with(|s| s.remaining = 5000);
    let refilled = service(&app, |s| s.github.repos = vec![REPO.into()]);
    let (runs, _) = reconcile_all(&refilled).await.unwrap();
    assert_eq!(runs[0].state, "completed", "{:?}", runs[0]);
    assert_eq!((runs[0].counts.pages, runs[0].counts.seen), (1, 50));
    assert_synced(&app).await;
    app.stop().await;
}
