//! Teams fed by directory groups (rules 3, 8–10): why each member is in each team, kept exact as groups,
//! links and member status change.

use super::roles;
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
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};

/// Why a member is in a team.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum TeamMembershipSource {
    /// Added by an admin.
    Manual,
    /// Through a directory group linked to the team.
    DirectoryGroup(String),
}

const MANUAL: &str = "manual";
const DIRECTORY_GROUP: &str = "directory_group";

impl TeamMembershipSource {
    /// Reads a stored source.
    pub fn of(row: &TeamMemberSourceRow) -> Self {
        if row.source_type == DIRECTORY_GROUP {
            Self::DirectoryGroup(row.group_id.clone())
        } else {
            Self::Manual
        }
    }

    /// The source as the API and the audit log show it.
    pub fn to_json(&self) -> Value {
        match self {
            Self::Manual => json!({ "type": MANUAL }),
            Self::DirectoryGroup(group_id) => {
                json!({ "type": DIRECTORY_GROUP, "group_id": group_id })
            }
        }
    }

    /// The stored row of this source.
    pub fn row(&self, team_id: &str, member_id: &str) -> TeamMemberSourceRow {
        let (source_type, group_id) = match self {
            Self::Manual => (MANUAL, ""),
            Self::DirectoryGroup(group_id) => (DIRECTORY_GROUP, group_id.as_str()),
        };
        TeamMemberSourceRow {
            team_id: team_id.to_string(),
            member_id: member_id.to_string(),
            source_type: source_type.to_string(),
            group_id: group_id.to_string(),
            created_at: timestamp::now(),
        }
    }
}

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
        s.map(|s| json!({ "team_id": team_id, "source": s.to_json() }))
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

