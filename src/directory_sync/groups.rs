//! `dsync.group.*`: Rollcall's copy of directory groups and of who is in them (rules 6, 10).

use super::context::{ApplyContext, ApplyError, Effects};
use super::stamp::Stamp;
use super::store::Store;
use super::teams::{self, Reconciliation};
use super::{memberships, users};
use crate::db::models::DirectoryGroupRow;
use crate::workos::events::{DirectoryGroup, GroupMembershipChange};
use crate::workos::timestamp;

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
    // The user's snapshot and the membership both move the member: their teams and role follow once,
    // after both.
    let mut reconciliation = Reconciliation::default();
    if let Some(member) = users::record_user_snapshot(store, ctx, &change.user, false, effects)? {
        reconciliation.add_member(&member);
    }
    apply_group_snapshot(store, ctx, &change.group, false)?;
    // Rule 20: a user deleted after this change left its groups; a late `user_added` records them out.
    let deleted_since = store
        .user(&change.user.id)?
        .and_then(|u| u.deleted_at)
        .is_some_and(|at| at >= ctx.event_at);
    let is_member = is_member && !deleted_since;
    let group = &change.group.id;
    if memberships::set_membership(
        store,
        ctx,
        group,
        &change.user.id,
        &change.directory_id,
        is_member,
    )? {
        reconciliation.add_user(&change.user.id);
    }
    Ok(reconciliation.run(store, &ctx.cause, &ctx.workspace)?)
}
