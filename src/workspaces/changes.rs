//! The change feed as its readers reach it (rule 23): a workspace's, for whoever may see the workspace,
//! and every workspace's in one order, for the operator. How the feed is kept and paged is
//! [`crate::changes::feed`]'s.

use super::{visible, WorkspaceError};
use crate::access::Caller;
use crate::changes::feed::{self, FeedError, FeedPage};
use crate::db::{Database, DbError};

/// Why a page of the feed was refused.
#[derive(Debug, thiserror::Error)]
pub enum ChangesError {
    #[error(transparent)]
    Workspace(#[from] WorkspaceError),
    #[error(transparent)]
    Feed(#[from] FeedError),
    #[error(transparent)]
    Db(#[from] DbError),
}

/// The workspace's changes after position `after` (from the oldest kept when `None`), at most `limit`.
pub fn workspace_page(
    db: &Database,
    caller: &Caller,
    workspace_id: &str,
    after: Option<&str>,
    limit: i64,
) -> Result<FeedPage, ChangesError> {
    db.read(|conn| {
        visible(conn, caller, workspace_id)?;
        Ok(feed::workspace_page(conn, workspace_id, after, limit)?)
    })
}

/// Every workspace's changes after the cursor, at most `limit`: the operator's only.
pub fn all_workspaces_page(
    db: &Database,
    caller: &Caller,
    after: Option<&str>,
    limit: i64,
) -> Result<FeedPage, ChangesError> {
    caller.require_operator().map_err(WorkspaceError::from)?;
    db.read(|conn| Ok(feed::all_workspaces_page(conn, after, limit)?))
}
