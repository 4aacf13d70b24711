//! Roles from the directory: from directory groups (rule 11: the highest role among the mappings of a
//! member's groups, else the workspace's default), or from the role slugs the identity provider assigns
//! (the highest role among the member's slugs in the workspace's table, else the default), as the
//! workspace's `role_source` says. `owner` is never assigned or removed by the directory.

use super::member_entries::{member_change, RoleOrigin};
use super::store::Store;
use crate::audit::{AuditRecord, Cause};
use crate::db::models::{DirectoryRoleMappingRow, MemberRow, RoleMappingRow, WorkspaceRow};
use crate::db::schema::{members, role_mappings};
use crate::db::DbConnection;
use crate::domain::{ManagedBy, Role, RoleSource};
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

/// What decides the roles of a workspace's directory members.
#[derive(Debug, Clone)]
pub enum RoleRule {
    /// Rule 11: the highest role among the mappings of the member's groups, else the default; nothing
    /// while the workspace maps no group.
    Groups(Vec<RoleMappingRow>),
    /// The highest role among the member's role slugs in the table, else the default. The slug the
    /// broker gives users mapped to no role gives the default too.
    Slugs {
        table: HashMap<String, Role>,
        default_slug: String,
    },
}

impl RoleRule {
    /// The workspace's rule as stored.
    pub fn of(store: &mut Store<'_>, workspace: &WorkspaceRow) -> QueryResult<RoleRule> {
        Ok(match workspace.role_source {
            RoleSource::GroupMappings => RoleRule::Groups(store.role_mappings(&workspace.id)?),
            RoleSource::DirectoryRoles => RoleRule::slugs(
                &store.directory_roles(&workspace.id)?,
                &workspace.default_role_slug,
            ),
        })
    }

    /// The rule of a slug table.
    pub fn slugs(table: &[DirectoryRoleMappingRow], default_slug: &str) -> RoleRule {
        RoleRule::Slugs {
            table: table.iter().map(|m| (m.slug.clone(), m.role)).collect(),
            default_slug: default_slug.to_string(),
        }
    }

    /// Whether the groups a member is in decide anything.
    pub fn needs_groups(&self) -> bool {
        matches!(self, RoleRule::Groups(mappings) if !mappings.is_empty())
    }

    /// Whether the directory decides roles at all (then they are not changed by hand).
    pub fn decides(&self) -> bool {
        match self {
            RoleRule::Groups(mappings) => !mappings.is_empty(),
            RoleRule::Slugs { .. } => true,
        }
    }

    /// The role the rule gives a member in `groups` holding `slugs`, and where it comes from; `None` when
    /// it decides nothing.
    pub fn role(
        &self,
        default_role: Role,
        groups: &[DirectoryGroupId],
        slugs: &[String],
    ) -> Option<(Role, RoleOrigin)> {
        let best = match self {
            RoleRule::Groups(mappings) if mappings.is_empty() => return None,
            RoleRule::Groups(mappings) => mappings
                .iter()
                .filter(|m| groups.contains(&m.group_id))
                .map(|m| (m.role, RoleOrigin::GroupMapping(m.group_id.clone())))
                .max_by(|a, b| a.0.cmp(&b.0).then_with(|| b.1.cmp(&a.1))),
            RoleRule::Slugs {
                table,
                default_slug,
            } => slugs
                .iter()
                .filter(|slug| *slug != default_slug)
                .filter_map(|slug| {
                    Some((*table.get(slug)?, RoleOrigin::DirectoryRole(slug.clone())))
                })
                .max_by(|a, b| a.0.cmp(&b.0).then_with(|| b.1.cmp(&a.1))),
        };
        Some(best.unwrap_or((default_role, RoleOrigin::Default)))
    }
}

/// Where each of these members' roles comes from (members of `workspace`). Where the directory decides
/// nothing (no group mapped, group mappings the source) a role is `Manual`, or `Default` while it is the
/// default, and [`RoleOrigin::why_locked`] of neither applies: `locked` says whether it does.
pub fn origins(
    store: &mut Store<'_>,
    workspace: &WorkspaceRow,
    members: &[MemberRow],
) -> QueryResult<Vec<(RoleOrigin, bool)>> {
    let rule = RoleRule::of(store, workspace)?;
    let users: Vec<&DirectoryUserId> = members
        .iter()
        .filter_map(|m| m.directory_user_id.as_ref())
        .collect();
    if rule.needs_groups() {
        store.prefetch_groups_of_users(&users)?;
    }
    if matches!(rule, RoleRule::Slugs { .. }) {
        store.prefetch_users(&users)?;
    }
    let mut found = Vec::with_capacity(members.len());
    for member in members {
        if !directory_decides(member) {
            found.push((RoleOrigin::Manual, false));
            continue;
        }
        let groups = match (&member.directory_user_id, rule.needs_groups()) {
            (Some(user), true) => store.live_groups_of_user(user)?,
            _ => Vec::new(),
        };
        let slugs = member_slugs(store, member, &rule)?;
        found.push(match rule.role(workspace.default_role, &groups, &slugs) {
            Some((_, origin)) => (origin, true),
            None if member.role == workspace.default_role => (RoleOrigin::Default, false),
            None => (RoleOrigin::Manual, false),
        });
    }
    Ok(found)
}

