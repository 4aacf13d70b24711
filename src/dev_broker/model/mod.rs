//! The directory held in memory: directories, users, groups and memberships, read as the pull API pages
//! them and changed by operations that each produce the `dsync.*` events the broker would send.
//!
//! Objects live in slots numbered in creation order, so a list is an ordered set of slot numbers and a
//! page is a range of it. Deleted objects leave an empty slot; their ids still resolve as cursors.
//!
//! The model's parts: `records` (what it holds) and `directory` (the model itself, over them); `users`,
//! `groups` and `memberships` (the changes to them), `events` (the `dsync.*` events changes produce),
//! `pages` (lists and their cursors) and `random_changes`. This file only names them: none of them
//! imports it.

mod directory;
mod error;
mod events;
mod groups;
mod memberships;
mod pages;
mod random_changes;
mod records;
mod users;

pub use directory::{Counts, DirectoryModel, DirectoryTruth, NewDirectory};
pub use error::ModelError;
pub use groups::NewGroup;
pub use pages::{GroupScope, Order, PageQuery, UserScope};
pub use records::{parse_user_state, UserState};
pub(crate) use records::{Attributes, GroupRecord, UserRecord};
pub use users::{NewUser, UserChanges};
