//! A workspace's members as admins list, add, change and remove them by hand. With directory sync on,
//! the directory owns its members (rules 11–12), and only the operator grants or removes `owner`,
//! never from the workspace's last active owner (rule 22).

use super::{visible, WorkspaceError};
use crate::access::Caller;
use crate::audit::{self, AuditRecord};
use crate::db::models::{MemberRow, WorkspaceRow};
use crate::db::schema::{
    directory_group_memberships as memberships, directory_groups, directory_users, members,
};
use crate::db::{Database, DbConnection, DbError};
use crate::directory_sync::members::{
    audit_member_change, email_key, member_json, Allowed, Member, MemberActions, MemberDetails,
    MemberGroup, RoleOrigin,
};
use crate::directory_sync::{roles, teams};
use crate::domain::{ManagedBy, MemberStatus, Role};
use crate::ids::new_id;
use crate::ids::DirectoryUserId;
use crate::lists::{CountedList, List, Page};
use crate::workos::events::DirectoryUser;
use crate::workos::timestamp;
use diesel::expression::{SqlLiteral, UncheckedBind};
use diesel::prelude::*;
use diesel::sql_types::{Bool, Text};
use serde::Deserialize;
use std::collections::HashMap;
use utoipa::ToSchema;

/// Why a change to a member, or a look at one, was refused.
#[derive(Debug, thiserror::Error)]
pub enum MemberError {
    #[error(transparent)]
    Workspace(#[from] WorkspaceError),
    /// No such member in the workspace.
    #[error("member not found")]
    NotFound,
    /// A field given is not what it must be; the text names the field.
    #[error("{0}")]
    InvalidField(String),
    /// The directory owns this (rules 11 and 12); the text says what and where to change it.
    #[error("{0}")]
    ManagedByDirectorySync(String),
    #[error("another member of this workspace has that email")]
    EmailTaken,
    #[error("only the operator grants or removes the owner role")]
    OwnerRequiresOperator,
    #[error("{email} is the workspace's last active owner: make another member owner first")]
    LastOwner { email: String },
    #[error(transparent)]
    Db(#[from] DbError),
}

crate::db::query_errors_are_db_errors!(MemberError);

/// Which members a list holds; all of them when nothing is given.
#[derive(Debug, Default)]
pub struct MemberFilter {
    pub status: Option<MemberStatus>,
    /// Compared case-insensitively.
    pub email: Option<String>,
    /// Only members in this directory group.
    pub group: Option<String>,
    /// Only members whose name or email holds this text, case-insensitively.
    pub search: Option<String>,
    pub managed_by: Option<ManagedBy>,
    pub role: Option<Role>,
}

type Backend = <DbConnection as Connection>::Backend;

/// The workspace's members that `filter` lets through, as a query to page or count.
fn filtered<'a>(
    conn: &DbConnection,
    workspace_id: &'a str,
    filter: &'a MemberFilter,
) -> members::BoxedQuery<'a, Backend> {
    let mut q = members::table
        .filter(members::workspace_id.eq(workspace_id))
        .into_boxed();
    if let Some(status) = filter.status {
        q = q.filter(members::status.eq(status.as_str()));
    }
    if let Some(email) = &filter.email {
        q = q.filter(members::email_key.eq(email_key(email)));
    }
    if let Some(group) = &filter.group {
        q = q.filter(
            members::directory_user_id.eq_any(
                memberships::table
                    .filter(memberships::group_id.eq(group))
                    .filter(memberships::is_member.eq(true))
                    .select(memberships::user_id.nullable()),
            ),
        );
    }
    if let Some(text) = filter.search.as_deref().filter(|t| !t.is_empty()) {
        q = q.filter(name_or_email_contains(conn, text));
    }
    if let Some(managed_by) = filter.managed_by {
        q = q.filter(members::managed_by.eq(managed_by.as_str()));
    }
    if let Some(role) = filter.role {
        q = q.filter(members::role.eq(role.as_str()));
    }
    q
}

