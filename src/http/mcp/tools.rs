//! The MCP tools: where a piece of work stands and how to report on it, for an agent
//! that knows `ENG-123` or `owner/repo#12` but not GitHub's or Linear's APIs. Each tool
//! checks its arguments and calls the function `/api/v1` calls; it never decides
//! anything itself. Bad input is a tool error (`isError`, the API's error body, a
//! message naming what was wrong), never a protocol failure, so the agent can correct it.

use std::borrow::Cow;
use std::sync::Arc;

use actix_web::web;
use rmcp::handler::server::common::schema_for_input;
use rmcp::model::{
    CallToolResult, ContentBlock, Implementation, JsonObject, ServerCapabilities, ServerConfig,
};
use rmcp::schemars::{self, JsonSchema, Schema, SchemaGenerator};
use rmcp::{tool, tool_handler, tool_router, ServerHandler};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use uuid::Uuid;

use super::super::api::{self, RefBody, StatusBody};
use super::super::errors::ApiError;
use super::super::outbox::store_error;
use super::super::AppState;
use crate::actors::synchronizer::EntityView;
use crate::domain::{CanonicalStatus, ExternalRef, SystemId};
use crate::store::board::{self, Shown};

/// Every tool, in the order `tools/list` gives them.
pub const TOOL_NAMES: [&str; 6] = [
    "get_status",
    "set_status",
    "history",
    "list_conflicts",
    "resolve_conflict",
    "recent_events",
];

/// The server the SDK runs: one per request, over the application's state.
#[derive(Clone)]
pub struct StatusTools {
    state: web::Data<AppState>,
}

impl StatusTools {
    pub fn new(state: web::Data<AppState>) -> Self {
        StatusTools { state }
    }
}

/// A `reason` an agent gives: at most this long.
const MAX_REASON_LEN: usize = 2000;

/// What names a piece of work, as an agent knows it.
enum WorkRef {
    Entity(Uuid),
    External(ExternalRef),
}

/// `ref` as sent: checked by `WorkRef::parse`, so its errors name what was wrong
/// rather than serde's "did not match any variant".
#[derive(Deserialize)]
#[serde(transparent)]
struct RefArg(Value);

impl JsonSchema for RefArg {
    fn schema_name() -> Cow<'static, str> {
        "Ref".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        let systems: Vec<&str> = SystemId::ALL.iter().map(|s| s.as_str()).collect();
        schemars::json_schema!({
            "description": "The work: a Linear identifier (`ENG-123`), a GitHub issue or pull \
                request (`owner/repo#12`), statsync's entity id (a UUID), or any linked \
                object as `{\"system\", \"externalId\"}` (a Linear issue's UUID, an agent \
                task id).",
            "anyOf": [
                {"type": "string", "minLength": 1,
                 "examples": ["ENG-123", "acme/api#12", "0b7d5c2e-6f1a-4c3b-9a51-2f0e7d9c1a44"]},
                {"type": "object",
                 "properties": {
                     "system": {"type": "string", "enum": systems},
                     "externalId": {"type": "string", "minLength": 1}
                 },
                 "required": ["system", "externalId"],
                 "additionalProperties": false}
            ]
        })
    }
}

impl WorkRef {
    fn parse(arg: &RefArg) -> Result<WorkRef, ApiError> {
        match &arg.0 {
            Value::String(text) => {
                let text = text.trim();
                if let Ok(id) = Uuid::parse_str(text) {
                    return Ok(WorkRef::Entity(id));
                }
                let r = crate::systems::agentapi::webhook::issue_ref_at("ref", text)
                    .map_err(|e| ApiError::Malformed(e.to_string()))?;
                api::checked_ref(r.system, &r.external_id, "ref").map(WorkRef::External)
            }
            Value::Object(o) => {
                let body: RefBody = serde_json::from_value(Value::Object(o.clone()))
                    .map_err(|e| ApiError::Malformed(format!("`ref`: {e}")))?;
                let system = api::system(&body.system)
                    .map_err(|e| ApiError::Malformed(format!("`ref.system`: {e}")))?;
                api::checked_ref(system, body.external_id.trim(), "ref.externalId")
                    .map(WorkRef::External)
            }
            other => Err(ApiError::Malformed(format!(
                "`ref` must be a string such as `ENG-123` or `owner/repo#12`, or an object \
                 {{\"system\", \"externalId\"}}; got {other}"
            ))),
        }
    }

    /// The entity it names, or 404 naming it. An entity absorbed by a late link is read
    /// as the one it lives on in (whose `mergedFrom` names it).
    async fn entity(&self, state: &AppState) -> Result<EntityView, ApiError> {
        let entity = match self {
            WorkRef::Entity(id) => api::entity(state, *id).await?,
            WorkRef::External(r) => api::linked_to(state, r).await?,
        };
        match entity.merged_into {
            Some(survivor) => api::entity(state, survivor).await,
            None => Ok(entity),
        }
    }
}

