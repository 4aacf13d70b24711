//! Which workspace an event belongs to, and whether it takes directory changes (rule 7).

use super::outcome::SkipReason;
use super::store::Store;
use crate::db::models::WorkspaceRow;
use crate::db::schema::{directories, workspaces};
use crate::db::DbConnection;
use crate::ids::DirectoryId;
use crate::workos::events::Event;
use diesel::prelude::*;
use std::collections::{BTreeSet, HashMap};

/// The organization an event belongs to (rule 19): its directory's as stored, else the one it names. A
/// stored directory whose organization differs from the one the event names is a mismatch.
fn organization_of(
    event: &Event,
    stored_organization: impl FnOnce(&DirectoryId) -> QueryResult<Option<String>>,
) -> QueryResult<Result<Option<String>, SkipReason>> {
    let stored = match event.directory_id() {
        Some(directory) => stored_organization(directory)?,
        None => None,
    };
    Ok(match (stored, event.organization_id()) {
        (Some(stored), Some(named)) if stored != named => Err(SkipReason::OrganizationMismatch {
            directory: event
                .directory_id()
                .map(DirectoryId::to_string)
                .unwrap_or_default(),
            stored,
            named: named.to_string(),
        }),
        (Some(stored), _) => Ok(Some(stored)),
        (None, named) => Ok(named.map(str::to_string)),
    })
}

/// The organization an event belongs to, with its directory looked up in `store`.
pub fn event_organization(
    store: &mut Store<'_>,
    event: &Event,
) -> QueryResult<Result<Option<String>, SkipReason>> {
    organization_of(event, |directory| {
        Ok(store.directory(directory)?.map(|d| d.organization_id))
    })
}

/// The workspace whose `organization_id` matches the event's, if it currently takes directory changes.
pub fn qualifying_workspace(
    store: &mut Store<'_>,
    event: &Event,
) -> QueryResult<Result<WorkspaceRow, SkipReason>> {
    let organization_id = match event_organization(store, event)? {
        Ok(organization) => organization,
        Err(mismatch) => return Ok(Err(mismatch)),
    };
    let Some(organization_id) = organization_id else {
        let directory = event
            .directory_id()
            .map_or_else(|| "(none)".to_string(), DirectoryId::to_string);
        return Ok(Err(SkipReason::UnknownDirectory(directory)));
    };
    let Some(workspace) = store.workspace_of_organization(&organization_id)? else {
        return Ok(Err(SkipReason::NoWorkspace(organization_id)));
    };
    Ok(check_qualifies(&workspace).map(|()| workspace))
}

/// Whether a workspace currently takes directory changes: sync on and a plan that includes it.
pub fn check_qualifies(workspace: &WorkspaceRow) -> Result<(), SkipReason> {
    if !workspace.plan.includes_directory_sync() {
        return Err(SkipReason::PlanBelowGrowth(workspace.plan));
    }
    if !workspace.directory_sync_enabled {
        return Err(SkipReason::DirectorySyncOff);
    }
    Ok(())
}

/// The workspace a stored directory belongs to (through its organization), if any.
pub fn workspace_of_directory(
    conn: &mut DbConnection,
    directory_id: &str,
) -> QueryResult<Option<String>> {
    directories::table
        .inner_join(
            workspaces::table.on(workspaces::organization_id.eq(directories::organization_id)),
        )
        .filter(directories::id.eq(directory_id))
        .select(workspaces::id)
        .first(conn)
        .optional()
}

/// Every workspace these events would be applied to (whether or not it takes directory changes now),
/// in id order: the locks applying them takes.
pub fn workspaces_of(conn: &mut DbConnection, events: &[&Event]) -> QueryResult<Vec<String>> {
    let named: BTreeSet<&DirectoryId> = events.iter().filter_map(|e| e.directory_id()).collect();
    let stored: HashMap<DirectoryId, String> = if named.is_empty() {
        HashMap::new()
    } else {
        directories::table
            .filter(directories::id.eq_any(&named))
            .select((directories::id, directories::organization_id))
            .load::<(DirectoryId, String)>(conn)?
            .into_iter()
            .collect()
    };
    let mut organizations: BTreeSet<String> = BTreeSet::new();
    for event in events {
        let organization = organization_of(event, |directory| Ok(stored.get(directory).cloned()))?;
        organizations.extend(organization.ok().flatten());
    }
    if organizations.is_empty() {
        return Ok(Vec::new());
    }
    workspaces::table
        .filter(workspaces::organization_id.eq_any(&organizations))
        .order(workspaces::id)
        .select(workspaces::id)
        .load(conn)
}
