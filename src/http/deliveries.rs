//! `/api/v1/deliveries`: accepted deliveries that could not be applied, for operators
//! (bearer token), and requeueing one once its cause is fixed. Never deletes a row.

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::auth::Authenticated;
use super::errors::ApiError;
use super::outbox::{store_error, Requeued};
use super::query::Query;
use super::AppState;
use crate::store::inbound::admin::{self, FailedDelivery, Requeue};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/v1/deliveries", web::get().to(list_deliveries))
        .route(
            "/api/v1/deliveries/{id}/retry",
            web::post().to(retry_delivery),
        );
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// `failed`: the deliveries that need a person.
    #[param(pattern = "^failed$")]
    state: String,
    /// 1 to 1000 (default 100).
    limit: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct FailedDeliveries {
    deliveries: Vec<FailedDelivery>,
    total: i64,
}

#[utoipa::path(get, path = "/api/v1/deliveries", tag = "deliveries", params(ListQuery),
    responses((status = 200, body = FailedDeliveries)))]
pub async fn list_deliveries(
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
    Ok(HttpResponse::Ok().json(FailedDeliveries {
        deliveries: failed,
        total,
    }))
}

#[utoipa::path(post, path = "/api/v1/deliveries/{id}/retry", tag = "deliveries",
    params(("id" = i64, Path, description = "the failed delivery's id")),
    responses((status = 202, description = "pending again", body = Requeued)))]
pub async fn retry_delivery(
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
            Ok(HttpResponse::Accepted().json(Requeued {
                id,
                state: "pending".to_owned(),
            }))
        }
        Requeue::NotFound => Err(ApiError::NotFound(format!("no delivery {id}"))),
        Requeue::NotFailed => Err(ApiError::Conflict(format!(
            "delivery {id} has not failed; only failed deliveries are retried"
        ))),
    }
}
