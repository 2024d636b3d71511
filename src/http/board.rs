//! `GET /api/v1/board`: the live page's first load (bearer token): the most recently
//! changed entities with what each linked system shows, and the seq to subscribe from.

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::auth::Authenticated;
use super::errors::ApiError;
use super::outbox::store_error;
use super::query::Query;
use super::AppState;
use crate::store::board::{self, Row};

/// A board is for people to scan; beyond this, look entities up.
const MAX_ROWS: i64 = 5000;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/v1/board", web::get().to(show));
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct BoardQuery {
    /// 1 to 5000 (default 1000).
    #[param(minimum = 1, maximum = 5000)]
    limit: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct Board {
    /// The event log's end as of these rows: subscribe with `resumeFrom` set to it.
    seq: i64,
    entities: Vec<Row>,
    /// More entities than the limit: the older ones were left out.
    truncated: bool,
}

#[utoipa::path(get, path = "/api/v1/board", tag = "board", params(BoardQuery),
    responses((status = 200, body = Board)))]
pub async fn show(
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
    // One more than asked tells whether there are more.
    let (seq, mut rows) = board::rows(&client, limit + 1).await.map_err(store_error)?;
    let truncated = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    Ok(HttpResponse::Ok().json(Board {
        seq,
        entities: rows,
        truncated,
    }))
}
