//! Teams fed by directory groups (rules 3, 8–10): why each member is in each team, kept exact as groups,
//! links and member status change.

use super::sources::DIRECTORY_GROUP;
pub use super::sources::{insert_sources, ShownSource, SourceKey, TeamMembershipSource};

use super::roles;
use super::store::{self, Store};
use crate::audit::{self, AuditRecord, Cause};
use crate::db::models::{MemberRow, TeamMemberSourceRow, WorkspaceRow};
use crate::db::schema::{
    directory_group_memberships as memberships, directory_groups, members, team_links,
    team_member_sources as sources,
};
use crate::db::DbConnection;
use crate::domain::MemberStatus;
use crate::workos::timestamp;
use diesel::prelude::*;
use serde_json::json;
use std::collections::{BTreeSet, HashMap};

/// The audit entry of a source added to or removed from a team.
fn source_entry<'a>(
    workspace_id: &'a str,
    member_id: &'a str,
    action: &'a str,
    team_id: &str,
    before: Option<&TeamMembershipSource>,
    after: Option<&TeamMembershipSource>,
) -> AuditRecord<'a> {
    let side = |s: Option<&TeamMembershipSource>| {
        s.map(|s| json!({ "team_id": team_id, "source": s.shown() }))
    };
    AuditRecord {
        workspace_id,
        action,
        subject_type: "team_member",
        subject_id: member_id,
        before: side(before),
        after: side(after),
    }
}

const SOURCE_ADDED: &str = "team_member.source_added";
const SOURCE_REMOVED: &str = "team_member.source_removed";

/// Adds sources (skipping any already there) and audits each one added; returns how many.
pub fn add_sources(
    conn: &mut DbConnection,
    cause: &Cause,
    workspace_id: &str,
    rows: &[TeamMemberSourceRow],
) -> QueryResult<usize> {
    let fresh = not_stored(conn, rows)?;
    insert_sources(conn, &fresh)?;
    audit_sources(conn, cause, workspace_id, &fresh, SOURCE_ADDED)?;
    Ok(fresh.len())
}

/// The rows not stored yet (each once): only those are added and audited.
fn not_stored(
    conn: &mut DbConnection,
    rows: &[TeamMemberSourceRow],
) -> QueryResult<Vec<TeamMemberSourceRow>> {
    type Key = (String, String, String, String);
    let key = |r: &TeamMemberSourceRow| -> Key {
        let (t, m) = (r.team_id.clone(), r.member_id.clone());
        (t, m, r.source_type.clone(), r.group_id.clone())
    };
    let mut by_team: HashMap<&str, Vec<&str>> = HashMap::new();
    for row in rows {
        by_team
            .entry(&row.team_id)
            .or_default()
            .push(&row.member_id);
    }
    let mut stored: BTreeSet<Key> = BTreeSet::new();
    for (team, members) in by_team {
        for chunk in members.chunks(500) {
            let found: Vec<Key> = sources::table
                .filter(sources::team_id.eq(team))
                .filter(sources::member_id.eq_any(chunk))
                .select((
                    sources::team_id,
                    sources::member_id,
                    sources::source_type,
                    sources::group_id,
                ))
                .load(conn)?;
            stored.extend(found);
        }
    }
    Ok(rows
        .iter()
        .filter(|row| stored.insert(key(row)))
        .cloned()
        .collect())
}

/// Removes sources and audits each one that was there; returns how many were.
pub fn remove_sources(
    conn: &mut DbConnection,
    cause: &Cause,
    workspace_id: &str,
    rows: &[TeamMemberSourceRow],
) -> QueryResult<usize> {
    let mut removed = Vec::with_capacity(rows.len());
    for row in rows {
        let key = (
            &row.team_id,
            &row.member_id,
            &row.source_type,
            &row.group_id,
        );
        if diesel::delete(sources::table.find(key)).execute(conn)? > 0 {
            removed.push(row.clone());
        }
    }
    audit_sources(conn, cause, workspace_id, &removed, SOURCE_REMOVED)?;
    Ok(removed.len())
}

fn audit_sources(
    conn: &mut DbConnection,
    cause: &Cause,
    workspace_id: &str,
    rows: &[TeamMemberSourceRow],
    action: &str,
) -> QueryResult<()> {
    let entries = rows
        .iter()
        .map(|row| {
            let source = TeamMembershipSource::of(row);
            let (before, after) = if action == SOURCE_ADDED {
                (None, Some(&source))
            } else {
                (Some(&source), None)
            };
            source_entry(
                workspace_id,
                &row.member_id,
                action,
                &row.team_id,
                before,
                after,
            )
        })
        .collect();
    audit::record_many(conn, cause, entries)
}

