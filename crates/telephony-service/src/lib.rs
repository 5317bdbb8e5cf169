//! The telephony-gateway service: the composition root that turns the library crates into the
//! product a platform runs.
//!
//! It owns what is HTTP: the REST API under `/v1` ([`api`]), the carrier webhooks under
//! `/webhooks/...` ([`webhooks`]), the operator endpoints (`/healthz`, `/readyz`, `/metrics`,
//! `/openapi.json`), error mapping to `{"error": {"code", "message"}}` ([`error`]), request
//! bounds, metrics and graceful shutdown. [`app::app`] builds the whole service from an
//! [`AppState`] (the carriers' webhooks answered before routing, the rest through
//! [`app::router`]), so tests drive it with `tower::ServiceExt::oneshot` and no socket;
//! [`commands`] holds what the binary's subcommands do.
//!
//! # What it must not know
//!
//! SQL (the registry owns the database), cryptography beyond minting per-call tokens (the vault
//! and the webhook crate own it), carriers' wire formats (the carrier crate), TwiML (the routing
//! crate). Handlers translate between HTTP and those crates and do nothing else.

pub mod api;
pub mod app;
pub mod auth;
pub mod auth_limit;
pub mod call_token;
pub mod commands;
pub mod config;
pub mod error;
pub mod extract;
pub mod metrics;
pub mod openapi;
pub mod ops;
pub mod outbound;
pub mod route_cache;
pub mod server;
pub mod state;
pub mod telemetry;
pub mod test_call;
pub mod webhooks;

pub use app::{App, app, router};
pub use config::Config;
pub use state::AppState;
