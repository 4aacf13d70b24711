//! The change feed (rule 23): every change to a workspace's members, teams, team memberships and roles,
//! in order and without gaps, for the product around Rollcall to follow.
//!
//! The feed is written from the audit log's entries, in the same transaction ([`crate::audit::feed`]),
//! so every change in rule 17 enters it and none enters it that was rolled back. Here: reading it
//! ([`feed`]) and pruning it ([`retention`]).

pub mod feed;
pub mod retention;
