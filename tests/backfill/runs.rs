//! Backfills and reconciliation against fakes holding 250 GitHub issues and pull
//! requests (three pages) and 120 Linear issues (two pages).

use std::collections::HashMap;

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::{json, Value};

use super::fakes::{self, Fake};
use super::*;

pub(super) const REPO: &str = "acme/api";
const GITHUB_ITEMS: u64 = 250;
const LINEAR_ITEMS: u64 = 120;

pub(super) fn base() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2024-01-01T00:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

pub(super) fn stamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Issue n; every fifth is a pull request closing ENG-n/5 (merged when n/5 is even);
/// every third other issue is closed as completed.
pub(super) fn github_item(n: u64) -> Value {
    let mut item = json!({
        "number": n,
        "title": format!("Item {n}"),
        "body": null,
        "state": if n % 3 == 0 { "closed" } else { "open" },
        "state_reason": if n % 3 == 0 { json!("completed") } else { Value::Null },
        "updated_at": stamp(base() + TimeDelta::minutes(n as i64)),
        "html_url": format!("https://github.com/{REPO}/issues/{n}"),
        "repository_url": format!("https://api.github.com/repos/{REPO}"),
    });
    if n % 5 == 0 {
        let merged = (n / 5) % 2 == 0;
        item["body"] = json!(format!("Fixes ENG-{}", n / 5));
        item["state"] = json!(if merged { "closed" } else { "open" });
        item["state_reason"] = Value::Null;
        item["draft"] = json!(false);
        item["pull_request"] =
            json!({"merged_at": if merged { json!(item["updated_at"]) } else { Value::Null }});
    }
    item
}

/// ENG-j: done / in progress like its pull request (j <= 50), else todo or backlog.
fn linear_item(j: u64) -> Value {
    let (name, kind) = match j {
        j if j <= 50 && j % 2 == 0 => ("Done", "completed"),
        j if j <= 50 => ("In Progress", "started"),
        j if j % 2 == 1 => ("Todo", "unstarted"),
        _ => ("Backlog", "backlog"),
    };
    json!({
        "id": format!("lin-{j}"),
        "identifier": format!("ENG-{j}"),
        "title": format!("Issue {j}"),
        "description": null,
        "url": format!("https://linear.app/acme/issue/ENG-{j}"),
        "updatedAt": (base() + TimeDelta::seconds(j as i64 * 30)).to_rfc3339(),
        "team": {"key": "ENG"},
        "state": {"id": format!("state-{kind}"), "name": name, "type": kind},
        "attachments": {"nodes": []},
    })
}

fn expected() -> HashMap<String, &'static str> {
    let mut want = HashMap::new();
    for n in (1..=GITHUB_ITEMS).filter(|n| n % 5 != 0) {
        want.insert(
            format!("github:{REPO}#{n}"),
            if n % 3 == 0 { "done" } else { "todo" },
        );
    }
    for j in 1..=LINEAR_ITEMS {
        let status = match j {
            j if j <= 50 && j % 2 == 0 => "done",
            j if j <= 50 => "in_progress",
            j if j % 2 == 1 => "todo",
            _ => "backlog",
        };
        want.insert(format!("linear:lin-{j}"), status);
        if j <= 50 {
            want.insert(format!("github:{REPO}#{}", j * 5), status);
        }
    }
    want
}

pub(super) async fn fake_with_items() -> Fake {
    let fake = fakes::start().await;
    fake.with(|s| {
        s.github = (1..=GITHUB_ITEMS).map(github_item).collect();
        s.linear = (1..=LINEAR_ITEMS).map(linear_item).collect();
    });
    fake
}

pub(super) fn env(fake: &Fake) -> Vec<(&'static str, String)> {
    vec![
        ("STATSYNC__GITHUB__API_URL", fake.url.clone()),
        (
            "STATSYNC__GITHUB__GRAPHQL_URL",
            format!("{}/graphql", fake.url),
        ),
        ("STATSYNC__LINEAR__API_URL", format!("{}/graphql", fake.url)),
        ("GITHUB_TOKEN", "gh-token".into()),
        ("LINEAR_API_KEY", "lin-key".into()),
    ]
}

