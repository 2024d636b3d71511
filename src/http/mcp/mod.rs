//! `POST /mcp`: the Model Context Protocol server for agents (Streamable HTTP, served by
//! the official SDK `rmcp`), behind the API's bearer token. This file only carries
//! requests between actix and rmcp's `http` service; the tools live in `tools`, and they
//! call the same functions as `/api/v1`, so the two can never answer differently.
//!
//! Stateless: every POST stands alone and is answered `application/json`, so any
//! replica answers any request (no sticky sessions behind the Service) and nothing is
//! held in memory between calls. A server stream (`GET`) would need a session, so it is
//! not offered: `GET /mcp` answers 405, as the transport allows.

mod tools;

use actix_web::http::StatusCode;
use actix_web::web::Bytes;
use actix_web::{web, HttpRequest, HttpResponse};
use http_body_util::{BodyExt, Full};
use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};

use super::auth::Authenticated;
use super::errors::ApiError;
use super::AppState;

pub use tools::TOOL_NAMES;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/mcp", web::post().to(serve));
}

async fn serve(
    _: Authenticated,
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let settings = &state.settings.http;
    let body = super::webhooks::read_body(&req, payload, settings).await?;
    let config = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(false)
        .with_json_response(true)
        // The `Host` check guards a server on a developer's machine against DNS
        // rebinding: a page cannot present the bearer token, and statsync is reached
        // by whatever name its ingress has.
        .disable_allowed_hosts()
        .with_max_request_body_bytes(settings.max_body_bytes);
    let tools = tools::StatusTools::new(state.clone());
    // Per request, as cheap as the handler itself: a stateless service holds nothing.
    let service = StreamableHttpService::new(
        move || Ok(tools.clone()),
        NeverSessionManager::default().into(),
        config,
    );
    let response = service.handle(to_http(&req, body)?).await;
    from_http(response)
}

/// actix's request (its `http` 0.2 types) as the `http` 1 request rmcp takes.
fn to_http(req: &HttpRequest, body: Bytes) -> Result<http::Request<Full<Bytes>>, ApiError> {
    let mut builder = http::Request::builder()
        .method(req.method().as_str())
        .uri(req.uri().to_string());
    for (name, value) in req.headers() {
        builder = builder.header(name.as_str(), value.as_bytes());
    }
    builder
        .body(Full::new(body))
        .map_err(|e| ApiError::Malformed(format!("cannot read the request: {e}")))
}

/// rmcp's answer, its body streamed as it comes (a JSON body arrives whole).
fn from_http(
    response: http::Response<http_body_util::combinators::BoxBody<Bytes, std::convert::Infallible>>,
) -> Result<HttpResponse, ApiError> {
    let (parts, body) = response.into_parts();
    let status = StatusCode::from_u16(parts.status.as_u16())
        .map_err(|e| ApiError::Unexpected(anyhow::anyhow!("rmcp answered a bad status: {e}")))?;
    let mut out = HttpResponse::build(status);
    for (name, value) in &parts.headers {
        out.append_header((name.as_str(), value.as_bytes()));
    }
    Ok(out.streaming(body.into_data_stream()))
}
