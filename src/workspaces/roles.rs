//! Where a workspace's directory members get their roles, as its admins set it: the role mappings
//! (which directory group grants which role, rule 11) and the role source (those mappings, or the role
//! slugs the identity provider assigns, through a slug table); each change previewed, then made with
//! every directory-managed member's role recomputed. The rules themselves are
//! [`crate::directory_sync::roles`]'.

use super::{visible, WorkspaceError, DEFAULT_ROLE_SLUG};
use crate::access::Caller;
use crate::db::models::{MemberRow, RoleMappingRow, WorkspaceRow};
use crate::db::schema::directory_groups;
use crate::db::{Database, DbConnection, DbError};
use crate::directory_sync::roles::{self as role_rules, RoleSetting};
use crate::directory_sync::teams::workspace_groups;
use crate::directory_sync::with_store;
use crate::domain::{Role, RoleSource};
use crate::ids::DirectoryGroupId;
use crate::schemas::directory_role;
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use utoipa::ToSchema;

/// Why a change of roles, or a look at one, was refused.
#[derive(Debug, thiserror::Error)]
pub enum RoleError {
    #[error(transparent)]
    Workspace(#[from] WorkspaceError),
    /// A mapping names a group that is not one of the workspace's directory groups.
    #[error("{0} is not a directory group of this workspace")]
    UnknownGroup(DirectoryGroupId),
    #[error(transparent)]
    Db(#[from] DbError),
}

crate::db::query_errors_are_db_errors!(RoleError);

fn invalid(why: String) -> RoleError {
    WorkspaceError::InvalidField(why).into()
}

/// Which directory group grants which role.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleMapping {
    group_id: String,
    #[schema(schema_with = directory_role)]
    role: String,
}

/// Every role mapping of the workspace.
#[derive(Serialize, ToSchema)]
pub struct RoleMappings {
    data: Vec<RoleMapping>,
}

impl RoleMappings {
    fn of(rows: &[RoleMappingRow]) -> Self {
        RoleMappings {
            data: rows
                .iter()
                .map(|m| RoleMapping {
                    group_id: m.group_id.to_string(),
                    role: m.role.to_string(),
                })
                .collect(),
        }
    }
}

/// The workspace's role mappings.
pub fn mappings(
    db: &Database,
    caller: &Caller,
    workspace_id: &str,
) -> Result<RoleMappings, RoleError> {
    db.read(|conn| {
        visible(conn, caller, workspace_id)?;
        Ok(RoleMappings::of(&role_rules::mappings(conn, workspace_id)?))
    })
}

/// Replaces the whole set of mappings and recomputes the roles of directory-managed members; the new set.
pub fn replace_mappings(
    db: &Database,
    caller: &Caller,
    workspace_id: &str,
    body: Vec<RoleMapping>,
) -> Result<RoleMappings, RoleError> {
    let wanted = wanted_mappings(body)?;
    let rows = change_roles(db, caller, workspace_id, |conn, workspace| {
        check_groups(conn, workspace, &wanted)?;
        Ok(role_rules::MappingReplacement::new(&wanted))
    })?;
    Ok(RoleMappings::of(&rows))
}

/// What replacing the mappings with `body` would do, changing nothing.
pub fn preview_mappings(
    db: &Database,
    caller: &Caller,
    workspace_id: &str,
    body: Vec<RoleMapping>,
) -> Result<RoleMappingPreview, RoleError> {
    let wanted = wanted_mappings(body)?;
    preview_roles(db, caller, workspace_id, |conn, workspace, each| {
        check_groups(conn, workspace, &wanted)?;
        Ok(with_store(conn, |store| {
            role_rules::preview_replacement(store, workspace, &wanted, each)
        })?)
    })
}

/// Runs a change of roles in steps on a workspace the caller may see (`start` checks the request against
/// the workspace and makes the change); its answer.
fn change_roles<C: role_rules::RoleChange>(
    db: &Database,
    caller: &Caller,
    workspace_id: &str,
    start: impl Fn(&mut DbConnection, &WorkspaceRow) -> Result<C, RoleError>,
) -> Result<C::Done, RoleError> {
    let cause = caller.cause();
    let mut changing: Option<(WorkspaceRow, role_rules::InSteps<C>)> = None;
    db.write_workspace_in_steps(workspace_id, |conn, limit| {
        let (workspace, change) = match &mut changing {
            Some(changing) => changing,
            None => {
                let workspace = visible(conn, caller, workspace_id)?;
                let change = role_rules::InSteps::new(start(conn, &workspace)?);
                changing.insert((workspace, change))
            }
        };
        Ok(with_store(conn, |store| {
            change.step(store, &cause, workspace, limit)
        })?)
    })
}

/// Previews a change of roles on a workspace the caller may see, on a read-only snapshot: `changes`
/// calls its last argument with each member whose role would change and the role it would get.
fn preview_roles(
    db: &Database,
    caller: &Caller,
    workspace_id: &str,
    changes: impl FnOnce(
        &mut DbConnection,
        &WorkspaceRow,
        &mut dyn FnMut(&MemberRow, Role),
    ) -> Result<(), RoleError>,
) -> Result<RoleMappingPreview, RoleError> {
    db.read_only(|conn| {
        let workspace = visible(conn, caller, workspace_id)?;
        let mut found: Vec<RoleChange> = Vec::new();
        changes(conn, &workspace, &mut |member, to| {
            found.push(RoleChange::of(member, to))
        })?;
        Ok(summarize(found))
    })
}

/// The mappings asked for: known roles but `owner`, each group once.
fn wanted_mappings(body: Vec<RoleMapping>) -> Result<Vec<(DirectoryGroupId, Role)>, RoleError> {
    let mut wanted: Vec<(DirectoryGroupId, Role)> = Vec::new();
    let mut seen = HashSet::new();
    for mapping in body {
        let role = checked_role(&mapping.role)?;
        if !seen.insert(mapping.group_id.clone()) {
            return Err(invalid(format!(
                "group_id {} is mapped twice",
                mapping.group_id
            )));
        }
        wanted.push((DirectoryGroupId::from(mapping.group_id), role));
    }
    Ok(wanted)
}

/// A role the directory may give: any but `owner`.
fn checked_role(role: &str) -> Result<Role, RoleError> {
    match role.parse::<Role>() {
        Ok(Role::Owner) => Err(invalid(
            "role: the directory never assigns owner".to_string(),
        )),
        Ok(role) => Ok(role),
        Err(e) => Err(invalid(format!("role: {e}"))),
    }
}

/// Refuses a group that is not one of the workspace's directory groups.
fn check_groups(
    conn: &mut DbConnection,
    workspace: &WorkspaceRow,
    wanted: &[(DirectoryGroupId, Role)],
) -> Result<(), RoleError> {
    for (group_id, _) in wanted {
        let found: i64 = workspace_groups(workspace)
            .filter(directory_groups::id.eq(group_id.clone()))
            .count()
            .get_result(conn)?;
        if found == 0 {
            return Err(RoleError::UnknownGroup(group_id.clone()));
        }
    }
    Ok(())
}

/// A member whose role a change of mappings would change.
#[derive(Serialize, ToSchema)]
pub struct RoleChange {
    member_id: String,
    email: String,
    #[schema(value_type = crate::domain::Role, inline)]
    from: Role,
    #[schema(value_type = crate::domain::Role, inline)]
    to: Role,
}

impl RoleChange {
    fn of(member: &MemberRow, to: Role) -> Self {
        RoleChange {
            member_id: member.id.clone(),
            email: member.email.clone(),
            from: member.role,
            to,
        }
    }
}

/// How many members a change of mappings would move from one role to another.
#[derive(Serialize, ToSchema)]
pub struct RoleMove {
    #[schema(value_type = crate::domain::Role, inline)]
    from: Role,
    #[schema(value_type = crate::domain::Role, inline)]
    to: Role,
    count: usize,
}

/// What replacing the role mappings would do, without doing it.
#[derive(Serialize, ToSchema)]
pub struct RoleMappingPreview {
    /// How many members' roles would change.
    total: usize,
    /// Those members by the role they leave and the role they get, most first.
    moves: Vec<RoleMove>,
    /// The members whose role would change, by member id: the first 1,000 of them.
    changes: Vec<RoleChange>,
    /// Whether `changes` leaves some out (`total` counts them all).
    truncated: bool,
}

/// The most members a preview lists one by one; all are counted.
pub const PREVIEW_LISTED: usize = 1000;

/// Counts the changes by move and lists the first of them by member id.
fn summarize(mut changes: Vec<RoleChange>) -> RoleMappingPreview {
    let mut counted: HashMap<(Role, Role), usize> = HashMap::new();
    for change in &changes {
        *counted.entry((change.from, change.to)).or_default() += 1;
    }
    let mut moves: Vec<RoleMove> = counted
        .into_iter()
        .map(|((from, to), count)| RoleMove { from, to, count })
        .collect();
    moves.sort_by(|a, b| {
        b.count
            .cmp(&a.count)
            .then_with(|| (&a.from, &a.to).cmp(&(&b.from, &b.to)))
    });
    let total = changes.len();
    changes.sort_by(|a, b| a.member_id.cmp(&b.member_id));
    changes.truncate(PREVIEW_LISTED);
    RoleMappingPreview {
        total,
        moves,
        truncated: total > changes.len(),
        changes,
    }
}

/// A role slug the identity provider assigns, and the product role it gives.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SlugMapping {
    slug: String,
    #[schema(schema_with = directory_role)]
    role: String,
}

