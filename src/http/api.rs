//! `/api/v1/*`: the StatusSynchronizer API (bearer token). Bodies are camelCase; a
//! status outside the canonical vocabulary answers 422 listing the valid ones.

use actix_web::{web, HttpResponse};

use super::json::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::auth::Authenticated;
use super::errors::ApiError;
use super::query::Query;
use super::AppState;
use crate::actors::event_processor::ItemOutcome;
use crate::actors::synchronizer::{BackfillError, EntityView, LinkRequest, SubmitStatus};
use crate::domain::{CanonicalStatus, EntityKind, ExternalRef, SystemId};
use crate::store::events::Event;
use crate::store::history::{Conflict, Transition};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/api/v1")
            .default_service(web::to(super::openapi::unrouted))
            .route("/status", web::post().to(submit_status))
            .route("/entities", web::get().to(lookup_entity))
            .route("/entities/{id}", web::get().to(get_entity))
            .route("/entities/{id}/history", web::get().to(entity_history))
            .route("/entities/{id}/rollback", web::post().to(rollback))
            .route("/links", web::post().to(link))
            .route("/conflicts", web::get().to(list_conflicts))
            .route("/conflicts/{id}/resolve", web::post().to(resolve_conflict))
            .route("/events", web::get().to(replay_events)),
    );
}

impl From<BackfillError> for ApiError {
    fn from(e: BackfillError) -> Self {
        match e {
            BackfillError::NotFound(m) => ApiError::NotFound(m),
            BackfillError::Conflict(m) => ApiError::Conflict(m),
            BackfillError::Invalid(m) => ApiError::Malformed(m),
            BackfillError::Unavailable(m) => ApiError::Unavailable {
                message: m,
                retry_after_s: 1,
            },
            BackfillError::Unexpected(e) => ApiError::Unexpected(e),
        }
    }
}

/// Parses a canonical status, answering 422 with the valid ones.
pub(super) fn status(value: &str) -> Result<CanonicalStatus, ApiError> {
    value
        .parse()
        .map_err(|e: crate::domain::ParseError| ApiError::Unprocessable {
            code: "INVALID_STATUS",
            message: e.to_string(),
        })
}

pub(super) fn system(value: &str) -> Result<SystemId, ApiError> {
    value
        .parse()
        .map_err(|e: crate::domain::ParseError| ApiError::Malformed(e.to_string()))
}

fn uuid(value: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(value)
        .map_err(|_| ApiError::NotFound(format!("no entity `{value}`: not a UUID")))
}

/// An object in a system: `{"system":"github","externalId":"owner/repo#12"}`.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RefBody {
    #[schema(value_type = SystemId)]
    pub(super) system: String,
    #[schema(min_length = 1)]
    pub(super) external_id: String,
}

impl RefBody {
    /// The ref, checked by its system's rules; errors name `field` (`ref`, `refs[0]`).
    fn to_ref(&self, field: &str) -> Result<ExternalRef, ApiError> {
        let system = system(&self.system)
            .map_err(|e| ApiError::Malformed(format!("`{field}.system`: {e}")))?;
        checked_ref(
            system,
            self.external_id.trim(),
            &format!("{field}.externalId"),
        )
    }
}

pub(super) fn checked_ref(
    system: SystemId,
    external_id: &str,
    field: &str,
) -> Result<ExternalRef, ApiError> {
    let r = ExternalRef::new(system, external_id);
    crate::systems::check_ref(&r).map_err(|why| ApiError::Malformed(format!("`{field}` {why}")))?;
    Ok(r)
}

/// Free text a person gives (`resolvedBy`): at most this long.
const MAX_NAME_LEN: usize = 200;
/// `metadata` as JSON text: at most this long.
const MAX_METADATA_LEN: usize = 64 * 1024;

/// Exactly one of `entityId` or `ref`.
#[derive(Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StatusBody {
    pub(super) entity_id: Option<Uuid>,
    #[serde(rename = "ref")]
    pub(super) reference: Option<RefBody>,
    /// A canonical status (422 lists them).
    #[schema(value_type = CanonicalStatus)]
    pub(super) status: String,
    /// The system the change comes from (default `postgresql`).
    #[schema(value_type = Option<SystemId>)]
    pub(super) source: Option<String>,
    /// RFC 3339; text, parsed after: serde's own error would give a column, not the field.
    #[schema(format = DateTime)]
    pub(super) source_timestamp: Option<String>,
    #[schema(value_type = Option<EntityKind>)]
    pub(super) kind: Option<String>,
    pub(super) metadata: Option<serde_json::Value>,
}

