//! actix-web: the HTTP surface of DESIGN.md. Handlers are thin: they verify, parse and
//! hand over to the StatusSynchronizer.

pub mod api;
pub mod auth;
pub mod backfill;
pub mod board;
pub mod body_deadline;
pub mod connections;
pub mod deliveries;
pub mod errors;
pub mod health;
pub mod json;
pub mod mcp;
pub mod metrics;
pub mod openapi;
pub mod outbox;
pub mod page;
pub mod query;
pub mod request_id;
pub mod sse;
pub mod text;
pub mod webhooks;
pub mod ws;

use std::sync::Arc;

use actix_web::web;

use crate::actors::synchronizer::StatusSynchronizer;
use crate::actors::websocket_manager::WebSocketManager;
use crate::config::Settings;
use crate::store::Store;

/// What every handler can reach.
pub struct AppState {
    pub settings: Arc<Settings>,
    pub store: Store,
    pub sync: StatusSynchronizer,
    pub ws: actix::Addr<WebSocketManager>,
    /// Every system's connector: each one's webhook is served through it.
    pub connectors: Arc<crate::systems::connector::Registry>,
    /// Slots of WebSockets and SSE streams.
    pub ws_connections: Arc<connections::Connections>,
    /// Backfills and reconciliation.
    pub backfill: Arc<crate::backfill::Backfill>,
}

/// Health and metrics always; the rest only where `server.api_enabled` (a worker-only
/// replica takes no webhooks, API calls or streams, and its Service sends it none).
pub fn routes(cfg: &mut web::ServiceConfig, api_enabled: bool) {
    cfg.default_service(web::to(openapi::unrouted));
    health::routes(cfg);
    metrics::routes(cfg);
    if !api_enabled {
        return;
    }
    webhooks::routes(cfg);
    page::routes(cfg);
    ws::routes(cfg);
    // Before `api` too: `/api/v1/events/stream` would otherwise not be reached.
    sse::routes(cfg);
    // Before `api`: its `/api/v1` scope would answer 404 for these paths.
    deliveries::routes(cfg);
    outbox::routes(cfg);
    board::routes(cfg);
    openapi::routes(cfg);
    backfill::routes(cfg);
    mcp::routes(cfg);
    api::routes(cfg);
}
