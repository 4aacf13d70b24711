//! Teams, their members with the reasons they are there, and the directory groups linked to them.

use super::blocking::OffWorkers;
use super::error::{ApiError, ApiResult};
use super::pagination::PageQuery;
use super::params::{GroupParam, MemberParam, TeamParam, WorkspaceParam};
use super::route::Route;
use crate::access::Caller;
use crate::directory_sync::teams::UnlinkMembers;
use crate::directory_sync::teams::UnlinkPreview;
use crate::ids::DirectoryGroupId;
use crate::lists::{CountedList, List};
use crate::state::AppState;
use crate::workspaces::team_links::{self, CreatedTeamLink, TeamLink};
use crate::workspaces::teams::{self, Team, TeamMember};
use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

pub fn routes() -> Vec<Route> {
    [
        Route::of::<__path_list_teams>(|| web::to(list_teams)),
        Route::of::<__path_create_team>(|| web::to(create_team)),
        Route::of::<__path_get_team>(|| web::to(get_team)),
        Route::of::<__path_rename_team>(|| web::to(rename_team)),
        Route::of::<__path_delete_team>(|| web::to(delete_team)),
        Route::of::<__path_list_team_members>(|| web::to(list_team_members)),
        Route::of::<__path_add_team_member>(|| web::to(add_team_member)),
        Route::of::<__path_remove_team_member>(|| web::to(remove_team_member)),
        Route::of::<__path_list_linked_groups>(|| web::to(list_linked_groups)),
        Route::of::<__path_link_directory_group>(|| web::to(link_directory_group)),
        Route::of::<__path_unlink_directory_group>(|| web::to(unlink_directory_group)),
        Route::of::<__path_preview_unlink>(|| web::to(preview_unlink)),
    ]
    .concat()
}

/// List teams
#[utoipa::path(get, path = "/api/v1/workspaces/{ws}/teams", tag = "teams",
    params(WorkspaceParam, PageQuery),
    responses(
        (status = 200, description = "A page of teams.", body = List<Team>),
        (status = 404, extensions(("x-problem-codes" = json!(["not_found"])))),
    ),
)]
pub(super) async fn list_teams(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    query: web::Query<PageQuery>,
) -> ApiResult<HttpResponse> {
    let ws = path.into_inner();
    let page = query.page()?;
    let list = state
        .call(move |db| teams::list(db, &caller, &ws, &page))
        .await?;
    Ok(HttpResponse::Ok().json(list))
}

/// A team's name.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct TeamName {
    #[schema(schema_with = crate::schemas::name)]
    name: String,
}

/// Create a team
#[utoipa::path(post, path = "/api/v1/workspaces/{ws}/teams", tag = "teams",
    params(WorkspaceParam),
    request_body = TeamName,
    responses(
        (status = 201, description = "Created.", body = Team),
        (status = 400, extensions(("x-problem-codes" = json!(["invalid_body", "invalid_field"])))),
        (status = 404, extensions(("x-problem-codes" = json!(["not_found"])))),
        (status = 409, extensions(("x-problem-codes" = json!(["team_name_taken"])))),
    ),
)]
pub(super) async fn create_team(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    body: web::Json<TeamName>,
) -> ApiResult<HttpResponse> {
    let ws = path.into_inner();
    let team = state
        .call(move |db| teams::create(db, &caller, &ws, &body.name))
        .await?;
    Ok(HttpResponse::Created().json(team))
}

/// Get a team
#[utoipa::path(get, path = "/api/v1/workspaces/{ws}/teams/{team}", tag = "teams",
    params(WorkspaceParam, TeamParam),
    responses(
        (status = 200, description = "The team.", body = Team),
        (status = 404, extensions(("x-problem-codes" = json!(["not_found"])))),
    ),
)]
pub(super) async fn get_team(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String)>,
) -> ApiResult<HttpResponse> {
    let (ws, team) = path.into_inner();
    let team = state
        .call(move |db| teams::get(db, &caller, &ws, &team))
        .await?;
    Ok(HttpResponse::Ok().json(team))
}

