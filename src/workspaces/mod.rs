//! Workspaces as the operator creates them and admins change them by hand (SPEC §4): the workspace
//! itself here; its admin tokens, its directory-sync setting, its members and its teams in the files
//! beside, which build on this one (it imports none of them).

pub mod admin_tokens;
pub mod audit_log;
pub mod changes;
pub mod directory_groups;
pub mod directory_sync_setting;
pub mod members;
pub mod roles;
pub mod team_links;
pub mod teams;

use crate::access::{Caller, OperatorOnly, OtherWorkspace};
use crate::audit::{self, AuditRecord, Cause};
use crate::db::models::WorkspaceRow;
use crate::db::schema::workspaces;
use crate::db::{Database, DbConnection, DbError};
use crate::domain::{Plan, Role};
use crate::ids::new_id;
use crate::lists::{List, Page};
use crate::schemas::{directory_role, name};
use crate::tokens::check_name;
use crate::workos::timestamp::{self, time_json};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

/// The slug WorkOS environments give users mapped to no role, until a workspace says otherwise.
pub const DEFAULT_ROLE_SLUG: &str = "member";

/// Why a change to a workspace, or a look at one, was refused.
#[derive(Debug, thiserror::Error)]
pub enum WorkspaceError {
    /// No such workspace, or one the caller may not see.
    #[error("workspace not found")]
    NotFound,
    /// A field given is not what it must be; the text names the field.
    #[error("{0}")]
    InvalidField(String),
    #[error("another workspace already has this organization_id")]
    OrganizationTaken,
    /// Directory sync on needs `growth` or above (rule 13).
    #[error("directory sync needs the growth or enterprise plan; this workspace is on {0}")]
    PlanRequired(Plan),
    /// Only the operator may do this.
    #[error(transparent)]
    OperatorOnly(#[from] OperatorOnly),
    /// No such admin token of the workspace, or one already revoked.
    #[error("admin token not found")]
    AdminTokenNotFound,
    #[error(transparent)]
    Db(#[from] DbError),
}

crate::db::query_errors_are_db_errors!(WorkspaceError);

impl From<OtherWorkspace> for WorkspaceError {
    fn from(_: OtherWorkspace) -> Self {
        Self::NotFound
    }
}

/// A workspace.
#[derive(Serialize, ToSchema)]
pub struct Workspace {
    id: String,
    name: String,
    #[schema(value_type = crate::domain::Plan, inline)]
    plan: Plan,
    organization_id: String,
    directory_sync_enabled: bool,
    #[schema(schema_with = directory_role)]
    default_role: Role,
    #[schema(format = DateTime)]
    created_at: String,
    #[schema(format = DateTime)]
    updated_at: String,
    /// Whether a directory group can be linked to a team now, and why not, in the words of the refusal
    /// (when the workspace is read alone).
    #[serde(skip_serializing_if = "Option::is_none")]
    linking: Option<crate::directory_sync::members::Allowed>,
}

impl From<&WorkspaceRow> for Workspace {
    fn from(w: &WorkspaceRow) -> Self {
        Workspace {
            id: w.id.clone(),
            name: w.name.clone(),
            plan: w.plan,
            organization_id: w.organization_id.clone(),
            directory_sync_enabled: w.directory_sync_enabled,
            default_role: w.default_role,
            created_at: time_json(&w.created_at),
            updated_at: time_json(&w.updated_at),
            linking: None,
        }
    }
}

/// Refuses all but the operator; an admin of another workspace is told the workspace is not found, so
/// it is not revealed.
pub fn operator_only(caller: &Caller, workspace_id: &str) -> Result<(), WorkspaceError> {
    caller.require_workspace(workspace_id)?;
    caller.require_operator()?;
    Ok(())
}

/// Whether workspace `id` exists.
pub fn exists(conn: &mut DbConnection, id: &str) -> QueryResult<bool> {
    let found: i64 = workspaces::table.find(id).count().get_result(conn)?;
    Ok(found == 1)
}

/// Loads a workspace the caller may see, else not found.
pub fn visible(
    conn: &mut DbConnection,
    caller: &Caller,
    id: &str,
) -> Result<WorkspaceRow, WorkspaceError> {
    caller.require_workspace(id)?;
    workspaces::table
        .find(id)
        .select(WorkspaceRow::as_select())
        .first(conn)
        .optional()?
        .ok_or(WorkspaceError::NotFound)
}

fn parse_field<T: std::str::FromStr<Err = String>>(
    field: &str,
    value: &str,
) -> Result<T, WorkspaceError> {
    value
        .parse()
        .map_err(|e| WorkspaceError::InvalidField(format!("{field}: {e}")))
}

fn check_workspace_name(name: &str) -> Result<String, WorkspaceError> {
    check_name(name).map_err(WorkspaceError::InvalidField)
}

/// The default role of directory members: any role but `owner`, which the directory never assigns.
fn check_default_role(value: &str) -> Result<Role, WorkspaceError> {
    match parse_field::<Role>("default_role", value)? {
        Role::Owner => Err(WorkspaceError::InvalidField(
            "default_role: the directory never assigns owner".into(),
        )),
        role => Ok(role),
    }
}

/// The broker's organization id as given: trimmed, without spaces or control characters.
fn check_organization_id(value: &str) -> Result<String, WorkspaceError> {
    let organization_id = value.trim();
    if organization_id.is_empty()
        || organization_id.contains(|c: char| c.is_whitespace() || c.is_control())
    {
        return Err(WorkspaceError::InvalidField(
            "organization_id: must be the broker's org_… id".into(),
        ));
    }
    Ok(organization_id.to_string())
}

/// A new workspace.
#[derive(Deserialize, ToSchema)]
pub struct NewWorkspace {
    #[schema(schema_with = name)]
    pub name: String,
    #[schema(value_type = crate::domain::Plan, inline)]
    pub plan: String,
    /// The broker's organization (`org_…`); one workspace each.
    #[schema(pattern = "^[^\\s\\u0000-\\u001f\\u007f-\\u009f]+$")]
    pub organization_id: String,
    /// `viewer` when not given.
    #[schema(schema_with = directory_role)]
    pub default_role: Option<String>,
}

/// Creates a workspace with directory sync off; one workspace per organization. The operator's alone.
pub fn create(
    db: &Database,
    caller: &Caller,
    new: NewWorkspace,
) -> Result<Workspace, WorkspaceError> {
    caller.require_operator()?;
    let name = check_workspace_name(&new.name)?;
    let plan: Plan = parse_field("plan", &new.plan)?;
    let organization_id = check_organization_id(&new.organization_id)?;
    let default_role = match new.default_role.as_deref() {
        Some(role) => check_default_role(role)?,
        None => Role::Viewer,
    };
    let workspace = db.write(|conn| {
        let taken: i64 = workspaces::table
            .filter(workspaces::organization_id.eq(&organization_id))
            .count()
            .get_result(conn)?;
        if taken > 0 {
            return Err(WorkspaceError::OrganizationTaken);
        }
        let now = timestamp::now();
        let row = WorkspaceRow {
            id: new_id("ws"),
            name,
            plan,
            organization_id,
            directory_sync_enabled: false,
            default_role,
            created_at: now,
            updated_at: now,
            role_source: crate::domain::RoleSource::GroupMappings,
            default_role_slug: DEFAULT_ROLE_SLUG.to_string(),
        };
        diesel::insert_into(workspaces::table)
            .values(&row)
            .execute(conn)?;
        audit_workspace(conn, &caller.cause(), "workspace.created", None, &row)?;
        Ok(row)
    })?;
    tracing::info!(workspace = %workspace.id, organization = %workspace.organization_id, "workspace created");
    Ok(Workspace::from(&workspace))
}

/// Records a change of a workspace in the audit log, each side as the API shows it.
fn audit_workspace(
    conn: &mut DbConnection,
    cause: &Cause,
    action: &str,
    before: Option<&WorkspaceRow>,
    after: &WorkspaceRow,
) -> QueryResult<()> {
    let shown = |w: &WorkspaceRow| json!(Workspace::from(w));
    audit::record(
        conn,
        cause,
        AuditRecord {
            workspace_id: &after.id,
            action,
            subject_type: "workspace",
            subject_id: &after.id,
            before: before.map(shown),
            after: Some(shown(after)),
        },
    )
}

/// A page of the workspaces the caller may see: an operator every one, a workspace admin their own.
pub fn list(
    db: &Database,
    caller: &Caller,
    page: &Page,
) -> Result<List<Workspace>, WorkspaceError> {
    let scope = match caller {
        Caller::WorkspaceAdmin { workspace_id, .. } => Some(workspace_id.clone()),
        Caller::Operator { .. } => None,
    };
    db.read(|conn| {
        let mut q = workspaces::table
            .select(WorkspaceRow::as_select())
            .order(workspaces::id)
            .limit(page.limit + 1)
            .into_boxed();
        if let Some(after) = &page.after {
            q = q.filter(workspaces::id.gt(after.clone()));
        }
        if let Some(own) = scope {
            q = q.filter(workspaces::id.eq(own));
        }
        let rows: Vec<WorkspaceRow> = q.load(conn)?;
        Ok(List::from_overfetch(rows, page, |w| w.id.clone()).map(|row| Workspace::from(row)))
    })
}

/// A workspace the caller may see.
pub fn get(db: &Database, caller: &Caller, id: &str) -> Result<Workspace, WorkspaceError> {
    db.read(|conn| {
        let row = visible(conn, caller, id)?;
        let refused = crate::directory_sync::teams::why_not_linkable(conn, &row)?;
        Ok(Workspace {
            linking: Some(crate::directory_sync::members::Allowed::unless(
                refused.map(|e| e.to_string()),
            )),
            ..Workspace::from(&row)
        })
    })
}

/// What to change in a workspace.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkspaceChanges {
    #[schema(schema_with = name)]
    pub name: Option<String>,
    #[schema(value_type = Option<crate::domain::Plan>, inline)]
    pub plan: Option<String>,
    #[schema(schema_with = directory_role)]
    pub default_role: Option<String>,
}

/// Changes a workspace's name, plan or directory members' default role; only the operator changes the
/// plan.
pub fn change(
    db: &Database,
    caller: &Caller,
    id: &str,
    changes: WorkspaceChanges,
) -> Result<Workspace, WorkspaceError> {
    if changes.plan.is_some() {
        operator_only(caller, id)?;
    }
    let name = changes
        .name
        .as_deref()
        .map(check_workspace_name)
        .transpose()?;
    let plan = changes
        .plan
        .as_deref()
        .map(|p| parse_field::<Plan>("plan", p))
        .transpose()?;
    let default_role = changes
        .default_role
        .as_deref()
        .map(check_default_role)
        .transpose()?;
    db.write_workspace(id, |conn| {
        let before = visible(conn, caller, id)?;
        let mut after = before.clone();
        if let Some(name) = name {
            after.name = name;
        }
        if let Some(plan) = plan {
            after.plan = plan;
        }
        if let Some(role) = default_role {
            after.default_role = role;
        }
        after.updated_at = timestamp::now();
        diesel::update(workspaces::table.find(id))
            .set(&after)
            .execute(conn)?;
        audit_workspace(
            conn,
            &caller.cause(),
            "workspace.updated",
            Some(&before),
            &after,
        )?;
        Ok(Workspace::from(&after))
    })
}
