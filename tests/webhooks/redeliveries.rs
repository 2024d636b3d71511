//! Redeliveries racing each other: the same delivery ids arriving at once, from many
//! senders, in different orders, are each stored once and every copy is answered 200.

use std::collections::HashMap;

use futures_util::StreamExt;
use rand::seq::SliceRandom;

use super::*;

/// Each round sends fresh ids, so every round races on first inserts (a stored id is a
/// plain duplicate that waits for no one).
const ROUNDS: usize = 25;
const IDS_PER_ROUND: usize = 24;
const COPIES: usize = 8;

#[actix_web::test]
async fn concurrent_redeliveries_of_the_same_ids_are_each_accepted_once_and_never_refused() {
    // Deliveries only: the race is at the door. Many writers, so many groups insert at
    // the same moment.
    let app = spawn_app_with(&[
        ("STATSYNC__SERVER__WORKER_ENABLED", "false"),
        ("STATSYNC__ENGINE__INTAKE_WRITERS", "8"),
        ("STATSYNC__HTTP__WORKERS", "4"),
    ])
    .await;
    let mut accepted: HashMap<String, usize> = HashMap::new();
    for round in 0..ROUNDS {
        let mut sends: Vec<String> = (0..IDS_PER_ROUND)
            .flat_map(|n| vec![format!("race-{round}-{n}"); COPIES])
            .collect();
        // Different orders in concurrent groups are what made two inserts wait on each
        // other.
        sends.shuffle(&mut rand::thread_rng());
        let answers: Vec<(String, u16, Value)> = futures_util::stream::iter(sends)
            .map(|id| {
                let app = &app;
                async move {
                    let body = serde_json::to_vec(&json!({
                        "taskId": format!("task-{id}"),
                        "state": "working",
                        "timestamp": "2026-11-23T09:00:00Z",
                    }))
                    .unwrap();
                    let r = app.agent(Some(&id), &body).await;
                    (id, r.status, r.body)
                }
            })
            .buffer_unordered(IDS_PER_ROUND * COPIES)
            .collect()
            .await;
        for (id, status, body) in answers {
            assert_eq!(status, 200, "delivery {id} answered {status}: {body}");
            match body["status"].as_str() {
                Some("accepted") => *accepted.entry(id).or_default() += 1,
                Some("duplicate") => {}
                other => panic!("delivery {id} answered {other:?}: {body}"),
            }
        }
    }
    for round in 0..ROUNDS {
        for n in 0..IDS_PER_ROUND {
            let id = format!("race-{round}-{n}");
            assert_eq!(accepted.get(&id), Some(&1), "{id} accepted exactly once");
        }
    }
    assert_eq!(
        app.count("SELECT count(*) FROM inbound_events").await,
        (ROUNDS * IDS_PER_ROUND) as i64
    );
}
