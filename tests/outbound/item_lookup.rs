//! A `projects_v2_item.edited` delivery that names only the Status field: the engine
//! records a no-op and a lookup; the dispatcher reads the item's Status through GitHub
//! GraphQL (outside any transaction, on GitHub's budget) and stores the value as a new
//! update that keeps the delivery's source timestamp; the engine applies it. Two edits
//! waiting together need one read; an item deleted meanwhile ends its lookup as `gone`.

use super::*;
use chrono::{DateTime, SecondsFormat};
use fakes::github_node_not_found;

const ITEM: &str = "PVTI_lADOAWcTxs07G84AVqWu";

/// The shared fixture, about `item`, stamped `at`: it names the field, not its value.
fn item_edit(item: &str, at: DateTime<Utc>) -> Vec<u8> {
    let mut v: Value = serde_json::from_slice(&fixture("github/projects_v2_item.edited.json"))
        .expect("fixture is JSON");
    assert!(
        v["changes"]["field_value"].get("to").is_none(),
        "the fixture must name only the field"
    );
    v["projects_v2_item"]["node_id"] = json!(item);
    v["projects_v2_item"]["updated_at"] = json!(at.to_rfc3339_opts(SecondsFormat::Secs, true));
    serde_json::to_vec(&v).unwrap()
}

/// The fake GitHub and an app on it (and a fake Linear), with a short conflict window:
/// these tests are about lookups, not conflicts.
async fn board_app() -> (Fake, TestApp) {
    let (gh, lin) = (fakes::github().await, fakes::linear().await);
    let short_window = [("STATSYNC__SYNC__CONFLICT_WINDOW_MS", "1".to_owned())];
    let app = spawn_outbound(&gh, &lin, &short_window).await;
    (gh, app)
}

/// A person sets the card's Status on the board (an option id of the fake's board).
fn move_card(gh: &Fake, item: &str, option: &str) {
    let mut state = gh.state.lock().unwrap();
    state.objects.insert(item.into(), (option.into(), None));
}

/// An entity linked to board item `item` at `todo`, written to the board.
async fn entity_on_board(app: &TestApp, item: &str) -> String {
    let body = json!({"refs": [{"system": "github", "externalId": item}], "status": "todo"});
    let (code, created) = call(&app.address, "POST", "/api/v1/links", body).await;
    assert_eq!(code, 201, "{created}");
    row_reaches(app, item, "done").await;
    created["id"].as_str().unwrap().to_owned()
}

fn status_reads(gh: &Fake, item: &str) -> Vec<fakes::Recorded> {
    gh.requests_for(item)
        .into_iter()
        .filter(|r| {
            let query = r.body["query"].as_str().unwrap_or("");
            query.contains("fieldValueByName")
        })
        .collect()
}

/// (state, attempts, error code, outcome, fed event id) of every lookup of `item`.
type LookupState = (String, i32, Option<String>, Option<String>, Option<i64>);

async fn lookups(app: &TestApp, item: &str) -> Vec<LookupState> {
    app.db()
        .await
        .query(
            "SELECT state, attempt_count, error_code, outcome, fed_event_id
             FROM github_item_lookups WHERE item_id = $1 ORDER BY id",
            &[&item],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4)))
        .collect()
}

async fn entity_reaches(app: &TestApp, id: &str, status: &str) {
    wait_for(
        &format!("entity {id} becomes {status}"),
        Duration::from_secs(20),
        || async {
            let r = app
                .api("GET", &format!("/api/v1/entities/{id}"), None)
                .await;
            (r.body["status"] == status).then_some(())
        },
    )
    .await;
}