/// The role slugs a stored directory user holds (its `role_slugs`, a JSON array).
pub fn slugs_of(role_slugs: &str) -> Vec<String> {
    serde_json::from_str(role_slugs).unwrap_or_default()
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

/// Recomputes one member's role from the groups they are in or their role slugs, by the workspace's
/// rule.
pub fn recompute(
    store: &mut Store<'_>,
    cause: &Cause,
    workspace: &WorkspaceRow,
    member: &MemberRow,
    groups: &[DirectoryGroupId],
    rule: &RoleRule,
) -> QueryResult<()> {
    if !directory_decides(member) {
        return Ok(());
    }
    let slugs = member_slugs(store, member, rule)?;
    if let Some((role, _)) = rule.role(workspace.default_role, groups, &slugs) {
        set_role(store, cause, member, role);
    }
    Ok(())
}

/// The role slugs of a member's directory user, when the rule reads them.
fn member_slugs(
    store: &mut Store<'_>,
    member: &MemberRow,
    rule: &RoleRule,
) -> QueryResult<Vec<String>> {
    if !matches!(rule, RoleRule::Slugs { .. }) {
        return Ok(Vec::new());
    }
    let Some(user) = &member.directory_user_id else {
        return Ok(Vec::new());
    };
    Ok(store
        .user(user)?
        .map(|u| slugs_of(&u.role_slugs))
        .unwrap_or_default())
}

/// A change that decides roles anew (a replacement of the group mappings, a change of role source),
/// made in steps by [`InSteps`].
pub trait RoleChange {
    /// What the change answers once done.
    type Done;

    /// Makes the change (its rows and audit entries); the pass over the roles it may move, if any.
    fn make(
        &self,
        store: &mut Store<'_>,
        cause: &Cause,
        workspace: &WorkspaceRow,
    ) -> QueryResult<Option<RoleSweep>>;

    /// What the change answers once every role is recomputed.
    fn done(&self, store: &mut Store<'_>, workspace: &WorkspaceRow) -> QueryResult<Self::Done>;
}

/// A change of roles done in steps: the change and its audit entries first, then every directory member's
/// role, up to a number of members per step. Run to the end in one transaction, or (on SQLite) in a
/// transaction per step while the workspace stays locked (`Database::write_workspace_in_steps`), so one
/// big change never holds the single writer for long.
pub struct InSteps<C> {
    change: C,
    /// Once the change is made: the members left to recompute.
    sweep: Option<RoleSweep>,
    made: bool,
}

impl<C: RoleChange> InSteps<C> {
    pub fn new(change: C) -> Self {
        Self {
            change,
            sweep: None,
            made: false,
        }
    }

    /// The next step, over up to `limit` members; `Some` with the change's answer once it is done.
    pub fn step(
        &mut self,
        store: &mut Store<'_>,
        cause: &Cause,
        workspace: &WorkspaceRow,
        limit: usize,
    ) -> QueryResult<Option<C::Done>> {
        if !self.made {
            self.sweep = self.change.make(store, cause, workspace)?;
            self.made = true;
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
        Ok(Some(self.change.done(store, workspace)?))
    }
}

/// A replacement of the workspace's group mappings with `wanted` (group, role).
pub struct MappingReplacement {
    wanted: Vec<(DirectoryGroupId, Role)>,
}

impl MappingReplacement {
    pub fn new(wanted: &[(DirectoryGroupId, Role)]) -> Self {
        Self {
            wanted: wanted.to_vec(),
        }
    }
}

impl RoleChange for MappingReplacement {
    /// The mappings as stored.
    type Done = Vec<RoleMappingRow>;

    fn make(
        &self,
        store: &mut Store<'_>,
        cause: &Cause,
        workspace: &WorkspaceRow,
    ) -> QueryResult<Option<RoleSweep>> {
        let rows = mapping_rows(workspace, &self.wanted);
        let had_mappings = replace_rows(store, cause, workspace, &rows)?;
        // With roles from the identity provider's role slugs, group mappings decide nothing for now.
        if workspace.role_source != RoleSource::GroupMappings {
            return Ok(None);
        }
        RoleSweep::plan(store, RoleRule::Groups(rows), had_mappings)
    }

    fn done(&self, store: &mut Store<'_>, workspace: &WorkspaceRow) -> QueryResult<Self::Done> {
        store.role_mappings(&workspace.id)
    }
}

/// A workspace's role source and slug table, as an admin sets them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleSetting {
    pub source: RoleSource,
    /// The slug the broker gives users mapped to no role; it gives the default role.
    pub default_slug: String,
    /// Each slug once, never to `owner`.
    pub table: Vec<(String, Role)>,
}

impl RoleSetting {
    /// The setting stored for a workspace.
    pub fn of(store: &mut Store<'_>, workspace: &WorkspaceRow) -> QueryResult<RoleSetting> {
        Ok(RoleSetting {
            source: workspace.role_source,
            default_slug: workspace.default_role_slug.clone(),
            table: store
                .directory_roles(&workspace.id)?
                .into_iter()
                .map(|m| (m.slug, m.role))
                .collect(),
        })
    }

    fn rows(&self, workspace: &WorkspaceRow) -> Vec<DirectoryRoleMappingRow> {
        let now = timestamp::now();
        self.table
            .iter()
            .map(|(slug, role)| DirectoryRoleMappingRow {
                workspace_id: workspace.id.clone(),
                slug: slug.clone(),
                role: *role,
                created_at: now,
            })
            .collect()
    }

    fn shown(&self) -> serde_json::Value {
        let table: Vec<_> = self
            .table
            .iter()
            .map(|(slug, role)| json!({ "slug": slug, "role": role }))
            .collect();
        json!({ "source": self.source, "default_slug": self.default_slug, "mappings": table })
    }

    /// The rule this setting gives the workspace, and whether the workspace's rule before it decided
    /// roles (then roles it gave may have to go back to the default).
    fn rule(
        &self,
        store: &mut Store<'_>,
        workspace: &WorkspaceRow,
    ) -> QueryResult<(RoleRule, bool)> {
        let had_rule = RoleRule::of(store, workspace)?.decides();
        let rule = match self.source {
            RoleSource::GroupMappings => RoleRule::Groups(store.role_mappings(&workspace.id)?),
            RoleSource::DirectoryRoles => {
                RoleRule::slugs(&self.rows(workspace), &self.default_slug)
            }
        };
        Ok((rule, had_rule))
    }
}

/// A change of the workspace's role source and slug table: the setting and its audit entry.
pub struct RoleSettingChange {
    wanted: RoleSetting,
}

impl RoleSettingChange {
    pub fn new(wanted: RoleSetting) -> Self {
        Self { wanted }
    }
}

impl RoleChange for RoleSettingChange {
    type Done = ();

    fn make(
        &self,
        store: &mut Store<'_>,
        cause: &Cause,
        workspace: &WorkspaceRow,
    ) -> QueryResult<Option<RoleSweep>> {
        let before = RoleSetting::of(store, workspace)?;
        let (rule, had_rule) = self.wanted.rule(store, workspace)?;
        store.replace_directory_roles(&workspace.id, &self.wanted.rows(workspace))?;
        store.set_role_source(&workspace.id, self.wanted.source, &self.wanted.default_slug)?;
        if before != self.wanted {
            store.audit(
                cause,
                AuditRecord {
                    workspace_id: &workspace.id,
                    action: "role_source.changed",
                    subject_type: "workspace",
                    subject_id: &workspace.id,
                    before: Some(before.shown()),
                    after: Some(self.wanted.shown()),
                },
            );
        }
        RoleSweep::plan(store, rule, had_rule)
    }

    fn done(&self, _: &mut Store<'_>, _: &WorkspaceRow) -> QueryResult<()> {
        Ok(())
    }
}

/// What changing the workspace's role setting to `wanted` would do to roles, changing nothing (as
/// [`preview_replacement`]).
pub fn preview_setting(
    store: &mut Store<'_>,
    workspace: &WorkspaceRow,
    wanted: &RoleSetting,
    mut each: impl FnMut(&MemberRow, Role),
) -> QueryResult<()> {
    let (rule, had_rule) = wanted.rule(store, workspace)?;
    roles_under(store, workspace, rule, had_rule, |_, member, role| {
        each(member, role)
    })
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
    if workspace.role_source != RoleSource::GroupMappings {
        return Ok(());
    }
    let had_mappings = !store.role_mappings(&workspace.id)?.is_empty();
    let rule = RoleRule::Groups(mapping_rows(workspace, wanted));
    roles_under(store, workspace, rule, had_mappings, |_, member, role| {
        each(member, role)
    })
}

/// Calls `each` with every directory member whose role `rule` would change, and the role it gives.
fn roles_under(
    store: &mut Store<'_>,
    workspace: &WorkspaceRow,
    rule: RoleRule,
    had_rule: bool,
    mut each: impl FnMut(&mut Store<'_>, &MemberRow, Role),
) -> QueryResult<()> {
    let Some(mut sweep) = RoleSweep::plan(store, rule, had_rule)? else {
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
    if workspace.role_source != RoleSource::GroupMappings {
        return Ok(());
    }
    roles_under(
        store,
        workspace,
        RoleRule::Groups(Vec::new()),
        true,
        |store, member, role| set_role(store, cause, member, role),
    )
}

/// A pass over the directory members whose role a rule may change. With group mappings (rule 11): the
/// highest mapped role of the member's groups, else the workspace's default; when the mappings are emptied
/// (there were some and none are left), the roles mappings gave return to the default, so no mapped
/// privilege outlives its mapping. Only two kinds of member can move then: those of the directory users in
/// a mapped group (who may gain a mapped role) and those holding a role other than the default (who may
/// lose one). With a slug table every directory member is looked at, their users' slugs read with them.
/// Members are read a batch at a time, so a large workspace is never held in memory whole.
pub struct RoleSweep {
    rule: RoleRule,
    /// The mapped groups each directory user is in.
    groups_by_user: HashMap<DirectoryUserId, Vec<DirectoryGroupId>>,
    /// Directory users in a mapped group, still to be looked at.
    mapped: Vec<DirectoryUserId>,
    /// Then the members off the default role (every directory member, with a slug table), after this
    /// member id; `None` once all are seen.
    after: Option<String>,
    /// Members looked at already (one both mapped and off the default is decided once).
    decided: HashSet<String>,
}

impl RoleSweep {
    /// The pass over `rule` (the workspace's from now on), if it can change any role: `had_rule` says
    /// whether the rule before decided roles (then even an empty one may).
    fn plan(store: &mut Store<'_>, rule: RoleRule, had_rule: bool) -> QueryResult<Option<Self>> {
        if !rule.decides() && !had_rule {
            return Ok(None);
        }
        let mut groups_by_user: HashMap<DirectoryUserId, Vec<DirectoryGroupId>> = HashMap::new();
        if let RoleRule::Groups(mappings) = &rule {
            for mapping in mappings {
                for user in store.users_in_group(&mapping.group_id)? {
                    groups_by_user
                        .entry(user)
                        .or_default()
                        .push(mapping.group_id.clone());
                }
            }
        }
        Ok(Some(Self {
            mapped: groups_by_user.keys().cloned().collect(),
            groups_by_user,
            rule,
            after: Some(String::new()),
            decided: HashSet::new(),
        }))
    }

    /// The role the rule gives a member.
    fn role_of(
        &self,
        store: &mut Store<'_>,
        workspace: &WorkspaceRow,
        member: &MemberRow,
    ) -> QueryResult<Role> {
        let groups = member
            .directory_user_id
            .as_ref()
            .and_then(|u| self.groups_by_user.get(u))
            .cloned()
            .unwrap_or_default();
        let slugs = member_slugs(store, member, &self.rule)?;
        Ok(self
            .rule
            .role(workspace.default_role, &groups, &slugs)
            .map_or(workspace.default_role, |(role, _)| role))
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
            let every_member = matches!(self.rule, RoleRule::Slugs { .. });
            let batch = store.load_members(|conn| {
                let mut q = directory_members()
                    .filter(members::id.gt(after))
                    .order(members::id)
                    .limit(limit as i64);
                if !every_member {
                    q = q.filter(members::role.ne(workspace.default_role));
                }
                q.load(conn)
            })?;
            let users: Vec<&DirectoryUserId> = batch
                .iter()
                .filter_map(|m| m.directory_user_id.as_ref())
                .collect();
            if every_member {
                store.prefetch_users(&users)?;
            }
            self.after = batch.last().map(|m| m.id.clone());
            batch
        } else {
            return Ok(false);
        };
        for member in batch.iter().filter(|m| directory_decides(m)) {
            if !self.decided.insert(member.id.clone()) {
                continue;
            }
            let role = self.role_of(store, workspace, member)?;
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
