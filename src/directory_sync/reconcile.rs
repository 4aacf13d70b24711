//! The full pull's apply step (rules 14 and 15): bring Rollcall's copy of one directory to exactly the
//! broker's complete listing, through the same rules as webhooks.
//!
//! Records the listing lacks are deleted only if nothing touched them after the pull began (a webhook
//! applied mid-pull wins). Deprovisioning more than the allowed share of the directory's active members
//! is held back unless forced: the rest is applied and the run reports `held`.

use super::{groups, teams, users, ApplyContext, ApplyError, Effects, Stamp};
use crate::db::models::{DirectoryGroupRow, DirectoryUserRow, GroupMembershipRow, MemberRow};
use crate::db::schema::{
    directory_group_memberships as memberships, directory_groups, directory_users,
    members as member_rows,
};
use crate::db::DbConnection;
use crate::domain::MemberStatus;
use crate::workos::events::{DirectoryGroup, DirectoryUser};
use diesel::prelude::*;
use std::collections::{BTreeSet, HashMap, HashSet};

/// A complete listing of one directory from the broker.
pub struct DirectoryListing<'a> {
    pub directory_id: &'a str,
    pub users: &'a [DirectoryUser],
    pub groups: &'a [DirectoryGroup],
    /// `(group id, user id)` pairs.
    pub memberships: &'a BTreeSet<(String, String)>,
}

/// How a pull may deprovision.
#[derive(Debug, Clone, Copy)]
pub struct DeprovisionGuard {
    /// The share of the directory's active members a pull may deprovision (0.2: 20%).
    pub max_share: f64,
    /// Below this many deprovisions, the share does not apply.
    pub min_count: usize,
    /// Apply everything, held or not.
    pub force: bool,
}

/// What a pull changed.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ReconcileCounts {
    pub users_created: usize,
    pub users_updated: usize,
    pub users_deleted: usize,
    pub groups_created: usize,
    pub groups_updated: usize,
    pub groups_deleted: usize,
    pub memberships_added: usize,
    pub memberships_removed: usize,
    pub deprovisioned: usize,
    /// Deprovisions held back by the guard.
    pub held: usize,
}

