//! Roles from directory groups (rule 11): the highest role among the mappings of a member's groups, else
//! the workspace's default; `owner` is never assigned or removed by the directory.

use super::member_entries::member_change;
use super::store::{self, Store};
use crate::audit::{self, AuditRecord, Cause};
use crate::db::models::{MemberRow, RoleMappingRow, WorkspaceRow};
use crate::db::schema::{members, role_mappings};
use crate::db::DbConnection;
use crate::domain::{ManagedBy, Role};
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
    default_role: &str,
    groups: &[String],
) -> Option<String> {
    if mappings.is_empty() {
        return None;
    }
    let best = mappings
        .iter()
        .filter(|m| groups.contains(&m.group_id))
        .filter_map(|m| m.role.parse::<Role>().ok())
        .max();
    Some(best.map_or(default_role.to_string(), |r| r.as_str().to_string()))
}

/// Whether the directory decides this member's role.
fn directory_decides(member: &MemberRow) -> bool {
    member.managed_by == ManagedBy::Directory.as_str() && member.role != Role::Owner.as_str()
}

fn set_role(store: &mut Store<'_>, cause: &Cause, member: &MemberRow, role: String) {
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
    groups: &[String],
    mappings: &[RoleMappingRow],
) -> QueryResult<()> {
    if !directory_decides(member) {
        return Ok(());
    }
    if let Some(role) = mapped_role(mappings, &workspace.default_role, groups) {
        set_role(store, cause, member, role);
    }
    Ok(())
}

/// Replaces the workspace's mappings with `wanted` (group, role), audits the differences and recomputes
/// every directory member's role.
pub fn replace_mappings(
    store: &mut Store<'_>,
    cause: &Cause,
    workspace: &WorkspaceRow,
    wanted: &[(String, Role)],
) -> QueryResult<Vec<RoleMappingRow>> {
    let rows = mapping_rows(workspace, wanted);
    let had_mappings = store.direct_on_links_and_mappings(&workspace.id, |conn| {
        let before: HashMap<String, String> = mappings(conn, &workspace.id)?
            .into_iter()
            .map(|m| (m.group_id, m.role))
            .collect();
        let after: HashMap<String, String> = rows
            .iter()
            .map(|m| (m.group_id.clone(), m.role.clone()))
            .collect();
        diesel::delete(role_mappings::table.filter(role_mappings::workspace_id.eq(&workspace.id)))
            .execute(conn)?;
        for row in &rows {
            diesel::insert_into(role_mappings::table)
                .values(row)
                .execute(conn)?;
        }
        let mut groups: Vec<&String> = before.keys().chain(after.keys()).collect();
        groups.sort();
        groups.dedup();
        let entries = groups
            .into_iter()
            .filter(|g| before.get(*g) != after.get(*g))
            .map(|g| AuditRecord {
                workspace_id: &workspace.id,
                action: match (before.contains_key(g), after.contains_key(g)) {
                    (false, _) => "role_mapping.created",
                    (true, false) => "role_mapping.removed",
                    (true, true) => "role_mapping.changed",
                },
                subject_type: "role_mapping",
                subject_id: g,
                before: before
                    .get(g)
                    .map(|role| json!({ "group_id": g, "role": role })),
                after: after
                    .get(g)
                    .map(|role| json!({ "group_id": g, "role": role })),
            })
            .collect();
        audit::record_many(conn, cause, entries)?;
        Ok(!before.is_empty())
    })?;
    roles_under(
        store,
        workspace,
        &rows,
        had_mappings,
        |store, member, role| set_role(store, cause, member, role),
    )?;
    store.read(|conn| mappings(conn, &workspace.id))
}

