//! Late linking and pull requests linked to several issues: an entity a pull request
//! had of its own is absorbed into the issue's when a later edit or a Linear
//! attachment links them; a pull request naming two issues drives both; attached pull
//! requests count in the multi-PR rule.

use chrono::TimeDelta;
use serde_json::{json, Value};

use super::linking::{
    app_with_issue_in_progress, attach, pull_request, status_of, LINEAR_ID, REPO,
};
use super::*;

fn pr_ref(n: u64) -> String {
    format!("{REPO}#{n}")
}

fn id_of(entity: &Value) -> String {
    entity["id"].as_str().unwrap().to_owned()
}

/// The reasons of an entity's history, newest first.
async fn reasons(app: &TestApp, id: &str) -> Vec<String> {
    let r = app
        .api("GET", &format!("/api/v1/entities/{id}/history"), None)
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body["transitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            format!(
                "{}: {}",
                t["decision"].as_str().unwrap(),
                t["reason"].as_str().unwrap()
            )
        })
        .collect()
}

/// `GET path` without following redirects.
async fn get_unfollowed(app: &TestApp, path: &str) -> (u16, Option<String>, Value) {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = client
        .get(format!("{}{path}", app.address))
        .bearer_auth(API_TOKEN)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let location = r
        .headers()
        .get("location")
        .map(|v| v.to_str().unwrap().to_owned());
    (status, location, r.json().await.unwrap())
}

#[actix_web::test]
async fn a_pull_request_seen_alone_is_merged_into_the_issue_it_later_names() {
    let (app, t0) = app_with_issue_in_progress().await;
    let at = |minutes: i64| t0 + TimeDelta::minutes(minutes);
    let issue = id_of(&entity(&app, "linear", LINEAR_ID).await);

    let opened = pull_request("opened", 40, "Login", "", "x", false, at(1));
    app.github("pull_request", "g-40", &opened).await;
    app.drained().await;
    let absorbed = id_of(&entity(&app, "github", &pr_ref(40)).await);
    assert_ne!(absorbed, issue);

    // Its body is edited to close ENG-1: its entity is absorbed into the issue's, whose
    // status an open pull request leaves in progress.
    let edited = pull_request("edited", 40, "Login", "Fixes ENG-1", "x", false, at(2));
    app.github("pull_request", "g-40-edited", &edited).await;
    app.drained().await;
    let survivor = entity(&app, "github", &pr_ref(40)).await;
    assert_eq!(id_of(&survivor), issue);
    assert_eq!(
        linked_refs(&survivor),
        vec![
            format!("github:{}", pr_ref(40)),
            format!("linear:{LINEAR_ID}")
        ]
    );
    assert_eq!(survivor["mergedFrom"], json!([absorbed]));
    assert_eq!(survivor["status"], "in_progress");

    // The absorbed id answers a permanent redirect to the survivor, with its own row
    // (no links left) as the body; a client that follows it reads the survivor.
    let path = format!("/api/v1/entities/{absorbed}");
    let (status, location, body) = get_unfollowed(&app, &path).await;
    assert_eq!(status, 308, "{body}");
    assert_eq!(location, Some(format!("/api/v1/entities/{issue}")));
    assert_eq!(
        (&body["id"], &body["mergedInto"]),
        (&json!(absorbed), &json!(issue))
    );
    assert_eq!(body["links"], json!([]));
    // A status sent for the absorbed id is the survivor's; links go to the survivor.
    let sent = json!({"entityId": absorbed, "status": "in_progress", "source": "postgresql",
                      "sourceTimestamp": at(2) + TimeDelta::seconds(30)});
    let answer = app.set_status(sent).await;
    assert_eq!(
        (&answer["entityId"], &answer["decision"]),
        (&json!(issue), &json!("noop"))
    );
    let refs = json!({"entityId": absorbed, "refs": [{"system": "agentapi", "externalId": "t-1"}]});
    let r = app.api("POST", "/api/v1/links", Some(refs)).await;
    assert_eq!(r.status, 409, "{}", r.body);
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains(&issue),
        "{}",
        r.body
    );
    let followed = app.api("GET", &path, None).await;
    assert_eq!(
        (followed.status, id_of(&followed.body)),
        (200, issue.clone())
    );

    // Both histories tell it; the absorbed one keeps what it had.
    let gone = reasons(&app, &absorbed).await;
    assert!(
        gone[0].starts_with(&format!("noop: merged into entity {issue}")),
        "{gone:?}"
    );
    assert!(gone.iter().any(|r| r.starts_with("applied:")), "{gone:?}");
    let kept = reasons(&app, &issue).await;
    let told = format!(
        "entity {absorbed} merged into this one (github:{}",
        pr_ref(40)
    );
    assert!(kept.iter().any(|r| r.contains(&told)), "{kept:?}");

    // Subscribers of either entity hear of it.
    for room in [format!("entity:{absorbed}"), format!("entity:{issue}")] {
        let r = app
            .api("GET", &format!("/api/v1/events?after=0&rooms={room}"), None)
            .await;
        let merged: Vec<&Value> = r.body["events"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["type"] == "entities_merged")
            .collect();
        assert_eq!(merged.len(), 1, "{room}: {}", r.body);
        let data = &merged[0]["data"];
        assert_eq!(
            (&data["survivorId"], &data["absorbedId"]),
            (&json!(issue), &json!(absorbed))
        );
        assert_eq!(data["refs"], json!([format!("github:{}", pr_ref(40))]));
        assert_eq!(merged[0]["entityId"], json!(issue));
    }

    // The pull request now drives the issue.
    let review = pull_request(
        "review_requested",
        40,
        "Login",
        "Fixes ENG-1",
        "x",
        false,
        at(3),
    );
    app.github("pull_request", "g-40-review", &review).await;
    app.drained().await;
    assert_eq!(
        status_of(&app, "ENG-1").await,
        "in_review",
        "{:?}",
        reasons(&app, &issue).await
    );
    let merged = pull_request("closed", 40, "Login", "Fixes ENG-1", "x", true, at(4));
    app.github("pull_request", "g-40-merged", &merged).await;
    app.drained().await;
    assert_eq!(status_of(&app, "ENG-1").await, "done");

    // A pull request seen alone that names the done issue later (closing or not) is
    // merged too, and never reopens it.
    for (n, body) in [(41, "Fixes ENG-1"), (42, "Relates to ENG-1")] {
        let alone = pull_request("opened", n, "More", "", "y", false, at(5));
        app.github("pull_request", &format!("g-{n}"), &alone).await;
        app.drained().await;
        let own = id_of(&entity(&app, "github", &pr_ref(n)).await);
        assert_ne!(own, issue);
        let named = pull_request("edited", n, "More", body, "y", false, at(6));
        app.github("pull_request", &format!("g-{n}-edited"), &named)
            .await;
        app.drained().await;
        let now = entity(&app, "github", &pr_ref(n)).await;
        assert_eq!(
            (id_of(&now), &now["status"]),
            (issue.clone(), &json!("done")),
            "{body}"
        );
    }
    app.stop().await;
}

