//! `dsync.group.*`: Rollcall's copy of directory groups and of who is in them (rules 6, 10).

use super::store::Store;
use super::{teams, users, ApplyContext, ApplyError, Effects, Stamp};
use crate::audit::Cause;
use crate::db::models::{DirectoryGroupRow, GroupMembershipRow};
use crate::workos::events::{DirectoryGroup, GroupMembershipChange};
use crate::workos::timestamp::{self, Timestamp};

/// Stores a group snapshot if it is newer than the stored one (a deletion leaves a tombstone); returns
/// whether it was.
pub fn apply_group_snapshot(
    store: &mut Store<'_>,
    ctx: &ApplyContext,
    group: &DirectoryGroup,
    deleted: bool,
) -> Result<bool, ApplyError> {
    let stamp = Stamp::of(group.updated_at(), ctx.event_at);
    let existing = store.group(&group.id)?;
    if !stamp.supersedes(
        existing
            .as_ref()
            .map(|e| (e.source_updated_at, e.source_event_at)),
    ) {
        return Ok(false);
    }
    let now = timestamp::now();
    store.put_group(DirectoryGroupRow {
        id: group.id.clone(),
        directory_id: group.directory_id.clone(),
        idp_id: group.idp_id.clone().unwrap_or_default(),
        name: group.name.clone().unwrap_or_default(),
        snapshot: serde_json::to_string(group).unwrap_or_default(),
        source_updated_at: stamp.updated_at,
        source_event_at: stamp.event_at,
        deleted_at: deleted.then_some(stamp.event_at),
        created_at: existing.as_ref().map_or(now, |e| e.created_at),
        updated_at: now,
    });
    if deleted {
        teams::drop_group(store, &ctx.cause, &ctx.workspace, &group.id)?;
    }
    Ok(true)
}

/// `user_added` / `user_removed`: records the pair's membership if this event is the newest seen for it.
/// The user and group in the payload are applied as snapshots too, so unseen ones are created.
pub fn apply_membership(
    store: &mut Store<'_>,
    ctx: &ApplyContext,
    change: &GroupMembershipChange,
    is_member: bool,
    effects: &mut Effects,
) -> Result<(), ApplyError> {
    users::apply_user_snapshot(store, ctx, &change.user, false, effects)?;
    apply_group_snapshot(store, ctx, &change.group, false)?;
    // Rule 20: a user deleted after this change left its groups; a late `user_added` records them out.
    let deleted_since = store
        .user(&change.user.id)?
        .and_then(|u| u.deleted_at)
        .is_some_and(|at| at >= ctx.event_at);
    let is_member = is_member && !deleted_since;
    let group = &change.group.id;
    if set_membership(
        store,
        ctx,
        group,
        &change.user.id,
        &change.directory_id,
        is_member,
    )? {
        let user = std::slice::from_ref(&change.user.id);
        teams::reconcile_directory_users(store, &ctx.cause, &ctx.workspace, user)?;
    }
    Ok(())
}

/// Records whether a user is in a group as of `ctx.event_at`; returns whether that was newer than what
/// was stored.
pub fn set_membership(
    store: &mut Store<'_>,
    ctx: &ApplyContext,
    group_id: &str,
    user_id: &str,
    directory_id: &str,
    is_member: bool,
) -> Result<bool, ApplyError> {
    let existing = store.membership(group_id, user_id)?;
    let event_id = match &ctx.cause {
        Cause::Event(id) => Some(id.as_str()),
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
        group_id: group_id.to_string(),
        user_id: user_id.to_string(),
        directory_id: existing.map_or_else(|| directory_id.to_string(), |e| e.directory_id),
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
