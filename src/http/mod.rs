//! actix-web: the HTTP surface of DESIGN.md. Handlers are thin: they verify, parse and
//! hand over to the StatusSynchronizer.

pub mod api;
pub mod auth;
pub mod errors;
pub mod health;
pub mod metrics;
pub mod outbox;
pub mod webhooks;

use std::sync::Arc;

use actix_web::web;

use crate::actors::synchronizer::StatusSynchronizer;
use crate::config::Settings;
use crate::store::Store;

/// What every handler can reach.
pub struct AppState {
    pub settings: Arc<Settings>,
    pub store: Store,
    pub sync: StatusSynchronizer,
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    health::routes(cfg);
    metrics::routes(cfg);
    webhooks::routes(cfg);
    // Before `api`: its `/api/v1` scope would answer 404 for these paths.
    outbox::routes(cfg);
    api::routes(cfg);
}
