//! GitHub App authentication: writes carry an installation token obtained with a JWT
//! the fake GitHub verified with the App's public key; a refused token is replaced once;
//! the App's bot is statsync's identity; a JWT signed with another key or expired is
//! refused.

use std::process::Command;

use super::*;

pub(super) const APP_ID: &str = "12345";

/// A fresh RSA key pair (private PKCS#1 as GitHub issues it, public PEM), by openssl.
pub(super) fn key_pair() -> (String, String) {
    let dir = std::env::temp_dir().join(format!("statsync-app-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let private = dir.join("app.pem");
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .output()
            .expect("openssl");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    };
    run(&[
        "genrsa",
        "-traditional",
        "-out",
        private.to_str().unwrap(),
        "2048",
    ]);
    let public = run(&["rsa", "-in", private.to_str().unwrap(), "-pubout"]);
    let private = std::fs::read_to_string(&private).unwrap();
    let _ = std::fs::remove_dir_all(dir);
    (private, String::from_utf8(public).unwrap())
}

/// An app whose GitHub credentials are the App's (no personal token).
async fn app_with_app_key(gh: &Fake, lin: &Fake, private: &str) -> TestApp {
    spawn_outbound(
        gh,
        lin,
        &[
            ("GITHUB_TOKEN", String::new()),
            ("GITHUB_APP_ID", APP_ID.into()),
            ("GITHUB_APP_PRIVATE_KEY", private.into()),
            ("STATSYNC__SYNC__CONFLICT_WINDOW_MS", "0".into()),
        ],
    )
    .await
}

async fn linked(app: &TestApp) -> String {
    let refs = json!({"refs": [
        {"system": "linear", "externalId": LINEAR_ID},
        {"system": "github", "externalId": GITHUB_ISSUE}
    ]});
    let r = app.api("POST", "/api/v1/links", Some(refs)).await;
    assert_eq!(r.status, 201, "{}", r.body);
    r.body["id"].as_str().unwrap().to_owned()
}

fn bearer(r: &fakes::Recorded) -> String {
    r.headers["authorization"].clone()
}

#[actix_web::test]
async fn a_write_with_app_credentials_carries_an_installation_token_from_a_verified_jwt() {
    let (private, public) = key_pair();
    let (gh, lin) = (fakes::github().await, fakes::linear().await);
    gh.be_app(&public, APP_ID);
    let app = app_with_app_key(&gh, &lin, &private).await;
    let id = linked(&app).await;

    let done = linear_issue_update(LINEAR_ID, "ENG-123", "Done", "completed", Utc::now());
    assert_eq!(app.linear("l-done", &done).await.status, 200);
    row_reaches(&app, GITHUB_ISSUE, "done").await;
    let patch = &gh.requests_for("/issues/1")[0];
    assert_eq!(bearer(patch), "Bearer ghs_test1");
    let asked: Vec<String> = gh
        .requests()
        .iter()
        .filter(|r| r.path.starts_with("/app") || r.path.ends_with("/installation"))
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert!(asked.contains(&"GET /app".to_owned()), "{asked:?}");
    assert!(
        asked.contains(&"GET /repos/Codertocat/Hello-World/installation".to_owned()),
        "{asked:?}"
    );
    assert!(
        asked.contains(&"POST /app/installations/42/access_tokens".to_owned()),
        "{asked:?}"
    );
    assert!(gh.state.lock().unwrap().jwts_verified >= 3);

    // The App's bot is statsync: its delivery about the issue is an echo whatever it says.
    let own = github_fixture_at(
        "issues.reopened.json",
        Utc::now() + TimeDelta::seconds(5),
        |v| {
            v["sender"]["login"] = json!("statsync-test[bot]");
            v["sender"]["type"] = json!("Bot");
        },
    );
    assert_eq!(app.github("issues", "g-own", &own).await.status, 200);
    app.drained().await;
    let h = history(&app, &id).await;
    let reason = h[0]["reason"].as_str().unwrap();
    assert!(reason.contains("made by statsync-test[bot]"), "{reason}");

    // The token is revoked: the next write is refused once, a new token is obtained
    // with a new JWT, and the write goes through.
    gh.revoke_tokens();
    let doing = linear_issue_update(
        LINEAR_ID,
        "ENG-123",
        "In Progress",
        "started",
        Utc::now() + TimeDelta::seconds(10),
    );
    assert_eq!(app.linear("l-doing", &doing).await.status, 200);
    wait_for(
        "the reopen reaches GitHub",
        Duration::from_secs(20),
        || async {
            let patches = gh.requests_for("/issues/1");
            (patches.len() == 3).then_some(patches)
        },
    )
    .await;
    let patches = gh.requests_for("/issues/1");
    assert_eq!(bearer(&patches[1]), "Bearer ghs_test1", "refused once");
    assert_eq!(bearer(&patches[2]), "Bearer ghs_test2", "with a new token");
    row_reaches(&app, GITHUB_ISSUE, "done").await;
}

#[actix_web::test]
async fn a_jwt_signed_with_another_key_or_expired_is_refused() {
    let (_, public) = key_pair();
    let (other, _) = key_pair();
    let (gh, lin) = (fakes::github().await, fakes::linear().await);
    gh.be_app(&public, APP_ID);
    let app = app_with_app_key(&gh, &lin, &other).await;
    linked(&app).await;
    let done = linear_issue_update(LINEAR_ID, "ENG-123", "Done", "completed", Utc::now());
    assert_eq!(app.linear("l-done", &done).await.status, 200);
    let (_, _, code) = row_reaches(&app, GITHUB_ISSUE, "dead").await;
    assert_eq!(code.as_deref(), Some("UNAUTHORIZED"));
    assert!(gh.requests_for("/issues/1").is_empty(), "nothing written");
    assert_eq!(gh.state.lock().unwrap().jwts_verified, 0);

    // Signed with the right key but expired: refused too.
    let (private, public) = key_pair();
    gh.be_app(&public, APP_ID);
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(private.as_bytes()).unwrap();
    let old = Utc::now() - TimeDelta::minutes(20);
    let claims = json!({"iat": old.timestamp(), "exp": (old + TimeDelta::minutes(9)).timestamp(), "iss": APP_ID});
    let jwt = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256),
        &claims,
        &key,
    )
    .unwrap();
    let r = reqwest::Client::new()
        .get(format!("{}/app", gh.url))
        .bearer_auth(jwt)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
}
