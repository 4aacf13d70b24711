//! Workspace members over the API; with directory sync on, the directory owns them (rules 11–12).

use super::blocking::OffWorkers;
use super::error::{ApiError, ApiResult};
use super::pagination::PageQuery;
use super::params::{enum_param, MemberParam, WorkspaceParam};
use super::route::Route;
use crate::access::Caller;
use crate::directory_sync::members::Member;
use crate::domain::{ManagedBy, MemberStatus, Role};
use crate::lists::CountedList;
use crate::state::AppState;
use crate::workspaces::members::{self, MemberFilter};
use actix_web::{web, HttpResponse};
use serde::Deserialize;
use utoipa::IntoParams;

pub fn routes() -> Vec<Route> {
    [
        Route::of::<__path_list_members>(|| web::to(list_members)),
        Route::of::<__path_add_member>(|| web::to(add_member)),
        Route::of::<__path_get_member>(|| web::to(get_member)),
        Route::of::<__path_update_member>(|| web::to(update_member)),
        Route::of::<__path_remove_member>(|| web::to(remove_member)),
    ]
    .concat()
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct MemberQuery {
    /// Only members whose name or email holds this text, in any case (any part: a prefix or a
    /// substring).
    #[param(max_length = 200)]
    search: Option<String>,
    /// Only members with this status.
    #[param(value_type = Option<crate::domain::MemberStatus>, inline)]
    status: Option<String>,
    /// Only members managed this way: by the directory or by hand.
    #[param(value_type = Option<crate::domain::ManagedBy>, inline)]
    managed_by: Option<String>,
    /// Only members with this role.
    #[param(value_type = Option<crate::domain::Role>, inline)]
    role: Option<String>,
    /// Only the member with this email, compared case-insensitively.
    email: Option<String>,
    /// Only members in this directory group (`directory_group_…`).
    group: Option<String>,
    #[serde(flatten)]
    #[param(ignore)]
    page: PageQuery,
}

/// The text a search looks for: at most 200 characters, no NUL.
pub(super) fn search_text(search: Option<String>) -> ApiResult<Option<String>> {
    match search {
        Some(text) if text.chars().count() > 200 || text.contains('\0') => {
            Err(ApiError::bad_request(
                "invalid_parameter",
                "search: at most 200 characters, without NUL",
            ))
        }
        Some(text) if text.trim().is_empty() => Ok(None),
        other => Ok(other),
    }
}

/// List members
#[utoipa::path(get, path = "/api/v1/workspaces/{ws}/members", tag = "members",
    params(WorkspaceParam, MemberQuery, PageQuery),
    responses(
        (status = 200, description = "A page of members, with how many match.", body = CountedList<Member>),
        (status = 400, extensions(("x-problem-codes" = json!(["invalid_parameter"])))),
        (status = 404, extensions(("x-problem-codes" = json!(["not_found"])))),
    ),
)]
pub(super) async fn list_members(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    query: web::Query<MemberQuery>,
) -> ApiResult<HttpResponse> {
    let ws = path.into_inner();
    let page = query.page.page()?;
    let query = query.into_inner();
    let filter = MemberFilter {
        status: enum_param::<MemberStatus>("status", query.status.as_deref())?,
        managed_by: enum_param::<ManagedBy>("managed_by", query.managed_by.as_deref())?,
        role: enum_param::<Role>("role", query.role.as_deref())?,
        email: query.email,
        group: query.group,
        search: search_text(query.search)?,
    };
    let list = state
        .call(move |db| members::list(db, &caller, &ws, filter, &page))
        .await?;
    Ok(HttpResponse::Ok().json(list))
}

