//! `dsync.user.created`, `.updated` and `.deleted`: Rollcall's copy of each directory user (rules 3, 6).

use super::context::{ApplyContext, ApplyError, Effects};
use super::stamp::Stamp;
use super::store::Store;
use super::{members, memberships, teams};
use crate::db::models::{DirectoryUserRow, MemberRow};
use crate::ids::{DirectoryId, DirectoryUserId};
use crate::workos::events::DirectoryUser;
use crate::workos::timestamp;
use diesel::QueryResult;
use std::collections::BTreeSet;

/// Stores a user snapshot if it is newer than the stored one (a deletion leaves a tombstone), then brings
/// the user's member in line, teams and role included.
pub fn apply_user_snapshot(
    store: &mut Store<'_>,
    ctx: &ApplyContext,
    user: &DirectoryUser,
    deleted: bool,
    effects: &mut Effects,
) -> Result<(), ApplyError> {
    if let Some(member) = record_user_snapshot(store, ctx, user, deleted, effects)? {
        teams::reconcile_member(store, &ctx.cause, &ctx.workspace, &member)?;
    }
    Ok(())
}

/// As [`apply_user_snapshot`], but leaves the member's teams and role to the caller: returns the member
/// brought in line, if any, for the caller to reconcile once its whole change is done.
///
/// A stale snapshot changes nothing, except that an active one records that the user was once active: such
/// a user has a member whatever order the events came in.
pub fn record_user_snapshot(
    store: &mut Store<'_>,
    ctx: &ApplyContext,
    user: &DirectoryUser,
    deleted: bool,
    effects: &mut Effects,
) -> Result<Option<MemberRow>, ApplyError> {
    let stamp = Stamp::of(user.updated_at(), ctx.event_at);
    let email = user.primary_email();
    let active_with_email = !deleted && user.is_active() && email.is_some();
    let existing = store.user(&user.id)?;
    let now = timestamp::now();
    let row = match existing {
        Some(existing)
            if !stamp.supersedes(Some((existing.source_updated_at, existing.source_event_at))) =>
        {
            if existing.ever_active || !active_with_email {
                return Ok(None);
            }
            DirectoryUserRow {
                ever_active: true,
                updated_at: now,
                ..existing
            }
        }
        existing => {
            let mut row = user_row(user, stamp, deleted, now);
            if let Some(existing) = &existing {
                row.ever_active |= existing.ever_active;
                row.created_at = existing.created_at;
            }
            row
        }
    };
    store.put_user(row.clone());
    if deleted {
        // Rule 20: a deleted user leaves its groups (their member counts no longer include them).
        for group in store.live_groups_of_user(&row.id)? {
            memberships::set_membership(store, ctx, &group, &row.id, &row.directory_id, false)?;
        }
    }
    members::sync_for_user(store, ctx, &row, effects)
}

/// The stored row of a user snapshot with this stamp, as first stored at `now`.
pub fn user_row(
    user: &DirectoryUser,
    stamp: Stamp,
    deleted: bool,
    now: timestamp::Timestamp,
) -> DirectoryUserRow {
    let email = user.primary_email();
    DirectoryUserRow {
        id: user.id.clone(),
        directory_id: user.directory_id.clone(),
        idp_id: user.idp_id.clone().unwrap_or_default(),
        email: email.map(str::to_string),
        first_name: user.first_name.clone(),
        last_name: user.last_name.clone(),
        state: user.normalized_state(),
        snapshot: serde_json::to_string(user).unwrap_or_default(),
        source_updated_at: stamp.updated_at,
        source_event_at: stamp.event_at,
        ever_active: !deleted && user.is_active() && email.is_some(),
        deleted_at: deleted.then_some(stamp.event_at),
        created_at: now,
        updated_at: now,
        role_slugs: serde_json::to_string(&user.role_slugs()).unwrap_or_else(|_| "[]".into()),
    }
}
/// Loads what applying these user snapshots to a workspace will read: the stored users, everyone sharing
/// their `idp_id`s, the members linked to any of them or holding their emails, and those members' team
/// sources and memberships.
pub fn prefetch_users(
    store: &mut Store<'_>,
    workspace_id: &str,
    users: &[&DirectoryUser],
) -> QueryResult<()> {
    let ids: Vec<&DirectoryUserId> = users.iter().map(|u| &u.id).collect();
    store.prefetch_users(&ids)?;
    let mut pairs: BTreeSet<(DirectoryId, String)> = BTreeSet::new();
    for user in users {
        if let Some(idp) = user.idp_id.as_deref().filter(|i| !i.is_empty()) {
            pairs.insert((user.directory_id.clone(), idp.to_string()));
        }
        if let Some(stored) = store.user(&user.id)?.filter(|s| !s.idp_id.is_empty()) {
            pairs.insert((stored.directory_id, stored.idp_id));
        }
    }
    let pairs: Vec<(&DirectoryId, &str)> = pairs.iter().map(|(d, i)| (d, i.as_str())).collect();
    store.prefetch_users_with_idp(&pairs)?;
    let mut people: BTreeSet<DirectoryUserId> = ids.iter().map(|id| (*id).clone()).collect();
    for (directory, idp) in &pairs {
        people.extend(
            store
                .users_with_idp(directory, idp)?
                .into_iter()
                .map(|u| u.id),
        );
    }
    let people: Vec<&DirectoryUserId> = people.iter().collect();
    store.prefetch_members_of_users(&people)?;
    let emails: BTreeSet<String> = users
        .iter()
        .filter_map(|u| u.primary_email().map(members::email_key))
        .collect();
    store.prefetch_members_with_emails(
        workspace_id,
        &emails.iter().map(String::as_str).collect::<Vec<_>>(),
    )?;
    let mut member_ids = Vec::new();
    for person in &people {
        member_ids.extend(
            store
                .members_of_user(workspace_id, person)?
                .into_iter()
                .map(|m| m.id),
        );
    }
    store.prefetch_sources(&member_ids.iter().map(String::as_str).collect::<Vec<_>>())?;
    if !store.team_links(workspace_id)?.is_empty() || !store.role_mappings(workspace_id)?.is_empty()
    {
        store.prefetch_groups_of_users(&people)?;
    }
    Ok(())
}
