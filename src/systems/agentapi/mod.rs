//! The agent API: status reports from coding agents parsed here; the outbound client
//! that tells agents about status changes lives beside it.

pub mod client;
pub mod connector;
pub mod webhook;

pub use webhook::parse as parse_webhook;