#[actix_web::test]
async fn an_attached_pull_request_seen_alone_is_merged_and_counts_until_it_is_merged() {
    let (app, t0) = app_with_issue_in_progress().await;
    let at = |minutes: i64| t0 + TimeDelta::minutes(minutes);
    let issue = id_of(&entity(&app, "linear", LINEAR_ID).await);
    let closing = pull_request("opened", 50, "Login", "Fixes ENG-1", "x", false, at(1));
    app.github("pull_request", "g-50", &closing).await;
    let alone = pull_request("review_requested", 51, "Other", "", "y", false, at(2));
    app.github("pull_request", "g-51", &alone).await;
    app.drained().await;
    let absorbed = id_of(&entity(&app, "github", &pr_ref(51)).await);
    assert_ne!(absorbed, issue);
    assert_eq!(status_of(&app, "ENG-1").await, "in_progress");

    // Attached in Linear: absorbed into the issue's entity, and its review moves the
    // issue to review.
    let url = format!("https://github.com/{REPO}/pull/51");
    let r = attach(&app, "a-51", "create", LINEAR_ID, &url, at(3)).await;
    assert_eq!(r.status, 200);
    let survivor = entity(&app, "github", &pr_ref(51)).await;
    assert_eq!(id_of(&survivor), issue);
    assert_eq!(survivor["mergedFrom"], json!([absorbed]));
    assert_eq!(survivor["status"], "in_review");
    let (status, location, _) = get_unfollowed(&app, &format!("/api/v1/entities/{absorbed}")).await;
    assert_eq!(
        (status, location),
        (308, Some(format!("/api/v1/entities/{issue}")))
    );

    // The pull request naming the issue is merged while the attached one is open: the
    // issue stays in review; once the attached one is merged too, it is done.
    let merged = pull_request("closed", 50, "Login", "Fixes ENG-1", "x", true, at(4));
    app.github("pull_request", "g-50-merged", &merged).await;
    app.drained().await;
    assert_eq!(status_of(&app, "ENG-1").await, "in_review");
    let merged = pull_request("closed", 51, "Other", "", "y", true, at(5));
    app.github("pull_request", "g-51-merged", &merged).await;
    app.drained().await;
    assert_eq!(status_of(&app, "ENG-1").await, "done");

    // An attached pull request never seen is open until it reports: attaching one to a
    // done issue leaves it done, and its first report counts like any other.
    let url = format!("https://github.com/{REPO}/pull/52");
    attach(&app, "a-52", "create", LINEAR_ID, &url, at(6)).await;
    assert_eq!(status_of(&app, "ENG-1").await, "done");
    let rows = app
        .count(&format!(
            "SELECT count(*) FROM linked_pull_requests WHERE issue = 'ENG-1'
             AND via = 'attachment' AND closing AND pull_request IN ('{}', '{}')",
            pr_ref(51),
            pr_ref(52)
        ))
        .await;
    assert_eq!(rows, 2);
    app.stop().await;
}