/// Removes one source and audits it; returns whether it was there.
pub fn remove_source(
    conn: &mut DbConnection,
    cause: &Cause,
    workspace_id: &str,
    team_id: &str,
    member_id: &str,
    source: &TeamMembershipSource,
) -> QueryResult<bool> {
    let row = source.row(team_id, member_id);
    Ok(remove_sources(conn, cause, workspace_id, std::slice::from_ref(&row))? > 0)
}

/// Takes a member out of every team, auditing each source removed (a member being deleted).
pub fn leave_all_teams(
    conn: &mut DbConnection,
    cause: &Cause,
    workspace_id: &str,
    member_id: &str,
) -> QueryResult<()> {
    let existing: Vec<TeamMemberSourceRow> = sources::table
        .filter(sources::member_id.eq(member_id))
        .select(TeamMemberSourceRow::as_select())
        .load(conn)?;
    remove_sources(conn, cause, workspace_id, &existing)?;
    Ok(())
}

/// Whether anything in the workspace follows from directory groups: a link, a role mapping, or a source
/// left through a group.
pub fn derives_from_groups(store: &mut Store<'_>, workspace: &WorkspaceRow) -> QueryResult<bool> {
    if !store.team_links(&workspace.id)?.is_empty()
        || !store.role_mappings(&workspace.id)?.is_empty()
    {
        return Ok(true);
    }
    let group_sources: i64 = store.read(|conn| {
        sources::table
            .inner_join(members::table.on(members::id.eq(sources::member_id)))
            .filter(members::workspace_id.eq(&workspace.id))
            .filter(sources::source_type.eq(DIRECTORY_GROUP))
            .count()
            .get_result(conn)
    })?;
    Ok(group_sources > 0)
}

/// Brings one member's group-derived team sources and role in line with the directory.
pub fn reconcile_member(
    store: &mut Store<'_>,
    cause: &Cause,
    workspace: &WorkspaceRow,
    member: &MemberRow,
) -> QueryResult<()> {
    reconcile_members(store, cause, workspace, std::slice::from_ref(member))
}

/// Brings members' group-derived team sources and roles in line with the directory.
///
/// An active member has a `directory_group` source for every linked group they are in, and no other;
/// a deprovisioned member has no source at all (manual ones included: each removal is audited, so an admin
/// can see what to restore). Manual sources of active members are left alone.
pub fn reconcile_members(
    store: &mut Store<'_>,
    cause: &Cause,
    workspace: &WorkspaceRow,
    members: &[MemberRow],
) -> QueryResult<()> {
    if members.is_empty() {
        return Ok(());
    }
    let links = store.team_links(&workspace.id)?;
    let mut teams_of_group: HashMap<&str, Vec<&str>> = HashMap::new();
    for (group, team) in &links {
        teams_of_group.entry(group).or_default().push(team);
    }
    let mappings = store.role_mappings(&workspace.id)?;
    // Without links or mappings, groups decide nothing: they are not even looked up.
    let from_groups = !links.is_empty() || !mappings.is_empty();
    let member_ids: Vec<&str> = members.iter().map(|m| m.id.as_str()).collect();
    store.prefetch_sources(&member_ids)?;
    if from_groups {
        let users: Vec<&str> = members
            .iter()
            .filter_map(|m| m.directory_user_id.as_deref())
            .collect();
        store.prefetch_groups_of_users(&users)?;
    }
    for member in members {
        let groups = match (&member.directory_user_id, from_groups) {
            (Some(user), true) => store.live_groups_of_user(user)?,
            _ => Vec::new(),
        };
        let active = member.status == MemberStatus::Active.as_str();
        let mut desired: BTreeSet<SourceKey> = BTreeSet::new();
        if active {
            for group in &groups {
                for team in teams_of_group.get(group.as_str()).into_iter().flatten() {
                    desired.insert(SourceKey {
                        team_id: team.to_string(),
                        source: TeamMembershipSource::DirectoryGroup(group.clone()),
                    });
                }
            }
        }
        for key in store.sources(&member.id)? {
            let keep = match &key.source {
                TeamMembershipSource::Manual => active,
                TeamMembershipSource::DirectoryGroup(_) => desired.remove(&key),
            };
            if !keep && store.remove_source(&member.id, &key)? {
                let entry = source_entry(
                    &workspace.id,
                    &member.id,
                    SOURCE_REMOVED,
                    &key.team_id,
                    Some(&key.source),
                    None,
                );
                store.audit(cause, entry);
            }
        }
        for key in desired {
            if store.add_source(&member.id, key.clone())? {
                let entry = source_entry(
                    &workspace.id,
                    &member.id,
                    SOURCE_ADDED,
                    &key.team_id,
                    None,
                    Some(&key.source),
                );
                store.audit(cause, entry);
            }
        }
        if let Some(current) = store.member(&member.id)? {
            roles::recompute(store, cause, workspace, &current, &groups, &mappings)?;
        }
    }
    Ok(())
}