/// Rename a team
#[utoipa::path(patch, path = "/api/v1/workspaces/{ws}/teams/{team}", tag = "teams",
    params(WorkspaceParam, TeamParam),
    request_body = TeamName,
    responses(
        (status = 200, description = "The renamed team.", body = Team),
        (status = 400, extensions(("x-problem-codes" = json!(["invalid_body", "invalid_field"])))),
        (status = 404, extensions(("x-problem-codes" = json!(["not_found"])))),
        (status = 409, extensions(("x-problem-codes" = json!(["team_name_taken"])))),
    ),
)]
pub(super) async fn rename_team(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String)>,
    body: web::Json<TeamName>,
) -> ApiResult<HttpResponse> {
    let (ws, team) = path.into_inner();
    let team = state
        .call(move |db| teams::rename(db, &caller, &ws, &team, &body.name))
        .await?;
    Ok(HttpResponse::Ok().json(team))
}

/// Delete a team
#[utoipa::path(delete, path = "/api/v1/workspaces/{ws}/teams/{team}", tag = "teams",
    params(WorkspaceParam, TeamParam),
    responses(
        (status = 204, description = "Deleted."),
        (status = 404, extensions(("x-problem-codes" = json!(["not_found"])))),
    ),
)]
pub(super) async fn delete_team(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String)>,
) -> ApiResult<HttpResponse> {
    let (ws, team) = path.into_inner();
    state
        .call(move |db| teams::delete(db, &caller, &ws, &team))
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Which of a team's members to list.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct TeamMemberQuery {
    /// Only members whose name or email holds this text, in any case.
    #[param(max_length = 200)]
    search: Option<String>,
    #[serde(flatten)]
    #[param(ignore)]
    page: PageQuery,
}

/// List a team's members and why each is in it
#[utoipa::path(get, path = "/api/v1/workspaces/{ws}/teams/{team}/members", tag = "teams",
    params(WorkspaceParam, TeamParam, TeamMemberQuery, PageQuery),
    responses(
        (status = 200, description = "A page of team members, with how many match.", body = CountedList<TeamMember>),
        (status = 400, extensions(("x-problem-codes" = json!(["invalid_parameter"])))),
        (status = 404, extensions(("x-problem-codes" = json!(["not_found"])))),
    ),
)]
pub(super) async fn list_team_members(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String)>,
    query: web::Query<TeamMemberQuery>,
) -> ApiResult<HttpResponse> {
    let (ws, team) = path.into_inner();
    let page = query.page.page()?;
    let search = super::members::search_text(query.into_inner().search)?;
    let list = state
        .call(move |db| teams::list_members(db, &caller, &ws, &team, search.as_deref(), &page))
        .await?;
    Ok(HttpResponse::Ok().json(list))
}

/// The member to add.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct TeamMemberRef {
    member_id: String,
}

/// Add a member to a team by hand
///
/// Adds a `manual` source; a deprovisioned member cannot be added (409).
#[utoipa::path(post, path = "/api/v1/workspaces/{ws}/teams/{team}/members", tag = "teams",
    params(WorkspaceParam, TeamParam),
    request_body = TeamMemberRef,
    responses(
        (status = 201, description = "Added.", body = TeamMember),
        (status = 200, description = "The member already had a manual source in this team.", body = TeamMember),
        (status = 400, extensions(("x-problem-codes" = json!(["invalid_body"])))),
        (status = 404, extensions(("x-problem-codes" = json!(["not_found"])))),
        (status = 409, extensions(("x-problem-codes" = json!(["member_deprovisioned"])))),
    ),
)]
pub(super) async fn add_team_member(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String)>,
    body: web::Json<TeamMemberRef>,
) -> ApiResult<HttpResponse> {
    let (ws, team) = path.into_inner();
    let member_id = body.into_inner().member_id;
    let added = state
        .call(move |db| teams::add_member(db, &caller, &ws, &team, &member_id))
        .await?;
    let status = if added.added {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(HttpResponse::build(status).json(added.member))
}

/// Remove a member's manual source
///
/// Removes the `manual` source only (404 if there is none); the member stays while a linked
/// directory group still puts them in the team.
#[utoipa::path(delete, path = "/api/v1/workspaces/{ws}/teams/{team}/members/{member}", tag = "teams",
    params(WorkspaceParam, TeamParam, MemberParam),
    responses(
        (status = 204, description = "Removed."),
        (status = 404, extensions(("x-problem-codes" = json!(["not_found"])))),
    ),
)]
pub(super) async fn remove_team_member(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String, String)>,
) -> ApiResult<HttpResponse> {
    let (ws, team, member) = path.into_inner();
    state
        .call(move |db| teams::remove_member(db, &caller, &ws, &team, &member))
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// List the directory groups linked to a team
#[utoipa::path(get, path = "/api/v1/workspaces/{ws}/teams/{team}/directory-groups", tag = "teams",
    params(WorkspaceParam, TeamParam, PageQuery),
    responses(
        (status = 200, description = "A page of linked groups.", body = List<TeamLink>),
        (status = 404, extensions(("x-problem-codes" = json!(["not_found"])))),
    ),
)]
pub(super) async fn list_linked_groups(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String)>,
    query: web::Query<PageQuery>,
) -> ApiResult<HttpResponse> {
    let (ws, team) = path.into_inner();
    let page = query.page()?;
    let list = state
        .call(move |db| team_links::list(db, &caller, &ws, &team, &page))
        .await?;
    Ok(HttpResponse::Ok().json(list))
}

