//! `statsync doctor` and `statsync webhooks register`, the real binary against the fakes
//! on a real database: doctor names exactly what is wrong (a refused token, a webhook
//! whose deliveries fail, a workflow state no mapping covers); register creates and
//! mends what doctor found, after which doctor passes and register has nothing to do.

use chrono::{TimeDelta, Utc};

use super::fake_admin::{delivery_json, hook_json};
use super::*;

const PUBLIC: &str = "https://sync.acme.test";

/// A migrated database and the settings pointing at the fakes.
async fn setup(
    github: &Fake,
    linear: &Fake,
    extra: &[(&'static str, String)],
) -> Vec<(&'static str, String)> {
    let database = support::cluster::fresh_database().await;
    let (code, _, err) = statsync(&["migrate"], &[("DATABASE_URL", database.clone())]).await;
    assert_eq!(code, Some(0), "{err}");
    let mut own: Vec<(&'static str, String)> = vec![
        ("DATABASE_URL", database),
        ("GITHUB_WEBHOOK_SECRET", GITHUB_SECRET.into()),
        ("LINEAR_WEBHOOK_SECRET", LINEAR_SECRET.into()),
        ("STATSYNC__SERVER__PUBLIC_URL", PUBLIC.into()),
        ("STATSYNC__LOG__LEVEL", "warn".into()),
    ];
    own.extend(extra.iter().cloned());
    outbound_env(github, linear, &own)
}

/// Team ENG's workflow with every state the shipped mappings write, plus `extra`.
fn full_workflow(extra: &[Value]) -> Value {
    let mut states = fakes::linear_states().as_array().unwrap().clone();
    states.push(json!({"id": "st-blocked", "name": "Blocked", "type": "started", "position": 3.5}));
    states.extend(extra.iter().cloned());
    Value::Array(states)
}

fn ago(minutes: i64) -> String {
    (Utc::now() - TimeDelta::minutes(minutes)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// The failed checks of `doctor --json`, as (area, name, detail).
fn failures(report: &Value) -> Vec<(String, String, String)> {
    report["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .filter(|c| c["level"] == "fail")
        .map(|c| {
            (
                c["area"].as_str().unwrap().to_owned(),
                c["name"].as_str().unwrap().to_owned(),
                c["detail"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn names(failed: &[(String, String, String)]) -> Vec<(&str, &str)> {
    failed
        .iter()
        .map(|(a, n, _)| (a.as_str(), n.as_str()))
        .collect()
}

async fn doctor_json(env: &[(&str, String)]) -> (Option<i32>, Value) {
    let (code, out, err) = statsync(&["doctor", "--json"], env).await;
    let report = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}\n{err}"));
    (code, report)
}

#[actix_web::test]
async fn doctor_names_exactly_a_refused_token_a_failing_webhook_and_an_unmapped_state() {
    // GitHub accepts another token than statsync's.
    let (gh, lin) = (
        fakes::github_admin("gh-other-token").await,
        fakes::linear().await,
    );
    {
        let mut s = lin.state.lock().unwrap();
        // The team has turned on a state type its mappings file predates.
        let duplicate =
            json!({"id": "st-dup", "name": "Duplicate", "type": "duplicate", "position": 6.0});
        s.admin
            .teams
            .insert("ENG".into(), full_workflow(&[duplicate]));
        s.admin.linear_hooks.push(json!({
            "id": "wh-eng", "url": format!("{PUBLIC}/webhooks/linear"), "enabled": true,
            "allPublicTeams": false, "resourceTypes": ["Issue", "Attachment"],
            "updatedAt": ago(3000), "team": {"key": "ENG"},
            "failures": [
                {"httpStatus": 401.0, "createdAt": ago(10), "responseOrError": "{\"error\":\"invalid signature\"}"},
                {"httpStatus": 401.0, "createdAt": ago(20), "responseOrError": "{\"error\":\"invalid signature\"}"},
            ]
        }));
    }
    let shipped =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/mappings.toml"))
            .unwrap();
    let older = shipped.replace("\nduplicate = \"cancelled\"\n", "\n");
    assert_ne!(
        older, shipped,
        "the shipped mappings map the duplicate type"
    );
    let file =
        std::env::temp_dir().join(format!("statsync-mappings-{}.toml", uuid::Uuid::new_v4()));
    std::fs::write(&file, older).unwrap();
    let env = setup(
        &gh,
        &lin,
        &[
            ("STATSYNC__MAPPINGS__FILE", file.display().to_string()),
            ("STATSYNC__LINEAR__TEAMS", "ENG".into()),
        ],
    )
    .await;

    let (code, report) = doctor_json(&env).await;
    assert_eq!(code, Some(1), "{report:#}");
    assert_eq!(report["ok"], false);
    let failed = failures(&report);
    let names = names(&failed);
    assert_eq!(
        names,
        vec![
            ("github", "credentials"),
            ("webhooks", "linear team ENG"),
            ("mappings", "team ENG states")
        ],
        "{report:#}"
    );
    assert!(
        failed[0].2.contains("401") && failed[0].2.contains("Bad credentials"),
        "{}",
        failed[0].2
    );
    assert!(
        failed[1].2.contains("2 failed deliveries") && failed[1].2.contains("answered 401"),
        "{}",
        failed[1].2
    );
    assert!(
        failed[2].2.contains("\"Duplicate\" (duplicate)"),
        "{}",
        failed[2].2
    );
    let checks = report["checks"].as_array().unwrap();
    let fix = |name: &str| {
        checks.iter().find(|c| c["name"] == name).unwrap()["fix"]
            .as_str()
            .unwrap_or("")
            .to_owned()
    };
    assert!(
        fix("linear team ENG").contains("secret"),
        "{}",
        fix("linear team ENG")
    );
    assert!(fix("team ENG states").contains("mappings suggest --team ENG"));
    // What did work is said so.
    for (area, name) in [
        ("database", "reachable"),
        ("database", "migrations"),
        ("linear", "credentials"),
        ("linear", "team ENG"),
        ("clock", "Linear"),
    ] {
        let c = checks
            .iter()
            .find(|c| c["area"] == area && c["name"] == name)
            .unwrap_or_else(|| panic!("{area} {name}: {report:#}"));
        assert_eq!(c["level"], "ok", "{c}");
    }

    // For people: the same checklist, each failure with its fix beneath.
    let (code, out, _) = statsync(&["doctor"], &env).await;
    let _ = std::fs::remove_file(&file);
    assert_eq!(code, Some(1));
    assert_eq!(out.matches("FAIL").count(), 3, "{out}");
    assert!(out.contains("3 failed"), "{out}");
    assert!(
        out.contains("fix: statsync mappings suggest --team ENG"),
        "{out}"
    );
}

#[actix_web::test]
async fn webhooks_register_creates_and_mends_what_doctor_found_and_doctor_then_passes() {
    let (gh, lin) = (
        fakes::github_admin(GITHUB_TOKEN).await,
        fakes::linear().await,
    );
    {
        // acme/api already has a hook to statsync, but with another secret: its
        // deliveries since it was last changed were refused.
        let mut s = gh.state.lock().unwrap();
        let url = format!("{PUBLIC}/webhooks/github");
        s.admin.hooks.insert(
            "repos/acme/api".into(),
            vec![hook_json(777, &url, &["issues", "pull_request"], &ago(600))],
        );
        s.admin.deliveries.insert(
            777,
            vec![
                delivery_json(1, "issues", 401, &ago(5)),
                delivery_json(2, "issues", 200, &ago(700)),
            ],
        );
        lin.state
            .lock()
            .unwrap()
            .admin
            .teams
            .insert("ENG".into(), full_workflow(&[]));
    }
    let env = setup(
        &gh,
        &lin,
        &[
            ("STATSYNC__GITHUB__REPOS", "acme/web,acme/api".into()),
            ("STATSYNC__LINEAR__TEAMS", "ENG".into()),
        ],
    )
    .await;

    let (code, report) = doctor_json(&env).await;
    assert_eq!(code, Some(1), "{report:#}");
    let failed = failures(&report);
    let names = names(&failed);
    assert_eq!(
        names,
        vec![
            ("webhooks", "repository acme/web"),
            ("webhooks", "repository acme/api"),
            ("webhooks", "linear team ENG")
        ],
        "{report:#}"
    );
    assert!(failed[1].2.contains("answered 401"), "{}", failed[1].2);

    let (code, out, err) = statsync(&["webhooks", "register", "--dry-run"], &env).await;
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(out.matches("would ").count(), 3, "{out}");
    assert!(
        out.contains("create a GitHub webhook on repository acme/web"),
        "{out}"
    );
    assert!(out.contains("acme/api") && out.contains("401"), "{out}");
    assert!(
        out.contains("create a Linear webhook for team ENG"),
        "{out}"
    );
    let writes = |fake: &Fake| {
        fake.requests()
            .iter()
            .filter(|r| {
                r.method != "GET"
                    && (r.path.contains("/hooks") || r.body.to_string().contains("webhookCreate"))
            })
            .count()
    };
    assert_eq!(writes(&gh) + writes(&lin), 0, "a dry run changes nothing");

    let (code, out, err) = statsync(&["webhooks", "register"], &env).await;
    assert_eq!(code, Some(0), "{out}{err}");
    assert_eq!(out.matches("done: ").count(), 3, "{out}");
    let created: Vec<_> = gh
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST" && r.path == "/repos/acme/web/hooks")
        .collect();
    assert_eq!(created.len(), 1);
    let body = &created[0].body;
    assert_eq!(body["config"]["url"], format!("{PUBLIC}/webhooks/github"));
    assert_eq!(body["config"]["content_type"], "json");
    assert_eq!(body["config"]["secret"], GITHUB_SECRET);
    assert_eq!(body["events"], json!(["issues", "pull_request"]));
    let mended: Vec<_> = gh
        .requests()
        .into_iter()
        .filter(|r| r.method == "PATCH" && r.path == "/repos/acme/api/hooks/777")
        .collect();
    assert_eq!(mended.len(), 1);
    assert_eq!(mended[0].body["config"]["secret"], GITHUB_SECRET);
    let linear_created = lin.requests_for("webhookCreate");
    assert_eq!(linear_created.len(), 1);
    let input = &linear_created[0].body["variables"]["input"];
    assert_eq!(input["teamId"], "ENG");
    assert_eq!(input["url"], format!("{PUBLIC}/webhooks/linear"));
    assert_eq!(input["secret"], LINEAR_SECRET);
    assert_eq!(input["resourceTypes"], json!(["Issue", "Attachment"]));

    let (code, report) = doctor_json(&env).await;
    assert_eq!(code, Some(0), "{report:#}");
    assert!(failures(&report).is_empty(), "{report:#}");

    // Idempotent: nothing left to do, nothing sent.
    let before = writes(&gh) + writes(&lin);
    let (code, out, err) = statsync(&["webhooks", "register"], &env).await;
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.contains("every webhook statsync needs is in place"),
        "{out}"
    );
    assert_eq!(writes(&gh) + writes(&lin), before);
}

#[actix_web::test]
async fn with_app_credentials_doctor_reads_the_app_and_register_points_its_webhook_here() {
    let (private, public) = super::app::key_pair();
    let (gh, lin) = (
        fakes::github_admin("no-personal-token").await,
        fakes::linear().await,
    );
    gh.be_app(&public, super::app::APP_ID);
    let env = setup(
        &gh,
        &lin,
        &[
            ("GITHUB_TOKEN", String::new()),
            ("GITHUB_APP_ID", super::app::APP_ID.into()),
            ("GITHUB_APP_PRIVATE_KEY", private),
            ("STATSYNC__GITHUB__REPOS", "acme/web".into()),
        ],
    )
    .await;

    let (code, report) = doctor_json(&env).await;
    assert_eq!(code, Some(1), "{report:#}");
    let failed = failures(&report);
    assert_eq!(
        names(&failed),
        vec![("webhooks", "the GitHub App")],
        "{report:#}"
    );
    let checks = report["checks"].as_array().unwrap();
    let detail = |name: &str| {
        let c = checks
            .iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("{name}: {report:#}"));
        (
            c["level"].as_str().unwrap().to_owned(),
            c["detail"].as_str().unwrap().to_owned(),
        )
    };
    let (level, credentials) = detail("credentials");
    assert_eq!(level, "ok");
    assert!(
        credentials.contains("statsync-test[bot]") && credentials.contains("Codertocat"),
        "{credentials}"
    );
    assert_eq!(detail("permissions acme/web").0, "ok");
    assert!(
        gh.state.lock().unwrap().jwts_verified > 0,
        "the App's calls carried a JWT the fake verified"
    );

    let (code, out, err) = statsync(&["webhooks", "register"], &env).await;
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(
        out.contains("done: point the GitHub App's webhook at"),
        "{out}"
    );
    let patched: Vec<_> = gh
        .requests()
        .into_iter()
        .filter(|r| r.method == "PATCH" && r.path == "/app/hook/config")
        .collect();
    assert_eq!(patched.len(), 1);
    assert_eq!(patched[0].body["url"], format!("{PUBLIC}/webhooks/github"));
    assert_eq!(patched[0].body["content_type"], "json");
    assert_eq!(patched[0].body["secret"], GITHUB_SECRET);

    let (code, report) = doctor_json(&env).await;
    assert_eq!(code, Some(0), "{report:#}");
}
