//! Rollcall's record of who is in which directory group: each pair's latest membership change wins
//! (rules 6, 20).

use super::context::{ApplyContext, ApplyError};
use super::store::Store;
use crate::audit::Cause;
use crate::db::models::GroupMembershipRow;
use crate::ids::{DirectoryGroupId, DirectoryId, DirectoryUserId};
use crate::workos::timestamp::{self, Timestamp};

/// Records whether a user is in a group as of `ctx.event_at`; returns whether that was newer than what
/// was stored.
pub fn set_membership(
    store: &mut Store<'_>,
    ctx: &ApplyContext,
    group_id: &DirectoryGroupId,
    user_id: &DirectoryUserId,
    directory_id: &DirectoryId,
    is_member: bool,
) -> Result<bool, ApplyError> {
    let existing = store.membership(group_id, user_id)?;
    let event_id = match &ctx.cause {
        Cause::Event(id) | Cause::Scim(id) => Some(id.as_str()),
        _ => None,
    };
    if existing.as_ref().is_some_and(|e| {
        !is_newer_membership_event(
            (ctx.event_at, event_id),
            (e.last_event_at, e.last_event_id.as_deref()),
        )
    }) {
        return Ok(false);
    }
    store.put_membership(GroupMembershipRow {
        group_id: group_id.clone(),
        user_id: user_id.clone(),
        directory_id: existing.map_or_else(|| directory_id.clone(), |e| e.directory_id),
        is_member,
        last_event_at: ctx.event_at,
        updated_at: timestamp::now(),
        last_event_id: event_id.map(str::to_string),
    });
    Ok(true)
}

/// Whether a membership change (its time and, from an event, its id) is newer than the one stored: a later
/// time, or the same millisecond and a later event id (the broker mints ids in time order, so the outcome
/// does not depend on which arrived first). A change without an id (a full pull's) never wins a tie.
fn is_newer_membership_event(
    change: (Timestamp, Option<&str>),
    stored: (Timestamp, Option<&str>),
) -> bool {
    match change.0.cmp(&stored.0) {
        std::cmp::Ordering::Greater => true,
        std::cmp::Ordering::Less => false,
        std::cmp::Ordering::Equal => {
            matches!((change.1, stored.1), (Some(change), Some(stored)) if change > stored)
        }
    }
}
