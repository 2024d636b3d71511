//! `GET /metrics`: the Prometheus text exposition of every `statsync_` metric.

use actix_web::{web, HttpResponse};

use super::AppState;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/metrics", web::get().to(metrics));
}

async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(state.sync.metrics().render())
}