/// A condition on text: SQL around one bound text.
pub(crate) type TextCondition = SqlLiteral<
    Bool,
    UncheckedBind<SqlLiteral<Bool>, <String as diesel::expression::AsExpression<Text>>::Expression>,
>;

/// A condition on `members`: the member's name (first and last) or email holds `text`, in any case.
/// Each backend answers it from a trigram index (SQLite's FTS5 `members_search`, PostgreSQL's pg_trgm
/// index on `search_text`); on SQLite, a text shorter than a trigram is looked for by a scan, and its
/// case folded for ASCII letters only.
pub(crate) fn name_or_email_contains(conn: &DbConnection, text: &str) -> TextCondition {
    let (before, bound, after) = match conn {
        DbConnection::Sqlite(_) if text.chars().count() >= 3 => (
            "members.rowid IN (SELECT rowid FROM members_search WHERE members_search MATCH ",
            format!("\"{}\"", text.replace('"', "\"\"")),
            ")",
        ),
        DbConnection::Sqlite(_) => (
            "instr(lower(members.search_text), lower(",
            text.to_string(),
            ")) > 0",
        ),
        DbConnection::Postgresql(_) => return like_contains("members.search_text", text),
    };
    diesel::dsl::sql::<Bool>(before)
        .bind::<Text, _>(bound)
        .sql(after)
}

/// `expression LIKE '%text%'`, with `text` in lower case (by the database's `lower`) and its `%`, `_`
/// and `\` taken as themselves.
pub(crate) fn like_contains(expression: &str, text: &str) -> TextCondition {
    let escaped = text
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    diesel::dsl::sql::<Bool>(&format!("{expression} LIKE '%' || lower("))
        .bind::<Text, _>(escaped)
        .sql(") || '%' ESCAPE '\\'")
}

/// A page of the workspace's members, in id order, with how many the filter lets through.
pub fn list(
    db: &Database,
    caller: &Caller,
    workspace_id: &str,
    filter: MemberFilter,
    page: &Page,
) -> Result<CountedList<Member>, MemberError> {
    db.read(|conn| {
        let workspace = visible(conn, caller, workspace_id)?;
        let total: i64 = filtered(conn, workspace_id, &filter)
            .count()
            .get_result(conn)?;
        let mut q = filtered(conn, workspace_id, &filter)
            .order(members::id)
            .limit(page.limit + 1)
            .select(MemberRow::as_select());
        if let Some(after) = &page.after {
            q = q.filter(members::id.gt(after.clone()));
        }
        let rows: Vec<MemberRow> = q.load(conn)?;
        let list = List::from_overfetch(rows, page, |m| m.id.clone());
        Ok(List {
            data: shown(conn, caller, &workspace, &list.data)?,
            list_metadata: list.list_metadata,
        }
        .counted(total))
    })
}

/// Members as the API shows them to the caller: each with where its role comes from, its directory user's
/// attributes, and what the caller may do to it.
fn shown(
    conn: &mut DbConnection,
    caller: &Caller,
    workspace: &WorkspaceRow,
    rows: &[MemberRow],
) -> Result<Vec<Member>, MemberError> {
    let origins =
        crate::directory_sync::with_store(conn, |store| roles::origins(store, workspace, rows))?;
    let users: Vec<&DirectoryUserId> = rows
        .iter()
        .filter_map(|m| m.directory_user_id.as_ref())
        .collect();
    let snapshots: HashMap<DirectoryUserId, String> = directory_users::table
        .filter(directory_users::id.eq_any(&users))
        .select((directory_users::id, directory_users::snapshot))
        .load(conn)?
        .into_iter()
        .collect();
    let groups = groups_of(conn, &users)?;
    let mut shown = Vec::with_capacity(rows.len());
    for (row, (origin, locked)) in rows.iter().zip(origins) {
        let attributes = row
            .directory_user_id
            .as_ref()
            .and_then(|user| snapshots.get(user))
            .and_then(|snapshot| serde_json::from_str::<DirectoryUser>(snapshot).ok())
            .map(|user| user.attributes())
            .unwrap_or_default();
        let change_role = match role_lock(&origin, locked) {
            Some(lock) => Some(lock),
            None => refusal(check_owner_change(
                conn,
                caller,
                &workspace.id,
                Some(row),
                Some(Role::Viewer),
            ))?,
        };
        let actions = MemberActions {
            remove: Allowed::unless(
                removal_refused(conn, caller, workspace, row)?.map(|e| e.to_string()),
            ),
            change_role: Allowed::unless(change_role.map(|e| e.to_string())),
        };
        let groups = row
            .directory_user_id
            .as_ref()
            .and_then(|user| groups.get(user))
            .cloned()
            .unwrap_or_default();
        shown.push(Member::from(row).shown(MemberDetails {
            origin,
            attributes,
            actions,
            groups,
        }));
    }
    Ok(shown)
}

