//! `GET /api/v1/board`: the live page's first load (bearer token): the most recently
//! changed entities with what each linked system shows, and the seq to subscribe from.

use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use super::auth::Authenticated;
use super::errors::ApiError;
use super::outbox::store_error;
use super::query::Query;
use super::AppState;
use crate::store::board;

/// A board is for people to scan; beyond this, look entities up.
const MAX_ROWS: i64 = 5000;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/v1/board", web::get().to(show));
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BoardQuery {
    limit: Option<i64>,
}

async fn show(
    _: Authenticated,
    state: web::Data<AppState>,
    q: Query<BoardQuery>,
) -> Result<HttpResponse, ApiError> {
    let limit = match q.limit {
        None => 1000,
        Some(n @ 1..=MAX_ROWS) => n,
        Some(n) => {
            return Err(ApiError::Malformed(format!(
                "`limit` must be 1 to {MAX_ROWS}, not {n}"
            )))
        }
    };
    let client = state.store.client().await.map_err(store_error)?;
    let (seq, rows) = board::rows(&client, limit).await.map_err(store_error)?;
    let truncated = rows.len() as i64 == limit;
    Ok(HttpResponse::Ok().json(json!({ "seq": seq, "entities": rows, "truncated": truncated })))
}
