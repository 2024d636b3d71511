//! `/health` (the process serves) and `/ready` (the database answers and the schema is
//! current).

use actix_web::{web, HttpResponse};
use serde_json::json;

use super::AppState;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/health", web::get().to(health))
        .route("/ready", web::get().to(ready));
}

async fn health() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

async fn ready(state: web::Data<AppState>) -> HttpResponse {
    match state.store.ready().await {
        Ok(true) => HttpResponse::Ok().json(json!({ "status": "ready" })),
        Ok(false) => HttpResponse::ServiceUnavailable()
            .json(json!({ "status": "not_ready", "reason": "migrations not applied" })),
        Err(e) => HttpResponse::ServiceUnavailable()
            .json(json!({ "status": "not_ready", "reason": e.to_string() })),
    }
}