/// Reconciles the members (in `workspace`) of the given directory users.
pub fn reconcile_directory_users(
    store: &mut Store<'_>,
    cause: &Cause,
    workspace: &WorkspaceRow,
    user_ids: &[String],
) -> QueryResult<()> {
    let many = user_ids.len() > 500;
    for batch in user_ids.chunks(500) {
        let ids: Vec<&str> = batch.iter().map(String::as_str).collect();
        store.prefetch_members_of_users(&ids)?;
        let mut found = Vec::new();
        for user in batch {
            found.extend(store.members_of_user(&workspace.id, user)?);
        }
        reconcile_members(store, cause, workspace, &found)?;
        if many {
            // A whole group or directory: hold one batch in memory at a time.
            store.release()?;
        }
    }
    Ok(())
}

/// Rule 10 (and rule 4 for a whole directory): a deleted group's links and role mappings go, and its
/// members are reconciled, so those whose only source it was leave those teams.
pub fn drop_group(
    store: &mut Store<'_>,
    cause: &Cause,
    workspace: &WorkspaceRow,
    group_id: &str,
) -> QueryResult<()> {
    let (users, holders, last_mapping_gone) =
        store.direct_on_links_and_mappings(&workspace.id, |conn| {
            let links: Vec<String> = team_links::table
                .filter(team_links::group_id.eq(group_id))
                .filter(team_links::workspace_id.eq(&workspace.id))
                .select(team_links::team_id)
                .load(conn)?;
            diesel::delete(
                team_links::table
                    .filter(team_links::group_id.eq(group_id))
                    .filter(team_links::workspace_id.eq(&workspace.id)),
            )
            .execute(conn)?;
            let entries = links
                .iter()
                .map(|team| AuditRecord {
                    workspace_id: &workspace.id,
                    action: "team_link.removed",
                    subject_type: "team",
                    subject_id: team,
                    before: Some(json!({ "group_id": group_id })),
                    after: None,
                })
                .collect();
            audit::record_many(conn, cause, entries)?;
            let last_mapping_gone = roles::delete_group_mapping(conn, cause, workspace, group_id)?;
            let users = store::users_in_group(conn, group_id)?;
            // Anyone still holding a source through the group, whatever the membership records say.
            let holders: Vec<String> = sources::table
                .filter(sources::group_id.eq(group_id))
                .select(sources::member_id)
                .distinct()
                .load(conn)?;
            Ok((users, holders, last_mapping_gone))
        })?;
    if last_mapping_gone {
        roles::return_to_default_role(store, cause, workspace)?;
    }
    reconcile_directory_users(store, cause, workspace, &users)?;
    let mut held = Vec::new();
    for member_id in holders {
        if let Some(member) = store.member(&member_id)? {
            held.push(member);
        }
    }
    reconcile_members(store, cause, workspace, &held)
}

/// Why a directory group cannot be linked to or unlinked from a team.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("directory sync is off in this workspace")]
    DirectorySyncInactive,
    #[error("this workspace has no directory groups yet")]
    NoDirectoryGroups,
    #[error("no such directory group in this workspace")]
    GroupNotFound,
    #[error("the group is already linked to this team")]
    AlreadyLinked,
    #[error("the group is not linked to this team")]
    NotLinked,
    #[error(transparent)]
    Db(#[from] diesel::result::Error),
}

/// What unlinking does with the members who came through the group (rule 9).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnlinkMembers {
    /// Their group sources become manual ones: nobody leaves.
    Keep,
    /// Their group sources go: those with no other source leave.
    Remove,
}

/// The live (not deleted) directory groups of a workspace's directories.
pub fn workspace_groups(
    workspace: &WorkspaceRow,
) -> crate::db::schema::directory_groups::BoxedQuery<'static, crate::db::MultiBackend> {
    use crate::db::schema::directories;
    directory_groups::table
        .filter(directory_groups::deleted_at.is_null())
        .filter(
            directory_groups::directory_id.eq_any(
                directories::table
                    .filter(directories::organization_id.eq(workspace.organization_id.clone()))
                    .filter(directories::deleted_at.is_null())
                    .select(directories::id),
            ),
        )
        .into_boxed()
}