/// The rows of a set of mappings of the workspace.
fn mapping_rows(workspace: &WorkspaceRow, wanted: &[(String, Role)]) -> Vec<RoleMappingRow> {
    let now = timestamp::now();
    wanted
        .iter()
        .map(|(group_id, role)| RoleMappingRow {
            workspace_id: workspace.id.clone(),
            group_id: group_id.clone(),
            role: role.as_str().to_string(),
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
    wanted: &[(String, Role)],
    mut each: impl FnMut(&MemberRow, String),
) -> QueryResult<()> {
    let had_mappings = !store.role_mappings(&workspace.id)?.is_empty();
    let rows = mapping_rows(workspace, wanted);
    roles_under(store, workspace, &rows, had_mappings, |_, member, role| {
        each(member, role)
    })
}

/// Calls `each` with every directory member whose role `mappings` would change, and the role they give
/// (rule 11): the highest mapped role of the member's groups, else the workspace's default. When the
/// mappings are emptied (`had_mappings` and none now), the roles mappings gave return to the default, so
/// no mapped privilege outlives its mapping; without mappings before or after, nothing changes.
fn roles_under(
    store: &mut Store<'_>,
    workspace: &WorkspaceRow,
    mappings: &[RoleMappingRow],
    had_mappings: bool,
    each: impl FnMut(&mut Store<'_>, &MemberRow, String),
) -> QueryResult<()> {
    if mappings.is_empty() {
        if had_mappings {
            let default = workspace.default_role.clone();
            set_directory_roles(store, workspace, &[], |_| Some(default.clone()), each)?;
        }
        return Ok(());
    }
    // Only mapped groups matter: gather, per directory user, the mapped groups they are in.
    let groups_by_user = store.read(|conn| {
        let mut groups_by_user: HashMap<String, Vec<String>> = HashMap::new();
        for mapping in mappings {
            for user in store::users_in_group(conn, &mapping.group_id)? {
                groups_by_user
                    .entry(user)
                    .or_default()
                    .push(mapping.group_id.clone());
            }
        }
        Ok(groups_by_user)
    })?;
    let mapped: Vec<&String> = groups_by_user.keys().collect();
    let role_of = |member: &MemberRow| {
        let groups = member
            .directory_user_id
            .as_ref()
            .and_then(|u| groups_by_user.get(u))
            .cloned()
            .unwrap_or_default();
        mapped_role(mappings, &workspace.default_role, &groups)
    };
    set_directory_roles(store, workspace, &mapped, role_of, each)
}

/// Recomputes the role of every directory member of the workspace from the current mappings.
pub fn recompute_workspace(
    store: &mut Store<'_>,
    cause: &Cause,
    workspace: &WorkspaceRow,
) -> QueryResult<()> {
    let mappings = store.role_mappings(&workspace.id)?;
    roles_under(store, workspace, &mappings, false, |store, member, role| {
        set_role(store, cause, member, role)
    })
}

/// The last mapping went: the roles mappings gave return to the workspace's default (rule 11's "else
/// `default_role`"), so no mapped privilege outlives its mapping. From then on admins set roles by hand.
pub fn return_to_default_role(
    store: &mut Store<'_>,
    cause: &Cause,
    workspace: &WorkspaceRow,
) -> QueryResult<()> {
    roles_under(store, workspace, &[], true, |store, member, role| {
        set_role(store, cause, member, role)
    })
}

/// Calls `each` with the role `role_of` gives each member whose role the directory decides and would
/// change (`None`: left as is), among the only members a change of mappings can move: those of the
/// directory users in `mapped` (who may gain a mapped role) and those holding a role other than the
/// default (who may lose one). A batch at a time, so a large workspace is never held in memory whole.
fn set_directory_roles(
    store: &mut Store<'_>,
    workspace: &WorkspaceRow,
    mapped: &[&String],
    role_of: impl Fn(&MemberRow) -> Option<String>,
    mut each: impl FnMut(&mut Store<'_>, &MemberRow, String),
) -> QueryResult<()> {
    let directory_members = || {
        members::table
            .filter(members::workspace_id.eq(workspace.id.clone()))
            .filter(members::managed_by.eq(ManagedBy::Directory.as_str()))
            .select(MemberRow::as_select())
            .into_boxed()
    };
    // A member both mapped and off the default is seen twice: decided once.
    let mut decided: HashSet<String> = HashSet::new();
    let mut set_batch = |store: &mut Store<'_>, batch: &[MemberRow]| -> QueryResult<()> {
        for member in batch.iter().filter(|m| directory_decides(m)) {
            if !decided.insert(member.id.clone()) {
                continue;
            }
            match role_of(member) {
                Some(role) if role != member.role => each(store, member, role),
                _ => {}
            }
        }
        store.release()
    };
    for chunk in mapped.chunks(500) {
        let batch = store.load_members(|conn| {
            directory_members()
                .filter(members::directory_user_id.eq_any(chunk))
                .load(conn)
        })?;
        set_batch(store, &batch)?;
    }
    let mut after = String::new();
    loop {
        let batch = store.load_members(|conn| {
            directory_members()
                .filter(members::role.ne(workspace.default_role.clone()))
                .filter(members::id.gt(after.clone()))
                .order(members::id)
                .limit(1000)
                .load(conn)
        })?;
        let Some(last) = batch.last() else {
            return Ok(());
        };
        after = last.id.clone();
        set_batch(store, &batch)?;
    }
}

/// Deletes a deleted group's mapping, if it had one; returns whether that was the workspace's last (then
/// the caller returns the mapped roles to the default with [`return_to_default_role`]).
pub fn delete_group_mapping(
    conn: &mut DbConnection,
    cause: &Cause,
    workspace: &WorkspaceRow,
    group_id: &str,
) -> QueryResult<bool> {
    let existing: Option<RoleMappingRow> = role_mappings::table
        .find((&workspace.id, group_id))
        .select(RoleMappingRow::as_select())
        .first(conn)
        .optional()?;
    let Some(mapping) = existing else {
        return Ok(false);
    };
    diesel::delete(role_mappings::table.find((&workspace.id, group_id))).execute(conn)?;
    audit::record(
        conn,
        cause,
        AuditRecord {
            workspace_id: &workspace.id,
            action: "role_mapping.removed",
            subject_type: "role_mapping",
            subject_id: group_id,
            before: Some(json!({ "group_id": group_id, "role": mapping.role })),
            after: None,
        },
    )?;
    Ok(!has_mappings(conn, &workspace.id)?)
}