#[utoipa::path(post, path = "/api/v1/status", tag = "entities", request_body = StatusBody,
    responses((status = 200, description = "the decision and its reason", body = ItemOutcome)))]
pub async fn submit_status(
    _: Authenticated,
    state: web::Data<AppState>,
    body: Json<StatusBody>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(submit(&state, body.into_inner()).await?))
}

/// `POST /api/v1/status` and MCP's `set_status`: the body checked, then the decision.
pub(super) async fn submit(state: &AppState, body: StatusBody) -> Result<ItemOutcome, ApiError> {
    let status = status(&body.status)?;
    let source = body
        .source
        .as_deref()
        .map(|s| system(s).map_err(|e| ApiError::Malformed(format!("`source`: {e}"))))
        .transpose()?
        .unwrap_or(SystemId::Postgresql);
    if let Some(metadata) = &body.metadata {
        if metadata.to_string().len() > MAX_METADATA_LEN {
            return Err(ApiError::Malformed(format!(
                "`metadata` is longer than the {MAX_METADATA_LEN} bytes allowed as JSON"
            )));
        }
    }
    let target = match (body.entity_id, body.reference) {
        (Some(id), None) => crate::actors::synchronizer::Target::Entity(id),
        (None, Some(r)) => crate::actors::synchronizer::Target::Ref(r.to_ref("ref")?),
        _ => {
            return Err(ApiError::Malformed(
                "give exactly one of `entityId` or `ref`".into(),
            ))
        }
    };
    let source_timestamp = match body.source_timestamp.as_deref() {
        Some(text) => DateTime::parse_from_rfc3339(text)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|e| {
                ApiError::Malformed(format!(
                    "`sourceTimestamp`: `{text}` is not an RFC 3339 timestamp: {e}"
                ))
            })?,
        None => Utc::now(),
    };
    // A time ahead of every clock would make every later genuine update stale.
    let skew = chrono::TimeDelta::milliseconds(state.settings.sync.max_future_skew_ms as i64);
    if source_timestamp > Utc::now() + skew {
        return Err(ApiError::Unprocessable {
            code: "FUTURE_TIMESTAMP",
            message: format!(
                "`sourceTimestamp` {} is more than {} ms ahead of statsync's clock \
                 (sync.max_future_skew_ms); send the time the change happened",
                source_timestamp.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                skew.num_milliseconds()
            ),
        });
    }
    let kind = body
        .kind
        .as_deref()
        .map(|k| {
            k.parse::<EntityKind>()
                .map_err(|e| ApiError::Malformed(e.to_string()))
        })
        .transpose()?;
    Ok(state
        .sync
        .submit(SubmitStatus {
            target,
            status,
            source,
            source_timestamp,
            kind,
            metadata: body.metadata.unwrap_or(json!({})),
        })
        .await?)
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LookupQuery {
    #[param(value_type = SystemId)]
    system: String,
    /// `owner/repo#12` (`#` as `%23`), a Linear identifier (`ENG-123`) or id, a task id.
    #[param(min_length = 1)]
    external_id: String,
}

#[utoipa::path(get, path = "/api/v1/entities", tag = "entities", params(LookupQuery),
    responses((status = 200, body = EntityView)))]
pub async fn lookup_entity(
    _: Authenticated,
    state: web::Data<AppState>,
    q: Query<LookupQuery>,
) -> Result<HttpResponse, ApiError> {
    let system = system(&q.system).map_err(|e| ApiError::Malformed(format!("`system`: {e}")))?;
    let r = checked_ref(system, &q.external_id, "external_id")?;
    Ok(HttpResponse::Ok().json(linked_to(&state, &r).await?))
}

/// The entity `r` is linked to, or 404 naming `r`.
pub(super) async fn linked_to(state: &AppState, r: &ExternalRef) -> Result<EntityView, ApiError> {
    state
        .sync
        .lookup(r)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no entity is linked to {r}")))
}

