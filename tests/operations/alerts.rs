//! Alerts: one fires on a tiny threshold, survives a restart, resolves, and both events
//! reach WebSocket subscribers; two replicas evaluating never log an alert twice.

use super::*;

/// Alerts evaluated every 100 ms, firing at one outbound write waiting; no dispatcher,
/// so the writes wait until the test says otherwise.
const ALERTING: [(&str, &str); 3] = [
    ("STATSYNC__SERVER__WORKER_ENABLED", "false"),
    ("STATSYNC__ALERTS__EVALUATION_INTERVAL_MS", "100"),
    ("STATSYNC__ALERTS__OUTBOX_DEPTH", "1"),
];

async fn active(app: &TestApp) -> Vec<Value> {
    let r = app.get("/alerts").await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body["alerts"].as_array().expect("alerts").clone()
}

#[actix_web::test]
async fn an_alert_fires_survives_a_restart_resolves_and_both_events_reach_subscribers() {
    let a = spawn_app_with(&ALERTING).await;
    assert!(active(&a).await.is_empty());
    let mut conn = subscribed(&a, &["alerts"]).await;

    // A change to an entity linked in Linear and GitHub: two outbound writes wait.
    let entity = a
        .link_new(json!({"status": "in_progress", "refs": [
            {"system": "linear", "externalId": "6a0c1f6e-42aa-4b1e-9c1d-2f3e4d5c6b7a"},
            {"system": "github", "externalId": "acme/ops#42"}
        ]}))
        .await;
    let id = entity["id"].as_str().unwrap().to_owned();
    a.set_status(json!({"entityId": id, "status": "in_review"}))
        .await;

    let fired = next_event(&mut conn, "alert_fired").await;
    assert_eq!(fired["data"]["alert"], "outbox_depth_high", "{fired}");
    assert_eq!(fired["data"]["severity"], "warning");
    assert_eq!(fired["data"]["threshold"], 1.0);
    assert!(fired["data"]["value"].as_f64().unwrap() >= 1.0, "{fired}");
    assert_eq!(fired["rooms"], json!(["all", "alerts"]));
    let listed = active(&a).await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    let alert = &listed[0];
    assert_eq!(alert["name"], "outbox_depth_high");
    assert_eq!(alert["since"], fired["data"]["since"]);
    for key in ["severity", "value", "threshold", "message"] {
        assert!(!alert[key].is_null(), "{key} in {alert}");
    }
    let metrics = a.get("/metrics").await.body;
    let firing = r#"statsync_alerts_firing{alert="outbox_depth_high",severity="warning"} 1"#;
    assert!(metrics.as_str().unwrap().contains(firing), "{metrics}");

    // A restart keeps what fires, and since when.
    a.stop().await;
    let b = spawn_app_on(&a.database_url, &ALERTING).await;
    let kept = active(&b).await;
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert_eq!(kept[0]["name"], "outbox_depth_high");
    assert_eq!(kept[0]["since"], alert["since"]);

    // A second replica evaluates too; the writes go out (as a dispatcher would).
    let c = spawn_app_on(&a.database_url, &ALERTING).await;
    let mut on_b = subscribed(&b, &["alerts"]).await;
    let mut on_c = subscribed(&c, &["alerts"]).await;
    b.db()
        .await
        .execute(
            "UPDATE sync_outbox SET state = 'done', completed_at = now(), updated_at = now()",
            &[],
        )
        .await
        .unwrap();
    for conn in [&mut on_b, &mut on_c] {
        let resolved = next_event(conn, "alert_resolved").await;
        assert_eq!(resolved["data"]["alert"], "outbox_depth_high", "{resolved}");
        assert_eq!(resolved["data"]["value"], 0.0);
        assert_eq!(resolved["data"]["since"], alert["since"]);
    }
    assert!(active(&b).await.is_empty());
    assert!(active(&c).await.is_empty());

    // Fired once and resolved once, whichever replica evaluated.
    let logged = b
        .db()
        .await
        .query(
            "SELECT type, count(*) FROM events WHERE data->>'alert' = 'outbox_depth_high'
             GROUP BY type ORDER BY type",
            &[],
        )
        .await
        .unwrap();
    let logged: Vec<(String, i64)> = logged.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(
        logged,
        vec![("alert_fired".into(), 1), ("alert_resolved".into(), 1)]
    );
}
