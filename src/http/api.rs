//! `/api/v1/*`: the StatusSynchronizer API (bearer token). Bodies are camelCase; a
//! status outside the canonical vocabulary answers 422 listing the valid ones.

use actix_web::{web, HttpResponse};

use super::json::Json;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use super::auth::Authenticated;
use super::errors::ApiError;
use super::query::Query;
use super::AppState;
use crate::actors::synchronizer::{BackfillError, LinkRequest, SubmitStatus};
use crate::domain::{CanonicalStatus, EntityKind, ExternalRef, SystemId};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/api/v1")
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
fn status(value: &str) -> Result<CanonicalStatus, ApiError> {
    value
        .parse()
        .map_err(|e: crate::domain::ParseError| ApiError::Unprocessable {
            code: "INVALID_STATUS",
            message: e.to_string(),
        })
}

fn system(value: &str) -> Result<SystemId, ApiError> {
    value
        .parse()
        .map_err(|e: crate::domain::ParseError| ApiError::Malformed(e.to_string()))
}

fn uuid(value: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(value)
        .map_err(|_| ApiError::NotFound(format!("no entity `{value}`: not a UUID")))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RefBody {
    system: String,
    external_id: String,
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

fn checked_ref(system: SystemId, external_id: &str, field: &str) -> Result<ExternalRef, ApiError> {
    let r = ExternalRef::new(system, external_id);
    crate::systems::check_ref(&r).map_err(|why| ApiError::Malformed(format!("`{field}` {why}")))?;
    Ok(r)
}

/// Free text a person gives (`resolvedBy`): at most this long.
const MAX_NAME_LEN: usize = 200;
/// `metadata` as JSON text: at most this long.
const MAX_METADATA_LEN: usize = 64 * 1024;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct StatusBody {
    entity_id: Option<Uuid>,
    #[serde(rename = "ref")]
    reference: Option<RefBody>,
    status: String,
    source: Option<String>,
    /// Text, parsed after: serde's own error would give a column, not the field.
    source_timestamp: Option<String>,
    kind: Option<String>,
    metadata: Option<serde_json::Value>,
}

async fn submit_status(
    _: Authenticated,
    state: web::Data<AppState>,
    body: Json<StatusBody>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
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
    let outcome = state
        .sync
        .submit(SubmitStatus {
            target,
            status,
            source,
            source_timestamp,
            kind,
            metadata: body.metadata.unwrap_or(json!({})),
        })
        .await?;
    Ok(HttpResponse::Ok().json(outcome))
}

#[derive(Deserialize)]
struct LookupQuery {
    system: String,
    external_id: String,
}

async fn lookup_entity(
    _: Authenticated,
    state: web::Data<AppState>,
    q: Query<LookupQuery>,
) -> Result<HttpResponse, ApiError> {
    let system = system(&q.system).map_err(|e| ApiError::Malformed(format!("`system`: {e}")))?;
    let r = checked_ref(system, &q.external_id, "external_id")?;
    let entity = state
        .sync
        .lookup(&r)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no entity is linked to {r}")))?;
    Ok(HttpResponse::Ok().json(entity))
}

async fn get_entity(
    _: Authenticated,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = uuid(&id)?;
    let entity = state
        .sync
        .entity(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no entity {id}")))?;
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

#[derive(Deserialize)]
struct LimitQuery {
    limit: Option<i64>,
}

async fn entity_history(
    _: Authenticated,
    state: web::Data<AppState>,
    id: web::Path<String>,
    q: Query<LimitQuery>,
) -> Result<HttpResponse, ApiError> {
    let id = uuid(&id)?;
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let history = state.sync.history(id, limit).await?;
    Ok(HttpResponse::Ok().json(json!({ "entityId": id, "transitions": history })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RollbackBody {
    version: i64,
}

async fn rollback(
    _: Authenticated,
    state: web::Data<AppState>,
    id: web::Path<String>,
    body: Json<RollbackBody>,
) -> Result<HttpResponse, ApiError> {
    let id = uuid(&id)?;
    let outcome = state.sync.rollback(id, body.version).await?;
    Ok(HttpResponse::Ok().json(outcome))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct LinkBody {
    entity_id: Option<Uuid>,
    kind: Option<String>,
    status: Option<String>,
    refs: Vec<RefBody>,
}

async fn link(
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

#[derive(Deserialize)]
struct ConflictQuery {
    state: Option<String>,
    limit: Option<i64>,
}

async fn list_conflicts(
    _: Authenticated,
    state: web::Data<AppState>,
    q: Query<ConflictQuery>,
) -> Result<HttpResponse, ApiError> {
    if let Some(s) = q.state.as_deref() {
        if s != "open" && s != "resolved" {
            return Err(ApiError::Malformed(format!(
                "`state` must be `open` or `resolved`, not `{s}`"
            )));
        }
    }
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let conflicts = state.sync.conflicts(q.state.as_deref(), limit).await?;
    Ok(HttpResponse::Ok().json(json!({ "conflicts": conflicts })))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ResolveBody {
    status: String,
    resolved_by: Option<String>,
}

async fn resolve_conflict(
    _: Authenticated,
    state: web::Data<AppState>,
    id: web::Path<String>,
    body: Json<ResolveBody>,
) -> Result<HttpResponse, ApiError> {
    let id = Uuid::parse_str(&id).map_err(|_| ApiError::NotFound(format!("no conflict `{id}`")))?;
    let status = status(&body.status)?;
    let by = body.resolved_by.clone().unwrap_or_else(|| "api".to_owned());
    super::text::acceptable(&by, MAX_NAME_LEN)
        .map_err(|why| ApiError::Malformed(format!("`resolvedBy` {why}")))?;
    let outcome = state.sync.resolve_conflict(id, status, &by).await?;
    Ok(HttpResponse::Ok().json(outcome))
}

#[derive(Deserialize)]
struct EventsQuery {
    after: Option<i64>,
    rooms: Option<String>,
    limit: Option<i64>,
}

async fn replay_events(
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
    let limit = q.limit.unwrap_or(500).clamp(1, 5000);
    let events = state
        .sync
        .events(q.after.unwrap_or(0), rooms.as_deref(), limit)
        .await?;
    let last = events.last().map(|e| e.seq);
    Ok(HttpResponse::Ok().json(json!({ "events": events, "lastSeq": last })))
}
