//! A workspace's directory-sync setting and its organization's directories: turning it on needs a plan
//! that includes it (rule 13).

use super::{audit_workspace, visible, WorkspaceError};
use crate::access::Caller;
use crate::db::models::{DirectoryRow, SyncRunRow, WorkspaceRow};
use crate::db::schema::{directories, directory_users, members, sync_runs, workspaces};
use crate::db::{Database, DbConnection};
use crate::domain::MemberStatus;
use crate::workos::timestamp::{self, time_json};
use diesel::prelude::*;
use serde::Serialize;
use utoipa::ToSchema;

/// A directory of the workspace's organization.
#[derive(Serialize, ToSchema)]
pub struct Directory {
    id: String,
    #[serde(rename = "type")]
    directory_type: String,
    name: String,
    state: String,
    #[schema(required = true, format = DateTime)]
    last_synced_at: Option<String>,
    /// Active members of the workspace who come from this directory.
    member_count: i64,
    /// The directory's latest full pull, null before the first.
    #[schema(required = true)]
    last_full_pull: Option<LastFullPull>,
}

/// A directory's latest full pull and how it ended (or that it has not yet).
#[derive(Serialize, ToSchema)]
pub struct LastFullPull {
    run_id: String,
    #[schema(value_type = crate::domain::RunStatus, inline)]
    status: crate::domain::RunStatus,
    #[schema(format = DateTime)]
    created_at: String,
    #[schema(required = true, format = DateTime)]
    finished_at: Option<String>,
}

/// The directory-sync setting and the workspace's directories.
#[derive(Serialize, ToSchema)]
pub struct DirectorySync {
    enabled: bool,
    directories: Vec<Directory>,
}

/// The setting as a workspace has it, with its organization's directories, oldest first.
fn directory_sync(
    conn: &mut DbConnection,
    workspace: &WorkspaceRow,
) -> Result<DirectorySync, WorkspaceError> {
    let rows: Vec<DirectoryRow> = directories::table
        .filter(directories::organization_id.eq(&workspace.organization_id))
        .order(directories::created_at)
        .select(DirectoryRow::as_select())
        .load(conn)?;
    let directories = rows
        .into_iter()
        .map(|d| {
            // A join, not `IN (the directory's users)`: SQLite would first gather every user of a large
            // directory.
            let member_count: i64 = members::table
                .inner_join(
                    directory_users::table.on(directory_users::id
                        .nullable()
                        .eq(members::directory_user_id)),
                )
                .filter(members::workspace_id.eq(&workspace.id))
                .filter(members::status.eq(MemberStatus::Active))
                .filter(directory_users::directory_id.eq(&d.id))
                .count()
                .get_result(conn)?;
            let last_run: Option<SyncRunRow> = sync_runs::table
                .filter(sync_runs::directory_id.eq(&d.id))
                .order((sync_runs::created_at.desc(), sync_runs::id.desc()))
                .select(SyncRunRow::as_select())
                .first(conn)
                .optional()?;
            Ok(Directory {
                id: d.id.into_string(),
                directory_type: d.directory_type,
                name: d.name,
                state: d.state,
                last_synced_at: d.last_synced_at.as_ref().map(time_json),
                member_count,
                last_full_pull: last_run.map(|run| LastFullPull {
                    run_id: run.id,
                    status: run.status,
                    created_at: time_json(&run.created_at),
                    finished_at: run.finished_at.as_ref().map(time_json),
                }),
            })
        })
        .collect::<Result<_, WorkspaceError>>()?;
    Ok(DirectorySync {
        enabled: workspace.directory_sync_enabled,
        directories,
    })
}

/// The workspace's setting and directories.
pub fn get(
    db: &Database,
    caller: &Caller,
    workspace_id: &str,
) -> Result<DirectorySync, WorkspaceError> {
    db.read(|conn| {
        let workspace = visible(conn, caller, workspace_id)?;
        directory_sync(conn, &workspace)
    })
}

/// The setting after a change, and whether it was just turned on.
pub struct SettingChanged {
    pub setting: DirectorySync,
    /// The workspace's organization when directory sync was off and is now on: its directories are
    /// due a full pull (rule 16).
    pub turned_on: Option<String>,
}

/// Turns directory sync on or off; on needs `growth` or `enterprise`. Setting it as it is changes
/// nothing and records nothing.
pub fn set(
    db: &Database,
    caller: &Caller,
    workspace_id: &str,
    enabled: bool,
) -> Result<SettingChanged, WorkspaceError> {
    db.write_workspace(workspace_id, |conn| {
        let before = visible(conn, caller, workspace_id)?;
        let plan = before.plan;
        if enabled && !plan.includes_directory_sync() {
            return Err(WorkspaceError::PlanRequired(plan));
        }
        let mut after = before.clone();
        let turned_on =
            (enabled && !before.directory_sync_enabled).then(|| before.organization_id.clone());
        if before.directory_sync_enabled != enabled {
            after.directory_sync_enabled = enabled;
            after.updated_at = timestamp::now();
            diesel::update(workspaces::table.find(workspace_id))
                .set(&after)
                .execute(conn)?;
            let action = if enabled {
                "directory_sync.enabled"
            } else {
                "directory_sync.disabled"
            };
            audit_workspace(conn, &caller.cause(), action, Some(&before), &after)?;
        }
        Ok(SettingChanged {
            setting: directory_sync(conn, &after)?,
            turned_on,
        })
    })
}
