//! `GET …/audit-log`: every change to the workspace's members, teams, links, mappings and roles, newest
//! first, with what caused it (rule 17).

use super::blocking::OffWorkers;
use super::error::ApiResult;
use super::pagination::{after_id, PageQuery};
use super::params::{PagedById, WorkspaceParam};
use super::route::Route;
use crate::access::Caller;
use crate::lists::List;
use crate::state::AppState;
use crate::workspaces::audit_log::{self, AuditEntry};
use actix_web::{web, HttpResponse};

pub fn routes() -> Vec<Route> {
    Route::of::<__path_list_audit_log>(|| web::to(list_audit_log))
}

/// Read the audit log, newest first
#[utoipa::path(get, path = "/api/v1/workspaces/{ws}/audit-log", tag = "audit",
    params(WorkspaceParam, PagedById),
    responses(
        (status = 200, description = "A page of entries.", body = List<AuditEntry>),
        (status = 404, extensions(("x-problem-codes" = json!(["not_found"])))),
    ),
)]
pub(super) async fn list_audit_log(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    query: web::Query<PageQuery>,
) -> ApiResult<HttpResponse> {
    let ws = path.into_inner();
    let page = query.page()?;
    let after = after_id(&page)?;
    let body = state
        .call(move |db| audit_log::list(db, &caller, &ws, &page, after))
        .await?;
    Ok(HttpResponse::Ok().json(body))
}
