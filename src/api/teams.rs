//! Teams, their members with the reasons they are there, and the directory groups linked to them.

use super::auth::Caller;
use super::error::{ApiError, ApiResult};
use super::pagination::{List, Page, PageQuery};
use super::workspaces::{load_workspace, time_json};
use super::{check_name, resource, AppState};
use crate::audit::{self, AuditRecord};
use crate::db::models::{MemberRow, TeamLinkRow, TeamMemberSourceRow, TeamRow, WorkspaceRow};
use crate::db::schema::{
    directory_groups, members, team_links, team_member_sources as sources, teams,
};
use crate::db::DbConnection;
use crate::directory_sync::teams::{
    self as team_rules, LinkError, TeamMembershipSource, UnlinkMembers,
};
use crate::domain::MemberStatus;
use crate::ids::new_id;
use crate::workos::timestamp;
use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use diesel::prelude::*;
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        resource("/api/v1/workspaces/{ws}/teams")
            .route(web::get().to(list_teams))
            .route(web::post().to(create_team)),
    )
    .service(
        resource("/api/v1/workspaces/{ws}/teams/{team}")
            .route(web::get().to(get_team))
            .route(web::patch().to(rename_team))
            .route(web::delete().to(delete_team)),
    )
    .service(
        resource("/api/v1/workspaces/{ws}/teams/{team}/members")
            .route(web::get().to(list_team_members))
            .route(web::post().to(add_team_member)),
    )
    .service(
        resource("/api/v1/workspaces/{ws}/teams/{team}/members/{member}")
            .route(web::delete().to(remove_team_member)),
    )
    .service(
        resource("/api/v1/workspaces/{ws}/teams/{team}/directory-groups")
            .route(web::get().to(list_linked_groups))
            .route(web::post().to(link_directory_group)),
    )
    .service(
        resource("/api/v1/workspaces/{ws}/teams/{team}/directory-groups/{group}")
            .route(web::delete().to(unlink_directory_group)),
    );
}