/// Get a member
#[utoipa::path(get, path = "/api/v1/workspaces/{ws}/members/{member}", tag = "members",
    params(WorkspaceParam, MemberParam),
    responses(
        (status = 200, description = "The member.", body = Member),
        (status = 404, extensions(("x-problem-codes" = json!(["not_found"])))),
    ),
)]
pub(super) async fn get_member(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String)>,
) -> ApiResult<HttpResponse> {
    let (ws, id) = path.into_inner();
    let member = state
        .call(move |db| members::get(db, &caller, &ws, &id))
        .await?;
    Ok(HttpResponse::Ok().json(member))
}

/// Add a member by hand
///
/// With directory sync on, members come from the identity provider (409). Only the operator adds an
/// `owner` (403 `owner_requires_operator`).
#[utoipa::path(post, path = "/api/v1/workspaces/{ws}/members", tag = "members",
    params(WorkspaceParam),
    request_body = members::NewMember,
    responses(
        (status = 201, description = "Added.", body = Member),
        (status = 400, extensions(("x-problem-codes" = json!(["invalid_body", "invalid_field"])))),
        (status = 404, extensions(("x-problem-codes" = json!(["not_found"])))),
        (status = 403, extensions(("x-problem-codes" = json!(["owner_requires_operator"])))),
        (status = 409, extensions(("x-problem-codes" = json!(["managed_by_directory_sync", "email_taken"])))),
    ),
)]
pub(super) async fn add_member(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    body: web::Json<members::NewMember>,
) -> ApiResult<HttpResponse> {
    let ws = path.into_inner();
    let new = body.into_inner();
    let member = state
        .call(move |db| members::add(db, &caller, &ws, new))
        .await?;
    Ok(HttpResponse::Created().json(member))
}

/// Change a member
///
/// A directory-managed member's email and name come from the identity provider, and while the
/// workspace has role mappings so does their role (409). Only the operator grants or removes `owner`
/// (403 `owner_requires_operator`), and never from the workspace's last active owner (409 `last_owner`).
#[utoipa::path(patch, path = "/api/v1/workspaces/{ws}/members/{member}", tag = "members",
    params(WorkspaceParam, MemberParam),
    request_body = members::MemberChanges,
    responses(
        (status = 200, description = "The changed member.", body = Member),
        (status = 400, extensions(("x-problem-codes" = json!(["invalid_body", "invalid_field"])))),
        (status = 404, extensions(("x-problem-codes" = json!(["not_found"])))),
        (status = 403, extensions(("x-problem-codes" = json!(["owner_requires_operator"])))),
        (status = 409, extensions(("x-problem-codes" = json!(["managed_by_directory_sync", "email_taken", "last_owner"])))),
    ),
)]
pub(super) async fn update_member(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String)>,
    body: web::Json<members::MemberChanges>,
) -> ApiResult<HttpResponse> {
    let (ws, id) = path.into_inner();
    let changes = body.into_inner();
    let member = state
        .call(move |db| members::change(db, &caller, &ws, &id, changes))
        .await?;
    Ok(HttpResponse::Ok().json(member))
}

/// Remove a member
///
/// With directory sync on, a directory-managed member is removed in the identity provider (409);
/// leftover manual members can still be removed here. Only the operator removes an owner (403), and
/// never the workspace's last active owner (409 `last_owner`).
#[utoipa::path(delete, path = "/api/v1/workspaces/{ws}/members/{member}", tag = "members",
    params(WorkspaceParam, MemberParam),
    responses(
        (status = 204, description = "Removed."),
        (status = 404, extensions(("x-problem-codes" = json!(["not_found"])))),
        (status = 403, extensions(("x-problem-codes" = json!(["owner_requires_operator"])))),
        (status = 409, extensions(("x-problem-codes" = json!(["managed_by_directory_sync", "last_owner"])))),
    ),
)]
pub(super) async fn remove_member(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String)>,
) -> ApiResult<HttpResponse> {
    let (ws, id) = path.into_inner();
    state
        .call(move |db| members::remove(db, &caller, &ws, &id))
        .await?;
    Ok(HttpResponse::NoContent().finish())
}
