//! The broker (WorkOS Directory Sync) as Rollcall sees it: webhook signatures, event payloads and timestamps.

pub mod events;
pub mod signature;
pub mod timestamp;
