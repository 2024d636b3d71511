//! `/api/v1/sync/outbox`: the outbound queue for operators (bearer token). Reads counts
//! and dead letters; requeues a dead letter. Never deletes a row.

use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use super::auth::Authenticated;
use super::errors::ApiError;
use super::query::Query;
use super::AppState;
use crate::store::outbox::{self, Requeue};
use crate::store::StoreError;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/v1/sync/outbox", web::get().to(outbox_summary))
        .route(
            "/api/v1/sync/outbox/{id}/retry",
            web::post().to(retry_dead_letter),
        );
}

pub(super) fn store_error(e: StoreError) -> ApiError {
    if e.is_transient() {
        ApiError::Unavailable {
            message: e.to_string(),
            retry_after_s: 1,
        }
    } else {
        ApiError::Unexpected(e.into())
    }
}

#[derive(Deserialize)]
struct SummaryQuery {
    limit: Option<i64>,
}

async fn outbox_summary(
    _: Authenticated,
    state: web::Data<AppState>,
    q: Query<SummaryQuery>,
) -> Result<HttpResponse, ApiError> {
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let client = state.store.client().await.map_err(store_error)?;
    let summary = outbox::summary(&client).await.map_err(store_error)?;
    let dead = outbox::dead_letters(&client, limit)
        .await
        .map_err(store_error)?;
    let mut by_system = serde_json::Map::new();
    for c in &summary.counts {
        let entry = by_system
            .entry(c.system.clone())
            .or_insert_with(|| json!({}));
        entry[&c.state] = json!(c.count);
    }
    Ok(HttpResponse::Ok().json(json!({
        "bySystem": by_system,
        "counts": summary.counts,
        "oldestPendingAgeSeconds": summary.oldest_pending_age_seconds,
        "deadLetters": dead,
    })))
}

async fn retry_dead_letter(
    _: Authenticated,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id: i64 = id
        .parse()
        .map_err(|_| ApiError::NotFound(format!("no outbox row `{id}`")))?;
    let client = state.store.client().await.map_err(store_error)?;
    match outbox::requeue_dead(&client, id)
        .await
        .map_err(store_error)?
    {
        // The dispatcher's poll picks it up (on whichever worker replica looks first).
        Requeue::Requeued => Ok(HttpResponse::Accepted().json(json!({
            "id": id,
            "state": "pending",
        }))),
        Requeue::NotFound => Err(ApiError::NotFound(format!("no outbox row {id}"))),
        Requeue::NotDead => Err(ApiError::Conflict(format!(
            "outbox row {id} is not a dead letter; only dead letters are retried"
        ))),
    }
}
