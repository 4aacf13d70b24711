//! Which workspace an event belongs to, and whether it takes directory changes (rule 7).

use super::store::Store;
use super::SkipReason;
use crate::db::models::WorkspaceRow;
use crate::domain::Plan;
use crate::workos::events::Event;
use diesel::QueryResult;

/// The workspace whose `organization_id` matches the event's, if it currently takes directory changes.
pub fn qualifying_workspace(
    store: &mut Store<'_>,
    event: &Event,
) -> QueryResult<Result<WorkspaceRow, SkipReason>> {
    let organization_id = match event.organization_id() {
        Some(org) => Some(org.to_string()),
        None => match event.directory_id() {
            Some(directory) => store.directory(directory)?.map(|d| d.organization_id),
            None => None,
        },
    };
    let Some(organization_id) = organization_id else {
        let directory = event.directory_id().unwrap_or("(none)").to_string();
        return Ok(Err(SkipReason::UnknownDirectory(directory)));
    };
    let Some(workspace) = store.workspace_of_organization(&organization_id)? else {
        return Ok(Err(SkipReason::NoWorkspace(organization_id)));
    };
    Ok(check_qualifies(&workspace).map(|()| workspace))
}

/// Whether a workspace currently takes directory changes: sync on and a plan that includes it.
pub fn check_qualifies(workspace: &WorkspaceRow) -> Result<(), SkipReason> {
    match workspace.plan.parse::<Plan>() {
        Ok(plan) if plan.includes_directory_sync() => {}
        _ => return Err(SkipReason::PlanBelowGrowth(workspace.plan.clone())),
    }
    if !workspace.directory_sync_enabled {
        return Err(SkipReason::DirectorySyncOff);
    }
    Ok(())
}
