//! `/api/v1/deliveries`: accepted deliveries that could not be applied, for operators
//! (bearer token), and requeueing one once its cause is fixed. Never deletes a row.

use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use super::auth::Authenticated;
use super::errors::ApiError;
use super::outbox::store_error;
use super::query::Query;
use super::AppState;
use crate::store::inbound::admin::{self, Requeue};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/v1/deliveries", web::get().to(list_deliveries))
        .route(
            "/api/v1/deliveries/{id}/retry",
            web::post().to(retry_delivery),
        );
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    state: String,
    limit: Option<i64>,
}

async fn list_deliveries(
    _: Authenticated,
    state: web::Data<AppState>,
    q: Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    if q.state != "failed" {
        return Err(ApiError::Malformed(format!(
            "`state` must be `failed` (the deliveries that need a person), not `{}`",
            q.state
        )));
    }
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let client = state.store.client().await.map_err(store_error)?;
    let failed = admin::failed(&client, limit).await.map_err(store_error)?;
    let total = admin::count_failed(&client).await.map_err(store_error)?;
    Ok(HttpResponse::Ok().json(json!({ "deliveries": failed, "total": total })))
}

async fn retry_delivery(
    _: Authenticated,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id: i64 = id
        .parse()
        .map_err(|_| ApiError::NotFound(format!("no delivery `{id}`")))?;
    let client = state.store.client().await.map_err(store_error)?;
    match admin::requeue_failed(&client, id)
        .await
        .map_err(store_error)?
    {
        Requeue::Requeued => {
            state.sync.requeued(1);
            Ok(HttpResponse::Accepted().json(json!({ "id": id, "state": "pending" })))
        }
        Requeue::NotFound => Err(ApiError::NotFound(format!("no delivery {id}"))),
        Requeue::NotFailed => Err(ApiError::Conflict(format!(
            "delivery {id} has not failed; only failed deliveries are retried"
        ))),
    }
}
