//! Integration tests: the real service over HTTP, on SQLite and on PostgreSQL.

mod admin_api;
mod apply_rules;
mod broker;
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
mod pull_repairs;
mod retention;
mod samples;
mod schedule;
mod teams;
mod tokens;
mod webhooks;
