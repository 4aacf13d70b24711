//! `GET …/directory-groups`: the directory groups an admin can link to teams or map to roles.

use super::blocking::OffWorkers;
use super::error::{ApiError, ApiResult};
use super::pagination::PageQuery;
use super::params::WorkspaceParam;
use super::route::Route;
use crate::access::Caller;
use crate::db::models::DirectoryGroupRow;
use crate::db::schema::{directory_group_memberships as memberships, directory_groups, team_links};
use crate::directory_sync::teams::workspace_groups;
use crate::lists::List;
use crate::state::AppState;
use crate::workspaces;
use crate::workspaces::members::like_contains;
use actix_web::{web, HttpResponse};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

pub fn routes() -> Vec<Route> {
    Route::of::<__path_list_directory_groups>(|| web::to(list_directory_groups))
}

/// A directory group of the workspace.
#[derive(Serialize, ToSchema)]
pub struct DirectoryGroup {
    id: String,
    name: String,
    directory_id: String,
    member_count: i64,
    linked_team_ids: Vec<String>,
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
        .read(move |conn| {
            let workspace = workspaces::visible(conn, &caller, &ws)?;
            let mut q = workspace_groups(&workspace)
                .order(directory_groups::id)
                .limit(page.limit + 1)
                .select(DirectoryGroupRow::as_select());
            if let Some(after) = &page.after {
                q = q.filter(directory_groups::id.gt(after.clone()));
            }
            if let Some(text) = &search {
                q = q.filter(like_contains("lower(directory_groups.name)", text));
            }
            let list = List::from_overfetch(q.load(conn)?, &page, |g: &DirectoryGroupRow| {
                g.id.to_string()
            });
            list.try_map(|group| {
                let member_count: i64 = memberships::table
                    .filter(memberships::group_id.eq(&group.id))
                    .filter(memberships::is_member.eq(true))
                    .count()
                    .get_result(conn)?;
                let linked_team_ids: Vec<String> = team_links::table
                    .filter(team_links::group_id.eq(&group.id))
                    .filter(team_links::workspace_id.eq(&workspace.id))
                    .order(team_links::team_id)
                    .select(team_links::team_id)
                    .load(conn)?;
                Ok::<_, ApiError>(DirectoryGroup {
                    id: group.id.to_string(),
                    name: group.name.clone(),
                    directory_id: group.directory_id.to_string(),
                    member_count,
                    linked_team_ids,
                })
            })
        })
        .await?;
    Ok(HttpResponse::Ok().json(body))
}
