//! Roles from directory groups (rule 11): the highest role among the mappings of a member's groups, else
//! the workspace's default; `owner` is never assigned or removed by the directory.

use super::member_entries::member_change;
use super::store::Store;
use crate::audit::{AuditRecord, Cause};
use crate::db::models::{MemberRow, RoleMappingRow, WorkspaceRow};
use crate::db::schema::{members, role_mappings};
use crate::db::DbConnection;
use crate::domain::{ManagedBy, Role};
use crate::ids::{DirectoryGroupId, DirectoryUserId};
use crate::workos::timestamp;
use diesel::prelude::*;
use serde_json::json;
use std::collections::{HashMap, HashSet};

/// The workspace's role mappings, by group.
pub fn mappings(conn: &mut DbConnection, workspace_id: &str) -> QueryResult<Vec<RoleMappingRow>> {
    role_mappings::table
        .filter(role_mappings::workspace_id.eq(workspace_id))
        .order(role_mappings::group_id)
        .select(RoleMappingRow::as_select())
        .load(conn)
}

/// Whether the workspace maps any group to a role (then roles of directory members are not edited by hand).
pub fn has_mappings(conn: &mut DbConnection, workspace_id: &str) -> QueryResult<bool> {
    let count: i64 = role_mappings::table
        .filter(role_mappings::workspace_id.eq(workspace_id))
        .count()
        .get_result(conn)?;
    Ok(count > 0)
}

/// The role the mappings give someone in `groups`, if the workspace has mappings at all.
fn mapped_role(
    mappings: &[RoleMappingRow],
    default_role: Role,
    groups: &[DirectoryGroupId],
) -> Option<Role> {
    if mappings.is_empty() {
        return None;
    }
    let best = mappings
        .iter()
        .filter(|m| groups.contains(&m.group_id))
        .map(|m| m.role)
        .max();
    Some(best.unwrap_or(default_role))
}

/// Whether the directory decides this member's role.
fn directory_decides(member: &MemberRow) -> bool {
    member.managed_by == ManagedBy::Directory && member.role != Role::Owner
}

fn set_role(store: &mut Store<'_>, cause: &Cause, member: &MemberRow, role: Role) {
    if member.role == role {
        return;
    }
    let after = MemberRow {
        role,
        updated_at: timestamp::now(),
        ..member.clone()
    };
    store.audit(
        cause,
        member_change("member.role_changed", Some(member), &after),
    );
    store.put_member(after);
}

/// Recomputes one member's role from the groups they are in, given the workspace's mappings.
pub fn recompute(
    store: &mut Store<'_>,
    cause: &Cause,
    workspace: &WorkspaceRow,
    member: &MemberRow,
    groups: &[DirectoryGroupId],
    mappings: &[RoleMappingRow],
) -> QueryResult<()> {
    if !directory_decides(member) {
        return Ok(());
    }
    if let Some(role) = mapped_role(mappings, workspace.default_role, groups) {
        set_role(store, cause, member, role);
    }
    Ok(())
}

/// A replacement of the workspace's mappings with `wanted` (group, role), done in steps: the mappings and
/// their audit entries first, then every directory member's role, up to a number of members per step. Run
/// to the end in one transaction, or (on SQLite) in a transaction per step while the workspace stays
/// locked (`Database::write_workspace_in_steps`), so one big replacement never holds the single writer
/// for long.
pub struct MappingReplacement {
    wanted: Vec<(DirectoryGroupId, Role)>,
    /// Once the mappings are replaced: the members left to recompute.
    sweep: Option<RoleSweep>,
    replaced: bool,
}

impl MappingReplacement {
    pub fn new(wanted: &[(DirectoryGroupId, Role)]) -> Self {
        Self {
            wanted: wanted.to_vec(),
            sweep: None,
            replaced: false,
        }
    }

    /// The next step, over up to `limit` members; the mappings as stored once the replacement is done.
    pub fn step(
        &mut self,
        store: &mut Store<'_>,
        cause: &Cause,
        workspace: &WorkspaceRow,
        limit: usize,
    ) -> QueryResult<Option<Vec<RoleMappingRow>>> {
        if !self.replaced {
            let rows = mapping_rows(workspace, &self.wanted);
            let had_mappings = replace_rows(store, cause, workspace, &rows)?;
            self.sweep = RoleSweep::plan(store, rows, had_mappings)?;
            self.replaced = true;
            return Ok(None);
        }
        if let Some(sweep) = &mut self.sweep {
            let more = sweep.step(store, workspace, limit, |store, member, role| {
                set_role(store, cause, member, role)
            })?;
            if more {
                return Ok(None);
            }
        }
        Ok(Some(store.role_mappings(&workspace.id)?))
    }
}