#[utoipa::path(get, path = "/api/v1/entities/{id}", tag = "entities",
    params(("id" = Uuid, Path)),
    responses((status = 200, body = EntityView),
        (status = 308, description = "absorbed into another entity (`Location`); its own row", body = EntityView)))]
pub async fn get_entity(
    _: Authenticated,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let entity = entity(&state, uuid(&id)?).await?;
    // An entity absorbed by a late link lives on as its survivor: a permanent redirect
    // there (clients following it read the survivor, whose `mergedFrom` names this id),
    // with this one's own row (`mergedInto`, no links) as the body for those that do not.
    if let Some(survivor) = entity.merged_into {
        return Ok(HttpResponse::PermanentRedirect()
            .insert_header(("Location", format!("/api/v1/entities/{survivor}")))
            .json(entity));
    }
    Ok(HttpResponse::Ok().json(entity))
}

/// The entity `id`, or 404.
pub(super) async fn entity(state: &AppState, id: Uuid) -> Result<EntityView, ApiError> {
    state
        .sync
        .entity(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no entity {id}")))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LimitQuery {
    /// 1 to 1000 (default 100).
    limit: Option<i64>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct History {
    entity_id: Uuid,
    /// Newest first.
    transitions: Vec<Transition>,
}

#[utoipa::path(get, path = "/api/v1/entities/{id}/history", tag = "entities",
    params(("id" = Uuid, Path), LimitQuery),
    responses((status = 200, body = History)))]
pub async fn entity_history(
    _: Authenticated,
    state: web::Data<AppState>,
    id: web::Path<String>,
    q: Query<LimitQuery>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(history(&state, uuid(&id)?, q.limit).await?))
}

/// Its transitions, newest first: `limit` 1 to 1000 (default 100).
pub(super) async fn history(
    state: &AppState,
    id: Uuid,
    limit: Option<i64>,
) -> Result<History, ApiError> {
    let limit = limit.unwrap_or(100).clamp(1, 1000);
    Ok(History {
        entity_id: id,
        transitions: state.sync.history(id, limit).await?,
    })
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RollbackBody {
    version: i64,
}

#[utoipa::path(post, path = "/api/v1/entities/{id}/rollback", tag = "entities",
    params(("id" = Uuid, Path)), request_body = RollbackBody,
    responses((status = 200, body = ItemOutcome)))]
pub async fn rollback(
    _: Authenticated,
    state: web::Data<AppState>,
    id: web::Path<String>,
    body: Json<RollbackBody>,
) -> Result<HttpResponse, ApiError> {
    let id = uuid(&id)?;
    let outcome = state.sync.rollback(id, body.version).await?;
    Ok(HttpResponse::Ok().json(outcome))
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LinkBody {
    entity_id: Option<Uuid>,
    #[schema(value_type = Option<EntityKind>)]
    kind: Option<String>,
    #[schema(value_type = Option<CanonicalStatus>)]
    status: Option<String>,
    #[schema(min_items = 1)]
    refs: Vec<RefBody>,
}

#[utoipa::path(post, path = "/api/v1/links", tag = "entities", request_body = LinkBody,
    responses((status = 200, description = "linked to an existing entity", body = EntityView),
        (status = 201, description = "a new entity", body = EntityView)))]
pub async fn link(
    _: Authenticated,
    state: web::Data<AppState>,
    body: Json<LinkBody>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    if body.refs.is_empty() {
        return Err(ApiError::Malformed(
            "`refs` must name at least one external object".into(),
        ));
    }
    let refs = body
        .refs
        .iter()
        .enumerate()
        .map(|(i, r)| r.to_ref(&format!("refs[{i}]")))
        .collect::<Result<Vec<_>, _>>()?;
    let kind = body
        .kind
        .as_deref()
        .map(|k| {
            k.parse::<EntityKind>()
                .map_err(|e| ApiError::Malformed(e.to_string()))
        })
        .transpose()?;
    let initial = body.status.as_deref().map(status).transpose()?;
    let (entity, created) = state
        .sync
        .link(LinkRequest {
            entity_id: body.entity_id,
            kind,
            status: initial,
            refs,
        })
        .await?;
    Ok(if created {
        HttpResponse::Created().json(entity)
    } else {
        HttpResponse::Ok().json(entity)
    })
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ConflictQuery {
    /// `open` or `resolved`.
    #[param(pattern = "^(open|resolved)$")]
    state: Option<String>,
    /// 1 to 1000 (default 100).
    limit: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct Conflicts {
    conflicts: Vec<Conflict>,
}

#[utoipa::path(get, path = "/api/v1/conflicts", tag = "conflicts", params(ConflictQuery),
    responses((status = 200, body = Conflicts)))]