/// What decides the roles of the workspace's directory members.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleSourceSetting {
    /// `group_mappings` (the role mappings of the member's groups, the default) or `directory_roles`
    /// (the identity provider's role slugs, through `mappings`).
    #[schema(value_type = crate::domain::RoleSource, inline)]
    source: String,
    /// The slug the broker gives users mapped to no role (`member` unless set): it gives the
    /// workspace's default role, and cannot be mapped.
    #[serde(default)]
    default_slug: Option<String>,
    /// Slug → role; a member gets the highest role among their slugs, else the default role. Kept, but
    /// unused, while the source is `group_mappings`.
    #[serde(default)]
    mappings: Vec<SlugMapping>,
}

impl RoleSourceSetting {
    fn of(setting: &RoleSetting) -> Self {
        RoleSourceSetting {
            source: setting.source.to_string(),
            default_slug: Some(setting.default_slug.clone()),
            mappings: setting
                .table
                .iter()
                .map(|(slug, role)| SlugMapping {
                    slug: slug.clone(),
                    role: role.to_string(),
                })
                .collect(),
        }
    }

    /// The setting asked for: a known source, usable slugs each once, roles but `owner`.
    fn wanted(self) -> Result<RoleSetting, RoleError> {
        let source = self
            .source
            .parse::<RoleSource>()
            .map_err(|e| invalid(format!("source: {e}")))?;
        let default_slug = checked_slug(self.default_slug.as_deref().unwrap_or(DEFAULT_ROLE_SLUG))
            .map_err(|why| invalid(format!("default_slug: {why}")))?;
        let mut table: Vec<(String, Role)> = Vec::new();
        for mapping in self.mappings {
            let slug =
                checked_slug(&mapping.slug).map_err(|why| invalid(format!("slug: {why}")))?;
            if slug == default_slug {
                return Err(invalid(format!(
                    "slug {slug} is the default slug: it always gives the default role"
                )));
            }
            if table.iter().any(|(s, _)| *s == slug) {
                return Err(invalid(format!("slug {slug} is mapped twice")));
            }
            table.push((slug, checked_role(&mapping.role)?));
        }
        table.sort();
        Ok(RoleSetting {
            source,
            default_slug,
            table,
        })
    }
}

