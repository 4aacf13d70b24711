//! `GET …/changes`: the change feed (rule 23), for the product around Rollcall to follow what it changes.

use super::blocking::OffWorkers;
use super::error::ApiResult;
use super::pagination::PageQuery;
use super::params::WorkspaceParam;
use super::route::Route;
use crate::access::Caller;
use crate::changes::feed::FeedPage;
use crate::state::AppState;
use crate::workspaces::changes;
use actix_web::{web, HttpResponse};

pub fn routes() -> Vec<Route> {
    [
        Route::of::<__path_list_workspace_changes>(|| web::to(list_workspace_changes)),
        Route::of::<__path_list_changes>(|| web::to(list_changes)),
    ]
    .concat()
}

/// Read the workspace's change feed, oldest first
///
/// Every change Rollcall makes to the workspace's members, teams, team memberships and roles, each
/// with its position (1, 2, 3… without gaps, in the order they were made), its cause and the object
/// after the change. Read from the start (no `after`), apply each change, keep `list_metadata.after`
/// and ask again with it: the changes applied give what the API lists. When changes after the cursor
/// were pruned (`ROLLCALL_EVENT_RETENTION`), the answer is 410 `cursor_expired` with `resume_after`:
/// list the current state again, then read on from there.
#[utoipa::path(get, path = "/api/v1/workspaces/{ws}/changes", tag = "changes",
    params(WorkspaceParam, PageQuery),
    responses(
        (status = 200, description = "The changes after the cursor.", body = FeedPage),
        (status = 400, extensions(("x-problem-codes" = json!(["invalid_parameter"])))),
        (status = 404, extensions(("x-problem-codes" = json!(["not_found"])))),
        (status = 410, extensions(("x-problem-codes" = json!(["cursor_expired"])))),
    ),
)]
pub(super) async fn list_workspace_changes(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    query: web::Query<PageQuery>,
) -> ApiResult<HttpResponse> {
    let ws = path.into_inner();
    let page = query.page()?;
    let body = state
        .call(move |db| {
            changes::workspace_page(db, &caller, &ws, page.after.as_deref(), page.limit)
        })
        .await?;
    Ok(HttpResponse::Ok().json(body))
}

/// Read every workspace's changes in one order (operator)
///
/// The changes of all workspaces, oldest first, in one order that never puts a change before one
/// already read; each keeps its workspace's `position`. The cursor is opaque. On PostgreSQL a change
/// is listed once every transaction that began before its own has ended, so a long transaction on the
/// server delays this feed (not a workspace's own).
#[utoipa::path(get, path = "/api/v1/changes", tag = "changes",
    params(PageQuery),
    responses(
        (status = 200, description = "The changes after the cursor.", body = FeedPage),
        (status = 400, extensions(("x-problem-codes" = json!(["invalid_parameter"])))),
        (status = 403, extensions(("x-problem-codes" = json!(["forbidden"])))),
        (status = 410, extensions(("x-problem-codes" = json!(["cursor_expired"])))),
    ),
)]
pub(super) async fn list_changes(
    state: web::Data<AppState>,
    caller: Caller,
    query: web::Query<PageQuery>,
) -> ApiResult<HttpResponse> {
    let page = query.page()?;
    let body = state
        .call(move |db| {
            changes::all_workspaces_page(db, &caller, page.after.as_deref(), page.limit)
        })
        .await?;
    Ok(HttpResponse::Ok().json(body))
}
