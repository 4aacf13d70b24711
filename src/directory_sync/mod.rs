//! The apply engine: the rules that turn the broker's directory into workspace members (SPEC rules 1–7, 10).
//!
//! Every rule is a plain synchronous function over a [`Store`], the working set of the caller's
//! transaction, so webhook intake, the full pull and the admin API share them. Ordering is decided per
//! record: a snapshot applies only if its [`Stamp`] is newer than the stored one, so any delivery order ends
//! in the same state.
//!
//! Below the rules: `stamp`, `outcome` and `context` (the types every rule uses), `sources` and
//! `member_entries` (how team sources and members are stored and shown), and `store`. `events` is on top:
//! it picks the rule an event goes to.

pub mod context;
pub mod directories;
mod events;
pub mod groups;
mod member_entries;
pub mod members;
pub mod memberships;
pub mod outcome;
pub mod reconcile;
pub mod roles;
mod sources;
pub mod stamp;
pub mod store;
pub mod teams;
pub mod users;
pub mod workspace;

pub use context::{ApplyContext, ApplyError, Effects};
pub use events::{apply_event, prefetch_events};
pub use outcome::{ApplyOutcome, SkipReason};
pub use stamp::Stamp;
pub use store::{with_store, Store};