pub(super) async fn spawn(fake: &Fake, extra: &[(&'static str, String)]) -> TestApp {
    let mut vars = env(fake);
    vars.extend(extra.iter().cloned());
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    spawn_app_with(&vars).await
}

/// Starts a backfill through the API and waits for its run to end.
pub(super) async fn backfill(app: &TestApp, body: Value) -> Value {
    let r = app.api("POST", "/api/v1/sync/backfill", Some(body)).await;
    assert_eq!(r.status, 202, "{}", r.body);
    let id = r.body["operationId"].as_str().unwrap().to_owned();
    wait_for("the backfill ends", Duration::from_secs(60), || async {
        let h = app.api("GET", "/api/v1/sync/history?limit=20", None).await;
        h.body["runs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["operationId"] == id.as_str() && r["state"] != "running")
            .cloned()
    })
    .await
}

/// Every object is linked and has its status; pull requests share their issue's entity.
pub(super) async fn assert_synced(app: &TestApp) {
    let rows = app
        .db()
        .await
        .query(
            "SELECT l.system || ':' || l.external_id, e.status, e.id FROM entity_links l
             JOIN entities e ON e.id = l.entity_id",
            &[],
        )
        .await
        .unwrap();
    let got: HashMap<String, (String, uuid::Uuid)> = rows
        .iter()
        .map(|r| (r.get(0), (r.get(1), r.get(2))))
        .collect();
    for (r, status) in expected() {
        let (have, _) = got.get(&r).unwrap_or_else(|| panic!("{r} is not linked"));
        assert_eq!(have, status, "{r}");
    }
    for j in 1..=50 {
        let pr = &got[&format!("github:{REPO}#{}", j * 5)].1;
        assert_eq!(
            pr,
            &got[&format!("linear:lin-{j}")].1,
            "ENG-{j} and its pull request"
        );
    }
    assert_eq!(app.count("SELECT count(*) FROM entities").await, 320);
}

#[actix_web::test]
async fn a_full_backfill_creates_and_links_everything_with_its_status() {
    let fake = fake_with_items().await;
    let app = spawn(&fake, &[]).await;
    let linear = backfill(&app, json!({"system": "linear", "team": "ENG"})).await;
    assert_eq!(linear["state"], "completed", "{linear}");
    assert_eq!(
        (linear["pages"].as_i64(), linear["seen"].as_i64()),
        (Some(2), Some(120))
    );
    assert_eq!(linear["created"], 120);
    let github = backfill(&app, json!({"system": "github", "repo": REPO})).await;
    assert_eq!(github["state"], "completed", "{github}");
    assert_eq!(
        (github["pages"].as_i64(), github["seen"].as_i64()),
        (Some(3), Some(250))
    );
    // Pull requests join their issues' entities (linked anew, but what they say
    // changes nothing).
    let counts = |r: &Value| ["created", "changed", "unchanged", "failed"].map(|k| r[k].as_i64());
    assert_eq!(counts(&github), [Some(200), Some(0), Some(50), Some(0)]);
    assert_synced(&app).await;

    // Progress was announced, monotonic, and the run completed.
    let events = app
        .db()
        .await
        .query(
            "SELECT type, data FROM events WHERE type LIKE 'github_sync_%' ORDER BY seq",
            &[],
        )
        .await
        .unwrap();
    let types: Vec<String> = events.iter().map(|r| r.get(0)).collect();
    assert_eq!(
        types.first().map(String::as_str),
        Some("github_sync_started")
    );
    assert_eq!(
        types.last().map(String::as_str),
        Some("github_sync_completed")
    );
    let percents: Vec<i64> = events
        .iter()
        .filter(|r| r.get::<_, String>(0) == "github_sync_progress")
        .map(|r| r.get::<_, Value>(1)["percent"].as_i64().unwrap())
        .collect();
    assert!(!percents.is_empty());
    assert!(percents.windows(2).all(|w| w[0] < w[1]), "{percents:?}");
    let done: Value = events.last().unwrap().get(1);
    assert_eq!(done["operationId"], github["operationId"]);
    assert_eq!(done["projectId"], REPO);

    // Running it again changes nothing: every item was stored before.
    let again = backfill(
        &app,
        json!({"system": "github", "repo": REPO, "mode": "full"}),
    )
    .await;
    assert_eq!(
        (again["seen"].as_i64(), again["unchanged"].as_i64()),
        (Some(250), Some(250))
    );
    app.stop().await;
}

/// Pull request n with no title or body naming an issue, open or merged.
fn bare_pull_request(n: u64, merged: bool) -> Value {
    let mut item = github_item(n);
    item["title"] = json!(format!("Change {n}"));
    item["body"] = Value::Null;
    item["state"] = json!(if merged { "closed" } else { "open" });
    item["state_reason"] = Value::Null;
    item["draft"] = json!(false);
    let merged_at = if merged {
        item["updated_at"].clone()
    } else {
        Value::Null
    };
    item["pull_request"] = json!({ "merged_at": merged_at });
    item
}

#[actix_web::test]
async fn a_backfilled_pull_request_named_only_by_its_branch_is_linked() {
    let fake = fakes::start().await;
    fake.with(|s| {
        s.linear = (1..=2).map(linear_item).collect();
        s.github = vec![
            bare_pull_request(1, false),
            bare_pull_request(2, true),
            bare_pull_request(3, false),
            bare_pull_request(4, false),
            bare_pull_request(5, false),
        ];
        for (n, branch) in [
            (1, "eng-1-login"),
            (2, "alice/ENG-2-retry"),
            (3, "patch-3"),
            (4, "eng-1-docs"),
            (5, "utf-8-names"),
        ] {
            s.branches.insert(n, branch.into());
        }
        // Changed after the pull request listing was read: fetched by itself.
        s.unlisted_pulls = vec![4];
    });
    let app = spawn(&fake, &[("STATSYNC__SYNC__PAGE_SIZE", "2".into())]).await;
    let linear = backfill(&app, json!({"system": "linear", "team": "ENG"})).await;
    assert_eq!(linear["state"], "completed", "{linear}");
    let budget = fake.with(|s| s.remaining);
    let github = backfill(&app, json!({"system": "github", "repo": REPO})).await;
    assert_eq!(github["state"], "completed", "{github}");

    let issue = |j: u64| {
        let app = &app;
        async move { entity(app, "linear", &format!("lin-{j}")).await }
    };
    let pr = |n: u64| {
        let app = &app;
        async move { entity(app, "github", &format!("{REPO}#{n}")).await }
    };
    let (eng1, eng2) = (issue(1).await, issue(2).await);
    for n in [1, 4] {
        assert_eq!(pr(n).await["id"], eng1["id"], "#{n}");
    }
    assert_eq!(eng1["status"], "in_progress");
    assert_eq!(pr(2).await["id"], eng2["id"]);
    assert_eq!(eng2["status"], "done");
    // A branch naming no known team's issue links nothing.
    for n in [3, 5] {
        assert_eq!(
            linked_refs(&pr(n).await),
            vec![format!("github:{REPO}#{n}")],
            "#{n}"
        );
    }

    // The pull request listing was read once, newest first, over its two pages; the one
    // missing from it was fetched alone. Each request cost one unit of budget.
    let pulls = fake.with(|s| s.pulls_listed.clone());
    let (listing, single): (Vec<&String>, Vec<&String>) =
        pulls.iter().partition(|u| u.contains("/pulls?"));
    assert_eq!(listing.len(), 2, "{pulls:?}");
    assert!(listing
        .iter()
        .all(|u| u.contains("direction=desc") && u.contains("state=all")));
    assert_eq!(single, vec![&format!("/repos/{REPO}/pulls/4")]);
    let spent = budget - fake.with(|s| s.remaining);
    assert_eq!(
        spent,
        3 + 2 + 1,
        "three issue pages, two pull request pages, one pull request"
    );
    app.stop().await;
}

#[actix_web::test]
async fn an_interrupted_backfill_resumes_from_its_cursor_with_the_same_result() {
    let fake = fake_with_items().await;
    let app = spawn(&fake, &[]).await;
    backfill(&app, json!({"system": "linear", "team": "ENG"})).await;
    fake.with(|s| s.fail_page = Some(2));
    let cut = backfill(&app, json!({"system": "github", "repo": REPO})).await;
    assert_eq!(cut["state"], "failed", "{cut}");
    assert_eq!(cut["pages"], 1);
    assert!(
        cut["error"].as_str().unwrap().contains("UPSTREAM_5XX"),
        "{cut}"
    );

    let resumed = backfill(&app, json!({"system": "github", "repo": REPO})).await;
    assert_eq!(resumed["state"], "completed", "{resumed}");
    assert_eq!(
        (resumed["pages"].as_i64(), resumed["seen"].as_i64()),
        (Some(2), Some(150))
    );
    // Page 1 was fetched once: the second run started where the first stopped.
    let first_pages = fake.with(|s| {
        s.listed
            .iter()
            .filter(|(url, status)| !url.contains("?page=") && *status == 200)
            .count()
    });
    assert_eq!(first_pages, 1);
    assert_synced(&app).await;
    app.stop().await;
}

#[actix_web::test]
async fn reconciliation_heals_a_dropped_webhook_and_a_304_costs_no_budget() {
    let fake = fake_with_items().await;
    let app = spawn(
        &fake,
        &[
            ("STATSYNC__SYNC__RECONCILE_INTERVAL_S", "1".into()),
            ("STATSYNC__GITHUB__REPOS", REPO.into()),
            ("STATSYNC__LINEAR__TEAMS", "ENG".into()),
        ],
    )
    .await;
    let runs = |min: usize| {
        let app = &app;
        async move {
            let h = app
                .api("GET", "/api/v1/sync/history?limit=1000", None)
                .await;
            let github: Vec<Value> = h.body["runs"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|r| r["system"] == "github" && r["state"] == "completed")
                .cloned()
                .collect();
            (github.len() >= min).then_some(github)
        }
    };
    // The first pass lists everything; later ones ask whether anything changed.
    let listed = wait_for("three reconciliations", Duration::from_secs(60), || runs(3)).await;
    assert!(listed.iter().all(|r| r["trigger"] == "reconcile"));
    assert_synced(&app).await;
    let budget = fake.with(|s| s.remaining);
    let unchanged = wait_for("an unchanged pass", Duration::from_secs(30), || async {
        let all = runs(1).await?;
        all.into_iter().find(|r| r["notModified"] == 1)
    })
    .await;
    assert_eq!(unchanged["seen"], 0);
    let spent_on_304 = fake.with(|s| s.listed.iter().filter(|(_, status)| *status == 304).count());
    assert!(spent_on_304 >= 1);
    // Every pass since then was a 304: no budget spent.
    assert_eq!(fake.with(|s| s.remaining), budget);

    // Issue 7 is closed on GitHub and its webhook never arrives.
    fake.with(|s| {
        let item = s.github.iter_mut().find(|i| i["number"] == 7).unwrap();
        item["state"] = json!("closed");
        item["state_reason"] = json!("completed");
        item["updated_at"] = json!(stamp(base() + TimeDelta::days(1)));
    });
    wait_for("issue 7 is done", Duration::from_secs(30), || async {
        let e = entity(&app, "github", &format!("{REPO}#7")).await;
        (e["status"] == "done").then_some(())
    })
    .await;
    app.stop().await;
}

#[actix_web::test]
async fn the_sync_control_api_pauses_resumes_and_refuses_bad_input() {
    let fake = fake_with_items().await;
    let app = spawn(&fake, &[]).await;
    let bad = [
        (json!({"system": "github"}), "repo"),
        (
            json!({"system": "github", "repo": "no-slash"}),
            "owner/name",
        ),
        (json!({"system": "linear", "team": "E N G"}), "team key"),
        (
            json!({"system": "agentapi", "team": "ENG"}),
            "github or linear",
        ),
        (
            json!({"system": "github", "repo": REPO, "mode": "sometimes"}),
            "mode",
        ),
    ];
    for (body, says) in bad {
        let r = app
            .api("POST", "/api/v1/sync/backfill", Some(body.clone()))
            .await;
        assert_eq!(r.status, 400, "{body}: {}", r.body);
        assert!(
            r.body["error"]["message"].as_str().unwrap().contains(says),
            "{}",
            r.body
        );
    }
    let r = app.api("GET", "/api/v1/sync/history?limit=0", None).await;
    assert_eq!(r.status, 400);

    let r = app
        .api(
            "POST",
            "/api/v1/sync/pause",
            Some(json!({"system": "github"})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = app
        .api(
            "POST",
            "/api/v1/sync/backfill",
            Some(json!({"system": "github", "repo": REPO})),
        )
        .await;
    assert_eq!(r.status, 409, "{}", r.body);
    let status = app.api("GET", "/api/v1/sync/status", None).await;
    assert_eq!(status.body["paused"], json!(["github"]));
    app.api(
        "POST",
        "/api/v1/sync/resume",
        Some(json!({"system": "github"})),
    )
    .await;
    let run = backfill(&app, json!({"system": "github", "repo": REPO})).await;
    assert_eq!(run["state"], "completed");
    let status = app.api("GET", "/api/v1/sync/status", None).await;
    assert_eq!(status.body["paused"], json!([]));
    assert_eq!(
        status.body["lastRunPerScope"][0]["operationId"],
        run["operationId"]
    );
    app.stop().await;
}