pub async fn list_conflicts(
    _: Authenticated,
    state: web::Data<AppState>,
    q: Query<ConflictQuery>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(conflicts(&state, q.state.as_deref(), q.limit).await?))
}

/// The conflicts in `filter` (`open`, `resolved`, default both): `limit` 1 to 1000
/// (default 100).
pub(super) async fn conflicts(
    state: &AppState,
    filter: Option<&str>,
    limit: Option<i64>,
) -> Result<Conflicts, ApiError> {
    if let Some(s) = filter {
        if s != "open" && s != "resolved" {
            return Err(ApiError::Malformed(format!(
                "`state` must be `open` or `resolved`, not `{s}`"
            )));
        }
    }
    let limit = limit.unwrap_or(100).clamp(1, 1000);
    let conflicts = state.sync.conflicts(filter, limit).await?;
    Ok(Conflicts { conflicts })
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ResolveBody {
    #[schema(value_type = CanonicalStatus)]
    status: String,
    resolved_by: Option<String>,
}

#[utoipa::path(post, path = "/api/v1/conflicts/{id}/resolve", tag = "conflicts",
    params(("id" = Uuid, Path)), request_body = ResolveBody,
    responses((status = 200, body = ItemOutcome)))]
pub async fn resolve_conflict(
    _: Authenticated,
    state: web::Data<AppState>,
    id: web::Path<String>,
    body: Json<ResolveBody>,
) -> Result<HttpResponse, ApiError> {
    let by = body.resolved_by.as_deref().unwrap_or("api");
    let outcome = resolve(&state, &id, &body.status, by).await?;
    Ok(HttpResponse::Ok().json(outcome))
}

/// A person's (or an agent's) decision on conflict `id`, made by `by`.
pub(super) async fn resolve(
    state: &AppState,
    id: &str,
    status: &str,
    by: &str,
) -> Result<ItemOutcome, ApiError> {
    let id = Uuid::parse_str(id).map_err(|_| ApiError::NotFound(format!("no conflict `{id}`")))?;
    let status = self::status(status)?;
    super::text::acceptable(by, MAX_NAME_LEN)
        .map_err(|why| ApiError::Malformed(format!("`resolvedBy` {why}")))?;
    Ok(state.sync.resolve_conflict(id, status, by).await?)
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventsQuery {
    /// Events after this seq (default 0).
    after: Option<i64>,
    /// Comma-separated rooms (default all).
    rooms: Option<String>,
    /// 1 to 5000 (default 500).
    limit: Option<i64>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Events {
    events: Vec<Event>,
    last_seq: Option<i64>,
}

#[utoipa::path(get, path = "/api/v1/events", tag = "events", params(EventsQuery),
    responses((status = 200, body = Events)))]
pub async fn replay_events(
    _: Authenticated,
    state: web::Data<AppState>,
    q: Query<EventsQuery>,
) -> Result<HttpResponse, ApiError> {
    let rooms: Option<Vec<String>> = q.rooms.as_deref().map(|r| {
        r.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    });
    let events = events(&state, q.after.unwrap_or(0), rooms.as_deref(), q.limit).await?;
    Ok(HttpResponse::Ok().json(events))
}

/// `limit` for a replay: 1 to 5000 (default 500).
pub(super) fn events_limit(limit: Option<i64>) -> i64 {
    limit.unwrap_or(500).clamp(1, 5000)
}

/// The events after seq `after` in `rooms` (default all), oldest first.
pub(super) async fn events(
    state: &AppState,
    after: i64,
    rooms: Option<&[String]>,
    limit: Option<i64>,
) -> Result<Events, ApiError> {
    let events = state.sync.events(after, rooms, events_limit(limit)).await?;
    let last = events.last().map(|e| e.seq);
    Ok(Events {
        events,
        last_seq: last,
    })
}
