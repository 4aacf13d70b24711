//! Who acts through the admin API and what they may reach: an operator everything, a workspace admin
//! their own workspace only (SPEC §4).

use crate::audit::Cause;

/// Who is calling.
#[derive(Debug, Clone)]
pub enum Caller {
    /// May do everything.
    Operator { cause: Cause },
    /// Acts on one workspace only.
    WorkspaceAdmin {
        workspace_id: String,
        token_id: String,
    },
}

/// Only an operator may do this.
#[derive(Debug, thiserror::Error)]
#[error("only an operator may do this")]
pub struct OperatorOnly;

/// A workspace admin asked about another workspace: answered as not found, so it is not revealed.
#[derive(Debug, thiserror::Error)]
#[error("workspace not found")]
pub struct OtherWorkspace;

impl Caller {
    /// The audit cause of what this caller changes.
    pub fn cause(&self) -> Cause {
        match self {
            Caller::Operator { cause } => cause.clone(),
            Caller::WorkspaceAdmin { token_id, .. } => Cause::ApiToken(token_id.clone()),
        }
    }

    /// Whether this caller is an operator.
    pub fn is_operator(&self) -> bool {
        matches!(self, Caller::Operator { .. })
    }

    /// Refuses anyone but an operator.
    pub fn require_operator(&self) -> Result<(), OperatorOnly> {
        if self.is_operator() {
            Ok(())
        } else {
            Err(OperatorOnly)
        }
    }

    /// Refuses a workspace admin asking about another workspace.
    pub fn require_workspace(&self, workspace_id: &str) -> Result<(), OtherWorkspace> {
        match self {
            Caller::WorkspaceAdmin {
                workspace_id: own, ..
            } if own != workspace_id => Err(OtherWorkspace),
            _ => Ok(()),
        }
    }
}
