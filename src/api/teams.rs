//! Teams, their members with the reasons they are there, and the directory groups linked to them.

use super::blocking::OffWorkers;
use super::error::{ApiError, ApiResult};
use super::pagination::PageQuery;
use super::params::{GroupParam, MemberParam, TeamParam, WorkspaceParam};
use super::route::Route;
use super::workspaces::{load_workspace, time_json};
use crate::access::Caller;
use crate::audit::{self, AuditRecord};
use crate::db::models::{MemberRow, TeamLinkRow, TeamMemberSourceRow, TeamRow, WorkspaceRow};
use crate::db::schema::{
    directory_groups, members, team_links, team_member_sources as sources, teams,
};
use crate::db::DbConnection;
use crate::directory_sync::teams::{
    self as team_rules, LinkError, ShownSource, TeamMembershipSource, UnlinkMembers,
};
use crate::domain::MemberStatus;
use crate::ids::new_id;
use crate::lists::{List, Page};
use crate::schemas::member_status;
use crate::state::AppState;
use crate::tokens::check_name;
use crate::workos::timestamp;
use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::BTreeMap;
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
    ]
    .concat()
}

/// A team.
#[derive(Serialize, ToSchema)]
pub struct Team {
    id: String,
    workspace_id: String,
    name: String,
    member_count: i64,
    linked_group_ids: Vec<String>,
    #[schema(format = DateTime)]
    created_at: String,
    #[schema(format = DateTime)]
    updated_at: String,
}

/// A member of a team and why they are in it.
#[derive(Serialize, ToSchema)]
pub struct TeamMember {
    member_id: String,
    email: String,
    #[schema(required = true)]
    first_name: Option<String>,
    #[schema(required = true)]
    last_name: Option<String>,
    #[schema(schema_with = member_status)]
    status: String,
    sources: Vec<ShownSource>,
}

/// A directory group linked to a team.
#[derive(Serialize, ToSchema)]
pub struct TeamLink {
    team_id: String,
    group_id: String,
    name: String,
    directory_id: String,
    #[schema(format = DateTime)]
    linked_at: String,
}

/// A new link, with how many members it brought.
#[derive(Serialize, ToSchema)]
pub struct CreatedTeamLink {
    #[serde(flatten)]
    link: TeamLink,
    /// Active members of the group added to the team.
    members_added: usize,
}

/// A team as the API shows it.
fn team_json(conn: &mut DbConnection, team: &TeamRow) -> ApiResult<Team> {
    let member_count: i64 = sources::table
        .filter(sources::team_id.eq(&team.id))
        .select(diesel::dsl::count(sources::member_id).aggregate_distinct())
        .first(conn)?;
    let linked_group_ids: Vec<String> = team_links::table
        .filter(team_links::team_id.eq(&team.id))
        .order(team_links::group_id)
        .select(team_links::group_id)
        .load(conn)?;
    Ok(Team {
        id: team.id.clone(),
        workspace_id: team.workspace_id.clone(),
        name: team.name.clone(),
        member_count,
        linked_group_ids,
        created_at: time_json(&team.created_at),
        updated_at: time_json(&team.updated_at),
    })
}

/// Loads a team of a workspace the caller may see, else 404.
fn load_team(
    conn: &mut DbConnection,
    caller: &Caller,
    ws: &str,
    team: &str,
) -> ApiResult<(WorkspaceRow, TeamRow)> {
    let workspace = load_workspace(conn, caller, ws)?;
    let team = teams::table
        .find(team)
        .filter(teams::workspace_id.eq(ws))
        .select(TeamRow::as_select())
        .first(conn)
        .optional()?
        .ok_or_else(|| ApiError::not_found("team"))?;
    Ok((workspace, team))
}

