//! Integration tests: the real service over HTTP, on SQLite and on PostgreSQL.

mod admin_api;
mod apply_rules;
mod broker;
mod helpers;
mod process;
mod samples;
mod webhooks;
