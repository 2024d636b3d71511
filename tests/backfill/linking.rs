//! Pull requests and issues linked to the Linear issues they name, through webhooks.

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::{json, Value};

use super::*;

const LINEAR_ID: &str = "0b6f3c4e-0000-4000-8000-000000000001";
const REPO: &str = "Codertocat/Hello-World";

/// A pull request delivery: `action` on PR `number` with these texts.
fn pull_request(
    action: &str,
    number: u64,
    title: &str,
    body: &str,
    branch: &str,
    merged: bool,
    at: DateTime<Utc>,
) -> Vec<u8> {
    github_fixture_at("pull_request.opened.json", at, |v: &mut Value| {
        v["action"] = json!(action);
        v["number"] = json!(number);
        let pr = &mut v["pull_request"];
        pr["number"] = json!(number);
        pr["title"] = json!(title);
        pr["body"] = json!(body);
        pr["head"]["ref"] = json!(branch);
        pr["draft"] = json!(false);
        pr["merged"] = json!(merged);
        if merged {
            pr["state"] = json!("closed");
            pr["merged_at"] = json!(at.to_rfc3339());
        }
    })
}

async fn status_of(app: &TestApp, external_id: &str) -> String {
    entity(app, "linear", external_id).await["status"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[actix_web::test]
async fn pull_requests_naming_an_issue_drive_it_until_every_closing_one_is_merged() {
    // Conflict resolution between Linear and GitHub is not what this test is about.
    let app = spawn_app_with(&[("STATSYNC__SYNC__CONFLICT_WINDOW_MS", "0")]).await;
    let t0 = Utc::now() - TimeDelta::hours(1);
    let at = |minutes: i64| t0 + TimeDelta::minutes(minutes);
    let linear = linear_issue_update(LINEAR_ID, "ENG-1", "In Progress", "started", t0);
    assert_eq!(app.linear("l-1", &linear).await.status, 200);
    app.drained().await;

    let first = pull_request("opened", 10, "Login", "Fixes ENG-1", "x", false, at(1));
    app.github("pull_request", "g-10", &first).await;
    let second = pull_request(
        "review_requested",
        11,
        "More",
        "",
        "alice/eng-1-more",
        false,
        at(2),
    );
    app.github("pull_request", "g-11", &second).await;
    app.drained().await;
    let issue = entity(&app, "linear", "ENG-1").await;
    assert_eq!(
        linked_refs(&issue),
        vec![
            format!("github:{REPO}#10"),
            format!("github:{REPO}#11"),
            format!("linear:{LINEAR_ID}"),
        ]
    );
    assert_eq!(issue["status"], "in_review");

    // One closing pull request merged while the other is open: still in review.
    let merged = pull_request("closed", 10, "Login", "Fixes ENG-1", "x", true, at(3));
    app.github("pull_request", "g-10-merged", &merged).await;
    app.drained().await;
    assert_eq!(status_of(&app, "ENG-1").await, "in_review");

    // The last one merged: done.
    let merged = pull_request("closed", 11, "More", "", "alice/eng-1-more", true, at(4));
    app.github("pull_request", "g-11-merged", &merged).await;
    app.drained().await;
    assert_eq!(status_of(&app, "ENG-1").await, "done");

    // A pull request that only mentions the done issue, even reopened, leaves it done.
    let mention = pull_request(
        "reopened",
        12,
        "Tidy",
        "Relates to ENG-1",
        "y",
        false,
        at(5),
    );
    app.github("pull_request", "g-12", &mention).await;
    app.drained().await;
    let issue = entity(&app, "linear", "ENG-1").await;
    assert_eq!(issue["status"], "done");
    assert!(linked_refs(&issue).contains(&format!("github:{REPO}#12")));

    // `UTF-8` names no issue; `skip` prevents a link.
    let utf = pull_request(
        "opened",
        13,
        "Handle UTF-8",
        "Fixes UTF-8 input",
        "z",
        false,
        at(6),
    );
    app.github("pull_request", "g-13", &utf).await;
    let skip = pull_request("opened", 14, "Later", "skip ENG-1", "w", false, at(7));
    app.github("pull_request", "g-14", &skip).await;
    app.drained().await;
    for n in [13, 14] {
        let own = entity(&app, "github", &format!("{REPO}#{n}")).await;
        assert_eq!(linked_refs(&own), vec![format!("github:{REPO}#{n}")]);
        assert_ne!(own["id"], issue["id"]);
    }
    app.stop().await;
}

#[actix_web::test]
async fn a_pull_request_naming_an_issue_not_seen_yet_is_linked_when_the_team_is_configured() {
    let app = spawn_app_with(&[
        ("STATSYNC__SYNC__CONFLICT_WINDOW_MS", "0"),
        ("STATSYNC__LINEAR__TEAMS", "WEB"),
    ])
    .await;
    let t0 = Utc::now() - TimeDelta::hours(1);
    let pr = pull_request("opened", 20, "WEB-7 new header", "", "x", false, t0);
    app.github("pull_request", "g-20", &pr).await;
    app.drained().await;
    let by_identifier = entity(&app, "linear", "WEB-7").await;
    // The Linear delivery later renames the link to the issue's id.
    let id = "0b6f3c4e-0000-4000-8000-000000000007";
    let linear = linear_issue_update(
        id,
        "WEB-7",
        "In Review",
        "started",
        t0 + TimeDelta::minutes(1),
    );
    app.linear("l-7", &linear).await;
    app.drained().await;
    let issue = entity(&app, "linear", id).await;
    assert_eq!(issue["id"], by_identifier["id"]);
    assert_eq!(
        linked_refs(&issue),
        vec![format!("github:{REPO}#20"), format!("linear:{id}")]
    );
    app.stop().await;
}
