//! `GET …/directory-groups`: the directory groups an admin can link to teams or map to roles.

use super::blocking::OffWorkers;
use super::error::ApiResult;
use super::pagination::PageQuery;
use super::params::WorkspaceParam;
use super::route::Route;
use crate::access::Caller;
use crate::lists::List;
use crate::state::AppState;
use crate::workspaces::directory_groups::{self, DirectoryGroup};
use actix_web::{web, HttpResponse};
use serde::Deserialize;
use utoipa::IntoParams;

pub fn routes() -> Vec<Route> {
    Route::of::<__path_list_directory_groups>(|| web::to(list_directory_groups))
}

/// Which groups to list.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct GroupQuery {
    /// Only groups whose name holds this text, in any case (a workspace has at most a few thousand
    /// groups: read without an index).
    #[param(max_length = 200)]
    search: Option<String>,
    #[serde(flatten)]
    #[param(ignore)]
    page: PageQuery,
}

/// List the workspace's directory groups
#[utoipa::path(get, path = "/api/v1/workspaces/{ws}/directory-groups", tag = "directory",
    params(WorkspaceParam, GroupQuery, PageQuery),
    responses(
        (status = 200, description = "A page of groups.", body = List<DirectoryGroup>),
        (status = 400, extensions(("x-problem-codes" = json!(["invalid_parameter"])))),
        (status = 404, extensions(("x-problem-codes" = json!(["not_found"])))),
    ),
)]
pub(super) async fn list_directory_groups(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    query: web::Query<GroupQuery>,
) -> ApiResult<HttpResponse> {
    let ws = path.into_inner();
    let page = query.page.page()?;
    let search = super::members::search_text(query.into_inner().search)?;
    let body = state
        .call(move |db| directory_groups::list(db, &caller, &ws, &page, search.as_deref()))
        .await?;
    Ok(HttpResponse::Ok().json(body))
}