/// A team as the API shows it.
fn team_json(conn: &mut DbConnection, team: &TeamRow) -> ApiResult<Value> {
    let member_count: i64 = sources::table
        .filter(sources::team_id.eq(&team.id))
        .select(diesel::dsl::count(sources::member_id).aggregate_distinct())
        .first(conn)?;
    let linked_group_ids: Vec<String> = team_links::table
        .filter(team_links::team_id.eq(&team.id))
        .order(team_links::group_id)
        .select(team_links::group_id)
        .load(conn)?;
    Ok(json!({
        "id": team.id,
        "workspace_id": team.workspace_id,
        "name": team.name,
        "member_count": member_count,
        "linked_group_ids": linked_group_ids,
        "created_at": time_json(&team.created_at),
        "updated_at": time_json(&team.updated_at),
    }))
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
    let name = check_name(name)?;
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

async fn list_teams(
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TeamName {
    name: String,
}

async fn create_team(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    body: web::Json<TeamName>,
) -> ApiResult<HttpResponse> {
    let ws = path.into_inner();
    let body = state
        .write(move |conn| {
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
                Some(shown.clone()),
            )?;
            Ok(shown)
        })
        .await?;
    Ok(HttpResponse::Created().json(body))
}

async fn get_team(
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

async fn rename_team(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String)>,
    body: web::Json<TeamName>,
) -> ApiResult<HttpResponse> {
    let (ws, team) = path.into_inner();
    let body = state
        .write(move |conn| {
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

async fn delete_team(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String)>,
) -> ApiResult<HttpResponse> {
    let (ws, team) = path.into_inner();
    state
        .write(move |conn| {
            let (_, row) = load_team(conn, &caller, &ws, &team)?;
            let shown = team_json(conn, &row)?;
            diesel::delete(sources::table.filter(sources::team_id.eq(&team))).execute(conn)?;
            diesel::delete(team_links::table.filter(team_links::team_id.eq(&team)))
                .execute(conn)?;
            diesel::delete(teams::table.find(&team)).execute(conn)?;
            audit_team(conn, &caller, "team.deleted", &row, Some(shown), None)
        })
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Team members with their sources, for the given member ids, in id order.
fn team_members_json(
    conn: &mut DbConnection,
    team_id: &str,
    member_ids: &[String],
) -> ApiResult<Vec<Value>> {
    let mut rows: BTreeMap<String, (Option<MemberRow>, Vec<Value>)> = member_ids
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
                entry.1.push(TeamMembershipSource::of(&source).to_json());
            }
        }
    }
    Ok(rows
        .into_values()
        .filter_map(|(member, sources)| {
            let m = member?;
            Some(json!({
                "member_id": m.id, "email": m.email, "first_name": m.first_name,
                "last_name": m.last_name, "status": m.status, "sources": sources,
            }))
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

async fn list_team_members(
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
            let data = team_members_json(conn, &team, &ids.data)?;
            Ok(List {
                data,
                list_metadata: ids.list_metadata,
            })
        })
        .await?;
    Ok(HttpResponse::Ok().json(body))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TeamMemberRef {
    member_id: String,
}

async fn add_team_member(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String)>,
    body: web::Json<TeamMemberRef>,
) -> ApiResult<HttpResponse> {
    let (ws, team) = path.into_inner();
    let member_id = body.into_inner().member_id;
    let (created, body) = state
        .write(move |conn| {
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
            let shown = team_members_json(conn, &team.id, std::slice::from_ref(&member.id))?;
            Ok((
                existing == 0,
                shown.into_iter().next().unwrap_or(Value::Null),
            ))
        })
        .await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(HttpResponse::build(status).json(body))
}

async fn remove_team_member(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String, String)>,
) -> ApiResult<HttpResponse> {
    let (ws, team, member) = path.into_inner();
    state
        .write(move |conn| {
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

fn linked_group_json(conn: &mut DbConnection, link: &TeamLinkRow) -> ApiResult<Value> {
    let group: Option<(String, String)> = directory_groups::table
        .find(&link.group_id)
        .select((directory_groups::name, directory_groups::directory_id))
        .first(conn)
        .optional()?;
    let (name, directory_id) = group.unwrap_or_default();
    Ok(json!({
        "team_id": link.team_id, "group_id": link.group_id, "name": name,
        "directory_id": directory_id, "linked_at": time_json(&link.created_at),
    }))
}

async fn list_linked_groups(
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
            list.try_map(|l| linked_group_json(conn, l))
        })
        .await?;
    Ok(HttpResponse::Ok().json(body))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GroupRef {
    group_id: String,
}

async fn link_directory_group(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String)>,
    body: web::Json<GroupRef>,
) -> ApiResult<HttpResponse> {
    let (ws, team) = path.into_inner();
    let group_id = body.into_inner().group_id;
    let body = state
        .write(move |conn| {
            let (workspace, team) = load_team(conn, &caller, &ws, &team)?;
            let added =
                team_rules::link_group(conn, &caller.cause(), &workspace, &team.id, &group_id)
                    .map_err(link_error)?;
            let link = team_links::table
                .find((&team.id, &group_id))
                .select(TeamLinkRow::as_select())
                .first(conn)?;
            let mut shown = linked_group_json(conn, &link)?;
            shown["members_added"] = json!(added);
            Ok(shown)
        })
        .await?;
    Ok(HttpResponse::Created().json(body))
}

#[derive(Deserialize)]
struct UnlinkQuery {
    members: Option<String>,
}

async fn unlink_directory_group(
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
        .write(move |conn| {
            let (workspace, team) = load_team(conn, &caller, &ws, &team)?;
            team_rules::unlink_group(conn, &caller.cause(), &workspace, &team.id, &group, choice)
                .map_err(link_error)?;
            Ok(())
        })
        .await?;
    Ok(HttpResponse::NoContent().finish())
}
