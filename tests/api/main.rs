//! Integration tests: the real service over HTTP, on SQLite and on PostgreSQL.

mod admin_api;
mod admin_screens;
mod apply_rules;
mod broker;
mod caller;
mod cli;
mod convergence;
mod event_tail;
mod full_pull;
mod helpers;
mod instances;
mod one_writer;
mod openapi;
mod pool;
mod process;
mod pull_leases;
mod pull_repairs;
mod retention;
mod role_mapping_preview;
mod samples;
mod schedule;
mod slow_clients;
mod teams;
mod tenants;
mod tokens;
mod webhooks;
