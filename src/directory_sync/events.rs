//! One broker event through the rules: which rule applies it, and what a batch of events will read.

use super::context::{ApplyContext, ApplyError, Effects};
use super::outcome::ApplyOutcome;
use super::store::Store;
use super::{directories, groups, users, workspace};
use crate::audit::Cause;
use crate::ids::{DirectoryGroupId, DirectoryId, DirectoryUserId};
use crate::workos::events::{DirectoryUser, Event, EventPayload};
use crate::workos::timestamp::Timestamp;
use diesel::QueryResult;
use std::collections::BTreeSet;

/// Applies one event; `received_at` stands in for a missing event `created_at`.
#[tracing::instrument(skip_all, fields(event_id = %event.id, event_type = %event.event_type, directory_id = event.directory_id().map(|d| d.as_str())))]
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
        cause: Cause::of_event(&event.id),
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
    let directories: BTreeSet<&DirectoryId> =
        events.iter().filter_map(|e| e.directory_id()).collect();
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
    let mut groups: BTreeSet<&DirectoryGroupId> = BTreeSet::new();
    let mut joining: BTreeSet<&DirectoryUserId> = BTreeSet::new();
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
        users::prefetch_users(store, &workspace_id, &users)?;
    }
    Ok(())
}
