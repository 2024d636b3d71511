//! A2A agents (the a2aproject A2A protocol): task status pushed to statsync as A2A push
//! notifications (`notification.rs`), and agents told through A2A JSON-RPC when linked
//! work is over (`client.rs`), both behind one `Connector` (`connector.rs`).

pub mod client;
pub mod connector;
pub mod notification;

pub use connector::REGISTRATION;