/// The directory groups each of `users` is in, in name order.
fn groups_of(
    conn: &mut DbConnection,
    users: &[&DirectoryUserId],
) -> Result<HashMap<DirectoryUserId, Vec<MemberGroup>>, MemberError> {
    let rows: Vec<(DirectoryUserId, String, String)> = memberships::table
        .inner_join(directory_groups::table.on(directory_groups::id.eq(memberships::group_id)))
        .filter(memberships::user_id.eq_any(users))
        .filter(memberships::is_member.eq(true))
        .filter(directory_groups::deleted_at.is_null())
        .order((directory_groups::name, directory_groups::id))
        .select((
            memberships::user_id,
            directory_groups::id,
            directory_groups::name,
        ))
        .load(conn)?;
    let mut groups: HashMap<DirectoryUserId, Vec<MemberGroup>> = HashMap::new();
    for (user, id, name) in rows {
        groups
            .entry(user)
            .or_default()
            .push(MemberGroup { id, name });
    }
    Ok(groups)
}

/// The refusal a check answers, as a value: `None` when it allows; other errors stay errors.
fn refusal(check: Result<(), MemberError>) -> Result<Option<MemberError>, MemberError> {
    match check {
        Ok(()) => Ok(None),
        Err(
            refused @ (MemberError::OwnerRequiresOperator
            | MemberError::LastOwner { .. }
            | MemberError::ManagedByDirectorySync(_)),
        ) => Ok(Some(refused)),
        Err(error) => Err(error),
    }
}

/// A role the directory decides is not changed by hand: the refusal, naming where it comes from.
fn role_lock(origin: &RoleOrigin, locked: bool) -> Option<MemberError> {
    origin
        .why_locked()
        .filter(|_| locked)
        .map(MemberError::ManagedByDirectorySync)
}

/// Why the caller may not remove this member (rule 12 and the owner rule, rule 22); `None` when it may.
fn removal_refused(
    conn: &mut DbConnection,
    caller: &Caller,
    workspace: &WorkspaceRow,
    member: &MemberRow,
) -> Result<Option<MemberError>, MemberError> {
    if workspace.directory_sync_enabled && member.managed_by == ManagedBy::Directory {
        return Ok(Some(MemberError::ManagedByDirectorySync(
            "this member is managed by directory sync: remove them in the identity provider".into(),
        )));
    }
    refusal(check_owner_change(
        conn,
        caller,
        &workspace.id,
        Some(member),
        None,
    ))
}

/// Loads a member of a workspace the caller may see, else not found.
fn load(
    conn: &mut DbConnection,
    caller: &Caller,
    workspace_id: &str,
    id: &str,
) -> Result<(WorkspaceRow, MemberRow), MemberError> {
    let workspace = visible(conn, caller, workspace_id)?;
    let member = members::table
        .find(id)
        .filter(members::workspace_id.eq(workspace_id))
        .select(MemberRow::as_select())
        .first(conn)
        .optional()?
        .ok_or(MemberError::NotFound)?;
    Ok((workspace, member))
}

/// A member of a workspace the caller may see.
pub fn get(
    db: &Database,
    caller: &Caller,
    workspace_id: &str,
    id: &str,
) -> Result<Member, MemberError> {
    db.read(|conn| {
        let (workspace, member) = load(conn, caller, workspace_id, id)?;
        Ok(shown(conn, caller, &workspace, std::slice::from_ref(&member))?.remove(0))
    })
}

