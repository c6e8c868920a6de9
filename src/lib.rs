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
//! - [`metrics`]: what `GET /metrics` serves.
//!
//! With the `panel` feature (on by default): the desktop panel ([`ui`]), its HTTP
//! [`client`], the [`keychain`], the [`embedded`] service and file [`export`]. Without
//! it, the crate is the headless service alone.

pub mod api;
pub mod catalog;
#[cfg(feature = "panel")]
pub mod client;
pub mod crypto;
pub mod dispatch;
#[cfg(feature = "panel")]
pub mod embedded;
#[cfg(feature = "panel")]
pub mod export;
#[cfg(feature = "panel")]
pub mod keychain;
pub mod metrics;
#[cfg(feature = "panel")]
pub mod paths;
pub mod search;
pub mod server;
pub mod signing;
pub mod store;
#[cfg(feature = "panel")]
pub mod ui;
pub mod validate;
