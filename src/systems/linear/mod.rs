//! Linear: webhook parsing here; the outbound GraphQL client lives beside it. Nothing
//! Linear-shaped leaks past this module: the rest of statsync sees `StatusUpdate`s.

pub mod backfill;
pub mod client;
pub mod connector;
pub mod listing;
pub mod webhook;

pub use webhook::{
    check_timestamp, parse as parse_webhook, LinearDelivery, TimestampError, TIMESTAMP_TOLERANCE_MS,
};
