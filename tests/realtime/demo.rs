//! `statsync demo`, in-process: the team's changes in the stand-ins reach statsync as
//! signed webhooks, and what statsync writes back shows up in the other system.

use std::time::Duration;

use serde_json::Value;
use statsync::demo::Demo;

use crate::support::{test_settings, wait_for};

const WAIT: Duration = Duration::from_secs(60);

async fn api(http: &reqwest::Client, base: &str, token: &str, path: &str) -> Option<Value> {
    let r = http
        .get(format!("{base}{path}"))
        .bearer_auth(token)
        .send()
        .await
        .ok()?;
    r.status().is_success().then_some(())?;
    r.json().await.ok()
}

#[actix_web::test]
async fn the_demo_team_s_changes_sync_both_ways_and_end_in_an_open_conflict() {
    let mut settings = test_settings("unused", &[]);
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("demo-{}", std::process::id()));
    settings.database.embedded_dir = dir;
    let demo = Demo::start(settings, Duration::from_millis(1500))
        .await
        .expect("the demo starts");
    let (base, token) = (
        format!("http://127.0.0.1:{}", demo.port()),
        demo.token.clone(),
    );
    let handle = demo.handle();
    let watch = demo.view();
    let running = actix_web::rt::spawn(demo.run_until_stopped());
    let http = reqwest::Client::new();

    // Nobody in Linear moves ENG-1 to review or done: statsync does, after the pull
    // request naming it goes to review and is merged.
    wait_for("statsync moves ENG-1 to In Review in Linear", WAIT, || {
        let s = watch.linear_state("ENG-1");
        async move { (s == Some("In Review")).then_some(()) }
    })
    .await;
    wait_for("statsync moves ENG-1 to Done in Linear", WAIT, || {
        let s = watch.linear_state("ENG-1");
        async move { (s == Some("Done")).then_some(()) }
    })
    .await;
    // Nobody closes GitHub issue #1 as completed, nor reopens it: statsync does.
    wait_for("statsync closes acme/app#1", WAIT, || {
        let s = watch.github_issue(1);
        async move { (s.as_deref() == Some("closed/completed")).then_some(()) }
    })
    .await;
    wait_for(
        "statsync reopens acme/app#1 after Grace reopens ENG-1",
        WAIT,
        || {
            let s = watch.github_issue(1);
            async move { (s.as_deref() == Some("open")).then_some(()) }
        },
    )
    .await;
    // Grace and octocat edit it at once: a conflict waits for a person.
    let conflict = wait_for("an open conflict on ENG-1", WAIT, || {
        let (http, base, token) = (&http, &base, &token);
        async move {
            let entity = api(
                http,
                base,
                token,
                "/api/v1/entities?system=linear&external_id=ENG-1",
            )
            .await?;
            let open = api(http, base, token, "/api/v1/conflicts?state=open").await?;
            open["conflicts"]
                .as_array()?
                .iter()
                .find(|c| c["entityId"] == entity["id"])
                .cloned()
        }
    })
    .await;
    assert_eq!(conflict["strategy"], "manual", "{conflict}");

    handle.stop(true).await;
    running
        .await
        .expect("the demo task")
        .expect("the demo ends cleanly");
}