/// Adds sources (skipping any already there) and audits each one added; returns how many.
pub fn add_sources(
    conn: &mut DbConnection,
    cause: &Cause,
    workspace_id: &str,
    rows: &[TeamMemberSourceRow],
) -> QueryResult<usize> {
    insert_sources(conn, rows)?;
    audit_sources(conn, cause, workspace_id, rows, "team_member.source_added")?;
    Ok(rows.len())
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
    audit_sources(
        conn,
        cause,
        workspace_id,
        &removed,
        "team_member.source_removed",
    )?;
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
            let (before, after) = if action == "team_member.source_added" {
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

/// Inserts source rows in batches, skipping any already there.
fn insert_sources(conn: &mut DbConnection, rows: &[TeamMemberSourceRow]) -> QueryResult<()> {
    for chunk in rows.chunks(1000) {
        match conn {
            DbConnection::Sqlite(c) => diesel::insert_or_ignore_into(sources::table)
                .values(chunk)
                .execute(c)?,
            DbConnection::Postgresql(c) => diesel::insert_into(sources::table)
                .values(chunk)
                .on_conflict_do_nothing()
                .execute(c)?,
        };
    }
    Ok(())
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

/// The groups each of these directory users is in now (deleted groups excluded).
fn groups_of_users(
    conn: &mut DbConnection,
    user_ids: &[&str],
) -> QueryResult<HashMap<String, Vec<String>>> {
    let mut by_user: HashMap<String, Vec<String>> = HashMap::new();
    if user_ids.is_empty() {
        return Ok(by_user);
    }
    let pairs: Vec<(String, String)> = memberships::table
        .inner_join(directory_groups::table.on(directory_groups::id.eq(memberships::group_id)))
        .filter(memberships::user_id.eq_any(user_ids))
        .filter(memberships::is_member.eq(true))
        .filter(directory_groups::deleted_at.is_null())
        .select((memberships::user_id, memberships::group_id))
        .load(conn)?;
    for (user, group) in pairs {
        by_user.entry(user).or_default().push(group);
    }
    Ok(by_user)
}

/// Whether anything in the workspace follows from directory groups: a link, a role mapping, or a source
/// left through a group.
pub fn derives_from_groups(conn: &mut DbConnection, workspace: &WorkspaceRow) -> QueryResult<bool> {
    let links: i64 = team_links::table
        .filter(team_links::workspace_id.eq(&workspace.id))
        .count()
        .get_result(conn)?;
    if links > 0 || roles::has_mappings(conn, &workspace.id)? {
        return Ok(true);
    }
    let group_sources: i64 = sources::table
        .inner_join(members::table.on(members::id.eq(sources::member_id)))
        .filter(members::workspace_id.eq(&workspace.id))
        .filter(sources::source_type.eq(DIRECTORY_GROUP))
        .count()
        .get_result(conn)?;
    Ok(group_sources > 0)
}

/// Brings one member's group-derived team sources and role in line with the directory.
pub fn reconcile_member(
    conn: &mut DbConnection,
    cause: &Cause,
    workspace: &WorkspaceRow,
    member: &MemberRow,
) -> QueryResult<()> {
    reconcile_members(conn, cause, workspace, std::slice::from_ref(member))
}

/// Brings members' group-derived team sources and roles in line with the directory, a batch at a time.
///
/// An active member has a `directory_group` source for every linked group they are in, and no other;
/// a deprovisioned member has no source at all (manual ones included: each removal is audited, so an admin
/// can see what to restore). Manual sources of active members are left alone.
pub fn reconcile_members(
    conn: &mut DbConnection,
    cause: &Cause,
    workspace: &WorkspaceRow,
    members: &[MemberRow],
) -> QueryResult<()> {
    if members.is_empty() {
        return Ok(());
    }
    let mut teams_of_group: HashMap<String, Vec<String>> = HashMap::new();
    let links: Vec<(String, String)> = team_links::table
        .filter(team_links::workspace_id.eq(&workspace.id))
        .select((team_links::group_id, team_links::team_id))
        .load(conn)?;
    for (group, team) in links {
        teams_of_group.entry(group).or_default().push(team);
    }
    let mappings = roles::mappings(conn, &workspace.id)?;
    for batch in members.chunks(500) {
        let user_ids: Vec<&str> = batch
            .iter()
            .filter_map(|m| m.directory_user_id.as_deref())
            .collect();
        let groups_by_user = groups_of_users(conn, &user_ids)?;
        let member_ids: Vec<&str> = batch.iter().map(|m| m.id.as_str()).collect();
        let mut existing_by_member: HashMap<String, Vec<TeamMemberSourceRow>> = HashMap::new();
        let existing: Vec<TeamMemberSourceRow> = sources::table
            .filter(sources::member_id.eq_any(&member_ids))
            .select(TeamMemberSourceRow::as_select())
            .load(conn)?;
        for row in existing {
            existing_by_member
                .entry(row.member_id.clone())
                .or_default()
                .push(row);
        }
        let no_groups = Vec::new();
        let groups_of = |member: &MemberRow| {
            member
                .directory_user_id
                .as_ref()
                .and_then(|u| groups_by_user.get(u))
                .unwrap_or(&no_groups)
        };
        let mut leaving = Vec::new();
        let mut joining = Vec::new();
        for member in batch {
            let groups = groups_of(member);
            let active = member.status == MemberStatus::Active.as_str();
            let mut desired: HashSet<(String, String)> = HashSet::new();
            if active {
                for group in groups {
                    for team in teams_of_group.get(group).into_iter().flatten() {
                        desired.insert((team.clone(), group.clone()));
                    }
                }
            }
            for row in existing_by_member.remove(&member.id).unwrap_or_default() {
                let keep = match TeamMembershipSource::of(&row) {
                    TeamMembershipSource::Manual => active,
                    TeamMembershipSource::DirectoryGroup(group) => {
                        desired.remove(&(row.team_id.clone(), group))
                    }
                };
                if !keep {
                    leaving.push(row);
                }
            }
            joining.extend(desired.into_iter().map(|(team, group)| {
                TeamMembershipSource::DirectoryGroup(group).row(&team, &member.id)
            }));
        }
        remove_sources(conn, cause, &workspace.id, &leaving)?;
        add_sources(conn, cause, &workspace.id, &joining)?;
        for member in batch {
            roles::recompute(conn, cause, workspace, member, groups_of(member), &mappings)?;
        }
    }
    Ok(())
}

/// Reconciles the members (in `workspace`) of the given directory users.
pub fn reconcile_directory_users(
    conn: &mut DbConnection,
    cause: &Cause,
    workspace: &WorkspaceRow,
    user_ids: &[String],
) -> QueryResult<()> {
    for batch in user_ids.chunks(500) {
        let found: Vec<MemberRow> = members::table
            .filter(members::directory_user_id.eq_any(batch))
            .filter(members::workspace_id.eq(&workspace.id))
            .select(MemberRow::as_select())
            .load(conn)?;
        reconcile_members(conn, cause, workspace, &found)?;
    }
    Ok(())
}

/// The directory users currently in a group.
pub fn users_in_group(conn: &mut DbConnection, group_id: &str) -> QueryResult<Vec<String>> {
    memberships::table
        .filter(memberships::group_id.eq(group_id))
        .filter(memberships::is_member.eq(true))
        .select(memberships::user_id)
        .load(conn)
}

/// Rule 10 (and rule 4 for a whole directory): a deleted group's links and role mappings go, and its
/// members are reconciled, so those whose only source it was leave those teams.
pub fn drop_group(
    conn: &mut DbConnection,
    cause: &Cause,
    workspace: &WorkspaceRow,
    group_id: &str,
) -> QueryResult<()> {
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
    roles::drop_group_mapping(conn, cause, workspace, group_id)?;
    let users = users_in_group(conn, group_id)?;
    reconcile_directory_users(conn, cause, workspace, &users)?;
    // Anyone still holding a source through the group, whatever the membership records say.
    let holders: Vec<String> = sources::table
        .filter(sources::group_id.eq(group_id))
        .select(sources::member_id)
        .distinct()
        .load(conn)?;
    for member_id in holders {
        let member: Option<MemberRow> = members::table
            .find(&member_id)
            .select(MemberRow::as_select())
            .first(conn)
            .optional()?;
        if let Some(member) = member {
            reconcile_member(conn, cause, workspace, &member)?;
        }
    }
    Ok(())
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
        UnlinkMembers::Remove => ("team_member.source_removed", None),
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
