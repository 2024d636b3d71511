//! `GET /api/v1/openapi.json`: the OpenAPI 3.1 description of `/api/v1/*` and the
//! webhooks, generated from the handlers' own request, query and answer types (so it
//! cannot drift from them) and, for the webhooks, from each connector's door: its path,
//! signature, delivery and event headers.

use std::sync::OnceLock;

use actix_web::{web, HttpRequest, HttpResponse};
use utoipa::openapi::path::{HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::schema::SchemaType;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{
    ContentBuilder, ObjectBuilder, OpenApi as Document, PathItem, Ref, RefOr, Required,
    ResponseBuilder, Type,
};
use utoipa::OpenApi;

use super::errors::{ApiError, ErrorBody};
use super::webhooks::WebhookAnswer;
use super::{api, backfill, board, deliveries, outbox, sse, AppState};
use crate::systems::connector::{CredentialSource, Door, Registry};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "statsync",
        description = "Keeps the status of work in step across Linear, GitHub, agents and \
                       PostgreSQL. Every `/api/v1` call takes `Authorization: Bearer <token>` \
                       (STATSYNC_API_TOKENS); every error is `{\"error\":{\"code\",\"message\",\
                       \"retryable\",\"retryAfter\"?}}`."
    ),
    paths(
        api::submit_status,
        api::lookup_entity,
        api::get_entity,
        api::entity_history,
        api::rollback,
        api::link,
        api::list_conflicts,
        api::resolve_conflict,
        api::replay_events,
        sse::stream,
        board::show,
        outbox::outbox_summary,
        outbox::retry_dead_letter,
        deliveries::list_deliveries,
        deliveries::retry_delivery,
        backfill::backfill,
        backfill::status,
        backfill::history,
        backfill::pause,
        backfill::resume,
    ),
    components(schemas(ErrorBody, WebhookAnswer))
)]
struct ApiDoc;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/v1/openapi.json", web::get().to(describe));
}

/// The routes the description leaves out (probes, metrics, the page, streams, MCP,
/// which describes itself), with their methods: a request with another method is
/// answered 405 like any.
const UNDESCRIBED: [(&str, &str); 8] = [
    ("/health", "GET"),
    ("/ready", "GET"),
    ("/metrics", "GET"),
    ("/alerts", "GET"),
    ("/", "GET"),
    ("/ws", "GET"),
    ("/api/v1/openapi.json", "GET"),
    ("/mcp", "POST"),
];

/// What no route took: 405 with `Allow` where the path is served with other methods,
/// else 404; both with the one error body.
pub async fn unrouted(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    static DOC: OnceLock<Document> = OnceLock::new();
    let doc = DOC.get_or_init(|| document(&state.connectors));
    let path = req.path();
    let same = |template: &str| {
        let (a, b) = (template.split('/'), path.split('/'));
        template.split('/').count() == path.split('/').count()
            && a.zip(b)
                .all(|(t, p)| t == p || (t.starts_with('{') && !p.is_empty()))
    };
    let mut allow: Vec<&str> = UNDESCRIBED
        .iter()
        .filter(|(t, _)| same(t))
        .map(|(_, m)| *m)
        .collect();
    for (template, item) in &doc.paths.paths {
        if same(template) {
            allow.extend(item.get.as_ref().map(|_| "GET"));
            allow.extend(item.post.as_ref().map(|_| "POST"));
        }
    }
    // Described but not routed: this replica does not serve it (server.api_enabled).
    let method = req.method().as_str();
    if allow.is_empty() || allow.contains(&method) {
        return Err(ApiError::NotFound(format!(
            "nothing is served at {method} {path}"
        )));
    }
    allow.sort_unstable();
    allow.dedup();
    Err(ApiError::MethodNotAllowed {
        method: method.to_owned(),
        allow: allow.join(", "),
    })
}

/// Public, as a service's description usually is: it holds no data.
async fn describe(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(document(&state.connectors))
}

/// The errors any operation can answer, each with the one error body: bad input (400),
/// no or a wrong credential (401), nothing there (404), a body too slow or too large
/// (408, 413), a state that forbids it (409), a value outside a vocabulary (422), the
/// database or a queue unavailable (503, with `Retry-After`).
const ERRORS: [(&str, &str); 8] = [
    ("400", "bad input, naming the field"),
    (
        "401",
        "no credential, a wrong one, or a webhook's bad signature",
    ),
    (
        "404",
        "nothing there (or, for a webhook, no secret configured)",
    ),
    (
        "408",
        "the body did not arrive in time (http.body_timeout_ms)",
    ),
    ("409", "the current state forbids it"),
    ("413", "the body is larger than http.max_body_bytes"),
    (
        "422",
        "a value outside its vocabulary (the message lists the valid ones)",
    ),
    (
        "503",
        "unavailable for now: retry after `Retry-After` seconds",
    ),
];

