//! The apply engine: the rules that turn the broker's directory into workspace members (SPEC rules 1–7, 10).
//!
//! Every rule is a plain synchronous function over a connection, called inside the caller's transaction, so
//! webhook intake and the full pull share them. Ordering is decided per record: a snapshot applies only if its
//! [`Stamp`] is newer than the stored one, so any delivery order ends in the same state.

pub mod directories;
pub mod groups;
pub mod members;
pub mod reconcile;
pub mod roles;
pub mod teams;
pub mod users;
pub mod workspace;

use crate::audit::Cause;
use crate::db::models::WorkspaceRow;
use crate::db::DbConnection;
use crate::workos::events::{Event, EventPayload};
use crate::workos::timestamp::Timestamp;

/// The ordering key of a snapshot: the object's `updated_at`, ties broken by the event's `created_at`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Stamp {
    pub updated_at: Timestamp,
    pub event_at: Timestamp,
}

impl Stamp {
    /// The stamp of an object snapshot carried by an event created at `event_at`.
    pub fn of(object_updated_at: Option<Timestamp>, event_at: Timestamp) -> Self {
        Self {
            updated_at: object_updated_at.unwrap_or(event_at),
            event_at,
        }
    }

    /// Whether a snapshot with this stamp replaces one stored with `stored` (none stored: it does).
    pub fn supersedes(self, stored: Option<(Timestamp, Timestamp)>) -> bool {
        stored.is_none_or(|(updated_at, event_at)| {
            self > Stamp {
                updated_at,
                event_at,
            }
        })
    }
}

/// Why an event was stored but not applied (rule 7).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SkipReason {
    /// The event names no organization and its directory is not known yet.
    UnknownDirectory(String),
    /// No workspace has this organization id.
    NoWorkspace(String),
    DirectorySyncOff,
    PlanBelowGrowth(String),
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
    fn outcome(self) -> ApplyOutcome {
        if self.conflicts.is_empty() {
            ApplyOutcome::Applied
        } else {
            ApplyOutcome::Conflict(self.conflicts.join("; "))
        }
    }
}

/// Applies one webhook event; `received_at` stands in for a missing event `created_at`.
pub fn apply_event(
    conn: &mut DbConnection,
    event: &Event,
    received_at: Timestamp,
) -> Result<ApplyOutcome, ApplyError> {
    if matches!(event.payload, EventPayload::NothingToApply) {
        return Ok(ApplyOutcome::Ignored);
    }
    let workspace = match workspace::qualifying_workspace(conn, event)? {
        Ok(workspace) => workspace,
        Err(reason) => return Ok(ApplyOutcome::Skipped(reason)),
    };
    let ctx = ApplyContext {
        workspace,
        cause: Cause::Event(event.id.clone()),
        event_at: event.created_at.unwrap_or(received_at),
    };
    let mut effects = Effects::default();
    let fx = &mut effects;
    match &event.payload {
        EventPayload::DirectoryActivated(d) => directories::apply_activated(conn, &ctx, d)?,
        EventPayload::DirectoryDeactivated(d) => directories::apply_deactivated(conn, &ctx, d)?,
        EventPayload::DirectoryDeleted(d) => directories::apply_deleted(conn, &ctx, d, fx)?,
        EventPayload::UserCreated(u) | EventPayload::UserUpdated(u) => {
            users::apply_user_snapshot(conn, &ctx, u, false, fx)?
        }
        EventPayload::UserDeleted(u) => users::apply_user_snapshot(conn, &ctx, u, true, fx)?,
        EventPayload::GroupCreated(g) | EventPayload::GroupUpdated(g) => {
            groups::apply_group_snapshot(conn, &ctx, g, false)?;
        }
        EventPayload::GroupDeleted(g) => {
            groups::apply_group_snapshot(conn, &ctx, g, true)?;
        }
        EventPayload::GroupUserAdded(change) => {
            groups::apply_membership(conn, &ctx, change, true, fx)?
        }
        EventPayload::GroupUserRemoved(change) => {
            groups::apply_membership(conn, &ctx, change, false, fx)?
        }
        EventPayload::NothingToApply => {}
    }
    Ok(effects.outcome())
}