/// The directory group to link.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct GroupRef {
    group_id: String,
}

/// Link a directory group to a team
///
/// Needs directory sync on and at least one directory group in the workspace; adds every active
/// member of the group, who then follow the group.
#[utoipa::path(post, path = "/api/v1/workspaces/{ws}/teams/{team}/directory-groups", tag = "teams",
    params(WorkspaceParam, TeamParam),
    request_body = GroupRef,
    responses(
        (status = 201, description = "Linked.", body = CreatedTeamLink),
        (status = 400, extensions(("x-problem-codes" = json!(["invalid_body"])))),
        (status = 404, extensions(("x-problem-codes" = json!(["not_found"])))),
        (status = 409, extensions(("x-problem-codes" = json!(["directory_sync_inactive", "no_directory_groups", "already_linked"])))),
    ),
)]
pub(super) async fn link_directory_group(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String)>,
    body: web::Json<GroupRef>,
) -> ApiResult<HttpResponse> {
    let (ws, team) = path.into_inner();
    let group_id = DirectoryGroupId::from(body.into_inner().group_id);
    let link = state
        .call(move |db| team_links::link(db, &caller, &ws, &team, &group_id))
        .await?;
    Ok(HttpResponse::Created().json(link))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct UnlinkQuery {
    /// What happens to the members the group brought in.
    #[param(required = true, value_type = UnlinkMembers, inline)]
    members: Option<String>,
}

/// Unlink a directory group from a team
///
/// `members=keep` turns the group's sources in this team into manual ones; `members=remove` deletes
/// them, and members with no other source leave the team.
#[utoipa::path(delete, path = "/api/v1/workspaces/{ws}/teams/{team}/directory-groups/{group}", tag = "teams",
    params(WorkspaceParam, TeamParam, GroupParam, UnlinkQuery),
    responses(
        (status = 204, description = "Unlinked."),
        (status = 400, extensions(("x-problem-codes" = json!(["members_choice_required", "invalid_parameter"])))),
        (status = 404, extensions(("x-problem-codes" = json!(["not_found"])))),
    ),
)]
pub(super) async fn unlink_directory_group(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String, String)>,
    query: web::Query<UnlinkQuery>,
) -> ApiResult<HttpResponse> {
    let (ws, team, group) = path.into_inner();
    let group = DirectoryGroupId::from(group);
    let choice = match query.members.as_deref().map(str::parse) {
        Some(Ok(choice)) => choice,
        _ => {
            return Err(ApiError::bad_request(
                "members_choice_required",
                "say what happens to the members who came through the group: ?members=keep or ?members=remove",
            ))
        }
    };
    state
        .call(move |db| team_links::unlink(db, &caller, &ws, &team, &group, choice))
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Preview unlinking a directory group from a team
///
/// How many members are in the team through the group, and, with `members=remove`, how many would
/// leave and how many stay through another source: counted in the database, nothing changed.
#[utoipa::path(get, path = "/api/v1/workspaces/{ws}/teams/{team}/directory-groups/{group}/unlink-preview", tag = "teams",
    params(WorkspaceParam, TeamParam, GroupParam),
    responses(
        (status = 200, description = "What each choice would do.", body = UnlinkPreview),
        (status = 404, extensions(("x-problem-codes" = json!(["not_found"])))),
    ),
)]
pub(super) async fn preview_unlink(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String, String)>,
) -> ApiResult<HttpResponse> {
    let (ws, team, group) = path.into_inner();
    let group = DirectoryGroupId::from(group);
    let preview = state
        .call(move |db| team_links::unlink_preview(db, &caller, &ws, &team, &group))
        .await?;
    Ok(HttpResponse::Ok().json(preview))
}