fn check_email(email: &str) -> Result<String, MemberError> {
    let email = email.trim();
    let valid = email.len() <= 320
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && !domain.is_empty() && !domain.contains('@')
        })
        && !email.contains(|c: char| c.is_whitespace() || c.is_control());
    if valid {
        Ok(email.to_string())
    } else {
        Err(MemberError::InvalidField(
            "email: must be an address such as ada@example.com".into(),
        ))
    }
}

/// A first or last name: at most 200 characters, no control characters.
fn check_person_name(field: &str, value: Option<String>) -> Result<Option<String>, MemberError> {
    match value {
        Some(v) if v.chars().count() > 200 || v.contains(char::is_control) => {
            Err(MemberError::InvalidField(format!(
                "{field}: at most 200 characters, without control characters"
            )))
        }
        other => Ok(other),
    }
}

fn check_role(role: &str) -> Result<Role, MemberError> {
    role.parse::<Role>()
        .map_err(|e| MemberError::InvalidField(format!("role: {e}")))
}

/// Refuses an email another member of the workspace has (but `except`).
fn email_in_use(
    conn: &mut DbConnection,
    workspace_id: &str,
    email: &str,
    except: Option<&str>,
) -> Result<(), MemberError> {
    let mut q = members::table
        .filter(members::workspace_id.eq(workspace_id))
        .filter(members::email_key.eq(email_key(email)))
        .into_boxed();
    if let Some(id) = except {
        q = q.filter(members::id.ne(id.to_string()));
    }
    let found: i64 = q.count().get_result(conn)?;
    if found > 0 {
        return Err(MemberError::EmailTaken);
    }
    Ok(())
}

/// Rule 22: only the operator grants or removes `owner`, and the workspace's last active owner is never
/// removed or demoted by hand. `before` is the member as stored (none: a new member); `after_role` the
/// role it would have (none: it is removed).
fn check_owner_change(
    conn: &mut DbConnection,
    caller: &Caller,
    workspace_id: &str,
    before: Option<&MemberRow>,
    after_role: Option<Role>,
) -> Result<(), MemberError> {
    let was_owner = before.is_some_and(|m| m.role == Role::Owner);
    if was_owner == (after_role == Some(Role::Owner)) {
        return Ok(());
    }
    if !caller.is_operator() {
        return Err(MemberError::OwnerRequiresOperator);
    }
    let Some(before) = before.filter(|m| was_owner && m.status == MemberStatus::Active) else {
        return Ok(());
    };
    let active_owners: i64 = members::table
        .filter(members::workspace_id.eq(workspace_id))
        .filter(members::role.eq(Role::Owner))
        .filter(members::status.eq(MemberStatus::Active))
        .count()
        .get_result(conn)?;
    if active_owners <= 1 {
        return Err(MemberError::LastOwner {
            email: before.email.clone(),
        });
    }
    Ok(())
}

/// A member added by hand.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewMember {
    #[schema(schema_with = crate::schemas::email)]
    pub email: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    /// The workspace's `default_role` when not given.
    #[schema(value_type = Option<crate::domain::Role>, inline)]
    pub role: Option<String>,
}

/// Adds a member by hand: not while directory sync is on, and an `owner` only by the operator.
pub fn add(
    db: &Database,
    caller: &Caller,
    workspace_id: &str,
    new: NewMember,
) -> Result<Member, MemberError> {
    let email = check_email(&new.email)?;
    let first_name = check_person_name("first_name", new.first_name)?;
    let last_name = check_person_name("last_name", new.last_name)?;
    let role = new.role.as_deref().map(check_role).transpose()?;
    db.write_workspace(workspace_id, |conn| {
        let workspace = visible(conn, caller, workspace_id)?;
        if workspace.directory_sync_enabled {
            return Err(MemberError::ManagedByDirectorySync(
                "directory sync is on: members are added in the identity provider".into(),
            ));
        }
        email_in_use(conn, workspace_id, &email, None)?;
        check_owner_change(conn, caller, workspace_id, None, role)?;
        let now = timestamp::now();
        let member = MemberRow {
            id: new_id("mem"),
            workspace_id: workspace_id.to_string(),
            email_key: email_key(&email),
            email,
            first_name,
            last_name,
            role: role.unwrap_or(workspace.default_role),
            status: MemberStatus::Active,
            managed_by: ManagedBy::Manual,
            directory_user_id: None,
            created_at: now,
            updated_at: now,
        };
        diesel::insert_into(members::table)
            .values(&member)
            .execute(conn)?;
        audit_member_change(conn, &caller.cause(), "member.added", None, &member)?;
        Ok(Member::from(&member))
    })
}