fn check_team_name(
    conn: &mut DbConnection,
    ws: &str,
    name: &str,
    except: Option<&str>,
) -> ApiResult<(String, String)> {
    let name = check_name(name).map_err(ApiError::invalid_field)?;
    let key = name.to_lowercase();
    let mut q = teams::table
        .filter(teams::workspace_id.eq(ws))
        .filter(teams::name_key.eq(key.clone()))
        .into_boxed();
    if let Some(id) = except {
        q = q.filter(teams::id.ne(id.to_string()));
    }
    let taken: i64 = q.count().get_result(conn)?;
    if taken > 0 {
        return Err(ApiError::conflict(
            "team_name_taken",
            "another team of this workspace has that name",
        ));
    }
    Ok((name.to_string(), key))
}

fn audit_team(
    conn: &mut DbConnection,
    caller: &Caller,
    action: &str,
    team: &TeamRow,
    before: Option<Value>,
    after: Option<Value>,
) -> ApiResult<()> {
    audit::record(
        conn,
        &caller.cause(),
        AuditRecord {
            workspace_id: &team.workspace_id,
            action,
            subject_type: "team",
            subject_id: &team.id,
            before,
            after,
        },
    )?;
    Ok(())
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
    let body = state
        .read(move |conn| {
            load_workspace(conn, &caller, &ws)?;
            let mut q = teams::table
                .filter(teams::workspace_id.eq(&ws))
                .order(teams::id)
                .limit(page.limit + 1)
                .select(TeamRow::as_select())
                .into_boxed();
            if let Some(after) = &page.after {
                q = q.filter(teams::id.gt(after.clone()));
            }
            let list = List::from_overfetch(q.load(conn)?, &page, |t: &TeamRow| t.id.clone());
            list.try_map(|t| team_json(conn, t))
        })
        .await?;
    Ok(HttpResponse::Ok().json(body))
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
    let body = state
        .write_workspace(ws.clone(), move |conn| {
            load_workspace(conn, &caller, &ws)?;
            let (name, name_key) = check_team_name(conn, &ws, &body.name, None)?;
            let now = timestamp::now();
            let team = TeamRow {
                id: new_id("team"),
                workspace_id: ws,
                name,
                name_key,
                created_at: now,
                updated_at: now,
            };
            diesel::insert_into(teams::table)
                .values(&team)
                .execute(conn)?;
            let shown = team_json(conn, &team)?;
            audit_team(
                conn,
                &caller,
                "team.created",
                &team,
                None,
                Some(json!(shown)),
            )?;
            Ok(shown)
        })
        .await?;
    Ok(HttpResponse::Created().json(body))
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
    let body = state
        .read(move |conn| {
            let (_, team) = load_team(conn, &caller, &ws, &team)?;
            team_json(conn, &team)
        })
        .await?;
    Ok(HttpResponse::Ok().json(body))
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
    let body = state
        .write_workspace(ws.clone(), move |conn| {
            let (_, before) = load_team(conn, &caller, &ws, &team)?;
            let (name, name_key) = check_team_name(conn, &ws, &body.name, Some(&team))?;
            let after = TeamRow {
                name,
                name_key,
                updated_at: timestamp::now(),
                ..before.clone()
            };
            diesel::update(teams::table.find(&team))
                .set(&after)
                .execute(conn)?;
            audit_team(
                conn,
                &caller,
                "team.renamed",
                &after,
                Some(json!({ "name": before.name })),
                Some(json!({ "name": after.name })),
            )?;
            team_json(conn, &after)
        })
        .await?;
    Ok(HttpResponse::Ok().json(body))
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
        .write_workspace(ws.clone(), move |conn| {
            let (_, row) = load_team(conn, &caller, &ws, &team)?;
            let shown = team_json(conn, &row)?;
            diesel::delete(sources::table.filter(sources::team_id.eq(&team))).execute(conn)?;
            diesel::delete(team_links::table.filter(team_links::team_id.eq(&team)))
                .execute(conn)?;
            diesel::delete(teams::table.find(&team)).execute(conn)?;
            audit_team(
                conn,
                &caller,
                "team.deleted",
                &row,
                Some(json!(shown)),
                None,
            )
        })
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Team members with their sources, for the given member ids, in id order.
fn team_members(
    conn: &mut DbConnection,
    team_id: &str,
    member_ids: &[String],
) -> ApiResult<Vec<TeamMember>> {
    let mut rows: BTreeMap<String, (Option<MemberRow>, Vec<ShownSource>)> = member_ids
        .iter()
        .map(|id| (id.clone(), (None, Vec::new())))
        .collect();
    for chunk in member_ids.chunks(500) {
        let found: Vec<MemberRow> = members::table
            .filter(members::id.eq_any(chunk))
            .select(MemberRow::as_select())
            .load(conn)?;
        for member in found {
            if let Some(entry) = rows.get_mut(&member.id) {
                entry.0 = Some(member);
            }
        }
        let found: Vec<TeamMemberSourceRow> = sources::table
            .filter(sources::team_id.eq(team_id))
            .filter(sources::member_id.eq_any(chunk))
            .order((sources::source_type.desc(), sources::group_id))
            .select(TeamMemberSourceRow::as_select())
            .load(conn)?;
        for source in found {
            if let Some(entry) = rows.get_mut(&source.member_id) {
                entry.1.push(TeamMembershipSource::of(&source).shown());
            }
        }
    }
    Ok(rows
        .into_values()
        .filter_map(|(member, sources)| {
            let m = member?;
            Some(TeamMember {
                member_id: m.id,
                email: m.email,
                first_name: m.first_name,
                last_name: m.last_name,
                status: m.status,
                sources,
            })
        })
        .collect())
}

fn page_of_team_members(
    conn: &mut DbConnection,
    team_id: &str,
    page: &Page,
) -> ApiResult<List<String>> {
    let mut q = sources::table
        .filter(sources::team_id.eq(team_id))
        .select(sources::member_id)
        .distinct()
        .order(sources::member_id)
        .limit(page.limit + 1)
        .into_boxed();
    if let Some(after) = &page.after {
        q = q.filter(sources::member_id.gt(after.clone()));
    }
    Ok(List::from_overfetch(q.load(conn)?, page, |m: &String| {
        m.clone()
    }))
}

/// List a team's members and why each is in it
#[utoipa::path(get, path = "/api/v1/workspaces/{ws}/teams/{team}/members", tag = "teams",
    params(WorkspaceParam, TeamParam, PageQuery),
    responses(
        (status = 200, description = "A page of team members.", body = List<TeamMember>),
        (status = 404, extensions(("x-problem-codes" = json!(["not_found"])))),
    ),
)]
pub(super) async fn list_team_members(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String)>,
    query: web::Query<PageQuery>,
) -> ApiResult<HttpResponse> {
    let (ws, team) = path.into_inner();
    let page = query.page()?;
    let body = state
        .read(move |conn| {
            load_team(conn, &caller, &ws, &team)?;
            let ids = page_of_team_members(conn, &team, &page)?;
            let data = team_members(conn, &team, &ids.data)?;
            Ok(List {
                data,
                list_metadata: ids.list_metadata,
            })
        })
        .await?;
    Ok(HttpResponse::Ok().json(body))
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
    let (created, body) = state
        .write_workspace(ws.clone(), move |conn| {
            let (workspace, team) = load_team(conn, &caller, &ws, &team)?;
            let member: MemberRow = members::table
                .find(&member_id)
                .filter(members::workspace_id.eq(&ws))
                .select(MemberRow::as_select())
                .first(conn)
                .optional()?
                .ok_or_else(|| ApiError::not_found("member"))?;
            if member.status != MemberStatus::Active.as_str() {
                return Err(ApiError::conflict(
                    "member_deprovisioned",
                    "a deprovisioned member cannot join a team",
                ));
            }
            let manual = TeamMembershipSource::Manual.row(&team.id, &member.id);
            let existing: i64 = sources::table
                .find((
                    &manual.team_id,
                    &manual.member_id,
                    &manual.source_type,
                    &manual.group_id,
                ))
                .count()
                .get_result(conn)?;
            if existing == 0 {
                team_rules::add_sources(
                    conn,
                    &caller.cause(),
                    &workspace.id,
                    std::slice::from_ref(&manual),
                )?;
            }
            let shown = team_members(conn, &team.id, std::slice::from_ref(&member.id))?;
            let shown = shown
                .into_iter()
                .next()
                .ok_or_else(|| ApiError::not_found("member"))?;
            Ok((existing == 0, shown))
        })
        .await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(HttpResponse::build(status).json(body))
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
        .write_workspace(ws.clone(), move |conn| {
            let (workspace, team) = load_team(conn, &caller, &ws, &team)?;
            if !team_rules::remove_source(
                conn,
                &caller.cause(),
                &workspace.id,
                &team.id,
                &member,
                &TeamMembershipSource::Manual,
            )? {
                return Err(ApiError::not_found("manual team membership"));
            }
            Ok(())
        })
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

fn link_error(e: LinkError) -> ApiError {
    match e {
        LinkError::DirectorySyncInactive => {
            ApiError::conflict("directory_sync_inactive", e.to_string())
        }
        LinkError::NoDirectoryGroups => ApiError::conflict("no_directory_groups", e.to_string()),
        LinkError::AlreadyLinked => ApiError::conflict("already_linked", e.to_string()),
        LinkError::GroupNotFound => ApiError::not_found("directory group"),
        LinkError::NotLinked => ApiError::not_found("link"),
        LinkError::Db(e) => e.into(),
    }
}

fn linked_group(conn: &mut DbConnection, link: &TeamLinkRow) -> ApiResult<TeamLink> {
    let group: Option<(String, String)> = directory_groups::table
        .find(&link.group_id)
        .select((directory_groups::name, directory_groups::directory_id))
        .first(conn)
        .optional()?;
    let (name, directory_id) = group.unwrap_or_default();
    Ok(TeamLink {
        team_id: link.team_id.clone(),
        group_id: link.group_id.clone(),
        name,
        directory_id,
        linked_at: time_json(&link.created_at),
    })
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
    let body = state
        .read(move |conn| {
            load_team(conn, &caller, &ws, &team)?;
            let mut q = team_links::table
                .filter(team_links::team_id.eq(&team))
                .order(team_links::group_id)
                .limit(page.limit + 1)
                .select(TeamLinkRow::as_select())
                .into_boxed();
            if let Some(after) = &page.after {
                q = q.filter(team_links::group_id.gt(after.clone()));
            }
            let list =
                List::from_overfetch(q.load(conn)?, &page, |l: &TeamLinkRow| l.group_id.clone());
            list.try_map(|l| linked_group(conn, l))
        })
        .await?;
    Ok(HttpResponse::Ok().json(body))
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
    let group_id = body.into_inner().group_id;
    let body = state
        .write_workspace(ws.clone(), move |conn| {
            let (workspace, team) = load_team(conn, &caller, &ws, &team)?;
            let added =
                team_rules::link_group(conn, &caller.cause(), &workspace, &team.id, &group_id)
                    .map_err(link_error)?;
            let link = team_links::table
                .find((&team.id, &group_id))
                .select(TeamLinkRow::as_select())
                .first(conn)?;
            Ok(CreatedTeamLink {
                link: linked_group(conn, &link)?,
                members_added: added,
            })
        })
        .await?;
    Ok(HttpResponse::Created().json(body))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct UnlinkQuery {
    /// What happens to the members the group brought in.
    #[param(required = true, pattern = "^(keep|remove)$")]
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
    let choice = match query.members.as_deref() {
        Some("keep") => UnlinkMembers::Keep,
        Some("remove") => UnlinkMembers::Remove,
        _ => {
            return Err(ApiError::bad_request(
                "members_choice_required",
                "say what happens to the members who came through the group: ?members=keep or ?members=remove",
            ))
        }
    };
    state
        .write_workspace(ws.clone(), move |conn| {
            let (workspace, team) = load_team(conn, &caller, &ws, &team)?;
            team_rules::unlink_group(conn, &caller.cause(), &workspace, &team.id, &group, choice)
                .map_err(link_error)?;
            Ok(())
        })
        .await?;
    Ok(HttpResponse::NoContent().finish())
}