/// A slug as the broker sends them: 1 to 200 characters, no control characters.
fn checked_slug(slug: &str) -> Result<String, &'static str> {
    let slug = slug.trim();
    if slug.is_empty() || slug.len() > 200 || slug.chars().any(char::is_control) {
        return Err("1 to 200 characters, no control characters");
    }
    Ok(slug.to_string())
}

/// Where the workspace's directory members get their roles.
pub fn role_source(
    db: &Database,
    caller: &Caller,
    workspace_id: &str,
) -> Result<RoleSourceSetting, RoleError> {
    db.read(|conn| {
        let workspace = visible(conn, caller, workspace_id)?;
        let setting = with_store(conn, |store| RoleSetting::of(store, &workspace))?;
        Ok(RoleSourceSetting::of(&setting))
    })
}

/// Sets the source and the slug table and recomputes every directory-managed member's role, each change
/// audited with the caller as its cause; the setting as kept.
pub fn set_role_source(
    db: &Database,
    caller: &Caller,
    workspace_id: &str,
    body: RoleSourceSetting,
) -> Result<RoleSourceSetting, RoleError> {
    let wanted = body.wanted()?;
    let shown = RoleSourceSetting::of(&wanted);
    change_roles(db, caller, workspace_id, |_, _| {
        Ok(role_rules::RoleSettingChange::new(wanted.clone()))
    })?;
    Ok(shown)
}

/// What setting the role source to `body` would do, changing nothing.
pub fn preview_role_source(
    db: &Database,
    caller: &Caller,
    workspace_id: &str,
    body: RoleSourceSetting,
) -> Result<RoleMappingPreview, RoleError> {
    let wanted = body.wanted()?;
    preview_roles(db, caller, workspace_id, |conn, workspace, each| {
        Ok(with_store(conn, |store| {
            role_rules::preview_setting(store, workspace, &wanted, each)
        })?)
    })
}
