//! Rollcall keeps a SaaS product's workspaces in step with each customer's identity provider.

pub mod access;
pub mod admin_ui;
pub mod api;
pub mod audit;
pub mod broker;
pub mod cli;
pub mod config;
pub mod db;
#[cfg(feature = "dev-tools")]
pub mod dev_broker;
pub mod directory_sync;
pub mod domain;
pub mod event_tail;
pub mod ids;
pub mod intake;
pub mod lists;
pub mod metrics;
pub mod schemas;
pub mod secret;
pub mod startup;
pub mod state;
pub mod sync_runs;
pub mod telemetry;
pub mod tokens;
pub mod workos;
pub mod workspaces;
