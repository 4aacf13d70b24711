//! Teams fed by directory groups (rules 3, 8–10): why each member is in each team, kept exact as groups,
//! links and member status change. Every change to a member's sources goes through the [`Store`].

pub use super::sources::{ShownSource, SourceKey, TeamMembershipSource};

use super::roles;
use super::sources::DIRECTORY_GROUP;
use super::store::{with_store, Store};
use crate::audit::{AuditRecord, Cause};
use crate::db::models::{MemberRow, TeamLinkRow, TeamMemberSourceRow, WorkspaceRow};
use crate::db::schema::{
    directory_group_memberships as memberships, directory_groups, members,
    team_member_sources as sources,
};
use crate::db::DbConnection;
use crate::domain::MemberStatus;
use crate::ids::{DirectoryGroupId, DirectoryUserId};
use crate::workos::timestamp;
use diesel::prelude::*;
use serde_json::json;
use std::collections::{BTreeSet, HashMap};

/// The audit entry of a source added to, removed from or changed in a team. Its `after` side always
/// holds the member's sources in the team after the change (`team_sources`, empty once they left it), so
/// the change feed can tell a member joining or leaving a team from one source among others changing.
fn source_entry<'a>(
    store: &mut Store<'_>,
    workspace_id: &'a str,
    member_id: &'a str,
    action: &'a str,
    team_id: &str,
    before: Option<&TeamMembershipSource>,
    after: Option<&TeamMembershipSource>,
) -> QueryResult<AuditRecord<'a>> {
    let team_sources: Vec<ShownSource> = store
        .sources(member_id)?
        .iter()
        .filter(|key| key.team_id == team_id)
        .map(|key| key.source.shown())
        .collect();
    let mut after_side = json!({ "team_id": team_id, "team_sources": team_sources });
    if let Some(source) = after {
        after_side["source"] = json!(source.shown());
    }
    Ok(AuditRecord {
        workspace_id,
        action,
        subject_type: "team_member",
        subject_id: member_id,
        before: before.map(|s| json!({ "team_id": team_id, "source": s.shown() })),
        after: Some(after_side),
    })
}

const SOURCE_ADDED: &str = "team_member.source_added";
const SOURCE_REMOVED: &str = "team_member.source_removed";

/// Adds a source to a member and audits it; returns whether it was new.
fn add_source(
    store: &mut Store<'_>,
    cause: &Cause,
    workspace_id: &str,
    member_id: &str,
    key: SourceKey,
) -> QueryResult<bool> {
    let added = store.add_source(member_id, key.clone())?;
    if added {
        let entry = source_entry(
            store,
            workspace_id,
            member_id,
            SOURCE_ADDED,
            &key.team_id,
            None,
            Some(&key.source),
        )?;
        store.audit(cause, entry);
    }
    Ok(added)
}

/// Takes a source from a member and audits it; returns whether it was there.
fn take_source(
    store: &mut Store<'_>,
    cause: &Cause,
    workspace_id: &str,
    member_id: &str,
    key: &SourceKey,
) -> QueryResult<bool> {
    let removed = store.remove_source(member_id, key)?;
    if removed {
        let entry = source_entry(
            store,
            workspace_id,
            member_id,
            SOURCE_REMOVED,
            &key.team_id,
            Some(&key.source),
            None,
        )?;
        store.audit(cause, entry);
    }
    Ok(removed)
}

/// Adds sources (skipping any already there) and audits each one added; returns how many.
pub fn add_sources(
    conn: &mut DbConnection,
    cause: &Cause,
    workspace_id: &str,
    rows: &[TeamMemberSourceRow],
) -> QueryResult<usize> {
    with_store(conn, |store| {
        let members: Vec<&str> = rows.iter().map(|r| r.member_id.as_str()).collect();
        store.prefetch_sources(&members)?;
        let mut added = 0;
        for row in rows {
            if add_source(
                store,
                cause,
                workspace_id,
                &row.member_id,
                SourceKey::of(row),
            )? {
                added += 1;
            }
        }
        Ok(added)
    })
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
    let key = SourceKey {
        team_id: team_id.to_string(),
        source: source.clone(),
    };
    with_store(conn, |store| {
        take_source(store, cause, workspace_id, member_id, &key)
    })
}

