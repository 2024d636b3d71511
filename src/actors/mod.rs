//! The actors of DESIGN.md and the StatusSynchronizer that owns their addresses.

pub mod conflict_resolver;
pub mod event_processor;
pub mod hints;
pub mod intake_writer;
pub mod messages;
pub mod status_mapper;
pub mod sync_monitor;
pub mod synchronizer;
pub mod websocket_manager;
