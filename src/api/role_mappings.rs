//! `GET/PUT …/role-mappings`: which directory group grants which role (rule 11), self-serve; and
//! `GET/PUT …/role-source`: whether roles come from those mappings or from the role slugs the identity
//! provider assigns, through a slug table.

use super::blocking::OffWorkers;
use super::error::ApiResult;
use super::params::WorkspaceParam;
use super::route::Route;
use crate::access::Caller;
use crate::state::AppState;
use crate::workspaces::roles::{
    self, RoleMapping, RoleMappingPreview, RoleMappings, RoleSourceSetting,
};
use actix_web::{web, HttpResponse};

pub fn routes() -> Vec<Route> {
    [
        Route::of::<__path_get_role_mappings>(|| web::to(get_role_mappings)),
        Route::of::<__path_put_role_mappings>(|| web::to(put_role_mappings)),
        Route::of::<__path_preview_role_mappings>(|| web::to(preview_role_mappings)),
        Route::of::<__path_get_role_source>(|| web::to(get_role_source)),
        Route::of::<__path_put_role_source>(|| web::to(put_role_source)),
        Route::of::<__path_preview_role_source>(|| web::to(preview_role_source)),
    ]
    .concat()
}

/// List role mappings
#[utoipa::path(get, path = "/api/v1/workspaces/{ws}/role-mappings", tag = "directory",
    params(WorkspaceParam),
    responses(
        (status = 200, description = "Every mapping.", body = RoleMappings),
        (status = 404, extensions(("x-problem-codes" = json!(["not_found"])))),
    ),
)]
pub(super) async fn get_role_mappings(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let ws = path.into_inner();
    let body = state
        .call(move |db| roles::mappings(db, &caller, &ws))
        .await?;
    Ok(HttpResponse::Ok().json(body))
}

/// Replace the role mappings
///
/// Replaces the whole set; directory-managed members' roles are recomputed (on SQLite a batch of
/// members per transaction, the workspace's other writes waiting for the end). A group may appear once,
/// and must be one of the workspace's directory groups (400 `unknown_group`).
#[utoipa::path(put, path = "/api/v1/workspaces/{ws}/role-mappings", tag = "directory",
    params(WorkspaceParam),
    request_body = Vec<RoleMapping>,
    responses(
        (status = 200, description = "The new set.", body = RoleMappings),
        (status = 400, extensions(("x-problem-codes" = json!(["invalid_body", "invalid_field", "unknown_group"])))),
        (status = 404, extensions(("x-problem-codes" = json!(["not_found"])))),
    ),
)]
pub(super) async fn put_role_mappings(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    body: web::Json<Vec<RoleMapping>>,
) -> ApiResult<HttpResponse> {
    let ws = path.into_inner();
    let body = state
        .call(move |db| roles::replace_mappings(db, &caller, &ws, body.into_inner()))
        .await?;
    Ok(HttpResponse::Ok().json(body))
}

/// Preview a change of role mappings
///
/// Takes the same body as the replacement and answers which members' roles it would change, with
/// the same rules (highest role wins), changing nothing: computed on a read-only snapshot, so it holds
/// up no write. Every change is counted (`total`, `moves`); the first 1,000 by member id are listed.
#[utoipa::path(post, path = "/api/v1/workspaces/{ws}/role-mappings/preview", tag = "directory",
    params(WorkspaceParam),
    request_body = Vec<RoleMapping>,
    responses(
        (status = 200, description = "The members whose role would change.", body = RoleMappingPreview),
        (status = 400, extensions(("x-problem-codes" = json!(["invalid_body", "invalid_field", "unknown_group"])))),
        (status = 404, extensions(("x-problem-codes" = json!(["not_found"])))),
    ),
)]
pub(super) async fn preview_role_mappings(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    body: web::Json<Vec<RoleMapping>>,
) -> ApiResult<HttpResponse> {
    let ws = path.into_inner();
    let preview = state
        .call(move |db| roles::preview_mappings(db, &caller, &ws, body.into_inner()))
        .await?;
    Ok(HttpResponse::Ok().json(preview))
}

/// The role the directory decides
///
/// Whether the roles of directory members come from the role mappings of their groups
/// (`group_mappings`) or from the role slugs the identity provider assigns (`directory_roles`), with
/// the slug table.
#[utoipa::path(get, path = "/api/v1/workspaces/{ws}/role-source", tag = "directory",
    params(WorkspaceParam),
    responses(
        (status = 200, description = "The setting.", body = RoleSourceSetting),
        (status = 404, extensions(("x-problem-codes" = json!(["not_found"])))),
    ),
)]
pub(super) async fn get_role_source(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let ws = path.into_inner();
    let setting = state
        .call(move |db| roles::role_source(db, &caller, &ws))
        .await?;
    Ok(HttpResponse::Ok().json(setting))
}

/// Set where roles come from
///
/// Sets the source and the slug table; every directory-managed member's role is recomputed at once (on
/// SQLite a batch of members per transaction, the workspace's other writes waiting for the end), each
/// change audited with the caller as its cause.
#[utoipa::path(put, path = "/api/v1/workspaces/{ws}/role-source", tag = "directory",
    params(WorkspaceParam),
    request_body = RoleSourceSetting,
    responses(
        (status = 200, description = "The new setting.", body = RoleSourceSetting),
        (status = 400, extensions(("x-problem-codes" = json!(["invalid_body", "invalid_field"])))),
        (status = 404, extensions(("x-problem-codes" = json!(["not_found"])))),
    ),
)]
pub(super) async fn put_role_source(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    body: web::Json<RoleSourceSetting>,
) -> ApiResult<HttpResponse> {
    let ws = path.into_inner();
    let setting = state
        .call(move |db| roles::set_role_source(db, &caller, &ws, body.into_inner()))
        .await?;
    Ok(HttpResponse::Ok().json(setting))
}

/// Preview a change of role source
///
/// Takes the same body and answers which members' roles it would change, changing nothing.
#[utoipa::path(post, path = "/api/v1/workspaces/{ws}/role-source/preview", tag = "directory",
    params(WorkspaceParam),
    request_body = RoleSourceSetting,
    responses(
        (status = 200, description = "The members whose role would change.", body = RoleMappingPreview),
        (status = 400, extensions(("x-problem-codes" = json!(["invalid_body", "invalid_field"])))),
        (status = 404, extensions(("x-problem-codes" = json!(["not_found"])))),
    ),
)]
pub(super) async fn preview_role_source(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    body: web::Json<RoleSourceSetting>,
) -> ApiResult<HttpResponse> {
    let ws = path.into_inner();
    let preview = state
        .call(move |db| roles::preview_role_source(db, &caller, &ws, body.into_inner()))
        .await?;
    Ok(HttpResponse::Ok().json(preview))
}
