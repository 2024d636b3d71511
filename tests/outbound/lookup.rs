//! Reading a project item's Status back through GitHub GraphQL (the read a
//! `projects_v2_item.edited` delivery without its new value needs).

use super::*;
use statsync::systems::github::client::{Auth, GithubClient, ItemStatus};
use statsync::systems::limiter::Budget;
use statsync::systems::outbound::ErrorCode;

const ITEM: &str = "PVTI_lADOAWcTxs07G84AVqWu";

fn client(gh: &Fake) -> GithubClient {
    GithubClient::new(
        reqwest::Client::new(),
        &gh.url,
        &format!("{}/graphql", gh.url),
        Auth::Token(secrecy::SecretString::from(GITHUB_TOKEN.to_owned())),
        Budget::new(100),
    )
}

#[actix_web::test]
async fn an_items_status_is_read_back_by_name_and_option_id() {
    let gh = fakes::github().await;
    let github = client(&gh);
    assert_eq!(
        github.item_status(ITEM).await.unwrap().status,
        None,
        "nothing set yet"
    );
    gh.state
        .lock()
        .unwrap()
        .objects
        .insert(ITEM.into(), ("opt-in-review".into(), None));
    assert_eq!(
        github.item_status(ITEM).await.unwrap().status,
        Some(ItemStatus {
            name: "In Review".into(),
            option_id: "opt-in-review".into()
        })
    );
    let read = gh.requests().pop().unwrap();
    assert_eq!(read.path, "/graphql");
    assert_eq!(read.body["variables"], json!({ "item": ITEM }));
    assert!(read.body["query"]
        .as_str()
        .unwrap()
        .contains("fieldValueByName(name: \"Status\")"));
    assert_eq!(
        read.headers["authorization"],
        format!("Bearer {GITHUB_TOKEN}")
    );
}

#[actix_web::test]
async fn a_missing_item_and_graphql_errors_are_classified() {
    let gh = fakes::github().await;
    let github = client(&gh);
    let missing = github.item_status("I_kwDOA").await.unwrap_err();
    assert_eq!(missing.code, ErrorCode::NotFound, "{missing}");
    gh.script(
        ITEM,
        vec![Reply::status(
            200,
            json!({"data": null, "errors": [{"type": "RATE_LIMITED", "message": "API rate limit exceeded"}]}),
        )],
    );
    let limited = github.item_status(ITEM).await.unwrap_err();
    assert_eq!(limited.code, ErrorCode::RateLimit, "{limited}");
    assert!(limited.retry_after.is_some(), "{limited:?}");
}
