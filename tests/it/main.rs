//! End-to-end tests: the real service on 127.0.0.1:0 over a real SQLite file or a real
//! PostgreSQL database (`backend.rs`), driven over HTTP with reqwest.

#[macro_use]
mod backend;
mod access;
mod bad_input;
mod cli;
mod clients;
mod e2e_auth;
mod e2e_delivery;
mod e2e_openapi;
mod e2e_persistence;
mod e2e_webhooks;
#[cfg(feature = "panel")]
mod embedded;
mod faults;
mod health;
#[cfg(feature = "panel")]
mod keychain;
mod metrics;
#[cfg(feature = "panel")]
mod migrate;
mod outage;
#[cfg(feature = "panel")]
mod panel;
mod postgres;
mod rate_limits;
mod receiver;
mod rekey;
mod replicas;
mod search;
mod support;