/// The description, with the webhooks of every door in `registry` that is served.
pub fn document(registry: &Registry) -> Document {
    let mut doc = ApiDoc::openapi();
    let components = doc.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        "bearer",
        SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
    );
    for item in doc.paths.paths.values_mut() {
        for op in [&mut item.get, &mut item.post].into_iter().flatten() {
            op.security = Some(vec![SecurityRequirement::new(
                "bearer",
                Vec::<String>::new(),
            )]);
        }
    }
    // Only the doors served: one whose credential is not configured answers 404.
    let mut doors: Vec<&Door> = registry
        .systems()
        .filter_map(|s| registry.get(s))
        .filter(|c| c.webhook_secret().is_some())
        .map(|c| c.door())
        .collect();
    doors.sort_by_key(|d| d.name);
    for door in doors {
        doc.paths
            .paths
            .insert(format!("/webhooks/{}", door.name), webhook(door));
    }
    for item in doc.paths.paths.values_mut() {
        for op in [&mut item.get, &mut item.post].into_iter().flatten() {
            for (code, why) in ERRORS {
                op.responses
                    .responses
                    .entry(code.to_owned())
                    .or_insert_with(|| error(why));
            }
        }
    }
    doc
}

fn error(description: &str) -> RefOr<utoipa::openapi::Response> {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("ErrorBody")))
                .build(),
        )
        .build()
        .into()
}

fn header(name: &str, required: bool, description: &str) -> utoipa::openapi::path::Parameter {
    ParameterBuilder::new()
        .name(name)
        .parameter_in(ParameterIn::Header)
        .required(if required {
            Required::True
        } else {
            Required::False
        })
        .description(Some(description))
        .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
        .build()
}

/// Where a door looks for a delivery's credential, in order.
fn credential_places(door: &Door) -> Vec<&'static str> {
    let also = door.credential_also.iter().map(|source| match source {
        CredentialSource::Header(name) => *name,
        CredentialSource::Bearer => "Authorization: Bearer",
    });
    std::iter::once(door.signature_header).chain(also).collect()
}

/// `POST /webhooks/{door}`: the raw body, signed; the door's headers.
fn webhook(door: &Door) -> PathItem {
    let mut op = OperationBuilder::new()
        .tag("webhooks")
        .operation_id(Some(format!("webhook_{}", door.name)))
        .summary(Some(format!("A {} delivery", door.system)))
        .description(Some(format!(
            "Verified with `{}` on the raw body, then committed to PostgreSQL before the \
             200: a 200 means it will be applied exactly once.",
            credential_places(door).join("`, `")
        )))
        // Required for every event statsync reads; one it does not read is answered
        // `ignored` from its event header alone, unverified (it achieves nothing).
        .parameter(header(
            door.signature_header,
            false,
            "the delivery's credential: the body's HMAC-SHA256 signature, or the shared \
             token (a read event without one: 401)",
        ))
        .parameter(header(
            door.delivery_header,
            false,
            "the sender's delivery id (a redelivery answers `duplicate`)",
        ));
    for source in door.credential_also {
        let (name, what) = match source {
            CredentialSource::Header(name) => (*name, "the credential, under another name"),
            CredentialSource::Bearer => ("Authorization", "the credential as `Bearer <token>`"),
        };
        op = op.parameter(header(name, false, what));
    }
    if let Some((name, required)) = door.event_header {
        op = op.parameter(header(name, required, "the event the body describes"));
    }
    let mut body = RequestBodyBuilder::new();
    for media_type in door.media_types {
        body = body.content(
            *media_type,
            // Any JSON: a read event's body must be an object (else 400); an unread
            // one's is never looked at.
            ContentBuilder::new()
                .schema(Some(ObjectBuilder::new().schema_type(SchemaType::AnyValue)))
                .build(),
        );
    }
    let op = op
        .request_body(Some(
            body
                // An event the connector does not read is answered `ignored` from its
                // header alone, its body never read.
                .required(Some(Required::False))
                .description(Some("the sender's JSON, signed as it is"))
                .build(),
        ))
        .response(
            "200",
            ResponseBuilder::new()
                .description("accepted (committed), duplicate or ignored")
                .content(
                    "application/json",
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("WebhookAnswer")))
                        .build(),
                )
                .build(),
        )
        .build();
    PathItem::new(HttpMethod::Post, op)
}
