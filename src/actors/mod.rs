//! The actors of DESIGN.md and the StatusSynchronizer that owns their addresses.

pub mod synchronizer;
