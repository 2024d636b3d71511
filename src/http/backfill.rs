//! `/api/v1/sync/*` for operators (bearer token): start a backfill, see running and
//! past runs and when reconciliation runs next, pause and resume a system's syncs.

use actix_web::{web, HttpResponse};

use super::json::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::auth::Authenticated;
use super::errors::ApiError;
use super::outbox::store_error;
use super::query::Query;
use super::AppState;
use crate::backfill::{BackfillError, Mode, Scope, Trigger};
use crate::domain::SystemId;
use crate::store::sync_runs::{self, Run};

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

/// The systems that can be listed (backfilled, reconciled, paused): the description's
/// name for what `system` below accepts.
#[derive(ToSchema)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code)]
pub enum Backfillable {
    Github,
    Linear,
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

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BackfillRequest {
    /// `github` (with `repo`) or `linear` (with `team`).
    #[schema(value_type = Backfillable)]
    system: String,
    /// owner/name
    repo: Option<String>,
    /// A Linear team key.
    team: Option<String>,
    /// `full` (default) or `incremental`.
    #[schema(pattern = "^(full|incremental)$")]
    mode: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackfillStarted {
    operation_id: Uuid,
    system: String,
    scope: String,
    mode: String,
}

#[utoipa::path(post, path = "/api/v1/sync/backfill", tag = "sync",
    request_body = BackfillRequest,
    responses((status = 202, description = "started", body = BackfillStarted)))]
pub async fn backfill(
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
    Ok(HttpResponse::Accepted().json(BackfillStarted {
        operation_id: id,
        system: scope.system.to_string(),
        scope: scope.key.to_string(),
        mode: mode.as_str().to_owned(),
    }))
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SyncStatus {
    running: Vec<Run>,
    last_run_per_scope: Vec<Run>,
    paused: Vec<String>,
    reconcile_interval_s: u64,
    next_reconciliation: Option<DateTime<Utc>>,
}

#[utoipa::path(get, path = "/api/v1/sync/status", tag = "sync",
    responses((status = 200, body = SyncStatus)))]
pub async fn status(
    _: Authenticated,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let client = state.store.client().await.map_err(store_error)?;
    let running = sync_runs::history(&client, 100, true)
        .await
        .map_err(store_error)?;
    let last = sync_runs::last_per_scope(&client)
        .await
        .map_err(store_error)?;
    let paused = sync_runs::paused(&client).await.map_err(store_error)?;
    let next = state.backfill.next_reconcile.lock().ok().and_then(|n| *n);
    Ok(HttpResponse::Ok().json(SyncStatus {
        running,
        last_run_per_scope: last,
        paused,
        reconcile_interval_s: state.settings.sync.reconcile_interval_s,
        next_reconciliation: next,
    }))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    /// 1 to 1000 (default 50).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 1000)]
    limit: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct Runs {
    runs: Vec<Run>,
}

#[utoipa::path(get, path = "/api/v1/sync/history", tag = "sync", params(HistoryQuery),
    responses((status = 200, body = Runs)))]
pub async fn history(
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
    Ok(HttpResponse::Ok().json(Runs { runs }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SystemRequest {
    #[schema(value_type = Backfillable)]
    system: String,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Paused {
    system: String,
    paused: bool,
    paused_systems: Vec<String>,
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
    Ok(HttpResponse::Ok().json(Paused {
        system: system.to_string(),
        paused,
        paused_systems: now,
    }))
}

#[utoipa::path(post, path = "/api/v1/sync/pause", tag = "sync", request_body = SystemRequest,
    responses((status = 200, body = Paused)))]
pub async fn pause(
    _: Authenticated,
    state: web::Data<AppState>,
    body: Json<SystemRequest>,
) -> Result<HttpResponse, ApiError> {
    set_paused(state, body, true).await
}

#[utoipa::path(post, path = "/api/v1/sync/resume", tag = "sync", request_body = SystemRequest,
    responses((status = 200, body = Paused)))]
pub async fn resume(
    _: Authenticated,
    state: web::Data<AppState>,
    body: Json<SystemRequest>,
) -> Result<HttpResponse, ApiError> {
    set_paused(state, body, false).await
}