/// A canonical status, listed in the schema; checked by the API's own parser.
fn status_schema(_: &mut SchemaGenerator) -> Schema {
    let statuses: Vec<&str> = CanonicalStatus::ALL.iter().map(|s| s.as_str()).collect();
    schemars::json_schema!({"type": "string", "enum": statuses})
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct GetStatusArgs {
    #[serde(rename = "ref")]
    reference: RefArg,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct SetStatusArgs {
    #[serde(rename = "ref")]
    reference: RefArg,
    /// The canonical status the work is in now.
    #[schemars(schema_with = "status_schema")]
    status: String,
    /// Why, in a sentence (kept with the entity when this call creates it).
    reason: Option<String>,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct HistoryArgs {
    #[serde(rename = "ref")]
    reference: RefArg,
    /// How many transitions, newest first: 1 to 1000 (default 20).
    #[schemars(range(min = 1, max = 1000))]
    limit: Option<i64>,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct ListConflictsArgs {
    /// `open` (the default: those waiting for a decision) or `resolved`.
    #[schemars(regex(pattern = r"^(open|resolved)$"))]
    state: Option<String>,
    /// 1 to 1000 (default 100).
    #[schemars(range(min = 1, max = 1000))]
    limit: Option<i64>,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct ResolveConflictArgs {
    /// The conflict's id (from `list_conflicts`).
    #[schemars(extend("format" = "uuid"))]
    id: String,
    /// The status the entity takes: the decision the conflict waited for.
    #[schemars(schema_with = "status_schema")]
    status: String,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct RecentEventsArgs {
    /// Events after this seq: the `lastSeq` of the previous answer. Left out: the last
    /// `limit` events of the log (fewer when `rooms` leaves some out).
    #[schemars(range(min = 0))]
    after: Option<i64>,
    /// Only these rooms: `entity:<uuid>`, `project:<ENG | owner/repo>`,
    /// `system:<system>`, `alerts` (default: all).
    rooms: Option<Vec<String>>,
    /// 1 to 5000 (default 100).
    #[schemars(range(min = 1, max = 5000))]
    limit: Option<i64>,
}

/// `get_status`'s answer: the entity, and what each linked object shows now.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Status {
    entity: EntityView,
    systems: Vec<Shown>,
}

/// The tool's arguments as `T`, or an error naming the field at fault.
fn args<T: DeserializeOwned>(object: JsonObject) -> Result<T, ApiError> {
    serde_path_to_error::deserialize(Value::Object(object))
        .map_err(|e| ApiError::malformed_at("arguments", e))
}

fn schema<T: JsonSchema + std::any::Any>() -> Arc<JsonObject> {
    // expect: the argument types above are objects; a test lists every tool's schema.
    schema_for_input::<T>().expect("a tool's arguments are a JSON object")
}

/// The answer as a tool result: its JSON as text and as structured content; an error
/// as the API's error body, its text led by the code.
fn answer<T: Serialize>(result: Result<T, ApiError>) -> CallToolResult {
    let failed = |e: ApiError| {
        if let ApiError::Unexpected(cause) = &e {
            tracing::error!(error = ?cause, "MCP tool failed");
        }
        let body = e.body();
        let text = format!("{}: {}", body.error.code, body.error.message);
        let mut result = CallToolResult::error(vec![ContentBlock::text(text)]);
        result.structured_content = Some(json!(body));
        result
    };
    match result.map(|t| serde_json::to_value(t)) {
        Ok(Ok(value)) => CallToolResult::structured(value),
        Ok(Err(e)) => failed(ApiError::Unexpected(e.into())),
        Err(e) => failed(e),
    }
}

#[tool_router]
impl StatusTools {
    #[tool(
        description = "Where a piece of work stands: its canonical status, version and last \
            change, every object linked to it (Linear issue, GitHub issue or pull request, \
            agent task), and the status each of them shows now (`systems`). `ref`: \
            `ENG-123`, `owner/repo#12`, an entity UUID, or {system, externalId}.",
        input_schema = schema::<GetStatusArgs>(),
        annotations(read_only_hint = true)
    )]
    async fn get_status(&self, arguments: JsonObject) -> CallToolResult {
        answer(self.get_status_(arguments).await)
    }

    #[tool(
        description = "Report the status of a piece of work. statsync decides by the same \
            rules as its API (POST /api/v1/status): conflicts, the terminal guard, \
            staleness, and creates and links the entity for an unknown ref. It answers the \
            decision (`applied`, `noop`, `stale`, `conflict`, `rejected`) with its \
            `reason`, and the entity's `status` and `version` after it; an applied \
            status is then written to Linear, GitHub and the other linked systems. \
            `status`: triage, backlog, todo, in_progress, in_review, blocked, done, \
            cancelled.",
        input_schema = schema::<SetStatusArgs>()
    )]
    async fn set_status(&self, arguments: JsonObject) -> CallToolResult {
        answer(self.set_status_(arguments).await)
    }

    #[tool(
        description = "A piece of work's status changes, newest first: from, to, the \
            system it came from, the decision and its reason, the version.",
        input_schema = schema::<HistoryArgs>(),
        annotations(read_only_hint = true)
    )]
    async fn history(&self, arguments: JsonObject) -> CallToolResult {
        answer(self.history_(arguments).await)
    }

    #[tool(
        description = "Conflicts between systems that wait for a decision (`state`: \
            `open`, the default) or were decided (`resolved`): the entity, both statuses \
            and systems, the reason.",
        input_schema = schema::<ListConflictsArgs>(),
        annotations(read_only_hint = true)
    )]
    async fn list_conflicts(&self, arguments: JsonObject) -> CallToolResult {
        answer(self.list_conflicts_(arguments).await)
    }

    #[tool(
        description = "Decide an open conflict: the entity takes `status` and its open \
            conflicts close. Answers the decision like `set_status`.",
        input_schema = schema::<ResolveConflictArgs>()
    )]
    async fn resolve_conflict(&self, arguments: JsonObject) -> CallToolResult {
        answer(self.resolve_conflict_(arguments).await)
    }

    #[tool(
        description = "The event log, oldest first: status changes, conflicts, alerts and \
            sync progress, each with its `seq`. Pass the answer's `lastSeq` as `after` to \
            read on; leave `after` out for the latest events.",
        input_schema = schema::<RecentEventsArgs>(),
        annotations(read_only_hint = true)
    )]
    async fn recent_events(&self, arguments: JsonObject) -> CallToolResult {
        answer(self.recent_events_(arguments).await)
    }
}

