//! statsync: keeps the status of work consistent across Linear, GitHub, an agent API
//! and PostgreSQL, which holds the canonical state.

pub mod actors;
pub mod config;
pub mod dispatch;
pub mod domain;
pub mod http;
pub mod metrics;
pub mod startup;
pub mod store;
pub mod sync;
pub mod systems;
pub mod telemetry;