/// Takes a member out of every team, auditing each source removed (a member being deleted).
pub fn leave_all_teams(
    conn: &mut DbConnection,
    cause: &Cause,
    workspace_id: &str,
    member_id: &str,
) -> QueryResult<()> {
    with_store(conn, |store| {
        for key in store.sources(member_id)? {
            take_source(store, cause, workspace_id, member_id, &key)?;
        }
        Ok(())
    })
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
    let mut teams_of_group: HashMap<&DirectoryGroupId, Vec<&str>> = HashMap::new();
    for (group, team) in &links {
        teams_of_group.entry(group).or_default().push(team);
    }
    let rule = roles::RoleRule::of(store, workspace)?;
    // Without links or mappings, groups decide nothing: they are not even looked up.
    let from_groups = !links.is_empty() || rule.needs_groups();
    let member_ids: Vec<&str> = members.iter().map(|m| m.id.as_str()).collect();
    store.prefetch_sources(&member_ids)?;
    let users: Vec<&DirectoryUserId> = members
        .iter()
        .filter_map(|m| m.directory_user_id.as_ref())
        .collect();
    if from_groups {
        store.prefetch_groups_of_users(&users)?;
    }
    if matches!(rule, roles::RoleRule::Slugs { .. }) {
        store.prefetch_users(&users)?;
    }
    for member in members {
        let groups = match (&member.directory_user_id, from_groups) {
            (Some(user), true) => store.live_groups_of_user(user)?,
            _ => Vec::new(),
        };
        let active = member.status == MemberStatus::Active;
        let mut desired: BTreeSet<SourceKey> = BTreeSet::new();
        if active {
            for group in &groups {
                for team in teams_of_group.get(group).into_iter().flatten() {
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
            if !keep {
                take_source(store, cause, &workspace.id, &member.id, &key)?;
            }
        }
        for key in desired {
            add_source(store, cause, &workspace.id, &member.id, key)?;
        }
        if let Some(current) = store.member(&member.id)? {
            roles::recompute(store, cause, workspace, &current, &groups, &rule)?;
        }
    }
    Ok(())
}

/// Reconciles the members (in `workspace`) of the given directory users.
pub fn reconcile_directory_users(
    store: &mut Store<'_>,
    cause: &Cause,
    workspace: &WorkspaceRow,
    user_ids: &[DirectoryUserId],
) -> QueryResult<()> {
    let many = user_ids.len() > 500;
    for batch in user_ids.chunks(500) {
        let ids: Vec<&DirectoryUserId> = batch.iter().collect();
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

/// The members whose teams and roles a change affects, reconciled once when it is done: the members of
/// some directory users, and some members by id. An event that moves members in more than one way (a
/// membership change carrying a user snapshot, a directory's deletion) fills one as it goes and runs it
/// last, so no member is reconciled twice for one event.
#[derive(Default)]
pub struct Reconciliation {
    users: BTreeSet<DirectoryUserId>,
    members: BTreeSet<String>,
}

impl Reconciliation {
    /// The members (in the workspace) of a directory user.
    pub fn add_user(&mut self, user_id: &DirectoryUserId) {
        self.users.insert(user_id.clone());
    }

    pub fn add_member(&mut self, member: &MemberRow) {
        self.members.insert(member.id.clone());
    }

    /// Reconciles every member added, once.
    pub fn run(
        self,
        store: &mut Store<'_>,
        cause: &Cause,
        workspace: &WorkspaceRow,
    ) -> QueryResult<()> {
        let users: Vec<DirectoryUserId> = self.users.into_iter().collect();
        reconcile_directory_users(store, cause, workspace, &users)?;
        let reached = |member: &MemberRow| {
            member
                .directory_user_id
                .as_ref()
                .is_some_and(|user| users.binary_search(user).is_ok())
        };
        let members: Vec<String> = self.members.into_iter().collect();
        for batch in members.chunks(500) {
            let ids: Vec<&str> = batch.iter().map(String::as_str).collect();
            store.prefetch_members(&ids)?;
            let mut rest = Vec::new();
            for id in batch {
                // Those linked to one of the users were reconciled with them.
                if let Some(member) = store.member(id)?.filter(|m| !reached(m)) {
                    rest.push(member);
                }
            }
            reconcile_members(store, cause, workspace, &rest)?;
            if members.len() > 500 {
                store.release()?;
            }
        }
        Ok(())
    }
}

/// Rule 10 (and rule 4 for a whole directory): a deleted group's links and role mappings go, and its
/// members are reconciled, so those whose only source it was leave those teams.
pub fn drop_group(
    store: &mut Store<'_>,
    cause: &Cause,
    workspace: &WorkspaceRow,
    group_id: &DirectoryGroupId,
) -> QueryResult<()> {
    let mut reconciliation = Reconciliation::default();
    unlink_dropped_group(store, cause, workspace, group_id, &mut reconciliation)?;
    reconciliation.run(store, cause, workspace)
}

/// A deleted group's links and role mapping go (and with its workspace's last mapping, the roles mappings
/// gave); its members, and anyone still holding a source through it, join `reconciliation`.
pub fn unlink_dropped_group(
    store: &mut Store<'_>,
    cause: &Cause,
    workspace: &WorkspaceRow,
    group_id: &DirectoryGroupId,
    reconciliation: &mut Reconciliation,
) -> QueryResult<()> {
    for team in store.remove_group_links(&workspace.id, group_id)? {
        let entry = AuditRecord {
            workspace_id: &workspace.id,
            action: "team_link.removed",
            subject_type: "team",
            subject_id: &team,
            before: Some(json!({ "group_id": group_id })),
            after: None,
        };
        store.audit(cause, entry);
    }
    let last_mapping_gone = roles::delete_group_mapping(store, cause, workspace, group_id)?;
    reconciliation.users.extend(store.users_in_group(group_id)?);
    // Anyone still holding a source through the group, whatever the membership records say.
    let holders: Vec<String> = store.read(|conn| {
        sources::table
            .filter(sources::group_id.eq(group_id))
            .select(sources::member_id)
            .distinct()
            .load(conn)
    })?;
    reconciliation.members.extend(holders);
    if last_mapping_gone {
        roles::return_to_default_role(store, cause, workspace)?;
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

crate::domain::text_enum!(
    /// What unlinking does with the members who came through the group (rule 9).
    UnlinkMembers {
        /// Their group sources become manual ones: nobody leaves.
        Keep => "keep",
        /// Their group sources go: those with no other source leave.
        Remove => "remove",
    }
);

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

/// Why no directory group can be linked to a team of the workspace now (rule 8: directory sync on, and
/// at least one directory group); `None` when one can.
pub fn why_not_linkable(
    conn: &mut DbConnection,
    workspace: &WorkspaceRow,
) -> QueryResult<Option<LinkError>> {
    if !workspace.directory_sync_enabled {
        return Ok(Some(LinkError::DirectorySyncInactive));
    }
    let groups: i64 = workspace_groups(workspace).count().get_result(conn)?;
    Ok((groups == 0).then_some(LinkError::NoDirectoryGroups))
}

/// Rule 8: links a directory group to a team and adds every active member of the group with a
/// `directory_group` source; returns how many were added.
pub fn link_group(
    conn: &mut DbConnection,
    cause: &Cause,
    workspace: &WorkspaceRow,
    team_id: &str,
    group_id: &DirectoryGroupId,
) -> Result<usize, LinkError> {
    if let Some(refused) = why_not_linkable(conn, workspace)? {
        return Err(refused);
    }
    with_store(conn, |store| {
        let found = store.read(|conn| {
            workspace_groups(workspace)
                .filter(directory_groups::id.eq(group_id.clone()))
                .count()
                .get_result::<i64>(conn)
        })?;
        if found == 0 {
            return Err(LinkError::GroupNotFound);
        }
        if store.is_linked(team_id, group_id)? {
            return Err(LinkError::AlreadyLinked);
        }
        store.add_team_link(&TeamLinkRow {
            team_id: team_id.to_string(),
            group_id: group_id.clone(),
            workspace_id: workspace.id.clone(),
            created_at: timestamp::now(),
        })?;
        let entry = AuditRecord {
            workspace_id: &workspace.id,
            action: "team_link.created",
            subject_type: "team",
            subject_id: team_id,
            before: None,
            after: Some(json!({ "group_id": group_id })),
        };
        store.audit(cause, entry);
        let newcomers: Vec<String> = store.read(|conn| {
            memberships::table
                .inner_join(
                    members::table
                        .on(members::directory_user_id.eq(memberships::user_id.nullable())),
                )
                .filter(memberships::group_id.eq(group_id))
                .filter(memberships::is_member.eq(true))
                .filter(members::workspace_id.eq(&workspace.id))
                .filter(members::status.eq(MemberStatus::Active))
                .select(members::id)
                .load(conn)
        })?;
        let ids: Vec<&str> = newcomers.iter().map(String::as_str).collect();
        store.prefetch_sources(&ids)?;
        let key = SourceKey {
            team_id: team_id.to_string(),
            source: TeamMembershipSource::DirectoryGroup(group_id.clone()),
        };
        let mut added = 0;
        for member in &newcomers {
            if add_source(store, cause, &workspace.id, member, key.clone())? {
                added += 1;
            }
        }
        Ok(added)
    })
}

/// What unlinking a group from a team would do (rule 9), counted in the database, changing nothing.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct UnlinkPreview {
    /// Members in the team through the group: with `members=keep` all stay, as manual members.
    pub through_group: i64,
    /// Of those, the members who leave the team with `members=remove` (the group is their only source).
    pub leaving_on_remove: i64,
    /// Of those, the members who stay with `members=remove`, through another source.
    pub staying_on_remove: i64,
}

/// Counts what unlinking `group_id` from the team would do to its members.
pub fn unlink_preview(
    conn: &mut DbConnection,
    team_id: &str,
    group_id: &DirectoryGroupId,
) -> QueryResult<UnlinkPreview> {
    let through = || {
        sources::table
            .filter(sources::team_id.eq(team_id))
            .filter(sources::source_type.eq(DIRECTORY_GROUP))
            .filter(sources::group_id.eq(group_id.as_str()))
            .select(sources::member_id)
    };
    let through_group: i64 = through().count().get_result(conn)?;
    let other = diesel::alias!(sources as other);
    let staying_on_remove: i64 = other
        .filter(other.field(sources::team_id).eq(team_id))
        .filter(other.field(sources::member_id).eq_any(through()))
        .filter(
            other
                .field(sources::source_type)
                .ne(DIRECTORY_GROUP)
                .or(other.field(sources::group_id).ne(group_id.as_str())),
        )
        .select(diesel::dsl::count(other.field(sources::member_id)).aggregate_distinct())
        .get_result(conn)?;
    Ok(UnlinkPreview {
        through_group,
        leaving_on_remove: through_group - staying_on_remove,
        staying_on_remove,
    })
}

/// Rule 9: unlinks a directory group from a team, keeping or removing the members who came through it;
/// returns how many sources were converted or removed.
pub fn unlink_group(
    conn: &mut DbConnection,
    cause: &Cause,
    workspace: &WorkspaceRow,
    team_id: &str,
    group_id: &DirectoryGroupId,
    members_choice: UnlinkMembers,
) -> Result<usize, LinkError> {
    with_store(conn, |store| {
        if !store.remove_team_link(&workspace.id, team_id, group_id)? {
            return Err(LinkError::NotLinked);
        }
        let choice = members_choice.as_str();
        let entry = AuditRecord {
            workspace_id: &workspace.id,
            action: "team_link.removed",
            subject_type: "team",
            subject_id: team_id,
            before: Some(json!({ "group_id": group_id })),
            after: Some(json!({ "members": choice })),
        };
        store.audit(cause, entry);
        let holders: Vec<String> = store.read(|conn| {
            sources::table
                .filter(sources::team_id.eq(team_id))
                .filter(sources::source_type.eq(DIRECTORY_GROUP))
                .filter(sources::group_id.eq(group_id))
                .select(sources::member_id)
                .load(conn)
        })?;
        let ids: Vec<&str> = holders.iter().map(String::as_str).collect();
        store.prefetch_sources(&ids)?;
        let source_in_team = |source: TeamMembershipSource| SourceKey {
            team_id: team_id.to_string(),
            source,
        };
        let through_group = source_in_team(TeamMembershipSource::DirectoryGroup(group_id.clone()));
        let manual = source_in_team(TeamMembershipSource::Manual);
        let (action, after) = match members_choice {
            UnlinkMembers::Keep => ("team_member.source_changed", Some(&manual.source)),
            UnlinkMembers::Remove => (SOURCE_REMOVED, None),
        };
        for member in &holders {
            store.remove_source(member, &through_group)?;
            if members_choice == UnlinkMembers::Keep {
                store.add_source(member, manual.clone())?;
            }
            let entry = source_entry(
                store,
                &workspace.id,
                member,
                action,
                team_id,
                Some(&through_group.source),
                after,
            )?;
            store.audit(cause, entry);
        }
        Ok(holders.len())
    })
}