/// What to change in a member.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MemberChanges {
    #[schema(schema_with = crate::schemas::email)]
    pub email: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    #[schema(value_type = Option<crate::domain::Role>, inline)]
    pub role: Option<String>,
}

/// Changes a member by hand. A directory-managed member's email and name come from the identity
/// provider, and so does their role while the workspace maps groups to roles.
pub fn change(
    db: &Database,
    caller: &Caller,
    workspace_id: &str,
    id: &str,
    changes: MemberChanges,
) -> Result<Member, MemberError> {
    let email = changes.email.as_deref().map(check_email).transpose()?;
    let first_name = check_person_name("first_name", changes.first_name)?;
    let last_name = check_person_name("last_name", changes.last_name)?;
    let role = changes.role.as_deref().map(check_role).transpose()?;
    db.write_workspace(workspace_id, |conn| {
        let (workspace, before) = load(conn, caller, workspace_id, id)?;
        let directory_managed = before.managed_by == ManagedBy::Directory;
        let identity_change = email.is_some() || first_name.is_some() || last_name.is_some();
        if directory_managed && identity_change {
            return Err(MemberError::ManagedByDirectorySync(
                "this member's email and name come from the identity provider".into(),
            ));
        }
        let role_change = role.is_some_and(|r| r != before.role);
        if directory_managed && role_change {
            let (origin, locked) = crate::directory_sync::with_store(conn, |store| {
                roles::origins(store, &workspace, std::slice::from_ref(&before))
            })?
            .remove(0);
            if let Some(lock) = role_lock(&origin, locked) {
                return Err(lock);
            }
        }
        if let Some(role) = role {
            check_owner_change(conn, caller, workspace_id, Some(&before), Some(role))?;
        }
        let mut after = before.clone();
        if let Some(email) = email {
            email_in_use(conn, workspace_id, &email, Some(id))?;
            after.email_key = email_key(&email);
            after.email = email;
        }
        if let Some(first_name) = first_name {
            after.first_name = Some(first_name);
        }
        if let Some(last_name) = last_name {
            after.last_name = Some(last_name);
        }
        if let Some(role) = role {
            after.role = role;
        }
        if after != before {
            after.updated_at = timestamp::now();
            diesel::update(members::table.find(id))
                .set(&after)
                .execute(conn)?;
            let action = if after.role != before.role {
                "member.role_changed"
            } else {
                "member.updated"
            };
            audit_member_change(conn, &caller.cause(), action, Some(&before), &after)?;
        }
        Ok(Member::from(&after))
    })
}

/// Removes a member by hand, and from every team: with directory sync on, not one the directory
/// manages; an owner only by the operator, and never the last active one.
pub fn remove(
    db: &Database,
    caller: &Caller,
    workspace_id: &str,
    id: &str,
) -> Result<(), MemberError> {
    db.write_workspace(workspace_id, |conn| {
        let (workspace, member) = load(conn, caller, workspace_id, id)?;
        if let Some(refused) = removal_refused(conn, caller, &workspace, &member)? {
            return Err(refused);
        }
        teams::leave_all_teams(conn, &caller.cause(), workspace_id, id)?;
        diesel::delete(members::table.find(id)).execute(conn)?;
        audit::record(
            conn,
            &caller.cause(),
            AuditRecord {
                workspace_id,
                action: "member.removed",
                subject_type: "member",
                subject_id: id,
                before: Some(member_json(&member)),
                after: None,
            },
        )?;
        Ok(())
    })
}
