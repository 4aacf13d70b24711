//! Integration tests: the real service over HTTP, on SQLite and on PostgreSQL.

mod admin_api;
mod admin_screens;
mod apply_rules;
mod broker;
mod caller;
mod changes;
mod cli;
mod convergence;
mod directory_roles;
mod event_tail;
pub(crate) mod full_pull;
mod helpers;
mod hostile;
mod instances;
mod invalid_deliveries;
mod late_snapshots;
mod member_search;
mod one_writer;
mod openapi;
mod pool;
mod process;
mod pull_leases;
mod pull_repairs;
#[path = "../support/python.rs"]
mod python;
mod retention;
mod role_mapping_preview;
mod samples;
mod schedule;
mod scim;
mod slow_clients;
mod statistics;
mod teams;
mod tenants;
mod tokens;
mod webhook_endpoints;
mod webhooks;
