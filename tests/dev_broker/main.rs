//! The dev broker over real HTTP: the pull API's pages, errors and injected faults, the Events API, the
//! control API, and the signed webhooks it sends, down to the official Python SDK reading it.

mod control_api;
mod directories;
mod events_api;
mod helpers;
mod pull_api;
#[path = "../support/python.rs"]
mod python;
mod receiver;
mod sdk;
mod webhooks_and_faults;
