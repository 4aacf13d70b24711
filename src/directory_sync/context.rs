//! What every rule works with: the workspace and cause of an apply, what it ran into, and how it fails.

use super::outcome::ApplyOutcome;
use crate::audit::Cause;
use crate::db::models::WorkspaceRow;
use crate::workos::timestamp::Timestamp;

/// Applying failed; the caller rolls back and retries later.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("database error: {0}")]
    Db(#[from] diesel::result::Error),
}

/// The workspace and cause that an apply works for.
pub struct ApplyContext {
    pub workspace: WorkspaceRow,
    pub cause: Cause,
    /// When the broker created the change; orders memberships and breaks snapshot ties.
    pub event_at: Timestamp,
}

/// What an apply ran into that the caller reports.
#[derive(Debug, Default)]
pub struct Effects {
    pub conflicts: Vec<String>,
}

impl Effects {
    /// The outcome of an apply that ran into these.
    pub fn outcome(self) -> ApplyOutcome {
        if self.conflicts.is_empty() {
            ApplyOutcome::Applied
        } else {
            ApplyOutcome::Conflict(self.conflicts.join("; "))
        }
    }
}