/// Replaces the mapping rows and audits the differences; returns whether the workspace had mappings.
fn replace_rows(
    store: &mut Store<'_>,
    cause: &Cause,
    workspace: &WorkspaceRow,
    rows: &[RoleMappingRow],
) -> QueryResult<bool> {
    let before: HashMap<DirectoryGroupId, Role> = store
        .replace_role_mappings(&workspace.id, rows)?
        .into_iter()
        .map(|m| (m.group_id, m.role))
        .collect();
    let after: HashMap<DirectoryGroupId, Role> =
        rows.iter().map(|m| (m.group_id.clone(), m.role)).collect();
    let mut groups: Vec<&DirectoryGroupId> = before.keys().chain(after.keys()).collect();
    groups.sort();
    groups.dedup();
    for g in groups
        .into_iter()
        .filter(|g| before.get(*g) != after.get(*g))
    {
        let entry = AuditRecord {
            workspace_id: &workspace.id,
            action: match (before.contains_key(g), after.contains_key(g)) {
                (false, _) => "role_mapping.created",
                (true, false) => "role_mapping.removed",
                (true, true) => "role_mapping.changed",
            },
            subject_type: "role_mapping",
            subject_id: g.as_str(),
            before: before
                .get(g)
                .map(|role| json!({ "group_id": g, "role": role })),
            after: after
                .get(g)
                .map(|role| json!({ "group_id": g, "role": role })),
        };
        store.audit(cause, entry);
    }
    Ok(!before.is_empty())
}

/// The rows of a set of mappings of the workspace.
fn mapping_rows(
    workspace: &WorkspaceRow,
    wanted: &[(DirectoryGroupId, Role)],
) -> Vec<RoleMappingRow> {
    let now = timestamp::now();
    wanted
        .iter()
        .map(|(group_id, role)| RoleMappingRow {
            workspace_id: workspace.id.clone(),
            group_id: group_id.clone(),
            role: *role,
            created_at: now,
        })
        .collect()
}

/// What replacing the workspace's mappings with `wanted` would do to roles, changing nothing: `each` is
/// called with every directory member whose role it would change, and the role it would get. Reads only,
/// so it runs on a read-only snapshot.
pub fn preview_replacement(
    store: &mut Store<'_>,
    workspace: &WorkspaceRow,
    wanted: &[(DirectoryGroupId, Role)],
    mut each: impl FnMut(&MemberRow, Role),
) -> QueryResult<()> {
    let had_mappings = !store.role_mappings(&workspace.id)?.is_empty();
    let rows = mapping_rows(workspace, wanted);
    roles_under(store, workspace, rows, had_mappings, |_, member, role| {
        each(member, role)
    })
}

