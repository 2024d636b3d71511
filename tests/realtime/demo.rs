//! `statsync demo`, in-process: the team's changes in the stand-ins reach statsync as
//! signed webhooks, and what statsync writes back shows up in the other system.

use std::time::Duration;

use serde_json::Value;
use statsync::demo::{Demo, View};

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

/// The demo, serving in this test's actix system, its database under `target/tmp/<name>`.
pub struct Running {
    pub base: String,
    pub token: String,
    pub view: View,
    handle: actix_web::dev::ServerHandle,
    running: actix_web::rt::task::JoinHandle<anyhow::Result<()>>,
}

impl Running {
    pub async fn start(name: &str) -> Running {
        let mut settings = test_settings("unused", &[]);
        settings.database.embedded_dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("{name}-{}", std::process::id()));
        let demo = Demo::start(settings, Duration::from_millis(1500))
            .await
            .expect("the demo starts");
        Running {
            base: format!("http://127.0.0.1:{}", demo.port()),
            token: demo.token.clone(),
            view: demo.view(),
            handle: demo.handle(),
            running: actix_web::rt::spawn(demo.run_until_stopped()),
        }
    }

    pub async fn stop(self) {
        self.handle.stop(true).await;
        self.running
            .await
            .expect("the demo task")
            .expect("the demo ends cleanly");
    }
}

#[actix_web::test]
async fn the_demo_team_s_changes_sync_both_ways_and_end_in_an_open_conflict() {
    let demo = Running::start("demo").await;
    let (base, token, watch) = (demo.base.clone(), demo.token.clone(), demo.view.clone());
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
    demo.stop().await;
}
