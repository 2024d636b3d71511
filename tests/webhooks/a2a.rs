//! `POST /webhooks/a2a`: A2A push notifications of both published forms, authenticated
//! the three ways A2A senders present their token; a bad token, a duplicate, bad input,
//! and the endpoint closed while no token is configured.

use super::*;

const TOKEN: &str = "test-a2a-notification-token";
const TASK: &str = "43667960-d455-4453-b0cf-1bae4955270d";

async fn spawn_a2a() -> TestApp {
    spawn_app_with(&[("A2A_NOTIFICATION_TOKEN", TOKEN)]).await
}

/// A notification posted as A2A senders post one, with `headers` as its credential.
async fn notify(app: &TestApp, headers: &[(&str, &str)], body: &Value) -> Answer {
    let mut req = app
        .http
        .post(format!("{}/webhooks/a2a", app.address))
        .header("content-type", "application/a2a+json")
        .body(serde_json::to_vec(body).unwrap());
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let r = req.send().await.expect("request");
    let status = r.status().as_u16();
    let body = r.json().await.unwrap_or(Value::Null);
    Answer {
        status,
        headers: Default::default(),
        body,
    }
}

/// A 1.0 status update (a `StreamResponse`), naming its Linear issue in its metadata.
fn status_update(state: &str, at: chrono::DateTime<chrono::Utc>) -> Value {
    json!({"statusUpdate": {
        "taskId": TASK,
        "contextId": "ctx-1",
        "status": {"state": state, "timestamp": at.to_rfc3339()},
        "metadata": {"statsync.ref": "ENG-123"}
    }})
}

/// The 0.3 form of the same event.
fn legacy_status_update(state: &str, at: chrono::DateTime<chrono::Utc>) -> Value {
    json!({
        "kind": "status-update",
        "taskId": TASK,
        "contextId": "ctx-1",
        "status": {"state": state, "timestamp": at.to_rfc3339()},
        "final": false
    })
}

async fn task_entity(app: &TestApp) -> Value {
    let r = app
        .api(
            "GET",
            &format!("/api/v1/entities?system=a2a&external_id={TASK}"),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body
}

#[actix_web::test]
async fn a2a_notifications_of_both_forms_and_every_credential_form_are_applied() {
    let app = spawn_a2a().await;
    let t0 = chrono::Utc::now() - chrono::TimeDelta::seconds(30);

    let first = status_update("TASK_STATE_SUBMITTED", t0);
    let r = notify(&app, &[("A2A-Notification-Token", TOKEN)], &first).await;
    assert_eq!((r.status, &r.body), (200, &json!({"status": "accepted"})));
    app.drained().await;
    let entity = task_entity(&app).await;
    assert_eq!(entity["status"], "todo");
    assert_eq!(entity["kind"], "task");
    let links = entity["links"].to_string();
    assert!(
        links.contains("\"linear\"") && links.contains("ENG-123"),
        "{links}"
    );

    // The 0.3 form, with the token in the header 0.3 SDKs use.
    let working = legacy_status_update("working", t0 + chrono::TimeDelta::seconds(10));
    let r = notify(&app, &[("X-A2A-Notification-Token", TOKEN)], &working).await;
    assert_eq!(r.status, 200, "{}", r.body);
    app.drained().await;
    assert_eq!(task_entity(&app).await["status"], "in_progress");

    // A Bearer credential (the push config's `authentication`), next to a notification
    // token that is not statsync's: one credential that verifies is enough.
    let blocked = status_update(
        "TASK_STATE_INPUT_REQUIRED",
        t0 + chrono::TimeDelta::seconds(20),
    );
    let bearer = format!("Bearer {TOKEN}");
    let headers = [
        ("X-A2A-Notification-Token", "a per-task token"),
        ("Authorization", bearer.as_str()),
    ];
    let r = notify(&app, &headers, &blocked).await;
    assert_eq!(r.status, 200, "{}", r.body);
    app.drained().await;
    let entity = task_entity(&app).await;
    assert_eq!(entity["status"], "blocked");
    assert_eq!(
        app.count("SELECT count(*) FROM inbound_events WHERE system = 'a2a'")
            .await,
        3
    );
}

#[actix_web::test]
async fn a_bad_or_missing_notification_token_answers_401_and_stores_nothing() {
    let app = spawn_a2a().await;
    let body = status_update("TASK_STATE_WORKING", chrono::Utc::now());
    let cases: [&[(&str, &str)]; 5] = [
        &[],
        &[("A2A-Notification-Token", "not the token")],
        &[("X-A2A-Notification-Token", "")],
        &[("Authorization", "Bearer not-the-token")],
        // Another scheme presents no credential.
        &[("Authorization", "Basic dGVzdDp0ZXN0")],
    ];
    for headers in cases {
        let r = notify(&app, headers, &body).await;
        assert_eq!(r.status, 401, "{headers:?}: {}", r.body);
        assert_eq!(r.body["error"]["code"], "INVALID_SIGNATURE", "{}", r.body);
    }
    let r = notify(&app, &[], &body).await;
    let message = r.body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("A2A-Notification-Token")
            && message.contains("X-A2A-Notification-Token")
            && message.contains("Authorization: Bearer"),
        "{message}"
    );
    assert_eq!(app.count("SELECT count(*) FROM inbound_events").await, 0);
}