/// Calls `each` with every directory member whose role `mappings` would change, and the role they give.
fn roles_under(
    store: &mut Store<'_>,
    workspace: &WorkspaceRow,
    mappings: Vec<RoleMappingRow>,
    had_mappings: bool,
    mut each: impl FnMut(&mut Store<'_>, &MemberRow, Role),
) -> QueryResult<()> {
    let Some(mut sweep) = RoleSweep::plan(store, mappings, had_mappings)? else {
        return Ok(());
    };
    while sweep.step(store, workspace, 1000, &mut each)? {}
    Ok(())
}

/// The last mapping went: the roles mappings gave return to the workspace's default (rule 11's "else
/// `default_role`"), so no mapped privilege outlives its mapping. From then on admins set roles by hand.
pub fn return_to_default_role(
    store: &mut Store<'_>,
    cause: &Cause,
    workspace: &WorkspaceRow,
) -> QueryResult<()> {
    roles_under(store, workspace, Vec::new(), true, |store, member, role| {
        set_role(store, cause, member, role)
    })
}

/// A pass over the directory members whose role a set of mappings may change (rule 11): the highest
/// mapped role of the member's groups, else the workspace's default. When the mappings are emptied (there
/// were some and none are left), the roles mappings gave return to the default, so no mapped privilege
/// outlives its mapping. Only two kinds of member can move: those of the directory users in a mapped group
/// (who may gain a mapped role) and those holding a role other than the default (who may lose one); they
/// are read a batch at a time, so a large workspace is never held in memory whole.
struct RoleSweep {
    mappings: Vec<RoleMappingRow>,
    /// The mapped groups each directory user is in.
    groups_by_user: HashMap<DirectoryUserId, Vec<DirectoryGroupId>>,
    /// Directory users in a mapped group, still to be looked at.
    mapped: Vec<DirectoryUserId>,
    /// Then the members off the default role, after this member id; `None` once all are seen.
    after: Option<String>,
    /// Members looked at already (one both mapped and off the default is decided once).
    decided: HashSet<String>,
}

impl RoleSweep {
    /// The pass over `mappings` (the workspace's from now on), if it can change any role.
    fn plan(
        store: &mut Store<'_>,
        mappings: Vec<RoleMappingRow>,
        had_mappings: bool,
    ) -> QueryResult<Option<Self>> {
        if mappings.is_empty() && !had_mappings {
            return Ok(None);
        }
        let mut groups_by_user: HashMap<DirectoryUserId, Vec<DirectoryGroupId>> = HashMap::new();
        for mapping in &mappings {
            for user in store.users_in_group(&mapping.group_id)? {
                groups_by_user
                    .entry(user)
                    .or_default()
                    .push(mapping.group_id.clone());
            }
        }
        Ok(Some(Self {
            mapped: groups_by_user.keys().cloned().collect(),
            groups_by_user,
            mappings,
            after: Some(String::new()),
            decided: HashSet::new(),
        }))
    }

    /// The role the mappings give a member.
    fn role_of(&self, workspace: &WorkspaceRow, member: &MemberRow) -> Role {
        if self.mappings.is_empty() {
            return workspace.default_role;
        }
        let groups = member
            .directory_user_id
            .as_ref()
            .and_then(|u| self.groups_by_user.get(u))
            .cloned()
            .unwrap_or_default();
        mapped_role(&self.mappings, workspace.default_role, &groups)
            .unwrap_or(workspace.default_role)
    }

    /// Looks at up to `limit` more members, calling `each` with those whose role would change and their new
    /// role; returns whether any are left.
    fn step(
        &mut self,
        store: &mut Store<'_>,
        workspace: &WorkspaceRow,
        limit: usize,
        mut each: impl FnMut(&mut Store<'_>, &MemberRow, Role),
    ) -> QueryResult<bool> {
        let limit = limit.max(1);
        let directory_members = || {
            members::table
                .filter(members::workspace_id.eq(workspace.id.clone()))
                .filter(members::managed_by.eq(ManagedBy::Directory))
                .select(MemberRow::as_select())
                .into_boxed()
        };
        let batch = if !self.mapped.is_empty() {
            let users: Vec<DirectoryUserId> =
                self.mapped.drain(..limit.min(self.mapped.len())).collect();
            let mut found = Vec::new();
            for chunk in users.chunks(500) {
                found.extend(store.load_members(|conn| {
                    directory_members()
                        .filter(members::directory_user_id.eq_any(chunk))
                        .load(conn)
                })?);
            }
            found
        } else if let Some(after) = self.after.clone() {
            let batch = store.load_members(|conn| {
                directory_members()
                    .filter(members::role.ne(workspace.default_role))
                    .filter(members::id.gt(after))
                    .order(members::id)
                    .limit(limit as i64)
                    .load(conn)
            })?;
            self.after = batch.last().map(|m| m.id.clone());
            batch
        } else {
            return Ok(false);
        };
        for member in batch.iter().filter(|m| directory_decides(m)) {
            if !self.decided.insert(member.id.clone()) {
                continue;
            }
            let role = self.role_of(workspace, member);
            if role != member.role {
                each(store, member, role);
            }
        }
        store.release()?;
        Ok(!self.mapped.is_empty() || self.after.is_some())
    }
}

/// Deletes a deleted group's mapping, if it had one; returns whether that was the workspace's last (then
/// the caller returns the mapped roles to the default with [`return_to_default_role`]).
pub fn delete_group_mapping(
    store: &mut Store<'_>,
    cause: &Cause,
    workspace: &WorkspaceRow,
    group_id: &DirectoryGroupId,
) -> QueryResult<bool> {
    let Some(mapping) = store.remove_role_mapping(&workspace.id, group_id)? else {
        return Ok(false);
    };
    let entry = AuditRecord {
        workspace_id: &workspace.id,
        action: "role_mapping.removed",
        subject_type: "role_mapping",
        subject_id: group_id.as_str(),
        before: Some(json!({ "group_id": group_id, "role": mapping.role })),
        after: None,
    };
    store.audit(cause, entry);
    Ok(store.role_mappings(&workspace.id)?.is_empty())
}
