//! What applying an event did, and why one was stored but not applied (rule 7).

/// Why an event was stored but not applied (rule 7).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SkipReason {
    /// The event names no organization and its directory is not known yet.
    UnknownDirectory(String),
    /// No workspace has this organization id.
    NoWorkspace(String),
    DirectorySyncOff,
    PlanBelowGrowth(crate::domain::Plan),
    /// The event names another organization than its stored directory's (rule 19).
    OrganizationMismatch {
        directory: String,
        stored: String,
        named: String,
    },
}

impl SkipReason {
    /// The reason's code, as metrics and the stored reason name it.
    pub fn code(&self) -> &'static str {
        match self {
            SkipReason::UnknownDirectory(_) => "unknown_directory",
            SkipReason::NoWorkspace(_) => "no_workspace",
            SkipReason::DirectorySyncOff => "directory_sync_off",
            SkipReason::PlanBelowGrowth(_) => "plan_below_growth",
            SkipReason::OrganizationMismatch { .. } => "organization_mismatch",
        }
    }
}

impl std::fmt::Display for SkipReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SkipReason::UnknownDirectory(d) => {
                write!(f, "directory {d} is not attached to any workspace yet")
            }
            SkipReason::NoWorkspace(org) => write!(f, "no workspace has organization {org}"),
            SkipReason::DirectorySyncOff => write!(f, "directory sync is off in the workspace"),
            SkipReason::PlanBelowGrowth(plan) => {
                write!(
                    f,
                    "the workspace's plan {plan} does not include directory sync"
                )
            }
            SkipReason::OrganizationMismatch {
                directory,
                stored,
                named,
            } => write!(
                f,
                "organization_mismatch: the event names organization {named}, but directory {directory} belongs to {stored}; a directory never moves through an event"
            ),
        }
    }
}

/// What applying an event did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApplyOutcome {
    Applied,
    /// The type has nothing to apply (tokens, unknown types).
    Ignored,
    Skipped(SkipReason),
    /// Applied, except for changes that would have merged two members (rule 2).
    Conflict(String),
}
