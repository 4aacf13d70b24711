//! The apply engine: the rules that turn the broker's directory into workspace members (SPEC rules 1–7, 10).
//!
//! Every rule is a plain synchronous function over a connection, called inside the caller's transaction, so
//! webhook intake and the full pull share them. Ordering is decided per record: a snapshot applies only if its
//! [`Stamp`] is newer than the stored one, so any delivery order ends in the same state.

pub mod directories;
pub mod groups;
mod member_entries;
pub mod members;
pub mod reconcile;
pub mod roles;
mod sources;
pub mod store;
pub mod teams;
pub mod users;
pub mod workspace;

use crate::audit::Cause;
use crate::db::models::WorkspaceRow;
use crate::db::DbConnection;
use crate::workos::events::{DirectoryUser, Event, EventPayload};
use crate::workos::timestamp::Timestamp;
use diesel::QueryResult;
use std::collections::BTreeSet;
use store::Store;

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

/// Runs `work` over a fresh [`Store`] on the caller's transaction, then writes back what it changed.
pub fn with_store<T, E>(
    conn: &mut DbConnection,
    work: impl FnOnce(&mut Store<'_>) -> Result<T, E>,
) -> Result<T, E>
where
    E: From<diesel::result::Error>,
{
    let mut store = Store::new(conn);
    let result = work(&mut store)?;
    store.flush()?;
    Ok(result)
}

/// Applies one event; `received_at` stands in for a missing event `created_at`.
#[tracing::instrument(skip_all, fields(event_id = %event.id, event_type = %event.event_type, directory_id = event.directory_id()))]
pub fn apply_event(
    store: &mut Store<'_>,
    event: &Event,
    received_at: Timestamp,
) -> Result<ApplyOutcome, ApplyError> {
    if matches!(event.payload, EventPayload::NothingToApply) {
        return Ok(ApplyOutcome::Ignored);
    }
    let workspace = match workspace::qualifying_workspace(store, event)? {
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
        EventPayload::DirectoryActivated(d) => directories::apply_activated(store, &ctx, d)?,
        EventPayload::DirectoryDeactivated(d) => directories::apply_deactivated(store, &ctx, d)?,
        EventPayload::DirectoryDeleted(d) => directories::apply_deleted(store, &ctx, d, fx)?,
        EventPayload::UserCreated(u) | EventPayload::UserUpdated(u) => {
            users::apply_user_snapshot(store, &ctx, u, false, fx)?
        }
        EventPayload::UserDeleted(u) => users::apply_user_snapshot(store, &ctx, u, true, fx)?,
        EventPayload::GroupCreated(g) | EventPayload::GroupUpdated(g) => {
            groups::apply_group_snapshot(store, &ctx, g, false)?;
        }
        EventPayload::GroupDeleted(g) => {
            groups::apply_group_snapshot(store, &ctx, g, true)?;
        }
        EventPayload::GroupUserAdded(change) => {
            groups::apply_membership(store, &ctx, change, true, fx)?
        }
        EventPayload::GroupUserRemoved(change) => {
            groups::apply_membership(store, &ctx, change, false, fx)?
        }
        EventPayload::NothingToApply => {}
    }
    Ok(effects.outcome())
}

/// Loads, in a few queries, what applying these events will read: their workspaces and directories, the
/// users and groups they name, and those users' members, memberships and team sources.
pub fn prefetch_events(store: &mut Store<'_>, events: &[&Event]) -> QueryResult<()> {
    let directories: BTreeSet<&str> = events.iter().filter_map(|e| e.directory_id()).collect();
    store.prefetch_directories(&directories.iter().copied().collect::<Vec<_>>())?;
    // An event belongs to its directory's organization, else to the one it names.
    let mut organization_of: Vec<Option<String>> = Vec::with_capacity(events.len());
    for event in events {
        organization_of.push(workspace::event_organization(store, event)?.ok().flatten());
    }
    let organizations: BTreeSet<&str> = organization_of
        .iter()
        .flatten()
        .map(String::as_str)
        .collect();
    store.prefetch_workspaces(&organizations.into_iter().collect::<Vec<_>>())?;
    let mut by_workspace: Vec<(String, Vec<&DirectoryUser>)> = Vec::new();
    let mut groups: BTreeSet<&str> = BTreeSet::new();
    let mut joining: BTreeSet<&str> = BTreeSet::new();
    for (event, organization) in events.iter().zip(&organization_of) {
        let Some(organization) = organization else {
            continue;
        };
        let Some(workspace) = store.workspace_of_organization(organization)? else {
            continue;
        };
        let user = match &event.payload {
            EventPayload::UserCreated(u)
            | EventPayload::UserUpdated(u)
            | EventPayload::UserDeleted(u) => Some(u),
            EventPayload::GroupCreated(g)
            | EventPayload::GroupUpdated(g)
            | EventPayload::GroupDeleted(g) => {
                groups.insert(&g.id);
                None
            }
            EventPayload::GroupUserAdded(m) | EventPayload::GroupUserRemoved(m) => {
                groups.insert(&m.group.id);
                joining.insert(&m.user.id);
                Some(&m.user)
            }
            _ => None,
        };
        if let Some(user) = user {
            match by_workspace.iter_mut().find(|(ws, _)| *ws == workspace.id) {
                Some((_, users)) => users.push(user),
                None => by_workspace.push((workspace.id.clone(), vec![user])),
            }
        }
    }
    store.prefetch_groups(&groups.into_iter().collect::<Vec<_>>())?;
    store.prefetch_memberships_of_users(&joining.into_iter().collect::<Vec<_>>())?;
    for (workspace_id, users) in by_workspace {
        prefetch_users(store, &workspace_id, &users)?;
    }
    Ok(())
}

/// Loads what applying these user snapshots to a workspace will read: the stored users, everyone sharing
/// their `idp_id`s, the members linked to any of them or holding their emails, and those members' team
/// sources and memberships.
pub fn prefetch_users(
    store: &mut Store<'_>,
    workspace_id: &str,
    users: &[&DirectoryUser],
) -> QueryResult<()> {
    let ids: Vec<&str> = users.iter().map(|u| u.id.as_str()).collect();
    store.prefetch_users(&ids)?;
    let mut pairs: BTreeSet<(String, String)> = BTreeSet::new();
    for user in users {
        if let Some(idp) = user.idp_id.as_deref().filter(|i| !i.is_empty()) {
            pairs.insert((user.directory_id.clone(), idp.to_string()));
        }
        if let Some(stored) = store.user(&user.id)?.filter(|s| !s.idp_id.is_empty()) {
            pairs.insert((stored.directory_id, stored.idp_id));
        }
    }
    let pairs: Vec<(&str, &str)> = pairs
        .iter()
        .map(|(d, i)| (d.as_str(), i.as_str()))
        .collect();
    store.prefetch_users_with_idp(&pairs)?;
    let mut people: BTreeSet<String> = ids.iter().map(|id| id.to_string()).collect();
    for (directory, idp) in &pairs {
        people.extend(
            store
                .users_with_idp(directory, idp)?
                .into_iter()
                .map(|u| u.id),
        );
    }
    let people: Vec<&str> = people.iter().map(String::as_str).collect();
    store.prefetch_members_of_users(&people)?;
    let emails: BTreeSet<String> = users
        .iter()
        .filter_map(|u| u.primary_email().map(members::email_key))
        .collect();
    store.prefetch_members_with_emails(
        workspace_id,
        &emails.iter().map(String::as_str).collect::<Vec<_>>(),
    )?;
    let mut member_ids = Vec::new();
    for person in &people {
        member_ids.extend(
            store
                .members_of_user(workspace_id, person)?
                .into_iter()
                .map(|m| m.id),
        );
    }
    store.prefetch_sources(&member_ids.iter().map(String::as_str).collect::<Vec<_>>())?;
    if !store.team_links(workspace_id)?.is_empty() || !store.role_mappings(workspace_id)?.is_empty()
    {
        store.prefetch_groups_of_users(&people)?;
    }
    Ok(())
}
