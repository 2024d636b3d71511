//! Automatic linking, backfill, reconciliation and the sync control API, against local
//! fakes of GitHub and Linear holding hundreds of issues over several pages, on real
//! PostgreSQL.

#[path = "backfill/cli.rs"]
mod cli;
#[path = "backfill/fakes.rs"]
mod fakes;
#[path = "backfill/linking.rs"]
mod linking;
#[path = "backfill/merges.rs"]
mod merges;
#[path = "backfill/reconcile.rs"]
mod reconcile;
#[path = "backfill/runs.rs"]
mod runs;
mod support;

use std::time::Duration;

use serde_json::Value;
use support::*;

/// The entity linked to `system`/`external_id`, once it exists.
async fn entity(app: &TestApp, system: &str, external_id: &str) -> Value {
    let path = format!(
        "/api/v1/entities?system={system}&external_id={}",
        external_id.replace('#', "%23")
    );
    wait_for(
        &format!("{system}:{external_id} is linked"),
        Duration::from_secs(20),
        || async {
            let r = app.api("GET", &path, None).await;
            (r.status == 200).then_some(r.body)
        },
    )
    .await
}

fn linked_refs(entity: &Value) -> Vec<String> {
    let mut refs: Vec<String> = entity["links"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|l| {
            format!(
                "{}:{}",
                l["system"].as_str().unwrap(),
                l["externalId"].as_str().unwrap()
            )
        })
        .collect();
    refs.sort();
    refs
}