#[actix_web::test]
async fn a_repeated_a2a_notification_answers_duplicate_and_is_stored_once() {
    let app = spawn_app_with(&[
        ("A2A_NOTIFICATION_TOKEN", TOKEN),
        ("STATSYNC__SERVER__WORKER_ENABLED", "false"),
    ])
    .await;
    let body = status_update("TASK_STATE_WORKING", chrono::Utc::now());
    let auth = [("A2A-Notification-Token", TOKEN)];
    let r = notify(&app, &auth, &body).await;
    assert_eq!(r.body, json!({"status": "accepted"}));
    let r = notify(&app, &auth, &body).await;
    assert_eq!((r.status, &r.body), (200, &json!({"status": "duplicate"})));
    let id: String = app
        .db()
        .await
        .query_one("SELECT delivery_id FROM inbound_events", &[])
        .await
        .unwrap()
        .get(0);
    assert!(id.starts_with("sha256:"), "{id}");
    // Another status of the same task is another notification.
    let later = status_update(
        "TASK_STATE_COMPLETED",
        chrono::Utc::now() + chrono::TimeDelta::seconds(1),
    );
    assert_eq!(notify(&app, &auth, &later).await.body["status"], "accepted");
    assert_eq!(app.count("SELECT count(*) FROM inbound_events").await, 2);
}

#[actix_web::test]
async fn bad_a2a_notifications_answer_400_naming_the_field_and_others_are_ignored() {
    let app = spawn_a2a().await;
    let auth = [("A2A-Notification-Token", TOKEN)];
    let now = chrono::Utc::now();
    let mut no_task = status_update("TASK_STATE_WORKING", now);
    no_task["statusUpdate"]
        .as_object_mut()
        .unwrap()
        .remove("taskId");
    let bad_ref = json!({"statusUpdate": {"taskId": TASK, "status": {"state": "TASK_STATE_WORKING"},
                                          "metadata": {"statsync.ref": "acme/api"}}});
    let cases = [
        (
            status_update("TASK_STATE_DONE", now),
            "statusUpdate.status.state",
        ),
        (no_task, "statusUpdate.taskId"),
        (bad_ref, "statusUpdate.metadata.statsync.ref"),
        (json!({"kind": "bogus"}), "kind"),
    ];
    for (body, field) in cases {
        let r = notify(&app, &auth, &body).await;
        assert_eq!(r.status, 400, "{body}: {}", r.body);
        let message = r.body["error"]["message"].as_str().unwrap();
        assert!(message.contains(&format!("`{field}`")), "{message}");
    }
    let artifact = json!({"artifactUpdate": {"taskId": TASK, "artifact": {"artifactId": "a"}}});
    let r = notify(&app, &auth, &artifact).await;
    assert_eq!((r.status, &r.body["status"]), (200, &json!("ignored")));
    assert_eq!(app.count("SELECT count(*) FROM inbound_events").await, 0);
}

#[actix_web::test]
async fn without_a_notification_token_the_a2a_endpoint_answers_404_and_is_not_described() {
    let app = spawn_app().await;
    let body = status_update("TASK_STATE_WORKING", chrono::Utc::now());
    let r = notify(&app, &[("A2A-Notification-Token", TOKEN)], &body).await;
    assert_eq!(r.status, 404, "{}", r.body);
    // Nor is it described.
    let doc = app.get("/api/v1/openapi.json").await.body;
    assert!(doc["paths"]["/webhooks/a2a"].is_null());
    assert!(doc["paths"]["/webhooks/github"].is_object());
}

#[actix_web::test]
async fn the_a2a_door_is_described_with_every_credential_header_it_reads() {
    let app = spawn_a2a().await;
    let doc = app.get("/api/v1/openapi.json").await.body;
    let door = &doc["paths"]["/webhooks/a2a"]["post"];
    let names: Vec<&str> = door["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    for header in [
        "A2A-Notification-Token",
        "X-A2A-Notification-Token",
        "Authorization",
        "X-Statsync-Delivery",
    ] {
        assert!(names.contains(&header), "{names:?}");
    }
    let content = &door["requestBody"]["content"];
    assert!(content["application/a2a+json"].is_object(), "{content}");
    assert!(content["application/json"].is_object(), "{content}");
}
