//! A workspace's admin tokens, as the operator creates, lists and revokes them; only the operator may.

use super::{operator_only, visible, WorkspaceError};
use crate::access::Caller;
use crate::db::models::ApiTokenRow;
use crate::db::Database;
use crate::lists::{List, Page};
use crate::tokens::{check_name, create_token, revoke_token, token_expiry, unrevoked_tokens};
use crate::workos::timestamp;

/// Creates an admin token of the workspace, with an optional name and a life such as `30d` (without
/// one, until revoked); returns it as stored and the token itself, shown once.
pub fn create(
    db: &Database,
    caller: &Caller,
    workspace_id: &str,
    name: Option<&str>,
    expires_in: Option<&str>,
) -> Result<(ApiTokenRow, String), WorkspaceError> {
    operator_only(caller, workspace_id)?;
    let name = name
        .map(check_name)
        .transpose()
        .map_err(WorkspaceError::InvalidField)?;
    let expires_at = expires_in
        .map(|text| token_expiry(text, timestamp::now()))
        .transpose()
        .map_err(|e| WorkspaceError::InvalidField(format!("expires_in: {e}")))?;
    db.write(|conn| {
        let workspace = visible(conn, caller, workspace_id)?;
        Ok(create_token(
            conn,
            Some(&workspace.id),
            name.as_deref(),
            expires_at,
        )?)
    })
}

/// A page of the workspace's tokens not revoked, oldest first, expired ones included.
pub fn list(
    db: &Database,
    caller: &Caller,
    workspace_id: &str,
    page: &Page,
) -> Result<List<ApiTokenRow>, WorkspaceError> {
    operator_only(caller, workspace_id)?;
    db.read(|conn| {
        let workspace = visible(conn, caller, workspace_id)?;
        let rows = unrevoked_tokens(
            conn,
            Some(&workspace.id),
            Some((page.limit, page.after.as_deref())),
        )?;
        Ok(List::from_overfetch(rows, page, |t| t.id.clone()))
    })
}

/// Revokes an admin token of the workspace; one already revoked is not found.
pub fn revoke(
    db: &Database,
    caller: &Caller,
    workspace_id: &str,
    token_id: &str,
) -> Result<(), WorkspaceError> {
    operator_only(caller, workspace_id)?;
    db.write(|conn| {
        let workspace = visible(conn, caller, workspace_id)?;
        if revoke_token(conn, token_id, Some(&workspace.id))? {
            Ok(())
        } else {
            Err(WorkspaceError::AdminTokenNotFound)
        }
    })?;
    tracing::info!(token = %token_id, "admin token revoked");
    Ok(())
}