#[actix_web::test]
async fn a_pull_request_naming_two_issues_joins_the_first_and_drives_both() {
    let (app, t0) = app_with_issue_in_progress().await;
    let at = |minutes: i64| t0 + TimeDelta::minutes(minutes);
    let second = "0b6f3c4e-0000-4000-8000-000000000002";
    let linear = linear_issue_update(second, "ENG-2", "In Progress", "started", t0);
    assert_eq!(app.linear("l-2", &linear).await.status, 200);
    // Pull request 60, naming both issues.
    let both = |action: &str, merged: bool, minutes: i64| {
        pull_request(
            action,
            60,
            "Two",
            "Fixes ENG-1, fixes ENG-2",
            "x",
            merged,
            at(minutes),
        )
    };
    app.github("pull_request", "g-60", &both("opened", false, 1))
        .await;
    let rest = pull_request("opened", 61, "Rest", "Closes ENG-2", "y", false, at(2));
    app.github("pull_request", "g-61", &rest).await;
    app.drained().await;

    // Its ref joins the first issue; the second keeps its own pull request only.
    let one = entity(&app, "linear", "ENG-1").await;
    let two = entity(&app, "linear", "ENG-2").await;
    assert_eq!(
        linked_refs(&one),
        vec![
            format!("github:{}", pr_ref(60)),
            format!("linear:{LINEAR_ID}")
        ]
    );
    assert_eq!(
        linked_refs(&two),
        vec![format!("github:{}", pr_ref(61)), format!("linear:{second}")]
    );
    let recorded = app
        .count(&format!(
            "SELECT count(*) FROM linked_pull_requests
             WHERE pull_request = '{}' AND closing AND issue IN ('ENG-1', 'ENG-2')",
            pr_ref(60)
        ))
        .await;
    assert_eq!(recorded, 2);

    // Its review request moves both issues.
    let review = both("review_requested", false, 3);
    app.github("pull_request", "g-60-review", &review).await;
    app.drained().await;
    assert_eq!(status_of(&app, "ENG-1").await, "in_review");
    assert_eq!(status_of(&app, "ENG-2").await, "in_review");
    let history = reasons(&app, &id_of(&two)).await;
    assert!(history[0].starts_with("applied:"), "{history:?}");

    // Its merge finishes the first; the second waits for its other closing one.
    app.github("pull_request", "g-60-merged", &both("closed", true, 4))
        .await;
    app.drained().await;
    assert_eq!(status_of(&app, "ENG-1").await, "done");
    assert_eq!(status_of(&app, "ENG-2").await, "in_review");
    let merged = pull_request("closed", 61, "Rest", "Closes ENG-2", "y", true, at(5));
    app.github("pull_request", "g-61-merged", &merged).await;
    app.drained().await;
    assert_eq!(status_of(&app, "ENG-2").await, "done");
    app.stop().await;
}