#[actix_web::test]
async fn a_status_edit_naming_only_the_field_is_read_back_and_applied() {
    let (gh, app) = board_app().await;
    let id = entity_on_board(&app, ITEM).await;
    assert_eq!(gh.object(ITEM).unwrap().0, "opt-todo");
    // Someone moves the card to In Review; GitHub's delivery only names the field.
    move_card(&gh, ITEM, "opt-in-review");
    let edited_at = Utc::now() + TimeDelta::seconds(2);
    let r = app
        .github("projects_v2_item", "gh-item-1", &item_edit(ITEM, edited_at))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);

    entity_reaches(&app, &id, "in_review").await;
    let h = history(&app, &id).await;
    assert_eq!(
        (&h[0]["decision"], &h[0]["toStatus"]),
        (&json!("applied"), &json!("in_review")),
        "{h:?}"
    );
    let reason = h[0]["reason"].as_str().unwrap();
    assert!(
        reason.contains("read back from GitHub by lookup") && reason.contains("gh-item-1"),
        "{reason}"
    );
    // The read-back keeps the delivery's own source timestamp.
    let stamped: DateTime<Utc> = serde_json::from_value(h[0]["sourceTimestamp"].clone()).unwrap();
    assert_eq!(stamped.timestamp(), edited_at.timestamp());
    assert_eq!(h[1]["decision"], "noop");
    assert!(
        h[1]["reason"].as_str().unwrap().contains("needs a lookup"),
        "{h:?}"
    );

    let done = lookups(&app, ITEM).await;
    assert_eq!(done.len(), 1, "{done:?}");
    let (state, attempts, _, outcome, fed) = &done[0];
    assert_eq!((state.as_str(), *attempts), ("done", 1));
    assert!(
        outcome.as_deref().unwrap().contains("In Review"),
        "{done:?}"
    );
    let fed_type: String = app
        .db()
        .await
        .query_one(
            "SELECT event_type FROM inbound_events WHERE id = $1",
            &[&fed.unwrap()],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(fed_type, "projects_v2_item.status_read");
    assert_eq!(Some(fed.unwrap()), h[0]["inboundEventId"].as_i64());

    // One authenticated read with GitHub's headers; nothing written back to the board.
    let reads = status_reads(&gh, ITEM);
    assert_eq!(reads.len(), 1);
    assert_eq!(reads[0].body["variables"], json!({ "item": ITEM }));
    assert_eq!(
        reads[0].headers["authorization"],
        format!("Bearer {GITHUB_TOKEN}")
    );
    assert_eq!(reads[0].headers["x-github-api-version"], "2022-11-28");
    assert!(reads[0].headers["user-agent"].starts_with("statsync/"));
    app.drained().await;
    let writes = gh.requests_for("updateProjectV2ItemFieldValue").len();
    assert_eq!(writes, 1, "only the first todo was written");
}

#[actix_web::test]
async fn two_edits_waiting_out_a_rate_limit_need_one_read() {
    let (gh, app) = board_app().await;
    let id = entity_on_board(&app, ITEM).await;
    move_card(&gh, ITEM, "opt-blocked");
    // A secondary limit on another write pauses every GitHub call, lookups included.
    let limited = "acme/api#1";
    gh.script(
        limited,
        vec![
            github_error(403, "You have exceeded a secondary rate limit.")
                .with_header("retry-after", "4"),
        ],
    );
    entity_on_github(&app.address, limited, "in_progress").await;
    wait_for(
        "GitHub is rate limited",
        Duration::from_secs(10),
        || async {
            let rows = outbox_rows(&app, limited).await;
            rows.last()
                .filter(|r| r.2.as_deref() == Some("RATE_LIMIT"))
                .cloned()
        },
    )
    .await;
    let paused_at = gh.requests_for("/issues/1")[0].at;
    let at = Utc::now() + TimeDelta::seconds(2);
    for (n, delivery) in ["gh-edit-1", "gh-edit-2"].into_iter().enumerate() {
        let body = item_edit(ITEM, at + TimeDelta::seconds(n as i64));
        assert_eq!(
            app.github("projects_v2_item", delivery, &body).await.status,
            200
        );
    }

    entity_reaches(&app, &id, "blocked").await;
    let reads = status_reads(&gh, ITEM);
    assert_eq!(reads.len(), 1, "two waiting edits, one read");
    let waited = reads[0].at - paused_at;
    assert!(
        waited >= Duration::from_millis(3900),
        "read {waited:?} after the limit"
    );
    let states: Vec<String> = lookups(&app, ITEM).await.into_iter().map(|l| l.0).collect();
    assert_eq!(states, ["superseded", "done"]);
}

#[actix_web::test]
async fn an_item_deleted_before_its_lookup_ends_it_with_the_reason() {
    let (gh, app) = board_app().await;
    let item = "PVTI_lADOAWcTxs07G84AGone";
    let id = entity_on_board(&app, item).await;
    gh.always(item, Some(github_node_not_found(item)));
    let body = item_edit(item, Utc::now() + TimeDelta::seconds(2));
    assert_eq!(
        app.github("projects_v2_item", "gh-gone", &body)
            .await
            .status,
        200
    );

    let ended = wait_for("the lookup ends", Duration::from_secs(20), || async {
        lookups(&app, item)
            .await
            .pop()
            .filter(|l| l.0 != "pending" && l.0 != "in_flight")
    })
    .await;
    let (state, attempts, code, outcome, fed) = ended;
    assert_eq!(
        (state.as_str(), attempts, code.as_deref(), fed),
        ("gone", 1, Some("NOT_FOUND"), None)
    );
    let outcome = outcome.unwrap();
    assert!(
        outcome.contains("no longer exists") && outcome.contains(item),
        "{outcome}"
    );
    assert_eq!(status_reads(&gh, item).len(), 1, "never retried");
    let read_backs =
        "SELECT count(*) FROM inbound_events WHERE event_type = 'projects_v2_item.status_read'";
    assert_eq!(app.count(read_backs).await, 0);
    let e = app
        .api("GET", &format!("/api/v1/entities/{id}"), None)
        .await;
    assert_eq!(e.body["status"], "todo");
}
