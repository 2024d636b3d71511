//! `GET /metrics`: the Prometheus text exposition of every `statsync_` metric, and
//! `GET /alerts`: the SyncMonitor's active alerts. Both answer without a token, like
//! `/health`; neither says anything secret.

use actix_web::{web, HttpResponse};
use serde_json::json;

use super::errors::ApiError;
use super::AppState;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/metrics", web::get().to(metrics))
        .route("/alerts", web::get().to(alerts));
}

async fn metrics(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(state.sync.scrape().await?))
}

async fn alerts(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let active = state.sync.alerts().await?;
    Ok(HttpResponse::Ok().json(json!({ "alerts": active })))
}
