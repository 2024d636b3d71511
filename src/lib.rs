//! statsync: keeps the status of work consistent across Linear, GitHub, an agent API
//! and PostgreSQL, which holds the canonical state.

pub mod actors;
pub mod backfill;
pub mod config;
pub mod demo;
pub mod dispatch;
pub mod doctor;
pub mod domain;
pub mod http;
pub mod metrics;
pub mod startup;
pub mod store;
pub mod systems;
pub mod telemetry;