/// Applies a complete listing; `ctx.event_at` must be when the pull began.
pub fn reconcile_directory(
    conn: &mut DbConnection,
    ctx: &ApplyContext,
    listing: &DirectoryListing<'_>,
    guard: DeprovisionGuard,
) -> Result<ReconcileCounts, ApplyError> {
    let started_at = ctx.event_at;
    // Listed snapshots carry the broker's `updated_at` and no event time of their own: they replace a
    // stored one only when strictly newer, so a pull over an unchanged directory writes nothing.
    let listed_ctx = ApplyContext {
        workspace: ctx.workspace.clone(),
        cause: ctx.cause.clone(),
        event_at: chrono::DateTime::UNIX_EPOCH.naive_utc(),
    };
    let mut counts = ReconcileCounts::default();
    let mut effects = Effects::default();
    let local_users: HashMap<String, DirectoryUserRow> = directory_users::table
        .filter(directory_users::directory_id.eq(listing.directory_id))
        .select(DirectoryUserRow::as_select())
        .load::<DirectoryUserRow>(conn)?
        .into_iter()
        .map(|u| (u.id.clone(), u))
        .collect();
    let active_members: HashMap<String, MemberRow> = member_rows::table
        .filter(member_rows::workspace_id.eq(&ctx.workspace.id))
        .filter(member_rows::status.eq(MemberStatus::Active.as_str()))
        .filter(member_rows::directory_user_id.is_not_null())
        .select(MemberRow::as_select())
        .load::<MemberRow>(conn)?
        .into_iter()
        .filter_map(|m| Some((m.directory_user_id.clone()?, m)))
        .collect();
    let listed: HashSet<&str> = listing.users.iter().map(|u| u.id.as_str()).collect();
    let untouched = |row: &DirectoryUserRow| row.updated_at < started_at;
    let doomed: Vec<&DirectoryUserRow> = local_users
        .values()
        .filter(|u| u.deleted_at.is_none() && !listed.contains(u.id.as_str()) && untouched(u))
        .collect();
    // Rule 15: count what would be deprovisioned before applying anything.
    let deactivated: Vec<&DirectoryUser> = listing
        .users
        .iter()
        .filter(|u| !u.is_active() && active_members.contains_key(&u.id))
        .collect();
    let would_deprovision = doomed
        .iter()
        .filter(|u| active_members.contains_key(&u.id))
        .count()
        + deactivated.len();
    let allowed = (guard.max_share * active_members.len() as f64).floor() as usize;
    let hold = !guard.force && would_deprovision > allowed && would_deprovision >= guard.min_count;
    if hold {
        counts.held = would_deprovision;
    }

    for group in listing.groups {
        let existed = directory_groups::table
            .find(&group.id)
            .count()
            .get_result::<i64>(conn)?
            > 0;
        if groups::apply_group_snapshot(conn, &listed_ctx, group, false)? {
            if existed {
                counts.groups_updated += 1;
            } else {
                counts.groups_created += 1;
            }
        }
    }
    for user in listing.users {
        if hold && !user.is_active() && active_members.contains_key(&user.id) {
            continue;
        }
        let before = local_users.get(&user.id);
        let stored_before = before.map(|b| (b.source_updated_at, b.source_event_at));
        let changed = Stamp::of(user.updated_at(), listed_ctx.event_at).supersedes(stored_before);
        users::apply_user_snapshot(conn, &listed_ctx, user, false, &mut effects)?;
        match (before, changed) {
            (None, _) => counts.users_created += 1,
            (Some(_), true) => counts.users_updated += 1,
            _ => {}
        }
        if active_members.contains_key(&user.id) && !user.is_active() {
            counts.deprovisioned += 1;
        }
    }
    // Memberships the broker lists that Rollcall lacks, then those it has that the broker does not list.
    let local_pairs: Vec<GroupMembershipRow> = memberships::table
        .filter(memberships::directory_id.eq(listing.directory_id))
        .select(GroupMembershipRow::as_select())
        .load(conn)?;
    let local: HashMap<(String, String), &GroupMembershipRow> = local_pairs
        .iter()
        .map(|m| ((m.group_id.clone(), m.user_id.clone()), m))
        .collect();
    let mut touched_users: BTreeSet<String> = BTreeSet::new();
    for (group, user) in listing.memberships {
        let missing = match local.get(&(group.clone(), user.clone())) {
            None => true,
            Some(m) => !m.is_member && m.updated_at < started_at,
        };
        if missing && groups::set_membership(conn, ctx, group, user, listing.directory_id, true)? {
            counts.memberships_added += 1;
            touched_users.insert(user.clone());
        }
    }
    for m in &local_pairs {
        let pair = (m.group_id.clone(), m.user_id.clone());
        if m.is_member
            && m.updated_at < started_at
            && !listing.memberships.contains(&pair)
            && groups::set_membership(
                conn,
                ctx,
                &m.group_id,
                &m.user_id,
                listing.directory_id,
                false,
            )?
        {
            counts.memberships_removed += 1;
            touched_users.insert(m.user_id.clone());
        }
    }
    let touched: Vec<String> = touched_users.into_iter().collect();
    teams::reconcile_directory_users(conn, &ctx.cause, &ctx.workspace, &touched)?;

    // Deletions: users and groups absent from the complete listing, untouched since the pull began.
    if !hold {
        for user in doomed {
            let snapshot: DirectoryUser =
                serde_json::from_str(&user.snapshot).unwrap_or_else(|_| DirectoryUser {
                    id: user.id.clone(),
                    directory_id: user.directory_id.clone(),
                    organization_id: None,
                    idp_id: Some(user.idp_id.clone()),
                    email: user.email.clone(),
                    emails: Vec::new(),
                    first_name: user.first_name.clone(),
                    last_name: user.last_name.clone(),
                    state: Some(user.state.clone()),
                    created_at: None,
                    updated_at: None,
                    groups: Vec::new(),
                });
            // The deletion is stamped with the pull, so it supersedes the stored snapshot.
            let deletion = DirectoryUser {
                updated_at: None,
                ..snapshot
            };
            users::apply_user_snapshot(conn, ctx, &deletion, true, &mut effects)?;
            counts.users_deleted += 1;
            if active_members.contains_key(&user.id) {
                counts.deprovisioned += 1;
            }
        }
    }
    let listed_groups: HashSet<&str> = listing.groups.iter().map(|g| g.id.as_str()).collect();
    let gone_groups: Vec<DirectoryGroupRow> = directory_groups::table
        .filter(directory_groups::directory_id.eq(listing.directory_id))
        .filter(directory_groups::deleted_at.is_null())
        .filter(directory_groups::updated_at.lt(started_at))
        .select(DirectoryGroupRow::as_select())
        .load::<DirectoryGroupRow>(conn)?
        .into_iter()
        .filter(|g| !listed_groups.contains(g.id.as_str()))
        .collect();
    for group in gone_groups {
        let deletion = DirectoryGroup {
            id: group.id.clone(),
            directory_id: group.directory_id.clone(),
            organization_id: None,
            idp_id: Some(group.idp_id.clone()),
            name: Some(group.name.clone()),
            created_at: None,
            updated_at: None,
        };
        if groups::apply_group_snapshot(conn, ctx, &deletion, true)? {
            counts.groups_deleted += 1;
        }
    }
    Ok(counts)
}