/// Rule 8: links a directory group to a team and adds every active member of the group with a
/// `directory_group` source; returns how many were added.
pub fn link_group(
    conn: &mut DbConnection,
    cause: &Cause,
    workspace: &WorkspaceRow,
    team_id: &str,
    group_id: &str,
) -> Result<usize, LinkError> {
    if !workspace.directory_sync_enabled {
        return Err(LinkError::DirectorySyncInactive);
    }
    let groups: i64 = workspace_groups(workspace).count().get_result(conn)?;
    if groups == 0 {
        return Err(LinkError::NoDirectoryGroups);
    }
    let found: i64 = workspace_groups(workspace)
        .filter(directory_groups::id.eq(group_id.to_string()))
        .count()
        .get_result(conn)?;
    if found == 0 {
        return Err(LinkError::GroupNotFound);
    }
    let linked: i64 = team_links::table
        .find((team_id, group_id))
        .count()
        .get_result(conn)?;
    if linked > 0 {
        return Err(LinkError::AlreadyLinked);
    }
    diesel::insert_into(team_links::table)
        .values(crate::db::models::TeamLinkRow {
            team_id: team_id.to_string(),
            group_id: group_id.to_string(),
            workspace_id: workspace.id.clone(),
            created_at: timestamp::now(),
        })
        .execute(conn)?;
    audit::record(
        conn,
        cause,
        AuditRecord {
            workspace_id: &workspace.id,
            action: "team_link.created",
            subject_type: "team",
            subject_id: team_id,
            before: None,
            after: Some(json!({ "group_id": group_id })),
        },
    )?;
    let newcomers: Vec<String> = memberships::table
        .inner_join(
            members::table.on(members::directory_user_id.eq(memberships::user_id.nullable())),
        )
        .filter(memberships::group_id.eq(group_id))
        .filter(memberships::is_member.eq(true))
        .filter(members::workspace_id.eq(&workspace.id))
        .filter(members::status.eq(MemberStatus::Active.as_str()))
        .select(members::id)
        .load(conn)?;
    let source = TeamMembershipSource::DirectoryGroup(group_id.to_string());
    let rows: Vec<TeamMemberSourceRow> = newcomers.iter().map(|m| source.row(team_id, m)).collect();
    Ok(add_sources(conn, cause, &workspace.id, &rows)?)
}

/// Rule 9: unlinks a directory group from a team, keeping or removing the members who came through it;
/// returns how many sources were converted or removed.
pub fn unlink_group(
    conn: &mut DbConnection,
    cause: &Cause,
    workspace: &WorkspaceRow,
    team_id: &str,
    group_id: &str,
    members_choice: UnlinkMembers,
) -> Result<usize, LinkError> {
    let removed = diesel::delete(team_links::table.find((team_id, group_id))).execute(conn)?;
    if removed == 0 {
        return Err(LinkError::NotLinked);
    }
    audit::record(
        conn,
        cause,
        AuditRecord {
            workspace_id: &workspace.id,
            action: "team_link.removed",
            subject_type: "team",
            subject_id: team_id,
            before: Some(json!({ "group_id": group_id })),
            after: Some(
                json!({ "members": match members_choice { UnlinkMembers::Keep => "keep", UnlinkMembers::Remove => "remove" } }),
            ),
        },
    )?;
    let through_group = sources::table
        .filter(sources::team_id.eq(team_id))
        .filter(sources::source_type.eq(DIRECTORY_GROUP))
        .filter(sources::group_id.eq(group_id));
    let holders: Vec<String> = through_group.select(sources::member_id).load(conn)?;
    let group_source = TeamMembershipSource::DirectoryGroup(group_id.to_string());
    let (action, after) = match members_choice {
        UnlinkMembers::Keep => {
            let rows: Vec<TeamMemberSourceRow> = holders
                .iter()
                .map(|m| TeamMembershipSource::Manual.row(team_id, m))
                .collect();
            insert_sources(conn, &rows)?;
            (
                "team_member.source_changed",
                Some(&TeamMembershipSource::Manual),
            )
        }
        UnlinkMembers::Remove => (SOURCE_REMOVED, None),
    };
    diesel::delete(through_group).execute(conn)?;
    let entries = holders
        .iter()
        .map(|m| {
            source_entry(
                &workspace.id,
                m,
                action,
                team_id,
                Some(&group_source),
                after,
            )
        })
        .collect();
    audit::record_many(conn, cause, entries)?;
    Ok(holders.len())
}
