//! `/api/v1/sync/*` for operators (bearer token): start a backfill, see running and
//! past runs and when reconciliation runs next, pause and resume a system's syncs.

use actix_web::{web, HttpResponse};

use super::json::Json;
use serde::Deserialize;
use serde_json::json;

use super::auth::Authenticated;
use super::errors::ApiError;
use super::outbox::store_error;
use super::query::Query;
use super::AppState;
use crate::backfill::{BackfillError, Mode, Scope, Trigger};
use crate::domain::SystemId;
use crate::store::sync_runs;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/v1/sync/backfill", web::post().to(backfill))
        .route("/api/v1/sync/status", web::get().to(status))
        .route("/api/v1/sync/history", web::get().to(history))
        .route("/api/v1/sync/pause", web::post().to(pause))
        .route("/api/v1/sync/resume", web::post().to(resume));
}

fn sync_error(e: BackfillError) -> ApiError {
    match e {
        BackfillError::BadScope(m) => ApiError::Malformed(m),
        e @ BackfillError::Paused(_) => ApiError::Conflict(e.to_string()),
        BackfillError::Store(e) => store_error(e),
        e @ BackfillError::Upstream(_) => ApiError::Unexpected(e.into()),
    }
}

/// A backfillable system: `github` or `linear`.
fn system(name: &str) -> Result<SystemId, ApiError> {
    match name.parse::<SystemId>() {
        Ok(s @ (SystemId::Github | SystemId::Linear)) => Ok(s),
        _ => Err(ApiError::Malformed(format!(
            "system `{name}` cannot be synced; expected github or linear"
        ))),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct BackfillRequest {
    system: String,
    repo: Option<String>,
    team: Option<String>,
    mode: Option<String>,
}

async fn backfill(
    _: Authenticated,
    state: web::Data<AppState>,
    body: Json<BackfillRequest>,
) -> Result<HttpResponse, ApiError> {
    let scope = match (system(&body.system)?, &body.repo, &body.team) {
        (SystemId::Github, Some(repo), None) => Scope::github(repo),
        (SystemId::Linear, None, Some(team)) => Scope::linear(team),
        (SystemId::Github, _, _) => {
            return Err(ApiError::Malformed(
                "a github backfill takes `repo` (owner/name) and no `team`".into(),
            ))
        }
        _ => {
            return Err(ApiError::Malformed(
                "a linear backfill takes `team` (a team key) and no `repo`".into(),
            ))
        }
    }
    .map_err(sync_error)?;
    let mode: Mode = body
        .mode
        .as_deref()
        .unwrap_or("full")
        .parse()
        .map_err(sync_error)?;
    let id = state
        .backfill
        .start(scope.clone(), mode, Trigger::Api)
        .await
        .map_err(sync_error)?;
    Ok(HttpResponse::Accepted().json(json!({
        "operationId": id,
        "system": scope.system,
        "scope": scope.key,
        "mode": mode.as_str(),
    })))
}

async fn status(_: Authenticated, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let client = state.store.client().await.map_err(store_error)?;
    let running = sync_runs::history(&client, 100, true)
        .await
        .map_err(store_error)?;
    let last = sync_runs::last_per_scope(&client)
        .await
        .map_err(store_error)?;
    let paused = sync_runs::paused(&client).await.map_err(store_error)?;
    let next = state.backfill.next_reconcile.lock().ok().and_then(|n| *n);
    Ok(HttpResponse::Ok().json(json!({
        "running": running,
        "lastRunPerScope": last,
        "paused": paused,
        "reconcileIntervalS": state.settings.sync.reconcile_interval_s,
        "nextReconciliation": next,
    })))
}

#[derive(Deserialize)]
struct HistoryQuery {
    limit: Option<String>,
}

async fn history(
    _: Authenticated,
    state: web::Data<AppState>,
    q: Query<HistoryQuery>,
) -> Result<HttpResponse, ApiError> {
    let limit = match q.limit.as_deref() {
        None => 50,
        Some(text) => match text.parse::<i64>() {
            Ok(n @ 1..=1000) => n,
            _ => {
                return Err(ApiError::Malformed(format!(
                    "limit `{text}` must be a whole number from 1 to 1000"
                )))
            }
        },
    };
    let client = state.store.client().await.map_err(store_error)?;
    let runs = sync_runs::history(&client, limit, false)
        .await
        .map_err(store_error)?;
    Ok(HttpResponse::Ok().json(json!({ "runs": runs })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SystemRequest {
    system: String,
}

async fn set_paused(
    state: web::Data<AppState>,
    body: Json<SystemRequest>,
    paused: bool,
) -> Result<HttpResponse, ApiError> {
    let system = system(&body.system)?;
    let client = state.store.client().await.map_err(store_error)?;
    sync_runs::set_paused(&client, system, paused)
        .await
        .map_err(store_error)?;
    let now = sync_runs::paused(&client).await.map_err(store_error)?;
    Ok(
        HttpResponse::Ok()
            .json(json!({ "system": system, "paused": paused, "pausedSystems": now })),
    )
}

async fn pause(
    _: Authenticated,
    state: web::Data<AppState>,
    body: Json<SystemRequest>,
) -> Result<HttpResponse, ApiError> {
    set_paused(state, body, true).await
}

async fn resume(
    _: Authenticated,
    state: web::Data<AppState>,
    body: Json<SystemRequest>,
) -> Result<HttpResponse, ApiError> {
    set_paused(state, body, false).await
}