/// The tools' work, with typed errors; the methods above only turn it into answers.
impl StatusTools {
    async fn get_status_(&self, arguments: JsonObject) -> Result<Status, ApiError> {
        let a: GetStatusArgs = args(arguments)?;
        let entity = WorkRef::parse(&a.reference)?.entity(&self.state).await?;
        let client = self.state.store.client().await.map_err(store_error)?;
        let systems = board::shown(&client, entity.id)
            .await
            .map_err(store_error)?;
        Ok(Status { entity, systems })
    }

    async fn set_status_(&self, arguments: JsonObject) -> Result<Value, ApiError> {
        let a: SetStatusArgs = args(arguments)?;
        let (entity_id, reference) = match WorkRef::parse(&a.reference)? {
            WorkRef::Entity(id) => (Some(id), None),
            WorkRef::External(r) => (
                None,
                Some(RefBody {
                    system: r.system.as_str().to_owned(),
                    external_id: r.external_id,
                }),
            ),
        };
        let metadata = match a.reason {
            Some(reason) => {
                super::super::text::acceptable(&reason, MAX_REASON_LEN)
                    .map_err(|why| ApiError::Malformed(format!("`reason` {why}")))?;
                json!({ "reason": reason })
            }
            None => json!({}),
        };
        let outcome = api::submit(
            &self.state,
            StatusBody {
                entity_id,
                reference,
                status: a.status,
                metadata: Some(metadata),
                ..StatusBody::default()
            },
        )
        .await?;
        Ok(json!(outcome))
    }

    async fn history_(&self, arguments: JsonObject) -> Result<api::History, ApiError> {
        let a: HistoryArgs = args(arguments)?;
        let entity = WorkRef::parse(&a.reference)?.entity(&self.state).await?;
        api::history(&self.state, entity.id, Some(a.limit.unwrap_or(20))).await
    }

    async fn list_conflicts_(&self, arguments: JsonObject) -> Result<api::Conflicts, ApiError> {
        let a: ListConflictsArgs = args(arguments)?;
        let state = a.state.as_deref().unwrap_or("open");
        api::conflicts(&self.state, Some(state), a.limit).await
    }

    async fn resolve_conflict_(&self, arguments: JsonObject) -> Result<Value, ApiError> {
        let a: ResolveConflictArgs = args(arguments)?;
        let outcome = api::resolve(&self.state, a.id.trim(), &a.status, "mcp").await?;
        Ok(json!(outcome))
    }

    async fn recent_events_(&self, arguments: JsonObject) -> Result<api::Events, ApiError> {
        let a: RecentEventsArgs = args(arguments)?;
        let limit = api::events_limit(Some(a.limit.unwrap_or(100)));
        let after = match a.after {
            Some(after) => after,
            None => {
                let client = self.state.store.client().await.map_err(store_error)?;
                let last = crate::store::events::last_seq(&client)
                    .await
                    .map_err(store_error)?;
                (last - limit).max(0)
            }
        };
        api::events(&self.state, after, a.rooms.as_deref(), Some(limit)).await
    }
}

#[tool_handler]
impl ServerHandler for StatusTools {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("statsync", env!("CARGO_PKG_VERSION")))
            .with_instructions(
                "statsync keeps the status of work in step across Linear, GitHub, agents \
                 and its own store. Name the work you are on as you know it (`ENG-123`, \
                 `owner/repo#12`): `get_status` says where it stands, `set_status` reports \
                 progress and answers statsync's decision with its reason.",
            )
    }
}
