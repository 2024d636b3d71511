//! GitHub: webhook parsing here; the outbound client lives beside it. Nothing
//! GitHub-shaped leaks past this module: the rest of statsync sees `StatusUpdate`s.

pub mod client;
pub mod read_back;
pub mod webhook;

pub use webhook::parse as parse_webhook;
