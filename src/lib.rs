//! Hookpanel: an operations console for webhooks, and the webhook delivery service it
//! operates.
//!
//! - [`api`]: the admin API's wire types, shared by the server and its clients.
//! - [`server`]: the admin API (axum) and a running service's lifetime.
//! - [`store`]: persistence (SQLite), behind one narrow type.
//! - [`dispatch`]: the dispatcher — signs, sends, retries and records every attempt.
//! - [`signing`]: delivery signatures, and `verify` for receivers.
//! - [`crypto`]: secrets — generation, sealing at rest, admin-key checks.
//! - [`catalog`]: the event types webhooks subscribe to.
//! - [`validate`]: input checks whose errors name the field.
//! - [`export`]: deliveries written to CSV or JSON files.

pub mod api;
pub mod catalog;
pub mod client;
pub mod crypto;
pub mod dispatch;
pub mod embedded;
pub mod export;
pub mod keychain;
pub mod paths;
pub mod server;
pub mod signing;
pub mod store;
pub mod ui;
pub mod validate;
