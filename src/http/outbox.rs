//! `/api/v1/sync/outbox`: the outbound queue for operators (bearer token). Reads counts
//! and dead letters; requeues a dead letter. Never deletes a row.

use actix_web::{web, HttpResponse};
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::auth::Authenticated;
use super::errors::ApiError;
use super::query::Query;
use super::AppState;
use crate::store::outbox::{self, DeadLetter, Requeue, StateCount};
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

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SummaryQuery {
    /// Dead letters listed, 1 to 1000 (default 100).
    limit: Option<i64>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OutboxView {
    /// system → state → rows
    by_system: BTreeMap<String, BTreeMap<String, i64>>,
    counts: Vec<StateCount>,
    oldest_pending_age_seconds: Option<f64>,
    dead_letters: Vec<DeadLetter>,
}

#[utoipa::path(get, path = "/api/v1/sync/outbox", tag = "sync", params(SummaryQuery),
    responses((status = 200, body = OutboxView)))]
pub async fn outbox_summary(
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
    let mut by_system: BTreeMap<String, BTreeMap<String, i64>> = BTreeMap::new();
    for c in &summary.counts {
        by_system
            .entry(c.system.clone())
            .or_default()
            .insert(c.state.clone(), c.count);
    }
    Ok(HttpResponse::Ok().json(OutboxView {
        by_system,
        counts: summary.counts,
        oldest_pending_age_seconds: summary.oldest_pending_age_seconds,
        dead_letters: dead,
    }))
}

/// A row made pending again.
#[derive(Serialize, ToSchema)]
pub struct Requeued {
    pub id: i64,
    /// `pending`
    pub state: String,
}

#[utoipa::path(post, path = "/api/v1/sync/outbox/{id}/retry", tag = "sync",
    params(("id" = i64, Path, description = "the dead letter's id")),
    responses((status = 202, description = "requeued", body = Requeued)))]
pub async fn retry_dead_letter(
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
        Requeue::Requeued => Ok(HttpResponse::Accepted().json(Requeued {
            id,
            state: "pending".to_owned(),
        })),
        Requeue::NotFound => Err(ApiError::NotFound(format!("no outbox row {id}"))),
        Requeue::NotDead => Err(ApiError::Conflict(format!(
            "outbox row {id} is not a dead letter; only dead letters are retried"
        ))),
    }
}
